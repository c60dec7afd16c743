#!/usr/bin/env python3
"""Generate a realistic Ethernet benchmark capture, fast and deterministically.

The capture is what a host sees on the point-to-point link to one guest
(docs/design.md, *The incident*): ordinary IPv4 traffic in both directions plus
routing loops.  A looping packet is re-emitted on the link with the same src,
dst, IP ID and payload, TTL falling by 1 per copy and the MAC direction
alternating host→guest / guest→host, copies microseconds apart; for about half
of the looping packets an ICMP time-exceeded (quoting the expired header)
follows.

Two shapes of loop, because the analysis has a per-loop cost as well as a
per-packet one and a benchmark must show both:

* default, *few loops* (one incident): the looping packets go to three
  destinations a guest dropped without telling the host, each looping during
  one window of the capture;
* ``--scanner``, *many loops*: a scanner sweeps a range routed to the guest
  in which most addresses are unassigned, so every probed address loops once
  (or twice, when the scanner retries a second later) — thousands of loops for
  2 M packets, with the same share of looping copies as the default.  The
  sweep takes the IPv4 host addresses of the documentation networks first and
  continues in 2001:db8:0:100::/64: three /24s hold only 759 addresses that
  are neither the host's, the guest's nor the scanner's, too few for
  thousands of loops.  IPv6 copies lose 1 from the hop limit per pass, and
  the expired ones are answered by ICMPv6 time-exceeded.

Common to both:

* ordinary traffic TCP 60 % / UDP 30 % / ICMP 10 %, average frame ≈ 583 bytes;
* addresses only from 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 (RFC 5737)
  and 2001:db8::/32 (RFC 3849);
* about 10 % of the records are loop replicas (a second or later pass in
  the same direction);
* correct IPv4 header checksums (L4 checksums are arbitrary but identical
  across the copies of one packet);
* classic pcap, microsecond timestamps, LINKTYPE_ETHERNET.

Records are assembled with numpy in chunks (no per-packet Python), so
2 M packets / 1.2 GB take a few seconds.  Captures above 2 M packets are
written as consecutive 2 M-packet segments (the first is the 2 M-packet
capture of the same seed, byte for byte), so memory stays that of one
segment (about 2 GB) whatever the length.  A sidecar ``FILE.json`` holds the
parameters; an existing file with the same parameters is not regenerated.

    python benchmarks/gen.py /tmp/bench.pcap --packets 2000000
    python benchmarks/gen.py /tmp/scan.pcap --packets 2000000 --scanner
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

GEN_VERSION = 1
NETS = np.array(
    [0xC0000200, 0xC6336400, 0xCB007100], dtype=np.uint64
)  # 192.0.2/198.51.100/203.0.113
HOST_MAC = 0x02_00_5E_10_00_01
GUEST_MAC = 0x02_00_5E_10_00_65
POOL_BYTES = 1 << 24
CHUNK_PACKETS = 65536
#: longer captures are built segment by segment: the table of one segment is ~1 KB/packet
SEGMENT_PACKETS = 2_000_000
PROTO_P = (0.6, 0.3, 0.1)  # TCP, UDP, ICMP
TCP, UDP, ICMP, ICMP6 = 6, 17, 1, 58
# loop destinations: addresses a guest dropped without telling the host
LOOP_DSTS = np.array(
    [0xCB007107, 0xCB007109, 0xC633644D], dtype=np.uint64
)  # .113.7, .113.9, .100.77
ICMP_SENDERS = np.array([0xC0000201, 0xC0000265], dtype=np.uint64)  # host 192.0.2.1, guest .101
# --scanner: who scans, what it sweeps, who answers in IPv6
SCANNER_V4 = 0xCB007142  # 203.0.113.66
SCANNER_V6 = (0x20010DB805CA0000, 0x66)  # 2001:db8:5ca::66
SWEEP_V6_HI = 0x20010DB800000100  # 2001:db8:0:100::/64, routed to the guest
ICMP6_SENDERS_HI = 0x20010DB800000000
ICMP6_SENDERS_LO = np.array([0x1, 0x65], dtype=np.uint64)  # host 2001:db8::1, guest ::65
SCAN_PORTS = np.array([22, 23, 80, 443, 445, 3389, 5900, 8080])
RETRY_US = 1_000_000  # a retried probe: one second later, well inside one loop's merge gap
# byte offsets in a record's header matrix: pcap record header, Ethernet, IP, L4
ETH, IP_OFF = 16, 30
L4_V4, L4_V6 = 50, 70
HDR_V4 = L4_V4 + 8 + 28  # widest IPv4 record header: ICMP time-exceeded with its quote
HDR_V6 = L4_V6 + 8 + 48  # ICMPv6 time-exceeded quoting an IPv6 header and 8 bytes


def _sweep_v4() -> np.ndarray:
    """The IPv4 addresses a scanner of the documentation networks would loop on."""
    hosts = (NETS[:, None] | np.arange(1, 255, dtype=np.uint64)[None, :]).ravel()
    own = np.concatenate([ICMP_SENDERS, np.array([SCANNER_V4], dtype=np.uint64)])
    return hosts[~np.isin(hosts, own)]


def params_of(packets: int, seed: int, loop_share: float, scanner: bool = False) -> dict[str, Any]:
    """The parameters that decide the file's bytes (the cache key in the sidecar).

    Keys are added only when they differ from the original generator, so
    captures cached before they existed stay valid.
    """
    p: dict[str, Any] = {
        "generator_version": GEN_VERSION,
        "packets": int(packets),
        "seed": int(seed),
        "loop_share": float(loop_share),
    }
    if scanner:
        p["loops"] = "scanner"
    if packets > SEGMENT_PACKETS:
        p["segment_packets"] = SEGMENT_PACKETS
    return p


def _sizes(rng: np.random.Generator, proto: np.ndarray) -> np.ndarray:
    """Frame lengths (Ethernet header included, no FCS) per protocol."""
    n = len(proto)
    u = rng.random(n)
    L = np.empty(n, dtype=np.int64)
    t = proto == TCP
    ack = t & (u < 0.4)
    L[ack] = 54 + 12 * (rng.random(int(ack.sum())) < 0.5)  # pure ACKs, with/without timestamps
    big = t & ~ack
    L[big] = rng.integers(430, 1515, int(big.sum()))
    ud = proto == UDP
    small = ud & (u < 0.5)
    L[small] = rng.integers(60, 201, int(small.sum()))
    large = ud & ~small
    L[large] = rng.integers(1200, 1473, int(large.sum()))
    ic = proto == ICMP
    L[ic] = 98  # echo with 56 bytes of data
    return L


def _ip_csum(
    tot: np.ndarray,
    ident: np.ndarray,
    fragw: np.ndarray,
    ttl: np.ndarray,
    proto: np.ndarray,
    src: np.ndarray,
    dst: np.ndarray,
) -> np.ndarray:
    s = (
        np.uint64(0x4500)
        + tot.astype(np.uint64)
        + ident.astype(np.uint64)
        + fragw.astype(np.uint64)
        + ((ttl.astype(np.uint64) << np.uint64(8)) | proto.astype(np.uint64))
        + (src >> np.uint64(16))
        + (src & np.uint64(0xFFFF))
        + (dst >> np.uint64(16))
        + (dst & np.uint64(0xFFFF))
    )
    s = (s & np.uint64(0xFFFF)) + (s >> np.uint64(16))
    s = (s & np.uint64(0xFFFF)) + (s >> np.uint64(16))
    out: np.ndarray = (~s) & np.uint64(0xFFFF)
    return out


def _be(H: np.ndarray, col: int, width: int, v: Any) -> None:
    v = np.asarray(v).astype(np.uint64)
    for j in range(width):
        H[:, col + j] = (v >> np.uint64(8 * (width - 1 - j))) & np.uint64(0xFF)


def _le(H: np.ndarray, col: int, width: int, v: np.ndarray) -> None:
    v = v.astype(np.uint64)
    for j in range(width):
        H[:, col + j] = (v >> np.uint64(8 * j)) & np.uint64(0xFF)


def _scanner(
    rng: np.random.Generator, ncl: int, dur_us: int
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Per looping packet of a sweep: its destination's number and its time.

    Every destination gets one probe, or two (a retry one second later, so
    one loop either way); destinations are probed in order across the capture.
    Returns (destination per packet, time per packet, destinations, IPv6 ones).
    """
    per = 1 + (rng.random(max(ncl, 1)) < 0.5).astype(np.int64)
    n_dest = int(np.searchsorted(np.cumsum(per), ncl)) + 1 if ncl else 0
    dest = np.repeat(np.arange(n_dest), per[:n_dest])[:ncl]
    first = np.ones(ncl, dtype=bool)
    first[1:] = dest[1:] != dest[:-1]
    step = max(1, int(dur_us * 0.9) // max(n_dest, 1))
    t = dest * step + rng.integers(0, step, ncl)
    t[~first] = (
        t[np.flatnonzero(~first) - 1] + RETRY_US + rng.integers(0, 200_000, int((~first).sum()))
    )
    n6 = max(0, n_dest - len(_sweep_v4()))
    return dest, t, n_dest, n6


def build_table(
    packets: int, seed: int | list[int], loop_share: float, scanner: bool = False
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every record's fields (in capture order) and summary statistics."""
    rng = np.random.default_rng(seed)
    N = int(packets)
    # --- loops: chains of copies -------------------------------------------
    target = round(loop_share * N)  # replicas wanted
    entry = rng.integers(24, 65, max(16, target // 20 + 16))  # TTL on entering the link
    copies = entry - 1  # one copy per TTL value down to 1
    reps = np.maximum(copies - 2, 0)  # first pass each way is not a replica
    cut = int(np.searchsorted(np.cumsum(reps), target)) + 1 if target else 0
    entry, copies = entry[:cut], copies[:cut].copy()
    if cut:
        over = int(np.cumsum(reps[:cut])[-1]) - target
        copies[-1] = max(copies[-1] - over, 1)  # the capture ended mid-chain
    te = rng.random(cut) < 0.5  # ICMP time-exceeded seen (kernel rate-limits them)
    te &= copies == entry - 1
    while cut and copies.sum() + te.sum() > N:  # tiny files
        cut -= 1
        entry, copies, te = entry[:cut], copies[:cut], te[:cut]
    n_loop = int(copies.sum())
    n_te = int(te.sum())
    B = N - n_loop - n_te
    # --- duration and flows ------------------------------------------------
    dur_us = max(1_000_000, N * 25)  # 40 k packets/s
    t0 = 1_700_000_000 * 1_000_000
    F = max(8, N // 40)
    f_proto = rng.choice(np.array([TCP, UDP, ICMP]), F, p=PROTO_P)
    f_src = NETS[rng.integers(0, 3, F)] | rng.integers(1, 255, F).astype(np.uint64)
    f_dst = NETS[rng.integers(0, 3, F)] | rng.integers(1, 255, F).astype(np.uint64)
    services = np.array([80, 443, 53, 22, 123, 8080, 25, 3306, 5432, 6379])
    f_sport = rng.integers(32768, 61000, F)
    f_dport = services[rng.integers(0, len(services), F)]
    f_dport[f_proto == UDP] = np.where(rng.random(int((f_proto == UDP).sum())) < 0.6, 53, 123)
    f_ttl = np.where(rng.random(F) < 0.75, 64, 128) - rng.integers(0, 16, F)
    w = 1.0 / np.arange(1, F + 1) ** 0.8
    flow = rng.choice(F, B, p=w / w.sum())
    # --- logical packets: normal ones, then one per loop chain --------------
    ncl = cut
    lp_proto = rng.choice(np.array([TCP, UDP, ICMP]), ncl, p=PROTO_P)
    proto = np.concatenate([f_proto[flow], lp_proto])
    rev = np.concatenate([rng.random(B) < 0.5, np.zeros(ncl, bool)])  # guest→host reply
    src = np.concatenate(
        [f_src[flow], NETS[rng.integers(0, 3, ncl)] | rng.integers(1, 255, ncl).astype(np.uint64)]
    )
    lp_dsti = rng.integers(0, len(LOOP_DSTS), ncl)
    dst = np.concatenate([f_dst[flow], LOOP_DSTS[lp_dsti]])
    sport = np.concatenate([f_sport[flow], rng.integers(32768, 61000, ncl)])
    dport = np.concatenate([f_dport[flow], services[rng.integers(0, len(services), ncl)]])
    src, dst = np.where(rev, dst, src), np.where(rev, src, dst)
    sport, dport = np.where(rev, dport, sport), np.where(rev, sport, dport)
    M = B + ncl
    L = _sizes(rng, proto)
    ident = rng.integers(0, 65536, M)
    df = proto != ICMP
    ttl = np.concatenate([f_ttl[flow], entry - 1])
    pool_off = rng.integers(0, POOL_BYTES - 2048, M)
    seq = rng.integers(0, 1 << 32, M, dtype=np.uint64)
    ack = rng.integers(0, 1 << 32, M, dtype=np.uint64)
    tflags = np.where(L > 66, 0x18, 0x10)
    tflags[rng.random(M) < 0.01] = 0x02
    itype = np.where(rng.random(M) < 0.5, 8, 0)
    time_us = np.empty(M, dtype=np.int64)
    time_us[:B] = rng.integers(0, dur_us, B)
    # each loop destination loops during one window of the capture
    win0 = rng.integers(0, dur_us // 2, len(LOOP_DSTS))
    time_us[B:] = win0[lp_dsti] + rng.integers(0, dur_us // 2, ncl)
    v6: np.ndarray | None = None
    n_dest, n_dest6 = len(np.unique(lp_dsti)), 0
    if scanner:
        # the looping packets become a sweep's probes; drawn from a generator of their own so
        # the ordinary traffic is the default capture's, draw for draw
        srng = np.random.default_rng([*np.atleast_1d(seed).tolist(), 0x5CA])
        dest, t_scan, n_dest, n_dest6 = _scanner(srng, ncl, dur_us)
        sweep4 = _sweep_v4()
        is6 = dest >= len(sweep4)
        lp = slice(B, M)
        syn = srng.random(ncl) < 0.75  # TCP SYN; the rest ICMP echo requests
        proto[lp] = np.where(syn, TCP, ICMP)
        L[lp] = np.where(syn, 54, 98) + 20 * is6  # IPv6 header: 20 bytes more
        src[lp] = np.where(is6, 0, SCANNER_V4)  # IPv6 addresses: fixed parts, see _assemble
        dst[lp] = np.where(is6, (dest - len(sweep4) + 1), sweep4[np.minimum(dest, len(sweep4) - 1)])
        sport[lp] = srng.integers(32768, 61000, ncl)
        dport[lp] = SCAN_PORTS[srng.integers(0, len(SCAN_PORTS), ncl)]
        df[lp] = syn
        ack[lp] = 0
        tflags[lp] = 0x02
        itype[lp] = np.where(is6, 128, 8)  # echo request
        time_us[lp] = t_scan
        v6 = np.zeros(M, dtype=bool)
        v6[lp] = is6
    # --- expand the loop chains into records --------------------------------
    chain = np.repeat(np.arange(ncl), copies)
    k = np.arange(n_loop) - np.repeat(np.cumsum(copies) - copies, copies)  # copy number
    gap = rng.integers(4, 31, ncl)  # microseconds per pass
    lrow = B + chain
    rec_row = np.concatenate([np.arange(B), lrow])  # logical packet of each record
    rec_ttl = np.concatenate([ttl[:B], (entry - 1)[chain] - k])
    rec_dir = np.concatenate([rev[:B].astype(np.int64), k & 1])  # 1 = guest→host
    rec_t = np.concatenate([time_us[:B], time_us[lrow] + k * gap[chain]])
    rec_kind = np.concatenate([np.zeros(B, np.int8), np.where(k >= 2, 2, 1).astype(np.int8)])
    # time-exceeded: from the host or the guest back to the looping packet's source
    tch = np.flatnonzero(te)
    te_row = B + tch
    te_t = time_us[te_row] + copies[tch] * gap[tch] + rng.integers(20, 200, n_te)
    te_from = ICMP_SENDERS[rng.integers(0, 2, n_te)]
    # --- capture order ----------------------------------------------------
    all_t = np.concatenate([rec_t, te_t])
    order = np.argsort(all_t, kind="stable")
    is_te = order >= len(rec_t)
    R = N
    tab = {
        "t": t0 + all_t[order],
        "is_te": is_te,
        "row": np.where(is_te, 0, np.concatenate([rec_row, np.zeros(n_te, np.int64)])[order]),
        "te_row": np.where(
            is_te, np.concatenate([np.zeros(len(rec_t), np.int64), te_row])[order], 0
        ),
        "te_from": np.where(
            is_te, np.concatenate([np.zeros(len(rec_t), np.uint64), te_from])[order], np.uint64(0)
        ),
        "ttl": np.where(is_te, 64, np.concatenate([rec_ttl, np.zeros(n_te, np.int64)])[order]),
        "dir": np.where(is_te, 1, np.concatenate([rec_dir, np.zeros(n_te, np.int64)])[order]),
        "kind": np.concatenate([rec_kind, np.full(n_te, 3, np.int8)])[order],
        # logical-packet arrays
        "proto": proto,
        "src": src,
        "dst": dst,
        "sport": sport,
        "dport": dport,
        "L": L,
        "ident": ident,
        "df": df,
        "pool_off": pool_off,
        "seq": seq,
        "ack": ack,
        "tflags": tflags,
        "itype": itype,
        "te_ident": rng.integers(0, 65536, max(n_te, 1)),
    }
    te_len: int | np.ndarray = 14 + 20 + 8 + 28
    if v6 is not None:
        tab["v6"] = v6
        te_len = np.where(v6[tab["te_row"]], 14 + 40 + 8 + 48, te_len)
    frame_len = np.where(is_te, te_len, L[tab["row"]])
    kinds = tab["kind"]
    rproto = np.where(is_te, ICMP, proto[tab["row"]])
    stats = {
        "records": R,
        "bytes_frames": int(frame_len.sum()),
        "avg_frame": round(float(frame_len.mean()), 1) if R else 0.0,
        "tcp_share": round(float((rproto == TCP).mean()), 4) if R else 0.0,
        "udp_share": round(float((rproto == UDP).mean()), 4) if R else 0.0,
        "icmp_share": round(float((rproto == ICMP).mean()), 4) if R else 0.0,
        "looping_packets": ncl,
        "loop_copies": n_loop,
        "loop_replicas": int((kinds == 2).sum()),
        "replica_share": round(float((kinds == 2).mean()), 4) if R else 0.0,
        "time_exceeded": n_te,
        "loop_destinations": n_dest,
        "loop_destinations_ipv6": n_dest6,
        "duration_s": round(float((all_t.max() - all_t.min()) / 1e6), 3) if R else 0.0,
    }
    tab["frame_len"] = frame_len
    return tab, stats


def _put(H: np.ndarray, m: np.ndarray, block: np.ndarray, v6: np.ndarray) -> None:
    """Write the selected rows' L4 bytes after their IP header (IPv4 or IPv6)."""
    rows = np.flatnonzero(m)
    w = block.shape[1]
    s6 = v6[rows]
    H[rows[~s6], L4_V4 : L4_V4 + w] = block[~s6]
    if s6.any():
        H[rows[s6], L4_V6 : L4_V6 + w] = block[s6]


def _ipv6_header(
    n: int, plen: np.ndarray, nxt: np.ndarray, hop: np.ndarray, flow: np.ndarray
) -> np.ndarray:
    """IPv6 headers without addresses (bytes 0–7 of 40), one row per packet."""
    G = np.zeros((n, 40), dtype=np.uint8)
    G[:, 0] = 0x60
    _be(G, 2, 2, flow)  # flow label: the packet's identity, the same in every copy
    _be(G, 4, 2, plen)
    G[:, 6] = nxt
    G[:, 7] = hop
    return G


def _assemble(tab: dict[str, Any], lo: int, hi: int, pool: np.ndarray) -> np.ndarray:
    """Bytes of records lo..hi (record headers included)."""
    is_te = tab["is_te"][lo:hi]
    row = tab["row"][lo:hi]
    L = tab["frame_len"][lo:hi]
    n = hi - lo
    rec = 16 + L
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(rec[:-1], out=starts[1:])
    total = int(rec.sum())
    # payload: the same pool bytes for every copy of a logical packet
    poff = tab["pool_off"][row]
    delta = (poff - starts).astype(np.int32)
    idx = np.repeat(delta, rec)
    idx += np.arange(total, dtype=np.int32)
    out = pool[idx]
    del idx
    proto = np.where(is_te, ICMP, tab["proto"][row]).astype(np.uint64)
    src = tab["src"][row]
    dst = tab["dst"][row]
    te_row = tab["te_row"][lo:hi]
    src = np.where(is_te, tab["te_from"][lo:hi], src)
    dst = np.where(is_te, tab["src"][te_row], dst)
    ttl = tab["ttl"][lo:hi].astype(np.uint64)
    ident = np.where(
        is_te, tab["te_ident"][np.cumsum(is_te) % len(tab["te_ident"])], tab["ident"][row]
    ).astype(np.uint64)
    fragw = np.where(is_te, 0, np.where(tab["df"][row], 0x4000, 0)).astype(np.uint64)
    tot = (L - 14).astype(np.uint64)
    v6_of = tab.get("v6")
    v6 = np.zeros(n, dtype=bool) if v6_of is None else np.where(is_te, v6_of[te_row], v6_of[row])
    H = np.zeros((n, HDR_V6 if v6.any() else HDR_V4), dtype=np.uint8)
    t = tab["t"][lo:hi]
    _le(H, 0, 4, t // 1_000_000)
    _le(H, 4, 4, t % 1_000_000)
    _le(H, 8, 4, L)
    _le(H, 12, 4, L)
    g2h = tab["dir"][lo:hi] == 1
    _be(H, ETH, 6, np.where(g2h, HOST_MAC, GUEST_MAC))
    _be(H, ETH + 6, 6, np.where(g2h, GUEST_MAC, HOST_MAC))
    H[:, 28], H[:, 29] = 0x08, 0x00
    ip = IP_OFF
    H[:, ip] = 0x45
    _be(H, ip + 2, 2, tot)
    _be(H, ip + 4, 2, ident)
    _be(H, ip + 6, 2, fragw)
    H[:, ip + 8] = ttl
    H[:, ip + 9] = proto
    _be(H, ip + 10, 2, _ip_csum(tot, ident, fragw, ttl, proto, src, dst))
    _be(H, ip + 12, 4, src)
    _be(H, ip + 16, 4, dst)
    hl = np.full(n, 8, dtype=np.int64)
    if v6.any():  # overwrite the IPv4 layout of the IPv6 rows
        r6 = np.flatnonzero(v6)
        te6 = is_te[r6]
        nxt = np.where(proto[r6] == ICMP, ICMP6, proto[r6])
        G = _ipv6_header(len(r6), L[r6] - 54, nxt, ttl[r6], ident[r6])
        shi, slo = SCANNER_V6
        sender = np.where(tab["te_from"][lo:hi][r6] == ICMP_SENDERS[0], *ICMP6_SENDERS_LO)
        _be(G, 8, 8, np.where(te6, ICMP6_SENDERS_HI, shi))
        _be(G, 16, 8, np.where(te6, sender, slo))
        _be(G, 24, 8, np.where(te6, shi, SWEEP_V6_HI))
        _be(G, 32, 8, np.where(te6, slo, dst[r6]))
        H[r6, 28], H[r6, 29] = 0x86, 0xDD
        H[r6, ip : ip + 40] = G
    # TCP
    m = proto == TCP
    if m.any():
        r = row[m]
        T = np.zeros((int(m.sum()), 20), dtype=np.uint8)
        _be(T, 0, 2, tab["sport"][r])
        _be(T, 2, 2, tab["dport"][r])
        _be(T, 4, 4, tab["seq"][r])
        _be(T, 8, 4, tab["ack"][r])
        T[:, 12] = 0x50
        T[:, 13] = tab["tflags"][r]
        _be(T, 14, 2, np.full(len(r), 502))
        _be(T, 16, 2, tab["seq"][r] & np.uint64(0xFFFF))  # arbitrary, same for all copies
        _put(H, m, T, v6)
        hl[m] = 20
    m = proto == UDP
    if m.any():
        r = row[m]
        U = np.zeros((int(m.sum()), 8), dtype=np.uint8)
        _be(U, 0, 2, tab["sport"][r])
        _be(U, 2, 2, tab["dport"][r])
        _be(U, 4, 2, L[m] - np.where(v6[m], 54, 34))
        _be(U, 6, 2, tab["ack"][r] & np.uint64(0xFFFF))
        _put(H, m, U, v6)
    m = (proto == ICMP) & ~is_te
    if m.any():
        r = row[m]
        S = np.zeros((int(m.sum()), 8), dtype=np.uint8)
        S[:, 0] = tab["itype"][r]
        _be(S, 2, 2, tab["seq"][r] & np.uint64(0xFFFF))
        _be(S, 4, 2, tab["sport"][r])
        _be(S, 6, 2, tab["ack"][r] & np.uint64(0xFFFF))
        _put(H, m, S, v6)
    m = is_te & ~v6
    if m.any():
        q = te_row[m]  # the logical looping packet quoted
        Q = np.zeros((len(q), 36), dtype=np.uint8)
        Q[:, 0] = 11
        _be(Q, 2, 2, tab["seq"][q] >> np.uint64(16))
        qp = tab["proto"][q].astype(np.uint64)
        qtot = (tab["L"][q] - 14).astype(np.uint64)
        qid = tab["ident"][q].astype(np.uint64)
        qf = np.where(tab["df"][q], 0x4000, 0).astype(np.uint64)
        qttl = np.ones(len(q), dtype=np.uint64)
        Q[:, 8] = 0x45
        _be(Q, 10, 2, qtot)
        _be(Q, 12, 2, qid)
        _be(Q, 14, 2, qf)
        Q[:, 16] = 1
        Q[:, 17] = qp
        _be(Q, 18, 2, _ip_csum(qtot, qid, qf, qttl, qp, tab["src"][q], tab["dst"][q]))
        _be(Q, 20, 4, tab["src"][q])
        _be(Q, 24, 4, tab["dst"][q])
        _be(Q, 28, 2, tab["sport"][q])
        _be(Q, 30, 2, tab["dport"][q])
        _be(Q, 32, 4, tab["seq"][q])
        H[m, L4_V4 : L4_V4 + 36] = Q
        hl[m] = 36
    m = is_te & v6
    if m.any():
        q = te_row[m]
        Q = np.zeros((len(q), 56), dtype=np.uint8)
        Q[:, 0] = 3  # ICMPv6 time exceeded, hop limit exceeded in transit
        _be(Q, 2, 2, tab["seq"][q] >> np.uint64(16))
        qp = tab["proto"][q]
        Q[:, 8:48] = _ipv6_header(
            len(q),
            tab["L"][q] - 54,
            np.where(qp == ICMP, ICMP6, qp),
            np.ones(len(q)),
            tab["ident"][q],
        )
        shi, slo = SCANNER_V6
        _be(Q, 16, 8, np.full(len(q), shi))
        _be(Q, 24, 8, np.full(len(q), slo))
        _be(Q, 32, 8, np.full(len(q), SWEEP_V6_HI))
        _be(Q, 40, 8, tab["dst"][q])
        # the first 8 bytes of the expired packet's own L4 header, as it was sent
        tcp = qp == TCP
        _be(Q, 48, 2, np.where(tcp, tab["sport"][q], tab["itype"][q] << 8))
        _be(Q, 50, 2, np.where(tcp, tab["dport"][q], tab["seq"][q] & np.uint64(0xFFFF)))
        _be(
            Q,
            52,
            4,
            np.where(
                tcp,
                tab["seq"][q],
                (tab["sport"][q].astype(np.uint64) << np.uint64(16))
                | (tab["ack"][q] & np.uint64(0xFFFF)),
            ),
        )
        H[m, L4_V6 : L4_V6 + 56] = Q
        hl[m] = 56
    hw = np.where(v6, L4_V6, L4_V4) + hl  # header bytes of each record
    for h in np.unique(hw):
        sel = hw == h
        pos = starts[sel][:, None] + np.arange(int(h))
        out[pos] = H[sel, : int(h)]
    data: np.ndarray = out
    return data


def global_header() -> bytes:
    return (
        b"\xd4\xc3\xb2\xa1"
        + (2).to_bytes(2, "little")
        + (4).to_bytes(2, "little")
        + bytes(8)
        + (262144).to_bytes(4, "little")
        + (1).to_bytes(4, "little")
    )


def _merge_stats(parts: list[dict[str, Any]], first_t: int, last_t: int) -> dict[str, Any]:
    """Statistics of consecutive segments as those of one capture."""
    if len(parts) == 1:
        return parts[0]
    n = sum(p["records"] for p in parts)
    out: dict[str, Any] = {}
    for key in parts[0]:
        vals = [p[key] for p in parts]
        if key.startswith("loop_destinations"):  # every segment loops to the same ones
            out[key] = max(vals)
        elif key.endswith("_share"):
            out[key] = round(sum(v * p["records"] for v, p in zip(vals, parts)) / n, 4)
        else:
            out[key] = sum(vals)
    out["avg_frame"] = round(out["bytes_frames"] / n, 1)
    out["duration_s"] = round((last_t - first_t) / 1e6, 3)
    out["segments"] = len(parts)
    return out


def is_cached(
    path: str | os.PathLike[str],
    packets: int,
    seed: int = 7,
    loop_share: float = 0.10,
    scanner: bool = False,
) -> dict[str, Any] | None:
    """The sidecar of an existing capture with these parameters, else None."""
    path = Path(path)
    side = path.with_name(path.name + ".json")
    if not (path.exists() and side.exists()):
        return None
    try:
        meta = json.loads(side.read_text())
        if (
            meta.get("params") == params_of(packets, seed, loop_share, scanner)
            and meta.get("size") == path.stat().st_size
        ):
            return dict(meta)
    except (OSError, ValueError):
        pass
    return None


def generate(
    path: str | os.PathLike[str],
    packets: int = 2_000_000,
    seed: int = 7,
    loop_share: float = 0.10,
    force: bool = False,
    quiet: bool = False,
    scanner: bool = False,
) -> dict[str, Any]:
    """Write the capture (unless cached); returns the sidecar dict."""
    path = Path(path)
    side = path.with_name(path.name + ".json")
    meta = None if force else is_cached(path, packets, seed, loop_share, scanner)
    if meta is not None:
        return meta
    t0 = time.perf_counter()
    pool = np.random.default_rng(seed + 1).integers(0, 256, POOL_BYTES, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    parts: list[dict[str, Any]] = []
    first_t = last_t = 0
    with open(tmp, "wb") as f:
        f.write(global_header())
        for i, seg_lo in enumerate(range(0, packets, SEGMENT_PACKETS)):
            seg_n = min(SEGMENT_PACKETS, packets - seg_lo)
            tab, stats = build_table(seg_n, seed if i == 0 else [seed, i], loop_share, scanner)
            if i == 0:
                first_t = int(tab["t"].min())
            else:  # the next segment starts where the last one ended
                tab["t"] = tab["t"] + (last_t + 25 - int(tab["t"].min()))
            last_t = int(tab["t"].max())
            parts.append(stats)
            for lo in range(0, seg_n, CHUNK_PACKETS):
                f.write(_assemble(tab, lo, min(lo + CHUNK_PACKETS, seg_n), pool).tobytes())
            del tab
            if not quiet and packets > SEGMENT_PACKETS:
                print(f"  {seg_lo + seg_n:,} / {packets:,} packets", file=sys.stderr, flush=True)
    os.replace(tmp, path)
    meta = {
        "params": params_of(packets, seed, loop_share, scanner),
        "size": path.stat().st_size,
        "stats": _merge_stats(parts, first_t, last_t),
        "generated_in_s": round(time.perf_counter() - t0, 2),
    }
    side.write_text(json.dumps(meta, indent=1) + "\n")
    if not quiet:
        print(
            f"wrote {path}: {packets:,} packets, {meta['size'] / 1e6:.1f} MB in "
            f"{meta['generated_in_s']} s",
            file=sys.stderr,
        )
    return meta


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("output", help="pcap file to write")
    ap.add_argument("--packets", type=int, default=2_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--loop-share",
        type=float,
        default=0.10,
        help="share of records that are loop replicas (default 0.10)",
    )
    ap.add_argument(
        "--scanner",
        action="store_true",
        help="many loops: a scanner's sweep, every address looping once or twice",
    )
    ap.add_argument("--force", action="store_true", help="regenerate even if cached")
    ap.add_argument(
        "--cached",
        action="store_true",
        help="write nothing; exit 0 when the file exists with these parameters, else 1",
    )
    a = ap.parse_args(argv)
    if a.packets < 1:
        ap.error("--packets must be at least 1")
    if a.cached:
        return 0 if is_cached(a.output, a.packets, a.seed, a.loop_share, a.scanner) else 1
    meta = generate(a.output, a.packets, a.seed, a.loop_share, a.force, scanner=a.scanner)
    print(json.dumps(meta["stats"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
