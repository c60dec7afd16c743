"""forked_map: results in order, the same as computed here, errors raised here."""

from __future__ import annotations

import os
import signal

import pytest

from pcaploop import _procs
from pcaploop._procs import can_fork, forked_map
from pcaploop.errors import CaptureError, PcaploopError

pytestmark = pytest.mark.skipif(not can_fork(), reason="needs fork")


def test_results_in_order_computed_in_other_processes() -> None:
    table = [k * k for k in range(50)]  # built before the call: the workers inherit it
    me = os.getpid()
    got = list(forked_map(lambda i: (table[i], os.getpid()), 50, 2))
    assert [v for v, _ in got] == table
    assert me not in {pid for _, pid in got}  # computed elsewhere


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


def test_our_errors_arrive_as_ours() -> None:
    """CaptureError takes two arguments: it must survive pickling (the CLI prints a
    PcaploopError on one line; anything else is a traceback)."""

    def fn(i: int) -> int:
        if i == 1:
            raise CaptureError("x.pcap", "cut short")
        return i

    with pytest.raises(CaptureError, match=r"x\.pcap: cut short") as got:
        list(forked_map(fn, 3, 2))
    assert got.value.path == "x.pcap" and got.value.reason == "cut short"


def test_an_error_that_cannot_be_pickled_arrives_as_text() -> None:
    class Odd(PcaploopError):
        def __init__(self, a: int, b: int) -> None:
            super().__init__(f"odd {a} {b}")

    def fn(i: int) -> int:
        raise Odd(1, 2)

    with pytest.raises(PcaploopError, match="Odd: odd 1 2"):
        list(forked_map(fn, 2, 2))


def test_a_worker_that_dies_is_a_clear_error() -> None:
    def fn(i: int) -> int:
        if i == 0:
            os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's OOM killer would
        return i

    with pytest.raises(PcaploopError, match="stopped unexpectedly"):
        list(forked_map(fn, 4, 2))


def test_nested_calls_run_serially_in_the_worker() -> None:
    def outer(i: int) -> tuple[int, list[int]]:
        return os.getpid(), list(forked_map(lambda j: os.getpid(), 3, 2))

    for pid, inner in forked_map(outer, 2, 2):
        assert inner == [pid] * 3  # the inner tasks ran in the worker itself


def test_default_jobs_follows_a_container_quota(monkeypatch, tmp_path) -> None:
    import builtins

    real_open = builtins.open

    def fake_open(path, *a, **k):  # type: ignore[no-untyped-def]
        if str(path) == "/sys/fs/cgroup/cpu.max":
            f = tmp_path / "cpu.max"
            f.write_text("150000 100000\n")
            return real_open(f, *a, **k)
        return real_open(path, *a, **k)

    monkeypatch.setattr(_procs.os, "sched_getaffinity", lambda _pid: set(range(16)))
    monkeypatch.setattr(builtins, "open", fake_open)
    assert _procs.default_jobs() == 2  # 1.5 CPUs of quota, rounded up
    (tmp_path / "cpu.max").write_text("max 100000\n")
    monkeypatch.setattr(
        builtins,
        "open",
        lambda p, *a, **k: real_open(
            tmp_path / "cpu.max" if str(p) == "/sys/fs/cgroup/cpu.max" else p, *a, **k
        ),
    )
    assert _procs.default_jobs() == 16


def test_tasks_handed_out_a_few_ahead_of_the_caller(tmp_path) -> None:
    """Results finished early do not pile up: while the caller holds the first
    result, only a few tasks per worker have started."""
    import time

    def fn(i: int) -> int:
        (tmp_path / str(i)).touch()
        return i

    gen = forked_map(fn, 100, 2)
    assert next(gen) == 0
    time.sleep(1.0)  # the workers would finish all 100 meanwhile if all were handed out
    started = len(list(tmp_path.iterdir()))
    assert started <= 2 * _procs.AHEAD + 1
    assert list(gen) == list(range(1, 100))


def test_stopping_early_kills_the_workers() -> None:
    """A caller that stops (an error, Ctrl-C, closing) does not wait for long tasks."""
    import time

    def fn(i: int) -> int:
        if i:
            time.sleep(60)
        return i

    gen = forked_map(fn, 3, 2)
    assert next(gen) == 0
    t = time.monotonic()
    gen.close()
    assert time.monotonic() - t < 10
