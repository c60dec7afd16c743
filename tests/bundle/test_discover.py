"""Which interfaces ``pcaploop capture`` records, from canned ``ip -j`` output (no root)."""

from __future__ import annotations

import hoststate as hs
import pytest

from pcaploop.bundle import Link, discover
from pcaploop.bundle.capture import parse_tcpdump_stats, plan_links, read_sysctls
from pcaploop.errors import UsageError


def test_the_lab_host_uplink_and_guest_link():
    got = discover(hs.ROUTES4, hs.ROUTES6, hs.LINKS)
    assert got == [
        Link("uplink", "uplink", "default route (IPv4 and IPv6)", 2),
        Link(
            "tap101",
            "guest-link",
            "carries host routes 203.0.113.7, 203.0.113.101, 2001:db8:100::101",
            5,
            ("203.0.113.7", "203.0.113.101", "2001:db8:100::101"),
        ),
    ]


def test_a_host_route_on_the_uplink_does_not_make_it_a_guest_link():
    """Hosting providers route the gateway as a /32 on the uplink (``GW dev eth0``)."""
    routes = [
        {"dst": "default", "gateway": "192.0.2.1", "dev": "eth0", "flags": ["onlink"]},
        {"dst": "192.0.2.1", "dev": "eth0", "scope": "link"},
        {"dst": "203.0.113.7/32", "dev": "venet0", "scope": "link"},
    ]
    got = discover(routes, [])
    assert [(lk.name, lk.role) for lk in got] == [("eth0", "uplink"), ("venet0", "guest-link")]
    assert got[1].why == "carries host route 203.0.113.7"


def test_ipv6_only_multipath_and_what_is_not_a_guest_route():
    routes4 = [
        {"type": "blackhole", "dst": "203.0.113.9"},
        {"dst": "203.0.113.10", "dev": "lo"},
        {"dst": "198.51.100.0/24", "dev": "br0"},
    ]
    routes6 = [
        {
            "dst": "default",
            "nexthops": [
                {"gateway": "2001:db8:1::1", "dev": "eth0", "weight": 1},
                {"gateway": "2001:db8:2::1", "dev": "eth1", "weight": 1},
            ],
        },
        {"dst": "2001:db8:100::7/128", "dev": "tun1"},
        {"dst": "2001:db8:100::/64", "dev": "tun2"},
    ]
    got = discover(routes4, routes6)
    assert [(lk.name, lk.role, lk.why) for lk in got] == [
        ("eth0", "uplink", "default route (IPv6)"),
        ("eth1", "uplink", "default route (IPv6)"),
        ("tun1", "guest-link", "carries host route 2001:db8:100::7"),
    ]


def test_many_host_routes_are_counted_and_links_follow_the_host_order():
    routes = [{"dst": f"203.0.113.{k}", "dev": "tap2"} for k in range(1, 8)]
    routes.append({"dst": "203.0.113.100", "dev": "tap1"})
    links = [{"ifindex": 9, "ifname": "tap2"}, {"ifindex": 4, "ifname": "tap1"}]
    got = discover(routes, [], links)
    assert [lk.name for lk in got] == ["tap1", "tap2"]
    assert got[1].why == "carries host routes 203.0.113.1, 203.0.113.2, 203.0.113.3 and 4 more"
    assert len(got[1].host_routes) == 7


def test_plan_without_i_captures_what_was_found():
    roles, wanted = plan_links([], hs.ROUTES4, hs.ROUTES6, hs.LINKS)
    assert wanted == ["uplink", "tap101"]
    assert [r.role for r in roles] == ["uplink", "guest-link"]


def test_plan_with_i_keeps_the_roles_and_adds_unknown_ones():
    links = [*hs.LINKS, {"ifindex": 7, "ifname": "eth9"}]
    roles, wanted = plan_links(["tap101", "eth9", "tap101"], hs.ROUTES4, hs.ROUTES6, links)
    assert wanted == ["tap101", "eth9"]
    assert {r.name: r.role for r in roles} == {
        "uplink": "uplink",
        "tap101": "guest-link",
        "eth9": "unknown",
    }
    roles, wanted = plan_links(["any"], hs.ROUTES4, hs.ROUTES6, hs.LINKS)
    assert wanted == ["any"] and {r.name for r in roles} == {"uplink", "tap101"}


@pytest.mark.parametrize(
    ("given", "routes", "message"),
    [
        (["nosuch0"], hs.ROUTES4, "-i nosuch0: no such interface (this host has lo, uplink"),
        (["any", "uplink"], hs.ROUTES4, "-i any already captures every interface"),
        ([], [{"dst": "192.0.2.0/24", "dev": "uplink"}], "found no interface to capture"),
    ],
)
def test_plan_refuses(given, routes, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        plan_links(given, routes, [], hs.LINKS)


def test_tcpdump_statistics():
    st = parse_tcpdump_stats(
        "tcpdump: listening on tap101, link-type EN10MB (Ethernet), snapshot length 256 bytes\n"
        "3816 packets captured\n3820 packets received by filter\n"
        "4 packets dropped by kernel\n1 packet dropped by interface\n"
    )
    assert (st.captured, st.received_by_filter, st.dropped_by_kernel) == (3816, 3820, 4)
    assert st.dropped_by_interface == 1 and st.dropped == 5
    assert parse_tcpdump_stats("tcpdump: tap9: No such device exists\n").captured is None


def test_sysctls_from_a_proc_tree(tmp_path):
    def put(rel, value):
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"{value}\n")

    put("net/ipv4/ip_forward", 1)
    put("net/ipv6/conf/all/forwarding", 0)
    for iface, rp in (("all", 2), ("default", 0), ("tap101", 1)):
        put(f"net/ipv4/conf/{iface}/rp_filter", rp)
        put(f"net/ipv4/conf/{iface}/proxy_arp", 0)
        put(f"net/ipv6/conf/{iface}/proxy_ndp", 0)
    got = read_sysctls(["tap101", "gone0"], root=str(tmp_path))
    assert got["net.ipv4.ip_forward"] == 1 and got["net.ipv6.conf.all.forwarding"] == 0
    assert got["net.ipv4.conf"]["all"] == {"rp_filter": 2, "proxy_arp": 0}
    assert got["net.ipv4.conf"]["tap101"]["rp_filter"] == 1
    assert "gone0" not in got["net.ipv4.conf"]
    assert got["net.ipv6.conf"]["tap101"] == {"proxy_ndp": 0}
