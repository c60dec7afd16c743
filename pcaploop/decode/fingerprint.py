"""Keyed 64-bit fingerprint of a packet: SipHash-1-3 over fixed 64-bit words.

Why keyed: captures come from customers' tickets; with a per-run random key
a crafted capture cannot aim two different packets at one fingerprint.
Why 64 bits: a 32-bit digest collided 6 times in 200 k packets.

The words hashed (see :func:`fingerprint_words`) are exactly the fields
docs/design.md (*Words*) names — never TTL / hop limit, the IPv4 header
checksum, DF or layer 2.  ICMP errors and ICMPv6 redirects add words naming
the packet they are about (:data:`ERROR_WORDS`, :data:`REDIRECT_WORDS`):
their first 24 bytes are the same for every error a host sends about
packets of one flow, and without them distinct errors would look like one
packet sent again.  Both decoders build the same words and call
:func:`siphash13`.

>>> k = (np.uint64(1), np.uint64(2))
>>> w = np.arange(10, dtype=np.uint64)
>>> siphash13(k[0], k[1], w, 10) == siphash13(k[0], k[1], w.copy(), 10)
True
"""

from __future__ import annotations

import os

import numpy as np

from .._jit import njit_inline, njit_plain

N_WORDS = 10
#: words added for an ICMP error with a decoded quote: the quoted destination (2),
#: protocol and ID, first 8 L4 bytes, the quoted packet's own fingerprint
ERROR_WORDS = 5
#: words added for an ICMPv6 redirect: the destination it redirects (2)
REDIRECT_WORDS = 2
#: scratch words the kernel needs for any packet
MAX_WORDS = N_WORDS + ERROR_WORDS

#: a SipHash key: two 64-bit words
Key = tuple[np.uint64, np.uint64]

_C0 = np.uint64(0x736F6D6570736575)
_C1 = np.uint64(0x646F72616E646F6D)
_C2 = np.uint64(0x6C7967656E657261)
_C3 = np.uint64(0x7465646279746573)
_FF = np.uint64(0xFF)
_S = tuple(np.uint64(s) for s in (13, 51, 32, 16, 48, 21, 43, 17, 47, 56))


@njit_plain
def _round(v0, v1, v2, v3):  # pragma: no cover - compiled
    s13, s51, s32, s16, s48, s21, s43, s17, s47, _ = _S
    v0 = v0 + v1
    v1 = (v1 << s13) | (v1 >> s51)
    v1 = v1 ^ v0
    v0 = (v0 << s32) | (v0 >> s32)
    v2 = v2 + v3
    v3 = (v3 << s16) | (v3 >> s48)
    v3 = v3 ^ v2
    v0 = v0 + v3
    v3 = (v3 << s21) | (v3 >> s43)
    v3 = v3 ^ v0
    v2 = v2 + v1
    v1 = (v1 << s17) | (v1 >> s47)
    v1 = v1 ^ v2
    v2 = (v2 << s32) | (v2 >> s32)
    return v0, v1, v2, v3


@njit_inline
def siphash13(k0, k1, words, n):  # pragma: no cover - compiled
    """SipHash-1-3 of ``words[:n]`` (uint64) under key ``(k0, k1)``."""
    v0 = k0 ^ _C0
    v1 = k1 ^ _C1
    v2 = k0 ^ _C2
    v3 = k1 ^ _C3
    for i in range(n):
        m = words[i]
        v3 = v3 ^ m
        v0, v1, v2, v3 = _round(v0, v1, v2, v3)
        v0 = v0 ^ m
    b = np.uint64(n * 8) << _S[9]
    v3 = v3 ^ b
    v0, v1, v2, v3 = _round(v0, v1, v2, v3)
    v0 = v0 ^ b
    v2 = v2 ^ _FF
    v0, v1, v2, v3 = _round(v0, v1, v2, v3)
    v0, v1, v2, v3 = _round(v0, v1, v2, v3)
    v0, v1, v2, v3 = _round(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3


def new_key() -> Key:
    """A fresh random key; one per run (``PCAPLOOP_FP_KEY=hex32`` pins it)."""
    pinned = os.environ.get("PCAPLOOP_FP_KEY", "")
    raw = bytes.fromhex(pinned) if len(pinned) == 32 else os.urandom(16)
    return (
        np.uint64(int.from_bytes(raw[:8], "little")),
        np.uint64(int.from_bytes(raw[8:], "little")),
    )


RUN_KEY = new_key()


def fingerprint_words(
    version: int,
    protocol: int,
    frag_field: int,
    ip_len_field: int,
    ident: int,
    flow_label: int,
    src: tuple[int, int],
    dst: tuple[int, int],
    prefix: bytes,
    short: bool,
    extra: tuple[int, ...] = (),
) -> np.ndarray:
    """The words hashed for one packet (reference implementation).

    ``frag_field`` is ``MF << 13 | offset_in_8_byte_units``; ``ip_len_field``
    the IPv4 total length or the IPv6 payload length; ``ident`` the IPv4 ID or
    IPv6 fragment id (0 when absent); ``prefix`` at most 24 bytes of L4 with
    the checksum already zeroed; ``extra`` the error or redirect words.
    """
    w = np.zeros(N_WORDS + len(extra), dtype=np.uint64)
    w[0] = (version << 56) | (protocol << 48) | (frag_field << 32) | (ip_len_field & 0xFFFFFFFF)
    w[1] = ((ident & 0xFFFFFFFF) << 32) | (flow_label & 0xFFFFFFFF)
    w[2], w[3] = src
    w[4], w[5] = dst
    padded = prefix.ljust(24, b"\0")
    for j in range(3):
        w[6 + j] = int.from_bytes(padded[8 * j : 8 * j + 8], "big")
    w[9] = len(prefix) | (int(short) << 8)
    for j, v in enumerate(extra):
        w[N_WORDS + j] = v & 0xFFFFFFFFFFFFFFFF
    return w


def fingerprint_of(words: np.ndarray, key: Key = RUN_KEY) -> int:
    """Hash the words of :func:`fingerprint_words`."""
    with np.errstate(over="ignore"):
        return int(siphash13(key[0], key[1], words, len(words)))
