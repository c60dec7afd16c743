"""Reading a bundle: the manifest, the saved state, and every CAPTURE command taking
a bundle directory (synthetic bundles of loopgen captures; no root needed)."""

from __future__ import annotations

import json
import subprocess
import sys

import hoststate as hs
import pytest
from loopgen import CLIENT, HOST, ROUTER, T0, eth, icmp_te, ip4, tunnel_loop, write, write_sll2_loop

import pcaploop
from pcaploop.analysis.explain import explain, with_host_state
from pcaploop.bundle import expand_captures, is_bundle, load_bundle
from pcaploop.bundle.model import route_text
from pcaploop.errors import PcaploopError
from pcaploop.ingest.specs import CaptureSpec


@pytest.fixture(scope="module")
def pcaps(tmp_path_factory):
    d = tmp_path_factory.mktemp("pcaps")
    args = write(tunnel_loop(n=5), d)
    return {a.split("=", 1)[0]: a.split("=", 1)[1] for a in args}


@pytest.fixture
def bundle(tmp_path, pcaps):
    return hs.write_bundle(tmp_path / "b", pcaps)


def cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "pcaploop", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


# --- the model ----------------------------------------------------------------------------
def test_load_bundle(bundle):
    b = load_bundle(bundle)
    assert is_bundle(bundle) and b.host == "host1"
    assert [(c.interface, c.file) for c in b.captures] == [
        ("tap101", "tap101.pcap"),
        ("uplink", "uplink.pcap"),
    ]
    assert {lk.name: lk.role for lk in b.interfaces} == {"uplink": "uplink", "tap101": "guest-link"}
    assert b.links == {1: "lo", 2: "uplink", 5: "tap101"}
    assert b.sysctls.get("net.ipv4.ip_forward") == 1
    assert b.sysctls.rp_filter("tap101") == (0, 0, 0)
    assert b.neighbour("203.0.113.7", "tap101").states == ("PERMANENT",)
    assert b.neighbour("2001:db8:100::101", proxy=True).dev == "uplink"
    assert b.warnings == ()


def test_routes_longest_prefix_and_text(bundle):
    b = load_bundle(bundle)
    assert b.route_for("203.0.113.7").text == "203.0.113.7 dev tap101 scope link"
    assert b.route_for("192.0.2.55").text == (
        "192.0.2.0/24 dev uplink proto kernel scope link src 192.0.2.10"
    )
    assert b.route_for("198.51.100.9").text == "default via 192.0.2.1 dev uplink"
    assert b.route_for("2001:db8:100::101").dev == "tap101"
    assert b.route_for("2001:db8:9::1").gateway == "2001:db8:1::1"
    assert b.route_for("not an address") is None
    assert route_text({"type": "blackhole", "dst": "203.0.113.9"}) == "blackhole 203.0.113.9"


def test_expand_names_points_by_interface_and_gives_the_roles(bundle, pcaps):
    got = expand_captures([str(bundle), f"other={pcaps['uplink']}"])
    assert [(s.name, s.path) for s in got.captures[:2]] == [
        ("tap101", str(bundle / "tap101.pcap")),
        ("uplink", str(bundle / "uplink.pcap")),
    ]
    assert got.captures[2] == f"other={pcaps['uplink']}"
    assert (got.uplinks, got.guest_links, got.ifmap) == (["uplink"], ["tap101"], {})
    # a spec object naming a bundle directory is expanded too
    assert len(expand_captures([CaptureSpec(str(bundle))]).bundles) == 1


def test_an_any_capture_is_named_from_the_saved_links(tmp_path):
    any_pcap = write_sll2_loop(tmp_path)
    b = hs.write_bundle(tmp_path / "b", {"any": any_pcap})
    got = expand_captures([str(b)])
    assert got.ifmap == {2: "uplink", 5: "tap101"}
    assert (got.uplinks, got.guest_links) == (["uplink"], ["tap101"])
    doc = pcaploop.analyze(
        got.captures, got.ifmap, uplinks=got.uplinks, guest_links=got.guest_links
    )
    assert {p.name for p in doc.packets.points} == {"uplink", "tap101"}
    assert [lp.destination for lp in doc.loops] == ["203.0.113.7"]


def test_drops_and_a_changed_file_are_warnings(tmp_path, pcaps):
    b = hs.write_bundle(
        tmp_path / "b",
        pcaps,
        stats={"tap101": {"captured": 10, "dropped_by_kernel": 3, "dropped_by_interface": 1}},
    )
    with open(b / "uplink.pcap", "ab") as f:
        f.write(b"\0" * 16)
    (b / "state/ip-neigh.json").write_text("{not json")
    w = "\n".join(load_bundle(b).warnings)
    assert "capture point tap101: tcpdump reported 4 packet(s) dropped" in w
    assert "uplink.pcap:" in w and "the manifest says" in w
    assert "ip-neigh.json: cannot read the host's neighbours" in w
    # the JSON carries tcpdump's own count on the point it belongs to
    r = subprocess.run(
        [sys.executable, "-m", "pcaploop", "analyze", str(b), "--json", "-"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    dropped = {c["name"]: c["capture_dropped"] for c in json.loads(r.stdout)["captures"]}
    assert dropped["tap101"] == 4


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("no-manifest", "not a pcaploop bundle (it has no manifest.json)"),
        ("foreign", "not a pcaploop bundle manifest"),
        ("newer", "bundle format version 99"),
        ("missing-capture", "the bundle manifest names this capture, but it is missing"),
        ("escape", "is outside the bundle"),
    ],
)
def test_broken_bundles_are_one_line_errors(tmp_path, pcaps, damage, message):
    b = hs.write_bundle(tmp_path / "b", pcaps)
    m = json.loads((b / "manifest.json").read_text())
    if damage == "no-manifest":
        (b / "manifest.json").unlink()
    elif damage == "foreign":
        m["format"] = "something-else"
    elif damage == "newer":
        m["format_version"] = 99
    elif damage == "missing-capture":
        (b / "tap101.pcap").unlink()
    else:
        m["captures"][0]["file"] = "../tap101.pcap"
    if damage != "no-manifest":
        (b / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(PcaploopError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_bundle(b)
    r = cli("analyze", b)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and r.stderr.startswith("Error: ")


# --- explanations from the host's state ---------------------------------------------------
@pytest.mark.parametrize(
    ("rp_all", "rp_tap", "says", "commands"),
    [
        (
            2,
            1,
            "rp_filter is 1 on tap101 but `all` is 2, so the kernel applies loose mode (2)"
            " (the larger of the two) — set `all` too",
            ["sysctl -w net.ipv4.conf.all.rp_filter=1"],
        ),
        (
            0,
            0,
            "rp_filter is 0 on tap101 and 0 in `all`, so the kernel applies no reverse-path"
            " filtering (0)",
            ["sysctl -w net.ipv4.conf.tap101.rp_filter=1"],
        ),
        (
            2,
            2,
            "so the kernel applies loose mode (2)",
            [
                "sysctl -w net.ipv4.conf.all.rp_filter=1",
                "sysctl -w net.ipv4.conf.tap101.rp_filter=1",
            ],
        ),
        (0, 2, "rp_filter is 2 on tap101 and 0 in `all`", ["net.ipv4.conf.tap101.rp_filter=1"]),
        (1, 0, "already applies strict mode (1)", []),
    ],
)
def test_rp_filter_fix_uses_the_real_values(tmp_path, pcaps, rp_all, rp_tap, says, commands):
    b = load_bundle(hs.write_bundle(tmp_path / "b", pcaps, hs.conf(rp_all, rp_tap)))
    a = pcaploop.analyze([f"{c.interface}={c.path}" for c in b.captures], guest_links=["tap101"])
    (lp,) = with_host_state(a.loops, a.roles, [b])
    (fix,) = [f for f in lp.fixes if "rp_filter" in f]
    assert says in fix
    cmds = fix.split("`")[1::2]
    assert all(any(c in x for x in cmds) for c in commands), cmds
    if not commands:
        assert "nftables rule below" in fix


def test_explanation_cites_the_route_and_fixes_the_saved_entries(tmp_path, pcaps, bundle):
    b = load_bundle(bundle)
    a = pcaploop.analyze([f"{c.interface}={c.path}" for c in b.captures], guest_links=["tap101"])
    lp = a.loops[0]
    text, fixes = explain(lp, {"tap101": "guest-link", "uplink": "uplink"}, b)
    plain, plain_fixes = explain(lp, {"tap101": "guest-link", "uplink": "uplink"})
    assert text.startswith(plain)
    assert "the host's route: 203.0.113.7 dev tap101 scope link" in text
    assert "its neighbour entry for 203.0.113.7 on tap101 is PERMANENT" in text
    assert "net.ipv4.ip_forward=1; proxy_arp=1 on uplink" in text
    (dele,) = [f for f in fixes if "route del" in f]
    assert "(the host's saved route: 203.0.113.7 dev tap101 scope link)" in dele
    assert "`ip route del 203.0.113.7/32 dev tap101; ip neigh del 203.0.113.7 dev tap101`" in dele
    assert len(fixes) == len(plain_fixes)


def test_ipv6_fix_removes_the_proxy_ndp_entry(tmp_path):
    caps = tunnel_loop(n=3, v6=True, dst="2001:db8:100::101")
    args = write(caps, tmp_path)
    b = load_bundle(
        hs.write_bundle(tmp_path / "b", {a.split("=")[0]: a.split("=")[1] for a in args})
    )
    a = pcaploop.analyze([f"{c.interface}={c.path}" for c in b.captures], guest_links=["tap101"])
    (lp,) = with_host_state(a.loops, a.roles, [b])
    assert "a proxy NDP entry for 2001:db8:100::101 on uplink" in lp.explanation
    (dele,) = [f for f in lp.fixes if "route del" in f]
    assert "ip -6 neigh del proxy 2001:db8:100::101 dev uplink" in dele


def test_an_uplink_only_bundle_names_the_guest_link_from_the_route(tmp_path):
    """Behind the uplink the loop is inferred; the saved route says which link it is on."""
    frames = []
    for k in range(3):
        orig = ip4("203.0.113.7", 64, 900 + k)
        quoted = bytearray(orig[:28])
        quoted[8] = 1  # the copy that expired carried TTL 1
        frames.append((T0 + k * 0.1, eth(orig, ROUTER, HOST)))
        te = icmp_te(bytes(quoted), "203.0.113.101", CLIENT)
        frames.append((T0 + k * 0.1 + 0.001, eth(te, HOST, ROUTER)))
    (arg,) = write({"uplink": frames}, tmp_path)
    b = load_bundle(hs.write_bundle(tmp_path / "b", {"uplink": arg.split("=", 1)[1]}))
    a = pcaploop.analyze([f"uplink={b.captures[0].path}"], uplinks=["uplink"])
    (plain,) = a.loops
    assert plain.kind == "inferred" and any("GUESTLINK" in f for f in plain.fixes)
    (lp,) = with_host_state(a.loops, a.roles, [b])
    assert all("GUESTLINK" not in f for f in lp.fixes)
    assert any("ip route del 203.0.113.7/32 dev tap101" in f for f in lp.fixes)
    assert "the host's route: 203.0.113.7 dev tap101 scope link" in lp.explanation


# --- the commands -------------------------------------------------------------------------
def test_analyze_a_bundle(bundle):
    r = cli("analyze", bundle, "--json", "-")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    pcaploop.validate_json(doc)
    assert {c["name"]: c["role"] for c in doc["captures"]} == {
        "uplink": "uplink",
        "tap101": "guest-link",
    }
    ev = {c["name"]: c["role_evidence"][0] for c in doc["captures"]}
    assert ev["uplink"].startswith("the host's saved state (") and "default route" in ev["uplink"]
    (lp,) = doc["loops"]
    assert lp["destination"] == "203.0.113.7"
    assert "the host's route: 203.0.113.7 dev tap101" in lp["explanation"]


def test_the_command_line_roles_win_over_the_bundle(bundle):
    r = cli("analyze", bundle, "--uplink", "tap101", "--json", "-")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    roles = {c["name"]: (c["role"], c["role_evidence"][0]) for c in doc["captures"]}
    assert roles["tap101"] == ("uplink", "given on the command line (--uplink tap101)")
    assert roles["uplink"][0] == "uplink"


@pytest.mark.parametrize(
    "args",
    [
        ["info"],
        ["paths", "--limit", "1"],
        ["report", "-o", "{out}/r.md"],
        ["extract", "--loop", "1", "-o", "{out}/x.pcapng"],
        ["export", "-o", "{out}/e.csv"],
        ["plot", "-o", "{out}/plots"],
    ],
)
def test_every_capture_command_takes_a_bundle(bundle, tmp_path, args):
    r = cli(args[0], bundle, *[a.format(out=tmp_path) for a in args[1:]])
    assert r.returncode == 0, r.stderr
    assert "tap101" in r.stdout or "wrote" in r.stdout


def test_a_plain_directory_is_not_a_bundle(tmp_path):
    r = cli("analyze", tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip() == (
        f"Error: {tmp_path}: a directory, but not a pcaploop bundle (it has no "
        "manifest.json); give the capture files in it instead"
    )


def test_policy_rules_are_named_and_default_ones_are_not(tmp_path, pcaps):
    """A rule besides local/main/default may send the loop's traffic past the main
    table the explanation cites: the bundle says so, quoting the rule; an older
    bundle without the rule files says nothing."""
    b = hs.write_bundle(tmp_path / "b", pcaps)
    assert load_bundle(b).rules == ()
    (b / "state/ip-rule.json").write_text(json.dumps(hs.RULES4))
    assert load_bundle(b).rules == () and not any("rule" in w for w in load_bundle(b).warnings)
    extra = {"priority": 100, "src": "198.51.100.0", "srclen": 24, "table": "7"}
    (b / "state/ip-rule.json").write_text(json.dumps([*hs.RULES4, extra]))
    got = load_bundle(b)
    assert got.rules == ("100: from 198.51.100.0/24 lookup 7",)
    (w,) = [w for w in got.warnings if "policy-routing" in w]
    assert "1 policy-routing rule(s)" in w and "from 198.51.100.0/24 lookup 7" in w
    r = cli("analyze", b)
    said = " ".join((r.stderr + r.stdout).split())  # lines wrap where the bundle's path ends
    assert "from 198.51.100.0/24 lookup 7" in said


def test_rule_text_says_not_and_the_mark_mask():
    from pcaploop.bundle.model import rule_text

    wg = {"priority": 32764, "not": None, "src": "all", "fwmark": "0xca6c", "table": "51820"}
    assert rule_text(wg) == "32764: not from all fwmark 0xca6c lookup 51820"
    marked = {"priority": 10, "src": "all", "fwmark": "0x1", "fwmask": "0xff", "table": "5"}
    assert rule_text(marked) == "10: from all fwmark 0x1/0xff lookup 5"
