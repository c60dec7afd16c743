"""Batches of records → blocks of decoded rows, in reused typed matrices.

Why blocks: per-batch Python work (slicing 38 columns, accounting) costs more
than the compiled decode when a 1 MiB buffer fill holds only ~2,000 packets;
accumulating a block of rows first makes that cost negligible.  With
``slabs=3`` one thread can decode while another uses the previous block.

>>> dec = BatchDecoder()                                     # doctest: +SKIP
>>> for batch in cap.batches():                              # doctest: +SKIP
...     for block in dec.add(batch, codes): use(block.decoded())
>>> last = dec.flush()                                        # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .. import schema as S
from ..read import RecordBatch
from . import layout as L
from .fingerprint import MAX_WORDS, RUN_KEY, Key
from .kernel import (
    R8_STATUS,
    R64_ARPOP,
    R64_IFACE,
    R64_IFINDEX,
    R64_TIME,
    U_DLO,
    U_ESRC,
    U_IL4,
    U_SLO,
    decode_rows,
)

_IPV4_BITS = np.uint64(0xFFFFFFFF)


def run_kernel(
    buf: np.ndarray,
    off: np.ndarray,
    caplen: np.ndarray,
    wirelen: np.ndarray,
    t: np.ndarray,
    iface: np.ndarray,
    direction: np.ndarray,
    rec0: int,
    icodes: np.ndarray,
    key: Key,
    T: list[np.ndarray],
    start: int,
) -> None:
    """Decode records (with their own fields) into typed rows ``start ..`` of ``T``.

    ``icodes`` maps interface index → link code; the other arrays hold one
    value per record, as :class:`pcaploop.read.RecordBatch` does.
    """
    if len(off):
        with np.errstate(over="ignore"):  # SipHash wraps by design (numpy warns without numba)
            decode_rows(
                buf,
                off,
                caplen,
                wirelen,
                t,
                iface,
                direction,
                rec0,
                icodes,
                key[0],
                key[1],
                *T,
                start,
                np.zeros(MAX_WORDS, dtype=np.uint64),
            )


def decode_frames(
    frames: list[bytes],
    codes: list[int] | np.ndarray,
    key: Key = RUN_KEY,
    wirelen: list[int] | None = None,
) -> dict[str, np.ndarray]:
    """Decode whole frames, one link code each: every field by name (tests, debugging).

    >>> decode_frames([frame], [linktypes.L2_ETHERNET])["ttl"]     # doctest: +SKIP
    """
    n = len(frames)
    buf = np.frombuffer(b"".join(frames) or b"\0", dtype=np.uint8)
    cap = np.array([len(f) for f in frames], dtype=np.int64)
    off = np.r_[0, np.cumsum(cap)[:-1]].astype(np.int64) if n else np.zeros(0, np.int64)
    wire = np.array(wirelen, dtype=np.int64) if wirelen is not None else cap
    T = L.empty(n)
    run_kernel(
        buf,
        off,
        cap,
        wire,
        np.zeros(n, np.int64),
        np.arange(n, dtype=np.int64),
        np.zeros(n, np.int8),
        0,
        np.asarray(codes, dtype=np.int64),
        key,
        T,
        0,
    )
    return L.fields(T, n)


@dataclass
class Decoded:
    """Decoded rows of some records: every record's status, raw columns of the OK ones."""

    status: np.ndarray  # int8 per record (schema.OK or a skip code)
    iface: np.ndarray  # int64 per record: interface index in its file (-1: none)
    ifindex: np.ndarray  # int64 per record: SLL2 interface index, -1 elsewhere
    time_ns: np.ndarray  # int64 per record
    cols: dict[str, np.ndarray]  # raw columns (schema.RAW) for status == OK rows
    arp: dict[str, np.ndarray]  # ARP rows (op, sender MAC/IP, target IP, time, iface)
    arp_mask: np.ndarray  # bool per record: the ARP rows


class Slab:
    """Typed matrices for up to ``cap`` rows: kernel fields and the record's own."""

    def __init__(self, cap: int):
        self.T = L.empty(cap)
        self.cap = cap
        self.fill = 0

    def grow(self, cap: int) -> None:
        """Room for ``cap`` rows, keeping what is filled."""
        f = self.fill
        bigger = L.empty(cap)
        for old, new in zip(self.T, bigger):
            new[:, :f] = old[:, :f]
        self.T, self.cap = bigger, cap

    def column(self, name: str, n: int) -> np.ndarray:
        """Raw column ``name`` of the first ``n`` rows: a view, in the schema's dtype."""
        return L.column(self.T, name, n)


@dataclass
class Block:
    """``n`` decoded rows in a slab; :meth:`decoded` hands them out as raw columns.

    Call :meth:`decoded` before the decoder has filled ``slabs - 1`` further
    blocks: the slab is then reused.
    """

    slab: Slab
    n: int

    def decoded(self, into: dict[str, np.ndarray] | None = None, views: bool = False) -> Decoded:
        """Raw columns of the OK rows (and per-record status for accounting).

        * default: fresh arrays, the block may outlive the slab;
        * ``into`` (a dict, empty at first): written into arrays kept there and
          reused by the next call, or into a consumer's own buffer;
        * ``views=True``: when every record decoded, views of the slab itself,
          no copy at all (valid until the slab is reused); otherwise as ``into``.
        """
        n, sl = self.n, self.slab
        status = sl.T[L.M8][R8_STATUS, :n].view(np.int8)
        okmask = status == S.OK
        allok = bool(okmask.all())
        sel = None if allok else np.flatnonzero(okmask)
        k_ok = n if sel is None else len(sel)
        own = into is None and not views  # a block that outlives the slab
        if views and into is None:
            into = {}
        cols: dict[str, np.ndarray] = {}
        for name, dt in S.RAW.items():
            if name == "point":
                cols[name] = np.zeros(k_ok, dtype=np.int16)
                continue
            v = sl.column(name, n)
            if views and allok:
                cols[name] = v
            elif into is None:
                cols[name] = v.copy() if sel is None else v[sel]
            else:
                dst = into.get(name)
                if dst is None or len(dst) < k_ok:
                    dst = into[name] = np.empty(max(n, k_ok), dtype=dt)
                if sel is None:
                    np.copyto(dst[:k_ok], v)
                else:
                    np.take(v, sel, out=dst[:k_ok])
                cols[name] = dst[:k_ok]
        M64, U = sl.T[L.M64][:, :n], sl.T[L.MU][:, :n]
        isarp = M64[R64_ARPOP] > 0
        arp = {
            "time_ns": M64[R64_TIME, isarp],
            "iface": M64[R64_IFACE, isarp],
            "ifindex": M64[R64_IFINDEX, isarp],
            "op": M64[R64_ARPOP, isarp],
            "sender_mac": U[U_IL4, isarp],
            "sender_ip": (U[U_SLO, isarp] & _IPV4_BITS).astype(np.uint32),
            "target_ip": (U[U_DLO, isarp] & _IPV4_BITS).astype(np.uint32),
            "eth_src": U[U_ESRC, isarp],
        }
        iface, ifindex, time_ns = M64[R64_IFACE], M64[R64_IFINDEX], M64[R64_TIME]
        if own:
            status, iface, ifindex, time_ns = (
                status.copy(),
                iface.copy(),
                ifindex.copy(),
                time_ns.copy(),
            )
        return Decoded(status, iface, ifindex, time_ns, cols, arp, isarp)


class BatchDecoder:
    """Decodes record batches into reused typed matrices, handed out in large blocks."""

    def __init__(self, key: Key = RUN_KEY, capacity: int = L.unaliased(1 << 16), slabs: int = 1):
        self.key = key
        self.max_cap = capacity
        self.slabs = [Slab(min(capacity, L.unaliased(1000))) for _ in range(slabs)]
        self.cur = 0

    @property
    def fill(self) -> int:
        """Rows decoded into the current slab and not yet handed out."""
        return self.slabs[self.cur].fill

    def add(self, batch: RecordBatch, iface_codes: np.ndarray) -> Iterator[Block]:
        """Decode a batch; yields full :class:`Block` s as they fill up."""
        n = len(batch.off)
        done = 0
        while done < n:
            sl_ = self.slabs[self.cur]
            if sl_.fill + n - done > sl_.cap and sl_.cap < self.max_cap:
                sl_.grow(min(self.max_cap, L.unaliased(max(2 * sl_.cap, sl_.fill + n - done))))
            take = min(n - done, sl_.cap - sl_.fill)
            part = slice(done, done + take)
            run_kernel(
                batch.buf,
                batch.off[part],
                batch.caplen[part],
                batch.wirelen[part],
                batch.time_ns[part],
                batch.iface[part],
                batch.direction[part],
                batch.first_record + done,
                iface_codes,
                self.key,
                sl_.T,
                sl_.fill,
            )
            sl_.fill += take
            done += take
            if sl_.fill == sl_.cap:
                yield self.take()

    def take(self) -> Block:
        """The rows decoded so far as a block; the next slab takes new rows."""
        sl_ = self.slabs[self.cur]
        block = Block(sl_, sl_.fill)
        sl_.fill = 0
        self.cur = (self.cur + 1) % len(self.slabs)
        return block

    def reset(self) -> None:
        """Start empty again, keeping the slabs grown so far (a decoder reused for
        the next piece of a file: fresh slabs would be faulted in afresh)."""
        for sl_ in self.slabs:
            sl_.fill = 0
        self.cur = 0

    def flush(self) -> Decoded:
        """Columns of the rows decoded so far; the decoder starts empty again."""
        return self.take().decoded()


def decode_batch(batch: RecordBatch, iface_codes: np.ndarray, key: Key = RUN_KEY) -> Decoded:
    """Decode one batch on its own (tests, benchmarks); streams use :class:`BatchDecoder`."""
    dec = BatchDecoder(key, max(1, len(batch.off)))
    blocks = list(dec.add(batch, iface_codes))
    return blocks[0].decoded() if blocks else dec.flush()
