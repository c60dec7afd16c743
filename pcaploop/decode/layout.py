"""Where the decode kernel writes each field: typed matrices, one row per field.

The kernel writes final columns: one matrix per width (uint8, uint16, int32,
int64, uint64), each row of which *is* a column of :data:`pcaploop.schema.RAW`
(viewed signed or unsigned as the schema says), so handing a block on is a
matter of views, not a copy per field.  This table is the one place that
says which row holds which field and what it holds before the kernel runs;
the kernel's row constants (``R8_TTL`` …) are derived from it.

Per matrix, fields the kernel resets per record (to ``default``) come
first, then the record's own fields (time, lengths, interface, record
number), which :func:`pcaploop.decode.kernel._record` writes from the walker.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

import numpy as np

from .. import schema as S


class Field(NamedTuple):
    """One row of the typed layout."""

    name: str
    default: int | None  # None: the record's own value, never a default


M8, M16, M32, M64, MU = range(5)
#: dtype of each matrix.  The kernel writes only values its row's dtype holds (in
#: plain Python, without numba, numpy refuses anything else): M16 is unsigned for
#: fragment offsets up to 65528; ``-1`` defaults wrap and are viewed back signed.
DTYPES: Final[tuple[np.dtype[Any], ...]] = (
    np.dtype(np.uint8),
    np.dtype(np.uint16),
    np.dtype(np.int32),
    np.dtype(np.int64),
    np.dtype(np.uint64),
)

#: per matrix, its fields in row order
MATRICES: Final[tuple[tuple[Field, ...], ...]] = (
    (
        Field("status", S.OK),
        Field("direction", S.DIR_UNKNOWN),
        Field("ip_version", 0),
        Field("protocol", 0),
        Field("ttl", 0),
        Field("inner_version", 0),
        Field("flags", 0),
    ),
    (
        Field("tcp_flags", -1),
        Field("icmp_type", -1),
        Field("icmp_code", -1),
        Field("inner_protocol", -1),
        Field("inner_ttl", -1),
        Field("frag_offset", 0),
    ),
    (
        Field("vlan", -1),
        Field("inner_vlan", -1),
        Field("sport", -1),
        Field("dport", -1),
        Field("ip_len", 0),
        Field("flow_label", 0),
        Field("caplen", None),
        Field("wirelen", None),
    ),
    (
        Field("ip_id", -1),
        Field("inner_ip_id", -1),
        Field("ifindex", -1),
        Field("arp_op", 0),
        Field("time_ns", None),
        Field("iface", None),
        Field("record", None),
    ),
    (
        Field("eth_src", int(S.NO_MAC)),
        Field("eth_dst", int(S.NO_MAC)),
        Field("src_hi", 0),
        Field("src_lo", 0),
        Field("dst_hi", 0),
        Field("dst_lo", 0),
        Field("inner_src_hi", 0),
        Field("inner_src_lo", 0),
        Field("inner_dst_hi", 0),
        Field("inner_dst_lo", 0),
        Field("inner_l4", 0),
        Field("l4_head", 0),
        Field("fingerprint", 0),
        Field("inner_fingerprint", 0),
    ),
)
ROWS: Final[tuple[int, ...]] = tuple(len(m) for m in MATRICES)

#: field name → (matrix, row)
AT: Final[dict[str, tuple[int, int]]] = {
    f.name: (g, r) for g, fields in enumerate(MATRICES) for r, f in enumerate(fields)
}

#: fields that are not columns of the packets table: they account for records
#: (status, interface), place SLL2 records (ifindex) or describe ARP (arp_op)
PER_RECORD: Final = ("status", "iface", "ifindex", "arp_op")


def row(name: str) -> int:
    """Row of ``name`` in its matrix (the kernel's constants)."""
    return AT[name][1]


def view_dtype(name: str) -> np.dtype:
    """The dtype a field's row is read as: its schema column's, else the matrix's."""
    return S.RAW[name] if name in S.RAW else DTYPES[AT[name][0]]


def defaults() -> tuple[np.ndarray, ...]:
    """Per matrix, the defaults of its leading rows (the rows the kernel resets)."""
    out = []
    for g, fields in enumerate(MATRICES):
        vals = [f.default for f in fields if f.default is not None]
        assert all(f.default is None for f in fields[len(vals) :]), "defaults come first"
        out.append(
            np.array(vals, dtype=np.int64).astype(DTYPES[g])
            if g != MU
            else np.array(vals, dtype=np.uint64)
        )
    return tuple(out)


def unaliased(n: int) -> int:
    """``n`` rounded up to 8 more than a multiple of 16: a row length for typed matrices.

    Why: the rows of a matrix lie ``length × itemsize`` bytes apart.  At a
    power of two (the natural block size) element ``j`` of every row falls
    into one cache set, and the kernel's stores per packet evict one
    another (the decode stage of ``benchmarks/bench.py`` shows it).
    """
    return n + (8 - n) % 16


def empty(n: int) -> list[np.ndarray]:
    """Empty typed matrices (M8 … MU) for ``n`` rows."""
    return [np.empty((r, n), dtype=dt) for r, dt in zip(ROWS, DTYPES)]


def column(T: list[np.ndarray], name: str, n: int) -> np.ndarray:
    """Field ``name`` of the first ``n`` rows of matrices ``T``: a view, schema dtype."""
    g, r = AT[name]
    return T[g][r, :n].view(view_dtype(name))


def fields(T: list[np.ndarray], n: int) -> dict[str, np.ndarray]:
    """Every field of the first ``n`` rows by name (views): for tests and debugging."""
    return {name: column(T, name, n) for name in AT}
