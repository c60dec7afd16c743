"""The installed console script, as a user meets it: a fresh venv, the README's order.

Why: numba used to cache compiled kernels in the installed package's
``__pycache__``.  Those files are not in pip's record, so after ``pip
install .`` and a later ``pip install -e .`` the left-over directory shadowed
the editable install and ``pcaploop`` failed with "cannot import name
'__version__'".  This test does what the README's two commands do, in that
order, and runs the console script after each.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "samples" / "incident"


def _run(
    cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(
    os.environ.get("PCAPLOOP_NO_JIT") not in (None, "", "0"),
    reason="the compiled-cache layout only matters with numba",
)
def test_console_script_survives_install_then_editable_install(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # the dependencies come from this interpreter's site-packages (no download);
    # a path in a .pth file does not run that directory's own .pth hooks
    (site / "_pcaploop_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "NUMBA_CACHE_DIR", "PCAPLOOP_CACHE_DIR")
    }
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    work = tmp_path / "elsewhere"
    work.mkdir()
    analyze = [
        str(venv / "bin" / "pcaploop"),
        "analyze",
        f"uplink={SAMPLE / 'uplink.pcap'}",
        f"tap101={SAMPLE / 'tap101.pcap'}",
    ]

    r = _run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(REPO)], work, env)
    assert r.returncode == 0, r.stderr[-2000:]
    r = _run(analyze, work, env)
    assert r.returncode == 0 and r.stdout.startswith("LOOP"), r.stderr[-2000:]
    assert not list((site / "pcaploop").rglob("*.nb[ic]")), "compiled cache inside the package"

    r = _run([str(py), "-m", "pip", "install", "-q", "--no-deps", "-e", str(REPO)], work, env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert not (site / "pcaploop").exists(), "the old install left its package directory"
    r = _run(analyze, work, env)
    assert r.returncode == 0 and r.stdout.startswith("LOOP"), r.stderr[-2000:]
    r = _run([str(py), "-c", "import pcaploop; print(pcaploop.__version__)"], work, env)
    assert r.returncode == 0 and r.stdout.strip(), r.stderr[-2000:]
