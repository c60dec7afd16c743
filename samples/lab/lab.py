#!/usr/bin/env python3
"""pcaploop lab: reproduce host <-> guest routing loops with the real kernel.

Builds each scenario in network namespaces it creates itself, sends bounded
traffic, captures it on the "host" with tcpdump (and dumpcap when present),
derives LINKTYPE_RAW and LINUX_SLL forms from the real captures, and writes
golden ``<form>.expected.json`` files computed from the scenario plan, TTL
arithmetic and tshark field dumps (never from pcaploop).

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
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
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
    if v6: s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, f["ttl"])
    else: s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, f["ttl"])
    # connected sockets: the kernel gives IPv4 packets a per-socket IP ID
    s.connect((f["dst"], f.get("dport", 0) if p == "udp" else 0))
    socks.append((f, s, v6, src))
sent = [0] * len(flows)
for k in range(max(f["count"] for f in flows)):
    for i, (f, s, v6, src) in enumerate(socks):
        if k >= f["count"] or time.monotonic() > deadline: continue
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
                s.send(pkt); sent[i] += 1; break
            except ConnectionRefusedError:
                # an ICMP port unreachable for an earlier datagram is reported
                # on the next send() of a connected UDP socket: send again
                continue
            except OSError as e:
                print("send error", f, e, file=sys.stderr); break
        time.sleep(gap)
print(json.dumps(sent))
"""


@dataclasses.dataclass
class Flow:
    ns: str  # "client" or "router"
    dst: str
    proto: str  # icmp | udp | tcp
    ttl: int  # TTL / hop limit set on the sender's socket
    count: int

    @property
    def entry_ttl(self) -> int:
        """TTL with which the packet arrives on the host's uplink."""
        return self.ttl - 1 if self.ns == "client" else self.ttl


@dataclasses.dataclass
class LoopPlan:
    destination: str
    capture_points: list[str]  # per-interface names
    ttl_step: int  # at one point and direction (per-interface)
    entry_ttl: int
    shape: str  # "tunnel" (host<->guest(s)) or "uplink" (host<->router)


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


def send(lab: Lab, flows: list[Flow]) -> dict[str, list[int]]:
    """Run one bounded sender per namespace in parallel; return what was sent."""
    procs = {}
    for ns in sorted({f.ns for f in flows}):
        spec = []
        for i, f in enumerate(x for x in flows if x.ns == ns):
            spec.append(
                {
                    "dst": f.dst,
                    "proto": f.proto,
                    "ttl": f.ttl,
                    "count": f.count,
                    "ident": 0x1000 + i,
                    "sport": 40000 + i,
                    "dport": 5001 + i,
                    "seq0": 1000000 * (i + 1),
                }
            )
        procs[ns] = lab.popen(
            ns,
            sys.executable,
            "-c",
            SENDER,
            json.dumps(spec),
            str(GAP),
            str(SENDER_TIMEOUT - 5),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
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


@dataclasses.dataclass
class Frame:
    cp: str
    dst: str
    ttl: int | None
    key: tuple


def tshark_frames(path: Path, cp_of) -> list[Frame]:
    cmd = [
        "tshark",
        "-n",
        "-r",
        str(path),
        "-T",
        "fields",
        "-E",
        "separator=\t",
        "-E",
        "occurrence=f",
    ]
    for f in FIELDS:
        cmd += ["-e", f]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise LabError(f"tshark {path}: {r.stderr.strip()}")
    frames = []
    for line in r.stdout.splitlines():
        v = dict(zip(FIELDS, line.split("\t")))
        cp = cp_of(v)
        if v.get("ip.dst"):
            dst, ttl = v["ip.dst"], int(v["ip.ttl"])
            key = tuple(v.get(k, "") for k in FIELDS[3:] if k not in ("ip.ttl", "ipv6.hlim"))
        elif v.get("ipv6.dst"):
            dst, ttl = v["ipv6.dst"], int(v["ipv6.hlim"])
            key = tuple(v.get(k, "") for k in FIELDS[3:] if k not in ("ip.ttl", "ipv6.hlim"))
        else:
            dst, ttl, key = "", None, ()
        frames.append(Frame(cp, dst, ttl, key))
    return frames


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


@dataclasses.dataclass
class Form:
    form: str
    fname: str  # expected file stem
    inputs: list[str]  # NAME=PATH or PATH, relative to the scenario dir
    ifmap: str | None
    merged: bool  # all interfaces folded into one capture point "any"


def count_form(
    sdir: Path, form: Form, plan: Plan, iplink: dict[str, str], problems: list[str]
) -> dict:
    frames: list[Frame] = []
    records = {}
    for spec in form.inputs:
        name, _, rel = spec.rpartition("=")
        name = name or Path(rel).stem
        if form.form == "any":
            cp_of = lambda v: iplink.get(v["sll.ifindex"], "ifindex" + v["sll.ifindex"])  # noqa: E731
        elif form.form == "pcapng":
            cp_of = lambda v: v["frame.interface_name"]  # noqa: E731
        else:
            cp_of = lambda v, n=name: n  # noqa: E731
        fr = tshark_frames(sdir / rel, cp_of)
        records[rel] = len(fr)
        frames += fr

    groups = collections.defaultdict(list)  # (cp, key) -> [ttl]
    for f in frames:
        if f.key:
            groups[(f.cp, f.key)].append(f.ttl)

    def cps(names):
        return ["any"] if form.merged else sorted(names)

    loops = []
    tag = f"{form.form}"
    loop_dsts = {lp.destination for lp in plan.loops}
    for lp in plan.loops:
        points = set(cps(lp.capture_points))
        per_pkt = collections.defaultdict(list)
        for (cp, key), ttls in groups.items():
            if cp in points and key_dst(key) == lp.destination:
                per_pkt[key] += ttls
        sent = sum(f.count for f in plan.flows if f.dst == lp.destination)
        expect_copies = lp.entry_ttl if (form.merged or lp.shape == "uplink") else lp.entry_ttl - 1
        short = [k for k, t in per_pkt.items() if sorted(t) != list(range(1, expect_copies + 1))]
        looping = sum(1 for t in per_pkt.values() if len(t) >= 3)
        obs = sum(len(t) for t in per_pkt.values())
        if looping != sent:
            problems.append(f"{tag}: {lp.destination}: {looping} looping packets, {sent} sent")
        if short:
            problems.append(
                f"{tag}: {lp.destination}: {len(short)} packets lack rungs of the TTL ladder "
                f"1..{expect_copies} (capture loss?)"
            )
        loops.append(
            {
                "destination": lp.destination,
                "kind": "l3",
                "capture_points": cps(lp.capture_points),
                "ttl_step": 2 if form.merged else lp.ttl_step,
                "looping_packets": looping,
                "observations": obs,
                "entry_ttl": lp.entry_ttl,
                "_check": f"{looping} x {expect_copies} = {looping * expect_copies} predicted, {obs} counted",
            }
        )
    bounces = []
    for dst, cp in plan.bounces:
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
    # nothing else may loop: at most 2 copies (out and back) of one packet per point
    for (cp, key), ttls in groups.items():
        dst = key_dst(key)
        if dst not in loop_dsts and len(ttls) >= 3:
            problems.append(
                f"{tag}: unexpected loop: {len(ttls)} copies of a packet to {dst} at {cp} "
                f"(TTLs {sorted(ttls, reverse=True)[:6]}...)"
            )
            break
    for dst in plan.not_looping:
        if dst in plan.unreached:
            if any(key_dst(k) == dst for (_, k) in groups):
                problems.append(
                    f"{tag}: packets to {dst} reached the host, the plan says they cannot"
                )
        elif not any(key_dst(k) == dst for (_, k) in groups):
            problems.append(f"{tag}: no packet to not_looping destination {dst} captured")
    return {"records": records, "loops": loops, "bounces": bounces}


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


def run_scenario(name: str, out: Path) -> list[str]:
    """Build, capture, derive and count one scenario; return verification problems."""
    func, _ = SCENARIOS[name]
    if name == "fix-nft-ipv6" and shutil.which("nft") is None:
        print(f"{name}: skipped: nft (nftables) is not installed")
        return []
    sdir = out / name
    sdir.mkdir(parents=True, exist_ok=True)
    for pat in GENERATED:
        for p in sdir.glob(pat):
            p.unlink()
    log: list[str] = []
    lab = Lab(log)
    t0 = time.monotonic()
    try:
        plan = func(lab)
        warm(lab, plan.flows)
        caps = Captures(lab, sdir, ["uplink", *plan.taps])
        log.append("# captures")
        caps.start()
        try:
            log.append("# traffic")
            sent = send(lab, plan.flows)
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
    (sdir / "raw").mkdir(exist_ok=True)
    for i in ["uplink", *plan.taps]:
        derive_raw(sdir / f"{i}.pcap", sdir / "raw" / f"{i}.pcap")
    bounce_only = bool(plan.bounces)
    if not bounce_only:
        (sdir / "sll1").mkdir(exist_ok=True)
        derive_sll1(sdir / "any.pcap", sdir / "sll1" / "any.pcap")
    for d in ("raw", "sll1"):
        if (sdir / d).is_dir() and not any((sdir / d).iterdir()):
            (sdir / d).rmdir()

    ifaces = ["uplink", *plan.taps]
    forms = [
        Form("per-interface", "per-interface", [f"{i}={i}.pcap" for i in ifaces], None, False),
        Form("any", "any", ["any.pcap"], "iplink.txt", False),
    ]
    if (sdir / "all.pcapng").exists():
        forms.append(Form("pcapng", "pcapng", ["all.pcapng"], None, False))
    forms.append(Form("raw", "raw", [f"{i}=raw/{i}.pcap" for i in ifaces], None, False))
    if not bounce_only:
        forms.append(Form("sll1", "sll1", ["any=sll1/any.pcap"], None, True))

    problems: list[str] = []
    for ns, counts in sent.items():
        for f, c in zip([x for x in plan.flows if x.ns == ns], counts):
            if c != f.count:
                problems.append(f"sender {ns}: {f.dst} {f.proto}: sent {c} of {f.count}")
    iplink_map = parse_iplink(iplink)
    capture_notes = "; ".join(f"{k}: {v}" for k, v in caps.stats.items() if v)
    for form in forms:
        res = count_form(sdir, form, plan, iplink_map, problems)
        checks = [lp.pop("_check") for lp in res["loops"]]
        flows_txt = ", ".join(
            f"{f.count} {f.proto} to {f.dst} from {f.ns} TTL {f.ttl} (enters {f.entry_ttl})"
            for f in plan.flows
        )
        notes = [
            *plan.notes,
            f"traffic: {flows_txt}",
            "counts: tshark -T fields (first occurrence of ip/ipv6 fields, so ICMP errors count under "
            "their own destination) on every input; a looping packet is a distinct (src, dst, proto, "
            "IP ID, ICMP id/seq, ports, UDP payload, TCP seq/ack) with >= 3 copies at the loop's capture "
            "points; observations = all copies of those packets there",
            *(f"TTL arithmetic {lp['destination']}: {c}" for lp, c in zip(res["loops"], checks)),
        ]
        if form.merged:
            notes.append(
                "LINUX_SLL has no interface index: all interfaces are one capture point 'any', "
                "so the uplink copy counts too (entry TTL T gives T copies) and the step between "
                "passes in one direction is 2"
            )
        notes.append("capture statistics: " + (capture_notes or "none reported"))
        doc = {
            "scenario": name,
            "form": form.form,
            "inputs": form.inputs,
            "ifmap": form.ifmap,
            "records": res["records"],
            "loops": res["loops"],
            "bounces": res["bounces"],
            "not_looping": plan.not_looping,
            "fix_commands": plan.fix_commands,
            "notes": ". ".join(n.rstrip(".") for n in notes) + ".",
        }
        (sdir / f"{form.fname}.expected.json").write_text(json.dumps(doc, indent=1) + "\n")
    status = "ok" if not problems else "FAILED"
    print(
        f"{name}: {status} in {time.monotonic() - t0:.1f}s "
        f"({', '.join(f.form for f in forms)})" + "".join(f"\n  - {p}" for p in problems),
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
neighbour entries on both ends, i.e. point-to-point links like tun/ppp),
applies the scenario, warms the router's ARP/ND entries, starts the captures
on the host, sends bounded traffic from the client (and, in `two-guests`,
from the router) with a tiny raw/UDP socket sender, stops the captures,
deletes the namespaces, derives the `raw/` and `sll1/` forms with `struct`,
and writes one `<form>.expected.json` per capture form.

Regenerate (about 2.5 minutes, needs root, ip, tcpdump, tshark; dumpcap and
nft are optional):

    sudo python3 samples/lab/lab.py --out samples            # all scenarios
    sudo python3 samples/lab/lab.py --out samples --scenario incident
    python3 samples/lab/lab.py --list
    python3 samples/lab/lab.py --readme samples               # rewrite this file

The captures differ from run to run (timestamps, IP IDs, ICMP rate limits,
ARP/ND chatter), so regenerate a scenario's files together, never one file.

## Golden expectations

`<form>.expected.json` holds `inputs` (arguments for `pcaploop analyze`, run
in the scenario directory), `ifmap` (`--ifmap` file or null), `records` (frames
per input file, counted by tshark), the expected `loops` (destination, kind,
capture_points, ttl_step, looping_packets, observations, entry_ttl), `bounces`,
`not_looping` destinations, the `fix_commands` of fix scenarios and `notes`.
They come from the scenario plan, TTL arithmetic and `tshark -T fields` dumps
of the files (a looping packet is a distinct src, dst, protocol, IP ID, ICMP
id/seq, ports, UDP payload, TCP seq/ack with 3 or more copies at the loop's
capture points; observations are all of its copies there), never from
pcaploop. The lab checks the tshark counts against the arithmetic (entry TTL T:
T-1 tunnel copies per packet; T copies on the uplink for the host<->router
loop and in the merged `sll1` form) and fails the scenario on any mismatch or
on an unexpected loop.

Forms: `per-interface` (one tcpdump pcap per host interface, EN10MB),
`any` (`tcpdump -i any`, LINUX_SLL2, capture points are ifindexes, names via
`--ifmap iplink.txt`), `pcapng` (dumpcap, one interface block per interface),
`raw` (per-interface captures with the link header stripped, LINKTYPE_RAW),
`sll1` (the `-i any` capture rewritten to LINUX_SLL: no interface index, so
every interface is one capture point `any`, named on the command line).
`sll1` is not made for bounce scenarios: folded into one point, the uplink
copy (in, TTL 64) and the bounced copy (in, TTL 62) look like a replica.

Scenarios:

"""

FILE_DESC = {
    "uplink.pcap": "host `tcpdump {opts} -i uplink -w uplink.pcap` (EN10MB)",
    "any.pcap": "host `tcpdump {opts} -i any -w any.pcap` (LINUX_SLL2)",
    "all.pcapng": "host `dumpcap {dopts} -i uplink -i tapN... -w all.pcapng` (pcapng, one IDB per interface)",
    "iplink.txt": "host `ip -o link` after the capture (ifindex names for the SLL2 capture, `--ifmap`)",
    "commands.txt": "every command the lab ran for this scenario (namespace in brackets)",
}


def write_readme(out: Path) -> None:
    opts, dopts = " ".join(TCPDUMP_OPTS), " ".join(DUMPCAP_OPTS)
    lines = [README_HEAD]
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
    print(
        f"lab: {time.monotonic() - t0:.1f}s, "
        + (f"failed: {', '.join(failed)}" if failed else "all ok")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
