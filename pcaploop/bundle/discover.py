"""Which interfaces to capture: the uplink from the default routes, guest links from
host routes (``docs/design.md``, *The incident*).

Pure functions over the host's ``ip -j`` output, so they are tested on canned JSON:
an interface that holds a default route (IPv4 or IPv6) is the **uplink**; one that
carries ``/32`` (``/128``) routes to single addresses is a **guest link** — the
per-guest host routes of a point-to-point setup.  A host route on the uplink (the
``GATEWAY dev eth0`` route of many hosting providers) does not make it a guest link.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

LinkRole = Literal["uplink", "guest-link", "unknown"]

#: host routes named one by one in a guest link's reason before the rest are counted
_SHOWN_ROUTES = 3


@dataclass(frozen=True)
class Link:
    """One interface of the host, its role and why."""

    name: str
    role: LinkRole
    why: str
    ifindex: int | None = None
    #: the /32 and /128 routes it carries (guest links)
    host_routes: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        """This interface's entry in the manifest's ``interfaces``."""
        return {
            "name": self.name,
            "ifindex": self.ifindex,
            "role": self.role,
            "why": self.why,
            "host_routes": list(self.host_routes),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Link:
        """The inverse of :meth:`to_json` (unknown roles read as ``unknown``)."""
        role = doc.get("role")
        ifindex = doc.get("ifindex")
        return cls(
            name=str(doc["name"]),
            role=role if role in ("uplink", "guest-link") else "unknown",
            why=str(doc.get("why") or ""),
            ifindex=ifindex if isinstance(ifindex, int) else None,
            host_routes=tuple(str(r) for r in doc.get("host_routes") or ()),
        )


def route_devs(route: Mapping[str, Any]) -> list[str]:
    """The interfaces a route leaves by: its ``dev``, or each multipath next hop's."""
    devs = [route["dev"]] if isinstance(route.get("dev"), str) else []
    for hop in route.get("nexthops") or ():
        if isinstance(hop, Mapping) and isinstance(hop.get("dev"), str):
            devs.append(hop["dev"])
    return list(dict.fromkeys(devs))


def host_route(route: Mapping[str, Any], v6: bool) -> str | None:
    """The address of a unicast route to one address (``/32``, ``/128``), else None.

    ``ip -j`` prints such a destination without its prefix length.

    >>> host_route({"dst": "203.0.113.7", "dev": "tap101", "scope": "link"}, False)
    '203.0.113.7'
    >>> host_route({"dst": "192.0.2.0/24", "dev": "eth0"}, False) is None
    True
    """
    dst = route.get("dst")
    if not isinstance(dst, str) or dst == "default":
        return None
    if route.get("type", "unicast") != "unicast":
        return None  # blackhole, unreachable, local …: no guest behind them
    addr, _, plen = dst.partition("/")
    if plen and plen != ("128" if v6 else "32"):
        return None
    return addr


def discover(
    routes4: Sequence[Mapping[str, Any]],
    routes6: Sequence[Mapping[str, Any]],
    links: Sequence[Mapping[str, Any]] = (),
) -> list[Link]:
    """The uplink(s) and guest links of a host, from ``ip -j route``, ``ip -j -6 route``
    and (for interface numbers and order) ``ip -j link``.

    Uplinks first, then guest links, each in the host's interface order.

    >>> discover([{"dst": "default", "gateway": "192.0.2.1", "dev": "eth0"},
    ...           {"dst": "203.0.113.7", "dev": "tap101", "scope": "link"}], [])
    ... # doctest: +NORMALIZE_WHITESPACE
    [Link(name='eth0', role='uplink', why='default route', ifindex=None, host_routes=()),
     Link(name='tap101', role='guest-link', why='carries host route 203.0.113.7',
          ifindex=None, host_routes=('203.0.113.7',))]
    """
    index = {
        str(lk["ifname"]): int(lk["ifindex"])
        for lk in links
        if isinstance(lk.get("ifname"), str) and isinstance(lk.get("ifindex"), int)
    }
    defaults: dict[str, list[str]] = {}
    hosts: dict[str, list[str]] = {}
    for fam, routes in (("IPv4", routes4), ("IPv6", routes6)):
        for r in routes:
            if r.get("dst") == "default" and r.get("type", "unicast") == "unicast":
                for dev in route_devs(r):
                    defaults.setdefault(dev, []).append(fam)
                continue
            addr = host_route(r, fam == "IPv6")
            if addr is not None:
                for dev in route_devs(r):
                    hosts.setdefault(dev, []).append(addr)
    out = [
        Link(dev, "uplink", _default_why(fams), index.get(dev))
        for dev, fams in _ordered(defaults, index)
        if dev != "lo"
    ]
    out += [
        Link(dev, "guest-link", _host_why(addrs), index.get(dev), tuple(addrs))
        for dev, addrs in _ordered(hosts, index)
        if dev not in defaults and dev != "lo"
    ]
    return out


def _ordered(
    by_dev: dict[str, list[str]], index: Mapping[str, int]
) -> Iterable[tuple[str, list[str]]]:
    """Interfaces in the host's order (ifindex), unknown ones last, by name."""
    return sorted(by_dev.items(), key=lambda kv: (index.get(kv[0], 1 << 31), kv[0]))


def _default_why(families: list[str]) -> str:
    fams = list(dict.fromkeys(families))
    if len(fams) == 1 and fams[0] == "IPv4":
        return "default route"
    return f"default route ({' and '.join(fams)})"


def _host_why(addrs: list[str]) -> str:
    addrs = list(dict.fromkeys(addrs))
    shown = ", ".join(addrs[:_SHOWN_ROUTES])
    more = f" and {len(addrs) - _SHOWN_ROUTES} more" if len(addrs) > _SHOWN_ROUTES else ""
    word = "route" if len(addrs) == 1 else "routes"
    return f"carries host {word} {shown}{more}"
