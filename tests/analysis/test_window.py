"""Streaming analyze (pcaploop.window): results do not depend on the window.

The lab captures last about a second, inside one window.  Here they are
stretched: each capture is repeated several times, 30 s apart (longer than
the merge gap, so each repetition is its own incident), read in blocks of a
few dozen rows and correlated in windows of a few dozen rows.  Streaming
must then give exactly what one pass over the whole loaded table gives, and
every repetition must match the golden numbers.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pcaploop
from pcaploop.analysis.correlate import Options
from pcaploop.analysis.window import Columns, Rates, Window
from pcaploop.ingest import loader as L

SAMPLES = Path(__file__).resolve().parents[2] / "samples"

REPEATS = 3
OFFSET_S = 30
FIELDS = ("summary", "loops", "bounces", "implicated", "warnings", "captures")


_L2_LEN = {1: 14, 113: 16, 276: 20, 101: 0, 12: 0, 14: 0, 228: 0, 229: 0}


def _renumber(frame: bytes, linktype: int, rep: int) -> bytes:
    """The frame as another packet: IPv4 ID (also the one an ICMP error quotes) or
    IPv6 flow label changed by ``rep``, so its fingerprint is new."""
    b = bytearray(frame)
    q = _L2_LEN.get(linktype, -1)
    if linktype == 1:
        while q + 4 <= len(b) and b[q - 2 : q] in (b"\x81\x00", b"\x88\xa8"):
            q += 4
    if q < 0 or q + 20 > len(b) or rep == 0:
        return bytes(b)
    flip = (0x55 * rep) & 0xFF  # in the high byte: IDs counting up never meet another rep's
    if b[q] >> 4 == 4:
        b[q + 4] ^= flip
        ihl = (b[q] & 15) * 4
        inner = q + ihl + 8
        if b[q + 9] == 1 and b[q + ihl] in (3, 11) and inner + 20 <= len(b) and b[inner] >> 4 == 4:
            b[inner + 4] ^= flip
    elif b[q] >> 4 == 6:
        b[q + 2] ^= flip
    return bytes(b)


def stretch(
    src: Path, dst: Path, repeats: int = REPEATS, offset_s: int = OFFSET_S, backwards: bool = False
) -> None:
    """Write ``src`` (classic pcap) ``repeats`` times, each ``offset_s`` later and
    with new IP IDs / flow labels (``backwards``: the latest repetition first)."""
    data = src.read_bytes()
    magic = data[:4]
    end = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    linktype = struct.unpack_from(end + "I", data, 20)[0] & 0xFFFF
    recs = []
    pos = 24
    while pos + 16 <= len(data):
        sec, _frac, cap, _wire = struct.unpack_from(end + "IIII", data, pos)
        recs.append((sec, data[pos + 4 : pos + 16], data[pos + 16 : pos + 16 + cap]))
        pos += 16 + cap
    out = [data[:24]]
    for r in reversed(range(repeats)) if backwards else range(repeats):
        out += [
            struct.pack(end + "I", sec + r * offset_s) + head + _renumber(frame, linktype, r)
            for sec, head, frame in recs
        ]
    dst.write_bytes(b"".join(out))


def _goldens() -> list[Path]:
    out = []
    for p in sorted(SAMPLES.glob("*/*.expected.json")):
        exp = json.loads(p.read_text())
        if all(i.partition("=")[2 if "=" in i else 0].endswith(".pcap") for i in exp["inputs"]):
            out.append(p)
    return out


def _stretched(golden: Path, tmp: Path) -> tuple[list[str], list[str] | None, dict]:
    exp = json.loads(golden.read_text())
    specs = []
    for item in exp["inputs"]:
        name, sep, rel = item.partition("=")
        rel = rel if sep else item
        out = tmp / Path(rel).name
        stretch(golden.parent / rel, out)
        specs.append(f"{name}={out}" if sep else str(out))
    ifmap = [str(golden.parent / exp["ifmap"])] if exp.get("ifmap") else None
    return specs, ifmap, exp


def _doc(a) -> dict:
    return json.loads(json.dumps({k: a.to_json()[k] for k in FIELDS}, allow_nan=False))


GOLDENS = _goldens()


@pytest.mark.parametrize(
    "golden", GOLDENS, ids=[f"{p.parent.name}/{p.name.split('.')[0]}" for p in GOLDENS]
)
def test_stream_equals_one_pass(golden, tmp_path, monkeypatch):
    specs, ifmap, exp = _stretched(golden, tmp_path)
    whole = pcaploop.analyze(pcaploop.load(specs, ifmap))
    monkeypatch.setattr(L, "BLOCK_ROWS", 37)  # many blocks per file: files read in step
    flushes = []
    orig = Window._correlate

    def spy(self, c, repeated, final, single):
        flushes.append(len(final))
        return orig(self, c, repeated, final, single)

    monkeypatch.setattr(Window, "_correlate", spy)
    streamed = pcaploop.analyze(specs, ifmap, chunk_rows=50)
    assert len(flushes) >= REPEATS - 1  # the stream really was cut into windows
    assert _doc(streamed) == _doc(whole)
    if any(lp.get("kind") == "inferred" for lp in exp["loops"]):
        return  # the repetitions' ICMP errors quote the original IP IDs: nothing to tie
    # each repetition is the golden incident again
    per_dst: dict[str, list] = {}
    for lp in streamed.loops:
        per_dst.setdefault(lp.destination, []).append(lp)
    assert sorted(per_dst) == sorted(lp["destination"] for lp in exp["loops"])
    for e in exp["loops"]:
        got = per_dst[e["destination"]]
        assert len(got) == REPEATS
        assert [g.looping_packets for g in got] == [e["looping_packets"]] * REPEATS
        assert [g.observations for g in got] == [e["observations"]] * REPEATS
    exp_b = {(b["destination"], b["capture_point"]): b["packets"] * REPEATS for b in exp["bounces"]}
    assert {(b.destination, b.capture_point): b.packets for b in streamed.bounces} == exp_b


def test_evidence_is_what_is_kept(tmp_path):
    """Default keep: copies of looping packets and ICMP errors, not the healthy traffic."""
    golden = SAMPLES / "incident" / "per-interface.expected.json"
    specs, ifmap, _ = _stretched(golden, tmp_path)
    a = pcaploop.analyze(specs, ifmap, chunk_rows=50)
    full = pcaploop.load(specs, ifmap)
    assert 0 < len(a.packets) < len(full)
    looping = a.correlation.p_loop[a.correlation.path] | a.correlation.p_bounce[a.correlation.path]
    assert looping.all()  # every kept path loops or bounces
    everything = pcaploop.analyze(specs, ifmap, chunk_rows=50, keep="all")
    assert len(everything.packets) == len(full)
    assert everything.summary == a.summary
    paths = pcaploop.analyze(specs, ifmap, chunk_rows=50, keep="paths")
    assert paths.correlation.n_paths > a.correlation.n_paths
    assert paths.summary == a.summary


def test_keep_rejects_unknown_mode():
    with pytest.raises(ValueError, match="keep"):
        pcaploop.analyze(["x.pcap"], keep="some")


def test_window_memory_is_bounded():
    """A long stream of distinct packets: the buffer holds about one chunk plus the hold."""
    opt = Options()
    pts = [type("P", (), {"name": "tap1"})()]
    w = Window(opt, lambda: pts, lambda: np.zeros(1, np.int64), chunk_rows=1000)
    rate = 2000  # packets/s; hold = 3 s → ~6000 rows open at any time
    total = 0
    for _ in range(100):
        n = 1000
        t = (total + np.arange(n)) * (1_000_000_000 // rate)
        cols = {k: np.zeros(n, dtype=dt) for k, dt in pcaploop.schema.RAW.items()}
        cols["time_ns"][:] = t
        cols["fingerprint"][:] = np.arange(total, total + n, dtype=np.uint64) * 2654435761
        cols["record"][:] = np.arange(total, total + n)
        total += n
        w.add(cols)
        w.maybe_flush(float(t[-1]))
    assert w.peak_rows < 2 * (rate * 3 + 1000) + 1000
    kept, corr = w.finish()
    assert len(kept["time_ns"]) == 0 and corr.n_paths == 0
    assert int(w.final_counts.sum()) == total


def test_rates_coarsen_and_count_everything():
    r = Rates(max_bins=100)
    t = np.arange(0, 10_000) * 1_000_000  # one per ms for 10 s
    r.add(t, np.zeros(len(t), np.int16))
    r.add(t, np.ones(len(t), np.int16))
    start, _point, n = r.table()
    assert r.res_ns == 1_000_000_000  # 10 s × 2 points at 1 ms, 10 ms, 100 ms were too many
    assert n.sum() == 20_000 and len(start) == 20
    r.remap(np.array([1, 0]))
    assert r.table()[2].sum() == 20_000


def test_columns_append_gather_keep():
    c = Columns(capacity=4)
    block = {k: np.arange(10).astype(dt) for k, dt in pcaploop.schema.RAW.items()}
    c.append(block)
    c.append(block, np.array([1, 3]))
    assert c.n == 12 and list(c.view()["record"][-2:]) == [1, 3]
    c.keep_only(np.array([0, 11]))
    assert list(c.view()["record"]) == [0, 3]


def test_late_packets_are_reported(tmp_path, monkeypatch):
    """A capture whose records go back in time by more than the window: warned
    about, every packet still counted, each repetition still correlated."""
    tap = SAMPLES / "incident" / "tap101.pcap"
    out = tmp_path / tap.name
    stretch(tap, out, backwards=True)
    monkeypatch.setattr(L, "BLOCK_ROWS", 37)
    a = pcaploop.analyze([str(out)], chunk_rows=50)
    assert any("stamped more than" in w for w in a.warnings)
    total = sum(p.decoded for p in a.packets.points)
    assert a.summary.observations + a.summary.duplicates == total
    ref = pcaploop.analyze(pcaploop.load([str(out)]))
    assert not any("stamped more than" in w for w in ref.warnings)
    # a late packet may miss copies already correlated: close, not exact
    assert {lp.destination for lp in a.loops} == {lp.destination for lp in ref.loops}
    got, want = a.summary.looping_packets, ref.summary.looping_packets
    assert abs(got - want) <= 0.05 * want


def test_points_numbered_and_named_as_load_does(tmp_path, monkeypatch):
    """Read in step, an interface that first appears late in one file is registered
    after another file's; analyze still numbers and names points file by file."""
    from fixtures import T0, eth, records, sll2, udp4, write_pcap

    late_if = [sll2(udp4(ident=k, ttl=64), ifindex=5 if k < 60 else 7) for k in range(80)]
    write_pcap(tmp_path / "any.pcap", 276, records(late_if, T0, 10_000_000))
    up = [eth(udp4(ident=k, ttl=65)) for k in range(80)]
    (tmp_path / "b").mkdir()
    write_pcap(tmp_path / "b" / "any.pcap", 1, records(up, T0, 10_000_000))  # stem "any" too
    specs = [str(tmp_path / "any.pcap"), f"any:if7={tmp_path / 'b' / 'any.pcap'}"]
    monkeypatch.setattr(L, "BLOCK_ROWS", 8)
    streamed = pcaploop.analyze(specs, chunk_rows=10)
    whole = pcaploop.analyze(pcaploop.load(specs))
    assert (
        [p.name for p in streamed.packets.points]
        == [p.name for p in whole.packets.points]
        == ["any:if5", "any:if7", "any:if7@any"]
    )
    assert _doc(streamed) == _doc(whole)


def _long_capture(path: Path, n: int) -> None:
    """``n`` distinct UDP packets at 1,000 per second, with a loop (TTL 64 → 1 on one
    link, copies 10 µs apart) every 10,000 packets."""
    from fixtures import T0, Rec, eth, udp4, write_pcap

    base = eth(udp4(ident=0))
    recs = []
    for k in range(n):
        t = T0 + k * 1_000_000
        frame = bytearray(base)
        frame[14 + 4 : 14 + 6] = (k & 0xFFFF).to_bytes(2, "big")  # IP ID: a new packet
        frame[14 + 12 : 14 + 14] = (k >> 16).to_bytes(2, "big")  # and a new source
        if k % 10_000 == 5_000:
            for hop in range(63):
                frame[14 + 8] = 64 - hop
                recs.append(Rec(t + hop * 10_000, bytes(frame)))
        else:
            recs.append(Rec(t, bytes(frame)))
    write_pcap(path, 1, recs)


def test_stream_memory_does_not_grow_with_the_capture(tmp_path, monkeypatch):
    """Four times the packets, the same peak memory (tracemalloc sees numpy's arrays)."""
    import tracemalloc

    monkeypatch.setattr(L, "BLOCK_ROWS", 2048)
    peaks = {}
    for n in (20_000, 80_000):
        path = tmp_path / f"long{n}.pcap"
        _long_capture(path, n)
        tracemalloc.start()
        a = pcaploop.analyze([str(path)], chunk_rows=4096)
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert a.summary.observations == n + (n // 10_000) * 62
        assert a.summary.looping_packets == n // 10_000
        assert len(a.packets) == (n // 10_000) * 63  # only the loops' copies were kept
    assert peaks[80_000] < 1.25 * peaks[20_000], peaks


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            # few distinct values, some equal in their low bits: the table's probing runs
            st.sampled_from([0, 1, 7, 1 << 40, (1 << 40) | 1, 2**64 - 1, 12345 << 29]),
            st.integers(-(10**12), 10**12),
        ),
        max_size=80,
    )
)
def test_fingerprint_groups_are_the_sorted_grouping(rows: list[tuple[int, int]]) -> None:
    """The window's one-pass hash grouping gives each row the group of its fingerprint,
    and per group the first and last time and the row count, as sorting would."""
    from pcaploop.analysis.window import _fingerprint_groups

    fp = np.array([r[0] for r in rows], np.uint64)
    t = np.array([r[1] for r in rows], np.int64)
    gid, first, last, size = _fingerprint_groups(fp, t)
    assert len(gid) == len(rows)
    uniq = np.unique(fp)
    assert len(first) == len(uniq)
    for u in uniq:
        mine = fp == u
        (g,) = set(gid[mine].tolist())  # one group per fingerprint
        assert first[g] == t[mine].min() and last[g] == t[mine].max()
        assert size[g] == mine.sum()
