"""Evidence bundles: ``pcaploop capture`` writes one on the host, and every command
that takes CAPTURE arguments reads one (``docs/design.md``, *Pipeline*).

A bundle holds one pcap per interface, the host's own state (routes,
neighbours, addresses, links, the sysctls that matter) and a manifest with the
interfaces' roles and why, tcpdump's statistics and the SHA-256 of every file.
It sits beside :mod:`pcaploop.ingest`: it names the capture points and gives
their roles; the analysis cites the saved routes and sysctls.

>>> b = load_bundle("bundle/")                  # doctest: +SKIP
>>> b.route_for("203.0.113.7").text             # doctest: +SKIP
'203.0.113.7 dev tap101 scope link'
"""

from __future__ import annotations

from .discover import Link as Link
from .discover import discover as discover
from .model import Bundle as Bundle
from .model import BundleCapture as BundleCapture
from .model import BundleInputs as BundleInputs
from .model import CaptureStats as CaptureStats
from .model import Neighbour as Neighbour
from .model import Route as Route
from .model import Sysctls as Sysctls
from .model import expand_captures as expand_captures
from .model import is_bundle as is_bundle
from .model import load_bundle as load_bundle
