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
from .model import Correlation
from .options import Options
from .window import Window, address_key

__all__ = ["LoopEvent", "Watcher"]

_NS = 1_000_000_000
#: a watch correlates a packet's copies once it has been silent this long: far
#: longer than one loop's copies take (microseconds to milliseconds), short enough
#: for an event within a second
WATCH_PATH_GAP_NS = 300_000_000
WATCH_REORDER_NS = 200_000_000
#: distinct layer-2 frames remembered per looping destination (past it, counted again)
MAX_FRAMES_REMEMBERED = 4096
#: a loop ends after this long without a looping copy (``--quiet``)
DEFAULT_QUIET_S = 1.0

EventKind = Literal["start", "end"]


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
    #: passed once), "stopped" (the watch ended while it looped)
    reason: str | None = None

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
        }

    def line(self) -> str:
        """One line for a person."""
        when = (iso_ns(self.time_ns) or "")[11:23]
        at = ",".join(self.points)
        if self.kind == "start":
            return (
                f"{when} LOOP START {self.destination} at {at}: "
                f"{self.copies_per_packet:,.0f} copies per packet, "
                f"{self.rate_pps:,.0f} copies/s"
            )
        why = {"delivered": ", a packet for it passed", "stopped": ", still looping"}.get(
            self.reason or "", ""
        )
        return (
            f"{when} LOOP END   {self.destination} at {at}: {self.duration_s:,.1f} s, "
            f"{self.looping_packets:,} looping packet(s), {self.copies:,} copies{why}"
        )


@dataclass
class _Active:
    first_ns: int
    last_ns: int
    points: set[str] = field(default_factory=set)
    packets: int = 0
    copies: int = 0


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
        done = horizon_ns - self.hold - self.quiet_ns
        for dst in [d for d, a in self.active.items() if a.last_ns < done]:
            self._end(dst, "quiet")
        return self._take()

    def close(self) -> list[LoopEvent]:
        """The input ended: correlate everything held; loops quiet for ``quiet_s`` before
        the last packet end "quiet", the others "stopped" (still looping at the end)."""
        self.window.drain()
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
        a = self.active.get(dst)
        if a is None:
            a = self.active[dst] = _Active(first, last)
            a.points.update(names[int(p)] for p in np.unique(pt))
            a.packets, a.copies = packets, len(t)
            self.started += 1
            self._events.append(self._event("start", dst, a, first))
            return
        a.first_ns, a.last_ns = min(a.first_ns, first), max(a.last_ns, last)
        a.points.update(names[int(p)] for p in np.unique(pt))
        a.packets += packets
        a.copies += len(t)

    def _delivered(self, single: dict[str, np.ndarray]) -> None:
        """A packet for a looping destination that went through without looping, after
        its last copy, at a point where it looped: the loop is over."""
        if not len(single["time_ns"]):
            return
        # only rows for an active destination, found with one sorted lookup: the cost
        # follows the rows, not rows × active loops
        dsts = list(self.active)
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
        )
