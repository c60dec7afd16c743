"""The CLI maps options to library calls; errors are one line and exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from loopgen import tunnel_loop, write


def cli(*args, check_rc=None):
    p = subprocess.run(
        [sys.executable, "-m", "pcaploop", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check_rc is not None:
        assert p.returncode == check_rc, (p.stdout, p.stderr)
    return p


@pytest.fixture(scope="module")
def incident(tmp_path_factory):
    return write(tunnel_loop(n=5), tmp_path_factory.mktemp("inc"))


def test_analyze_json_stdout_and_fail_on_loop(incident):
    p = cli("analyze", *incident, "--json", "-", check_rc=0)
    doc = json.loads(p.stdout)
    assert doc["summary"]["loops"] == 1
    assert doc["loops"][0]["observations"] == 5 * 63
    cli("analyze", *incident, "--fail-on-loop", check_rc=1)


def test_analyze_terminal_output(incident):
    out = cli("analyze", *incident, check_rc=0).stdout
    assert out.startswith("LOOP:")
    assert "203.0.113.7" in out and "tap101" in out and "rp_filter" in out


def test_paths_and_info(incident):
    out = cli("paths", *incident, "--dst", "203.0.113.7", "--limit", "1", check_rc=0).stdout
    assert "looping" in out and "63" in out
    doc = json.loads(cli("info", *incident, "--json", "-", check_rc=0).stdout)
    assert {c["name"] for c in doc["captures"]} == {"uplink", "tap101"}
    assert all(c["records"] == c["decoded"] + sum(c["skipped"].values()) for c in doc["captures"])


@pytest.mark.parametrize(
    "content,expect",
    [
        (b"just some text\n", "not a pcap or pcapng capture"),
        (b"", "empty file"),
        (b"\xff\xd8\xff\xe0JFIF" + b"\0" * 40, "JPEG"),
    ],
)
def test_bad_input_one_line_exit_2(tmp_path, content, expect):
    f = tmp_path / "bad.pcap"
    f.write_bytes(content)
    for cmd in ("info", "analyze"):
        p = cli(cmd, f, check_rc=2)
        assert p.stderr.startswith(f"Error: {f}") and expect in p.stderr
        assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr


def test_missing_file_and_directory(tmp_path):
    assert "no such file" in cli("analyze", tmp_path / "nope.pcap", check_rc=2).stderr
    assert "directory" in cli("analyze", tmp_path, check_rc=2).stderr


def test_bad_options(incident):
    assert cli("paths", *incident, "--dst", "not-an-ip", check_rc=2).stderr.startswith("Error:")
    assert cli("paths", *incident, "--loop", "9", check_rc=2).stderr.startswith("Error:")
    assert cli("analyze", *incident, "--merge-gap", "-1", check_rc=2).stderr.startswith("Error:")


@pytest.mark.parametrize("cmd", ["info", "analyze", "paths"])
def test_help_has_example(cmd):
    out = cli(cmd, "--help", check_rc=0).stdout
    assert "Example:" in out


def test_one_bad_input_among_several(incident, tmp_path):
    """The other captures are analysed; the bad one is named in the output and the
    JSON; --strict makes it exit 2; alone, it is the one-line error."""
    bad = tmp_path / "notes.txt"
    bad.write_text("not a capture\n")
    p = cli("analyze", *incident, bad, "--json", "-", check_rc=0)
    doc = json.loads(p.stdout)
    assert doc["summary"]["loops"] == 1
    assert any("notes.txt" in w and "without it" in w for w in doc["warnings"])
    p = cli("analyze", *incident, bad, "--strict", check_rc=2)
    assert "--strict" in p.stderr and "notes.txt: not read" in p.stderr
    p = cli("info", bad, check_rc=2)
    assert p.stderr.startswith("Error:") and len(p.stderr.strip().splitlines()) == 1
    # a capture whose only record is cut off: nothing usable, but the others are read
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(Path(str(incident[0]).split("=")[-1]).read_bytes()[:60])
    doc = json.loads(cli("analyze", *incident, cut, "--json", "-", check_rc=0).stdout)
    assert doc["summary"]["loops"] == 1
    assert any("cut.pcap: nothing usable" in w and "without it" in w for w in doc["warnings"])
    p = cli("analyze", cut, check_rc=2)
    assert p.stderr.startswith("Error:") and "nothing usable" in p.stderr


def test_strict_names_skipped_records(tmp_path):
    import fixtures as fx

    f = fx.make_malformed_frames(tmp_path)
    cli("info", f, check_rc=0)
    p = cli("info", f, "--strict", check_rc=2)
    assert "record(s) skipped" in p.stderr and "malformed" in p.stderr


def test_capture_from_standard_input(incident, tmp_path):
    """``tcpdump -w - | pcaploop analyze -``: pcap, pcapng or gzip on stdin, the point
    named stdin; extract reads the evidence again from the kept copy."""
    import gzip

    tap = next(a.split("=", 1)[1] for a in incident if a.startswith("tap101="))
    up = next(a for a in incident if a.startswith("uplink="))
    data = Path(tap).read_bytes()
    for blob in (data, gzip.compress(data)):
        p = subprocess.run(
            [sys.executable, "-m", "pcaploop", "analyze", up, "tap101=-", "--json", "-"],
            input=blob,
            capture_output=True,
            timeout=300,
        )
        assert p.returncode == 0, p.stderr
        doc = json.loads(p.stdout)
        assert doc["loops"][0]["observations"] == 5 * 63
        assert "tap101" in {c["name"] for c in doc["captures"]}
    out = tmp_path / "ev.pcapng"
    p = subprocess.run(
        [sys.executable, "-m", "pcaploop", "extract", "-", "--loop", "1", "-o", str(out)],
        input=data,
        capture_output=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    assert out.stat().st_size > 0
    p = subprocess.run(
        [sys.executable, "-m", "pcaploop", "info", "-"], capture_output=True, timeout=60
    )
    assert p.returncode == 2 or b"Error:" in p.stderr


def _interrupted(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``pcaploop ARGS`` on a 40,000-packet capture (``{cap}`` in ARGS), sent SIGINT
    while it reads: what a person who hit Ctrl-C saw."""
    import os
    import signal
    import time

    repo = Path(__file__).resolve().parents[1]
    cap = tmp_path / "g.pcap"
    subprocess.run(
        [sys.executable, str(repo / "benchmarks" / "gen.py"), str(cap), "--packets", "40000"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    env = dict(os.environ, PCAPLOOP_NO_JIT="1")  # slow enough to interrupt mid-read
    argv = [sys.executable, "-m", "pcaploop", *(a.format(cap=cap) for a in args)]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(4)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=600)
    return subprocess.CompletedProcess(argv, p.returncode, out, err)


def test_ctrl_c_prints_what_was_found_so_far(tmp_path):
    """SIGINT while reading: the analysis of what was read, marked partial in the text
    and the JSON, exit 130, and the JSON file written whole."""
    js = tmp_path / "a.json"
    r = _interrupted(tmp_path, "analyze", "{cap}", "--json", str(js))
    assert r.returncode == 130, r.stderr[-2000:]
    assert r.stdout.startswith("PARTIAL (interrupted): ")
    doc = json.loads(js.read_text())
    assert doc["partial"] is True
    assert 0 < doc["summary"]["observations"] < 40000


def test_ctrl_c_during_report_writes_a_partial_report(tmp_path):
    """Any command that analyses: SIGINT while reading still writes its output, whole,
    saying it is partial, and exits 130."""
    out = tmp_path / "r.md"
    r = _interrupted(tmp_path, "report", "{cap}", "-o", str(out))
    assert r.returncode == 130, r.stderr[-2000:]
    assert "PARTIAL (interrupted): " in out.read_text()


def test_info_jobs_on_a_capture_large_enough_to_cut(tmp_path):
    """``info --jobs 2`` on a 77 MB pcap, as a user runs it: cut into chunks counted
    by two processes, and the same JSON as one process writes."""
    import struct

    import numpy as np
    from fixtures import T0, eth, udp4

    frame = eth(udp4(payload=bytes(900)))
    n = 80_000
    rec = np.zeros(
        n,
        dtype=[
            ("sec", "<u4"),
            ("usec", "<u4"),
            ("incl", "<u4"),
            ("orig", "<u4"),
            ("data", f"V{len(frame)}"),
        ],
    )
    t_us = T0 // 1000 + np.arange(n, dtype=np.int64) * 100
    rec["sec"], rec["usec"] = t_us // 10**6, t_us % 10**6
    rec["incl"] = rec["orig"] = len(frame)
    rec["data"] = np.frombuffer(frame, dtype=f"V{len(frame)}")[0]
    path = tmp_path / "big.pcap"
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1) + rec.tobytes())
    assert path.stat().st_size > 64 << 20
    one = json.loads(cli("info", path, "--jobs", "1", "--json", "-", check_rc=0).stdout)
    two = json.loads(cli("info", path, "-j", "2", "--json", "-", check_rc=0).stdout)
    assert two == one
    assert one["captures"][0]["records"] == one["captures"][0]["decoded"] == n


def test_stdin_spool_removed_at_exit(tmp_path):
    """A capture piped in is spooled to a temporary file, removed when the command
    ends (the exit handlers still run after the heap is frozen at exit)."""
    import os

    data = (Path(__file__).parents[1] / "samples" / "incident" / "uplink.pcap").read_bytes()
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    p = subprocess.run(
        [sys.executable, "-m", "pcaploop", "info", "-", "--json", "-"],
        input=data,
        capture_output=True,
        env=env,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["captures"][0]["records"] > 0
    assert list(tmp_path.iterdir()) == []
