"""Capture files written for the tests: every format, link type and damage.

Packets are built with dpkt; classic pcap files are written with
``dpkt.pcap.Writer`` (big-endian through a subclass, exact caplen/wirelen
through its header packer); pcapng is written block by block with struct,
because dpkt's pcapng writer knows one interface only.  Addresses are all
from the documentation ranges (docs/design.md, *Addresses*).

Each ``make_*`` function takes a directory and returns the path it wrote;
:data:`VALID` lists the intact captures, :data:`DAMAGED` the broken ones.
"""

from __future__ import annotations

import gzip
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dpkt
import dpkt.arp
import dpkt.ethernet
import dpkt.icmp
import dpkt.icmp6
import dpkt.ip
import dpkt.ip6
import dpkt.pcap
import dpkt.tcp
import dpkt.udp

T0 = 1_700_000_000 * 10**9  # ns; 2023-11-14
MAC_A = bytes.fromhex("020000000a01")
MAC_B = bytes.fromhex("020000000b02")

SRC4, DST4, HOST4, GUEST4 = "198.51.100.9", "203.0.113.7", "192.0.2.1", "192.0.2.101"
SRC6, DST6, HOST6 = "2001:db8:1::9", "2001:db8:2::7", "2001:db8::1"


# --- packets (IP level) -------------------------------------------------------
def a4(text: str) -> bytes:
    return socket.inet_aton(text)


def a6(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6, text)


def udp4(
    src: str = SRC4,
    dst: str = DST4,
    ttl: int = 64,
    ident: int = 0x1234,
    payload: bytes = b"pcaploop test payload 0123456789",
    sport: int = 40000,
    dport: int = 53,
    df: bool = False,
) -> bytes:
    """IPv4/UDP with valid checksums."""
    ip = dpkt.ip.IP(
        src=a4(src),
        dst=a4(dst),
        ttl=ttl,
        id=ident,
        p=17,
        df=int(df),
        data=dpkt.udp.UDP(sport=sport, dport=dport, data=payload),
    )
    ip.data.ulen = 8 + len(payload)
    ip.len = 20 + 8 + len(payload)
    return bytes(ip)


def tcp4(
    src: str = SRC4,
    dst: str = DST4,
    ttl: int = 64,
    ident: int = 0x2345,
    payload: bytes = b"GET / HTTP/1.0\r\n\r\n",
    flags: int = dpkt.tcp.TH_PUSH | dpkt.tcp.TH_ACK,
    df: bool = True,
) -> bytes:
    """IPv4/TCP with valid checksums."""
    tcp = dpkt.tcp.TCP(sport=41000, dport=80, seq=1000, ack=2000, flags=flags, data=payload)
    ip = dpkt.ip.IP(src=a4(src), dst=a4(dst), ttl=ttl, id=ident, p=6, df=int(df), data=tcp)
    ip.len = 20 + len(bytes(tcp))
    return bytes(ip)


def echo4(
    src: str = SRC4, dst: str = DST4, ttl: int = 64, ident: int = 0x3456, seq: int = 1
) -> bytes:
    """IPv4 ICMP echo request."""
    icmp = dpkt.icmp.ICMP(type=8, code=0, data=dpkt.icmp.ICMP.Echo(id=7, seq=seq, data=b"ping" * 8))
    ip = dpkt.ip.IP(src=a4(src), dst=a4(dst), ttl=ttl, id=ident, p=1, data=icmp)
    ip.len = 20 + len(bytes(icmp))
    return bytes(ip)


def icmp4_error(
    quoted: bytes,
    icmp_type: int = 11,
    code: int = 0,
    src: str = GUEST4,
    dst: str = SRC4,
    ttl: int = 64,
    ident: int = 0x4567,
    keep: int = 28,
) -> bytes:
    """ICMP time-exceeded (11) / destination-unreachable (3) quoting ``quoted[:keep]``."""
    body = (dpkt.icmp.ICMP.TimeExceed if icmp_type == 11 else dpkt.icmp.ICMP.Unreach)()
    body.data = quoted[:keep]
    icmp = dpkt.icmp.ICMP(type=icmp_type, code=code, data=body)
    ip = dpkt.ip.IP(src=a4(src), dst=a4(dst), ttl=ttl, id=ident, p=1, data=icmp)
    ip.len = 20 + len(bytes(icmp))
    return bytes(ip)


def frag4(payload: bytes = bytes(range(64)), ident: int = 0x5678, ttl: int = 64) -> list[bytes]:
    """An IPv4/UDP datagram cut into two fragments (offsets 0 and 24 bytes)."""
    whole = udp4(ident=ident, ttl=ttl, payload=payload)
    l4 = whole[20:]
    out = []
    for off, chunk, mf in ((0, l4[:24], 1), (24, l4[24:], 0)):
        ip = dpkt.ip.IP(
            src=a4(SRC4), dst=a4(DST4), ttl=ttl, id=ident, p=17, mf=mf, offset=off // 8, data=chunk
        )
        ip.len = 20 + len(chunk)
        out.append(bytes(ip))
    return out


def _ip6(
    nxt: int, data: bytes, src: str = SRC6, dst: str = DST6, hlim: int = 64, flow: int = 0x12345
) -> bytes:
    """IPv6 header (fields set directly) followed by ``data``."""
    hdr = struct.pack(">IHBB16s16s", (6 << 28) | flow, len(data), nxt, hlim, a6(src), a6(dst))
    return hdr + data


def _l4_csum6(src: str, dst: str, proto: int, seg: bytes, csum_off: int) -> bytes:
    """Fill in the IPv6 pseudo-header checksum of ``seg`` at ``csum_off``."""
    pseudo = a6(src) + a6(dst) + struct.pack(">IxxxB", len(seg), proto)
    s = dpkt.in_cksum(pseudo + seg[:csum_off] + b"\0\0" + seg[csum_off + 2 :])
    return seg[:csum_off] + struct.pack(">H", s) + seg[csum_off + 2 :]


def udp6(
    src: str = SRC6,
    dst: str = DST6,
    hlim: int = 64,
    payload: bytes = b"pcaploop ipv6 payload 0123456789",
    ext: bytes = b"",
    first_nxt: int = 17,
) -> bytes:
    """IPv6/UDP, optionally behind extension headers ``ext`` (first one ``first_nxt``)."""
    seg = struct.pack(">HHHH", 40001, 53, 8 + len(payload), 0) + payload
    seg = _l4_csum6(src, dst, 17, seg, 6)
    return _ip6(first_nxt if ext else 17, ext + seg, src, dst, hlim)


def tcp6(hlim: int = 64) -> bytes:
    """IPv6/TCP SYN."""
    seg = bytes(dpkt.tcp.TCP(sport=41001, dport=443, seq=1, flags=dpkt.tcp.TH_SYN))
    return _ip6(6, _l4_csum6(SRC6, DST6, 6, seg, 16), hlim=hlim)


def ext6() -> bytes:
    """IPv6 with hop-by-hop, routing and destination-options headers before UDP."""
    hbh = bytes([43, 0]) + b"\x01\x04\0\0\0\0"  # next: routing; PadN
    rh = bytes([60, 0, 0, 0]) + b"\0\0\0\0"  # next: dst opts; type 0, segments 0
    dst = bytes([17, 0]) + b"\x01\x04\0\0\0\0"  # next: UDP
    return udp6(ext=hbh + rh + dst, first_nxt=0)


def frag6(ident: int = 0xABCDEF01) -> list[bytes]:
    """IPv6/UDP in two fragments (offsets 0 and 32 bytes)."""
    seg = udp6(payload=bytes(range(56)))[40:]
    out = []
    for off, chunk, mf in ((0, seg[:32], 1), (32, seg[32:], 0)):
        fh = struct.pack(">BBHI", 17, 0, off | mf, ident)
        out.append(_ip6(44, fh + chunk))
    return out


def icmp6_error(quoted: bytes, icmp_type: int = 3, code: int = 0, keep: int = 88) -> bytes:
    """ICMPv6 time-exceeded (3) / destination-unreachable (1) quoting ``quoted[:keep]``."""
    msg = struct.pack(">BBHI", icmp_type, code, 0, 0) + quoted[:keep]
    return _ip6(58, _l4_csum6(HOST6, SRC6, 58, msg, 2), HOST6, SRC6)


def ndp6(icmp_type: int = 135, target: str = DST6) -> bytes:
    """NDP neighbour solicitation (135) / advertisement (136) for ``target``."""
    msg = struct.pack(">BBHI", icmp_type, 0, 0, 0) + a6(target)
    return _ip6(
        58, _l4_csum6(HOST6, "ff02::1:ff00:7", 58, msg, 2), HOST6, "ff02::1:ff00:7", hlim=255
    )


def echo6(hlim: int = 64) -> bytes:
    """ICMPv6 echo request."""
    msg = struct.pack(">BBHHH", 128, 0, 0, 9, 1) + b"ping6" * 4
    return _ip6(58, _l4_csum6(SRC6, DST6, 58, msg, 2), hlim=hlim)


def arp_reply(sender: str = DST4, target: str = HOST4) -> bytes:
    """ARP reply (the host answering for a guest address: proxy ARP)."""
    return bytes(
        dpkt.arp.ARP(op=dpkt.arp.ARP_OP_REPLY, sha=MAC_A, spa=a4(sender), tha=MAC_B, tpa=a4(target))
    )


def ip_packets() -> list[bytes]:
    """One of every kind of IP packet the decoder distinguishes."""
    pkts = [udp4(), udp4(ttl=63), tcp4(), echo4(), udp4(ttl=1, df=True)]
    pkts.append(icmp4_error(udp4(ttl=1), 11))
    pkts.append(icmp4_error(tcp4(ttl=1), 3, 1, keep=40))
    pkts.append(icmp4_error(udp4(ttl=1), 11, keep=24))  # quotes fewer than 8 L4 bytes
    pkts += frag4()
    pkts += [udp6(), tcp6(), echo6(), ext6()]
    pkts += frag6()
    pkts.append(icmp6_error(udp6(hlim=1), 3))
    pkts.append(icmp6_error(tcp6(hlim=1), 1, 3))
    pkts += [ndp6(135), ndp6(136)]
    return pkts


def ethertype(pkt: bytes) -> int:
    """EtherType of an IP packet from its version nibble."""
    return 0x0800 if pkt[0] >> 4 == 4 else 0x86DD


# --- layer 2 -------------------------------------------------------------------
def eth(
    pkt: bytes,
    etype: int | None = None,
    vlans: tuple[int, ...] = (),
    src: bytes = MAC_A,
    dst: bytes = MAC_B,
) -> bytes:
    """Ethernet II frame, with 802.1Q (first 0x8100; QinQ outer 0x88a8) tags."""
    etype = ethertype(pkt) if etype is None else etype
    tags = b""
    tpids = [0x88A8, 0x8100] if len(vlans) == 2 else [0x8100] * len(vlans)
    for i, vid in enumerate(vlans):
        nxt = tpids[i + 1] if i + 1 < len(vlans) else etype
        tags += struct.pack(">HH", vid, nxt)
    first = tpids[0] if vlans else etype
    return dst + src + struct.pack(">H", first) + tags + pkt


def sll(pkt: bytes, pkttype: int = 0, etype: int | None = None) -> bytes:
    """Linux cooked v1 header (built with dpkt's SLL layout)."""
    import dpkt.sll

    h = dpkt.sll.SLL(
        type=pkttype,
        hrd=1,
        hlen=6,
        hdr=MAC_A + b"\0\0",
        ethtype=ethertype(pkt) if etype is None else etype,
    )
    return dpkt.Packet.pack_hdr(h) + pkt


def sll2(pkt: bytes, ifindex: int, pkttype: int = 0, etype: int | None = None) -> bytes:
    """Linux cooked v2 header: EtherType, ifindex, packet type, source MAC."""
    return (
        struct.pack(
            ">HHIHBB8s",
            ethertype(pkt) if etype is None else etype,
            0,
            ifindex,
            1,
            pkttype,
            6,
            MAC_A + b"\0\0",
        )
        + pkt
    )


def null(pkt: bytes, af: int, big: bool = False) -> bytes:
    """BSD NULL header: the address family in the writer's byte order."""
    return struct.pack(">I" if big else "<I", af) + pkt


def loop(pkt: bytes, af: int) -> bytes:
    """OpenBSD LOOP header: the address family in network byte order."""
    return struct.pack(">I", af) + pkt


# --- classic pcap writer ----------------------------------------------------------
class _BigWriter(dpkt.pcap.Writer):
    """dpkt's writer in big-endian byte order."""

    _Writer__le = False


class _LittleWriter(dpkt.pcap.Writer):
    """dpkt's writer in little-endian byte order whatever the host."""

    _Writer__le = True


@dataclass
class Rec:
    """One record to write: time, bytes, original length (default: the bytes')."""

    ts_ns: int
    frame: bytes
    wirelen: int | None = None
    caplen: int | None = None  # header field; default len(frame)


def records(frames: list[bytes], start: int = T0, step: int = 1000) -> list[Rec]:
    """Records ``step`` ns apart."""
    return [Rec(start + i * step, f) for i, f in enumerate(frames)]


def write_pcap(
    path: Path,
    linktype: int,
    recs: list[Rec],
    nano: bool = False,
    big: bool = False,
    snaplen: int = 65535,
) -> Path:
    """A classic pcap file through dpkt.pcap.Writer (exact ns/µs timestamps)."""
    with open(path, "wb") as f:
        w = (_BigWriter if big else _LittleWriter)(f, snaplen=snaplen, linktype=linktype, nano=nano)
        for r in recs:
            sec, frac = divmod(r.ts_ns, 10**9)
            frac = frac if nano else frac // 1000
            incl = len(r.frame) if r.caplen is None else r.caplen
            wire = len(r.frame) if r.wirelen is None else r.wirelen
            f.write(w._pack_hdr(sec, frac, incl, wire) + r.frame)
    return path


def gzip_file(path: Path) -> Path:
    """``path`` compressed to ``path.gz``."""
    out = path.with_name(path.name + ".gz")
    out.write_bytes(gzip.compress(path.read_bytes()))
    return out


# --- pcapng writer -------------------------------------------------------------------
def _opt(e: str, code: int, value: bytes) -> bytes:
    return struct.pack(e + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def _opts(e: str, opts: list[tuple[int, bytes]]) -> bytes:
    if not opts:
        return b""
    return b"".join(_opt(e, c, v) for c, v in opts) + struct.pack(e + "HH", 0, 0)


def block(e: str, btype: int, body: bytes, trailer_len: int | None = None) -> bytes:
    """A pcapng block; ``trailer_len`` overrides the trailing length (damage)."""
    body += b"\0" * (-len(body) % 4)
    n = len(body) + 12
    return (
        struct.pack(e + "II", btype, n)
        + body
        + struct.pack(e + "I", n if trailer_len is None else trailer_len)
    )


def shb(e: str, comment: str | None = None) -> bytes:
    """Section Header Block (byte-order magic in ``e``'s order, unknown section length)."""
    opts = _opts(e, [(1, comment.encode())] if comment else [])
    return block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1) + opts)


@dataclass
class Iface:
    """Interface description: link type, snaplen and the options we test."""

    linktype: int
    name: str | None = None
    snaplen: int = 0
    tsresol: int | None = None  # raw if_tsresol byte
    tsoffset: int | None = None  # seconds
    comment: str | None = None

    @property
    def units(self) -> int:
        """Timestamp units per second."""
        r = 6 if self.tsresol is None else self.tsresol
        return 2 ** (r & 0x7F) if r & 0x80 else 10**r


def idb(e: str, itf: Iface) -> bytes:
    """Interface Description Block."""
    opts = []
    if itf.name:
        opts.append((2, itf.name.encode()))
    if itf.comment:
        opts.append((1, itf.comment.encode()))
    if itf.tsresol is not None:
        opts.append((9, bytes([itf.tsresol])))
    if itf.tsoffset is not None:
        opts.append((14, struct.pack(e + "q", itf.tsoffset)))
    return block(e, 1, struct.pack(e + "HHI", itf.linktype, 0, itf.snaplen) + _opts(e, opts))


def ts_units(itf: Iface, ts_ns: int) -> int:
    """Timestamp in the interface's units (offset removed), exact when representable."""
    rel = ts_ns - (itf.tsoffset or 0) * 10**9
    return rel * itf.units // 10**9


def epb(
    e: str,
    iface: int,
    units: int,
    frame: bytes,
    wirelen: int | None = None,
    flags: int | None = None,
    comment: str | None = None,
) -> bytes:
    """Enhanced Packet Block with optional epb_flags and comment."""
    opts = []
    if flags is not None:
        opts.append((2, struct.pack(e + "I", flags)))
    if comment:
        opts.append((1, comment.encode()))
    body = struct.pack(
        e + "IIIII",
        iface,
        units >> 32,
        units & 0xFFFFFFFF,
        len(frame),
        len(frame) if wirelen is None else wirelen,
    )
    return block(e, 6, body + frame + b"\0" * (-len(frame) % 4) + _opts(e, opts))


def spb(e: str, frame: bytes, wirelen: int | None = None) -> bytes:
    """Simple Packet Block (no timestamp, interface 0)."""
    return block(e, 3, struct.pack(e + "I", len(frame) if wirelen is None else wirelen) + frame)


def isb(e: str, iface: int, units: int, ifdrop: int) -> bytes:
    """Interface Statistics Block with isb_ifdrop."""
    body = struct.pack(e + "III", iface, units >> 32, units & 0xFFFFFFFF)
    return block(e, 5, body + _opts(e, [(5, struct.pack(e + "Q", ifdrop))]))


@dataclass
class Section:
    """One pcapng section: byte order, interfaces and records (iface, Rec, flags)."""

    big: bool = False
    ifaces: list[Iface] = field(default_factory=list)
    recs: list[tuple[int, Rec, int | None]] = field(default_factory=list)
    extra: list[bytes] = field(default_factory=list)  # raw blocks written after the IDBs
    comment: str | None = None

    @property
    def e(self) -> str:
        return ">" if self.big else "<"


def section_bytes(sec: Section) -> bytes:
    """SHB, IDBs, extra blocks and EPBs of one section."""
    out = [shb(sec.e, sec.comment)] + [idb(sec.e, i) for i in sec.ifaces] + list(sec.extra)
    for k, r, flags in sec.recs:
        out.append(epb(sec.e, k, ts_units(sec.ifaces[k], r.ts_ns), r.frame, r.wirelen, flags))
    return b"".join(out)


def write_pcapng(path: Path, sections: list[Section]) -> Path:
    """A pcapng file of the given sections."""
    path.write_bytes(b"".join(section_bytes(s) for s in sections))
    return path


# --- the fixtures ------------------------------------------------------------------------
def make_pcap_us_le(d: Path) -> Path:
    """Ethernet, microsecond magic, little-endian, every IP packet kind and ARP."""
    frames = [eth(p) for p in ip_packets()] + [eth(arp_reply(), 0x0806)]
    return write_pcap(d / "eth_us_le.pcap", 1, records(frames, step=1_000))


def make_pcap_us_be(d: Path) -> Path:
    """Ethernet, microsecond magic, big-endian."""
    return write_pcap(
        d / "eth_us_be.pcap", 1, records([eth(p) for p in ip_packets()[:6]]), big=True
    )


def make_pcap_ns_le(d: Path) -> Path:
    """Ethernet, nanosecond magic, little-endian, timestamps 1 ns apart."""
    return write_pcap(
        d / "eth_ns_le.pcap",
        1,
        records([eth(p) for p in ip_packets()[:6]], start=T0 + 123456789, step=1),
        nano=True,
    )


def make_pcap_ns_be(d: Path) -> Path:
    """Ethernet, nanosecond magic, big-endian."""
    return write_pcap(
        d / "eth_ns_be.pcap",
        1,
        records([eth(p) for p in ip_packets()[:6]], start=T0 + 987654321, step=7),
        nano=True,
        big=True,
    )


def make_vlan(d: Path) -> Path:
    """802.1Q and QinQ tagged frames (VLAN 101; outer 200 inner 101)."""
    pkts = ip_packets()[:4]
    frames = [eth(p, vlans=(101,)) for p in pkts] + [eth(p, vlans=(200, 101)) for p in pkts]
    frames.append(eth(arp_reply(), 0x0806, vlans=(101,)))
    return write_pcap(d / "vlan.pcap", 1, records(frames))


def make_raw(d: Path, linktype: int = 101) -> Path:
    """Bare IP packets (LINKTYPE_RAW 101, DLT_RAW 12 and 14)."""
    return write_pcap(d / f"raw{linktype}.pcap", linktype, records(ip_packets()))


def make_ipv4(d: Path) -> Path:
    """LINKTYPE_IPV4 (228): IPv4 only; an IPv6 packet in it is malformed."""
    pkts = [p for p in ip_packets() if p[0] >> 4 == 4] + [udp6()]
    return write_pcap(d / "ipv4.pcap", 228, records(pkts))


def make_ipv6(d: Path) -> Path:
    """LINKTYPE_IPV6 (229): IPv6 only; an IPv4 packet in it is malformed."""
    pkts = [p for p in ip_packets() if p[0] >> 4 == 6] + [udp4()]
    return write_pcap(d / "ipv6.pcap", 229, records(pkts))


def make_sll(d: Path) -> Path:
    """LINUX_SLL (113): packet types 0 (to us) and 4 (outgoing) alternate."""
    frames = [sll(p, 4 if i % 2 else 0) for i, p in enumerate(ip_packets())]
    frames.append(sll(arp_reply(), 0, 0x0806))
    return write_pcap(d / "sll.pcap", 113, records(frames))


SLL2_IFINDEXES = (2, 5, 7)


def make_sll2(d: Path) -> Path:
    """LINUX_SLL2 (276): three interface indexes, in and out, like ``tcpdump -i any``."""
    frames = []
    for i, p in enumerate(ip_packets()):
        frames.append(sll2(p, SLL2_IFINDEXES[i % 3], 4 if i % 2 else 0))
    frames.append(sll2(arp_reply(), 2, 1, 0x0806))
    return write_pcap(d / "any.pcap", 276, records(frames))


def make_null(d: Path, big: bool = False) -> Path:
    """BSD NULL (0): AF_INET 2 and AF_INET6 24/28/30 in the writer's byte order."""
    frames = []
    for i, p in enumerate(ip_packets()):
        af = 2 if p[0] >> 4 == 4 else (24, 28, 30)[i % 3]
        frames.append(null(p, af, big))
    frames.append(null(b"\x00" * 30, 7, big))  # unknown family: not IP
    return write_pcap(d / f"null_{'be' if big else 'le'}.pcap", 0, records(frames), big=big)


def make_loop(d: Path) -> Path:
    """LOOP (108): address family in network byte order (AF_INET6 24)."""
    frames = [loop(p, 2 if p[0] >> 4 == 4 else 24) for p in ip_packets()]
    return write_pcap(d / "loop.pcap", 108, records(frames))


def _v6(p: bytes) -> bool:
    return p[0] >> 4 == 6


def make_ppp(d: Path) -> Path:
    """PPP (9): HDLC-like address/control and a 2-byte protocol, or a compressed one."""
    frames = []
    for k, p in enumerate(ip_packets()):
        proto = b"\x00\x57" if _v6(p) else b"\x00\x21"
        if k % 3 == 1 and not _v6(p):
            frames.append(b"\x21" + p)  # protocol field compression
        else:
            frames.append((b"\xff\x03" if k % 2 == 0 else b"") + proto + p)
    frames.append(b"\xff\x03\xc0\x21" + b"\x01\x01\x00\x04")  # LCP: not IP
    return write_pcap(d / "ppp.pcap", 9, records(frames))


def make_ppp_hdlc(d: Path) -> Path:
    """PPP_HDLC (50): RFC 1662 framing, and Cisco HDLC framing in the same link type."""
    frames = []
    for k, p in enumerate(ip_packets()):
        et = b"\x86\xdd" if _v6(p) else b"\x08\x00"
        if k % 2:
            frames.append(b"\x0f\x00" + et + p)
        else:
            frames.append(b"\xff\x03" + (b"\x00\x57" if _v6(p) else b"\x00\x21") + p)
    return write_pcap(d / "ppp_hdlc.pcap", 50, records(frames))


def make_chdlc(d: Path) -> Path:
    """Cisco HDLC (104): address (unicast/broadcast), control, EtherType."""
    frames = [
        (b"\x8f" if k % 2 else b"\x0f") + b"\x00" + (b"\x86\xdd" if _v6(p) else b"\x08\x00") + p
        for k, p in enumerate(ip_packets())
    ]
    frames.append(b"\x8f\x00\x80\x35" + b"\0" * 20)  # SLARP keepalive: not IP
    return write_pcap(d / "chdlc.pcap", 104, records(frames))


def make_frelay(d: Path) -> Path:
    """Frame Relay (107): Q.922 address, UI, NLPID IPv4/IPv6, or pad + SNAP."""
    frames = []
    for k, p in enumerate(ip_packets()):
        if k % 3 == 2:
            et = b"\x86\xdd" if _v6(p) else b"\x08\x00"
            frames.append(b"\x18\x41\x03\x00\x80\x00\x00\x00" + et + p)
        else:
            frames.append(b"\x18\x41\x03" + (b"\x8e" if _v6(p) else b"\xcc") + p)
    frames.append(b"\x00\x01\x03\x08\x00\x75\x95")  # Q.933 signalling: not IP
    return write_pcap(d / "frelay.pcap", 107, records(frames))


def _wlan(p: bytes, k: int) -> bytes:
    """An 802.11 data frame (plain or QoS; to, from or within a DS) carrying ``p``."""
    ds = k % 4
    qos = k % 2 == 1
    fc0 = 0x88 if qos else 0x08
    hdr = bytes([fc0, ds]) + b"\0\0" + MAC_A + MAC_B + b"\x02\x00\x00\x00\x00\x99" + b"\x10\x00"
    if ds == 3:
        hdr += b"\x02\x00\x00\x00\x00\x98"
    if qos:
        hdr += b"\x00\x00"
    et = b"\x86\xdd" if _v6(p) else b"\x08\x00"
    return hdr + b"\xaa\xaa\x03\x00\x00\x00" + et + p


def _wlan_other() -> list[bytes]:
    beacon = b"\x80\x00\x00\x00" + b"\xff" * 6 + MAC_A + MAC_A + b"\x00\x00" + b"\0" * 12
    null = b"\x48\x01\x00\x00" + MAC_B + MAC_A + MAC_B + b"\x00\x00"
    protected = b"\x08\x41\x00\x00" + MAC_B + MAC_A + MAC_B + b"\x00\x00" + b"\x5a" * 40
    return [beacon, null, protected]


def make_80211(d: Path) -> Path:
    """IEEE 802.11 (105): data frames with LLC/SNAP, and frames that carry no IP."""
    frames = [_wlan(p, k) for k, p in enumerate(ip_packets())] + _wlan_other()
    return write_pcap(d / "wlan.pcap", 105, records(frames))


def make_radiotap(d: Path) -> Path:
    """802.11 behind a radiotap header (127), of two lengths."""
    frames = []
    for k, f in enumerate([_wlan(p, k) for k, p in enumerate(ip_packets())] + _wlan_other()):
        rt = (
            b"\x00\x00\x08\x00\x00\x00\x00\x00"
            if k % 2
            else (b"\x00\x00\x0c\x00\x04\x00\x00\x00\x02\x00\x00\x00")
        )
        frames.append(rt + f)
    return write_pcap(d / "radiotap.pcap", 127, records(frames))


def make_ppi(d: Path) -> Path:
    """PPI (192) naming 802.11, and one record naming Ethernet."""
    frames = [
        b"\x00\x00\x08\x00" + struct.pack("<I", 105) + _wlan(p, k)
        for k, p in enumerate(ip_packets())
    ]
    frames.append(b"\x00\x00\x08\x00" + struct.pack("<I", 1) + eth(udp4()))
    frames.append(b"\x00\x00\x08\x00" + struct.pack("<I", 147) + b"\0" * 30)
    return write_pcap(d / "ppi.pcap", 192, records(frames))


def make_snaplen96(d: Path) -> Path:
    """``tcpdump -s 96``: frames cut at 96 bytes, original lengths kept."""
    big = udp4(payload=bytes(range(256)) * 4)
    pkts = [big, udp6(payload=bytes(range(200))), ext6(), tcp4(payload=b"x" * 300)] + frag6()
    pkts.append(icmp4_error(udp4(ttl=1, payload=b"y" * 200), keep=228))
    recs = [Rec(T0 + i, eth(p)[:96], len(eth(p))) for i, p in enumerate(pkts)]
    recs.append(Rec(T0 + 60, eth(big)[:40], len(eth(big))))  # cut inside the prefix
    return write_pcap(d / "snap96.pcap", 1, recs, snaplen=96)


def make_snaplen96_sll2(d: Path) -> Path:
    """``tcpdump -i any -s 96``: SLL2 + IPv6 + fragment header still has the whole prefix."""
    big4 = udp4(payload=bytes(range(256)) * 4)
    first = frag6()[0][:40] + frag6()[0][40:48] + bytes(range(200))  # claims more than it has
    first = first[:4] + struct.pack(">H", len(first) - 40) + first[6:]
    recs = [
        Rec(T0 + i, sll2(p, 5, 4)[:96], len(sll2(p, 5, 4)))
        for i, p in enumerate([big4, first, udp6(payload=bytes(range(200)))])
    ]
    return write_pcap(d / "snap96_any.pcap", 276, recs, snaplen=96)


def make_offload(d: Path) -> Path:
    """GSO/GRO super-frames: IPv4 total length 0 and larger than the frame; IPv6 plen 0."""
    big = udp4(payload=b"z" * 3000)
    zero_len = big[:2] + b"\0\0" + big[4:]
    six = udp6(payload=b"w" * 2000)
    recs = [
        Rec(T0, eth(big)),
        Rec(T0 + 1, eth(zero_len)),
        Rec(T0 + 2, eth(six[:4] + b"\0\0" + six[6:])),
        Rec(T0 + 3, eth(big[:1400]), len(eth(big[:1400]))),  # claims 3028, has 1400
        Rec(
            T0 + 4, eth(tcp4(payload=b"q" * 1400)[:2] + b"\xff\xff" + tcp4(payload=b"q" * 1400)[4:])
        ),
    ]
    return write_pcap(d / "offload.pcap", 1, recs, snaplen=262144)


def make_malformed_frames(d: Path) -> Path:
    """Frames the decoder must skip as malformed or non-IP (with counts)."""
    good = udp4()
    frames = [
        eth(good)[:10],  # shorter than an Ethernet header
        eth(good)[:20],  # IPv4 header cut off
        eth(b"\x45" + good[1:2] + b"\0\x10" + good[4:]),  # total length < header length
        eth(b"\x43" + good[1:]),  # IHL 3
        eth(b"\x55" + good[1:], 0x0800),  # version 5 behind the IPv4 EtherType
        eth(udp6()[:30]),  # IPv6 header cut off
        eth(b"\x00" * 46, 0x88CC),  # LLDP: not IP
        eth(b"\x00" * 46, 0x05DC),  # 802.3 length field: not IP
        eth(good, vlans=(5,))[:16],  # VLAN tag cut off
        eth(arp_reply(), 0x0806)[:30],  # ARP cut off: non-IP, no ARP row
        eth(good),
    ]
    return write_pcap(d / "malformed_frames.pcap", 1, records(frames))


def make_pcapng_multi(d: Path) -> Path:
    """Two sections (LE then BE), three interfaces, three link types, if_name,
    if_tsresol 10^-9 and 2^-20, if_tsoffset, EPB direction flags, SPB, ISB,
    an unknown block type and comments."""
    p4, p6 = ip_packets()[:5], ip_packets()[9:13]
    s1 = Section(
        False,
        [
            Iface(1, "uplink", 0, 9, comment="host uplink"),
            Iface(276, None, 0),
            Iface(101, "tun0", 128, 0x80 | 20, 1),
        ],
        comment="section one",
    )
    s1.extra = [block("<", 0x0BAD, b"unknown block body")]
    for i, p in enumerate(p4):
        s1.recs.append((0, Rec(T0 + 1000 * i + 1, eth(p)), (1, 2)[i % 2]))
        s1.recs.append((1, Rec(T0 + 1000 * i + 2, sll2(p, 3 + i % 2, 0)), None))
        s1.recs.append((2, Rec(T0 + 1000 * i + 3, p), 3))  # flags 3: invalid direction
    s2 = Section(True, [Iface(1, "tap101", 0, 9), Iface(113, "uplink", 0)])
    for i, p in enumerate(p6):
        s2.recs.append((0, Rec(T0 + 5000 + i, eth(p)), 2))
        s2.recs.append((1, Rec(T0 + 6000 + i, sll(p, 4)), None))
    s2.extra = [isb(">", 0, 0, 17)]
    data = section_bytes(s1) + spb("<", eth(udp4(ident=99))) + section_bytes(s2)
    data += block(">", 0x80000001, b"custom block") + spb(">", eth(udp6()), 2000)
    (d / "multi.pcapng").write_bytes(data)
    return d / "multi.pcapng"


def make_pcapng_single(d: Path, name: str = "single.pcapng") -> Path:
    """One section, one unnamed Ethernet interface, µs resolution (defaults)."""
    s = Section(False, [Iface(1)])
    s.recs = [(0, r, None) for r in records([eth(p) for p in ip_packets()], step=1000)]
    return write_pcapng(d / name, [s])


def make_gzip_pcap(d: Path) -> Path:
    """A gzip-compressed classic pcap."""
    return gzip_file(write_pcap(d / "zipped.pcap", 1, records([eth(p) for p in ip_packets()])))


def make_gzip_pcapng(d: Path) -> Path:
    """A gzip-compressed pcapng."""
    return gzip_file(make_pcapng_single(d, "zipped_ng.pcapng"))


def make_unsorted(d: Path) -> Path:
    """Timestamps out of order (receive-side copies stamped late)."""
    frames = [eth(udp4(ttl=64 - i)) for i in range(6)]
    times = [T0 + 1000 * t for t in (50, 10, 40, 20, 30, 0)]
    return write_pcap(d / "unsorted.pcap", 1, [Rec(t, f) for t, f in zip(times, frames)])


def make_unknown_linktype(d: Path) -> Path:
    """Link type 147 (USER0), which pcaploop does not decode."""
    return write_pcap(d / "user0.pcap", 147, records([b"\x01\x02\x03\x04" * 8] * 3))


def make_big_wirelen(d: Path) -> Path:
    """Original length above 256 KiB is legal (only the captured part is bounded)."""
    p = udp4()
    return write_pcap(d / "big_wirelen.pcap", 1, [Rec(T0, eth(p), 300_000), Rec(T0 + 1, eth(p))])


def make_caplen_over_snaplen(d: Path) -> Path:
    """A record longer than the file's snaplen (64): read, truncated to 64 like libpcap."""
    p = udp4(payload=b"a" * 100)
    return write_pcap(
        d / "over_snap.pcap", 1, [Rec(T0, eth(p)), Rec(T0 + 1, eth(udp4()))], snaplen=64
    )


# --- damaged files ------------------------------------------------------------------
def make_text(d: Path) -> Path:
    """Not a capture: text."""
    (d / "notes.txt").write_text("this is not a capture file\n" * 4)
    return d / "notes.txt"


def make_empty(d: Path) -> Path:
    """Not a capture: zero bytes."""
    (d / "empty.pcap").write_bytes(b"")
    return d / "empty.pcap"


def make_jpeg(d: Path) -> Path:
    """Not a capture: a JPEG header."""
    (d / "photo.pcap").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\0" * 100)
    return d / "photo.pcap"


def make_cut_tail(d: Path) -> Path:
    """The last record cut off in the middle (5 intact records)."""
    path = write_pcap(d / "cut.pcap", 1, records([eth(udp4(ttl=60 - i)) for i in range(6)]))
    data = path.read_bytes()
    path.write_bytes(data[:-20])
    return path


def make_huge_caplen(d: Path) -> Path:
    """Third record header claims a 4 GiB captured length."""
    path = write_pcap(d / "huge_caplen.pcap", 1, records([eth(udp4())] * 2))
    with open(path, "ab") as f:
        f.write(struct.pack("<IIII", 1_700_000_001, 0, 0xFFFFFFF0, 0xFFFFFFF0) + b"\0" * 64)
    return path


def make_caplen_over_max(d: Path) -> Path:
    """A record whose captured length is 256 KiB + 1 (bytes present): corrupt."""
    path = write_pcap(d / "over_max.pcap", 1, records([eth(udp4())]), snaplen=262144)
    with open(path, "ab") as f:
        f.write(struct.pack("<IIII", 1_700_000_001, 0, 262145, 262145) + b"\0" * 262145)
    return path


def make_pcapng_bad_lengths(d: Path) -> Path:
    """pcapng whose third EPB has a trailing length that disagrees."""
    s = Section(False, [Iface(1, "eth0")])
    s.recs = [(0, r, None) for r in records([eth(udp4(ident=i)) for i in range(3)])]
    good = section_bytes(s)
    bad = block("<", 6, struct.pack("<IIIII", 0, 0, 0, 4, 4) + b"abcd", trailer_len=9999)
    tail = epb("<", 0, 5, eth(udp4()))
    (d / "bad_lengths.pcapng").write_bytes(good + bad + tail)
    return d / "bad_lengths.pcapng"


def make_pcapng_huge_block(d: Path) -> Path:
    """pcapng whose last block claims a length of almost 4 GiB."""
    s = Section(False, [Iface(1, "eth0")])
    s.recs = [(0, r, None) for r in records([eth(udp4())] * 2)]
    data = section_bytes(s) + struct.pack("<II", 6, 0xFFFFFFF0) + b"\0" * 40
    (d / "huge_block.pcapng").write_bytes(data)
    return d / "huge_block.pcapng"


def make_pcapng_cut(d: Path) -> Path:
    """pcapng cut off in the middle of its last EPB."""
    path = make_pcapng_single(d, "cut.pcapng")
    path.write_bytes(path.read_bytes()[:-30])
    return path


def make_gzip_cut(d: Path) -> Path:
    """A gzip stream cut off: the intact part is read, the damage reported."""
    raw = write_pcap(
        d / "gzcut.pcap",
        1,
        records([eth(udp4(ident=i, payload=bytes(range(200)))) for i in range(200)]),
    )
    comp = gzip.compress(raw.read_bytes())
    out = d / "gzcut.pcap.gz"
    out.write_bytes(comp[: len(comp) // 2])
    return out


VALID: dict[str, Callable[[Path], Path]] = {
    "pcap_us_le": make_pcap_us_le,
    "pcap_us_be": make_pcap_us_be,
    "pcap_ns_le": make_pcap_ns_le,
    "pcap_ns_be": make_pcap_ns_be,
    "vlan": make_vlan,
    "raw101": make_raw,
    "raw12": lambda d: make_raw(d, 12),
    "raw14": lambda d: make_raw(d, 14),
    "ipv4": make_ipv4,
    "ipv6": make_ipv6,
    "sll": make_sll,
    "sll2": make_sll2,
    "null_le": make_null,
    "null_be": lambda d: make_null(d, True),
    "loop": make_loop,
    "ppp": make_ppp,
    "ppp_hdlc": make_ppp_hdlc,
    "chdlc": make_chdlc,
    "frelay": make_frelay,
    "wlan": make_80211,
    "radiotap": make_radiotap,
    "ppi": make_ppi,
    "snaplen96": make_snaplen96,
    "snaplen96_sll2": make_snaplen96_sll2,
    "offload": make_offload,
    "malformed_frames": make_malformed_frames,
    "pcapng_multi": make_pcapng_multi,
    "pcapng_single": make_pcapng_single,
    "gzip_pcap": make_gzip_pcap,
    "gzip_pcapng": make_gzip_pcapng,
    "unsorted": make_unsorted,
    "big_wirelen": make_big_wirelen,
    "caplen_over_snaplen": make_caplen_over_snaplen,
}

DAMAGED: dict[str, Callable[[Path], Path]] = {
    "cut_tail": make_cut_tail,
    "huge_caplen": make_huge_caplen,
    "caplen_over_max": make_caplen_over_max,
    "pcapng_bad_lengths": make_pcapng_bad_lengths,
    "pcapng_huge_block": make_pcapng_huge_block,
    "pcapng_cut": make_pcapng_cut,
}

NOT_CAPTURES: dict[str, Callable[[Path], Path]] = {
    "text": make_text,
    "empty": make_empty,
    "jpeg": make_jpeg,
}
