"""The notebooks in notebooks/ are stored clean and still run, so they cannot rot.

Executed with nbclient on the ``python3`` kernel (ipykernel), cwd ``notebooks/``,
120 s per cell, on the bundled incident sample.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

import pcaploop  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("*.ipynb"))
INCIDENT = ROOT / "samples" / "incident"
SAMPLE_FILES = ["uplink.pcap", "tap101.pcap", "any.pcap", "iplink.txt"]
PLOTS = [
    "plot_timeline",
    "plot_ttl_staircase",
    "plot_amplification",
    "plot_path_ladder",
    "plot_distributions",
]
NEEDED = PLOTS + ["write_report", "write_export", "read_export", "capture_info", "analyze"]


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def test_both_notebooks_exist():
    assert {p.name for p in NOTEBOOKS} >= {"incident_walkthrough.ipynb", "template.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_without_outputs(path):
    nb = _read(path)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    dirty = [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and (c.outputs or c.execution_count is not None)
    ]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; clear them before committing"


def test_walkthrough_covers_the_api():
    src = "\n".join(c.source for c in _read(NB_DIR / "incident_walkthrough.ipynb").cells)
    for name in NEEDED + [
        "verdict",
        "loops_frame",
        "implicated_frame",
        "loop_packets",
        "path_rows",
    ]:
        assert name in src, f"the walkthrough does not show {name}"


def _skip_unless_runnable() -> None:
    missing = [f for f in SAMPLE_FILES if not (INCIDENT / f).exists()]
    if missing:
        pytest.skip(f"bundled sample samples/incident/ lacks {', '.join(missing)}")
    absent = [n for n in NEEDED if not hasattr(pcaploop, n)]
    if absent:
        pytest.skip(f"pcaploop does not export {', '.join(absent)} yet (plots/report modules)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_executes(path, monkeypatch):
    _skip_unless_runnable()
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    # the kernel is a subprocess: it must import this checkout and draw without a display
    monkeypatch.setenv(
        "PYTHONPATH",
        os.pathsep.join(
            [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        ),
    )
    # the kernel's own default backend (inline), as a user's Jupyter has it
    monkeypatch.delenv("MPLBACKEND", raising=False)
    monkeypatch.delenv("PCAPLOOP_SAMPLES", raising=False)
    nb = _read(path)
    client = nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NB_DIR)}}
    )
    client.execute()
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert not errors
    # every cell that draws shows its figure there, as a person sees it
    for k, c in enumerate(nb.cells):
        if c.cell_type != "code" or "plot_" not in c.source:
            continue
        images = [
            o["data"]["image/png"]
            for o in c.outputs
            if o.output_type in ("display_data", "execute_result") and "image/png" in o["data"]
        ]
        assert images, f"{path.name} cell {k} draws but shows no image: {c.source[:60]!r}"
        assert all(len(im) > 2000 for im in images), f"{path.name} cell {k}: a blank image"
