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

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..decode import protocols as P
from ._kernels import summarize_paths
from .model import Correlation
from .options import Options
from .roles import guest_link_by_name


def is_guest_link(name: str) -> bool:
    """Whether a capture point is a guest's link (by its name, until roles are inferred)."""
    return guest_link_by_name(name)


# --- rules applied while correlating ------------------------------------------------------
def repeat_verdicts(
    size: np.ndarray, span: np.ndarray, opt: Options
) -> tuple[np.ndarray, np.ndarray]:
    """Per run of identical copies (same fingerprint, TTL, point, VLAN): duplicate? l2 repeat?

    A **duplicate** is the same frame recorded twice within microseconds
    (``-i any`` on a bond, overlapping files): counted once.  A **layer-2
    repeat** is the same frame, same TTL, seen again and again fast: a
    bridging loop (or a box rewriting the TTL); a sender repeating
    identical bytes (IPv6 has no IP ID) does it at application pace.
    """
    dup_run = (size >= 2) & (span <= opt.dup_window_ns)
    mean_gap = span // np.maximum(size - 1, 1)
    l2_run = (size >= 3) & (span > opt.dup_window_ns) & (mean_gap <= opt.l2_max_gap_ns)
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


def _path_frame(cols, corr: Correlation, names: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per looping path facts, and its rows."""
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


def _dest_key(hi: np.ndarray, lo: np.ndarray, prefix: int | None, version: np.ndarray):
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


def quote_key(src_hi, src_lo, dst_hi, dst_lo, proto, ident, l4) -> np.ndarray:
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


def _time_exceeded_rows(cols) -> np.ndarray:
    t = cols["icmp_type"]
    pr = cols["protocol"]
    return np.flatnonzero(
        (
            ((pr == P.IPPROTO_ICMP) & (t == P.ICMP_TIME_EXCEEDED))
            | ((pr == P.IPPROTO_ICMPV6) & (t == P.ICMP6_TIME_EXCEEDED))
        )
        & (cols["inner_version"] > 0)
    )


def _tie_icmp(cols, paths: pd.DataFrame) -> pd.DataFrame:
    """ICMP time-exceeded messages that quote a looping path."""
    te = _time_exceeded_rows(cols)
    te = te[cols["inner_version"][te] > 0]
    if len(te) == 0 or paths.empty:
        return pd.DataFrame(columns=["row", "path", "sender_hi", "sender_lo", "point"])
    qk = quote_key(
        cols["inner_src_hi"][te],
        cols["inner_src_lo"][te],
        cols["inner_dst_hi"][te],
        cols["inner_dst_lo"][te],
        cols["inner_protocol"][te],
        cols["inner_ip_id"][te],
        cols["inner_l4"][te],
    )
    pk = quote_key(
        paths["src_hi"].to_numpy(),
        paths["src_lo"].to_numpy(),
        paths["dst_hi"].to_numpy(),
        paths["dst_lo"].to_numpy(),
        paths["protocol"].to_numpy(),
        paths["ip_id"].to_numpy(),
        paths["l4_head"].to_numpy(),
    )
    tdf = pd.DataFrame(
        {"row": te, "qk": qk, "time_ns": cols["time_ns"][te], "fp": cols["fingerprint"][te]}
    )
    pdf = pd.DataFrame(
        {
            "path": paths.index.to_numpy(),
            "qk": pk,
            "first_ns": paths["first_ns"].to_numpy(),
            "last_ns": paths["last_ns"].to_numpy(),
        }
    )
    m = tdf.merge(pdf, on="qk")
    # identical bytes re-sent later form other paths: take the path closest in time
    m["dist"] = (m["time_ns"] - m["last_ns"]).abs()
    m = m.sort_values("dist").drop_duplicates("row")
    m = m.drop_duplicates("fp")  # one error seen at several points counts once
    rows = m["row"].to_numpy()
    return pd.DataFrame(
        {
            "row": rows,
            "path": m["path"].to_numpy(),
            "sender_hi": cols["src_hi"][rows],
            "sender_lo": cols["src_lo"][rows],
            "point": cols["point"][rows].astype(np.int64),
        }
    )


def _inferred(
    cols, corr: Correlation, looping_dsts: set, opt: Options, min_hops: int = 8
) -> pd.DataFrame:
    """Loops behind the capture point: a time-exceeded quoting TTL 1 for a packet
    that was seen arriving with a high TTL, its destination not seen looping."""
    te = _time_exceeded_rows(cols)
    te = te[(cols["inner_version"][te] > 0) & (cols["inner_ttl"][te] <= 1)]
    empty = pd.DataFrame(columns=["dst_hi", "dst_lo", "point", "entry_ttl", "rows", "te_rows"])
    if len(te) == 0:
        return empty
    qk_te = quote_key(
        cols["inner_src_hi"][te],
        cols["inner_src_lo"][te],
        cols["inner_dst_hi"][te],
        cols["inner_dst_lo"][te],
        cols["inner_protocol"][te],
        cols["inner_ip_id"][te],
        cols["inner_l4"][te],
    )
    near = np.flatnonzero(np.isin(cols["dst_lo"], np.unique(cols["inner_dst_lo"][te])))
    qk = quote_key(
        cols["src_hi"][near],
        cols["src_lo"][near],
        cols["dst_hi"][near],
        cols["dst_lo"][near],
        cols["protocol"][near],
        cols["ip_id"][near],
        cols["l4_head"][near],
    )
    hit = near[np.isin(qk, qk_te)]
    if len(hit) == 0:
        return empty
    ttl = cols["ttl"][hit].astype(np.int64)
    hit = hit[(ttl - 1) >= min_hops]
    out = []
    for (dh, dl), grp in pd.DataFrame(
        {"row": hit, "dh": cols["dst_hi"][hit], "dl": cols["dst_lo"][hit]}
    ).groupby(["dh", "dl"]):
        if (int(dh), int(dl)) in looping_dsts:
            continue
        r = grp["row"].to_numpy()
        t0, t1 = int(cols["time_ns"][r].min()), int(cols["time_ns"][r].max())
        point = int(np.bincount(cols["point"][r]).argmax())
        # every packet arriving for that destination at that point in the window
        win = (
            (cols["dst_hi"] == dh)
            & (cols["dst_lo"] == dl)
            & (cols["point"] == point)
            & (cols["time_ns"] >= t0 - opt.merge_gap_ns)
            & (cols["time_ns"] <= t1 + opt.merge_gap_ns)
        )
        rows = np.flatnonzero(win)
        tes = te[(cols["inner_dst_hi"][te] == dh) & (cols["inner_dst_lo"][te] == dl)]
        out.append(
            {
                "dst_hi": dh,
                "dst_lo": dl,
                "point": point,
                "rows": rows,
                "te_rows": tes,
                "entry_ttl": int(np.median(cols["ttl"][rows])),
            }
        )
    return pd.DataFrame(out) if out else empty


def _bounces(cols, corr: Correlation, names: list[str]) -> pd.DataFrame:
    bp = np.flatnonzero(corr.p_bounce)
    if len(bp) == 0:
        return pd.DataFrame(
            columns=["destination_hi", "destination_lo", "capture_point", "packets"]
        )
    # one row of each bounce path gives its destination
    first_row = pd.Series(corr.rows).groupby(corr.path).first()
    r = first_row.loc[bp].to_numpy()
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


def _l2_loops(cols, corr: Correlation) -> pd.DataFrame:
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


def detect(cols, corr: Correlation, names: list[str], opt: Options | None = None) -> Detection:
    """Find loops of kind l3 (replicas), l2 (same-TTL repeats) and inferred; and bounces."""
    opt = opt or Options()
    paths, lc = _path_frame(cols, corr, names)
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
    inferred = _inferred(cols, corr, looping_dsts, opt)
    return Detection(
        looping=paths,
        loop_rows=lc,
        bounces=_bounces(cols, corr, names),
        time_exceeded=te,
        inferred=inferred,
        l2=_l2_loops(cols, corr),
    )
