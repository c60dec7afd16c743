"""Correlate stage: observations → paths (``docs/design.md``, *Words*).

Correlate states facts; the rules it applies on the way are :mod:`.detect`'s.
Steps, all vectorised or compiled:

1. keep only fingerprints seen more than once (a singleton cannot loop);
2. group identical copies (same fingerprint, TTL, point, VLAN) into runs;
   detect's :func:`~.detect.repeat_verdicts` says which are duplicates
   (counted once) and which layer-2 repeats (set aside);
3. find **overlapping inputs** (two capture points that are the same
   interface: identical copies at both);
4. infer **direction** on Ethernet points that do not record it, from the
   MAC that forwards packets arriving from elsewhere;
5. split each fingerprint into **paths** ordered by TTL; detect's
   :func:`~.detect.classify_paths` says which loop or bounce;
6. count what the paths say about each point's role (:mod:`.roles`): the
   host's forwarding between points, where looping packets entered.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .. import schema as S
from ..schema import Columns
from ._kernels import assign_paths
from .detect import classify_paths, repeat_verdicts, sent_again_on_purpose
from .model import Correlation
from .options import Options
from .roles import UPLINK_NAME, RoleFacts, guest_link_by_name, note_crossings, note_loops


@dataclass
class CorrelationState:
    """What correlate learns across the windows of one stream (see :mod:`.window`).

    Decisions that need evidence from the whole capture — which MAC is the
    host's on a link, which two capture points are one interface — are taken
    from everything seen so far; one call over a whole table starts empty.
    ``guest_links`` / ``uplinks``: names given on the command line, which
    stand in for evidence where a single link cannot show its direction.
    """

    twins: Counter[int] = field(default_factory=Counter)  # point pair key → twin copies
    known: Counter[int] = field(default_factory=Counter)  # point → copies with direction
    votes: dict[int, Counter[int]] = field(default_factory=dict)  # point → forwarding MACs
    firsts: dict[int, Counter[int]] = field(default_factory=dict)  # point → first-copy MACs
    macs: dict[int, set[int]] = field(default_factory=dict)  # point → a few source MACs (≤ 3)
    #: point → MACs its recorded outgoing frames came from (≤ 4): the host's interfaces
    senders: dict[int, set[int]] = field(default_factory=dict)
    overlaps: dict[tuple[int, int], int] = field(default_factory=dict)  # (kept, dropped) → n
    roles: RoleFacts = field(default_factory=RoleFacts)
    hinted: set[int] = field(default_factory=set)  # points whose direction came from a hint
    guest_links: frozenset[str] = frozenset()
    uplinks: frozenset[str] = frozenset()
    #: the input was cut short by Ctrl-C: the analysis covers what was read
    interrupted: bool = False

    def side_hint(self, name: str) -> bool | None:
        """True: a guest link, False: an uplink, None: nothing says (given, else by name)."""
        if name in self.guest_links:
            return True
        if name in self.uplinks:
            return False
        if guest_link_by_name(name):
            return True
        return False if UPLINK_NAME.match(name) else None

    def host_mac(self, point: int) -> int | None:
        """The MAC that forwarded most packets into ``point`` (the host's), if known."""
        votes = self.votes.get(point)
        return max(votes, key=lambda m: votes[m]) if votes else None


#: the packet columns :func:`correlate` reads
CORRELATE_COLUMNS = (
    "fingerprint",
    "ttl",
    "point",
    "vlan",
    "time_ns",
    "direction",
    "eth_src",
    "protocol",
    "icmp_type",
    "tcp_flags",
    "sport",
    "dport",
    "dst_hi",
    "dst_lo",
)


def repeated_rows(fp: np.ndarray) -> np.ndarray:
    """Rows whose fingerprint occurs at least twice, ordered by (fingerprint, row)."""
    order = np.argsort(fp, kind="stable")
    f = fp[order]
    if len(f) == 0:
        return order
    start = np.r_[True, f[1:] != f[:-1]]
    gid = np.cumsum(start) - 1
    sizes = np.bincount(gid)
    out: np.ndarray = order[sizes[gid] >= 2]
    return out


def _runs(keys: list[np.ndarray]) -> np.ndarray:
    """Run id per row of arrays already sorted by ``keys``."""
    n = len(keys[0])
    if n == 0:
        return np.zeros(0, np.int64)
    change = np.zeros(n, dtype=bool)
    change[0] = True
    for k in keys:
        change[1:] |= k[1:] != k[:-1]
    out: np.ndarray = np.cumsum(change) - 1
    return out


def _dedup(
    cols: Columns, cand: np.ndarray, opt: Options
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split candidates into kept rows, duplicates and layer-2 repeats."""
    fp, ttl = cols["fingerprint"][cand], cols["ttl"][cand]
    pt, vl, t = cols["point"][cand], cols["vlan"][cand], cols["time_ns"][cand]
    o = np.lexsort((t, vl, pt, ttl, fp))
    ts = t[o]
    # identical bytes re-sent after a silence are another packet, not another copy
    later = np.r_[False, np.diff(ts) > opt.path_gap_ns] if len(ts) else np.zeros(0, bool)
    run = _runs([fp[o], ttl[o], pt[o], vl[o], np.cumsum(later)])
    nrun = run[-1] + 1 if len(run) else 0
    first = np.r_[True, run[1:] != run[:-1]] if len(run) else np.zeros(0, bool)
    size = np.bincount(run, minlength=nrun)
    span = np.zeros(nrun, np.int64)
    starts = np.flatnonzero(first)
    if len(run):
        span = np.maximum.reduceat(ts, starts) - np.minimum.reduceat(ts, starts)
    on_purpose = sent_again_on_purpose(cols, cand[o][starts])
    dup_run, l2_run = repeat_verdicts(size, span, on_purpose, opt)
    is_dup = dup_run[run] & ~first
    is_l2 = l2_run[run]
    rows = cand[o]
    return rows[~is_dup & ~is_l2], rows[is_dup], rows[is_l2]


def _overlaps(
    cols: Columns,
    rows: np.ndarray,
    names: Sequence[str],
    decoded: np.ndarray,
    opt: Options,
    state: CorrelationState,
) -> tuple[np.ndarray, list[tuple[str, str, int]], int]:
    """Find capture points that are the same interface; drop the secondary's twins."""
    fp, ttl, pt, t = (cols[k][rows] for k in ("fingerprint", "ttl", "point", "time_ns"))
    known_pts = pt[cols["direction"][rows] != 0]
    if len(known_pts):
        for p, c in zip(*np.unique(known_pts, return_counts=True)):
            state.known[int(p)] += int(c)
    o = np.lexsort((t, ttl, fp))
    fo, to, po, tso = fp[o], ttl[o], pt[o], t[o]
    twin = (
        (fo[1:] == fo[:-1])
        & (to[1:] == to[:-1])
        & (po[1:] != po[:-1])
        & (np.abs(tso[1:] - tso[:-1]) <= opt.dup_window_ns)
    )
    idx = np.flatnonzero(twin)
    if len(idx) == 0:
        return rows, [], 0
    a, b = po[idx].astype(np.int64), po[idx + 1].astype(np.int64)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    pair = lo * 65536 + hi
    uniq, counts = np.unique(pair, return_counts=True)
    drop = np.zeros(len(rows), dtype=bool)
    found = []
    known = state.known
    for pr, c in zip(uniq, counts):
        p1, p2 = int(pr // 65536), int(pr % 65536)
        state.twins[int(pr)] += int(c)
        if state.twins[int(pr)] < opt.overlap_share * max(1, min(decoded[p1], decoded[p2])):
            continue
        keep, lose = (p1, p2) if known[p1] >= known[p2] else (p2, p1)
        sel = idx[pair == pr]
        first_is_lose = po[sel] == lose
        victims = np.where(first_is_lose, o[sel], o[sel + 1])
        drop[victims] = True
        found.append((names[keep], names[lose], int(c)))
        state.overlaps[(keep, lose)] = state.overlaps.get((keep, lose), 0) + int(c)
    return rows[~drop], found, int(drop.sum())


def _note_senders(cols: Columns, rows: np.ndarray, state: CorrelationState) -> None:
    """Remember a few source MACs of frames a capture recorded as outgoing, per point."""
    out = rows[(cols["direction"][rows] == S.DIR_OUT) & (cols["eth_src"][rows] != S.NO_MAC)]
    if not len(out):
        return
    key = cols["point"][out].astype(np.uint64) << np.uint64(48) | cols["eth_src"][out]
    for k in np.unique(key).tolist():
        seen = state.senders.setdefault(k >> 48, set())
        if len(seen) < 4:
            seen.add(k & 0xFFFFFFFFFFFF)


def _infer_direction(
    cols: Columns,
    rows: np.ndarray,
    names: Sequence[str],
    direction: np.ndarray,
    state: CorrelationState,
) -> None:
    """Give Ethernet points without direction one (in place) from the host's MAC on that link.

    The host's MAC is the source of copies whose fingerprint was seen at
    another point with a higher TTL (the host forwarded them here).  Without
    another point, only a role given on the command line (or a name) can say
    which side sent the first copy: into a guest link the host forwards it,
    on an uplink it arrives; otherwise the direction stays unknown.
    """
    pt = cols["point"][rows]
    src = cols["eth_src"][rows]
    for p in np.unique(pt):
        at = (pt == p) & (direction == S.DIR_UNKNOWN) & (src != S.NO_MAC)
        if not at.any():
            continue
        host = _host_mac(cols, rows, at, int(p), state.side_hint(names[int(p)]), state)
        if host is None:
            continue
        direction[at] = np.where(src[at] == host, S.DIR_OUT, S.DIR_IN)


def _host_mac(
    cols: Columns,
    rows: np.ndarray,
    at: np.ndarray,
    p: int,
    guest_hint: bool | None,
    state: CorrelationState,
) -> np.uint64 | None:
    fp, ttl, pt = cols["fingerprint"][rows], cols["ttl"][rows], cols["point"][rows]
    src = cols["eth_src"][rows]
    elsewhere = ~at & (pt != p)
    votes = state.votes.setdefault(p, Counter())
    if elsewhere.any():
        # max TTL seen elsewhere per fingerprint
        fe, te = fp[elsewhere], ttl[elsewhere].astype(np.int64)
        o = np.argsort(fe, kind="stable")
        fe, te = fe[o], te[o]
        starts = np.flatnonzero(np.r_[True, fe[1:] != fe[:-1]])
        ufp, umax = fe[starts], np.maximum.reduceat(te, starts)
        here = np.flatnonzero(at)
        k = np.searchsorted(ufp, fp[here])
        k = np.minimum(k, len(ufp) - 1)
        hit = ufp[k] == fp[here]
        fwd = hit & (umax[k] == ttl[here].astype(np.int64) + 1)
        for mac in src[here[fwd]]:
            votes[int(mac)] += 1
    if votes:
        return np.uint64(max(votes, key=lambda m: votes[m]))
    here = np.flatnonzero(at)
    o = np.lexsort((-ttl[here].astype(np.int64), fp[here]))
    h = here[o]
    firsts = h[np.r_[True, fp[h][1:] != fp[h][:-1]]]
    first_macs = state.firsts.setdefault(p, Counter())
    for mac, c in zip(*np.unique(src[firsts], return_counts=True)):
        first_macs[int(mac)] += int(c)
    seen = state.macs.setdefault(p, set())
    for mac in np.unique(src[here])[:3]:
        if len(seen) < 3:
            seen.add(int(mac))
    if not first_macs or guest_hint is None:
        return None
    state.hinted.add(p)
    top = max(sorted(first_macs), key=lambda m: first_macs[m])  # ties: the lowest MAC
    if guest_hint:
        return np.uint64(top)
    others = seen - {top}
    return np.uint64(others.pop()) if len(others) == 1 else None


def _label_by_parity(
    path: np.ndarray,
    plane: np.ndarray,
    point: np.ndarray,
    ttl: np.ndarray,
    direction: np.ndarray,
    names: Sequence[str],
    state: CorrelationState,
) -> None:
    """Directions for copies on links that record none and have no MACs (raw IP, SLL v1).

    On one link a looping packet alternates host→peer and peer→host, so its
    direction follows the parity of the TTL lost since its first copy there.
    The first copy went out when the host forwarded it in from elsewhere (seen
    at another point with one more TTL); one that no other captured point saw
    came in from the far side.  With one point only, a guest link (by
    ``--guest-link`` or its name) has the host send the first copy.  Labels
    only: detection already handled these lanes as direction-unknown.
    """
    unknown = direction == S.DIR_UNKNOWN
    if not unknown.any():
        return
    df_path, df_plane = path[unknown], plane[unknown]
    t = ttl[unknown]
    key = df_path * (int(plane.max()) + 1) + df_plane
    order = np.argsort(key, kind="stable")
    k_sorted = key[order]
    starts = np.flatnonzero(np.r_[True, k_sorted[1:] != k_sorted[:-1]])
    first_ttl = np.maximum.reduceat(t[order], starts)
    group = np.empty(len(key), dtype=np.int64)
    group[order] = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(key)]))
    g_first = first_ttl[group]
    # seen with one TTL more (necessarily at another point): the host forwarded it here
    seen = path.astype(np.int64) * 512 + ttl.astype(np.int64)
    came_in = np.isin(df_path.astype(np.int64) * 512 + g_first.astype(np.int64) + 1, seen)
    per_point = [state.side_hint(n) for n in names]  # once per point, not per row
    pts = point[unknown].astype(np.int64)
    guest = np.array([h is True for h in per_point], dtype=bool)[pts]
    known = np.array([h is not None for h in per_point], dtype=bool)[pts]
    # with other points captured, a packet none of them saw first was sent from this
    # link's far side (a guest feeding itself); alone, only a name or --guest-link says
    first_out = came_in | (guest & (len(names) == 1))
    even = (g_first - t) % 2 == 0
    labels = np.where(even == first_out, S.DIR_OUT, S.DIR_IN).astype(np.int8)
    idx = np.flatnonzero(unknown)
    direction[idx] = np.where(known | came_in, labels, S.DIR_UNKNOWN)


def correlate(
    cols: Columns,
    names: Sequence[str],
    decoded: np.ndarray,
    opt: Options | None = None,
    state: CorrelationState | None = None,
) -> Correlation:
    """Build paths from the raw packet columns (sorted by time).

    Reads only the columns in :data:`CORRELATE_COLUMNS`.  ``decoded``: rows
    per capture point so far (for the overlap share); ``state`` carries
    what earlier windows of a stream learnt (and gathers the role facts).
    """
    opt = opt or Options()
    state = state if state is not None else CorrelationState()
    cand = repeated_rows(cols["fingerprint"])
    kept, dups, l2 = _dedup(cols, cand, opt)
    kept, overlaps, n_overlap = _overlaps(cols, kept, names, decoded, opt, state)
    warnings = [
        f"capture points {a} and {b} look like the same interface ({n} identical "
        "copies); counted once"
        for a, b, n in overlaps
    ]
    kept = np.sort(kept)  # back to time order
    _note_senders(cols, kept, state)
    direction = cols["direction"][kept].astype(np.int8).copy()
    _infer_direction(cols, kept, names, direction, state)
    pt = cols["point"][kept].astype(np.int64)
    vl = cols["vlan"][kept].astype(np.int64)
    pv = pt * 8192 + (vl + 1)
    uplanes, plane = np.unique(pv, return_inverse=True)
    plane = plane.astype(np.int64).ravel()
    lane = plane * 3 + direction
    fp, t = cols["fingerprint"][kept], cols["time_ns"][kept]
    ttl = cols["ttl"][kept].astype(np.int64)
    o = np.lexsort((t, fp))
    path = np.empty(len(kept), dtype=np.int64)
    npaths = 0
    if len(kept):
        in_order = np.empty(len(kept), dtype=np.int64)
        npaths = int(
            assign_paths(
                fp[o],
                t[o],
                lane[o],
                ttl[o],
                len(uplanes) * 3,
                opt.reorder_ns,
                opt.path_gap_ns,
                in_order,
            )
        )
        path[o] = in_order
    s = np.lexsort((-ttl, direction, plane, path))
    p_loop, p_bounce, p_step, p_bplane, rl = classify_paths(
        path[s], plane[s], direction[s], ttl[s], npaths
    )
    row_loop = np.zeros(len(kept), bool)
    row_loop[s] = rl
    # role facts from what the packets show: not from directions a name suggested
    shown = direction.copy()
    shown[np.isin(pt, list(state.hinted))] = S.DIR_UNKNOWN
    note_crossings(state.roles, cols, kept, path, ttl, p_loop)
    note_loops(state.roles, cols, kept, path, ttl, shown, row_loop, p_loop)
    _label_by_parity(path, plane, pt, ttl, direction, names, state)
    return Correlation(
        rows=kept,
        path=path,
        plane=plane,
        direction=direction,
        loop_copy=row_loop,
        n_paths=npaths,
        p_loop=p_loop,
        p_bounce=p_bounce,
        p_step=p_step,
        p_bounce_plane=p_bplane,
        plane_point=(uplanes // 8192).astype(np.int64),
        l2_rows=l2,
        plane_key=uplanes.astype(np.int64),
        duplicates=len(dups) + n_overlap,
        overlaps=overlaps,
        warnings=warnings,
    )
