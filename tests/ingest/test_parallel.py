"""``info --jobs``: pieces counted in forked processes give the summary of one pass.

The pieces are made tiny here (a few kilobytes) so that small files are cut
into many chunks, cuts land everywhere, and every way a chunk can end is
met: on the next cut, inside a record that runs past it, on damage, at a
cut-off last record.
"""

from __future__ import annotations

import itertools
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fixtures import (
    SLL2_IFINDEXES,
    T0,
    eth,
    ip_packets,
    make_pcapng_multi,
    records,
    sll2,
    udp4,
    write_pcap,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from pcaploop.ingest import _parallel as parallel
from pcaploop.ingest._talkers import TalkerCounts
from pcaploop.ingest.info import capture_info
from pcaploop.ingest.loader import Loader
from pcaploop.ingest.specs import capture_specs
from pcaploop.read import open_capture

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
LINKTYPE_ETHERNET = 1
LINKTYPE_LINUX_SLL2 = 276


@pytest.fixture
def tiny_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "CHUNK_BYTES", 4096)
    monkeypatch.setattr(parallel, "WARM_BYTES", 1024)
    monkeypatch.setattr(parallel, "MIN_BYTES", 0)


def _record_offsets(path: Path) -> set[int]:
    """Byte offset of every record of a little-endian classic pcap, walked here."""
    data = path.read_bytes()
    out, pos = set(), 24
    while pos + 16 <= len(data):
        out.add(pos)
        pos += 16 + struct.unpack_from("<I", data, pos + 8)[0]
    return out


def _pieces(path: Path) -> list[parallel.Piece]:
    specs, imap = capture_specs([str(path)], None)
    ld = Loader(specs, imap)
    got = ld._pieces(ld._open_all(), 2, path.stat().st_size)
    assert got is not None
    return got


def _same(paths: list[Path]) -> dict[str, Any]:
    one = capture_info([str(p) for p in paths], None, jobs=1)
    two = capture_info([str(p) for p in paths], None, jobs=2)
    assert two == one
    return one


def _udp_file(path: Path, n: int, payload: bytes = b"x" * 40) -> Path:
    frames = [eth(udp4(ident=i & 0xFFFF, payload=payload)) for i in range(n)]
    return write_pcap(path, LINKTYPE_ETHERNET, records(frames, step=1_000_000))


def test_samples_same_with_any_jobs(tiny_pieces: None) -> None:
    """Real captures of the lab, each alone and all of one scenario together."""
    for scenario in ("incident", "two-guests", "ipv6-redirect-nd", "bridge-uplink"):
        files = sorted((SAMPLES / scenario).glob("*.pcap*"))
        assert files, scenario
        for f in files:
            _same([f])
        _same(files)


def test_cuts_are_on_records_and_pieces_cover_the_file(tmp_path: Path, tiny_pieces: None) -> None:
    path = _udp_file(tmp_path / "u.pcap", 600)
    pieces = _pieces(path)
    assert len(pieces) > 10
    offsets = _record_offsets(path)
    assert pieces[0].start == 24 and pieces[-1].stop == path.stat().st_size
    for a, b in itertools.pairwise(pieces):
        assert a.stop == b.start and b.start in offsets
    doc = _same([path])
    assert doc["captures"][0]["records"] == 600


def test_a_cut_inside_a_record_is_found_out(tmp_path: Path, tiny_pieces: None) -> None:
    """Payloads that are themselves chains of record headers (a pcap sent over the
    wire): cuts land on them, the chunk before does not end there, and the rest is
    read in order — the summary is still the one pass's."""
    sec = T0 // 10**9
    fake = b"".join(struct.pack("<IIII", sec, k, 8, 8) + bytes(8) for k in range(12))
    path = _udp_file(tmp_path / "nested.pcap", 500, payload=fake)
    pieces = _pieces(path)
    offsets = _record_offsets(path)
    assert any(p.start not in offsets for p in pieces if not p.whole)  # a false cut
    doc = _same([path])
    c = doc["captures"][0]
    assert c["records"] == 500 and c["decoded"] == 500 and not c["truncated_tail"]


def test_damage_in_a_later_chunk_stops_where_one_pass_stops(
    tmp_path: Path, tiny_pieces: None
) -> None:
    path = _udp_file(tmp_path / "bad.pcap", 400)
    data = bytearray(path.read_bytes())
    at = sorted(_record_offsets(path))[300]
    struct.pack_into("<I", data, at + 8, 0x7FFFFFFF)  # a captured length no record has
    path.write_bytes(bytes(data))
    doc = _same([path])
    c = doc["captures"][0]
    assert c["records"] == 300 and c["truncated_tail"]
    assert "record 301" in c["problem"]


def test_cut_off_last_record(tmp_path: Path, tiny_pieces: None) -> None:
    path = _udp_file(tmp_path / "cut.pcap", 400)
    path.write_bytes(path.read_bytes()[:-10])
    c = _same([path])["captures"][0]
    assert c["records"] == 399 and c["truncated_tail"] and "cut off" in c["problem"]


def test_sll2_points_made_in_the_order_they_first_appear(tmp_path: Path, tiny_pieces: None) -> None:
    """``tcpdump -i any``: an interface index first seen in a later chunk still
    takes its place (name and number) as reading in order gives it."""
    pkts = ip_packets()
    frames = []
    for i in range(900):
        ix = SLL2_IFINDEXES[0] if i < 400 else SLL2_IFINDEXES[1 + (i % 2)]
        frames.append(sll2(pkts[i % len(pkts)], ix))
    path = write_pcap(tmp_path / "any.pcap", LINKTYPE_LINUX_SLL2, records(frames))
    assert len(_pieces(path)) > 10
    doc = _same([path])
    assert len(doc["captures"]) == 3


def test_whole_files_and_chunks_together(tmp_path: Path, tiny_pieces: None) -> None:
    """A pcapng (counted whole), a cut pcap and a gzip file, named: the capture
    points, their numbering and their names as one pass gives them."""
    import gzip

    ng = make_pcapng_multi(tmp_path)
    big = _udp_file(tmp_path / "uplink.pcap", 500)
    gz = tmp_path / "tap.pcap.gz"
    gz.write_bytes(gzip.compress(_udp_file(tmp_path / "tap.pcap", 50).read_bytes()))
    one = capture_info([f"uplink={big}", str(ng), str(gz)], None, jobs=1)
    two = capture_info([f"uplink={big}", str(ng), str(gz)], None, jobs=2)
    assert two == one
    assert one["captures"][0]["name"] == "uplink"


def test_small_input_is_read_in_one_process(tmp_path: Path) -> None:
    path = _udp_file(tmp_path / "u.pcap", 50)
    specs, imap = capture_specs([str(path)], None)
    ld = Loader(specs, imap)
    assert ld._pieces(ld._open_all(), 2, path.stat().st_size) is None


def test_sync_ignores_headers_read_four_bytes_off() -> None:
    """Seen 4 bytes late, a header's sub-second field reads as its seconds: the
    chain then fails on time (a real false cut of a benchmark capture)."""
    sec = T0 // 10**9
    # 8-byte records whose data starts with 64: read 4 bytes off, every header
    # checks out (length 8, original length 64) but for its time
    rec = struct.pack("<IIII", sec, 123456, 8, 8) + struct.pack("<II", 64, 0)
    buf = rec * 40
    assert parallel._sync(buf, False, False, 65535, sec) == 0
    assert parallel._sync(buf[4:], False, False, 65535, sec) == 20  # the next real one
    assert parallel._sync(buf[4:], False, False, 65535, 123456) == 0  # times that fit


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 2), st.integers(0, 30)), max_size=300),
    st.integers(0, 300),
)
def test_talkers_merged_as_counted_together(rows: list[tuple[int, int]], cut: int) -> None:
    """Two tables, one pickled as a worker sends it, merged with points renumbered:
    the counts of one table counting every row (exact below capacity)."""
    pt = np.array([r[0] for r in rows], np.int64)
    lo = np.array([r[1] for r in rows], np.uint64)
    hi = np.zeros(len(rows), np.uint64)
    whole = TalkerCounts(slots=256)
    whole.add(pt + 1, hi, lo)  # the merged table's point numbers: one higher
    first, second = TalkerCounts(slots=256), TalkerCounts(slots=256)
    first.add(pt[:cut] + 1, hi[:cut], lo[:cut])
    second.add(pt[cut:], hi[cut:], lo[cut:])
    second = pickle.loads(pickle.dumps(second))
    first.merge(second, np.array([1, 2, 3]))
    assert first.error == whole.error == 0
    for p in range(1, 4):
        assert first.top(p, 100) == whole.top(p, 100)


def test_chunk_reader_stops_at_its_end(tmp_path: Path) -> None:
    """A chunk is read from its first record to its stop, and says where it got."""
    from pcaploop.read import CaptureFile

    path = _udp_file(tmp_path / "u.pcap", 100)
    offs = sorted(_record_offsets(path))
    cap = open_capture(path)
    part = CaptureFile(str(path), "pcap", False, start=offs[10], stop=offs[30])
    part.interfaces, part._big, part._nsres = cap.interfaces, cap._big, cap._nsres
    n = sum(len(b.off) for b in part.batches())
    assert n == 20 and part.records == 20 and part.position == offs[30]
    assert not part.truncated_tail
    inside = CaptureFile(str(path), "pcap", False, start=offs[10], stop=offs[30] + 5)
    inside.interfaces, inside._big, inside._nsres = cap.interfaces, cap._big, cap._nsres
    assert sum(len(b.off) for b in inside.batches()) == 20
    assert inside.position == offs[30] and inside.truncated_tail


def test_top_talkers_past_the_point_limit(tmp_path: Path, tiny_pieces: None) -> None:
    """Past the point limit many interfaces share one capture point.  A piece counts
    them apart, so its bounded talker table may drop counts that one point keeps:
    such a piece is read again in order, and the talkers stay exact."""
    import gzip

    pk = ip_packets()[0]
    many = write_pcap(
        tmp_path / "many.pcap", LINKTYPE_LINUX_SLL2, records([sll2(pk, 1 + i) for i in range(4100)])
    )
    base = [udp4(src=f"10.0.0.{s + 1}") for s in range(12)]
    frames = [sll2(base[s], 50000 + ix) for ix in range(3000) for s in range(12)]
    raw = write_pcap(tmp_path / "b.pcap", LINKTYPE_LINUX_SLL2, records(frames)).read_bytes()
    gz = tmp_path / "b.pcap.gz"
    gz.write_bytes(gzip.compress(raw))
    doc = _same([many, gz])
    last = doc["captures"][-1]
    assert last["top_talkers_exact"]
    assert last["top_talkers"][0] == {"address": "10.0.0.1", "packets": 3000}
