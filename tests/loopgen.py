"""Synthetic loop scenarios written as real capture files (dpkt.pcap.Writer).

Each builder returns {capture point name: [(ts, frame bytes), …]}; ``write``
turns that into pcap files.  TTL arithmetic follows DESIGN.md §1/§6: the host
and the guest both decrement, so a packet entering the tunnel with TTL T-1
makes T-1 tunnel copies alternating host→guest / guest→host.
"""
from __future__ import annotations

import socket
import struct
from pathlib import Path

import dpkt

HOST = b"\x02\x00\x00\x00\x00\x10"
GUEST = b"\x02\x00\x00\x00\x00\x65"
GUEST2 = b"\x02\x00\x00\x00\x00\x66"
ROUTER = b"\x02\x00\x00\x00\x00\x01"
CLIENT = "198.51.100.9"
T0 = 1_700_000_000.0


def ip4(dst: str, ttl: int, ident: int, src: str = CLIENT, payload: bytes = b"x" * 32,
        proto: str = "udp") -> bytes:
    if proto == "udp":
        l4 = dpkt.udp.UDP(sport=40000, dport=9, data=payload)
        l4.ulen = len(l4)
        p = 17
    else:
        l4 = dpkt.icmp.ICMP(type=8, code=0, data=dpkt.icmp.ICMP.Echo(id=7, seq=ident, data=payload))
        p = 1
    ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), ttl=ttl, p=p,
                    id=ident, data=l4)
    ip.len = len(ip)
    return bytes(ip)


def ip6(dst: str, hlim: int, seq: int, src: str = "2001:db8:c::9") -> bytes:
    l4 = dpkt.udp.UDP(sport=40000, dport=9, data=struct.pack("!I", seq) + b"y" * 28)
    l4.ulen = len(l4)
    ip = dpkt.ip6.IP6(src=socket.inet_pton(socket.AF_INET6, src),
                      dst=socket.inet_pton(socket.AF_INET6, dst), hlim=hlim, nxt=17,
                      data=l4, plen=len(l4))
    return bytes(ip)


def eth(ip: bytes, src: bytes, dst: bytes, vlan: int | None = None) -> bytes:
    et = 0x86DD if ip[0] >> 4 == 6 else 0x0800
    if vlan is None:
        return dst + src + struct.pack("!H", et) + ip
    return dst + src + struct.pack("!HHH", 0x8100, vlan, et) + ip


def tunnel_loop(n: int = 20, entry_ttl: int = 64, dst: str = "203.0.113.7", link: str = "eth",
                uplink: bool = True, v6: bool = False, t0: float = T0) -> dict:
    """Host↔guest ping-pong on tap101 (+ the uplink copy); also normal traffic."""
    caps: dict[str, list] = {"tap101": []}
    if uplink:
        caps["uplink"] = []
    t = t0
    for k in range(n):
        t += 0.05
        pkt = (lambda ttl: ip6(dst, ttl, k)) if v6 else (lambda ttl: ip4(dst, ttl, 100 + k))
        if uplink:
            caps["uplink"].append((t, eth(pkt(entry_ttl), ROUTER, HOST)))
        for ttl in range(entry_ttl - 1, 0, -1):
            out = (entry_ttl - 1 - ttl) % 2 == 0
            raw = pkt(ttl)
            frame = raw if link == "raw" else eth(raw, HOST if out else GUEST, GUEST if out else HOST)
            caps["tap101"].append((t + (entry_ttl - ttl) * 1e-5, frame))
        normal = ip4("203.0.113.101", entry_ttl, 5000 + k) if not v6 else ip6("2001:db8:100::101", entry_ttl, 900 + k)
        normal_in = ip4("203.0.113.101", entry_ttl - 1, 5000 + k) if not v6 else ip6("2001:db8:100::101", entry_ttl - 1, 900 + k)
        if uplink:
            caps["uplink"].append((t + 0.01, eth(normal, ROUTER, HOST)))
        caps["tap101"].append((t + 0.01001, normal_in if link == "raw" else eth(normal_in, HOST, GUEST)))
    return caps


def write(caps: dict, directory: Path, linktype: int | dict = dpkt.pcap.DLT_EN10MB) -> list[str]:
    """Write each capture point to DIR/NAME.pcap; returns NAME=PATH arguments.

    ``linktype`` is one value for all files or {name: value}.
    """
    args = []
    for name, frames in caps.items():
        path = Path(directory) / f"{name}.pcap"
        lt = linktype.get(name, dpkt.pcap.DLT_EN10MB) if isinstance(linktype, dict) else linktype
        with open(path, "wb") as f:
            w = dpkt.pcap.Writer(f, linktype=lt)
            for ts, frame in frames:
                w.writepkt(frame, ts=ts)
        args.append(f"{name}={path}")
    return args
