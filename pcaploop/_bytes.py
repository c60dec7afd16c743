"""Fixed-offset integer reads from a uint8 buffer, for the compiled kernels.

Every index is unsigned.  Why: numba guards a signed index against negative
values (Python's wrap-around) with a compare and add per byte, and those
guards keep LLVM from merging the byte loads of one field; with unsigned
indices each ``u16be`` / ``u32be`` becomes a single ``movbe``, which the decode
kernel's per-packet time shows.  Callers never pass a negative offset.
"""

from __future__ import annotations

import numpy as np

from ._jit import njit_inline, njit_plain

_1, _2, _3 = np.uint64(1), np.uint64(2), np.uint64(3)


@njit_plain
def u8(b, p):  # pragma: no cover - compiled
    return np.int64(b[np.uint64(p)])


@njit_plain
def u16be(b, p):  # pragma: no cover - compiled
    q = np.uint64(p)
    return np.int64((np.uint16(b[q]) << np.uint16(8)) | np.uint16(b[q + _1]))


@njit_plain
def u32be(b, p):  # pragma: no cover - compiled
    q = np.uint64(p)
    return np.int64(
        (np.uint32(b[q]) << np.uint32(24))
        | (np.uint32(b[q + _1]) << np.uint32(16))
        | (np.uint32(b[q + _2]) << np.uint32(8))
        | np.uint32(b[q + _3])
    )


@njit_plain
def u16le(b, p):  # pragma: no cover - compiled
    q = np.uint64(p)
    return np.int64((np.uint16(b[q + _1]) << np.uint16(8)) | np.uint16(b[q]))


@njit_plain
def u32le(b, p):  # pragma: no cover - compiled
    q = np.uint64(p)
    return np.int64(
        (np.uint32(b[q + _3]) << np.uint32(24))
        | (np.uint32(b[q + _2]) << np.uint32(16))
        | (np.uint32(b[q + _1]) << np.uint32(8))
        | np.uint32(b[q])
    )


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
            v = v | np.uint64(b[np.uint64(p + j)])
    return v
