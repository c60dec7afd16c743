"""The distribution plots' statistics (``present/_statistics.py``) against a loop-by-loop
reading of detect's per-path table, on captures with many loops and both kinds."""

from __future__ import annotations

import numpy as np
import pytest
from loopgen import tunnel_loop, write, write_mixed

import pcaploop
from pcaploop.present import _statistics as st
from pcaploop.present import extract as X


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    """30 routed loops, each of 3 packets, entering with TTL 64 (63 copies each)."""
    caps: dict[str, list] = {}
    for k in range(30):
        part = tunnel_loop(n=3, dst=f"203.0.113.{10 + k}", t0=1_700_000_000.0 + 20 * k)
        for name, frames in part.items():
            caps.setdefault(name, []).extend(frames)
    return pcaploop.analyze(write(caps, tmp_path_factory.mktemp("many")))


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    return pcaploop.analyze(write_mixed(tmp_path_factory.mktemp("mixed")))


def _one_by_one(a):
    copies, cycles = [], []
    for lp in a.loops:
        if lp.kind == "l3":
            p = a.detection.looping.loc[X.l3_paths(a, lp.id)]
            copies.append((lp.id, p["copies"].to_numpy()))
            steps = (p["loop_max_ttl"].astype(int) - p["loop_min_ttl"].astype(int)).to_numpy()
            n = steps / np.maximum(p["ttl_step"].to_numpy(), 1)
            span = (p["last_ns"] - p["first_ns"]).to_numpy()
            ct = np.array([s / c / 1e9 for s, c in zip(span, n) if c > 0])
            if len(ct):
                cycles.append((lp.id, ct))
        elif lp.kind == "l2":
            fp = a.packets.cols["fingerprint"][X.loop_rows(a, lp.id).copies]
            copies.append((lp.id, np.unique(fp, return_counts=True)[1]))
    return copies, cycles


@pytest.mark.parametrize("which", ["many", "mixed"])
def test_per_loop_values_equal_a_loop_by_loop_reading(which, request):
    a = request.getfixturevalue(which)
    want_copies, want_cycles = _one_by_one(a)
    got_copies = [(lp.id, v) for lp, v in st.copies_per_packet(a)]
    got_cycles = [(lp.id, v) for lp, v in st.cycle_times(a)]
    assert [i for i, _ in got_copies] == [i for i, _ in want_copies] and want_copies
    for (_, g), (_, w) in zip(got_copies, want_copies):
        np.testing.assert_array_equal(g, w)
    assert [i for i, _ in got_cycles] == [i for i, _ in want_cycles]
    for (_, g), (_, w) in zip(got_cycles, want_cycles):
        np.testing.assert_allclose(g, w, rtol=1e-12)


def test_copies_follow_the_plan(many):
    """Each looping packet entered with TTL 64 and the loop costs 1 per pass: 63."""
    got = st.copies_per_packet(many)
    assert len(got) == 30
    assert all(v.tolist() == [63] * 3 for _, v in got)
