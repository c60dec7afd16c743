"""The decode kernel of :mod:`pcaploop.decode` as vectorised numpy, for runs without numba.

Why: where numba has no wheel (or ``PCAPLOOP_NO_JIT=1``) the kernel runs as
plain Python, one record at a time, at ~5 k packets/s.  Here every step of
that kernel runs once per batch over all the records it applies to: gathers
at computed offsets, one mask per case; a few hundred numpy operations per
batch, ~1.5 µs per record (0.4–0.8 M packets/s).  Every shape the kernel
knows is vectorised, IPv6 extension-header chains included, so no record
falls back to the per-record kernel.  Temporaries are a few arrays of the
batch's length (the widest: 24 bytes per record).

The result is bit-identical to the compiled kernel, row for row: the same
checks, in the same order, guard every read, and a record that stops early
keeps exactly the fields the kernel had written by then.  Reads never leave
a record's captured bytes (``off .. off + caplen``); where a fixed-width
window would cross that end, the positions are clamped to its last byte and
the bytes the kernel would not read are masked out.
"""
from __future__ import annotations

import numpy as np

from . import linktypes as lt
from .. import schema as S
from .kernel import (I_ARPOP, I_DIR, I_DPORT, I_FLAGS, I_FLOW, I_FRAG, I_ICODE, I_IFINDEX,
                     I_IIPID, I_IPID, I_IPLEN, I_IPROTO, I_ITTL, I_ITYPE, I_IVER, I_IVLAN,
                     I_PROTO, I_SPORT, I_STATUS, I_TCPF, I_TTL, I_VER, I_VLAN, U_DHI, U_DLO,
                     U_EDST, U_ESRC, U_FP, U_IDHI, U_IDLO, U_IL4, U_ISLO, U_ISHI, U_L4H, U_SHI,
                     U_SLO)
from .fingerprint import _C0, _C1, _C2, _C3

_AR = np.arange(S.PREFIX_LEN)  # byte offsets within a window
_V4MAP = np.uint64(0xFFFF00000000)
_U = np.uint64


def _table(size: int, fill: int, entries: dict[int, int]) -> np.ndarray:
    t = np.full(size, fill, dtype=np.int64)
    for k, v in entries.items():
        t[k] = v
    return t


#: captured bytes each link code needs before its layer-2 header can be read (0: unsupported)
_L2_NEED = _table(9, 0, {lt.L2_ETHERNET: 14, lt.L2_SLL: 16, lt.L2_SLL2: 20, lt.L2_RAW: 1,
                         lt.L2_IPV4: 1, lt.L2_IPV6: 1, lt.L2_NULL: 4, lt.L2_LOOP: 4})
#: checksum (offset, width) per protocol, as ``decode._csum_span``
_CSUM_OFF = _table(256, -1, {6: 16, 17: 6, 136: 6, 1: 2, 58: 2, 132: 8})
_CSUM_W = _table(256, 0, {6: 2, 17: 2, 136: 2, 1: 2, 58: 2, 132: 4})
_PORTS = _table(256, 0, {6: 1, 17: 1, 136: 1, 132: 1}).astype(bool)
_V6EXT = _table(256, 0, {0: 1, 43: 1, 60: 1, 135: 1, 139: 1, 140: 1, 51: 1, 44: 1}).astype(bool)
_ICMP4_ERR = _table(256, 0, {3: 1, 4: 1, 5: 1, 11: 1, 12: 1}).astype(bool)
_ICMP6_ERR = _table(256, 0, {1: 1, 2: 1, 3: 1, 4: 1}).astype(bool)


# --- reads ---------------------------------------------------------------------
def _grab(b: np.ndarray, pos: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` bytes at each position as an (m, n) uint8 matrix; callers checked the room.

    Rows of a strided view of the buffer: one n-byte copy per row, ~3× faster
    than gathering byte by byte.
    """
    if not len(pos):
        return np.zeros((0, n), dtype=np.uint8)
    st = b.strides[0]
    return np.lib.stride_tricks.as_strided(b, (len(b) - n + 1, n), (st, st), writeable=False)[pos]


def _window(b, pos: np.ndarray, n: int, end: np.ndarray) -> np.ndarray:
    """``n`` bytes from each position, clamped to the record's last byte (``end - 1``).

    Bytes past ``end`` come out as repeats of the last one: callers mask them.
    """
    return b[np.minimum(pos[:, None] + _AR[:n], (end - 1)[:, None])]


def _be(h: np.ndarray, j: int, n: int) -> np.ndarray:
    """Big-endian unsigned value of bytes ``j .. j+n`` (n in 2, 4, 6, 8) of every row, as uint64.

    ``h`` has contiguous rows (as :func:`_grab` returns): the bytes are viewed, not copied.
    """
    if n == 6:  # a MAC address
        return (_be(h, j, 4) << _U(16)) | _be(h, j + 4, 2)
    return h[:, j:j + n].view(f">u{n}")[:, 0].astype(np.uint64)


def _bi(h: np.ndarray, j: int, n: int) -> np.ndarray:
    """:func:`_be` as int64 (n < 8)."""
    return _be(h, j, n).astype(np.int64)


def _words(raw: np.ndarray, take: np.ndarray, co: np.ndarray, cw: np.ndarray) -> np.ndarray:
    """Rows of L4 bytes as big-endian uint64 words, bytes from ``take`` on and the checksum zeroed.

    The same value ``decode._l4_word`` builds for each 8-byte slice.
    """
    k = _AR[:raw.shape[1]]
    keep = (k < take[:, None]) & ~((k >= co[:, None]) & (k < (co + cw)[:, None]))
    return np.where(keep, raw, np.uint8(0)).view(">u8").astype(np.uint64)


# --- SipHash-1-3, one lane per row -----------------------------------------------
def _rotl(x: np.ndarray, s: int, tmp: np.ndarray) -> None:
    """Rotate left by ``s`` in place (``tmp``: scratch of the same shape)."""
    np.left_shift(x, _U(s), out=tmp)
    x >>= _U(64 - s)
    x |= tmp


def _round(v0, v1, v2, v3, tmp) -> None:
    """One SipRound on the four state arrays, in place (no temporaries: it runs 14× a row)."""
    v0 += v1
    _rotl(v1, 13, tmp)
    v1 ^= v0
    _rotl(v0, 32, tmp)
    v2 += v3
    _rotl(v3, 16, tmp)
    v3 ^= v2
    v0 += v3
    _rotl(v3, 21, tmp)
    v3 ^= v0
    v2 += v1
    _rotl(v1, 17, tmp)
    v1 ^= v2
    _rotl(v2, 32, tmp)


def siphash13_rows(k0, k1, words: list[np.ndarray]) -> np.ndarray:
    """:func:`pcaploop.fingerprint.siphash13` of every row of ``words`` (a list of columns)."""
    m = len(words[0])
    v0, v1 = np.full(m, k0 ^ _C0, dtype=np.uint64), np.full(m, k1 ^ _C1, dtype=np.uint64)
    v2, v3 = np.full(m, k0 ^ _C2, dtype=np.uint64), np.full(m, k1 ^ _C3, dtype=np.uint64)
    tmp = np.empty(m, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for w in words:
            v3 ^= w
            _round(v0, v1, v2, v3, tmp)
            v0 ^= w
        last = _U(len(words) * 8) << _U(56)
        v3 ^= last
        _round(v0, v1, v2, v3, tmp)
        v0 ^= last
        v2 ^= _U(0xFF)
        for _ in range(3):
            _round(v0, v1, v2, v3, tmp)
    return v0 ^ v1 ^ v2 ^ v3


# --- the stages ------------------------------------------------------------------
class _Batch:
    """One batch's records while the stages run: per-record state, full length.

    ``live`` marks the records still being decoded; a stage that rejects one
    sets its status and clears ``live``, as the kernel's early ``return``.
    """

    def __init__(self, b, off, caplen, wirelen, I, U, start):
        n = len(off)
        self.b = b
        self.p = np.asarray(off, dtype=np.int64)
        self.end = self.p + caplen
        self.wire = np.asarray(wirelen, dtype=np.int64)
        self.I, self.U = I[:, start:start + n], U[:, start:start + n]
        self.status = np.full(n, S.OK, dtype=np.int64)
        self.flags = np.where(caplen < wirelen, S.F_TRUNCATED, 0).astype(np.int64)
        self.live = np.zeros(n, dtype=bool)
        self.et = np.full(n, -1, dtype=np.int64)
        self.q = self.p.copy()
        # network layer, filled for the records that reach it
        self.ver, self.proto, self.l4, self.ip_end, self.fo, self.mf, self.lenfield, \
            self.identw, self.flow, self.offload = (np.zeros(n, dtype=np.int64)
                                                    for _ in range(10))

    def fail(self, rows: np.ndarray, status: int) -> None:
        self.status[rows] = status
        self.live[rows] = False

    def rows(self, mask: np.ndarray) -> np.ndarray:
        return np.flatnonzero(self.live & mask)


def _direction(pkttype: np.ndarray) -> np.ndarray:
    return np.where(pkttype == 4, S.DIR_OUT, np.where(pkttype <= 3, S.DIR_IN, S.DIR_UNKNOWN))


def _link(s: _Batch, codes: np.ndarray) -> None:
    """Layer 2 of every record → EtherType ``et`` and network header offset ``q``."""
    b, p, I, U = s.b, s.p, s.I, s.U
    known = (codes >= 1) & (codes <= 8)
    s.status[~known] = np.where(codes[~known] >= 0, S.UNSUPPORTED, S.MALFORMED)
    need = _L2_NEED[np.where(known, codes, 0)]
    s.live = known & (s.end - p >= need)
    s.status[known & ~s.live] = S.MALFORMED

    r = s.rows(codes == lt.L2_ETHERNET)
    h = _grab(b, p[r], 14)
    U[U_EDST, r], U[U_ESRC, r] = _be(h, 0, 6), _be(h, 6, 6)
    s.et[r], s.q[r] = _bi(h, 12, 2), p[r] + 14

    r = s.rows(codes == lt.L2_SLL)
    h = _grab(b, p[r], 16)
    mac = _bi(h, 4, 2) == 6
    U[U_ESRC, r[mac]] = _be(h[mac], 6, 6)
    I[I_DIR, r] = _direction(_bi(h, 0, 2))
    s.et[r], s.q[r] = _bi(h, 14, 2), p[r] + 16

    r = s.rows(codes == lt.L2_SLL2)
    h = _grab(b, p[r], 20)
    I[I_IFINDEX, r] = _bi(h, 4, 4)
    mac = h[:, 11] == 6
    U[U_ESRC, r[mac]] = _be(h[mac], 12, 6)
    I[I_DIR, r] = _direction(h[:, 10].astype(np.int64))
    s.et[r], s.q[r] = _bi(h, 0, 2), p[r] + 20

    r = s.rows((codes >= lt.L2_RAW) & (codes <= lt.L2_IPV6))
    v, c = b[p[r]] >> 4, codes[r]
    s.et[r] = np.where((v == 4) & (c != lt.L2_IPV6), 0x0800,
                       np.where((v == 6) & (c != lt.L2_IPV4), 0x86DD, -1))
    s.fail(r[s.et[r] == -1], S.MALFORMED)

    r = s.rows((codes == lt.L2_NULL) | (codes == lt.L2_LOOP))
    af = _bi(_grab(b, p[r], 4), 0, 4)
    swap = (codes[r] == lt.L2_NULL) & (af >= 65536)
    af[swap] = af[swap].astype(np.uint32).byteswap().astype(np.int64)
    s.et[r] = np.where(af == 2, 0x0800, np.where(np.isin(af, lt.AF_INET6_VALUES), 0x86DD, -1))
    s.q[r] = p[r] + 4


def _tags(s: _Batch) -> None:
    """802.1Q / QinQ tags (at most 4, as the kernel): the first two VLAN ids kept."""
    for t in range(4):
        r = s.rows(np.isin(s.et, (0x8100, 0x88A8, 0x9100)))
        if not len(r):
            return
        short = s.end[r] - s.q[r] < 4
        s.fail(r[short], S.MALFORMED)
        r = r[~short]
        h = _grab(s.b, s.q[r], 4)
        if t < 2:
            s.I[I_VLAN if t == 0 else I_IVLAN, r] = _bi(h, 0, 2) & 0xFFF
        s.et[r], s.q[r] = _bi(h, 2, 2), s.q[r] + 4


def _arp(s: _Batch) -> None:
    """ARP over IPv4 (the rows :class:`pcaploop.decode.Block` hands out); status NON_IP."""
    r = s.rows(s.et == 0x0806)
    s.fail(r, S.NON_IP)
    r = r[s.end[r] - s.q[r] >= 28]
    h = _grab(s.b, s.q[r], 28)
    ok = (_bi(h, 0, 2) == 1) & (_bi(h, 2, 2) == 0x0800)
    r, h = r[ok], h[ok]
    s.I[I_ARPOP, r] = _bi(h, 6, 2)
    s.U[U_IL4, r] = _be(h, 8, 6)
    s.U[U_SLO, r] = _V4MAP | _be(h, 14, 4)
    s.U[U_DLO, r] = _V4MAP | _be(h, 24, 4)


def _ipv4(s: _Batch) -> None:
    """IPv4 header (any IHL); the high address words stay the zero defaults, as in the kernel."""
    r = s.rows(s.et == 0x0800)
    avail = s.end[r] - s.q[r]
    s.fail(r[avail < 20], S.MALFORMED)
    r, avail = r[avail >= 20], avail[avail >= 20]
    h = _grab(s.b, s.q[r], 20)
    ihl = (h[:, 0].astype(np.int64) & 15) * 4
    tot = _bi(h, 2, 2)
    wire_ip = s.wire[r] - (s.q[r] - s.p[r])
    offload = (tot == 0) | (tot > wire_ip)
    bad = ((h[:, 0] >> 4) != 4) | (ihl < 20) | (avail < ihl) | (~offload & (tot < ihl))
    s.fail(r[bad], S.MALFORMED)
    ok = ~bad
    r, h, ihl, tot, wire_ip, offload = r[ok], h[ok], ihl[ok], tot[ok], wire_ip[ok], offload[ok]
    ident, ff = _bi(h, 4, 2), _bi(h, 6, 2)
    s.flags[r[(ff & 0x4000) != 0]] |= S.F_DF
    I, U = s.I, s.U
    I[I_VER, r], I[I_TTL, r], I[I_IPID, r], I[I_IPLEN, r] = 4, h[:, 8], ident, tot
    U[U_SLO, r], U[U_DLO, r] = _V4MAP | _be(h, 12, 4), _V4MAP | _be(h, 16, 4)
    s.ver[r], s.proto[r], s.l4[r] = 4, h[:, 9], s.q[r] + ihl
    s.ip_end[r] = s.q[r] + np.where(offload, wire_ip, tot)
    s.fo[r], s.mf[r] = (ff & 0x1FFF) * 8, (ff >> 13) & 1
    s.lenfield[r], s.identw[r], s.offload[r] = tot, ident, offload


def _walk_v6_ext(b, h: np.ndarray, end: np.ndarray, nh: np.ndarray):
    """``decode._walk_v6_ext`` per row → (protocol, L4 offset, frag id, frag offset, MF).

    One header per row and pass, at most 8 passes as the kernel; rows without
    extension headers (nearly all) cost one table lookup.
    """
    h, nh = h.copy(), nh.astype(np.int64)
    m = len(h)
    ident, fo, mf = np.full(m, -1, dtype=np.int64), np.zeros(m, np.int64), np.zeros(m, np.int64)
    act = np.flatnonzero(_V6EXT[nh])
    for _ in range(8):
        frag = nh[act] == 44
        act = act[(end[act] - h[act]) >= np.where(frag, 8, 2)]
        if not len(act):
            break
        frag = nh[act] == 44
        r = act[~frag]
        nx, ln = b[h[r]].astype(np.int64), b[h[r] + 1].astype(np.int64)
        h[r] += np.where(nh[r] == 51, (ln + 2) * 4, (ln + 1) * 8)
        nh[r] = nx
        r = act[frag]
        g = _grab(b, h[r], 8)
        fw = _bi(g, 2, 2)
        fo[r], mf[r], ident[r], nh[r] = fw & 0xFFF8, fw & 1, _bi(g, 4, 4), g[:, 0]
        h[r] += 8
        act = act[_V6EXT[nh[act]] & (fo[act] == 0)]
    return nh, h, ident, fo, mf


def _ipv6(s: _Batch) -> None:
    """IPv6 header and its extension-header chain."""
    r = s.rows(s.et == 0x86DD)
    avail = s.end[r] - s.q[r]
    s.fail(r[avail < 40], S.MALFORMED)
    r = r[avail >= 40]
    h = _grab(s.b, s.q[r], 40)
    bad = (h[:, 0] >> 4) != 6
    s.fail(r[bad], S.MALFORMED)
    r, h = r[~bad], h[~bad]
    q = s.q[r]
    flow, plen = _bi(h, 0, 4) & 0xFFFFF, _bi(h, 4, 2)
    wire_ip = s.wire[r] - (q - s.p[r])
    offload = (plen == 0) | (40 + plen > wire_ip)
    I, U = s.I, s.U
    I[I_VER, r], I[I_TTL, r], I[I_IPLEN, r], I[I_FLOW, r] = 6, h[:, 7], 40 + plen, flow
    addrs = np.ascontiguousarray(h[:, 8:40]).view(">u8").astype(np.uint64)
    for j, col in enumerate((U_SHI, U_SLO, U_DHI, U_DLO)):
        U[col, r] = addrs[:, j]
    proto, l4, ident, fo, mf = _walk_v6_ext(s.b, q + 40, s.end[r], h[:, 6])
    I[I_IPID, r] = ident
    s.ver[r], s.proto[r], s.l4[r], s.fo[r], s.mf[r] = 6, proto, l4, fo, mf
    s.ip_end[r] = q + np.where(offload, wire_ip, 40 + plen)
    s.lenfield[r], s.identw[r] = plen, np.maximum(ident, 0)
    s.flow[r], s.offload[r] = flow, offload


def _quoted(s: _Batch, r: np.ndarray, ip2: np.ndarray, end: np.ndarray) -> None:
    """``decode._quoted`` for rows ``r``: the packet an ICMP error quotes, at ``ip2 .. end``."""
    b, I, U = s.b, s.I, s.U
    keep = end - ip2 >= 20
    r, ip2, end = r[keep], ip2[keep], end[keep]
    v0 = b[ip2].astype(np.int64)
    ihl = (v0 & 15) * 4
    is4 = ((v0 >> 4) == 4) & (ihl >= 20) & (end - ip2 >= ihl)
    is6 = ((v0 >> 4) == 6) & (end - ip2 >= 40)
    l4, proto = np.zeros(len(r), np.int64), np.zeros(len(r), np.int64)
    first = np.zeros(len(r), dtype=bool)

    k = np.flatnonzero(is4)  # (the kernel's zero high address words are the defaults)
    r4, h = r[k], _grab(b, ip2[k], 20)
    I[I_IVER, r4], I[I_IPROTO, r4], I[I_ITTL, r4] = 4, h[:, 9], h[:, 8]
    I[I_IIPID, r4] = _bi(h, 4, 2)
    U[U_ISLO, r4], U[U_IDLO, r4] = _V4MAP | _be(h, 12, 4), _V4MAP | _be(h, 16, 4)
    l4[k], proto[k], first[k] = ip2[k] + ihl[k], h[:, 9], (_bi(h, 6, 2) & 0x1FFF) == 0

    k = np.flatnonzero(is6)
    r6, h = r[k], _grab(b, ip2[k], 40)
    I[I_IVER, r6], I[I_ITTL, r6] = 6, h[:, 7]
    addrs = np.ascontiguousarray(h[:, 8:40]).view(">u8").astype(np.uint64)
    for j, col in enumerate((U_ISHI, U_ISLO, U_IDHI, U_IDLO)):
        U[col, r6] = addrs[:, j]
    proto[k], l4[k], ident, fo, _ = _walk_v6_ext(b, ip2[k] + 40, end[k], h[:, 6])
    I[I_IPROTO, r6], I[I_IIPID, r6], first[k] = proto[k], ident, fo == 0

    k = np.flatnonzero(is4 | is6)
    r, l4, proto, first, end = r[k], l4[k], proto[k], first[k], end[k]
    have = np.clip(end - l4, 0, 8)
    s.flags[r[have < 8]] |= S.F_INNER_SHORT
    co, cw = np.where(first, _CSUM_OFF[proto], -1), np.where(first, _CSUM_W[proto], 0)
    U[U_IL4, r] = _words(_window(b, l4, 8, s.end[r]), have, co, cw)[:, 0]


def _l4(s: _Batch):
    """Transport fields, ICMP error and NDP details, the digest prefix of the decoded rows.

    Returns what :func:`_fingerprint` hashes: (rows, bytes taken, short key, prefix words).
    """
    r = np.flatnonzero(s.live)
    I, U = s.I, s.U
    proto, l4, fo, ip_end = s.proto[r], s.l4[r], s.fo[r], s.ip_end[r]
    s.flags[r[s.offload[r] != 0]] |= S.F_OFFLOAD
    s.flags[r[s.mf[r] != 0]] |= S.F_MF
    I[I_PROTO, r], I[I_FRAG, r] = proto, fo
    cend = np.minimum(ip_end, s.end[r])
    have = np.maximum(cend - l4, 0)
    first = fo == 0
    raw = _window(s.b, l4, 24, s.end[r])  # only bytes below ``have`` are used

    k = first & _PORTS[proto] & (have >= 4)
    I[I_SPORT, r[k]], I[I_DPORT, r[k]] = _bi(raw[k], 0, 2), _bi(raw[k], 2, 2)
    k &= (proto == 6) & (have >= 14)
    I[I_TCPF, r[k]] = raw[k, 13]
    icmp = first & ((proto == 1) | (proto == 58)) & (have >= 2)
    t = raw[:, 0].astype(np.int64)
    I[I_ITYPE, r[icmp]], I[I_ICODE, r[icmp]] = t[icmp], raw[icmp, 1]
    err = icmp & (((proto == 1) & _ICMP4_ERR[t]) | ((proto == 58) & _ICMP6_ERR[t]))
    _quoted(s, r[err], l4[err] + 8, cend[err])
    ndp = icmp & (proto == 58) & ((t == 135) | (t == 136)) & (have >= 24)
    U[U_IDHI, r[ndp]], U[U_IDLO, r[ndp]] = _be(raw[ndp], 8, 8), _be(raw[ndp], 16, 8)

    co, cw = np.where(first, _CSUM_OFF[proto], -1), np.where(first, _CSUM_W[proto], 0)
    want = np.minimum(np.maximum(ip_end - l4, 0), S.PREFIX_LEN)
    take = np.minimum(have, want)
    short = take < want
    s.flags[r[short]] |= S.F_SHORT_KEY
    words = _words(raw, take, co, cw)
    U[U_L4H, r] = words[:, 0]
    return r, take, short, words


def _fingerprint(s: _Batch, k0, k1, r, take, short, words) -> None:
    """The 10 words ``decode._decode_one`` hashes, for rows ``r`` (L4 words from :func:`_l4`)."""
    proto = s.proto[r]
    frag = (s.mf[r] << 13) | (s.fo[r] >> 3)
    w0 = ((s.ver[r].astype(np.uint64) << _U(56)) | (proto.astype(np.uint64) << _U(48))
          | (frag.astype(np.uint64) << _U(32)) | s.lenfield[r].astype(np.uint64))
    w1 = (s.identw[r].astype(np.uint64) << _U(32)) | s.flow[r].astype(np.uint64)
    w9 = take.astype(np.uint64) | (short.astype(np.uint64) << _U(8))
    cols = [w0, w1] + [s.U[c, r] for c in (U_SHI, U_SLO, U_DHI, U_DLO)]
    s.U[U_FP, r] = siphash13_rows(k0, k1, cols + [words[:, 0], words[:, 1], words[:, 2], w9])


def decode_np(buf, off, caplen, wirelen, codes, k0, k1, I, U, start) -> None:
    """Fill columns ``start .. start + len(off)`` of I and U as ``decode._decode_all`` does.

    The columns must hold the defaults (``decode._prefill``) on entry.
    """
    s = _Batch(buf, off, caplen, wirelen, I, U, start)
    _link(s, np.asarray(codes, dtype=np.int64))
    _tags(s)
    _arp(s)
    s.fail(s.rows((s.et != 0x0800) & (s.et != 0x86DD)), S.NON_IP)
    _ipv4(s)
    _ipv6(s)
    _fingerprint(s, k0, k1, *_l4(s))
    s.I[I_STATUS] = s.status
    s.I[I_FLAGS] = s.flags
