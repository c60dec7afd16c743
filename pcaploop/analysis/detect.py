"""Detect stage: the one place that decides what is a loop, a bounce, a duplicate,
a layer-2 repeat, and which loops are inferred (``docs/design.md``, "Words").

Two kinds of function:

* rules that :mod:`.correlate` applies while it builds paths, because what
  they decide changes what it builds: :func:`repeat_verdicts` (duplicates
  are counted once and layer-2 repeats set aside before paths are cut) and
  :func:`classify_paths` (which paths loop or bounce: the streaming window
  keeps only their evidence);
* :func:`detect`, which turns the correlation into loops (merged by
  destination and capture points), ties ICMP errors to looping packets,
  infers loops behind an uplink-only capture, and lists bounces.

Output: plain per-path and per-loop tables (pandas) that :mod:`.measure`
counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd

from ..decode import protocols as P
from ._kernels import summarize_paths
from .model import Correlation, L2Tally
from .options import Options
from .roles import guest_link_by_name


def is_guest_link(name: str) -> bool:
    """Whether a capture point's name looks like a guest link's (a hint only)."""
    return guest_link_by_name(name)


# --- rules applied while correlating ------------------------------------------------------
#: UDP/TCP ports of protocols that repeat themselves on purpose: DHCP, DHCPv6, RIP,
#: RIPng, HSRP, BFD, mDNS, LLMNR, SSDP
REPEATING_PORTS = (67, 68, 546, 547, 520, 521, 1985, 3784, 3785, 4784, 5353, 5355, 1900)
#: IP protocols that are hellos and reports by nature: IGMP, EIGRP, OSPF, PIM, VRRP/CARP
REPEATING_PROTOCOLS = (2, 88, 89, 103, 112)
#: ICMPv6 types a host repeats by design: MLD, router and neighbour discovery, redirects
REPEATING_ICMP6 = (
    P.MLD_LISTENER_QUERY,
    P.MLD_LISTENER_REPORT,
    P.MLD_LISTENER_DONE,
    P.ND_ROUTER_SOLICIT,
    P.ND_ROUTER_ADVERT,
    P.ND_NEIGHBOR_SOLICIT,
    P.ND_NEIGHBOR_ADVERT,
    P.ND_REDIRECT,
    P.MLDV2_LISTENER_REPORT,
)
_V4_MULTICAST = np.uint64(0xE0000000)
_V4_MASK4 = np.uint64(0xF0000000)
_V4_BITS = np.uint64(0xFFFFFFFF)
_V4_MAPPED = np.uint64(0xFFFF)


def sent_again_on_purpose(cols: Mapping[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """Per row: a packet its protocol sends again on purpose, identical, with the same TTL.

    Neighbour/router discovery, MLD and redirects, ICMP errors about one packet,
    routing and redundancy hellos (OSPF, VRRP, BFD …), DHCP retransmits, and
    link-local or multicast traffic (TTL 1 or 255, multicast destinations).  A
    run of such copies is never a layer-2 loop on its own.
    """
    pr = cols["protocol"][rows].astype(np.int64)
    ty = cols["icmp_type"][rows].astype(np.int64)
    sp, dp = cols["sport"][rows].astype(np.int64), cols["dport"][rows].astype(np.int64)
    ttl = cols["ttl"][rows].astype(np.int64)
    hi, lo = cols["dst_hi"][rows], cols["dst_lo"][rows]
    icmp4, icmp6 = pr == P.IPPROTO_ICMP, pr == P.IPPROTO_ICMPV6
    out = icmp4 & np.isin(ty, P.ICMP_ERRORS)
    out |= icmp6 & (((ty >= 1) & (ty <= P.ICMP6_ERROR_MAX)) | np.isin(ty, REPEATING_ICMP6))
    out |= np.isin(pr, REPEATING_PROTOCOLS)
    out |= np.isin(sp, REPEATING_PORTS) | np.isin(dp, REPEATING_PORTS)
    out |= (ttl <= 1) | (ttl == 255)
    v4 = (hi == 0) & ((lo >> np.uint64(32)) == _V4_MAPPED)
    out |= v4 & (((lo & _V4_BITS) & _V4_MASK4) == _V4_MULTICAST)
    out |= v4 & ((lo & _V4_BITS) == _V4_BITS)  # 255.255.255.255
    out |= ~v4 & ((hi >> np.uint64(56)) == np.uint64(0xFF))  # ff00::/8
    result: np.ndarray = out
    return result


def repeat_verdicts(
    size: np.ndarray, span: np.ndarray, on_purpose: np.ndarray, opt: Options
) -> tuple[np.ndarray, np.ndarray]:
    """Per run of identical copies (same fingerprint, TTL, point, VLAN): duplicate? l2 repeat?

    A **duplicate** is the same frame recorded twice within microseconds
    (``-i any`` on a bond, overlapping files): counted once.  A **layer-2
    repeat** is the signature of a forwarding loop without TTL: many copies
    (``opt.l2_min_copies``) of one frame, forwarded again within milliseconds
    (mean gap at most ``opt.l2_max_gap_ns``).  A sender repeating identical
    bytes does it at application pace, and packets protocols repeat on purpose
    (:func:`sent_again_on_purpose`) never make one.
    """
    dup_run = (size >= 2) & (span <= opt.dup_window_ns)
    mean_gap = span // np.maximum(size - 1, 1)
    l2_run = (
        (size >= opt.l2_min_copies)
        & (span > opt.dup_window_ns)
        & (mean_gap <= opt.l2_max_gap_ns)
        & ~on_purpose
    )
    return dup_run, l2_run


def classify_paths(
    path: np.ndarray, plane: np.ndarray, direction: np.ndarray, ttl: np.ndarray, npaths: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Which paths loop (replicas: lower TTL again at one point and direction), their TTL
    step, which bounce (out and back once, TTL −1, then gone), and which rows are copies
    at a point where their path loops.

    Rows must be sorted by (path, plane, direction, TTL descending).  Where the
    direction is unknown, a lane needs three or more copies with falling TTL.
    Returns ``(p_loop, p_bounce, p_step, p_bounce_plane, row_loop)``.
    """
    p_loop = np.zeros(npaths, np.int8)
    p_bounce = np.zeros(npaths, np.int8)
    p_step = np.zeros(npaths, np.int64)
    p_bplane = np.full(npaths, -1, np.int64)
    row_loop = np.zeros(len(path), np.int8)
    if len(path):
        summarize_paths(
            path,
            plane,
            direction.astype(np.int64),
            ttl,
            npaths,
            p_loop,
            p_bounce,
            p_step,
            p_bplane,
            row_loop,
        )
    return p_loop.astype(bool), p_bounce.astype(bool), p_step, p_bplane, row_loop.astype(bool)


# --- after correlating: loops ----------------------------------------------------------------

_KEYS = ("dst_hi", "dst_lo", "src_hi", "src_lo", "protocol", "ip_version")


@dataclass
class Detection:
    """What detect found; every table keeps packet row numbers for later stages."""

    looping: pd.DataFrame  # one row per looping path (index: path id), with its loop id
    loop_rows: pd.DataFrame  # copies of looping packets at their loop's points
    bounces: pd.DataFrame  # destination, capture_point, packets
    time_exceeded: pd.DataFrame  # ICMP errors tied to looping paths
    inferred: pd.DataFrame  # inferred loops (uplink-only captures)
    l2: pd.DataFrame  # same-TTL copies repeating over time
    #: (dst_hi, dst_lo, point) → layer-2 copies counted beyond the evidence kept
    l2_tally: Mapping[tuple[int, int, int], L2Tally] = field(default_factory=dict)
    #: (dst_hi, dst_lo) → second → copies of routed loops not kept as rows
    l3_tally: Mapping[tuple[int, int], Mapping[int, int]] = field(default_factory=dict)


def path_frame(
    cols: Mapping[str, np.ndarray], corr: Correlation, names: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per looping path facts (one row per looping packet, index: path id), and the
    rows of its copies (by path, TTL falling, then time).

    Why numpy, not a groupby: this runs on every window of a stream, and pandas'
    sort, head/tail and five aggregations cost more than the correlation itself.
    One stable lexsort orders the copies; each path's numbers are ``reduceat``
    over its run.  :func:`_path_frame_pandas` is the same table the plain way
    (the tests hold the two equal).
    """
    sel = corr.p_loop[corr.path]
    rows = corr.rows[sel]
    path = corr.path[sel]
    ttl = cols["ttl"][rows].astype(np.int64)
    t = cols["time_ns"][rows]
    o = np.lexsort((t, -ttl, path))  # stable, as sort_values on the three columns
    lc_mask = corr.loop_copy[sel][o]
    if not lc_mask.any():
        return _path_frame_pandas(cols, corr, names)
    rows_s, path_s = rows[o], path[o]
    data: dict[str, np.ndarray] = {
        "row": rows_s,
        "path": path_s,
        "point": cols["point"][rows_s].astype(np.int64),
        "direction": corr.direction[sel][o],
        "ttl": ttl[o],
        "time_ns": t[o],
        "wirelen": cols["wirelen"][rows_s].astype(np.int64),
        "loop_copy": lc_mask,
    }
    for k in _KEYS + ("ip_id", "l4_head", "fingerprint"):
        data[k] = cols[k][rows_s]
    starts = np.flatnonzero(np.r_[True, path_s[1:] != path_s[:-1]])
    ends = np.r_[starts[1:], len(path_s)] - 1
    at = np.flatnonzero(lc_mask)
    lc = pd.DataFrame({k: v[at] for k, v in data.items()}, index=pd.Index(o[at]))
    lp = path_s[at]
    ls = np.flatnonzero(np.r_[True, lp[1:] != lp[:-1]])
    pid = lp[ls]
    k = np.searchsorted(path_s[starts], pid)  # each looping path's run among all paths
    first, last = starts[k], ends[k]
    lt, lttl = data["time_ns"][at], data["ttl"][at]
    paths = pd.DataFrame(
        {
            "first_ns": np.minimum.reduceat(lt, ls),
            "last_ns": np.maximum.reduceat(lt, ls),
            "copies": np.diff(np.r_[ls, len(lp)]).astype(np.int64),
            "bytes": np.add.reduceat(data["wirelen"][at], ls),
            "loop_max_ttl": np.maximum.reduceat(lttl, ls),
            "loop_min_ttl": np.minimum.reduceat(lttl, ls),
        },
        index=pd.Index(pid, name="path"),
    )
    paths["points"] = _point_sets(lp, data["point"][at], names).reindex(paths.index)
    for name in _KEYS + ("ip_id", "l4_head", "fingerprint"):
        paths[name] = data[name][first]
    paths["entry_ttl"] = data["ttl"][first]
    paths["first_bytes"] = data["wirelen"][first]
    paths["min_ttl"] = data["ttl"][last]
    paths["last_direction"] = data["direction"][last]
    paths["last_point"] = data["point"][last]
    paths["escaped"] = ~data["loop_copy"][last]
    paths["ttl_step"] = corr.p_step[pid]
    return paths, lc


def _path_frame_pandas(
    cols: Mapping[str, np.ndarray], corr: Correlation, names: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`path_frame` with pandas groupbys: the reference, and the case of no copy."""
    sel = corr.p_loop[corr.path]
    rows = corr.rows[sel]
    df = pd.DataFrame(
        {
            "row": rows,
            "path": corr.path[sel],
            "point": cols["point"][rows].astype(np.int64),
            "direction": corr.direction[sel],
            "ttl": cols["ttl"][rows].astype(np.int64),
            "time_ns": cols["time_ns"][rows],
            "wirelen": cols["wirelen"][rows].astype(np.int64),
            "loop_copy": corr.loop_copy[sel],
        }
    )
    for k in _KEYS + ("ip_id", "l4_head", "fingerprint"):
        df[k] = cols[k][rows]
    if df.empty:
        return pd.DataFrame(), df
    df = df.sort_values(["path", "ttl", "time_ns"], ascending=[True, False, True])
    g = df.groupby("path", sort=True)
    first, last = g.head(1).set_index("path"), g.tail(1).set_index("path")
    lc = df[df["loop_copy"]]
    gl = lc.groupby("path")
    paths = pd.DataFrame(
        {
            "first_ns": gl["time_ns"].min(),
            "last_ns": gl["time_ns"].max(),
            "copies": gl.size(),
            "bytes": gl["wirelen"].sum(),
            "loop_max_ttl": gl["ttl"].max(),
            "loop_min_ttl": gl["ttl"].min(),
        }
    )
    paths["points"] = _point_sets(lc["path"].to_numpy(), lc["point"].to_numpy(), names).reindex(
        paths.index
    )
    for k in _KEYS + ("ip_id", "l4_head", "fingerprint"):
        paths[k] = first[k]
    paths["entry_ttl"] = first["ttl"]
    paths["first_bytes"] = first["wirelen"]
    paths["min_ttl"] = last["ttl"]
    paths["last_direction"] = last["direction"]
    paths["last_point"] = last["point"]
    paths["escaped"] = ~last["loop_copy"]
    paths["ttl_step"] = corr.p_step[paths.index.to_numpy()]
    return paths, lc


def _point_sets(path: np.ndarray, point: np.ndarray, names: list[str]) -> pd.Series:
    """Per path the sorted, comma-joined names of the points it has copies at."""
    n = max(len(names), 1)
    pp = np.unique(path.astype(np.int64) * n + point.astype(np.int64))
    pth, pt = pp // n, pp % n
    starts = np.flatnonzero(np.r_[True, pth[1:] != pth[:-1]])
    if n <= 63:  # a bit per point, then one string per distinct set
        masks = np.bitwise_or.reduceat(np.left_shift(np.uint64(1), pt.astype(np.uint64)), starts)
        uniq, inv = np.unique(masks, return_inverse=True)
        text = [",".join(sorted(names[k] for k in range(n) if int(u) >> k & 1)) for u in uniq]
        return pd.Series(np.asarray(text, dtype=object)[inv.ravel()], index=pth[starts])
    groups = np.split(pt, starts[1:])
    return pd.Series([",".join(sorted(names[k] for k in g)) for g in groups], index=pth[starts])


def _dest_key(
    hi: np.ndarray, lo: np.ndarray, prefix: int | None, version: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Destination (or its prefix when merging by prefix) as a (hi, lo) pair."""
    if prefix is None:
        return hi, lo
    v4 = version == 4
    if prefix <= 32:  # an IPv4 prefix length: IPv6 destinations stay whole
        hi2, lo2 = hi.copy(), lo.copy()
        lo2[v4] = lo[v4] & np.uint64((0xFFFFFFFFFFFFFFFF << (32 - prefix)) & 0xFFFFFFFFFFFFFFFF)
        return hi2, lo2
    hi2, lo2 = hi.copy(), lo.copy()
    p4 = min(prefix, 32)
    lo2[v4] = lo[v4] & np.uint64((0xFFFFFFFFFFFFFFFF << (32 - p4)) & 0xFFFFFFFFFFFFFFFF)
    p6 = min(prefix, 128)
    if p6 <= 64:
        hi2[~v4] = hi[~v4] & np.uint64((0xFFFFFFFFFFFFFFFF << (64 - p6)) & 0xFFFFFFFFFFFFFFFF)
        lo2[~v4] = 0
    else:
        lo2[~v4] = lo[~v4] & np.uint64((0xFFFFFFFFFFFFFFFF << (128 - p6)) & 0xFFFFFFFFFFFFFFFF)
    return hi2, lo2


def merge_loops(paths: pd.DataFrame, opt: Options) -> pd.Series:
    """Loop id per looping path: same destination (or prefix) and points, gaps < merge gap."""
    if paths.empty:
        return pd.Series(dtype=np.int64)
    hi, lo = _dest_key(
        paths["dst_hi"].to_numpy(),
        paths["dst_lo"].to_numpy(),
        opt.merge_prefix,
        paths["ip_version"].to_numpy(),
    )
    p = paths.assign(kh=hi, kl=lo).sort_values(["kh", "kl", "points", "first_ns"])
    key_change = (
        (p["kh"] != p["kh"].shift())
        | (p["kl"] != p["kl"].shift())
        | (p["points"] != p["points"].shift())
    )
    run_last = p.groupby((key_change).cumsum())["last_ns"].cummax().shift()
    gap = (p["first_ns"] - run_last) > opt.merge_gap_ns
    loop = (key_change | gap).cumsum()
    # number loops by first appearance in time
    firsts = p.groupby(loop)["first_ns"].min().sort_values(kind="stable")
    renum = pd.Series(np.arange(1, len(firsts) + 1), index=firsts.index)
    return loop.map(renum).reindex(paths.index)


def quote_key(
    src_hi: np.ndarray,
    src_lo: np.ndarray,
    dst_hi: np.ndarray,
    dst_lo: np.ndarray,
    proto: np.ndarray,
    ident: np.ndarray,
    l4: np.ndarray,
) -> np.ndarray:
    """64-bit key tying an ICMP error's quoted packet to the packet it quotes."""
    with np.errstate(over="ignore"):
        k = np.asarray(src_hi, np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        for v in (
            src_lo,
            dst_hi,
            dst_lo,
            np.asarray(proto).astype(np.uint64),
            np.asarray(ident).astype(np.int64).astype(np.uint64),
            l4,
        ):
            k = (k ^ np.asarray(v, np.uint64)) * np.uint64(0xBF58476D1CE4E5B9)
            k ^= k >> np.uint64(31)
    return k


def _time_exceeded_rows(cols: Mapping[str, np.ndarray]) -> np.ndarray:
    t = cols["icmp_type"]
    pr = cols["protocol"]
    return np.flatnonzero(
        (
            ((pr == P.IPPROTO_ICMP) & (t == P.ICMP_TIME_EXCEEDED))
            | ((pr == P.IPPROTO_ICMPV6) & (t == P.ICMP6_TIME_EXCEEDED))
        )
        & (cols["inner_version"] > 0)
    )


def once_per_message(
    cols: Mapping[str, np.ndarray],
    rows: np.ndarray,
    gap_ns: int = Options.reorder_ns,
    dup_ns: int = Options.dup_window_ns,
) -> np.ndarray:
    """``rows`` with one row per message (its first sighting).

    A message captured at two points (on the guest link, then forwarded on the
    uplink with one TTL less, or recorded twice with one TTL — at two points
    that see one wire, or by a bridge and its port within ``dup_ns`` — within
    ``gap_ns``) is one message; two messages with one fingerprint — errors
    about packets that differ only beyond the fingerprint's bytes, a host
    repeating itself — are two: the second comes with a higher TTL, or with
    the same TTL at the same point later than ``dup_ns``, or later than
    ``gap_ns``.
    """
    if not len(rows):
        return rows
    fp, t = cols["fingerprint"][rows], cols["time_ns"][rows]
    o = np.lexsort((t, fp))
    r = rows[o]
    fp, t = fp[o], t[o]
    pt, ttl = cols["point"][r], cols["ttl"][r].astype(np.int64)
    new = np.r_[
        True,
        (fp[1:] != fp[:-1])
        | (t[1:] - t[:-1] > gap_ns)
        | (ttl[1:] > ttl[:-1])
        | ((ttl[1:] == ttl[:-1]) & (pt[1:] == pt[:-1]) & (t[1:] - t[:-1] > dup_ns)),
    ]
    out: np.ndarray = np.sort(r[new])
    return out


def _quote_keys(cols: Mapping[str, np.ndarray], te: np.ndarray) -> np.ndarray:
    return quote_key(
        cols["inner_src_hi"][te],
        cols["inner_src_lo"][te],
        cols["inner_dst_hi"][te],
        cols["inner_dst_lo"][te],
        cols["inner_protocol"][te],
        cols["inner_ip_id"][te],
        cols["inner_l4"][te],
    )


def _packet_keys(cols: Mapping[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
    return quote_key(
        cols["src_hi"][rows],
        cols["src_lo"][rows],
        cols["dst_hi"][rows],
        cols["dst_lo"][rows],
        cols["protocol"][rows],
        cols["ip_id"][rows],
        cols["l4_head"][rows],
    )


def tie_quotes(
    cols: Mapping[str, np.ndarray],
    te: np.ndarray,
    fp: np.ndarray,
    qk: np.ndarray,
    ref: np.ndarray,
    t_ref: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Tie each ICMP error ``te`` to the candidate it quotes → (error rows, candidate index).

    Candidates are packets (or paths) with fingerprint ``fp``, quote key ``qk``
    and a time ``t_ref``.  The quoted packet's own fingerprint ties exactly when
    the quote holds its whole prefix (Linux quotes as much as fits); a short
    quote (RFC 792: 8 bytes of L4) falls back to addresses, protocol, ID and
    those 8 bytes.  Identical bytes sent again form several candidates: the one
    closest in time wins.
    """
    if not len(te) or not len(ref):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    tdf = pd.DataFrame(
        {
            "row": te,
            "ifp": cols["inner_fingerprint"][te],
            "qk": _quote_keys(cols, te),
            "t": cols["time_ns"][te],
        }
    )
    cdf = pd.DataFrame({"cand": np.arange(len(ref)), "fp": fp, "qk": qk, "t_ref": t_ref})
    exact = tdf[tdf["ifp"] != 0].merge(cdf, left_on="ifp", right_on="fp")
    loose = tdf.merge(cdf, on="qk")
    loose = loose[~loose["row"].isin(exact["row"])]
    m = pd.concat([exact[["row", "cand", "t", "t_ref"]], loose[["row", "cand", "t", "t_ref"]]])
    m = m.assign(dist=(m["t"] - m["t_ref"]).abs()).sort_values(["dist", "cand"])
    m = m.drop_duplicates("row")
    return m["row"].to_numpy(np.int64), m["cand"].to_numpy(np.int64)


def _index(
    hi: np.ndarray, lo: np.ndarray, point: np.ndarray
) -> dict[tuple[int, int, int], np.ndarray]:
    """(address hi, lo, point) → rows holding it, from one grouping."""
    if not len(hi):
        return {}
    o = np.lexsort((point, lo, hi))
    h, lw, pt = hi[o], lo[o], point[o]
    new = np.r_[True, (h[1:] != h[:-1]) | (lw[1:] != lw[:-1]) | (pt[1:] != pt[:-1])]
    starts = np.flatnonzero(new).tolist()
    ends = starts[1:] + [len(o)]
    return {
        (int(h[a]), int(lw[a]), int(pt[a])): o[a:b].astype(np.int64) for a, b in zip(starts, ends)
    }


def unreachable_rows(cols: Mapping[str, np.ndarray]) -> np.ndarray:
    """ICMP destination-unreachable / ICMPv6 destination-unreachable errors, once each."""
    pr, ty = cols["protocol"], cols["icmp_type"]
    mask = ((pr == P.IPPROTO_ICMP) & (ty == P.ICMP_DEST_UNREACH)) | (
        (pr == P.IPPROTO_ICMPV6) & (ty == P.ICMP6_DST_UNREACH)
    )
    return once_per_message(cols, np.flatnonzero(mask & (cols["inner_version"] > 0)))


def unreachable_index(cols: Mapping[str, np.ndarray]) -> dict[tuple[int, int], np.ndarray]:
    """Quoted destination (hi, lo) → the unreachable errors about it, from one grouping."""
    err = unreachable_rows(cols)
    by = _index(cols["inner_dst_hi"][err], cols["inner_dst_lo"][err], np.zeros(len(err), np.int16))
    return {(h, lo): err[k] for (h, lo, _), k in by.items()}


def redirect_index(cols: Mapping[str, np.ndarray]) -> dict[tuple[int, int], np.ndarray]:
    """Destination (hi, lo) → ICMP / ICMPv6 redirects about it.

    The host sends a redirect when it forwards a packet back out of the link
    it came in on to a sender on that link: the packet's source is a
    neighbour there, not a router's far side.
    """
    pr, ty = cols["protocol"], cols["icmp_type"]
    red = np.flatnonzero(
        ((pr == P.IPPROTO_ICMP) & (ty == P.ICMP_REDIRECT) & (cols["inner_version"] > 0))
        | ((pr == P.IPPROTO_ICMPV6) & (ty == P.ND_REDIRECT))
    )
    by = _index(cols["inner_dst_hi"][red], cols["inner_dst_lo"][red], np.zeros(len(red), np.int16))
    return {(h, lo): red[k] for (h, lo, _), k in by.items()}


def _tie_icmp(cols: Mapping[str, np.ndarray], paths: pd.DataFrame) -> pd.DataFrame:
    """ICMP / ICMPv6 time-exceeded messages that quote a looping path, each counted once."""
    te = once_per_message(cols, _time_exceeded_rows(cols))
    if len(te) == 0 or paths.empty:
        return pd.DataFrame(columns=["row", "path", "sender_hi", "sender_lo", "point"])
    pk = quote_key(
        paths["src_hi"].to_numpy(),
        paths["src_lo"].to_numpy(),
        paths["dst_hi"].to_numpy(),
        paths["dst_lo"].to_numpy(),
        paths["protocol"].to_numpy(),
        paths["ip_id"].to_numpy(),
        paths["l4_head"].to_numpy(),
    )
    rows, cand = tie_quotes(
        cols,
        te,
        paths["fingerprint"].to_numpy(np.uint64),
        pk,
        paths.index.to_numpy(),
        paths["last_ns"].to_numpy(),
    )
    return pd.DataFrame(
        {
            "row": rows,
            "path": paths.index.to_numpy()[cand],
            "sender_hi": cols["src_hi"][rows],
            "sender_lo": cols["src_lo"][rows],
            "point": cols["point"][rows].astype(np.int64),
        }
    )


def _inferred(
    cols: Mapping[str, np.ndarray], looping_dsts: set[tuple[int, int]], opt: Options
) -> pd.DataFrame:
    """Loops behind the capture point, from evidence only (``docs/design.md``, *Words*).

    A **seed** is a packet that arrived with a TTL high enough to loop
    (``opt.loop_min_entry_ttl``) and yet drew an ICMP time-exceeded quoting it
    with TTL 1: it circulated behind the capture point until it died.  Around
    the seeds of one destination, the loop lasted from the last answer the
    destination gave before them (or the start of what was kept) until it
    answered again (or the merge gap after the last error): every packet that
    arrived for it meanwhile, with such a TTL, got no answer and counts as
    looping.  A destination that keeps answering — traceroute probes drawing
    errors from the routers and the host — has no such window.
    """
    cols_ = [
        "dst_hi",
        "dst_lo",
        "point",
        "entry_ttl",
        "rows",
        "te_rows",
        "seeds",
        "basis",
        "end_ns",
        "after_rows",
    ]
    empty = pd.DataFrame(columns=cols_)
    te = once_per_message(cols, _time_exceeded_rows(cols))
    te = te[cols["inner_ttl"][te] <= 1]
    if len(te) == 0:
        return empty
    near = np.flatnonzero(np.isin(cols["dst_lo"], np.unique(cols["inner_dst_lo"][te])))
    near = near[cols["ttl"][near].astype(np.int64) >= opt.loop_min_entry_ttl]
    te_rows, cand = tie_quotes(
        cols, te, cols["fingerprint"][near], _packet_keys(cols, near), near, cols["time_ns"][near]
    )
    seeds = near[cand]
    if len(seeds) == 0:
        return empty
    out = []
    sdf = pd.DataFrame(
        {
            "seed": seeds,
            "te": te_rows,
            "dh": cols["dst_hi"][seeds],
            "dl": cols["dst_lo"][seeds],
            "pt": cols["point"][seeds],
        }
    )
    t = cols["time_ns"]
    ttl_ok = cols["ttl"].astype(np.int64) >= opt.loop_min_entry_ttl
    # rows to and from each address at each point, from one sort each
    to = _index(cols["dst_hi"], cols["dst_lo"], cols["point"])
    frm = _index(cols["src_hi"], cols["src_lo"], cols["point"])
    unreach = unreachable_index(cols)
    none = np.zeros(0, np.int64)
    episodes = []
    for key, grp in sdf.groupby(["dh", "dl", "pt"]):
        dh, dl, pt = (int(x) for x in cast("tuple[Any, ...]", key))
        if (dh, dl) in looping_dsts:
            continue
        g = grp.assign(t=t[grp["seed"].to_numpy(np.int64)]).sort_values("t")
        # seeds further apart than the merge gap are separate episodes (loops)
        run = np.cumsum(np.r_[True, np.diff(g["t"].to_numpy()) > opt.merge_gap_ns])
        for _, ep in g.groupby(run):
            episodes.append((dh, dl, pt, ep))
    ended: dict[tuple[int, int, int], int] = {}
    for k, (dh, dl, pt, grp) in enumerate(episodes):
        sd = grp["seed"].to_numpy(np.int64)
        tes = np.sort(grp["te"].to_numpy(np.int64))
        first_seed = int(t[sd].min())
        to_d = to.get((dh, dl, pt), none)
        answers = np.sort(t[frm.get((dh, dl, pt), none)])
        before = answers[answers < first_seed]
        start = int(before[-1]) if len(before) else None
        end = int(t[tes].max()) + opt.merge_gap_ns
        after = answers[answers > first_seed]
        answered = len(after) > 0 and int(after[0]) < end
        if answered:
            end = int(after[0])
        # the host (or the guest) saying "unreachable" for it: the loop is over
        err_rows = unreach.get((dh, dl), none)
        err_rows = err_rows[t[err_rows] > int(t[tes].max())]
        refused = len(err_rows) > 0 and int(t[err_rows].min()) < end
        if refused:
            # the first packet refused arrived when the loop was over; what arrived
            # before it was still forwarded, into the loop
            cand = to_d[t[to_d] > int(t[sd].max())]
            _, hit = tie_quotes(
                cols, err_rows, cols["fingerprint"][cand], _packet_keys(cols, cand), cand, t[cand]
            )
            first_refused = int(t[cand[hit]].min()) if len(hit) else None
            end = int(t[sd].max()) if first_refused is None else first_refused - 1
            answered = False
        nxt = episodes[k + 1] if k + 1 < len(episodes) else None
        if nxt is not None and nxt[:3] == (dh, dl, pt):  # up to the next episode's seeds
            end = min(end, int(t[nxt[3]["seed"].to_numpy(np.int64)].min()) - 1)
        win = to_d[(t[to_d] <= end) & ttl_ok[to_d]]
        lower = ended.get((dh, dl, pt))  # the previous episode of this address ended there
        if lower is not None:
            start = max(start, lower) if start is not None else lower
        ended[(dh, dl, pt)] = end
        if start is not None:
            win = win[t[win] > start]
        rows = np.union1d(win, sd)
        # what arrived after the end and before the next episode: dropped, not looping
        later = to_d[t[to_d] > end]
        if nxt is not None and nxt[:3] == (dh, dl, pt):
            later = later[t[later] < int(t[nxt[3]["seed"].to_numpy(np.int64)].min())]
        basis = (
            f"{len(sd)} packet(s) quoted with TTL 1 by ICMP time-exceeded; "
            f"{len(rows) - len(sd)} more arrived while the destination gave no answer ("
            + ("after its last answer" if start is not None else "it gave none")
            + (
                ", until it answered again"
                if answered
                else ", until the first packet the host refused as unreachable"
                if refused
                else f", until {opt.merge_gap_ns / 1e9:g} s after the last error"
            )
            + "); each is counted with TTL − 1 copies"
        )
        out.append(
            {
                "dst_hi": dh,
                "dst_lo": dl,
                "point": int(pt),
                "rows": rows,
                "te_rows": tes,
                "seeds": sd,
                "entry_ttl": int(np.median(cols["ttl"][rows])),
                "basis": basis,
                "end_ns": end if (answered or refused) else None,
                "after_rows": later if refused else none,
            }
        )
    if not out:
        return empty
    df = pd.DataFrame(out)
    # times as Python ints (a column mixing None and ints would be float: rounded)
    df["end_ns"] = pd.Series([o["end_ns"] for o in out], dtype=object, index=df.index)
    return df


def _bounces(cols: Mapping[str, np.ndarray], corr: Correlation, names: list[str]) -> pd.DataFrame:
    bp = np.flatnonzero(corr.p_bounce)
    if len(bp) == 0:
        return pd.DataFrame(
            columns=["destination_hi", "destination_lo", "capture_point", "packets"]
        )
    # one row of each bounce path gives its destination
    first_row = pd.Series(corr.rows).groupby(corr.path).first()
    r = first_row.reindex(bp).to_numpy(np.int64)
    df = pd.DataFrame(
        {
            "destination_hi": cols["dst_hi"][r],
            "destination_lo": cols["dst_lo"][r],
            "capture_point": [names[corr.plane_point[p]] for p in corr.p_bounce_plane[bp]],
        }
    )
    return (
        df.groupby(["destination_hi", "destination_lo", "capture_point"])
        .size()
        .rename("packets")
        .reset_index()
    )


def _l2_loops(cols: Mapping[str, np.ndarray], corr: Correlation) -> pd.DataFrame:
    r = corr.l2_rows
    if len(r) == 0:
        return pd.DataFrame()
    return pd.DataFrame(
        {
            "row": r,
            "point": cols["point"][r].astype(np.int64),
            "dst_hi": cols["dst_hi"][r],
            "dst_lo": cols["dst_lo"][r],
            "fingerprint": cols["fingerprint"][r],
            "time_ns": cols["time_ns"][r],
        }
    )


def detect(
    cols: Mapping[str, np.ndarray], corr: Correlation, names: list[str], opt: Options | None = None
) -> Detection:
    """Find loops of kind l3 (replicas), l2 (same-TTL repeats) and inferred; and bounces."""
    opt = opt or Options()
    paths, lc = path_frame(cols, corr, names)
    if corr.path_summary is not None:  # streamed: every path summed up, a sample of rows
        paths = corr.path_summary
    if not paths.empty:
        paths["loop"] = merge_loops(paths, opt)
        paths["kind"] = "l3"
    te = _tie_icmp(cols, paths)
    # plain ints: addresses at or above 2**63 (fe80::, fd00::) must not wrap negative
    looping_dsts = (
        set(zip(map(int, paths["dst_hi"].to_numpy()), map(int, paths["dst_lo"].to_numpy())))
        if not paths.empty
        else set()
    )
    inferred = _inferred(cols, looping_dsts, opt)
    return Detection(
        looping=paths,
        loop_rows=lc,
        bounces=_bounces(cols, corr, names),
        time_exceeded=te,
        inferred=inferred,
        l2=_l2_loops(cols, corr),
        l2_tally=corr.l2_tally,
        l3_tally=corr.l3_tally,
    )
