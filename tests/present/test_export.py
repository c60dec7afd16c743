"""Export: tables written to Parquet/CSV come back with the same values and dtypes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

import pcaploop
from pcaploop.errors import PcaploopError, UsageError
from pcaploop.present.export import export_paths, read_export, write_export

ROOT = Path(__file__).resolve().parents[2]
INCIDENT = ROOT / "samples" / "incident"
FORMATS = ["parquet", "csv", "csv.gz"]


@pytest.fixture(scope="module")
def incident_captures(tmp_path_factory) -> list[str]:
    """The bundled incident (uplink + tap101), or a small synthetic one without samples."""
    if (INCIDENT / "uplink.pcap").exists() and (INCIDENT / "tap101.pcap").exists():
        return [f"uplink={INCIDENT / 'uplink.pcap'}", f"tap101={INCIDENT / 'tap101.pcap'}"]
    return _synthetic(tmp_path_factory.mktemp("synthetic"))


def _synthetic(d: Path) -> list[str]:
    """20 UDP packets for 203.0.113.7 looping host ↔ guest from TTL 64 (*The incident*)."""
    dpkt = pytest.importorskip("dpkt")
    import socket

    host, guest, router = b"\x02\0\0\0\0\x10", b"\x02\0\0\0\0\x65", b"\x02\0\0\0\0\x01"

    def frame(ident: int, ttl: int, src: bytes, dst: bytes) -> bytes:
        u = dpkt.udp.UDP(sport=4000, dport=9, data=b"x" * 32)
        u.ulen = len(u)
        ip = dpkt.ip.IP(
            src=socket.inet_aton("198.51.100.9"),
            dst=socket.inet_aton("203.0.113.7"),
            ttl=ttl,
            p=17,
            id=ident,
            data=u,
        )
        ip.len = len(ip)
        return bytes(dpkt.ethernet.Ethernet(src=src, dst=dst, type=0x800, data=bytes(ip)))

    with open(d / "uplink.pcap", "wb") as fu, open(d / "tap101.pcap", "wb") as ft:
        up, tap = dpkt.pcap.Writer(fu), dpkt.pcap.Writer(ft)
        t = 1_700_000_000.0
        for k in range(20):
            t += 0.05
            up.writepkt(frame(100 + k, 64, router, host), ts=t)
            for ttl in range(63, 0, -1):
                s, r = (host, guest) if (63 - ttl) % 2 == 0 else (guest, host)
                tap.writepkt(frame(100 + k, ttl, s, r), ts=t + (64 - ttl) * 1e-5)
    return [f"uplink={d / 'uplink.pcap'}", f"tap101={d / 'tap101.pcap'}"]


@pytest.fixture(scope="module")
def analysis(incident_captures):
    return pcaploop.analyze(incident_captures, keep="all")  # the export CLI keeps every row


def _same(expected: pd.DataFrame, got: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(
        expected.reset_index(drop=True), got, check_exact=True, check_categorical=True
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_keeps_values_and_dtypes(analysis, tmp_path, fmt):
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    out = tmp_path / f"incident.{fmt}"
    written = write_export(analysis, out, with_paths=True, with_loops=True)
    assert all(p.exists() for p in written)
    names = export_paths(out)
    assert {names["packets"], names["paths"], names["loops"]} <= set(written)
    _same(analysis.packets.frame(), read_export(out))
    _same(analysis.path_rows(), read_export(out, table="paths"))
    _same(analysis.loops_frame(), read_export(out, table="loops"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_packets_table_dtypes_are_the_schema(analysis, tmp_path, fmt):
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    out = tmp_path / f"p.{fmt}"
    write_export(analysis.packets, out)
    df = read_export(out)
    from pcaploop.schema import TABLE

    assert list(df.columns) == list(TABLE)
    assert str(df["time"].dtype) == "datetime64[ns, UTC]"
    for col in ("capture_point", "direction", "src", "dst"):
        assert isinstance(df[col].dtype, pd.CategoricalDtype), col
    assert list(df["capture_point"].cat.categories) == analysis.packets.point_names
    assert str(df["ip_id"].dtype) == "Int64" and str(df["fingerprint"].dtype) == "uint64"
    assert df.attrs["pcaploop"]["table"] == "packets"
    assert [c["name"] for c in df.attrs["pcaploop"]["captures"]] == analysis.packets.point_names


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_and_plain_frames(tmp_path, fmt):
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    df = pd.DataFrame(
        {
            "t": pd.to_datetime([1, 2_000_000_123], unit="ns", utc=True),
            "c": pd.Categorical(["a", None], categories=["a", "unused"]),
            "n": pd.array([1, None], dtype="Int16"),
            "u": pd.Series([2**64 - 1, 0], dtype="uint64"),
            "f": [0.1, float("nan")],
            "nested": [["x", "y"], {"k": 1}],
        }
    )
    for frame in (df, df.iloc[0:0]):
        out = tmp_path / f"plain.{fmt}"
        write_export(frame, out)
        _same(frame, read_export(out))


def test_csv_without_sidecar_uses_the_schema(analysis, tmp_path):
    out = tmp_path / "p.csv"
    write_export(analysis.packets, out)
    Path(str(out) + ".dtypes.json").unlink()
    df = read_export(out)
    assert str(df["time"].dtype) == "datetime64[ns, UTC]"
    assert isinstance(df["dst"].dtype, pd.CategoricalDtype)
    assert (df["dst"].astype(str) == analysis.packets.frame()["dst"].astype(str)).all()


def test_sibling_names():
    p = export_paths("out/x.csv.gz")
    assert p == {
        "packets": Path("out/x.csv.gz"),
        "paths": Path("out/x.paths.csv.gz"),
        "loops": Path("out/x.loops.csv.gz"),
    }
    assert export_paths("X.PARQUET")["loops"] == Path("X.loops.PARQUET")


@pytest.mark.parametrize("name", ["x.txt", "x", "x.parquet.gz", "x.json"])
def test_unknown_format_is_a_clear_error(analysis, tmp_path, name):
    with pytest.raises(UsageError, match="parquet"):
        write_export(analysis, tmp_path / name)


def test_paths_need_an_analysis(analysis, tmp_path):
    with pytest.raises(UsageError, match="Analysis"):
        write_export(analysis.packets, tmp_path / "x.csv", with_paths=True)
    with pytest.raises(UsageError):
        write_export([1, 2], tmp_path / "x.csv")  # type: ignore[arg-type]


def test_missing_table_and_bad_files(analysis, tmp_path):
    out = tmp_path / "x.csv"
    write_export(analysis, out)
    with pytest.raises(PcaploopError, match="with-loops"):
        read_export(out, table="loops")
    with pytest.raises(UsageError):
        read_export(out, table="nope")  # type: ignore[arg-type]
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    pytest.importorskip("pyarrow")
    with pytest.raises(PcaploopError, match=r"bad\.parquet"):
        read_export(bad)
    assert write_export(analysis, tmp_path / "new" / "dir" / "x.csv")  # directories made
    (tmp_path / "plain").write_text("a file, not a directory")
    with pytest.raises(PcaploopError, match="cannot create directory"):
        write_export(analysis, tmp_path / "plain" / "x.csv")


def test_missing_pyarrow_is_a_clear_error(analysis, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(PcaploopError, match=r"pcaploop\[parquet\]"):
        write_export(analysis, tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists()


def _app() -> typer.Typer:
    from pcaploop.cli import app

    return app


def test_cli_command_writes_what_the_library_writes(analysis, incident_captures, tmp_path):
    out = tmp_path / "cli.parquet"
    pytest.importorskip("pyarrow")
    res = CliRunner().invoke(
        _app(), ["export", *incident_captures, "-o", str(out), "--with-paths", "--with-loops"]
    )
    assert res.exit_code == 0, res.output
    assert f"wrote {out}" in res.output
    _same(analysis.packets.frame(), read_export(out))
    _same(analysis.loops_frame(), read_export(out, table="loops"))
    assert len(read_export(out, table="paths")) == len(analysis.path_rows())


def test_cli_packets_only_and_help(incident_captures, tmp_path):
    out = tmp_path / "cli.csv"
    runner = CliRunner()
    res = runner.invoke(_app(), ["export", *incident_captures, "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert out.exists() and not export_paths(out)["paths"].exists()
    res = runner.invoke(_app(), ["export", "--help"])
    assert "Example:" in res.output and "--ifmap" in res.output
    res = runner.invoke(_app(), ["export", *incident_captures, "-o", str(tmp_path / "x.txt")])
    assert isinstance(res.exception, UsageError)


def test_installed_cli_has_export(incident_captures, tmp_path):
    """``pcaploop export`` exists on the real app, and errors are one ``Error:`` line."""
    from pcaploop.cli import app

    assert "export" in typer.main.get_command(app).commands, "pcaploop export is missing"
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "pcaploop",
            "export",
            *incident_captures,
            "-o",
            str(tmp_path / "x.txt"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert (
        bad.returncode == 2
        and bad.stderr.startswith("Error: ")
        and len(bad.stderr.strip().splitlines()) == 1
    ), bad.stderr
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "pcaploop",
            "export",
            *incident_captures,
            "-o",
            str(tmp_path / "x.csv"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert ok.returncode == 0, ok.stderr
    assert (
        json.loads(Path(str(tmp_path / "x.csv") + ".dtypes.json").read_text())["table"] == "packets"
    )
