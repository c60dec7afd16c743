"""pcaploop: find routing loops between a virtualisation host and its guests in captures.

>>> import pcaploop
>>> a = pcaploop.analyze(["uplink=uplink.pcap", "tap101.pcap"])   # doctest: +SKIP
>>> print(a.verdict)                                               # doctest: +SKIP
"""
from __future__ import annotations

__version__ = "0.1.0"

from .analysis import Analysis, analyze
from .errors import (CaptureError, NotACaptureError, PcaploopError, UnsupportedLinkTypeError,
                     UsageError)
from .info import capture_info
from .load import CapturePoint, CaptureSpec, Packets, load, parse_ifmap
from .validate import validate_json


def read_packets(captures, ifmap=None):  # type: ignore[no-untyped-def]
    """The packets table of some captures as a DataFrame.

    >>> df = pcaploop.read_packets(["samples/incident/tap101.pcap"])   # doctest: +SKIP
    """
    return load(captures, ifmap).frame()


__all__ = [
    "__version__",
    "Analysis",
    "CaptureError",
    "CapturePoint",
    "CaptureSpec",
    "NotACaptureError",
    "Packets",
    "PcaploopError",
    "UnsupportedLinkTypeError",
    "UsageError",
    "analyze",
    "capture_info",
    "load",
    "parse_ifmap",
    "read_packets",
    "validate_json",
]
