"""Measure stage: per-loop numbers of the JSON contract, the summary, implicated addresses."""
from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd

from .. import schema as S
from ..addr import mac_text, to_text
from .correlate import GUEST_LINK, Correlation, Options
from .detect import Detection
from .explain import explain
from ..contract import iso_ns

_NS = 1_000_000_000


def _prefix_text(dst: str, prefix: int | None) -> str:
    import ipaddress

    a = ipaddress.ip_address(dst)
    plen = a.max_prefixlen if prefix is None else min(prefix, a.max_prefixlen)
    return str(ipaddress.ip_network(f"{dst}/{plen}", strict=False))


def _per_second_peak(times: np.ndarray, firsts: np.ndarray) -> float:
    if len(times) == 0:
        return 0.0
    # sparse bins: a crafted capture can spread a loop's copies over centuries
    sec = np.asarray(times, dtype=np.int64) // _NS
    fsec = np.asarray(firsts, dtype=np.int64) // _NS
    _, inv = np.unique(np.r_[sec, fsec], return_inverse=True)
    extra = np.bincount(inv.ravel(), weights=np.r_[np.ones(len(sec)), -np.ones(len(fsec))])
    return float(max(extra.max(), 0))


def _protocols(protos: np.ndarray) -> dict[str, int]:
    c = Counter(S.PROTO_NAMES.get(int(p), str(int(p))) for p in protos)
    out = {"icmp": 0, "udp": 0, "tcp": 0}
    out.update(c)
    return out


def _fates(paths: pd.DataFrame, te_paths: set, guest_link: bool) -> tuple[dict, dict]:
    """Fate of each looping path, and who dropped the expired ones.

    The receiver of the TTL-1 copy drops it: a copy the host sent (out) is
    dropped by the peer — the guest on a guest link, the upstream router on
    an uplink — and a copy the host received (in) by the host.
    """
    esc = paths["escaped"].to_numpy(dtype=bool)
    expired = ~esc & ((paths["min_ttl"].to_numpy() <= 1) | paths.index.isin(list(te_paths)))
    d = paths["last_direction"].to_numpy()
    guest = int((expired & (d == S.DIR_OUT)).sum())
    host = int((expired & (d == S.DIR_IN)).sum())
    fates = {"expired": int(expired.sum()), "escaped": int(esc.sum()),
             "capture-ended": int((~esc & ~expired).sum())}
    peer = "guest" if guest_link else "router"
    dropped = {"guest": 0, "host": host, "unknown": fates["expired"] - guest - host}
    dropped[peer] = guest
    return fates, dropped


def _l3_loop(lid: int, paths: pd.DataFrame, rows: pd.DataFrame, te: pd.DataFrame,
             opt: Options) -> dict[str, Any]:
    dst = to_text(paths["dst_hi"].iloc[0], paths["dst_lo"].iloc[0])
    first, last = int(paths["first_ns"].min()), int(paths["last_ns"].max())
    dur = (last - first) / _NS
    n = len(paths)
    obs = int(paths["copies"].sum())
    nbytes = int(paths["bytes"].sum())
    cycles = (paths["loop_max_ttl"] - paths["loop_min_ttl"]) / paths["ttl_step"].clip(lower=1)
    ct = ((paths["last_ns"] - paths["first_ns"]) / cycles.where(cycles > 0)).dropna()
    my_te = te[te["path"].isin(paths.index)]
    points = sorted(set(",".join(paths["points"]).split(",")))
    fates, dropped = _fates(paths, set(my_te["path"]),
                            any(GUEST_LINK.match(p) for p in points))
    lr = rows[rows["path"].isin(paths.index)]
    steps = paths["ttl_step"]
    return {
        "id": lid, "kind": "l3", "destination": dst,
        "destination_prefix": _prefix_text(dst, opt.merge_prefix),
        "capture_points": points, "_detected_as": lid,
        "ttl_step": int(steps.mode().iloc[0]),
        "first_seen": iso_ns(first), "last_seen": iso_ns(last), "duration_s": dur,
        "looping_packets": n, "observations": obs, "bytes": nbytes,
        "amplification": obs / n, "amplification_bytes": nbytes / max(1, int(paths["first_bytes"].sum())),
        "cycle_time_ms": float(ct.median() / 1e6) if len(ct) else None,
        "extra_pps_mean": (obs - n) / dur if dur > 0 else None,
        "extra_pps_peak": _per_second_peak(lr["time_ns"].to_numpy(), paths["first_ns"].to_numpy()),
        "sources": sorted({to_text(h, l) for h, l in zip(paths["src_hi"], paths["src_lo"])})[:20],
        "protocols": _protocols(paths["protocol"].to_numpy()),
        "fates": fates, "dropped_by": dropped,
        "icmp_time_exceeded": len(my_te),
        "icmp_senders": sorted({to_text(h, l) for h, l in zip(my_te["sender_hi"], my_te["sender_lo"])}),
        "missing_copies": int(((paths["loop_max_ttl"] - paths["loop_min_ttl"]) + 1 - paths["copies"]
                               ).clip(lower=0).sum()) if (steps <= 2).all() else None,
    }


def _simple_loop(lid: int, kind: str, dst: str, points: list[str], first: int, last: int,
                 n: int, obs: int, nbytes: int, first_bytes: int, times: np.ndarray,
                 firsts: np.ndarray, sources: list[str], protos: np.ndarray, opt: Options,
                 step: int | None, te_count: int = 0, senders: list[str] | None = None,
                 ) -> dict[str, Any]:
    dur = (last - first) / _NS
    return {
        "id": lid, "kind": kind, "destination": dst,
        "destination_prefix": _prefix_text(dst, opt.merge_prefix), "capture_points": points,
        "ttl_step": step, "first_seen": iso_ns(first), "last_seen": iso_ns(last),
        "duration_s": dur, "looping_packets": n, "observations": obs, "bytes": nbytes,
        "amplification": obs / n if n else None,
        "amplification_bytes": nbytes / first_bytes if first_bytes else None,
        "cycle_time_ms": None, "extra_pps_mean": (obs - n) / dur if dur > 0 else None,
        "extra_pps_peak": _per_second_peak(times, firsts) if kind != "inferred" else None,
        "sources": sources[:20], "protocols": _protocols(protos),
        # an inferred loop is one because its packets expired behind the capture point
        "fates": {"expired": n if kind == "inferred" else 0, "escaped": 0, "capture-ended": 0},
        "dropped_by": {"guest": 0, "host": 0, "unknown": n if kind == "inferred" else 0},
        "icmp_time_exceeded": te_count, "icmp_senders": senders or [],
        "missing_copies": None,
    }


def measure(cols: dict[str, np.ndarray], corr: Correlation, det: Detection, names: list[str],
            opt: Options | None = None) -> list[dict[str, Any]]:
    """Every loop as a dict of the DESIGN.md §4 contract, numbered by first appearance."""
    opt = opt or Options()
    loops: list[dict[str, Any]] = []
    p = det.looping
    if not p.empty:
        for lid, grp in p.groupby("loop", sort=True):
            loops.append(_l3_loop(int(lid), grp, det.loop_rows, det.time_exceeded, opt))
    if not det.l2.empty:
        for (dh, dl, pt), g in det.l2.groupby(["dst_hi", "dst_lo", "point"]):
            r = g["row"].to_numpy()
            fpf = g.drop_duplicates("fingerprint")["row"].to_numpy()
            loops.append(_simple_loop(
                0, "l2", to_text(dh, dl), [names[int(pt)]], int(cols["time_ns"][r].min()),
                int(cols["time_ns"][r].max()), len(fpf), len(r), int(cols["wirelen"][r].sum()),
                int(cols["wirelen"][fpf].sum()), cols["time_ns"][r], cols["time_ns"][fpf],
                sorted({to_text(cols["src_hi"][i], cols["src_lo"][i]) for i in fpf}),
                cols["protocol"][fpf], opt, 0))
    for _, inf in det.inferred.iterrows():
        r = inf["rows"]
        est = int((cols["ttl"][r].astype(np.int64) - 1).clip(min=0).sum())
        tes = inf["te_rows"]
        loops.append(_simple_loop(
            0, "inferred", to_text(inf["dst_hi"], inf["dst_lo"]), [names[int(inf["point"])]],
            int(cols["time_ns"][r].min()), int(cols["time_ns"][tes].max()) if len(tes) else
            int(cols["time_ns"][r].max()), len(r), est,
            int((cols["wirelen"][r].astype(np.int64) * (cols["ttl"][r].astype(np.int64) - 1)).sum()),
            int(cols["wirelen"][r].sum()), cols["time_ns"][r], cols["time_ns"][r],
            sorted({to_text(cols["src_hi"][i], cols["src_lo"][i]) for i in r}),
            cols["protocol"][r], opt, None, len(tes),
            sorted({to_text(cols["src_hi"][i], cols["src_lo"][i]) for i in tes})))
        loops[-1]["estimated"] = True
    loops.sort(key=lambda d: (d["first_seen"] or "", d["destination"]))
    for i, lp in enumerate(loops, start=1):
        lp["id"] = i
        lp.setdefault("estimated", False)
        lp["explanation"], lp["fixes"] = explain(lp)
    # detect numbered l3 loops among themselves; keep its table in step with the final ids
    remap = {lp.pop("_detected_as"): lp["id"] for lp in loops if "_detected_as" in lp}
    if remap:
        det.looping["loop"] = det.looping["loop"].map(remap)
    return loops


def bounce_list(det: Detection) -> list[dict[str, Any]]:
    return [{"destination": to_text(r.destination_hi, r.destination_lo),
             "capture_point": r.capture_point, "packets": int(r.packets)}
            for r in det.bounces.itertuples()]


def implicated(loops: list[dict], bounces: list[dict], arp_responders: dict[str, list],
               guest_reporters: set[str] = frozenset()) -> list[dict]:
    """Addresses with roles: loop-destination (also of bounces), source, icmp-reporter,
    guest-link (an ICMP reporter whose error came out of a guest link: the guest's
    own address), proxy-arp-responder (MACs answering ARP/NDP for a loop destination)."""
    acc: dict[str, dict[str, Any]] = {}

    def add(addr: str, role: str, point: str | None, packets: int) -> None:
        e = acc.setdefault(addr, {"address": addr, "roles": [], "capture_point": point,
                                  "packets": 0})
        if role not in e["roles"]:
            e["roles"].append(role)
        e["packets"] += packets
        e["capture_point"] = e["capture_point"] or point

    for lp in loops:
        pt = lp["capture_points"][0] if lp["capture_points"] else None
        add(lp["destination"], "loop-destination", pt, lp["looping_packets"])
        for s in lp["sources"]:
            add(s, "source", None, 0)
        for s in lp["icmp_senders"]:
            add(s, "icmp-reporter", pt, 0)
            if s in guest_reporters:
                add(s, "guest-link", pt, 0)
        for mac in arp_responders.get(lp["destination"], []):
            add(mac, "proxy-arp-responder", None, 0)
    for b in bounces:
        add(b["destination"], "loop-destination", b["capture_point"], b["packets"])
    return sorted(acc.values(), key=lambda e: (-e["packets"], e["address"]))


def guest_reporters(cols: dict[str, np.ndarray], names: list[str]) -> set[str]:
    """Senders of ICMP time-exceeded seen on a guest's point-to-point link."""
    te = ((cols["protocol"] == 1) & (cols["icmp_type"] == 11)) | (
        (cols["protocol"] == 58) & (cols["icmp_type"] == 3))
    idx = np.flatnonzero(te)
    guest_pts = {i for i, n in enumerate(names) if GUEST_LINK.match(n)}
    return {to_text(cols["src_hi"][i], cols["src_lo"][i]) for i in idx
            if int(cols["point"][i]) in guest_pts}


def arp_responders(arp: dict[str, np.ndarray], cols: dict[str, np.ndarray],
                   destinations: set[str]) -> dict[str, list[str]]:
    """MACs that answered ARP (op 2) or NDP (NA) for looping destinations."""
    out: dict[str, set] = {}
    if arp and len(arp.get("op", [])):
        for op, ip, mac in zip(arp["op"], arp["sender_ip"], arp["sender_mac"]):
            if int(op) == 2:
                a = to_text(0, 0xFFFF00000000 | int(ip))
                if a in destinations:
                    out.setdefault(a, set()).add(mac_text(mac))
    na = np.flatnonzero((cols["protocol"] == 58) & (cols["icmp_type"] == 136))
    for i in na:
        a = to_text(cols["inner_dst_hi"][i], cols["inner_dst_lo"][i])
        if a in destinations and cols["eth_src"][i] != S.NO_MAC:
            out.setdefault(a, set()).add(mac_text(cols["eth_src"][i]))
    return {k: sorted(v) for k, v in out.items()}
