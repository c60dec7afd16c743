"""What analyze, paths, info and --help print in a real 80-column terminal (tmux).

The console script runs in a tmux pane 80 columns wide; ``capture-pane -J``
joins the lines tmux had to wrap, so a joined line wider than 80 is text
that ran off the edge.  Every count of the JSON document must appear whole.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from loopgen import tunnel_loop, write

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples"
WIDTH = 80

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def _pcaploop() -> list[str]:
    exe = Path(sys.executable).with_name("pcaploop")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "pcaploop"]


def in_tmux(args: list[str], cwd: Path, tmp: Path) -> str:
    """The pane text (wrapped lines joined) after running pcaploop ``args`` in an 80×50
    tmux pane."""
    sock = f"pcaploop-{uuid.uuid4().hex[:8]}"
    conf = tmp / "tmux.conf"
    conf.write_text("set -g history-limit 50000\n")
    done = tmp / f"done-{sock}"
    cmd = " ".join(_q(a) for a in [*_pcaploop(), *args])
    shell = f"cd {_q(str(cwd))} && {cmd}; echo $? > {_q(str(done))}; sleep 600"
    env = dict(os.environ, PYTHONPATH=str(REPO), TERM="xterm-256color")
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    base = ["tmux", "-L", sock, "-f", str(conf)]
    subprocess.run(
        [*base, "new-session", "-d", "-x", str(WIDTH), "-y", "50", shell],
        check=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 240
        while not done.exists():
            assert time.monotonic() < deadline, "pcaploop did not finish in the pane"
            time.sleep(0.2)
        time.sleep(0.3)
        out = subprocess.run(
            [*base, "capture-pane", "-p", "-J", "-S", "-", "-E", "-"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        subprocess.run([*base, "kill-server"], capture_output=True)
    assert done.read_text().strip() in ("0", "1"), out[-2000:]
    return out


def _q(s: str) -> str:
    return "'" + s.replace("'", "'\\''") + "'"


def _fits(text: str) -> None:
    wide = [ln for ln in text.splitlines() if len(ln.rstrip()) > WIDTH]
    assert not wide, "lines wider than 80 columns:\n" + "\n".join(wide[:5])


def _numbers_whole(text: str, doc: dict) -> None:
    flat = " ".join(text.split())
    for lp in doc["loops"][:10]:
        for key in ("looping_packets", "observations"):
            assert f"{lp[key]:,}" in flat, (key, lp[key], flat[:3000])


def _json(args: list[str], cwd: Path) -> dict:
    r = subprocess.run(
        [*_pcaploop(), *args, "--json", "-"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    return json.loads(r.stdout)


@pytest.mark.parametrize(
    ("scenario", "inputs"),
    [
        ("incident", ["uplink=uplink.pcap", "tap101=tap101.pcap"]),
        ("incident", ["capture-1.pcap", "capture-2.pcap"]),  # as files come, no names
        ("two-tunnels", ["any.pcap", "--ifmap", "iplink.txt"]),
        ("ipv6-redirect-nd", ["all.pcapng"]),
    ],
)
def test_analyze_in_80_columns(scenario: str, inputs: list[str], tmp_path: Path) -> None:
    cwd = SAMPLES / scenario
    text = in_tmux(["analyze", *inputs], cwd, tmp_path)
    _fits(text)
    _numbers_whole(text, _json(["analyze", *inputs], cwd))
    for line in text.splitlines():  # a fix command is on its own indented line
        if line.lstrip().startswith(("ip route", "ip addr", "sysctl", "nft ")):
            assert line.startswith("    "), line


def test_many_loops_are_summarised(tmp_path: Path) -> None:
    caps: dict[str, list] = {}
    for k in range(30):
        part = tunnel_loop(n=2, dst=f"203.0.113.{10 + k}", t0=1_700_000_000.0 + 20 * k)
        for name, frames in part.items():
            caps.setdefault(name, []).extend(frames)
    args = [a.split("=", 1)[0] + "=" + a.split("=", 1)[1] for a in write(caps, tmp_path)]
    text = in_tmux(["analyze", *args], tmp_path, tmp_path)
    _fits(text)
    assert "30 loop" in text.replace("\n", " ")
    assert "--all" in text  # the rest is one option away
    assert len(text.splitlines()) < 150, "30 loops printed in full"


def test_paths_info_and_help_in_80_columns(tmp_path: Path) -> None:
    cwd = SAMPLES / "incident"
    for args in (
        ["paths", "uplink=uplink.pcap", "tap101=tap101.pcap"],
        ["info", "uplink.pcap", "tap101.pcap", "any.pcap", "--ifmap", "iplink.txt"],
        ["analyze", "--help"],
        ["--help"],
    ):
        text = in_tmux(args, cwd, tmp_path)
        _fits(text)
        assert text.strip(), args


@pytest.mark.parametrize(
    ("scenario", "inputs", "numbers"),
    [
        ("incident", ["uplink=uplink.pcap", "tap101=tap101.pcap"], ["60", "3,780"]),
        ("ipv6-redirect-nd", ["uplink.pcap"], ["30", "~1,890"]),  # inferred: long lines
    ],
)
def test_watch_in_80_columns(
    scenario: str, inputs: list[str], numbers: list[str], tmp_path: Path
) -> None:
    """watch's events wrap at words under their text; their numbers stay whole (the
    counts are the scenario plan's: 60 packets × 63 copies; 30 × 63 estimated)."""
    text = in_tmux(["watch", *inputs, "--duration", "3"], SAMPLES / scenario, tmp_path)
    _fits(text)
    words = text.split()
    assert "START" in words and "END" in words, text
    for n in numbers:
        assert n in words, (n, text)
    for line in text.splitlines():
        if (
            line.strip()
            and not line[:1].isdigit()
            and not line.startswith(("watching", "duration"))
        ):
            assert line.startswith(" " * 13), line  # a continuation, under the text


def test_watch_event_text_is_not_markup() -> None:
    """A capture point named like rich markup prints as it is (no backslashes)."""
    import io

    from rich.console import Console

    from pcaploop.analysis.watch import LoopEvent
    from pcaploop.present.terminal import watch_event

    ev = LoopEvent("start", 0, "203.0.113.7", ("br0[vlan]",), 1, 63, 63.0, 630.0, 0.1)
    buf = io.StringIO()
    watch_event(Console(file=buf, width=200), ev)
    assert "at br0[vlan]:" in buf.getvalue() and "\\[" not in buf.getvalue()
