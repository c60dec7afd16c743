"""Addresses as (hi, lo) uint64 pairs ↔ readable strings.

IPv4 is stored mapped into ``::ffff:0:0/96`` so one pair of columns holds
both families; :func:`to_text` prints IPv4 in dotted form.

>>> to_text(0, 0xFFFF_C000_0207)
'192.0.2.7'
>>> from_text("2001:db8::1") == (0x20010DB8_00000000, 1)
True
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

_V4MAP = 0xFFFF00000000


def to_text(hi: int, lo: int) -> str:
    hi, lo = int(hi), int(lo)
    if hi == 0 and (lo >> 32) == 0xFFFF:
        return str(ipaddress.IPv4Address(lo & 0xFFFFFFFF))
    return ipaddress.IPv6Address((hi << 64) | lo).compressed


@lru_cache(maxsize=1 << 16)
def network_text(address: str, prefix: int | None = None) -> str:
    """The network of ``prefix`` bits holding ``address``, as CIDR text (None, or more
    bits than the address has: the address alone), as
    ``str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))`` writes it.

    Why not that: building an ``ip_network`` from text costs 20 µs, and a report on a
    scanner's thousands of loops asks for one per loop and per line.

    >>> network_text("192.0.2.77", 24), network_text("2001:db8::1")
    ('192.0.2.0/24', '2001:db8::1/128')
    """
    a = ipaddress.ip_address(address)
    bits = a.max_prefixlen
    if prefix is not None and prefix < 0:
        raise ValueError(f"prefix length {prefix} is negative")
    plen = bits if prefix is None else min(prefix, bits)
    net = int(a) & ~((1 << (bits - plen)) - 1)
    return f"{type(a)(net)}/{plen}"


def from_text(text: str) -> tuple[int, int]:
    """Parse an IPv4 or IPv6 address into the (hi, lo) pair the columns use."""
    a = ipaddress.ip_address(text.strip())
    if a.version == 4:
        return 0, _V4MAP | int(a)
    v = int(a)
    return v >> 64, v & 0xFFFFFFFFFFFFFFFF


def mac_text(v: int) -> str:
    v = int(v)
    return ":".join(f"{(v >> s) & 0xFF:02x}" for s in range(40, -8, -8))


def pairs_to_categorical(
    hi: np.ndarray, lo: np.ndarray, valid: np.ndarray | None = None
) -> pd.Categorical:
    """Readable categorical of address strings, ``<NA>`` where not ``valid``."""
    pairs = np.empty(len(hi), dtype=[("h", "<u8"), ("l", "<u8")])
    pairs["h"], pairs["l"] = hi, lo
    uniq, inv = np.unique(pairs, return_inverse=True)
    cats = [to_text(u["h"], u["l"]) for u in uniq]
    codes = inv.astype(np.int64).ravel()
    if valid is not None:
        codes = np.where(valid, codes, -1)
    return _categorical(codes, cats)


def macs_to_categorical(mac: np.ndarray, missing: int) -> pd.Categorical:
    uniq, inv = np.unique(mac, return_inverse=True)
    cats = [mac_text(u) if int(u) != missing else "" for u in uniq]
    codes = inv.astype(np.int64).ravel()
    codes = np.where(mac == np.uint64(missing), -1, codes)
    return _categorical(codes, cats)


def categorical(codes: np.ndarray, categories: Sequence[str]) -> pd.Categorical[str]:
    """``pd.Categorical.from_codes`` over a numpy array of codes."""
    import pandas as pd

    out: pd.Categorical[str] = pd.Categorical.from_codes(
        codes, categories=pd.Index(list(categories))
    )
    return out


def _categorical(codes: np.ndarray, cats: list[str]) -> pd.Categorical:
    """Categorical from codes, dropping unused categories (and a blank placeholder)."""
    import pandas as pd

    used = np.zeros(len(cats), dtype=bool)
    used[codes[codes >= 0]] = True
    remap = np.cumsum(used) - 1
    new_codes = np.where(codes >= 0, remap[np.maximum(codes, 0)], -1)
    kept = [c for c, u in zip(cats, used) if u]
    return pd.Categorical.from_codes(new_codes, categories=pd.Index(kept, dtype=object))
