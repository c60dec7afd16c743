"""Loops the tool must flag, and look-alikes it must not (docs/design.md, *Words*)."""

from __future__ import annotations

import os
import struct
import subprocess
import sys

import pytest
from loopgen import CLIENT, GUEST, GUEST2, HOST, ROUTER, T0, eth, ip4, tunnel_loop, write

import pcaploop


def run(tmp_path, caps, **kw):
    linktype = kw.pop("linktype", 1)
    return pcaploop.analyze(write(caps, tmp_path, linktype), **kw)


def only_loop(a):
    assert len(a.loops) == 1, a.loops
    return a.loops[0]


# ---------------------------------------------------------------- must flag
@pytest.mark.parametrize("uplink", [True, False])
def test_host_guest_pingpong(tmp_path, uplink):
    a = run(tmp_path, tunnel_loop(n=20, entry_ttl=64, uplink=uplink))
    lp = only_loop(a)
    assert (lp.kind, lp.destination, list(lp.capture_points)) == ("l3", "203.0.113.7", ["tap101"])
    assert lp.ttl_step == 2
    assert lp.looping_packets == 20
    assert lp.observations == 63 * 20  # the contract: independent of the uplink capture
    assert lp.amplification == pytest.approx(63)
    assert lp.fates["expired"] == 20
    assert lp.dropped_by["guest"] == 20  # T-1 = 63 is odd: the guest gets the TTL-1 copy
    assert "203.0.113.101" not in {x.destination for x in a.loops}
    pcaploop.validate_json(a.to_json())


def test_raw_tunnel_without_direction(tmp_path):
    a = run(tmp_path, tunnel_loop(n=5, entry_ttl=64, link="raw", uplink=False), linktype=101)
    lp = only_loop(a)
    assert lp.ttl_step == 2
    assert lp.observations == 63 * 5
    # labelled by TTL parity: the first copy on a guest link went out, then they alternate
    rows = a.path_rows()
    first = rows[rows["looping"]].groupby("path").head(3)
    assert list(first["direction"].astype(str))[:3] == ["out", "in", "out"]
    assert lp.dropped_by == {"guest": 5, "host": 0, "unknown": 0}


@pytest.mark.parametrize("entry", [64, 128, 254])
def test_ipv6_loop(tmp_path, entry):
    a = run(tmp_path, tunnel_loop(n=4, entry_ttl=entry, dst="2001:db8:100::7", v6=True))
    lp = only_loop(a)
    assert lp.destination == "2001:db8:100::7"
    assert lp.observations == (entry - 1) * 4


def test_router_loop_on_uplink(tmp_path):
    caps = {"uplink": []}
    for k in range(6):
        t = T0 + k * 0.1
        for i, ttl in enumerate(range(50, 0, -1)):
            inbound = i % 2 == 0
            caps["uplink"].append(
                (
                    t + i * 1e-5,
                    eth(
                        ip4("203.0.113.50", ttl, 300 + k),
                        ROUTER if inbound else HOST,
                        HOST if inbound else ROUTER,
                    ),
                )
            )
    lp = only_loop(run(tmp_path, caps))
    assert list(lp.capture_points) == ["uplink"]
    assert lp.ttl_step == 2
    assert lp.observations == 50 * 6
    assert lp.amplification == pytest.approx(50)


def test_loop_across_two_tunnels(tmp_path):
    caps = {"uplink": [], "tap101": [], "tap102": []}
    for k in range(5):
        t = T0 + k * 0.1
        caps["uplink"].append((t, eth(ip4("203.0.113.8", 64, 700 + k), ROUTER, HOST)))
        for i, ttl in enumerate(range(63, 0, -1)):
            phase = i % 4  # host→g1, g1→host, host→g2, g2→host
            pkt = ip4("203.0.113.8", ttl, 700 + k)
            tt = t + (i + 1) * 1e-5
            if phase == 0:
                caps["tap101"].append((tt, eth(pkt, HOST, GUEST)))
            elif phase == 1:
                caps["tap101"].append((tt, eth(pkt, GUEST, HOST)))
            elif phase == 2:
                caps["tap102"].append((tt, eth(pkt, HOST, GUEST2)))
            else:
                caps["tap102"].append((tt, eth(pkt, GUEST2, HOST)))
    lp = only_loop(run(tmp_path, caps))
    assert list(lp.capture_points) == ["tap101", "tap102"]
    assert lp.ttl_step == 4
    assert lp.observations == 63 * 5


def test_layer2_loop_same_ttl_repeating(tmp_path):
    caps = {
        "lan": [(T0 + i * 0.002, eth(ip4("203.0.113.9", 60, 42), ROUTER, HOST)) for i in range(30)]
    }
    lp = only_loop(run(tmp_path, caps))
    assert lp.kind == "l2"
    assert lp.observations == 30 and lp.looping_packets == 1


def test_merge_gap(tmp_path):
    caps = tunnel_loop(n=3, uplink=False)
    later = tunnel_loop(n=3, uplink=False, t0=T0 + 30)
    caps["tap101"] += later["tap101"]
    args = write(caps, tmp_path)
    assert len(pcaploop.analyze(args).loops) == 2
    assert len(pcaploop.analyze(args, merge_gap_s=60).loops) == 1


def test_time_exceeded_tied_and_inferred(tmp_path):
    caps = {"uplink": []}
    for k in range(3):
        t = T0 + k * 0.1
        orig = ip4("203.0.113.7", 64, 900 + k)
        caps["uplink"].append((t, eth(orig, ROUTER, HOST)))
        quoted = bytearray(orig[:28])
        quoted[8] = 1  # the copy that expired carried TTL 1
        te = dpkt_icmp_te(bytes(quoted), "203.0.113.101", CLIENT)
        caps["uplink"].append((t + 0.001, eth(te, HOST, ROUTER)))
    lp = only_loop(run(tmp_path, caps))
    assert lp.kind == "inferred" and lp.estimated is True
    assert lp.destination == "203.0.113.7"
    assert lp.observations == 63 * 3
    assert list(lp.icmp_senders) == ["203.0.113.101"]


def dpkt_icmp_te(quoted: bytes, src: str, dst: str) -> bytes:
    import socket

    import dpkt

    icmp = dpkt.icmp.ICMP(type=11, code=0, data=dpkt.icmp.ICMP.TimeExceed(data=quoted))
    ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton(dst), ttl=64, p=1, data=icmp)
    ip.len = len(ip)
    return bytes(ip)


# ------------------------------------------------------------ must not flag
def test_normal_forwarding(tmp_path):
    caps = {"uplink": [], "tap101": []}
    for k in range(50):
        t = T0 + k * 0.01
        caps["uplink"].append((t, eth(ip4("203.0.113.101", 64, k), ROUTER, HOST)))
        caps["tap101"].append((t + 1e-5, eth(ip4("203.0.113.101", 63, k), HOST, GUEST)))
    a = run(tmp_path, caps)
    assert a.loops == [] and a.bounces == []


def test_duplicates_counted_not_looping(tmp_path):
    caps = {"any": []}
    for k in range(10):
        f = eth(ip4("203.0.113.101", 63, k), HOST, GUEST)
        caps["any"] += [(T0 + k * 0.01, f), (T0 + k * 0.01 + 2e-6, f)]
    a = run(tmp_path, caps)
    assert a.loops == []
    assert a.summary.duplicates == 10
    assert a.summary.observations == 10


def test_bounce_reported_apart(tmp_path):
    caps = {"tap101": []}
    for k in range(7):
        t = T0 + k * 0.01
        caps["tap101"].append((t, eth(ip4("203.0.113.7", 63, k), HOST, GUEST)))
        caps["tap101"].append((t + 1e-5, eth(ip4("203.0.113.7", 62, k), GUEST, HOST)))
    a = run(tmp_path, caps)
    assert a.loops == []
    assert [b.to_json() for b in a.bounces] == [
        {"destination": "203.0.113.7", "capture_point": "tap101", "packets": 7}
    ]


def test_tcp_retransmission_and_identical_pings(tmp_path):
    caps = {"uplink": []}
    same = eth(ip4("203.0.113.101", 64, 55), ROUTER, HOST)
    caps["uplink"] += [(T0, same), (T0 + 0.2, same)]  # retransmitted bytes, same TTL
    for k in range(5):  # identical payloads, different IP ID
        caps["uplink"].append(
            (T0 + 1 + k, eth(ip4("203.0.113.101", 64, 1000 + k, proto="icmp"), ROUTER, HOST))
        )
    assert run(tmp_path, caps).loops == []


def test_ip_id_zero_flow(tmp_path):
    caps = {
        "uplink": [
            (T0 + k * 0.01, eth(ip4("203.0.113.101", 64, 0, payload=bytes([k]) * 32), ROUTER, HOST))
            for k in range(40)
        ]
    }
    assert run(tmp_path, caps).loops == []


def test_router_on_a_stick_hairpin(tmp_path):
    caps = {"trunk": []}
    for k in range(10):
        t = T0 + k * 0.01
        caps["trunk"].append((t, eth(ip4("203.0.113.20", 64, k), ROUTER, HOST, vlan=10)))
        caps["trunk"].append((t + 1e-5, eth(ip4("203.0.113.20", 63, k), HOST, GUEST, vlan=20)))
    a = run(tmp_path, caps)
    assert a.loops == [] and a.bounces == []


def test_overlapping_inputs_counted_once(tmp_path):
    caps = tunnel_loop(n=5, uplink=False)
    caps["tap101-copy"] = list(caps["tap101"])
    a = run(tmp_path, caps)
    lp = only_loop(a)
    assert lp.observations == 63 * 5
    assert any("same interface" in w for w in a.warnings)


def test_proxy_arp_responder_implicated(tmp_path):
    import socket

    import dpkt

    caps = tunnel_loop(n=3)
    arp = dpkt.arp.ARP(
        op=dpkt.arp.ARP_OP_REPLY,
        sha=HOST,
        spa=socket.inet_aton("203.0.113.7"),
        tha=ROUTER,
        tpa=socket.inet_aton("192.0.2.1"),
    )
    frame = ROUTER + HOST + struct.pack("!H", 0x0806) + bytes(arp)
    caps["uplink"].insert(0, (T0, frame))
    a = run(tmp_path, caps)
    roles = {e.address: e.roles for e in a.implicated}
    assert roles["02:00:00:00:00:10"] == ("proxy-arp-responder",)
    assert "loop-destination" in roles["203.0.113.7"]
    up = next(c for c in a.to_json()["captures"] if c["name"] == "uplink")
    assert up["skipped"]["non_ip"] == 1 and up["records"] == up["decoded"] + 1


def test_fix_commands_never_carry_hostile_interface_names(tmp_path):
    from pcaploop.analysis.explain import explain
    from pcaploop.analysis.model import Loop

    lp = Loop(
        id=1,
        kind="l3",
        destination="203.0.113.7",
        destination_prefix="203.0.113.7/32",
        capture_points=("tap9 $(touch /tmp/pwned)\nEOF\nrm -rf ~",),
        ttl_step=2,
        first_ns=0,
        last_ns=1,
        looping_packets=1,
        observations=63,
        bytes=0,
        amplification=63.0,
        amplification_bytes=None,
        cycle_time_ms=None,
        extra_pps_mean=None,
        extra_pps_peak=None,
        sources=(),
        protocols={},
        fates={},
        dropped_by={},
        icmp_time_exceeded=0,
        icmp_senders=(),
        missing_copies=None,
        estimated=False,
    )
    _, fixes = explain(lp)
    text = "\n".join(fixes)
    assert "$(touch" not in text and "rm -rf" not in text and "GUESTLINK" in text


def test_ipv6_loop_above_2_63_not_also_inferred(tmp_path):
    caps = tunnel_loop(n=3, dst="fd00::7", v6=True)
    a = run(tmp_path, caps)
    assert [lp.kind for lp in a.loops] == ["l3"]


def test_l2_copies_spread_over_centuries_stay_cheap(tmp_path):
    first, second = (eth(ip4("203.0.113.9", 60, ident), ROUTER, HOST) for ident in (42, 43))
    caps = {
        "lan": [(1e6 + i * 0.001, first) for i in range(20)]
        + [(4e9 + i * 0.001, second) for i in range(3)]
    }  # 127 years apart
    a = run(tmp_path, caps)
    assert {lp.kind for lp in a.loops} == {"l2"}


def test_merge_prefix_groups_ipv4_destinations(tmp_path):
    caps = tunnel_loop(n=2, uplink=False, dst="203.0.113.7")
    caps["tap101"] += tunnel_loop(n=2, uplink=False, dst="203.0.113.8", t0=T0 + 1)["tap101"]
    args = write(caps, tmp_path)
    assert len(pcaploop.analyze(args).loops) == 2
    merged = pcaploop.analyze(args, merge_prefix=24).loops
    assert len(merged) == 1 and merged[0].destination_prefix == "203.0.113.0/24"


def test_a_merged_loop_is_named_after_its_first_destination(tmp_path):
    """Path ids follow the run's random fingerprint key; the address a merged loop is
    named after must not (it varied from run to run)."""
    caps = tunnel_loop(n=2, uplink=False, dst="203.0.113.9")
    for k, dst in enumerate(("203.0.113.7", "203.0.113.8", "203.0.113.10")):
        caps["tap101"] += tunnel_loop(n=2, uplink=False, dst=dst, t0=T0 + 1 + k)["tap101"]
    args = write(caps, tmp_path)
    code = (
        "import sys, pcaploop; (lp,) = pcaploop.analyze(sys.argv[1:], merge_prefix=24).loops;"
        " print(lp.destination)"
    )
    for key in ("00" * 16, "11" * 16, "5a" * 16, "f0" * 16):  # read once, at import
        env = {**os.environ, "PCAPLOOP_FP_KEY": key}
        got = subprocess.run(
            [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True
        )
        assert got.stdout.strip() == "203.0.113.9", (key, got.stderr[-500:])


def test_packets_table_carries_inferred_directions() -> None:
    """Ethernet pcaps record no direction; the packets table shows what correlate
    inferred from the host's MAC on each link (it showed ``unknown`` on every row)."""
    from pathlib import Path

    inc = Path(__file__).resolve().parents[2] / "samples" / "incident"
    a = pcaploop.analyze(
        [f"uplink={inc / 'uplink.pcap'}", f"tap101={inc / 'tap101.pcap'}"], keep="all"
    )
    f = a.packets.frame()
    ip = f[f["ip_version"] > 0]
    assert (ip["direction"].astype(str) != "unknown").all()
    paths = a.path_rows()
    merged = paths.merge(f[["direction"]], left_on="row", right_index=True, suffixes=("", "_t"))
    assert (merged["direction"].astype(str) == merged["direction_t"].astype(str)).all()


def test_a_bounce_destination_is_not_a_loop_destination() -> None:
    """rp_filter drops the returned packet: the address bounced, it did not loop."""
    from pathlib import Path

    d = Path(__file__).resolve().parents[2] / "samples" / "rp-filter"
    a = pcaploop.analyze([f"uplink={d / 'uplink.pcap'}", f"tap101={d / 'tap101.pcap'}"])
    assert a.bounces and not a.loops
    roles = {i.address: i.roles for i in a.implicated}
    for b in a.bounces:
        assert "bounce-destination" in roles[b.destination]
        assert "loop-destination" not in roles[b.destination]
    pcaploop.validate_json(a.to_json())


def test_a_long_layer2_storm_keeps_a_sample_and_exact_counts(tmp_path, monkeypatch):
    """A storm of 70,000 copies of three frames, 10 µs apart, read in several blocks,
    its fingerprint groups closed early: the evidence kept is bounded (a sample plus
    each frame's first copy per window), the loop's numbers are those of keeping
    everything — and of the plan: 70,000 copies, 3 frames."""
    from pcaploop.analysis import window

    frames = [eth(ip4("203.0.113.9", 60, ident), ROUTER, HOST) for ident in (42, 43, 44)]
    n = 70_000
    caps = {"lan": [(T0 + i * 1e-5, frames[i % 3]) for i in range(n)]}
    args = write(caps, tmp_path)
    monkeypatch.setattr(window, "L2_KEEP_ROWS", 500)
    monkeypatch.setattr(window, "MAX_OPEN_GROUP_ROWS", 3000)
    sampled = pcaploop.analyze(args, chunk_rows=4096)
    whole = pcaploop.analyze(args, keep="all")
    (lp,) = sampled.loops
    (full,) = whole.loops
    assert lp.kind == full.kind == "l2"
    assert (lp.observations, lp.looping_packets) == (n, 3)
    assert lp.observations == full.observations and lp.bytes == full.bytes
    assert (lp.first_ns, lp.last_ns) == (full.first_ns, full.last_ns)
    assert lp.extra_pps_peak == full.extra_pps_peak
    assert lp.extra_pps_mean == pytest.approx(full.extra_pps_mean)
    assert len(sampled.packets) <= 500 + 3 * 64  # windows: a few per 32,000-row block


def test_routed_loops_keep_a_sample_of_paths_and_every_number(tmp_path, monkeypatch):
    """With copies kept for only 4 paths per loop episode, every number of every loop is
    that of keeping every copy: they come from detect's per-path table, which keeps
    every looping packet; two episodes of one destination each get their sample."""
    from pcaploop.analysis import window

    caps = tunnel_loop(n=40)
    later = tunnel_loop(n=30, t0=T0 + 30)  # the same destination loops again, 30 s on
    for k in caps:
        caps[k] += later[k]
    args = write(caps, tmp_path)
    whole = pcaploop.analyze(args)
    monkeypatch.setattr(window, "L3_KEEP_PATHS", 4)
    monkeypatch.setattr(window, "L3_KEEP_MIN_PATHS", 2)
    monkeypatch.setattr(window, "L3_KEEP_COPIES", 4 * 63)  # the first episode uses it up
    sampled = pcaploop.analyze(args)
    assert [lp.looping_packets for lp in whole.loops] == [40, 30]
    assert [lp.to_json() for lp in sampled.loops] == [lp.to_json() for lp in whole.loops]
    assert sampled.summary == whole.summary
    # the first episode's copies: 4 paths' worth, 63 copies each; then the budget is
    # spent and the second episode keeps its first 2 paths' copies
    got = [len(sampled.loop_packets(lp.id)) for lp in sampled.loops]
    assert got == [4 * 63, 2 * 63]
    assert len(sampled.packets) < len(whole.packets)
    # what shows the copies says it is a sample, and shows only paths it has
    from pcaploop.present.extract import extract, kept_of

    assert kept_of(sampled, 1) == (4, 40) and kept_of(whole, 1) is None
    res = extract(sampled, tmp_path / "x.pcapng", loop=1)
    assert res["kept_of"] == (4, 40) and res["capture_points"]["tap101"] == 4 * 63
    assert sampled.loop_path_rows(1)["path"].nunique() == 4
    assert pcaploop.write_report(sampled, tmp_path / "r.html")


def test_a_sweep_behind_the_uplink_is_500_inferred_loops(tmp_path):
    """500 addresses loop behind the uplink; one of them (203.0.113.101) is the guest
    that sends the errors, so it "answers" and its loop has an end while the others
    have none — that mix once crashed measure (a None end read back as NaN)."""
    from loopgen import uplink_sweep

    dsts = [f"{net}.{k}" for net in ("203.0.113", "192.0.2") for k in range(1, 251)]
    a = pcaploop.analyze(write(uplink_sweep(dsts), tmp_path))
    assert sorted(lp.destination for lp in a.loops) == sorted(dsts)
    assert {(lp.kind, lp.looping_packets, lp.observations) for lp in a.loops} == {
        ("inferred", 2, 126)
    }
    ends = [lp.after_end for lp in a.loops if lp.after_end is not None]
    assert ends  # the answering one
