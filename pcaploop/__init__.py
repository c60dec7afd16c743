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

#: public name -> "module" or "module:attribute" that defines it
_EXPORTS: dict[str, str] = {
    "Analysis": "analysis",
    "analyze": "analysis",
    "CaptureError": "errors",
    "NotACaptureError": "errors",
    "PcaploopError": "errors",
    "UnsupportedLinkTypeError": "errors",
    "UsageError": "errors",
    "capture_info": "info",
    "export_paths": "export",
    "read_export": "export",
    "write_export": "export",
    "extract_packets": "extract:extract",
    "wireshark_filters": "extract",
    "plot_amplification": "plots:amplification",
    "plot_distributions": "plots:distributions",
    "plot_path_ladder": "plots:path_ladder",
    "plot_timeline": "plots:timeline",
    "plot_ttl_staircase": "plots:ttl_staircase",
    "write_plots": "plots",
    "write_report": "report",
    "CapturePoint": "loader",
    "CaptureSpec": "loader",
    "Packets": "loader",
    "load": "loader",
    "parse_ifmap": "loader",
    "read_packets": "loader",
    "validate_json": "validate",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'pcaploop' has no attribute {name!r}")
    module, _, attr = target.partition(":")
    value = getattr(importlib.import_module(f".{module}", __name__), attr or name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from .analysis import Analysis, analyze
    from .errors import (CaptureError, NotACaptureError, PcaploopError,
                         UnsupportedLinkTypeError, UsageError)
    from .info import capture_info
    from .loader import CapturePoint, CaptureSpec, Packets, load, parse_ifmap, read_packets
    from .validate import validate_json
    from .export import export_paths, read_export, write_export
    from .extract import extract as extract_packets, wireshark_filters
    from .plots import (amplification as plot_amplification, distributions as plot_distributions,
                        path_ladder as plot_path_ladder, timeline as plot_timeline,
                        ttl_staircase as plot_ttl_staircase, write_plots)
    from .report import write_report
