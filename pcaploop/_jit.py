"""Compile the bulk kernels with numba when it is available.

Why: a per-packet Python loop tops out near 0.2 M packets/s, the compiled
kernels reach several million (../shared/perf-baseline.md).  When numba is
missing (no wheel for this Python) or ``PCAPLOOP_NO_JIT=1`` /
``NUMBA_DISABLE_JIT=1`` is set, the decode kernel is replaced by its
vectorised numpy twin (:mod:`pcaploop._npdecode`, ~0.5 M packets/s), the
record walkers by ``struct``-based twins (:mod:`pcaploop._walk`), and the path
kernels run as plain Python over numpy arrays: slower (a whole load ~0.4 M
packets/s), identical results.
"""
from __future__ import annotations

import os
from typing import Any, Callable

_disabled = os.environ.get("PCAPLOOP_NO_JIT", "") not in ("", "0") or os.environ.get(
    "NUMBA_DISABLE_JIT", ""
) not in ("", "0")

try:  # pragma: no cover - depends on the environment
    if _disabled:
        raise ImportError
    import numba as _numba

    JIT = True
except ImportError:  # pragma: no cover
    _numba = None
    JIT = False


def njit(func: Callable[..., Any]) -> Callable[..., Any]:
    """``numba.njit(cache=True, nogil=True)`` or the plain function."""
    if JIT:
        return _numba.njit(cache=True, nogil=True, boundscheck=False)(func)
    return func


def njit_plain(func: Callable[..., Any]) -> Callable[..., Any]:
    """:func:`njit` without numba's runtime: no reference counting of arrays.

    Why: every call between compiled functions that passes an array, and every
    array variable of an inlined function, costs an atomic increment and
    decrement of the array's reference count.  In the per-packet decode path
    those atomics took a third of the kernel's time (``perf``), and numba's
    pruning leaves them where a function has many exits.  Only for kernels
    that allocate nothing (callers pass scratch arrays in): without the
    runtime, numba refuses to compile an allocation.
    """
    if JIT:
        return _numba.njit(cache=True, nogil=True, boundscheck=False, _nrt=False)(func)
    return func


def njit_inline(func: Callable[..., Any]) -> Callable[..., Any]:
    """:func:`njit_plain`, and inlined into its callers by numba (``inline="always"``).

    Why: a call passes each array as a struct of seven fields; the per-packet
    helpers (the packet itself, MACs, L4 words, the digest) are inlined.  The
    byte readers are not: inlining them too (measured with the runtime still
    on) made the kernel slower and its compile take 25 s.
    """
    if JIT:
        return _numba.njit(cache=True, nogil=True, boundscheck=False, inline="always",
                           _nrt=False)(func)
    return func
