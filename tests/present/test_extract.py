"""Evidence extract and Wireshark display filters.

"Implicated packets" are defined in :mod:`pcaploop.present.extract`: a loop's copies
(exactly what its ``observations`` counts), the other observations of the
same looping packets, and the ICMP errors tied to them.  The extract is read
back by pcaploop's own reader and by tshark; every display filter is run
through ``tshark -Y`` and must select exactly ``observations`` packets.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from loopgen import (
    SLL2_IFMAP,
    by_kind,
    tunnel_loop,
    write,
    write_mixed,
    write_pcapng_loop,
    write_sll2_loop,
)

import pcaploop
from pcaploop.errors import PcaploopError, UsageError
from pcaploop.ingest.loader import load as load_packets  # pcaploop.loader can be the submodule
from pcaploop.present import extract as X

TSHARK = shutil.which("tshark")
SAMPLES = Path(__file__).resolve().parents[2] / "samples"
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")


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


# --- which rows -------------------------------------------------------------------------
def test_scenario_has_every_kind(mixed):
    kinds = [lp.kind for lp in mixed.loops]
    assert kinds[0] == "l2" and kinds.count("l3") == 2
    assert mixed.bounces and mixed.bounces[0].destination == "203.0.113.8"


def test_copies_are_exactly_the_observations(mixed):
    for lp in mixed.loops:
        lr = X.loop_rows(mixed, lp.id)
        assert len(lr.copies) == lp.observations, lp.id
        assert len(np.unique(lr.copies)) == len(lr.copies)
        names = {mixed.packets.point_names[p] for p in mixed.packets.cols["point"][lr.copies]}
        assert names == set(lp.capture_points)


def test_l3_rows_follow_the_final_loop_id(mixed):
    lp = by_kind(mixed, "l3", v6=False)
    assert lp.id == 2  # detection calls it 1
    lr = X.loop_rows(mixed, lp.id)
    cols = mixed.packets.cols
    assert set(cols["ttl"][lr.copies]) == set(range(1, 64))
    assert len(lr.passages) == lp.looping_packets  # the uplink entries, TTL 64
    assert set(cols["ttl"][lr.passages]) == {64}
    assert len(lr.icmp) == lp.icmp_time_exceeded == 3


def test_selection_roles_and_errors(mixed):
    lp = by_kind(mixed, "l3", v6=False)
    sel = X.select(mixed, loop=lp.id)
    lr = X.loop_rows(mixed, lp.id)
    assert len(sel.rows) == len(lr.copies) + len(lr.passages) + len(lr.icmp)
    assert np.all(np.diff(sel.rows) > 0)
    assert (sel.role == X.COPY).sum() == lp.observations
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
    sel = X.select(mixed, dst=lp.destination.upper(), copies_only=True)
    assert len(sel.rows) == lp.observations


# --- the pcapng -------------------------------------------------------------------------
def test_extract_read_back_by_pcaploop(mixed, tmp_path):
    lp = by_kind(mixed, "l3", v6=False)
    out = tmp_path / "ev.pcapng"
    res = X.extract(mixed, out, loop=lp.id)
    sel = X.select(mixed, loop=lp.id)
    assert res["packets"] == len(sel.rows)
    back = load_packets([out])
    assert len(back) == len(sel.rows)
    assert sorted((p.name, p.linktype, p.format) for p in back.points) == [
        ("tap101", 1, "pcapng"),
        ("uplink", 1, "pcapng"),
    ]
    assert res["capture_points"] == {"tap101": lp.observations, "uplink": lp.looping_packets + 3}
    orig = mixed.packets.cols
    # same packets, same nanosecond timestamps, same bytes (same keyed fingerprint)
    assert np.array_equal(np.sort(back.cols["time_ns"]), np.sort(orig["time_ns"][sel.rows]))
    assert np.array_equal(np.sort(back.cols["fingerprint"]), np.sort(orig["fingerprint"][sel.rows]))
    assert np.array_equal(np.sort(back.cols["ttl"]), np.sort(orig["ttl"][sel.rows]))
    # and the extract shows the same loop again
    again = pcaploop.analyze([out])
    assert [(x.destination, x.observations) for x in again.loops] == [
        (lp.destination, lp.observations)
    ]


def test_copies_only_extract(mixed, tmp_path):
    for lp in mixed.loops:
        out = tmp_path / f"loop{lp.id}.pcapng"
        X.extract(mixed, out, loop=lp.id, copies_only=True)
        assert len(load_packets([out])) == lp.observations
        if TSHARK:
            assert tshark_count(str(out)) == lp.observations


@needs_tshark
def test_tshark_reads_extract(mixed, tmp_path):
    lp = by_kind(mixed, "l3", v6=False)
    out = tmp_path / "ev.pcapng"
    X.extract(mixed, out, loop=lp.id)
    res = subprocess.run(
        [
            TSHARK,
            "-n",
            "-r",
            str(out),
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-e",
            "frame.interface_name",
            "-e",
            "frame.time_epoch",
            "-e",
            "ip.ttl",
            "-e",
            "frame.comment",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    lines = [ln.split("|") for ln in res.stdout.splitlines()]
    assert len(lines) == len(X.select(mixed, loop=lp.id).rows)
    assert {ln[0] for ln in lines} == {"uplink", "tap101"}
    copies = [ln for ln in lines if "loop copy" in ln[3]]
    assert len(copies) == lp.observations
    assert all(ln[0] == "tap101" for ln in copies)
    # nanosecond timestamps survive exactly (if_tsresol 9: tshark prints 9 decimals)
    want = np.sort(mixed.packets.cols["time_ns"][X.select(mixed, loop=lp.id).rows])
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
    assert sum(p.records for p in back.points if p.name == "tap101") == lp.observations
    if TSHARK:
        res = subprocess.run(
            [
                TSHARK,
                "-n",
                "-r",
                str(out),
                "-T",
                "fields",
                "-e",
                "frame.interface_name",
                "-e",
                "sll.ifindex",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        pairs = {tuple(ln.split("\t")) for ln in res.stdout.splitlines()}
        assert pairs == {("uplink", "2"), ("tap101", "5")}


def test_pcapng_multi_interface_extract(tmp_path):
    cap = write_pcapng_loop(tmp_path)
    a = pcaploop.analyze([cap])
    out = tmp_path / "ev.pcapng"
    X.extract(a, out, loop=1, copies_only=True)
    back = load_packets([out])
    assert [(p.name, p.records) for p in back.points] == [("tap101", a.loops[0].observations)]


def test_changed_capture_is_refused(tmp_path):
    args = write(tunnel_loop(n=3), tmp_path)
    a = pcaploop.analyze(args)
    tap = next(x.split("=", 1)[1] for x in args if x.startswith("tap101="))
    data = bytearray(Path(tap).read_bytes())
    Path(tap).write_bytes(bytes(data[: 24 + 16 + 10]))  # header + a cut first record
    with pytest.raises(PcaploopError, match=r"missing|differs"):
        X.extract(a, tmp_path / "ev.pcapng", loop=1)


def test_output_directory_created_and_inputs_never_overwritten(mixed, tmp_path):
    assert X.extract(mixed, tmp_path / "new" / "dir" / "ev.pcapng", loop=1)["packets"] > 0
    (tmp_path / "plain").write_text("a file, not a directory")
    with pytest.raises(PcaploopError, match="cannot create directory"):
        X.extract(mixed, tmp_path / "plain" / "ev.pcapng", loop=1)
    src = mixed.packets.points[0].path
    before = Path(src).read_bytes()
    with pytest.raises(UsageError, match="input captures"):
        X.extract(mixed, src, loop=1)
    assert Path(src).read_bytes() == before


# --- display filters ----------------------------------------------------------------------
def test_ranges():
    assert X._ranges(np.array([1, 2, 3, 5, 7, 8])) == ["1..3", "5", "7..8"]
    assert X._ranges(np.array([], dtype=np.int64)) == []


def test_filter_shape(mixed):
    lp = by_kind(mixed, "l3", v6=False)
    (f,) = X.wireshark_filters(mixed, lp.id)
    assert f["file"].endswith("tap101.pcap") and f["packets"] == lp.observations
    assert f["filter"].startswith("ip.dst == 203.0.113.7 && frame.number in {")
    v6 = by_kind(mixed, "l3", v6=True)
    v6_filter = X.wireshark_filters(mixed, v6.id)[0]["filter"]
    assert v6_filter.startswith("ipv6.dst == 2001:db8:100::7 && frame.number in {")


def _check_filters(a) -> None:
    assert a.loops
    for lp in a.loops:
        filters = X.wireshark_filters(a, lp.id)
        total = 0
        for f in filters:
            assert f["filter"], f
            n = tshark_count(f["file"], f["filter"])
            assert n == f["packets"], (lp.id, f)
            total += n
        if lp.kind != "inferred":
            assert total == lp.observations, lp


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
            out.append(
                pytest.param([str(d / "any.pcap")], [str(d / "iplink.txt")], id=f"{scen}-any")
            )
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
    from pcaploop.cli import app

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
    code = (
        "import sys; from pcaploop.cli import main; sys.argv = ['pcaploop'] + sys.argv[1:]; main()"
    )
    res = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "extract",
            *args,
            "--loop",
            "7",
            "-o",
            str(tmp_path / "x.pcapng"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == ["Error: there is no loop 7 (found 1)"]


def test_size_is_announced_before_writing(mixed, tmp_path):
    """The caller hears how much is about to be written, before a byte is: the estimate
    is within the file's section and interface blocks of what is written."""
    heard = []

    def announce(packets, nbytes):
        heard.append((packets, nbytes, (tmp_path / "e.pcapng").exists()))

    res = X.extract(mixed, tmp_path / "e.pcapng", loop=2, announce=announce)
    (packets, nbytes, existed) = heard[0]
    assert not existed and packets == res["packets"]
    size = (tmp_path / "e.pcapng").stat().st_size
    assert 0 < size - nbytes < 4096  # the section header and interface blocks
    assert nbytes == X.blocks_size(mixed, X.select(mixed, 2, None, False))
