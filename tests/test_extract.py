"""Evidence extract and Wireshark display filters (issue #4).

"Implicated packets" are defined in :mod:`pcaploop.extract`: a loop's copies
(exactly what its ``observations`` counts), the other observations of the
same looping packets, and the ICMP errors tied to them.  The extract is read
back by pcaploop's own reader and by tshark; every display filter is run
through ``tshark -Y`` and must select exactly ``observations`` packets.

The scenario builders here are shared with test_plots and test_report.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import pcaploop
from fixtures import Iface, Rec, Section, sll2, write_pcap, write_pcapng
from loopgen import CLIENT, GUEST, HOST, ROUTER, T0, eth, ip4, tunnel_loop, write
from pcaploop import extract as X
from pcaploop.loader import load as load_packets  # pcaploop.loader can be the submodule
from pcaploop.errors import PcaploopError, UsageError

TSHARK = shutil.which("tshark")
SAMPLES = Path(__file__).resolve().parent.parent / "samples"
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")


# --- scenarios ------------------------------------------------------------------------
def icmp_te(quoted: bytes, src: str, dst: str) -> bytes:
    """IPv4 ICMP time-exceeded quoting ``quoted``."""
    import socket

    import dpkt

    icmp = dpkt.icmp.ICMP(type=11, code=0, data=dpkt.icmp.ICMP.TimeExceed(data=quoted))
    ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), ttl=64, p=1, data=icmp)
    ip.len = len(ip)
    return bytes(ip)


def mixed_caps() -> dict:
    """An l2 loop first, then a host↔guest loop with ICMP errors, an IPv6 loop and a bounce.

    The l2 loop comes first in time so the l3 loop's final id (2) differs
    from its id inside detection (1): the extract must not mix them up.
    """
    caps = {"lan": [(T0 + i * 0.002, eth(ip4("203.0.113.9", 60, 42), ROUTER, HOST))
                    for i in range(30)]}
    tl = tunnel_loop(n=6, entry_ttl=64, t0=T0 + 1)
    caps.update(tl)
    for k in range(3):  # the guest's errors for the first three packets, seen on the uplink
        quoted = bytearray(ip4("203.0.113.7", 1, 100 + k)[:28])
        t = T0 + 1 + 0.05 * (k + 1) + 0.002
        caps["uplink"].append((t, eth(icmp_te(bytes(quoted), "203.0.113.101", CLIENT),
                                      HOST, ROUTER)))
    v6 = tunnel_loop(n=3, entry_ttl=20, dst="2001:db8:100::7", v6=True, t0=T0 + 2)
    for name, frames in v6.items():
        caps[name] += frames
    for k in range(4):  # a bounce: 203.0.113.8 goes in and comes back once
        t = T0 + 3 + k * 0.01
        caps["tap101"].append((t, eth(ip4("203.0.113.8", 63, 700 + k), HOST, GUEST)))
        caps["tap101"].append((t + 1e-5, eth(ip4("203.0.113.8", 62, 700 + k), GUEST, HOST)))
    for frames in caps.values():
        frames.sort(key=lambda f: f[0])
    return caps


def write_mixed(d: Path) -> list[str]:
    return write(mixed_caps(), d)


def write_pcapng_loop(d: Path, tap_name: str = "tap101", comment: str | None = None) -> Path:
    """The host↔guest loop as one pcapng with two named interfaces (ns resolution)."""
    caps = tunnel_loop(n=4, entry_ttl=32)
    sec = Section(ifaces=[Iface(1, "uplink", tsresol=9), Iface(1, tap_name, tsresol=9,
                                                               comment=comment)])
    recs = [(0, ts, f) for ts, f in caps["uplink"]] + [(1, ts, f) for ts, f in caps["tap101"]]
    recs.sort(key=lambda r: r[1])
    sec.recs = [(k, Rec(int(round(ts * 1e9)), f), None) for k, ts, f in recs]
    return write_pcapng(d / "all.pcapng", [sec])


def write_sll2_loop(d: Path) -> Path:
    """The host↔guest loop as ``tcpdump -i any`` (SLL2, ifindex 2 uplink, 5 tap101)."""
    caps = tunnel_loop(n=4, entry_ttl=24)
    recs = []
    for ts, f in caps["uplink"]:
        recs.append((ts, sll2(f[14:], 2, 0)))
    for ts, f in caps["tap101"]:
        out = f[6:12] == HOST  # Ethernet source: the host sends
        recs.append((ts, sll2(f[14:], 5, 4 if out else 0)))
    recs.sort(key=lambda r: r[0])
    return write_pcap(d / "any.pcap", 276, [Rec(int(round(ts * 1e9)), f) for ts, f in recs])


SLL2_IFMAP = {2: "uplink", 5: "tap101"}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    return pcaploop.analyze(write_mixed(tmp_path_factory.mktemp("mixed")))


def tshark_count(path: str, dfilter: str | None = None) -> int:
    cmd = [TSHARK, "-n", "-r", path, "-T", "fields", "-e", "frame.number"]
    if dfilter:
        cmd += ["-Y", dfilter]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return len(res.stdout.split())


def by_kind(a, kind: str, v6: bool | None = None) -> dict:
    for lp in a.loops:
        if lp["kind"] == kind and (v6 is None or (":" in lp["destination"]) == v6):
            return lp
    raise AssertionError(f"no {kind} loop in {a.loops}")


# --- which rows -------------------------------------------------------------------------
def test_scenario_has_every_kind(mixed):
    kinds = [lp["kind"] for lp in mixed.loops]
    assert kinds[0] == "l2" and kinds.count("l3") == 2
    assert mixed.bounces and mixed.bounces[0]["destination"] == "203.0.113.8"


def test_copies_are_exactly_the_observations(mixed):
    for lp in mixed.loops:
        lr = X.loop_rows(mixed, lp["id"])
        assert len(lr.copies) == lp["observations"], lp["id"]
        assert len(np.unique(lr.copies)) == len(lr.copies)
        names = {mixed.packets.point_names[p] for p in mixed.packets.cols["point"][lr.copies]}
        assert names == set(lp["capture_points"])


def test_l3_rows_follow_the_final_loop_id(mixed):
    lp = by_kind(mixed, "l3", v6=False)
    assert lp["id"] == 2  # detection calls it 1
    lr = X.loop_rows(mixed, lp["id"])
    cols = mixed.packets.cols
    assert set(cols["ttl"][lr.copies]) == set(range(1, 64))
    assert len(lr.passages) == lp["looping_packets"]  # the uplink entries, TTL 64
    assert set(cols["ttl"][lr.passages]) == {64}
    assert len(lr.icmp) == lp["icmp_time_exceeded"] == 3


def test_selection_roles_and_errors(mixed):
    lp = by_kind(mixed, "l3", v6=False)
    sel = X.select(mixed, loop=lp["id"])
    lr = X.loop_rows(mixed, lp["id"])
    assert len(sel.rows) == len(lr.copies) + len(lr.passages) + len(lr.icmp)
    assert np.all(np.diff(sel.rows) > 0)
    assert (sel.role == X.COPY).sum() == lp["observations"]
    assert (sel.role == X.ICMP).sum() == 3
    with pytest.raises(UsageError, match="no loop 99"):
        X.select(mixed, loop=99)
    with pytest.raises(UsageError, match="exactly one"):
        X.select(mixed)
    with pytest.raises(UsageError, match="exactly one"):
        X.select(mixed, loop=1, dst="203.0.113.7")
    with pytest.raises(UsageError, match="no loop and no bounce"):
        X.select(mixed, dst="192.0.2.200")
    with pytest.raises(UsageError, match="not an IP address"):
        X.select(mixed, dst="tap101")


def test_dst_takes_loops_and_bounces(mixed):
    sel = X.select(mixed, dst="203.0.113.8")
    assert len(sel.rows) == 8 and set(sel.role) == {X.BOUNCE}
    lp = by_kind(mixed, "l3", v6=True)
    sel = X.select(mixed, dst=lp["destination"].upper(), copies_only=True)
    assert len(sel.rows) == lp["observations"]


# --- the pcapng -------------------------------------------------------------------------
def test_extract_read_back_by_pcaploop(mixed, tmp_path):
    lp = by_kind(mixed, "l3", v6=False)
    out = tmp_path / "ev.pcapng"
    res = X.extract(mixed, out, loop=lp["id"])
    sel = X.select(mixed, loop=lp["id"])
    assert res["packets"] == len(sel.rows)
    back = load_packets([out])
    assert len(back) == len(sel.rows)
    assert sorted((p.name, p.linktype, p.format) for p in back.points) == [
        ("tap101", 1, "pcapng"), ("uplink", 1, "pcapng")]
    assert res["capture_points"] == {"tap101": lp["observations"],
                                     "uplink": lp["looping_packets"] + 3}
    orig = mixed.packets.cols
    # same packets, same nanosecond timestamps, same bytes (same keyed fingerprint)
    assert np.array_equal(np.sort(back.cols["time_ns"]), np.sort(orig["time_ns"][sel.rows]))
    assert np.array_equal(np.sort(back.cols["fingerprint"]),
                          np.sort(orig["fingerprint"][sel.rows]))
    assert np.array_equal(np.sort(back.cols["ttl"]), np.sort(orig["ttl"][sel.rows]))
    # and the extract shows the same loop again
    again = pcaploop.analyze([out])
    assert [(x["destination"], x["observations"]) for x in again.loops] == [
        (lp["destination"], lp["observations"])]


def test_copies_only_extract(mixed, tmp_path):
    for lp in mixed.loops:
        out = tmp_path / f"loop{lp['id']}.pcapng"
        X.extract(mixed, out, loop=lp["id"], copies_only=True)
        assert len(load_packets([out])) == lp["observations"]
        if TSHARK:
            assert tshark_count(str(out)) == lp["observations"]


@needs_tshark
def test_tshark_reads_extract(mixed, tmp_path):
    lp = by_kind(mixed, "l3", v6=False)
    out = tmp_path / "ev.pcapng"
    X.extract(mixed, out, loop=lp["id"])
    res = subprocess.run([TSHARK, "-n", "-r", str(out), "-T", "fields", "-E", "separator=|",
                          "-e", "frame.interface_name", "-e", "frame.time_epoch", "-e", "ip.ttl",
                          "-e", "frame.comment"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    lines = [ln.split("|") for ln in res.stdout.splitlines()]
    assert len(lines) == len(X.select(mixed, loop=lp["id"]).rows)
    assert {ln[0] for ln in lines} == {"uplink", "tap101"}
    copies = [ln for ln in lines if "loop copy" in ln[3]]
    assert len(copies) == lp["observations"]
    assert all(ln[0] == "tap101" for ln in copies)
    # nanosecond timestamps survive exactly (if_tsresol 9: tshark prints 9 decimals)
    want = np.sort(mixed.packets.cols["time_ns"][X.select(mixed, loop=lp["id"]).rows])
    got = np.sort([int(ln[1].replace(".", "")) for ln in lines])
    assert np.array_equal(got, want)


def test_sll2_points_keep_their_link_type(tmp_path):
    cap = write_sll2_loop(tmp_path)
    a = pcaploop.analyze([cap], ifmap=SLL2_IFMAP)
    lp = a.loops[0]
    out = tmp_path / "ev.pcapng"
    X.extract(a, out, loop=1)
    back = load_packets([out], ifmap=SLL2_IFMAP)
    assert {p.linktype for p in back.points} == {276}
    assert {p.name for p in back.points} == {"uplink", "tap101"}
    assert sum(p.records for p in back.points if p.name == "tap101") == lp["observations"]
    if TSHARK:
        res = subprocess.run([TSHARK, "-n", "-r", str(out), "-T", "fields", "-e",
                              "frame.interface_name", "-e", "sll.ifindex"], capture_output=True,
                             text=True, timeout=60)
        pairs = {tuple(ln.split("\t")) for ln in res.stdout.splitlines()}
        assert pairs == {("uplink", "2"), ("tap101", "5")}


def test_pcapng_multi_interface_extract(tmp_path):
    cap = write_pcapng_loop(tmp_path)
    a = pcaploop.analyze([cap])
    out = tmp_path / "ev.pcapng"
    X.extract(a, out, loop=1, copies_only=True)
    back = load_packets([out])
    assert [(p.name, p.records) for p in back.points] == [("tap101", a.loops[0]["observations"])]


def test_changed_capture_is_refused(tmp_path):
    args = write(tunnel_loop(n=3), tmp_path)
    a = pcaploop.analyze(args)
    tap = next(x.split("=", 1)[1] for x in args if x.startswith("tap101="))
    data = bytearray(Path(tap).read_bytes())
    Path(tap).write_bytes(bytes(data[:24 + 16 + 10]))  # header + a cut first record
    with pytest.raises(PcaploopError, match="missing|differs"):
        X.extract(a, tmp_path / "ev.pcapng", loop=1)


def test_unwritable_output(mixed, tmp_path):
    with pytest.raises(PcaploopError, match="cannot write"):
        X.extract(mixed, tmp_path / "no" / "such" / "dir.pcapng", loop=1)


# --- display filters ----------------------------------------------------------------------
def test_ranges():
    assert X._ranges(np.array([1, 2, 3, 5, 7, 8])) == ["1..3", "5", "7..8"]
    assert X._ranges(np.array([], dtype=np.int64)) == []


def test_filter_shape(mixed):
    lp = by_kind(mixed, "l3", v6=False)
    (f,) = X.wireshark_filters(mixed, lp["id"])
    assert f["file"].endswith("tap101.pcap") and f["packets"] == lp["observations"]
    assert f["filter"].startswith("ip.dst == 203.0.113.7 && frame.number in {")
    v6 = by_kind(mixed, "l3", v6=True)
    v6_filter = X.wireshark_filters(mixed, v6["id"])[0]["filter"]
    assert v6_filter.startswith("ipv6.dst == 2001:db8:100::7 && frame.number in {")


def _check_filters(a) -> None:
    assert a.loops
    for lp in a.loops:
        filters = X.wireshark_filters(a, lp["id"])
        total = 0
        for f in filters:
            assert f["filter"], f
            n = tshark_count(f["file"], f["filter"])
            assert n == f["packets"], (lp["id"], f)
            total += n
        if lp["kind"] != "inferred":
            assert total == lp["observations"], lp


@needs_tshark
def test_filters_select_observations_synthetic(mixed, tmp_path):
    _check_filters(mixed)
    _check_filters(pcaploop.analyze([write_pcapng_loop(tmp_path)]))
    _check_filters(pcaploop.analyze([write_sll2_loop(tmp_path)], ifmap=SLL2_IFMAP))


def _sample_inputs() -> list:
    out = []
    for scen in ("incident", "two-guests", "router-loop", "two-tunnels"):
        d = SAMPLES / scen
        if not d.is_dir():
            continue
        per_if = sorted(str(p) for p in d.glob("*.pcap") if p.name != "any.pcap")
        if per_if:
            out.append(pytest.param(per_if, None, id=f"{scen}-per-interface"))
        if (d / "all.pcapng").exists():
            out.append(pytest.param([str(d / "all.pcapng")], None, id=f"{scen}-pcapng"))
        if (d / "any.pcap").exists() and (d / "iplink.txt").exists():
            out.append(pytest.param([str(d / "any.pcap")], [str(d / "iplink.txt")],
                                    id=f"{scen}-any"))
    return out or [pytest.param(None, None, marks=pytest.mark.skip(reason="no lab samples"))]


@needs_tshark
@pytest.mark.parametrize("inputs,ifmap", _sample_inputs())
def test_filters_select_observations_on_samples(inputs, ifmap):
    for p in inputs:
        if not os.access(p, os.R_OK):
            pytest.skip(f"{p} is not readable")
    _check_filters(pcaploop.analyze(inputs, ifmap=ifmap))


# --- CLI ------------------------------------------------------------------------------------
def _app():
    import typer

    from pcaploop._cli_present import register

    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """pcaploop (test app)."""

    register(app)
    return app


def test_cli_extract(tmp_path):
    from typer.testing import CliRunner

    args = write(tunnel_loop(n=3), tmp_path)
    out = tmp_path / "ev.pcapng"
    res = CliRunner().invoke(_app(), ["extract", *args, "--loop", "1", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "wrote" in res.output and out.exists()
    res = CliRunner().invoke(_app(), ["extract", *args, "-o", str(out)])
    assert isinstance(res.exception, UsageError)
    res = CliRunner().invoke(_app(), ["extract", "--help"])
    assert "Example:" in res.output


def test_cli_error_exits_2(tmp_path):
    """Through the real entry point: one 'Error:' line, exit status 2."""
    args = write(tunnel_loop(n=3), tmp_path)
    code = ("import sys; from pcaploop.cli import app, main; "
            "from pcaploop._cli_present import register; register(app); "
            "sys.argv = ['pcaploop'] + sys.argv[1:]; main()")
    res = subprocess.run([sys.executable, "-c", code, "extract", *args, "--loop", "7", "-o",
                          str(tmp_path / "x.pcapng")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == ["Error: there is no loop 7 (found 1)"]
