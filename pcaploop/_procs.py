"""Independent pieces of work spread over forked processes (``--jobs N``).

Why processes: drawing a figure with matplotlib is Python from end to end
and holds the GIL; threads would take turns on one core.  Why fork: a
forked child inherits everything this process built (the analysis, the
loaded modules), so nothing but a task's number goes in and only its
result (bytes) comes back.  Where ``fork`` is not offered or not safe
(macOS), when one job is asked for, or when no process can be forked, the
work runs here, in order: the same results either way.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import pickle
import signal
import sys
from collections import deque
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import PcaploopError

if TYPE_CHECKING:  # pragma: no cover
    from concurrent.futures import Future, ProcessPoolExecutor

# multiprocessing and concurrent.futures are imported where they are used: this
# module is imported by every `info` (its --jobs default), most of which fork nothing

T = TypeVar("T")

#: a worker's task; set in the worker only (passed at the fork, never pickled)
_task: Callable[[int], Any] | None = None
#: workers at most, whatever --jobs says: each holds its own copy of what it changes
MAX_WORKERS = 8
#: tasks handed out per worker ahead of the one the caller waits for
AHEAD = 4


def default_jobs() -> int:
    """The cores this process may run on (the default of ``--jobs``): its CPU
    affinity, and no more than a container's CPU quota (cgroup v2 ``cpu.max``)."""
    try:
        n = max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        n = max(1, os.cpu_count() or 1)
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            n = min(n, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return n


def can_fork() -> bool:
    """Whether workers can be forked safely: fork exists and is the platform's way
    (not on macOS, where system libraries break in a forked child)."""
    import multiprocessing as mp

    return "fork" in mp.get_all_start_methods() and sys.platform != "darwin"


class WorkerFailed(Exception):
    """An error raised in a worker that could not be sent back as itself."""


def _setup(fn: Callable[[int], Any]) -> None:  # pragma: no cover - runs in a worker
    """In a new worker: its task; Ctrl-C left to the parent (it stops the pool); fresh
    stdout and stderr, in case a thread of the parent (a progress display) held
    their locks at the moment of the fork."""
    global _task
    _task = fn
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the worker's whole life
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115


def _run(i: int) -> Any:  # pragma: no cover - runs in a worker
    assert _task is not None
    try:
        return _task(i)
    except Exception as exc:
        try:  # sent back as itself when it survives pickling, else as its text
            pickle.loads(pickle.dumps(exc))
        except Exception:
            raise WorkerFailed(
                f"{type(exc).__name__}: {exc}", isinstance(exc, PcaploopError)
            ) from None
        raise


def forked_map(fn: Callable[[int], T], n: int, jobs: int) -> Generator[T, None, None]:
    """``fn(0)``, ``fn(1)``, … ``fn(n - 1)`` in order, computed by up to ``jobs`` forked
    processes (at most :data:`MAX_WORKERS`); ``fn`` may read anything built before
    the call (the workers inherit it).  An exception in ``fn`` is raised here, as it
    would be when run serially; a worker that dies (killed, out of memory) is a
    :class:`PcaploopError`.  Called from a worker, it runs serially.

    At most :data:`AHEAD` tasks per worker are handed out beyond the one the
    caller waits for, so results finished early do not pile up in memory.
    When the caller stops early (an error, Ctrl-C, closing the generator), the
    workers are killed: a task may take minutes, and nothing it made is wanted.
    """
    workers = min(jobs, n, MAX_WORKERS)
    if workers <= 1 or not can_fork() or _task is not None:
        for i in range(n):
            yield fn(i)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    gc.freeze()  # the inherited objects stay untouched by the workers' collector
    pool: ProcessPoolExecutor | None = None
    pending: deque[Future[T]] = deque()
    try:
        pool = ProcessPoolExecutor(
            workers, mp_context=mp.get_context("fork"), initializer=_setup, initargs=(fn,)
        )
        pending.extend(pool.submit(_run, i) for i in range(min(n, workers * AHEAD)))
    except OSError:  # no process could be forked (a process limit): do it here
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        gc.unfreeze()
        for i in range(n):
            yield fn(i)
        return
    given, finished = len(pending), False
    try:
        while pending:
            try:
                result = pending.popleft().result()
                if given < n:  # keep the workers busy while the caller takes this one
                    pending.append(pool.submit(_run, given))
                    given += 1
            except WorkerFailed as exc:
                text, ours = exc.args
                raise (PcaploopError(text) if ours else RuntimeError(text)) from None
            except BrokenProcessPool:
                raise PcaploopError(
                    "a worker process stopped unexpectedly (out of memory?); "
                    "try again with --jobs 1"
                ) from None
            yield result
        finished = True
    finally:
        if not finished:
            _kill_workers(pool)
        pool.shutdown(wait=True, cancel_futures=True)
        gc.unfreeze()


def _kill_workers(pool: ProcessPoolExecutor) -> None:
    """Kill the pool's processes (they ignore Ctrl-C, which is the parent's)."""
    procs: dict[int, Any] = getattr(pool, "_processes", None) or {}
    for proc in list(procs.values()):
        with contextlib.suppress(OSError, ValueError):
            proc.kill()
