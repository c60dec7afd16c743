"""Plain-language explanation and fix commands for a loop, following the links' roles.

Written for an engineer who has the host in front of them: what happened,
in the capture's own numbers, and commands to paste.  Every fix here stops
the loop it is offered for (the lab's ``fix-*`` scenarios apply each one and
check that the loop is gone).  Names taken from a capture reach a root shell
only when they are valid Linux interface names.

Given the host's saved state (a :class:`~pcaploop.bundle.Bundle` from
``pcaploop capture``), the explanation also cites the host's own route for
the looping address and the fixes use the real sysctl values
(:func:`with_host_state`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from .model import Loop, PointRole, Role

if TYPE_CHECKING:  # pragma: no cover
    from ..bundle.model import Bundle

#: what a Linux interface name can be; anything else (names come from customers'
#: captures) never reaches a command an operator pastes into a root shell
_IFNAME = re.compile(r"[A-Za-z0-9_.+-]{1,15}")
#: entry TTLs listed one by one before the rest are summarised
_MAX_TTLS = 3


def copies_per_entry(loop: Loop) -> str:
    """ "60 packets entered with TTL 63 and made 63 copies each" (per entry TTL)."""
    items = sorted(loop.entry_ttls.items(), key=lambda kv: (-kv[1], kv[0]))
    if not items:
        return f"{loop.looping_packets:,} packet(s) made {loop.observations:,} copies"
    word = "hop limit" if ":" in loop.destination else "TTL"
    parts = [f"{n:,} with {word} {t} ({t} copies each)" for t, n in items[:_MAX_TTLS]]
    rest = items[_MAX_TTLS:]
    if rest:
        parts.append(f"{sum(n for _, n in rest):,} with {len(rest)} other {word}s")
    if len(items) == 1:
        t, n = items[0]
        return f"{n:,} packet(s) entered with {word} {t} and made {t} copies each"
    return "the looping packets entered with " + "; ".join(parts)


def _roles(points: Sequence[str], role_of: Mapping[str, Role]) -> set[Role]:
    return {role_of.get(p, "unknown") for p in points}


def explain(
    loop: Loop, role_of: Mapping[str, Role] | None = None, host: Bundle | None = None
) -> tuple[str, list[str]]:
    """(explanation, fixes) for one loop; ``role_of``: capture point name → role;
    ``host``: the host's saved state, cited where it bears on the loop."""
    role_of = role_of or {}
    text, fixes = _explain(loop, role_of, host)
    if host is not None:
        text += _host_facts(loop, role_of, host)
    return text, fixes


def _explain(loop: Loop, role_of: Mapping[str, Role], host: Bundle | None) -> tuple[str, list[str]]:
    kind, dst, pts = loop.kind, loop.destination, list(loop.capture_points)
    v6 = ":" in dst
    step = loop.ttl_step
    n, obs = loop.looping_packets, loop.observations
    where = " and ".join(pts) if pts else "an unseen link"
    roles = _roles(pts, role_of)
    guest_pts = [p for p in pts if role_of.get(p) == "guest-link"]
    if kind == "l2":
        amp = loop.amplification or 0
        text = (
            f"{n:,} packet(s) for {dst} were forwarded again and again on {where} with the "
            f"same TTL within milliseconds ({obs:,} copies, {amp:,.0f} per packet): a "
            "layer-2 loop (a bridge or switch without spanning tree) or a box that rewrites "
            "the TTL. A routed loop would have lowered the TTL at every pass."
        )
        return text, [
            f"Look for a bridging loop on the segment behind {where}: `bridge link show`, "
            "spanning-tree state on the switches, an interface in two bridges or bonds."
        ]
    if kind == "inferred":
        who = ", ".join(loop.icmp_senders) or "an unseen router"
        text = (
            f"Packets for {dst} arrived on {where} with a TTL high enough to reach any "
            f"guest, yet a time-exceeded from {who} came back quoting them with TTL 1: "
            f"they circulated behind this capture point, most likely between the host and "
            f"the guest it routes {dst} to. Estimated {obs:,} copies for {n:,} packet(s) "
            f"({loop.estimate_basis or 'from their entry TTLs'}). Capture the guest's link "
            "to see the loop itself."
        )
        link = _route_dev(host, dst, role_of)
        return text, _guest_fixes(dst, [link] if link else [], v6, host) + _router_fixes(
            dst, v6, host
        )
    ladder = copies_per_entry(loop)
    if len(guest_pts) >= 2:
        text = (
            f"Packets for {dst} circulate through {where}: the guests behind these links "
            f"forward {dst} to each other through the host. Each round costs {step} TTL; "
            f"{ladder}, {obs:,} in all."
        )
        return text, _guest_fixes(dst, guest_pts, v6, host)
    if guest_pts:
        text = (
            f"The host routes {dst} into {where}, but the guest behind it no longer owns "
            f"{dst} and, with forwarding on, sends it back to its default gateway — the "
            f"host — which routes it in again. Each round trip costs {step} TTL; {ladder} "
            f"on {where} ({obs:,} in all) until their TTL ran out."
        )
        return text, _guest_fixes(dst, guest_pts, v6, host)
    if roles == {"uplink"}:
        text = (
            f"Packets for {dst} go back and forth between this host and its upstream router "
            f"on {where}: each routes {dst} to the other. Each pass costs {step} TTL; "
            f"{ladder} ({obs:,} in all)."
        )
        return text, _router_fixes(dst, v6, host)
    text = (
        f"Packets for {dst} circulate on {where}: each pass costs {step} TTL; {ladder} "
        f"({obs:,} in all). The captures do not show whether {where} is the host's link to "
        "a guest or to its upstream router (see the capture points' roles; --guest-link or "
        "--uplink says it), so both kinds of fix follow."
    )
    return text, _guest_fixes(dst, pts, v6, host) + _router_fixes(dst, v6, host)


def _nft_hairpin(link: str, v6: bool) -> str:
    """Drop what leaves by the link it came in on (nft cannot compare ``oifname`` with
    ``iifname`` directly, hence the set)."""
    fam = "ip6" if v6 else "ip"
    return (
        f"nft -f - <<'EOF'\ntable {fam} pcaploop {{\n"
        "  set hairpin {\n    type ifname . ifname\n"
        f'    elements = {{ "{link}" . "{link}" }}\n  }}\n'
        "  chain forward {\n"
        "    type filter hook forward priority filter; policy accept;\n"
        "    iifname . oifname @hairpin counter drop\n  }\n}\nEOF"
    )


def _guest_fixes(dst: str, pts: Sequence[str], v6: bool, host: Bundle | None = None) -> list[str]:
    """Fixes for a host↔guest loop; ``pts``: the guest links it circulates on."""
    link = next((p for p in pts if _IFNAME.fullmatch(p)), None)
    fixes = []
    if link is None:
        link = "GUESTLINK"
        fixes.append(
            f"Find the guest link: on the host, `ip {'-6 ' if v6 else ''}route get "
            f"{dst}` names it (`dev …`); it is GUESTLINK below."
        )
    plen = 128 if v6 else 32
    fam = "-6 " if v6 else ""
    fixes += [
        f"In the guest behind {link}: re-add the address it dropped: "
        f"`ip {fam}addr add {dst}/{plen} dev IFACE` (IFACE: the guest's side of {link}).",
        _delroute_fix(dst, link, v6, host),
        "In the guest: turn forwarding off unless it is a router: "
        + (
            "`sysctl -w net.ipv6.conf.all.forwarding=0`."
            if v6
            else "`sysctl -w net.ipv4.ip_forward=0`."
        ),
    ]
    if not v6:
        fixes.append(_rp_filter_fix(link, host))
    fixes.append(
        ("On the host (IPv6 has no rp_filter), " if v6 else "On the host, ")
        + "drop forwarded packets that leave by the guest link they came in on (add one "
        f"element per guest link): `{_nft_hairpin(link, v6)}`"
    )
    return fixes


def _delroute_fix(dst: str, link: str, v6: bool, host: Bundle | None) -> str:
    """Delete the host's route and neighbour entry: the saved ones where the bundle has
    them (and, for IPv6, the proxy NDP entries for the address)."""
    plen = 128 if v6 else 32
    fam = "-6 " if v6 else ""
    tail = (
        f"Until the upstream router's ARP/NDP entry for {dst} expires (tens of "
        "seconds) the packets then loop between the host and the router instead."
    )
    route = host.route_for(dst) if host is not None else None
    if host is None or route is None or route.dev != link or route.network.prefixlen != plen:
        return (
            f"Or on the host, if the address moved elsewhere: delete its route and neighbour "
            f"entry: `ip {fam}route del {dst}/{plen} dev {link}; ip {fam}neigh del {dst} dev "
            f"{link}`. " + tail
        )
    cmds = [f"ip {fam}route del {dst}/{plen} dev {link}"]
    what = ["route"]
    if host.neighbour(dst, link) is not None:
        cmds.append(f"ip {fam}neigh del {dst} dev {link}")
        what.append("neighbour entry")
    for n in host.neighbours:
        if n.proxy and n.dst == dst and n.dev and _IFNAME.fullmatch(n.dev):
            cmds.append(f"ip {fam}neigh del proxy {dst} dev {n.dev}")
            if "proxy entry" not in what:
                what.append("proxy entry")
    return (
        f"Or on the host, if the address moved elsewhere: delete its {' and '.join(what)} "
        f"(the host's saved route: {route.text}): `{'; '.join(cmds)}`. " + tail
    )


#: what the kernel does for each rp_filter value
_RP_MODES = {0: "no reverse-path filtering (0)", 1: "strict mode (1)", 2: "loose mode (2)"}


def _rp_filter_fix(link: str, host: Bundle | None) -> str:
    """Strict reverse-path filtering on the guest link, from the real values when the
    host's sysctls were saved (the kernel applies the larger of ``all`` and the link's)."""
    generic = (
        "On the host: strict reverse-path filtering on the guest link — the kernel uses "
        "the larger of `all` and the interface value, so set both: "
        "`sysctl -w net.ipv4.conf.all.rp_filter=1; "
        f"sysctl -w net.ipv4.conf.{link}.rp_filter=1` "
        "(loose mode 2 does not stop the loop; the packet then bounces once and is dropped)."
    )
    vals = host.sysctls.rp_filter(link) if host is not None else None
    if vals is None:
        return generic
    all_, own, eff = vals
    applied = _RP_MODES.get(eff, f"rp_filter {eff}")
    if eff == 1:
        return (
            f"On the host: rp_filter is {own} on {link} and {all_} in `all`, so the kernel "
            f"already applies strict mode (1) — it did not stop this loop (the packets' "
            "sources are routed out of the link they arrived on); use the nftables rule below."
        )
    cmds = []
    if all_ not in (0, 1):
        cmds.append("sysctl -w net.ipv4.conf.all.rp_filter=1")
    if own not in (0, 1) or (all_ == 0 and own == 0):
        cmds.append(f"sysctl -w net.ipv4.conf.{link}.rp_filter=1")
    if all_ not in (0, 1) and own == 1:
        what = (
            f"rp_filter is 1 on {link} but `all` is {all_}, so the kernel applies {applied} "
            "(the larger of the two) — set `all` too"
        )
    else:
        what = (
            f"rp_filter is {own} on {link} and {all_} in `all`, so the kernel applies "
            f"{applied} (the larger of the two) — make it strict"
        )
    caveat = (
        " (`all`=1 makes every interface at least strict: check first that the uplink's "
        "traffic is symmetric)"
        if all_ not in (0, 1)
        else ""
    )
    return (
        f"On the host: {what}: `{'; '.join(cmds)}`{caveat}. The returned packet then "
        "bounces once and is dropped (loose mode 2 does not stop the loop)."
    )


def _router_fixes(dst: str, v6: bool, host: Bundle | None = None) -> list[str]:
    fam = "-6 " if v6 else ""
    route = host.route_for(dst) if host is not None else None
    saved = f"; the host's saved route: {route.text}" if route is not None else ""
    return [
        f"Compare the host's route for {dst} (`ip {fam}route get {dst}`{saved}) with the "
        "upstream router's: one of them must deliver it instead of handing it back. Remove "
        "the route that points back toward the neighbour it came from.",
    ]


# --- the host's saved state (pcaploop capture's bundle) --------------------------------
def with_host_state(
    loops: Sequence[Loop], roles: Sequence[PointRole], bundles: Sequence[Bundle]
) -> list[Loop]:
    """The loops with explanations and fixes written again from the hosts' saved state:
    each loop is explained with the bundle whose interfaces it circulates on."""
    role_of = {r.name: r.role for r in roles}
    out = []
    for lp in loops:
        host = _bundle_for(lp, bundles)
        if host is None:
            out.append(lp)
            continue
        text, fixes = explain(lp, role_of, host)
        out.append(replace(lp, explanation=text, fixes=tuple(fixes)))
    return out


def _bundle_for(loop: Loop, bundles: Sequence[Bundle]) -> Bundle | None:
    for b in bundles:
        if any(b.has_interface(p) for p in loop.capture_points):
            return b
    return bundles[0] if len(bundles) == 1 else None


def _route_dev(host: Bundle | None, dst: str, role_of: Mapping[str, Role]) -> str | None:
    """The guest link the host routes ``dst`` into, from its saved routes (None when the
    route leaves by an uplink or names no usable interface)."""
    route = host.route_for(dst) if host is not None else None
    if host is None or route is None or route.dev is None or route.gateway is not None:
        return None
    dev = route.dev
    if not _IFNAME.fullmatch(dev) or "uplink" in (role_of.get(dev), host.role_of(dev)):
        return None
    return dev


def _host_facts(loop: Loop, role_of: Mapping[str, Role], host: Bundle) -> str:
    """What the host's saved state says about the loop's destination, as a sentence."""
    dst, v6 = loop.destination, ":" in loop.destination
    parts = []
    route = host.route_for(dst)
    if route is None:
        parts.append(f"the host has no route for {dst}")
    else:
        text = f"the host's route: {route.text}"
        elsewhere = route.dev is not None and route.dev not in loop.capture_points
        if elsewhere and loop.kind == "l3" and loop.capture_points:
            text += (
                f" (not {' or '.join(loop.capture_points)}: the route changed during the "
                "capture, or a policy rule chose another table)"
            )
        parts.append(text)
        neigh = host.neighbour(dst, route.dev) if route.dev else None
        if neigh is not None:
            state = "/".join(neigh.states) or "no state"
            note = (
                " — it never asks whether the guest still owns the address"
                if "PERMANENT" in neigh.states
                else ""
            )
            parts.append(f"its neighbour entry for {dst} on {route.dev} is {state}{note}")
    proxies = [n.dev for n in host.neighbours if n.proxy and n.dst == dst and n.dev]
    if proxies:
        parts.append(f"a proxy NDP entry for {dst} on {', '.join(proxies)}")
    if v6:
        fwd = host.sysctls.get("net.ipv6.conf.all.forwarding")
        if fwd is not None:
            parts.append(f"net.ipv6.conf.all.forwarding={fwd}")
    else:
        fwd = host.sysctls.get("net.ipv4.ip_forward")
        if fwd is not None:
            parts.append(f"net.ipv4.ip_forward={fwd}")
        ups = [lk.name for lk in host.interfaces if lk.role == "uplink"]
        arp = [u for u in ups if host.sysctls.conf(4, u, "proxy_arp") == 1]
        if arp:
            parts.append(f"proxy_arp=1 on {', '.join(arp)}")
    return f" From the host's saved state ({host.path}): " + "; ".join(parts) + "."
