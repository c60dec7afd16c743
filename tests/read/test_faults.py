"""The fault corpus of issue #16 that the older fixtures lacked: each file is read as far
as it is intact, every record is accounted for with its reason, and ``Error:`` / exit 2
only when nothing usable was read.  Expected counts come from how each file is built."""

from __future__ import annotations

import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fixtures import (
    T0,
    Iface,
    Rec,
    Section,
    block,
    eth,
    icmp4_error,
    idb,
    section_bytes,
    shb,
    udp4,
    write_pcap,
    write_pcapng,
)

from pcaploop.ingest.info import capture_info

REPO = Path(__file__).resolve().parents[2]
EN10MB = 1


def _one(path: Path) -> dict:
    (c,) = [c for c in capture_info([str(path)])["captures"] if c["records"]]
    assert c["records"] == c["decoded"] + sum(c["skipped"].values())
    return c


def _ip4(ihl: int = 5, total: int | None = None, body: bytes = b"\0" * 16) -> bytes:
    hdr = struct.pack(
        ">BBHHHBBH4s4s",
        0x40 | ihl,
        0,
        total if total is not None else 20 + len(body),
        1,
        0,
        64,
        17,
        0,
        bytes([198, 51, 100, 9]),
        bytes([203, 0, 113, 7]),
    )
    return hdr + body


def test_pcapng_unknown_blocks_are_skipped(tmp_path: Path) -> None:
    sec = Section(
        ifaces=[Iface(EN10MB)],
        recs=[(0, Rec(T0 + k, eth(udp4())), None) for k in range(3)],
        extra=[block("<", 0x0BAD0BAD, b"hello"), block("<", 0x80000001, b"\1" * 40)],
    )
    c = _one(write_pcapng(tmp_path / "u.pcapng", [sec]))
    assert c["records"] == 3 and c["decoded"] == 3


def test_packet_for_an_interface_never_declared(tmp_path: Path) -> None:
    sec = Section(
        ifaces=[Iface(EN10MB)],
        recs=[(0, Rec(T0, eth(udp4())), None), (0, Rec(T0 + 1, eth(udp4())), None)],
    )
    raw = section_bytes(sec)
    bad = block("<", 6, struct.pack("<IIIII", 7, 0, 0, 4, 4) + b"abcd")
    p = tmp_path / "noidb.pcapng"
    p.write_bytes(raw + bad)
    doc = capture_info([str(p)])
    total = sum(c["records"] for c in doc["captures"])
    decoded = sum(c["decoded"] for c in doc["captures"])
    skipped = sum(sum(c["skipped"].values()) for c in doc["captures"])
    assert (total, decoded, skipped) == (3, 2, 1)


def test_sections_in_both_byte_orders(tmp_path: Path) -> None:
    le = Section(
        big=False, ifaces=[Iface(EN10MB, name="a")], recs=[(0, Rec(T0, eth(udp4())), None)]
    )
    be = Section(
        big=True,
        ifaces=[Iface(EN10MB, name="b")],
        recs=[(0, Rec(T0 + 1, eth(udp4())), None), (0, Rec(T0 + 2, eth(udp4())), None)],
    )
    doc = capture_info([str(write_pcapng(tmp_path / "both.pcapng", [le, be]))])
    got = {c["name"]: (c["records"], c["decoded"]) for c in doc["captures"]}
    assert got == {"a": (1, 1), "b": (2, 2)}


@pytest.mark.parametrize(
    ("name", "packet"),
    [
        ("ihl_below_5", _ip4(ihl=3)),
        ("total_below_header", _ip4(total=12)),
        ("total_beyond_frame", _ip4(total=1400)),
    ],
)
def test_broken_ipv4_headers(tmp_path: Path, name: str, packet: bytes) -> None:
    c = _one(write_pcap(tmp_path / f"{name}.pcap", EN10MB, [Rec(T0, eth(packet))]))
    assert c["records"] == 1  # decoded (flagged) or skipped as malformed: never lost


def test_ipv6_extension_chain_that_never_ends(tmp_path: Path) -> None:
    hop = bytes([0, 0]) + b"\0" * 6  # hop-by-hop options, next header: hop-by-hop again
    chain = hop * 200
    ip6 = (
        struct.pack(">IHBB", 0x60000000, len(chain), 0, 64)
        + bytes.fromhex("20010db8000000000000000000000009")
        + bytes.fromhex("20010db8010000000000000000000007")
        + chain
    )
    t0 = time.monotonic()
    c = _one(write_pcap(tmp_path / "chain.pcap", EN10MB, [Rec(T0, eth(ip6, etype=0x86DD))]))
    assert c["records"] == 1 and time.monotonic() - t0 < 30


def test_icmp_error_quoting_garbage(tmp_path: Path) -> None:
    frames = [
        eth(icmp4_error(b"\x45" + b"\xff" * 40)),
        eth(icmp4_error(b"\x60" + b"\x00" * 7)),
        eth(icmp4_error(b"")),
    ]
    c = _one(
        write_pcap(tmp_path / "quote.pcap", EN10MB, [Rec(T0 + k, f) for k, f in enumerate(frames)])
    )
    assert c["records"] == 3


def test_overlapping_fragments(tmp_path: Path) -> None:
    def frag(off8: int, mf: bool, data: bytes) -> bytes:
        hdr = struct.pack(
            ">BBHHHBBH4s4s",
            0x45,
            0,
            20 + len(data),
            0x4242,
            (0x2000 if mf else 0) | off8,
            64,
            17,
            0,
            bytes([198, 51, 100, 9]),
            bytes([203, 0, 113, 7]),
        )
        return hdr + data

    frames = [frag(0, True, b"a" * 32), frag(2, True, b"b" * 32), frag(1, False, b"c" * 16)]
    c = _one(
        write_pcap(
            tmp_path / "frag.pcap", EN10MB, [Rec(T0 + k, eth(f)) for k, f in enumerate(frames)]
        )
    )
    assert c["decoded"] == 3


def test_sll2_with_an_unknown_interface_index(tmp_path: Path) -> None:
    from fixtures import sll2

    frames = [sll2(udp4(), ifindex=7), sll2(udp4(), ifindex=0x7FFFFFFF)]
    p = write_pcap(tmp_path / "sll2.pcap", 276, [Rec(T0 + k, f) for k, f in enumerate(frames)])
    doc = capture_info([str(p)])
    assert sum(c["records"] for c in doc["captures"]) == 2
    assert any(":if2147483647" in c["name"] for c in doc["captures"])


def test_header_only_and_zero_length(tmp_path: Path) -> None:
    """A pcap header with no record is a capture with nothing in it (no error); an empty
    file is not a capture (exit 2, one line)."""
    p = write_pcap(tmp_path / "hdr.pcap", EN10MB, [])
    assert capture_info([str(p)])["captures"][0]["records"] == 0
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    r = subprocess.run(
        [sys.executable, "-m", "pcaploop", "info", str(empty)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert r.returncode == 2
    assert r.stderr.startswith("Error:") and len(r.stderr.strip().splitlines()) == 1


def test_a_hundred_thousand_interface_blocks(tmp_path: Path) -> None:
    """pcapng declaring 100,000 interfaces, packets on 5,001 of them: the first 4,095
    interfaces are capture points, the rest share one ('other-interfaces'); every
    record is decoded and counted, fast, with a warning — not refused, and not a
    hundred thousand points."""
    import json

    from fixtures import udp4

    frame = eth(udp4())
    body = shb("<") + b"".join(idb("<", Iface(EN10MB)) for _ in range(100_000))
    ks = [99_999, *range(5000)]
    for k in ks:
        pad = (-len(frame)) % 4
        body += block(
            "<", 6, struct.pack("<IIIII", k, 0, 0, len(frame), len(frame)) + frame + b"\0" * pad
        )
    p = tmp_path / "many.pcapng"
    p.write_bytes(body)
    t0 = time.monotonic()
    r = subprocess.run(
        [sys.executable, "-m", "pcaploop", "info", str(p), "--json", "-"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert time.monotonic() - t0 < 60
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    caps = doc["captures"]
    assert len(caps) == 4096
    assert sum(c["records"] for c in caps) == sum(c["decoded"] for c in caps) == len(ks)
    other = [c for c in caps if c["name"] == "other-interfaces"]
    assert len(other) == 1 and other[0]["records"] == len(ks) - 4095
    assert "other-interfaces" in r.stderr or any(
        "other-interfaces" in w for w in doc.get("warnings", [])
    )


@pytest.mark.parametrize(
    ("offset", "value", "fmt", "why"),
    [
        (4, 1, "<H", "unsupported pcap version 1.4"),
        (4, 3, "<H", "unsupported pcap version 3.4"),
        (20, 0x00300001, "<I", "reserved bits set (0x00300001)"),
    ],
)
def test_pcap_headers_libpcap_refuses(
    tmp_path: Path, offset: int, value: int, fmt: str, why: str
) -> None:
    """Versions and link-type bits that libpcap and tshark refuse are refused, not
    guessed at: reading them would report records no other tool sees."""
    from pcaploop.errors import NotACaptureError
    from pcaploop.read.capture import open_capture

    good = write_pcap(tmp_path / "ok.pcap", EN10MB, [Rec(T0, eth(udp4()))])
    raw = bytearray(good.read_bytes())
    struct.pack_into(fmt, raw, offset, value)
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(bytes(raw))
    with pytest.raises(NotACaptureError, match=why.replace("(", r"\(").replace(")", r"\)")):
        open_capture(bad)
    assert open_capture(good).interfaces[0].linktype == EN10MB


@pytest.mark.parametrize(
    ("version", "ok"),
    [((1, 0), True), ((1, 2), True), ((0, 1), False), ((1, 1), False), ((2, 0), False)],
)
def test_pcapng_section_versions(tmp_path: Path, version: tuple[int, int], ok: bool) -> None:
    """libpcap reads section versions 1.0 and 1.2; any other first section is refused,
    and a later section with another version ends the reading there, reported."""
    from pcaploop.errors import NotACaptureError

    sec = Section(ifaces=[Iface(EN10MB)], recs=[(0, Rec(T0, eth(udp4())), None)])
    raw = bytearray(section_bytes(sec))
    struct.pack_into("<HH", raw, 12, *version)
    first = tmp_path / "first.pcapng"
    first.write_bytes(bytes(raw))
    later = tmp_path / "later.pcapng"
    later.write_bytes(section_bytes(sec) + bytes(raw))
    if ok:
        assert _one(first)["decoded"] == 1
        assert sum(c["decoded"] for c in capture_info([str(later)])["captures"]) == 2
        return
    with pytest.raises(NotACaptureError, match="unsupported pcapng section header version"):
        capture_info([str(first)])
    doc = capture_info([str(later)])
    assert sum(c["decoded"] for c in doc["captures"]) == 1
    assert any("version" in (c["problem"] or "") for c in doc["captures"])


@pytest.mark.parametrize("gz", [False, True])
def test_a_capture_gone_after_it_was_opened_is_a_one_line_error(tmp_path: Path, gz: bool) -> None:
    """Opened (its header read), then removed before its records are read: the
    error names the file, as when it was missing from the start."""
    import gzip

    from pcaploop.errors import CaptureError
    from pcaploop.read import open_capture

    path = write_pcap(tmp_path / "gone.pcap", 1, [Rec(T0, eth(udp4()))])
    if gz:
        raw = path.read_bytes()
        path = tmp_path / "gone.pcap.gz"
        path.write_bytes(gzip.compress(raw))
    cap = open_capture(path)
    path.unlink()
    with pytest.raises(CaptureError, match=r"gone\.pcap.*: no such file"):
        list(cap.batches())
