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

from ._version import __version__

#: public name -> "module" or "module:attribute" that defines it
_EXPORTS: dict[str, str] = {
    "Analysis": "analysis.pipeline",
    "analyze": "analysis.pipeline",
    "CaptureError": "errors",
    "NotACaptureError": "errors",
    "PcaploopError": "errors",
    "UnsupportedLinkTypeError": "errors",
    "UsageError": "errors",
    "capture_info": "ingest.info",
    "export_paths": "present.export",
    "read_export": "present.export",
    "write_export": "present.export",
    "extract_packets": "present.extract:extract",
    "wireshark_filters": "present.extract",
    "plot_amplification": "present.plots:amplification",
    "plot_distributions": "present.plots:distributions",
    "plot_path_ladder": "present.plots:path_ladder",
    "plot_timeline": "present.plots:timeline",
    "plot_ttl_staircase": "present.plots:ttl_staircase",
    "write_plots": "present.plots",
    "write_report": "present.report",
    "CapturePoint": "ingest.loader",
    "CaptureSpec": "ingest.loader",
    "Packets": "ingest.loader",
    "load": "ingest.loader",
    "parse_ifmap": "ingest.loader",
    "read_packets": "ingest.loader",
    "validate_json": "contract",
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
    from .analysis.pipeline import Analysis, analyze
    from .errors import (CaptureError, NotACaptureError, PcaploopError,
                         UnsupportedLinkTypeError, UsageError)
    from .ingest.info import capture_info
    from .ingest.loader import CapturePoint, CaptureSpec, Packets, load, parse_ifmap, read_packets
    from .contract import validate_json
    from .present.export import export_paths, read_export, write_export
    from .present.extract import extract as extract_packets, wireshark_filters
    from .present.plots import (amplification as plot_amplification, distributions as plot_distributions,
                        path_ladder as plot_path_ladder, timeline as plot_timeline,
                        ttl_staircase as plot_ttl_staircase, write_plots)
    from .present.report import write_report
