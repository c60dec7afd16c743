"""Validate an analysis document against the package's JSON Schema."""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from .errors import PcaploopError


@lru_cache(maxsize=1)
def json_schema() -> dict[str, Any]:
    """The JSON Schema of ``pcaploop analyze --json`` (schema_version 1)."""
    text = resources.files("pcaploop").joinpath("data/analysis.schema.json").read_text()
    return json.loads(text)


def validate_json(doc: dict[str, Any]) -> None:
    """Raise :class:`PcaploopError` naming the first violation, if any.

    >>> validate_json(pcaploop.analyze([...]).to_json())   # doctest: +SKIP
    """
    import jsonschema

    try:
        jsonschema.validate(doc, json_schema())
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(document)"
        raise PcaploopError(f"output does not match the JSON schema at {where}: "
                            f"{exc.message}") from None
