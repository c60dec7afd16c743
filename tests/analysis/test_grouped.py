"""The all-groups-at-once statistics measure uses, against numpy on each group alone."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pcaploop.analysis import _grouped as G

#: rows as (group, value) pairs: few groups and few values, so that ties and repeats occur
_rows = st.lists(st.tuples(st.integers(-1, 6), st.integers(0, 5)), min_size=0, max_size=60)


def _split(rows: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray, int]:
    g = np.array([r[0] for r in rows], np.int64)
    v = np.array([r[1] for r in rows], np.int64)
    return g, v, 7


@settings(max_examples=200, deadline=None)
@given(_rows)
def test_runs_are_each_groups_sorted_values(rows: list[tuple[int, int]]) -> None:
    g, v, n = _split(rows)
    r = G.runs(g, v, n)
    u = G.runs(g, v, n, unique=True)
    for k in range(n):
        assert r.of(k).tolist() == np.sort(v[g == k]).tolist()
        assert r.count(k) == int((g == k).sum())
        assert u.of(k).tolist() == np.unique(v[g == k]).tolist()


@settings(max_examples=200, deadline=None)
@given(_rows)
def test_mode_is_the_most_frequent_smallest_on_a_tie(rows: list[tuple[int, int]]) -> None:
    g, v, n = _split(rows)
    got = G.mode(g, v, n)
    for k in range(n):
        mine = v[g == k]
        if not len(mine):
            assert got[k] == 0
            continue
        vals, counts = np.unique(mine, return_counts=True)
        assert got[k] == vals[np.argmax(counts)]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(-1, 6),
            st.one_of(st.just(float("nan")), st.floats(-1e12, 1e12, allow_nan=False)),
        ),
        max_size=60,
    )
)
def test_median_is_numpys_without_nan(rows: list[tuple[int, float]]) -> None:
    g = np.array([r[0] for r in rows], np.int64)
    x = np.array([r[1] for r in rows], np.float64)
    got = G.median(g, x, 7)
    for k in range(7):
        mine = x[(g == k) & ~np.isnan(x)]
        if len(mine):
            assert got[k] == np.median(mine)  # exactly: the same two values, halved
        else:
            assert np.isnan(got[k])


@settings(max_examples=200, deadline=None)
@given(_rows, st.data())
def test_pair_counts_and_sums(rows: list[tuple[int, int]], data: st.DataObject) -> None:
    g, v, _ = _split(rows)
    w = np.array(data.draw(st.lists(st.integers(-3, 3), min_size=len(g), max_size=len(g))))
    pg, (pv,), counts = G.pair_counts(g, v)
    want = sorted({(int(a), int(b)) for a, b in zip(g, v) if a >= 0})  # -1: no group
    assert list(zip(pg.tolist(), pv.tolist())) == want
    assert counts.tolist() == [int(((g == a) & (v == b)).sum()) for a, b in want]
    sg, sums = G.sums_by_pair(g, v, w.astype(np.float64))
    assert sg.tolist() == [a for a, _ in want]
    assert sums.tolist() == [float(w[(g == a) & (v == b)].sum()) for a, b in want]


def test_groups_reduce_each_key_in_key_order() -> None:
    keys = np.array([5, 2, 5, 9, 2, 2])
    vals = np.array([1, 7, 3, 4, 0, 8])
    gr = G.Groups.of(keys)
    assert gr.keys.tolist() == [2, 5, 9]
    assert gr.sizes.tolist() == [3, 2, 1]
    assert gr.number.tolist() == [0, 0, 0, 1, 1, 2]
    s = vals[gr.order]
    assert gr.sum(s).tolist() == [15, 4, 4]
    assert gr.min(s).tolist() == [0, 1, 4]
    assert gr.max(s).tolist() == [8, 3, 4]
    empty = G.Groups.of(np.zeros(0, np.int64))
    assert len(empty) == 0 and empty.sum(np.zeros(0)).tolist() == []
