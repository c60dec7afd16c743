"""Read stage: formats, byte orders, exact timestamps, interfaces, damage, memory."""

from __future__ import annotations

import struct
import tracemalloc

import fixtures as fx
import numpy as np
import pytest

from pcaploop.errors import NotACaptureError
from pcaploop.read import open_capture


def read_all(path):
    """(CaptureFile, dict of concatenated record arrays, list of frame bytes)."""
    cap = open_capture(path)
    cols = {k: [] for k in ("caplen", "wirelen", "time_ns", "iface", "direction")}
    frames = []
    for b in cap.batches():
        for k in cols:
            cols[k].append(np.array(getattr(b, k)))
        frames += [b.buf[o : o + c].tobytes() for o, c in zip(b.off, b.caplen)]
    return (
        cap,
        {k: np.concatenate(v) if v else np.zeros(0, np.int64) for k, v in cols.items()},
        frames,
    )


@pytest.mark.parametrize(
    "name,start,step",
    [
        ("pcap_us_le", fx.T0, 1000),
        ("pcap_us_be", fx.T0, 1000),
        ("pcap_ns_le", fx.T0 + 123456789, 1),
        ("pcap_ns_be", fx.T0 + 987654321, 7),
    ],
)
def test_pcap_magics_and_byte_orders(captures, name, start, step):
    cap, cols, frames = read_all(captures[name])
    assert cap.format == "pcap" and cap.interfaces[0].linktype == 1
    assert not cap.truncated_tail and cap.records == len(frames) > 0
    assert cols["time_ns"].tolist() == [start + i * step for i in range(len(frames))]
    assert frames[:6] == [fx.eth(p) for p in fx.ip_packets()[:6]]


def test_gzip_transparent(captures):
    for name, fmt in (("gzip_pcap", "pcap"), ("gzip_pcapng", "pcapng")):
        cap, _cols, frames = read_all(captures[name])
        assert cap.compressed and cap.format == fmt
        assert frames == [fx.eth(p) for p in fx.ip_packets()]


def test_pcapng_sections_interfaces(captures):
    cap, cols, _frames = read_all(captures["pcapng_multi"])
    itf = cap.interfaces
    assert [i.linktype for i in itf] == [1, 276, 101, 1, 113]
    assert [i.section for i in itf] == [0, 0, 0, 1, 1]
    assert [i.name for i in itf] == ["uplink", None, "tun0", "tap101", "uplink"]
    assert itf[0].comment == "host uplink" and itf[2].snaplen == 128
    assert itf[3].dropped == 17
    # 15 EPBs in section 1, an SPB (interface 0), 8 EPBs in section 2, one more SPB
    assert cap.records == 25 and not cap.truncated_tail
    assert cols["iface"].tolist() == [0, 1, 2] * 5 + [0] + [3, 4] * 4 + [3]


def test_pcapng_timestamps_exact(captures):
    _cap, cols, _ = read_all(captures["pcapng_multi"])
    t = cols["time_ns"]
    units20 = fx.Iface(101, tsresol=0x80 | 20, tsoffset=1)
    for i in range(5):
        assert t[3 * i] == fx.T0 + 1000 * i + 1  # if_tsresol 10^-9
        raw = fx.ts_units(units20, fx.T0 + 1000 * i + 3)
        assert t[3 * i + 2] == raw * 10**9 // 2**20 + 10**9  # 2^-20 plus if_tsoffset 1 s
    assert t[15] == t[14]  # the SPB carries the previous record's time
    assert t[-1] == t[-2]


@pytest.mark.parametrize("resol", [9, 12, 0x80 | 20, 0x80 | 40, 0x80 | 62, 3])
def test_tsresol_exact(tmp_path, resol):
    itf = fx.Iface(1, "eth0", tsresol=resol, tsoffset=-5)
    fx.Section(False, [itf])
    secs = min(fx.T0 // 10**9, (1 << 63) // itf.units - 2)
    raws = [secs * itf.units + k for k in (0, 1, itf.units - 1, itf.units // 3)]
    e = "<"
    body = fx.shb(e) + fx.idb(e, itf) + b"".join(fx.epb(e, 0, r, fx.eth(fx.udp4())) for r in raws)
    path = tmp_path / "res.pcapng"
    path.write_bytes(body)
    _, cols, _ = read_all(path)
    assert cols["time_ns"].tolist() == [r * 10**9 // itf.units - 5 * 10**9 for r in raws]


def test_epb_directions(captures):
    _, cols, _ = read_all(captures["pcapng_multi"])
    d = cols["direction"].tolist()
    assert d[0:15:3] == [1, 2, 1, 2, 1]  # epb_flags inbound / outbound
    assert d[2:15:3] == [0] * 5  # flags value 3 is not a direction
    assert d[16:24:2] == [2] * 4


def test_big_endian_pcapng(tmp_path):
    itf = fx.Iface(1, "eth0", tsresol=9)
    s = fx.Section(True, [itf], [(0, fx.Rec(fx.T0 + 5, fx.eth(fx.udp4())), 2)])
    cap, cols, frames = read_all(fx.write_pcapng(tmp_path / "be.pcapng", [s]))
    assert cols["time_ns"].tolist() == [fx.T0 + 5] and cols["direction"].tolist() == [2]
    assert frames == [fx.eth(fx.udp4())] and cap.interfaces[0].name == "eth0"


def test_caplen_over_snaplen_truncated_like_libpcap(captures):
    cap, cols, frames = read_all(captures["caplen_over_snaplen"])
    assert cols["caplen"].tolist() == [64, 64]
    assert cols["wirelen"].tolist() == [
        len(fx.eth(fx.udp4(payload=b"a" * 100))),
        len(fx.eth(fx.udp4())),
    ]
    assert frames[1] == fx.eth(fx.udp4())[:64] and not cap.truncated_tail


def test_original_length_over_256k_is_legal(captures):
    cap, cols, _ = read_all(captures["big_wirelen"])
    assert cols["wirelen"].tolist()[0] == 300_000 and cap.records == 2
    assert not cap.truncated_tail


@pytest.mark.parametrize(
    "name,intact,words",
    [
        ("cut_tail", 5, "cut off"),
        ("huge_caplen", 2, "captured length"),
        ("caplen_over_max", 1, "captured length"),
        ("pcapng_bad_lengths", 3, "disagree"),
        ("pcapng_huge_block", 2, "block"),
        ("pcapng_cut", len(fx.ip_packets()) - 1, "cut off"),
    ],
)
def test_damaged_tail_reported(captures, name, intact, words):
    cap, cols, _ = read_all(captures[name])
    assert cap.records == intact == len(cols["caplen"])
    assert cap.truncated_tail and words in cap.problem


def test_unknown_block_skipped(captures):
    cap, _, _ = read_all(captures["pcapng_multi"])
    assert cap.records == 25 and cap.problem is None


def test_gzip_cut_reported(captures, tmp_path):
    path = fx.make_gzip_cut(tmp_path)
    cap, _cols, _ = read_all(path)
    assert cap.truncated_tail and 0 < cap.records < 200


@pytest.mark.parametrize("name", sorted(fx.NOT_CAPTURES))
def test_not_a_capture(captures, name):
    with pytest.raises(NotACaptureError):
        open_capture(captures[name])


@pytest.mark.parametrize("name", ["huge_caplen", "pcapng_huge_block", "caplen_over_max"])
def test_memory_bounded_on_huge_length_fields(captures, name):
    read_all(captures[name])  # warm up imports and compiled code
    tracemalloc.start()
    try:
        cap, _, _ = read_all(captures[name])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert cap.truncated_tail
    assert peak < 8 << 20, peak


def test_memory_bounded_huge_idb(tmp_path):
    """A metadata block claiming 3 GiB is rejected without allocating it."""
    e = "<"
    data = fx.shb(e) + struct.pack("<II", 1, 0xC0000000) + b"\0" * 64
    path = tmp_path / "idb.pcapng"
    path.write_bytes(data)
    tracemalloc.start()
    try:
        cap, _, _ = read_all(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert cap.truncated_tail and peak < 8 << 20
