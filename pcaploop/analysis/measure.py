"""Measure stage: the numbers of every loop, bounce and implicated address.

Measure only counts: what is a loop was decided by :mod:`.detect`.  Rows
are grouped by loop once (a sort), and each loop's numbers come from its
own slices, so the cost is linear in the evidence however many loops there
are (a scanner sweeping a routed range makes thousands of loops of one
packet each).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from functools import lru_cache
from typing import cast

import numpy as np
import pandas as pd

from .. import schema as S
from ..addr import mac_text, network_text, to_text
from ..decode import protocols as P
from . import _grouped as G
from .detect import (
    Detection,
    is_guest_link,
    redirect_index,
    unreachable_index,
)
from .explain import explain
from .model import (
    Bounce,
    Correlation,
    Implicated,
    L2Tally,
    Loop,
    LoopEvidence,
    LoopKind,
    PointRole,
    Role,
)
from .options import Options

_NS = 1_000_000_000
_NO_ROWS = np.zeros(0, np.int64)


def _per_second_peak(
    times: np.ndarray, firsts: np.ndarray, tally: Mapping[int, int] | None = None
) -> float:
    """Most extra packets (copies minus new looping packets) in any one second;
    ``tally``: more copies, counted per second (:class:`L2Tally`).  One loop's
    :func:`_peaks_of`."""
    tally = tally or {}
    return _peaks_of(
        np.zeros(len(times), np.int64),
        np.asarray(times, dtype=np.int64) // _NS,
        np.zeros(len(firsts), np.int64),
        np.asarray(firsts, dtype=np.int64) // _NS,
        np.zeros(len(tally), np.int64),
        np.fromiter(tally.keys(), np.int64, len(tally)),
        np.fromiter(tally.values(), np.float64, len(tally)),
        1,
    )[0]


def _peaks_of(
    copy_g: np.ndarray,
    copy_sec: np.ndarray,
    first_g: np.ndarray,
    first_sec: np.ndarray,
    tally_g: np.ndarray,
    tally_sec: np.ndarray,
    tally_n: np.ndarray,
    n: int,
) -> list[float]:
    """Per group of ``n``, the most extra packets in any one second: its copies (+1
    each) and tallied copies, less its looping packets' first passes (-1 each);
    0 for a group without a copy.  Seconds are sparse bins (a crafted capture can
    spread a loop's copies over centuries)."""
    g, sums = G.sums_by_pair(
        np.concatenate([copy_g, first_g, tally_g]),
        np.concatenate([copy_sec, first_sec, tally_sec]),
        np.concatenate([np.ones(len(copy_g)), -np.ones(len(first_g)), tally_n]),
    )
    best = np.full(n, -np.inf)
    np.maximum.at(best, g, sums)
    has_copies = np.bincount(copy_g[copy_g >= 0], minlength=n)[:n] > 0
    peaks: list[float] = np.where(has_copies, np.maximum(best, 0), 0.0).tolist()
    return peaks


def _protocols(protos: np.ndarray) -> dict[str, int]:
    """Packets per protocol name: one loop's :func:`_protocols_by_group`."""
    return _protocols_by_group(np.zeros(len(protos), np.int64), np.asarray(protos, np.int64), 1)[0]


_text = lru_cache(maxsize=1 << 16)(to_text)  # a loop's sources and senders repeat


def _addresses(hi: np.ndarray, lo: np.ndarray, limit: int | None = None) -> tuple[str, ...]:
    """Distinct addresses as sorted text (at most ``limit``): one group's
    :func:`_texts_by_group`."""
    return _texts_by_group(np.zeros(len(hi), np.int64), hi, lo, 1, limit)[0]


def _groups(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order, distinct keys, start of each key's run in ``order``) of an integer array."""
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    starts = np.flatnonzero(np.r_[True, k[1:] != k[:-1]]) if len(k) else _NO_ROWS
    return order, k[starts], starts


def _group_ids(*keys: np.ndarray) -> np.ndarray:
    """Per row, the number of its distinct key tuple (in key order), from one lexsort:
    ``np.unique(axis=0)`` sorts rows as byte strings, seconds for a million."""
    n = len(keys[0])
    if n == 0:
        return _NO_ROWS
    o = np.lexsort(keys[::-1])
    new = np.zeros(n, dtype=bool)
    new[0] = True
    for k in keys:
        ks = k[o]
        new[1:] |= ks[1:] != ks[:-1]
    ids = np.empty(n, np.int64)
    ids[o] = np.cumsum(new) - 1
    return ids


def _first_of_each(values: np.ndarray) -> np.ndarray:
    """Positions of the first occurrence of each distinct value (ascending)."""
    if not len(values):
        return _NO_ROWS
    o = np.argsort(values, kind="stable")
    v = values[o]
    first = o[np.r_[True, v[1:] != v[:-1]]]
    return np.sort(first)


def _slices(keys: np.ndarray) -> dict[int, np.ndarray]:
    """Key → positions holding it, from one sort (no scan of all rows per key)."""
    order, uniq, starts = _groups(keys)
    ends = np.r_[starts[1:], len(order)]
    return {int(u): order[s:e] for u, s, e in zip(uniq, starts, ends)}


def _fate_counts(
    expired: int, escaped: int, paths: int, peer: int, host: int, role: Role
) -> tuple[dict[str, int], dict[str, int]]:
    """Fates of ``paths`` looping paths and who dropped the ``expired`` ones, of which
    ``peer`` were last sent out by the host and ``host`` last came in.

    The receiver of the TTL-1 copy drops it: a copy the host sent (out) is
    dropped by the peer — the guest on a guest link, the upstream router on
    an uplink — and a copy the host received (in) by the host.  When the
    link's role is unknown, so is the peer.
    """
    fates = {
        "expired": expired,
        "escaped": escaped,
        "capture-ended": paths - escaped - expired,
    }
    dropped = {"guest": 0, "host": host, "unknown": expired - peer - host}
    if role == "guest-link":
        dropped["guest"] = peer
    elif role == "uplink":
        dropped["router"] = peer
    else:
        dropped["unknown"] += peer
    return fates, dropped


def _peer_role(
    cols: Mapping[str, np.ndarray],
    rows: np.ndarray,
    path: np.ndarray,
    direction: np.ndarray,
    redirected: bool,
) -> Role:
    """The link role of a loop's peer, from the MACs of the copies it returned.

    On a point that folds several links (or whose role nothing shows), each
    looping packet's first copy came in from the neighbour that handed it to
    the host, and the copies that came back in from the loop's peer.  A peer
    other than that neighbour is downstream of the host: a guest.  The same
    neighbour is a guest only when the host told it to send elsewhere (a
    redirect: the sender is on that link, feeding itself); otherwise it is the
    upstream router, handing back what it was given.
    """
    mac = cols["eth_src"][rows]
    inn = (direction == S.DIR_IN) & (mac != S.NO_MAC)
    if not inn.any():
        return "unknown"
    o = np.lexsort((-cols["ttl"][rows].astype(np.int64), path))
    p_, m_, in_ = path[o], mac[o], inn[o]
    first = np.r_[True, p_[1:] != p_[:-1]]
    entry, peer = set(m_[first & in_].tolist()), set(m_[~first & in_].tolist())
    if not peer or not entry:
        return "unknown"
    if peer - entry:
        return "guest-link"
    return "guest-link" if redirected else "uplink"


def _loop_role(points: Sequence[str], role_of: Mapping[str, Role]) -> Role:
    """The role of the links a loop circulates on (a guest link wins: the host's side)."""
    roles = {role_of.get(p, "unknown") for p in points}
    if "guest-link" in roles:
        return "guest-link"
    return "uplink" if roles == {"uplink"} else "unknown"


def _after_end(
    corr: Correlation,
    unreach: Mapping[tuple[int, int], np.ndarray],
    t: np.ndarray,
    dst_hi: int,
    dst_lo: int,
    n_points: int,
    last_ns: int,
) -> dict[str, int]:
    """Packets for the destination seen once (they went nowhere) after the loop's last
    copy, at any capture point, and the unreachable errors about it since."""
    n = sum(corr.after_loop.get((dst_hi, dst_lo, p), 0) for p in range(n_points))
    err = unreach.get((dst_hi, dst_lo), _NO_ROWS)
    return {"packets": int(n), "unreachable_errors": int((t[err] > last_ns).sum())}


def _seconds_of(
    det: Detection, dst: tuple[int, int], first_ns: int, last_ns: int
) -> dict[int, int] | None:
    """Copies of a destination's looping paths that were counted but not kept, per second
    of the loop's span (the peak rate counts them too)."""
    bins = det.l3_tally.get(dst)
    if not bins:
        return None
    lo, hi = first_ns // _NS, last_ns // _NS
    return {sec: n for sec, n in bins.items() if lo <= sec <= hi}


def _l3_loops(
    cols: dict[str, np.ndarray],
    corr: Correlation,
    det: Detection,
    opt: Options,
    role_of: Mapping[str, Role],
    names: Sequence[str],
    peer_role: dict[int, Role],
) -> list[tuple[Loop, LoopEvidence]]:
    """Every l3 loop from detect's per-path table, grouped once.

    Every statistic is computed for all loops at once (:mod:`._grouped`):
    the cost is linear in the evidence, and per loop only its record is built.
    ``peer_role`` is filled with the role of the links of loops whose points
    have none, where the MACs of the returned copies tell it (:func:`_peer_role`).
    """
    paths = det.looping
    peer_role.clear()
    if paths.empty:
        return []
    pid_all = paths.index.to_numpy(np.int64)
    lg = G.Groups.of(paths["loop"].to_numpy(np.int64))  # loops in id order
    n_loops = len(lg)
    gi = lg.number  # the loop number of each path, paths in loop order
    pid = pid_all[lg.order]
    group_of_path = np.full(corr.n_paths, -1, np.int64)
    group_of_path[pid] = gi
    c = {k: paths[k].to_numpy()[lg.order] for k in _L3_COLUMNS}

    first = lg.min(c["first_ns"]).tolist()
    last = lg.max(c["last_ns"]).tolist()
    n_paths = lg.sizes.tolist()
    obs = lg.sum(c["copies"]).tolist()
    nbytes = lg.sum(c["bytes"]).tolist()
    first_bytes = lg.sum(c["first_bytes"]).tolist()
    # a loop merged over a prefix is named after its first packet's destination (path ids
    # follow the run's random fingerprint key: the first path by id would vary by run)
    o = np.lexsort((c["dst_lo"], c["dst_hi"], c["first_ns"], gi))
    head = o[np.r_[True, gi[o][1:] != gi[o][:-1]]]
    dst_hi = c["dst_hi"][head].tolist()
    dst_lo = c["dst_lo"][head].tolist()
    steps = c["ttl_step"].astype(np.int64)
    step = G.mode(gi, steps, n_loops).tolist()
    span = c["loop_max_ttl"] - c["loop_min_ttl"]
    cycles = span / np.maximum(steps, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ct = (c["last_ns"] - c["first_ns"]) / np.where(cycles > 0, cycles, np.nan)
    cycle_ms = (G.median(gi, ct, n_loops) / 1e6).tolist()
    short = np.maximum(span + 1 - c["copies"], 0)
    missing = lg.sum(short).tolist()
    small_steps = (lg.max(steps) <= 2).tolist()

    te = det.time_exceeded
    expired_te = np.zeros(corr.n_paths, bool)
    if len(te):
        expired_te[te["path"].to_numpy(np.int64)] = True
    escaped = c["escaped"].astype(bool)
    expired = ~escaped & ((c["min_ttl"] <= 1) | expired_te[pid])
    last_dir = c["last_direction"]
    n_expired = lg.sum(expired).tolist()
    n_escaped = lg.sum(escaped).tolist()
    n_peer = lg.sum(expired & (last_dir == S.DIR_OUT)).tolist()
    n_host = lg.sum(expired & (last_dir == S.DIR_IN)).tolist()

    # the rows of each loop, sorted: its copies, its other observations, its ICMP errors
    lr = det.loop_rows
    copy_rows = lr["row"].to_numpy(np.int64)
    copy_path = lr["path"].to_numpy(np.int64)
    copy_g = group_of_path[copy_path]
    copies = G.runs(copy_g, copy_rows, n_loops)
    kept = G.runs(copy_g, copy_path, n_loops, unique=True)
    every_g = group_of_path[corr.path]
    every_rows = corr.rows.astype(np.int64)
    # a row is one observation of one path: a copy of its loop iff it is a copy at all
    passage = (every_g >= 0) & ~np.isin(every_rows, copy_rows)
    passages = G.runs(np.where(passage, every_g, -1), every_rows, n_loops, unique=True)
    te_rows = te["row"].to_numpy(np.int64)
    te_g = group_of_path[te["path"].to_numpy(np.int64)] if len(te) else _NO_ROWS
    icmp = G.runs(te_g, te_rows, n_loops)
    path_ids = G.runs(gi, pid, n_loops)

    # per loop: distinct sources, ICMP senders, protocols, first TTLs, capture points
    sources = _texts_by_group(gi, c["src_hi"], c["src_lo"], n_loops, 20)
    te_ok = te_g >= 0
    senders = _texts_by_group(
        te_g[te_ok],
        cols["src_hi"][te_rows[te_ok]],
        cols["src_lo"][te_rows[te_ok]],
        n_loops,
    )
    protocols = _protocols_by_group(gi, c["protocol"].astype(np.int64), n_loops)
    entry = _counts_by_group(gi, c["loop_max_ttl"].astype(np.int64), n_loops)
    points = _points_by_group(gi, c["points"], n_loops)
    peak = _peaks(
        det,
        cols["time_ns"],
        copy_g,
        copy_rows,
        gi,
        c["first_ns"],
        dst_hi,
        dst_lo,
        first,
        last,
        n_loops,
    )

    unreach = unreachable_index(cols)
    redirects = redirect_index(cols)
    every_pos: G.Runs | None = None  # every observation's position, for _peer_role
    out = []
    for k, lid in enumerate(lg.keys.tolist()):
        dst = _text(dst_hi[k], dst_lo[k])
        n = n_paths[k]
        dur = (last[k] - first[k]) / _NS
        pts = points[k]
        role = _loop_role(pts, role_of)
        if role == "unknown":  # a folded point, or no evidence: the MACs may say who the peer is
            if every_pos is None:
                every_pos = G.runs(every_g, np.arange(len(every_g), dtype=np.int64), n_loops)
            seen = every_pos.of(k)
            role = _peer_role(
                cols,
                corr.rows[seen],
                corr.path[seen],
                corr.direction[seen],
                (dst_hi[k], dst_lo[k]) in redirects,
            )
            if role != "unknown":
                peer_role[lid] = role
        fates, dropped = _fate_counts(n_expired[k], n_escaped[k], n, n_peer[k], n_host[k], role)
        loop = Loop(
            id=lid,
            kind="l3",
            destination=dst,
            destination_prefix=network_text(dst, opt.merge_prefix),
            capture_points=pts,
            ttl_step=step[k],
            first_ns=first[k],
            last_ns=last[k],
            looping_packets=n,
            observations=obs[k],
            bytes=nbytes[k],
            amplification=obs[k] / n,
            amplification_bytes=nbytes[k] / max(1, first_bytes[k]),
            cycle_time_ms=None if math.isnan(cycle_ms[k]) else cycle_ms[k],
            extra_pps_mean=(obs[k] - n) / dur if dur > 0 else None,
            extra_pps_peak=peak[k],
            sources=sources[k],
            protocols=protocols[k],
            fates=fates,
            dropped_by=dropped,
            icmp_time_exceeded=icmp.count(k),
            icmp_senders=senders[k],
            missing_copies=missing[k] if small_steps[k] else None,
            estimated=False,
            entry_ttls=entry[k],
            after_end=_after_end(
                corr, unreach, cols["time_ns"], dst_hi[k], dst_lo[k], len(names), last[k]
            ),
        )
        shown = kept.of(k)
        ev = LoopEvidence(
            lid,
            copies.of(k),
            passages.of(k),
            icmp.of(k),
            path_ids.of(k),
            shown if len(shown) < n else None,
        )
        out.append((loop, ev))
    return out


#: the per-path columns of detect's table that measure reads
_L3_COLUMNS = (
    "first_ns",
    "last_ns",
    "copies",
    "bytes",
    "loop_max_ttl",
    "loop_min_ttl",
    "ttl_step",
    "src_hi",
    "src_lo",
    "protocol",
    "first_bytes",
    "min_ttl",
    "escaped",
    "last_direction",
    "dst_hi",
    "dst_lo",
    "points",
)


def _texts_by_group(
    group: np.ndarray, hi: np.ndarray, lo: np.ndarray, n: int, limit: int | None = None
) -> list[tuple[str, ...]]:
    """Per group, its distinct addresses as sorted text (at most ``limit``), as
    :func:`_addresses` gives for one."""
    out: list[list[str]] = [[] for _ in range(n)]
    g, (h, lw), _ = G.pair_counts(group, np.asarray(hi, np.uint64), np.asarray(lo, np.uint64))
    for k, a, b in zip(g.tolist(), h.tolist(), lw.tolist()):
        out[k].append(_text(a, b))
    return [tuple(sorted(t)[:limit] if limit is not None else sorted(t)) for t in out]


def _counts_by_group(group: np.ndarray, values: np.ndarray, n: int) -> list[dict[int, int]]:
    """Per group, rows per distinct value (ascending)."""
    out: list[dict[int, int]] = [{} for _ in range(n)]
    g, (v,), cnt = G.pair_counts(group, values)
    for k, val, m in zip(g.tolist(), v.tolist(), cnt.tolist()):
        out[k][val] = m
    return out


def _protocols_by_group(group: np.ndarray, protos: np.ndarray, n: int) -> list[dict[str, int]]:
    """Per group, packets per protocol name, as :func:`_protocols` gives for one."""
    out = []
    for counts in _counts_by_group(group, protos, n):
        named = {P.PROTO_NAMES.get(p, str(p)): m for p, m in counts.items()}
        out.append({"icmp": 0, "udp": 0, "tcp": 0, **named})
    return out


def _points_by_group(group: np.ndarray, points: np.ndarray, n: int) -> list[tuple[str, ...]]:
    """Per group, the capture points its paths went through (each path's are one
    comma-separated text)."""
    codes, texts = pd.factorize(points.astype(str))
    parts = [set(t.split(",")) for t in texts.tolist()]
    out: list[set[str]] = [set() for _ in range(n)]
    g, (code,), _ = G.pair_counts(group, codes.astype(np.int64))
    for k, x in zip(g.tolist(), code.tolist()):
        out[k] |= parts[x]
    return [tuple(sorted(s)) for s in out]


def _peaks(
    det: Detection,
    t: np.ndarray,
    copy_g: np.ndarray,
    copy_rows: np.ndarray,
    gi: np.ndarray,
    first_ns: np.ndarray,
    dst_hi: list[int],
    dst_lo: list[int],
    first: list[int],
    last: list[int],
    n: int,
) -> list[float]:
    """Per loop, :func:`_per_second_peak` of its copies, its paths' first passes and the
    copies counted but not kept, for all loops at once."""
    ok = copy_g >= 0
    tg, ts, tw = [], [], []
    if det.l3_tally:
        for k in range(n):
            bins = _seconds_of(det, (dst_hi[k], dst_lo[k]), first[k], last[k])
            for sec, m in (bins or {}).items():
                tg.append(k)
                ts.append(sec)
                tw.append(m)
    return _peaks_of(
        copy_g[ok],
        t[copy_rows[ok]].astype(np.int64) // _NS,
        gi,
        first_ns.astype(np.int64) // _NS,
        np.array(tg, np.int64),
        np.array(ts, np.int64),
        np.array(tw, np.float64),
        n,
    )


def _simple_loop(
    kind: LoopKind,
    dst: str,
    points: tuple[str, ...],
    rows: np.ndarray,
    firsts: np.ndarray,
    cols: dict[str, np.ndarray],
    opt: Options,
    obs: int,
    nbytes: int,
    te_rows: np.ndarray = _NO_ROWS,
    last_ns: int | None = None,
    tally: L2Tally | None = None,
) -> Loop:
    """An l2 or inferred loop: ``rows`` its copies (inferred: arrivals), ``firsts`` one
    row per looping packet; ``tally``: copies counted but not kept (in ``obs`` and
    ``nbytes`` already)."""
    t = cols["time_ns"]
    first = int(t[rows].min())
    last = int(t[rows].max()) if last_ns is None else last_ns
    if tally is not None and tally.copies:
        first, last = min(first, tally.first_ns), max(last, tally.last_ns)
    dur = (last - first) / _NS
    n = len(firsts)
    first_bytes = int(cols["wirelen"][firsts].astype(np.int64).sum())
    inferred = kind == "inferred"
    return Loop(
        id=0,
        kind=kind,
        destination=dst,
        destination_prefix=network_text(dst, opt.merge_prefix),
        capture_points=points,
        ttl_step=None if inferred else 0,
        first_ns=first,
        last_ns=last,
        looping_packets=n,
        observations=obs,
        bytes=nbytes,
        amplification=obs / n if n else None,
        amplification_bytes=nbytes / first_bytes if first_bytes else None,
        cycle_time_ms=None,
        extra_pps_mean=(obs - n) / dur if dur > 0 else None,
        extra_pps_peak=None
        if inferred
        else _per_second_peak(t[rows], t[firsts], tally.per_second if tally else None),
        sources=_addresses(cols["src_hi"][firsts], cols["src_lo"][firsts], 20),
        protocols=_protocols(cols["protocol"][firsts]),
        # an inferred loop is one because its packets expired behind the capture point
        fates={"expired": n if inferred else 0, "escaped": 0, "capture-ended": 0},
        dropped_by={"guest": 0, "host": 0, "unknown": n if inferred else 0},
        icmp_time_exceeded=len(te_rows),
        icmp_senders=_addresses(cols["src_hi"][te_rows], cols["src_lo"][te_rows]),
        missing_copies=None,
        estimated=inferred,
    )


def _l2_loops(
    cols: dict[str, np.ndarray], det: Detection, names: Sequence[str], opt: Options
) -> list[tuple[Loop, LoopEvidence]]:
    g = det.l2
    if g.empty:
        return []
    rows = g["row"].to_numpy(np.int64)
    fp = g["fingerprint"].to_numpy(np.uint64)
    key = _group_ids(
        g["dst_hi"].to_numpy(np.uint64),
        g["dst_lo"].to_numpy(np.uint64),
        g["point"].to_numpy(np.int64),
    )
    out = []
    for _k, at in sorted(_slices(key).items()):
        o = np.argsort(rows[at], kind="stable")
        r = rows[at][o]
        f = fp[at][o]
        firsts = r[_first_of_each(f)]
        dst = (int(cols["dst_hi"][r[0]]), int(cols["dst_lo"][r[0]]), int(cols["point"][r[0]]))
        tally = det.l2_tally.get(dst)
        more, more_bytes = (tally.copies, tally.bytes) if tally else (0, 0)
        loop = _simple_loop(
            "l2",
            to_text(dst[0], dst[1]),
            (names[dst[2]],),
            r,
            firsts,
            cols,
            opt,
            len(r) + more,
            int(cols["wirelen"][r].astype(np.int64).sum()) + more_bytes,
            tally=tally,
        )
        out.append((loop, LoopEvidence(0, r, _NO_ROWS, _NO_ROWS, _NO_ROWS)))
    return out


def _dropped_by_parity(arrival_ttl: np.ndarray) -> dict[str, int]:
    """Who drops each packet of a loop between the host and one guest, seen arriving.

    The host forwards a packet that arrived with TTL T at T − 1, the guest
    returns it at T − 2, and so on: the copy with TTL 1 is the host's when T
    is even (the guest drops it), the guest's when T is odd (the host drops
    it and sends the time-exceeded).
    """
    even = int((arrival_ttl.astype(np.int64) % 2 == 0).sum())
    return {"guest": even, "host": len(arrival_ttl) - even, "unknown": 0}


def _inferred_loops(
    cols: dict[str, np.ndarray], det: Detection, names: Sequence[str], opt: Options
) -> list[tuple[Loop, LoopEvidence]]:
    out = []
    unreach = unreachable_index(cols) if len(det.inferred) else {}
    for inf in det.inferred.itertuples():
        key = (int(cast(int, inf.dst_hi)), int(cast(int, inf.dst_lo)))
        r = np.sort(np.asarray(inf.rows, np.int64))
        tes = np.sort(np.asarray(inf.te_rows, np.int64))
        ttl = cols["ttl"][r].astype(np.int64)
        est = int((ttl - 1).clip(min=0).sum())
        nbytes = int((cols["wirelen"][r].astype(np.int64) * (ttl - 1)).sum())
        loop = _simple_loop(
            "inferred",
            to_text(int(cast(int, inf.dst_hi)), int(cast(int, inf.dst_lo))),
            (names[int(cast(int, inf.point))],),
            r,
            r,
            cols,
            opt,
            est,
            nbytes,
            tes,
            last_ns=int(cols["time_ns"][tes].max()) if len(tes) else None,
        )
        after = np.asarray(inf.after_rows, np.int64)
        # a column mixing None and times holds NaN for None
        end_ns = cast("int | None", inf.end_ns)  # object column: ints or None
        end = None if end_ns is None else int(end_ns)
        loop = replace(
            loop,
            estimate_basis=str(inf.basis)
            + "; who dropped each packet follows from the parity of its arrival TTL "
            "(the host and one guest hand it back and forth)",
            dropped_by=_dropped_by_parity(ttl),
            after_end=None
            if end is None
            else {
                "packets": len(after),
                "unreachable_errors": int(
                    (cols["time_ns"][unreach.get(key, _NO_ROWS)] > int(end)).sum()
                ),
            },
        )
        out.append((loop, LoopEvidence(0, r, _NO_ROWS, tes, _NO_ROWS)))
    return out


def _renumbered(loop: Loop, lid: int, role_of: Mapping[str, Role]) -> Loop:
    text, fixes = explain(replace(loop, id=lid), role_of)
    return replace(loop, id=lid, explanation=text, fixes=tuple(fixes))


def measure(
    cols: dict[str, np.ndarray],
    corr: Correlation,
    det: Detection,
    names: Sequence[str],
    opt: Options | None = None,
    roles: Sequence[PointRole] | None = None,
) -> tuple[list[Loop], dict[int, LoopEvidence]]:
    """Every loop, numbered by first appearance, and its evidence rows by loop id.

    ``roles``: what each capture point is (who dropped a packet, the words
    and the fixes depend on it); without them every role is unknown.
    """
    opt = opt or Options()
    role_of = {r.name: r.role for r in roles or ()}
    peer_role: dict[int, Role] = {}
    found = (
        _l3_loops(cols, corr, det, opt, role_of, names, peer_role)
        + _l2_loops(cols, det, names, opt)
        + _inferred_loops(cols, det, names, opt)
    )
    found.sort(key=lambda le: (le[0].first_seen or "", le[0].destination))
    loops: list[Loop] = []
    evidence: dict[int, LoopEvidence] = {}
    detected: dict[int, int] = {}  # detect's l3 loop id → final id
    for lid, (loop, ev) in enumerate(found, start=1):
        seen_as = role_of
        if loop.kind == "l3":
            detected[loop.id] = lid
            if loop.id in peer_role:  # the MACs said what its links are
                seen_as = {**role_of, **dict.fromkeys(loop.capture_points, peer_role[loop.id])}
        loops.append(_renumbered(loop, lid, seen_as))
        evidence[lid] = LoopEvidence(lid, ev.copies, ev.passages, ev.icmp, ev.paths, ev.kept)
    if detected:  # keep detect's table in step with the final ids
        det.looping["loop"] = det.looping["loop"].map(detected)
    return loops, evidence


def bounce_list(det: Detection) -> list[Bounce]:
    """Bounces per destination and capture point."""
    return [
        Bounce(
            to_text(int(cast(int, r.destination_hi)), int(cast(int, r.destination_lo))),
            str(r.capture_point),
            int(cast(int, r.packets)),
        )
        for r in det.bounces.itertuples()
    ]


def implicated(
    loops: Sequence[Loop],
    bounces: Sequence[Bounce],
    arp_responders: Mapping[str, Sequence[str]],
    guest_reporters: Iterable[str] = frozenset(),
) -> list[Implicated]:
    """Addresses with roles: loop-destination, bounce-destination, source, icmp-reporter,
    guest-link (an ICMP reporter whose error came out of a guest link: the guest's
    own address), proxy-arp-responder (MACs answering ARP/NDP for a loop destination)."""
    guests = set(guest_reporters)
    acc: dict[str, dict[str, object]] = {}

    def add(addr: str, role: str, point: str | None, packets: int) -> None:
        e = acc.setdefault(addr, {"roles": [], "point": point, "packets": 0})
        roles = e["roles"]
        assert isinstance(roles, list)
        if role not in roles:
            roles.append(role)
        e["packets"] = int(e["packets"]) + packets  # type: ignore[call-overload]
        e["point"] = e["point"] or point

    for lp in loops:
        pt = lp.capture_points[0] if lp.capture_points else None
        add(lp.destination, "loop-destination", pt, lp.looping_packets)
        for s in lp.sources:
            add(s, "source", None, 0)
        for s in lp.icmp_senders:
            add(s, "icmp-reporter", pt, 0)
            if s in guests:
                add(s, "guest-link", pt, 0)
        for mac in arp_responders.get(lp.destination, []):
            add(mac, "proxy-arp-responder", None, 0)
    for b in bounces:
        add(b.destination, "bounce-destination", b.capture_point, b.packets)
    out = [
        Implicated(a, tuple(e["roles"]), e["point"], int(e["packets"]))  # type: ignore[arg-type,call-overload]
        for a, e in acc.items()
    ]
    return sorted(out, key=lambda e: (-e.packets, e.address))


def _time_exceeded(cols: dict[str, np.ndarray]) -> np.ndarray:
    pr, ty = cols["protocol"], cols["icmp_type"]
    te: np.ndarray = ((pr == P.IPPROTO_ICMP) & (ty == P.ICMP_TIME_EXCEEDED)) | (
        (pr == P.IPPROTO_ICMPV6) & (ty == P.ICMP6_TIME_EXCEEDED)
    )
    return te


def guest_reporters(
    cols: dict[str, np.ndarray], names: Sequence[str], guest_points: Iterable[str] | None = None
) -> set[str]:
    """Senders of ICMP time-exceeded seen on a guest's point-to-point link."""
    guests = (
        set(guest_points) if guest_points is not None else {n for n in names if is_guest_link(n)}
    )
    idx = np.flatnonzero(_time_exceeded(cols))
    gp = np.array([names[int(p)] in guests for p in range(len(names))] or [False], bool)
    idx = idx[gp[cols["point"][idx].astype(np.int64)]] if len(idx) else idx
    return set(_addresses(cols["src_hi"][idx], cols["src_lo"][idx]))


def arp_responders(
    arp: Mapping[str, np.ndarray], cols: dict[str, np.ndarray], destinations: set[str]
) -> dict[str, list[str]]:
    """MACs that answered ARP (reply) or NDP (neighbour advertisement) for looping
    destinations."""
    out: dict[str, set[str]] = {}
    if arp and len(arp.get("op", [])):
        for op, ip, mac in zip(arp["op"], arp["sender_ip"], arp["sender_mac"]):
            if int(op) == P.ARPOP_REPLY:
                a = to_text(0, 0xFFFF00000000 | int(ip))
                if a in destinations:
                    out.setdefault(a, set()).add(mac_text(mac))
    na = np.flatnonzero(
        (cols["protocol"] == P.IPPROTO_ICMPV6) & (cols["icmp_type"] == P.ND_NEIGHBOR_ADVERT)
    )
    for i in na:
        a = to_text(cols["inner_dst_hi"][i], cols["inner_dst_lo"][i])
        if a in destinations and cols["eth_src"][i] != S.NO_MAC:
            out.setdefault(a, set()).add(mac_text(cols["eth_src"][i]))
    return {k: sorted(v) for k, v in out.items()}


def loops_frame(loops: Sequence[Loop]) -> pd.DataFrame:
    """Loops as a DataFrame, one row per loop, the JSON contract's columns."""
    cols = [
        "id",
        "kind",
        "destination",
        "capture_points",
        "ttl_step",
        "looping_packets",
        "observations",
        "amplification",
        "duration_s",
        "first_seen",
        "last_seen",
    ]
    docs = [lp.to_json() for lp in loops]
    df = pd.DataFrame(docs, columns=cols if not docs else None)
    for c in ("first_seen", "last_seen"):
        if c in df:
            df[c] = pd.to_datetime(df[c], utc=True)
    return df
