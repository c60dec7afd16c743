"""A short run of the atheris target (tests/fuzz/fuzz_capture.py), seeded with the
fixture captures, in CI; developers run the target itself for as long as they like."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("atheris")

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def test_atheris_smoke(captures: dict[str, Path], tmp_path: Path) -> None:
    seeds = tmp_path / "corpus"
    seeds.mkdir()
    for name, path in captures.items():
        if path.is_file() and path.stat().st_size < 200_000:
            (seeds / name).write_bytes(b"\0" + path.read_bytes())
    env = dict(os.environ, PCAPLOOP_NO_JIT="1", PYTHONPATH=str(REPO))
    r = subprocess.run(
        [
            sys.executable,
            str(HERE / "fuzz_capture.py"),
            "-runs=3000",
            "-max_total_time=90",
            "-rss_limit_mb=2048",
            f"-artifact_prefix={tmp_path}/",
            str(seeds),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    tail = r.stderr[-3000:]
    assert r.returncode == 0, tail
    assert "Done" in tail or "DONE" in tail, tail
