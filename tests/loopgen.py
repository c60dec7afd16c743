"""Synthetic loop scenarios written as real capture files (dpkt.pcap.Writer).

Each builder returns {capture point name: [(ts, frame bytes), …]}; ``write``
turns that into pcap files.  TTL arithmetic follows docs/design.md (the incident,
the kernel): the host and the guest both decrement, so a packet entering the
tunnel with TTL T-1 makes T-1 tunnel copies alternating host→guest / guest→host.
"""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import dpkt
from fixtures import Iface, Rec, Section, sll2, write_pcap, write_pcapng

HOST = b"\x02\x00\x00\x00\x00\x10"
GUEST = b"\x02\x00\x00\x00\x00\x65"
GUEST2 = b"\x02\x00\x00\x00\x00\x66"
ROUTER = b"\x02\x00\x00\x00\x00\x01"
CLIENT = "198.51.100.9"
T0 = 1_700_000_000.0


def ip4(
    dst: str,
    ttl: int,
    ident: int,
    src: str = CLIENT,
    payload: bytes = b"x" * 32,
    proto: str = "udp",
) -> bytes:
    if proto == "udp":
        l4 = dpkt.udp.UDP(sport=40000, dport=9, data=payload)
        l4.ulen = len(l4)
        p = 17
    else:
        l4 = dpkt.icmp.ICMP(type=8, code=0, data=dpkt.icmp.ICMP.Echo(id=7, seq=ident, data=payload))
        p = 1
    ip = dpkt.ip.IP(
        src=socket.inet_aton(src), dst=socket.inet_aton(dst), ttl=ttl, p=p, id=ident, data=l4
    )
    ip.len = len(ip)
    return bytes(ip)


def ip6(dst: str, hlim: int, seq: int, src: str = "2001:db8:c::9") -> bytes:
    l4 = dpkt.udp.UDP(sport=40000, dport=9, data=struct.pack("!I", seq) + b"y" * 28)
    l4.ulen = len(l4)
    ip = dpkt.ip6.IP6(
        src=socket.inet_pton(socket.AF_INET6, src),
        dst=socket.inet_pton(socket.AF_INET6, dst),
        hlim=hlim,
        nxt=17,
        data=l4,
        plen=len(l4),
    )
    return bytes(ip)


def eth(ip: bytes, src: bytes, dst: bytes, vlan: int | None = None) -> bytes:
    et = 0x86DD if ip[0] >> 4 == 6 else 0x0800
    if vlan is None:
        return dst + src + struct.pack("!H", et) + ip
    return dst + src + struct.pack("!HHH", 0x8100, vlan, et) + ip


def tunnel_loop(
    n: int = 20,
    entry_ttl: int = 64,
    dst: str = "203.0.113.7",
    link: str = "eth",
    uplink: bool = True,
    v6: bool = False,
    t0: float = T0,
) -> dict:
    """Host↔guest ping-pong on tap101 (+ the uplink copy); also normal traffic."""
    caps: dict[str, list] = {"tap101": []}
    if uplink:
        caps["uplink"] = []
    t = t0
    for k in range(n):
        t += 0.05

        def pkt(ttl: int, k: int = k) -> bytes:
            return ip6(dst, ttl, k) if v6 else ip4(dst, ttl, 100 + k)

        if uplink:
            caps["uplink"].append((t, eth(pkt(entry_ttl), ROUTER, HOST)))
        for ttl in range(entry_ttl - 1, 0, -1):
            out = (entry_ttl - 1 - ttl) % 2 == 0
            raw = pkt(ttl)
            frame = (
                raw if link == "raw" else eth(raw, HOST if out else GUEST, GUEST if out else HOST)
            )
            caps["tap101"].append((t + (entry_ttl - ttl) * 1e-5, frame))
        normal = (
            ip4("203.0.113.101", entry_ttl, 5000 + k)
            if not v6
            else ip6("2001:db8:100::101", entry_ttl, 900 + k)
        )
        normal_in = (
            ip4("203.0.113.101", entry_ttl - 1, 5000 + k)
            if not v6
            else ip6("2001:db8:100::101", entry_ttl - 1, 900 + k)
        )
        if uplink:
            caps["uplink"].append((t + 0.01, eth(normal, ROUTER, HOST)))
        caps["tap101"].append(
            (t + 0.01001, normal_in if link == "raw" else eth(normal_in, HOST, GUEST))
        )
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


def uplink_sweep(dsts: list[str], t0: float = 1_700_000_000.0) -> dict:
    """An uplink-only capture of a sweep: per address two packets arriving with TTL 64
    that loop behind the uplink, and the guest's ICMP time-exceeded for the first,
    quoting it with TTL 1 and only 8 bytes of UDP (RFC 792's minimum quote)."""
    frames = []
    for i, dst in enumerate(dsts):
        t = t0 + 0.02 * i
        for j in range(2):
            frames.append((t + 0.001 * j, eth(ip4(dst, 64, 1000 + 2 * i + j), ROUTER, HOST)))
        quoted = ip4(dst, 1, 1000 + 2 * i)[:28]
        frames.append((t + 0.004, eth(icmp_te(quoted, "203.0.113.101", CLIENT), HOST, ROUTER)))
    return {"uplink": frames}


# --- shared scenarios (extract, plots, report) ------------------------------------
def icmp_te(quoted: bytes, src: str, dst: str) -> bytes:
    """IPv4 ICMP time-exceeded quoting ``quoted``."""
    import socket

    import dpkt

    icmp = dpkt.icmp.ICMP(type=11, code=0, data=dpkt.icmp.ICMP.TimeExceed(data=quoted))
    ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), ttl=64, p=1, data=icmp)
    ip.len = len(ip)
    return bytes(ip)


def mixed_caps() -> dict:
    """An l2 loop first, then a host↔guest loop with ICMP errors, an IPv6 loop and a bounce.

    The l2 loop comes first in time so the l3 loop's final id (2) differs
    from its id inside detection (1): the extract must not mix them up.
    """
    caps = {
        "lan": [(T0 + i * 0.002, eth(ip4("203.0.113.9", 60, 42), ROUTER, HOST)) for i in range(30)]
    }
    tl = tunnel_loop(n=6, entry_ttl=64, t0=T0 + 1)
    caps.update(tl)
    for k in range(3):  # the guest's errors for the first three packets, seen on the uplink
        quoted = bytearray(ip4("203.0.113.7", 1, 100 + k)[:28])
        t = T0 + 1 + 0.05 * (k + 1) + 0.002
        caps["uplink"].append(
            (t, eth(icmp_te(bytes(quoted), "203.0.113.101", CLIENT), HOST, ROUTER))
        )
    v6 = tunnel_loop(n=3, entry_ttl=20, dst="2001:db8:100::7", v6=True, t0=T0 + 2)
    for name, frames in v6.items():
        caps[name] += frames
    for k in range(4):  # a bounce: 203.0.113.8 goes in and comes back once
        t = T0 + 3 + k * 0.01
        caps["tap101"].append((t, eth(ip4("203.0.113.8", 63, 700 + k), HOST, GUEST)))
        caps["tap101"].append((t + 1e-5, eth(ip4("203.0.113.8", 62, 700 + k), GUEST, HOST)))
    for frames in caps.values():
        frames.sort(key=lambda f: f[0])
    return caps


def write_mixed(d: Path) -> list[str]:
    return write(mixed_caps(), d)


def write_pcapng_loop(d: Path, tap_name: str = "tap101", comment: str | None = None) -> Path:
    """The host↔guest loop as one pcapng with two named interfaces (ns resolution)."""
    caps = tunnel_loop(n=4, entry_ttl=32)
    sec = Section(
        ifaces=[Iface(1, "uplink", tsresol=9), Iface(1, tap_name, tsresol=9, comment=comment)]
    )
    recs = [(0, ts, f) for ts, f in caps["uplink"]] + [(1, ts, f) for ts, f in caps["tap101"]]
    recs.sort(key=lambda r: r[1])
    sec.recs = [(k, Rec(round(ts * 1e9), f), None) for k, ts, f in recs]
    return write_pcapng(d / "all.pcapng", [sec])


def write_sll2_loop(d: Path) -> Path:
    """The host↔guest loop as ``tcpdump -i any`` (SLL2, ifindex 2 uplink, 5 tap101)."""
    caps = tunnel_loop(n=4, entry_ttl=24)
    recs = []
    for ts, f in caps["uplink"]:
        recs.append((ts, sll2(f[14:], 2, 0)))
    for ts, f in caps["tap101"]:
        out = f[6:12] == HOST  # Ethernet source: the host sends
        recs.append((ts, sll2(f[14:], 5, 4 if out else 0)))
    recs.sort(key=lambda r: r[0])
    return write_pcap(d / "any.pcap", 276, [Rec(round(ts * 1e9), f) for ts, f in recs])


SLL2_IFMAP = {2: "uplink", 5: "tap101"}


def by_kind(a, kind: str, v6: bool | None = None) -> dict:
    for lp in a.loops:
        if lp.kind == kind and (v6 is None or (":" in lp.destination) == v6):
            return lp
    raise AssertionError(f"no {kind} loop in {a.loops}")
