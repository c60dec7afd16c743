#!/usr/bin/env python3
"""pcaploop lab: reproduce host <-> guest routing loops with the real kernel.

Builds each scenario in network namespaces it creates itself, sends bounded
traffic, captures it on the "host" with tcpdump (and dumpcap when present),
derives LINKTYPE_RAW and LINUX_SLL forms from the real captures, copies the
per-interface captures to neutral names (``noname``), and writes golden
``<form>.expected.json`` files (per-interface, any, pcapng, raw, sll1, noname,
any-noifmap, uplink-only) computed from the scenario plan, TTL arithmetic and
tshark field dumps (never from pcaploop).

Usage (as root)::

    python3 samples/lab/lab.py --list
    python3 samples/lab/lab.py --out samples                 # every scenario
    python3 samples/lab/lab.py --out /tmp/lab --scenario incident --scenario healthy

Exit status: 0 all requested scenarios built and verified, 1 some scenario
failed (its reason is printed), 77 network namespaces are not available,
130 interrupted.  Python 3.11 standard library only; needs ip(8), tcpdump,
tshark; dumpcap and nft are optional.

Topology (docs/design.md; documentation addresses only)::

    client 198.51.100.9 2001:db8:c::9 (eth0)
      |
    router cl0 198.51.100.1 2001:db8:c::1 / lan0 192.0.2.1 2001:db8:1::1
      |     203.0.113.0/24 and 2001:db8:100::/48 are on-link on lan0
    host uplink 192.0.2.10 2001:db8:1::10 (proxy_arp, proxy_ndp, forwarding)
      |  tap101 169.254.0.1 fe80::1        |  tap102 169.254.0.1 fe80::1
    guest1 eth0 203.0.113.101/32 ...      guest2 eth0 203.0.113.102/32 ...

The host<->guest veth pairs carry PERMANENT neighbour entries on both ends,
so they behave like a tun/ppp point-to-point link (docs/design.md, *What the kernel does*).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import itertools
import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

CMD_TIMEOUT = 15  # seconds, every external command
SENDER_TIMEOUT = 30  # seconds, every traffic sender
GAP = 0.01  # seconds between two packets of one sender
SNAPLEN = 256
# --immediate-mode: without it libpcap's TPACKET_V3 ring hands over blocks
# only when full or after 1 s, and tcpdump stopped by SIGINT loses the last
# block ("packets received by filter" > "packets captured").
TCPDUMP_OPTS = ["-n", "-U", "--immediate-mode", "-B", "8192", "-s", str(SNAPLEN)]
# -N/-C: dumpcap's own queue between capture threads and the writer; with its
# defaults it dropped ~10 % of the loop copies ("dumpcap:385" in its stats).
DUMPCAP_OPTS = ["-q", "-n", "-B", "16", "-N", "1000000", "-C", "256000000", "-s", str(SNAPLEN)]

CLIENT4, CLIENT6 = "198.51.100.9", "2001:db8:c::9"
ROUTER_CL4, ROUTER_CL6 = "198.51.100.1", "2001:db8:c::1"
ROUTER_LAN4, ROUTER_LAN6 = "192.0.2.1", "2001:db8:1::1"
HOST4, HOST6 = "192.0.2.10", "2001:db8:1::10"
GUEST_RANGE4, GUEST_RANGE6 = "203.0.113.0/24", "2001:db8:100::/48"
PEER4, PEER6 = "169.254.0.1", "fe80::1"

MAC = {
    "client": "02:00:00:00:00:09",
    "router-cl": "02:00:00:00:01:01",
    "router-lan": "02:00:00:00:02:01",
    "uplink": "02:00:00:00:02:10",
}


def tap_mac(n: int) -> str:
    return f"02:00:00:01:0{n}:01"


def guest_mac(n: int) -> str:
    return f"02:00:00:01:0{n}:02"


# --------------------------------------------------------------------------
# traffic sender, run inside a namespace with `ip netns exec NS python3 -c`
# --------------------------------------------------------------------------
SENDER = r"""
import json, socket, struct, sys, time
flows = json.loads(sys.argv[1]); gap = float(sys.argv[2])
deadline = time.monotonic() + float(sys.argv[3])
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
socks = []
for i, f in enumerate(flows):
    v6 = ":" in f["dst"]; fam = socket.AF_INET6 if v6 else socket.AF_INET
    p = f["proto"]
    probe = socket.socket(fam, socket.SOCK_DGRAM); probe.connect((f["dst"], 9))
    src = probe.getsockname()[0]; probe.close()
    if p == "icmp":
        s = socket.socket(fam, socket.SOCK_RAW, socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
    elif p == "udp":
        s = socket.socket(fam, socket.SOCK_DGRAM); s.bind(("::" if v6 else "0.0.0.0", f["sport"]))
    else:
        s = socket.socket(fam, socket.SOCK_RAW, socket.IPPROTO_TCP)
        if v6: s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_CHECKSUM, 16)
    # connected sockets: the kernel gives IPv4 packets a per-socket IP ID;
    # traceroute-style UDP probes (dport_step) go to a new port each and stay unconnected
    if not f.get("dport_step"):
        s.connect((f["dst"], f.get("dport", 0) if p == "udp" else 0))
    socks.append((f, s, v6, src))
def set_ttl(s, v6, ttl):
    if v6: s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
    else: s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
for f, s, v6, src in socks:
    set_ttl(s, v6, f["ttl"])
sent = [0] * len(flows)
for k in range(max(f["count"] for f in flows)):
    for i, (f, s, v6, src) in enumerate(socks):
        if k >= f["count"] or time.monotonic() > deadline: continue
        if f.get("ttls"): set_ttl(s, v6, f["ttls"][k])  # per-packet TTL / hop limit
        payload = b"pcaploop-lab f%02d s%04d" % (i, k)
        if f["proto"] == "icmp":
            hdr = struct.pack("!BBHHH", 128 if v6 else 8, 0, 0, f["ident"], k)
            pkt = hdr + payload
            if not v6: pkt = pkt[:2] + struct.pack("!H", csum(pkt)) + pkt[4:]
        elif f["proto"] == "udp":
            pkt = payload
        else:
            pkt = struct.pack("!HHIIBBHHH", f["sport"], f.get("dport", 80), f["seq0"] + k * 1000, 0, 5 << 4, 0x02, 64240, 0, 0)
            if not v6:
                ph = socket.inet_aton(src) + socket.inet_aton(f["dst"]) + struct.pack("!BBH", 0, 6, len(pkt))
                pkt = pkt[:16] + struct.pack("!H", csum(ph + pkt)) + pkt[18:]
        for attempt in (1, 2):
            try:
                if f.get("dport_step"): s.sendto(pkt, (f["dst"], f["dport"] + k))
                else: s.send(pkt)
                sent[i] += 1; break
            except ConnectionRefusedError:
                # an ICMP port unreachable for an earlier datagram is reported
                # on the next send() of a connected UDP socket: send again
                continue
            except OSError as e:
                print("send error", f, e, file=sys.stderr); break
        time.sleep(gap)
print(json.dumps(sent))
"""

# a bounded UDP echo responder (drop-midway: the guest answers while it owns the address)
RESPONDER = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((sys.argv[1], int(sys.argv[2]))); s.settimeout(0.2)
deadline = time.monotonic() + float(sys.argv[3])
print("ready", flush=True)
while time.monotonic() < deadline:
    try: data, addr = s.recvfrom(2048)
    except OSError: continue
    s.sendto(data, addr)
"""


@dataclasses.dataclass
class Flow:
    ns: str  # "client", "router" or a guest ("guest1": sent by the guest itself)
    dst: str
    proto: str  # icmp | udp | tcp
    ttl: int  # TTL / hop limit set on the sender's socket
    count: int
    ttls: list[int] | None = None  # per-packet TTLs (then count == len(ttls))
    dport: int | None = None  # UDP/TCP destination port (default 5001 + flow index)
    dport_step: bool = False  # traceroute style: UDP port dport + k for packet k

    def __post_init__(self) -> None:
        if self.ttls:
            self.count, self.ttl = len(self.ttls), self.ttls[0]

    @property
    def entry_ttl(self) -> int:
        """TTL with which the packet arrives on the host's uplink (or, sent by a
        guest, on its link): the client's packets cross the router first."""
        return self.ttl - 1 if self.ns == "client" else self.ttl

    def entry_ttls(self) -> list[int]:
        """Entry TTL of every packet of the flow (0: it never reaches the host)."""
        d = 1 if self.ns == "client" else 0
        return [t - d for t in (self.ttls or [self.ttl] * self.count)]

    def describe(self) -> str:
        if self.ttls:
            ttl = f"TTLs {','.join(map(str, self.ttls))}"
        else:
            ttl = f"TTL {self.ttl} (enters {self.entry_ttl})"
        port = f" ports {self.dport}+k" if self.dport_step else ""
        return f"{self.count} {self.proto}{port} to {self.dst} from {self.ns} {ttl}"


@dataclasses.dataclass
class LoopPlan:
    destination: str
    capture_points: list[str]  # per-interface names
    ttl_step: int  # at one point and direction (per-interface)
    entry_ttl: int | None  # None: the packets enter with different TTLs (ttl-sweep)
    shape: str  # "tunnel" (host<->guest(s)) or "uplink" (host<->router)
    # "uplink": the packets enter on the uplink; "guest": a guest sends them itself,
    # so they first appear on its link (guest -> host) and never on the uplink
    origin: str = "uplink"
    # only some of the sent packets loop (the rest before a drop, after a neighbour
    # entry failed): the plan bounds the count, tshark decides it
    partial: bool = False
    stops: bool = False  # the loop ends by itself: golden gets after_end


@dataclasses.dataclass
class Plan:
    flows: list[Flow]
    loops: list[LoopPlan]
    bounces: list[tuple[str, str]]  # (destination, capture point)
    not_looping: list[str]
    taps: list[str]
    fix_commands: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    unreached: list[str] = dataclasses.field(default_factory=list)  # never reach the host by design
    gap: float = 0.0  # seconds between two packets of one sender (0: GAP)
    # commands run while the traffic flows: (seconds after it starts, namespace, argv)
    during: list[tuple[float, str, list[str]]] = dataclasses.field(default_factory=list)
    sll1: bool = True  # make the merged LINUX_SLL form (False where folding is ambiguous)
    # scenario-specific tshark counts: verify(form, its frames) -> (notes, problems)
    verify: Callable[[Form, list[Frame]], tuple[list[str], list[str]]] | None = None
    host_macs: set[str] = dataclasses.field(default_factory=set)  # extra MACs of the host
    watch_neigh: tuple[str, str, str] | None = None  # (ns, address, dev): note its states over time


class LabError(Exception):
    pass


# --------------------------------------------------------------------------
# namespaces
# --------------------------------------------------------------------------
class Lab:
    def __init__(self, log: list[str]):
        self.prefix = f"pl{os.getpid()}-"
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self.log = log

    def ns(self, short: str) -> str:
        return self.prefix + short

    def run(
        self,
        ns: str | None,
        *args: str,
        check: bool = True,
        timeout: float = CMD_TIMEOUT,
        quiet: bool = False,
    ) -> subprocess.CompletedProcess:
        cmd = (["ip", "netns", "exec", self.ns(ns)] if ns else []) + list(args)
        if not quiet:
            self.log.append(f"[{ns or 'root'}] " + " ".join(args))
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise LabError(f"[{ns}] {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}")
        return r

    def ip(self, ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run(ns, "ip", *args, check=check)

    def sysctl(self, ns: str, *settings: str) -> None:
        self.run(ns, "sysctl", "-q", "-w", *settings)

    def add_ns(self, short: str) -> None:
        name = self.ns(short)
        self.log.append(f"[root] ip netns add {short}")
        r = subprocess.run(
            ["ip", "netns", "add", name], capture_output=True, text=True, timeout=CMD_TIMEOUT
        )
        if r.returncode != 0:
            raise LabError(f"ip netns add {name}: {r.stderr.strip()}")
        self.namespaces.append(name)
        self.ip(short, "link", "set", "lo", "up")
        self.sysctl(
            short,
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
            "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0",
            "net.ipv6.conf.all.router_solicitations=0",
            "net.ipv6.conf.default.router_solicitations=0",
        )

    def veth(self, ns_a: str, if_a: str, mac_a: str, ns_b: str, if_b: str, mac_b: str) -> None:
        self.run(
            ns_a,
            "ip",
            "link",
            "add",
            if_a,
            "address",
            mac_a,
            "type",
            "veth",
            "peer",
            "name",
            if_b,
            "address",
            mac_b,
            "netns",
            self.ns(ns_b),
        )
        self.ip(ns_a, "link", "set", if_a, "up")
        self.ip(ns_b, "link", "set", if_b, "up")

    def popen(self, ns: str, *args: str, **kw) -> subprocess.Popen:
        self.log.append(f"[{ns}] " + " ".join(args) + " &")
        p = subprocess.Popen(["ip", "netns", "exec", self.ns(ns), *args], **kw)
        self.procs.append(p)
        return p

    def teardown(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=5)
        for name in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=CMD_TIMEOUT)
        self.namespaces.clear()


def netns_available() -> str | None:
    """None if network namespaces work here, else one line saying why."""
    if os.geteuid() != 0:
        return "not running as root"
    for tool in ("ip", "tcpdump", "tshark"):
        if shutil.which(tool) is None:
            return f"{tool} not found in PATH"
    name = f"pl{os.getpid()}-probe"
    try:
        r = subprocess.run(
            ["ip", "netns", "add", name], capture_output=True, text=True, timeout=CMD_TIMEOUT
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"ip netns add failed: {e}"
    if r.returncode != 0:
        return f"ip netns add failed: {r.stderr.strip() or r.returncode}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=CMD_TIMEOUT)
    return None


# --------------------------------------------------------------------------
# topology
# --------------------------------------------------------------------------
@dataclasses.dataclass
class Guest:
    n: int
    main4: str
    main6: str
    extra4: list[str] = dataclasses.field(default_factory=list)  # present, routed
    extra6: list[str] = dataclasses.field(default_factory=list)
    dropped4: list[str] = dataclasses.field(default_factory=list)  # routed, removed in guest
    dropped6: list[str] = dataclasses.field(default_factory=list)
    forward: bool = True
    # ordinary (dynamic) ARP on the link instead of permanent IPv4 neighbour
    # entries on both ends: the host's entry for a dropped address can fail
    dynamic4: bool = False

    @property
    def tap(self) -> str:
        return f"tap10{self.n}"

    @property
    def ns(self) -> str:
        return f"guest{self.n}"


def build(lab: Lab, guests: list[Guest]) -> None:
    for short in ("client", "router", "host", *(g.ns for g in guests)):
        lab.add_ns(short)
    # client -- router
    lab.veth("client", "eth0", MAC["client"], "router", "cl0", MAC["router-cl"])
    lab.ip("client", "addr", "add", f"{CLIENT4}/24", "dev", "eth0")
    lab.ip("client", "-6", "addr", "add", f"{CLIENT6}/64", "dev", "eth0", "nodad")
    lab.ip("client", "route", "add", "default", "via", ROUTER_CL4)
    lab.ip("client", "-6", "route", "add", "default", "via", ROUTER_CL6)
    lab.ip("router", "addr", "add", f"{ROUTER_CL4}/24", "dev", "cl0")
    lab.ip("router", "-6", "addr", "add", f"{ROUTER_CL6}/64", "dev", "cl0", "nodad")
    # router -- host (the LAN)
    lab.veth("router", "lan0", MAC["router-lan"], "host", "uplink", MAC["uplink"])
    lab.ip("router", "addr", "add", f"{ROUTER_LAN4}/24", "dev", "lan0")
    lab.ip("router", "-6", "addr", "add", f"{ROUTER_LAN6}/64", "dev", "lan0", "nodad")
    # the guest ranges are on-link on the LAN: the router ARPs / solicits for
    # guest addresses and the host's proxy ARP / proxy NDP answers
    lab.ip("router", "route", "add", GUEST_RANGE4, "dev", "lan0")
    lab.ip("router", "-6", "route", "add", GUEST_RANGE6, "dev", "lan0")
    lab.sysctl("router", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
    lab.ip("host", "addr", "add", f"{HOST4}/24", "dev", "uplink")
    lab.ip("host", "-6", "addr", "add", f"{HOST6}/64", "dev", "uplink", "nodad")
    lab.ip("host", "route", "add", "default", "via", ROUTER_LAN4)
    lab.ip("host", "-6", "route", "add", "default", "via", ROUTER_LAN6)
    lab.sysctl(
        "host",
        "net.ipv4.ip_forward=1",
        "net.ipv6.conf.all.forwarding=1",
        "net.ipv4.conf.uplink.proxy_arp=1",
        "net.ipv6.conf.all.proxy_ndp=1",
        "net.ipv6.conf.uplink.proxy_ndp=1",
    )
    for g in guests:
        lab.veth("host", g.tap, tap_mac(g.n), g.ns, "eth0", guest_mac(g.n))
        lab.ip("host", "addr", "add", f"{PEER4}/32", "dev", g.tap)
        lab.ip("host", "-6", "addr", "add", f"{PEER6}/64", "dev", g.tap, "nodad")
        # guest side: /32 (/128) addresses, onlink default via the peer address
        for a in [g.main4, *g.extra4, *g.dropped4]:
            lab.ip(g.ns, "addr", "add", f"{a}/32", "dev", "eth0")
        for a in [g.main6, *g.extra6, *g.dropped6]:
            lab.ip(g.ns, "-6", "addr", "add", f"{a}/128", "dev", "eth0", "nodad")
        if not g.dynamic4:
            lab.ip(
                g.ns,
                "neigh",
                "replace",
                PEER4,
                "lladdr",
                tap_mac(g.n),
                "dev",
                "eth0",
                "nud",
                "permanent",
            )
        lab.ip(
            g.ns,
            "-6",
            "neigh",
            "replace",
            PEER6,
            "lladdr",
            tap_mac(g.n),
            "dev",
            "eth0",
            "nud",
            "permanent",
        )
        lab.ip(g.ns, "route", "add", "default", "via", PEER4, "dev", "eth0", "onlink")
        lab.ip(g.ns, "-6", "route", "add", "default", "via", PEER6, "dev", "eth0")
        lab.sysctl(g.ns, "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
        # host side: one /32 (/128) per guest address into the tap, a
        # permanent neighbour entry (no ARP/NDP on the point-to-point link),
        # and a proxy NDP entry on the uplink per IPv6 address
        for a in [g.main4, *g.extra4, *g.dropped4]:
            host_route4(lab, a, g)
        for a in [g.main6, *g.extra6, *g.dropped6]:
            lab.ip("host", "-6", "route", "add", f"{a}/128", "dev", g.tap)
            lab.ip(
                "host",
                "-6",
                "neigh",
                "replace",
                a,
                "lladdr",
                guest_mac(g.n),
                "dev",
                g.tap,
                "nud",
                "permanent",
            )
            lab.ip("host", "-6", "neigh", "add", "proxy", a, "dev", "uplink")
    # the guests drop addresses without telling the host
    for g in guests:
        for a in g.dropped4:
            lab.ip(g.ns, "addr", "del", f"{a}/32", "dev", "eth0")
        for a in g.dropped6:
            lab.ip(g.ns, "-6", "addr", "del", f"{a}/128", "dev", "eth0")
        if not g.forward:
            lab.sysctl(g.ns, "net.ipv4.ip_forward=0", "net.ipv6.conf.all.forwarding=0")


def host_route4(lab: Lab, addr: str, g: Guest, table: str | None = None) -> None:
    extra = ["table", table] if table else []
    lab.ip("host", "route", "add", f"{addr}/32", "dev", g.tap, *extra)
    if g.dynamic4:
        return  # the host ARPs for the address on the tap like on any Ethernet link
    lab.ip(
        "host", "neigh", "replace", addr, "lladdr", guest_mac(g.n), "dev", g.tap, "nud", "permanent"
    )


def warm(lab: Lab, flows: list[Flow]) -> None:
    """Resolve every neighbour entry before capturing (docs/design.md, *What the kernel does*).

    The client pings the host's uplink (client->router->host ARP/ND); the
    router sends one TTL-1 echo per destination, which makes it ARP (NDP) for
    the guest address, the host proxy-answers after up to proxy_delay, and
    the host drops the TTL-1 packet: no loop, no traffic during the capture.
    """
    procs = [
        lab.popen(
            "client",
            "ping",
            "-c",
            "1",
            "-W",
            "2",
            HOST4,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        lab.popen(
            "client",
            "ping",
            "-6",
            "-c",
            "1",
            "-W",
            "2",
            HOST6,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    for d in sorted({f.dst for f in flows}):
        procs.append(
            lab.popen(
                "router",
                "ping",
                "-c",
                "1",
                "-t",
                "1",
                "-W",
                "2",
                d,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    for p in procs:
        try:
            p.wait(timeout=CMD_TIMEOUT)
        except subprocess.TimeoutExpired:
            p.kill()
    time.sleep(0.2)


def start_send(lab: Lab, flows: list[Flow], gap: float = 0.0) -> dict[str, subprocess.Popen]:
    """Start one bounded sender per namespace (in parallel); see wait_send."""
    procs = {}
    for ns in sorted({f.ns for f in flows}):
        spec = []
        for i, f in enumerate(x for x in flows if x.ns == ns):
            spec.append(
                {
                    "dst": f.dst,
                    "proto": f.proto,
                    "ttl": f.ttl,
                    "ttls": f.ttls,
                    "count": f.count,
                    "ident": 0x1000 + i,
                    "sport": 40000 + i,
                    "dport": f.dport if f.dport is not None else 5001 + i,
                    "dport_step": f.dport_step,
                    "seq0": 1000000 * (i + 1),
                }
            )
        procs[ns] = lab.popen(
            ns,
            sys.executable,
            "-c",
            SENDER,
            json.dumps(spec),
            str(gap or GAP),
            str(SENDER_TIMEOUT - 5),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    return procs


def wait_send(procs: dict[str, subprocess.Popen]) -> dict[str, list[int]]:
    """Wait for the senders; return what each sent per flow."""
    sent = {}
    for ns, p in procs.items():
        try:
            out, err = p.communicate(timeout=SENDER_TIMEOUT)
        except subprocess.TimeoutExpired:
            p.kill()
            raise LabError(f"traffic sender in {ns} timed out") from None
        if p.returncode != 0:
            raise LabError(f"traffic sender in {ns} failed: {err.strip()}")
        sent[ns] = json.loads(out.strip().splitlines()[-1])
    return sent


def send(lab: Lab, flows: list[Flow], gap: float = 0.0) -> dict[str, list[int]]:
    """Run one bounded sender per namespace in parallel; return what was sent."""
    return wait_send(start_send(lab, flows, gap))


def tap_counters(lab: Lab, dev: str) -> int:
    r = lab.run("host", "ip", "-s", "-j", "link", "show", dev, quiet=True)
    st = json.loads(r.stdout)[0]["stats64"]
    return st["tx"]["packets"] + st["rx"]["packets"]


def probe_loop(lab: Lab, dst: str, dev: str, n: int = 3) -> int:
    """Send n echoes (TTL 65) before a fix; return tap packets they caused."""
    before = tap_counters(lab, dev)
    send(lab, [Flow("client", dst, "icmp", 65, n)])
    time.sleep(0.3)
    return tap_counters(lab, dev) - before


class NeighWatch:
    """Polls one neighbour entry's state while the traffic flows (for the notes)."""

    def __init__(self, lab: Lab, what: tuple[str, str, str]):
        self.lab, self.what = lab, what
        self.t0 = time.monotonic()
        self.states: list[tuple[float, str]] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        ns, addr, dev = self.what
        while not self.done.is_set() and time.monotonic() - self.t0 < SENDER_TIMEOUT:
            with contextlib.suppress(LabError, subprocess.TimeoutExpired):
                s = neigh_state(self.lab, ns, addr, dev)
                if not self.states or self.states[-1][1] != s:
                    self.states.append((time.monotonic() - self.t0, s))
            time.sleep(0.05)

    def stop(self) -> str:
        self.done.set()
        self.thread.join(timeout=5)
        ns, addr, dev = self.what
        steps = ", ".join(f"{s} at {t:.2f} s" for t, s in self.states[:12])
        more = f" ... ({len(self.states)} changes)" if len(self.states) > 12 else ""
        return f"[{ns}] neighbour entry {addr} dev {dev} during the traffic (ip neigh, polled): {steps}{more}"


# --------------------------------------------------------------------------
# captures
# --------------------------------------------------------------------------
class Captures:
    def __init__(self, lab: Lab, outdir: Path, ifaces: list[str]):
        self.lab, self.outdir, self.ifaces = lab, outdir, ifaces
        self.procs: list[tuple[str, subprocess.Popen, Path]] = []
        self.dumpcap = shutil.which("dumpcap")
        self.stats: dict[str, str] = {}

    def start(self) -> None:
        jobs = [(f"{i}.pcap", ["tcpdump", *TCPDUMP_OPTS, "-i", i, "-w"]) for i in self.ifaces]
        jobs.append(("any.pcap", ["tcpdump", *TCPDUMP_OPTS, "-i", "any", "-w"]))
        if self.dumpcap:
            cmd = ["dumpcap", *DUMPCAP_OPTS]
            for i in self.ifaces:
                cmd += ["-i", i]
            jobs.append(("all.pcapng", cmd + ["-w"]))
        for name, cmd in jobs:
            err = self.outdir / f".{name}.stderr"
            fh = open(err, "w")
            p = self.lab.popen(
                "host", *cmd, str(self.outdir / name), stdout=subprocess.DEVNULL, stderr=fh
            )
            fh.close()
            self.procs.append((name, p, err))
        deadline = time.monotonic() + 10
        for name, p, err in self.procs:
            while True:
                text = err.read_text(errors="replace")
                if "listening on" in text or "Capturing on" in text or "File:" in text:
                    break
                if p.poll() is not None:
                    raise LabError(f"capture {name} exited: {text.strip()}")
                if time.monotonic() > deadline:
                    raise LabError(f"capture {name} did not start: {text.strip()}")
                time.sleep(0.05)
        time.sleep(0.5)

    def stop(self) -> None:
        for _name, p, _err in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for name, p, err in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
            lines = [
                ln.strip()
                for ln in err.read_text(errors="replace").splitlines()
                if "dropped" in ln or "captured" in ln or "received" in ln
            ]
            self.stats[name] = "; ".join(lines)
            err.unlink()


# --------------------------------------------------------------------------
# derived forms (pure struct)
# --------------------------------------------------------------------------
def read_pcap(path: Path):
    data = path.read_bytes()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        end = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        end = ">"
    else:
        raise LabError(f"{path}: not a pcap file")
    _, _vmaj, _vmin, _, _, snap, lt = struct.unpack(end + "IHHiIII", data[:24])
    recs, off = [], 24
    while off + 16 <= len(data):
        ts, tf, cap, orig = struct.unpack(end + "IIII", data[off : off + 16])
        recs.append((ts, tf, orig, data[off + 16 : off + 16 + cap]))
        off += 16 + cap
    return magic, end, snap, lt & 0xFFFF, recs


def write_pcap(path: Path, magic: bytes, end: str, snap: int, linktype: int, recs) -> None:
    out = [magic + struct.pack(end + "HHiIII", 2, 4, 0, 0, snap, linktype)]
    for ts, tf, orig, body in recs:
        out.append(struct.pack(end + "IIII", ts, tf, len(body), orig) + body)
    path.write_bytes(b"".join(out))


def derive_raw(src: Path, dst: Path) -> int:
    """EN10MB -> LINKTYPE_RAW (101): strip Ethernet (and VLAN) headers, keep IP only."""
    magic, end, snap, lt, recs = read_pcap(src)
    if lt != 1:
        raise LabError(f"{src}: linktype {lt}, expected EN10MB")
    out = []
    for ts, tf, orig, body in recs:
        off = 12
        while len(body) >= off + 2 and body[off : off + 2] in (b"\x81\x00", b"\x88\xa8"):
            off += 4
        et = body[off : off + 2]
        if et in (b"\x08\x00", b"\x86\xdd"):
            out.append((ts, tf, orig - off - 2, body[off + 2 :]))
    write_pcap(dst, magic, end, snap, 101, out)
    return len(out)


def derive_sll1(src: Path, dst: Path) -> int:
    """LINUX_SLL2 (276) -> LINUX_SLL (113): same packets, interface index lost."""
    magic, end, snap, lt, recs = read_pcap(src)
    if lt != 276:
        raise LabError(f"{src}: linktype {lt}, expected LINUX_SLL2")
    out = []
    for ts, tf, orig, body in recs:
        proto, _res, _ifindex, hatype, pkttype, halen = struct.unpack("!HHIHBB", body[:12])
        addr = body[12:20]
        hdr = struct.pack("!HHH", pkttype, hatype, halen) + addr + struct.pack("!H", proto)
        out.append((ts, tf, orig - 4, hdr + body[20:]))
    write_pcap(dst, magic, end, snap, 113, out)
    return len(out)


# --------------------------------------------------------------------------
# independent counting with tshark
# --------------------------------------------------------------------------
# A packet's key: the first occurrence of each of these fields (so an ICMP
# error counts under its own addresses), never the TTL / hop limit.
FIELDS = [
    "frame.interface_name",
    "sll.ifindex",
    "sll.pkttype",
    "ip.src",
    "ip.dst",
    "ip.proto",
    "ip.ttl",
    "ip.id",
    "ipv6.src",
    "ipv6.dst",
    "ipv6.nxt",
    "ipv6.hlim",
    "icmp.type",
    "icmp.ident",
    "icmp.seq",
    "icmpv6.type",
    "icmpv6.echo.identifier",
    "icmpv6.echo.sequence_number",
    "udp.srcport",
    "udp.dstport",
    "udp.payload",
    "tcp.srcport",
    "tcp.seq_raw",
    "tcp.ack_raw",
]
KEY_FIELDS = [f for f in FIELDS[3:] if f not in ("ip.ttl", "ipv6.hlim")]
# A packet as an ICMP error quotes it (src, dst, protocol, IP ID, ICMP id+seq,
# ports, UDP payload, TCP seq): the LAST occurrence of each field, which for
# an ICMP error is the quoted packet and for any other packet the packet itself.
QUOTE4 = ["ip.src", "ip.dst", "ip.proto", "ip.id", "icmp.ident", "icmp.seq"]
QUOTE6 = [
    "ipv6.src",
    "ipv6.dst",
    "ipv6.nxt",
    "icmpv6.echo.identifier",
    "icmpv6.echo.sequence_number",
]
QUOTE_L4 = ["udp.srcport", "udp.dstport", "udp.payload", "tcp.srcport", "tcp.dstport", "tcp.seq"]
EXTRA_FIELDS = ["frame.time_epoch", "eth.src", "icmp.code", "icmpv6.code", "tcp.dstport", "tcp.seq"]
ALL_FIELDS = FIELDS + EXTRA_FIELDS
# raw TCP sequence numbers everywhere (inside ICMP errors tshark has no tcp.seq_raw)
TSHARK_OPTS = [
    "-o",
    "tcp.relative_sequence_numbers:FALSE",
    "-o",
    "tcp.analyze_sequence_numbers:FALSE",
]
ICMP4_ERRORS, ICMP6_ERRORS = {"3", "4", "5", "11", "12"}, {"1", "2", "3", "4", "137"}

UPLINK_IFACES = ("uplink", "br0")  # the host's link to the router (bridge-uplink: port and bridge)
HOST_MACS = {MAC["uplink"], tap_mac(1), tap_mac(2)}


@dataclasses.dataclass(slots=True)
class Row:
    """One frame of one file as tshark decodes it."""

    ifname: str  # pcapng interface name
    ifindex: str  # SLL2 interface index
    pkttype: str  # SLL/SLL2 packet type: "4" sent by the host, "0"-"3" received
    ethsrc: str
    time: float
    dst: str  # "" when not IP
    ttl: int | None
    key: tuple  # () when not IP
    qkey: tuple | None  # this packet as an ICMP error would quote it (None for errors)
    icmp: tuple[str, str, str] | None  # ("4" | "6", type, code) of the outer ICMP header
    sender: str  # outer source address
    quoted: tuple | None  # ICMP errors and redirects: the quoted packet's qkey


@dataclasses.dataclass(slots=True)
class Frame:
    cp: str  # capture point as pcaploop names it for this form
    iface: str | None  # the host interface it was captured on (None: folded)
    row: Row

    @property
    def dst(self) -> str:
        return self.row.dst

    @property
    def ttl(self) -> int | None:
        return self.row.ttl

    @property
    def key(self) -> tuple:
        return self.row.key


def is_te(row: Row) -> bool:
    """ICMP time-exceeded (IPv4 type 11, ICMPv6 type 3) with a quoted packet."""
    return (
        row.icmp is not None
        and row.quoted is not None
        and row.icmp[1] == ("11" if row.icmp[0] == "4" else "3")
    )


_ROWS: dict[tuple[str, int], list[Row]] = {}


def tshark_rows(path: Path) -> list[Row]:
    """Every frame of a file (cached by content: the noname and uplink-only
    forms reuse the per-interface files, any-noifmap the -i any file)."""
    data = path.read_bytes()
    ck = (f"{zlib.crc32(data):08x}", len(data))
    if ck in _ROWS:
        return _ROWS[ck]
    cmd = ["tshark", "-n", *TSHARK_OPTS, "-r", str(path), "-T", "fields", "-E", "separator=\t"]
    cmd += ["-E", "occurrence=a", "-E", "aggregator=;"]
    for f in ALL_FIELDS:
        cmd += ["-e", f]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise LabError(f"tshark {path}: {r.stderr.strip()}")
    rows = []
    for line in r.stdout.splitlines():
        cols = line.split("\t")
        allv = {
            f: (cols[i].split(";") if i < len(cols) and cols[i] else [])
            for i, f in enumerate(ALL_FIELDS)
        }
        first = {f: (v[0] if v else "") for f, v in allv.items()}
        last = {f: (v[-1] if v else "") for f, v in allv.items()}
        icmp = None
        if first["icmp.type"]:
            icmp = ("4", first["icmp.type"], first["icmp.code"])
        elif first["icmpv6.type"]:
            icmp = ("6", first["icmpv6.type"], first["icmpv6.code"])
        if first["ip.dst"]:
            dst, ttl, sender, fam = first["ip.dst"], int(first["ip.ttl"]), first["ip.src"], "4"
        elif first["ipv6.dst"]:
            dst, ttl, sender, fam = (
                first["ipv6.dst"],
                int(first["ipv6.hlim"]),
                first["ipv6.src"],
                "6",
            )
        else:
            dst, ttl, sender, fam = "", None, "", ""
        key = tuple(first[k] for k in KEY_FIELDS) if dst else ()
        qkey = quoted = None
        if dst:
            q = (fam, *(last[k] for k in (QUOTE4 if fam == "4" else QUOTE6) + QUOTE_L4))
            nested = len(allv["ip.src" if fam == "4" else "ipv6.src"]) >= 2
            error = icmp is not None and icmp[1] in (
                ICMP4_ERRORS if icmp[0] == "4" else ICMP6_ERRORS
            )
            if error and nested:
                quoted = q
            elif not error:
                qkey = q
        rows.append(
            Row(
                first["frame.interface_name"],
                first["sll.ifindex"],
                first["sll.pkttype"],
                first["eth.src"],
                float(first["frame.time_epoch"] or 0),
                dst,
                ttl,
                key,
                qkey,
                icmp,
                sender,
                quoted,
            )
        )
    _ROWS[ck] = rows
    return rows


def key_dst(key: tuple) -> str:
    """Destination address of a frame key (IPv4 dst or IPv6 dst)."""
    return key[1] or key[5]


def parse_iplink(text: str) -> dict[str, str]:
    m = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            m[parts[0].strip()] = parts[1].strip().split("@")[0]
    return m


def role_of(iface: str | None) -> str:
    """Role of a host interface (docs/design.md, *Words*)."""
    if iface in UPLINK_IFACES:
        return "uplink"
    if iface and iface.startswith("tap"):
        return "guest-link"
    return "unknown"


def host_sent(row: Row, host_macs: set[str]) -> bool | None:
    """Whether the host sent the frame (SLL packet type, else Ethernet source);
    None where the form records neither (LINKTYPE_RAW)."""
    if row.pkttype:
        return row.pkttype == "4"
    if row.ethsrc:
        return row.ethsrc in host_macs
    return None


def sender_class(addr: str) -> str | None:
    """Who an ICMP error's source address belongs to."""
    if addr in (G1_MAIN4, G1_MAIN6, G2_MAIN4, G2_MAIN6):
        return "guest"
    if addr in (HOST4, HOST6, PEER4, PEER6) or addr.startswith("fe80::ff:fe01:"):
        return "host"
    if addr in (ROUTER_LAN4, ROUTER_LAN6, ROUTER_CL4, ROUTER_CL6):
        return "router"
    return None


@dataclasses.dataclass
class Form:
    form: str
    fname: str  # expected file stem
    inputs: list[str]  # NAME=PATH or PATH, relative to the scenario dir
    ifmap: str | None
    merged: bool = False  # all interfaces folded into one capture point "any" (sll1)
    # how its capture points are named: "name" (NAME= or the file stem), "ifmap"
    # (SLL2 ifindex resolved by --ifmap), "ifindex" (SLL2 without --ifmap:
    # <stem>:if<N>), "ifname" (pcapng interface names)
    points: str = "name"
    # point name -> host interface (noname: capture-N -> uplink, tap101 ...)
    iface_of: dict[str, str] = dataclasses.field(default_factory=dict)
    uplink_only: bool = False  # only the uplink: loops behind it are inferred
    all_ifaces: list[str] = dataclasses.field(default_factory=list)  # pcapng: every interface block


def locate(form: Form, name: str, row: Row, iplink: dict[str, str]) -> tuple[str, str | None]:
    """(capture point name as pcaploop will name it, host interface)."""
    if form.merged:
        return name, None
    if form.points == "ifmap":
        n = iplink.get(row.ifindex, "ifindex" + row.ifindex)
        return n, n
    if form.points == "ifindex":
        return f"{name}:if{row.ifindex}", iplink.get(row.ifindex)
    if form.points == "ifname":
        return row.ifname, row.ifname
    return name, form.iface_of.get(name, name)


def load_form(sdir: Path, form: Form, iplink: dict[str, str]) -> tuple[list[Frame], dict[str, int]]:
    frames: list[Frame] = []
    records = {}
    for spec in form.inputs:
        name, _, rel = spec.rpartition("=")
        name = name or Path(rel).stem
        rows = tshark_rows(sdir / rel)
        records[rel] = len(rows)
        for row in rows:
            cp, iface = locate(form, name, row, iplink)
            frames.append(Frame(cp, iface, row))
    return frames, records


def dropper(lp: LoopPlan, entry: int) -> str:
    """Who receives the copy with TTL 1 (TTL arithmetic, docs/design.md, *What the
    kernel does*): host and guest (router) both decrement, so the copies alternate
    direction and the parity of the first copy on the link decides."""
    if lp.shape == "uplink":  # uplink in T (router -> host), out T-1, ...
        return "host" if entry % 2 else "router"
    # first copy on the guest link: host -> guest at T-1 (entered on the uplink)
    # or guest -> host at T (sent by the guest); TTL 1 goes the same way if it is odd
    first = entry - 1 if lp.origin == "uplink" else entry
    host_sends_ttl1 = (lp.origin == "uplink") == (first % 2 == 1)
    return "guest" if host_sends_ttl1 else "host"


def drop_keys(lp: LoopPlan) -> tuple[str, str]:
    return ("router", "host") if lp.shape == "uplink" else ("guest", "host")


def copies(lp: LoopPlan, merged: bool, entry: int) -> int:
    """Copies of one looping packet at the loop's capture points."""
    if lp.origin == "guest" or lp.shape == "uplink" or merged:
        return entry  # the first copy is at a loop point too
    return entry - 1  # tunnel: T-1 ... 1


def planned_entries(plan: Plan, lp: LoopPlan) -> collections.Counter:
    """Entry TTLs the plan sends to the loop's destination, and the least entry
    TTL that makes 3 copies at the loop's points (a looping packet)."""
    return collections.Counter(
        t for f in plan.flows if f.dst == lp.destination for t in f.entry_ttls()
    )


def min_looping_entry(lp: LoopPlan) -> int:
    # tunnel entered on the uplink: T-1 copies, 3 need T >= 4; otherwise T copies
    return 4 if (lp.shape == "tunnel" and lp.origin == "uplink") else 3


def te_messages(frames: list[Frame], qkeys: set) -> set[tuple[str, tuple]]:
    """Distinct ICMP / ICMPv6 time-exceeded messages quoting one of qkeys, by
    sender plus quoted packet: one message captured at two points counts once."""
    return {(f.row.sender, f.row.quoted) for f in frames if is_te(f.row) and f.row.quoted in qkeys}


def count_form(
    sdir: Path,
    form: Form,
    plan: Plan,
    iplink: dict[str, str],
    problems: list[str],
    truth: dict[str, dict],
) -> dict:
    frames, records = load_form(sdir, form, iplink)
    tag = form.form
    host_macs = HOST_MACS | plan.host_macs

    # roles: every capture point pcaploop will make for this form
    cps: dict[str, str | None] = {}
    has_ip: set[str] = set()
    for f in frames:
        cps.setdefault(f.cp, f.iface)
        if f.key:
            has_ip.add(f.cp)
    for i in form.all_ifaces:  # pcapng: interface blocks without packets are points too
        cps.setdefault(i, i)
    roles = {
        cp: ("unknown" if form.merged or cp not in has_ip else role_of(iface))
        for cp, iface in sorted(cps.items())
    }
    point_of = {iface: cp for cp, iface in cps.items() if iface}

    def points(names: list[str]) -> list[str]:
        if form.merged:
            return sorted({f.cp for f in frames})
        missing = [n for n in names if n not in point_of]
        if missing:
            problems.append(f"{tag}: no capture point for interface(s) {missing}")
        return sorted(point_of.get(n, n) for n in names)

    groups = collections.defaultdict(list)  # (cp, key) -> [ttl]
    for f in frames:
        if f.key:
            groups[(f.cp, f.key)].append(f.ttl)

    loops = []
    loop_dsts = {lp.destination for lp in plan.loops}
    for lp in plan.loops:
        planned = planned_entries(plan, lp)
        least = min_looping_entry(lp)
        expect_hist = {t: n for t, n in planned.items() if t >= least}
        dkeys = drop_keys(lp)
        dropped = dict.fromkeys(dkeys, 0)
        checks: list[str] = []
        if form.uplink_only:
            if lp.origin != "uplink":
                continue  # sent by the guest itself: never on the uplink
            # the loop is behind the capture point: which packets entered it is
            # the per-interface ground truth; each is seen once, coming in
            t_entry = truth[lp.destination]["entry"]
            seen: dict[tuple, int] = {}
            for f in frames:
                if (
                    f.key in t_entry
                    and f.iface in UPLINK_IFACES
                    and host_sent(f.row, host_macs) is False
                ):
                    seen[f.key] = max(seen.get(f.key, 0), f.ttl)
            bad = [k for k, t in seen.items() if t != t_entry[k]]
            if bad:
                problems.append(
                    f"{tag}: {lp.destination}: {len(bad)} packets enter with another TTL than the tunnel says"
                )
            if len(seen) != len(t_entry):
                problems.append(
                    f"{tag}: {lp.destination}: {len(seen)} looping packets on the uplink, {len(t_entry)} in the tunnel"
                )
            hist = collections.Counter(seen.values())
            looping_n = len(seen)
            obs = sum(t - 1 for t in seen.values())
            for t in seen.values():
                dropped[dropper(lp, t)] += 1
            qkeys = {truth[lp.destination]["qkey"][k] for k in seen}
            te = te_messages(frames, qkeys)
            after = (
                len(truth[lp.destination]["after"] & {f.key for f in frames}) if lp.stops else None
            )
            checks.append(
                f"{looping_n} packets seen entering on the uplink that looped in the tunnel "
                f"(per-interface ground truth); estimated copies sum(T-1) = {obs}"
            )
            kind, cpoints, step = "inferred", ["uplink"], None
        else:
            cpoints = points(lp.capture_points)
            pset = set(cpoints)
            per_pkt: dict[tuple, list[Frame]] = collections.defaultdict(list)
            for f in frames:
                if f.cp in pset and f.key and f.dst == lp.destination:
                    per_pkt[f.key].append(f)
            looping = {k: fl for k, fl in per_pkt.items() if len({f.ttl for f in fl}) >= 3}
            hist = collections.Counter()
            entry_of: dict[tuple, int] = {}
            short, dups, obs, xcheck, xbad = 0, 0, 0, 0, 0
            for k, fl in looping.items():
                ttls = sorted({f.ttl for f in fl})
                top = ttls[-1]
                t = (
                    top + 1
                    if (lp.shape == "tunnel" and lp.origin == "uplink" and not form.merged)
                    else top
                )
                entry_of[k] = t
                hist[t] += 1
                if ttls != list(range(1, copies(lp, form.merged, t) + 1)):
                    short += 1
                obs += len(ttls)
                dups += len(fl) - len(ttls)
                d = dropper(lp, t)
                dropped[d] += 1
                last = [f for f in fl if f.ttl == 1]
                hs = host_sent(last[0].row, host_macs) if last else None
                if hs is not None:
                    xcheck += 1
                    if (dkeys[0] if hs else "host") != d:
                        xbad += 1
            looping_n = len(looping)
            if short:
                problems.append(
                    f"{tag}: {lp.destination}: {short} packets lack rungs of their TTL ladder (capture loss?)"
                )
            if xbad:
                problems.append(
                    f"{tag}: {lp.destination}: the TTL-1 copy of {xbad} packets went the other way than TTL arithmetic says"
                )
            if lp.partial:
                if not looping_n or any(n > planned[t] for t, n in hist.items()):
                    problems.append(
                        f"{tag}: {lp.destination}: looping entry TTLs {dict(hist)} not within the plan {dict(expect_hist)}"
                    )
            elif dict(hist) != expect_hist:
                problems.append(
                    f"{tag}: {lp.destination}: looping packets by entry TTL {dict(sorted(hist.items()))}, "
                    f"the plan sends {dict(sorted(expect_hist.items()))}"
                )
            qkeys = {fl[0].row.qkey for fl in looping.values()}
            te = te_messages(frames, qkeys)
            # every time-exceeded must come from whoever TTL arithmetic says dropped it
            want = {fl[0].row.qkey: dropper(lp, entry_of[k]) for k, fl in looping.items()}
            wrong = [s for s, q in te if sender_class(s) != want[q]]
            if wrong:
                problems.append(
                    f"{tag}: {lp.destination}: {len(wrong)} time-exceeded from {sorted(set(wrong))}, "
                    "not from who TTL arithmetic says drops the packet"
                )
            predicted = sum(n * copies(lp, form.merged, t) for t, n in hist.items())
            checks.append(
                f"{looping_n} looping packets, sum of copies per packet over entry TTLs = {predicted} predicted, {obs} counted"
                + (
                    f", {dups} duplicate frames (same packet, same TTL, one point) counted once"
                    if dups
                    else ""
                )
                + (
                    f"; dropped_by from the parity of the entry TTL, cross-checked on the direction of the "
                    f"TTL-1 copy of {xcheck} packets"
                    if xcheck
                    else "; dropped_by from the parity of the entry TTL (this form records no direction)"
                )
            )
            after = None
            if lp.stops:
                end = max((f.row.time for fl in looping.values() for f in fl), default=0.0)
                rest: dict[tuple, list[Frame]] = collections.defaultdict(list)
                for f in frames:
                    if f.key and f.dst == lp.destination and f.key not in looping:
                        rest[f.key].append(f)
                after_keys = {
                    k
                    for k, fl in rest.items()
                    if len({f.ttl for f in fl}) == 1
                    and all(f.iface is None or f.iface in UPLINK_IFACES for f in fl)
                    and min(f.row.time for f in fl) > end
                }
                if set(rest) != after_keys:
                    problems.append(
                        f"{tag}: {lp.destination}: {len(set(rest) - after_keys)} packets neither looped nor "
                        "arrived after the loop ended without being forwarded"
                    )
                sent = sum(planned.values())
                if looping_n + len(after_keys) != sent:
                    problems.append(
                        f"{tag}: {lp.destination}: {looping_n} looped + {len(after_keys)} after the end != {sent} sent"
                    )
                after = len(after_keys)
                unreach = {
                    (f.row.sender, f.row.quoted)
                    for f in frames
                    if f.row.icmp
                    and f.row.icmp[0] == "4"
                    and f.row.icmp[1:] == ("3", "1")
                    and f.row.quoted
                }
                checks.append(
                    f"after the last looping copy {after} packets to {lp.destination} arrived on the uplink and "
                    f"were never forwarded into the guest link; the host answered with {len(unreach)} distinct ICMP "
                    "host-unreachable messages (rate-limited)"
                )
                if not after:
                    problems.append(
                        f"{tag}: {lp.destination}: the loop did not stop (no packet after its end)"
                    )
                if form.form == "per-interface":
                    truth.setdefault(lp.destination, {})["after"] = after_keys
            if form.form == "per-interface":
                truth.setdefault(lp.destination, {}).update(
                    entry=entry_of, qkey={k: fl[0].row.qkey for k, fl in looping.items()}
                )
            kind, step = "l3", (2 if form.merged else lp.ttl_step)
        doc = {
            "destination": lp.destination,
            "kind": kind,
            "capture_points": cpoints,
            "ttl_step": step,
            "looping_packets": looping_n,
            "observations": obs,
            "entry_ttl": next(iter(hist)) if len(hist) == 1 else None,
            "entry_ttls": {str(t): n for t, n in sorted(hist.items())},
            "origin": lp.origin,
            "dropped_by": dropped,
            "icmp_time_exceeded": len(te),
        }
        if after is not None:
            doc["after_end"] = {"packets": after}
        senders = sorted({s for s, _ in te})
        checks.append(
            f"{len(te)} distinct time-exceeded messages quote its looping packets"
            + (f" (from {', '.join(senders)})" if senders else "")
        )
        doc["_check"] = "; ".join(checks)
        loops.append(doc)

    bounces = []
    for dst, cp0 in plan.bounces:
        cp = points([cp0])[0] if not form.uplink_only else None
        if cp is None:
            continue  # the bounce is behind the uplink: nothing there says so
        pk = {key: ttls for (c, key), ttls in groups.items() if c == cp and key_dst(key) == dst}
        entry = next(f.entry_ttl for f in plan.flows if f.dst == dst)
        bad = [k for k, t in pk.items() if sorted(t) != [entry - 2, entry - 1]]
        if bad:
            problems.append(
                f"{tag}: bounce {dst} at {cp}: {len(bad)} packets not seen exactly at TTL "
                f"{entry - 1} and {entry - 2}"
            )
        sent = sum(f.count for f in plan.flows if f.dst == dst)
        if len(pk) != sent:
            problems.append(f"{tag}: bounce {dst} at {cp}: {len(pk)} packets, {sent} sent")
        bounces.append({"destination": dst, "capture_point": cp, "packets": len(pk)})
    # nothing else may loop: at most 2 TTLs (out and back) of one packet per point
    for (cp, key), ttls in groups.items():
        dst = key_dst(key)
        if dst not in loop_dsts and len(set(ttls)) >= 3:
            problems.append(
                f"{tag}: unexpected loop: {len(set(ttls))} TTLs of a packet to {dst} at {cp} "
                f"(TTLs {sorted(set(ttls), reverse=True)[:6]}...)"
            )
            break
    not_looping = []
    seen_dsts = {key_dst(k) for (_, k) in groups}
    for dst in plan.not_looping:
        if dst in plan.unreached:
            if dst in seen_dsts:
                problems.append(
                    f"{tag}: packets to {dst} reached the host, the plan says they cannot"
                )
        elif dst not in seen_dsts:
            if form.uplink_only:
                continue  # only ever on a guest link: not part of this form
            problems.append(f"{tag}: no packet to not_looping destination {dst} captured")
        not_looping.append(dst)
    return {
        "records": records,
        "roles": roles,
        "loops": loops,
        "bounces": bounces,
        "not_looping": not_looping,
        "frames": frames,
    }


# --------------------------------------------------------------------------
# scenarios
# --------------------------------------------------------------------------
G1_MAIN4, G1_MAIN6 = "203.0.113.101", "2001:db8:100::101"
G2_MAIN4, G2_MAIN6 = "203.0.113.102", "2001:db8:100::102"
DROP4, DROP6 = "203.0.113.7", "2001:db8:100::7"
DROP4B, DROP6B = "203.0.113.8", "2001:db8:100::8"
FAILOVER4 = "203.0.113.9"
N = 20  # packets per flow


def incident_flows(n: int = N) -> list[Flow]:
    return [
        Flow("client", DROP4, "icmp", 65, n),
        Flow("client", DROP4, "udp", 65, n),
        Flow("client", DROP4, "tcp", 65, n),
        Flow("client", G1_MAIN4, "icmp", 65, n // 2),
        Flow("client", G1_MAIN4, "udp", 65, n // 2),
    ]


def incident_guest(**kw) -> Guest:
    return Guest(1, G1_MAIN4, G1_MAIN6, dropped4=[DROP4], **kw)


def sc_healthy(lab: Lab) -> Plan:
    build(lab, [Guest(1, G1_MAIN4, G1_MAIN6, extra4=[DROP4], extra6=[DROP6])])
    flows = [
        Flow("client", DROP4, "icmp", 65, N),
        Flow("client", DROP4, "udp", 65, N),
        Flow("client", DROP4, "tcp", 65, N),
        Flow("client", G1_MAIN4, "icmp", 65, N // 2),
        Flow("client", DROP6, "icmp", 65, N // 2),
        Flow("client", G1_MAIN6, "udp", 65, N // 2),
    ]
    return Plan(
        flows,
        [],
        [],
        [DROP4, G1_MAIN4, DROP6, G1_MAIN6],
        ["tap101"],
        notes=[
            "guest1 still owns 203.0.113.7 and 2001:db8:100::7: every packet is forwarded once "
            "(uplink in at 64, tap101 out at 63) and answered"
        ],
    )


def sc_incident(lab: Lab) -> Plan:
    build(lab, [incident_guest()])
    return Plan(
        incident_flows(),
        [LoopPlan(DROP4, ["tap101"], 2, 64, "tunnel")],
        [],
        [G1_MAIN4],
        ["tap101"],
        notes=[
            "guest1 had 203.0.113.7/32 as a secondary address and dropped it "
            "(ip addr del) keeping ip_forward=1; the host still routes it into tap101"
        ],
    )


def sc_forwarding_off(lab: Lab) -> Plan:
    build(lab, [incident_guest(forward=False)])
    return Plan(
        incident_flows(),
        [],
        [],
        [DROP4, G1_MAIN4],
        ["tap101"],
        notes=[
            "as incident, but guest1 has ip_forward=0: it drops the packet for the address it "
            "no longer owns (tap101 sees it once, TTL 63) silently: a Linux guest with forwarding "
            "off sends no ICMP unreachable for it (ip_error only counts IpInAddrErrors)"
        ],
    )


def sc_two_guests(lab: Lab) -> Plan:
    build(
        lab,
        [
            Guest(1, G1_MAIN4, G1_MAIN6, dropped4=[DROP4], dropped6=[DROP6]),
            Guest(2, G2_MAIN4, G2_MAIN6, dropped4=[DROP4B], dropped6=[DROP6B]),
        ],
    )
    n = 5
    flows = [
        Flow("client", DROP4, "icmp", 65, n),
        Flow("client", DROP4, "udp", 65, n),  # enters 64
        Flow("router", DROP4B, "icmp", 255, n),
        Flow("router", DROP4B, "udp", 255, n),  # enters 255
        Flow("client", DROP6, "icmp", 129, n),
        Flow("client", DROP6, "udp", 129, n),  # enters 128
        Flow("client", DROP6B, "icmp", 255, n),
        Flow("client", DROP6B, "tcp", 255, n),  # enters 254
        Flow("client", G1_MAIN4, "icmp", 65, n),
        Flow("client", G2_MAIN6, "icmp", 65, n),
    ]
    loops = [
        LoopPlan(DROP4, ["tap101"], 2, 64, "tunnel"),
        LoopPlan(DROP4B, ["tap102"], 2, 255, "tunnel"),
        LoopPlan(DROP6, ["tap101"], 2, 128, "tunnel"),
        LoopPlan(DROP6B, ["tap102"], 2, 254, "tunnel"),
    ]
    return Plan(
        flows,
        loops,
        [],
        [G1_MAIN4, G2_MAIN6],
        ["tap101", "tap102"],
        notes=[
            "guest1 dropped 203.0.113.7 and 2001:db8:100::7, guest2 dropped 203.0.113.8 and "
            "2001:db8:100::8, both forward. Entry TTL / hop limit on the uplink: 203.0.113.7 64 "
            "(client sends 65), 2001:db8:100::7 128 (client sends 129), 2001:db8:100::8 254 "
            "(client sends 255, the maximum; the router decrements it), 203.0.113.8 255 (sent by "
            "the router itself from 192.0.2.1 with TTL 255: a locally originated packet is not "
            "decremented, so it is the only way to enter the host with 255)"
        ],
    )


def sc_rp_filter(lab: Lab) -> Plan:
    build(lab, [incident_guest()])
    lab.sysctl("host", "net.ipv4.conf.all.rp_filter=1", "net.ipv4.conf.tap101.rp_filter=1")
    return Plan(
        incident_flows(),
        [],
        [(DROP4, "tap101")],
        [DROP4, G1_MAIN4],
        ["tap101"],
        notes=[
            "incident with strict rp_filter on the host (all=1, tap101=1): the packet goes into "
            "tap101 with TTL 63, comes back with 62 and is dropped by reverse-path filtering "
            "(its source is reachable via the uplink, not tap101): a bounce"
        ],
    )


def sc_router_loop(lab: Lab) -> Plan:
    build(lab, [Guest(1, G1_MAIN4, G1_MAIN6)])
    # provider routes failover IP 203.0.113.9 to this host; the host has no
    # route for it any more (guest moved away) and sends it back by default
    lab.ip("router", "route", "add", f"{FAILOVER4}/32", "via", HOST4, "dev", "lan0")
    flows = [
        Flow("client", FAILOVER4, "icmp", 65, N),
        Flow("client", FAILOVER4, "udp", 65, N),
        Flow("client", G1_MAIN4, "icmp", 65, N // 2),
    ]
    return Plan(
        flows,
        [LoopPlan(FAILOVER4, ["uplink"], 2, 64, "uplink")],
        [],
        [G1_MAIN4],
        ["tap101"],
        notes=[
            "the router routes 203.0.113.9/32 via 192.0.2.10 (the host), the host has no route for "
            "it and returns it to its default gateway 192.0.2.1 through the same uplink: uplink "
            "copies TTL 64 (in), 63 (out), 62 (in) ... 1 (out) = 64 per packet; no guest involved"
        ],
    )


def sc_two_tunnels(lab: Lab) -> Plan:
    g1 = Guest(1, G1_MAIN4, G1_MAIN6)
    g2 = Guest(2, G2_MAIN4, G2_MAIN6, dropped4=[FAILOVER4])
    build(lab, [g1, g2])
    # a stale policy rule: packets for 203.0.113.9 coming back from guest2 go to guest1
    lab.ip(
        "host",
        "rule",
        "add",
        "iif",
        "tap102",
        "to",
        f"{FAILOVER4}/32",
        "lookup",
        "102",
        "pref",
        "1000",
    )
    host_route4(lab, FAILOVER4, g1, table="102")
    flows = [
        Flow("client", FAILOVER4, "icmp", 65, N),
        Flow("client", FAILOVER4, "udp", 65, N),
        Flow("client", G1_MAIN4, "icmp", 65, N // 2),
        Flow("client", G2_MAIN4, "icmp", 65, N // 2),
    ]
    return Plan(
        flows,
        [LoopPlan(FAILOVER4, ["tap101", "tap102"], 4, 64, "tunnel")],
        [],
        [G1_MAIN4, G2_MAIN4],
        ["tap101", "tap102"],
        notes=[
            "failover IP 203.0.113.9 moved to guest2 (host main table: /32 dev tap102), guest2 "
            "dropped it and forwards it back; a stale host policy rule (iif tap102 to "
            "203.0.113.9 lookup 102, table 102: /32 dev tap101) sends it into guest1, which "
            "forwards it back to the host, whose main table sends it to guest2 again. One cycle "
            "host->guest2->host->guest1 costs 4 TTL: tap102 out 63, in 62, tap101 out 61, in 60, "
            "... tap101 out 1 (guest1 drops it); 63 tunnel copies per packet over both taps"
        ],
    )


def fix_base(lab: Lab, v6: bool = False) -> tuple[Plan, str]:
    g = Guest(1, G1_MAIN4, G1_MAIN6, dropped4=[DROP4], dropped6=[DROP6] if v6 else [])
    build(lab, [g])
    dst = DROP6 if v6 else DROP4
    warm(lab, [Flow("client", dst, "icmp", 65, 1)])
    copies = probe_loop(lab, dst, "tap101")
    note = (
        f"before the fix 3 echoes to {dst} (client TTL 65) caused {copies} packets on tap101 "
        f"(rx+tx counters; a loop makes 63 per echo, plus the guest's ICMP time-exceeded)"
    )
    if copies < 3 * 30:
        raise LabError(f"pre-fix probe did not loop: only {copies} tap101 packets")
    return Plan([], [], [], [], ["tap101"], notes=[note]), dst


def apply_fix(lab: Lab, plan: Plan, ns: str, *args: str) -> None:
    lab.run(ns, *args)
    plan.fix_commands.append(f"[{ns}] " + " ".join(args))


def sc_fix_readd(lab: Lab) -> Plan:
    plan, _dst = fix_base(lab)
    apply_fix(lab, plan, "guest1", "ip", "addr", "add", f"{DROP4}/32", "dev", "eth0")
    plan.flows, plan.not_looping = incident_flows(), [DROP4, G1_MAIN4]
    plan.notes.append("after re-adding the address guest1 answers: forwarded once, no loop")
    return plan


def neigh_state(lab: Lab, ns: str, addr: str, dev: str) -> str:
    out = lab.run(ns, "ip", "neigh", "show", addr, "dev", dev, quiet=True).stdout.split()
    return out[-1] if out else "NONE"


def sc_fix_delroute(lab: Lab) -> Plan:
    plan, _dst = fix_base(lab)
    apply_fix(lab, plan, "host", "ip", "route", "del", f"{DROP4}/32", "dev", "tap101")
    apply_fix(lab, plan, "host", "ip", "neigh", "del", DROP4, "dev", "tap101")
    # The router still has the neighbour entry the host's proxy ARP gave it,
    # and the host now routes 203.0.113.7 to its default gateway, the router:
    # the loop moves to the uplink until that entry fails.
    before = tap_counters(lab, "uplink")
    send(lab, [Flow("client", DROP4, "icmp", 65, 1)])
    time.sleep(0.3)
    moved = tap_counters(lab, "uplink") - before
    state0 = neigh_state(lab, "router", DROP4, "lan0")
    t0 = time.monotonic()
    # drive the router's entry through STALE/DELAY/PROBE with TTL-1 echoes
    # (the host drops those: no loop) until it fails; the host no longer
    # proxy-answers because its route for the address now leaves by the uplink
    while neigh_state(lab, "router", DROP4, "lan0") not in ("FAILED", "INCOMPLETE", "NONE"):
        if time.monotonic() - t0 > 120:
            raise LabError("the router's neighbour entry for 203.0.113.7 did not fail within 120 s")
        lab.run("router", "ping", "-c", "1", "-t", "1", "-W", "0.5", DROP4, check=False, quiet=True)
        time.sleep(0.5)
    waited = time.monotonic() - t0
    plan.flows, plan.not_looping, plan.unreached = incident_flows(), [DROP4, G1_MAIN4], [DROP4]
    plan.notes.append(
        f"deleting the host's route does not stop the loop at once: the router keeps its proxy-ARP-learned "
        f"neighbour entry for 203.0.113.7 (state {state0}) and the host now routes the address to its "
        f"default gateway, so the loop moves to the uplink (host <-> router): one echo sent right after the "
        f"fix caused {moved} packets on the uplink (rx+tx counters). The host no longer proxy-answers "
        f"(its route for the address leaves by the uplink itself), so the entry failed after {waited:.0f} s "
        f"(REACHABLE for base_reachable_time 30 s +/- 50 %, DELAY 5 s, 3 unicast probes). The captures start "
        f"after that: the router ARPs for 203.0.113.7, nobody answers, packets are dropped by the router"
    )
    return plan


def sc_fix_noforward(lab: Lab) -> Plan:
    plan, _dst = fix_base(lab)
    apply_fix(lab, plan, "guest1", "sysctl", "-w", "net.ipv4.ip_forward=0")
    plan.flows, plan.not_looping = incident_flows(), [DROP4, G1_MAIN4]
    plan.notes.append(
        "with forwarding off guest1 drops the packet silently (tap101 sees it once, TTL 63)"
    )
    return plan


def sc_fix_rpfilter(lab: Lab) -> Plan:
    plan, _dst = fix_base(lab)
    apply_fix(lab, plan, "host", "sysctl", "-w", "net.ipv4.conf.all.rp_filter=1")
    apply_fix(lab, plan, "host", "sysctl", "-w", "net.ipv4.conf.tap101.rp_filter=1")
    plan.flows, plan.not_looping = incident_flows(), [DROP4, G1_MAIN4]
    plan.bounces = [(DROP4, "tap101")]
    plan.notes.append(
        "strict rp_filter turns the loop into a bounce: 2 tap101 copies (TTL 63 out, 62 in)"
    )
    return plan


NFT_SAME_IFACE = """table {family} pcaploop {{
  set hairpin {{ type ifname . ifname; elements = {{ {elements} }} }}
  chain forward {{
    type filter hook forward priority filter; policy accept;
    iifname . oifname @hairpin counter drop
  }}
}}
"""


def nft_fix(lab: Lab, plan: Plan, family: str, taps: list[str]) -> None:
    rules = NFT_SAME_IFACE.format(family=family, elements=", ".join(f'"{t}" . "{t}"' for t in taps))
    path = Path(tempfile.mkstemp(prefix="pcaploop-nft-", suffix=".nft")[1])
    try:
        path.write_text(rules)
        lab.run("host", "nft", "-f", str(path))
    finally:
        path.unlink()
    plan.fix_commands.append("[host] nft -f - <<EOF\n" + rules + "EOF")


def sc_fix_nft_ipv6(lab: Lab) -> Plan:
    plan, _dst = fix_base(lab, v6=True)
    nft_fix(lab, plan, "ip6", ["tap101"])
    plan.flows = [
        Flow("client", DROP6, "icmp", 65, N),
        Flow("client", DROP6, "udp", 65, N),
        Flow("client", DROP6, "tcp", 65, N),
        Flow("client", G1_MAIN6, "icmp", 65, N // 2),
    ]
    plan.not_looping = [DROP6, G1_MAIN6]
    plan.bounces = [(DROP6, "tap101")]
    plan.notes.append(
        "IPv6 has no rp_filter. An nftables forward rule dropping packets that leave by the "
        "tap they came in on (iifname . oifname in a set of tapN . tapN) turns the IPv6 loop "
        "into a bounce: tap101 hop limit 63 out, 62 in, dropped in the host's forward hook. "
        "Only IPv6 traffic is sent: the ip6 table does not cover IPv4"
    )
    return plan


def sc_fix_same_iface(lab: Lab) -> Plan:
    plan, _dst = fix_base(lab)
    nft_fix(lab, plan, "ip", ["tap101"])
    plan.flows, plan.not_looping = incident_flows(), [DROP4, G1_MAIN4]
    plan.bounces = [(DROP4, "tap101")]
    plan.notes.append(
        "the general fix: drop forwarded packets that leave by the interface they came in on "
        "(nft has no iif==oif comparison, so a set of tapN . tapN pairs); the loop becomes a "
        "bounce: tap101 TTL 63 out, 62 in, dropped"
    )
    return plan


# --------------------------------------------------------------------------
# scenarios: evidence, not names
# --------------------------------------------------------------------------
NDFAIL6 = "2001:db8:100::9"  # routed into tap101, nobody answers neighbour solicitations
SWEEP = [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 16, 24, 32, 48, 64, 100, 128, 160, 200, 254, 255]
# short neighbour timers on the host's tap (dynamic-neigh): REACHABLE 1-3 s after the
# last confirmation, DELAY 1 s, 2 unicast probes 0.5 s apart, then FAILED; a failed
# entry is re-solicited with one broadcast per packet that needs it
NEIGH_TIMERS = [
    ("base_reachable_time_ms", 2000),
    ("delay_first_probe_time", 1),
    ("ucast_solicit", 2),
    ("mcast_solicit", 1),
    ("retrans_time_ms", 500),
    ("gc_stale_time", 5),
]


def per_iface(frames: list[Frame], iface: str, dst: str | None = None) -> dict[tuple, list[Frame]]:
    """Frames at one host interface (optionally to one destination), by packet key."""
    out: dict[tuple, list[Frame]] = collections.defaultdict(list)
    for f in frames:
        if f.iface == iface and f.key and (dst is None or f.dst == dst) and not f.row.quoted:
            out[f.key].append(f)
    return out


def verify_traceroute(form: Form, frames: list[Frame]) -> tuple[list[str], list[str]]:
    if form.form != "per-interface":
        return [], []
    notes, problems = [], []
    for dst in (G1_MAIN4, G1_MAIN6):
        up = collections.Counter(
            max(f.ttl for f in fl)
            for fl in per_iface(frames, "uplink", dst).values()
            if not fl[0].row.icmp or fl[0].row.icmp[1] in ("8", "128")
        )
        tap = collections.Counter(len(fl) for fl in per_iface(frames, "tap101", dst).values())
        tap_ttl = collections.Counter(fl[0].ttl for fl in per_iface(frames, "tap101", dst).values())
        n = 6 if dst == G1_MAIN4 else 3  # probes per client TTL (IPv4: UDP and ICMP)
        want_up = dict.fromkeys(range(1, 6), n)  # client TTL 2..6 (TTL 1 dies at the router)
        want_tap = dict.fromkeys(range(1, 5), n)  # client TTL 3..6
        if dict(up) != want_up or dict(tap_ttl) != want_tap or set(tap) != {1}:
            problems.append(
                f"traceroute {dst}: uplink TTLs {dict(up)} (want {want_up}), tap101 TTLs {dict(tap_ttl)} "
                f"(want {want_tap}), copies per probe on tap101 {dict(tap)}"
            )
        te = {
            (f.row.sender, f.row.quoted)
            for f in frames
            if is_te(f.row) and f.row.quoted and f.row.quoted[2] == dst
        }
        senders = collections.Counter(s for s, _ in te)
        notes.append(
            f"tshark: probes to {dst} on the uplink by TTL {dict(sorted(up.items()))}, on tap101 by TTL "
            f"{dict(sorted(tap_ttl.items()))}, each once: no replica; time-exceeded for them by sender {dict(senders)}"
        )
    return notes, problems


def sc_traceroute(lab: Lab) -> Plan:
    build(lab, [Guest(1, G1_MAIN4, G1_MAIN6)])
    ttls = [t for t in range(1, 7) for _ in range(3)]
    flows = [
        Flow("client", G1_MAIN4, "udp", 1, 0, ttls=ttls, dport=33434, dport_step=True),
        Flow("client", G1_MAIN4, "icmp", 1, 0, ttls=ttls),
        Flow("client", G1_MAIN6, "udp", 1, 0, ttls=ttls, dport=33434, dport_step=True),
    ]
    return Plan(
        flows,
        [],
        [],
        [G1_MAIN4, G1_MAIN6],
        ["tap101"],
        gap=0.02,
        verify=verify_traceroute,
        notes=[
            "traceroute-style probes from the client to guest1's own addresses (no loop): UDP to port "
            "33434+k and ICMP echo, TTL / hop limit 1..6, 3 probes each. TTL 1 expires at the router, 2 at "
            "the host (time-exceeded from 192.0.2.10 / 2001:db8:1::10), 3..6 reach guest1 (TTL 1..4 on "
            "tap101), which answers with port unreachable / echo reply. Rising TTLs and time-exceeded from "
            "the router and the host are normal: every probe passes each capture point once"
        ],
    )


def verify_ttl_sweep(form: Form, frames: list[Frame]) -> tuple[list[str], list[str]]:
    if form.form != "per-interface":
        return [], []
    notes, problems = [], []
    for dst, flows in ((DROP4, 2), (DROP6, 1)):
        up = per_iface(frames, "uplink", dst)
        tap = per_iface(frames, "tap101", dst)
        seen = collections.Counter()
        for k, fl in up.items():
            t = max(f.ttl for f in fl)
            if t <= 3:
                ladder = sorted({f.ttl for f in tap.get(k, [])}, reverse=True)
                if ladder != list(range(t - 1, 0, -1)):
                    problems.append(f"ttl-sweep {dst}: entry TTL {t}: guest-link TTLs {ladder}")
                seen[t] += 1
        want = dict.fromkeys((1, 2, 3), flows)
        if dict(seen) != want:
            problems.append(
                f"ttl-sweep {dst}: short-lived packets by entry TTL {dict(seen)}, want {want}"
            )
        notes.append(
            f"tshark {dst}: entry TTL 1: {seen[1]} packets, no guest-link copy; TTL 2: {seen[2]}, one copy "
            f"(TTL 1, guest drops); TTL 3: {seen[3]}, two copies (2 out, 1 back, host drops)"
        )
    return notes, problems


def sc_ttl_sweep(lab: Lab) -> Plan:
    build(lab, [Guest(1, G1_MAIN4, G1_MAIN6, dropped4=[DROP4], dropped6=[DROP6])])
    flows = [
        # the router's own packets are not decremented before the host: entry TTL = sent TTL
        Flow("router", DROP4, "icmp", 1, 0, ttls=SWEEP),
        Flow("router", DROP4, "udp", 1, 0, ttls=SWEEP),
        # IPv6 from the client (the router's own source is on-link with the uplink and would
        # draw redirects, ipv6-redirect-nd's business): hop limit t+1 enters with t, up to 254
        Flow("client", DROP6, "icmp", 2, 0, ttls=[t + 1 for t in SWEEP if t < 255]),
        Flow("client", G1_MAIN4, "icmp", 65, 5),
    ]
    return Plan(
        flows,
        [
            LoopPlan(DROP4, ["tap101"], 2, None, "tunnel"),
            LoopPlan(DROP6, ["tap101"], 2, None, "tunnel"),
        ],
        [],
        [G1_MAIN4],
        ["tap101"],
        gap=0.02,
        sll1=False,
        verify=verify_ttl_sweep,
        notes=[
            "guest1 dropped 203.0.113.7 and 2001:db8:100::7 and forwards; packets to them enter the uplink "
            f"with TTL / hop limit {', '.join(map(str, SWEEP))} (IPv6 up to 254). Entry TTL T makes T-1 "
            "guest-link copies. T=1: the host drops it (time-exceeded from the host), no guest-link copy. "
            "T=2: one copy (TTL 1, the guest drops it). T=3: two copies (2 out, 1 back, the host drops it). "
            "Neither T=2 nor T=3 passes one point twice in one direction, so they have no replica and are "
            "not looping packets; T=3 is no bounce either: its return expired, no filter dropped it. T>=4 "
            "loop: looping_packets = count(T>=4), observations = sum(T-1), dropped by the guest when T is "
            "even, the host when T is odd. No sll1 form: folded into one point, T=3 (uplink in 3, tap in 1) "
            "looks like a replica, as a bounce does"
        ],
    )


def verify_drop_midway(form: Form, frames: list[Frame]) -> tuple[list[str], list[str]]:
    if form.form != "per-interface":
        return [], []
    notes, problems = [], []
    tap = per_iface(frames, "tap101", DROP4)
    up = per_iface(frames, "uplink", DROP4)
    delivered = [k for k, fl in tap.items() if sorted(f.ttl for f in fl) == [63]]
    looped = [k for k, fl in tap.items() if len({f.ttl for f in fl}) >= 3]
    if len(delivered) + len(looped) != 3 * DROP_MIDWAY_N or not delivered or not looped:
        problems.append(
            f"drop-midway: {len(delivered)} delivered + {len(looped)} looped != {3 * DROP_MIDWAY_N} sent"
        )
    last_ok = max((f.row.time for k in delivered for f in up.get(k, [])), default=0.0)
    first_loop = min((f.row.time for k in looped for f in up.get(k, [])), default=0.0)
    if delivered and looped and last_ok >= first_loop:
        problems.append(
            "drop-midway: a packet delivered normally arrived after the first looping one"
        )
    answers = collections.Counter()
    for f in frames:
        if f.iface == "uplink" and f.row.sender == DROP4 and not f.row.quoted:
            p = f.key[2]
            answers[{"1": "echo replies", "17": "UDP replies", "6": "TCP RST"}.get(p, p)] += 1
    notes.append(
        f"tshark: {len(delivered)} packets to 203.0.113.7 crossed tap101 once (TTL 63) before the drop and "
        f"were answered ({', '.join(f'{v} {k}' for k, v in sorted(answers.items()))} leaving by the uplink, "
        f"the last {first_loop - last_ok:.3f} s before the first looping one arrived); {len(looped)} sent after "
        "it looped. Delivered packets are not looping packets, in any form"
    )
    return notes, problems


DROP_MIDWAY_N = 30  # packets per flow


def sc_drop_midway(lab: Lab) -> Plan:
    build(lab, [Guest(1, G1_MAIN4, G1_MAIN6, extra4=[DROP4])])
    p = lab.popen(
        "guest1",
        sys.executable,
        "-c",
        RESPONDER,
        DROP4,  # bound to the address: replies come from it, not from the guest's main address
        "5002",
        str(SENDER_TIMEOUT),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    if p.stdout is None or p.stdout.readline().strip() != "ready":
        raise LabError("the UDP echo responder in guest1 did not start")
    n = DROP_MIDWAY_N
    flows = [
        Flow("client", DROP4, "icmp", 65, n),
        Flow("client", DROP4, "udp", 65, n, dport=5002),
        Flow("client", DROP4, "tcp", 65, n, dport=5003),
        Flow("client", G1_MAIN4, "icmp", 65, 10),
    ]
    return Plan(
        flows,
        [LoopPlan(DROP4, ["tap101"], 2, 64, "tunnel", partial=True)],
        [],
        [G1_MAIN4],
        ["tap101"],
        gap=0.02,
        during=[(1.0, "guest1", ["ip", "addr", "del", f"{DROP4}/32", "dev", "eth0"])],
        verify=verify_drop_midway,
        notes=[
            "guest1 owns 203.0.113.7 at first and answers (ICMP echo replies, a UDP echo responder on port "
            "5002, TCP RST for SYNs to port 5003); 1 s into the traffic it drops the address (ip addr del, "
            "ip_forward stays 1) and the same flows loop on tap101. looping_packets = packets sent after the "
            "drop (tshark: >= 3 tunnel copies), the rest crossed tap101 once"
        ],
    )


def sc_dynamic_neigh(lab: Lab) -> Plan:
    build(lab, [Guest(1, G1_MAIN4, G1_MAIN6, extra4=[DROP4], dynamic4=True)])
    lab.sysctl("host", *(f"net.ipv4.neigh.tap101.{k}={v}" for k, v in NEIGH_TIMERS))
    # the host resolves 203.0.113.7 while guest1 still owns it, then guest1 drops it
    lab.run("client", "ping", "-c", "1", "-W", "2", DROP4)
    state0 = neigh_state(lab, "host", DROP4, "tap101")
    lab.ip("guest1", "addr", "del", f"{DROP4}/32", "dev", "eth0")
    flows = [
        Flow("client", DROP4, "icmp", 33, 40),
        Flow("client", DROP4, "udp", 33, 40),
        Flow("client", G1_MAIN4, "icmp", 65, 10),
    ]
    return Plan(
        flows,
        [LoopPlan(DROP4, ["tap101"], 2, 32, "tunnel", partial=True, stops=True)],
        [],
        [G1_MAIN4],
        ["tap101"],
        gap=0.1,
        watch_neigh=("host", DROP4, "tap101"),
        notes=[
            "tap101 uses ordinary ARP on both ends (no permanent entries). The host resolved 203.0.113.7 "
            f"while guest1 owned it (entry {state0}), then guest1 dropped it keeping ip_forward=1. Host "
            "neighbour timers on tap101: "
            + ", ".join(f"{k}={v}" for k, v in NEIGH_TIMERS)
            + ". The loop runs while the stale entry is still used (REACHABLE, STALE, DELAY, PROBE: "
            "forwarded with the old MAC); the unicast probes go unanswered, the entry FAILS and the loop "
            "stops by itself: later packets wait for a broadcast ARP nobody answers and are dropped with "
            "ICMP host unreachable. TTL 33 from the client (enters 32: 31 tunnel copies) keeps the files small. "
            "looping_packets = packets with >= 3 tunnel copies; after_end.packets = packets to 203.0.113.7 "
            "that arrived on the uplink after the last looping copy and were never forwarded into tap101"
        ],
    )


def verify_bridge(form: Form, frames: list[Frame]) -> tuple[list[str], list[str]]:
    notes, problems = [], []
    if form.form in ("any", "any-noifmap"):
        port = {(f.key, f.ttl): f.row.time for f in frames if f.iface == "uplink" and f.key}
        dup = [
            abs(f.row.time - port[(f.key, f.ttl)])
            for f in frames
            if f.iface == "br0" and (f.key, f.ttl) in port
        ]
        n_port = sum(1 for f in frames if f.iface == "uplink" and f.key)
        if not dup:
            problems.append("bridge-uplink: no frame recorded on both the port and the bridge")
        notes.append(
            f"tshark: {len(dup)} of {n_port} IP frames on the port uplink recorded again on the bridge br0 "
            f"(same packet, same TTL, at most {max(dup, default=0) * 1e6:.0f} us apart): duplicates, "
            "one packet each; the loop is on tap101 only"
        )
    elif form.merged:
        seen = collections.Counter((f.key, f.ttl) for f in frames if f.key)
        dups = sum(n - 1 for n in seen.values())
        notes.append(
            f"tshark: {dups} duplicate frames (same packet, same TTL) in the folded capture: port and "
            "bridge copies of uplink frames; counted once"
        )
    return notes, problems


def sc_bridge_uplink(lab: Lab) -> Plan:
    build(lab, [incident_guest()])
    h = "host"
    # the uplink becomes a port of bridge br0, which takes its MAC and the host's addresses
    lab.ip(h, "addr", "flush", "dev", "uplink")
    lab.ip(
        h, "link", "add", "br0", "address", MAC["uplink"], "type", "bridge",
        "stp_state", "0", "forward_delay", "0", "mcast_snooping", "0",
    )  # fmt: skip
    lab.sysctl(h, "net.ipv6.conf.br0.accept_dad=0")
    lab.ip(h, "link", "set", "uplink", "master", "br0")
    lab.ip(h, "link", "set", "br0", "up")
    lab.ip(h, "addr", "add", f"{HOST4}/24", "dev", "br0")
    lab.ip(h, "-6", "addr", "add", f"{HOST6}/64", "dev", "br0", "nodad")
    lab.ip(h, "route", "replace", "default", "via", ROUTER_LAN4, "dev", "br0")
    lab.ip(h, "-6", "route", "replace", "default", "via", ROUTER_LAN6, "dev", "br0")
    lab.sysctl(h, "net.ipv4.conf.br0.proxy_arp=1", "net.ipv6.conf.br0.proxy_ndp=1")
    lab.ip(h, "-6", "neigh", "add", "proxy", G1_MAIN6, "dev", "br0")
    return Plan(
        incident_flows(),
        [LoopPlan(DROP4, ["tap101"], 2, 64, "tunnel")],
        [],
        [G1_MAIN4],
        ["tap101"],
        verify=verify_bridge,
        notes=[
            "as incident, but the host's uplink is a port of the Linux bridge br0 (STP off, same MAC), "
            "which holds the host's addresses, proxy ARP and proxy NDP; tcpdump -i any records each "
            "uplink frame twice, on the port and on the bridge (roles: both uplink). The loop counts are "
            "those of incident; uplink.pcap and the pcapng capture the port"
        ],
    )


def verify_ipv6_nd(form: Form, frames: list[Frame]) -> tuple[list[str], list[str]]:
    notes, problems = [], []
    redirects: list[Frame] = []
    ns: list[Frame] = []
    unreach = set()
    for f in frames:
        ic = f.row.icmp
        if not ic or ic[0] != "6":
            continue
        if ic[1] == "137":
            redirects.append(f)
        elif ic[1] == "135" and f.dst == "ff02::1:ff00:9":
            ns.append(f)
        elif ic[1:] == ("1", "3") and f.row.quoted:
            unreach.add((f.row.sender, f.row.quoted))
    parts = []
    if redirects:
        t = sorted(f.row.time for f in redirects)
        bursts = 1 + sum(1 for x, y in itertools.pairwise(t) if y - x > 0.1)
        parts.append(
            f"{len(redirects)} ICMPv6 redirects (type 137, hop limit "
            f"{'/'.join(str(h) for h in sorted({f.ttl for f in redirects}))}) from "
            f"{'/'.join(sorted({f.row.sender for f in redirects}))} to the on-link source "
            f"{'/'.join(sorted({f.dst for f in redirects}))} at {'/'.join(sorted({f.cp for f in redirects}))}, "
            f"quoting {len({f.row.quoted for f in redirects})} distinct looping packets to "
            f"{'/'.join(sorted({f.row.quoted[2] for f in redirects if f.row.quoted}))}, in {bursts} "
            f"bursts over {t[-1] - t[0]:.2f} s (the per-source rate limit: a burst, then about 1/s); "
            "one looping packet draws several redirects, quoted at falling hop limits"
        )
    if ns:
        t = sorted(f.row.time for f in ns)
        parts.append(
            f"{len(ns)} neighbour solicitations for {NDFAIL6} (to ff02::1:ff00:9, hop limit "
            f"{'/'.join(str(h) for h in sorted({f.ttl for f in ns}))}, identical bytes) over {t[-1] - t[0]:.2f} s"
        )
    if unreach:
        parts.append(
            f"{len(unreach)} distinct ICMPv6 address-unreachable errors (type 1 code 3) for packets to "
            f"{NDFAIL6}, from {'/'.join(sorted({s for s, _ in unreach}))}"
        )
    if parts:
        notes.append(
            "tshark, this form: "
            + "; ".join(parts)
            + ". None is a loop: each repeats at the same hop limit, no copy has a lower one"
        )
    if form.form == "per-interface" and not (redirects and ns and unreach):
        problems.append(
            f"ipv6-redirect-nd: the kernel sent {len(redirects)} redirects, {len(ns)} NS, "
            f"{len(unreach)} address-unreachable: need all three"
        )
    return notes, problems


def sc_ipv6_redirect_nd(lab: Lab) -> Plan:
    build(lab, [Guest(1, G1_MAIN4, G1_MAIN6, dropped6=[DROP6, DROP6B])])
    # a route into tap101 without a neighbour entry: the host solicits, nobody answers
    lab.ip("host", "-6", "route", "add", f"{NDFAIL6}/128", "dev", "tap101")
    lab.ip("host", "-6", "neigh", "add", "proxy", NDFAIL6, "dev", "uplink")
    n = 15
    flows = [
        Flow("guest1", DROP6, "icmp", 64, n),
        Flow("guest1", DROP6, "udp", 64, n),
        Flow("client", DROP6B, "icmp", 65, n),
        Flow("client", DROP6B, "udp", 65, n),
        Flow("client", NDFAIL6, "udp", 65, 60),
    ]
    return Plan(
        flows,
        [
            LoopPlan(DROP6, ["tap101"], 2, 64, "tunnel", origin="guest"),
            LoopPlan(DROP6B, ["tap101"], 2, 64, "tunnel"),
        ],
        [],
        [G1_MAIN6, NDFAIL6, "ff02::1:ff00:9", CLIENT6],
        ["tap101"],
        gap=0.05,
        verify=verify_ipv6_nd,
        notes=[
            "guest1 dropped 2001:db8:100::7 and ::8 and forwards (IPv6). guest1 itself sends to ::7 (hop "
            "limit 64, from its main address 2001:db8:100::101): the packets appear first on tap101 "
            "guest -> host at 64 and loop (64 copies each, origin guest, never on the uplink). Each time "
            "the host sends a copy back out of the tap it came in on, and the source is on-link there, "
            "so the host's kernel sends ICMPv6 redirects (rate-limited per source). The client's packets "
            "to ::8 loop the usual way (enter 64, 63 copies, from the uplink; the client is not on-link: no "
            "redirect). The host also routes ::9 into tap101 without a neighbour entry: it multicasts "
            "neighbour solicitations nobody answers and returns ICMPv6 address unreachable to the client. "
            "Redirects, solicitations and unreachables repeat identical first bytes at the same hop "
            "limit: not loops, their destinations are in not_looping"
        ],
    )


SCENARIOS = {
    "healthy": (sc_healthy, "no loop: guest1 owns every address routed to it"),
    "incident": (
        sc_incident,
        "guest1 dropped 203.0.113.7, still forwards: host<->guest loop on tap101",
    ),
    "forwarding-off": (sc_forwarding_off, "as incident but guest ip_forward=0: no loop"),
    "two-guests": (
        sc_two_guests,
        "two guests dropped IPv4 and IPv6 addresses; entry TTL 64/128/254/255",
    ),
    "rp-filter": (sc_rp_filter, "incident with strict rp_filter on the host: a bounce, no loop"),
    "router-loop": (sc_router_loop, "host<->upstream router loop on the uplink, no guest"),
    "two-tunnels": (
        sc_two_tunnels,
        "loop host->guest2->host->guest1->host via a stale policy rule",
    ),
    "fix-readd": (sc_fix_readd, "incident, fixed by re-adding the address in the guest"),
    "fix-delroute": (sc_fix_delroute, "incident, fixed by deleting the host's /32 route"),
    "fix-noforward": (sc_fix_noforward, "incident, fixed by ip_forward=0 in the guest"),
    "fix-rpfilter": (
        sc_fix_rpfilter,
        "incident, fixed by strict rp_filter on the host (becomes a bounce)",
    ),
    "fix-nft-ipv6": (
        sc_fix_nft_ipv6,
        "IPv6 incident, fixed by an nftables same-interface forward drop",
    ),
    "fix-same-iface": (
        sc_fix_same_iface,
        "IPv4 incident, fixed by an nftables same-interface forward drop",
    ),
    "traceroute": (
        sc_traceroute,
        "traceroute-style probes (TTL 1..6) to guest1's own addresses: rising TTLs, no loop",
    ),
    "ipv6-redirect-nd": (
        sc_ipv6_redirect_nd,
        "IPv6 loops while the host sends redirects, neighbour solicitations and address unreachables",
    ),
    "dynamic-neigh": (
        sc_dynamic_neigh,
        "incident over ordinary ARP: the host's neighbour entry fails and the loop stops by itself",
    ),
    "bridge-uplink": (
        sc_bridge_uplink,
        "incident with the uplink a bridge port: -i any records uplink frames twice",
    ),
    "ttl-sweep": (
        sc_ttl_sweep,
        "looping packets entering with TTL 1..255: T<=3 do not loop, T>=4 do",
    ),
    "drop-midway": (
        sc_drop_midway,
        "guest1 answers, then drops the address mid-traffic: only later packets loop",
    ),
}


# --------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------
GENERATED = (
    "*.pcap",
    "*.pcapng",
    "*.expected.json",
    "iplink.txt",
    "commands.txt",
    "raw/*.pcap",
    "sll1/*.pcap",
)


def fix_ownership(sdir: Path) -> None:
    """tcpdump drops to its own user and dumpcap writes mode 0600: make the
    captures readable and owned like the output directory."""
    st = sdir.parent.stat()
    for p in sdir.iterdir():
        if p.is_file():
            os.chmod(p, 0o644)
            with contextlib.suppress(OSError):
                os.chown(p, st.st_uid, st.st_gid)


# timing-dependent scenarios (a drop midway, a neighbour entry failing): one more
# try when a check fails, e.g. the entry failed while a packet was circulating
RETRY = {"dynamic-neigh", "drop-midway"}


def noname_files(name: str, ifaces: list[str]) -> tuple[dict[str, str], list[str]]:
    """Neutral names capture-1.pcap, capture-2.pcap ... for the per-interface
    captures and the order they are passed in, shuffled per scenario (seeded
    by its name: deterministic, and not the uplink first everywhere)."""
    rng = random.Random(zlib.crc32(name.encode()))
    order = list(ifaces)
    rng.shuffle(order)
    files = {iface: f"capture-{i + 1}.pcap" for i, iface in enumerate(order)}
    inputs = [files[i] for i in ifaces]
    rng.shuffle(inputs)
    return files, inputs


FORM_NOTES = {
    "sll1": "LINUX_SLL has no interface index: all interfaces are one capture point 'any', "
    "so the uplink copy counts too (entry TTL T gives T copies) and the step between "
    "passes in one direction is 2; the folded point is uplink and guest link at once, so its "
    "role is unknown",
    "noname": "the per-interface captures copied to neutral names ({files}) and passed without "
    "NAME=: capture points are the file stems, roles must come from the packets",
    "any-noifmap": "the tcpdump -i any capture without --ifmap: capture points are <stem>:if<ifindex> "
    "({points}, from iplink.txt), roles must come from the packets",
    "uplink-only": "only the uplink capture: a loop behind it is kind inferred at capture point "
    "uplink with ttl_step null; looping_packets = packets seen entering on the uplink that looped "
    "in the guest link (ground truth from the per-interface tunnel captures: >= 3 copies), "
    "observations = the estimated copies sum(T-1) over their entry TTLs T, dropped_by from the "
    "parity of T, icmp_time_exceeded = distinct time-exceeded messages on the uplink quoting them",
}


def run_once(name: str, out: Path) -> tuple[list[str], str]:
    """Build, capture, derive and count one scenario; return (problems, forms made)."""
    func, _ = SCENARIOS[name]
    sdir = out / name
    sdir.mkdir(parents=True, exist_ok=True)
    for pat in GENERATED:
        for p in sdir.glob(pat):
            p.unlink()
    log: list[str] = []
    lab = Lab(log)
    try:
        plan = func(lab)
        warm(lab, plan.flows)
        caps = Captures(lab, sdir, ["uplink", *plan.taps])
        log.append("# captures")
        caps.start()
        try:
            log.append("# traffic")
            watch = NeighWatch(lab, plan.watch_neigh) if plan.watch_neigh else None
            procs = start_send(lab, plan.flows, plan.gap)
            t0 = time.monotonic()
            try:
                for delay, ns, argv in sorted(plan.during, key=lambda d: d[0]):
                    time.sleep(max(0.0, t0 + delay - time.monotonic()))
                    log.append(f"# while the traffic flows, after {delay:.1f} s")
                    lab.run(ns, *argv)
            finally:
                sent = wait_send(procs)
                if watch:
                    plan.notes.append(watch.stop())
            time.sleep(1.0)
        finally:
            caps.stop()
        iplink = lab.run("host", "ip", "-o", "link").stdout
        (sdir / "iplink.txt").write_text(iplink)
    finally:
        lab.teardown()
    fix_ownership(sdir)
    (sdir / "commands.txt").write_text(
        f"# scenario {name}: commands run by samples/lab/lab.py (namespace in brackets,"
        f" real names carry a per-run prefix)\n" + "\n".join(log) + "\n"
    )

    # derived forms
    ifaces = ["uplink", *plan.taps]
    (sdir / "raw").mkdir(exist_ok=True)
    for i in ifaces:
        derive_raw(sdir / f"{i}.pcap", sdir / "raw" / f"{i}.pcap")
    make_sll1 = plan.sll1 and not plan.bounces
    if make_sll1:
        (sdir / "sll1").mkdir(exist_ok=True)
        derive_sll1(sdir / "any.pcap", sdir / "sll1" / "any.pcap")
    for d in ("raw", "sll1"):
        if (sdir / d).is_dir() and not any((sdir / d).iterdir()):
            (sdir / d).rmdir()
    files, noname_inputs = noname_files(name, ifaces)
    for iface, fname in files.items():
        shutil.copyfile(sdir / f"{iface}.pcap", sdir / fname)
        os.chmod(sdir / fname, 0o644)
    iplink_map = parse_iplink(iplink)

    forms = [
        Form("per-interface", "per-interface", [f"{i}={i}.pcap" for i in ifaces], None),
        Form("any", "any", ["any.pcap"], "iplink.txt", points="ifmap"),
    ]
    if (sdir / "all.pcapng").exists():
        forms.append(
            Form("pcapng", "pcapng", ["all.pcapng"], None, points="ifname", all_ifaces=ifaces)
        )
    forms.append(Form("raw", "raw", [f"{i}=raw/{i}.pcap" for i in ifaces], None))
    if make_sll1:
        forms.append(Form("sll1", "sll1", ["any=sll1/any.pcap"], None, merged=True))
    forms.append(
        Form(
            "noname",
            "noname",
            noname_inputs,
            None,
            iface_of={Path(f).stem: i for i, f in files.items()},
        )
    )
    forms.append(Form("any-noifmap", "any-noifmap", ["any.pcap"], None, points="ifindex"))
    if any(lp.shape == "tunnel" and lp.origin == "uplink" for lp in plan.loops):
        forms.append(
            Form("uplink-only", "uplink-only", ["uplink=uplink.pcap"], None, uplink_only=True)
        )

    problems: list[str] = []
    for ns, counts in sent.items():
        for f, c in zip([x for x in plan.flows if x.ns == ns], counts):
            if c != f.count:
                problems.append(f"sender {ns}: {f.dst} {f.proto}: sent {c} of {f.count}")
    capture_notes = "; ".join(f"{k}: {v}" for k, v in caps.stats.items() if v)
    flows_txt = ", ".join(f.describe() for f in plan.flows)
    truth: dict[str, dict] = {}
    ref: dict[str, dict] = {}  # per-interface loops: every other form must agree
    for form in forms:
        res = count_form(sdir, form, plan, iplink_map, problems, truth)
        checks = [lp.pop("_check") for lp in res["loops"]]
        for lp in res["loops"]:
            if form.form == "per-interface":
                ref[lp["destination"]] = lp
                continue
            r = ref.get(lp["destination"], {})
            for k in ("looping_packets", "entry_ttls", "dropped_by", "after_end"):
                if lp.get(k) != r.get(k):
                    problems.append(
                        f"{form.form}: {lp['destination']}: {k} {lp.get(k)} != per-interface {r.get(k)}"
                    )
            te, rte = lp["icmp_time_exceeded"], r.get("icmp_time_exceeded", -1)
            if te > rte if form.uplink_only else te != rte:
                problems.append(
                    f"{form.form}: {lp['destination']}: {te} time-exceeded, per-interface {rte}"
                )
        notes = [
            *plan.notes,
            f"traffic: {flows_txt}",
            "counts: tshark -T fields (first occurrence of ip/ipv6 fields, so ICMP errors count under "
            "their own destination) on every input; a looping packet is a distinct (src, dst, proto, "
            "IP ID, ICMP id/seq, ports, UDP payload, TCP seq/ack) with >= 3 different TTLs at the loop's "
            "capture points; observations = its copies there, one per TTL (a duplicate frame with the "
            "same TTL counts once); entry TTL T = highest tunnel TTL + 1 (the uplink TTL where the "
            "uplink is a loop point, the first TTL on the guest link where the guest sent it itself); "
            "dropped_by: the guest (router) when the host sent the TTL-1 copy, the host when it received "
            "it, from the parity of T; icmp_time_exceeded: distinct ICMP/ICMPv6 time-exceeded messages "
            "at any capture point of the form quoting a looping packet, one per sender and quoted packet "
            "(quoted src, dst, protocol, IP ID, ICMP id/seq, ports, UDP payload, TCP seq; tshark last "
            "occurrence; the whole UDP payload matters: the lab's datagrams of one flow differ only "
            "from payload byte 17 on, beyond the first 24 bytes of L4, and IPv6 has no IP ID)",
            *(f"TTL arithmetic {lp['destination']}: {c}" for lp, c in zip(res["loops"], checks)),
        ]
        if form.merged:
            notes.append(FORM_NOTES["sll1"])
        elif form.form == "noname":
            notes.append(
                FORM_NOTES["noname"].format(
                    files=", ".join(
                        f"{f} = {i}.pcap" for i, f in sorted(files.items(), key=lambda x: x[1])
                    )
                )
            )
        elif form.form == "any-noifmap":
            notes.append(
                FORM_NOTES["any-noifmap"].format(
                    points=", ".join(
                        f"any:if{k} = {v}"
                        for k, v in sorted(iplink_map.items())
                        if f"any:if{k}" in res["roles"]
                    )
                )
            )
        elif form.uplink_only:
            notes.append(FORM_NOTES["uplink-only"])
        notes.append(
            "roles: uplink for the host's link to the router ("
            + " and ".join(UPLINK_IFACES)
            + "), guest-link for a tap to a guest, unknown for a point that carries no IP packet"
        )
        if plan.verify:
            more_notes, more_problems = plan.verify(form, res["frames"])
            notes += more_notes
            problems += [f"{form.form}: {p}" for p in more_problems]
        notes.append("capture statistics: " + (capture_notes or "none reported"))
        doc = {
            "scenario": name,
            "form": form.form,
            "inputs": form.inputs,
            "ifmap": form.ifmap,
            "records": res["records"],
            "roles": res["roles"],
            "loops": res["loops"],
            "bounces": res["bounces"],
            "not_looping": res["not_looping"],
            "fix_commands": plan.fix_commands,
            "notes": ". ".join(n.rstrip(".") for n in notes) + ".",
        }
        (sdir / f"{form.fname}.expected.json").write_text(json.dumps(doc, indent=1) + "\n")
    return problems, ", ".join(f.form for f in forms)


def run_scenario(name: str, out: Path) -> list[str]:
    """Run one scenario (timing-dependent ones get a second try); print its status."""
    if name == "fix-nft-ipv6" and shutil.which("nft") is None:
        print(f"{name}: skipped: nft (nftables) is not installed")
        return []
    t0 = time.monotonic()
    problems, made = run_once(name, out)
    retried = ""
    if problems and name in RETRY:
        retried = f", second try after: {problems[0]}"
        problems, made = run_once(name, out)
    status = "ok" if not problems else "FAILED"
    print(
        f"{name}: {status} in {time.monotonic() - t0:.1f}s ({made}){retried}"
        + "".join(f"\n  - {p}" for p in problems),
        flush=True,
    )
    return problems


README_HEAD = """# pcaploop samples

Real Linux kernel captures of the routing-loop incident (docs/design.md, *The incident*)
and of look-alikes, made in network namespaces by `samples/lab/lab.py`, with
golden expectations for `pcaploop analyze`.

## How they are made

`samples/lab/lab.py` (Python 3.11 stdlib, run as root) builds the topology of
docs/design.md, *What the kernel does*, in namespaces it creates (`client` - `router` - `host` -
`guest1`/`guest2`; the host<->guest links are veth pairs with permanent
neighbour entries on both ends, i.e. point-to-point links like tun/ppp, except
in `dynamic-neigh`, which uses ordinary ARP), applies the scenario, warms the
router's ARP/ND entries, starts the captures on the host, sends bounded
traffic from the client (in `two-guests` and `ttl-sweep` also from the
router, in `ipv6-redirect-nd` also from guest1) with a tiny raw/UDP socket
sender that can set the TTL per packet, runs the scenario's commands during
the traffic (`drop-midway` drops the address then), stops the captures,
deletes the namespaces, derives the `raw/` and `sll1/` forms with `struct`,
copies the per-interface captures to neutral names (`capture-N.pcap`), and
writes one `<form>.expected.json` per capture form.

Regenerate (about {minutes} minutes, needs root, ip, tcpdump, tshark; dumpcap and
nft are optional):

    sudo python3 samples/lab/lab.py --out samples            # all scenarios (rewrites this file)
    sudo python3 samples/lab/lab.py --out samples --scenario incident
    python3 samples/lab/lab.py --list
    python3 samples/lab/lab.py --readme samples               # rewrite this file only

The captures differ from run to run (timestamps, IP IDs, ICMP rate limits,
ARP/ND chatter, neighbour timers), so regenerate a scenario's files together,
never one file.

## Golden expectations

`<form>.expected.json` holds `inputs` (arguments for `pcaploop analyze`, run
in the scenario directory), `ifmap` (`--ifmap` file or null), `records` (frames
per input file, counted by tshark), `roles` (every capture point of the form,
named as pcaploop names it: `uplink` for the host's link to the router,
`guest-link` for a tap to a guest, `unknown` only for a point that carries no
IP packet, and for the folded `sll1` point, which is both), the expected
`loops`, `bounces`, `not_looping` destinations, the `fix_commands` of fix
scenarios and `notes` (how every number was obtained). Per loop: destination,
kind (`l3`, or `inferred` in `uplink-only`), capture_points, ttl_step (null
when inferred), looping_packets, observations, entry_ttl (null when the
packets enter with different TTLs), entry_ttls (looping packets per entry
TTL), origin (`uplink`, or `guest` when the guest sends the packets itself),
`dropped_by` (`{{"guest": n, "host": m}}`, for a host<->router loop
`{{"router": n, "host": m}}`: who received each looping packet's TTL-1 copy),
`icmp_time_exceeded` (distinct ICMP/ICMPv6 time-exceeded messages quoting
the loop's looping packets at any capture point of the form, one message
counted once even when captured at two points) and, where the loop stops by
itself (`dynamic-neigh`), `after_end` (`{{"packets": n}}`: packets to the
destination that arrived on the uplink after the loop ended and were not
forwarded into the guest link).

They come from the scenario plan, TTL arithmetic and `tshark -T fields` dumps
of the files, never from pcaploop: a looping packet is a distinct src, dst,
protocol, IP ID, ICMP id/seq, ports, UDP payload, TCP seq/ack with 3 or more
different TTLs at the loop's capture points; observations are its copies
there, one per TTL (a duplicate frame counts once); entry TTL T gives T-1
tunnel copies (T on the uplink for the host<->router loop, in the merged
`sll1` form, and for packets a guest sends itself); the TTL-1 copy goes to
the guest when T-1 is odd, else the host drops it; a time-exceeded message is
identified by its sender plus the quoted packet. The lab checks the tshark
counts against the arithmetic and the plan (entry TTL histogram, the
direction of every TTL-1 copy, who sent every time-exceeded), fails the
scenario on any mismatch or on an unexpected loop, and retries a
timing-dependent scenario (`drop-midway`, `dynamic-neigh`) once.

Forms (what users pass):

- `per-interface`: one tcpdump pcap per host interface (EN10MB), `NAME=PATH`.
- `any`: `tcpdump -i any` (LINUX_SLL2), capture points are ifindexes, names
  via `--ifmap iplink.txt`.
- `pcapng`: dumpcap, one interface block per interface.
- `raw`: the per-interface captures with the link header stripped (LINKTYPE_RAW).
- `sll1`: the `-i any` capture rewritten to LINUX_SLL: no interface index, so
  every interface is one capture point `any`, named on the command line. Not
  made for bounce scenarios or `ttl-sweep`: folded into one point, the uplink
  copy (in, TTL 64) and the bounced copy (in, TTL 62), or entry TTL 3 (in 3,
  back in 1), look like a replica.
- `noname`: the per-interface captures copied to neutral names
  `capture-N.pcap` (shuffled per scenario, not the uplink first everywhere)
  and passed without `NAME=`: capture points are the file stems and nothing
  in a name tells a role.
- `any-noifmap`: the `-i any` capture without `--ifmap`: capture points are
  `any:if<N>`.
- `uplink-only` (scenarios with a host<->guest loop): only `uplink=uplink.pcap`.
  The loop is behind the capture point: kind `inferred`, capture_points
  `["uplink"]`, ttl_step null, looping_packets = packets that entered the loop
  (from the per-interface ground truth; in `drop-midway` only those after the
  drop), observations = estimated copies, the sum of T-1, and
  icmp_time_exceeded as seen on the uplink.

Scenarios:

"""

FILE_DESC = {
    "uplink.pcap": "host `tcpdump {opts} -i uplink -w uplink.pcap` (EN10MB; in `bridge-uplink` the bridge port)",
    "any.pcap": "host `tcpdump {opts} -i any -w any.pcap` (LINUX_SLL2)",
    "all.pcapng": "host `dumpcap {dopts} -i uplink -i tapN... -w all.pcapng` (pcapng, one IDB per interface)",
    "iplink.txt": "host `ip -o link` after the capture (ifindex names for the SLL2 capture, `--ifmap`)",
    "commands.txt": "every command the lab ran for this scenario (namespace in brackets)",
}


def write_readme(out: Path, seconds: float | None = None) -> None:
    opts, dopts = " ".join(TCPDUMP_OPTS), " ".join(DUMPCAP_OPTS)
    old = (out / "README.md").read_text() if (out / "README.md").exists() else ""
    minutes = f"{seconds / 60:.0f}" if seconds else None
    if minutes is None:  # keep the figure of the last full run
        i = old.find("Regenerate (about ")
        minutes = old[i + 18 :].split(" ", 1)[0] if i >= 0 else "4"
    lines = [README_HEAD.format(minutes=minutes)]
    for k, (_, desc) in SCENARIOS.items():
        lines.append(f"- `{k}`: {desc}\n")
    lines.append("\n## Files\n\n")
    for k in SCENARIOS:
        sdir = out / k
        if not sdir.is_dir():
            continue
        for p in sorted(sdir.rglob("*")):
            if p.is_dir():
                continue
            rel = p.relative_to(out).as_posix()
            name = p.relative_to(sdir).as_posix()
            if name in FILE_DESC:
                d = FILE_DESC[name].format(opts=opts, dopts=dopts)
            elif name.startswith("raw/"):
                d = f"`{name[4:]}` rewritten by lab.py: Ethernet header stripped, non-IP frames dropped, LINKTYPE_RAW (101)"
            elif name.startswith("sll1/"):
                d = "`any.pcap` rewritten by lab.py: LINUX_SLL2 headers turned into LINUX_SLL (113), ifindex lost"
            elif name.endswith(".expected.json"):
                d = f"golden expectation for the `{name.removesuffix('.expected.json')}` form"
            elif name.startswith("capture-") and name.endswith(".pcap"):
                data = p.read_bytes()
                orig = next(
                    (
                        q.name
                        for q in sorted(sdir.glob("*.pcap"))
                        if not q.name.startswith("capture-") and q.read_bytes() == data
                    ),
                    "?",
                )
                d = f"copy of `{orig}` under a neutral name (the `noname` form)"
            elif name.endswith(".pcap"):
                d = f"host `tcpdump {opts} -i {p.stem} -w {name}` (EN10MB)"
            else:
                d = "lab output"
            lines.append(f"- `{rel}` ({p.stat().st_size} bytes, scenario `{k}`): {d}\n")
    lines.append(
        "\nAddresses are documentation ranges only (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, "
        "2001:db8::/32, link-local); all traffic stayed inside the lab's namespaces.\n"
    )
    (out / "README.md").write_text("".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, help="output directory (one subdirectory per scenario)")
    ap.add_argument(
        "--scenario", action="append", choices=list(SCENARIOS), help="repeatable; default all"
    )
    ap.add_argument("--list", action="store_true", help="list scenarios and exit")
    ap.add_argument(
        "--readme",
        type=Path,
        metavar="DIR",
        help="(re)write DIR/README.md describing DIR's files and exit",
    )
    args = ap.parse_args(argv)
    if args.readme:
        write_readme(args.readme)
        return 0
    if args.list:
        for k, (_, desc) in SCENARIOS.items():
            print(f"{k:16s} {desc}")
        return 0
    if args.out is None:
        ap.error("--out is required")
    why = netns_available()
    if why:
        print(f"lab: cannot create network namespaces: {why}")
        return 77

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    failed = []
    t0 = time.monotonic()
    try:
        for name in args.scenario or list(SCENARIOS):
            try:
                if run_scenario(name, args.out):
                    failed.append(name)
            except (LabError, subprocess.TimeoutExpired) as e:
                print(f"{name}: FAILED: {e}", flush=True)
                failed.append(name)
    except KeyboardInterrupt:
        print("lab: interrupted", file=sys.stderr)
        return 130
    took = time.monotonic() - t0
    write_readme(args.out, took if not args.scenario else None)
    print(f"lab: {took:.1f}s, " + (f"failed: {', '.join(failed)}" if failed else "all ok"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
