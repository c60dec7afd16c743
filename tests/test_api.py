"""The public API: complete ``__all__``, documented and typed, importable without the CLI stack.

A notebook user should find everything the CLI does one ``import pcaploop``
away; these tests keep that true as modules grow.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import pcaploop

ROOT = Path(__file__).resolve().parents[1]

#: Modules whose public names are meant for users (beyond those already re-exported).
USER_MODULES = ["analysis.pipeline", "errors", "present.export", "ingest.info", "ingest.loader",
                "contract", "present.plots", "present.report", "present.extract"]

#: Public-looking names that are deliberately not part of the API, with the reason.
INTERNAL = {
    "pcaploop.ingest.loader.Loader": "streaming reader behind `info` and benchmarks; users call load()",
    "pcaploop.ingest.info.PointInfo": "per-point counters inside capture_info()",
    "pcaploop.contract.iso_ns": "JSON timestamp helper",
    "pcaploop.contract.json_schema": "the schema file behind validate_json()",
    "pcaploop.present.extract.LoopRows": "building block of extract(); Analysis.loop_packets() for users",
    "pcaploop.present.extract.Selection": "building block of extract()",
    "pcaploop.present.extract.l3_paths": "building block of extract()",
    "pcaploop.present.extract.loop_rows": "building block of extract(); Analysis.loop_packets() for users",
    "pcaploop.present.extract.select": "building block of extract()",
    "pcaploop.present.extract.read_records": "building block of extract()",
    "pcaploop.present.extract.write_pcapng": "building block of extract()",
    "pcaploop.present.plots.traffic_rates": "data behind plot_timeline()",
    "pcaploop.present.plots.ladder_height": "figure sizing for the CLI and report",
    "pcaploop.present.plots.figures": "bare Figures for the CLI and report; users call plot_*()",
    "pcaploop.present.plots.save": "deterministic PNG writer behind write_plots()",
    "pcaploop.present.plots.copies_histogram": "left half of plot_distributions()",
    "pcaploop.present.plots.cycle_time_histogram": "right half of plot_distributions()",
    "pcaploop.present.report.e": "HTML escaping",
    "pcaploop.present.report.md": "Markdown escaping",
    "pcaploop.present.report.events": "timeline rows of the report",
    "pcaploop.present.report.accounting_rows": "accounting rows of the report",
    "pcaploop.present.report.html_report": "behind write_report(.html)",
    "pcaploop.present.report.markdown_report": "behind write_report(.md)",
}

PLOTS = ["plot_timeline", "plot_ttl_staircase", "plot_amplification", "plot_path_ladder",
         "plot_distributions"]


def _exists(module: str) -> bool:
    return importlib.util.find_spec(f"pcaploop.{module}") is not None


def _user_modules() -> list[str]:
    mods = {f"pcaploop.{m}" for m in USER_MODULES if _exists(m)}
    mods |= {getattr(pcaploop, n).__module__ for n in pcaploop.__all__
             if callable(getattr(pcaploop, n, None))}
    return sorted(mods)


def _public_objects() -> list[tuple[str, object]]:
    out = []
    for n in pcaploop.__all__:
        obj = getattr(pcaploop, n, None)
        if callable(obj):
            out.append((n, obj))
    return out


def test_all_names_exist_and_are_unique():
    assert len(set(pcaploop.__all__)) == len(pcaploop.__all__)
    missing = [n for n in pcaploop.__all__ if not hasattr(pcaploop, n)]
    assert not missing, f"in __all__ but not defined: {missing}"


def test_no_public_name_shadows_a_submodule():
    """``from .extract import extract`` would turn ``pcaploop.extract`` into the function and
    break every later ``from . import extract``."""
    clash = [n for n in pcaploop.__all__ if not n.startswith("__") and _exists(n)]
    assert not clash, f"names in __all__ that shadow submodules: {clash}"


@pytest.mark.parametrize("module", _user_modules())
def test_all_is_complete(module):
    mod = importlib.import_module(module)
    names = [n for n, obj in vars(mod).items()
             if not n.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj)
                                           or callable(obj) and hasattr(obj, "__wrapped__"))
             and getattr(obj, "__module__", None) == module]
    exported = {id(getattr(pcaploop, n, None)) for n in pcaploop.__all__}  # aliases count
    forgotten = [n for n in names if id(getattr(mod, n)) not in exported
                 and f"{module}.{n}" not in INTERNAL]
    assert not forgotten, (f"{module} defines public {forgotten}: add them to "
                           "pcaploop.__all__ or to INTERNAL in tests/test_api.py with a reason")


def _annotation_problems(fn, skip_first: bool = False) -> list[str]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return []
    params = list(sig.parameters.values())[1 if skip_first else 0:]
    bad = [p.name for p in params if p.annotation is inspect.Parameter.empty]
    if sig.return_annotation is inspect.Signature.empty:
        bad.append("return")
    return bad


@pytest.mark.parametrize("name,obj", _public_objects(), ids=lambda v: v if isinstance(v, str)
                         else "")
def test_documented_and_typed(name, obj):
    doc = inspect.getdoc(obj) or ""
    assert doc.strip(), f"pcaploop.{name} has no docstring"
    if inspect.isclass(obj):
        if issubclass(obj, BaseException):
            return
        problems = []
        for m, attr in vars(obj).items():
            if m.startswith("_"):
                continue
            fn = attr.fget if isinstance(attr, property) else getattr(attr, "__func__", attr)
            if not inspect.isfunction(fn):
                continue
            if not inspect.getdoc(fn):
                problems.append(f"{name}.{m}: no docstring")
            bad = _annotation_problems(fn, skip_first=not isinstance(attr, staticmethod))
            if bad:
                problems.append(f"{name}.{m}: no type hints for {bad}")
        assert not problems, "\n".join(problems)
    else:
        assert ">>>" in doc, f"pcaploop.{name}: the docstring needs a short example (>>>)"
        bad = _annotation_problems(obj)
        assert not bad, f"pcaploop.{name}: no type hints for {bad}"


def test_plot_and_report_functions_are_exported():
    if not _exists("present.plots"):
        pytest.skip("pcaploop.plots does not exist yet")
    missing = [n for n in PLOTS if n not in pcaploop.__all__]
    assert not missing, f"plot functions missing from pcaploop.__all__: {missing}"
    for n in PLOTS:
        params = inspect.signature(getattr(pcaploop, n)).parameters
        assert "ax" in params and params["ax"].default is None, f"{n}{list(params)}: want ax=None"
        first = next(iter(params.values()))
        assert first.default is inspect.Parameter.empty, f"{n}: the Analysis comes first"


def test_report_writer_is_exported():
    if not _exists("present.report"):
        pytest.skip("pcaploop.report does not exist yet")
    assert "write_report" in pcaploop.__all__


def test_export_functions_are_exported():
    for n in ("write_export", "read_export", "export_paths", "read_packets", "analyze", "load"):
        assert n in pcaploop.__all__, n


def test_names_survive_any_import_order():
    """Importing a submodule sets ``pcaploop.<submodule>``; no public name may turn into one."""
    code = ("import importlib, pkgutil, types, pcaploop\n"
            "for m in pkgutil.iter_modules(pcaploop.__path__):\n"
            "    if m.name != '__main__':\n"
            "        importlib.import_module('pcaploop.' + m.name)\n"
            "print(','.join(n for n in pcaploop.__all__ "
            "if isinstance(getattr(pcaploop, n), types.ModuleType)))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "", f"pcaploop.{res.stdout.strip()} became a module"


def test_import_does_not_pull_in_the_cli_stack():
    """``import pcaploop`` (and the export module) must not load typer, rich or matplotlib."""
    code = ("import sys, pcaploop, pcaploop.present.export; "
            "print(','.join(m for m in ('typer', 'rich', 'matplotlib') if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "", f"import pcaploop imported {res.stdout.strip()}"
