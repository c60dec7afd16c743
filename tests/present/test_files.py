"""Outputs are written atomically, inputs never overwritten, devices never replaced."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pcaploop.errors import UsageError
from pcaploop.present.files import atomic, atomic_path, write_atomic

REPO = Path(__file__).resolve().parents[2]


def test_atomic_replaces_only_when_done(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic(target) as f:
        f.write(b"half")
        raise RuntimeError
    assert target.read_text() == "old"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".pcaploop-")]
    write_atomic(target, b"new")
    assert target.read_text() == "new"


def test_refuses_to_overwrite_an_input(tmp_path: Path) -> None:
    cap = tmp_path / "c.pcap"
    cap.write_bytes(b"x")
    with pytest.raises(UsageError, match="never overwrites its inputs"):
        write_atomic(cap, b"y", inputs=[str(cap)])
    assert cap.read_bytes() == b"x"


@pytest.mark.parametrize("via_path", [False, True])
def test_a_fifo_is_written_in_place(tmp_path: Path, via_path: bool) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    if via_path:
        with atomic_path(fifo) as tmp:
            Path(tmp).write_bytes(b"through a temporary file")
    else:
        write_atomic(fifo, b"straight in")
    reader.join(10)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # still a pipe, not a regular file
    assert got == [b"through a temporary file" if via_path else b"straight in"]


def test_cli_json_to_dev_null_keeps_the_device() -> None:
    """``--json /dev/null`` once replaced /dev/null with a regular file (renamed over it)."""
    before = os.stat("/dev/null")
    assert stat.S_ISCHR(before.st_mode)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pcaploop",
            "info",
            "samples/incident/uplink.pcap",
            "--json",
            "/dev/null",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
