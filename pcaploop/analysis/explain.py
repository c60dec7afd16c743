"""Plain-language explanation and fix commands for a loop, following the links' roles.

Written for an engineer who has the host in front of them: what happened,
in the capture's own numbers, and commands to paste.  Every fix here stops
the loop it is offered for (the lab's ``fix-*`` scenarios apply each one and
check that the loop is gone).  Names taken from a capture reach a root shell
only when they are valid Linux interface names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from .model import Loop, Role

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


def explain(loop: Loop, role_of: Mapping[str, Role] | None = None) -> tuple[str, list[str]]:
    """(explanation, fixes) for one loop; ``role_of``: capture point name → role."""
    role_of = role_of or {}
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
        return text, _guest_fixes(dst, [], v6) + _router_fixes(dst, v6)
    ladder = copies_per_entry(loop)
    if len(guest_pts) >= 2:
        text = (
            f"Packets for {dst} circulate through {where}: the guests behind these links "
            f"forward {dst} to each other through the host. Each round costs {step} TTL; "
            f"{ladder}, {obs:,} in all."
        )
        return text, _guest_fixes(dst, guest_pts, v6)
    if guest_pts:
        text = (
            f"The host routes {dst} into {where}, but the guest behind it no longer owns "
            f"{dst} and, with forwarding on, sends it back to its default gateway — the "
            f"host — which routes it in again. Each round trip costs {step} TTL; {ladder} "
            f"on {where} ({obs:,} in all) until their TTL ran out."
        )
        return text, _guest_fixes(dst, guest_pts, v6)
    if roles == {"uplink"}:
        text = (
            f"Packets for {dst} go back and forth between this host and its upstream router "
            f"on {where}: each routes {dst} to the other. Each pass costs {step} TTL; "
            f"{ladder} ({obs:,} in all)."
        )
        return text, _router_fixes(dst, v6)
    text = (
        f"Packets for {dst} circulate on {where}: each pass costs {step} TTL; {ladder} "
        f"({obs:,} in all). The captures do not show whether {where} is the host's link to "
        "a guest or to its upstream router (see the capture points' roles; --guest-link or "
        "--uplink says it), so both kinds of fix follow."
    )
    return text, _guest_fixes(dst, pts, v6) + _router_fixes(dst, v6)


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


def _guest_fixes(dst: str, pts: Sequence[str], v6: bool) -> list[str]:
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
        f"Or on the host, if the address moved elsewhere: delete its route and neighbour "
        f"entry: `ip {fam}route del {dst}/{plen} dev {link}; ip {fam}neigh del {dst} dev "
        f"{link}`. Until the upstream router's ARP/NDP entry for {dst} expires (tens of "
        "seconds) the packets then loop between the host and the router instead.",
        "In the guest: turn forwarding off unless it is a router: "
        + (
            "`sysctl -w net.ipv6.conf.all.forwarding=0`."
            if v6
            else "`sysctl -w net.ipv4.ip_forward=0`."
        ),
    ]
    if not v6:
        fixes.append(
            "On the host: strict reverse-path filtering on the guest link — the kernel uses "
            "the larger of `all` and the interface value, so set both: "
            "`sysctl -w net.ipv4.conf.all.rp_filter=1; "
            f"sysctl -w net.ipv4.conf.{link}.rp_filter=1` "
            "(loose mode 2 does not stop the loop; the packet then bounces once and is dropped)."
        )
    fixes.append(
        ("On the host (IPv6 has no rp_filter), " if v6 else "On the host, ")
        + "drop forwarded packets that leave by the guest link they came in on (add one "
        f"element per guest link): `{_nft_hairpin(link, v6)}`"
    )
    return fixes


def _router_fixes(dst: str, v6: bool) -> list[str]:
    fam = "-6 " if v6 else ""
    return [
        f"Compare the host's route for {dst} (`ip {fam}route get {dst}`) with the upstream "
        "router's: one of them must deliver it instead of handing it back. Remove the route "
        "that points back toward the neighbour it came from.",
    ]
