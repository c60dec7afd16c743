"""What an analysis finds, as typed values: loops, bounces, implicated addresses, the summary.

Built once, in :mod:`.measure`; the JSON document, the DataFrames, the
terminal, the report and the plots are views of these objects.  ``to_json``
gives each one's part of the JSON contract (``docs/design.md``) with its
keys in the contract's order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..contract import iso_ns

__all__ = ["Bounce", "Implicated", "Loop", "LoopEvidence", "PointRole", "Summary"]


LoopKind = Literal["l3", "l2", "inferred"]
Role = Literal["uplink", "guest-link", "unknown"]


@dataclass(frozen=True, slots=True)
class Loop:
    """One loop: looping packets merged by destination and capture points (``docs/design.md``)."""

    id: int
    kind: LoopKind
    destination: str
    destination_prefix: str
    capture_points: tuple[str, ...]
    ttl_step: int | None
    first_ns: int
    last_ns: int
    looping_packets: int
    observations: int
    bytes: int
    amplification: float | None
    amplification_bytes: float | None
    cycle_time_ms: float | None
    extra_pps_mean: float | None
    extra_pps_peak: float | None
    sources: tuple[str, ...]
    protocols: Mapping[str, int]
    fates: Mapping[str, int]
    dropped_by: Mapping[str, int]
    icmp_time_exceeded: int
    icmp_senders: tuple[str, ...]
    missing_copies: int | None
    estimated: bool
    explanation: str = ""
    fixes: tuple[str, ...] = ()
    #: per entry TTL (TTL of the first copy at the loop's points): looping packets
    entry_ttls: Mapping[int, int] = field(default_factory=dict)
    #: how an inferred loop's numbers were estimated (None when its copies were seen)
    estimate_basis: str | None = None
    #: after the loop's last copy: packets for its destination the host dropped (seen
    #: at another point, never forwarded) and unreachable errors about them; None when
    #: no other point was captured
    after_end: Mapping[str, int] | None = None

    @property
    def duration_s(self) -> float:
        """Seconds from the first to the last copy."""
        return (self.last_ns - self.first_ns) / 1e9

    @property
    def first_seen(self) -> str | None:
        """ISO-8601 UTC of the first copy."""
        return iso_ns(self.first_ns)

    @property
    def last_seen(self) -> str | None:
        """ISO-8601 UTC of the last copy."""
        return iso_ns(self.last_ns)

    def to_json(self) -> dict[str, Any]:
        """This loop's entry in the JSON document's ``loops``."""
        return {
            "id": self.id,
            "kind": self.kind,
            "destination": self.destination,
            "destination_prefix": self.destination_prefix,
            "capture_points": list(self.capture_points),
            "ttl_step": self.ttl_step,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "duration_s": self.duration_s,
            "looping_packets": self.looping_packets,
            "observations": self.observations,
            "bytes": self.bytes,
            "amplification": self.amplification,
            "amplification_bytes": self.amplification_bytes,
            "cycle_time_ms": self.cycle_time_ms,
            "extra_pps_mean": self.extra_pps_mean,
            "extra_pps_peak": self.extra_pps_peak,
            "sources": list(self.sources),
            "protocols": dict(self.protocols),
            "fates": dict(self.fates),
            "dropped_by": dict(self.dropped_by),
            "icmp_time_exceeded": self.icmp_time_exceeded,
            "icmp_senders": list(self.icmp_senders),
            "missing_copies": self.missing_copies,
            "estimated": self.estimated,
            "estimate_basis": self.estimate_basis,
            "after_end": dict(self.after_end) if self.after_end is not None else None,
            "explanation": self.explanation,
            "fixes": list(self.fixes),
        }


@dataclass(frozen=True, slots=True)
class PointRole:
    """What a capture point is, how sure that is, and why (``docs/design.md``, *Words*)."""

    name: str
    role: Role
    confidence: Literal["strong", "weak", "given"]
    evidence: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """The role fields of this point's ``captures[]`` entry."""
        return {
            "role": self.role,
            "role_confidence": self.confidence,
            "role_evidence": list(self.evidence),
        }


@dataclass(frozen=True, slots=True)
class Bounce:
    """Packets to one destination that a guest returned once, then a filter dropped."""

    destination: str
    capture_point: str
    packets: int

    def to_json(self) -> dict[str, Any]:
        """This bounce's entry in the JSON document's ``bounces``."""
        return {
            "destination": self.destination,
            "capture_point": self.capture_point,
            "packets": self.packets,
        }


@dataclass(frozen=True, slots=True)
class Implicated:
    """An address to look at, and why (its roles)."""

    address: str
    roles: tuple[str, ...]
    capture_point: str | None
    packets: int

    def to_json(self) -> dict[str, Any]:
        """This address's entry in the JSON document's ``implicated``."""
        return {
            "address": self.address,
            "roles": list(self.roles),
            "capture_point": self.capture_point,
            "packets": self.packets,
        }


@dataclass(frozen=True, slots=True)
class Summary:
    """Totals over the whole analysis."""

    observations: int
    duplicates: int
    looping_packets: int  # seen looping; inferred loops' packets are counted apart
    inferred_looping_packets: int
    loop_observations: int
    loop_share: float
    loops: int
    bounces: int
    peak_loop_pps: float

    def to_json(self) -> dict[str, Any]:
        """The JSON document's ``summary``."""
        return {
            "observations": self.observations,
            "duplicates": self.duplicates,
            "looping_packets": self.looping_packets,
            "inferred_looping_packets": self.inferred_looping_packets,
            "loop_observations": self.loop_observations,
            "loop_share": self.loop_share,
            "loops": self.loops,
            "bounces": self.bounces,
            "peak_loop_pps": self.peak_loop_pps,
        }


@dataclass(frozen=True, slots=True, eq=False)
class LoopEvidence:
    """Packet-table rows of one loop, split by what they prove (for paths, plots, extract).

    * ``copies``: the rows the loop's ``observations`` counts (inferred
      loops: the arrivals that expired behind the capture point);
    * ``passages``: other observations of the same looping packets (the
      entry on the uplink, an exit elsewhere);
    * ``icmp``: ICMP errors tied to its looping packets;
    * ``paths``: path ids of its looping packets (``l3`` only);
    * ``kept``: the paths among them whose copies were kept, when a long loop kept a
      sample (None: all of ``paths``); the numbers count every path regardless.
    """

    loop_id: int
    copies: np.ndarray
    passages: np.ndarray
    icmp: np.ndarray
    paths: np.ndarray
    kept: np.ndarray | None = None

    @property
    def shown_paths(self) -> np.ndarray:
        """The paths whose copies can be shown (plots, ``paths``, ``extract``)."""
        return self.paths if self.kept is None else self.kept


@dataclass
class L2Tally:
    """Copies of a layer-2 loop counted but not kept as evidence (past the sample):
    exact counters, so a storm that lasts an hour costs a few numbers per second."""

    copies: int = 0
    bytes: int = 0
    first_ns: int = 1 << 62
    last_ns: int = -(1 << 62)
    per_second: dict[int, int] = field(default_factory=dict)

    def add(self, time_ns: np.ndarray, wirelen: np.ndarray) -> None:
        """Count these copies."""
        self.copies += len(time_ns)
        self.bytes += int(wirelen.astype(np.int64).sum())
        self.first_ns = min(self.first_ns, int(time_ns.min()))
        self.last_ns = max(self.last_ns, int(time_ns.max()))
        secs, counts = np.unique(time_ns // 1_000_000_000, return_counts=True)
        for sec, n in zip(secs.tolist(), counts.tolist()):
            self.per_second[sec] = self.per_second.get(sec, 0) + n


@dataclass
class Correlation:
    """Paths of repeated fingerprints (what :mod:`.correlate` states and :mod:`.detect`
    classified); ``rows`` index into the packets columns."""

    rows: np.ndarray  # packet row of each path observation
    path: np.ndarray  # path id per row
    plane: np.ndarray  # (point, vlan) id per row
    direction: np.ndarray  # direction per row after inference
    loop_copy: np.ndarray  # bool: copy at a point where its path has replicas
    n_paths: int
    p_loop: np.ndarray  # bool per path
    p_bounce: np.ndarray
    p_step: np.ndarray
    p_bounce_plane: np.ndarray
    plane_point: np.ndarray  # point index of each plane
    l2_rows: np.ndarray  # rows of same-TTL copies repeating over time
    plane_key: np.ndarray  # point * 8192 + vlan + 1 of each plane
    duplicates: int = 0
    overlaps: list[tuple[str, str, int]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: (dst_hi, dst_lo, point) → packets for a looping destination seen once, after
    #: its last loop copy (the host dropped them)
    after_loop: dict[tuple[int, int, int], int] = field(default_factory=dict)
    #: (dst_hi, dst_lo, point) → layer-2 copies counted beyond the evidence kept
    l2_tally: dict[tuple[int, int, int], L2Tally] = field(default_factory=dict)
    #: detect's per-path table of every looping path, built window by window while
    #: streaming (None: detect builds it from the rows; see :mod:`.window`)
    path_summary: Any = None
    #: (dst_hi, dst_lo) → second → copies of looping paths not kept as rows
    l3_tally: dict[tuple[int, int], dict[int, int]] = field(default_factory=dict)
