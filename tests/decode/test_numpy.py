"""numpy decode path vs the kernel: identical I and U matrices, row for row.

The reference is ``decode._decode_all`` (the typed kernel seen in the I
layout): compiled by numba when it is available; the file-level checks are
skipped without it (the plain-Python kernel would take minutes over the
samples), the property checks then run against the plain-Python kernel.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import fixtures as fx
from conftest import KEY
from pcaploop.decode import kernel as D
from pcaploop.decode import linktypes as lt
from pcaploop._jit import JIT
from pcaploop.decode import _numpy as npdecode
from pcaploop.decode._numpy import _grab, decode_np
from pcaploop.read import open_capture

SAMPLES = sorted(p for p in (Path(__file__).resolve().parents[2] / "samples").glob("**/*.pcap*")
                 if p.is_file())
needs_numba = pytest.mark.skipif(not JIT, reason="no compiled kernel (numba missing or disabled)")


def _matrices(decoder, buf, off, cap, wire, codes, start: int):
    """I and U after ``decoder`` fills columns ``start ..`` (other columns hold a sentinel)."""
    n = len(off)
    I = np.full((D.NI, start + n + 2), 7777, dtype=np.int64)
    U = np.full((D.NU, start + n + 2), 7777, dtype=np.uint64)
    D._prefill(I, U, start, start + n)
    with np.errstate(over="ignore"):  # the plain-Python kernel's scalar arithmetic wraps
        decoder(buf, off, cap, wire, codes, KEY[0], KEY[1], I, U, start)
    return I, U


def assert_same(buf, off, cap, wire, codes, start: int = 3) -> None:
    """Kernel and numpy path give the same matrices; the first differing row if not."""
    args = (buf, np.asarray(off, np.int64), np.asarray(cap, np.int64),
            np.asarray(wire, np.int64), np.asarray(codes, np.int64))
    Ik, Uk = _matrices(D._decode_all, *args, start)
    In, Un = _matrices(decode_np, *args, start)
    bad = np.flatnonzero((Ik != In).any(axis=0) | (Uk != Un).any(axis=0))
    if len(bad):
        j = bad[0]
        pytest.fail(f"{len(bad)} rows differ, first column {j}: "
                    f"I fields {np.flatnonzero(Ik[:, j] != In[:, j]).tolist()}, "
                    f"U fields {np.flatnonzero(Uk[:, j] != Un[:, j]).tolist()}")


def assert_same_file(path: Path) -> None:
    cap = open_capture(path)
    for b in cap.batches():  # pcapng may declare interfaces between batches
        codes = np.array([lt.l2_code(i.linktype) for i in cap.interfaces] or [0], np.int64)
        rec_codes = np.where(b.iface >= 0, codes[np.maximum(b.iface, 0)], -1)
        assert_same(b.buf, b.off, b.caplen, b.wirelen, rec_codes)


@needs_numba
@pytest.mark.parametrize("name", sorted(fx.VALID) + sorted(fx.DAMAGED))
def test_fixture_identical(captures, name):
    assert_same_file(captures[name])


@needs_numba
@pytest.mark.skipif(not SAMPLES, reason="no samples/**/*.pcap* files")
@pytest.mark.parametrize("path", SAMPLES, ids=[str(p.relative_to(p.parents[1])) for p in SAMPLES])
def test_sample_identical(path):
    assert_same_file(path)


# --- mutated frames --------------------------------------------------------------
def _odd_packets() -> list[bytes]:
    """IP packets beyond fixtures.ip_packets: options, AH, other protocols, odd quotes."""
    v4 = bytearray(fx.udp4())
    opts = bytes([0x46]) + bytes(v4[1:2]) + struct.pack(">H", len(v4) + 4) + bytes(v4[4:20])
    out = [opts + b"\x01\x01\x01\x00" + bytes(v4[20:])]  # IHL 6
    for proto in (132, 136, 47):
        out.append(bytes(v4[:9]) + bytes([proto]) + bytes(v4[10:]))
    seg = fx.udp6()[40:]
    out.append(fx._ip6(51, bytes([17, 1, 0, 0]) + bytes(8) + b"icv!" + seg))  # AH
    out.append(fx._ip6(0, bytes([44, 0]) + bytes(6) + struct.pack(">BBHI", 17, 0, 1, 9) + seg))
    out.append(fx._ip6(44, struct.pack(">BBHI", 60, 0, 8, 9) + bytes([17, 0]) + bytes(6) + seg))
    out += [fx.icmp6_error(fx.ext6()), fx.icmp6_error(fx.frag6()[1]),
            fx.icmp6_error(fx.frag6()[0], 1), fx.icmp4_error(fx.frag4()[1], 3, keep=40),
            fx.icmp4_error(out[0], 11, keep=60)]
    return out


def _qinq(pkt: bytes, tags: int) -> bytes:
    """Ethernet with ``tags`` stacked 802.1Q tags (more than the decoder reads)."""
    body = b"".join(struct.pack(">HH", 100 + i, 0x8100 if i + 1 < tags else fx.ethertype(pkt))
                    for i in range(tags))
    return fx.MAC_B + fx.MAC_A + b"\x81\x00" + body + pkt


def _frames() -> list[tuple[int, bytes]]:
    """(link type, frame) for every link type the decoder knows, plus one it does not."""
    pkts = fx.ip_packets() + _odd_packets()
    arp = fx.arp_reply()
    out = [(1, fx.eth(p)) for p in pkts] + [(101, p) for p in pkts] + [(12, pkts[0])]
    out += [(228 if p[0] >> 4 == 4 else 229, p) for p in pkts]
    out += [(276, fx.sll2(p, 3, 4)) for p in pkts] + [(113, fx.sll(p, 0)) for p in pkts]
    out += [(0, fx.null(p, 2 if p[0] >> 4 == 4 else 30, big)) for p in pkts[::3]
            for big in (False, True)]
    out += [(108, fx.loop(p, 2 if p[0] >> 4 == 4 else 24)) for p in pkts[::3]]
    out += [(108, fx.null(pkts[0], 2)), (0, fx.null(pkts[10], 10))]
    out += [(1, fx.eth(arp, 0x0806)), (113, fx.sll(arp, 4, 0x0806)),
            (276, fx.sll2(arp, 2, 1, 0x0806)), (1, fx.eth(pkts[0], vlans=(1, 2))),
            (1, fx.eth(pkts[10], vlans=(7,))), (113, fx.sll(_qinq(pkts[2], 1)[12:], 0, 0x8100)),
            (147, pkts[0])]
    out += [(1, _qinq(pkts[i], tags)) for i, tags in ((0, 3), (10, 4), (2, 5))]
    return out


FRAMES = _frames()


@st.composite
def mutated(draw):
    """A frame with a few bytes changed, cut at a random length, with an odd wire length."""
    linktype, frame = draw(st.sampled_from(FRAMES))
    buf = bytearray(frame)
    for _ in range(draw(st.integers(0, 4))):
        i = draw(st.integers(0, len(buf) - 1))
        buf[i] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(buf)))
    wire = draw(st.sampled_from([len(buf), cut, cut + 1, 0, 70000, 300000]))
    code = -1 if draw(st.integers(0, 30)) == 0 else lt.l2_code(linktype)
    return bytes(buf[:cut]), wire, code


#: byte values that turn one header field into another case (versions, IHLs, lengths,
#: protocols, EtherTypes, ICMP types, extension headers)
_VALUES = (0, 1, 2, 3, 4, 5, 6, 8, 11, 12, 0x10, 17, 20, 22, 24, 28, 30, 40, 43, 44, 51, 58, 60,
           0x45, 0x46, 0x4F, 0x60, 0x81, 0x86, 0x88, 0x91, 0xA8, 0xDD, 0xFF)


@needs_numba
@pytest.mark.parametrize("which", range(len(FRAMES)))
def test_every_byte_and_cut_identical(which):
    """Each frame with each byte set to each of :data:`_VALUES`, and cut at every length."""
    linktype, frame = FRAMES[which]
    variants = [frame[:i] + bytes([v]) + frame[i + 1:] for i in range(len(frame)) for v in _VALUES]
    cuts = [frame[:c] for c in range(len(frame) + 1)]
    recs = [(f, len(frame)) for f in variants + cuts] + [(f, len(f)) for f in cuts]
    lens = np.array([len(f) for f, _ in recs])
    buf = np.frombuffer(b"".join(f for f, _ in recs), dtype=np.uint8)
    assert_same(buf, np.cumsum(lens) - lens, lens, [w for _, w in recs],
                np.full(len(recs), lt.l2_code(linktype)))


@settings(max_examples=300, deadline=None)
@given(st.lists(mutated(), min_size=1, max_size=8), st.data())
def test_mutated_batches_identical(recs, data):
    """Records of all link codes, back to back with filler bytes between: same matrices."""
    parts, off = [], []
    pos = 0
    for frame, _, _ in recs:
        gap = data.draw(st.integers(0, 3))
        parts.append(b"\xa5" * gap + frame)
        off.append(pos + gap)
        pos += gap + len(frame)
    buf = np.frombuffer(b"".join(parts) + b"\x5a" * data.draw(st.integers(0, 64)),
                        dtype=np.uint8)
    cap = [len(f) for f, _, _ in recs]
    assert_same(buf, off, cap, [w for _, w, _ in recs], [c for _, _, c in recs],
                start=data.draw(st.integers(0, 5)))


class _Guard:
    """A buffer that fails the test on a read outside ``[lo, hi)``.

    Element reads go through ``__getitem__``; row reads (``_npdecode._grab``,
    a strided view of the array) through :meth:`grab`, patched in.
    """

    def __init__(self, arr: np.ndarray, lo: int, hi: int):
        self.arr, self.lo, self.hi = arr, lo, hi

    def check(self, first: np.ndarray, last: np.ndarray) -> None:
        assert not len(first) or (first.min() >= self.lo and last.max() < self.hi), \
            f"read at {first.min()}..{last.max()} outside the record {self.lo}..{self.hi}"

    def __getitem__(self, idx):
        idx = np.asarray(idx)
        self.check(idx.ravel(), idx.ravel())
        return self.arr[idx]

    def grab(self, b, pos: np.ndarray, n: int) -> np.ndarray:
        self.check(pos, pos + n - 1)
        return _grab(self.arr, pos, n)


@settings(max_examples=300, deadline=None)
@given(mutated(), st.integers(0, 40), st.integers(0, 40))
def test_reads_stay_in_the_record(rec, before, after):
    """Every byte the numpy path reads lies inside the record's captured bytes."""
    frame, wire, code = rec
    arr = np.frombuffer(b"\xee" * before + frame + b"\xee" * after, dtype=np.uint8)
    one = np.ones(1, dtype=np.int64)
    args = (one * before, one * len(frame), one * wire, one * code)
    guard = _Guard(arr, before, before + len(frame))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(npdecode, "_grab", guard.grab)
        In, Un = _matrices(decode_np, guard, *args, 0)
    Ik, Uk = _matrices(D._decode_all, arr, *args, 0)
    np.testing.assert_array_equal(In, Ik)
    np.testing.assert_array_equal(Un, Uk)


def test_empty_batch_and_no_jit_wiring(monkeypatch):
    """``_run_kernel`` takes the numpy path when numba is off; an empty batch is fine."""
    empty = np.zeros(0, dtype=np.int64)
    I, U = _matrices(decode_np, np.zeros(4, np.uint8), empty, empty, empty, empty, 0)
    assert I.shape == (D.NI, 2)
    buf = np.frombuffer(b"".join(f for _, f in FRAMES), dtype=np.uint8)
    lens = np.array([len(f) for _, f in FRAMES])
    off, codes = np.cumsum(lens) - lens, np.array([lt.l2_code(t) for t, _ in FRAMES])
    want = D.decode_arrays(buf, off, lens, lens, codes, KEY)
    monkeypatch.setattr(D, "JIT", False)
    monkeypatch.setattr(D, "_decode_rows", None)  # must not be reached
    got = D.decode_arrays(buf, off, lens, lens, codes, KEY)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.parametrize("field", [0x1000, 0x1FFF, 0x3FFF])  # offsets 32768, 65528 (+MF)
def test_fragment_offsets_past_int16(field):
    """Fragment offsets up to 65528 bytes fit their row, in every decoder.

    The plain-Python kernel (no numba) writes them with numpy's overflow
    checks: a signed 16-bit row refused 32768 (found by hypothesis in CI).
    """
    ip = bytearray(fx.ip_packets()[0])
    assert ip[0] >> 4 == 4
    ip[6:8] = field.to_bytes(2, "big")
    frame = bytes(ip)
    buf = np.frombuffer(frame, dtype=np.uint8)
    assert_same(buf, [0], [len(frame)], [len(frame)], [lt.l2_code(101)])
    I, _ = D.decode_arrays(buf, np.zeros(1, np.int64), np.array([len(frame)]),
                           np.array([len(frame)]), np.array([lt.l2_code(101)]), KEY)
    assert I[D.I_FRAG, 0] == (field & 0x1FFF) * 8
