"""Plots that make a loop obvious to someone who did not run the analysis.

Every function takes an :class:`~pcaploop.analysis.Analysis`, draws on
``ax`` (a new pyplot figure when ``None``, as seaborn does), returns the
Axes and never calls ``show()``.  The CLI and the HTML report call the same
functions on bare :class:`matplotlib.figure.Figure` objects (:func:`figures`),
so nothing here touches pyplot's global state unless a notebook user asks
for a new figure.  matplotlib is imported inside functions: ``import
pcaploop`` stays fast.

One look for all of them: the Okabe–Ito palette (safe for colour-blind
readers), direction colours shared by the TTL staircase and the path ladder,
units in every axis label.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

import numpy as np

from .. import schema as S
from .._procs import forked_map
from . import _statistics as stats
from . import extract as X

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.typing import RcKeyType

    from ..analysis.model import Loop
    from ..analysis.pipeline import Analysis


__all__ = [
    "amplification",
    "copies_histogram",
    "cycle_time_histogram",
    "distributions",
    "path_ladder",
    "timeline",
    "ttl_staircase",
    "write_plots",
]

#: Okabe & Ito (2008), "Color Universal Design"; black last (used for markings)
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
#: host sends (out) / host receives (in) / not recorded
DIRECTION_COLOURS = {S.DIR_OUT: "#D55E00", S.DIR_IN: "#0072B2", S.DIR_UNKNOWN: "#777777"}
DIRECTION_WORDS = {
    S.DIR_OUT: "out (host sends)",
    S.DIR_IN: "in (host receives)",
    S.DIR_UNKNOWN: "direction not recorded",
}
MARKERS = "os^Dv<>p"
#: per-loop plots (staircase, ladder) are drawn for at most this many loops
MAX_LOOP_PLOTS = 12
#: of those, loops that also get a path ladder (one packet hop by hop: many labels)
MAX_LADDERS = 4
#: destinations drawn in the amplification plot (those with the most copies)
MAX_DESTINATIONS = 25

_P = ParamSpec("_P")
_R = TypeVar("_R")

_RC: dict[RcKeyType, Any] = {
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "font.size": 9,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "figure.dpi": 100,
    "savefig.dpi": 120,
    "svg.fonttype": "path",
    "text.usetex": False,
}


def _styled(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Draw inside an rc_context: one style, and no change to the user's defaults.

    Why the care with ``interactive``: rc_context restores *every* rcParam on
    exit.  When the first plot of a notebook imports pyplot, IPython's inline
    backend switches interactive mode on inside the context; restoring it to
    off made every later figure stay undrawn until the end of the notebook
    (cells showed only ``<Axes…>``).  The user's interactive mode is theirs:
    whatever it is when the drawing ends, it stays.
    """

    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        import matplotlib as mpl
        from cycler import cycler

        with mpl.rc_context({**_RC, "axes.prop_cycle": cycler(color=OKABE_ITO)}):
            out = func(*args, **kwargs)
            interactive = mpl.is_interactive()
        mpl.interactive(interactive)
        return out

    return wrapper


def _axes(ax: Axes | None, size: tuple[float, float]) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    new: Axes = plt.subplots(figsize=size, layout="constrained")[1]
    return new


def _t(text: Any) -> str:
    """A string from a capture, safe as matplotlib text (``$`` would start mathtext)."""
    return str(text).replace("\\", "\\\\").replace("$", r"\$")


def _empty(ax: Axes, title: str, message: str) -> Axes:
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="#555555")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    return ax


def _time_unit(span_s: float) -> tuple[str, float]:
    """(unit, seconds per unit) that keeps tick labels short."""
    for unit, size, upto in (
        ("µs", 1e-6, 5e-3),
        ("ms", 1e-3, 5.0),
        ("s", 1.0, 900.0),
        ("min", 60.0, 36_000.0),
    ):
        if span_s <= upto:
            return unit, size
    return "h", 3600.0


def _bin_width(span_s: float, max_bins: int = 120) -> float:
    """A round bin width giving at most ``max_bins`` bins."""
    for w in (
        1e-3,
        2e-3,
        5e-3,
        1e-2,
        2e-2,
        5e-2,
        0.1,
        0.2,
        0.5,
        1,
        2,
        5,
        10,
        30,
        60,
        120,
        300,
        600,
        1800,
        3600,
    ):
        if span_s / w <= max_bins:
            return w
    return span_s / max_bins


def _loop_copy_rows(a: Analysis) -> np.ndarray:
    parts = [X.loop_rows(a, lp.id).copies for lp in a.loops if lp.kind != "inferred"]
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)


def _utc(ns: int) -> str:
    from ..contract import iso_ns

    return (iso_ns(ns) or "")[:19].replace("T", " ")


# --- 1. timeline ---------------------------------------------------------------------
def traffic_rates(
    a: Analysis, bin_s: float | None = None
) -> tuple[int, float, np.ndarray, list[tuple[int, bool, np.ndarray]]]:
    """Binned packet rates behind :func:`timeline`.

    Returns ``(t0_ns, bin_s, edges_s, layers)`` where ``layers`` is a list of
    ``(point index, is_loop_copy, packets per second per bin)``: other traffic
    of every point first, then the loop copies of every point that has some.
    """
    rates = a.rates
    if rates is None:  # an Analysis built by hand: its packets are all there is
        from ..analysis.window import Rates

        rates = Rates()
        rates.add(a.packets.cols["time_ns"], a.packets.cols["point"])
    cell, cell_pt, count = rates.table()
    # both are set once a packet was added; timeline() checks that before calling this
    first_ns, last_ns = cast(int, rates.first_ns), cast(int, rates.last_ns)
    t0 = int(first_ns)
    span = max((int(last_ns) - t0) / 1e9, 1e-3)
    width = max(bin_s or _bin_width(span), rates.res_ns / 1e9)
    edges = np.arange(0, span + width, width)
    if len(edges) < 2 or edges[-1] <= span:
        edges = np.append(edges, edges[-1] + width) if len(edges) else np.array([0.0, width])
    # every packet is counted per cell of rates.res_ns; loop copies (kept rows) are
    # counted in the same cells and taken out of them, so the layers add up exactly
    res = rates.res_ns
    keys = (cell // res) * 4096 + cell_pt
    loop_rows = _loop_copy_rows(a)
    lkey = (a.packets.cols["time_ns"][loop_rows] // res) * 4096 + a.packets.cols["point"][
        loop_rows
    ].astype(np.int64)
    lk, lc = np.unique(lkey, return_counts=True)
    other = count.copy()
    at = np.minimum(np.searchsorted(keys, lk), max(len(keys) - 1, 0))
    hit = (keys[at] == lk) if len(keys) else np.zeros(len(lk), bool)
    np.subtract.at(other, at[hit], lc[hit])
    np.maximum(other, 0, out=other)

    def rel(k: np.ndarray) -> np.ndarray:  # cell middle, seconds since t0
        return np.clip(((k // 4096) * res + res // 2 - t0) / 1e9, 0.0, edges[-1] * (1 - 1e-12))

    present = [int(p) for p in np.unique(cell_pt)]
    layers = []
    for p in present:
        h = np.histogram(rel(keys[cell_pt == p]), edges, weights=other[cell_pt == p])[0]
        if h.any():
            layers.append((p, False, h / width))
    for p in present:
        mine = lk % 4096 == p
        h = np.histogram(rel(lk[mine]), edges, weights=lc[mine])[0]
        if h.any():
            layers.append((p, True, h / width))
    return t0, width, edges, layers


@_styled
def timeline(a: Analysis, ax: Axes | None = None, bin_s: float | None = None) -> Axes:
    """Packets per second at each capture point, loop copies stacked on normal traffic,
    each loop's start and end marked.

    >>> ax = pcaploop.plot_timeline(a)                     # doctest: +SKIP
    >>> ax.figure.savefig("timeline.png")                  # doctest: +SKIP
    """
    ax = _axes(ax, (10, 4.2))
    title = "Traffic per capture point (loop copies stacked on top)"
    if (a.rates.first_ns is None) if a.rates is not None else len(a.packets.cols["time_ns"]) == 0:
        return _empty(ax, title, "no IP packets in the captures")
    t0, width, edges, layers = traffic_rates(a, bin_s)
    unit, per = _time_unit(edges[-1])
    names = a.packets.point_names
    colour = {p: OKABE_ITO[k % 7] for k, p in enumerate(dict.fromkeys(p for p, _, _ in layers))}
    x = edges[:-1] / per
    base = np.zeros(len(x))
    for p, loop, rate in layers:
        top = base + rate
        label = f"{_t(names[p])}: {'loop copies' if loop else 'other traffic'}"
        ax.fill_between(
            x,
            base,
            top,
            step="post",
            color=colour[p],
            alpha=0.9 if loop else 0.35,
            hatch="////" if loop else None,
            edgecolor="white" if loop else colour[p],
            linewidth=0.0,
            label=label,
        )
        base = top
    ax.set_xlim(0, edges[-1] / per)
    lanes = min(len(a.loops), 6)
    ax.set_ylim(0, max(base.max(), 1) * (1.1 + 0.1 * (lanes + (len(a.loops) > lanes))))
    _mark_loops(ax, a, t0, per, lanes)
    ax.set_title(title)
    ax.set_xlabel(f"time since {_utc(t0)} UTC ({unit}); bins of {_fmt_s(width)}")
    ax.set_ylabel("packets per second")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return ax


def _fmt_s(sec: float) -> str:
    return f"{sec * 1e3:g} ms" if sec < 1 else f"{sec:g} s"


def _mark_loops(ax: Axes, a: Analysis, t0: int, per: float, lanes: int) -> None:
    """One lane per loop above the traffic: a bar from its start to its end, labelled."""
    from matplotlib.transforms import blended_transform_factory

    tr = blended_transform_factory(ax.transData, ax.transAxes)
    xmax = ax.get_xlim()[1]
    for k, lp in enumerate(a.loops[:lanes]):
        s = (lp.first_ns - t0) / 1e9 / per
        e = (lp.last_ns - t0) / 1e9 / per
        y = 0.95 - 0.065 * k
        ax.axvspan(s, e, color="#D55E00", alpha=0.04, linewidth=0)
        ax.plot(
            [s, e],
            [y, y],
            transform=tr,
            color="#000000",
            linewidth=1.6,
            marker="|",
            markersize=9,
            solid_capstyle="butt",
        )
        right = s > 0.6 * xmax
        ax.annotate(
            f"loop {lp.id} ({_t(lp.destination)})",
            (e if right else s, y),
            xycoords=tr,
            xytext=(-2 if right else 2, 2),
            textcoords="offset points",
            fontsize=7.5,
            ha="right" if right else "left",
            va="bottom",
        )
    if len(a.loops) > lanes:
        ax.text(
            0.99,
            0.95 - 0.065 * lanes,
            f"+{len(a.loops) - lanes} more loops",
            transform=ax.transAxes,
            fontsize=7.5,
            ha="right",
        )


# --- 2. TTL staircase ------------------------------------------------------------------
def _first_loop(a: Analysis, loop_id: int | None) -> Loop | None:
    if loop_id is None:
        return next((lp for lp in a.loops if lp.kind != "inferred"), None)
    return a.loop(loop_id)


def _path_obs(a: Analysis, pid: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows of one path in path order (TTL falling, then time) with their direction."""
    corr = a.correlation
    sel = np.flatnonzero(corr.path == pid)
    rows = corr.rows[sel].astype(np.int64)
    c = a.packets.cols
    order = np.lexsort((c["time_ns"][rows], -c["ttl"][rows].astype(np.int64)))
    return rows[order], corr.direction[sel][order]


@_styled
def ttl_staircase(
    a: Analysis, loop_id: int | None = None, ax: Axes | None = None, max_packets: int = 6
) -> Axes:
    """TTL against time since each packet was first seen, for a sample of the loop's
    looping packets, coloured by direction: a staircase falling by the TTL step per
    round trip is what a routing loop looks like, and nothing else does.  When the
    markers merge, an inset zooms into one packet's first copies.

    >>> pcaploop.plot_ttl_staircase(a, loop_id=1)           # doctest: +SKIP
    """
    ax = _axes(ax, (8, 4.6))
    lp = _first_loop(a, loop_id)
    if lp is None or lp.kind == "inferred":
        what = "no loop" if lp is None else f"loop {lp.id} was inferred: no copies captured"
        return _empty(ax, "TTL staircase", what)
    c, names = a.packets.cols, a.packets.point_names
    if lp.kind == "l2":
        traces = _l2_traces(a, lp, max_packets)
    else:
        paths = X.shown_paths(a, lp.id)
        firsts = a.detection.looping.loc[paths, "first_ns"].sort_values()
        k = min(max_packets, len(firsts))  # evenly spread over the loop's duration
        pick = firsts.index[np.unique(np.linspace(0, len(firsts) - 1, k).astype(int))]
        traces = [_path_obs(a, int(p)) for p in pick]
    span = max((c["time_ns"][r].max() - c["time_ns"][r].min()) / 1e9 for r, _ in traces)
    unit, per = _time_unit(max(span, 1e-6))
    style = _TraceStyle(names)
    xy = [style.draw(ax, c, rows, dirs, per, 16) for rows, dirs in traces]
    step = lp.ttl_step
    ax.set_title(f"TTL staircase: loop {lp.id} to {_t(lp.destination)}")
    ax.set_xlabel(f"time since the packet was first seen ({unit})")
    ax.set_ylabel("TTL / hop limit")
    ax.set_ylim(bottom=0)
    note = (
        f"{len(traces)} of {lp.looping_packets:,} looping packets overlaid\n"
        + (f"TTL −{step} per trip around the loop, " if step else "same TTL every time, ")
        + f"×{lp.amplification:.1f} copies"
    )
    ax.legend(loc="upper right", title=note, title_fontsize=8, alignment="left")
    if max(len(r) for r, _ in traces) > 40:  # markers merge: zoom into one packet's start
        _zoom(ax, c, traces[0], style, np.concatenate(xy))
    return ax


class _TraceStyle:
    """Marker per capture point, colour per direction, one legend entry per pair."""

    names: list[str]
    marker: dict[int, str]  # capture point → marker
    seen: set[tuple[int, int]]  # (capture point, direction) pairs in the legend

    def __init__(self, names: list[str]) -> None:
        self.names, self.marker, self.seen = names, {}, set()

    def draw(
        self,
        ax: Axes,
        c: dict[str, np.ndarray],
        rows: np.ndarray,
        dirs: np.ndarray,
        per: float,
        size: float,
        label: bool = True,
    ) -> np.ndarray:
        x = (c["time_ns"][rows] - c["time_ns"][rows].min()) / 1e9 / per
        y = c["ttl"][rows].astype(int)
        ax.plot(x, y, color="#999999", linewidth=0.7, zorder=1)
        for p in np.unique(c["point"][rows]):
            mk = self.marker.setdefault(int(p), MARKERS[len(self.marker) % len(MARKERS)])
            for d in (S.DIR_OUT, S.DIR_IN, S.DIR_UNKNOWN):
                m = (c["point"][rows] == p) & (dirs == d)
                if not m.any():
                    continue
                key = (int(p), d)
                text = f"{_t(self.names[int(p)])} {DIRECTION_WORDS[d]}"
                ax.scatter(
                    x[m],
                    y[m],
                    s=size,
                    marker=mk,
                    color=DIRECTION_COLOURS[d],
                    zorder=2,
                    linewidths=0,
                    label=text if label and key not in self.seen else None,
                )
                self.seen.add(key)
        return np.column_stack([x, y])


def _zoom(
    ax: Axes,
    c: dict[str, np.ndarray],
    trace: tuple[np.ndarray, np.ndarray],
    style: _TraceStyle,
    xy: np.ndarray,
    n: int = 12,
) -> None:
    """Inset with the first ``n`` observations of one packet, where the data are not;
    no inset when every place would cover some (staircases of different entry TTLs
    fill the plot): hiding data to zoom into it helps no one."""
    rows, dirs = trace[0][:n], trace[1][:n]
    ax.autoscale_view()
    pts = ax.transAxes.inverted().transform(ax.transData.transform(xy))
    w, h = 0.3, 0.36
    spots = [
        (0.08, 0.08),
        (0.36, 0.08),
        (0.64, 0.08),
        (0.64, 0.5),
        (0.36, 0.5),
        (0.08, 0.5),
    ]
    busy = [
        int(
            (
                (pts[:, 0] > x0 - 0.04)
                & (pts[:, 0] < x0 + w + 0.02)
                & (pts[:, 1] > y0 - 0.04)
                & (pts[:, 1] < y0 + h + 0.1)
            ).sum()
        )
        for x0, y0 in spots
    ]
    if min(busy) > 0:
        return
    x0, y0 = spots[int(np.argmin(busy))]
    ins = ax.inset_axes((x0, y0, w, h))
    unit, per = _time_unit((c["time_ns"][rows].max() - c["time_ns"][rows].min()) / 1e9 * 2)
    style.draw(ins, c, rows, dirs, per, 22, label=False)
    ins.set_title(
        f"zoom: first {len(rows)} observations of one packet", fontsize=7, fontweight="normal"
    )
    ins.set_xlabel(unit, fontsize=7, labelpad=1)
    ins.tick_params(labelsize=6.5, pad=1)
    ins.grid(True, alpha=0.3)


def _l2_traces(a: Analysis, lp: Loop, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rows = X.loop_rows(a, lp.id).copies
    fp = a.packets.cols["fingerprint"][rows]
    out = []
    for f in list(dict.fromkeys(fp.tolist()))[:k]:
        r = rows[fp == f]
        out.append((r, a.packets.cols["direction"][r]))
    return out


# --- 3. amplification ---------------------------------------------------------------------
@_styled
def amplification_height(destinations: int) -> float:
    """Figure height (inches) for :func:`amplification` with this many destinations."""
    return 1.6 + 0.55 * max(1, min(destinations, MAX_DESTINATIONS))


def amplification(a: Analysis, ax: Axes | None = None) -> Axes:
    """Per loop destination: copies per looping packet and extra packets (log scale).

    >>> pcaploop.plot_amplification(a)                      # doctest: +SKIP
    """
    dests: dict[str, list[int]] = {}
    est: set[str] = set()
    for lp in a.loops:
        d = dests.setdefault(lp.destination, [0, 0])
        d[0] += lp.looping_packets
        d[1] += lp.observations
        if lp.estimated:
            est.add(lp.destination)
    ax = _axes(ax, (8, amplification_height(len(dests))))
    title = "Amplification per loop destination"
    if not dests:
        return _empty(ax, title, "no loop: nothing was amplified")
    ranked = sorted(dests, key=lambda k: (-dests[k][1], k))
    order = ranked[:MAX_DESTINATIONS]
    if len(ranked) > len(order):
        title += f": the {len(order)} with most copies of {len(ranked):,}"
    y = np.arange(len(order))
    amp = np.array([dests[k][1] / max(dests[k][0], 1) for k in order])
    extra = np.array([max(dests[k][1] - dests[k][0], 0) for k in order])
    h = 0.38
    b1 = ax.barh(y - h / 2, amp, h, color=OKABE_ITO[5], label="copies per looping packet")
    b2 = ax.barh(
        y + h / 2,
        np.maximum(extra, 0.8),
        h,
        color=OKABE_ITO[0],
        label="extra packets (copies − looping packets)",
    )
    for bars, vals, fmt in ((b1, amp, "×{:,.1f}"), (b2, extra, "{:,.0f}")):
        for bar, v in zip(bars, vals):
            ax.annotate(
                fmt.format(v),
                (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
            )
    ax.set_xscale("log")
    ax.set_xlim(0.8, max(extra.max(), amp.max()) * 8)
    ax.set_yticks(y, [_t(k) + (" (estimated)" if k in est else "") for k in order])
    ax.invert_yaxis()
    ax.grid(axis="y", visible=False)
    ax.set_title(title)
    ax.set_xlabel("packets (log scale)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return ax


# --- 4. path ladder ------------------------------------------------------------------------
def _sides(a: Analysis, lp: Loop, rows: np.ndarray) -> dict[int, str]:
    """Lifeline of each capture point of a path: 'upstream' or a guest link name.

    A point is on the guest side when its name says so (tap, veth, …) or when
    the loop circulates there while the packet also passed another point.
    """
    from ..analysis.roles import guest_link_by_name

    names = a.packets.point_names
    pts = [int(p) for p in dict.fromkeys(a.packets.cols["point"][rows].tolist())]
    out = {}
    for p in pts:
        guest = guest_link_by_name(names[p]) or (names[p] in lp.capture_points and len(pts) > 1)
        out[p] = names[p] if guest else "upstream"
    return out


def _ladder_path(a: Analysis, lp: Loop, path: int | None) -> int:
    if path is not None:
        return path
    paths = X.shown_paths(a, lp.id)
    lpaths = a.detection.looping.loc[paths]
    return int(lpaths.sort_values(["copies", "first_ns"], ascending=[False, True]).index[0])


def ladder_height(n_obs: int, max_arrows: int = 28) -> float:
    """Figure height (inches) that fits a ladder of ``n_obs`` observations."""
    return 1.9 + 0.24 * (min(n_obs, max_arrows) + 5)


@_styled
def path_ladder(
    a: Analysis,
    loop_id: int | None = None,
    path: int | None = None,
    ax: Axes | None = None,
    max_arrows: int = 28,
) -> Axes:
    """One looping packet as a sequence diagram between upstream, host and guest(s):
    an arrow per observation with its TTL, then who dropped it and the ICMP error.

    ``path`` picks the packet (a path id of ``a.path_rows()``); by default the
    first one with the most copies.  Longer paths show their first and last
    ``max_arrows / 2`` observations.

    >>> pcaploop.plot_path_ladder(a, loop_id=1)             # doctest: +SKIP
    """
    lp = _first_loop(a, loop_id)
    if lp is None or lp.kind != "l3":
        ax = _axes(ax, (8, 3))
        return _empty(
            ax,
            "Path of one looping packet",
            "no routed loop with captured copies"
            if lp is None
            else f"loop {lp.id} is {lp.kind}: no TTL ladder to draw",
        )
    pid = _ladder_path(a, lp, path)
    rows, dirs = _path_obs(a, pid)
    ax = _axes(ax, (8, ladder_height(len(rows), max_arrows)))
    c = a.packets.cols
    side = _sides(a, lp, rows)
    lanes = ["upstream", "host"] + sorted({s for s in side.values() if s != "upstream"})
    lx = {name: k for k, name in enumerate(lanes)}
    shown = np.arange(len(rows))
    if len(rows) > max_arrows:
        half = max_arrows // 2
        shown = np.r_[np.arange(half), np.arange(len(rows) - half, len(rows))]
    t0 = int(c["time_ns"][rows].min())
    y: float = 0
    for k, i in enumerate(shown):
        if k and i != shown[k - 1] + 1:
            skipped = rows[shown[k - 1] + 1 : i]
            ax.text(
                (len(lanes) - 1) / 2,
                y + 0.4,
                f"⋮  {len(skipped)} more copies, TTL {c['ttl'][skipped].max()} … "
                f"{c['ttl'][skipped].min()}  ⋮",
                ha="center",
                va="center",
                fontsize=8,
                color="#555555",
                bbox={"facecolor": "white", "edgecolor": "none"},
            )
            y += 1.5
        r = rows[i]
        _ladder_arrow(
            ax,
            lx,
            side[int(c["point"][r])],
            int(dirs[i]),
            y,
            f"TTL {c['ttl'][r]}",
            (c["time_ns"][r] - t0) / 1e6,
            a.packets.point_names[int(c["point"][r])],
        )
        y += 1
    y = _ladder_end(a, ax, lx, side, pid, rows, dirs, y, t0)
    for name, xv in lx.items():
        label = (
            "upstream\n(router, sender)"
            if name == "upstream"
            else ("host" if name == "host" else f"guest\nvia {_t(name)}")
        )
        ax.plot([xv, xv], [-0.6, y - 0.4], color="#444444", linewidth=1.2, zorder=0)
        ax.text(xv, -0.9, label, ha="center", va="bottom", fontsize=9, fontweight="bold")
    from ..addr import to_text

    r0 = rows[0]
    proto = S.PROTO_NAMES.get(int(c["protocol"][r0]), str(int(c["protocol"][r0]))).upper()
    ident = f", IP ID {c['ip_id'][r0]}" if c["ip_id"][r0] >= 0 else ""
    ax.set_title(
        f"Path of one looping packet (loop {lp.id}): "
        f"{to_text(c['src_hi'][r0], c['src_lo'][r0])} → "
        f"{to_text(c['dst_hi'][r0], c['dst_lo'][r0])}, {proto}{ident}",
        fontsize=10,
    )
    ax.set_xlim(-0.9, len(lanes) - 1 + 0.9)
    ax.set_ylim(y + 0.2, -2.1)
    ax.axis("off")
    return ax


def _ladder_arrow(
    ax: Axes,
    lx: dict[str, int],
    lane: str,
    direction: int,
    y: float,
    label: str,
    ms: float,
    point: str,
) -> None:
    host, other = lx["host"], lx[lane]
    start, end = (host, other) if direction == S.DIR_OUT else (other, host)
    colour = DIRECTION_COLOURS[direction]
    style = "-|>" if direction != S.DIR_UNKNOWN else "-"
    ax.annotate(
        "",
        (end, y),
        (start, y),
        arrowprops={
            "arrowstyle": style,
            "color": colour,
            "linewidth": 1.3,
            "shrinkA": 0,
            "shrinkB": 0,
            "mutation_scale": 10,
        },
    )
    ax.text(
        (start + end) / 2, y - 0.12, label, ha="center", va="bottom", fontsize=7.5, color=colour
    )
    ax.text(
        -0.85, y, f"+{ms:.3f} ms  {_t(point)}", ha="left", va="center", fontsize=7, color="#555555"
    )


def _ladder_end(
    a: Analysis,
    ax: Axes,
    lx: dict[str, int],
    side: dict[int, str],
    pid: int,
    rows: np.ndarray,
    dirs: np.ndarray,
    y: float,
    t0: int,
) -> float:
    """The fate line and the ICMP error arrows after the last copy."""
    from ..addr import to_text

    c = a.packets.cols
    info = cast("pd.Series[Any]", a.detection.looping.loc[pid])  # a path id is one row
    last_dir = int(dirs[-1])
    if info["escaped"]:
        fate = f"left the loop through {a.packets.point_names[int(info['last_point'])]}"
    elif info["min_ttl"] <= 1:
        lane = side.get(int(c["point"][rows[-1]]), "upstream")
        peer = "the upstream router" if lane == "upstream" else "the guest"
        who = (
            peer
            if last_dir == S.DIR_OUT
            else "the host"
            if last_dir == S.DIR_IN
            else "the next hop"
        )
        fate = f"TTL {int(info['min_ttl'])} copy reached {who}: dropped there, TTL exceeded"
    else:
        fate = "the capture ended while it was still looping"
    ax.text(
        (len(lx) - 1) / 2,
        y + 0.1,
        _t(fate),
        ha="center",
        va="center",
        fontsize=8.5,
        fontweight="bold",
        bbox={"facecolor": "#fff3e0", "edgecolor": "#E69F00", "boxstyle": "round,pad=0.3"},
    )
    y += 1
    te = a.detection.time_exceeded
    te = te[te["path"] == pid]
    for r in te["row"].to_numpy():
        p = int(c["point"][r])
        lane = _sides_of(a, side, p)
        d = int(c["direction"][r]) or (S.DIR_IN if lane != "upstream" else S.DIR_OUT)
        _ladder_arrow(
            ax,
            lx,
            lane,
            d,
            y,
            f"ICMP time-exceeded from {to_text(c['src_hi'][r], c['src_lo'][r])}",
            (c["time_ns"][r] - t0) / 1e6,
            a.packets.point_names[p],
        )
        y += 1
    if te.empty:
        ax.text(
            (len(lx) - 1) / 2,
            y,
            "no ICMP time-exceeded captured for this packet (the kernel rate-limits them)",
            ha="center",
            va="center",
            fontsize=7.5,
            color="#555555",
        )
        y += 1
    return y


def _sides_of(a: Analysis, side: dict[int, str], p: int) -> str:
    from ..analysis.roles import guest_link_by_name

    if p in side:
        return side[p]
    return a.packets.point_names[p] if guest_link_by_name(a.packets.point_names[p]) else "upstream"


# --- 5. distributions ----------------------------------------------------------------------
@_styled
def copies_histogram(a: Analysis, ax: Axes | None = None) -> Axes:
    """How many copies each looping packet made, per loop (entry TTL decides it).

    >>> pcaploop.plot_copies(a)                             # doctest: +SKIP
    """
    ax = _axes(ax, (7, 3.8))
    title = "Copies per looping packet"
    data = stats.copies_per_packet(a)
    if not data:
        return _empty(ax, title, "no loop with captured copies")
    lo = min(int(v.min()) for _, v in data)
    hi = max(int(v.max()) for _, v in data)
    step = max(1, int(np.ceil((hi - lo + 1) / 60)))  # whole copies per bin
    edges = np.arange(lo, hi + step + 1, step) - 0.5
    bins: list[float] = edges.tolist()
    shown = data[:MAX_LOOP_PLOTS]
    # side by side in each bin: one loop's bars never hide another's
    ax.hist(
        [v for _, v in shown],
        bins=bins,
        color=[OKABE_ITO[k % 7] for k in range(len(shown))],
        histtype="bar",
        rwidth=0.9,
        label=[f"loop {lp.id} ({_t(lp.destination)}), median {np.median(v):g}" for lp, v in shown],
    )
    from matplotlib.ticker import MaxNLocator

    pad = max(3, (hi - lo) * 0.1)
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(0, ax.get_ylim()[1] * 1.3)  # room for the legend
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title)
    ax.set_xlabel("copies of one packet at the loop's capture points")
    ax.set_ylabel("looping packets")
    ax.legend(loc="upper left")
    return ax


@_styled
def cycle_time_histogram(a: Analysis, ax: Axes | None = None) -> Axes:
    """Time one trip around the loop takes, per looping packet and loop.

    >>> pcaploop.plot_cycle_time(a)                         # doctest: +SKIP
    """
    ax = _axes(ax, (7, 3.8))
    title = "Time per trip around the loop"
    data = stats.cycle_times(a)
    if not data:
        return _empty(ax, title, "no loop with a measurable cycle time")
    unit, per = _time_unit(max(float(v.max()) for _, v in data) * 2)
    allv = np.concatenate([v for _, v in data]) / per
    edges = np.histogram_bin_edges(allv, bins=min(40, max(5, len(allv) // 3)))
    if edges[0] == edges[-1]:
        edges = np.array([edges[0] * 0.9, edges[0] * 1.1 or 1])
    bins: list[float] = edges.tolist()
    shown = data[:MAX_LOOP_PLOTS]
    ax.hist(
        [v / per for _, v in shown],
        bins=bins,
        color=[OKABE_ITO[k % 7] for k in range(len(shown))],
        histtype="bar",
        rwidth=0.9,
        label=[
            f"loop {lp.id} ({_t(lp.destination)}), median {np.median(v) / per:.3g} {unit}"
            for lp, v in shown
        ],
    )
    ax.set_title(title)
    ax.set_xlabel(f"time between two passes at the same capture point ({unit})")
    ax.set_ylabel("looping packets")
    ax.legend(loc="upper right")
    return ax


def distributions(a: Analysis, ax: Axes | None = None) -> Axes:
    """Copies per looping packet (left) and time per trip around the loop (right).

    Two quantities with different units need two panels: ``ax`` is split in
    two side by side (a new figure when ``None``); the left panel is returned,
    the right one is ``ax.figure.axes[-1]``.

    >>> left = pcaploop.plot_distributions(a)               # doctest: +SKIP
    """
    left: Axes
    right: Axes
    if ax is None:
        import matplotlib.pyplot as plt

        left, right = plt.subplots(1, 2, figsize=(12, 3.8), layout="constrained")[1]
    else:
        spec = ax.get_subplotspec()
        fig = ax.figure
        if spec is None:
            raise ValueError("plot_distributions needs an Axes from a grid (e.g. subplots())")
        inner = spec.subgridspec(1, 2, wspace=0.08)
        ax.remove()
        left, right = fig.add_subplot(inner[0]), fig.add_subplot(inner[1])
    copies_histogram(a, ax=left)
    cycle_time_histogram(a, ax=right)
    return left


# --- all of them, for the CLI and the report ---------------------------------------------
@dataclass(frozen=True)
class _Planned:
    """One figure to draw: its file stem, caption, size (inches) and what draws it."""

    stem: str
    caption: str
    size: tuple[float, float]
    draw: Callable[..., object]  # called with ax=


def _plan(a: Analysis) -> list[_Planned]:
    """Every figure of :func:`figures`, not yet drawn."""
    plan = [
        _Planned(
            "timeline",
            "Traffic per capture point over the capture; loop copies on top.",
            (10, 4.2),
            functools.partial(timeline, a),
        )
    ]
    drawn = sorted(
        (lp for lp in a.loops if lp.kind != "inferred"), key=lambda lp: (-lp.observations, lp.id)
    )[:MAX_LOOP_PLOTS]
    laddered = {lp.id for lp in [lp for lp in drawn if lp.kind == "l3"][:MAX_LADDERS]}
    for lp in sorted(drawn, key=lambda lp: lp.id):
        plan.append(
            _Planned(
                f"ttl-loop{lp.id}",
                f"Loop {lp.id}: TTL of sample looping packets over time, coloured by direction.",
                (8, 4.6),
                functools.partial(ttl_staircase, a, lp.id),
            )
        )
        if lp.kind == "l3" and lp.id in laddered:
            n = len(_path_obs(a, _ladder_path(a, lp, None))[0])
            plan.append(
                _Planned(
                    f"ladder-loop{lp.id}",
                    f"Loop {lp.id}: one looping packet, hop by hop.",
                    (8, ladder_height(n)),
                    functools.partial(path_ladder, a, lp.id),
                )
            )
    if a.loops:
        dests = len({lp.destination for lp in a.loops})
        plan += [
            _Planned(
                "amplification",
                "Copies per looping packet and extra packets per destination.",
                (8, amplification_height(dests)),
                functools.partial(amplification, a),
            ),
            _Planned(
                "copies",
                "Distribution of copies per looping packet.",
                (7, 3.8),
                functools.partial(copies_histogram, a),
            ),
            _Planned(
                "cycle-time",
                "Distribution of the time one trip around the loop takes.",
                (7, 3.8),
                functools.partial(cycle_time_histogram, a),
            ),
        ]
    return plan


def _drawn(p: _Planned) -> Figure:
    from matplotlib.figure import Figure

    f = Figure(figsize=p.size, layout="constrained")
    p.draw(ax=f.subplots())
    return f


def figures(a: Analysis) -> Iterator[tuple[str, str, Figure]]:
    """(file stem, caption, Figure) of every plot, drawn on bare Figures (no pyplot).

    Per-loop plots are drawn for the :data:`MAX_LOOP_PLOTS` loops with most copies
    (path ladders for the first :data:`MAX_LADDERS` of them).
    """
    for p in _plan(a):
        yield p.stem, p.caption, _drawn(p)


def rendered(
    a: Analysis, formats: Sequence[str] = ("png",), jobs: int = 1
) -> Iterator[tuple[str, str, dict[str, bytes]]]:
    """(file stem, caption, {format: bytes}) of every plot of :func:`figures`, in its
    order, drawn and encoded by ``jobs`` processes (the same bytes with any number).

    Why processes: a figure takes a fifth of a second in matplotlib, all of it
    Python; a report draws up to 20 of them.
    """
    # imported here, once, not in every worker (with the font cache, built if missing)
    import matplotlib.figure
    import matplotlib.font_manager  # noqa: F401

    plan = _plan(a)

    def one(i: int) -> dict[str, bytes]:
        fig = _drawn(plan[i])
        out = {}
        for fmt in formats:
            buf = io.BytesIO()
            save(fig, buf, fmt)
            out[fmt] = buf.getvalue()
        fig.clear()
        return out

    for p, data in zip(plan, forked_map(one, len(plan), jobs)):
        yield p.stem, p.caption, data


def save(fig: Figure, path: Any, fmt: str = "png") -> None:
    """Write a figure; the same input gives the same bytes: no software version or date
    in the metadata, and SVG element ids from a fixed salt (else they are random)."""
    import matplotlib as mpl

    meta = {"Software": None} if fmt == "png" else {"Date": None}
    with mpl.rc_context({"svg.hashsalt": "pcaploop"}):
        fig.savefig(path, format=fmt, metadata=meta)
        interactive = mpl.is_interactive()
    mpl.interactive(interactive)  # rc_context restores it too: the user's stays (_styled)


def write_plots(
    a: Analysis,
    outdir: str,
    svg: bool = False,
    progress: Callable[[str], None] | None = None,
    jobs: int = 1,
) -> list[str]:
    """Every plot as ``OUTDIR/<stem>.png`` (and ``.svg``), drawn by ``jobs`` processes;
    returns the paths written.

    >>> pcaploop.write_plots(a, "plots/", svg=True)         # doctest: +SKIP
    ['plots/timeline.png', 'plots/timeline.svg', ...]
    """
    import os

    from ..errors import PcaploopError
    from .files import atomic

    try:
        os.makedirs(outdir, exist_ok=True)
    except OSError as exc:
        raise PcaploopError(f"{outdir}: cannot create directory: {exc.strerror}") from None
    out = []
    for stem, _caption, data in rendered(a, ("png", "svg") if svg else ("png",), jobs):
        if progress:
            progress(stem)
        for fmt, blob in data.items():
            path = os.path.join(outdir, f"{stem}.{fmt}")
            with atomic(path, [p.path for p in a.packets.points]) as f:
                f.write(blob)
            out.append(path)
    return out
