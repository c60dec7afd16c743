"""Summaries of large captures counted in several processes (``info --jobs N``).

Why: ``info`` keeps no packets, only counters per capture point, so a worker
that decodes part of the input sends back its counters — kilobytes — and
not the decoded rows.  (Decoding in workers for ``analyze`` was tried and
measured slower: moving some 200 bytes a packet between processes costs
more than decoding it.)

How: the input is cut into :class:`Piece` s — a large uncompressed classic
pcap into chunks, at byte offsets where several chained record headers
check out (:func:`plan`); every other file whole.  A forked worker decodes
and counts each piece with capture points of its own
(:meth:`pcaploop.ingest.loader.Loader.aggregate`); the parent takes the
pieces in input order, registers each piece's points as its own in the
order their records first appear (as reading in order does) and adds up the
counters.  A chunk proves that the next one begins on a record by ending
exactly where it begins.  When one does not (a cut that only looked like a
record header), the parent reads the next chunk itself, in order, from where
the last one ended, and takes the workers' counts again from the first chunk
such a read ends on; when damage stops a chunk, reading the file in order
stops there too.  A piece whose capture points are not the parent's one to
one (past the point limit) is read again in the parent as well.  So the
records, counts, capture points, names and warnings are those of reading
the input in order.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from ..read import CaptureFile, Interface
from ..read.capture import PCAP_HEADER_BYTES
from ..read.formats import MAX_CAPLEN
from .points import CapturePoint

#: bytes of capture per chunk: large enough that the per-chunk cost (a task, a cut
#: to find, a result to merge) is small, small enough that several chunks keep
#: every worker busy to the end
CHUNK_BYTES = 32 << 20
#: the first chunk of the first file cut: counted before the workers are forked, so
#: that they inherit the compiled kernels it loaded (each would load them again)
WARM_BYTES = 1 << 20
#: input below this is read in one process: forking and merging would cost more
MIN_BYTES = 2 * CHUNK_BYTES
#: bytes read at a nominal cut to find a record boundary after it: first these, then,
#: when no boundary was found there (large records), up to SYNC_WINDOW
SYNC_FIRST = 16 << 10
SYNC_WINDOW = 1 << 20
#: chained record headers that must check out at a cut
SYNC_CHAIN = 8
#: record timestamps within a chain differ by at most this (s)
SYNC_SPREAD_S = 3600
#: and lie within this of the file's first record (s): a chain of headers seen 4
#: bytes off, where the sub-second field reads as seconds, fails here
SYNC_SPAN_S = 366 * 86400

A = TypeVar("A")


@dataclass(frozen=True)
class Piece:
    """Part of the input one worker reads: a chunk of a file, or all of it."""

    file: int  # index of the file among the opened captures
    start: int  # byte offset of its first record; 0: the whole file
    stop: int  # byte offset after its last record (a whole file: 0)

    @property
    def whole(self) -> bool:
        """A whole file (a chunk's first record is never at byte 0: the header is)."""
        return self.start == 0


@dataclass
class PieceResult(Generic[A]):
    """What a worker found in a piece: its capture points and their keys, the
    consumer's aggregate, and where and why reading stopped."""

    #: per point of the piece, in the order they were made (one point may have
    #: several keys: past the point limit): (local point, (interface, SLL2 ifindex
    #: or None)); interface -1: records that name no interface
    keys: list[tuple[int, tuple[int, int | None]]]
    points: list[CapturePoint]
    summary: A
    records: int
    bytes_read: int
    position: int  # byte offset of the first record not read (chunks)
    truncated_tail: bool
    problem: str | None
    corrupt_caplen: int | None
    interfaces: list[Interface]


def _worth(cap: CaptureFile, chunk_bytes: int = CHUNK_BYTES) -> int:
    """The size of ``cap`` when it is worth cutting into chunks, else 0: a regular,
    uncompressed classic pcap read once, of at least two chunks."""
    if cap.format != "pcap" or cap.compressed or cap.follow is not None or chunk_bytes <= 0:
        return 0
    if cap._stream is not None or not cap.interfaces:
        return 0
    try:
        st = os.stat(cap.path)
    except OSError:
        return 0
    if not stat.S_ISREG(st.st_mode) or st.st_size < 2 * chunk_bytes:
        return 0
    return st.st_size


def plan(
    cap: CaptureFile, chunk_bytes: int = CHUNK_BYTES, first_bytes: int | None = None
) -> list[int] | None:
    """Byte offsets cutting a classic pcap into chunks (first: the first record,
    last: the file's size), or None when the file is not worth cutting or cannot be.
    ``first_bytes``: the first chunk's size, when it is to be smaller than the others.

    A cut is kept only where :data:`SYNC_CHAIN` chained record headers check out;
    that it is on a record is proven later, by the chunk before it ending there.
    """
    size = _worth(cap, chunk_bytes)
    if not size:
        return None
    snap = cap.interfaces[0].snaplen
    cuts = [PCAP_HEADER_BYTES]
    with open(cap.path, "rb") as f:
        f.seek(PCAP_HEADER_BYTES)
        head = f.read(4)
        if len(head) < 4:
            return None
        t_first = int.from_bytes(head, "big" if cap._big else "little")
        first = chunk_bytes if first_bytes is None else min(first_bytes, chunk_bytes)
        for nominal in [first, *range(first + chunk_bytes, size - chunk_bytes // 2, chunk_bytes)]:
            at = None
            for window in (SYNC_FIRST, SYNC_WINDOW):  # usually found in the first bytes
                f.seek(nominal)
                at = _sync(f.read(window), cap._big, cap._nsres, snap, t_first)
                if at is not None:
                    break
            if at is not None and nominal + at > cuts[-1]:
                cuts.append(nominal + at)
    if len(cuts) < 2:
        return None
    return [*cuts, size]


def _sync(buf: bytes, big: bool, nsres: bool, snaplen: int, t_first: int) -> int | None:
    """First offset in ``buf`` where :data:`SYNC_CHAIN` record headers chain up:
    lengths within the snap length, the sub-second field in range, times within
    :data:`SYNC_SPAN_S` of the file's first record (``t_first``) and close together."""
    a = np.frombuffer(buf, dtype=np.uint8).astype(np.uint32)
    m = len(a) - 3
    n = m - 12  # offsets where a whole 16-byte header fits
    if n <= 0:
        return None
    b = [a[k : k + m] for k in range(4)]
    if big:
        b = b[::-1]
    u = b[0] | (b[1] << 8) | (b[2] << 16) | (b[3] << 24)  # the 32-bit word at each byte
    sec = u[:n].astype(np.int64)
    frac, incl, orig = u[4 : n + 4], u[8 : n + 8], u[12 : n + 12]
    limit = snaplen if 0 < snaplen <= MAX_CAPLEN else MAX_CAPLEN
    ok = (incl <= limit) & (frac < (1_000_000_000 if nsres else 1_000_000)) & (orig >= incl)
    ok &= np.abs(sec - t_first) <= SYNC_SPAN_S
    nxt = np.arange(n, dtype=np.int64) + 16 + incl.astype(np.int64)
    cand = np.flatnonzero(ok)
    cur = cand.copy()
    t0 = sec[cand]
    for _ in range(SYNC_CHAIN - 1):
        cur = nxt[cur]
        inside = cur < n  # a chain running past the window does not count
        cand, cur, t0 = cand[inside], cur[inside], t0[inside]
        good = ok[cur] & (np.abs(sec[cur] - t0) <= SYNC_SPREAD_S)
        cand, cur, t0 = cand[good], cur[good], t0[good]
        if not len(cand):
            return None
    return int(cand[0])
