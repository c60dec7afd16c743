"""forked_map: results in order, the same as computed here, errors raised here."""

from __future__ import annotations

import os

import pytest

from pcaploop._procs import can_fork, default_jobs, forked_map

pytestmark = pytest.mark.skipif(not can_fork(), reason="needs fork")


def test_results_in_order_computed_in_other_processes() -> None:
    table = [k * k for k in range(50)]  # built before the call: the workers inherit it
    me = os.getpid()
    got = list(forked_map(lambda i: (table[i], os.getpid()), 50, 2))
    assert [v for v, _ in got] == table
    assert {pid for _, pid in got} - {me}  # computed elsewhere
    assert me not in {pid for _, pid in got}


def test_one_job_runs_here() -> None:
    me = os.getpid()
    assert list(forked_map(lambda i: (i, os.getpid()), 3, 1)) == [(0, me), (1, me), (2, me)]
    assert list(forked_map(lambda i: i, 0, 4)) == []


def test_an_error_in_a_worker_is_raised_here() -> None:
    def fn(i: int) -> int:
        if i == 3:
            raise ValueError("task 3 failed")
        return i

    with pytest.raises(ValueError, match="task 3 failed"):
        list(forked_map(fn, 6, 2))
    assert list(forked_map(lambda i: i + 1, 3, 2)) == [1, 2, 3]  # usable again after it


def test_nested_calls_run_serially() -> None:
    def outer(i: int) -> list[int]:
        return list(forked_map(lambda j: i * 10 + j, 3, 2))

    assert list(forked_map(outer, 2, 2)) == [[0, 1, 2], [10, 11, 12]]


def test_default_jobs_is_the_usable_cores() -> None:
    assert default_jobs() == len(os.sched_getaffinity(0))
