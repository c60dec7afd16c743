"""Kernels compile only for inputs that repay numba's start-up (pcaploop._jit)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pcaploop import _jit

REPO = Path(__file__).resolve().parents[1]
SMALL = REPO / "samples" / "incident" / "uplink.pcap"
LARGE = REPO / "samples" / "incident" / "tap101.pcap"

PROBE = """
import sys
from pcaploop.ingest.info import capture_info
capture_info([sys.argv[1]])
from pcaploop import _jit
print(_jit.is_active(), "numba" in sys.modules)
"""


def _probe(path: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PCAPLOOP_NO_JIT", "NUMBA_DISABLE_JIT")}
    env["PYTHONPATH"] = str(REPO)
    r = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    return r.stdout.strip()


@pytest.mark.skipif(not _jit.JIT, reason="numba missing or disabled")
def test_small_input_never_imports_numba() -> None:
    assert SMALL.stat().st_size < _jit.ACTIVATE_BYTES
    assert _probe(SMALL) == "False False"


@pytest.mark.skipif(not _jit.JIT, reason="numba missing or disabled")
def test_large_input_runs_compiled() -> None:
    assert LARGE.stat().st_size >= _jit.ACTIVATE_BYTES
    assert _probe(LARGE) == "True True"


def test_module_globals_name_the_compiled_kernels() -> None:
    """After activation, a kernel's module global is numba's dispatcher, not the wrapper
    (compiled kernels that call each other must see numba functions)."""
    if not _jit.JIT:
        pytest.skip("numba missing or disabled")
    from pcaploop.decode import kernel
    from pcaploop.read import walk

    assert _jit.activate()
    for fn in (walk.walk_pcap, kernel.decode_rows):
        assert not isinstance(fn, _jit.Kernel)
        assert hasattr(fn, "py_func")
