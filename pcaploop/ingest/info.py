"""What is in a set of captures: per capture point counts, directions, protocols, talkers.

Streams: only per-point counters are kept, never the packets table, so
``pcaploop info`` works on captures larger than memory.  Every summary is
made in the same pass as decoding, linear in the packets: directions,
protocols, bytes and truncated frames are bincounts per block, top talkers
a bounded table (:mod:`._talkers`) — nothing is sorted per block.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import schema as S
from ..addr import to_text
from ..decode.protocols import PROTO_NAMES
from ._talkers import TalkerCounts
from .loader import Loader, Progress
from .specs import CaptureSpec, capture_specs

__all__ = ["capture_info"]

#: top talkers listed per capture point
TOP_TALKERS = 5
_PROTOS = 256
_HASH_CHUNK = 1 << 20


class _Counters:
    """Per point bincounts, grown as points appear."""

    def __init__(self) -> None:
        self.directions = np.zeros((0, len(S.DIRECTIONS)), np.int64)
        self.protocols = np.zeros((0, _PROTOS), np.int64)
        self.bytes = np.zeros(0, np.int64)
        self.truncated = np.zeros(0, np.int64)
        self.talkers = TalkerCounts()

    def _grow(self, n: int) -> None:
        have = len(self.bytes)
        if n <= have:
            return
        extra = n - have
        self.directions = np.vstack(
            [self.directions, np.zeros((extra, len(S.DIRECTIONS)), np.int64)]
        )
        self.protocols = np.vstack([self.protocols, np.zeros((extra, _PROTOS), np.int64)])
        self.bytes = np.r_[self.bytes, np.zeros(extra, np.int64)]
        self.truncated = np.r_[self.truncated, np.zeros(extra, np.int64)]

    def add(self, cols: dict[str, np.ndarray]) -> None:
        pts = cols["point"]
        if not len(pts):
            return
        trunc = (cols["flags"] & S.F_TRUNCATED) != 0
        p0 = int(pts[0])
        if int(pts.min()) == int(pts.max()):  # the usual block: one point
            self._grow(p0 + 1)
            self.directions[p0] += np.bincount(cols["direction"], minlength=len(S.DIRECTIONS))
            self.protocols[p0] += np.bincount(cols["protocol"], minlength=_PROTOS)
            self.bytes[p0] += int(cols["wirelen"].sum(dtype=np.int64))
            self.truncated[p0] += int(trunc.sum())
        else:
            n = int(pts.max()) + 1
            self._grow(n)
            p = pts.astype(np.int64)
            nd = len(S.DIRECTIONS)
            self.directions[:n] += np.bincount(
                p * nd + cols["direction"], minlength=n * nd
            ).reshape(n, nd)
            self.protocols[:n] += np.bincount(
                p * _PROTOS + cols["protocol"], minlength=n * _PROTOS
            ).reshape(n, _PROTOS)
            self.bytes[:n] += np.bincount(p, weights=cols["wirelen"], minlength=n).astype(np.int64)
            self.truncated[:n] += np.bincount(p[trunc], minlength=n)
        self.talkers.add(pts, cols["src_hi"], cols["src_lo"])

    def merge(self, other: _Counters, points: np.ndarray) -> None:
        """Add counters of a piece counted apart, its point ``j`` being our ``points[j]``."""
        for j in range(len(other.bytes)):
            p = int(points[j])
            self._grow(p + 1)
            self.directions[p] += other.directions[j]
            self.protocols[p] += other.protocols[j]
            self.bytes[p] += other.bytes[j]
            self.truncated[p] += other.truncated[j]
        self.talkers.merge(other.talkers, points)


def file_sha256(path: str) -> str:
    """SHA-256 of a file's bytes as stored (compressed files: of the compressed bytes)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def capture_info(
    captures: Sequence[CaptureSpec | str | os.PathLike[str]],
    ifmap: dict[int, str] | Sequence[str] | None = None,
    progress: Progress | None = None,
    sha256: bool = False,
    jobs: int = 1,
) -> dict[str, Any]:
    """Summarise captures without keeping their packets.

    ``sha256``: also hash every file (chain of custody for a ticket); it
    reads each file once more, which costs more than the summaries.
    ``jobs``: count large inputs in that many processes (:mod:`._parallel`);
    the summary is the same, but for ``top_talkers`` when they are not exact
    (each count within the stated error either way).

    >>> capture_info(["samples/incident/uplink.pcap"])["captures"][0]["records"]  # doctest: +SKIP
    1234
    """
    specs, imap = capture_specs(captures, ifmap)
    loader = Loader(specs, imap)
    cnt = loader.aggregate(_Counters, progress, jobs=jobs)
    cnt._grow(len(loader.points))
    out = []
    exact = cnt.talkers.error == 0
    for k, pt in enumerate(loader.points):
        d = cnt.directions[k]
        pr = cnt.protocols[k]
        protos = sorted(
            ((PROTO_NAMES.get(c, str(c)), int(pr[c])) for c in np.flatnonzero(pr).tolist()),
            key=lambda x: (-x[1], x[0]),
        )
        out.append(
            {
                **pt.to_json(),
                "snaplen": pt.snaplen,
                "truncated": int(cnt.truncated[k]),
                "bytes": int(cnt.bytes[k]),
                "directions": {name: int(d[c]) for c, name in enumerate(S.DIRECTIONS) if d[c]},
                "protocols": dict(protos),
                "top_talkers": [
                    {"address": to_text(h, lo), "packets": n}
                    for h, lo, n in cnt.talkers.top(k, TOP_TALKERS)
                ],
                "top_talkers_exact": exact,
            }
        )
    files = []
    for spec in specs:
        try:
            size: int | None = os.stat(spec.path).st_size
        except OSError:
            size = None
        files.append(
            {
                "path": spec.path,
                "size": size,
                "sha256": file_sha256(spec.path) if sha256 else None,
            }
        )
    return {"captures": out, "files": files, "warnings": list(loader.warnings)}
