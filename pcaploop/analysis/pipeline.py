"""The whole pipeline in one call: read → decode → correlate → detect → measure.

>>> a = analyze(["samples/incident/tap101.pcap"])          # doctest: +SKIP
>>> a.verdict                                               # doctest: +SKIP
'LOOP: 1 routing loop …'
>>> a.loops_frame()                                         # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from .. import _jit
from .. import schema as S
from .._version import __version__
from ..addr import pairs_to_categorical
from ..contract import SCHEMA_VERSION
from ..ingest import loader as loader_mod
from ..ingest.loader import Loader, Packets, Progress
from ..ingest.specs import CaptureSpec, capture_specs
from .correlate import CorrelationState
from .detect import Detection, detect
from .measure import arp_responders, bounce_list, guest_reporters, implicated, loops_frame, measure
from .model import Bounce, Correlation, Implicated, Loop, LoopEvidence, PointRole, Summary
from .options import Options
from .roles import folded_points, infer_roles, proxy_arp_points
from .window import KEEP_MODES, Rates, Window

__all__ = ["Analysis", "analyze"]


@dataclass
class Analysis:
    """Result of :func:`analyze`: typed findings plus DataFrame views for notebooks.

    ``packets`` holds the rows analyze kept (see ``keep`` of :func:`analyze`):
    by default the evidence — every copy of a looping or bouncing packet,
    ICMP errors, neighbour advertisements — not the whole capture.  Its
    capture points carry the full accounting; ``rates`` counts every packet
    per capture point over time.  ``evidence[loop id]`` names the rows of
    each loop.
    """

    packets: Packets
    correlation: Correlation
    detection: Detection
    loops: list[Loop]
    evidence: dict[int, LoopEvidence]
    bounces: list[Bounce]
    implicated: list[Implicated]
    summary: Summary
    options: Options
    warnings: list[str] = field(default_factory=list)
    rates: Rates | None = None
    keep: str = "evidence"
    roles: list[PointRole] = field(default_factory=list)
    #: Ctrl-C ended the reading: the findings cover the packets read until then
    partial: bool = False
    #: indexes built on first use (loop by id; path observations sorted by path)
    _by_id: dict[int, Loop] | None = field(default=None, repr=False, compare=False)
    _by_path: np.ndarray | None = field(default=None, repr=False, compare=False)

    def loop(self, loop_id: int) -> Loop:
        """The loop numbered ``loop_id`` (as ``analyze`` prints it)."""
        if self._by_id is None:
            self._by_id = {lp.id: lp for lp in self.loops}
        if loop_id in self._by_id:
            return self._by_id[loop_id]
        from ..errors import UsageError

        raise UsageError(f"there is no loop {loop_id} (found {len(self.loops)})")

    @property
    def verdict(self) -> str:
        """One line a person reads first (``PARTIAL:`` first when Ctrl-C cut it short)."""
        return ("PARTIAL (interrupted): " if self.partial else "") + self._verdict()

    def _verdict(self) -> str:
        s = self.summary
        if s.loops:
            dsts = ", ".join(sorted({lp.destination for lp in self.loops})[:5])
            seen = [lp for lp in self.loops if lp.kind != "inferred"]
            text = f"LOOP: {s.loops} loop(s) for {dsts}"
            if seen:
                text += (
                    f"; {sum(lp.looping_packets for lp in seen)} looping packet(s) "
                    f"became {s.loop_observations} copies "
                    f"({100 * s.loop_share:.1f} % of all observations)"
                )
            inferred = [lp for lp in self.loops if lp.kind == "inferred"]
            if inferred:
                text += (
                    f"; {sum(lp.looping_packets for lp in inferred)} packet(s) looped "
                    "behind the capture point (inferred from ICMP time-exceeded, estimated "
                    f"{sum(lp.observations for lp in inferred)} copies)"
                )
            return text
        if s.bounces:
            return (
                f"NO LOOP, but {s.bounces} packet(s) bounced off a guest that does not "
                "own their destination (caught by a filter)"
            )
        return f"NO LOOP in {s.observations} observations"

    def to_json(self) -> dict[str, Any]:
        """The JSON document (``docs/design.md``; validated by :func:`pcaploop.validate_json`)."""
        return {
            "schema_version": SCHEMA_VERSION,
            "pcaploop_version": __version__,
            "captures": [
                {**p.to_json(), **r.to_json()}
                for p, r in zip(self.packets.points, self._roles_per_point())
            ],
            "summary": self.summary.to_json(),
            "loops": [lp.to_json() for lp in self.loops],
            "bounces": [b.to_json() for b in self.bounces],
            "implicated": [i.to_json() for i in self.implicated],
            "warnings": self.warnings,
            "partial": self.partial,
        }

    def _roles_per_point(self) -> list[PointRole]:
        by_name = {r.name: r for r in self.roles}
        return [
            by_name.get(p.name, PointRole(p.name, "unknown", "weak", ()))
            for p in self.packets.points
        ]

    def role_of(self, name: str) -> str:
        """The role of capture point ``name``: ``uplink``, ``guest-link`` or ``unknown``."""
        return next((r.role for r in self.roles if r.name == name), "unknown")

    def loops_frame(self) -> pd.DataFrame:
        """Loops as a DataFrame (one row per loop)."""
        return loops_frame(self.loops)

    def bounces_frame(self) -> pd.DataFrame:
        """Bounces as a DataFrame (destination, capture point, packets)."""
        return pd.DataFrame(
            [b.to_json() for b in self.bounces], columns=["destination", "capture_point", "packets"]
        )

    def implicated_frame(self) -> pd.DataFrame:
        """Implicated addresses as a DataFrame (address, roles, capture point, packets)."""
        return pd.DataFrame(
            [i.to_json() for i in self.implicated],
            columns=["address", "roles", "capture_point", "packets"],
        )

    def path_rows(self) -> pd.DataFrame:
        """Every observation of every path kept: of looping and bouncing packets, and with
        ``keep="paths"`` or ``"all"`` of every packet seen more than once."""
        corr = self.correlation
        lp = self.detection.looping
        loop = (
            lp["loop"].reindex(corr.path).to_numpy()
            if not lp.empty
            else np.full(len(corr.path), np.nan)
        )
        return self._rows_frame(
            corr.rows,
            corr.path,
            corr.direction,
            corr.loop_copy,
            corr.p_loop[corr.path],
            corr.p_bounce[corr.path],
            loop,
        )

    def loop_path_rows(self, loop_id: int) -> pd.DataFrame:
        """The paths of one loop, whatever its kind, in :meth:`path_rows`' columns.

        A routed (l3) loop's looping packets; a layer-2 loop's repeated frames (one
        path per frame); an inferred loop's arrivals (one path per packet, the
        copies themselves were not captured).
        """
        lp = self.loop(loop_id)
        ev = self.evidence[loop_id]
        if lp.kind == "l3":
            return self._paths_frame(np.asarray(ev.shown_paths, np.int64))
        rows = ev.copies
        fp = self.packets.cols["fingerprint"][rows]
        path = (
            np.unique(fp, return_inverse=True)[1].ravel()
            if lp.kind == "l2"
            else (np.arange(len(rows)))
        )
        n = len(rows)
        return self._rows_frame(
            rows,
            path.astype(np.int64),
            self.packets.cols["direction"][rows].astype(np.int8),
            np.full(n, lp.kind == "l2"),
            np.full(n, True),
            np.full(n, False),
            np.full(n, loop_id),
        )

    def _rows_frame(
        self,
        r: np.ndarray,
        path: np.ndarray,
        direction: np.ndarray,
        loop_copy: np.ndarray,
        looping: np.ndarray,
        bounce: np.ndarray,
        loop: np.ndarray,
    ) -> pd.DataFrame:
        from ..addr import categorical
        from ..decode.protocols import PROTO_NAMES

        c = self.packets.cols
        df = pd.DataFrame(
            {
                "path": path,
                "time": pd.to_datetime(c["time_ns"][r], unit="ns", utc=True),
                "capture_point": categorical(
                    c["point"][r].astype(np.int64), self.packets.point_names
                ),
                "direction": categorical(direction.astype(np.int64), ["unknown", "in", "out"]),
                "ttl": c["ttl"][r],
                "loop_copy": loop_copy,
                "row": r,
                "looping": looping,
                "bounce": bounce,
                "loop": pd.array(loop, dtype="Int64"),
                "src": pairs_to_categorical(c["src_hi"][r], c["src_lo"][r]),
                "dst": pairs_to_categorical(c["dst_hi"][r], c["dst_lo"][r]),
                "proto": [PROTO_NAMES.get(int(x), str(int(x))) for x in c["protocol"][r]],
                "ip_id": c["ip_id"][r],
            }
        )
        df = df.sort_values(["path", "ttl", "time"], ascending=[True, False, True])
        df["since_first_ms"] = (
            df["time"] - df.groupby("path")["time"].transform("min")
        ).dt.total_seconds() * 1e3
        return df.reset_index(drop=True)

    def path_of(self, row: int) -> pd.DataFrame:
        """Every observation of the packet at packets-table ``row``, hop by hop (TTL order).

        Empty when that packet was seen only once (it has no path).

        >>> a.path_of(int(a.loop_packets(1).index[0]))          # doctest: +SKIP
        """
        corr = self.correlation
        hit = np.flatnonzero(corr.rows == row)
        return self._paths_frame(corr.path[hit[:1]].astype(np.int64))

    def _paths_frame(self, paths: np.ndarray) -> pd.DataFrame:
        """:meth:`path_rows` of the given path ids only, from a path-sorted index built
        once: the cost is the size of those paths, not of the whole capture."""
        corr = self.correlation
        if self._by_path is None:
            self._by_path = np.argsort(corr.path, kind="stable")
        sorted_path = corr.path[self._by_path]
        lo = np.searchsorted(sorted_path, paths, "left")
        hi = np.searchsorted(sorted_path, paths, "right")
        sel = (
            np.concatenate([self._by_path[a:b] for a, b in zip(lo.tolist(), hi.tolist())])
            if len(paths)
            else np.zeros(0, np.int64)
        )
        sel = np.sort(sel)
        lp = self.detection.looping
        path = corr.path[sel]
        loop = lp["loop"].reindex(path).to_numpy() if not lp.empty else np.full(len(sel), np.nan)
        return self._rows_frame(
            corr.rows[sel],
            path,
            corr.direction[sel],
            corr.loop_copy[sel],
            corr.p_loop[path],
            corr.p_bounce[path],
            loop,
        )

    def loop_packets(self, loop_id: int) -> pd.DataFrame:
        """Rows of the packets table that are copies of one loop's looping packets."""
        self.loop(loop_id)
        return self.packets.frame().iloc[self.evidence[loop_id].copies]


def analyze(
    captures: Sequence[CaptureSpec | str | os.PathLike[str]] | Packets,
    ifmap: dict[int, str] | Sequence[str] | None = None,
    merge_gap_s: float = 10.0,
    merge_prefix: int | None = None,
    progress: Progress | None = None,
    keep: str = "evidence",
    chunk_rows: int = 1 << 18,
    uplinks: Sequence[str] = (),
    guest_links: Sequence[str] = (),
    follow: bool = False,
) -> Analysis:
    """Read captures (or take loaded :class:`Packets`) and find loops.

    Captures are streamed (:mod:`pcaploop.window`): memory holds one window
    of traffic plus what ``keep`` asks for — ``"evidence"`` (the copies of
    looping and bouncing packets, ICMP errors, neighbour advertisements),
    ``"paths"`` (also every other packet seen more than once, for
    ``paths --all``), or ``"all"`` (every row; the default for loaded
    :class:`Packets`).  ``merge_gap_s``: looping packets of one destination
    and set of capture points closer than this form one loop.
    ``merge_prefix``: merge by destination prefix of this length instead
    (Hengartner et al. used /24).  ``chunk_rows``: rows read between two
    correlation passes (results do not depend on it).  ``uplinks`` /
    ``guest_links``: capture point names whose role is given (otherwise every
    role is inferred from the packets, :mod:`.roles`).  ``follow``: keep reading
    the files as they grow (``tail -f``) until Ctrl-C, then analyse all that was read.

    >>> a = analyze(["uplink=uplink.pcap", "tap101.pcap"])    # doctest: +SKIP
    >>> a.verdict, a.loops_frame()                            # doctest: +SKIP
    """
    if keep not in KEEP_MODES:
        raise ValueError(f"keep must be one of {', '.join(KEEP_MODES)}, not {keep!r}")
    opt = Options(merge_gap_ns=int(merge_gap_s * 1e9), merge_prefix=merge_prefix)
    state = CorrelationState(guest_links=frozenset(guest_links), uplinks=frozenset(uplinks))
    if isinstance(captures, Packets):
        pk, corr, rates, late = _window_packets(captures, opt, chunk_rows, state)
        keep = "all"
    else:
        pk, corr, rates, late = _stream(
            *capture_specs(captures, ifmap), opt, progress, keep, chunk_rows, state, follow
        )
    names = pk.point_names
    _check_named(names, uplinks, guest_links)
    det = detect(pk.cols, corr, names, opt)
    roles = _roles(pk, corr, det, state, uplinks, guest_links)
    loops, evidence = measure(pk.cols, corr, det, names, opt, roles)
    bounces = bounce_list(det)
    _fill_directions(pk, corr, state)
    arp = arp_responders(pk.arp, pk.cols, {lp.destination for lp in loops})
    guests = [r.name for r in roles if r.role == "guest-link"]
    impl = implicated(loops, bounces, arp, guest_reporters(pk.cols, names, guests))
    observations = sum(p.decoded for p in pk.points) - corr.duplicates
    seen = [lp for lp in loops if lp.kind != "inferred"]
    loop_obs = sum(lp.observations for lp in seen)
    summary = Summary(
        observations=int(observations),
        duplicates=int(corr.duplicates),
        looping_packets=int(sum(lp.looping_packets for lp in seen)),
        inferred_looping_packets=int(
            sum(lp.looping_packets for lp in loops if lp.kind == "inferred")
        ),
        loop_observations=int(loop_obs),
        loop_share=loop_obs / observations if observations else 0.0,
        loops=len(loops),
        bounces=int(sum(b.packets for b in bounces)),
        peak_loop_pps=float(max((lp.extra_pps_peak or 0 for lp in loops), default=0.0)),
    )
    warnings = (
        list(pk.warnings)
        + corr.warnings
        + [
            f"capture point {p.name}: the capture itself dropped {p.capture_dropped} packet(s) "
            "(interface statistics); copies missing from a loop's TTL ladder may be that loss"
            for p in pk.points
            if p.capture_dropped
        ]
    )
    if late:
        warnings.append(
            f"{late} packet(s) were stamped more than "
            f"{(opt.path_gap_ns + opt.reorder_window_ns) / 1e9:g} s before packets "
            "already read from the other captures (clocks out of step?); they were "
            "correlated only with copies still in the window"
        )
    warnings += [
        f"capture point {r.name}: its role ({r.role}) rests on weak evidence: "
        + "; ".join(r.evidence)
        for r in roles
        if r.confidence == "weak" and r.role != "unknown"
    ]
    if state.interrupted:
        warnings.insert(
            0,
            "interrupted (Ctrl-C): what follows covers only the packets read until then",
        )
    return Analysis(
        pk,
        corr,
        det,
        loops,
        evidence,
        bounces,
        impl,
        summary,
        opt,
        warnings,
        rates,
        keep,
        roles,
        partial=state.interrupted,
    )


def _fill_directions(pk: Packets, corr: Correlation, state: CorrelationState) -> None:
    """Give the packets table the directions correlate inferred, where the capture
    recorded none: a path's copies as correlate labelled them, any other row of an
    Ethernet point by whether the host's MAC on that link sent it."""
    d = pk.cols["direction"]
    if not len(d):
        return
    unknown = d[corr.rows] == S.DIR_UNKNOWN
    d[corr.rows[unknown]] = corr.direction[unknown]
    hosts = np.array(
        [h if (h := state.host_mac(p)) is not None else S.NO_MAC for p in range(len(pk.points))],
        np.uint64,
    )
    src = pk.cols["eth_src"]
    host = hosts[pk.cols["point"]]
    at = (d == S.DIR_UNKNOWN) & (src != S.NO_MAC) & (host != S.NO_MAC)
    d[at] = np.where(src[at] == host[at], S.DIR_OUT, S.DIR_IN)


def _check_named(names: Sequence[str], uplinks: Sequence[str], guest_links: Sequence[str]) -> None:
    from ..errors import UsageError

    for flag, given in (("--uplink", uplinks), ("--guest-link", guest_links)):
        for n in given:
            if n not in names:
                raise UsageError(
                    f"{flag} {n}: no capture point of that name (they are "
                    f"{', '.join(names) or 'none'})"
                )
    both = set(uplinks) & set(guest_links)
    if both:
        raise UsageError(f"{', '.join(sorted(both))}: given both as --uplink and --guest-link")


def _roles(
    pk: Packets,
    corr: Correlation,
    det: Detection,
    state: CorrelationState,
    uplinks: Sequence[str],
    guest_links: Sequence[str],
) -> list[PointRole]:
    """Every capture point's role, from the facts correlate gathered and what detect found."""
    from ..addr import to_text

    names = pk.point_names
    index = {n: k for k, n in enumerate(names)}
    bounce_pts: dict[int, int] = {}
    behind: dict[str, int] = {}
    bo = det.bounces
    for dh, dl, cp, n in zip(
        bo["destination_hi"].tolist(),
        bo["destination_lo"].tolist(),
        bo["capture_point"].tolist(),
        bo["packets"].tolist(),
    ):
        k = index[str(cp)]
        bounce_pts[k] = bounce_pts.get(k, 0) + int(n)
        behind[to_text(int(dh), int(dl))] = k
    lp = det.looping
    if not lp.empty:
        firsts = lp.drop_duplicates(["dst_hi", "dst_lo", "points"])
        for dh, dl, pts in firsts[["dst_hi", "dst_lo", "points"]].itertuples(index=False):
            behind[to_text(dh, dl)] = index[str(pts).split(",")[0]]
    host_macs = {p: m for p in range(len(names)) if (m := state.host_mac(p)) is not None}
    proxy = proxy_arp_points(pk.arp, pk.cols, host_macs, behind)
    folded = folded_points(state.senders, [p.linktype for p in pk.points])
    return infer_roles(
        names,
        state.roles,
        bounce_pts,
        proxy,
        uplinks,
        guest_links,
        folded=folded,
        twins=[(a, b, n) for a, b, n in corr.overlaps],
    )


@contextmanager
def _interrupts() -> Iterator[Callable[[], bool]]:
    """While reading, Ctrl-C (SIGINT) asks to stop after the current block instead of
    raising in the middle of one: the analysis then finishes on what was read.  A
    second Ctrl-C interrupts at once.  Outside the main thread nothing changes."""
    import signal
    import threading

    hits: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return

    def handler(signum: int, frame: object) -> None:
        hits.append(signum)
        if len(hits) > 1:
            raise KeyboardInterrupt

    old = signal.signal(signal.SIGINT, handler)
    try:
        yield lambda: bool(hits)
    finally:
        signal.signal(signal.SIGINT, old)


def _stream(
    specs: list[CaptureSpec],
    ifmap: dict[int, str],
    opt: Options,
    progress: Progress | None,
    keep: str,
    chunk_rows: int,
    state: CorrelationState,
    follow: bool = False,
) -> tuple[Packets, Correlation, Rates, int]:
    """Read all captures in step through a :class:`~.window.Window`; ``follow``: read
    the files as they grow until Ctrl-C (which then ends the input, not the analysis)."""
    with _interrupts() as asked:
        loader = Loader(specs, ifmap, follow=asked if follow else None)
        win = Window(opt, lambda: loader.reg.points, loader.point_files, keep, chunk_rows, state)
        arps = []
        blocks = loader.merged(progress, into=lambda: win.into(loader_mod.BLOCK_ROWS))
        for cols, arp in blocks:
            win.add(cols)
            arps.append(arp)
            win.maybe_flush(loader.horizon)
            if asked() and not follow:  # Ctrl-C: analyse what was read, say it is partial
                blocks.close()
                state.interrupted = True
                break
    if loader.unsupported and not any(p.decoded for p in loader.points):
        raise loader.unsupported[0]
    win.drain()
    new_of_old = loader.canonical_points()
    kept, corr = win.finish(new_of_old, loader.point_files())
    win.rates.remap(new_of_old)
    points = loader.points
    arp = {k: np.concatenate([a[k] for a in arps]) for k in (arps[0] if arps else {})}
    if "point" in arp and len(arp["point"]):
        arp["point"] = new_of_old[arp["point"]]
    return Packets(kept, points, arp, loader.warnings), corr, win.rates, win.late


#: bytes of the smallest Ethernet frame: a packets table counts as a capture of this size
_MIN_FRAME_BYTES = 64


def _window_packets(
    pk: Packets, opt: Options, chunk_rows: int, state: CorrelationState
) -> tuple[Packets, Correlation, Rates, int]:
    """Loaded packets through the same window, keeping every row (compiled kernels from
    as many rows as the smallest frames of a capture worth compiling for)."""
    _jit.activate_for(len(pk) * _MIN_FRAME_BYTES)
    paths = list(dict.fromkeys(p.path for p in pk.points))
    files = np.array([paths.index(p.path) for p in pk.points], dtype=np.int64)
    win = Window(opt, lambda: pk.points, lambda: files, "all", chunk_rows, state)
    n = len(pk)
    for s in range(0, n, chunk_rows):
        win.add({k: a[s : s + chunk_rows] for k, a in pk.cols.items()})
        end = int(pk.cols["time_ns"][min(s + chunk_rows, n) - 1])
        win.maybe_flush(float(end) if s + chunk_rows < n else float("inf"))
    kept, corr = win.finish()
    return Packets(kept, pk.points, pk.arp, pk.warnings), corr, win.rates, win.late
