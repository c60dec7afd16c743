"""Tunables of the analysis stages, in one place; the defaults suit the incidents in
``docs/design.md``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Options:
    """Thresholds of correlate and detect (nanoseconds unless named otherwise)."""

    dup_window_ns: int = 50_000  # same frame twice within this: a duplicate
    reorder_ns: int = 2_000_000  # tolerated timestamp disorder inside a path
    path_gap_ns: int = 1_000_000_000  # silence that ends a path
    overlap_share: float = 0.5  # share of twins that makes two points one interface
    l2_max_gap_ns: int = 10_000_000  # same-TTL copies this close (mean) circulate at layer 2
    l2_min_copies: int = 16  # ... and at least this many of them: a loop, not a retry
    loop_min_entry_ttl: int = 4  # a packet needs T-1 >= 3 passes for a replica
    merge_gap_ns: int = 10_000_000_000
    merge_prefix: int | None = None
    # streaming (analysis.window): how far behind the other captures a capture's
    # timestamps may be, and the longest a fingerprint is held open
    reorder_window_ns: int = 500_000_000
    group_max_ns: int = 60_000_000_000
