#!/usr/bin/env python3
"""Generate a realistic Ethernet/IPv4 benchmark capture, fast and deterministically.

The capture is what a host sees on the point-to-point link to one guest
(docs/design.md, *The incident*): ordinary traffic in both directions plus routing loops.  A
looping packet is re-emitted on the link with the same src, dst, IP ID and
payload, TTL falling by 1 per copy and the MAC direction alternating
host→guest / guest→host, copies microseconds apart; for about half of the
looping packets an ICMP time-exceeded (quoting the expired header) follows.

* mix: TCP 60 % / UDP 30 % / ICMP 10 %, average frame ≈ 583 bytes;
* addresses only from 192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24 (RFC 5737);
* about 10 % of the records are loop replicas (a second or later pass in
  the same direction);
* correct IPv4 header checksums (L4 checksums are arbitrary but identical
  across the copies of one packet);
* classic pcap, microsecond timestamps, LINKTYPE_ETHERNET.

Records are assembled with numpy in chunks (no per-packet Python), so
2 M packets / 1.2 GB take a few seconds.  A sidecar ``FILE.json`` holds the
parameters; an existing file with the same parameters is not regenerated.

    python benchmarks/gen.py /tmp/bench.pcap --packets 2000000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

GEN_VERSION = 1
NETS = np.array(
    [0xC0000200, 0xC6336400, 0xCB007100], dtype=np.uint64
)  # 192.0.2/198.51.100/203.0.113
HOST_MAC = 0x02_00_5E_10_00_01
GUEST_MAC = 0x02_00_5E_10_00_65
POOL_BYTES = 1 << 24
CHUNK_PACKETS = 65536
PROTO_P = (0.6, 0.3, 0.1)  # TCP, UDP, ICMP
TCP, UDP, ICMP = 6, 17, 1
# loop destinations: addresses a guest dropped without telling the host
LOOP_DSTS = np.array(
    [0xCB007107, 0xCB007109, 0xC633644D], dtype=np.uint64
)  # .113.7, .113.9, .100.77
ICMP_SENDERS = np.array([0xC0000201, 0xC0000265], dtype=np.uint64)  # host 192.0.2.1, guest .101


def params_of(packets: int, seed: int, loop_share: float) -> dict:
    return {
        "generator_version": GEN_VERSION,
        "packets": int(packets),
        "seed": int(seed),
        "loop_share": float(loop_share),
    }


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


def _ip_csum(tot, ident, fragw, ttl, proto, src, dst) -> np.ndarray:
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
    return (~s) & np.uint64(0xFFFF)


def _be(H: np.ndarray, col: int, width: int, v: np.ndarray) -> None:
    v = v.astype(np.uint64)
    for j in range(width):
        H[:, col + j] = (v >> np.uint64(8 * (width - 1 - j))) & np.uint64(0xFF)


def _le(H: np.ndarray, col: int, width: int, v: np.ndarray) -> None:
    v = v.astype(np.uint64)
    for j in range(width):
        H[:, col + j] = (v >> np.uint64(8 * j)) & np.uint64(0xFF)


def build_table(packets: int, seed: int, loop_share: float) -> tuple[dict, dict]:
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
    frame_len = np.where(is_te, 14 + 20 + 8 + 28, L[tab["row"]])
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
        "duration_s": round(float((all_t.max() - all_t.min()) / 1e6), 3) if R else 0.0,
    }
    tab["frame_len"] = frame_len
    return tab, stats


def _assemble(tab: dict, lo: int, hi: int, pool: np.ndarray, idx_buf=None) -> np.ndarray:
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
    H = np.zeros((n, 16 + 14 + 20 + 8 + 28), dtype=np.uint8)
    t = tab["t"][lo:hi]
    _le(H, 0, 4, t // 1_000_000)
    _le(H, 4, 4, t % 1_000_000)
    _le(H, 8, 4, L)
    _le(H, 12, 4, L)
    g2h = tab["dir"][lo:hi] == 1
    _be(H, 16, 6, np.where(g2h, HOST_MAC, GUEST_MAC))
    _be(H, 22, 6, np.where(g2h, GUEST_MAC, HOST_MAC))
    H[:, 28], H[:, 29] = 0x08, 0x00
    ip = 30
    H[:, ip] = 0x45
    _be(H, ip + 2, 2, tot)
    _be(H, ip + 4, 2, ident)
    _be(H, ip + 6, 2, fragw)
    H[:, ip + 8] = ttl
    H[:, ip + 9] = proto
    _be(H, ip + 10, 2, _ip_csum(tot, ident, fragw, ttl, proto, src, dst))
    _be(H, ip + 12, 4, src)
    _be(H, ip + 16, 4, dst)
    l4 = ip + 20
    hl = np.full(n, 8, dtype=np.int64)
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
        H[m, l4 : l4 + 20] = T
        hl[m] = 20
    m = proto == UDP
    if m.any():
        r = row[m]
        _be_sub = np.zeros((int(m.sum()), 8), dtype=np.uint8)
        _be(_be_sub, 0, 2, tab["sport"][r])
        _be(_be_sub, 2, 2, tab["dport"][r])
        _be(_be_sub, 4, 2, L[m] - 34)
        _be(_be_sub, 6, 2, tab["ack"][r] & np.uint64(0xFFFF))
        H[m, l4 : l4 + 8] = _be_sub
    m = (proto == ICMP) & ~is_te
    if m.any():
        r = row[m]
        S = np.zeros((int(m.sum()), 8), dtype=np.uint8)
        S[:, 0] = tab["itype"][r]
        _be(S, 2, 2, tab["seq"][r] & np.uint64(0xFFFF))
        _be(S, 4, 2, tab["sport"][r])
        _be(S, 6, 2, tab["ack"][r] & np.uint64(0xFFFF))
        H[m, l4 : l4 + 8] = S
    if is_te.any():
        q = te_row[is_te]  # the logical looping packet quoted
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
        H[is_te, l4 : l4 + 36] = Q
        hl[is_te] = 36
    for h in np.unique(hl):
        sel = hl == h
        w = l4 + int(h)
        pos = starts[sel][:, None] + np.arange(w)
        out[pos] = H[sel, :w]
    return out


def global_header() -> bytes:
    return (
        b"\xd4\xc3\xb2\xa1"
        + (2).to_bytes(2, "little")
        + (4).to_bytes(2, "little")
        + bytes(8)
        + (262144).to_bytes(4, "little")
        + (1).to_bytes(4, "little")
    )


def generate(
    path: str | os.PathLike[str],
    packets: int = 2_000_000,
    seed: int = 7,
    loop_share: float = 0.10,
    force: bool = False,
    quiet: bool = False,
) -> dict:
    """Write the capture (unless cached); returns the sidecar dict."""
    path = Path(path)
    side = path.with_name(path.name + ".json")
    want = params_of(packets, seed, loop_share)
    if not force and path.exists() and side.exists():
        try:
            meta = json.loads(side.read_text())
            if meta.get("params") == want and meta.get("size") == path.stat().st_size:
                return meta
        except (OSError, ValueError):
            pass
    t0 = time.perf_counter()
    tab, stats = build_table(packets, seed, loop_share)
    pool = np.random.default_rng(seed + 1).integers(0, 256, POOL_BYTES, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(global_header())
        for lo in range(0, packets, CHUNK_PACKETS):
            f.write(_assemble(tab, lo, min(lo + CHUNK_PACKETS, packets), pool).tobytes())
    os.replace(tmp, path)
    meta = {
        "params": want,
        "size": path.stat().st_size,
        "stats": stats,
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
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("output", help="pcap file to write")
    ap.add_argument("--packets", type=int, default=2_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--loop-share",
        type=float,
        default=0.10,
        help="share of records that are loop replicas (default 0.10)",
    )
    ap.add_argument("--force", action="store_true", help="regenerate even if cached")
    a = ap.parse_args(argv)
    if a.packets < 1:
        ap.error("--packets must be at least 1")
    meta = generate(a.output, a.packets, a.seed, a.loop_share, a.force)
    print(json.dumps(meta["stats"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
