"""Read + decode several captures into one packets table, with full accounting.

Every record is counted here: ``records == decoded + sum(skipped)`` per
capture point (:mod:`.points`).  :class:`Loader` streams blocks of all
captures in step (what ``analyze`` and ``info`` consume); :func:`load`
gathers them into one :class:`Packets` table.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar, cast

import numpy as np

from .. import _jit
from .. import schema as S
from ..decode import linktypes as lt
from ..decode.batch import BatchDecoder, Block, Decoded
from ..decode.fingerprint import RUN_KEY, Key
from ..decode.layout import unaliased
from ..errors import CaptureError, UnsupportedLinkTypeError, shown
from ..read import CaptureFile, open_capture
from ..schema import Columns
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


def _decoded_blocks(cap: CaptureFile, key: Key, slabs: int) -> Iterator[tuple[Block, int]]:
    """Read, walk and decode one file: (block, bytes read so far).

    ``slabs=3`` for a worker thread (:func:`_threaded`): the consumer copies
    block k out while block k+1 waits in a one-deep queue and block k+2 is
    being decoded.  On the consumer's own thread one slab is enough.
    """
    dec = BatchDecoder(key, capacity=BLOCK_ROWS, slabs=slabs)
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
        self.files.append(cap)
        fr = FileReader(spec, cap, self.reg)
        self.readers.append(fr)
        done = 0
        blocks = _decoded_blocks(cap, key, slabs=3 if threaded else 1)
        for block, nbytes in _threaded(blocks, depth=1) if threaded else blocks:
            if progress and nbytes > done:
                progress(nbytes - done)
                done = nbytes
            if callable(into):
                dec = block.decoded(into())
            else:
                dec = block.decoded(into, views=into is not None)
            yield self._block(fr, dec)
        self._finish_file(spec, cap, fr)

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
            lo_, hi_ = int(t_lo), int(t_hi)
            pt.first_ns = lo_ if pt.first_ns is None else min(pt.first_ns, lo_)
            pt.last_ns = hi_ if pt.last_ns is None else max(pt.last_ns, hi_)

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
