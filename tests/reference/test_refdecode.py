"""Kernel vs dpkt reference: identical raw columns on every fixture and sample."""

from __future__ import annotations

from pathlib import Path

import fixtures as fx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference.refdecode import comparable, kernel_decode, reference_decode, reference_file

from pcaploop import schema as S
from pcaploop.decode import linktypes as lt
from pcaploop.ingest.loader import load

SAMPLES = sorted(
    p for p in (Path(__file__).resolve().parents[2] / "samples").glob("**/*.pcap*") if p.is_file()
)


def assert_same_as_reference(path: Path, key, name: str = "cap") -> None:
    """load() and reference_file() agree on every raw column, point and count."""
    pk = load([f"{name}={path}"], key=key)
    ref = reference_file(path, name, key)
    order = np.argsort(pk.cols["record"], kind="stable")
    kern = {k: v[order] for k, v in pk.cols.items()}
    for col, dtype in S.RAW.items():
        assert kern[col].dtype == dtype, col
        if col != "point":
            np.testing.assert_array_equal(kern[col], ref["cols"][col], err_msg=col)
    assert [pk.point_names[i] for i in kern["point"]] == ref["point_names"]
    acct = {p.name: (p.records, p.decoded, *p.skipped.values()) for p in pk.points if p.records}
    assert acct == ref["accounting"]
    arp_names = [pk.point_names[i] for i in pk.arp["point"]] if len(pk.arp) else []
    kern_arp = sorted(
        zip(
            *(pk.arp[k].tolist() for k in ("time_ns",)),
            arp_names,
            *(
                pk.arp[k].tolist()
                for k in ("op", "sender_mac", "sender_ip", "target_ip", "eth_src")
            ),
        )
    )
    assert kern_arp == sorted(ref["arp"])


@pytest.mark.parametrize("name", sorted(fx.VALID))
def test_fixture_identical(captures, key, name):
    assert_same_as_reference(captures[name], key, name)


@pytest.mark.parametrize(
    "name",
    [
        "cut_tail",
        "caplen_over_max",
        "pcapng_bad_lengths",
        "pcapng_huge_block",
        "pcapng_cut",
        "huge_caplen",
    ],
)
def test_damaged_intact_part_identical(captures, key, name):
    assert_same_as_reference(captures[name], key, name)
    assert reference_file(captures[name], name, key)["truncated_tail"]


@pytest.mark.skipif(not SAMPLES, reason="no samples/**/*.pcap* files yet")
@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_sample_identical(path, key):
    assert_same_as_reference(path, key, path.stem)


def _frames():
    """Every frame of every valid fixture link type, with its link type."""
    pkts = fx.ip_packets()
    out = [(1, fx.eth(p)) for p in pkts] + [(101, p) for p in pkts]
    out += [(276, fx.sll2(p, 3, 4)) for p in pkts] + [(113, fx.sll(p, 0)) for p in pkts]
    out += [(0, fx.null(p, 2 if p[0] >> 4 == 4 else 30)) for p in pkts]
    out += [(1, fx.eth(fx.arp_reply(), 0x0806)), (1, fx.eth(pkts[0], vlans=(1, 2)))]
    return out


FRAMES = _frames()


@pytest.mark.parametrize("cut", [0, 1, 4, 13, 14, 20, 33, 34, 41, 42, 54, 61, 62, 70, 90, 96])
def test_every_truncation_identical(key, cut):
    """Frames cut at many lengths (snaplen) decode identically."""
    for linktype, frame in FRAMES:
        want = comparable(*reference_decode(linktype, frame[:cut], len(frame), key))
        got = comparable(*kernel_decode(linktype, frame[:cut], len(frame), key))
        assert got == want, (linktype, frame.hex())


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(FRAMES), st.data())
def test_random_mutations_identical(key, pick, data):
    """Byte flips, cuts and odd wire lengths: the two decoders still agree."""
    linktype, frame = pick
    buf = bytearray(frame)
    for _ in range(data.draw(st.integers(0, 4))):
        if buf:
            i = data.draw(st.integers(0, len(buf) - 1))
            buf[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(buf)))
    wire = data.draw(st.sampled_from([len(buf), cut, cut + 1, 0, 70000, 300000]))
    want = comparable(*reference_decode(linktype, bytes(buf[:cut]), wire, key))
    got = comparable(*kernel_decode(linktype, bytes(buf[:cut]), wire, key))
    assert got == want


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(lt.LINKTYPES) + [147]), st.binary(max_size=120), st.integers(0, 400))
def test_random_bytes_identical(key, linktype, frame, extra):
    """Arbitrary bytes under every link type."""
    want = comparable(*reference_decode(linktype, frame, len(frame) + extra, key))
    got = comparable(*kernel_decode(linktype, frame, len(frame) + extra, key))
    assert got == want
