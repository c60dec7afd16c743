"""Record walkers: the compiled kernels against the same functions run as Python.

numba's integers wrap silently where Python's grow (a fragment offset once
fitted only one of them), so every walker call over a whole file's bytes is
made twice, compiled and as its plain ``py_func``: the same ``(n, pos,
status)`` and the same complete output arrays (writes past ``n`` would
show).  Edge lengths, damaged bytes (hypothesis) and every committed
sample.  Without numba both sides are the same Python function.
"""

from __future__ import annotations

import gzip
import struct
import tempfile
import zlib
from pathlib import Path

import fixtures as fx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pcaploop._jit import JIT
from pcaploop.read import walk as _walk

SAMPLES = sorted(
    p
    for p in (Path(__file__).resolve().parents[2] / "samples").glob("**/*")
    if p.is_file() and p.suffix in (".pcap", ".pcapng", ".gz")
)
needs_numba = pytest.mark.skipif(not JIT, reason="no compiled kernel (numba missing or disabled)")
SENTINEL = -0x5A5A5A5A5A5A5A5A
PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": (False, False),
    b"\xa1\xb2\xc3\xd4": (True, False),
    b"\x4d\x3c\xb2\xa1": (False, True),
    b"\xa1\xb2\x3c\x4d": (True, True),
}


# --- walker level ------------------------------------------------------------------------
def _py(kernel):
    """The plain-Python function behind a compiled kernel (itself without numba)."""
    return getattr(kernel, "py_func", kernel)


def _outs(k: int, maxn: int) -> list[np.ndarray]:
    return [np.full(maxn, SENTINEL, dtype=np.int64) for _ in range(k)]


def same_call(jit, py, buf, pos, end, args, nout: int, maxn: int):
    """Run both walkers on the same input; assert identical results and outputs."""
    oj, op = _outs(nout, maxn), _outs(nout, maxn)
    rj = jit(buf, pos, end, *args, *oj)
    rp = py(buf, pos, end, *args, *op)
    assert tuple(int(x) for x in rj) == rp
    for a, b in zip(oj, op):
        np.testing.assert_array_equal(a, b)
    return rp


def drive_pcap(data: bytes, big: bool, nsres: bool, snaplen: int, maxn: int) -> int:
    """Walk a pcap file's records with both walkers, call by call; returns the records."""
    buf = np.frombuffer(data, dtype=np.uint8).copy()
    pos, total = min(24, len(data)), 0
    while True:
        n, pos, status = same_call(
            _walk.walk_pcap,
            _py(_walk.walk_pcap),
            buf,
            pos,
            len(buf),
            (big, nsres, snaplen),
            4,
            maxn,
        )
        total += n
        if status != _walk.NEED_MORE or n < maxn:
            return total


def drive_pcapng(data: bytes, big: bool, maxn: int) -> int:
    """Walk a pcapng file with both walkers, stepping over other blocks as read.py does."""
    buf = np.frombuffer(data, dtype=np.uint8).copy()
    pos, total = 0, 0
    while True:
        n, pos, status = same_call(
            _walk.walk_pcapng, _py(_walk.walk_pcapng), buf, pos, len(buf), (big,), 6, maxn
        )
        total += n
        if status == _walk.NEED_MORE and n == maxn:
            continue  # out of output slots: carry on from where it stopped
        if status != _walk.OTHER_BLOCK:
            return total
        order = "big" if big else "little"
        btype = int.from_bytes(data[pos : pos + 4], order)
        if btype == 0x0A0D0D0A and len(data) - pos >= 12:
            big = data[pos + 8 : pos + 12] == b"\x1a\x2b\x3c\x4d"
            order = "big" if big else "little"
        blen = int.from_bytes(data[pos + 4 : pos + 8], order)
        if blen < 12 or blen % 4 or pos + blen > len(data):
            return total
        pos += blen


def drive(data: bytes, maxn: int = 1 << 16) -> int:
    """Both walkers over a capture's bytes, in the byte order and resolution it declares."""
    if data[:4] in PCAP_MAGICS:
        big, nsres = PCAP_MAGICS[data[:4]]
        snap = int.from_bytes(data[16:20], "big" if big else "little")
        return drive_pcap(
            data, big, nsres, snap if 0 < snap <= _walk.MAX_CAPLEN else _walk.MAX_CAPLEN, maxn
        )
    return drive_pcapng(data, False, maxn)


def raw_bytes(path: Path) -> bytes:
    """A capture's bytes, decompressed as far as the gzip stream is intact."""
    data = path.read_bytes()
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return gzip.decompress(data)
    except (EOFError, OSError, zlib.error):
        return zlib.decompressobj(31).decompress(data)


# --- the checks -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(fx.VALID) + sorted(fx.DAMAGED))
@pytest.mark.parametrize("maxn", [1 << 16, 2])
def test_fixture_walkers_identical(captures, name, maxn):
    assert drive(raw_bytes(captures[name]), maxn) > 0


@needs_numba
@pytest.mark.skipif(not SAMPLES, reason="no committed samples")
@pytest.mark.parametrize("path", SAMPLES, ids=[str(p.relative_to(p.parents[1])) for p in SAMPLES])
def test_sample_identical(path):
    assert drive(raw_bytes(path)) > 0


@pytest.mark.parametrize("big", [False, True])
def test_epb_direction_identical(big):
    """Option lists: flags first or after a comment, bad lengths, direction 3, end code."""
    e = ">" if big else "<"
    opts = [fx._opt(e, 2, struct.pack(e + "I", f)) for f in (0, 1, 2, 3, 0xFFFFFFFE)]
    opts += [
        fx._opt(e, 1, b"comment") + fx._opt(e, 2, struct.pack(e + "I", 2)),
        struct.pack(e + "HH", 0, 0) + fx._opt(e, 2, struct.pack(e + "I", 1)),
        struct.pack(e + "HH", 2, 400) + b"\0" * 8,
        fx._opt(e, 2, b"\1\0"),
        b"\2\0",
        b"",
    ]
    for raw in opts:
        buf = np.frombuffer(raw + b"\0" * 8, dtype=np.uint8).copy()
        for stop in range(len(raw) + 1):
            assert int(_walk._epb_direction(buf, 0, stop, big)) == _py(_walk._epb_direction)(
                buf, 0, stop, big
            )


def test_pcapng_timestamp_high_bit():
    """A timestamp whose high word has bit 31 set wraps to a negative int64 in both."""
    e = "<"
    data = fx.shb(e) + fx.idb(e, fx.Iface(1)) + fx.epb(e, 0, 0xFFFFFFFF_00000001, b"x" * 20)
    assert drive_pcapng(data, False, 8) == 1


def _pcap_record(e: str, incl: int, present: int) -> bytes:
    return struct.pack(e + "IIII", 1_700_000_000, 999_999, incl, incl + 5) + b"\xab" * present


@pytest.mark.parametrize("e", "<>")
@pytest.mark.parametrize(
    "incl,present", [(262144, 262144), (262144, 100), (262145, 262145), (0, 0), (20, 19), (20, 20)]
)
def test_pcap_caplen_edges(e, incl, present):
    """Captured lengths at and past the maximum, empty records, records one byte short."""
    head = _pcap_record(e, 10, 10)
    for tail in (head, b""):
        data = b"\0" * 24 + head + _pcap_record(e, incl, present) + tail
        for snap in (5, 65535, 262144):
            drive_pcap(data, e == ">", False, snap, 4)


def _raw_block(e: str, btype: int, blen: int, body: bytes, trailer: int | None = None) -> bytes:
    """A block with exactly the given length fields (``blen`` need not match the body)."""
    return (
        struct.pack(e + "II", btype, blen)
        + body
        + struct.pack(e + "I", blen if trailer is None else trailer)
    )


def _edge_blocks(e: str) -> list[bytes]:
    """Packet blocks at every length boundary the walker checks."""

    def epb_body(cap: int, room: int) -> bytes:
        return struct.pack(e + "IIIII", 0, 1, 2, cap, cap + 3) + b"\xcd" * room

    out = [
        _raw_block(e, 3, 12, b""),
        _raw_block(e, 3, 16, struct.pack(e + "I", 9)),
        _raw_block(e, 3, 20, struct.pack(e + "I", 2) + b"abcd"),
        _raw_block(e, 6, 28, epb_body(0, 0)[:16]),
        _raw_block(e, 6, 16, b"\0" * 4),
        _raw_block(e, 6, 30, b"\0" * 18),
        _raw_block(e, 6, 36, epb_body(4, 4), trailer=32),
    ]
    for btype in (6, 2):
        for cap, room in ((8, 8), (9, 8), (12, 8), (5, 8), (0, 0)):
            out.append(_raw_block(e, btype, 32 + room, epb_body(cap, room)))
    big_room = _walk.MAX_CAPLEN + 4
    for cap in (_walk.MAX_CAPLEN, _walk.MAX_CAPLEN + 1):
        out.append(_raw_block(e, 6, 32 + big_room, epb_body(cap, big_room)))
    limit = _walk.MAX_CAPLEN + 65536
    for blen in (limit, limit + 4):
        out.append(_raw_block(e, 6, blen, epb_body(4, blen - 32)))
    return out


@pytest.mark.parametrize("e", "<>")
@pytest.mark.parametrize("k", range(len(_edge_blocks("<"))))
@pytest.mark.parametrize("cut", [False, True])
def test_pcapng_length_edges(e, k, cut):
    """Each boundary block after a good one, intact or as the buffer's last bytes."""
    good = fx.epb(e, 0, 5, b"packet bytes")
    edge = _edge_blocks(e)[k]
    data = fx.shb(e) + fx.idb(e, fx.Iface(1)) + good + edge + (b"" if cut else good)
    for end in (len(data) - 4, len(data)) if cut else (len(data),):
        drive_pcapng(data[:end], e == ">", 4)


# --- random damage ----------------------------------------------------------------------------
_DIR = Path(tempfile.mkdtemp(prefix="pcaploop-walk-"))


def _seed(make) -> bytes:
    return make(Path(tempfile.mkdtemp(dir=_DIR))).read_bytes()


SEEDS = {
    "pcap_le": _seed(fx.make_pcap_us_le),
    "pcap_ns_be": _seed(fx.make_pcap_ns_be),
    "snaplen96": _seed(fx.make_snaplen96),
    "pcapng_multi": _seed(fx.make_pcapng_multi),
    "pcapng_single": _seed(fx.make_pcapng_single),
}
EXTREMES = [
    0xFFFFFFFF,
    0x80000000,
    0x7FFFFFFF,
    262145,
    262144,
    65536,
    200,
    96,
    33,
    32,
    28,
    16,
    12,
    6,
    4,
    3,
    2,
    1,
    0,
]


def _heads(data: bytes) -> list[int]:
    """Offsets of the record headers / blocks of an intact seed, to aim damage at."""
    heads = []
    if data[:4] in PCAP_MAGICS:
        order = "big" if PCAP_MAGICS[data[:4]][0] else "little"
        pos = 24
        while pos + 16 <= len(data):
            heads.append(pos)
            pos += 16 + int.from_bytes(data[pos + 8 : pos + 12], order)
        return heads
    pos, order = 0, "little"
    while pos + 12 <= len(data):
        if data[pos : pos + 4] == b"\x0a\x0d\x0d\x0a":
            order = "big" if data[pos + 8 : pos + 12] == b"\x1a\x2b\x3c\x4d" else "little"
        heads.append(pos)
        pos += int.from_bytes(data[pos + 4 : pos + 8], order)
    return heads


HEADS = {k: _heads(v) for k, v in SEEDS.items()}


@st.composite
def mutated(draw) -> bytes:
    """A seed with bytes and 32-bit fields overwritten (mostly in record headers and
    options), slices removed or repeated, and maybe its end cut off."""
    name = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[name])
    for _ in range(draw(st.integers(1, 5))):
        if draw(st.integers(0, 3)):  # mostly a length, type or option field
            i = draw(st.sampled_from(HEADS[name])) + 4 * draw(st.integers(0, 12))
        else:
            i = draw(st.integers(0, len(data) - 1))
        i = min(i, len(data) - 1)
        kind = draw(st.integers(0, 3))
        if kind == 0:
            data[i] = draw(st.integers(0, 255))
        elif kind == 1 and i + 4 <= len(data):
            data[i : i + 4] = struct.pack(
                draw(st.sampled_from("<>")) + "I", draw(st.sampled_from(EXTREMES))
            )
        elif kind == 2:
            del data[i : draw(st.integers(i, min(len(data), i + 40)))]
        else:
            data[i:i] = data[i : draw(st.integers(i, min(len(data), i + 40)))]
        if not data:
            return b""
    return bytes(data[: draw(st.integers(0, len(data)))] if draw(st.booleans()) else data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mutated(),
    st.booleans(),
    st.booleans(),
    st.sampled_from([1, 64, 65535, 262144]),
    st.sampled_from([1, 3, 1 << 12]),
)
def test_mutated_walkers_identical(data, big, nsres, snaplen, maxn):
    """Damaged bytes walked in either byte order: same results, nothing raised."""
    drive_pcap(data, big, nsres, snaplen, maxn)
    drive_pcapng(data, big, maxn)
