"""Independent pieces of work spread over forked processes (``--jobs N``).

Why processes: drawing a figure with matplotlib is Python from end to end
and holds the GIL; threads would take turns on one core.  Why fork: a
forked child inherits everything this process built (the analysis, the
loaded modules), so nothing but a task's number goes in and only its
result (bytes) comes back.  Where ``fork`` is not offered, or one job is
asked for, the work runs here, in order: same results either way.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

#: the task of the pool being run: set before its workers are forked, read in them
_task: Callable[[int], Any] | None = None


def default_jobs() -> int:
    """The cores this process may run on (the default of ``--jobs``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def can_fork() -> bool:
    return "fork" in mp.get_all_start_methods()


def _quiet() -> None:  # pragma: no cover - runs in a worker
    """Ctrl-C is the parent's to handle (it stops the pool); a worker ignores it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run(i: int) -> Any:  # pragma: no cover - runs in a worker
    assert _task is not None
    return _task(i)


def forked_map(fn: Callable[[int], T], n: int, jobs: int) -> Iterator[T]:
    """``fn(0)``, ``fn(1)``, … ``fn(n - 1)`` in order, computed by up to ``jobs`` forked
    processes; ``fn`` may read anything built before the call (the workers inherit
    it).  An exception in ``fn`` is raised here, as it would be when run serially.
    """
    global _task
    workers = min(jobs, n)
    if workers <= 1 or not can_fork() or _task is not None:  # _task set: a nested call
        for i in range(n):
            yield fn(i)
        return
    _task = fn
    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"), initializer=_quiet)
    try:
        futures: list[Future[T]] = [pool.submit(_run, i) for i in range(n)]
        for f in futures:
            yield f.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        _task = None
