"""Read + decode several captures into one packets table, with full accounting.

This is where capture points get their names (``NAME=PATH``, pcapng
``if_name``, SLL2 interface indexes via ``--ifmap``) and where every record
is counted: ``records == decoded + sum(skipped)`` per capture point.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from ..decode import linktypes as lt
from .. import schema as S
from ..decode.batch import BatchDecoder, Block, Decoded
from ..decode.layout import unaliased
from ..contract import iso_ns
from ..errors import CaptureError, PcaploopError, UnsupportedLinkTypeError
from ..decode.fingerprint import RUN_KEY
from ..read.capture import CaptureFile, open_capture

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: capture points across all inputs; far beyond any host, small enough for int16 codes
MAX_POINTS = 4096
#: rows per decoded block (the unit the consumer takes over)
#: 32,008: smaller blocks touch less fresh memory (see benchmarks), and no power
#: of two (:func:`pcaploop.decode.unaliased`)
BLOCK_ROWS = unaliased(32000)

Progress = Callable[[int], None]  # called with bytes consumed since the last call


@dataclass
class CaptureSpec:
    """A capture given by the user: ``NAME=PATH`` or just ``PATH``."""

    path: str
    name: str | None = None

    @classmethod
    def parse(cls, text: str | os.PathLike[str]) -> "CaptureSpec":
        """``NAME=PATH`` or ``PATH`` (an existing file whose name contains '=' is a path)."""
        text = os.fspath(text)
        if "=" in text and not os.path.exists(text):
            name, path = text.split("=", 1)
            if name and path:
                return cls(path, name)
        return cls(text)

    @property
    def stem(self) -> str:
        """File name without capture extensions (``uplink.pcap.gz`` → ``uplink``)."""
        base = Path(self.path).name
        for ext in (".gz", ".pcapng", ".pcap", ".cap", ".dmp"):
            if base.lower().endswith(ext):
                base = base[: -len(ext)]
        return base or Path(self.path).name


@dataclass
class CapturePoint:
    """One interface seen by one capture, with its accounting (DESIGN.md §2, §4)."""

    name: str
    path: str
    format: str
    linktype: int
    interface: int | None = None  # pcapng interface index, SLL2 ifindex
    records: int = 0
    decoded: int = 0
    skipped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(S.SKIP_REASONS, 0))
    capture_dropped: int | None = None
    truncated_tail: bool = False
    problem: str | None = None
    first_ns: int | None = None
    last_ns: int | None = None
    comment: str | None = None

    @property
    def linktype_name(self) -> str:
        """Link-type name (``EN10MB``, ``LINUX_SLL2``, ``LINKTYPE_147``)."""
        return lt.linktype_name(self.linktype)

    def to_json(self) -> dict[str, Any]:
        """The ``captures[]`` entry of the JSON contract."""
        return {
            "name": self.name,
            "path": self.path,
            "format": self.format,
            "linktype": self.linktype_name,
            "interface": self.interface,
            "records": self.records,
            "decoded": self.decoded,
            "skipped": dict(self.skipped),
            "capture_dropped": self.capture_dropped,
            "truncated_tail": self.truncated_tail,
            "problem": self.problem,
            "first_seen": iso_ns(self.first_ns),
            "last_seen": iso_ns(self.last_ns),
        }


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

    def frame(self) -> "pd.DataFrame":
        """The packets table as a pandas DataFrame (see :mod:`pcaploop.schema`)."""
        from .table import to_frame

        return to_frame(self.cols, self.point_names)


def _decoded_blocks(cap: CaptureFile, key, slabs: int) -> Iterator[tuple[Block, int]]:
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
    if dec.fill:
        yield dec.take(), cap.bytes_read


def _threaded(gen: Iterator, depth: int = 2) -> Iterator:
    """Run a generator in a worker thread, ``depth`` items ahead of the consumer.

    Why: reading, walking and the compiled decode release the GIL, so on two
    cores the next block decodes while this thread accounts for the last one.
    Exceptions reach the consumer; closing the consumer stops the worker.
    """
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
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
            yield item
    finally:
        stop.set()
        while t.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(0.05)


def parse_ifmap(specs: Iterable[str]) -> dict[int, str]:
    """``--ifmap`` values → {ifindex: name}.

    Each value is either ``INDEX=NAME[,INDEX=NAME…]`` or a file with the
    host's ``ip -o link`` output (``3: tap101@if2: <…>``).

    >>> parse_ifmap(["2=uplink,5=tap101"])
    {2: 'uplink', 5: 'tap101'}
    """
    out: dict[int, str] = {}
    for spec in specs:
        if os.path.isfile(spec):
            try:
                text = Path(spec).read_text(errors="replace")
            except OSError as exc:
                raise PcaploopError(f"{spec}: cannot read interface map: {exc.strerror}") from None
            for line in text.splitlines():
                m = re.match(r"\s*(\d+):\s+([^\s:@]+)", line)
                if m:
                    out[int(m.group(1))] = m.group(2)
            continue
        for part in spec.split(","):
            m = re.fullmatch(r"\s*(\d+)\s*=\s*(\S+)\s*", part)
            if not m:
                raise PcaploopError(f"--ifmap {spec!r}: expected INDEX=NAME pairs or an "
                                    "'ip -o link' file")
            out[int(m.group(1))] = m.group(2)
    return out


class _Points:
    """Registry of capture points across files, with unique names."""

    def __init__(self, ifmap: dict[int, str]):
        self.points: list[CapturePoint] = []
        self.ifmap = ifmap
        self._names: set[str] = set()
        self._wish: list[tuple[str, str]] = []  # (name asked for, file stem) per point

    def _unique(self, name: str, stem: str) -> str:
        """``name``, or ``name@stem`` (``#2``, ``#3`` …) when it is taken."""
        unique = name
        if unique in self._names:
            unique = f"{name}@{stem}"
            k = 2
            while unique in self._names:
                unique = f"{name}@{stem}#{k}"
                k += 1
        self._names.add(unique)
        return unique

    def add(self, name: str, cap: CaptureFile, linktype: int, interface: int | None,
            stem: str) -> int:
        """Register a capture point under a unique name; returns its index."""
        if len(self.points) >= MAX_POINTS:
            raise CaptureError(cap.path, f"more than {MAX_POINTS} capture points (interfaces or "
                                         "interface indexes): corrupt or hostile file")
        unique = self._unique(name, stem)
        self.points.append(CapturePoint(unique, cap.path, cap.format, linktype, interface))
        self._wish.append((name, stem))
        return len(self.points) - 1

    def rename(self, idx: int, name: str, stem: str) -> None:
        """Give point ``idx`` the name ``name`` (made unique the same way)."""
        self._names.discard(self.points[idx].name)
        self.points[idx].name = self._unique(name, stem)
        self._wish[idx] = (name, stem)

    def canonical(self, order: np.ndarray) -> None:
        """Reorder points (``order[new] = old``) and name them afresh in that order."""
        self.points = [self.points[int(i)] for i in order]
        self._wish = [self._wish[int(i)] for i in order]
        self._names = set()
        for p, (name, stem) in zip(self.points, self._wish):
            p.name = self._unique(name, stem)


class _FileReader:
    """Decodes one file's batches and maps its records to capture points."""

    def __init__(self, spec: CaptureSpec, cap: CaptureFile, reg: _Points):
        self.spec, self.cap, self.reg = spec, cap, reg
        self.iface_point: dict[int, int] = {}
        self.sll2_point: dict[tuple[int, int], int] = {}
        self.base = spec.name or spec.stem

    def _iface_point(self, k: int) -> int:
        if k not in self.iface_point:
            itf = self.cap.interfaces[k]
            if self.cap.format == "pcap":
                name = self.base
            elif itf.name:
                name = itf.name
            else:  # renamed to the bare base at the end if the file has one interface only
                name = f"{self.base}:{k}"
            idx = self.reg.add(name, self.cap, itf.linktype, None if self.cap.format == "pcap"
                               else k, self.spec.stem)
            self.reg.points[idx].comment = itf.comment
            self.iface_point[k] = idx
        return self.iface_point[k]

    def _orphan_point(self) -> int:
        """Point for records that name no interface in a file that declares none."""
        if -1 not in self.iface_point:
            self.iface_point[-1] = self.reg.add(self.base, self.cap, -1, None, self.spec.stem)
        return self.iface_point[-1]

    def single_unnamed(self) -> None:
        """A pcapng file with one unnamed interface: its point takes the bare name."""
        itfs = self.cap.interfaces
        if (self.cap.format == "pcapng" and len(itfs) == 1 and not itfs[0].name
                and 0 in self.iface_point):
            self.reg.rename(self.iface_point[0], self.base, self.spec.stem)

    def _sll2_point(self, k: int, ifindex: int) -> int:
        key = (k, ifindex)
        if key not in self.sll2_point:
            name = self.reg.ifmap.get(ifindex) or f"{self.base}:if{ifindex}"
            itf = self.cap.interfaces[k]
            self.sll2_point[key] = self.reg.add(name, self.cap, itf.linktype, ifindex,
                                                self.spec.stem)
        return self.sll2_point[key]

    def record_points(self, iface: np.ndarray, ifindex: np.ndarray) -> np.ndarray:
        """Capture point of every record of a batch."""
        out = np.empty(len(iface), dtype=np.int64)
        if len(iface) and self.cap.interfaces and iface.min() == iface.max() >= 0 \
                and self.cap.interfaces[int(iface[0])].linktype != 276:
            out.fill(self._iface_point(int(iface[0])))  # the usual case: one interface
            return out
        for k in np.unique(iface):
            sel = iface == k
            kk = int(k) if k >= 0 else 0
            if not self.cap.interfaces:  # packets before any interface block: malformed
                out[sel] = self._orphan_point()
                continue
            itf = self.cap.interfaces[kk]
            if itf.linktype == 276:
                sub = ifindex[sel]
                pts = np.empty(len(sub), dtype=np.int64)
                for ix in np.unique(sub):
                    pts[sub == ix] = (self._sll2_point(kk, int(ix)) if ix >= 0
                                      else self._iface_point(kk))
                out[sel] = pts
            else:
                out[sel] = self._iface_point(kk)
        return out


class Loader:
    """Streams decoded batches of several captures and keeps their accounting.

    Use :func:`load` for a table; iterate :meth:`run` to stay streaming
    (``pcaploop info``, the benchmark): memory stays bounded by one batch.
    """

    def __init__(self, specs: Sequence[CaptureSpec | str], ifmap: dict[int, str]):
        self.specs = [s if isinstance(s, CaptureSpec) else CaptureSpec.parse(s) for s in specs]
        self.reg = _Points(ifmap)
        self.warnings: list[str] = []
        self.unsupported: list[UnsupportedLinkTypeError] = []
        self.files: list[CaptureFile] = []
        self.readers: list[_FileReader] = []
        self.horizon: float = float("-inf")  # see merged()

    @property
    def points(self) -> list[CapturePoint]:
        return self.reg.points

    def run(self, progress: Progress | None = None,
            key: tuple[np.uint64, np.uint64] = RUN_KEY,
            reuse: bool = False) -> Iterator[tuple[dict, dict]]:
        """Yield (raw columns, ARP rows) per block; accounting fills in as it goes.

        ``reuse=True``: the column arrays are overwritten by the next block
        (like :class:`~pcaploop.read.RecordBatch`); for consumers that
        aggregate and do not keep them, it saves allocating fresh memory.
        """
        caps = [open_capture(s.path) for s in self.specs]  # fail fast on wrong file types
        for spec, cap in zip(self.specs, caps):
            yield from self._one(spec, cap, progress, key, {} if reuse else None,
                                 threaded=False)

    def merged(self, progress: Progress | None = None,
               key: tuple[np.uint64, np.uint64] = RUN_KEY,
               into: Callable[[], dict[str, np.ndarray]] | None = None,
               ) -> Iterator[tuple[dict, dict]]:
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
        caps = [open_capture(s.path) for s in self.specs]  # fail fast on wrong file types
        # A consumer with its own buffer works on each block (analyze's window):
        # decoding the next one on a worker thread meanwhile pays for it.  2 M
        # packets, alternating CLI runs (benchmarks/README.md): analyze median
        # 3.20 s with the thread, 3.47 s without; info, which only aggregates,
        # 4.95 s with it, 4.45 s without (a block's cache lines move to the
        # other core, and the glue between kernels holds the GIL).
        gens = [self._one(spec, cap, progress, key, into or {}, threaded=into is not None)
                for spec, cap in zip(self.specs, caps)]
        mark = [float("-inf")] * len(gens)
        live = list(range(len(gens)))
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

    def _one(self, spec: CaptureSpec, cap: CaptureFile, progress, key, into,
             threaded: bool):
        """Blocks of one file.

        ``into``: ``None`` (fresh arrays), a dict (arrays reused from block to
        block: the decoder's own are handed out where every record decoded), or
        a callable giving the arrays to write the next block into.
        ``threaded``: decode on a worker thread, a block ahead.
        """
        self.files.append(cap)
        fr = _FileReader(spec, cap, self.reg)
        self.readers.append(fr)
        done = 0
        blocks = _decoded_blocks(cap, key, slabs=3 if threaded else 1)
        for block, nbytes in (_threaded(blocks, depth=1) if threaded else blocks):
            if progress and nbytes > done:
                progress(nbytes - done)
                done = nbytes
            if callable(into):
                dec = block.decoded(into())
            else:
                dec = block.decoded(into, views=into is not None)
            yield self._block(fr, dec)
        self._finish_file(spec, cap, fr)

    def _block(self, fr: "_FileReader", dec: Decoded) -> tuple[dict, dict]:
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
        single = len(rp) and rp.min() == rp.max()
        for p in (rp[:1] if single else np.unique(rp)):
            sel = slice(None) if single else rp == p
            pt = self.reg.points[int(p)]
            counts = np.bincount(status[sel], minlength=len(S.SKIP_REASONS) + 1)
            pt.records += int(counts.sum())
            pt.decoded += int(counts[S.OK])
            for code, reason in enumerate(S.SKIP_REASONS, start=1):
                pt.skipped[reason] += int(counts[code])
            ts = t[sel]
            lo, hi = int(ts.min()), int(ts.max())
            pt.first_ns = lo if pt.first_ns is None else min(pt.first_ns, lo)
            pt.last_ns = hi if pt.last_ns is None else max(pt.last_ns, hi)

    def _finish_file(self, spec: CaptureSpec, cap: CaptureFile, fr: _FileReader) -> None:
        # interfaces that never carried a packet still get a (zero) capture point
        for k in range(len(cap.interfaces)):
            if cap.interfaces[k].linktype != 276:
                fr._iface_point(k)
        fr.single_unnamed()
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
            self.warnings.append(f"{cap.path}: {cap.problem}; read {cap.records} records before it")
        decoded = sum(p.decoded for p in mine)
        unsupported = {lt.linktype_name(i.linktype) for i in cap.interfaces
                       if lt.l2_code(i.linktype) == lt.L2_UNSUPPORTED}
        if unsupported:
            what = ", ".join(sorted(unsupported))
            self.warnings.append(f"{cap.path}: unsupported link type {what}; its packets are "
                                 "counted as skipped (unsupported)")
            if decoded == 0:
                self.unsupported.append(UnsupportedLinkTypeError(
                    cap.path, f"unsupported link type {what}"))
        if cap.records == 0 and cap.truncated_tail:
            raise CaptureError(cap.path, f"nothing usable: {cap.problem}")


def _inputs(captures: Sequence[CaptureSpec | str | os.PathLike[str]],
           ifmap: dict[int, str] | Iterable[str] | None) -> tuple[list[CaptureSpec], dict]:
    """Captures and ``--ifmap`` as the library takes them → specs and {ifindex: name}."""
    if ifmap is not None and not isinstance(ifmap, dict):
        ifmap = parse_ifmap(ifmap)
    specs = [c if isinstance(c, CaptureSpec) else CaptureSpec.parse(c) for c in captures]
    if not specs:
        raise PcaploopError("no capture files given")
    return specs, ifmap or {}


def load(captures: Sequence[CaptureSpec | str | os.PathLike[str]],
         ifmap: dict[int, str] | Iterable[str] | None = None,
         progress: Progress | None = None,
         key: tuple[np.uint64, np.uint64] = RUN_KEY) -> Packets:
    """Read and decode captures into one :class:`Packets` (rows sorted by time).

    >>> pk = load(["uplink=samples/incident/uplink.pcap"])     # doctest: +SKIP
    >>> pk.frame().head()                                       # doctest: +SKIP
    """
    specs, ifmap = _inputs(captures, ifmap)
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
    arp = {k: np.concatenate([a[k] for a in arps]) if arps else np.zeros(0) for k in
           (arps[0] if arps else {})}
    return Packets(cols, state.reg.points, arp, state.warnings)


def _input_bytes(specs: Sequence[CaptureSpec]) -> int:
    """Bytes the captures hold uncompressed (gzip guessed at 1:6)."""
    total = 0
    for sp in specs:
        try:
            size = os.path.getsize(sp.path)
        except OSError:
            size = 0
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
                grown[:self.n] = a[:self.n]
                self.cols[name] = grown
        for name, a in cols.items():
            self.cols[name][self.n:self.n + k] = a
        self.n += k

    def result(self) -> dict[str, np.ndarray]:
        if self.cols is None:
            return {k: np.zeros(0, dtype=dt) for k, dt in S.RAW.items()}
        return {name: a[:self.n] for name, a in self.cols.items()}


def read_packets(captures: Sequence[CaptureSpec | str | os.PathLike[str]],
                 ifmap: dict[int, str] | Iterable[str] | None = None) -> "pd.DataFrame":
    """The packets table of some captures as a pandas DataFrame.

    >>> df = pcaploop.read_packets(["samples/incident/tap101.pcap"])   # doctest: +SKIP
    >>> df.groupby("capture_point", observed=True)["ttl"].describe()    # doctest: +SKIP
    """
    return load(captures, ifmap).frame()
