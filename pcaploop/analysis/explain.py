"""Plain-language explanation and fix commands for a loop.

Every fix printed here was applied in the lab (``samples/lab``, scenarios
``fix-*``) and stopped the loop there; keep the two in step.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .model import Loop
from .roles import guest_link_by_name


def _is_guest_link(points: Sequence[str]) -> bool:
    return any(guest_link_by_name(p) for p in points)


def explain(loop: Loop) -> tuple[str, list[str]]:
    """(explanation, fixes) for one loop."""
    kind, dst, pts = loop.kind, loop.destination, list(loop.capture_points)
    v6 = ":" in dst
    step = loop.ttl_step
    n, obs = loop.looping_packets, loop.observations
    where = " and ".join(pts) if pts else "an unseen link"
    amp = loop.amplification or 0
    if kind == "l2":
        text = (
            f"{n} packet(s) for {dst} were seen again and again on {where} with the same "
            f"TTL ({obs} copies, ×{amp:.0f}): a layer-2 loop (bridge/switch without STP) or "
            "a box that rewrites the TTL. Routers would have lowered the TTL."
        )
        return text, [
            "Look for a bridging loop on the segment behind "
            f"{where}: `bridge link show`, STP state on switches, duplicated "
            "bridge/bond membership."
        ]
    host_fixes = _guest_fixes(dst, pts, v6) if (_is_guest_link(pts) or kind == "inferred") else []
    if kind == "inferred":
        who = ", ".join(loop.icmp_senders) or "an unseen router"
        text = (
            f"Packets for {dst} arrived on {where} with a high TTL and a time-exceeded from "
            f"{who} came back quoting them with TTL 1: they circulated behind this "
            f"capture point, most likely between the host and the guest it routes {dst} "
            f"to (estimated {obs} copies for {n} packet(s)). Capture that guest's link "
            "to see the loop itself."
        )
        return text, host_fixes or _router_fixes(dst, pts, v6)
    if len(pts) >= 2 and _is_guest_link(pts):
        text = (
            f"Packets for {dst} circulate through {where}: the guests behind these links "
            f"forward {dst} to each other through the host. Each round costs {step} TTL; "
            f"{n} packet(s) became {obs} copies (×{amp:.1f})."
        )
        return text, host_fixes
    if _is_guest_link(pts):
        text = (
            f"The host routes {dst} into {where}, but the guest behind it no longer owns "
            f"{dst} and, with forwarding on, sends it back to its default gateway — the "
            f"host — which routes it in again. Each round trip costs {step} TTL; "
            f"{n} packet(s) became {obs} copies on {where} (×{amp:.1f}) until the TTL ran out."
        )
        return text, host_fixes
    text = (
        f"Packets for {dst} bounce between this host and its neighbour on {where}: each "
        f"routes {dst} to the other. Each pass costs {step} TTL; {n} packet(s) became "
        f"{obs} copies (×{amp:.1f})."
    )
    return text, _router_fixes(dst, pts, v6)


def _nft_hairpin(link: str, v6: bool) -> str:
    """The nftables rule the lab verified: drop what leaves by the link it came in on
    (nft cannot compare ``oifname`` with ``iifname`` directly, hence the set)."""
    fam = "ip6" if v6 else "ip"
    return (
        f"nft -f - <<'EOF'\ntable {fam} pcaploop {{\n"
        f'  set hairpin {{ type ifname . ifname; elements = {{ "{link}" . "{link}" }} }}\n'
        "  chain forward {\n"
        "    type filter hook forward priority filter; policy accept;\n"
        "    iifname . oifname @hairpin counter drop\n  }\n}\nEOF"
    )


#: what a Linux interface name can be; anything else (names come from customers'
#: captures) never reaches a command an operator pastes into a root shell
_IFNAME = re.compile(r"[A-Za-z0-9_.+-]{1,15}")


def _guest_fixes(dst: str, pts: list[str], v6: bool) -> list[str]:
    """Fixes for a host↔guest loop, in the form the lab's fix-* scenarios applied them."""
    link = next((p for p in pts if guest_link_by_name(p) and _IFNAME.fullmatch(p)), None)
    fixes = []
    if link is None:
        link = "GUESTLINK"
        fixes.append(
            f"Find the guest link: on the host, `ip {'-6 ' if v6 else ''}route get "
            f"{dst}` names it (`dev …`); it is GUESTLINK below."
        )
    plen = 128 if v6 else 32
    fam = "-6 " if v6 else ""
    v4_only = " (verified in the lab for IPv4)" if v6 else ""
    fixes += [
        f"In the guest behind {link}: re-add the address it dropped: "
        f"`ip {fam}addr add {dst}/{plen} dev IFACE` (IFACE: the guest's side of {link})"
        f"{v4_only}.",
        f"Or on the host, if the address moved elsewhere: delete its route and neighbour "
        f"entry: `ip {fam}route del {dst}/{plen} dev {link}; ip {fam}neigh del {dst} dev "
        f"{link}`. Until the upstream router's ARP/NDP entry for {dst} expires (about 30 s "
        "in the lab) the packets then loop between the host and the router instead"
        f"{v4_only}.",
        "In the guest: turn forwarding off unless it is a router: "
        + (
            "`sysctl -w net.ipv6.conf.all.forwarding=0` (verified in the lab for IPv4)."
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
        + f"drop forwarded packets that leave by the guest link they came in on (add one "
        f"element per guest link): `{_nft_hairpin(link, v6)}`"
    )
    return fixes


def _router_fixes(dst: str, pts: list[str], v6: bool) -> list[str]:
    fam = "-6 " if v6 else ""
    return [
        f"Compare the host's route for {dst} (`ip {fam}route get {dst}`) with the upstream "
        "router's: one of them must deliver it instead of handing it back. Remove the route "
        "that points back toward the neighbour it came from.",
    ]
