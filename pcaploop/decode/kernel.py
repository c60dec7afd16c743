"""The compiled decode of one record: link layer, VLAN tags, IPv4/IPv6, L4, fingerprint.

Decode states facts (addresses, TTL, ports, the quoted packet of an ICMP
error, the fingerprint); it never decides what a loop is.  Every record gets
a status (``OK`` or a skip reason) so the caller can account for it.

Fields go to the typed matrices of :mod:`.layout`; protocol numbers are the
names of :mod:`.protocols`.  numba compiles these functions (``_jit``);
without numba (``PCAPLOOP_NO_JIT=1``) the very same functions run as plain
Python — slowly, but with identical semantics, which is what the tests'
no-numba pass checks.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from .. import schema as S
from .._bytes import be64, u8, u16be, u16le, u32be, u32le, u64be
from .._jit import njit_inline, njit_plain
from . import layout as L
from . import linktypes as lt
from . import protocols as P
from .fingerprint import ERROR_WORDS, N_WORDS, REDIRECT_WORDS, siphash13

# --- rows of the typed layout, as compile-time constants ----------------------------------
R8_STATUS: Final = L.row("status")
R8_DIR: Final = L.row("direction")
R8_VER: Final = L.row("ip_version")
R8_PROTO: Final = L.row("protocol")
R8_TTL: Final = L.row("ttl")
R8_IVER: Final = L.row("inner_version")
R8_FLAGS: Final = L.row("flags")
R16_TCPF: Final = L.row("tcp_flags")
R16_ITYPE: Final = L.row("icmp_type")
R16_ICODE: Final = L.row("icmp_code")
R16_IPROTO: Final = L.row("inner_protocol")
R16_ITTL: Final = L.row("inner_ttl")
R16_FRAG: Final = L.row("frag_offset")
R32_VLAN: Final = L.row("vlan")
R32_IVLAN: Final = L.row("inner_vlan")
R32_SPORT: Final = L.row("sport")
R32_DPORT: Final = L.row("dport")
R32_IPLEN: Final = L.row("ip_len")
R32_FLOW: Final = L.row("flow_label")
R32_CAPLEN: Final = L.row("caplen")
R32_WIRELEN: Final = L.row("wirelen")
R64_IPID: Final = L.row("ip_id")
R64_IIPID: Final = L.row("inner_ip_id")
R64_IFINDEX: Final = L.row("ifindex")
R64_ARPOP: Final = L.row("arp_op")
R64_TIME: Final = L.row("time_ns")
R64_IFACE: Final = L.row("iface")
R64_RECORD: Final = L.row("record")
U_ESRC: Final = L.row("eth_src")
U_EDST: Final = L.row("eth_dst")
U_SHI: Final = L.row("src_hi")
U_SLO: Final = L.row("src_lo")
U_DHI: Final = L.row("dst_hi")
U_DLO: Final = L.row("dst_lo")
U_ISHI: Final = L.row("inner_src_hi")
U_ISLO: Final = L.row("inner_src_lo")
U_IDHI: Final = L.row("inner_dst_hi")
U_IDLO: Final = L.row("inner_dst_lo")
U_IL4: Final = L.row("inner_l4")  # also the sender MAC of an ARP record
U_L4H: Final = L.row("l4_head")
U_FP: Final = L.row("fingerprint")
U_IFP: Final = L.row("inner_fingerprint")

_D8, _D16, _D32, _D64, _DU = L.defaults()
_V4MAP = np.uint64(0xFFFF00000000)
_PREFIX = S.PREFIX_LEN
_WORD = 8  # bytes per digest word


@njit_inline
def _mac(b, p):  # pragma: no cover - compiled
    return (np.uint64(u32be(b, p)) << np.uint64(16)) | np.uint64(u16be(b, p + 4))


@njit_plain
def _csum_span(proto):  # pragma: no cover - compiled
    """(offset, width) of the L4 checksum (:data:`protocols.CHECKSUM_AT`), (-1, 0) if none."""
    if proto == P.IPPROTO_TCP:
        return 16, 2
    if proto == P.IPPROTO_UDP or proto == P.IPPROTO_UDPLITE:
        return 6, 2
    if proto == P.IPPROTO_ICMP or proto == P.IPPROTO_ICMPV6:
        return 2, 2
    if proto == P.IPPROTO_SCTP:
        return 8, 4
    return -1, 0


@njit_plain
def _has_ports(proto):  # pragma: no cover - compiled
    return (
        proto == P.IPPROTO_TCP
        or proto == P.IPPROTO_UDP
        or proto == P.IPPROTO_UDPLITE
        or proto == P.IPPROTO_SCTP
    )


@njit_plain
def _generic_ext(nh):  # pragma: no cover - compiled
    """An IPv6 extension header of the generic layout (:data:`protocols.IPV6_EXT_GENERIC`)."""
    return (
        nh == P.IPPROTO_HOPOPTS
        or nh == P.IPPROTO_ROUTING
        or nh == P.IPPROTO_DSTOPTS
        or nh == P.IPPROTO_MH
        or nh == P.IPPROTO_HIP
        or nh == P.IPPROTO_SHIM6
    )


@njit_plain
def _walk_v6_ext(b, h, end, nh):  # pragma: no cover - compiled
    """Walk IPv6 extension headers (at most 8) → (upper protocol, offset, frag id, offset, MF)."""
    ident = -1
    fo = 0
    mf = 0
    for _ in range(P.MAX_IPV6_EXT):
        if _generic_ext(nh):
            if end - h < 2:
                break
            hl = (u8(b, h + 1) + 1) * 8
            nh = u8(b, h)
            h += hl
        elif nh == P.IPPROTO_AH:
            if end - h < 2:
                break
            hl = (u8(b, h + 1) + 2) * 4
            nh = u8(b, h)
            h += hl
        elif nh == P.IPPROTO_FRAGMENT:
            if end - h < P.IPV6_FRAG_HLEN:
                break
            fw = u16be(b, h + 2)
            fo = fw & 0xFFF8
            mf = fw & 1
            ident = u32be(b, h + 4)
            nh = u8(b, h)
            h += P.IPV6_FRAG_HLEN
            if fo != 0:
                break
        else:
            break
    return nh, h, ident, fo, mf


@njit_inline
def _l4_word(b, p, have, csum_off, csum_w):  # pragma: no cover - compiled
    """Up to 8 bytes from ``p`` (``have`` available) as big-endian, checksum zeroed."""
    if have >= _WORD:  # the common case: one read, the checksum masked out
        v = be64(b, p)
        for j in range(csum_off, csum_off + csum_w):
            if 0 <= j < _WORD:
                v = v & ~(np.uint64(0xFF) << np.uint64(8 * (7 - j)))
        return v
    v = np.uint64(0)
    for j in range(_WORD):
        v = v << np.uint64(8)
        if j < have and not (csum_off <= j < csum_off + csum_w):
            v = v | np.uint64(u8(b, p + j))
    return v


@njit_inline
def _words(
    w, b, ver, proto, mf, fo, lenfield, identw, flow, shi, slo, dhi, dlo, l4, take, want, co, cw
):  # pragma: no cover - compiled
    """The 10 fingerprint words of a packet (:func:`.fingerprint.fingerprint_words`);
    returns its first 8 L4 bytes (checksum zeroed)."""
    head = _l4_word(b, l4, take, co, cw)
    w[0] = (
        (np.uint64(ver) << np.uint64(56))
        | (np.uint64(proto) << np.uint64(48))
        | (np.uint64((mf << 13) | (fo >> 3)) << np.uint64(32))
        | np.uint64(lenfield)
    )
    w[1] = (np.uint64(identw) << np.uint64(32)) | np.uint64(flow)
    w[2] = shi
    w[3] = slo
    w[4] = dhi
    w[5] = dlo
    w[6] = head
    w[7] = _l4_word(b, l4 + _WORD, take - _WORD, co - _WORD, cw)
    w[8] = _l4_word(b, l4 + 2 * _WORD, take - 2 * _WORD, co - 2 * _WORD, cw)
    w[9] = np.uint64(take) | (np.uint64(1 if take < want else 0) << np.uint64(8))
    return head


@njit_plain
def _quoted(b, ip2, end, M8, M16, M32, M64, U, i, k0, k1, w):  # pragma: no cover - compiled
    """Decode the packet quoted by an ICMP error (RFC 792: header + 8 bytes), and its
    fingerprint when the quote holds its whole prefix (RFC 1812 / Linux quote more)."""
    a2 = end - ip2
    if a2 < P.IPV4_MIN_HLEN:
        return
    v = u8(b, ip2) >> 4
    if v == 4:
        ihl = (u8(b, ip2) & 15) * 4
        if ihl < P.IPV4_MIN_HLEN or a2 < ihl:
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
        ff = u16be(b, ip2 + 6)
        fo = (ff & P.IP_OFFMASK) * 8
        mf = (ff >> P.IP_MF_SHIFT) & 1
        first = fo == 0
        ver = 4
        lenfield = u16be(b, ip2 + 2)
        identw = u16be(b, ip2 + 4)
        flow = 0
        l4_len = lenfield - ihl
    elif v == 6:
        if a2 < P.IPV6_HLEN:
            return
        M8[R8_IVER, i] = 6
        M16[R16_ITTL, i] = u8(b, ip2 + 7)
        U[U_ISHI, i] = u64be(b, ip2 + 8, 8)
        U[U_ISLO, i] = u64be(b, ip2 + 16, 8)
        U[U_IDHI, i] = u64be(b, ip2 + 24, 8)
        U[U_IDLO, i] = u64be(b, ip2 + 32, 8)
        proto, l4, ident, fo, mf = _walk_v6_ext(b, ip2 + P.IPV6_HLEN, end, u8(b, ip2 + 6))
        M16[R16_IPROTO, i] = proto
        M64[R64_IIPID, i] = ident
        first = fo == 0
        ver = 6
        lenfield = u16be(b, ip2 + 4)
        identw = ident if ident >= 0 else 0
        flow = u32be(b, ip2) & 0xFFFFF
        l4_len = P.IPV6_HLEN + lenfield - (l4 - ip2)
    else:
        return
    avail = end - l4
    if avail < 0:
        avail = 0
    have = avail if avail < _WORD else _WORD
    if have < _WORD:
        M8[R8_FLAGS, i] |= S.F_INNER_SHORT
    co, cw = _csum_span(proto) if first else (-1, 0)
    U[U_IL4, i] = _l4_word(b, l4, have, co, cw)
    if l4_len < 0:
        l4_len = 0
    want = l4_len if l4_len < _PREFIX else _PREFIX
    if avail >= want:  # the whole prefix is quoted: the quoted packet's own fingerprint
        _words(
            w,
            b,
            ver,
            proto,
            mf,
            fo,
            lenfield,
            identw,
            flow,
            U[U_ISHI, i],
            U[U_ISLO, i],
            U[U_IDHI, i],
            U[U_IDLO, i],
            l4,
            want,
            want,
            co,
            cw,
        )
        U[U_IFP, i] = siphash13(k0, k1, w, N_WORDS)


@njit_inline
def _decode_one(
    b,
    p,
    cap,
    wire,
    code,
    k0,
    k1,
    M8,
    M16,
    M32,
    M64,
    U,
    i,  # pragma: no cover
    w,
):
    end = p + cap
    if cap < wire:
        M8[R8_FLAGS, i] |= S.F_TRUNCATED
    et = -1
    q = p
    s = p  # where the link layer starts: after a radiotap or PPI header
    if code == lt.L2_RADIOTAP or code == lt.L2_PPI:
        hmin = P.RADIOTAP_MIN_HLEN if code == lt.L2_RADIOTAP else P.PPI_MIN_HLEN
        if cap < hmin:
            M8[R8_STATUS, i] = S.MALFORMED
            return
        hl = u16le(b, p + 2)
        if hl < hmin or hl > cap or u8(b, p) != 0:  # version 0 in both
            M8[R8_STATUS, i] = S.MALFORMED
            return
        if code == lt.L2_PPI:
            dlt = u32le(b, p + 4)
            if dlt == lt.LINKTYPE_IEEE802_11:
                code = lt.L2_IEEE80211
            elif dlt == lt.LINKTYPE_ETHERNET:
                code = lt.L2_ETHERNET
            else:
                M8[R8_STATUS, i] = S.UNSUPPORTED
                return
        else:
            code = lt.L2_IEEE80211
        s = p + hl
    if code == lt.L2_ETHERNET:
        if end - s < P.ETH_HLEN:
            M8[R8_STATUS, i] = S.MALFORMED
            return
        U[U_EDST, i] = _mac(b, s)
        U[U_ESRC, i] = _mac(b, s + 6)
        et = u16be(b, s + 12)
        q = s + P.ETH_HLEN
    elif code == lt.L2_IEEE80211:
        if end - s < P.IEEE80211_HLEN:
            M8[R8_STATUS, i] = S.MALFORMED
            return
        fc0 = u8(b, s)
        fc1 = u8(b, s + 1)
        subtype = fc0 >> 4
        if (fc0 >> 2) & 3 != P.IEEE80211_TYPE_DATA or subtype & P.IEEE80211_SUBTYPE_NODATA:
            M8[R8_STATUS, i] = S.NON_IP  # management, control, null data
            return
        if fc1 & P.IEEE80211_FC1_PROTECTED:
            M8[R8_STATUS, i] = S.UNSUPPORTED  # encrypted
            return
        ds = fc1 & (P.IEEE80211_FC1_TODS | P.IEEE80211_FC1_FROMDS)
        hl = P.IEEE80211_HLEN
        if ds == P.IEEE80211_FC1_TODS | P.IEEE80211_FC1_FROMDS:
            hl += P.IEEE80211_ADDR4_LEN
        if subtype & P.IEEE80211_SUBTYPE_QOS:
            hl += P.IEEE80211_QOS_LEN
            if fc1 & P.IEEE80211_FC1_ORDER:
                hl += P.IEEE80211_HTC_LEN
        if end - s < hl + P.LLC_SNAP_HLEN:
            M8[R8_STATUS, i] = S.MALFORMED
            return
        # destination and source by the DS bits (addresses 1, 2, 3 at 4, 10, 16; 4 at 24)
        if ds == 0:
            da, sa = s + 4, s + 10
        elif ds == P.IEEE80211_FC1_TODS:
            da, sa = s + 16, s + 10
        elif ds == P.IEEE80211_FC1_FROMDS:
            da, sa = s + 4, s + 16
        else:
            da, sa = s + 16, s + 24
        U[U_EDST, i] = _mac(b, da)
        U[U_ESRC, i] = _mac(b, sa)
        x = s + hl
        if (u32be(b, x) >> 8) != P.LLC_SNAP or u16be(b, x + 3) != 0 or u8(b, x + 5) != 0:
            M8[R8_STATUS, i] = S.NON_IP
            return
        et = u16be(b, x + 6)
        q = x + P.LLC_SNAP_HLEN
    elif code == lt.L2_PPP:
        x = p
        if end - x >= 2 and u8(b, x) == P.PPP_ADDRESS and u8(b, x + 1) == P.PPP_CONTROL:
            x += 2
        elif end - x >= P.CHDLC_HLEN and (
            u8(b, x) == P.CHDLC_UNICAST or u8(b, x) == P.CHDLC_BROADCAST
        ):  # Cisco HDLC framing (LINKTYPE_PPP_HDLC allows it)
            x += 2
            et = u16be(b, x)
            x += 2
        if et < 0:
            if end - x < 1:
                M8[R8_STATUS, i] = S.MALFORMED
                return
            if u8(b, x) & 1:  # protocol field compression: one byte
                proto = u8(b, x)
                x += 1
            else:
                if end - x < 2:
                    M8[R8_STATUS, i] = S.MALFORMED
                    return
                proto = u16be(b, x)
                x += 2
            if proto == P.PPP_IP:
                et = P.ETH_P_IP
            elif proto == P.PPP_IPV6:
                et = P.ETH_P_IPV6
            else:
                M8[R8_STATUS, i] = S.NON_IP
                return
        q = x
    elif code == lt.L2_CHDLC:
        if cap < P.CHDLC_HLEN:
            M8[R8_STATUS, i] = S.MALFORMED
            return
        et = u16be(b, p + 2)
        q = p + P.CHDLC_HLEN
    elif code == lt.L2_FRELAY:
        x = p
        k = 0
        done = False
        while x < end and k < P.FR_MAX_ADDRESS:
            last = u8(b, x) & 1  # EA: the address ends here
            x += 1
            k += 1
            if last:
                done = True
                break
        if not done or k < 2:
            M8[R8_STATUS, i] = S.MALFORMED
            return
        if end - x < 2 or u8(b, x) != P.FR_UI:
            M8[R8_STATUS, i] = S.NON_IP
            return
        x += 1
        if u8(b, x) == P.NLPID_PAD:
            x += 1
            if end - x < 1:
                M8[R8_STATUS, i] = S.MALFORMED
                return
        nlpid = u8(b, x)
        x += 1
        if nlpid == P.NLPID_IP:
            et = P.ETH_P_IP
        elif nlpid == P.NLPID_IPV6:
            et = P.ETH_P_IPV6
        elif nlpid == P.NLPID_SNAP:
            if end - x < P.SNAP_HLEN:
                M8[R8_STATUS, i] = S.MALFORMED
                return
            if (u32be(b, x) >> 8) != 0:  # an OUI other than 0: not an EtherType
                M8[R8_STATUS, i] = S.NON_IP
                return
            et = u16be(b, x + 3)
            x += P.SNAP_HLEN
        else:
            M8[R8_STATUS, i] = S.NON_IP
            return
        q = x
    elif code == lt.L2_SLL:
        if cap < P.SLL_HLEN:
            M8[R8_STATUS, i] = S.MALFORMED
            return
        pkttype = u16be(b, p)
        if u16be(b, p + 4) == P.ETH_ALEN:  # the link-layer address is a MAC
            U[U_ESRC, i] = _mac(b, p + 6)
        if pkttype <= P.PACKET_TYPE_MAX_DIRECTION:  # else the record's own direction stays
            M8[R8_DIR, i] = S.DIR_OUT if pkttype == P.PACKET_OUTGOING else S.DIR_IN
        et = u16be(b, p + 14)
        q = p + P.SLL_HLEN
    elif code == lt.L2_SLL2:
        if cap < P.SLL2_HLEN:
            M8[R8_STATUS, i] = S.MALFORMED
            return
        et = u16be(b, p)
        M64[R64_IFINDEX, i] = u32be(b, p + 4)
        pkttype = u8(b, p + 10)
        if u8(b, p + 11) == P.ETH_ALEN:  # the link-layer address is a MAC
            U[U_ESRC, i] = _mac(b, p + 12)
        if pkttype <= P.PACKET_TYPE_MAX_DIRECTION:  # else the record's own direction stays
            M8[R8_DIR, i] = S.DIR_OUT if pkttype == P.PACKET_OUTGOING else S.DIR_IN
        q = p + P.SLL2_HLEN
    elif code == lt.L2_RAW or code == lt.L2_IPV4 or code == lt.L2_IPV6:
        if cap < 1:
            M8[R8_STATUS, i] = S.MALFORMED
            return
        v = u8(b, p) >> 4
        if v == 4 and code != lt.L2_IPV6:
            et = P.ETH_P_IP
        elif v == 6 and code != lt.L2_IPV4:
            et = P.ETH_P_IPV6
        else:
            M8[R8_STATUS, i] = S.MALFORMED
            return
    elif code == lt.L2_NULL or code == lt.L2_LOOP:
        if cap < P.NULL_HLEN:
            M8[R8_STATUS, i] = S.MALFORMED
            return
        af = u32be(b, p)
        if code == lt.L2_NULL and af >= 65536:  # NULL: the writer's byte order
            af = u32le(b, p)
        if af == P.AF_INET:
            et = P.ETH_P_IP
        elif af in P.AF_INET6_VALUES:
            et = P.ETH_P_IPV6
        q = p + P.NULL_HLEN
    else:  # a link type we do not decode, or (-1) an interface the file never declared
        M8[R8_STATUS, i] = S.UNSUPPORTED if code >= 0 else S.MALFORMED
        return
    tags = 0
    while (
        et == P.ETH_P_8021Q or et == P.ETH_P_8021AD or et == P.ETH_P_QINQ1
    ) and tags < P.MAX_VLAN_TAGS:
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
    if et == P.ETH_P_ARP:
        M8[R8_STATUS, i] = S.NON_IP
        if (
            end - q >= P.ARP_ETH_IP_LEN
            and u16be(b, q) == P.ARPHRD_ETHER
            and u16be(b, q + 2) == P.ETH_P_IP
        ):
            M64[R64_ARPOP, i] = u16be(b, q + 6)
            U[U_IL4, i] = _mac(b, q + 8)
            U[U_SLO, i] = _V4MAP | np.uint64(u32be(b, q + 14))
            U[U_DLO, i] = _V4MAP | np.uint64(u32be(b, q + 24))
        return
    avail = end - q
    wire_ip = wire - (q - p)
    if et == P.ETH_P_IP:
        if avail < P.IPV4_MIN_HLEN or (u8(b, q) >> 4) != 4:
            M8[R8_STATUS, i] = S.MALFORMED
            return
        ihl = (u8(b, q) & 15) * 4
        if ihl < P.IPV4_MIN_HLEN or avail < ihl:
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
        fo = (ff & P.IP_OFFMASK) * 8
        mf = (ff >> P.IP_MF_SHIFT) & 1
        if ff & P.IP_DF:
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
    elif et == P.ETH_P_IPV6:
        if avail < P.IPV6_HLEN or (u8(b, q) >> 4) != 6:
            M8[R8_STATUS, i] = S.MALFORMED
            return
        flow = u32be(b, q) & 0xFFFFF
        plen = u16be(b, q + 4)
        offload = plen == 0 or P.IPV6_HLEN + plen > wire_ip
        ip_end = q + (wire_ip if offload else P.IPV6_HLEN + plen)
        M8[R8_VER, i] = 6
        M8[R8_TTL, i] = u8(b, q + 7)
        M32[R32_IPLEN, i] = P.IPV6_HLEN + plen
        M32[R32_FLOW, i] = flow
        U[U_SHI, i] = u64be(b, q + 8, 8)
        U[U_SLO, i] = u64be(b, q + 16, 8)
        U[U_DHI, i] = u64be(b, q + 24, 8)
        U[U_DLO, i] = u64be(b, q + 32, 8)
        proto, l4, ident, fo, mf = _walk_v6_ext(b, q + P.IPV6_HLEN, end, u8(b, q + 6))
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
        if _has_ports(proto) and have >= 4:
            M32[R32_SPORT, i] = u16be(b, l4)
            M32[R32_DPORT, i] = u16be(b, l4 + 2)
            if proto == P.IPPROTO_TCP and have > P.TCP_FLAGS_OFFSET:
                M16[R16_TCPF, i] = u8(b, l4 + P.TCP_FLAGS_OFFSET)
        elif (proto == P.IPPROTO_ICMP or proto == P.IPPROTO_ICMPV6) and have >= 2:
            t = u8(b, l4)
            M16[R16_ITYPE, i] = t
            M16[R16_ICODE, i] = u8(b, l4 + 1)
            if (
                proto == P.IPPROTO_ICMP
                and (
                    t == P.ICMP_DEST_UNREACH
                    or t == P.ICMP_SOURCE_QUENCH
                    or t == P.ICMP_REDIRECT
                    or t == P.ICMP_TIME_EXCEEDED
                    or t == P.ICMP_PARAMETERPROB
                )
            ) or (proto == P.IPPROTO_ICMPV6 and 1 <= t <= P.ICMP6_ERROR_MAX):
                _quoted(b, l4 + P.ICMP_HLEN, cend, M8, M16, M32, M64, U, i, k0, k1, w)
            elif (
                proto == P.IPPROTO_ICMPV6
                and (t == P.ND_NEIGHBOR_SOLICIT or t == P.ND_NEIGHBOR_ADVERT)
                and have >= P.ND_TARGET_OFFSET + 16
            ):
                U[U_IDHI, i] = u64be(b, l4 + P.ND_TARGET_OFFSET, 8)
                U[U_IDLO, i] = u64be(b, l4 + P.ND_TARGET_OFFSET + 8, 8)
            elif (
                proto == P.IPPROTO_ICMPV6
                and t == P.ND_REDIRECT
                and have >= P.ND_REDIRECT_DEST_OFFSET + 16
            ):
                U[U_IDHI, i] = u64be(b, l4 + P.ND_REDIRECT_DEST_OFFSET, 8)
                U[U_IDLO, i] = u64be(b, l4 + P.ND_REDIRECT_DEST_OFFSET + 8, 8)
        co, cw = _csum_span(proto)
    else:
        co, cw = -1, 0
    want = l4_len if l4_len < _PREFIX else _PREFIX
    take = have if have < want else want
    if take < want:
        M8[R8_FLAGS, i] |= S.F_SHORT_KEY
    U[U_L4H, i] = _words(
        w,
        b,
        ver,
        proto,
        mf,
        fo,
        lenfield,
        identw,
        flow,
        U[U_SHI, i],
        U[U_SLO, i],
        U[U_DHI, i],
        U[U_DLO, i],
        l4,
        take,
        want,
        co,
        cw,
    )
    n = N_WORDS
    if M8[R8_IVER, i] > 0:  # an error: which packet it is about tells errors apart
        w[n] = U[U_IDHI, i]
        w[n + 1] = U[U_IDLO, i]
        w[n + 2] = (np.uint64(M16[R16_IPROTO, i]) << np.uint64(32)) | (
            np.uint64(M64[R64_IIPID, i]) & np.uint64(0xFFFFFFFF)
        )
        w[n + 3] = U[U_IL4, i]
        w[n + 4] = U[U_IFP, i]
        n += ERROR_WORDS
    elif proto == P.IPPROTO_ICMPV6 and M16[R16_ITYPE, i] == P.ND_REDIRECT:
        w[n] = U[U_IDHI, i]  # the destination it redirects (0 when cut off)
        w[n + 1] = U[U_IDLO, i]
        n += REDIRECT_WORDS
    U[U_FP, i] = siphash13(k0, k1, w, n)


@njit_inline
def _record(M8, M16, M32, M64, U, j, t, iface, direction, cap, wire, rec):  # pragma: no cover
    """Row ``j`` before its packet is decoded: the defaults and the record's own fields.

    Why here and not by numpy: a broadcast fill of the defaults before the
    kernel, plus six copies of the record's fields, cost more than these
    stores (the decode stage of ``benchmarks/bench.py`` shows it).
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
    # an original length of 2**31 or more (a lie, but a header may say so) is stored
    # as its int32 bit pattern and read back as uint32; numba would wrap it the same way
    M32[R32_WIRELEN, j] = wire - ((wire >> 31) << 32)
    M64[R64_TIME, j] = t
    M64[R64_IFACE, j] = iface
    M64[R64_RECORD, j] = rec


@njit_plain
def decode_rows(
    b,
    off,
    cap,
    wire,
    t,
    iface,
    direction,
    rec0,
    icodes,
    k0,
    k1,  # pragma: no cover
    M8,
    M16,
    M32,
    M64,
    U,
    start,
    w,
):
    """Decode every record into typed rows ``start ..``, its own fields included.

    ``icodes``: link code (:mod:`.linktypes`) per interface index; a record
    whose interface is not in it gets -1 (malformed).  ``w``: scratch for
    the digest's words (no allocation here).
    """
    ni = icodes.shape[0]
    for i in range(off.shape[0]):
        j = np.uint64(start + i)
        k = iface[i]
        _record(M8, M16, M32, M64, U, j, t[i], k, direction[i], cap[i], wire[i], rec0 + i)
        code = icodes[k] if 0 <= k < ni else -1
        _decode_one(b, off[i], cap[i], wire[i], code, k0, k1, M8, M16, M32, M64, U, j, w)
