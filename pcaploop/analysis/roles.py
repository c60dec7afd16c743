"""What each capture point is: the host's uplink, a guest's link, or unknown — from evidence.

Users pass files as they come (``capture-1.pcap``), and ``tcpdump -i any``
names interfaces by index, so a name (``tap101``, ``vnet3``) is only a hint
that breaks a tie.  The evidence, gathered while correlating (:class:`RoleFacts`,
facts only) and from what detect found:

* **loop entry** — a looping packet first seen at point A and then
  circulating at B: A is upstream of the host, B downstream (a guest link);
* **first copy at the loop** — the host sent it (out): the loop is behind
  the host (a guest link); it came in: the loop is upstream (host ↔ router);
* **bounce** — a point a guest returned packets on is a guest link;
* **proxy ARP / NDP** — the host answering for an address that sits behind
  another point is its uplink;
* **senders far away** — packets the host forwards from P arriving with a TTL
  that is no sender's initial value came across routers: P is the uplink (a
  guest's own packets arrive with 64, 128 or 255);
* **who serves** — requests (echo requests, TCP SYNs, datagrams to a server
  port) forwarded into P and answers coming out of P mean the servers are
  behind P: hosted guests serve, their clients are upstream.

Each item has a weight; the side with more wins, and the result says how
sure it is (``strong``, ``weak``, or ``given`` by ``--uplink`` /
``--guest-link``) and why, in words printed by ``analyze``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .. import schema as S
from ..decode import protocols as P
from ..decode.linktypes import LINKTYPE_LINUX_SLL
from .model import PointRole, Role

#: names that look like a guest's point-to-point link (a hint, not evidence)
GUEST_LINK_NAME = re.compile(r"^(tap|tun|veth|vnet|ppp|venet|vif|vm|fwpr|fwln|guest)", re.I)
#: names that look like a host's uplink (a hint, not evidence)
UPLINK_NAME = re.compile(r"^(uplink|up\d|eth|en[opsx]|eno|wan|bond|br|vmbr|lan|ext)", re.I)

#: initial TTL / hop limit values of common stacks: a packet arriving with one of
#: these crossed no router on its way
INITIAL_TTLS = (32, 64, 128, 255)
#: UDP/TCP ports at or above this are ephemeral (the client's side)
EPHEMERAL_PORT = 32768

#: evidence weights; a name hint only breaks ties
W_LOOP_ENTRY = 3.0
W_LOOP_FIRST = 2.0
W_BOUNCE = 2.0
W_PROXY_ARP = 3.0
W_FAR_SENDERS = 2.0
W_SERVERS = 1.0
W_NAME = 0.5
#: evidence of at least this weight, uncontradicted, makes a role "strong"
STRONG = 2.0


def guest_link_by_name(name: str) -> bool:
    """Whether ``name`` looks like a guest link's interface name (a hint)."""
    return GUEST_LINK_NAME.match(name) is not None


def _grow(a: np.ndarray, n: int) -> np.ndarray:
    return a if len(a) >= n else np.r_[a, np.zeros(n - len(a), a.dtype)]


@dataclass
class RoleFacts:
    """Per capture point counters that correlate fills in while it builds paths.

    ``crossed_*[p]`` count packets the host forwarded from point p (seen there,
    then at another point with one TTL less): their TTL at p was a sender's
    initial value, or not.  ``servers_behind[p]`` / ``clients_behind[p]`` count
    crossings that say which side of p serves.  ``loop_entry[p]``: looping
    packets seen at p before they circulated elsewhere; ``loop_behind[p]``:
    looping packets circulating at p that entered elsewhere;
    ``loop_first_out[p]`` / ``loop_first_in[p]``: the direction of a looping
    packet's first copy at p.
    """

    crossed_initial: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    crossed_far: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    servers_behind: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    clients_behind: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    loop_entry: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    loop_behind: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    loop_first_out: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    loop_first_in: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    _FIELDS = (
        "crossed_initial",
        "crossed_far",
        "servers_behind",
        "clients_behind",
        "loop_entry",
        "loop_behind",
        "loop_first_out",
        "loop_first_in",
    )

    def add(self, name: str, points: np.ndarray, weights: np.ndarray | None = None) -> None:
        """Count ``points`` (one entry per event) into counter ``name``."""
        if not len(points):
            return
        n = int(points.max()) + 1
        a = _grow(getattr(self, name), n)
        a += np.bincount(points.astype(np.int64), weights=weights, minlength=len(a)).astype(
            np.int64
        )
        setattr(self, name, a)

    def of(self, name: str, point: int) -> int:
        """Counter ``name`` at ``point`` (0 when never counted)."""
        a = getattr(self, name)
        return int(a[point]) if point < len(a) else 0

    def remap(self, new_of_old: np.ndarray) -> None:
        """Renumber capture points (``new_of_old[old] = new``)."""
        for name in self._FIELDS:
            a = _grow(getattr(self, name), len(new_of_old))
            out = np.zeros(len(new_of_old), np.int64)
            out[new_of_old] = a[: len(new_of_old)]
            setattr(self, name, out)


def packet_sides(cols: Mapping[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """Per row: +1 a request (its destination serves), -1 an answer (its source serves),
    0 cannot tell.  Echo request/reply, TCP SYN / SYN-ACK or RST, ICMP errors (sent
    by the side that received our packet), and UDP/TCP between an ephemeral and a
    lower port."""
    pr = cols["protocol"][rows].astype(np.int64)
    ty = cols["icmp_type"][rows].astype(np.int64)
    fl = cols["tcp_flags"][rows].astype(np.int64)
    sp = cols["sport"][rows].astype(np.int64)
    dp = cols["dport"][rows].astype(np.int64)
    icmp4, icmp6 = pr == P.IPPROTO_ICMP, pr == P.IPPROTO_ICMPV6
    out = np.zeros(len(rows), np.int64)
    req = (icmp4 & (ty == P.ICMP_ECHO)) | (icmp6 & (ty == P.ICMP6_ECHO_REQUEST))
    ans = (icmp4 & ((ty == P.ICMP_ECHOREPLY) | np.isin(ty, P.ICMP_ERRORS))) | (
        icmp6 & ((ty == P.ICMP6_ECHO_REPLY) | ((ty >= 1) & (ty <= P.ICMP6_ERROR_MAX)))
    )
    tcp = pr == P.IPPROTO_TCP
    syn, ack, rst = (fl & 0x02) != 0, (fl & 0x10) != 0, (fl & 0x04) != 0
    req |= tcp & (fl >= 0) & syn & ~ack
    ans |= tcp & (fl >= 0) & ((syn & ack) | rst)
    ports = (sp >= 0) & (dp >= 0) & ~req & ~ans
    req |= ports & (sp >= EPHEMERAL_PORT) & (dp < EPHEMERAL_PORT)
    ans |= ports & (dp >= EPHEMERAL_PORT) & (sp < EPHEMERAL_PORT)
    out[req] = 1
    out[ans & ~req] = -1
    return out


def note_crossings(
    facts: RoleFacts,
    cols: Mapping[str, np.ndarray],
    rows: np.ndarray,
    path: np.ndarray,
    ttl: np.ndarray,
    looping: np.ndarray,
) -> None:
    """Count the host's forwarding between points, from paths (rows of one window).

    A crossing is two consecutive copies of one path (by falling TTL) at two
    different points, one TTL apart: the host forwarded the packet from the
    first point to the second.
    """
    if len(rows) < 2:
        return
    pt = cols["point"][rows].astype(np.int64)
    o = np.lexsort((-ttl, path))
    p_, pt_, ttl_, r_ = path[o], pt[o], ttl[o], rows[o]
    nxt = (p_[1:] == p_[:-1]) & (pt_[1:] != pt_[:-1]) & (ttl_[:-1] - ttl_[1:] == 1)
    a = np.flatnonzero(nxt)
    if not len(a):
        return
    src_pt, dst_pt, t_in = pt_[a], pt_[a + 1], ttl_[a]
    normal = ~looping[p_[a]]
    initial = np.isin(t_in, INITIAL_TTLS)
    facts.add("crossed_initial", src_pt[normal & initial])
    facts.add("crossed_far", src_pt[normal & ~initial])
    side = packet_sides(cols, r_[a])
    facts.add("servers_behind", np.r_[dst_pt[normal & (side > 0)], src_pt[normal & (side < 0)]])
    facts.add("clients_behind", np.r_[src_pt[normal & (side > 0)], dst_pt[normal & (side < 0)]])


def note_loops(
    facts: RoleFacts,
    cols: Mapping[str, np.ndarray],
    rows: np.ndarray,
    path: np.ndarray,
    ttl: np.ndarray,
    direction: np.ndarray,
    loop_copy: np.ndarray,
    looping: np.ndarray,
) -> None:
    """Where looping packets entered, and which way their first copy at the loop went.

    A looping path whose first (highest-TTL) observation is not one of its loop
    copies entered at that point and circulated at the point of its first loop
    copy.  Otherwise the loop's own first copy says which side sent it.
    """
    sel = looping[path]
    if not sel.any():
        return
    rows, path, ttl = rows[sel], path[sel], ttl[sel]
    direction, loop_copy = direction[sel], loop_copy[sel]
    pt = cols["point"][rows].astype(np.int64)
    o = np.lexsort((-ttl, path))
    p_, pt_, d_, lc_ = path[o], pt[o], direction[o], loop_copy[o]
    first = np.flatnonzero(np.r_[True, p_[1:] != p_[:-1]])
    lc_idx = np.flatnonzero(lc_)
    if not len(lc_idx):
        return
    first_copy = lc_idx[np.r_[True, p_[lc_idx][1:] != p_[lc_idx][:-1]]]  # one per path
    first = first[np.isin(p_[first], p_[first_copy])]  # align: paths with a loop copy
    entered = ~lc_[first]  # the path's first observation was not at its loop
    facts.add("loop_entry", pt_[first[entered]])
    facts.add("loop_behind", pt_[first_copy[entered]])
    own = first_copy[~entered]
    facts.add("loop_first_out", pt_[own[d_[own] == S.DIR_OUT]])
    facts.add("loop_first_in", pt_[own[d_[own] == S.DIR_IN]])


def _evidence_for(
    p: int,
    name: str,
    facts: RoleFacts,
    bounce_pts: Mapping[int, int],
    proxy: Mapping[int, list[str]],
) -> tuple[float, float, list[str]]:
    """(guest-link score, uplink score, reasons) of one point."""
    g = u = 0.0
    why: list[str] = []
    n = facts.of("loop_behind", p)
    if n:
        g += W_LOOP_ENTRY
        why.append(
            f"{n:,} looping packet(s) circulated here after entering at another capture point"
        )
    n = facts.of("loop_entry", p)
    if n:
        u += W_LOOP_ENTRY
        why.append(f"{n:,} looping packet(s) passed here before circulating elsewhere")
    out, inn = facts.of("loop_first_out", p), facts.of("loop_first_in", p)
    if out > inn:
        g += W_LOOP_FIRST
        why.append(f"the host sent the first copy of {out:,} looping packet(s) into this link")
    elif inn > out:
        u += W_LOOP_FIRST
        why.append(f"the first copy of {inn:,} looping packet(s) came in from the far side")
    n = bounce_pts.get(p, 0)
    if n:
        g += W_BOUNCE
        why.append(f"the far side returned {n:,} packet(s) it does not own (bounces)")
    if proxy.get(p):
        u += W_PROXY_ARP
        why.append("the host answered ARP/NDP here for " + ", ".join(proxy[p][:3]) + " (proxy ARP)")
    far, init = facts.of("crossed_far", p), facts.of("crossed_initial", p)
    if far >= 3 and far >= 0.2 * (far + init):
        u += W_FAR_SENDERS
        why.append(
            f"{far:,} forwarded packet(s) arrived with TTLs no sender starts with "
            "(they crossed routers)"
        )
    srv, cli = facts.of("servers_behind", p), facts.of("clients_behind", p)
    if srv >= 3 and srv > 2 * cli:
        g += W_SERVERS
        why.append(f"servers answer from behind it ({srv:,} requests in / answers out)")
    elif cli >= 3 and cli > 2 * srv:
        u += W_SERVERS
        why.append(f"clients are behind it ({cli:,} requests out / answers in)")
    return g, u, why


def folded_points(senders: Mapping[int, set[int]], linktypes: Sequence[int]) -> dict[int, int]:
    """Points that fold several interfaces into one: point → host MACs seen sending.

    A Linux cooked (v1) capture (``tcpdump -i any`` with an older libpcap)
    has no interface index, and its outgoing frames carry the MAC of the
    interface they left by: two or more of them mean the host's uplink and
    its guest links are one capture point, which then has no single role.
    ``senders``: point → source MACs of frames recorded as outgoing.
    """
    return {
        p: len(senders.get(p, ()))
        for p, lt_ in enumerate(linktypes)
        if lt_ == LINKTYPE_LINUX_SLL and len(senders.get(p, ())) >= 2
    }


def infer_roles(
    names: Sequence[str],
    facts: RoleFacts,
    bounce_points: Mapping[int, int],
    proxy_arp: Mapping[int, list[str]],
    uplinks: Iterable[str] = (),
    guest_links: Iterable[str] = (),
    folded: Mapping[int, int] | None = None,
    twins: Sequence[tuple[str, str, int]] = (),
) -> list[PointRole]:
    """The role of every capture point, with its evidence (in capture point order).

    ``folded``: points that are several interfaces at once (:func:`folded_points`);
    ``twins``: (kept, twin, copies) of points that recorded the same frames —
    a bridge and its port — which share one role.
    """
    up, guests = set(uplinks), set(guest_links)
    folded = folded or {}
    out = []
    for p, name in enumerate(names):
        if name in up or name in guests:
            role: Role = "uplink" if name in up else "guest-link"
            out.append(
                PointRole(name, role, "given", (f"given on the command line (--{role} {name})",))
            )
            continue
        if p in folded:
            out.append(
                PointRole(
                    name,
                    "unknown",
                    "strong",
                    (
                        f"a Linux cooked (v1) capture whose outgoing frames come from "
                        f"{folded[p]} host MACs: several interfaces in one capture point "
                        "(tcpdump -i any), uplink and guest link at once",
                    ),
                )
            )
            continue
        g, u, why = _evidence_for(p, name, facts, bounce_points, proxy_arp)
        evidence = g + u
        if guest_link_by_name(name):
            g += W_NAME
            why.append(f"its name ({name}) looks like a guest link's (a hint only)")
        elif UPLINK_NAME.match(name):
            u += W_NAME
            why.append(f"its name ({name}) looks like an uplink's (a hint only)")
        if g == u:
            out.append(
                PointRole(name, "unknown", "weak", tuple(why) or ("nothing in the capture tells",))
            )
            continue
        role = "guest-link" if g > u else "uplink"
        strong = evidence >= STRONG and min(g, u) < STRONG
        out.append(PointRole(name, role, "strong" if strong else "weak", tuple(why)))
    return _share_with_twins(out, twins, up | guests)


def _share_with_twins(
    roles: list[PointRole], twins: Sequence[tuple[str, str, int]], given: set[str]
) -> list[PointRole]:
    """Of two points that recorded the same frames, one whose evidence tells nothing
    takes the other's role."""
    by_name = {r.name: k for k, r in enumerate(roles)}
    for a, b, n in twins:
        if a not in by_name or b not in by_name:
            continue
        for known, other in ((a, b), (b, a)):
            src, dst = roles[by_name[known]], roles[by_name[other]]
            if src.role == "unknown" or dst.role != "unknown" or other in given:
                continue
            roles[by_name[other]] = PointRole(
                other,
                src.role,
                src.confidence,
                (
                    f"it recorded the same {n:,} frames as {known} (one wire: a bridge and "
                    "its port), whose role it shares",
                ),
            )
    return roles


def proxy_arp_points(
    arp: Mapping[str, np.ndarray],
    cols: Mapping[str, np.ndarray],
    host_macs: Mapping[int, int],
    behind: Mapping[str, int],
) -> dict[int, list[str]]:
    """Points where the host's MAC answered ARP (reply) or NDP (advertisement) for an
    address that sits behind another point (``behind``: address → its point)."""
    from ..addr import to_text

    out: dict[int, list[str]] = {}
    if arp and len(arp.get("op", [])):
        for op, ip, mac, pt in zip(arp["op"], arp["sender_ip"], arp["eth_src"], arp["point"]):
            a = to_text(0, 0xFFFF00000000 | int(ip))
            p = int(pt)
            if (
                int(op) == P.ARPOP_REPLY
                and a in behind
                and behind[a] != p
                and host_macs.get(p) in (None, int(mac))
            ):
                out.setdefault(p, [])
                if a not in out[p]:
                    out[p].append(a)
    na = np.flatnonzero(
        (cols["protocol"] == P.IPPROTO_ICMPV6) & (cols["icmp_type"] == P.ND_NEIGHBOR_ADVERT)
    )
    for i in na:
        a = to_text(cols["inner_dst_hi"][i], cols["inner_dst_lo"][i])
        p = int(cols["point"][i])
        if a in behind and behind[a] != p:
            out.setdefault(p, [])
            if a not in out[p]:
                out[p].append(a)
    return out
