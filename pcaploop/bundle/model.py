"""Reading an evidence bundle: the manifest, the captures and the host's saved state.

A bundle is what ``pcaploop capture`` writes: one pcap per interface, the
host's ``ip -j`` output and sysctls under ``state/``, and ``manifest.json``
(written last; a directory without it is not a bundle).  :func:`load_bundle`
reads it into a :class:`Bundle`; :func:`expand_captures` turns CAPTURE
arguments that name bundles into capture specs, the interface map and the
roles the analysis takes.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import PcaploopError
from ..ingest.points import CapturePoint
from ..ingest.specs import CaptureSpec
from .discover import Link

__all__ = ["Bundle", "load_bundle"]

MANIFEST = "manifest.json"
#: what the manifest's ``format`` says
FORMAT = "pcaploop-bundle"
FORMAT_VERSION = 1
#: the host's state: file in the bundle → the ``ip`` arguments that wrote it
STATE_FILES: dict[str, tuple[str, ...]] = {
    "state/ip-addr.json": ("-j", "addr"),
    "state/ip-route.json": ("-j", "route"),
    "state/ip-6-route.json": ("-j", "-6", "route"),
    "state/ip-neigh.json": ("-j", "neigh"),
    "state/ip-neigh-proxy.json": ("-j", "neigh", "show", "proxy"),
    "state/ip-link.json": ("-j", "link"),
    # policy routing: rules that send some traffic past the main table, and the
    # routes of every table (a loop can live in a table the main one does not show)
    "state/ip-rule.json": ("-j", "rule"),
    "state/ip-6-rule.json": ("-j", "-6", "rule"),
    "state/ip-route-all.json": ("-j", "route", "show", "table", "all"),
    "state/ip-6-route-all.json": ("-j", "-6", "route", "show", "table", "all"),
}
#: state files a bundle written before they were saved does not have (no warning)
OPTIONAL_STATE = frozenset(
    {
        "state/ip-rule.json",
        "state/ip-6-rule.json",
        "state/ip-route-all.json",
        "state/ip-6-route-all.json",
    }
)
#: the rules every Linux host has: (priority, table) with no selector
DEFAULT_RULES = frozenset({(0, "local"), (32766, "main"), (32767, "default")})
SYSCTL_FILE = "state/sysctl.json"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class CaptureStats:
    """tcpdump's own count at the end of one capture (None: it did not say)."""

    captured: int | None = None
    received_by_filter: int | None = None
    dropped_by_kernel: int | None = None
    dropped_by_interface: int | None = None

    def to_json(self) -> dict[str, int | None]:
        """The manifest's ``stats`` of one capture."""
        return {
            "captured": self.captured,
            "received_by_filter": self.received_by_filter,
            "dropped_by_kernel": self.dropped_by_kernel,
            "dropped_by_interface": self.dropped_by_interface,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any] | None) -> CaptureStats:
        """The inverse of :meth:`to_json`."""
        doc = doc or {}

        def num(key: str) -> int | None:
            v = doc.get(key)
            return v if isinstance(v, int) and not isinstance(v, bool) else None

        return cls(
            num("captured"),
            num("received_by_filter"),
            num("dropped_by_kernel"),
            num("dropped_by_interface"),
        )

    @property
    def dropped(self) -> int:
        """Packets the kernel or the interface dropped before tcpdump saw them."""
        return (self.dropped_by_kernel or 0) + (self.dropped_by_interface or 0)


@dataclass(frozen=True)
class BundleCapture:
    """One capture file of a bundle: the interface it was taken on, where it is."""

    interface: str
    file: str  # relative to the bundle
    path: str  # the bundle's path joined with ``file``
    stats: CaptureStats
    problem: str | None = None


@dataclass(frozen=True)
class Route:
    """One route of the host's saved table, and how ``ip route`` prints it."""

    family: Literal[4, 6]
    dst: str  # as ``ip`` prints it: "default", "203.0.113.7", "192.0.2.0/24"
    network: Network
    devs: tuple[str, ...]
    gateway: str | None
    type: str
    metric: int
    text: str

    @property
    def dev(self) -> str | None:
        """The interface it leaves by (the first next hop's, for a multipath route)."""
        return self.devs[0] if self.devs else None

    @classmethod
    def from_ip(cls, doc: Mapping[str, Any], family: Literal[4, 6]) -> Route | None:
        """One entry of ``ip -j route`` (None when it is not a route to a prefix)."""
        from .discover import route_devs

        dst = doc.get("dst")
        if not isinstance(dst, str):
            return None
        try:
            net: Network = ipaddress.ip_network(
                ("::/0" if family == 6 else "0.0.0.0/0") if dst == "default" else dst,
                strict=False,
            )
        except ValueError:
            return None
        if net.version != family:
            return None
        gw = doc.get("gateway")
        metric = doc.get("metric")
        return cls(
            family,
            dst,
            net,
            tuple(route_devs(doc)),
            gw if isinstance(gw, str) else None,
            str(doc.get("type") or "unicast"),
            metric if isinstance(metric, int) else 0,
            route_text(doc),
        )


#: ``ip -j route`` keys printed after the next hops, and the words ``ip route`` uses
_ROUTE_WORDS = (
    ("table", "table"),
    ("protocol", "proto"),
    ("scope", "scope"),
    ("prefsrc", "src"),
    ("metric", "metric"),
)


def route_text(doc: Mapping[str, Any]) -> str:
    """A route as ``ip route`` prints it.

    >>> route_text({"dst": "203.0.113.7", "dev": "tap101", "scope": "link", "flags": []})
    '203.0.113.7 dev tap101 scope link'
    """
    words: list[str] = []
    kind = doc.get("type")
    if isinstance(kind, str) and kind != "unicast":
        words.append(kind)
    words.append(str(doc.get("dst")))
    if doc.get("gateway"):
        words += ["via", str(doc["gateway"])]
    if doc.get("dev"):
        words += ["dev", str(doc["dev"])]
    for hop in doc.get("nexthops") or ():
        if isinstance(hop, Mapping):
            words.append("nexthop")
            for key, word in (("gateway", "via"), ("dev", "dev"), ("weight", "weight")):
                if hop.get(key) is not None:
                    words += [word, str(hop[key])]
    for key, word in _ROUTE_WORDS:
        value = doc.get(key)
        if value is not None and not (key == "table" and value == "main"):
            words += [word, str(value)]
    return " ".join(words)


@dataclass(frozen=True)
class Neighbour:
    """One entry of ``ip -j neigh`` (``proxy``: an entry of ``ip neigh show proxy``)."""

    dst: str
    dev: str | None
    lladdr: str | None
    states: tuple[str, ...]
    proxy: bool = False

    @classmethod
    def from_ip(cls, doc: Mapping[str, Any], proxy: bool = False) -> Neighbour | None:
        dst = doc.get("dst")
        if not isinstance(dst, str):
            return None
        state = doc.get("state") or ()
        return cls(
            dst,
            doc["dev"] if isinstance(doc.get("dev"), str) else None,
            doc["lladdr"] if isinstance(doc.get("lladdr"), str) else None,
            tuple(str(s) for s in (state if isinstance(state, list) else [state])),
            proxy or "proxy" in doc,
        )


@dataclass(frozen=True)
class Sysctls:
    """The sysctls saved from ``/proc/sys``: ``net.ipv4.ip_forward``,
    ``net.ipv6.conf.all.forwarding`` and, per ``all``/``default``/interface,
    ``net.ipv4.conf.X.{rp_filter,proxy_arp,send_redirects,forwarding}`` and
    ``net.ipv6.conf.X.{proxy_ndp,forwarding}``."""

    values: Mapping[str, Any] = field(default_factory=dict)

    def get(self, name: str) -> int | None:
        """A global sysctl (``net.ipv4.ip_forward``) as an integer, None when not saved."""
        v = self.values.get(name)
        return v if isinstance(v, int) and not isinstance(v, bool) else None

    def conf(self, family: Literal[4, 6], iface: str, key: str) -> int | None:
        """``net.ipv{family}.conf.{iface}.{key}``; ``iface`` may be ``all`` or ``default``."""
        table = self.values.get(f"net.ipv{family}.conf")
        if not isinstance(table, Mapping):
            return None
        per = table.get(iface)
        v = per.get(key) if isinstance(per, Mapping) else None
        return v if isinstance(v, int) and not isinstance(v, bool) else None

    def rp_filter(self, iface: str) -> tuple[int, int, int] | None:
        """(``all``, the interface's, what the kernel applies: the larger) or None."""
        a, i = self.conf(4, "all", "rp_filter"), self.conf(4, iface, "rp_filter")
        if a is None or i is None:
            return None
        return a, i, max(a, i)


@dataclass(frozen=True)
class Bundle:
    """A bundle as read from disk (:func:`load_bundle`)."""

    path: str
    manifest: Mapping[str, Any]
    captures: tuple[BundleCapture, ...]
    interfaces: tuple[Link, ...]
    routes: tuple[Route, ...]
    sysctls: Sysctls
    neighbours: tuple[Neighbour, ...] = ()
    #: ifindex → interface name, from the saved ``ip -j link``
    links: Mapping[int, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    #: the host's policy-routing rules other than the default three, as ``ip rule``
    #: prints them (the routes cited are the main table's; these may bypass it)
    rules: tuple[str, ...] = ()

    @property
    def host(self) -> str:
        """The host name the manifest records."""
        return str(self.manifest.get("host") or "?")

    def role_of(self, name: str) -> Literal["uplink", "guest-link", "unknown"]:
        """The role the manifest gives interface ``name``."""
        return next((lk.role for lk in self.interfaces if lk.name == name), "unknown")

    def has_interface(self, name: str) -> bool:
        """Whether the host had an interface of this name when it was captured."""
        return name in self.links.values() or any(lk.name == name for lk in self.interfaces)

    def route_for(self, addr: str) -> Route | None:
        """The host's saved route ``addr`` took: the longest matching prefix (lowest
        metric among equals), as ``ip route get`` would choose in the main table."""
        try:
            ip = ipaddress.ip_address(addr)
        except ValueError:
            return None
        best: Route | None = None
        for r in self.routes:
            if r.family != ip.version or ip not in r.network:
                continue
            if (
                best is None
                or r.network.prefixlen > best.network.prefixlen
                or (r.network.prefixlen == best.network.prefixlen and r.metric < best.metric)
            ):
                best = r
        return best

    def neighbour(self, addr: str, dev: str | None = None, proxy: bool = False) -> Neighbour | None:
        """The host's saved neighbour (or proxy) entry for ``addr`` (on ``dev``)."""
        return next(
            (
                n
                for n in self.neighbours
                if n.dst == addr and n.proxy == proxy and (dev is None or n.dev == dev)
            ),
            None,
        )

    def state_path(self, name: str) -> str:
        """A state file's path inside the bundle, for citing it."""
        return os.path.join(self.path, name)


def is_bundle(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a directory with a bundle manifest."""
    return os.path.isfile(os.path.join(os.fspath(path), MANIFEST))


def _read_json(path: str, what: str, problems: list[str]) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        problems.append(f"{path}: missing ({what})")
    except (OSError, ValueError) as exc:
        problems.append(f"{path}: cannot read {what}: {getattr(exc, 'strerror', None) or exc}")
    return None


def load_bundle(path: str | os.PathLike[str]) -> Bundle:
    """Read a bundle directory (``pcaploop capture -o DIR``).

    A missing or damaged state file is a warning (the captures still count); a
    missing or foreign manifest, or a capture file the manifest names that is not
    there, is an error.

    >>> load_bundle("incident-bundle").route_for("203.0.113.7")   # doctest: +SKIP
    """
    root = os.fspath(path)
    mpath = os.path.join(root, MANIFEST)
    if not os.path.isdir(root):
        raise PcaploopError(f"{root}: not a directory")
    if not os.path.isfile(mpath):
        raise PcaploopError(
            f"{root}: a directory, but not a pcaploop bundle (it has no {MANIFEST}); "
            "give the capture files in it instead"
        )
    try:
        with open(mpath, encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError) as exc:
        raise PcaploopError(
            f"{mpath}: cannot read the bundle manifest: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise PcaploopError(f'{mpath}: not a pcaploop bundle manifest (no "format": "{FORMAT}")')
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise PcaploopError(
            f"{mpath}: bundle format version {version!r}; this pcaploop reads "
            f"versions up to {FORMAT_VERSION}"
        )
    problems: list[str] = []
    captures = tuple(_captures(root, manifest, problems))
    interfaces = tuple(
        Link.from_json(d)
        for d in manifest.get("interfaces") or ()
        if isinstance(d, Mapping) and isinstance(d.get("name"), str)
    )
    routes: list[Route] = []
    for name, fam in (("state/ip-route.json", 4), ("state/ip-6-route.json", 6)):
        doc = _read_json(os.path.join(root, name), "the host's routes", problems)
        for r in doc if isinstance(doc, list) else ():
            route = Route.from_ip(r, fam) if isinstance(r, Mapping) else None  # type: ignore[arg-type]
            if route is not None:
                routes.append(route)
    neigh: list[Neighbour] = []
    for name, proxy in (("state/ip-neigh.json", False), ("state/ip-neigh-proxy.json", True)):
        doc = _read_json(os.path.join(root, name), "the host's neighbours", problems)
        for d in doc if isinstance(doc, list) else ():
            n = Neighbour.from_ip(d, proxy) if isinstance(d, Mapping) else None
            if n is not None:
                neigh.append(n)
    links: dict[int, str] = {}
    doc = _read_json(os.path.join(root, "state/ip-link.json"), "the host's interfaces", problems)
    for d in doc if isinstance(doc, list) else ():
        if isinstance(d, Mapping) and isinstance(d.get("ifindex"), int) and d.get("ifname"):
            links[int(d["ifindex"])] = str(d["ifname"])
    sys_doc = _read_json(os.path.join(root, SYSCTL_FILE), "the host's sysctls", problems)
    rules: list[str] = []
    for name in ("state/ip-rule.json", "state/ip-6-rule.json"):
        if name in OPTIONAL_STATE and not os.path.exists(os.path.join(root, name)):
            continue  # a bundle from before rules were saved
        doc = _read_json(os.path.join(root, name), "the host's routing rules", problems)
        rules += [rule_text(d) for d in doc if _extra_rule(d)] if isinstance(doc, list) else []
    if rules:
        problems.append(
            f"the host has {len(rules)} policy-routing rule(s) besides the default ones "
            f"(ip rule: {'; '.join(rules[:3])}{'; …' if len(rules) > 3 else ''}): the "
            "routes cited are the main table's, which these rules may bypass; every "
            "table's routes are in state/ip-route-all.json"
        )
    for cap in captures:
        if cap.problem:
            problems.append(f"capture point {cap.interface}: {cap.problem}")
        if cap.stats.dropped:
            problems.append(
                f"capture point {cap.interface}: tcpdump reported {cap.stats.dropped:,} "
                "packet(s) dropped by the kernel or the interface while capturing"
            )
    return Bundle(
        root,
        manifest,
        captures,
        interfaces,
        tuple(routes),
        Sysctls(sys_doc if isinstance(sys_doc, dict) else {}),
        tuple(neigh),
        links,
        tuple(f"bundle {root}: {p}" for p in problems),
        tuple(rules),
    )


#: ``ip -j rule`` keys that select traffic, and the words ``ip rule`` prints them with
_RULE_SELECTORS = (
    ("src", "from"),
    ("dst", "to"),
    ("iif", "iif"),
    ("oif", "oif"),
    ("fwmark", "fwmark"),
    ("tos", "tos"),
    ("ipproto", "ipproto"),
    ("sport", "sport"),
    ("dport", "dport"),
    ("uidrange", "uidrange"),
)


def _extra_rule(d: Any) -> bool:
    """A rule besides the default ones (local, main, default; from all, nothing else)."""
    if not isinstance(d, Mapping):
        return False
    selectors = [k for k, _ in _RULE_SELECTORS if k in d and not (k == "src" and d[k] == "all")]
    return bool(selectors) or (d.get("priority"), d.get("table")) not in DEFAULT_RULES


def rule_text(d: Mapping[str, Any]) -> str:
    """A rule as ``ip rule`` prints it.

    >>> rule_text({"priority": 100, "src": "198.51.100.0", "srclen": 24, "table": "7"})
    '100: from 198.51.100.0/24 lookup 7'
    >>> rule_text({"priority": 32764, "not": None, "src": "all", "fwmark": "0xca6c",
    ...            "table": "51820"})
    '32764: not from all fwmark 0xca6c lookup 51820'
    """
    words: list[str] = ["not"] if "not" in d else []  # ip -j: "not": null
    for key, word in _RULE_SELECTORS:
        if key not in d:
            continue
        value = str(d[key])
        if key in ("src", "dst") and d.get(f"{key}len") is not None:
            value = f"{value}/{d[f'{key}len']}"
        if key == "fwmark" and d.get("fwmask") is not None:
            value = f"{value}/{d['fwmask']}"
        words += [word, value]
    if d.get("table") is not None:
        words += ["lookup", str(d["table"])]
    elif d.get("action"):
        words.append(str(d["action"]))
    return f"{d.get('priority', '?')}: {' '.join(words)}"


def _captures(root: str, manifest: Mapping[str, Any], problems: list[str]) -> list[BundleCapture]:
    out = []
    for d in manifest.get("captures") or ():
        if not isinstance(d, Mapping) or not isinstance(d.get("file"), str):
            continue
        rel = str(d["file"])
        if os.path.isabs(rel) or ".." in rel.replace("\\", "/").split("/"):
            raise PcaploopError(f"{root}/{MANIFEST}: capture file {rel!r} is outside the bundle")
        full = os.path.join(root, rel)
        if not os.path.isfile(full):
            raise PcaploopError(
                f"{full}: the bundle manifest names this capture, but it is missing"
            )
        want = (manifest.get("files") or {}).get(rel)
        size = want.get("bytes") if isinstance(want, Mapping) else None
        if isinstance(size, int) and os.path.getsize(full) != size:
            problems.append(
                f"{rel}: {os.path.getsize(full):,} bytes, the manifest says {size:,} "
                "(changed after the capture?)"
            )
        problem = d.get("problem")
        out.append(
            BundleCapture(
                str(d.get("interface") or os.path.splitext(os.path.basename(rel))[0]),
                rel,
                full,
                CaptureStats.from_json(d.get("stats")),
                str(problem) if problem else None,
            )
        )
    if not out:
        raise PcaploopError(f"{root}/{MANIFEST}: the bundle lists no capture files")
    return out


# --- CAPTURE arguments that are bundles -----------------------------------------------
@dataclass
class BundleInputs:
    """CAPTURE arguments with every bundle expanded (:func:`expand_captures`)."""

    captures: list[CaptureSpec | str | os.PathLike[str]]
    ifmap: dict[int, str]
    uplinks: list[str]
    guest_links: list[str]
    bundles: list[Bundle]

    @property
    def warnings(self) -> list[str]:
        """What the bundles themselves warn about (drops, damaged state files)."""
        return [w for b in self.bundles for w in b.warnings]


def expand_captures(captures: Sequence[CaptureSpec | str | os.PathLike[str]]) -> BundleInputs:
    """Replace each bundle directory among ``captures`` by its capture files.

    Capture point names are the interface names of the manifest (an SLL2
    ``-i any`` capture is named through the saved ``ip -j link``, returned as
    ``ifmap``); the roles the manifest gives (uplink, guest-link) are returned
    for the points the captures will have.  Anything else passes unchanged.
    """
    out: list[CaptureSpec | str | os.PathLike[str]] = []
    ifmap: dict[int, str] = {}
    up: list[str] = []
    guests: list[str] = []
    bundles: list[Bundle] = []
    for c in captures:
        path = c.path if isinstance(c, CaptureSpec) and c.name is None else c
        if isinstance(path, CaptureSpec) or not os.path.isdir(path):
            out.append(c)
            continue
        b = load_bundle(path)
        bundles.append(b)
        points: list[str] = []
        for cap in b.captures:
            out.append(CaptureSpec(cap.path, cap.interface))
            ifindexes = _sll2_ifindexes(cap.path)
            if ifindexes is None:
                points.append(cap.interface)
            else:
                ifmap.update({k: v for k, v in b.links.items() if k in ifindexes})
                points += [b.links[k] for k in sorted(ifindexes) if k in b.links]
        for p in points:
            role = b.role_of(p)
            (up if role == "uplink" else guests if role == "guest-link" else []).append(p)
    return BundleInputs(out, ifmap, list(dict.fromkeys(up)), list(dict.fromkeys(guests)), bundles)


def apply_capture_stats(points: Sequence[CapturePoint], bundles: Sequence[Bundle]) -> None:
    """Each bundle capture's own drop count (tcpdump's closing statistics: dropped by
    the kernel or the interface) onto the capture point of its interface, where the
    file itself recorded none (the JSON's ``capture_dropped``).

    Why: a pcap file has no place for drops, so only the bundle knows that copies
    missing from a loop's ladder may be the capture's own loss (load_bundle warns).
    """
    by_name = {p.name: p for p in points}
    for b in bundles:
        for c in b.captures:
            p = by_name.get(c.interface)
            if p is None or p.capture_dropped is not None or c.stats.dropped_by_kernel is None:
                continue
            p.capture_dropped = c.stats.dropped_by_kernel + (c.stats.dropped_by_interface or 0)


def _sll2_ifindexes(path: str) -> set[int] | None:
    """The interface numbers a LINUX_SLL2 pcap (``tcpdump -i any``) names in its records,
    or None when the file is something else.  The SLL2 header holds the number in its
    bytes 4-7 (big-endian)."""
    import numpy as np

    from ..decode.linktypes import LINKTYPE_LINUX_SLL2
    from ..errors import CaptureError
    from ..read import open_capture

    try:
        cap = open_capture(path)
        if cap.format != "pcap" or cap.interfaces[0].linktype != LINKTYPE_LINUX_SLL2:
            return None  # tcpdump writes pcap; a pcapng names its interfaces itself
        seen: set[int] = set()
        for b in cap.batches():
            off = b.off[b.caplen >= 8]
            raw = [b.buf[off + k].astype(np.int64) for k in range(4, 8)]
            idx = (raw[0] << 24) | (raw[1] << 16) | (raw[2] << 8) | raw[3]
            seen.update(int(i) for i in np.unique(idx))
        return seen
    except CaptureError:
        return None  # reading it for the analysis says what is wrong
