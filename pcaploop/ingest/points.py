"""Capture points: one interface seen by one capture, named and accounted for.

A pcap file is one capture point; a pcapng file one per interface block;
a ``tcpdump -i any`` (SLL2) capture one per interface index.  Names come
from ``NAME=PATH``, pcapng ``if_name`` or ``--ifmap``, made unique across
all inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import schema as S
from ..contract import iso_ns
from ..decode import linktypes as lt
from ..read import CaptureFile
from .specs import CaptureSpec

__all__ = ["CapturePoint"]


#: capture points across all inputs; far beyond any host, small enough for int16 codes
MAX_POINTS = 4096
#: the one point that the interfaces past MAX_POINTS share
OVERFLOW_POINT = "other-interfaces"


@dataclass(slots=True)
class CapturePoint:
    """One interface seen by one capture, with its accounting (docs/design.md, *Words*).

    Mutable while the loader counts its records; its ``captures[]`` entry of the
    JSON contract is :meth:`to_json`.
    """

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
    snaplen: int | None = None  # as the file declares it for this interface

    @property
    def linktype_name(self) -> str:
        """Link-type name (``EN10MB``, ``LINUX_SLL2``, ``LINKTYPE_147``)."""
        return lt.linktype_name(self.linktype)

    def seen(self, first_ns: int, last_ns: int) -> None:
        """Widen the time span to take in records from ``first_ns`` to ``last_ns``."""
        self.first_ns = first_ns if self.first_ns is None else min(self.first_ns, first_ns)
        self.last_ns = last_ns if self.last_ns is None else max(self.last_ns, last_ns)

    def absorb(self, other: CapturePoint) -> None:
        """Add the accounting of ``other``: this interface's records in a part of the
        file decoded apart (:mod:`pcaploop.ingest._parallel`)."""
        self.records += other.records
        self.decoded += other.decoded
        for reason, n in other.skipped.items():
            self.skipped[reason] += n
        if other.first_ns is not None and other.last_ns is not None:
            self.seen(other.first_ns, other.last_ns)

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


class PointRegistry:
    """Registry of capture points across files, with unique names."""

    def __init__(self, ifmap: dict[int, str]):
        self.points: list[CapturePoint] = []
        self.ifmap = ifmap
        self._names: set[str] = set()
        #: (file, interface index) of SLL2 points named by their number (no --ifmap entry)
        self.unnamed_ifindexes: set[tuple[str, int]] = set()
        self._wish: list[tuple[str, str]] = []  # (name asked for, file stem) per point
        #: the point all interfaces past the limit share, and the files that had them
        self.overflow: int | None = None
        self.overflowed: set[str] = set()

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

    def add(
        self, name: str, cap: CaptureFile, linktype: int, interface: int | None, stem: str
    ) -> int:
        """Register a capture point under a unique name; returns its index.

        Past :data:`MAX_POINTS` − 1 points, every further interface shares one last
        point, :data:`OVERFLOW_POINT` (its file is noted in :attr:`overflowed`):
        its packets are still decoded and counted, and nothing grows with the
        number of interface blocks a file declares.
        """
        if len(self.points) >= MAX_POINTS - 1:
            self.overflowed.add(cap.path)
            if self.overflow is None:
                self.overflow = self._append(OVERFLOW_POINT, cap, linktype, None, OVERFLOW_POINT)
            return self.overflow
        return self._append(name, cap, linktype, interface, stem)

    def _append(
        self, name: str, cap: CaptureFile, linktype: int, interface: int | None, stem: str
    ) -> int:
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


class FileReader:
    """Decodes one file's batches and maps its records to capture points."""

    def __init__(self, spec: CaptureSpec, cap: CaptureFile, reg: PointRegistry):
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
            idx = self.reg.add(
                name,
                self.cap,
                itf.linktype,
                None if self.cap.format == "pcap" else k,
                self.spec.stem,
            )
            self.reg.points[idx].comment = itf.comment
            self.reg.points[idx].snaplen = itf.snaplen
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
        if (
            self.cap.format == "pcapng"
            and len(itfs) == 1
            and not itfs[0].name
            and 0 in self.iface_point
        ):
            self.reg.rename(self.iface_point[0], self.base, self.spec.stem)

    def _sll2_point(self, k: int, ifindex: int) -> int:
        key = (k, ifindex)
        if key not in self.sll2_point:
            name = self.reg.ifmap.get(ifindex) or f"{self.base}:if{ifindex}"
            if ifindex not in self.reg.ifmap:
                self.reg.unnamed_ifindexes.add((self.cap.path, ifindex))
            itf = self.cap.interfaces[k]
            self.sll2_point[key] = idx = self.reg.add(
                name, self.cap, itf.linktype, ifindex, self.spec.stem
            )
            self.reg.points[idx].snaplen = itf.snaplen
        return self.sll2_point[key]

    def record_points(self, iface: np.ndarray, ifindex: np.ndarray) -> np.ndarray:
        """Capture point of every record of a batch."""
        out = np.empty(len(iface), dtype=np.int64)
        if (
            len(iface)
            and self.cap.interfaces
            and iface.min() == iface.max() >= 0
            and self.cap.interfaces[int(iface[0])].linktype != lt.LINKTYPE_LINUX_SLL2
        ):
            out.fill(self._iface_point(int(iface[0])))  # the usual case: one interface
            return out
        # points are created in the order their records first appear, so names and
        # numbers do not depend on where batches happen to be cut; one grouping per
        # batch, then a lookup: no pass over the batch per interface
        sll2 = np.zeros(len(iface), dtype=bool)
        if self.cap.interfaces:
            is_sll2 = np.array(
                [itf.linktype == lt.LINKTYPE_LINUX_SLL2 for itf in self.cap.interfaces], bool
            )
            known = (iface >= 0) & (iface < len(is_sll2))
            sll2[known] = is_sll2[iface[known]]
        key = np.where(sll2, (iface.astype(np.int64) << 33) + (ifindex.astype(np.int64) + 1), iface)
        uniq, first, inv = np.unique(key, return_index=True, return_inverse=True)
        table = np.empty(len(uniq), dtype=np.int64)
        for j in np.argsort(first, kind="stable").tolist():
            i = int(first[j])
            k = int(iface[i])
            kk = k if k >= 0 else 0
            if not self.cap.interfaces:  # packets before any interface block: malformed
                table[j] = self._orphan_point()
            elif sll2[i]:
                ix = int(ifindex[i])
                table[j] = self._sll2_point(kk, ix) if ix >= 0 else self._iface_point(kk)
            else:
                table[j] = self._iface_point(kk)
        out[:] = table[inv.ravel()]
        return out


def _in_order(values: np.ndarray) -> np.ndarray:
    """The distinct values in the order they first appear."""
    uniq, first = np.unique(values, return_index=True)
    out: np.ndarray = uniq[np.argsort(first)]
    return out
