"""Streaming correlate: a bounded reorder window and bounded correlation state.

Why: incident captures are gigabytes, and nearly all of their rows are
ordinary traffic, seen once or forwarded once.  Rows enter a buffer block by
block, from all captures in step (:meth:`pcaploop.loader.Loader.merged`).
A fingerprint's rows are correlated together once nothing can join them any
more: no copy of it during ``hold`` (the path gap plus the reorder window)
before the time every open capture has reached.  Of those rows only the
evidence is kept — copies of looping and bouncing packets, same-TTL repeats,
ICMP errors and neighbour advertisements, packets to a destination that an
ICMP error says expired behind the capture point — and everything else is
counted (packets per second per capture point, duplicates) and dropped.
Memory is bounded by the traffic of one window plus the evidence.

>>> w = Window(Options(), lambda: loader.points, loader.point_files)   # doctest: +SKIP
>>> for cols, arp in loader.merged(into=w.into):                       # doctest: +SKIP
...     w.add(cols)
...     w.maybe_flush(loader.horizon)
>>> w.drain()                                                          # doctest: +SKIP
>>> kept, corr = w.finish(loader.canonical_points(), loader.point_files())  # doctest: +SKIP

(:func:`pcaploop.analysis.analyze` does exactly this.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import schema as S
from ..decode import protocols as P
from ..ingest.points import MAX_POINTS, CapturePoint
from ._kernels import group_fingerprints
from .correlate import CORRELATE_COLUMNS, CorrelationState, correlate
from .detect import path_frame
from .model import Correlation, L2Tally
from .options import Options

#: what analyze keeps: the evidence; also every path of a packet seen twice; every row
KEEP_MODES = ("evidence", "paths", "all")
#: copies of one layer-2 loop (destination, capture point) kept as evidence; past
#: it, only counted (:class:`L2Tally`) besides each frame's first copy
L2_KEEP_ROWS = 4096
#: a fingerprint with this many rows held open is correlated at once: no packet has
#: that many replicas (TTL allows 255 per point), so it is a layer-2 storm or a
#: sender repeating itself, and holding it would let memory grow with the capture
MAX_OPEN_GROUP_ROWS = 1 << 16
#: looping paths per loop episode whose copies are kept as evidence (the others are
#: summed up in detect's per-path table, which is kept for every looping packet)
L3_KEEP_PATHS = 2000
#: ... while all loops together have kept fewer copies than this (~30 MB); past it,
#: each new episode keeps the copies of its first L3_KEEP_MIN_PATHS paths only
L3_KEEP_COPIES = 150_000
L3_KEEP_MIN_PATHS = 20
#: what detect's per-path table reads
_PATH_COLUMNS = (
    "point",
    "ttl",
    "time_ns",
    "wirelen",
    "dst_hi",
    "dst_lo",
    "src_hi",
    "src_lo",
    "protocol",
    "ip_version",
    "ip_id",
    "l4_head",
    "fingerprint",
)
_NS = 1_000_000_000
#: what an observer hears of the final rows seen once
_SINGLE_COLUMNS = (
    "time_ns",
    "point",
    "dst_hi",
    "dst_lo",
    "src_hi",
    "src_lo",
    "ttl",
    # what ties an ICMP time-exceeded to the packet it quotes (watch's inferred loops)
    "fingerprint",
    "protocol",
    "icmp_type",
    "inner_version",
    "inner_ttl",
    "inner_fingerprint",
    "ip_id",
    "l4_head",
    "inner_src_hi",
    "inner_src_lo",
    "inner_dst_hi",
    "inner_dst_lo",
    "inner_protocol",
    "inner_ip_id",
    "inner_l4",
)
#: (columns of the correlated rows, columns of final rows seen once, their correlation)
Observer = Callable[[dict[str, np.ndarray], dict[str, np.ndarray], Correlation], None]

_NEVER = np.iinfo(np.int64).max


class Columns:
    """Growable raw columns (schema.RAW): append blocks, gather rows, drop rows."""

    def __init__(self, capacity: int = 1 << 12):
        self.n = 0
        self.cols = {k: np.empty(capacity, dtype=dt) for k, dt in S.RAW.items()}

    def reserve(self, capacity: int) -> None:
        """Room for ``capacity`` rows in all, allocated once (first touches are costly)."""
        self._room(capacity - self.n)

    def _room(self, k: int) -> None:
        cap = len(self.cols["time_ns"])
        if self.n + k <= cap:
            return
        new = max(cap + cap // 2, self.n + k)
        for name, a in self.cols.items():
            grown = np.empty(new, dtype=a.dtype)
            grown[: self.n] = a[: self.n]
            self.cols[name] = grown

    def append(self, cols: dict[str, np.ndarray], rows: np.ndarray | None = None) -> None:
        """Append ``cols`` (all rows, or the given ``rows`` of them)."""
        k = len(cols["time_ns"]) if rows is None else len(rows)
        self._room(k)
        for name, a in self.cols.items():
            src = cols[name]
            a[self.n : self.n + k] = src if rows is None else src[rows]
        self.n += k

    def keep_only(self, rows: np.ndarray) -> None:
        """Keep ``rows`` (sorted), moved to the front, in place."""
        k = len(rows)
        for a in self.cols.values():
            a[:k] = a[rows]
        self.n = k

    def view(self) -> dict[str, np.ndarray]:
        return {name: a[: self.n] for name, a in self.cols.items()}


class Rates:
    """Packets per capture point per time bin, at the finest resolution that fits.

    Why: the timeline plot needs every packet's time, the stream keeps only
    the evidence.  Bins start at 1 ms and widen tenfold whenever more than
    ``max_bins`` (point, bin) cells are in use, so memory stays bounded.
    """

    def __init__(self, max_bins: int = 1 << 20):
        self.res_ns = 1_000_000
        self.max_bins = max_bins
        self.keys = np.zeros(0, np.int64)  # bin * MAX_POINTS + point
        self.counts = np.zeros(0, np.int64)
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._pending_n = 0
        self.first_ns: int | None = None  # exact first and last packet time
        self.last_ns: int | None = None

    def add(self, time_ns: np.ndarray, point: np.ndarray) -> None:
        if not len(time_ns):
            return
        lo, hi = int(time_ns.min()), int(time_ns.max())
        self.first_ns = lo if self.first_ns is None else min(self.first_ns, lo)
        self.last_ns = hi if self.last_ns is None else max(self.last_ns, hi)
        b = time_ns // self.res_ns
        b0, b1 = int(b.min()), int(b.max())
        p0 = int(point[0])
        if b1 - b0 <= 4 * len(b) + 4096 and (point == p0).all():  # the usual block: O(n)
            c = np.bincount(b - b0)
            u = np.flatnonzero(c)
            u, c = (u + b0) * MAX_POINTS + p0, c[u]
        else:
            u, c = np.unique(b * MAX_POINTS + point.astype(np.int64), return_counts=True)
        self._pending.append((u, c))
        self._pending_n += len(u)
        if self._pending_n > self.max_bins:
            self._merge()

    def _merge(self) -> None:
        if self._pending:
            k = np.concatenate([self.keys] + [u for u, _ in self._pending])
            c = np.concatenate([self.counts] + [c for _, c in self._pending])
            self._pending, self._pending_n = [], 0
            self.keys, inv = np.unique(k, return_inverse=True)
            self.counts = np.bincount(inv.ravel(), weights=c, minlength=len(self.keys)).astype(
                np.int64
            )
        while len(self.keys) > self.max_bins:
            self.res_ns *= 10
            k = (self.keys // MAX_POINTS // 10) * MAX_POINTS + self.keys % MAX_POINTS
            self.keys, inv = np.unique(k, return_inverse=True)
            self.counts = np.bincount(
                inv.ravel(), weights=self.counts, minlength=len(self.keys)
            ).astype(np.int64)

    def remap(self, new_of_old: np.ndarray) -> None:
        """Renumber capture points (``new_of_old[old] = new``)."""
        self._merge()
        pt = new_of_old[self.keys % MAX_POINTS]
        k = (self.keys // MAX_POINTS) * MAX_POINTS + pt
        o = np.argsort(k, kind="stable")
        self.keys, self.counts = k[o], self.counts[o]

    def table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(bin start ns, capture point, packets) of every cell in use."""
        self._merge()
        return (self.keys // MAX_POINTS) * self.res_ns, self.keys % MAX_POINTS, self.counts


@dataclass
class _Pieces:
    """Per-window correlation results, in kept-table rows, joined at the end."""

    rows: list[np.ndarray] = field(default_factory=list)
    path: list[np.ndarray] = field(default_factory=list)
    direction: list[np.ndarray] = field(default_factory=list)
    loop_copy: list[np.ndarray] = field(default_factory=list)
    l2: list[np.ndarray] = field(default_factory=list)
    p_loop: list[np.ndarray] = field(default_factory=list)
    p_bounce: list[np.ndarray] = field(default_factory=list)
    p_step: list[np.ndarray] = field(default_factory=list)
    p_bounce_key: list[np.ndarray] = field(default_factory=list)  # point * 8192 + vlan + 1, or -1
    n_paths: int = 0
    duplicates: int = 0


#: size of the filter that rules out most rows before the search for a looping destination
#: (indexed by the top bits of the address key: the well-mixed ones of a product)
_MARK_BITS = 1 << 20
_MARK_SHIFT = np.uint64(64 - 20)


def _fingerprint_groups(
    fp: np.ndarray, t: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(group of each row, first time, last time and rows of each group): rows grouped
    by fingerprint in one pass (:func:`._kernels.group_fingerprints`)."""
    n = len(fp)
    table = np.full(1 << max(4, int(2 * n - 1).bit_length()), -1, np.int64)
    keys = np.empty(n, np.uint64)
    gid = np.empty(n, np.int64)
    g_first, g_last = np.empty(n, np.int64), np.empty(n, np.int64)
    g_size = np.empty(n, np.int64)
    ng = int(
        group_fingerprints(
            np.ascontiguousarray(fp, np.uint64),
            np.ascontiguousarray(t, np.int64),
            table,
            keys,
            gid,
            g_first,
            g_last,
            g_size,
        )
    )
    return gid, g_first[:ng], g_last[:ng], g_size[:ng]


def _icmp_evidence(c: dict[str, np.ndarray]) -> np.ndarray:
    """ICMP errors (they quote packets), time-exceeded of any kind, neighbour advertisements
    and ICMPv6 redirects (they name the destination they are about)."""
    pr, ty = c["protocol"], c["icmp_type"]
    evidence: np.ndarray = (
        (c["inner_version"] > 0)
        | ((pr == P.IPPROTO_ICMP) & (ty == P.ICMP_TIME_EXCEEDED))
        | (
            (pr == P.IPPROTO_ICMPV6)
            & ((ty == P.ICMP6_TIME_EXCEEDED) | (ty == P.ND_NEIGHBOR_ADVERT) | (ty == P.ND_REDIRECT))
        )
    )
    return evidence


def address_key(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """One 64-bit key per (hi, lo) address, for sorted lookups (collisions are checked
    by the callers against the address itself)."""
    with np.errstate(over="ignore"):
        k = np.asarray(hi, np.uint64) * np.uint64(0x9E3779B97F4A7C15) ^ np.asarray(lo, np.uint64)
        return k * np.uint64(0xBF58476D1CE4E5B9)


class Window:
    """The streaming correlate stage; see the module docstring.

    ``points``: returns the loader's capture points (they appear as files are
    read); ``point_files``: returns the capture index of each point, which
    orders rows stamped at the same time as :func:`pcaploop.load` does.
    """

    def __init__(
        self,
        opt: Options,
        points: Callable[[], list[CapturePoint]],
        point_files: Callable[[], np.ndarray],
        keep: str = "evidence",
        chunk_rows: int = 1 << 18,
        state: CorrelationState | None = None,
        observe: Observer | None = None,
        retain: bool = True,
    ):
        """``observe(rows, single, corr)`` hears every correlated window: the buffer's
        columns of the rows correlated (time order), which of its final rows were
        seen once, and their :class:`Correlation` (``watch`` reads loops from it).
        ``retain=False`` keeps nothing (a watch that runs for hours)."""
        if keep not in KEEP_MODES:
            raise ValueError(f"keep must be one of {KEEP_MODES}, not {keep!r}")
        self.opt, self.keep, self.chunk_rows = opt, keep, chunk_rows
        self.observe, self.retain = observe, retain
        self._points, self._point_files = points, point_files
        self.buf = Columns(0)
        self.kept: list[dict[str, np.ndarray]] = []  # kept rows, one dict per window
        self.n_kept = 0
        self.rates = Rates()
        self.state = state if state is not None else CorrelationState()
        self.final_counts = np.zeros(0, np.int64)  # per point: rows correlated so far
        self.pieces = _Pieces()
        self.hold = opt.path_gap_ns + opt.reorder_window_ns
        self.last_cut = -_NEVER  # rows stamped before this arrived late
        self.late = 0
        self.next_flush = chunk_rows
        self.peak_rows = 0
        self.suspects: dict[int, tuple[int, int, int]] = {}  # key → (dst_hi, dst_lo, last TE ns)
        self.loop_last: dict[tuple[int, int], int] = {}  # looping destination → last copy ns
        #: layer-2 evidence: copies kept and copies only counted, per (dst, point)
        self.l2_kept: dict[tuple[int, int, int], int] = {}
        #: routed loops: detect's per-path table of every looping path, window by window;
        #: per destination (paths kept in its current episode, last copy ns); copies let
        #: go, per destination and second
        self.summaries: list[pd.DataFrame] = []
        self.l3_episode: dict[tuple[int, int], tuple[int, int]] = {}
        self.l3_tally: dict[tuple[int, int], dict[int, int]] = {}
        self.l3_kept_copies = 0
        self.l2_tally: dict[tuple[int, int, int], L2Tally] = {}
        #: (dst_hi, dst_lo) → point → (packets seen once after the loop's last copy, first ns)
        self.after_loop: dict[tuple[int, int], dict[int, tuple[int, int]]] = {}
        #: loop_last as sorted arrays (address key, dst_hi, dst_lo, last ns), rebuilt on change
        self._loop_index: tuple[np.ndarray, ...] | None = None

    # --- input ---------------------------------------------------------------------
    def into(self, rows: int = 1 << 16) -> dict[str, np.ndarray]:
        """Arrays at the end of the buffer for the next block to be decoded into
        (:meth:`pcaploop.loader.Loader.merged`), saving a copy; see :meth:`add`."""
        if self.buf.n + rows > len(self.buf.cols["time_ns"]):
            self.buf.reserve(max(self.next_flush, self.buf.n) + 2 * rows)
        n = self.buf.n
        return {k: a[n : n + rows] for k, a in self.buf.cols.items() if k != "point"}

    def add(self, cols: dict[str, np.ndarray]) -> None:
        """Take a block of raw columns: copied, unless it was decoded into :meth:`into`."""
        t = cols["time_ns"]
        if not len(t):
            return
        self.late += int((t < self.last_cut).sum())
        self.rates.add(t, cols["point"])
        self._note_suspects(cols)
        b, n, k = self.buf.cols, self.buf.n, len(t)
        if len(b["time_ns"]) > n and np.shares_memory(t, b["time_ns"][n : n + k]):
            b["point"][n : n + k] = cols["point"]  # decoded in place; the loader sets points
            self.buf.n += k
        else:
            if n + k > len(b["time_ns"]):
                self.buf.reserve(max(self.next_flush, n) + 2 * k)
            self.buf.append(cols)
        self.peak_rows = max(self.peak_rows, self.buf.n)

    def _note_suspects(self, c: dict[str, np.ndarray]) -> None:
        """Destinations of packets an ICMP time-exceeded says expired at TTL 1."""
        pr, ty = c["protocol"], c["icmp_type"]
        te = np.flatnonzero(
            (
                ((pr == P.IPPROTO_ICMP) & (ty == P.ICMP_TIME_EXCEEDED))
                | ((pr == P.IPPROTO_ICMPV6) & (ty == P.ICMP6_TIME_EXCEEDED))
            )
            & (c["inner_version"] > 0)
            & (c["inner_ttl"] <= 1)
        )
        if not len(te):
            return
        hi, lo, t = c["inner_dst_hi"][te], c["inner_dst_lo"][te], c["time_ns"][te]
        keys = address_key(hi, lo)
        o = np.argsort(keys, kind="stable")
        starts = np.flatnonzero(np.r_[True, keys[o][1:] != keys[o][:-1]])
        last = np.maximum.reduceat(t[o], starts)
        for j, first in enumerate(o[starts]):
            k = int(keys[first])
            prev = self.suspects.get(k, (0, 0, -_NEVER))[2]
            self.suspects[k] = (int(hi[first]), int(lo[first]), max(prev, int(last[j])))

    def maybe_flush(self, horizon: float) -> None:
        """Correlate what is complete once the buffer is full enough to be worth it."""
        if self.buf.n >= self.next_flush:
            cut = -_NEVER if horizon == float("-inf") else int(min(horizon, 9e18)) - self.hold
            self.flush(cut)
            # a buffer mostly held open (a long hold at a high rate) grows before the next try
            self.next_flush = max(self.chunk_rows, 2 * self.buf.n)

    # --- one window ------------------------------------------------------------------
    def flush(self, cut: int) -> None:
        """Correlate the fingerprints with no copy at or after ``cut``; keep their evidence."""
        n = self.buf.n
        if n == 0:
            return
        c = self.buf.view()
        gid, g_first, g_last, g_size = _fingerprint_groups(c["fingerprint"], c["time_ns"])
        g_final = (
            (g_last < cut)
            | (g_first < cut - self.opt.group_max_ns)
            | (g_size >= MAX_OPEN_GROUP_ROWS)
        )
        fin = g_final[gid]  # per buffer row, in buffer order
        if not fin.any():
            return
        self.last_cut = max(self.last_cut, cut)
        again = g_size[gid] >= 2
        repeated = np.flatnonzero(fin & again)  # put in time order by _correlate
        npts = len(self._points())
        self.final_counts = np.r_[
            self.final_counts, np.zeros(max(0, npts - len(self.final_counts)), np.int64)
        ]
        self.final_counts += np.bincount(c["point"][fin], minlength=npts)
        self._correlate(c, repeated, fin, fin & ~again)
        if fin.all():
            self.buf.n = 0
        else:
            self.buf.keep_only(np.flatnonzero(~fin))

    def _time_order(self, c: dict[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
        """``rows`` in the order load() gives them: time, then capture, then record."""
        files = self._point_files()
        return rows[np.lexsort((c["record"][rows], files[c["point"][rows]], c["time_ns"][rows]))]

    def _correlate(
        self, c: dict[str, np.ndarray], repeated: np.ndarray, fin: np.ndarray, single: np.ndarray
    ) -> None:
        """Paths of the final rows (``fin``: mask over the buffer; ``single``: final rows
        whose fingerprint was seen once); keep their evidence."""
        idx = self._time_order(c, repeated)
        sub = {k: c[k][idx] for k in CORRELATE_COLUMNS}
        names = [p.name for p in self._points()]
        corr = correlate(sub, names, self.final_counts, self.opt, self.state)
        if self.observe is not None:
            self.observe(
                {k: a[idx] for k, a in c.items()}, {k: c[k][single] for k in _SINGLE_COLUMNS}, corr
            )
        if not self.retain:
            self.pieces.duplicates += corr.duplicates
            return
        self._note_after_loops(c, corr, idx, single)
        self.pieces.duplicates += corr.duplicates
        if self.keep == "evidence":
            want = corr.p_loop | corr.p_bounce
        else:
            want = np.ones(corr.n_paths, dtype=bool)
        kp = np.flatnonzero(want)
        new_id = np.full(corr.n_paths, -1, np.int64)
        new_id[kp] = self.pieces.n_paths + np.arange(len(kp))
        rows_of = want
        if self.keep == "evidence" and corr.p_loop.any():
            # every looping path is summed up; the copies kept are a sample per loop
            rows_of = want & ~self._summarise_loops(c, idx, corr, new_id)
        sel = rows_of[corr.path] if len(corr.path) else np.zeros(0, bool)
        path_rows = idx[corr.rows[sel]]
        l2_rows = idx[corr.l2_rows]
        if self.keep == "evidence" and len(l2_rows):
            l2_rows = self._sample_l2(c, l2_rows)
        if self.keep == "all":
            extra = np.flatnonzero(fin)
        else:
            extra = np.flatnonzero(fin & (_icmp_evidence(c) | self._suspect_rows(c)))
        mark = np.zeros(len(c["time_ns"]), dtype=bool)  # a union in O(rows), no sort
        mark[path_rows] = True
        mark[l2_rows] = True
        mark[extra] = True
        ks = np.flatnonzero(mark)
        keep = self._time_order(c, ks)  # windows follow each other: kept rows stay in order
        rank = np.empty(len(ks), np.int64)
        rank[np.searchsorted(ks, keep)] = np.arange(len(ks))
        base = self.n_kept
        self.kept.append({k: a[keep] for k, a in c.items()})
        self.n_kept += len(keep)

        def pos(rows: np.ndarray) -> np.ndarray:
            return base + rank[np.searchsorted(ks, rows)]

        pc = self.pieces
        pc.rows.append(pos(path_rows))
        pc.path.append(new_id[corr.path[sel]])
        pc.direction.append(corr.direction[sel])
        pc.loop_copy.append(corr.loop_copy[sel])
        pc.l2.append(pos(l2_rows))
        pc.p_loop.append(corr.p_loop[kp])
        pc.p_bounce.append(corr.p_bounce[kp])
        pc.p_step.append(corr.p_step[kp])
        bp = corr.p_bounce_plane[kp]
        pc.p_bounce_key.append(
            np.where(bp >= 0, corr.plane_key[np.maximum(bp, 0)], -1)
            if len(corr.plane_key)
            else np.full(len(kp), -1, np.int64)
        )
        pc.n_paths += len(kp)

    def _summarise_loops(
        self, c: dict[str, np.ndarray], idx: np.ndarray, corr: Correlation, new_id: np.ndarray
    ) -> np.ndarray:
        """Detect's per-path table of this window's looping paths (kept whole: one row per
        looping packet), and which paths' copies are *not* kept (mask over paths).

        Why: a loop's numbers come from that table; its copies are needed only for
        plots, ``paths`` and ``extract``, so each loop episode (a destination's looping
        paths with no gap longer than the merge gap) keeps the copies of its first
        :data:`L3_KEEP_PATHS` paths — of its first :data:`L3_KEEP_MIN_PATHS` once all
        loops have kept :data:`L3_KEEP_COPIES` copies — and only counts the others'
        copies per second (:attr:`l3_tally`, for the peak rate).  Memory then grows
        with the looping packets, not with their copies.
        """
        cols = {k: c[k][idx] for k in _PATH_COLUMNS}
        npts = len(self._points())
        paths, lc = path_frame(cols, corr, [str(i) for i in range(npts)])
        drop = np.zeros(corr.n_paths, dtype=bool)
        if paths.empty:
            return drop
        paths = paths.sort_values("first_ns", kind="stable")
        pid = paths.index.to_numpy(np.int64)
        hi, lo = paths["dst_hi"].to_numpy(np.uint64), paths["dst_lo"].to_numpy(np.uint64)
        first = paths["first_ns"].to_numpy(np.int64).tolist()  # Python ints: no wrap-around
        last = paths["last_ns"].to_numpy(np.int64).tolist()
        copies = paths["copies"].to_numpy(np.int64).tolist()
        key = np.stack([hi, lo], axis=1)
        uniq, inv = np.unique(key, axis=0, return_inverse=True)
        inv = inv.ravel()
        order = np.argsort(inv, kind="stable")  # by destination, then time
        starts = np.flatnonzero(np.r_[True, inv[order][1:] != inv[order][:-1]])
        for a, b in zip(starts.tolist(), np.r_[starts[1:], len(order)].tolist()):
            at = order[a:b]  # one destination's paths in this window, in time order
            dst = (int(uniq[inv[at[0]], 0]), int(uniq[inv[at[0]], 1]))
            kept, seen_last = self.l3_episode.get(dst, (0, -_NEVER))
            for j in at.tolist():  # per looping path: only up to the sample, then cheap
                if first[j] - seen_last > self.opt.merge_gap_ns:
                    kept = 0  # a new episode of this destination: a new sample
                room = kept < L3_KEEP_PATHS and self.l3_kept_copies < L3_KEEP_COPIES
                if room or kept < L3_KEEP_MIN_PATHS:
                    kept += 1
                    self.l3_kept_copies += copies[j]
                else:
                    drop[pid[j]] = True
                seen_last = max(seen_last, last[j])
            self.l3_episode[dst] = (kept, seen_last)
        if drop.any():  # the copies of the paths let go, counted per second
            gone = lc[drop[lc["path"].to_numpy(np.int64)]]
            sec = gone["time_ns"].to_numpy(np.int64) // _NS
            dh, dl = gone["dst_hi"].to_numpy(np.uint64), gone["dst_lo"].to_numpy(np.uint64)
            trip = np.stack([dh, dl, sec.astype(np.uint64)], axis=1)
            u, counts = np.unique(trip, axis=0, return_counts=True)
            for (h, lo_, sc), n in zip(u.tolist(), counts.tolist()):
                bins = self.l3_tally.setdefault((int(h), int(lo_)), {})
                bins[int(sc)] = bins.get(int(sc), 0) + int(n)
        paths.index = new_id[pid]
        self.summaries.append(paths)
        return drop

    def _sample_l2(self, c: dict[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
        """The layer-2 copies to keep: each frame's first, and the rest up to
        :data:`L2_KEEP_ROWS` per loop (destination, capture point); the others are
        counted in :attr:`l2_tally`, exactly, and let go."""
        rows = np.sort(rows)
        key = np.stack(
            [c["dst_hi"][rows], c["dst_lo"][rows], c["point"][rows].astype(np.uint64)], axis=1
        )
        uniq, inv = np.unique(key, axis=0, return_inverse=True)
        inv = inv.ravel()
        keep = np.zeros(len(rows), dtype=bool)
        for g in range(len(uniq)):  # one per looping destination and point: few
            at = np.flatnonzero(inv == g)
            k = (int(uniq[g, 0]), int(uniq[g, 1]), int(uniq[g, 2]))
            have = self.l2_kept.get(k, 0)
            room = max(L2_KEEP_ROWS - have, 0)
            mine = np.zeros(len(at), dtype=bool)
            mine[:room] = True
            fp = c["fingerprint"][rows[at]]
            _, first = np.unique(fp, return_index=True)
            mine[first] = True  # every frame keeps its first copy: looping packets stay exact
            keep[at[mine]] = True
            self.l2_kept[k] = have + int(mine.sum())
            rest = rows[at[~mine]]
            if len(rest):
                self.l2_tally.setdefault(k, L2Tally()).add(c["time_ns"][rest], c["wirelen"][rest])
        return rows[keep]

    def _suspect_rows(self, c: dict[str, np.ndarray]) -> np.ndarray:
        """Rows to or from an address under suspicion, up to the merge gap after its last
        TE: the arrivals that may have looped behind the capture point, and the answers
        that say when it stopped (detect's inferred loops)."""
        out = np.zeros(len(c["time_ns"]), dtype=bool)
        # a destination seen looping needs no inference: its copies are the evidence
        # (kept, or sampled, as a loop's), and keeping all its traffic would grow
        # memory with the capture
        dl = np.array(list(self.loop_last), dtype=np.uint64).reshape(-1, 2)
        looping = set(address_key(dl[:, 0], dl[:, 1]).tolist())
        live = {k: v for k, v in self.suspects.items() if k not in looping}
        if not live:
            return out
        keys = np.array(sorted(live), dtype=np.uint64)
        limit = np.array([live[int(k)][2] for k in keys], dtype=np.int64)
        los = np.array([v[1] for v in live.values()], dtype=np.uint64)
        for hi, lo in ((c["dst_hi"], c["dst_lo"]), (c["src_hi"], c["src_lo"])):
            maybe = np.flatnonzero(np.isin(lo, los))
            k = address_key(hi[maybe], lo[maybe])
            at = np.minimum(np.searchsorted(keys, k), len(keys) - 1)
            out[maybe] |= (keys[at] == k) & (
                c["time_ns"][maybe] <= limit[at] + self.opt.merge_gap_ns
            )
        return out

    def _note_after_loops(
        self, c: dict[str, np.ndarray], corr: Correlation, idx: np.ndarray, single: np.ndarray
    ) -> None:
        """Count packets for a looping destination that arrived after its last copy and
        went nowhere (seen once): what the host dropped after the loop ended.

        Vectorised over the window's rows; the Python loops run once per looping
        destination and per (destination, capture point), never per row.
        """
        if corr.p_loop.any():
            rows = idx[corr.rows[corr.p_loop[corr.path]]]
            keys = address_key(c["dst_hi"][rows], c["dst_lo"][rows])
            o = np.argsort(keys, kind="stable")
            starts = np.flatnonzero(np.r_[True, keys[o][1:] != keys[o][:-1]])
            last = np.maximum.reduceat(c["time_ns"][rows][o], starts)
            for r, t_last in zip(rows[o][starts].tolist(), last.tolist()):
                d = (int(c["dst_hi"][r]), int(c["dst_lo"][r]))
                if t_last > self.loop_last.get(d, -_NEVER):
                    self.loop_last[d] = t_last
                    self._loop_index = None
                    seen = self.after_loop.get(d)
                    if seen:  # it looped again since: what came between was no after-end drop
                        for pt in [pt for pt, (_, first) in seen.items() if first < t_last]:
                            del seen[pt]
        if not self.loop_last or not single.any():
            return
        if self._loop_index is None:
            dests = np.array(list(self.loop_last), dtype=np.uint64).reshape(-1, 2)
            k = address_key(dests[:, 0], dests[:, 1])
            o = np.argsort(k)
            lasts = np.fromiter(self.loop_last.values(), np.int64, len(self.loop_last))
            mark = np.zeros(_MARK_BITS, dtype=bool)  # a one-hash Bloom filter of the keys
            mark[k >> _MARK_SHIFT] = True
            self._loop_index = (k[o], dests[o, 0], dests[o, 1], lasts[o], mark)
        keys, his, los, lasts, mark = self._loop_index
        rows = np.flatnonzero(single)
        key = address_key(c["dst_hi"][rows], c["dst_lo"][rows])
        maybe = mark[key >> _MARK_SHIFT]  # most rows ruled out without a search
        rows, key = rows[maybe], key[maybe]
        hi, lo, t = c["dst_hi"][rows], c["dst_lo"][rows], c["time_ns"][rows]
        at = np.minimum(np.searchsorted(keys, key), len(keys) - 1)
        hit = np.flatnonzero((his[at] == hi) & (los[at] == lo) & (t > lasts[at]))
        if not len(hit):
            return
        pts = c["point"][rows[hit]].astype(np.int64)
        npts = max(len(self._points()), int(pts.max()) + 1)  # numbers, never aliased
        group = at[hit].astype(np.int64) * npts + pts
        bins = len(keys) * npts
        if bins <= 4 * len(hit) + 1024:  # counted in place: no sort of the hits
            counts = np.bincount(group, minlength=bins)
            u = np.flatnonzero(counts)
            firsts = np.full(bins, _NEVER, np.int64)
            np.minimum.at(firsts, group, t[hit])
            counts, firsts = counts[u], firsts[u]
        else:  # many destinations, few hits
            u, inv, counts = np.unique(group, return_inverse=True, return_counts=True)
            firsts = np.full(len(u), _NEVER, np.int64)
            np.minimum.at(firsts, inv.ravel(), t[hit])
        for g, n, first in zip(u.tolist(), counts.tolist(), firsts.tolist()):
            j, pt = divmod(g, npts)
            seen = self.after_loop.setdefault((int(his[j]), int(los[j])), {})
            n0, first0 = seen.get(pt, (0, first))
            seen[pt] = (n0 + n, min(first0, first))

    def _path_summary(self, new_of_old: np.ndarray | None, names: list[str]) -> pd.DataFrame | None:
        """The windows' per-path tables as one, capture points in their final numbers and
        names (the windows named them by their number then)."""
        if self.keep != "evidence":
            return None
        if not self.summaries:
            return pd.DataFrame()
        paths = pd.concat(self.summaries)
        self.summaries = []
        renum = new_of_old if new_of_old is not None else np.arange(len(names))
        text = {
            s: ",".join(sorted(names[int(renum[int(i)])] for i in s.split(",")))
            for s in paths["points"].unique().tolist()
        }
        paths["points"] = paths["points"].map(text)
        paths["last_point"] = renum[paths["last_point"].to_numpy(np.int64)]
        return paths.sort_index()

    # --- the end ---------------------------------------------------------------------
    def drain(self) -> None:
        """Correlate every row still held (the input has ended).  Call it before the
        loader renumbers capture points: held rows carry the old numbers."""
        self.flush(_NEVER)

    def finish(
        self, new_of_old: np.ndarray | None = None, point_files: np.ndarray | None = None
    ) -> tuple[dict[str, np.ndarray], Correlation]:
        """Correlate what is left; the kept rows (time order) and their correlation.

        ``new_of_old``: renumbering of capture points (the loader's final
        order); ``point_files``: capture index of each point, new numbering;
        ``points()`` must give the final points by then, and :meth:`drain`
        must have run before the renumbering.
        """
        self.drain()
        kept = {
            k: (np.concatenate([b[k] for b in self.kept]) if self.kept else np.zeros(0, dtype=dt))
            for k, dt in S.RAW.items()
        }
        self.kept = []
        pc = self.pieces
        if new_of_old is not None and len(kept["point"]):
            kept["point"][:] = new_of_old[kept["point"]]
        files = point_files if point_files is not None else self._point_files()
        perm = np.lexsort(
            (
                kept["record"],
                files[kept["point"]] if len(files) else np.zeros(len(kept["point"]), np.int64),
                kept["time_ns"],
            )
        )
        inv = np.empty(len(perm), np.int64)
        inv[perm] = np.arange(len(perm))
        if not (perm[1:] > perm[:-1]).all():  # late rows, or points renumbered
            kept = {k: a[perm] for k, a in kept.items()}

        def cat(parts: list[np.ndarray], dt: type) -> np.ndarray:
            return np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt)

        rows = inv[cat(pc.rows, np.int64)]
        path, direction = cat(pc.path, np.int64), cat(pc.direction, np.int8)
        loop_copy = cat(pc.loop_copy, bool)
        o = np.argsort(rows, kind="stable")
        rows, path, direction, loop_copy = rows[o], path[o], direction[o], loop_copy[o]
        pv = kept["point"][rows].astype(np.int64) * 8192 + kept["vlan"][rows].astype(np.int64) + 1
        uplanes, plane = np.unique(pv, return_inverse=True)
        bkey = cat(pc.p_bounce_key, np.int64)
        if new_of_old is not None and len(bkey):
            pt = np.where(bkey >= 0, bkey // 8192, 0)
            bkey = np.where(bkey >= 0, new_of_old[pt] * 8192 + bkey % 8192, -1)
        bplane = np.where(bkey >= 0, np.searchsorted(uplanes, bkey), -1)

        def renum(p: int) -> int:
            return int(new_of_old[p]) if new_of_old is not None else int(p)

        names = [p.name for p in self._points()]
        overlaps = [
            (names[renum(a)], names[renum(b)], n) for (a, b), n in self.state.overlaps.items()
        ]
        warnings = [
            f"capture points {a} and {b} look like the same interface ({n} identical "
            "copies); counted once"
            for a, b, n in overlaps
        ]
        corr = Correlation(
            rows=rows,
            path=path,
            plane=plane.astype(np.int64).ravel(),
            direction=direction,
            loop_copy=loop_copy,
            n_paths=pc.n_paths,
            p_loop=cat(pc.p_loop, bool),
            p_bounce=cat(pc.p_bounce, bool),
            p_step=cat(pc.p_step, np.int64),
            p_bounce_plane=bplane.astype(np.int64),
            plane_point=(uplanes // 8192).astype(np.int64),
            l2_rows=inv[cat(pc.l2, np.int64)],
            plane_key=uplanes.astype(np.int64),
            duplicates=pc.duplicates,
            overlaps=overlaps,
            warnings=warnings,
            after_loop={
                (h, lo, renum(p)): n
                for (h, lo), seen in self.after_loop.items()
                for p, (n, _) in seen.items()
            },
            l2_tally={(h, lo, renum(p)): t for (h, lo, p), t in self.l2_tally.items()},
            path_summary=self._path_summary(new_of_old, names),
            l3_tally=self.l3_tally,
        )
        if new_of_old is not None:
            self.state.roles.remap(new_of_old)
            self.state.hinted = {renum(p) for p in self.state.hinted}
            self.state.votes = {renum(p): v for p, v in self.state.votes.items()}
            self.state.senders = {renum(p): v for p, v in self.state.senders.items()}
        return kept, corr
