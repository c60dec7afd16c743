"""info's one-pass summaries: bincounts per point, the bounded talker table."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
from fixtures import eth, make_pcapng_multi, make_snaplen96, records, udp4, write_pcap
from hypothesis import given, settings
from hypothesis import strategies as st

from pcaploop.ingest._talkers import TalkerCounts
from pcaploop.ingest.info import _Counters, capture_info


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 40)), max_size=400))
def test_talkers_exact_below_capacity(rows: list[tuple[int, int]]) -> None:
    """Fewer distinct sources than the table holds: every count is exact."""
    t = TalkerCounts(slots=256)
    pt = np.array([r[0] for r in rows], np.int16)
    lo = np.array([r[1] for r in rows], np.uint64)
    t.add(pt, np.zeros(len(rows), np.uint64), lo)
    want = Counter(rows)
    assert t.error == 0
    for p in range(3):
        got = {lo_: n for _, lo_, n in t.top(p, 1000)}
        assert got == {lo_: n for (pp, lo_), n in want.items() if pp == p}


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32), st.integers(50, 3000))
def test_talkers_bounded_lower_bounds(seed: int, n_sources: int) -> None:
    """More distinct sources than room: memory stays fixed, each kept count is at most
    ``error`` short of the truth, and a heavy hitter is never lost."""
    rng = np.random.default_rng(seed)
    lo = rng.integers(0, n_sources, 20_000).astype(np.uint64)
    lo[::3] = 7  # one source sends a third of everything
    t = TalkerCounts(slots=64)
    for a in range(0, len(lo), 1000):
        part = lo[a : a + 1000]
        t.add(np.zeros(len(part), np.int16), np.zeros(len(part), np.uint64), part)
    truth = Counter(lo.tolist())
    assert len(t.pt) == 64
    top = t.top(0, 5)
    assert top[0][1] == 7
    for _, src, n in top:
        assert truth[src] - t.error <= n <= truth[src]


def _cut_records(path: Path) -> int:
    """Records whose captured length is below the original (read independently)."""
    import struct

    data = path.read_bytes()
    pos, cut = 24, 0
    while pos + 16 <= len(data):
        _, _, incl, orig = struct.unpack_from("<IIII", data, pos)
        cut += incl < orig
        pos += 16 + incl
    return cut


def test_info_counts_snaplen_and_files(tmp_path: Path) -> None:
    """Counts per point as tshark would give them; snaplen and cut frames; sizes, hashes."""
    f = make_snaplen96(tmp_path)
    doc = capture_info([str(f)], sha256=True)
    (c,) = doc["captures"]
    assert c["snaplen"] == 96
    assert c["truncated"] == _cut_records(f) > 0
    assert doc["files"][0]["size"] == f.stat().st_size
    assert doc["files"][0]["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
    assert capture_info([str(f)])["files"][0]["sha256"] is None


def test_info_multi_point_blocks(tmp_path: Path) -> None:
    """A pcapng with several interfaces: each point's counts are its own."""
    f = make_pcapng_multi(tmp_path)
    doc = capture_info([str(f)])
    for c in doc["captures"]:
        assert sum(c["directions"].values()) == c["decoded"]
        assert sum(c["protocols"].values()) == c["decoded"]
        assert sum(t["packets"] for t in c["top_talkers"]) <= c["decoded"]


def test_info_top_talkers_and_protocols(tmp_path: Path) -> None:
    frames = [eth(udp4(src=f"198.51.100.{1 + k % 3}")) for k in range(30)] + [
        eth(udp4(src="198.51.100.9"))
    ] * 40
    p = write_pcap(tmp_path / "t.pcap", 1, records(frames))
    (c,) = capture_info([str(p)])["captures"]
    assert c["top_talkers"][0] == {"address": "198.51.100.9", "packets": 40}
    assert [t["packets"] for t in c["top_talkers"][1:4]] == [10, 10, 10]
    assert c["protocols"] == {"udp": 70}
    assert c["top_talkers_exact"] is True


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 80), min_size=1, max_size=8))
def test_info_counters_independent_of_blocks(cuts: list[int]) -> None:
    """The summaries do not depend on where blocks are cut, nor on how many points a
    block holds."""
    rng = np.random.default_rng(len(cuts))
    n = 300
    cols = {
        "point": rng.integers(0, 3, n).astype(np.int16),
        "direction": rng.integers(0, 3, n).astype(np.int8),
        "protocol": rng.choice([1, 6, 17, 58], n).astype(np.uint8),
        "wirelen": rng.integers(60, 1500, n).astype(np.uint32),
        "flags": rng.integers(0, 2, n).astype(np.uint8),
        "src_hi": np.zeros(n, np.uint64),
        "src_lo": rng.integers(0, 20, n).astype(np.uint64),
    }
    whole = _Counters()
    whole.add(cols)
    parts = _Counters()
    at = 0
    for c in cuts:
        parts.add({k: v[at : at + c] for k, v in cols.items()})
        at += c
    parts.add({k: v[at:] for k, v in cols.items()})
    for name in ("directions", "protocols", "bytes", "truncated"):
        assert np.array_equal(getattr(whole, name), getattr(parts, name)), name
    for p in range(3):
        assert whole.talkers.top(p, 50) == parts.talkers.top(p, 50)
