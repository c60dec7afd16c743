"""Canned host state (``ip -j`` output of the lab's ``incident`` host, samples/lab/lab.py)
and a builder of synthetic bundles, so reading a bundle is tested without root.

Imported by the tests of this directory as ``hoststate`` (its conftest puts it on
the path)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

ROUTES4 = [
    {"dst": "default", "gateway": "192.0.2.1", "dev": "uplink", "flags": []},
    {
        "dst": "192.0.2.0/24",
        "dev": "uplink",
        "protocol": "kernel",
        "scope": "link",
        "prefsrc": "192.0.2.10",
        "flags": [],
    },
    {"dst": "203.0.113.7", "dev": "tap101", "scope": "link", "flags": []},
    {"dst": "203.0.113.101", "dev": "tap101", "scope": "link", "flags": []},
]
ROUTES6 = [
    {"dst": "2001:db8:1::/64", "dev": "uplink", "protocol": "kernel", "metric": 256, "flags": []},
    {"dst": "2001:db8:100::101", "dev": "tap101", "metric": 1024, "flags": []},
    {"dst": "fe80::/64", "dev": "uplink", "protocol": "kernel", "metric": 256, "flags": []},
    {"dst": "fe80::/64", "dev": "tap101", "protocol": "kernel", "metric": 256, "flags": []},
    {"dst": "default", "gateway": "2001:db8:1::1", "dev": "uplink", "metric": 1024, "flags": []},
]
NEIGH = [
    {
        "dst": "203.0.113.101",
        "dev": "tap101",
        "lladdr": "02:00:00:01:01:02",
        "state": ["PERMANENT"],
    },
    {"dst": "192.0.2.1", "dev": "uplink", "lladdr": "02:00:00:00:02:01", "state": ["REACHABLE"]},
    {"dst": "203.0.113.7", "dev": "tap101", "lladdr": "02:00:00:01:01:02", "state": ["PERMANENT"]},
    {
        "dst": "2001:db8:100::101",
        "dev": "tap101",
        "lladdr": "02:00:00:01:01:02",
        "state": ["PERMANENT"],
    },
]
#: every Linux host's rules (``ip -j rule`` / ``ip -j -6 rule``)
RULES4 = [
    {"priority": 0, "src": "all", "table": "local"},
    {"priority": 32766, "src": "all", "table": "main"},
    {"priority": 32767, "src": "all", "table": "default"},
]
RULES6 = RULES4[:2]
NEIGH_PROXY = [{"dst": "2001:db8:100::101", "dev": "uplink", "proxy": None}]
#: ifindex 2 and 5 as loopgen's SLL2 capture numbers them
LINKS = [
    {"ifindex": 1, "ifname": "lo", "flags": ["LOOPBACK", "UP"], "link_type": "loopback"},
    {"ifindex": 2, "ifname": "uplink", "flags": ["UP"], "link_type": "ether"},
    {"ifindex": 5, "ifname": "tap101", "flags": ["UP"], "link_type": "ether"},
]
ADDRS: list[dict[str, Any]] = [
    {
        "ifindex": 2,
        "ifname": "uplink",
        "addr_info": [{"family": "inet", "local": "192.0.2.10", "prefixlen": 24}],
    }
]


def conf(rp_all: int = 0, rp_tap: int = 0) -> dict[str, Any]:
    per4 = {"forwarding": 1, "proxy_arp": 0, "rp_filter": 0, "send_redirects": 1}
    return {
        "net.ipv4.ip_forward": 1,
        "net.ipv6.conf.all.forwarding": 1,
        "net.ipv4.conf": {
            "all": {**per4, "rp_filter": rp_all},
            "default": dict(per4),
            "uplink": {**per4, "proxy_arp": 1},
            "tap101": {**per4, "rp_filter": rp_tap},
        },
        "net.ipv6.conf": {
            "all": {"forwarding": 1, "proxy_ndp": 1},
            "uplink": {"forwarding": 1, "proxy_ndp": 1},
            "tap101": {"forwarding": 1, "proxy_ndp": 0},
        },
    }


INTERFACES = [
    {"name": "uplink", "ifindex": 2, "role": "uplink", "why": "default route (IPv4 and IPv6)"},
    {
        "name": "tap101",
        "ifindex": 5,
        "role": "guest-link",
        "why": "carries host routes 203.0.113.7, 203.0.113.101, 2001:db8:100::101",
        "host_routes": ["203.0.113.7", "203.0.113.101", "2001:db8:100::101"],
    },
]


def write_bundle(
    root: Path,
    captures: dict[str, Path],
    sysctls: dict[str, Any] | None = None,
    stats: dict[str, dict[str, int]] | None = None,
    interfaces: list[dict[str, Any]] | None = None,
) -> Path:
    """A bundle as ``pcaploop capture`` writes it: {interface: capture file} copied in."""
    root.mkdir(parents=True, exist_ok=True)
    state = {
        "state/ip-route.json": ROUTES4,
        "state/ip-6-route.json": ROUTES6,
        "state/ip-neigh.json": NEIGH,
        "state/ip-neigh-proxy.json": NEIGH_PROXY,
        "state/ip-link.json": LINKS,
        "state/ip-addr.json": ADDRS,
        "state/sysctl.json": sysctls if sysctls is not None else conf(),
    }
    (root / "state").mkdir(exist_ok=True)
    for rel, doc in state.items():
        (root / rel).write_text(json.dumps(doc))
    caps = []
    for iface, src in captures.items():
        shutil.copyfile(src, root / f"{iface}.pcap")
        st = {"captured": 1, "received_by_filter": 1, "dropped_by_kernel": 0}
        caps.append(
            {
                "interface": iface,
                "file": f"{iface}.pcap",
                "stats": (stats or {}).get(iface, st),
                "exit_status": 0,
                "problem": None,
            }
        )
    files = {
        str(p.relative_to(root)): {
            "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
            "bytes": p.stat().st_size,
        }
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
    manifest = {
        "format": "pcaploop-bundle",
        "format_version": 1,
        "host": "host1",
        "kernel": "Linux 6.18",
        "started": "2026-01-01T00:00:00Z",
        "ended": "2026-01-01T00:00:30Z",
        "interfaces": interfaces if interfaces is not None else INTERFACES,
        "captures": caps,
        "files": files,
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root
