"""Loops as they happen: start and end events from a stream of packets.

Why: after an incident ``analyze`` explains what a capture holds; during one
an engineer wants to know *now* that a destination started looping, and when
it stopped.  :class:`Watcher` takes the same decoded blocks ``analyze`` does,
correlates them with the same streaming window (:mod:`.window`), and reads
the copies detect's rules mark as looping — routed loops' replicas
(:func:`.detect.classify_paths`) and layer-2 repeats — as they become final,
but keeps nothing: per looping destination a few counters, so memory stays
bounded however long it runs.

A loop *starts* when the first looping packet for a destination is seen (the
event comes once the packet's copies are complete: a fraction of a second),
and *ends* when no looping copy for it has been seen for ``quiet_s`` seconds,
or sooner when a packet for it passes once without looping (the address was
re-added, or the route fixed).

A capture point that sees no copy — the uplink alone, the loop behind it —
still shows a loop by its evidence, as ``analyze`` infers one: a packet that
arrived with a TTL high enough to reach any guest, then an ICMP time-exceeded
quoting it with TTL 1 (:func:`.detect._inferred`'s seed).  Such a loop is
marked *inferred*: its packets are the arrivals for the destination at that
point since its last answer before the first seed, its copies estimated
(TTL − 1 each); it ends after ``quiet_s`` without a time-exceeded, or when
the destination answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..addr import to_text
from ..contract import iso_ns
from ..ingest.points import CapturePoint
from .correlate import CorrelationState
from .detect import _packet_keys, _time_exceeded_rows, tie_quotes
from .model import Correlation
from .options import Options
from .window import _SINGLE_COLUMNS, Window, address_key

__all__ = ["LoopEvent", "Watcher"]

_NS = 1_000_000_000
#: a watch correlates a packet's copies once it has been silent this long: far
#: longer than one loop's copies take (microseconds to milliseconds), short enough
#: for an event within a second
WATCH_PATH_GAP_NS = 300_000_000
WATCH_REORDER_NS = 200_000_000
#: distinct layer-2 frames remembered per looping destination (past it, counted again)
MAX_FRAMES_REMEMBERED = 4096
#: an inferred loop is reported once this long has passed after its first error with
#: no copy for it at any capture point (its copies would make it a loop seen)
INFERRED_WAIT_NS = 300_000_000
#: packets not looping kept to tie a later ICMP error to (and count a loop's arrivals
#: from): for this long, and at most this many rows
KEEP_NS = 3_000_000_000
KEEP_ROWS = 200_000
#: a loop ends after this long without a looping copy (``--quiet``)
DEFAULT_QUIET_S = 1.0

EventKind = Literal["start", "end"]
_NEVER_NS = 1 << 62
#: what is kept of a window's packets not looping for the next one (one window's worth)
_KEPT_COLUMNS = (
    "fingerprint",
    "time_ns",
    "point",
    "ttl",
    "dst_hi",
    "dst_lo",
    "src_hi",
    "src_lo",
    "protocol",
    "ip_id",
    "l4_head",
)


@dataclass(frozen=True, slots=True)
class LoopEvent:
    """A loop starting or ending at one destination, as ``watch`` prints it."""

    kind: EventKind
    time_ns: int  # start: the first looping copy; end: the last
    destination: str
    points: tuple[str, ...]
    looping_packets: int  # so far (start) / in all (end)
    copies: int
    copies_per_packet: float
    rate_pps: float  # copies per second while it looped
    duration_s: float
    #: why it ended: "quiet" (no copy for quiet_s), "delivered" (a packet for it
    #: passed once), "answered" (an inferred loop's destination sent a packet),
    #: "seen" (an inferred loop whose copies another capture point now shows: that
    #: loop starts),
    #: "stopped" (the watch ended while it looped)
    reason: str | None = None
    #: no copy seen: the loop is behind the capture point, shown by ICMP time-exceeded
    #: for packets that arrived with a high TTL; copies are estimated (TTL − 1 each)
    inferred: bool = False

    def to_json(self) -> dict[str, Any]:
        """One JSON line for monitoring systems (``watch --jsonl``)."""
        return {
            "event": f"loop-{self.kind}",
            "time": iso_ns(self.time_ns),
            "destination": self.destination,
            "capture_points": list(self.points),
            "looping_packets": self.looping_packets,
            "copies": self.copies,
            "copies_per_packet": round(self.copies_per_packet, 1),
            "copies_per_second": round(self.rate_pps, 1),
            "duration_s": round(self.duration_s, 3),
            "reason": self.reason,
            "inferred": self.inferred,
        }

    def line(self) -> str:
        """One line for a person (``watch`` wraps it to the terminal's width)."""
        when = (iso_ns(self.time_ns) or "")[11:23]
        at = ",".join(self.points)
        where = f"behind {at} (inferred)" if self.inferred else f"at {at}"
        about = "~" if self.inferred else ""
        if self.kind == "start":
            rate = "" if self.inferred else f", {self.rate_pps:,.0f} copies/s"
            return (
                f"{when} LOOP START {self.destination} {where}: "
                f"{about}{self.copies_per_packet:,.0f} copies per packet{rate}"
            )
        why = {
            "delivered": "; a packet for it passed",
            "answered": "; it answered",
            "seen": "; now its copies are seen",
            "stopped": "; still looping",
        }.get(self.reason or "", "")
        return (
            f"{when} LOOP END   {self.destination} {where}: {self.duration_s:,.1f} s, "
            f"{self.looping_packets:,} packet(s), {about}{self.copies:,} copies{why}"
        )


@dataclass
class _Active:
    first_ns: int
    last_ns: int
    points: set[str] = field(default_factory=set)
    packets: int = 0
    copies: int = 0
    #: inferred (no copy seen): the capture point; arrivals after ``since_ns`` count
    inferred_point: int | None = None
    since_ns: int = 0
    first_error_ns: int = 0


class Watcher:
    """Feed blocks with :meth:`add`, move time on with :meth:`advance`, end with
    :meth:`close`; each returns the events it produced, in time order.

    ``points``: the capture points so far (they appear as captures are read).
    """

    def __init__(
        self,
        points: Callable[[], list[CapturePoint]],
        point_files: Callable[[], np.ndarray],
        quiet_s: float = DEFAULT_QUIET_S,
        opt: Options | None = None,
    ):
        self.opt = opt or Options(path_gap_ns=WATCH_PATH_GAP_NS, reorder_window_ns=WATCH_REORDER_NS)
        self.quiet_ns = int(quiet_s * _NS)
        self._points = points
        self.active: dict[tuple[int, int], _Active] = {}
        self._events: list[LoopEvent] = []
        self.window = Window(
            self.opt,
            points,
            point_files,
            state=CorrelationState(),
            observe=self._observe,
            retain=False,
        )
        self.hold = self.window.hold
        self.started = 0  # loops seen start
        self.newest = -(1 << 62)  # newest packet time added
        #: per looping destination, the layer-2 frames seen (bounded)
        self.frames: dict[tuple[int, int], set[int]] = {}
        #: the recent packets not looping, window by window (an ICMP error may come
        #: many windows after the packet it quotes), for KEEP_NS and KEEP_ROWS at most
        self._recent: list[dict[str, np.ndarray]] = []
        #: per destination, where its last inferred loop stopped counting (a new one
        #: starts after it), for destinations ended within KEEP_NS
        self._ended: dict[tuple[int, int], int] = {}
        #: sorted lookup of the inferred loops (rebuilt when the set changes)
        self._index: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[Any]] | None = None
        #: inferred loops not yet reported: another capture point may still show their
        #: copies (its packets can come later than the uplink's error)
        self.pending: dict[tuple[int, int], _Active] = {}

    def add(self, cols: dict[str, np.ndarray]) -> None:
        """A decoded block (the loader's raw columns with capture points); events come
        from :meth:`advance`, once copies are complete."""
        self.window.add(cols)
        if len(cols["time_ns"]):
            self.newest = max(self.newest, int(cols["time_ns"].max()))

    def advance(self, horizon_ns: int) -> list[LoopEvent]:
        """No packet stamped before ``horizon_ns`` is still to come: correlate what is
        complete and end the loops that have been quiet long enough."""
        self.window.flush(horizon_ns - self.hold)
        self._confirm(horizon_ns - self.hold - INFERRED_WAIT_NS)
        done = horizon_ns - self.hold - self.quiet_ns
        for dst in [d for d, a in self.active.items() if a.last_ns < done]:
            self._end(dst, "quiet")
        return self._take()

    def close(self) -> list[LoopEvent]:
        """The input ended: correlate everything held; loops quiet for ``quiet_s`` before
        the last packet end "quiet", the others "stopped" (still looping at the end)."""
        self.window.drain()
        self._confirm(None)
        for dst, a in list(self.active.items()):
            self._end(dst, "quiet" if a.last_ns < self.newest - self.quiet_ns else "stopped")
        return self._take()

    # --- internals -------------------------------------------------------------------
    def _take(self) -> list[LoopEvent]:
        out = sorted(self._events, key=lambda e: (e.time_ns, e.kind != "end"))
        self._events = []
        return out

    def _observe(
        self, c: dict[str, np.ndarray], single: dict[str, np.ndarray], corr: Correlation
    ) -> None:
        names = [p.name for p in self._points()]
        if corr.n_paths and corr.p_loop.any():  # routed loops: replicas, TTL falling
            sel = corr.p_loop[corr.path] & corr.loop_copy
            self._looping(c, corr.rows[sel], corr.path[sel], names)
        if len(corr.l2_rows):  # layer-2 loops: one frame forwarded again and again
            rows = corr.l2_rows
            self._looping(c, rows, c["fingerprint"][rows], names, frames=True)
        # after: a loop whose copies are seen is not inferred.  Packets seen more than
        # once without looping count too (identical datagrams share a fingerprint)
        others = corr.rows[~corr.p_loop[corr.path]] if corr.n_paths else corr.rows[:0]
        once = {k: np.r_[single[k], c[k][others]] for k in _SINGLE_COLUMNS}
        self._behind(once, names)
        if not self.active:
            return
        # packets for a looping destination that did not loop: seen once, or on a path
        # with no replica
        if corr.n_paths:
            rows = corr.rows[~corr.p_loop[corr.path]]
            self._delivered({k: c[k][rows] for k in ("dst_hi", "dst_lo", "time_ns", "point")})
        if len(single["time_ns"]):
            self._delivered(single)

    def _looping(
        self,
        c: dict[str, np.ndarray],
        rows: np.ndarray,
        packet: np.ndarray,
        names: list[str],
        frames: bool = False,
    ) -> None:
        """Looping copies (``rows``), ``packet`` telling which looping packet each is
        (``frames``: a fingerprint, which a long storm shows again window after window)."""
        hi, lo = c["dst_hi"][rows], c["dst_lo"][rows]
        t, pt = c["time_ns"][rows], c["point"][rows]
        uniq, inv = np.unique(np.stack([hi, lo], axis=1), axis=0, return_inverse=True)
        inv = inv.ravel()
        for g in range(len(uniq)):
            m = inv == g  # per looping destination: few per window
            dst = (int(uniq[g, 0]), int(uniq[g, 1]))
            mine = np.unique(packet[m])
            if frames:
                seen = self.frames.setdefault(dst, set())
                new = [int(f) for f in mine.tolist() if int(f) not in seen]
                if len(seen) < MAX_FRAMES_REMEMBERED:
                    seen.update(new)
                self._copies(dst, t[m], pt[m], len(new), names)
            else:
                self._copies(dst, t[m], pt[m], len(mine), names)

    def _copies(
        self, dst: tuple[int, int], t: np.ndarray, pt: np.ndarray, packets: int, names: list[str]
    ) -> None:
        first, last = int(t.min()), int(t.max())
        self.pending.pop(dst, None)  # seen looping: not a loop behind the capture point
        a = self.active.get(dst)
        if a is None:
            a = self.active[dst] = _Active(first, last)
            a.points.update(names[int(p)] for p in np.unique(pt))
            a.packets, a.copies = packets, len(t)
            self.started += 1
            self._events.append(self._event("start", dst, a, first))
            return
        if a.inferred_point is not None:  # inferred, and now its copies are seen: the
            self._end(dst, "seen")  # inferred loop ends, the loop seen starts
            self._copies(dst, t, pt, packets, names)
            return
        a.first_ns, a.last_ns = min(a.first_ns, first), max(a.last_ns, last)
        a.points.update(names[int(p)] for p in np.unique(pt))
        a.packets += packets
        a.copies += len(t)

    def _behind(self, single: dict[str, np.ndarray], names: list[str]) -> None:
        """Loops behind a capture point (module docstring): seeds from this window's
        ICMP time-exceeded, tied to the recent packets; then the arrivals and answers
        of the loops so inferred.  Every row reaches here once (the window hands each
        over when final), so each arrival is counted once whatever the windows.  Each
        step is a sorted lookup: the cost follows the rows, not rows × loops."""
        s = single
        here = {k: s[k] for k in _KEPT_COLUMNS}
        if len(here["time_ns"]):
            self._keep(here)
        te = _time_exceeded_rows(s)
        te = te[s["inner_ttl"][te] <= 1]
        fresh: dict[tuple[int, int], _Active] = {}
        if len(te) and self._recent:
            pool = {k: np.concatenate([w[k] for w in self._recent]) for k in _KEPT_COLUMNS}
            cand = np.flatnonzero(pool["ttl"].astype(np.int64) >= self.opt.loop_min_entry_ttl)
            if len(cand):  # detect's own tie: the quote's fingerprint, or its key
                err, k = tie_quotes(
                    s,
                    te,
                    pool["fingerprint"][cand],
                    _packet_keys(pool, cand),
                    cand,
                    pool["time_ns"][cand],
                )
                seed = cand[k]  # as detect seeds: the loop is at the arrival's point
                for a, e in zip(seed.tolist(), err.tolist()):  # per error message
                    self._seed(pool, a, int(s["time_ns"][e]), names, fresh)
            if fresh:  # each counts the kept arrivals since its last answer before it
                self._since(pool, fresh)
                self._count(pool, list(fresh.items()))
                self.pending.update(fresh)
                self._index = None
        if len(here["time_ns"]) and (self.pending or self.active):
            self._follow(here, exclude=fresh)

    def _keep(self, here: dict[str, np.ndarray]) -> None:
        self._recent.append(here)
        newest = int(here["time_ns"].max())
        rows = sum(len(w["time_ns"]) for w in self._recent)
        while len(self._recent) > 1 and (
            int(self._recent[0]["time_ns"].max()) < newest - KEEP_NS or rows > KEEP_ROWS
        ):
            rows -= len(self._recent.pop(0)["time_ns"])
        if len(self._ended) > 4096:  # forget loops ended longer ago than anything kept
            self._ended = {d: t for d, t in self._ended.items() if t >= newest - KEEP_NS}

    def _seed(
        self,
        pool: dict[str, np.ndarray],
        a: int,
        te_ns: int,
        names: list[str],
        fresh: dict[tuple[int, int], _Active],
    ) -> None:
        """One error tied to the arrival ``a``: a new inferred loop (into ``fresh``), or
        the loop its destination already has goes on."""
        dst = (int(pool["dst_hi"][a]), int(pool["dst_lo"][a]))
        pt, t = int(pool["point"][a]), int(pool["time_ns"][a])
        new = fresh.get(dst)
        if new is not None and new.inferred_point == pt:  # errors come in any order
            new.first_ns = min(new.first_ns, t)
            new.first_error_ns = min(new.first_error_ns, te_ns)
            new.last_ns = max(new.last_ns, te_ns)
            return
        act = self.active.get(dst) or self.pending.get(dst) or new
        if act is not None:
            if act.inferred_point == pt:
                act.last_ns = max(act.last_ns, te_ns)
            return  # its copies are seen (a routed or layer-2 loop): that loop it is
        fresh[dst] = _Active(t, te_ns, inferred_point=pt, first_error_ns=te_ns)
        fresh[dst].points.add(names[pt])

    def _since(self, pool: dict[str, np.ndarray], fresh: dict[tuple[int, int], _Active]) -> None:
        """Each new loop counts from its destination's last answer before its first seed
        (or the oldest packet kept), and after where its previous loop stopped."""
        loops = list(fresh.items())
        j, hit, _ = _lookup(loops, pool, "src")
        t = pool["time_ns"].astype(np.int64)
        first = np.array([a.first_ns for _, a in loops], dtype=np.int64)
        since = np.array([self._ended.get(d, -_NEVER_NS) for d, _ in loops], dtype=np.int64)
        ok = hit & (t < first[j])
        np.maximum.at(since, j[ok], t[ok])
        for (_, a), v in zip(loops, since.tolist()):
            a.since_ns = v

    def _count(
        self,
        rows: dict[str, np.ndarray],
        loops: list[tuple[tuple[int, int], Any]],
        index: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[Any]] | None = None,
    ) -> None:
        """Arrivals for inferred loops' destinations at their points with a TTL that can
        loop and later than each loop's start, each at TTL − 1 copies (``analyze``'s
        estimate)."""
        j, hit, acts = _lookup(loops, rows, "dst", index)
        ttl = rows["ttl"].astype(np.int64)
        at = np.flatnonzero(hit & (ttl >= self.opt.loop_min_entry_ttl))
        if not len(at):
            return
        t = rows["time_ns"].astype(np.int64)
        at = at[np.argsort(j[at], kind="stable")]  # grouped by loop: one slice each
        jj = j[at]
        cuts = np.flatnonzero(np.r_[True, jj[1:] != jj[:-1], True])
        for a0, a1 in zip(cuts[:-1].tolist(), cuts[1:].tolist()):  # the loops hit
            act = acts[int(jj[a0])][1]
            mine = at[a0:a1]
            mine = mine[t[mine] > act.since_ns]
            if len(mine):
                act.packets += len(mine)
                act.copies += int((ttl[mine] - 1).sum())
                act.first_ns = min(act.first_ns, int(t[mine].min()))

    def _follow(self, here: dict[str, np.ndarray], exclude: dict[tuple[int, int], _Active]) -> None:
        """This window's rows for the inferred loops already there: arrivals count, and
        a packet from a destination after its last error ends its loop (it answered)."""
        if self._index is None:
            loops = [
                (d, a)
                for d, a in [*self.pending.items(), *self.active.items()]
                if a.inferred_point is not None
            ]
            self._index = _index_of(loops)
        if not self._index[4]:
            return
        loops_idx = self._index
        if exclude:  # new loops counted these rows already (with the kept ones)
            j, hit, acts = _lookup(None, here, "dst", loops_idx)
            new = np.array([d in exclude for d, _ in acts], dtype=bool)
            rows = {k: v[~(hit & new[j])] for k, v in here.items()}
        else:
            rows = here
        self._count(rows, [], loops_idx)
        j, hit, acts = _lookup(None, here, "src", loops_idx)
        at = np.flatnonzero(hit)
        if not len(at):
            return
        t = here["time_ns"].astype(np.int64)[at]
        jj = j[at]
        o = np.lexsort((t, jj))  # by loop, the latest packet of each last
        jj, t = jj[o], t[o]
        last = np.flatnonzero(np.r_[jj[1:] != jj[:-1], True])
        for k, newest in zip(jj[last].tolist(), t[last].tolist()):  # loops whose
            dst, a = acts[k]  # destination sent something
            if dst in exclude or newest <= a.last_ns:
                continue
            if dst in self.pending:  # it answered before it was reported
                self._confirm_one(dst)
            if dst in self.active:
                self._end(dst, "answered")

    def _confirm_one(self, dst: tuple[int, int]) -> None:
        act = self.pending.pop(dst)
        self.active[dst] = act
        self._index = None
        self.started += 1
        self._events.append(self._event("start", dst, act, act.first_ns))

    def _confirm(self, before_ns: int | None) -> None:
        """Report the inferred loops whose first error came before ``before_ns`` (None:
        all) with no copy seen meanwhile."""
        for dst, act in list(self.pending.items()):
            if before_ns is None or act.first_error_ns < before_ns:
                self._confirm_one(dst)

    def _delivered(self, single: dict[str, np.ndarray]) -> None:
        """A packet for a looping destination that went through without looping, after
        its last copy, at a point where it looped: the loop is over.  (Not for an
        inferred loop: behind the capture point every packet passes it once.)"""
        if not len(single["time_ns"]):
            return
        # only rows for an active destination, found with one sorted lookup: the cost
        # follows the rows, not rows × active loops
        dsts = [d for d, a in self.active.items() if a.inferred_point is None]
        if not dsts:
            return
        active = np.array(dsts, dtype=np.uint64).reshape(-1, 2)
        lasts = np.array([self.active[d].last_ns for d in dsts], dtype=np.int64)
        akey = address_key(active[:, 0], active[:, 1])
        order = np.argsort(akey)
        akey, active, lasts = akey[order], active[order], lasts[order]
        hi, lo = single["dst_hi"].astype(np.uint64), single["dst_lo"].astype(np.uint64)
        j = np.minimum(np.searchsorted(akey, address_key(hi, lo)), len(akey) - 1)
        hit = (active[j, 0] == hi) & (active[j, 1] == lo) & (single["time_ns"] > lasts[j])
        if not hit.any():
            return
        names = [p.name for p in self._points()]
        pairs = np.unique(np.stack([j[hit], single["point"][hit].astype(np.int64)], axis=1), axis=0)
        for k, pt in pairs.tolist():  # (looping destination, point) pairs: few
            dst = (int(active[k, 0]), int(active[k, 1]))
            a = self.active.get(dst)
            if a is not None and names[pt] in a.points:
                self._end(dst, "delivered")

    def _end(self, dst: tuple[int, int], reason: str) -> None:
        a = self.active.pop(dst)
        self.frames.pop(dst, None)
        if a.inferred_point is not None:
            self._index = None
            self._ended[dst] = max(a.last_ns, self._ended.get(dst, 0))
        self._events.append(self._event("end", dst, a, a.last_ns, reason))

    def _event(
        self,
        kind: EventKind,
        dst: tuple[int, int],
        a: _Active,
        when: int,
        reason: str | None = None,
    ) -> LoopEvent:
        span_s = max(a.last_ns - a.first_ns, 0) / _NS
        inferred = a.inferred_point is not None
        return LoopEvent(
            kind=kind,
            time_ns=when,
            destination=to_text(*dst),
            points=tuple(sorted(a.points)),
            looping_packets=a.packets,
            copies=a.copies,
            copies_per_packet=a.copies / max(a.packets, 1),
            rate_pps=a.copies / max(span_s, 1e-3),
            duration_s=span_s,
            reason=reason,
            inferred=inferred,
        )


def _index_of(
    loops: list[tuple[tuple[int, int], Any]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[Any]]:
    """A sorted lookup over loops' destinations: (keys, hi, lo, points, loops)."""
    dh = np.array([d[0] for d, _ in loops], dtype=np.uint64)
    dl = np.array([d[1] for d, _ in loops], dtype=np.uint64)
    key = address_key(dh, dl)
    o = np.argsort(key, kind="stable")
    pts = np.array([a.inferred_point for _, a in loops], dtype=np.int64)
    return key[o], dh[o], dl[o], pts[o], [loops[i] for i in o.tolist()]


def _lookup(
    loops: list[tuple[tuple[int, int], Any]] | None,
    rows: dict[str, np.ndarray],
    side: str,
    index: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[Any]] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    """For each row, the loop (index into the returned list) whose destination is its
    ``side`` address ("dst" or "src") at the loop's point, and whether there is one."""
    key, dh, dl, pts, acts = index if index is not None else _index_of(loops or [])
    hi, lo = rows[f"{side}_hi"].astype(np.uint64), rows[f"{side}_lo"].astype(np.uint64)
    if not len(key):
        return np.zeros(len(hi), np.int64), np.zeros(len(hi), bool), acts
    j = np.minimum(np.searchsorted(key, address_key(hi, lo)), len(key) - 1)
    return j, (dh[j] == hi) & (dl[j] == lo) & (pts[j] == rows["point"]), acts
