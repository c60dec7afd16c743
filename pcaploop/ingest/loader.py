"""Read + decode several captures into one packets table, with full accounting.

Every record is counted here: ``records == decoded + sum(skipped)`` per
capture point (:mod:`.points`).  :class:`Loader` streams blocks of all
captures in step (what ``analyze`` and ``info`` consume); :func:`load`
gathers them into one :class:`Packets` table.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import stat
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, Self, TypeVar, cast

import numpy as np

from .. import _jit
from .. import schema as S
from ..decode import linktypes as lt
from ..decode.batch import BatchDecoder, Block, Decoded
from ..decode.fingerprint import RUN_KEY, Key
from ..decode.layout import unaliased
from ..errors import CaptureError, UnsupportedLinkTypeError, shown
from ..read import CaptureFile, open_capture
from ..read.capture import PCAP_HEADER_BYTES, corrupt_record_problem
from ..schema import Columns
from . import _parallel as parallel
from ._parallel import Piece, PieceResult
from .points import MAX_POINTS, OVERFLOW_POINT, CapturePoint, FileReader, PointRegistry
from .specs import CaptureSpec, capture_specs

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


__all__ = ["Packets", "load", "read_packets"]

#: rows per decoded block (the unit the consumer takes over)
#: about 32 k: smaller blocks touch less fresh memory, larger ones pay the per-block
#: glue more often; and no power of two (:func:`pcaploop.decode.unaliased`)
BLOCK_ROWS = unaliased(32000)

T = TypeVar("T")


class Aggregate(Protocol):
    """What :meth:`Loader.aggregate` fills: counters over blocks, mergeable."""

    def add(self, cols: Columns) -> None:
        """Count one block's raw columns (its ``point`` column numbers capture points)."""

    def merge(self, other: Self, points: np.ndarray) -> None:
        """Add ``other``, counted apart, whose point ``j`` is this one's ``points[j]``."""


A = TypeVar("A", bound=Aggregate)

Progress = Callable[[int], None]  # called with bytes consumed since the last call


@dataclass
class Packets:
    """Everything read: raw columns (sorted by time), capture points, ARP, warnings."""

    cols: dict[str, np.ndarray]
    points: list[CapturePoint]
    arp: dict[str, np.ndarray]
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        """Number of decoded packets."""
        return len(self.cols["time_ns"])

    @property
    def point_names(self) -> list[str]:
        """Capture point names, indexed by the ``point`` column."""
        return [p.name for p in self.points]

    def frame(self) -> pd.DataFrame:
        """The packets table as a pandas DataFrame (see :mod:`pcaploop.schema`)."""
        from .table import to_frame

        return to_frame(self.cols, self.point_names)


def _decoded_blocks(
    cap: CaptureFile, key: Key, slabs: int, dec: BatchDecoder | None = None
) -> Iterator[tuple[Block, int]]:
    """Read, walk and decode one file: (block, bytes read so far).

    ``slabs=3`` for a worker thread (:func:`_threaded`): the consumer copies
    block k out while block k+1 waits in a one-deep queue and block k+2 is
    being decoded.  On the consumer's own thread one slab is enough.
    ``dec``: a decoder to reuse (emptied first) instead of a new one.
    """
    if dec is None:
        dec = BatchDecoder(key, capacity=BLOCK_ROWS, slabs=slabs)
    else:
        dec.reset()
    for batch in cap.batches():
        codes = np.array([lt.l2_code(i.linktype) for i in cap.interfaces] or [0], dtype=np.int64)
        for block in dec.add(batch, codes):
            yield block, cap.bytes_read
        if cap.live and dec.fill:  # a live capture: what arrived, now
            yield dec.take(), cap.bytes_read
    if dec.fill:
        yield dec.take(), cap.bytes_read


def _threaded(gen: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Run a generator in a worker thread, ``depth`` items ahead of the consumer.

    Why: reading, walking and the compiled decode release the GIL, so on two
    cores the next block decodes while this thread accounts for the last one.
    Exceptions reach the consumer; closing the consumer stops the worker.
    """
    import queue
    import threading

    q: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def work() -> None:
        try:
            for item in gen:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(end)
        except BaseException as exc:  # handed to the consumer, raised there
            q.put(exc)

    t = threading.Thread(target=work, name="pcaploop-decode", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is end:
                return
            if isinstance(item, BaseException):
                raise item
            yield cast(T, item)
    finally:
        stop.set()
        while t.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(0.05)


class Loader:
    """Streams decoded batches of several captures and keeps their accounting.

    Use :func:`load` for a table; iterate :meth:`run` to stay streaming
    (``pcaploop info``, the benchmark): memory stays bounded by one batch.
    """

    def __init__(
        self,
        specs: Sequence[CaptureSpec],
        ifmap: dict[int, str],
        follow: Callable[[], bool] | None = None,
    ):
        """``follow``: keep reading regular files as they grow until it returns True
        (pipes are read to their end regardless)."""
        self.specs = list(specs)
        self.follow = follow
        self.reg = PointRegistry(ifmap)
        self.warnings: list[str] = []
        self.unsupported: list[UnsupportedLinkTypeError] = []
        #: captures that could not be opened (the others were read)
        self.failed: list[CaptureError] = []
        #: captures that opened but held not one whole record (the others were read)
        self.unusable: list[CaptureError] = []
        self.files: list[CaptureFile] = []
        self.readers: list[FileReader] = []
        self.horizon: float = float("-inf")  # see merged()
        self._decoder: BatchDecoder | None = None  # reused from piece to piece

    @property
    def points(self) -> list[CapturePoint]:
        return self.reg.points

    def run(
        self,
        progress: Progress | None = None,
        key: Key = RUN_KEY,
        reuse: bool = False,
    ) -> Generator[tuple[Columns, Columns], None, None]:
        """Yield (raw columns, ARP rows) per block; accounting fills in as it goes.

        ``reuse=True``: the column arrays are overwritten by the next block
        (like :class:`~pcaploop.read.RecordBatch`); for consumers that
        aggregate and do not keep them, it saves allocating fresh memory.
        """
        opened = self._open_all()
        _jit.activate_for(_input_bytes([spec for spec, _ in opened], self.follow is not None))
        for spec, cap in opened:
            yield from self._one(spec, cap, progress, key, {} if reuse else None, threaded=False)
        self._check_usable()

    def aggregate(
        self,
        factory: Callable[[], A],
        progress: Progress | None = None,
        key: Key = RUN_KEY,
        jobs: int = 1,
    ) -> A:
        """Every block of every capture counted into ``factory()``: what iterating
        :meth:`run` and adding each block gives, with the same accounting.

        ``jobs`` > 1: the input is cut into pieces (:mod:`._parallel`) counted in
        that many forked processes, when it is large enough to repay them.
        """
        opened = self._open_all()
        size = _input_bytes([spec for spec, _ in opened], self.follow is not None)
        _jit.activate_for(size)
        pieces = self._pieces(opened, jobs, size)
        agg = factory()
        if pieces is None:
            for spec, cap in opened:
                for cols, _arp in self._one(spec, cap, progress, key, {}, threaded=False):
                    agg.add(cols)
        else:

            def count(i: int) -> PieceResult[A]:
                p = pieces[i]
                spec, cap = opened[p.file]
                return self._count_piece(spec, cap, p, factory, key)

            # the first small chunk is counted here first: it loads the compiled
            # kernels, which the workers then inherit
            warm = next((i for i, p in enumerate(pieces) if not p.whole), None)
            early = {} if warm is None else {warm: count(warm)}
            rest = [i for i in range(len(pieces)) if i not in early]
            from .. import _procs

            forked = _procs.forked_map(lambda j: count(rest[j]), len(rest), jobs)
            with contextlib.closing(forked):
                results = (early[i] if i in early else next(forked) for i in range(len(pieces)))
                for fi, (spec, cap) in enumerate(opened):
                    mine = [p for p in pieces if p.file == fi]
                    self._merge_file(spec, cap, mine, results, agg, progress, key)
        self._check_usable()
        return agg

    def _pieces(
        self, opened: list[tuple[CaptureSpec, CaptureFile]], jobs: int, size: int
    ) -> list[Piece] | None:
        """The pieces to count apart, or None when reading in this process is better:
        one job, too little input (``size`` bytes), a pipe or a followed file, no
        fork, one piece."""
        if jobs <= 1 or size < parallel.MIN_BYTES or self.follow is not None:
            return None
        if any(cap._stream is not None for _, cap in opened):
            return None
        from .. import _procs

        if not _procs.can_fork():
            return None
        pieces: list[Piece] = []
        for fi, (_spec, cap) in enumerate(opened):
            first = parallel.WARM_BYTES if all(p.whole for p in pieces) else None
            cuts = parallel.plan(cap, parallel.CHUNK_BYTES, first)
            if cuts is None:
                pieces.append(Piece(fi, 0, 0))
            else:
                pieces += [Piece(fi, a, b) for a, b in itertools.pairwise(cuts)]
        return pieces if len(pieces) > 1 else None

    def _count_piece(
        self, spec: CaptureSpec, cap: CaptureFile, piece: Piece, factory: Callable[[], A], key: Key
    ) -> PieceResult[A]:
        """Decode and count one piece with capture points of its own (in a worker)."""
        part = open_capture(spec.path) if piece.whole else cap.chunk(piece.start, piece.stop)
        own = Loader([spec], self.reg.ifmap)
        fr = own._reader(spec, part)
        agg = factory()
        if self._decoder is None or self._decoder.key is not key:
            self._decoder = BatchDecoder(key, capacity=BLOCK_ROWS)  # for the next pieces too
        for cols, _arp in own._blocks(fr, part, None, key, {}, False, self._decoder):
            agg.add(cols)
        keys: list[tuple[int, tuple[int, int | None]]] = [
            (p, (k, None)) for k, p in fr.iface_point.items()
        ]
        keys += [(p, kx) for kx, p in fr.sll2_point.items()]
        keys.sort(key=lambda x: x[0])  # stable: within a point, the order they came in
        return PieceResult(
            keys,
            own.reg.points,
            agg,
            part.records,
            part.bytes_read,
            part.position,
            part.truncated_tail,
            part.problem,
            part.corrupt_caplen,
            part.interfaces,
        )

    def _merge_file(
        self,
        spec: CaptureSpec,
        cap: CaptureFile,
        pieces: list[Piece],
        results: Iterator[PieceResult[A]],
        agg: A,
        progress: Progress | None,
        key: Key,
    ) -> None:
        """Take one file's piece results, in order, as reading it in order would have.

        A chunk's result is taken when reading in order has got exactly to its
        start (which proves the start is a record).  Where it has not — the chunk
        before ended inside a record that runs past the cut, so the cut only
        looked like a record — that chunk is read here, in order, from where
        reading has got to; the chunks after it are taken again once a read ends
        on their start.
        """
        fr = self._reader(spec, cap)
        at = pieces[0].start  # where reading in order has got to (chunks)
        stopped = False
        for i, piece in enumerate(pieces):
            r = next(results)
            if stopped:  # reading in order ended before this chunk
                continue
            last = i == len(pieces) - 1
            if piece.whole:
                cap.interfaces = r.interfaces
                ours = self._register(fr, r)
                done: CaptureFile | PieceResult[A] = r
                if _one_to_one(ours):
                    self._absorb(r, ours)
                    agg.merge(r.summary, ours)
                else:  # past the point limit: see _one_to_one
                    done = open_capture(spec.path)
                    for cols, _arp in self._blocks(fr, done, None, key, {}, threaded=False):
                        agg.add(cols)
                if progress:
                    progress(done.bytes_read)
                cap.records, cap.bytes_read = done.records, done.bytes_read
                cap.truncated_tail, cap.problem = done.truncated_tail, done.problem
                cap.corrupt_caplen, cap.interfaces = done.corrupt_caplen, done.interfaces
                continue
            mine = self._register(fr, r) if piece.start == at else None
            if mine is not None and _one_to_one(mine):  # the worker's count holds
                self._absorb(r, mine)
                agg.merge(r.summary, mine)
                if progress:
                    progress(piece.stop - piece.start)
                got, at = r.records, r.position
                truncated, problem, corrupt = r.truncated_tail, r.problem, r.corrupt_caplen
            else:  # read here, in order, from ``at``: the chunk before did not end at
                # this one's start (its cut was not on a record), or the points of
                # this one are not ours one to one (see _one_to_one)
                part = cap.chunk(at, None if last else piece.stop)
                for cols, _arp in self._blocks(fr, part, progress, key, {}, threaded=False):
                    agg.add(cols)
                got, at = part.records, part.position
                truncated, problem, corrupt = part.truncated_tail, part.problem, part.corrupt_caplen
            cap.bytes_read = at - PCAP_HEADER_BYTES
            if corrupt is not None:  # damage: reading in order stops here too
                cap.truncated_tail, cap.corrupt_caplen = True, corrupt
                cap.problem = corrupt_record_problem(cap.records + got, corrupt)
                stopped = True
            elif last:
                cap.truncated_tail, cap.problem = truncated, problem
            cap.records += got
        self._finish_file(spec, cap, fr)

    def _register(self, fr: FileReader, r: PieceResult[A]) -> np.ndarray:
        """Register a piece's capture points as ours, in the order it made them (the
        order their records first appear); returns our point for each of the piece's."""
        ours = np.full(len(r.points), -1, np.int64)
        for j, (k, ix) in r.keys:
            if k < 0:
                p = fr._orphan_point()
            elif ix is None:
                p = fr._iface_point(k)
            else:
                p = fr._sll2_point(k, ix)
            if ours[j] < 0:
                ours[j] = p
        return ours

    def _absorb(self, r: PieceResult[A], ours: np.ndarray) -> None:
        """Add the accounting of a piece's points to ours (``ours``: :meth:`_register`)."""
        for j, pt in enumerate(r.points):
            if ours[j] >= 0:
                self.reg.points[int(ours[j])].absorb(pt)

    def _open_all(self) -> list[tuple[CaptureSpec, CaptureFile]]:
        """Open every capture before reading any (wrong file types fail fast).

        A file that is not a capture, or cannot be read, is left out with a
        warning when others can be read (:attr:`failed`); when none can, its
        error is raised.
        """
        opened = []
        for spec in self.specs:
            try:
                opened.append((spec, open_capture(spec.path, follow=self.follow)))
            except CaptureError as exc:
                self.failed.append(exc)
        if self.failed and not opened:
            raise self.failed[0]
        for err in self.failed:
            self.warnings.append(f"{err}; the other captures are analysed without it")
        return opened

    def merged(
        self,
        progress: Progress | None = None,
        key: Key = RUN_KEY,
        into: Callable[[], dict[str, np.ndarray]] | None = None,
    ) -> Generator[tuple[Columns, Columns], None, None]:
        """Yield (raw columns, ARP rows) per block from all captures at once, in step.

        Why: paths cross captures (the uplink copy and the tunnel copy of one
        packet are in different files), so a streaming consumer needs every
        file read up to about the same time.  The next block always comes
        from the capture that is furthest behind.  After each block
        :attr:`horizon` is the time (ns) every capture not yet finished has
        reached (``inf`` when all are done): rows stamped well before it are
        complete.  ``into()`` gives the arrays the next block is written to
        (a consumer's own buffer: no copy); without it a block's arrays are
        reused by the next block of the same file.  Capture points are numbered
        as files are read in step; :meth:`canonical_points` renumbers and
        renames them as :func:`load` does.
        """
        opened = self._open_all()
        _jit.activate_for(_input_bytes([spec for spec, _ in opened], self.follow is not None))
        # A consumer with its own buffer works on each block (analyze's window):
        # decoding the next one on a worker thread meanwhile pays for it.  One
        # that only aggregates (info) does not gain: a block's cache lines move to
        # the other core, and the glue between kernels holds the GIL.
        gens = [
            self._one(spec, cap, progress, key, into or {}, threaded=into is not None)
            for spec, cap in opened
        ]
        mark = [float("-inf")] * len(gens)
        live = list(range(len(gens)))
        try:
            while live:
                i = min(live, key=mark.__getitem__)  # ties: the earlier file
                try:
                    cols, arp = next(gens[i])
                except StopIteration:
                    live.remove(i)
                else:
                    if len(cols["time_ns"]):
                        mark[i] = max(mark[i], float(cols["time_ns"].max()))
                    self.horizon = min((mark[k] for k in live), default=float("inf"))
                    yield cols, arp
                    continue
                self.horizon = min((mark[k] for k in live), default=float("inf"))
            self._check_usable()
        finally:  # a consumer that stops early (Ctrl-C) stops every file's worker too
            for g in gens:
                g.close()

    def canonical_points(self) -> np.ndarray:
        """Renumber and rename capture points as :func:`load` (file by file) would have;
        returns ``new_of_old`` (``new_of_old[old index] = new index``)."""
        files = self.point_files()
        order = np.lexsort((np.arange(len(files)), files))
        new_of_old = np.empty(len(order), np.int64)
        new_of_old[order] = np.arange(len(order))
        self.reg.canonical(order)
        for fr in self.readers:
            fr.iface_point = {k: int(new_of_old[p]) for k, p in fr.iface_point.items()}
            fr.sll2_point = {k: int(new_of_old[p]) for k, p in fr.sll2_point.items()}
        return new_of_old

    def point_files(self) -> np.ndarray:
        """Index of the capture (in the order given) each capture point comes from."""
        out = np.zeros(len(self.reg.points), dtype=np.int64)
        for fi, fr in enumerate(self.readers):
            for p in list(fr.iface_point.values()) + list(fr.sll2_point.values()):
                out[p] = fi
        return out

    def _one(
        self,
        spec: CaptureSpec,
        cap: CaptureFile,
        progress: Progress | None,
        key: Key,
        into: Columns | Callable[[], Columns] | None,
        threaded: bool,
    ) -> Generator[tuple[Columns, Columns], None, None]:
        """Blocks of one file.

        ``into``: ``None`` (fresh arrays), a dict (arrays reused from block to
        block: the decoder's own are handed out where every record decoded), or
        a callable giving the arrays to write the next block into.
        ``threaded``: decode on a worker thread, a block ahead.
        """
        fr = self._reader(spec, cap)
        yield from self._blocks(fr, cap, progress, key, into, threaded)
        self._finish_file(spec, cap, fr)

    def _reader(self, spec: CaptureSpec, cap: CaptureFile) -> FileReader:
        self.files.append(cap)
        fr = FileReader(spec, cap, self.reg)
        self.readers.append(fr)
        return fr

    def _blocks(
        self,
        fr: FileReader,
        cap: CaptureFile,
        progress: Progress | None,
        key: Key,
        into: Columns | Callable[[], Columns] | None,
        threaded: bool,
        decoder: BatchDecoder | None = None,
    ) -> Generator[tuple[Columns, Columns], None, None]:
        """:meth:`_one`'s blocks, without what it says of the file at its end."""
        done = 0
        blocks = _decoded_blocks(cap, key, slabs=3 if threaded else 1, dec=decoder)
        for block, nbytes in _threaded(blocks, depth=1) if threaded else blocks:
            if progress and nbytes > done:
                progress(nbytes - done)
                done = nbytes
            if callable(into):
                dec = block.decoded(into())
            else:
                dec = block.decoded(into, views=into is not None)
            yield self._block(fr, dec)

    def _block(self, fr: FileReader, dec: Decoded) -> tuple[Columns, Columns]:
        """Attach capture points to a decoded block and account for its records."""
        rp = fr.record_points(dec.iface, dec.ifindex)
        self._account(rp, dec.status, dec.time_ns)
        k = len(dec.cols["time_ns"])
        if k == len(rp) and len(rp) and rp[0] == rp[-1] and rp.min() == rp.max():
            dec.cols["point"] = np.full(k, rp[0], dtype=np.int16)  # one point, all decoded
        else:
            dec.cols["point"] = rp[dec.status == S.OK].astype(np.int16)
        dec.arp["point"] = rp[dec.arp_mask]
        return dec.cols, dec.arp

    def _account(self, rp: np.ndarray, status: np.ndarray, t: np.ndarray) -> None:
        """Records, decoded, skipped by reason and first/last time per point, for one
        block: bincounts and one grouping, never a pass over the block per point."""
        if not len(rp):
            return
        nreason = len(S.SKIP_REASONS) + 1
        if rp.min() == rp.max():  # the usual block: one point
            groups = [(int(rp[0]), np.bincount(status, minlength=nreason), t.min(), t.max())]
        else:
            pts = rp.astype(np.int64)
            n = int(pts.max()) + 1
            counts = np.bincount(pts * nreason + status, minlength=n * nreason).reshape(n, nreason)
            lo = np.full(n, np.iinfo(np.int64).max, np.int64)
            hi = np.full(n, np.iinfo(np.int64).min, np.int64)
            np.minimum.at(lo, pts, t)
            np.maximum.at(hi, pts, t)
            groups = [(p, counts[p], lo[p], hi[p]) for p in np.flatnonzero(counts.sum(1)).tolist()]
        for p, c, t_lo, t_hi in groups:
            pt = self.reg.points[p]
            pt.records += int(c.sum())
            pt.decoded += int(c[S.OK])
            for code, reason in enumerate(S.SKIP_REASONS, start=1):
                pt.skipped[reason] += int(c[code])
            pt.seen(int(t_lo), int(t_hi))

    def _finish_file(self, spec: CaptureSpec, cap: CaptureFile, fr: FileReader) -> None:
        # interfaces that never carried a packet still get a (zero) capture point
        for k in range(len(cap.interfaces)):
            if cap.interfaces[k].linktype != lt.LINKTYPE_LINUX_SLL2:
                fr._iface_point(k)
        fr.single_unnamed()
        unnamed = sorted(ix for path, ix in self.reg.unnamed_ifindexes if path == cap.path)
        if cap.path in self.reg.overflowed:
            self.warnings.append(
                f"{shown(cap.path)}: more capture points (interfaces or interface indexes) than "
                f"{MAX_POINTS - 1}: the packets of the rest are decoded and counted together, "
                f"as capture point {OVERFLOW_POINT!r}"
            )
        if unnamed:
            examples = ", ".join(f"{fr.base}:if{ix}" for ix in unnamed[:4])
            self.warnings.append(
                f"{shown(cap.path)}: a 'tcpdump -i any' capture names interfaces only by number "
                f"({examples}); pass --ifmap with the host's 'ip -o link' output (or "
                f"{unnamed[0]}=NAME,…) to name them"
            )
        # this file's own points (the same path may be given twice, as two captures)
        own = set(fr.iface_point.values()) | set(fr.sll2_point.values())
        mine = [self.reg.points[i] for i in sorted(own)]
        for k, itf in enumerate(cap.interfaces):
            if itf.dropped is not None and k in fr.iface_point:
                self.reg.points[fr.iface_point[k]].capture_dropped = itf.dropped
        if cap.truncated_tail and mine:
            for p in mine:
                p.truncated_tail = True
                p.problem = cap.problem
            if cap.records:  # none: "nothing usable" below says it
                self.warnings.append(
                    f"{shown(cap.path)}: {cap.problem}; read {cap.records} records before it"
                )
        decoded = sum(p.decoded for p in mine)
        unsupported = {
            lt.linktype_name(i.linktype)
            for i in cap.interfaces
            if lt.l2_code(i.linktype) == lt.L2_UNSUPPORTED
        }
        if unsupported:
            what = ", ".join(sorted(unsupported))
            self.warnings.append(
                f"{shown(cap.path)}: unsupported link type {what}; its packets are "
                "counted as skipped (unsupported)"
            )
            if decoded == 0:
                self.unsupported.append(
                    UnsupportedLinkTypeError(cap.path, f"unsupported link type {what}")
                )
        if cap.records == 0 and cap.truncated_tail:
            err = CaptureError(cap.path, f"nothing usable: {cap.problem}")
            if len(self.specs) == 1:
                raise err
            self.unusable.append(err)
            self.warnings.append(f"{err}; the other captures are analysed without it")

    def _check_usable(self) -> None:
        """When every capture was unreadable or held nothing usable, there is nothing to
        analyse: raise the first one's error (one bad file among several is a warning)."""
        if self.unusable and len(self.unusable) + len(self.failed) >= len(self.specs):
            raise self.unusable[0]


def load(
    captures: Sequence[CaptureSpec | str | os.PathLike[str]],
    ifmap: dict[int, str] | Iterable[str] | None = None,
    progress: Progress | None = None,
    key: Key = RUN_KEY,
) -> Packets:
    """Read and decode captures into one :class:`Packets` (rows sorted by time).

    >>> pk = load(["uplink=samples/incident/uplink.pcap"])     # doctest: +SKIP
    >>> pk.frame().head()                                       # doctest: +SKIP
    """
    specs, ifmap = capture_specs(captures, ifmap)
    state = Loader(specs, ifmap)
    arena = _Arena(_input_bytes(specs))
    arps: list[dict[str, np.ndarray]] = []
    for cols, arp in state.run(progress, key, reuse=True):
        arena.append(cols)
        arps.append(arp)
    if state.unsupported and not any(p.decoded for p in state.reg.points):
        raise state.unsupported[0]
    cols = arena.result()
    t = cols["time_ns"]
    if len(t) > 1 and not bool((t[1:] >= t[:-1]).all()):
        # captures are not time-ordered (receive-side copies are stamped late)
        order = np.argsort(t, kind="stable")
        for k in list(cols):
            cols[k] = cols[k][order]
    arp = {
        k: np.concatenate([a[k] for a in arps]) if arps else np.zeros(0)
        for k in (arps[0] if arps else {})
    }
    return Packets(cols, state.reg.points, arp, state.warnings)


def _one_to_one(ours: np.ndarray) -> bool:
    """Whether a piece's capture points are distinct points of ours.

    Why it matters: past the point limit, several points of a piece become our
    one overflow point.  The piece counted them apart, and a bounded counter
    (``info``'s top talkers) may have dropped counts there that one point would
    have kept; such a piece is read again here, in order.
    """
    mapped = ours[ours >= 0]
    return len(np.unique(mapped)) == len(mapped)


def _input_bytes(specs: Sequence[CaptureSpec], growing: bool = False) -> int:
    """Bytes the captures hold uncompressed (gzip guessed at 1:6); a pipe, or a file
    followed as it grows (``growing``), counts as enough to compile the decoder."""
    if growing:
        return _jit.ACTIVATE_BYTES
    total = 0
    for sp in specs:
        try:
            st = os.stat(sp.path)
        except OSError:
            continue
        if not stat.S_ISREG(st.st_mode):
            return _jit.ACTIVATE_BYTES
        size = st.st_size
        total += size * 6 if sp.path.endswith(".gz") else size
    return total


class _Arena:
    """Columns appended block by block into arrays sized once, from an estimate.

    Why: building per-block arrays and concatenating them touches every page
    twice, and first touches of fresh memory cost as much as decoding on
    some VMs; the untouched tail of an over-estimate is never paged in.
    """

    def __init__(self, input_bytes: int):
        self.input_bytes = input_bytes
        self.n = 0
        self.cols: dict[str, np.ndarray] | None = None

    def append(self, cols: dict[str, np.ndarray]) -> None:
        k = len(cols["time_ns"])
        if self.cols is None:
            per_record = float(cols["caplen"].mean()) + 24 if k else 100.0
            cap = int(self.input_bytes / per_record * 1.05) + k
            self.cols = {name: np.empty(cap, dtype=dt) for name, dt in S.RAW.items()}
        cap = len(self.cols["time_ns"])
        if self.n + k > cap:  # the estimate was short: grow once more
            new = max(2 * cap, self.n + k)
            for name, a in self.cols.items():
                grown = np.empty(new, dtype=a.dtype)
                grown[: self.n] = a[: self.n]
                self.cols[name] = grown
        for name, a in cols.items():
            self.cols[name][self.n : self.n + k] = a
        self.n += k

    def result(self) -> dict[str, np.ndarray]:
        if self.cols is None:
            return {k: np.zeros(0, dtype=dt) for k, dt in S.RAW.items()}
        return {name: a[: self.n] for name, a in self.cols.items()}


def read_packets(
    captures: Sequence[CaptureSpec | str | os.PathLike[str]],
    ifmap: dict[int, str] | Iterable[str] | None = None,
) -> pd.DataFrame:
    """The packets table of some captures as a pandas DataFrame.

    >>> df = pcaploop.read_packets(["samples/incident/tap101.pcap"])   # doctest: +SKIP
    >>> df.groupby("capture_point", observed=True)["ttl"].describe()    # doctest: +SKIP
    """
    return load(captures, ifmap).frame()
