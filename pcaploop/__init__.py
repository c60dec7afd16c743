"""pcaploop: find routing loops between a virtualisation host and its guests in captures.

>>> import pcaploop
>>> a = pcaploop.analyze(["uplink=uplink.pcap", "tap101.pcap"])   # doctest: +SKIP
>>> print(a.verdict)                                               # doctest: +SKIP

Names are imported on first use (PEP 562), so ``pcaploop info`` does not pay
for pandas and matplotlib: start-up time is part of the product.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "Analysis": "analysis",
    "analyze": "analysis",
    "CaptureError": "errors",
    "NotACaptureError": "errors",
    "PcaploopError": "errors",
    "UnsupportedLinkTypeError": "errors",
    "UsageError": "errors",
    "capture_info": "info",
    "CapturePoint": "load",
    "CaptureSpec": "load",
    "Packets": "load",
    "load": "load",
    "parse_ifmap": "load",
    "read_packets": "load",
    "validate_json": "validate",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pcaploop' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from .analysis import Analysis, analyze
    from .errors import (CaptureError, NotACaptureError, PcaploopError,
                         UnsupportedLinkTypeError, UsageError)
    from .info import capture_info
    from .load import CapturePoint, CaptureSpec, Packets, load, parse_ifmap, read_packets
    from .validate import validate_json
