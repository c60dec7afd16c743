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
from ._bytes import be64, u16be, u32be, u32le, u64be
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
    return (np.uint64(u32be(b, p)) << np.uint64(16)) | np.uint64(u16be(b, p + 4))


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
        I[I_IVER, i] = 4
        I[I_IPROTO, i] = b[ip2 + 9]
        I[I_ITTL, i] = b[ip2 + 8]
        I[I_IIPID, i] = u16be(b, ip2 + 4)
        U[U_ISHI, i] = 0
        U[U_ISLO, i] = _V4MAP | np.uint64(u32be(b, ip2 + 12))
        U[U_IDHI, i] = 0
        U[U_IDLO, i] = _V4MAP | np.uint64(u32be(b, ip2 + 16))
        l4 = ip2 + ihl
        proto = np.int64(b[ip2 + 9])
        first = (u16be(b, ip2 + 6) & 0x1FFF) == 0
    elif v == 6:
        if a2 < 40:
            return
        I[I_IVER, i] = 6
        I[I_ITTL, i] = b[ip2 + 7]
        U[U_ISHI, i] = u64be(b, ip2 + 8, 8)
        U[U_ISLO, i] = u64be(b, ip2 + 16, 8)
        U[U_IDHI, i] = u64be(b, ip2 + 24, 8)
        U[U_IDLO, i] = u64be(b, ip2 + 32, 8)
        proto, l4, ident, fo, mf = _walk_v6_ext(b, ip2 + 40, end, np.int64(b[ip2 + 6]))
        I[I_IPROTO, i] = proto
        I[I_IIPID, i] = ident
        first = fo == 0
    else:
        return
    have = end - l4
    if have < 0:
        have = 0
    if have > 8:
        have = 8
    if have < 8:
        I[I_FLAGS, i] |= S.F_INNER_SHORT
    co, cw = _csum_span(proto) if first else (-1, 0)
    U[U_IL4, i] = _l4_word(b, l4, have, co, cw)


@njit
def _decode_one(b, p, cap, wire, code, k0, k1, I, U, i, w):  # pragma: no cover - compiled
    end = p + cap
    if cap < wire:
        I[I_FLAGS, i] |= S.F_TRUNCATED
    et = -1
    q = p
    if code == lt.L2_ETHERNET:
        if cap < 14:
            I[I_STATUS, i] = S.MALFORMED
            return
        U[U_EDST, i] = _mac(b, p)
        U[U_ESRC, i] = _mac(b, p + 6)
        et = u16be(b, p + 12)
        q = p + 14
    elif code == lt.L2_SLL:
        if cap < 16:
            I[I_STATUS, i] = S.MALFORMED
            return
        pkttype = u16be(b, p)
        if u16be(b, p + 4) == 6:
            U[U_ESRC, i] = _mac(b, p + 6)
        I[I_DIR, i] = S.DIR_OUT if pkttype == 4 else (S.DIR_IN if pkttype <= 3 else S.DIR_UNKNOWN)
        et = u16be(b, p + 14)
        q = p + 16
    elif code == lt.L2_SLL2:
        if cap < 20:
            I[I_STATUS, i] = S.MALFORMED
            return
        et = u16be(b, p)
        I[I_IFINDEX, i] = u32be(b, p + 4)
        pkttype = np.int64(b[p + 10])
        if b[p + 11] == 6:
            U[U_ESRC, i] = _mac(b, p + 12)
        I[I_DIR, i] = S.DIR_OUT if pkttype == 4 else (S.DIR_IN if pkttype <= 3 else S.DIR_UNKNOWN)
        q = p + 20
    elif code == lt.L2_RAW or code == lt.L2_IPV4 or code == lt.L2_IPV6:
        if cap < 1:
            I[I_STATUS, i] = S.MALFORMED
            return
        v = np.int64(b[p]) >> 4
        if v == 4 and code != lt.L2_IPV6:
            et = 0x0800
        elif v == 6 and code != lt.L2_IPV4:
            et = 0x86DD
        else:
            I[I_STATUS, i] = S.MALFORMED
            return
    elif code == lt.L2_NULL or code == lt.L2_LOOP:
        if cap < 4:
            I[I_STATUS, i] = S.MALFORMED
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
        I[I_STATUS, i] = S.UNSUPPORTED
        return
    tags = 0
    while (et == 0x8100 or et == 0x88A8 or et == 0x9100) and tags < 4:
        if end - q < 4:
            I[I_STATUS, i] = S.MALFORMED
            return
        vid = u16be(b, q) & 0xFFF
        if tags == 0:
            I[I_VLAN, i] = vid
        elif tags == 1:
            I[I_IVLAN, i] = vid
        et = u16be(b, q + 2)
        q += 4
        tags += 1
    if et == 0x0806:
        I[I_STATUS, i] = S.NON_IP
        if end - q >= 28 and u16be(b, q) == 1 and u16be(b, q + 2) == 0x0800:
            I[I_ARPOP, i] = u16be(b, q + 6)
            U[U_IL4, i] = _mac(b, q + 8)
            U[U_SLO, i] = _V4MAP | np.uint64(u32be(b, q + 14))
            U[U_DLO, i] = _V4MAP | np.uint64(u32be(b, q + 24))
        return
    avail = end - q
    wire_ip = wire - (q - p)
    if et == 0x0800:
        if avail < 20 or (np.int64(b[q]) >> 4) != 4:
            I[I_STATUS, i] = S.MALFORMED
            return
        ihl = (np.int64(b[q]) & 15) * 4
        if ihl < 20 or avail < ihl:
            I[I_STATUS, i] = S.MALFORMED
            return
        tot = u16be(b, q + 2)
        offload = tot == 0 or tot > wire_ip
        if not offload and tot < ihl:
            I[I_STATUS, i] = S.MALFORMED
            return
        ip_end = q + (wire_ip if offload else tot)
        ident = u16be(b, q + 4)
        ff = u16be(b, q + 6)
        fo = (ff & 0x1FFF) * 8
        mf = (ff >> 13) & 1
        if ff & 0x4000:
            I[I_FLAGS, i] |= S.F_DF
        proto = np.int64(b[q + 9])
        I[I_VER, i] = 4
        I[I_TTL, i] = b[q + 8]
        I[I_IPID, i] = ident
        I[I_IPLEN, i] = tot
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
        if avail < 40 or (np.int64(b[q]) >> 4) != 6:
            I[I_STATUS, i] = S.MALFORMED
            return
        flow = u32be(b, q) & 0xFFFFF
        plen = u16be(b, q + 4)
        offload = plen == 0 or 40 + plen > wire_ip
        ip_end = q + (wire_ip if offload else 40 + plen)
        I[I_VER, i] = 6
        I[I_TTL, i] = b[q + 7]
        I[I_IPLEN, i] = 40 + plen
        I[I_FLOW, i] = flow
        U[U_SHI, i] = u64be(b, q + 8, 8)
        U[U_SLO, i] = u64be(b, q + 16, 8)
        U[U_DHI, i] = u64be(b, q + 24, 8)
        U[U_DLO, i] = u64be(b, q + 32, 8)
        proto, l4, ident, fo, mf = _walk_v6_ext(b, q + 40, end, np.int64(b[q + 6]))
        I[I_IPID, i] = ident
        lenfield = plen
        identw = ident if ident >= 0 else 0
        ver = 6
    else:
        I[I_STATUS, i] = S.NON_IP
        return
    if offload:
        I[I_FLAGS, i] |= S.F_OFFLOAD
    if mf:
        I[I_FLAGS, i] |= S.F_MF
    I[I_PROTO, i] = proto
    I[I_FRAG, i] = fo
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
            I[I_SPORT, i] = u16be(b, l4)
            I[I_DPORT, i] = u16be(b, l4 + 2)
            if proto == 6 and have >= 14:
                I[I_TCPF, i] = b[l4 + 13]
        elif (proto == 1 or proto == 58) and have >= 2:
            t = np.int64(b[l4])
            I[I_ITYPE, i] = t
            I[I_ICODE, i] = b[l4 + 1]
            if proto == 1 and (t == 3 or t == 4 or t == 5 or t == 11 or t == 12):
                _quoted(b, l4 + 8, cend, I, U, i)
            elif proto == 58 and 1 <= t <= 4:
                _quoted(b, l4 + 8, cend, I, U, i)
            elif proto == 58 and (t == 135 or t == 136) and have >= 24:
                U[U_IDHI, i] = u64be(b, l4 + 8, 8)
                U[U_IDLO, i] = u64be(b, l4 + 16, 8)
        co, cw = _csum_span(proto)
    else:
        co, cw = -1, 0
    want = l4_len if l4_len < _PREFIX else _PREFIX
    take = have if have < want else want
    if take < want:
        I[I_FLAGS, i] |= S.F_SHORT_KEY
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


@njit
def _decode_all(b, off, cap, wire, codes, k0, k1, I, U, start):  # pragma: no cover - compiled
    w = np.zeros(N_WORDS, dtype=np.uint64)
    for i in range(off.shape[0]):
        _decode_one(b, off[i], cap[i], wire[i], codes[i], k0, k1, I, U, start + i, w)


def _prefill(I: np.ndarray, U: np.ndarray, start: int, stop: int) -> None:
    I[:, start:stop] = _DEF_I[:, None]
    U[:, start:stop] = _DEF_U[:, None]


def _run_kernel(buf, off, caplen, wirelen, codes, key, I, U, start) -> None:
    _prefill(I, U, start, start + len(off))
    if not len(off):
        return
    if JIT:
        _decode_all(buf, off, caplen, wirelen, codes, key[0], key[1], I, U, start)
    else:  # no numba: the same kernel vectorised with numpy, identical results
        from ._npdecode import decode_np

        decode_np(buf, off, caplen, wirelen, codes, key[0], key[1], I, U, start)


def decode_arrays(buf: np.ndarray, off: np.ndarray, caplen: np.ndarray, wirelen: np.ndarray,
                  codes: np.ndarray, key: tuple[np.uint64, np.uint64] = RUN_KEY,
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Run the kernel over records: the int64 (NI × n) and uint64 (NU × n) field matrices."""
    n = len(off)
    I = np.empty((NI, n), dtype=np.int64)
    U = np.empty((NU, n), dtype=np.uint64)
    _run_kernel(buf, off, caplen, wirelen, codes, key, I, U, 0)
    return I, U


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


_I_COLS = {"vlan": I_VLAN, "inner_vlan": I_IVLAN, "ip_version": I_VER, "protocol": I_PROTO,
           "ttl": I_TTL, "ip_id": I_IPID, "ip_len": I_IPLEN, "frag_offset": I_FRAG,
           "flow_label": I_FLOW, "sport": I_SPORT, "dport": I_DPORT, "tcp_flags": I_TCPF,
           "icmp_type": I_ITYPE, "icmp_code": I_ICODE, "inner_version": I_IVER,
           "inner_protocol": I_IPROTO, "inner_ip_id": I_IIPID, "inner_ttl": I_ITTL,
           "flags": I_FLAGS}
_U_COLS = {"eth_src": U_ESRC, "eth_dst": U_EDST, "src_hi": U_SHI, "src_lo": U_SLO,
           "dst_hi": U_DHI, "dst_lo": U_DLO, "inner_src_hi": U_ISHI, "inner_src_lo": U_ISLO,
           "inner_dst_hi": U_IDHI, "inner_dst_lo": U_IDLO, "inner_l4": U_IL4, "l4_head": U_L4H,
           "fingerprint": U_FP}


class _Slab:
    """Field matrices for up to ``cap`` rows (int64, uint64 and per-record metadata)."""

    def __init__(self, cap: int):
        self.I = np.empty((NI, cap), dtype=np.int64)
        self.U = np.empty((NU, cap), dtype=np.uint64)
        self.meta = np.empty((6, cap), dtype=np.int64)  # time, iface, dir, caplen, wirelen, record
        self.cap = cap
        self.fill = 0

    def grow(self, cap: int) -> None:
        """Room for ``cap`` rows, keeping what is filled."""
        bigger = _Slab(cap)
        f = self.fill
        bigger.I[:, :f], bigger.U[:, :f], bigger.meta[:, :f] = (
            self.I[:, :f], self.U[:, :f], self.meta[:, :f])
        self.I, self.U, self.meta, self.cap = bigger.I, bigger.U, bigger.meta, cap


@dataclass
class Block:
    """``n`` decoded rows in a slab; :meth:`decoded` copies them out as typed columns.

    Call :meth:`decoded` before the decoder has filled ``slabs - 1`` further
    blocks: the slab is then reused.
    """

    slab: _Slab
    n: int

    def decoded(self, into: dict[str, np.ndarray] | None = None) -> Decoded:
        """Typed columns of the OK rows (and per-record status for accounting).

        With ``into`` (a dict, empty at first) the columns are written into
        arrays kept there and reused by the next call: no fresh memory per
        block, for streaming consumers that aggregate and move on (page
        faults on fresh memory cost as much as the decoding on some VMs).
        """
        n = self.n
        I, U, m = self.slab.I[:, :n], self.slab.U[:, :n], self.slab.meta[:, :n]
        status = I[I_STATUS].astype(np.int8)
        okmask = status == S.OK
        sel = slice(None) if okmask.all() else np.flatnonzero(okmask)
        k_ok = n if isinstance(sel, slice) else len(sel)

        def put(name: str, values: np.ndarray) -> None:
            if into is None:
                cols[name] = values[sel].astype(S.RAW[name], copy=True)
                return
            dst = into.get(name)
            if dst is None or len(dst) < n:
                dst = into[name] = np.empty(n, dtype=S.RAW[name])
            np.copyto(dst[:k_ok], values[sel], casting="unsafe")
            cols[name] = dst[:k_ok]

        cols: dict[str, np.ndarray] = {}
        for name, k in _I_COLS.items():
            put(name, I[k])
        for name, k in _U_COLS.items():
            put(name, U[k])
        put("direction", np.where(I[I_DIR] != 0, I[I_DIR], m[2]))
        put("time_ns", m[0])
        put("caplen", m[3])
        put("wirelen", m[4])
        put("record", m[5])
        cols["point"] = np.zeros(k_ok, dtype=np.int16)
        cols = {k: cols[k] for k in S.RAW}
        isarp = I[I_ARPOP] > 0
        arp = {
            "time_ns": m[0, isarp], "iface": m[1, isarp], "ifindex": I[I_IFINDEX, isarp],
            "op": I[I_ARPOP, isarp], "sender_mac": U[U_IL4, isarp],
            "sender_ip": (U[U_SLO, isarp] & np.uint64(0xFFFFFFFF)).astype(np.uint32),
            "target_ip": (U[U_DLO, isarp] & np.uint64(0xFFFFFFFF)).astype(np.uint32),
            "eth_src": U[U_ESRC, isarp],
        }
        if into is None:  # a block that outlives the slab
            return Decoded(status, m[1].copy(), I[I_IFINDEX].copy(), m[0].copy(), cols, arp,
                           isarp)
        # consumed (accounted for) before the slab is reused: views will do
        return Decoded(status, m[1], I[I_IFINDEX], m[0], cols, arp, isarp)


class BatchDecoder:
    """Decodes record batches into reused matrices and hands them out in large blocks.

    Why: per-batch Python work (slicing 38 columns, accounting) costs more than
    the compiled decode when a 1 MiB buffer fill holds only ~2,000 packets;
    accumulating ``capacity`` rows first makes that cost negligible.  With
    ``slabs=3`` one thread can decode while another copies the previous block
    out (:meth:`Block.decoded`).

    >>> dec = BatchDecoder()                                     # doctest: +SKIP
    >>> for batch in cap.batches():                              # doctest: +SKIP
    ...     for block in dec.add(batch, codes): use(block.decoded())
    >>> last = dec.flush()                                        # doctest: +SKIP
    """

    def __init__(self, key: tuple[np.uint64, np.uint64] = RUN_KEY, capacity: int = 1 << 16,
                 slabs: int = 1):
        self.key = key
        self.max_cap = capacity
        self.slabs = [_Slab(min(capacity, 1024)) for _ in range(slabs)]
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
                sl_.grow(min(self.max_cap, max(2 * sl_.cap, sl_.fill + n - done)))
            take = min(n - done, sl_.cap - sl_.fill)
            sl = slice(done, done + take)
            iface = batch.iface[sl]
            codes = np.where(iface >= 0, iface_codes[np.maximum(iface, 0)], -1)
            _run_kernel(batch.buf, batch.off[sl], batch.caplen[sl], batch.wirelen[sl], codes,
                        self.key, sl_.I, sl_.U, sl_.fill)
            f0, f1 = sl_.fill, sl_.fill + take
            m = sl_.meta
            m[0, f0:f1] = batch.time_ns[sl]
            m[1, f0:f1] = iface
            m[2, f0:f1] = batch.direction[sl]
            m[3, f0:f1] = batch.caplen[sl]
            m[4, f0:f1] = batch.wirelen[sl]
            m[5, f0:f1] = np.arange(batch.first_record + done, batch.first_record + done + take)
            st = sl_.I[I_STATUS, f0:f1]
            st[codes == -1] = S.MALFORMED  # names an interface never declared
            st[codes == lt.L2_UNSUPPORTED] = S.UNSUPPORTED
            sl_.fill = f1
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
