"""Decode stage: raw records → packet columns, in one compiled pass per batch.

Decode states facts (addresses, TTL, ports, the quoted packet of an ICMP
error, the fingerprint); it never decides what a loop is.  Every record gets
a status (``OK`` or a skip reason) so the caller can account for it.

The kernel writes final columns: one matrix per width (uint8, uint16, int32,
int64, uint64), each row of which *is* a raw column of :mod:`pcaploop.schema`
(viewed signed or unsigned as the schema says).  Handing a block
on is then a matter of views, not a copy per field (the copy-and-cast from
one int64 matrix cost as much as reading the file).  The int64 ``I`` layout
below (one row per field) is the shape the numpy twin and the tests use.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import linktypes as lt
from .. import schema as S
from .._bytes import be64, u8, u16be, u32be, u32le, u64be
from .._jit import JIT, njit_inline, njit_plain
from .fingerprint import N_WORDS, RUN_KEY, siphash13
from ..read.capture import RecordBatch

# --- the I layout: one int64 row per field (numpy twin, tests, decode_arrays) -------
(I_STATUS, I_DIR, I_VLAN, I_IVLAN, I_IFINDEX, I_VER, I_PROTO, I_TTL, I_IPID, I_IPLEN, I_FRAG,
 I_FLOW, I_SPORT, I_DPORT, I_TCPF, I_ITYPE, I_ICODE, I_IVER, I_IPROTO, I_IIPID, I_ITTL, I_FLAGS,
 I_ARPOP) = range(23)
NI = 23
# uint64 matrix rows (the same in both layouts)
(U_ESRC, U_EDST, U_SHI, U_SLO, U_DHI, U_DLO, U_ISHI, U_ISLO, U_IDHI, U_IDLO, U_IL4, U_L4H,
 U_FP) = range(13)
NU = 13

_DEF_I = np.array([S.OK, 0, -1, -1, -1, 0, 0, 0, -1, 0, 0, 0, -1, -1, -1, -1, -1, 0, -1, -1, -1,
                   0, 0], dtype=np.int64)
_DEF_U = np.zeros(NU, dtype=np.uint64)
_DEF_U[U_ESRC] = S.NO_MAC
_DEF_U[U_EDST] = S.NO_MAC

# --- the typed layout the kernel writes: matrix (M8, M16, M32, M64, U) and row --------
(R8_STATUS, R8_DIR, R8_VER, R8_PROTO, R8_TTL, R8_IVER, R8_FLAGS) = range(7)
(R16_TCPF, R16_ITYPE, R16_ICODE, R16_IPROTO, R16_ITTL, R16_FRAG) = range(6)
(R32_VLAN, R32_IVLAN, R32_SPORT, R32_DPORT, R32_IPLEN, R32_FLOW, R32_CAPLEN,
 R32_WIRELEN) = range(8)
(R64_IPID, R64_IIPID, R64_IFINDEX, R64_ARPOP, R64_TIME, R64_IFACE, R64_RECORD) = range(7)
#: dtypes of M8 .. U.  The kernel writes only values its row's dtype holds (in
#: plain Python, without numba, numpy refuses anything else): M16 is unsigned for
#: fragment offsets up to 65528, and its ``-1`` defaults are written by numpy.
_WIDTHS = (np.uint8, np.uint16, np.int32, np.int64, np.uint64)
_ROWS = (7, 6, 8, 7, NU)

#: I-layout field -> (matrix, row) in the typed layout
_I_TYPED = {
    I_STATUS: (0, R8_STATUS), I_DIR: (0, R8_DIR), I_VER: (0, R8_VER), I_PROTO: (0, R8_PROTO),
    I_TTL: (0, R8_TTL), I_IVER: (0, R8_IVER), I_FLAGS: (0, R8_FLAGS),
    I_TCPF: (1, R16_TCPF), I_ITYPE: (1, R16_ITYPE), I_ICODE: (1, R16_ICODE),
    I_IPROTO: (1, R16_IPROTO), I_ITTL: (1, R16_ITTL), I_FRAG: (1, R16_FRAG),
    I_VLAN: (2, R32_VLAN), I_IVLAN: (2, R32_IVLAN), I_SPORT: (2, R32_SPORT),
    I_DPORT: (2, R32_DPORT), I_IPLEN: (2, R32_IPLEN), I_FLOW: (2, R32_FLOW),
    I_IPID: (3, R64_IPID), I_IIPID: (3, R64_IIPID), I_IFINDEX: (3, R64_IFINDEX),
    I_ARPOP: (3, R64_ARPOP),
}
#: raw column -> (matrix, row); the schema's dtype is a view of that row
_COLUMN_AT = {
    "time_ns": (3, R64_TIME), "direction": (0, R8_DIR), "vlan": (2, R32_VLAN),
    "inner_vlan": (2, R32_IVLAN), "eth_src": (4, U_ESRC), "eth_dst": (4, U_EDST),
    "ip_version": (0, R8_VER), "src_hi": (4, U_SHI), "src_lo": (4, U_SLO),
    "dst_hi": (4, U_DHI), "dst_lo": (4, U_DLO), "protocol": (0, R8_PROTO), "ttl": (0, R8_TTL),
    "ip_id": (3, R64_IPID), "ip_len": (2, R32_IPLEN), "frag_offset": (1, R16_FRAG),
    "flow_label": (2, R32_FLOW), "sport": (2, R32_SPORT), "dport": (2, R32_DPORT),
    "tcp_flags": (1, R16_TCPF), "icmp_type": (1, R16_ITYPE), "icmp_code": (1, R16_ICODE),
    "inner_version": (0, R8_IVER), "inner_src_hi": (4, U_ISHI), "inner_src_lo": (4, U_ISLO),
    "inner_dst_hi": (4, U_IDHI), "inner_dst_lo": (4, U_IDLO),
    "inner_protocol": (1, R16_IPROTO), "inner_ip_id": (3, R64_IIPID),
    "inner_ttl": (1, R16_ITTL), "inner_l4": (4, U_IL4), "l4_head": (4, U_L4H),
    "caplen": (2, R32_CAPLEN), "wirelen": (2, R32_WIRELEN), "flags": (0, R8_FLAGS),
    "fingerprint": (4, U_FP), "record": (3, R64_RECORD),
}


def _typed_defaults() -> list[np.ndarray]:
    """Per matrix, the value of each row before the kernel runs (the I defaults, typed)."""
    out = [np.zeros(n, dtype=np.int64) for n in _ROWS]
    for k, (g, r) in _I_TYPED.items():
        out[g][r] = _DEF_I[k]
    typed = [a.astype(dt) for a, dt in zip(out, _WIDTHS)]  # -1 wraps where unsigned
    typed[4] = _DEF_U.copy()
    return typed


_DEF_T = _typed_defaults()

_V4MAP = np.uint64(0xFFFF00000000)
_PREFIX = S.PREFIX_LEN


@njit_inline
def _mac(b, p):  # pragma: no cover - compiled
    return (np.uint64(u32be(b, p)) << np.uint64(16)) | np.uint64(u16be(b, p + 4))


@njit_plain
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


@njit_plain
def _walk_v6_ext(b, h, end, nh):  # pragma: no cover - compiled
    """Walk IPv6 extension headers (at most 8) → (upper protocol, offset, frag id, offset, MF)."""
    ident = -1
    fo = 0
    mf = 0
    for _ in range(8):
        if nh == 0 or nh == 43 or nh == 60 or nh == 135 or nh == 139 or nh == 140:
            if end - h < 2:
                break
            hl = (u8(b, h + 1) + 1) * 8
            nh = u8(b, h)
            h += hl
        elif nh == 51:
            if end - h < 2:
                break
            hl = (u8(b, h + 1) + 2) * 4
            nh = u8(b, h)
            h += hl
        elif nh == 44:
            if end - h < 8:
                break
            fw = u16be(b, h + 2)
            fo = fw & 0xFFF8
            mf = fw & 1
            ident = u32be(b, h + 4)
            nh = u8(b, h)
            h += 8
            if fo != 0:
                break
        else:
            break
    return nh, h, ident, fo, mf


@njit_inline
def _l4_word(b, p, have, csum_off, csum_w):  # pragma: no cover - compiled
    """Up to 8 bytes from ``p`` (``have`` available) as big-endian, checksum zeroed."""
    if have >= 8:  # the common case: one read, the checksum masked out
        v = be64(b, p)
        for j in range(csum_off, csum_off + csum_w):
            if 0 <= j < 8:
                v = v & ~(np.uint64(0xFF) << np.uint64(8 * (7 - j)))
        return v
    v = np.uint64(0)
    for j in range(8):
        v = v << np.uint64(8)
        if j < have and not (csum_off <= j < csum_off + csum_w):
            v = v | np.uint64(u8(b, p + j))
    return v


@njit_plain
def _quoted(b, ip2, end, M8, M16, M32, M64, U, i):  # pragma: no cover - compiled
    """Decode the packet quoted by an ICMP error (RFC 792: header + 8 bytes)."""
    a2 = end - ip2
    if a2 < 20:
        return
    v = u8(b, ip2) >> 4
    if v == 4:
        ihl = (u8(b, ip2) & 15) * 4
        if ihl < 20 or a2 < ihl:
            return
        M8[R8_IVER, i] = 4
        M16[R16_IPROTO, i] = u8(b, ip2 + 9)
        M16[R16_ITTL, i] = u8(b, ip2 + 8)
        M64[R64_IIPID, i] = u16be(b, ip2 + 4)
        U[U_ISHI, i] = 0
        U[U_ISLO, i] = _V4MAP | np.uint64(u32be(b, ip2 + 12))
        U[U_IDHI, i] = 0
        U[U_IDLO, i] = _V4MAP | np.uint64(u32be(b, ip2 + 16))
        l4 = ip2 + ihl
        proto = u8(b, ip2 + 9)
        first = (u16be(b, ip2 + 6) & 0x1FFF) == 0
    elif v == 6:
        if a2 < 40:
            return
        M8[R8_IVER, i] = 6
        M16[R16_ITTL, i] = u8(b, ip2 + 7)
        U[U_ISHI, i] = u64be(b, ip2 + 8, 8)
        U[U_ISLO, i] = u64be(b, ip2 + 16, 8)
        U[U_IDHI, i] = u64be(b, ip2 + 24, 8)
        U[U_IDLO, i] = u64be(b, ip2 + 32, 8)
        proto, l4, ident, fo, mf = _walk_v6_ext(b, ip2 + 40, end, u8(b, ip2 + 6))
        M16[R16_IPROTO, i] = proto
        M64[R64_IIPID, i] = ident
        first = fo == 0
    else:
        return
    have = end - l4
    if have < 0:
        have = 0
    if have > 8:
        have = 8
    if have < 8:
        M8[R8_FLAGS, i] |= S.F_INNER_SHORT
    co, cw = _csum_span(proto) if first else (-1, 0)
    U[U_IL4, i] = _l4_word(b, l4, have, co, cw)


@njit_inline
def _decode_one(b, p, cap, wire, code, k0, k1, M8, M16, M32, M64, U, i,  # pragma: no cover
                w):
    end = p + cap
    if cap < wire:
        M8[R8_FLAGS, i] |= S.F_TRUNCATED
    et = -1
    q = p
    if code == lt.L2_ETHERNET:
        if cap < 14:
            M8[R8_STATUS, i] = S.MALFORMED
            return
        U[U_EDST, i] = _mac(b, p)
        U[U_ESRC, i] = _mac(b, p + 6)
        et = u16be(b, p + 12)
        q = p + 14
    elif code == lt.L2_SLL:
        if cap < 16:
            M8[R8_STATUS, i] = S.MALFORMED
            return
        pkttype = u16be(b, p)
        if u16be(b, p + 4) == 6:
            U[U_ESRC, i] = _mac(b, p + 6)
        if pkttype <= 4:  # otherwise the record's own direction (pcapng flags) stays
            M8[R8_DIR, i] = S.DIR_OUT if pkttype == 4 else S.DIR_IN
        et = u16be(b, p + 14)
        q = p + 16
    elif code == lt.L2_SLL2:
        if cap < 20:
            M8[R8_STATUS, i] = S.MALFORMED
            return
        et = u16be(b, p)
        M64[R64_IFINDEX, i] = u32be(b, p + 4)
        pkttype = u8(b, p + 10)
        if u8(b, p + 11) == 6:
            U[U_ESRC, i] = _mac(b, p + 12)
        if pkttype <= 4:  # otherwise the record's own direction (pcapng flags) stays
            M8[R8_DIR, i] = S.DIR_OUT if pkttype == 4 else S.DIR_IN
        q = p + 20
    elif code == lt.L2_RAW or code == lt.L2_IPV4 or code == lt.L2_IPV6:
        if cap < 1:
            M8[R8_STATUS, i] = S.MALFORMED
            return
        v = u8(b, p) >> 4
        if v == 4 and code != lt.L2_IPV6:
            et = 0x0800
        elif v == 6 and code != lt.L2_IPV4:
            et = 0x86DD
        else:
            M8[R8_STATUS, i] = S.MALFORMED
            return
    elif code == lt.L2_NULL or code == lt.L2_LOOP:
        if cap < 4:
            M8[R8_STATUS, i] = S.MALFORMED
            return
        af = u32be(b, p)
        if code == lt.L2_NULL and af >= 65536:
            af = u32le(b, p)
        if af == 2:
            et = 0x0800
        elif af == 10 or af == 24 or af == 28 or af == 30:
            et = 0x86DD
        q = p + 4
    else:  # a link type we do not decode, or (-1) an interface the file never declared
        M8[R8_STATUS, i] = S.UNSUPPORTED if code >= 0 else S.MALFORMED
        return
    tags = 0
    while (et == 0x8100 or et == 0x88A8 or et == 0x9100) and tags < 4:
        if end - q < 4:
            M8[R8_STATUS, i] = S.MALFORMED
            return
        vid = u16be(b, q) & 0xFFF
        if tags == 0:
            M32[R32_VLAN, i] = vid
        elif tags == 1:
            M32[R32_IVLAN, i] = vid
        et = u16be(b, q + 2)
        q += 4
        tags += 1
    if et == 0x0806:
        M8[R8_STATUS, i] = S.NON_IP
        if end - q >= 28 and u16be(b, q) == 1 and u16be(b, q + 2) == 0x0800:
            M64[R64_ARPOP, i] = u16be(b, q + 6)
            U[U_IL4, i] = _mac(b, q + 8)
            U[U_SLO, i] = _V4MAP | np.uint64(u32be(b, q + 14))
            U[U_DLO, i] = _V4MAP | np.uint64(u32be(b, q + 24))
        return
    avail = end - q
    wire_ip = wire - (q - p)
    if et == 0x0800:
        if avail < 20 or (u8(b, q) >> 4) != 4:
            M8[R8_STATUS, i] = S.MALFORMED
            return
        ihl = (u8(b, q) & 15) * 4
        if ihl < 20 or avail < ihl:
            M8[R8_STATUS, i] = S.MALFORMED
            return
        tot = u16be(b, q + 2)
        offload = tot == 0 or tot > wire_ip
        if not offload and tot < ihl:
            M8[R8_STATUS, i] = S.MALFORMED
            return
        ip_end = q + (wire_ip if offload else tot)
        ident = u16be(b, q + 4)
        ff = u16be(b, q + 6)
        fo = (ff & 0x1FFF) * 8
        mf = (ff >> 13) & 1
        if ff & 0x4000:
            M8[R8_FLAGS, i] |= S.F_DF
        proto = u8(b, q + 9)
        M8[R8_VER, i] = 4
        M8[R8_TTL, i] = u8(b, q + 8)
        M64[R64_IPID, i] = ident
        M32[R32_IPLEN, i] = tot
        U[U_SHI, i] = 0
        U[U_SLO, i] = _V4MAP | np.uint64(u32be(b, q + 12))
        U[U_DHI, i] = 0
        U[U_DLO, i] = _V4MAP | np.uint64(u32be(b, q + 16))
        l4 = q + ihl
        lenfield = tot
        identw = ident
        flow = 0
        ver = 4
    elif et == 0x86DD:
        if avail < 40 or (u8(b, q) >> 4) != 6:
            M8[R8_STATUS, i] = S.MALFORMED
            return
        flow = u32be(b, q) & 0xFFFFF
        plen = u16be(b, q + 4)
        offload = plen == 0 or 40 + plen > wire_ip
        ip_end = q + (wire_ip if offload else 40 + plen)
        M8[R8_VER, i] = 6
        M8[R8_TTL, i] = u8(b, q + 7)
        M32[R32_IPLEN, i] = 40 + plen
        M32[R32_FLOW, i] = flow
        U[U_SHI, i] = u64be(b, q + 8, 8)
        U[U_SLO, i] = u64be(b, q + 16, 8)
        U[U_DHI, i] = u64be(b, q + 24, 8)
        U[U_DLO, i] = u64be(b, q + 32, 8)
        proto, l4, ident, fo, mf = _walk_v6_ext(b, q + 40, end, u8(b, q + 6))
        M64[R64_IPID, i] = ident
        lenfield = plen
        identw = ident if ident >= 0 else 0
        ver = 6
    else:
        M8[R8_STATUS, i] = S.NON_IP
        return
    if offload:
        M8[R8_FLAGS, i] |= S.F_OFFLOAD
    if mf:
        M8[R8_FLAGS, i] |= S.F_MF
    M8[R8_PROTO, i] = proto
    M16[R16_FRAG, i] = fo
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
            M32[R32_SPORT, i] = u16be(b, l4)
            M32[R32_DPORT, i] = u16be(b, l4 + 2)
            if proto == 6 and have >= 14:
                M16[R16_TCPF, i] = u8(b, l4 + 13)
        elif (proto == 1 or proto == 58) and have >= 2:
            t = u8(b, l4)
            M16[R16_ITYPE, i] = t
            M16[R16_ICODE, i] = u8(b, l4 + 1)
            if proto == 1 and (t == 3 or t == 4 or t == 5 or t == 11 or t == 12):
                _quoted(b, l4 + 8, cend, M8, M16, M32, M64, U, i)
            elif proto == 58 and 1 <= t <= 4:
                _quoted(b, l4 + 8, cend, M8, M16, M32, M64, U, i)
            elif proto == 58 and (t == 135 or t == 136) and have >= 24:
                U[U_IDHI, i] = u64be(b, l4 + 8, 8)
                U[U_IDLO, i] = u64be(b, l4 + 16, 8)
        co, cw = _csum_span(proto)
    else:
        co, cw = -1, 0
    want = l4_len if l4_len < _PREFIX else _PREFIX
    take = have if have < want else want
    if take < want:
        M8[R8_FLAGS, i] |= S.F_SHORT_KEY
    U[U_L4H, i] = _l4_word(b, l4, take, co, cw)
    w[0] = ((np.uint64(ver) << np.uint64(56)) | (np.uint64(proto) << np.uint64(48))
            | (np.uint64((mf << 13) | (fo >> 3)) << np.uint64(32)) | np.uint64(lenfield))
    w[1] = (np.uint64(identw) << np.uint64(32)) | np.uint64(flow)
    w[2] = U[U_SHI, i]
    w[3] = U[U_SLO, i]
    w[4] = U[U_DHI, i]
    w[5] = U[U_DLO, i]
    w[6] = U[U_L4H, i]
    w[7] = _l4_word(b, l4 + 8, take - 8, co - 8, cw)
    w[8] = _l4_word(b, l4 + 16, take - 16, co - 16, cw)
    w[9] = np.uint64(take) | (np.uint64(1 if take < want else 0) << np.uint64(8))
    U[U_FP, i] = siphash13(k0, k1, w, N_WORDS)


#: rows of each typed matrix that start from a default (the rest are the record's own)
_KERNEL_ROWS = (_ROWS[0], _ROWS[1], R32_CAPLEN, R64_TIME, _ROWS[4])
_D8, _D16, _D32, _D64, _DU = (d[:k].copy() for d, k in zip(_DEF_T, _KERNEL_ROWS))


@njit_inline
def _record(M8, M16, M32, M64, U, j, t, iface, direction, cap, wire, rec):  # pragma: no cover
    """Row ``j`` before its packet is decoded: the defaults and the record's own fields.

    Why here and not by numpy: a broadcast fill of the defaults before the
    kernel cost 3–45 ns per packet depending on the slab's size, plus six
    copies of the record's fields.  :meth:`BatchDecoder.add` over one repeated
    batch (best of 10, alternating runs): 71–108 ns per packet with these
    stores in the kernel, 83–121 with numpy doing them.
    """
    for r in range(_D8.shape[0]):
        M8[r, j] = _D8[r]
    for r in range(_D16.shape[0]):
        M16[r, j] = _D16[r]
    for r in range(_D32.shape[0]):
        M32[r, j] = _D32[r]
    for r in range(_D64.shape[0]):
        M64[r, j] = _D64[r]
    for r in range(_DU.shape[0]):
        U[r, j] = _DU[r]
    M8[R8_DIR, j] = direction  # SLL / SLL2 may override it from the packet type
    M32[R32_CAPLEN, j] = cap
    M32[R32_WIRELEN, j] = wire
    M64[R64_TIME, j] = t
    M64[R64_IFACE, j] = iface
    M64[R64_RECORD, j] = rec


@njit_plain
def _decode_rows(b, off, cap, wire, t, iface, direction, rec0, icodes, k0, k1,  # pragma: no cover
                 M8, M16, M32, M64, U, start, w):
    """Decode every record into typed rows ``start ..``, its own fields included.

    ``icodes``: link code (:mod:`pcaploop.linktypes`) per interface index;
    a record whose interface is not in it gets -1 (malformed).  ``w``:
    scratch for the digest's words (no allocation here).
    """
    ni = icodes.shape[0]
    for i in range(off.shape[0]):
        j = np.uint64(start + i)
        k = iface[i]
        _record(M8, M16, M32, M64, U, j, t[i], k, direction[i], cap[i], wire[i], rec0 + i)
        code = icodes[k] if 0 <= k < ni else -1
        _decode_one(b, off[i], cap[i], wire[i], code, k0, k1, M8, M16, M32, M64, U, j, w)


def unaliased(n: int) -> int:
    """``n`` rounded up to 8 more than a multiple of 16: a row length for typed matrices.

    Why: the rows of a matrix lie ``length × itemsize`` bytes apart.  At a
    power of two (the natural block size) element ``j`` of every row falls
    into one cache set, and the kernel's ~40 stores per packet evict one
    another.  The kernel over a 32,768-row slab took 143–158 ns per packet
    (one batch repeated, best of 10), over 32,760–32,784 rows 86–95.
    """
    return n + (8 - n) % 16


def _typed(n: int) -> list[np.ndarray]:
    """Empty typed matrices (M8, M16, M32, M64, U) for ``n`` rows."""
    return [np.empty((r, n), dtype=dt) for r, dt in zip(_ROWS, _WIDTHS)]


def _prefill(I: np.ndarray, U: np.ndarray, start: int, stop: int) -> None:
    """The defaults in the I layout."""
    I[:, start:stop] = _DEF_I[:, None]
    U[:, start:stop] = _DEF_U[:, None]


def _view(g: int, r: int) -> np.dtype:
    """The dtype a typed row is read as (its schema column's, else the matrix's own)."""
    for name, at in _COLUMN_AT.items():
        if at == (g, r):
            return S.RAW[name]
    return np.dtype(_WIDTHS[g])


_I_VIEW = {k: _view(*at) for k, at in _I_TYPED.items()}


def _to_typed(I: np.ndarray, T: list[np.ndarray], start: int, i0: int, n: int) -> None:
    """Copy I-layout columns ``i0 .. i0 + n`` into typed columns ``start ..``.

    A zero direction in ``I`` (the decoder knew none) keeps the record's own
    direction already in ``T``.
    """
    for k, (g, r) in _I_TYPED.items():
        src, dst = I[k, i0:i0 + n], T[g][r, start:start + n]
        if k == I_DIR:
            known = src != 0
            dst[known] = src[known]
        else:
            np.copyto(dst, src, casting="unsafe")


def _to_I(T: list[np.ndarray], I: np.ndarray, start: int, i0: int, n: int) -> None:
    """Copy typed columns ``start ..`` into I-layout columns ``i0 .. i0 + n``."""
    for k, (g, r) in _I_TYPED.items():
        I[k, i0:i0 + n] = T[g][r, start:start + n].view(_I_VIEW[k])


def _run_kernel(buf, off, caplen, wirelen, t, iface, direction, rec0: int, icodes, key,
                T: list[np.ndarray], start: int) -> None:
    """Decode records (with their own fields) into typed columns ``start ..``.

    ``icodes`` maps interface index → link code; the other arrays hold one
    value per record, as :class:`pcaploop.read.RecordBatch` does.
    """
    n = len(off)
    if not n:
        return
    if JIT:
        _decode_rows(buf, off, caplen, wirelen, t, iface, direction, rec0, icodes, key[0], key[1],
                     *T, start, np.zeros(N_WORDS, dtype=np.uint64))
        return
    # no numba: the same kernel vectorised with numpy, identical results
    from ._numpy import decode_np

    M8, _, M32, M64, _ = T  # every other row is written by _to_typed and from U below
    stop = start + n
    M8[R8_DIR, start:stop] = direction
    M32[R32_CAPLEN, start:stop] = caplen
    M32[R32_WIRELEN, start:stop] = wirelen
    M64[R64_TIME, start:stop] = t
    M64[R64_IFACE, start:stop] = iface
    M64[R64_RECORD, start:stop] = np.arange(rec0, rec0 + n)
    I, U = np.empty((NI, n), dtype=np.int64), np.empty((NU, n), dtype=np.uint64)
    _prefill(I, U, 0, n)
    decode_np(buf, off, caplen, wirelen, _codes(iface, icodes), key[0], key[1], I, U, 0)
    _to_typed(I, T, start, 0, n)
    T[4][:, start:stop] = U


def _codes(iface: np.ndarray, icodes: np.ndarray) -> np.ndarray:
    """Link code of every record (-1: an interface index the file never declared)."""
    ok = (iface >= 0) & (iface < len(icodes))
    return np.where(ok, icodes[np.where(ok, iface, 0)], -1)


def _bare_records(codes: np.ndarray) -> tuple:
    """(time, interface, direction, first record, interface codes) for records that
    carry only a link code each: one "interface" per record, all else zero."""
    n = len(codes)
    return (np.zeros(n, dtype=np.int64), np.arange(n), np.zeros(n, dtype=np.int8), 0,
            np.asarray(codes, dtype=np.int64))


def _decode_all(b, off, cap, wire, codes, k0, k1, I, U, start) -> None:
    """The compiled kernel seen in the I layout, as the numpy twin is called.

    Columns ``start .. start + len(off)`` of ``I`` and ``U`` get the decoded
    fields, defaults included; the others are left alone (tests compare the
    two decoders through this).
    """
    n = len(off)
    T = _typed(n)
    _decode_rows(b, off, cap, wire, *_bare_records(codes), k0, k1, *T, 0,
                 np.zeros(N_WORDS, dtype=np.uint64))
    _to_I(T, I, 0, start, n)
    U[:, start:start + n] = T[4]


def decode_arrays(buf: np.ndarray, off: np.ndarray, caplen: np.ndarray, wirelen: np.ndarray,
                  codes: np.ndarray, key: tuple[np.uint64, np.uint64] = RUN_KEY,
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Run the kernel over records: the int64 (NI × n) and uint64 (NU × n) field matrices."""
    n = len(off)
    T = _typed(n)
    _run_kernel(buf, off, caplen, wirelen, *_bare_records(codes), key, T, 0)
    I = np.empty((NI, n), dtype=np.int64)
    _to_I(T, I, 0, 0, n)
    return I, T[4]


@dataclass
class Decoded:
    """Decoded rows of some records: every record's status, raw columns of the OK ones."""

    status: np.ndarray  # int8 per record (schema.OK or a skip code)
    iface: np.ndarray  # int64 per record: interface index in its file (-1: none)
    ifindex: np.ndarray  # int64 per record: SLL2 interface index, -1 elsewhere
    time_ns: np.ndarray  # int64 per record
    cols: dict[str, np.ndarray]  # raw columns (schema.RAW) for status == OK rows
    arp: dict[str, np.ndarray]  # ARP rows (op, sender MAC/IP, target IP, time, iface)
    arp_mask: np.ndarray  # bool per record: the ARP rows


class _Slab:
    """Typed matrices (M8, M16, M32, M64, U) for up to ``cap`` rows: kernel fields and
    the record's own (time, interface, direction, lengths, record number)."""

    def __init__(self, cap: int):
        self.T = _typed(cap)
        self.cap = cap
        self.fill = 0

    def grow(self, cap: int) -> None:
        """Room for ``cap`` rows, keeping what is filled."""
        f = self.fill
        bigger = _typed(cap)
        for old, new in zip(self.T, bigger):
            new[:, :f] = old[:, :f]
        self.T, self.cap = bigger, cap

    def column(self, name: str, n: int) -> np.ndarray:
        """Raw column ``name`` of the first ``n`` rows: a view, in the schema's dtype."""
        g, r = _COLUMN_AT[name]
        return self.T[g][r, :n].view(S.RAW[name])


@dataclass
class Block:
    """``n`` decoded rows in a slab; :meth:`decoded` hands them out as raw columns.

    Call :meth:`decoded` before the decoder has filled ``slabs - 1`` further
    blocks: the slab is then reused.
    """

    slab: _Slab
    n: int

    def decoded(self, into: dict[str, np.ndarray] | None = None, views: bool = False) -> Decoded:
        """Raw columns of the OK rows (and per-record status for accounting).

        * default: fresh arrays, the block may outlive the slab;
        * ``into`` (a dict, empty at first): written into arrays kept there and
          reused by the next call, or into a consumer's own buffer;
        * ``views=True``: when every record decoded, views of the slab itself,
          no copy at all (valid until the slab is reused); otherwise as ``into``.
        """
        n, sl = self.n, self.slab
        status = sl.T[0][R8_STATUS, :n].view(np.int8)
        okmask = status == S.OK
        allok = bool(okmask.all())
        sel = None if allok else np.flatnonzero(okmask)
        k_ok = n if sel is None else len(sel)
        own = into is None and not views  # a block that outlives the slab
        if views and into is None:
            into = {}
        cols: dict[str, np.ndarray] = {}
        for name, dt in S.RAW.items():
            if name == "point":
                cols[name] = np.zeros(k_ok, dtype=np.int16)
                continue
            v = sl.column(name, n)
            if views and allok:
                cols[name] = v
            elif into is None:
                cols[name] = v.copy() if allok else v[sel]
            else:
                dst = into.get(name)
                if dst is None or len(dst) < k_ok:
                    dst = into[name] = np.empty(max(n, k_ok), dtype=dt)
                if allok:
                    np.copyto(dst[:k_ok], v)
                else:
                    np.take(v, sel, out=dst[:k_ok])
                cols[name] = dst[:k_ok]
        M64, U = sl.T[3][:, :n], sl.T[4][:, :n]
        isarp = M64[R64_ARPOP] > 0
        arp = {
            "time_ns": M64[R64_TIME, isarp], "iface": M64[R64_IFACE, isarp],
            "ifindex": M64[R64_IFINDEX, isarp], "op": M64[R64_ARPOP, isarp],
            "sender_mac": U[U_IL4, isarp],
            "sender_ip": (U[U_SLO, isarp] & np.uint64(0xFFFFFFFF)).astype(np.uint32),
            "target_ip": (U[U_DLO, isarp] & np.uint64(0xFFFFFFFF)).astype(np.uint32),
            "eth_src": U[U_ESRC, isarp],
        }
        per_record = (status, M64[R64_IFACE], M64[R64_IFINDEX], M64[R64_TIME])
        if own:
            per_record = tuple(a.copy() for a in per_record)
        return Decoded(*per_record, cols, arp, isarp)


class BatchDecoder:
    """Decodes record batches into reused typed matrices and hands them out in large blocks.

    Why: per-batch Python work (slicing 38 columns, accounting) costs more than
    the compiled decode when a 1 MiB buffer fill holds only ~2,000 packets;
    accumulating ``capacity`` rows first makes that cost negligible.  With
    ``slabs=3`` one thread can decode while another uses the previous block
    (:meth:`Block.decoded`).

    >>> dec = BatchDecoder()                                     # doctest: +SKIP
    >>> for batch in cap.batches():                              # doctest: +SKIP
    ...     for block in dec.add(batch, codes): use(block.decoded())
    >>> last = dec.flush()                                        # doctest: +SKIP
    """

    def __init__(self, key: tuple[np.uint64, np.uint64] = RUN_KEY,
                 capacity: int = unaliased(1 << 16),
                 slabs: int = 1):
        self.key = key
        self.max_cap = capacity
        self.slabs = [_Slab(min(capacity, unaliased(1000))) for _ in range(slabs)]
        self.cur = 0

    @property
    def fill(self) -> int:
        return self.slabs[self.cur].fill

    def add(self, batch: RecordBatch, iface_codes: np.ndarray):
        """Decode a batch; yields full :class:`Block` s as they fill up."""
        n = len(batch.off)
        done = 0
        while done < n:
            sl_ = self.slabs[self.cur]
            if sl_.fill + n - done > sl_.cap and sl_.cap < self.max_cap:
                sl_.grow(min(self.max_cap, unaliased(max(2 * sl_.cap, sl_.fill + n - done))))
            take = min(n - done, sl_.cap - sl_.fill)
            sl = slice(done, done + take)
            _run_kernel(batch.buf, batch.off[sl], batch.caplen[sl], batch.wirelen[sl],
                        batch.time_ns[sl], batch.iface[sl], batch.direction[sl],
                        batch.first_record + done, iface_codes, self.key, sl_.T, sl_.fill)
            sl_.fill += take
            done += take
            if sl_.fill == sl_.cap:
                yield self.take()

    def take(self) -> Block:
        """The rows decoded so far as a block; the next slab takes new rows."""
        sl_ = self.slabs[self.cur]
        block = Block(sl_, sl_.fill)
        sl_.fill = 0
        self.cur = (self.cur + 1) % len(self.slabs)
        return block

    def flush(self) -> Decoded:
        """Columns of the rows decoded so far; the decoder starts empty again."""
        return self.take().decoded()


def decode_batch(batch: RecordBatch, iface_codes: np.ndarray,
                 key: tuple[np.uint64, np.uint64] = RUN_KEY) -> Decoded:
    """Decode one batch on its own (tests, benchmarks); streams use :class:`BatchDecoder`."""
    dec = BatchDecoder(key, max(1, len(batch.off)))
    blocks = list(dec.add(batch, iface_codes))
    return blocks[0].decoded() if blocks else dec.flush()
