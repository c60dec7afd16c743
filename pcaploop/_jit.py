"""Compile the bulk kernels with numba when the input is worth it; else run them as Python.

Why: the compiled kernels decode an order of magnitude or two faster than a
per-packet Python loop (benchmarks/RESULTS.md) — but importing numba
and loading the cached kernels costs most of a second, which is all of
``pcaploop info`` on a small capture.  So the decorators here return a
:class:`Kernel` that runs the plain Python function until :func:`activate`
is called; the loader calls :func:`activate_for` with the size of its input,
and from then on every kernel (and every module global naming one) is the
numba dispatcher, loaded from the per-user cache without compiling.  Same
semantics either way: the tests' no-numba pass runs the Python functions on
purpose, which catches what numba's wrap-around integers would hide.

numba is a dependency on CPython.  When it is missing (another interpreter)
or ``PCAPLOOP_NO_JIT=1`` / ``NUMBA_DISABLE_JIT=1`` is set, nothing is ever
compiled: identical results, far slower.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections.abc import Callable
from typing import Any

_disabled = os.environ.get("PCAPLOOP_NO_JIT", "") not in ("", "0") or os.environ.get(
    "NUMBA_DISABLE_JIT", ""
) not in ("", "0")


def _numba_importable() -> bool:
    if _disabled:
        return False
    from importlib.util import find_spec

    return find_spec("numba") is not None


#: numba is there and allowed: kernels compile once :func:`activate` runs
JIT = _numba_importable()
#: input bytes from which decoding is faster compiled, numba's start-up included
#: (the Python kernels decode a few thousand packets in the time numba takes to load)
ACTIVATE_BYTES = 256 << 10

_lock = threading.Lock()
_active = False
_registry: list[Kernel] = []


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


class Kernel:
    """A kernel function: its plain Python ``py_func`` until :func:`activate`, then the
    compiled dispatcher (calls go straight to it)."""

    __slots__ = ("__dict__", "__name__", "__qualname__", "compiled", "options", "py_func")

    def __init__(self, func: Callable[..., Any], options: dict[str, Any]) -> None:
        self.py_func = func
        self.options = options
        self.compiled: Callable[..., Any] | None = None
        self.__name__ = func.__name__
        self.__qualname__ = func.__qualname__
        self.__doc__ = func.__doc__

    def __call__(self, *args: Any) -> Any:
        fn = self.compiled
        return fn(*args) if fn is not None else self.py_func(*args)

    def __repr__(self) -> str:
        state = "compiled" if self.compiled is not None else "python"
        return f"<pcaploop kernel {self.__qualname__} ({state})>"


def _compile(func: Callable[..., Any], **options: Any) -> Callable[..., Any]:
    """``numba.njit(cache=True, ...)`` with its cache in :func:`cache_dir`.

    numba picks a function's cache directory once, when the decorator runs,
    from ``numba.config.CACHE_DIR``; it is set for that moment only, so a
    notebook user's own numba functions keep their own cache setting.
    """
    import numba
    from numba.core import config as _config

    config: Any = _config  # CACHE_DIR is set at runtime, unknown to the stubs
    saved = config.CACHE_DIR
    config.CACHE_DIR = cache_dir()
    try:
        compiled: Callable[..., Any] = numba.njit(
            cache=True, nogil=True, boundscheck=False, **options
        )(func)
        return compiled
    finally:
        config.CACHE_DIR = saved


def is_active() -> bool:
    """Whether the kernels run compiled."""
    return _active


def activate() -> bool:
    """Compile (load from the cache) every kernel; True when they now run compiled.

    The module globals that name a kernel are swapped for its dispatcher too,
    so compiled kernels calling each other see numba functions, and Python
    callers skip the :class:`Kernel` indirection.
    """
    global _active
    if _active or not JIT:
        return _active
    with _lock:
        if is_active():  # another thread got here first
            return True
        for k in _registry:
            k.compiled = _compile(k.py_func, **k.options)
        for name, mod in list(sys.modules.items()):
            if name != "pcaploop" and not name.startswith("pcaploop."):
                continue
            for attr, val in list(vars(mod).items()):
                if isinstance(val, Kernel) and val.compiled is not None:
                    setattr(mod, attr, val.compiled)
        _active = True
    return True


def activate_for(input_bytes: int) -> bool:
    """:func:`activate` when ``input_bytes`` of capture are about to be decoded and
    that is enough to repay numba's start-up (:data:`ACTIVATE_BYTES`)."""
    if input_bytes >= ACTIVATE_BYTES:
        return activate()
    return _active


def _kernel(func: Callable[..., Any], **options: Any) -> Callable[..., Any]:
    if not JIT:
        return func
    k = Kernel(func, options)
    _registry.append(k)
    if _active:  # a module imported after activation
        k.compiled = _compile(func, **options)
        return k.compiled
    return k


def njit(func: Callable[..., Any]) -> Callable[..., Any]:
    """A kernel (``numba.njit(cache=True, nogil=True)`` once active)."""
    return _kernel(func)


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
    return _kernel(func, _nrt=False)


def njit_inline(func: Callable[..., Any]) -> Callable[..., Any]:
    """:func:`njit_plain`, and inlined into its callers by numba (``inline="always"``).

    Why: a call passes each array as a struct of seven fields; the per-packet
    helpers (the packet itself, MACs, L4 words, the digest) are inlined.  The
    byte readers are not: inlining them too (measured with the runtime still
    on) made the kernel slower and its compile take 25 s.
    """
    return _kernel(func, inline="always", _nrt=False)
