"""Decode stage: raw records → packet columns, in one compiled pass per batch.

Decode states facts (addresses, TTL, ports, the quoted packet of an ICMP
error, the fingerprint); it never decides what a loop is.  Every record gets
a status (``OK`` or a skip reason) so the caller can account for it.

The kernel writes two matrices (int64 and uint64 fields per row) that
:func:`decode_batch` turns into the raw columns of :mod:`pcaploop.schema`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import linktypes as lt
from . import schema as S
from ._bytes import u16be, u32be, u32le, u64be
from ._jit import JIT, njit
from .fingerprint import N_WORDS, RUN_KEY, siphash13
from .read import RecordBatch

# int64 matrix columns
(I_STATUS, I_DIR, I_VLAN, I_IVLAN, I_IFINDEX, I_VER, I_PROTO, I_TTL, I_IPID, I_IPLEN, I_FRAG,
 I_FLOW, I_SPORT, I_DPORT, I_TCPF, I_ITYPE, I_ICODE, I_IVER, I_IPROTO, I_IIPID, I_ITTL, I_FLAGS,
 I_ARPOP) = range(23)
NI = 23
# uint64 matrix columns
(U_ESRC, U_EDST, U_SHI, U_SLO, U_DHI, U_DLO, U_ISHI, U_ISLO, U_IDHI, U_IDLO, U_IL4, U_L4H,
 U_FP) = range(13)
NU = 13

_DEF_I = np.array([S.OK, 0, -1, -1, -1, 0, 0, 0, -1, 0, 0, 0, -1, -1, -1, -1, -1, 0, -1, -1, -1,
                   0, 0], dtype=np.int64)
_DEF_U = np.zeros(NU, dtype=np.uint64)
_DEF_U[U_ESRC] = S.NO_MAC
_DEF_U[U_EDST] = S.NO_MAC

_V4MAP = np.uint64(0xFFFF00000000)
_PREFIX = S.PREFIX_LEN


@njit
def _mac(b, p):  # pragma: no cover - compiled
    return u64be(b, p, 6) >> np.uint64(16)


@njit
def _csum_span(proto):  # pragma: no cover - compiled
    """(offset, width) of the L4 checksum, (-1, 0) when the protocol has none we know."""
    if proto == 6:
        return 16, 2
    if proto == 17 or proto == 136:
        return 6, 2
    if proto == 1 or proto == 58:
        return 2, 2
    if proto == 132:
        return 8, 4
    return -1, 0


@njit
def _walk_v6_ext(b, h, end, nh):  # pragma: no cover - compiled
    """Walk IPv6 extension headers (at most 8) → (upper protocol, offset, frag id, offset, MF)."""
    ident = -1
    fo = 0
    mf = 0
    for _ in range(8):
        if nh == 0 or nh == 43 or nh == 60 or nh == 135 or nh == 139 or nh == 140:
            if end - h < 2:
                break
            hl = (np.int64(b[h + 1]) + 1) * 8
            nh = np.int64(b[h])
            h += hl
        elif nh == 51:
            if end - h < 2:
                break
            hl = (np.int64(b[h + 1]) + 2) * 4
            nh = np.int64(b[h])
            h += hl
        elif nh == 44:
            if end - h < 8:
                break
            fw = u16be(b, h + 2)
            fo = fw & 0xFFF8
            mf = fw & 1
            ident = u32be(b, h + 4)
            nh = np.int64(b[h])
            h += 8
            if fo != 0:
                break
        else:
            break
    return nh, h, ident, fo, mf


@njit
def _l4_word(b, p, have, csum_off, csum_w):  # pragma: no cover - compiled
    """Up to 8 bytes from ``p`` (``have`` available) as big-endian, checksum zeroed."""
    v = np.uint64(0)
    for j in range(8):
        v = v << np.uint64(8)
        if j < have and not (csum_off <= j < csum_off + csum_w):
            v = v | np.uint64(b[p + j])
    return v


@njit
def _quoted(b, ip2, end, I, U, i):  # pragma: no cover - compiled
    """Decode the packet quoted by an ICMP error (RFC 792: header + 8 bytes)."""
    a2 = end - ip2
    if a2 < 20:
        return
    v = np.int64(b[ip2]) >> 4
    if v == 4:
        ihl = (np.int64(b[ip2]) & 15) * 4
        if ihl < 20 or a2 < ihl:
            return
        I[i, I_IVER] = 4
        I[i, I_IPROTO] = b[ip2 + 9]
        I[i, I_ITTL] = b[ip2 + 8]
        I[i, I_IIPID] = u16be(b, ip2 + 4)
        U[i, U_ISHI] = 0
        U[i, U_ISLO] = _V4MAP | np.uint64(u32be(b, ip2 + 12))
        U[i, U_IDHI] = 0
        U[i, U_IDLO] = _V4MAP | np.uint64(u32be(b, ip2 + 16))
        l4 = ip2 + ihl
        proto = np.int64(b[ip2 + 9])
        first = (u16be(b, ip2 + 6) & 0x1FFF) == 0
    elif v == 6:
        if a2 < 40:
            return
        I[i, I_IVER] = 6
        I[i, I_ITTL] = b[ip2 + 7]
        U[i, U_ISHI] = u64be(b, ip2 + 8, 8)
        U[i, U_ISLO] = u64be(b, ip2 + 16, 8)
        U[i, U_IDHI] = u64be(b, ip2 + 24, 8)
        U[i, U_IDLO] = u64be(b, ip2 + 32, 8)
        proto, l4, ident, fo, mf = _walk_v6_ext(b, ip2 + 40, end, np.int64(b[ip2 + 6]))
        I[i, I_IPROTO] = proto
        I[i, I_IIPID] = ident
        first = fo == 0
    else:
        return
    have = end - l4
    if have < 0:
        have = 0
    if have > 8:
        have = 8
    if have < 8:
        I[i, I_FLAGS] |= S.F_INNER_SHORT
    co, cw = _csum_span(proto) if first else (-1, 0)
    U[i, U_IL4] = _l4_word(b, l4, have, co, cw)


@njit
def _decode_one(b, p, cap, wire, code, k0, k1, I, U, i, w):  # pragma: no cover - compiled
    end = p + cap
    if cap < wire:
        I[i, I_FLAGS] |= S.F_TRUNCATED
    et = -1
    q = p
    if code == lt.L2_ETHERNET:
        if cap < 14:
            I[i, I_STATUS] = S.MALFORMED
            return
        U[i, U_EDST] = _mac(b, p)
        U[i, U_ESRC] = _mac(b, p + 6)
        et = u16be(b, p + 12)
        q = p + 14
    elif code == lt.L2_SLL:
        if cap < 16:
            I[i, I_STATUS] = S.MALFORMED
            return
        pkttype = u16be(b, p)
        if u16be(b, p + 4) == 6:
            U[i, U_ESRC] = _mac(b, p + 6)
        I[i, I_DIR] = S.DIR_OUT if pkttype == 4 else (S.DIR_IN if pkttype <= 3 else S.DIR_UNKNOWN)
        et = u16be(b, p + 14)
        q = p + 16
    elif code == lt.L2_SLL2:
        if cap < 20:
            I[i, I_STATUS] = S.MALFORMED
            return
        et = u16be(b, p)
        I[i, I_IFINDEX] = u32be(b, p + 4)
        pkttype = np.int64(b[p + 10])
        if b[p + 11] == 6:
            U[i, U_ESRC] = _mac(b, p + 12)
        I[i, I_DIR] = S.DIR_OUT if pkttype == 4 else (S.DIR_IN if pkttype <= 3 else S.DIR_UNKNOWN)
        q = p + 20
    elif code == lt.L2_RAW or code == lt.L2_IPV4 or code == lt.L2_IPV6:
        if cap < 1:
            I[i, I_STATUS] = S.MALFORMED
            return
        v = np.int64(b[p]) >> 4
        if v == 4 and code != lt.L2_IPV6:
            et = 0x0800
        elif v == 6 and code != lt.L2_IPV4:
            et = 0x86DD
        else:
            I[i, I_STATUS] = S.MALFORMED
            return
    elif code == lt.L2_NULL or code == lt.L2_LOOP:
        if cap < 4:
            I[i, I_STATUS] = S.MALFORMED
            return
        af = u32be(b, p)
        if code == lt.L2_NULL and af >= 65536:
            af = u32le(b, p)
        if af == 2:
            et = 0x0800
        elif af == 10 or af == 24 or af == 28 or af == 30:
            et = 0x86DD
        q = p + 4
    else:
        I[i, I_STATUS] = S.UNSUPPORTED
        return
    tags = 0
    while (et == 0x8100 or et == 0x88A8 or et == 0x9100) and tags < 4:
        if end - q < 4:
            I[i, I_STATUS] = S.MALFORMED
            return
        vid = u16be(b, q) & 0xFFF
        if tags == 0:
            I[i, I_VLAN] = vid
        elif tags == 1:
            I[i, I_IVLAN] = vid
        et = u16be(b, q + 2)
        q += 4
        tags += 1
    if et == 0x0806:
        I[i, I_STATUS] = S.NON_IP
        if end - q >= 28 and u16be(b, q) == 1 and u16be(b, q + 2) == 0x0800:
            I[i, I_ARPOP] = u16be(b, q + 6)
            U[i, U_IL4] = _mac(b, q + 8)
            U[i, U_SLO] = _V4MAP | np.uint64(u32be(b, q + 14))
            U[i, U_DLO] = _V4MAP | np.uint64(u32be(b, q + 24))
        return
    avail = end - q
    wire_ip = wire - (q - p)
    if et == 0x0800:
        if avail < 20 or (np.int64(b[q]) >> 4) != 4:
            I[i, I_STATUS] = S.MALFORMED
            return
        ihl = (np.int64(b[q]) & 15) * 4
        if ihl < 20 or avail < ihl:
            I[i, I_STATUS] = S.MALFORMED
            return
        tot = u16be(b, q + 2)
        offload = tot == 0 or tot > wire_ip
        if not offload and tot < ihl:
            I[i, I_STATUS] = S.MALFORMED
            return
        ip_end = q + (wire_ip if offload else tot)
        ident = u16be(b, q + 4)
        ff = u16be(b, q + 6)
        fo = (ff & 0x1FFF) * 8
        mf = (ff >> 13) & 1
        if ff & 0x4000:
            I[i, I_FLAGS] |= S.F_DF
        proto = np.int64(b[q + 9])
        I[i, I_VER] = 4
        I[i, I_TTL] = b[q + 8]
        I[i, I_IPID] = ident
        I[i, I_IPLEN] = tot
        U[i, U_SHI] = 0
        U[i, U_SLO] = _V4MAP | np.uint64(u32be(b, q + 12))
        U[i, U_DHI] = 0
        U[i, U_DLO] = _V4MAP | np.uint64(u32be(b, q + 16))
        l4 = q + ihl
        lenfield = tot
        identw = ident
        flow = 0
        ver = 4
    elif et == 0x86DD:
        if avail < 40 or (np.int64(b[q]) >> 4) != 6:
            I[i, I_STATUS] = S.MALFORMED
            return
        flow = u32be(b, q) & 0xFFFFF
        plen = u16be(b, q + 4)
        offload = plen == 0 or 40 + plen > wire_ip
        ip_end = q + (wire_ip if offload else 40 + plen)
        I[i, I_VER] = 6
        I[i, I_TTL] = b[q + 7]
        I[i, I_IPLEN] = 40 + plen
        I[i, I_FLOW] = flow
        U[i, U_SHI] = u64be(b, q + 8, 8)
        U[i, U_SLO] = u64be(b, q + 16, 8)
        U[i, U_DHI] = u64be(b, q + 24, 8)
        U[i, U_DLO] = u64be(b, q + 32, 8)
        proto, l4, ident, fo, mf = _walk_v6_ext(b, q + 40, end, np.int64(b[q + 6]))
        I[i, I_IPID] = ident
        lenfield = plen
        identw = ident if ident >= 0 else 0
        ver = 6
    else:
        I[i, I_STATUS] = S.NON_IP
        return
    if offload:
        I[i, I_FLAGS] |= S.F_OFFLOAD
    if mf:
        I[i, I_FLAGS] |= S.F_MF
    I[i, I_PROTO] = proto
    I[i, I_FRAG] = fo
    cend = ip_end if ip_end < end else end
    have = cend - l4
    if have < 0:
        have = 0
    l4_len = ip_end - l4
    if l4_len < 0:
        l4_len = 0
    first = fo == 0
    if first:
        if (proto == 6 or proto == 17 or proto == 136 or proto == 132) and have >= 4:
            I[i, I_SPORT] = u16be(b, l4)
            I[i, I_DPORT] = u16be(b, l4 + 2)
            if proto == 6 and have >= 14:
                I[i, I_TCPF] = b[l4 + 13]
        elif (proto == 1 or proto == 58) and have >= 2:
            t = np.int64(b[l4])
            I[i, I_ITYPE] = t
            I[i, I_ICODE] = b[l4 + 1]
            if proto == 1 and (t == 3 or t == 4 or t == 5 or t == 11 or t == 12):
                _quoted(b, l4 + 8, cend, I, U, i)
            elif proto == 58 and 1 <= t <= 4:
                _quoted(b, l4 + 8, cend, I, U, i)
            elif proto == 58 and (t == 135 or t == 136) and have >= 24:
                U[i, U_IDHI] = u64be(b, l4 + 8, 8)
                U[i, U_IDLO] = u64be(b, l4 + 16, 8)
        co, cw = _csum_span(proto)
    else:
        co, cw = -1, 0
    want = l4_len if l4_len < _PREFIX else _PREFIX
    take = have if have < want else want
    if take < want:
        I[i, I_FLAGS] |= S.F_SHORT_KEY
    U[i, U_L4H] = _l4_word(b, l4, take, co, cw)
    w[0] = ((np.uint64(ver) << np.uint64(56)) | (np.uint64(proto) << np.uint64(48))
            | (np.uint64((mf << 13) | (fo >> 3)) << np.uint64(32)) | np.uint64(lenfield))
    w[1] = (np.uint64(identw) << np.uint64(32)) | np.uint64(flow)
    w[2] = U[i, U_SHI]
    w[3] = U[i, U_SLO]
    w[4] = U[i, U_DHI]
    w[5] = U[i, U_DLO]
    w[6] = U[i, U_L4H]
    w[7] = _l4_word(b, l4 + 8, take - 8, co - 8, cw)
    w[8] = _l4_word(b, l4 + 16, take - 16, co - 16, cw)
    w[9] = np.uint64(take) | (np.uint64(1 if take < want else 0) << np.uint64(8))
    U[i, U_FP] = siphash13(k0, k1, w, N_WORDS)


@njit
def _decode_all(b, off, cap, wire, codes, k0, k1, I, U):  # pragma: no cover - compiled
    w = np.zeros(N_WORDS, dtype=np.uint64)
    for i in range(off.shape[0]):
        _decode_one(b, off[i], cap[i], wire[i], codes[i], k0, k1, I, U, i, w)


@dataclass
class Decoded:
    """Decoded rows of one batch: every record's status, raw columns of the OK ones."""

    status: np.ndarray  # int8 per record (schema.OK or a skip code)
    ifindex: np.ndarray  # int64 per record: SLL2 interface index, -1 elsewhere
    cols: dict[str, np.ndarray]  # raw columns (schema.RAW) for status == OK rows
    arp: dict[str, np.ndarray]  # ARP rows (op, sender MAC/IP, target IP, time)
    arp_mask: np.ndarray  # bool per record: the ARP rows


def decode_arrays(buf: np.ndarray, off: np.ndarray, caplen: np.ndarray, wirelen: np.ndarray,
                  codes: np.ndarray, key: tuple[np.uint64, np.uint64] = RUN_KEY,
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Run the kernel: returns the int64 and uint64 field matrices."""
    n = len(off)
    I = np.empty((n, NI), dtype=np.int64)
    I[:] = _DEF_I
    U = np.empty((n, NU), dtype=np.uint64)
    U[:] = _DEF_U
    if n:
        if JIT:
            _decode_all(buf, off, caplen, wirelen, codes, key[0], key[1], I, U)
        else:
            with np.errstate(over="ignore"):
                _decode_all(buf, off, caplen, wirelen, codes, key[0], key[1], I, U)
    return I, U


def decode_batch(batch: RecordBatch, iface_codes: np.ndarray,
                 key: tuple[np.uint64, np.uint64] = RUN_KEY) -> Decoded:
    """Decode one batch; ``iface_codes[k]`` is the L2 decoder code of interface ``k``."""
    codes = np.where(batch.iface >= 0, iface_codes[np.maximum(batch.iface, 0)], -1)
    I, U = decode_arrays(batch.buf, batch.off, batch.caplen, batch.wirelen, codes, key)
    status = I[:, I_STATUS].astype(np.int8)
    status[codes == -1] = S.MALFORMED  # record names an interface that was never declared
    status[codes == lt.L2_UNSUPPORTED] = S.UNSUPPORTED
    ok = status == S.OK
    Io, Uo = I[ok], U[ok]
    direction = np.where(Io[:, I_DIR] != 0, Io[:, I_DIR], batch.direction[ok])
    cols = {
        "time_ns": batch.time_ns[ok],
        "point": np.zeros(int(ok.sum()), dtype=np.int16),
        "direction": direction,
        "vlan": Io[:, I_VLAN], "inner_vlan": Io[:, I_IVLAN],
        "eth_src": Uo[:, U_ESRC], "eth_dst": Uo[:, U_EDST],
        "ip_version": Io[:, I_VER],
        "src_hi": Uo[:, U_SHI], "src_lo": Uo[:, U_SLO],
        "dst_hi": Uo[:, U_DHI], "dst_lo": Uo[:, U_DLO],
        "protocol": Io[:, I_PROTO], "ttl": Io[:, I_TTL], "ip_id": Io[:, I_IPID],
        "ip_len": Io[:, I_IPLEN], "frag_offset": Io[:, I_FRAG], "flow_label": Io[:, I_FLOW],
        "sport": Io[:, I_SPORT], "dport": Io[:, I_DPORT], "tcp_flags": Io[:, I_TCPF],
        "icmp_type": Io[:, I_ITYPE], "icmp_code": Io[:, I_ICODE],
        "inner_version": Io[:, I_IVER],
        "inner_src_hi": Uo[:, U_ISHI], "inner_src_lo": Uo[:, U_ISLO],
        "inner_dst_hi": Uo[:, U_IDHI], "inner_dst_lo": Uo[:, U_IDLO],
        "inner_protocol": Io[:, I_IPROTO], "inner_ip_id": Io[:, I_IIPID],
        "inner_ttl": Io[:, I_ITTL], "inner_l4": Uo[:, U_IL4], "l4_head": Uo[:, U_L4H],
        "caplen": batch.caplen[ok], "wirelen": batch.wirelen[ok],
        "flags": Io[:, I_FLAGS], "fingerprint": Uo[:, U_FP],
        "record": batch.first_record + np.flatnonzero(ok),
    }
    cols = {k: np.ascontiguousarray(v, dtype=S.RAW[k]) for k, v in cols.items()}
    isarp = I[:, I_ARPOP] > 0
    arp = {
        "time_ns": batch.time_ns[isarp].copy(),
        "iface": batch.iface[isarp].copy(),
        "ifindex": I[isarp, I_IFINDEX],
        "op": I[isarp, I_ARPOP],
        "sender_mac": U[isarp, U_IL4],
        "sender_ip": (U[isarp, U_SLO] & np.uint64(0xFFFFFFFF)).astype(np.uint32),
        "target_ip": (U[isarp, U_DLO] & np.uint64(0xFFFFFFFF)).astype(np.uint32),
        "eth_src": U[isarp, U_ESRC],
    }
    return Decoded(status, I[:, I_IFINDEX], cols, arp, isarp)
