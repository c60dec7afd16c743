"""Reference decoder: dpkt-parsed headers, plain Python semantics.

The compiled kernel in :mod:`pcaploop.decode` is fast and hard to read; this
module restates the same decoding rules one layer at a time, with dpkt
parsing every header, so tests can demand that both produce identical raw
columns (docs/design.md fingerprint, :mod:`pcaploop.schema`).

dpkt's own packet classes decode greedily (Ethernet guesses ISL/MPLS/LLC,
IP decodes its payload, ICMP its quote) and reject truncated headers, so
the reference uses header-only dpkt classes built from dpkt's ``__hdr__``
layouts: each parses exactly one header and raises ``NeedData`` when it is
cut off; where a rule needs fewer bytes than a whole header (ports of a
truncated TCP header) a byte slice is read directly.

Dispatch is by table (:data:`L2_DECODERS`), keyed by the decoder codes of
:mod:`pcaploop.linktypes`.  :func:`reference_file` reads a capture with its
own small struct-based pcap/pcapng parser (dpkt's pcapng reader applies the
first interface to every packet) and returns what :func:`pcaploop.ingest.loader.load`
would, for one file.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dpkt
import dpkt.arp
import dpkt.ip
import dpkt.ip6
import dpkt.sll
import dpkt.tcp
import dpkt.udp
import numpy as np

from pcaploop import schema as S
from pcaploop.decode import linktypes as lt
from pcaploop.decode.fingerprint import RUN_KEY, fingerprint_of, fingerprint_words
from pcaploop.decode.protocols import AF_INET6_VALUES

Key = tuple[np.uint64, np.uint64]
_V4MAP = 0xFFFF00000000
_MAX_CAPLEN = 262144
_MAX_META_BLOCK = 1 << 20

#: keys of a decoded row besides the raw columns the record itself supplies
ROW_KEYS = [k for k in S.RAW if k not in ("time_ns", "point", "caplen", "wirelen", "record")]
EXTRA_KEYS = ["ifindex", "arp_op", "arp_sender_mac", "arp_sender_ip", "arp_target_ip"]


# --- header-only dpkt classes (dpkt layouts, no greedy payload decoding) ----
def _header_class(name: str, hdr: tuple, bits: dict | None = None) -> type:
    """A dpkt.Packet subclass that unpacks exactly one header ``hdr``."""
    body: dict = {"__hdr__": hdr}
    if bits:
        body["__bit_fields__"] = bits
    return type(name, (dpkt.Packet,), body)


EthHdr = _header_class("EthHdr", (("dst", "6s", b""), ("src", "6s", b""), ("type", "H", 0)))
VlanTag = _header_class("VlanTag", (("tci", "H", 0), ("type", "H", 0)))
SllHdr = _header_class("SllHdr", dpkt.sll.SLL.__hdr__)
Sll2Hdr = _header_class(
    "Sll2Hdr",
    (
        ("ethtype", "H", 0),
        ("mbz", "H", 0),
        ("intindex", "I", 0),
        ("hrd", "H", 0),
        ("type", "B", 0),
        ("hlen", "B", 0),
        ("hdr", "8s", b""),
    ),
)
IP4Hdr = _header_class("IP4Hdr", dpkt.ip.IP.__hdr__, dpkt.ip.IP.__bit_fields__)
IP6Hdr = _header_class("IP6Hdr", dpkt.ip6.IP6.__hdr__, dpkt.ip6.IP6.__bit_fields__)
IP6Frag = _header_class(
    "IP6Frag", dpkt.ip6.IP6FragmentHeader.__hdr__, dpkt.ip6.IP6FragmentHeader.__bit_fields__
)
ExtHdr = _header_class("ExtHdr", (("nxt", "B", 0), ("len", "B", 0)))
Ports = _header_class("Ports", dpkt.udp.UDP.__hdr__[:2])
IcmpHdr = _header_class("IcmpHdr", (("type", "B", 0), ("code", "B", 0)))
ArpHdr = _header_class("ArpHdr", dpkt.arp.ARP.__hdr__)
TcpHdr = _header_class("TcpHdr", dpkt.tcp.TCP.__hdr__, dpkt.tcp.TCP.__bit_fields__)


class Malformed(Exception):
    """The frame breaks a rule that makes the kernel mark it MALFORMED."""


class Unsupported(Exception):
    """The frame is of a kind the kernel marks UNSUPPORTED (encrypted 802.11, a PPI
    header naming a link type it does not decode)."""


def _parse(cls: type, buf: bytes):
    """Header ``cls`` at the start of ``buf``, or ``None`` when it is cut off."""
    try:
        return cls(buf)
    except dpkt.NeedData:
        return None


def _need(cls: type, buf: bytes):
    """Header ``cls`` at the start of ``buf``; :class:`Malformed` when cut off."""
    hdr = _parse(cls, buf)
    if hdr is None:
        raise Malformed(cls.__name__)
    return hdr


def _mac(raw: bytes) -> int:
    return int.from_bytes(raw[:6], "big")


def _v4(raw: bytes) -> tuple[int, int]:
    return 0, _V4MAP | int.from_bytes(raw, "big")


def _v6(raw: bytes) -> tuple[int, int]:
    v = int.from_bytes(raw, "big")
    return v >> 64, v & 0xFFFFFFFFFFFFFFFF


def blank_row() -> dict[str, int]:
    """A row with every field at its 'absent' value (as the kernel starts)."""
    row = dict.fromkeys(ROW_KEYS + EXTRA_KEYS, 0)
    for k in (
        "vlan",
        "inner_vlan",
        "ip_id",
        "sport",
        "dport",
        "tcp_flags",
        "icmp_type",
        "icmp_code",
        "inner_protocol",
        "inner_ip_id",
        "inner_ttl",
        "ifindex",
    ):
        row[k] = -1
    row["eth_src"] = row["eth_dst"] = int(S.NO_MAC)
    return row


def _pkt_direction(pkttype: int) -> int:
    """SLL/SLL2 packet type → direction: 4 outgoing, 0-3 incoming."""
    if pkttype == 4:
        return S.DIR_OUT
    return S.DIR_IN if pkttype <= 3 else S.DIR_UNKNOWN


# --- layer 2 ------------------------------------------------------------------
def _l2_ethernet(frame: bytes, row: dict) -> tuple[int, int]:
    """Ethernet II: MACs and the EtherType (VLAN tags follow generically)."""
    eth = _need(EthHdr, frame)
    row["eth_dst"], row["eth_src"] = _mac(eth.dst), _mac(eth.src)
    return eth.type, 14


def _l2_sll(frame: bytes, row: dict) -> tuple[int, int]:
    """Linux cooked v1: packet type gives the direction."""
    h = _need(SllHdr, frame)
    if h.hlen == 6:
        row["eth_src"] = _mac(h.hdr)
    row["direction"] = _pkt_direction(h.type)
    return h.ethtype, 16


def _l2_sll2(frame: bytes, row: dict) -> tuple[int, int]:
    """Linux cooked v2: interface index and packet type."""
    h = _need(Sll2Hdr, frame)
    row["ifindex"] = h.intindex
    if h.hlen == 6:
        row["eth_src"] = _mac(h.hdr)
    row["direction"] = _pkt_direction(h.type)
    return h.ethtype, 20


def _raw_ip(frame: bytes, allow: tuple[int, ...]) -> tuple[int, int]:
    """Bare IP: the version nibble picks the family among ``allow``."""
    if not frame:
        raise Malformed("empty")
    version = frame[0] >> 4
    if version not in allow:
        raise Malformed("version")
    return (0x0800 if version == 4 else 0x86DD), 0


def _l2_null(frame: bytes, row: dict, loop: bool = False) -> tuple[int, int]:
    """BSD NULL (writer's byte order) / LOOP (network order) address family."""
    if len(frame) < 4:
        raise Malformed("null")
    af = struct.unpack(">I", frame[:4])[0]
    if not loop and af >= 65536:
        af = struct.unpack("<I", frame[:4])[0]
    if af == 2:
        return 0x0800, 4
    if af in AF_INET6_VALUES:
        return 0x86DD, 4
    return -1, 4


def _l2_ppp(frame: bytes, row: dict) -> tuple[int, int]:
    """PPP (RFC 1661) with or without the HDLC-like address and control bytes (RFC 1662);
    LINKTYPE_PPP_HDLC may carry Cisco HDLC framing instead."""
    x = 0
    if frame[:2] == b"\xff\x03":
        x = 2
    elif len(frame) >= 4 and frame[0] in (0x0F, 0x8F):
        return struct.unpack(">H", frame[2:4])[0], 4
    if len(frame) - x < 1:
        raise Malformed("ppp")
    if frame[x] & 1:  # protocol field compression
        proto, x = frame[x], x + 1
    else:
        if len(frame) - x < 2:
            raise Malformed("ppp")
        proto, x = struct.unpack(">H", frame[x : x + 2])[0], x + 2
    return {0x0021: 0x0800, 0x0057: 0x86DD}.get(proto, -1), x


def _l2_chdlc(frame: bytes, row: dict) -> tuple[int, int]:
    """Cisco HDLC: address, control, EtherType."""
    if len(frame) < 4:
        raise Malformed("chdlc")
    return struct.unpack(">H", frame[2:4])[0], 4


def _l2_frelay(frame: bytes, row: dict) -> tuple[int, int]:
    """Frame Relay (RFC 2427): Q.922 address (2-4 octets, EA bit ends it), UI control,
    optional pad, NLPID (IPv4, IPv6, or SNAP with a zero OUI and an EtherType)."""
    x = 0
    for _ in range(4):
        if x >= len(frame):
            raise Malformed("fr address")
        last = frame[x] & 1
        x += 1
        if last:
            break
    else:
        raise Malformed("fr address")
    if x < 2:
        raise Malformed("fr address")
    if len(frame) - x < 2 or frame[x] != 0x03:
        return -1, x
    x += 1
    if frame[x] == 0x00:
        x += 1
        if len(frame) - x < 1:
            raise Malformed("fr pad")
    nlpid, x = frame[x], x + 1
    if nlpid == 0xCC:
        return 0x0800, x
    if nlpid == 0x8E:
        return 0x86DD, x
    if nlpid == 0x80:
        if len(frame) - x < 5:
            raise Malformed("fr snap")
        if frame[x : x + 3] != b"\0\0\0":
            return -1, x
        return struct.unpack(">H", frame[x + 3 : x + 5])[0], x + 5
    return -1, x


def _l2_80211(frame: bytes, row: dict, s: int = 0) -> tuple[int, int]:
    """IEEE 802.11 data frame at ``s``, with LLC/SNAP; addresses by the DS bits."""
    if len(frame) - s < 24:
        raise Malformed("80211")
    fc0, fc1 = frame[s], frame[s + 1]
    subtype = fc0 >> 4
    if (fc0 >> 2) & 3 != 2 or subtype & 0x4:
        return -1, s
    if fc1 & 0x40:
        raise Unsupported("encrypted")
    ds = fc1 & 3
    hl = 24 + (6 if ds == 3 else 0)
    if subtype & 0x8:
        hl += 2 + (4 if fc1 & 0x80 else 0)
    if len(frame) - s < hl + 8:
        raise Malformed("80211 header")
    da, sa = {0: (4, 10), 1: (16, 10), 2: (4, 16), 3: (16, 24)}[ds]
    row["eth_dst"] = _mac(frame[s + da : s + da + 6])
    row["eth_src"] = _mac(frame[s + sa : s + sa + 6])
    llc = frame[s + hl : s + hl + 8]
    if llc[:6] != b"\xaa\xaa\x03\0\0\0":
        return -1, s + hl
    return struct.unpack(">H", llc[6:8])[0], s + hl + 8


def _l2_radiotap(frame: bytes, row: dict, ppi: bool = False) -> tuple[int, int]:
    """A radiotap (or PPI) header whose little-endian length is at offset 2; then 802.11
    (PPI: the link type it names, 802.11 or Ethernet)."""
    if len(frame) < 8:
        raise Malformed("radiotap")
    hl = struct.unpack("<H", frame[2:4])[0]
    if hl < 8 or hl > len(frame) or frame[0] != 0:
        raise Malformed("radiotap length")
    if ppi:
        dlt = struct.unpack("<I", frame[4:8])[0]
        if dlt == 1:
            et, q = _l2_ethernet(frame[hl:], row)
            return et, hl + q
        if dlt != 105:
            raise Unsupported("ppi dlt")
    return _l2_80211(frame, row, hl)


L2Decoder = Callable[[bytes, dict], tuple[int, int]]

#: decoder code (linktypes.L2_*) → layer-2 function returning (ethertype, offset)
L2_DECODERS: dict[int, L2Decoder] = {
    lt.L2_ETHERNET: _l2_ethernet,
    lt.L2_SLL: _l2_sll,
    lt.L2_SLL2: _l2_sll2,
    lt.L2_RAW: lambda f, r: _raw_ip(f, (4, 6)),
    lt.L2_IPV4: lambda f, r: _raw_ip(f, (4,)),
    lt.L2_IPV6: lambda f, r: _raw_ip(f, (6,)),
    lt.L2_NULL: _l2_null,
    lt.L2_LOOP: lambda f, r: _l2_null(f, r, loop=True),
    lt.L2_PPP: _l2_ppp,
    lt.L2_CHDLC: _l2_chdlc,
    lt.L2_FRELAY: _l2_frelay,
    lt.L2_IEEE80211: _l2_80211,
    lt.L2_RADIOTAP: _l2_radiotap,
    lt.L2_PPI: lambda f, r: _l2_radiotap(f, r, ppi=True),
}


def _vlan_tags(frame: bytes, et: int, q: int, row: dict) -> tuple[int, int]:
    """Strip up to four 802.1Q/802.1ad tags, keeping the outer two ids."""
    tags = 0
    while et in (0x8100, 0x88A8, 0x9100) and tags < 4:
        tag = _need(VlanTag, frame[q:])
        if tags < 2:
            row["vlan" if tags == 0 else "inner_vlan"] = tag.tci & 0xFFF
        et, q, tags = tag.type, q + 4, tags + 1
    return et, q


def _arp(data: bytes, row: dict) -> None:
    """ARP for IPv4 over Ethernet: opcode, sender MAC/IP, target IP."""
    a = _parse(ArpHdr, data)
    if a is None or a.hrd != 1 or a.pro != 0x0800:
        return
    row["arp_op"] = a.op
    row["arp_sender_mac"] = _mac(a.sha)
    row["arp_sender_ip"] = int.from_bytes(a.spa, "big")
    row["arp_target_ip"] = int.from_bytes(a.tpa, "big")


# --- layer 3 ------------------------------------------------------------------
@dataclass
class L3:
    """What the IP layer tells the fingerprint and the L4 decoder."""

    version: int
    proto: int
    l4: int  # offset of the upper-layer header in the frame
    ip_end: int  # end of the IP packet per its header (or the wire) in frame offsets
    frag_offset: int
    mf: int
    len_field: int
    ident: int
    flow: int = 0


def _ipv4(frame: bytes, q: int, wire_ip: int, row: dict) -> L3:
    """IPv4 header: addresses, TTL, ID, fragment fields, offload detection."""
    h = _parse(IP4Hdr, frame[q:])
    if h is None or h.v != 4:
        raise Malformed("ipv4")
    ihl = h.hl * 4
    if ihl < 20 or len(frame) - q < ihl:
        raise Malformed("ihl")
    offload = h.len == 0 or h.len > wire_ip
    if not offload and h.len < ihl:
        raise Malformed("total length")
    row.update(ip_version=4, ttl=h.ttl, ip_id=h.id, ip_len=h.len, protocol=h.p)
    row["src_hi"], row["src_lo"] = _v4(h.src)
    row["dst_hi"], row["dst_lo"] = _v4(h.dst)
    row["flags"] |= (S.F_DF if h.df else 0) | (S.F_OFFLOAD if offload else 0)
    return L3(4, h.p, q + ihl, q + (wire_ip if offload else h.len), h.offset * 8, h.mf, h.len, h.id)


def walk_ext_headers(frame: bytes, h: int, end: int, nh: int) -> tuple[int, int, int, int, int]:
    """IPv6 extension headers, at most 8 → (protocol, offset, frag id, frag offset, MF).

    Hop-by-hop, routing, destination options, mobility, HIP, shim6 and AH are
    skipped by their length; a fragment header gives id/offset/MF and, if not
    the first fragment, ends the walk.  A header cut off by the captured
    bytes ends the walk with its own number as the protocol.
    """
    ident, fo, mf = -1, 0, 0
    for _ in range(8):
        if nh in (0, 43, 60, 135, 139, 140, 51):
            ext = _parse(ExtHdr, frame[h:end])
            if ext is None:
                break
            length = (ext.len + 2) * 4 if nh == 51 else (ext.len + 1) * 8
            nh, h = ext.nxt, h + length
        elif nh == 44:
            frag = _parse(IP6Frag, frame[h:end])
            if frag is None:
                break
            fo, mf, ident = frag.frag_off * 8, frag.m_flag, frag.id
            nh, h = frag.nxt, h + 8
            if fo:
                break
        else:
            break
    return nh, h, ident, fo, mf


def _ipv6(frame: bytes, q: int, wire_ip: int, row: dict) -> L3:
    """IPv6 header plus extension headers; the fragment header's id is the IP ID."""
    h = _parse(IP6Hdr, frame[q:])
    if h is None or h.v != 6:
        raise Malformed("ipv6")
    offload = h.plen == 0 or 40 + h.plen > wire_ip
    proto, l4, ident, fo, mf = walk_ext_headers(frame, q + 40, len(frame), h.nxt)
    row.update(
        ip_version=6, ttl=h.hlim, ip_len=40 + h.plen, flow_label=h.flow, protocol=proto, ip_id=ident
    )
    row["src_hi"], row["src_lo"] = _v6(h.src)
    row["dst_hi"], row["dst_lo"] = _v6(h.dst)
    row["flags"] |= S.F_OFFLOAD if offload else 0
    return L3(
        6,
        proto,
        l4,
        q + (wire_ip if offload else 40 + h.plen),
        fo,
        mf,
        h.plen,
        max(ident, 0),
        h.flow,
    )


# --- layer 4 ------------------------------------------------------------------
_CSUM = {6: (16, 2), 17: (6, 2), 136: (6, 2), 1: (2, 2), 58: (2, 2), 132: (8, 4)}


def zero_checksum(data: bytes, proto: int, first: bool) -> bytes:
    """``data`` (the start of an L4 header) with the protocol's checksum zeroed."""
    off, width = _CSUM.get(proto, (-1, 0)) if first else (-1, 0)
    if off < 0 or off >= len(data):
        return data
    return data[:off] + bytes(min(width, len(data) - off)) + data[off + width :]


def _word(data: bytes) -> int:
    """First 8 bytes as a big-endian integer, zero-padded on the right."""
    return int.from_bytes(data[:8].ljust(8, b"\0"), "big")


def _quoted(frame: bytes, ip2: int, end: int, row: dict, key: Key) -> None:
    """The packet an ICMP error quotes: inner addresses, protocol, ID, TTL, 8 L4 bytes,
    and its own fingerprint when the quote holds its whole 24-byte prefix."""
    data = frame[ip2:end] if ip2 <= end else b""
    if len(data) < 20:
        return
    if data[0] >> 4 == 4:
        h = IP4Hdr(data)
        if h.hl * 4 < 20 or len(data) < h.hl * 4:
            return
        row.update(inner_version=4, inner_protocol=h.p, inner_ttl=h.ttl, inner_ip_id=h.id)
        row["inner_src_hi"], row["inner_src_lo"] = _v4(h.src)
        row["inner_dst_hi"], row["inner_dst_lo"] = _v4(h.dst)
        proto, l4, first = h.p, ip2 + h.hl * 4, h.offset == 0
        inner = L3(4, h.p, l4, ip2 + h.len, h.offset * 8, h.mf, h.len, h.id)
    elif data[0] >> 4 == 6:
        h = _parse(IP6Hdr, data)
        if h is None:
            return
        proto, l4, ident, fo, mf = walk_ext_headers(frame, ip2 + 40, end, h.nxt)
        row.update(inner_version=6, inner_protocol=proto, inner_ttl=h.hlim, inner_ip_id=ident)
        row["inner_src_hi"], row["inner_src_lo"] = _v6(h.src)
        row["inner_dst_hi"], row["inner_dst_lo"] = _v6(h.dst)
        first = fo == 0
        inner = L3(6, proto, l4, ip2 + 40 + h.plen, fo, mf, h.plen, max(ident, 0), h.flow)
    else:
        return
    head = frame[l4:end][:8] if l4 < end else b""
    if len(head) < 8:
        row["flags"] |= S.F_INNER_SHORT
    row["inner_l4"] = _word(zero_checksum(head, proto, first))
    want = min(max(inner.ip_end - inner.l4, 0), S.PREFIX_LEN)
    quoted = frame[l4:end] if l4 < end else b""
    if len(quoted) >= want:
        prefix = zero_checksum(quoted[:want], proto, first)
        addrs = (
            (row["inner_src_hi"], row["inner_src_lo"]),
            (row["inner_dst_hi"], row["inner_dst_lo"]),
        )
        row["inner_fingerprint"] = fingerprint_of(_words(inner, addrs, prefix, False), key)


def _icmp(frame: bytes, l3: L3, cend: int, have: bytes, row: dict, key: Key) -> None:
    """ICMP/ICMPv6 type, code, quoted packet of errors, NDP target in inner_dst."""
    ic = _parse(IcmpHdr, have)
    if ic is None:
        return
    row["icmp_type"], row["icmp_code"] = ic.type, ic.code
    if (l3.proto == 1 and ic.type in (3, 4, 5, 11, 12)) or (l3.proto == 58 and 1 <= ic.type <= 4):
        _quoted(frame, l3.l4 + 8, cend, row, key)
    elif l3.proto == 58 and ic.type in (135, 136) and len(have) >= 24:
        row["inner_dst_hi"], row["inner_dst_lo"] = _v6(have[8:24])
    elif l3.proto == 58 and ic.type == 137 and len(have) >= 40:  # redirect: the destination
        row["inner_dst_hi"], row["inner_dst_lo"] = _v6(have[24:40])


def _l4(frame: bytes, l3: L3, row: dict, key: Key) -> bytes:
    """Ports / TCP flags / ICMP fields; returns the L4 bytes present in the frame."""
    cend = min(l3.ip_end, len(frame))
    have = frame[l3.l4 : cend] if l3.l4 < cend else b""
    if l3.frag_offset:
        return have
    if l3.proto in (6, 17, 136, 132):
        ports = _parse(Ports, have)
        if ports is not None:
            row["sport"], row["dport"] = ports.sport, ports.dport
            if l3.proto == 6 and len(have) >= 14:
                tcp = _parse(TcpHdr, have)
                row["tcp_flags"] = tcp.flags & 0xFF if tcp is not None else have[13]
    elif l3.proto in (1, 58):
        _icmp(frame, l3, cend, have, row, key)
    return have


def _fingerprint(l3: L3, have: bytes, row: dict, key: Key) -> None:
    """The 24-byte prefix (bounded by IP length and captured bytes), l4_head, hash."""
    want = min(max(l3.ip_end - l3.l4, 0), S.PREFIX_LEN)
    prefix = zero_checksum(have[:want], l3.proto, l3.frag_offset == 0)
    short = len(prefix) < want
    if short:
        row["flags"] |= S.F_SHORT_KEY
    row["l4_head"] = _word(prefix)
    extra: tuple[int, ...] = ()
    if row["inner_version"]:  # an ICMP error: the packet it is about tells errors apart
        extra = (
            row["inner_dst_hi"],
            row["inner_dst_lo"],
            (row["inner_protocol"] << 32) | (row["inner_ip_id"] & 0xFFFFFFFF),
            row["inner_l4"],
            row["inner_fingerprint"],
        )
    elif l3.proto == 58 and row["icmp_type"] == 137:  # a redirect: its destination
        extra = (row["inner_dst_hi"], row["inner_dst_lo"])
    addrs = ((row["src_hi"], row["src_lo"]), (row["dst_hi"], row["dst_lo"]))
    row["fingerprint"] = fingerprint_of(_words(l3, addrs, prefix, short, extra), key)


def _words(
    l3: L3,
    addrs: tuple[tuple[int, int], tuple[int, int]],
    prefix: bytes,
    short: bool,
    extra: tuple[int, ...] = (),
) -> np.ndarray:
    return fingerprint_words(
        l3.version,
        l3.proto,
        (l3.mf << 13) | (l3.frag_offset >> 3),
        l3.len_field,
        l3.ident,
        l3.flow,
        addrs[0],
        addrs[1],
        prefix,
        short,
        extra,
    )


def reference_decode(
    linktype: int, frame: bytes, wirelen: int, key: Key = RUN_KEY
) -> tuple[int, dict[str, int]]:
    """Decode one frame the way the kernel does → (status, row).

    ``row`` holds every raw column the frame determines (:data:`ROW_KEYS`)
    plus ``ifindex`` (SLL2) and the ARP fields (:data:`EXTRA_KEYS`).
    """
    row = blank_row()
    frame = bytes(frame)
    if len(frame) < wirelen:
        row["flags"] |= S.F_TRUNCATED
    l2 = L2_DECODERS.get(lt.l2_code(linktype))
    if l2 is None:
        return S.UNSUPPORTED, row
    try:
        et, q = l2(frame, row)
        et, q = _vlan_tags(frame, et, q, row)
        if et == 0x0806:
            _arp(frame[q:], row)
            return S.NON_IP, row
        if et not in (0x0800, 0x86DD):
            return S.NON_IP, row
        l3 = (_ipv4 if et == 0x0800 else _ipv6)(frame, q, wirelen - q, row)
    except Malformed:
        return S.MALFORMED, row
    except Unsupported:
        return S.UNSUPPORTED, row
    row["frag_offset"] = l3.frag_offset
    row["flags"] |= S.F_MF if l3.mf else 0
    have = _l4(frame, l3, row, key)
    _fingerprint(l3, have, row, key)
    return S.OK, row


# --- the kernel, seen through the same row shape --------------------------------
def kernel_decode(
    linktype: int, frame: bytes, wirelen: int, key: Key = RUN_KEY
) -> tuple[int, dict[str, int]]:
    """One frame through the compiled kernel (:func:`pcaploop.decode.batch.decode_frames`),
    as (status, row)."""
    from pcaploop.decode.batch import decode_frames

    f = {
        k: v[0]
        for k, v in decode_frames([bytes(frame)], [lt.l2_code(linktype)], key, [wirelen]).items()
    }
    row = {k: f[k] for k in ROW_KEYS}
    row["ifindex"], row["arp_op"] = f["ifindex"], f["arp_op"]
    arp = f["arp_op"] > 0
    row["arp_sender_mac"] = f["inner_l4"] if arp else 0
    row["arp_sender_ip"] = (int(f["src_lo"]) & 0xFFFFFFFF) if arp else 0
    row["arp_target_ip"] = (int(f["dst_lo"]) & 0xFFFFFFFF) if arp else 0
    return int(f["status"]), {k: int(v) for k, v in row.items()}


def comparable(status: int, row: dict[str, int]) -> tuple[int, dict[str, int]]:
    """The part of a decode result that reaches the output for its status.

    OK rows become raw columns (flags narrowed to the uint8 column);
    skipped rows only contribute their SLL2 ifindex (capture point) and,
    for ARP, the ARP fields.
    """
    if status == S.OK:
        out = {k: row[k] for k in ROW_KEYS}
        out["ifindex"] = row["ifindex"]
        return status, out
    keys = ["ifindex"] + (EXTRA_KEYS[1:] + ["eth_src"] if row["arp_op"] > 0 else [])
    return status, {k: row[k] for k in keys}


# --- whole files ------------------------------------------------------------------
@dataclass
class RefInterface:
    """One interface of a capture as the reference reader sees it."""

    linktype: int
    snaplen: int
    name: str | None = None
    units: int = 1_000_000
    offset_s: int = 0


@dataclass
class RefRecord:
    """One packet record: frame bytes (snaplen-truncated) and its metadata."""

    time_ns: int
    iface: int  # index into RefCapture.interfaces, -1 when it names none
    frame: bytes
    wirelen: int
    direction: int


@dataclass
class RefCapture:
    """Everything the reference reader got from one file."""

    format: str
    interfaces: list[RefInterface] = field(default_factory=list)
    records: list[RefRecord] = field(default_factory=list)
    truncated_tail: bool = False


def _snap(snaplen: int) -> int:
    return snaplen if 0 < snaplen <= _MAX_CAPLEN else _MAX_CAPLEN


def _ts_ns(raw: int, itf: RefInterface) -> int:
    """Exact ns from raw units: floor(raw * 1e9 / units) plus the offset."""
    return (raw * 1_000_000_000) // itf.units + itf.offset_s * 1_000_000_000


def _read_pcap(data: bytes) -> RefCapture:
    """Classic pcap: header, then records until the end or the first damage."""
    magic = data[:4]
    big = magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d")
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    e = ">" if big else "<"
    snap, link = struct.unpack(e + "II", data[16:24])
    cap = RefCapture("pcap", [RefInterface(link & 0xFFFF, _snap(snap))])
    pos = 24
    while pos < len(data):
        if len(data) - pos < 16:
            cap.truncated_tail = True
            break
        sec, frac, incl, orig = struct.unpack(e + "IIII", data[pos : pos + 16])
        if incl > _MAX_CAPLEN or len(data) - pos - 16 < incl:
            cap.truncated_tail = True
            break
        frame = data[pos + 16 : pos + 16 + min(incl, cap.interfaces[0].snaplen)]
        cap.records.append(RefRecord(sec * 10**9 + frac * (1 if nano else 1000), 0, frame, orig, 0))
        pos += 16 + incl
    return cap


def _options(body: bytes, e: str) -> Iterator[tuple[int, bytes]]:
    """pcapng options (code, value) until opt_endofopt or the end."""
    p = 0
    while len(body) - p >= 4:
        code, olen = struct.unpack(e + "HH", body[p : p + 4])
        if code == 0 or p + 4 + olen > len(body):
            return
        yield code, body[p + 4 : p + 4 + olen]
        p += 4 + ((olen + 3) & ~3)


def _idb(body: bytes, e: str) -> RefInterface:
    """Interface Description Block → link type, snaplen, name, resolution, offset."""
    if len(body) < 8:
        return RefInterface(-1, _MAX_CAPLEN)
    link, _, snap = struct.unpack(e + "HHI", body[:8])
    itf = RefInterface(link, _snap(snap))
    for code, val in _options(body[8:], e):
        if code == 2:
            itf.name = val.split(b"\0", 1)[0].decode("utf-8", "replace")
        elif code == 9 and val:
            exp = val[0] & 0x7F
            if exp <= (62 if val[0] & 0x80 else 18):
                itf.units = 2**exp if val[0] & 0x80 else 10**exp
        elif code == 14 and len(val) == 8:
            offset = struct.unpack(e + "q", val)[0]
            itf.offset_s = offset if abs(offset) < (1 << 32) else 0
    return itf


def _epb_dir(opts: bytes, e: str) -> int:
    """Direction from epb_flags (inbound 1 / outbound 2; 0 and 3 unknown)."""
    for code, val in _options(opts, e):
        if code == 2:
            d = struct.unpack(e + "I", val)[0] & 3 if len(val) == 4 else 0
            return d if d in (1, 2) else 0
    return 0


def _read_pcapng(data: bytes) -> RefCapture:
    """pcapng: sections, interfaces (numbered across sections), EPB/SPB/PB."""
    cap = RefCapture("pcapng")
    pos, e, base, last_ts = 0, "<", 0, 0
    while pos < len(data):
        if len(data) - pos < 12:
            cap.truncated_tail = True
            break
        if data[pos : pos + 4] == b"\x0a\x0d\x0d\x0a":
            e = ">" if data[pos + 8 : pos + 12] == b"\x1a\x2b\x3c\x4d" else "<"
            base = len(cap.interfaces)
        btype, blen = struct.unpack(e + "II", data[pos : pos + 8])
        packet = btype in (2, 3, 6)
        limit = _MAX_CAPLEN + 65536 if packet else _MAX_META_BLOCK
        if (
            blen < (16 if packet else 12)
            or blen % 4
            or blen > limit
            or len(data) - pos < blen
            or struct.unpack(e + "I", data[pos + blen - 4 : pos + blen])[0] != blen
        ):
            cap.truncated_tail = True
            break
        body = data[pos + 8 : pos + blen - 4]
        if btype == 1:
            cap.interfaces.append(_idb(body, e))
        elif packet:
            rec = _packet_block(btype, body, e, cap, base, last_ts)
            if rec is None:
                cap.truncated_tail = True
                break
            cap.records.append(rec)
            last_ts = rec.time_ns
        pos += blen
    return cap


def _packet_block(
    btype: int, body: bytes, e: str, cap: RefCapture, base: int, last_ts: int
) -> RefRecord | None:
    """EPB / SPB / obsolete PB → record (``None`` for a corrupt block)."""
    nif = len(cap.interfaces) - base
    if btype == 3:
        orig = struct.unpack(e + "I", body[:4])[0]
        local, frame, direction = 0, body[4 : 4 + min(orig, len(body) - 4)], 0
    else:
        if len(body) < 20:
            return None
        if btype == 6:
            local, hi, lo, incl, orig = struct.unpack(e + "IIIII", body[:20])
        else:
            local, _, hi, lo, incl, orig = struct.unpack(e + "HHIIII", body[:20])
        if incl > len(body) - 20 or incl > _MAX_CAPLEN:
            return None
        frame = body[20 : 20 + incl]
        direction = _epb_dir(body[20 + ((incl + 3) & ~3) :], e) if btype == 6 else 0
    iface = base + local if 0 <= local < nif else -1
    if iface < 0:
        return RefRecord(0, -1, frame, orig, direction)
    itf = cap.interfaces[iface]
    frame = frame[: itf.snaplen]
    t = last_ts if btype == 3 else _ts_ns((hi << 32) | lo, itf)
    return RefRecord(t, iface, frame, orig, direction)


def read_reference(path: str | Path) -> RefCapture:
    """Read a (possibly gzip'd) pcap or pcapng file wholly into memory."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if raw[:4] == b"\x0a\x0d\x0d\x0a":
        return _read_pcapng(raw)
    return _read_pcap(raw)


def _point_key(cap: RefCapture, rec: RefRecord, row: dict) -> tuple[int, int]:
    """(interface, SLL2 ifindex) identifying a record's capture point; -1 where absent."""
    if not cap.interfaces:
        return -1, -1
    k = max(rec.iface, 0)
    if cap.interfaces[k].linktype == 276 and row["ifindex"] >= 0:
        return k, row["ifindex"]
    return k, -1


def _point_names(
    cap: RefCapture, keys: set[tuple[int, int]], base: str, stem: str, ifmap: dict[int, str]
) -> dict[tuple[int, int], str]:
    """Names of the capture points, by load()'s rules (collisions → ``name@stem``)."""
    taken: set[str] = set()
    out = {}
    for k, ifindex in sorted(keys):
        itf = cap.interfaces[k] if k >= 0 else None
        if ifindex >= 0:
            name = ifmap.get(ifindex) or f"{base}:if{ifindex}"
        elif cap.format == "pcap" or itf is None:
            name = base
        elif itf.name:
            name = itf.name
        else:
            name = base if len(cap.interfaces) == 1 else f"{base}:{k}"
        unique, n = name, 2
        if unique in taken:
            unique = f"{name}@{stem}"
            while unique in taken:
                unique, n = f"{name}@{stem}#{n}", n + 1
        taken.add(unique)
        out[(k, ifindex)] = unique
    return out


def reference_file(
    path: str | Path,
    name: str,
    key: Key = RUN_KEY,
    ifmap: dict[int, str] | None = None,
    stem: str | None = None,
) -> dict:
    """Decode a whole file with the reference decoder, as ``load()`` would.

    Returns ``{"cols": raw columns of the OK rows in record order (``point``
    left 0), "point_names": name per OK row, "accounting": {point name:
    (records, decoded, non_ip, malformed, unsupported)}, "arp": ARP rows
    (time, point name, op, sender MAC, sender IP, target IP, Ethernet source),
    "truncated_tail": bool}``.  ``stem`` (for name collisions) defaults to
    the file name's stem.
    """
    cap = read_reference(path)
    from pcaploop.ingest.specs import CaptureSpec

    stem = stem or CaptureSpec(str(path)).stem
    decoded = []
    for rec in cap.records:
        itf = cap.interfaces[rec.iface] if rec.iface >= 0 else None
        status, row = reference_decode(itf.linktype if itf else -1, rec.frame, rec.wirelen, key)
        decoded.append((S.MALFORMED if itf is None else status, row, _point_key(cap, rec, row)))
    names = _point_names(cap, {d[2] for d in decoded}, name, stem, ifmap or {})
    rows, row_names, acct, arp = [], [], {}, []
    for n, (rec, (status, row, pkey)) in enumerate(zip(cap.records, decoded)):
        pname = names[pkey]
        counts = acct.setdefault(pname, [0, 0, 0, 0, 0])
        counts[0] += 1
        counts[1 + status] += 1
        if status == S.OK:
            row.update(
                time_ns=rec.time_ns,
                caplen=len(rec.frame),
                wirelen=rec.wirelen,
                record=n,
                direction=row["direction"] or rec.direction,
            )
            rows.append(row)
            row_names.append(pname)
        elif row["arp_op"] > 0:
            arp.append(
                (
                    rec.time_ns,
                    pname,
                    row["arp_op"],
                    row["arp_sender_mac"],
                    row["arp_sender_ip"],
                    row["arp_target_ip"],
                    row["eth_src"],
                )
            )
    cols = {k: np.array([r.get(k, 0) for r in rows], dtype=dt) for k, dt in S.RAW.items()}
    return {
        "cols": cols,
        "point_names": row_names,
        "arp": arp,
        "accounting": {k: tuple(v) for k, v in acct.items()},
        "truncated_tail": cap.truncated_tail,
    }
