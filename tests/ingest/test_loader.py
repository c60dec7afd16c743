"""load(): capture-point naming, accounting, ordering, errors, table dtypes."""

from __future__ import annotations

import shutil

import fixtures as fx
import numpy as np
import pytest

from pcaploop import schema as S
from pcaploop.errors import NotACaptureError, UnsupportedLinkTypeError
from pcaploop.ingest.loader import load
from pcaploop.ingest.specs import parse_ifmap


def names(pk):
    return sorted(p.name for p in pk.points)


def test_name_equals_path_and_stem_default(captures, key):
    assert names(load([f"uplink={captures['pcap_us_le']}"], key=key)) == ["uplink"]
    assert names(load([str(captures["pcap_us_le"])], key=key)) == ["eth_us_le"]
    assert names(load([str(captures["gzip_pcap"])], key=key)) == ["zipped"]


def test_pcapng_if_name_points(captures, key):
    pk = load([f"host={captures['pcapng_multi']}"], key=key)
    assert names(pk) == ["host:if3", "host:if4", "tap101", "tun0", "uplink", "uplink@multi"]
    by = {p.name: p for p in pk.points}
    assert by["uplink"].linktype == 1 and by["uplink@multi"].linktype == 113
    assert by["tap101"].capture_dropped == 17 and by["uplink"].comment == "host uplink"


def test_single_unnamed_pcapng_takes_file_name(captures, key):
    assert names(load([f"tunnel={captures['pcapng_single']}"], key=key)) == ["tunnel"]


def test_sll2_ifmap_dict(captures, key):
    pk = load([str(captures["sll2"])], ifmap={2: "uplink", 5: "tap101"}, key=key)
    assert names(pk) == ["any:if7", "tap101", "uplink"]


def test_sll2_ifmap_ip_link_file(captures, key, tmp_path):
    text = (
        "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN\\    "
        "link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n"
        "2: uplink: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue\n"
        "5: tap101@if4: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue\n"
        "7: tap102@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue\n"
    )
    f = tmp_path / "links.txt"
    f.write_text(text)
    assert parse_ifmap([str(f)]) == {1: "lo", 2: "uplink", 5: "tap101", 7: "tap102"}
    pk = load([str(captures["sll2"])], ifmap=[str(f)], key=key)
    assert names(pk) == ["tap101", "tap102", "uplink"]


def test_name_collisions_are_errors(captures, key, tmp_path):
    """Two captures that would get one name: an error naming both, never a silent rename."""
    from pcaploop.errors import UsageError

    other = tmp_path / "again"
    other.mkdir()
    copy = other / captures["pcap_us_le"].name
    shutil.copy(captures["pcap_us_le"], copy)
    a = str(captures["pcap_us_le"])
    with pytest.raises(UsageError, match=r"would get.*NAME=PATH"):
        load([a, str(copy)], key=key)
    with pytest.raises(UsageError, match="given twice"):
        load([f"x={a}", f"x={captures['vlan']}"], key=key)
    pk = load([f"first={a}", f"second={copy}"], key=key)
    assert names(pk) == ["first", "second"]


@pytest.mark.parametrize(
    "name", sorted(fx.VALID) + ["cut_tail", "huge_caplen", "pcapng_bad_lengths", "pcapng_cut"]
)
def test_accounting_balances(captures, key, name):
    pk = load([str(captures[name])], key=key)
    assert sum(p.records for p in pk.points) >= len(pk)
    for p in pk.points:
        assert p.records == p.decoded + sum(p.skipped.values())
    assert sum(p.decoded for p in pk.points) == len(pk)


def test_truncated_tail_reported(captures, key):
    pk = load([str(captures["cut_tail"])], key=key)
    assert pk.points[0].truncated_tail and "cut off" in pk.points[0].problem
    assert any("cut off" in w for w in pk.warnings)
    assert pk.points[0].records == 5


def test_sorted_by_time(captures, key):
    pk = load([str(captures["unsorted"]), str(captures["pcap_ns_le"])], key=key)
    t = pk.cols["time_ns"]
    assert (np.diff(t) >= 0).all()
    df = pk.frame()
    assert df.time.is_monotonic_increasing
    assert df[df.capture_point == "unsorted"].ttl.tolist() == [59, 63, 61, 60, 62, 64]


def test_time_span(captures, key):
    p = load([str(captures["unsorted"])], key=key).points[0]
    assert (p.first_ns, p.last_ns) == (fx.T0, fx.T0 + 50_000)


@pytest.mark.parametrize("name", sorted(fx.NOT_CAPTURES))
def test_wrong_file_type(captures, key, name):
    with pytest.raises(NotACaptureError):
        load([str(captures[name])], key=key)
    # beside a good file it is left out, with a warning naming it, before anything is read
    pk = load([str(captures["pcap_us_le"]), str(captures[name])], key=key)
    assert [p.path for p in pk.points] == [str(captures["pcap_us_le"])]
    assert any(str(captures[name]) in w and "without it" in w for w in pk.warnings)


def test_unsupported_link_type_alone_raises(captures, key):
    with pytest.raises(UnsupportedLinkTypeError):
        load(
            [
                str(
                    captures["unknown_linktype"]
                    if "unknown_linktype" in captures
                    else fx.make_unknown_linktype(captures["pcap_us_le"].parent)
                )
            ],
            key=key,
        )


def test_unsupported_link_type_with_good_file_warns(captures, key, tmp_path):
    bad = fx.make_unknown_linktype(tmp_path)
    pk = load([str(bad), str(captures["pcap_us_le"])], key=key)
    assert any("unsupported link type LINKTYPE_147" in w for w in pk.warnings)
    by = {p.name: p for p in pk.points}
    assert by["user0"].skipped["unsupported"] == 3 and by["eth_us_le"].decoded == len(pk)


def test_frame_dtypes(captures, key):
    df = load([str(captures["pcapng_multi"]), str(captures["raw101"])], key=key).frame()
    assert list(df.columns) == list(S.TABLE)
    assert {c: str(t) for c, t in df.dtypes.items()} == S.TABLE
    assert set(df.direction.cat.categories) == set(S.DIRECTIONS)


def test_empty_frame_dtypes(captures, key, tmp_path):
    path = fx.write_pcap(tmp_path / "none.pcap", 1, [])
    df = load([str(path)], key=key).frame()
    assert len(df) == 0 and {c: str(t) for c, t in df.dtypes.items()} == S.TABLE


def test_same_file_twice_keeps_separate_accounting(tmp_path):
    import dpkt
    from loopgen import HOST, ROUTER, eth, ip4

    good = tmp_path / "x.pcap"
    with open(good, "wb") as f:
        w = dpkt.pcap.Writer(f)
        for k in range(3):
            w.writepkt(eth(ip4("203.0.113.101", 64, k), ROUTER, HOST), ts=1_700_000_000 + k)
    pk = load([f"a={good}", f"b={good}"])
    assert [(p.name, p.records, p.decoded) for p in pk.points] == [("a", 3, 3), ("b", 3, 3)]


def test_control_characters_in_interface_names_are_replaced():
    from pcaploop.read.capture import _text

    assert _text(b"tap\x1b[2Jx\nEOF\x00junk") == "tap?[2Jx?EOF"


def test_analyze_warns_about_recorded_capture_loss(captures, key):
    import pcaploop

    a = pcaploop.analyze(load([f"host={captures['pcapng_multi']}"], key=key))
    assert any("tap101" in w and "dropped 17" in w for w in a.warnings)
    assert {c["name"]: c["capture_dropped"] for c in a.to_json()["captures"]}["tap101"] == 17
