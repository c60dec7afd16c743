"""A bounded count of packets per (capture point, source address): ``info``'s top talkers.

Why: a sort per block to count sources cost ``info`` seconds on millions of
packets, and a capture of spoofed floods has as many sources as packets.  An
open-addressing table of fixed size counts each row in O(1) (compiled); when
it fills, the smallest counts are dropped (the "Frequent" algorithm of
Misra and Gries, pruned in batches), so memory stays bounded and every count
kept is a lower bound, short by at most :attr:`TalkerCounts.error`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._jit import njit

#: slots of the table (a power of two); it is pruned when half of them are used
SLOTS = 1 << 16
_EMPTY = np.int64(-1)


@njit
def _count(  # pragma: no cover - compiled; run as Python by the no-JIT test pass
    pt, hi, lo, w, start, t_pt, t_hi, t_lo, t_n, used
):
    """Count rows ``start…`` into the table (``w[i]`` each, or 1 when ``w`` is empty);
    stop when it is half full.  Returns the first row not counted (``len(pt)`` when
    all were)."""
    weighted = len(w) > 0
    mask = len(t_pt) - 1
    limit = len(t_pt) // 2
    n = len(pt)
    for i in range(start, n):
        p = np.int64(pt[i])
        h = np.uint64(hi[i])
        lw = np.uint64(lo[i])
        k = (h * np.uint64(0x9E3779B97F4A7C15)) ^ lw ^ (np.uint64(p) << np.uint64(40))
        k = k ^ (k >> np.uint64(31))
        s = np.int64(k & np.uint64(mask))
        while True:
            if t_pt[s] == -1:
                if used[0] >= limit:
                    return i
                t_pt[s] = p
                t_hi[s] = h
                t_lo[s] = lw
                t_n[s] = w[i] if weighted else 1
                used[0] += 1
                break
            if t_pt[s] == p and t_hi[s] == h and t_lo[s] == lw:
                t_n[s] += w[i] if weighted else 1
                break
            s = (s + 1) & mask
    return n


class TalkerCounts:
    """Packets per (point, source address), bounded (:data:`SLOTS`)."""

    def __init__(self, slots: int = SLOTS) -> None:
        self._reset(slots)

    def _reset(self, slots: int) -> None:
        #: unpickled counts not yet in the table (see __setstate__)
        self._packed: tuple[np.ndarray, ...] | None = None
        self._slots = slots
        self.pt = np.full(slots, _EMPTY, np.int64)
        self.hi = np.zeros(slots, np.uint64)
        self.lo = np.zeros(slots, np.uint64)
        self.n = np.zeros(slots, np.int64)
        self.used = np.zeros(1, np.int64)
        #: the sum of the largest count dropped at each prune: every kept count may be
        #: short by this much
        self.error = 0
        self._ones = np.zeros(0, np.int64)

    def add(
        self, point: np.ndarray, hi: np.ndarray, lo: np.ndarray, n: np.ndarray | None = None
    ) -> None:
        """Count one packet per row (``n``: ``n[i]`` packets for row ``i``)."""
        self._unpack()
        w = self._ones if n is None else n.astype(np.int64, copy=False)
        with np.errstate(over="ignore"):  # the hash wraps by design (numpy warns uncompiled)
            start = 0
            while start < len(point):
                start = int(
                    _count(point, hi, lo, w, start, self.pt, self.hi, self.lo, self.n, self.used)
                )
                if start < len(point):
                    self._prune()

    def entries(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The counts kept: (point, hi, lo, packets) arrays."""
        if self._packed is not None:
            pt, hi, lo, n = self._packed
            return pt, hi, lo, n
        live = np.flatnonzero(self.pt != _EMPTY)
        return self.pt[live], self.hi[live], self.lo[live], self.n[live]

    def merge(self, other: TalkerCounts, points: np.ndarray) -> None:
        """Add ``other``'s counts, its point ``j`` being ours ``points[j]``; a count
        may then be short by both tables' errors."""
        pt, hi, lo, n = other.entries()
        self.add(points[pt].astype(np.int64), hi, lo, n)
        self.error += other.error

    def __getstate__(self) -> dict[str, Any]:
        """Pickled as the counts kept, not the table (a piece's counts go between
        processes: :mod:`pcaploop.ingest._parallel`)."""
        return {"slots": self._slots, "entries": self.entries(), "error": self.error}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """The counts are put in a table only when it is used: a piece's counts are
        only read (:meth:`merge`), and a fresh table costs more than they do."""
        self._reset(0)
        self._slots = int(state["slots"])
        self._packed = tuple(state["entries"])
        self.error = int(state["error"])

    def _unpack(self) -> None:
        """Build the table of unpickled counts (see :meth:`__setstate__`)."""
        if self._packed is None:
            return
        packed, error = self._packed, self.error
        self._reset(self._slots)
        self.add(*packed)
        self.error = error

    def _prune(self) -> None:
        """Keep the largest quarter of the counts, rehashed into an empty table."""
        live = np.flatnonzero(self.pt != _EMPTY)
        keep_n = len(self.pt) // 4
        order = np.argpartition(-self.n[live], keep_n - 1)
        keep, drop = live[order[:keep_n]], live[order[keep_n:]]
        if len(drop):  # a source dropped again later loses at most this much each time
            self.error += int(self.n[drop].max())
        pt, hi, lo, n = self.pt[keep], self.hi[keep], self.lo[keep], self.n[keep]
        self.pt.fill(_EMPTY)
        self.n.fill(0)
        self.used[0] = 0
        _count(pt, hi, lo, n, 0, self.pt, self.hi, self.lo, self.n, self.used)

    def top(self, point: int, k: int) -> list[tuple[int, int, int]]:
        """The ``k`` largest (hi, lo, packets) of ``point``, largest first."""
        self._unpack()
        sel = np.flatnonzero(self.pt == point)
        o = sel[np.lexsort((self.lo[sel], self.hi[sel], -self.n[sel]))][:k]
        return [(int(self.hi[s]), int(self.lo[s]), int(self.n[s])) for s in o]
