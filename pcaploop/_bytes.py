"""Fixed-offset integer reads from a uint8 buffer, for the compiled kernels."""
from __future__ import annotations

import numpy as np

from ._jit import njit_inline, njit_plain


@njit_plain
def u16be(b, p):  # pragma: no cover - compiled
    return (np.int64(b[p]) << 8) | np.int64(b[p + 1])


@njit_plain
def u32be(b, p):  # pragma: no cover - compiled
    return ((np.int64(b[p]) << 24) | (np.int64(b[p + 1]) << 16)
            | (np.int64(b[p + 2]) << 8) | np.int64(b[p + 3]))


@njit_plain
def u16le(b, p):  # pragma: no cover - compiled
    return (np.int64(b[p + 1]) << 8) | np.int64(b[p])


@njit_plain
def u32le(b, p):  # pragma: no cover - compiled
    return ((np.int64(b[p + 3]) << 24) | (np.int64(b[p + 2]) << 16)
            | (np.int64(b[p + 1]) << 8) | np.int64(b[p]))


@njit_plain
def u32(b, p, big):  # pragma: no cover - compiled
    if big:
        return u32be(b, p)
    return u32le(b, p)


@njit_plain
def u16(b, p, big):  # pragma: no cover - compiled
    if big:
        return u16be(b, p)
    return u16le(b, p)


@njit_inline
def be64(b, p):  # pragma: no cover - compiled
    """8 bytes at ``p`` as a big-endian uint64 (two 32-bit reads, no loop)."""
    return (np.uint64(u32be(b, p)) << np.uint64(32)) | np.uint64(u32be(b, p + 4))


@njit_inline
def u64be(b, p, n):  # pragma: no cover - compiled
    """``n`` (<= 8) bytes at ``p`` as a big-endian uint64, zero-padded on the right."""
    if n >= 8:
        return be64(b, p)
    v = np.uint64(0)
    for j in range(8):
        v = v << np.uint64(8)
        if j < n:
            v = v | np.uint64(b[p + j])
    return v
