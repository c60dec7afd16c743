"""The public API: complete ``__all__``, documented and typed, importable without the CLI stack.

A notebook user should find everything the CLI does one ``import pcaploop``
away; these tests keep that true as modules grow.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import pcaploop

ROOT = Path(__file__).resolve().parents[1]
PLOTS = [
    "plot_timeline",
    "plot_ttl_staircase",
    "plot_amplification",
    "plot_path_ladder",
    "plot_distributions",
    "plot_copies",
    "plot_cycle_time",
]


def _modules() -> list[str]:
    """Every module of the package (imported here: their ``__all__`` is checked)."""
    out = []
    for m in pkgutil.walk_packages(pcaploop.__path__, "pcaploop."):
        if m.name.endswith("__main__"):
            continue
        out.append(m.name)
    return sorted(out)


def _public_objects() -> list[tuple[str, object]]:
    return [
        (n, getattr(pcaploop, n)) for n in pcaploop.__all__ if callable(getattr(pcaploop, n, None))
    ]


def test_all_is_a_sorted_literal_of_every_export():
    """``__all__`` is written out (a literal, for readers and tools) and sorted, and names
    exactly what the lazy table exports."""
    tree = ast.parse((ROOT / "pcaploop" / "__init__.py").read_text())
    literal = [
        n
        for n in tree.body
        if isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in n.targets)
    ]
    assert len(literal) == 1 and isinstance(literal[0].value, ast.List)
    assert all(isinstance(e, ast.Constant) for e in literal[0].value.elts)
    assert pcaploop.__all__ == sorted(pcaploop.__all__)
    assert set(pcaploop.__all__) == set(pcaploop._EXPORTS) | {"__version__"}
    assert len(set(pcaploop.__all__)) == len(pcaploop.__all__)


def test_all_names_exist():
    missing = [n for n in pcaploop.__all__ if not hasattr(pcaploop, n)]
    assert not missing, f"in __all__ but not defined: {missing}"


@pytest.mark.parametrize("module", _modules())
def test_every_public_name_of_a_module_is_exported(module):
    """A module's ``__all__`` says what it offers users; all of it is one
    ``import pcaploop`` away (under its own name or an alias).  Internal modules
    declare no ``__all__``."""
    mod = importlib.import_module(module)
    exported = {id(getattr(pcaploop, n)) for n in pcaploop.__all__}
    missing = [n for n in getattr(mod, "__all__", []) if id(getattr(mod, n)) not in exported]
    assert not missing, f"{module}.__all__ names {missing}, missing from pcaploop.__all__"


def test_every_export_is_declared_by_its_module():
    for name, target in pcaploop._EXPORTS.items():
        module, _, attr = target.partition(":")
        mod = importlib.import_module(f"pcaploop.{module}")
        assert (attr or name) in getattr(mod, "__all__", []), (
            f"pcaploop.{name}: add {attr or name!r} to pcaploop.{module}.__all__"
        )


def test_no_public_name_shadows_a_submodule():
    """``from .extract import extract`` would turn ``pcaploop.extract`` into the function and
    break every later ``from . import extract``."""
    clash = [
        n
        for n in pcaploop.__all__
        if not n.startswith("__") and importlib.util.find_spec(f"pcaploop.{n}") is not None
    ]
    assert not clash, f"names in __all__ that shadow submodules: {clash}"


def _annotation_problems(fn, skip_first: bool = False) -> list[str]:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return []
    params = list(sig.parameters.values())[1 if skip_first else 0 :]
    bad = [p.name for p in params if p.annotation is inspect.Parameter.empty]
    if sig.return_annotation is inspect.Signature.empty:
        bad.append("return")
    return bad


@pytest.mark.parametrize(
    "name,obj", _public_objects(), ids=lambda v: v if isinstance(v, str) else ""
)
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
    missing = [n for n in PLOTS if n not in pcaploop.__all__]
    assert not missing, f"plot functions missing from pcaploop.__all__: {missing}"
    for n in PLOTS:
        params = inspect.signature(getattr(pcaploop, n)).parameters
        assert "ax" in params and params["ax"].default is None, f"{n}{list(params)}: want ax=None"
        first = next(iter(params.values()))
        assert first.default is inspect.Parameter.empty, f"{n}: the Analysis comes first"


def test_report_writer_is_exported():
    assert "write_report" in pcaploop.__all__


def test_export_functions_are_exported():
    for n in ("write_export", "read_export", "export_paths", "read_packets", "analyze", "load"):
        assert n in pcaploop.__all__, n


def test_names_survive_any_import_order():
    """Importing a submodule sets ``pcaploop.<submodule>``; no public name may turn into one."""
    code = (
        "import importlib, pkgutil, types, pcaploop\n"
        "for m in pkgutil.walk_packages(pcaploop.__path__, 'pcaploop.'):\n"
        "    if not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n"
        "print(','.join(n for n in pcaploop.__all__ "
        "if isinstance(getattr(pcaploop, n), types.ModuleType)))"
    )
    res = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "", f"pcaploop.{res.stdout.strip()} became a module"


def test_import_does_not_pull_in_the_cli_stack():
    """``import pcaploop`` (and the export module) must not load typer, rich or matplotlib."""
    code = (
        "import sys, pcaploop, pcaploop.present.export; "
        "print(','.join(m for m in ('typer', 'rich', 'matplotlib') if m in sys.modules))"
    )
    res = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "", f"import pcaploop imported {res.stdout.strip()}"
