"""What is in a set of captures: per capture point counts, directions, protocols, talkers.

Streams: only per-point counters are kept, never the packets table, so
``pcaploop info`` works on captures larger than memory.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import schema as S
from ..addr import to_text
from .loader import Loader, Progress
from .points import CapturePoint
from .specs import CaptureSpec, capture_specs

__all__ = ["capture_info"]


@dataclass
class PointInfo:
    """Counters for one capture point, beside its accounting."""

    point: CapturePoint
    directions: Counter = field(default_factory=Counter)
    protocols: Counter = field(default_factory=Counter)
    talkers: Counter = field(default_factory=Counter)  # (hi, lo) -> packets
    bytes: int = 0


def _proto_name(p: int) -> str:
    return S.PROTO_NAMES.get(p, str(p))


def capture_info(
    captures: Sequence[CaptureSpec | str | os.PathLike[str]],
    ifmap: dict[int, str] | Sequence[str] | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Summarise captures without keeping their packets.

    >>> capture_info(["samples/incident/uplink.pcap"])["captures"][0]["records"]  # doctest: +SKIP
    1234
    """
    specs, imap = capture_specs(captures, ifmap)
    loader = Loader(specs, imap)
    infos: dict[int, PointInfo] = {}
    for cols, _arp in loader.run(progress, reuse=True):
        pts = cols["point"]
        for p in np.unique(pts):
            sel = pts == p
            pi = infos.setdefault(int(p), PointInfo(loader.points[int(p)]))
            d = np.bincount(cols["direction"][sel], minlength=3)
            for code, name in enumerate(S.DIRECTIONS):
                if d[code]:
                    pi.directions[name] += int(d[code])
            pr = np.bincount(cols["protocol"][sel], minlength=256)
            for code in np.flatnonzero(pr):
                pi.protocols[_proto_name(int(code))] += int(pr[code])
            pi.bytes += int(cols["wirelen"][sel].sum())
            pairs = np.empty(int(sel.sum()), dtype=[("h", "<u8"), ("l", "<u8")])
            pairs["h"], pairs["l"] = cols["src_hi"][sel], cols["src_lo"][sel]
            uniq, counts = np.unique(pairs, return_counts=True)
            for u, c in zip(uniq, counts):
                pi.talkers[(int(u["h"]), int(u["l"]))] += int(c)
    out = []
    for k, pt in enumerate(loader.points):
        pi = infos.get(k, PointInfo(pt))
        out.append(
            {
                **pt.to_json(),
                "bytes": pi.bytes,
                "directions": dict(pi.directions),
                "protocols": dict(pi.protocols.most_common()),
                "top_talkers": [
                    {"address": to_text(*a), "packets": n} for a, n in pi.talkers.most_common(5)
                ],
            }
        )
    return {"captures": out, "warnings": list(loader.warnings)}
