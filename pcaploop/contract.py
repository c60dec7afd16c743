"""The JSON contract of ``pcaploop analyze --json``: its schema, validation, times.

The document's shape is described in ``docs/design.md`` (section "JSON
contract") and by the JSON Schema shipped in ``pcaploop/data``; every
output is validated against it before it is written.
"""

from __future__ import annotations

import json
import sys
from functools import lru_cache
from importlib import resources
from typing import Any

from .errors import PcaploopError

__all__ = ["json_schema", "validate_json"]


#: version of the document's layout; bumped only when a field changes meaning
SCHEMA_VERSION = 1


def iso_ns(ns: int | None) -> str | None:
    """ISO-8601 UTC with nanoseconds (``2026-12-03T14:12:23.000000001Z``); ``None`` stays."""
    if ns is None:
        return None
    import datetime as dt

    sec, frac = divmod(int(ns), 1_000_000_000)
    t = dt.datetime.fromtimestamp(sec, tz=dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


@lru_cache(maxsize=1)
def json_schema() -> dict[str, Any]:
    """The JSON Schema of ``pcaploop analyze --json`` (schema_version 1).

    >>> json_schema()["properties"]["loops"]["type"]
    'array'
    """
    text = resources.files("pcaploop").joinpath("data/analysis.schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


#: optional format-checker libraries jsonschema imports if they are installed; the
#: schema uses no ``format`` keyword, and rfc3987_syntax alone compiles ~40 grammars
#: at import (seconds), which JupyterLab's dependencies install
_UNUSED_FORMAT_LIBS = ("rfc3987_syntax", "isoduration", "uri_template", "webcolors")


def _jsonschema() -> Any:
    """jsonschema, imported without the format libraries this schema never needs."""
    if "jsonschema" in sys.modules:
        return sys.modules["jsonschema"]
    blocked = [m for m in _UNUSED_FORMAT_LIBS if m not in sys.modules]
    for m in blocked:
        sys.modules[m] = None  # type: ignore[assignment]  # makes "import m" fail
    try:
        import jsonschema
    finally:
        for m in blocked:
            if sys.modules.get(m, 0) is None:
                del sys.modules[m]
    return jsonschema


def validate_json(doc: dict[str, Any], max_items: int | None = None) -> None:
    """Raise :class:`PcaploopError` naming the first violation, if any.

    ``max_items``: check only the first that many items of each array.  Why: the
    CLI checks its own output before writing it, and every item of an array is
    made by the same code; checking thousands of loops cost seconds (the tests
    check whole documents).

    >>> validate_json(pcaploop.analyze([...]).to_json())   # doctest: +SKIP
    """
    jsonschema = _jsonschema()
    if max_items is not None:
        doc = _first_items(doc, max_items)
    try:
        jsonschema.validate(doc, json_schema())
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(document)"
        raise PcaploopError(
            f"output does not match the JSON schema at {where}: {exc.message}"
        ) from None


def _first_items(value: Any, n: int) -> Any:
    """``value`` with every list cut to its first ``n`` items (copies; nothing shared
    is changed)."""
    if isinstance(value, dict):
        return {k: _first_items(v, n) for k, v in value.items()}
    if isinstance(value, list):
        return [_first_items(v, n) for v in value[:n]]
    return value
