"""Compile the bulk kernels with numba; without it, run the same functions as Python.

Why: a per-packet Python loop tops out near 0.2 M packets/s, the compiled
kernels reach several million (benchmarks/RESULTS.md).  numba is a
dependency on CPython.  When it is missing (another interpreter) or
``PCAPLOOP_NO_JIT=1`` / ``NUMBA_DISABLE_JIT=1`` is set, the decorators
return the plain functions: identical semantics, far slower — for
debugging a kernel and for the tests' no-numba pass, which catches what
numba's wrap-around integers would hide.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import Any

_disabled = os.environ.get("PCAPLOOP_NO_JIT", "") not in ("", "0") or os.environ.get(
    "NUMBA_DISABLE_JIT", ""
) not in ("", "0")

_numba: Any = None
_numba_config: Any = None
try:  # pragma: no cover - depends on the environment
    if _disabled:
        raise ImportError
    import numba as _numba
    from numba.core import config as _numba_config

    JIT = True
except ImportError:  # pragma: no cover
    JIT = False


def _writable(path: str) -> bool:
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except OSError:
        return False
    return True


def cache_dir() -> str:
    """Where the compiled kernels are cached: a per-user directory, never the package.

    Why: numba's default puts its cache files in the package's own
    ``__pycache__``.  After ``pip install .`` those files are not in pip's
    record, so they survive an uninstall; the directory left behind then
    shadows a later editable install as an empty namespace package, and
    ``import pcaploop`` finds no ``__version__``.  Order: ``PCAPLOOP_CACHE_DIR``,
    numba's own ``NUMBA_CACHE_DIR``, ``$XDG_CACHE_HOME/pcaploop/numba``
    (``~/.cache`` by default), and a per-user temporary directory when none of
    those is writable.
    """
    for env in ("PCAPLOOP_CACHE_DIR", "NUMBA_CACHE_DIR"):
        if os.environ.get(env):
            return os.environ[env]
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = os.path.join(xdg, "pcaploop", "numba")
    if _writable(path):
        return path
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return os.path.join(tempfile.gettempdir(), f"pcaploop-{uid}", "numba")


_CACHE_DIR = cache_dir() if JIT else ""


def _compile(func: Callable[..., Any], **options: Any) -> Callable[..., Any]:
    """``numba.njit(cache=True, ...)`` with its cache in :func:`cache_dir`.

    numba picks a function's cache directory once, when the decorator runs,
    from ``numba.config.CACHE_DIR``; it is set for that moment only, so a
    notebook user's own numba functions keep their own cache setting.
    """
    saved = _numba_config.CACHE_DIR
    _numba_config.CACHE_DIR = _CACHE_DIR
    try:
        compiled: Callable[..., Any] = _numba.njit(
            cache=True, nogil=True, boundscheck=False, **options
        )(func)
        return compiled
    finally:
        _numba_config.CACHE_DIR = saved


def njit(func: Callable[..., Any]) -> Callable[..., Any]:
    """``numba.njit(cache=True, nogil=True)`` or the plain function."""
    if JIT:
        return _compile(func)
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
        return _compile(func, _nrt=False)
    return func


def njit_inline(func: Callable[..., Any]) -> Callable[..., Any]:
    """:func:`njit_plain`, and inlined into its callers by numba (``inline="always"``).

    Why: a call passes each array as a struct of seven fields; the per-packet
    helpers (the packet itself, MACs, L4 words, the digest) are inlined.  The
    byte readers are not: inlining them too (measured with the runtime still
    on) made the kernel slower and its compile take 25 s.
    """
    if JIT:
        return _compile(func, inline="always", _nrt=False)
    return func
