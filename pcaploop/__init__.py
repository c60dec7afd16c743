"""pcaploop: find routing loops between a virtualisation host and its guests in captures.

>>> import pcaploop
>>> a = pcaploop.analyze(["uplink=uplink.pcap", "tap101.pcap"])   # doctest: +SKIP
>>> print(a.verdict)                                               # doctest: +SKIP

The pipeline, one subpackage per stage: :mod:`~pcaploop.read` (capture files →
records), :mod:`~pcaploop.decode` (records → typed columns),
:mod:`~pcaploop.ingest` (capture points, accounting, the packets table),
:mod:`~pcaploop.analysis` (correlate, detect, measure, explain) and
:mod:`~pcaploop.present` (terminal, plots, report, extract, export); beside
ingest, :mod:`~pcaploop.bundle` captures a host's links and state into an
evidence bundle and reads one back.

Names are imported on first use (PEP 562), so ``pcaploop info`` does not pay
for pandas and matplotlib: start-up time is part of the product.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

__all__ = [
    "Analysis",
    "Bounce",
    "Bundle",
    "CaptureError",
    "CapturePoint",
    "CaptureSpec",
    "Implicated",
    "Loop",
    "LoopEvent",
    "LoopEvidence",
    "NotACaptureError",
    "Packets",
    "PcaploopError",
    "PointRole",
    "Summary",
    "UnsupportedLinkTypeError",
    "UsageError",
    "WatchResult",
    "Watcher",
    "__version__",
    "analyze",
    "capture_bundle",
    "capture_info",
    "capture_specs",
    "export_paths",
    "extract_packets",
    "json_schema",
    "load",
    "load_bundle",
    "parse_ifmap",
    "plot_amplification",
    "plot_copies",
    "plot_cycle_time",
    "plot_distributions",
    "plot_path_ladder",
    "plot_timeline",
    "plot_ttl_staircase",
    "read_export",
    "read_packets",
    "validate_json",
    "watch",
    "wireshark_filters",
    "write_export",
    "write_plots",
    "write_report",
]

#: public name -> "module" or "module:attribute" that defines it
_EXPORTS: dict[str, str] = {
    "Analysis": "analysis.pipeline",
    "analyze": "analysis.pipeline",
    "Bounce": "analysis.model",
    "Implicated": "analysis.model",
    "Loop": "analysis.model",
    "LoopEvidence": "analysis.model",
    "PointRole": "analysis.model",
    "Summary": "analysis.model",
    "Bundle": "bundle.model",
    "load_bundle": "bundle.model",
    "capture_bundle": "bundle.capture",
    "WatchResult": "analysis.live",
    "watch": "analysis.live",
    "LoopEvent": "analysis.watch",
    "Watcher": "analysis.watch",
    "CaptureError": "errors",
    "NotACaptureError": "errors",
    "PcaploopError": "errors",
    "UnsupportedLinkTypeError": "errors",
    "UsageError": "errors",
    "json_schema": "contract",
    "validate_json": "contract",
    "capture_info": "ingest.info",
    "Packets": "ingest.loader",
    "load": "ingest.loader",
    "read_packets": "ingest.loader",
    "CapturePoint": "ingest.points",
    "CaptureSpec": "ingest.specs",
    "capture_specs": "ingest.specs",
    "parse_ifmap": "ingest.specs",
    "export_paths": "present.export",
    "read_export": "present.export",
    "write_export": "present.export",
    "extract_packets": "present.extract:extract",
    "wireshark_filters": "present.extract",
    "plot_amplification": "present.plots:amplification",
    "plot_copies": "present.plots:copies_histogram",
    "plot_cycle_time": "present.plots:cycle_time_histogram",
    "plot_distributions": "present.plots:distributions",
    "plot_path_ladder": "present.plots:path_ladder",
    "plot_timeline": "present.plots:timeline",
    "plot_ttl_staircase": "present.plots:ttl_staircase",
    "write_plots": "present.plots",
    "write_report": "present.report",
}


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
    from .analysis.live import WatchResult, watch
    from .analysis.model import Bounce, Implicated, Loop, LoopEvidence, PointRole, Summary
    from .analysis.pipeline import Analysis, analyze
    from .analysis.watch import LoopEvent, Watcher
    from .bundle.capture import capture_bundle
    from .bundle.model import Bundle, load_bundle
    from .contract import json_schema, validate_json
    from .errors import (
        CaptureError,
        NotACaptureError,
        PcaploopError,
        UnsupportedLinkTypeError,
        UsageError,
    )
    from .ingest.info import capture_info
    from .ingest.loader import Packets, load, read_packets
    from .ingest.points import CapturePoint
    from .ingest.specs import CaptureSpec, capture_specs, parse_ifmap
    from .present.export import export_paths, read_export, write_export
    from .present.extract import extract as extract_packets
    from .present.extract import wireshark_filters
    from .present.plots import amplification as plot_amplification
    from .present.plots import copies_histogram as plot_copies
    from .present.plots import cycle_time_histogram as plot_cycle_time
    from .present.plots import distributions as plot_distributions
    from .present.plots import path_ladder as plot_path_ladder
    from .present.plots import timeline as plot_timeline
    from .present.plots import ttl_staircase as plot_ttl_staircase
    from .present.plots import write_plots
    from .present.report import write_report
