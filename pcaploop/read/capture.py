"""Read stage: capture files (pcap, pcapng, gzip'd) → batches of raw records.

Streams through one reused buffer (1 MiB plus room for one maximal record),
so memory stays bounded whatever the file's length or its length fields say.
Damaged files are read as far as they are intact; :class:`CaptureFile`
says what was left unread and why.

>>> cap = open_capture("samples/incident/uplink.pcap")      # doctest: +SKIP
>>> sum(len(b.off) for b in cap.batches()) == cap.records    # doctest: +SKIP
True
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import re
import stat
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..errors import CaptureError, NotACaptureError
from . import formats as F
from . import walk
from .formats import MAX_CAPLEN
from .walk import CORRUPT, OTHER_BLOCK

ByteOrder = Literal["little", "big"]
#: (buffer, position, bytes filled, end of input, walker output arrays)
Fill = tuple[np.ndarray, int, int, bool, tuple[np.ndarray, ...]]

CHUNK = 1 << 20
PCAP_HEADER_BYTES = 24  # a classic pcap file header
_BUFSIZE = CHUNK + MAX_CAPLEN + 65536

#: how many times its own size a .gz may expand before reading stops (a decompression
#: bomb: zeros compress a thousandfold, captures some tenfold); PCAPLOOP_GZIP_MAX_RATIO
#: raises it
GZIP_MAX_RATIO = 200


def gzip_max_ratio() -> float:
    """:data:`GZIP_MAX_RATIO`, or ``$PCAPLOOP_GZIP_MAX_RATIO`` when set (0: no limit)."""
    raw = os.environ.get("PCAPLOOP_GZIP_MAX_RATIO", "")
    try:
        value = float(raw) if raw else float(GZIP_MAX_RATIO)
    except ValueError:
        value = float(GZIP_MAX_RATIO)
    return value if value > 0 else float("inf")


#: how often a followed file is looked at again when it has not grown
FOLLOW_POLL_S = 0.2
_PROMPT_BYTES = 1 << 16  # a followed file: hand over after this much new data
#: bytes read from a pipe to tell its format (a pcapng section header's first fields)
_HEAD_BYTES = 28

_MAX_META_BLOCK = 1 << 20  # SHB / IDB / ISB larger than this are corrupt

_PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": (False, False),  # (big-endian, nanosecond)
    b"\xa1\xb2\xc3\xd4": (True, False),
    b"\x4d\x3c\xb2\xa1": (False, True),
    b"\xa1\xb2\x3c\x4d": (True, True),
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"


@dataclass
class Interface:
    """One interface as the file declares it (pcap: the whole file)."""

    index: int
    linktype: int
    snaplen: int
    section: int = 0
    name: str | None = None
    description: str | None = None
    comment: str | None = None
    ts_units_per_s: int = 1_000_000  # pcapng if_tsresol as a divisor
    ts_offset_ns: int = 0
    dropped: int | None = None  # ISB isb_ifdrop (+ isb_osdrop) where recorded


@dataclass
class RecordBatch:
    """Records found in one buffer fill.  ``buf`` is only valid until the next batch."""

    buf: np.ndarray
    off: np.ndarray  # int64 offsets of the packet bytes in ``buf``
    caplen: np.ndarray  # int64
    wirelen: np.ndarray  # int64
    time_ns: np.ndarray  # int64
    iface: np.ndarray  # int64 index into CaptureFile.interfaces, -1 when invalid
    direction: np.ndarray  # int8 DIR_* from pcapng flags (0 elsewhere)
    first_record: int  # record number of row 0 within the file


@dataclass
class CaptureFile:
    """An opened capture; iterate :meth:`batches` once."""

    path: str
    format: str  # "pcap" | "pcapng"
    compressed: bool
    interfaces: list[Interface] = field(default_factory=list)
    records: int = 0
    bytes_read: int = 0
    truncated_tail: bool = False
    problem: str | None = None  # what stopped reading early, if anything
    comments: list[str] = field(default_factory=list)
    #: follow a regular file as it grows (like ``tail -f``): at its end, wait for more
    #: until this returns True.  A pipe is always read to its end, promptly.
    follow: Callable[[], bool] | None = None
    #: a pipe or terminal opened once (its first bytes already read by open_capture)
    _stream: io.BufferedIOBase | None = field(default=None, repr=False)
    #: classic pcap only: read the records from byte ``start`` (a record boundary; 0:
    #: the first, just after the file header) up to byte ``stop`` (None: the end of
    #: the file) — one chunk of a file decoded in parallel (:mod:`pcaploop.ingest._parallel`)
    start: int = 0
    stop: int | None = None
    #: the captured length of the corrupt record header that stopped reading, if one did
    corrupt_caplen: int | None = None
    _big: bool = False
    _nsres: bool = False
    _state: dict[str, Any] = field(default_factory=dict)

    @property
    def live(self) -> bool:
        """A pipe or a followed file: records are handed on as they arrive, not in
        full blocks."""
        return self._stream is not None or self.follow is not None

    @property
    def _order(self) -> ByteOrder:
        return "big" if self._big else "little"

    def chunk(self, start: int, stop: int | None) -> CaptureFile:
        """This classic pcap's records from byte ``start`` (a record's first byte) to
        ``stop`` (None: the end), to be read on their own (:attr:`start`)."""
        part = CaptureFile(self.path, "pcap", False, start=start, stop=stop)
        part.interfaces, part._big, part._nsres = list(self.interfaces), self._big, self._nsres
        return part

    @property
    def position(self) -> int:
        """Byte offset in the file of the first record not handed out yet (classic pcap;
        after damage, of the damaged record)."""
        return (self.start or PCAP_HEADER_BYTES) + self.bytes_read + int(self._state.get("pos", 0))

    def batches(self) -> Iterator[RecordBatch]:
        """Yield record batches until the end of the file (or :attr:`stop`) or the
        first damage."""
        stream = self._stream
        with stream if stream is not None else _open_stream(self.path, self.compressed) as f:
            if self.format == "pcap":
                if self.start:
                    f.seek(self.start)
                else:
                    f.read(PCAP_HEADER_BYTES)
                if self.stop is not None:
                    f = _Limited(f, self.stop - (self.start or PCAP_HEADER_BYTES))
                yield from self._pcap(f)
            else:
                yield from self._pcapng(f)

    # -- classic pcap -----------------------------------------------------
    def _pcap(self, f: io.BufferedIOBase) -> Iterator[RecordBatch]:
        snap = self.interfaces[0].snaplen
        for buf, pos, fill, eof, outs in _fills(self, f):
            o_off, o_cap, o_wire, o_ts, o_if, o_dir = outs
            n, newpos, status = walk.walk_pcap(
                buf, pos, fill, self._big, self._nsres, snap, o_off, o_cap, o_wire, o_ts
            )
            if n:
                o_if[:n] = 0
                o_dir[:n] = 0  # pcap records carry no direction (outs are reused, not zeroed)
                yield self._batch(buf, outs, n)
            if status == CORRUPT:
                incl = int(
                    np.frombuffer(
                        buf[newpos + 8 : newpos + 12].tobytes(), ">u4" if self._big else "<u4"
                    )[0]
                )
                self.corrupt_caplen = incl
                self._state["pos"] = newpos  # :attr:`position`: the corrupt record's
                self._stop(corrupt_record_problem(self.records, incl))
                return
            if not _advance(self, newpos, fill, eof, "record"):
                return

    # -- pcapng ------------------------------------------------------------
    def _pcapng(self, f: io.BufferedIOBase) -> Iterator[RecordBatch]:
        section_base = 0
        section_count = 0
        section = -1
        ts_carry = 0
        for buf, pos, fill, eof, outs in _fills(self, f):
            while True:
                o_off, o_cap, o_wire, o_ts, o_if, o_dir = outs
                n, pos, status = walk.walk_pcapng(
                    buf, pos, fill, self._big, o_off, o_cap, o_wire, o_ts, o_if, o_dir
                )
                if n:
                    local = o_if[:n]
                    valid = (local >= 0) & (local < section_count)
                    o_if[:n] = np.where(valid, local + section_base, -1)
                    ts_carry = self._pcapng_times(
                        o_ts[:n], o_if[:n], o_cap[:n], o_dir[:n], ts_carry
                    )
                    yield self._batch(buf, outs, n)
                if status == CORRUPT:
                    self._stop(
                        f"block at byte {self.bytes_read + pos}: block lengths disagree "
                        "or exceed the maximum (corrupt block)"
                    )
                    return
                if status != OTHER_BLOCK:
                    break
                if fill - pos < 12:
                    break
                btype, blen = self._block_header(buf, pos)
                if btype == F.BT_SHB:
                    section += 1
                    section_base, section_count = len(self.interfaces), 0
                    self._big = bytes(buf[pos + 8 : pos + 12]) == b"\x1a\x2b\x3c\x4d"
                    problem = _shb_version_problem(bytes(buf[pos + 8 : pos + 16]))
                    if problem:
                        self._stop(f"block at byte {self.bytes_read + pos}: {problem}")
                        return
                    btype, blen = self._block_header(buf, pos)
                if blen < 12 or blen % 4 or blen > _MAX_META_BLOCK:
                    self._stop(
                        f"block at byte {self.bytes_read + pos}: invalid block length {blen}"
                    )
                    return
                if fill - pos < blen:
                    break  # need more data for this block
                body = bytes(buf[pos + 8 : pos + blen - 4])
                if (
                    int.from_bytes(
                        buf[pos + blen - 4 : pos + blen].tobytes(), "big" if self._big else "little"
                    )
                    != blen
                ):
                    self._stop(f"block at byte {self.bytes_read + pos}: block lengths disagree")
                    return
                if btype == F.BT_IDB:
                    self._idb(body, section)
                    section_count += 1
                elif btype == F.BT_ISB:
                    self._isb(body, section_base, section_count)
                pos += blen
            if not _advance(self, pos, fill, eof, "block"):
                return

    def _block_header(self, buf: np.ndarray, pos: int) -> tuple[int, int]:
        order = self._order
        return (
            int.from_bytes(buf[pos : pos + 4].tobytes(), order),
            int.from_bytes(buf[pos + 4 : pos + 8].tobytes(), order),
        )

    def _options(self, data: bytes) -> Iterator[tuple[int, bytes]]:
        order = self._order
        p = 0
        while len(data) - p >= 4:
            code = int.from_bytes(data[p : p + 2], order)
            olen = int.from_bytes(data[p + 2 : p + 4], order)
            if code == F.OPT_ENDOFOPT or p + 4 + olen > len(data):
                return
            yield code, data[p + 4 : p + 4 + olen]
            p += 4 + ((olen + 3) & ~3)

    def _idb(self, body: bytes, section: int) -> None:
        order = self._order
        if len(body) < 8:
            self.interfaces.append(Interface(len(self.interfaces), -1, MAX_CAPLEN, section))
            return
        snap = int.from_bytes(body[4:8], order)
        iface = Interface(
            len(self.interfaces),
            int.from_bytes(body[0:2], order),
            snap if 0 < snap <= MAX_CAPLEN else MAX_CAPLEN,
            section,
        )
        for code, val in self._options(body[8:]):
            if code == F.IF_NAME:
                iface.name = _text(val)
            elif code == F.IF_DESCRIPTION:
                iface.description = _text(val)
            elif code == F.OPT_COMMENT:
                iface.comment = _text(val)
            elif code == F.IF_TSRESOL and len(val) >= 1:
                r = val[0]
                exp = r & 0x7F
                if exp <= (62 if r & 0x80 else 18):
                    iface.ts_units_per_s = (2**exp) if r & 0x80 else 10**exp
            elif code == F.IF_TSOFFSET and len(val) == 8:
                offset = int.from_bytes(val, order, signed=True)
                if abs(offset) < (1 << 32):  # larger offsets overflow int64 ns: ignore them
                    iface.ts_offset_ns = offset * 1_000_000_000
        self.interfaces.append(iface)

    def _isb(self, body: bytes, base: int, count: int) -> None:
        order = self._order
        if len(body) < 12:
            return
        local = int.from_bytes(body[0:4], order)
        if local >= count:
            return
        drops = None
        for code, val in self._options(body[12:]):
            if code in (F.ISB_IFDROP, F.ISB_OSDROP) and len(val) == 8:
                drops = (drops or 0) + int.from_bytes(val, order)
        if drops is not None:
            self.interfaces[base + local].dropped = drops

    def _pcapng_times(
        self, ts: np.ndarray, iface: np.ndarray, cap: np.ndarray, dirs: np.ndarray, carry: int
    ) -> int:
        """Raw timestamp units → ns in place, per interface resolution and offset.

        SPB rows (``dirs == -1``) take the previous record's time; their
        marker is cleared to 'direction unknown'.
        """
        missing = dirs == -1
        dirs[missing] = 0
        for idx in np.unique(iface):
            sel = iface == idx
            if idx < 0:
                ts[sel] = 0
                continue
            itf = self.interfaces[idx]
            cap[sel] = np.minimum(cap[sel], itf.snaplen)
            with np.errstate(over="ignore"):
                ts[sel] = _units_to_ns(ts[sel], itf.ts_units_per_s) + itf.ts_offset_ns
        if missing.any():
            last = carry
            for i in range(len(ts)):
                if missing[i]:
                    ts[i] = last
                else:
                    last = ts[i]
        return int(ts[-1]) if len(ts) else carry

    # -- shared ---------------------------------------------------------------
    def _batch(self, buf: np.ndarray, outs: tuple[np.ndarray, ...], n: int) -> RecordBatch:
        o_off, o_cap, o_wire, o_ts, o_if, o_dir = outs
        batch = RecordBatch(
            buf,
            o_off[:n],
            o_cap[:n],
            o_wire[:n],
            o_ts[:n],
            o_if[:n],
            o_dir[:n].astype(np.int8),
            self.records,
        )
        self.records += n
        return batch

    def _stop(self, problem: str) -> None:
        self.truncated_tail = True
        self.problem = problem


def corrupt_record_problem(record: int, caplen: int) -> str:
    """What stopped reading at record number ``record`` (0-based) of a classic pcap."""
    return (
        f"record {record + 1}: captured length {caplen} exceeds {MAX_CAPLEN} "
        "(corrupt record header)"
    )


class _Limited(io.BufferedIOBase):
    """The next ``left`` bytes of a file, then its end: one chunk of a capture."""

    def __init__(self, f: io.BufferedIOBase, left: int):
        self.f, self.left = f, max(0, left)

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self.left <= 0:
            return 0
        mv = memoryview(b).cast("B")
        got = self.f.readinto(mv[: self.left]) or 0
        self.left -= got
        return got

    readinto1 = readinto

    def close(self) -> None:
        self.f.close()
        super().close()


def _units_to_ns(r: np.ndarray, units: int) -> np.ndarray:
    """Exact ``floor(r * 1e9 / units)`` for int64 timestamps in ``units`` per second."""
    g = 1_000_000_000
    if g % units == 0:
        return r * (g // units)
    if units % g == 0:
        return r // (units // g)
    whole = r // units
    frac = r - whole * units  # 0 <= frac < units
    if units <= (1 << 33):  # frac * 1e9 stays below 2**63
        out: np.ndarray = whole * g + (frac * g) // units
        return out
    exact = [(int(f) * g) // units for f in frac]  # very fine 2^-n resolutions: rare
    out = whole * g + np.array(exact, dtype=np.int64)
    return out


def _text(val: bytes) -> str:
    """A name or comment from the file, control characters replaced: it reaches terminals
    (escape sequences), reports and fix commands."""
    text = val.split(b"\0", 1)[0].decode("utf-8", "replace")
    return re.sub(r"[\x00-\x1f\x7f-\x9f]", "?", text)


def _fills(cap: CaptureFile, f: io.BufferedIOBase) -> Iterator[Fill]:
    """Keep one reused buffer topped up; the consumer reports its position back via _advance."""
    buf = np.empty(_BUFSIZE, dtype=np.uint8)
    mv = buf.data
    maxn = _BUFSIZE // 12 + 1
    outs = tuple(np.empty(maxn, dtype=np.int64) for _ in range(6))
    cap._state = {"pos": 0, "fill": 0, "eof": False}
    st = cap._state
    # gzip: readinto() loses everything it decompressed when the stream turns out to be
    # cut off; readinto1() returns each decompressed piece before the error surfaces.
    # pipes and followed files: one read at a time, handed over at once (a live
    # capture must not wait for a full buffer)
    prompt = cap._stream is not None or cap.follow is not None
    readinto = f.readinto1 if cap.compressed or prompt else f.readinto
    following = cap.follow if cap._stream is None else None
    limit = float("inf")
    if cap.compressed and cap._stream is None:  # a pipe's compressed size is unknown
        with contextlib.suppress(OSError):
            limit = max(os.path.getsize(cap.path), 1) * gzip_max_ratio()
    while True:
        pos, fill = st["pos"], st["fill"]
        if pos:
            buf[: fill - pos] = buf[pos:fill]
            cap.bytes_read += pos
            fill -= pos
            st["pos"] = 0
        fresh = False  # bytes arrived since the last hand-over
        while not st["eof"] and fill < _BUFSIZE:
            try:
                got = readinto(mv[fill:])
            except (EOFError, OSError, zlib.error, gzip.BadGzipFile) as exc:
                st["eof"] = True
                cap.problem = f"compressed stream damaged: {exc}"
                cap.truncated_tail = True
                break
            if not got:
                if following is not None and not following():
                    if fresh:
                        break  # hand over what came; look again afterwards
                    time.sleep(FOLLOW_POLL_S)
                    continue
                st["eof"] = True
                break
            fill += got
            fresh = True
            if prompt and (fill - st["pos"] >= _PROMPT_BYTES or cap._stream is not None):
                break
            if cap.bytes_read + fill > limit:
                st["eof"] = True
                if not _more(readinto):  # it ended right there: whole, not a bomb
                    break
                cap.truncated_tail = True
                cap.problem = (
                    f"the gzip stream expands more than {gzip_max_ratio():g} times its size "
                    f"(a decompression bomb?): read the first {cap.bytes_read + fill:,} bytes; "
                    "PCAPLOOP_GZIP_MAX_RATIO raises the limit"
                )
                break
        st["fill"] = fill
        if fill == 0 and st["eof"]:
            return
        yield buf, 0, fill, st["eof"], outs
        if st.get("done"):
            return


def _more(readinto: Callable[[memoryview], int]) -> bool:
    """Whether the stream holds another byte (which is then lost: reading stops)."""
    try:
        return bool(readinto(memoryview(bytearray(1))))
    except (EOFError, OSError, zlib.error):
        return False


def _advance(cap: CaptureFile, pos: int, fill: int, eof: bool, what: str) -> bool:
    """Record how far the walker got; False when reading must stop."""
    st = cap._state
    st["pos"] = pos
    if eof and pos >= fill:
        st["done"] = True
        return False
    if eof and pos < fill:
        # nothing more will arrive and the rest does not form a whole record
        if not cap.truncated_tail:
            cap._stop(f"last {what} cut off ({fill - pos} bytes at the end of the file)")
        st["done"] = True
        return False
    return True


def _open_stream(path: str, compressed: bool) -> io.BufferedIOBase:
    """The file opened for reading its records (it was sniffed before: it may have
    gone since, which is a one-line error too)."""
    try:
        if compressed:
            return gzip.open(path, "rb")
        return open(path, "rb")
    except OSError as exc:
        raise _open_error(path, exc) from None


def _open_error(path: str, exc: OSError) -> CaptureError:
    """What a failed open of a capture says."""
    if isinstance(exc, IsADirectoryError):
        return CaptureError(path, "is a directory, not a capture file")
    if isinstance(exc, FileNotFoundError):
        return CaptureError(path, "no such file")
    if isinstance(exc, PermissionError):
        return CaptureError(path, "permission denied")
    return CaptureError(path, f"cannot read: {exc.strerror or exc}")


def sniff(path: str | os.PathLike[str]) -> tuple[str, bool, bytes]:
    """(format, compressed, first header bytes) or raise :class:`CaptureError`."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            head = f.read(28)
    except OSError as exc:
        raise _open_error(path, exc) from None
    compressed = head[:2] == b"\x1f\x8b"
    if compressed:
        try:
            with gzip.open(path, "rb") as g:
                head = g.read(28)
        except (EOFError, OSError, zlib.error) as exc:
            raise NotACaptureError(path, f"damaged gzip stream ({exc})") from None
    return _classify(path, head, compressed)


def _classify(path: str, head: bytes, compressed: bool) -> tuple[str, bool, bytes]:
    if not head:
        raise NotACaptureError(path, "empty file")
    if head[:4] in _PCAP_MAGICS:
        if len(head) < 24:
            raise NotACaptureError(path, "truncated pcap file header")
        return "pcap", compressed, head
    if head[:4] == _PCAPNG_SHB:
        if len(head) < 28:
            raise NotACaptureError(path, "truncated pcapng section header")
        if head[8:12] not in (b"\x1a\x2b\x3c\x4d", b"\x4d\x3c\x2b\x1a"):
            raise NotACaptureError(path, "pcapng section header has a bad byte-order magic")
        return "pcapng", compressed, head
    return "", compressed, head


def open_capture(
    path: str | os.PathLike[str], follow: Callable[[], bool] | None = None
) -> CaptureFile:
    """Open a capture and parse its file header.

    A pipe (``/dev/stdin``, a FIFO, tcpdump's ``-w -``) is opened once and read as
    it comes; ``follow`` keeps reading a regular file as it grows until it returns
    True (see :attr:`CaptureFile.follow`).  Raises :class:`NotACaptureError` for
    files that are not captures.
    """
    path = os.fspath(path)
    pipe = _open_pipe(path)
    stream: io.BufferedIOBase | None = None
    if pipe is None:
        fmt, compressed, head = sniff(path)
    else:
        stream, compressed, head = pipe
        fmt = _classify(path, head, compressed)[0]
    if not fmt:
        if stream is not None:
            stream.close()
        raise NotACaptureError(path, f"not a pcap or pcapng capture ({_describe(head)})")
    cap = CaptureFile(path, fmt, compressed, follow=follow, _stream=stream)
    if fmt == "pcapng":
        problem = _shb_version_problem(head[8:16])
        if problem:
            raise NotACaptureError(path, problem)
    if fmt == "pcap":
        big, nsres = _PCAP_MAGICS[head[:4]]
        order: ByteOrder = "big" if big else "little"
        version = (int.from_bytes(head[4:6], order), int.from_bytes(head[6:8], order))
        if not _pcap_version_ok(version):
            raise NotACaptureError(path, "unsupported pcap version {}.{}".format(*version))
        snap = int.from_bytes(head[16:20], order)
        field_ = int.from_bytes(head[20:24], order)
        if field_ & F.LINKTYPE_RESERVED_MASK:
            raise NotACaptureError(
                path, f"pcap header's link-type field has reserved bits set ({field_:#010x})"
            )
        link = field_ & F.LINKTYPE_MASK
        cap._big, cap._nsres = big, nsres
        cap.interfaces.append(Interface(0, link, snap if 0 < snap <= MAX_CAPLEN else MAX_CAPLEN))
    return cap


class _Prefixed(io.RawIOBase):
    """A pipe whose first bytes were read to tell its format: they come first again."""

    def __init__(self, head: bytes, rest: io.RawIOBase | io.BufferedIOBase):
        self._head, self._rest = memoryview(head), rest

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self._head:
            n = min(len(b), len(self._head))
            b[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        if isinstance(self._rest, io.BufferedIOBase):
            return self._rest.readinto1(b)
        return self._rest.readinto(b) or 0

    def close(self) -> None:
        self._rest.close()
        super().close()


def _read_head(f: io.RawIOBase | io.BufferedIOBase, n: int) -> bytes:
    """Up to ``n`` bytes: a pipe hands them over in pieces."""
    out = b""
    while len(out) < n:
        got = f.read(n - len(out))
        if not got:
            break
        out += got
    return out


def _open_pipe(path: str) -> tuple[io.BufferedIOBase, bool, bytes] | None:
    """(stream, compressed, first bytes) for a pipe, FIFO or terminal; None for a file.

    Why: a pipe can be read only once, so its first bytes, read to tell the format,
    must be handed to the reader again.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None  # sniff() names the problem
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISBLK(mode):
        return None
    try:
        raw = open(path, "rb", buffering=0)  # noqa: SIM115 - handed to the CaptureFile
    except OSError as exc:
        raise CaptureError(path, f"cannot read: {exc.strerror or exc}") from None
    head = _read_head(raw, _HEAD_BYTES)
    stream: io.BufferedIOBase = io.BufferedReader(_Prefixed(head, raw))
    if head[:2] != b"\x1f\x8b":
        return stream, False, head
    gz = gzip.GzipFile(fileobj=stream, mode="rb")
    try:
        inner = _read_head(gz, _HEAD_BYTES)
    except (EOFError, OSError, zlib.error) as exc:
        raise NotACaptureError(path, f"damaged gzip stream ({exc})") from None
    return io.BufferedReader(_Prefixed(inner, gz)), True, inner


def _pcap_version_ok(version: tuple[int, int]) -> bool:
    return version[0] == F.PCAP_VERSION_MAJOR or version == F.PCAP_VERSION_DGUX


def _shb_version_problem(magic_and_version: bytes) -> str | None:
    """Why a section header's version is not one libpcap and Wireshark read, or None.

    Why: a version they refuse is a format nobody specified; reading it as 1.0
    would report records no other tool sees.
    """
    order: ByteOrder = "big" if magic_and_version[:4] == b"\x1a\x2b\x3c\x4d" else "little"
    major = int.from_bytes(magic_and_version[4:6], order)
    minor = int.from_bytes(magic_and_version[6:8], order)
    if major == F.PCAPNG_VERSION_MAJOR and minor in F.PCAPNG_VERSION_MINORS:
        return None
    return f"unsupported pcapng section header version {major}.{minor}"


def _describe(head: bytes) -> str:
    known = {
        b"\xff\xd8\xff": "JPEG image",
        b"\x89PNG": "PNG image",
        b"%PDF": "PDF document",
        b"PK\x03\x04": "zip archive",
        b"\x7fELF": "ELF binary",
    }
    for magic, what in known.items():
        if head.startswith(magic):
            return f"looks like a {what}"
    if all(32 <= c < 127 or c in (9, 10, 13) for c in head):
        return "looks like text"
    return f"starts with bytes {head[:4].hex(' ')}"
