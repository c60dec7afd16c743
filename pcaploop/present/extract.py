"""Evidence: the packets of a loop as exact rows, a small pcapng file and display filters.

A finding has to survive being checked by someone without pcaploop (a
colleague, a hosting provider's support).  This module names the packets a
loop consists of, copies their *original* bytes and timestamps into a pcapng
file Wireshark opens, and writes display filters that select the same
packets in the original captures.

Definitions (the tests check exactly these):

* **copies** of a loop are the observations its ``observations`` counts:
  for ``l3`` loops the copies of its looping packets at the loop's own
  capture points, for ``l2`` loops the repeated same-TTL frames, for
  ``inferred`` loops the arrivals that were seen (the copies themselves
  happened behind the capture point and are only estimated).
* **implicated packets** of a loop are its copies, every other observation
  of the same looping packets (the entry on the uplink, an exit elsewhere)
  and the ICMP errors tied to them.  ``--dst`` adds the observations of
  packets to that address that bounced.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..analysis.model import LoopEvidence
from ..errors import PcaploopError, UsageError
from .files import atomic

if TYPE_CHECKING:  # pragma: no cover
    from ..analysis.pipeline import Analysis
    from ..ingest.points import CapturePoint


__all__ = ["extract", "wireshark_filters"]

#: role of a row in an evidence selection (also written as the packet comment)
COPY, PASSAGE, ICMP, BOUNCE = 0, 1, 2, 3
ROLE_NAMES = {
    COPY: "loop copy",
    PASSAGE: "same packet, outside the loop",
    ICMP: "ICMP error",
    BOUNCE: "bounce",
}

#: display filters with more frame-number ranges than this are not printed
MAX_FILTER_RANGES = 5000


@dataclass
class Selection:
    """Rows chosen as evidence (time order) with a role per row."""

    rows: np.ndarray
    role: np.ndarray
    loop_of_row: np.ndarray  # loop id per row, 0 for bounces
    what: str  # human description: "loop 1 (203.0.113.7)"


def l3_paths(a: Analysis, loop_id: int) -> np.ndarray:
    """Path ids of an ``l3`` loop's looping packets (empty for other kinds)."""
    a.loop(loop_id)
    return a.evidence[loop_id].paths


def shown_paths(a: Analysis, loop_id: int) -> np.ndarray:
    """The paths of :func:`l3_paths` whose copies were kept (a long loop keeps a sample)."""
    a.loop(loop_id)
    return a.evidence[loop_id].shown_paths


def loop_rows(a: Analysis, loop_id: int) -> LoopEvidence:
    """The rows of one loop: copies (== ``observations`` unless inferred), passages, ICMP."""
    a.loop(loop_id)
    return a.evidence[loop_id]


def select(
    a: Analysis, loop: int | None = None, dst: str | None = None, copies_only: bool = False
) -> Selection:
    """Implicated packets of loop ``loop``, or of every loop and bounce to ``dst``."""
    from ..addr import from_text, to_text

    if (loop is None) == (dst is None):
        raise UsageError("give exactly one of --loop N or --dst ADDR")
    parts: list[tuple[np.ndarray, int, int]] = []  # (rows, role, loop id)
    if loop is not None:
        ids = [a.loop(loop).id]
        what = f"loop {loop} ({a.loop(loop).destination})"
    else:
        assert dst is not None  # exactly one of loop and dst was given (checked above)
        try:
            want = to_text(*from_text(dst))
        except ValueError:
            raise UsageError(f"--dst {dst!r} is not an IP address") from None
        ids = [lp.id for lp in a.loops if lp.destination == want]
        what = f"packets to {want}"
        bounced = _bounce_rows(a, want)
        if not ids and not len(bounced):
            raise UsageError(
                f"{want} is in no loop and no bounce (loop destinations: {_dests(a) or 'none'})"
            )
        if not copies_only:
            parts.append((bounced, BOUNCE, 0))
    for lid in ids:
        lr = loop_rows(a, lid)
        parts.append((lr.copies, COPY, lid))
        if not copies_only:
            parts += [(lr.passages, PASSAGE, lid), (lr.icmp, ICMP, lid)]
    rows = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
    role = (
        np.concatenate([np.full(len(p[0]), p[1], np.int8) for p in parts])
        if parts
        else np.zeros(0, np.int8)
    )
    loop_of_row = (
        np.concatenate([np.full(len(p[0]), p[2], np.int64) for p in parts])
        if parts
        else np.zeros(0, np.int64)
    )
    rows, first = np.unique(rows, return_index=True)  # rows are in time order
    return Selection(rows, role[first], loop_of_row[first], what)


def _dests(a: Analysis) -> str:
    return ", ".join(sorted({lp.destination for lp in a.loops}))


def _bounce_rows(a: Analysis, want: str) -> np.ndarray:
    from ..addr import from_text

    corr, cols = a.correlation, a.packets.cols
    hi, lo = from_text(want)
    bp = np.flatnonzero(corr.p_bounce)
    rows = corr.rows[np.isin(corr.path, bp)].astype(np.int64)
    keep = (cols["dst_hi"][rows] == np.uint64(hi)) & (cols["dst_lo"][rows] == np.uint64(lo))
    out: np.ndarray = rows[keep]
    return out


# --- display filters --------------------------------------------------------------
def _ranges(numbers: np.ndarray) -> list[str]:
    """Sorted unique ints → ``["1..5", "7", …]``."""
    if len(numbers) == 0:
        return []
    breaks = np.flatnonzero(np.diff(numbers) != 1)
    starts = np.r_[numbers[0], numbers[breaks + 1]]
    ends = np.r_[numbers[breaks], numbers[-1]]
    return [f"{s}" if s == e else f"{s}..{e}" for s, e in zip(starts, ends)]


def wireshark_filters(a: Analysis, loop_id: int) -> list[dict[str, Any]]:
    """One display filter per capture file that selects exactly the loop's copies there.

    Frame numbers are what make it exact: an address and IP ID list would also
    match the ICMP errors quoting the packet and any unrelated packet that
    reused the ID.  The address in front says what the filter is about (and
    selects nothing if it is applied to the wrong file).  ``filter`` is
    ``None`` when the copies are too scattered to list (use the extract).

    >>> pcaploop.wireshark_filters(a, 1)[0]["filter"]       # doctest: +SKIP
    'ip.dst == 203.0.113.7 && frame.number in {1..63, 65..127}'
    """
    lp = a.loop(loop_id)
    rows = loop_rows(a, loop_id).copies
    cols, points = a.packets.cols, a.packets.points
    pt = cols["point"][rows]
    field_ = "ipv6.dst" if ":" in lp.destination else "ip.dst"
    prefix = lp.destination_prefix or lp.destination
    addr = lp.destination if prefix.endswith(("/32", "/128")) else prefix
    out = []
    for path in dict.fromkeys(points[int(p)].path for p in np.unique(pt)):
        mine = np.array([points[int(p)].path == path for p in pt], dtype=bool)
        frames = np.unique(cols["record"][rows[mine]].astype(np.int64) + 1)
        rng = _ranges(frames)
        text = (
            f"{field_} == {addr} && frame.number in {{{', '.join(rng)}}}"
            if len(rng) <= MAX_FILTER_RANGES
            else None
        )
        out.append(
            {
                "file": path,
                "packets": len(frames),
                "filter": text,
                "capture_points": sorted({points[int(p)].name for p in pt[mine]}),
            }
        )
    return out


# --- pcapng writer ----------------------------------------------------------------
#: pcapng option codes (read/formats.py names them for reading)
_COMMENT, _IF_NAME, _IF_DESCRIPTION, _IF_TSRESOL, _EPB_FLAGS = 1, 2, 3, 9, 2
_NS_RESOLUTION = bytes([9])  # if_tsresol: 10^-9 s


def _header(point_rows: list[CapturePoint], comment: str) -> tuple[Any, list[Any]]:
    """dpkt section header and one interface description per capture point."""
    import dpkt.pcapng as ng

    from .._version import __version__

    shb = ng.SectionHeaderBlockLE(
        opts=[
            ng.PcapngOptionLE(code=_COMMENT, data=comment.encode()),
            ng.PcapngOptionLE(
                code=ng.PCAPNG_OPT_SHB_USERAPPL, data=f"pcaploop {__version__}".encode()
            ),
            ng.PcapngOptionLE(code=ng.PCAPNG_OPT_ENDOFOPT),
        ]
    )
    idbs = []
    for point in point_rows:
        desc = os.path.basename(point.path)
        if point.interface is not None:
            desc += f" (interface {point.interface})"
        idbs.append(
            ng.InterfaceDescriptionBlockLE(
                linktype=point.linktype,
                snaplen=0,
                opts=[
                    ng.PcapngOptionLE(code=_IF_NAME, data=point.name.encode()),
                    ng.PcapngOptionLE(code=_IF_DESCRIPTION, data=desc.encode()),
                    ng.PcapngOptionLE(code=_IF_TSRESOL, data=_NS_RESOLUTION),
                    ng.PcapngOptionLE(code=ng.PCAPNG_OPT_ENDOFOPT),
                ],
            )
        )
    return shb, idbs


def _opt(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _epb(iface: int, ts_ns: int, data: bytes, wirelen: int, direction: int, comment: str) -> bytes:
    """An enhanced packet block packed here, not by dpkt: its EPB class sets the original
    length to the captured one, which would hide that a frame was cut by the snaplen."""
    ts = ts_ns % (1 << 64)
    opts = _opt(_COMMENT, comment.encode())
    if direction in (1, 2):  # schema DIR_IN / DIR_OUT map onto epb_flags bits 0-1
        opts += _opt(_EPB_FLAGS, struct.pack("<I", direction))
    body = struct.pack("<IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(data), wirelen)
    body += data + b"\0" * (-len(data) % 4) + opts + struct.pack("<HH", 0, 0)
    n = len(body) + 12
    return struct.pack("<II", 6, n) + body + struct.pack("<I", n)


def read_records(path: str, wanted: np.ndarray) -> dict[int, tuple[int, bytes]]:
    """{record number: (time_ns, original bytes)} of some records of one capture file.

    Streams the file once with the project's reader and keeps only the
    wanted records, so memory stays bounded by the evidence, not the capture.
    """
    from ..read.capture import open_capture

    wanted = np.unique(np.asarray(wanted, np.int64))
    out: dict[int, tuple[int, bytes]] = {}
    if len(wanted) == 0:
        return out
    for b in open_capture(path).batches():
        lo = b.first_record
        i0, i1 = np.searchsorted(wanted, [lo, lo + len(b.off)])
        for rec in wanted[i0:i1]:
            k = int(rec) - lo
            start = int(b.off[k])
            out[int(rec)] = (int(b.time_ns[k]), b.buf[start : start + int(b.caplen[k])].tobytes())
        if i1 == len(wanted):
            break
    return out


def _digits(v: np.ndarray) -> np.ndarray:
    return np.char.str_len(v.astype(str)).astype(np.int64)


def blocks_size(a: Analysis, sel: Selection) -> int:
    """Bytes the packet blocks of :func:`write_pcapng` will take (the file adds only its
    section and interface blocks): to say the size before writing it."""
    cols, points = a.packets.cols, a.packets.points
    rows = sel.rows
    if not len(rows):
        return 0
    caplen = cols["caplen"][rows].astype(np.int64)
    base = np.array([len(os.path.basename(p.path)) for p in points], np.int64)
    names = np.zeros(max(ROLE_NAMES) + 1, np.int64)
    for code, text in ROLE_NAMES.items():
        names[code] = len(text)
    lid = sel.loop_of_row.astype(np.int64)
    tag = names[sel.role.astype(np.int64)] + np.where(lid > 0, len("loop : ") + _digits(lid), 0)
    comment = (
        len("pcaploop ; ")
        + tag
        + base[cols["point"][rows].astype(np.int64)]
        + len(" frame ")
        + _digits(cols["record"][rows].astype(np.int64) + 1)
    )
    flags = np.isin(cols["direction"][rows], (1, 2)) * 8
    # block header and trailer (12), the fixed fields (20), the padded frame, the
    # comment option (4 + padded text), the flags option, the end of options (4)
    return int((32 + caplen + (-caplen % 4) + 4 + comment + (-comment % 4) + flags + 4).sum())


def write_pcapng(a: Analysis, sel: Selection, out: str | os.PathLike[str]) -> dict[str, Any]:
    """Write the selected packets with their original bytes and ns timestamps.

    One interface per capture point that contributes packets, named like the
    point and with its link type (SLL2 stays SLL2).  Each packet carries a
    comment naming its loop, its role and where it came from.  Returns a
    summary: path, packets, per capture point counts.
    """
    cols, points = a.packets.cols, a.packets.points
    rows = sel.rows
    pts = cols["point"][rows].astype(np.int64)
    used = [int(p) for p in np.unique(pts)]
    iface = {p: k for k, p in enumerate(used)}
    got: dict[tuple[str, int], tuple[int, bytes]] = {}
    for path in dict.fromkeys(points[p].path for p in used):
        mine = rows[np.array([points[int(p)].path == path for p in pts], dtype=bool)]
        recs = read_records(path, cols["record"][mine])
        got.update({(path, r): v for r, v in recs.items()})
    import dpkt.pcapng as ng

    shb, idbs = _header(
        [points[p] for p in used], f"pcaploop evidence: {sel.what}; {len(rows)} packets"
    )
    blocks: list[bytes] = []
    for r, role, lid, p in zip(rows, sel.role, sel.loop_of_row, pts):
        pt = points[int(p)]
        rec = int(cols["record"][r])
        ts, data = _checked(got, pt.path, rec, int(cols["time_ns"][r]), int(cols["caplen"][r]))
        tag = f"loop {lid}: {ROLE_NAMES[int(role)]}" if lid else ROLE_NAMES[int(role)]
        blocks.append(
            _epb(
                iface[int(p)],
                ts,
                data,
                int(cols["wirelen"][r]),
                int(cols["direction"][r]),
                f"pcaploop {tag}; {os.path.basename(pt.path)} frame {rec + 1}",
            )
        )
    with atomic(out, [p.path for p in points]) as f:
        ng.Writer(f, shb=shb, idb=idbs)  # the section header and interface blocks
        for blk in blocks:
            f.write(blk)
    counts = {points[p].name: int((pts == p).sum()) for p in used}
    return {
        "path": os.fspath(out),
        "packets": len(rows),
        "capture_points": counts,
        "what": sel.what,
    }


def _checked(
    got: dict[tuple[str, int], tuple[int, bytes]], path: str, rec: int, ts: int, caplen: int
) -> tuple[int, bytes]:
    """A record as read again, refusing a capture that changed since it was analysed."""
    if (path, rec) not in got:
        raise PcaploopError(
            f"{path}: record {rec + 1} is missing (file changed since it was read?)"
        )
    t, data = got[(path, rec)]
    if t != ts or len(data) != caplen:
        raise PcaploopError(
            f"{path}: record {rec + 1} differs from the analysed one "
            "(file changed since it was read?)"
        )
    return t, data


def sample(a: Analysis, sel: Selection, max_packets: int) -> tuple[Selection, int]:
    """At most ``max_packets`` rows of a selection: whole packets (all observations of one
    path together), spread evenly over the selection's time; returns the rows left out."""
    corr = a.correlation
    order = np.argsort(corr.rows)
    at = np.searchsorted(corr.rows[order], sel.rows)
    at = np.minimum(at, max(len(order) - 1, 0))
    in_path = (corr.rows[order][at] == sel.rows) if len(order) else np.zeros(len(sel.rows), bool)
    key = np.where(in_path, corr.path[order][at] if len(order) else 0, -1 - sel.rows)
    groups, first, inv = np.unique(key, return_index=True, return_inverse=True)
    sizes = np.bincount(inv.ravel(), minlength=len(groups))
    by_time = np.argsort(first, kind="stable")  # rows are in time order
    n = max(1, int(len(groups) * max_packets / max(len(sel.rows), 1)))
    while True:
        pick = by_time[np.unique(np.linspace(0, len(groups) - 1, n).astype(np.int64))]
        if sizes[pick].sum() <= max_packets or n == 1:
            break
        n = max(1, int(n * 0.9))
    keep = np.isin(inv.ravel(), pick)
    if sizes[pick].sum() > max_packets:  # one path longer than the budget: its first copies
        keep &= np.cumsum(keep) <= max_packets
    out = Selection(
        sel.rows[keep],
        sel.role[keep],
        sel.loop_of_row[keep],
        f"{sel.what}, a sample of {int(keep.sum()):,} of {len(sel.rows):,} packets",
    )
    return out, int(len(sel.rows) - keep.sum())


def extract(
    a: Analysis,
    out: str | os.PathLike[str],
    loop: int | None = None,
    dst: str | None = None,
    copies_only: bool = False,
    max_packets: int | None = None,
    announce: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Select (:func:`select`), sample to ``max_packets`` if given (:func:`sample`) and
    write (:func:`write_pcapng`) in one call; ``left_out`` in the result counts what the
    sample left out; ``kept_of`` says when the loop kept only a sample of its copies
    (:func:`kept_of`).  ``announce(packets, bytes)`` hears the size before anything is
    written (bytes estimated from the captured lengths and the block overhead).

    >>> extract(pcaploop.analyze(["tap101.pcap"]), "loop1.pcapng", loop=1)  # doctest: +SKIP
    """
    sel = select(a, loop, dst, copies_only)
    if len(sel.rows) == 0:
        raise UsageError(f"{sel.what}: no packets to extract")
    left = 0
    if max_packets is not None and len(sel.rows) > max_packets:
        sel, left = sample(a, sel, max_packets)
    if announce is not None:
        announce(len(sel.rows), blocks_size(a, sel))
    res = write_pcapng(a, sel, out)
    res["left_out"] = left
    res["kept_of"] = kept_of(a, loop)
    return res


def kept_of(a: Analysis, loop: int | None) -> tuple[int, int] | None:
    """(looping packets whose copies were kept, looping packets) when loop ``loop`` kept
    only a sample of its copies; None when it kept them all."""
    if loop is None:
        return None
    ev = a.evidence.get(loop)
    if ev is None or ev.kept is None:
        return None
    return len(ev.kept), len(ev.paths)
