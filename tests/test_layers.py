"""The import graph shows the pipeline: read ← decode ← ingest ← analysis ← present ← cli.

``bundle`` (capturing and reading evidence bundles) sits beside ``ingest``: it
names capture points and gives their roles; analysis, present and cli may use it.

Each stage imports only from its own level or below (the base modules —
errors, schema, contract, addr, the compiled-kernel helpers — sit under
all of them), and no two modules import each other, directly or round a
cycle.  Imports inside functions count too: they are how a stage would
quietly reach upward.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "pcaploop"
LAYERS = {
    "read": 1,
    "decode": 2,
    "ingest": 3,
    "bundle": 3,
    "analysis": 4,
    "present": 5,
    "cli": 6,
    "__main__": 6,
}


def _name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _graph() -> dict[str, set[str]]:
    """module → pcaploop modules it imports (relative imports resolved)."""
    modules = {_name(p): p for p in PKG.rglob("*.py")}
    out: dict[str, set[str]] = {}
    for mod, path in modules.items():
        pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:  # `from . import x` may name a module
                    sub = f"{target}.{alias.name}"
                    deps.add(sub if sub in modules else target)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
        out[mod] = {d for d in deps if d in modules and d != mod}
    return out


def _layer(mod: str) -> int:
    parts = mod.split(".")
    if len(parts) == 1:
        return 0  # the package itself: its lazy table reaches everything (PEP 562)
    return LAYERS.get(parts[1], 0)


GRAPH = _graph()


@pytest.mark.parametrize("mod", sorted(m for m in GRAPH if m != "pcaploop"))
def test_imports_only_from_its_level_or_below(mod):
    up = sorted(d for d in GRAPH[mod] if d != "pcaploop" and _layer(d) > _layer(mod))
    assert not up, f"{mod} (level {_layer(mod)}) imports {up} from above"
    assert "pcaploop" not in GRAPH[mod] or _layer(mod) >= LAYERS["cli"] or mod.count(".") == 0, (
        f"{mod} imports the package root: import the module that defines the name"
    )


def test_no_import_cycles():
    """Depth-first search for a back edge in the module graph."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(GRAPH[m]):
            if d == "pcaploop":
                continue
            if state.get(d) == 1:
                cycle = stack[stack.index(d) :] + [d]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state and m != "pcaploop":
            visit(m)


def test_the_layers_exist():
    assert {m.split(".")[1] for m in GRAPH if m.count(".") == 1} >= set(LAYERS) - {"__main__"}
