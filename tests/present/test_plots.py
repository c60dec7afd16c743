"""Plots (issue #4): tested on what was drawn — artists, labels, counts — not on pixels."""

from __future__ import annotations

import io
import itertools
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from loopgen import HOST, ROUTER, T0, by_kind, eth, ip4, tunnel_loop, write, write_mixed
from matplotlib.collections import PathCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, Rectangle

import pcaploop
from pcaploop import schema as S
from pcaploop.present import plots as plots

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    return pcaploop.analyze(write_mixed(tmp_path_factory.mktemp("mixed")))


@pytest.fixture(scope="module")
def healthy(tmp_path_factory):
    d = tmp_path_factory.mktemp("healthy")
    caps = {
        "uplink": [
            (T0 + k * 0.01, eth(ip4("203.0.113.101", 64, k), ROUTER, HOST)) for k in range(20)
        ]
    }
    return pcaploop.analyze(write(caps, d))


def new_ax(w=8, h=5):
    return Figure(figsize=(w, h), layout="constrained").subplots()


def texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


def arrows_of(ax) -> list:
    """Arrows drawn with annotate (one per observation in the ladder)."""
    return [
        t.arrow_patch
        for t in ax.texts
        if isinstance(getattr(t, "arrow_patch", None), FancyArrowPatch)
    ]


def legend_labels(ax) -> list[str]:
    leg = ax.get_legend()
    return [t.get_text() for t in leg.get_texts()] if leg else []


# --- import hygiene -----------------------------------------------------------------------
def test_import_does_not_load_matplotlib():
    code = (
        "import sys, pcaploop, pcaploop.present.plots, pcaploop.present.report, "
        "pcaploop.present.extract, pcaploop.cli; print('matplotlib' in sys.modules)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.stdout.strip() == "False", res.stderr


def test_rcparams_untouched(mixed):
    before = dict(matplotlib.rcParams)
    plots.timeline(mixed, ax=new_ax())
    assert dict(matplotlib.rcParams) == before


def test_ax_none_makes_a_pyplot_figure(mixed):
    ax = plots.amplification(mixed)
    try:
        assert ax.figure in [plt.figure(n) for n in plt.get_fignums()]
    finally:
        plt.close(ax.figure)


# --- 1. timeline ----------------------------------------------------------------------------
def test_traffic_rates_add_up(mixed):
    t0, width, _edges, layers = plots.traffic_rates(mixed)
    everything = pcaploop.load([p.path for p in mixed.packets.points])
    assert t0 == everything.cols["time_ns"].min()
    total = sum(r.sum() * width for _, _, r in layers)
    assert total == pytest.approx(len(everything))  # every packet, not only the evidence kept
    loop = sum(r.sum() * width for _, is_loop, r in layers if is_loop)
    assert loop == pytest.approx(
        sum(lp.observations for lp in mixed.loops if lp.kind != "inferred")
    )
    # normal traffic below, loop copies on top
    flags = [is_loop for _, is_loop, _ in layers]
    assert flags == sorted(flags)


def test_timeline_artists(mixed):
    ax = plots.timeline(mixed, ax=new_ax(10, 4))
    _, _, _, layers = plots.traffic_rates(mixed)
    fills = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(fills) == len(layers)
    labels = legend_labels(ax)
    assert "tap101: loop copies" in labels and "uplink: other traffic" in labels
    assert "lan: loop copies" in labels
    assert ax.get_ylabel() == "packets per second"
    assert "UTC (ms)" in ax.get_xlabel() and "bins of 50 ms" in ax.get_xlabel()
    for lp in mixed.loops:  # one lane per loop marks its start and end
        assert f"loop {lp.id} ({lp.destination})" in texts(ax)
    assert len(ax.lines) == len(mixed.loops)
    # stacked: the top of the last layer is the total rate
    assert ax.get_ylim()[1] >= max(sum(r for _, _, r in layers))


def test_timeline_without_loops(healthy):
    ax = plots.timeline(healthy, ax=new_ax())
    assert legend_labels(ax) == ["uplink: other traffic"]
    assert not ax.lines


# --- 2. TTL staircase ---------------------------------------------------------------------
def test_ttl_staircase_points_and_colours(mixed):
    lp = by_kind(mixed, "l3", v6=False)
    ax = plots.ttl_staircase(mixed, lp.id, ax=new_ax(), max_packets=4)
    pts = [c for c in ax.collections if isinstance(c, PathCollection)]
    n = sum(len(c.get_offsets()) for c in pts)
    assert n == 4 * (63 + 1)  # 4 of 6 packets: 63 tunnel copies + the uplink entry each
    ys = np.concatenate([c.get_offsets()[:, 1] for c in pts])
    assert ys.max() == 64 and ys.min() == 1
    colours = {matplotlib.colors.to_hex(c.get_facecolor()[0]) for c in pts}
    hexes = {d: plots.DIRECTION_COLOURS[d].lower() for d in (S.DIR_OUT, S.DIR_IN, S.DIR_UNKNOWN)}
    # tunnel copies alternate out/in; the uplink entry, unrecorded there, is inferred
    # as arriving (it reached the host from outside before its first tunnel copy)
    assert colours == {hexes[S.DIR_OUT], hexes[S.DIR_IN]}
    assert "uplink in (host receives)" in legend_labels(ax)
    labels = legend_labels(ax)
    assert "tap101 out (host sends)" in labels and "tap101 in (host receives)" in labels
    assert ax.get_ylabel() == "TTL / hop limit"
    assert ax.get_xlabel().startswith("time since the packet was first seen (")
    assert f"loop {lp.id}" in ax.get_title()
    assert "TTL −2 per trip" in ax.get_legend().get_title().get_text()
    (zoom,) = ax.child_axes  # 63 copies per packet: markers merge, so one packet is zoomed
    assert zoom.get_title() == "zoom: first 12 observations of one packet"
    assert sum(len(c.get_offsets()) for c in zoom.collections) == 12


def test_ttl_staircase_l2_and_inferred(mixed, tmp_path):
    lp = by_kind(mixed, "l2")
    ax = plots.ttl_staircase(mixed, lp.id, ax=new_ax())
    ys = np.concatenate([c.get_offsets()[:, 1] for c in ax.collections])
    assert set(ys) == {60}  # same TTL every time: a layer-2 loop
    assert "same TTL every time" in ax.get_legend().get_title().get_text()
    assert not ax.child_axes  # 30 copies: no zoom needed


def test_ttl_staircase_defaults_to_first_loop(healthy, mixed):
    ax = plots.ttl_staircase(mixed, ax=new_ax())
    assert "loop 1 " in ax.get_title()
    ax = plots.ttl_staircase(healthy, ax=new_ax())
    assert texts(ax) == ["no loop"]


# --- 3. amplification ----------------------------------------------------------------------
def test_amplification_bars(mixed):
    ax = plots.amplification(mixed, ax=new_ax())
    dests = {}
    for lp in mixed.loops:
        d = dests.setdefault(lp.destination, [0, 0])
        d[0] += lp.looping_packets
        d[1] += lp.observations
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(bars) == 2 * len(dests)
    assert [t.get_text() for t in ax.get_yticklabels()] == sorted(dests, key=lambda k: -dests[k][1])
    widths = sorted(round(b.get_width(), 6) for b in bars)
    want = sorted(
        [round(o / n, 6) for n, o in dests.values()] + [max(o - n, 0.8) for n, o in dests.values()]
    )
    assert widths == pytest.approx(want)
    assert ax.get_xscale() == "log"
    assert legend_labels(ax) == [
        "copies per looping packet",
        "extra packets (copies − looping packets)",
    ]
    assert "×63.0" in texts(ax)


# --- 4. path ladder ------------------------------------------------------------------------
def test_path_ladder_arrows(mixed):
    lp = by_kind(mixed, "l3", v6=False)
    ax = plots.path_ladder(mixed, lp.id, ax=new_ax(8, 12), max_arrows=20)
    arrows = arrows_of(ax)
    # 20 of 64 observations drawn, plus the ICMP error this packet got
    assert len(arrows) == 20 + 1
    t = texts(ax)
    assert "TTL 64" in t and "TTL 63" in t and "TTL 1" in t
    assert any("44 more copies" in x for x in t)
    assert any("reached the guest: dropped there" in x for x in t)
    assert "ICMP time-exceeded from 203.0.113.101" in t
    assert {"upstream\n(router, sender)", "host", "guest\nvia tap101"} <= set(t)
    assert "198.51.100.9 → 203.0.113.7" in ax.get_title()


def test_path_ladder_full_and_without_icmp(mixed):
    lp = by_kind(mixed, "l3", v6=True)
    ax = plots.path_ladder(mixed, lp.id, ax=new_ax(8, 12), max_arrows=100)
    arrows = arrows_of(ax)
    assert len(arrows) == 20  # entry hop limit 20 on the uplink, 19 tunnel copies
    assert any("no ICMP time-exceeded captured" in x for x in texts(ax))


def test_path_ladder_l2_says_why_not(mixed):
    ax = plots.path_ladder(mixed, by_kind(mixed, "l2").id, ax=new_ax())
    assert "no TTL ladder" in texts(ax)[0]


# --- 5. distributions -----------------------------------------------------------------------
def test_copies_histogram(mixed):
    ax = plots.copies_histogram(mixed, ax=new_ax())
    heights = sum(p.get_height() for p in ax.patches if isinstance(p, Rectangle))
    # stepfilled histograms draw polygons; count via the legend and the data instead
    labels = legend_labels(ax)
    assert len(labels) == len([lp for lp in mixed.loops if lp.kind != "inferred"])
    assert any("median 63" in x for x in labels)
    assert ax.get_xlabel() == "copies of one packet at the loop's capture points"
    assert heights >= 0


def test_cycle_time_histogram(mixed, healthy):
    ax = plots.cycle_time_histogram(mixed, ax=new_ax())
    labels = legend_labels(ax)
    assert len(labels) == 2  # the two l3 loops; l2 loops have no cycle
    assert all("median" in x for x in labels)
    assert ax.get_xlabel().startswith("time between two passes at the same capture point (")
    ax = plots.cycle_time_histogram(healthy, ax=new_ax())
    assert "no loop" in texts(ax)[0]


# --- all figures, files, readability ----------------------------------------------------------
def test_figures_and_files(mixed, tmp_path):
    stems = [s for s, _, _ in plots.figures(mixed)]
    ids = [lp.id for lp in mixed.loops]
    assert stems[0] == "timeline"
    for i in ids:
        assert f"ttl-loop{i}" in stems
    assert {"amplification", "copies", "cycle-time"} <= set(stems)
    paths = plots.write_plots(mixed, str(tmp_path / "p"), svg=True)
    assert len(paths) == 2 * len(stems)
    for p in paths:
        head = Path(p).read_bytes()[:8]
        assert head.startswith(b"\x89PNG") if p.endswith(".png") else b"<?xml" in head


def test_figures_drawn_in_processes_are_the_same_bytes(mixed, tmp_path):
    """--jobs: each figure drawn in a forked process is the figure drawn here, byte for
    byte (PNG and SVG), in the same order; and it is what figures() draws."""
    one = list(plots.rendered(mixed, ("png", "svg"), jobs=1))
    two = list(plots.rendered(mixed, ("png", "svg"), jobs=2))
    assert [s for s, _, _ in one] == [s for s, _, _ in plots.figures(mixed)]
    assert one == two
    for (_stem, _cap, fig), (_s, _c, data) in zip(plots.figures(mixed), one):
        buf = io.BytesIO()
        plots.save(fig, buf, "png")
        assert buf.getvalue() == data["png"]
    a = plots.write_plots(mixed, str(tmp_path / "a"), jobs=1)
    b = plots.write_plots(mixed, str(tmp_path / "b"), jobs=3)
    assert [Path(p).read_bytes() for p in a] == [Path(p).read_bytes() for p in b]


def test_dollar_in_point_name_draws(tmp_path):
    caps = tunnel_loop(n=2)
    caps["tap$1"] = caps.pop("tap101")
    a = pcaploop.analyze(write(caps, tmp_path))
    for _stem, _cap, fig in plots.figures(a):
        fig.savefig(io.BytesIO(), format="png")


def _overlaps(fig) -> list[tuple[str, str]]:
    """Pairs of visible texts in one figure whose boxes overlap."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    r = canvas.get_renderer()
    boxes = []
    for ax in fig.axes:
        items = list(ax.texts) + [ax.title]
        leg = ax.get_legend()
        if leg:
            items += list(leg.get_texts())
        for t in items:
            if t.get_visible() and t.get_text().strip():
                boxes.append((t.get_text(), t.get_window_extent(r).shrunk(0.98, 0.9)))
    bad = []
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            if boxes[i][1].overlaps(boxes[j][1]):
                bad.append((boxes[i][0], boxes[j][0]))
    return bad


def _readability_inputs():
    out = [pytest.param(None, id="synthetic")]
    for scen in ("incident", "two-guests", "router-loop", "two-tunnels", "rp-filter"):
        d = SAMPLES / scen
        files = (
            sorted(str(p) for p in d.glob("*.pcap") if p.name != "any.pcap") if d.is_dir() else []
        )
        if files:
            out.append(pytest.param(files, id=scen))
    return out


@pytest.mark.parametrize("inputs", _readability_inputs())
def test_no_overlapping_labels(inputs, mixed):
    a = mixed if inputs is None else pcaploop.analyze(inputs)
    for stem, _cap, fig in plots.figures(a):
        assert _overlaps(fig) == [], stem


def test_distributions_splits_the_axes(mixed):
    fig = Figure(figsize=(12, 4), layout="constrained")
    left = plots.distributions(mixed, ax=fig.subplots())
    assert len(fig.axes) == 2 and left is fig.axes[0]
    assert left.get_title() == "Copies per looping packet"
    assert fig.axes[1].get_title() == "Time per trip around the loop"
    left = plots.distributions(mixed)
    try:
        assert left.figure.axes[1].get_title() == "Time per trip around the loop"
    finally:
        plt.close(left.figure)


SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def test_staircase_zoom_never_covers_data() -> None:
    """Entry TTLs from 4 to 255 (the ttl-sweep sample) fill the plot: no inset then;
    where there is an inset, none of the staircases' points is under it."""
    for scenario in ("ttl-sweep", "incident"):
        d = SAMPLES / scenario
        a = pcaploop.analyze([f"uplink={d / 'uplink.pcap'}", f"tap101={d / 'tap101.pcap'}"])
        ax = pcaploop.plot_ttl_staircase(a, loop_id=a.loops[0].id)
        ax.figure.canvas.draw()
        pts = np.concatenate(
            [c.get_offsets() for c in ax.collections if len(c.get_offsets())], axis=0
        )
        screen = ax.transData.transform(pts)
        for ins in ax.child_axes:
            box = ins.get_window_extent()
            under = (
                (screen[:, 0] >= box.x0)
                & (screen[:, 0] <= box.x1)
                & (screen[:, 1] >= box.y0)
                & (screen[:, 1] <= box.y1)
            )
            assert not under.any(), f"{scenario}: the zoom covers {int(under.sum())} point(s)"
        plt.close(ax.figure)


def test_copies_histogram_bars_side_by_side() -> None:
    """Two loops' bars in one bin sit side by side: neither hides the other."""
    d = SAMPLES / "two-guests"
    a = pcaploop.analyze(
        [
            f"uplink={d / 'uplink.pcap'}",
            f"tap101={d / 'tap101.pcap'}",
            f"tap102={d / 'tap102.pcap'}",
        ]
    )
    assert len(a.loops) >= 2
    ax = plots.copies_histogram(a)
    bars = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_height() > 0]
    assert len({b.get_facecolor() for b in bars}) >= 2, "each loop's own bars"
    spans = sorted((b.get_x(), b.get_x() + b.get_width()) for b in bars)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end - 1e-9, "two bars overlap"
    plt.close(ax.figure)
