"""``pcaploop capture`` without root: the whole run with stand-ins for tcpdump and ip
(scripts that print what the real ones print), and the refusals."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import hoststate as hs
import pytest

from pcaploop.bundle import capture as capture_mod
from pcaploop.bundle import load_bundle
from pcaploop.bundle.capture import capture_bundle
from pcaploop.errors import PcaploopError, UsageError

#: a tcpdump stand-in: writes a pcap with up to 3 records, says "listening on", waits for
#: SIGINT (or exits at -c) and prints its statistics as tcpdump does
FAKE_TCPDUMP = r"""
import signal, struct, sys, time
a = sys.argv[1:]
iface, out, count = a[a.index("-i") + 1], a[a.index("-w") + 1], int(a[a.index("-c") + 1])
if iface == "broken0":
    print("tcpdump: broken0: That device is not up", file=sys.stderr)
    sys.exit(1)
stop = []
signal.signal(signal.SIGINT, lambda *_: stop.append(1))
n = min(count, 3)
with open(out, "wb") as f:
    f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 256, 1))
    for k in range(n):
        frame = bytes(60)
        f.write(struct.pack("<IIII", 1700000000 + k, 0, len(frame), len(frame)) + frame)
print(f"tcpdump: listening on {iface}, link-type EN10MB (Ethernet), snapshot length 256 bytes",
      file=sys.stderr, flush=True)
deadline = time.monotonic() + 30
while n < count and not stop and time.monotonic() < deadline:
    time.sleep(0.01)
print(f"{n} packets captured\n{n + 1} packets received by filter\n1 packet dropped by kernel",
      file=sys.stderr)
"""

FAKE_IP = r"""
import json, sys
docs = json.loads(open(sys.argv[0] + ".json").read())
print(json.dumps(docs.get(" ".join(sys.argv[1:]), [])))
"""


def _script(path: Path, body: str) -> str:
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.fixture
def tools(tmp_path, monkeypatch):
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    tcpdump = _script(bin_ / "tcpdump", FAKE_TCPDUMP)
    ip = _script(bin_ / "ip", FAKE_IP)
    answers = {
        "-j link": hs.LINKS,
        "-j route": hs.ROUTES4,
        "-j -6 route": hs.ROUTES6,
        "-j addr": hs.ADDRS,
        "-j neigh": hs.NEIGH,
        "-j neigh show proxy": hs.NEIGH_PROXY,
        "-j rule": hs.RULES4,
        "-j -6 rule": hs.RULES6,
    }
    Path(ip + ".json").write_text(json.dumps(answers))
    monkeypatch.setattr(capture_mod, "check_can_capture", lambda: (tcpdump, ip))
    proc = tmp_path / "proc"
    for rel, v in {
        "net/ipv4/ip_forward": 1,
        "net/ipv4/conf/all/rp_filter": 2,
        "net/ipv4/conf/tap101/rp_filter": 1,
        "net/ipv4/conf/uplink/proxy_arp": 1,
    }.items():
        (proc / rel).parent.mkdir(parents=True, exist_ok=True)
        (proc / rel).write_text(f"{v}\n")
    monkeypatch.setattr(capture_mod, "PROC_SYS", str(proc))
    return tmp_path


def test_a_capture_writes_a_complete_bundle(tools):
    out = tools / "bundle"
    said = []
    res = capture_bundle(out, duration_s=0.5, say=said.append, command="pcaploop capture")
    assert not res.interrupted and res.manifest["stopped_by"] == "duration"
    assert said[0] == (
        "capturing uplink (uplink: default route (IPv4 and IPv6)), tap101 (guest-link: "
        "carries host routes 203.0.113.7, 203.0.113.101, 2001:db8:100::101) for 0.5 s or "
        "1,000,000 packets each; Ctrl-C stops early"
    )
    # the bundle being written, for `watch` (it is renamed into place at the end)
    assert said[1].startswith(f"meanwhile, from another shell: pcaploop watch {tools}/.bundle.")
    assert len(said) == 2
    m = json.loads((out / "manifest.json").read_text())
    assert m["format"] == "pcaploop-bundle" and m["host"] and m["kernel"].startswith(os.uname()[0])
    assert m["started"].endswith("Z") and m["ended"] >= m["started"]
    caps = {c["interface"]: c for c in m["captures"]}
    assert set(caps) == {"uplink", "tap101"}
    for c in caps.values():
        assert c["stats"] == {
            "captured": 3,
            "received_by_filter": 4,
            "dropped_by_kernel": 1,
            "dropped_by_interface": None,
        }
        for opt in ("--immediate-mode", "-B", "32768", "-s", "256", "-c", "1000000"):
            assert opt in c["command"]
    assert sorted(m["files"]) == sorted(
        ["tap101.pcap", "uplink.pcap", "state/sysctl.json"]
        + [f"state/{n}.json" for n in ("ip-addr", "ip-route", "ip-6-route", "ip-neigh")]
        + ["state/ip-neigh-proxy.json", "state/ip-link.json"]
        + [f"state/{n}.json" for n in ("ip-rule", "ip-6-rule", "ip-route-all", "ip-6-route-all")]
    )
    for rel, f in m["files"].items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == f["sha256"], rel
    assert not [p for p in tools.iterdir() if p.name.startswith(".bundle")]  # no temp left
    b = load_bundle(out)
    assert b.sysctls.rp_filter("tap101") == (2, 1, 2)
    assert b.route_for("203.0.113.7").dev == "tap101"
    assert b.rules == ()  # the default rules only: nothing to say
    assert any("tcpdump reported 1 packet(s) dropped" in w for w in b.warnings)


def test_max_packets_ends_the_capture_early(tools):
    res = capture_bundle(tools / "b", duration_s=20, max_packets=2, interfaces=["tap101"])
    assert res.manifest["stopped_by"] == "max-packets"
    (c,) = res.captures
    assert c["stats"]["captured"] == 2 and c["exit_status"] == 0


def test_ctrl_c_stops_and_still_writes_the_bundle(tools):
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    timer = threading.Timer(0.5, signal.raise_signal, (signal.SIGINT,))
    timer.start()
    try:
        res = capture_bundle(tools / "b", duration_s=20, interfaces=["uplink"])
    finally:
        timer.cancel()
    assert res.interrupted and res.manifest["stopped_by"] == "interrupt"
    assert (tools / "b" / "manifest.json").is_file()
    assert res.captures[0]["stats"]["captured"] == 3


def test_an_empty_directory_is_filled(tools):
    (tools / "empty").mkdir()
    capture_bundle(tools / "empty", duration_s=0.2, interfaces=["uplink"])
    assert (tools / "empty" / "manifest.json").is_file()


def test_a_tcpdump_that_fails_is_an_error_and_leaves_nothing(tools):
    answers = json.loads((tools / "bin" / "ip.json").read_text())
    answers["-j link"] = [*hs.LINKS, {"ifindex": 9, "ifname": "broken0"}]
    (tools / "bin" / "ip.json").write_text(json.dumps(answers))
    with pytest.raises(PcaploopError, match="tcpdump -i broken0: tcpdump: broken0: That device"):
        capture_bundle(tools / "b", duration_s=5, interfaces=["uplink", "broken0"])
    assert not (tools / "b").exists()
    assert not [p for p in tools.iterdir() if p.name.startswith(".b.")]


def test_refusals(tools, monkeypatch):
    (tools / "full").mkdir()
    (tools / "full" / "x").write_text("")
    with pytest.raises(UsageError, match="is not empty"):
        capture_bundle(tools / "full")
    (tools / "file").write_text("")
    with pytest.raises(UsageError, match="exists and is not a directory"):
        capture_bundle(tools / "file")
    with pytest.raises(UsageError, match="--duration"):
        capture_bundle(tools / "new", duration_s=0)
    with pytest.raises(UsageError, match="--max-packets"):
        capture_bundle(tools / "new", max_packets=0)
    with pytest.raises(UsageError, match="-i eth7: no such interface"):
        capture_bundle(tools / "new", interfaces=["eth7"])


def test_not_root_and_no_tcpdump(monkeypatch):
    from pcaploop.bundle.capture import check_can_capture

    monkeypatch.setattr(capture_mod.sys, "platform", "linux")
    monkeypatch.setattr(capture_mod.os, "geteuid", lambda: 1000)
    with pytest.raises(PcaploopError, match="capture needs root"):
        check_can_capture()
    monkeypatch.setattr(capture_mod.os, "geteuid", lambda: 0)
    monkeypatch.setattr(capture_mod.shutil, "which", lambda name: None)
    with pytest.raises(PcaploopError, match="tcpdump not found in PATH"):
        check_can_capture()


def test_the_command_line(tmp_path):
    (tmp_path / "x").write_text("")
    r = subprocess.run(
        [sys.executable, "-m", "pcaploop", "capture", "-o", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and r.stderr.startswith("Error: ")
    h = subprocess.run(
        [sys.executable, "-m", "pcaploop", "capture", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Example:" in h.stdout and "pcaploop capture --duration" in h.stdout


def test_the_cli_defaults_are_the_library_s():
    import inspect

    from pcaploop import cli

    params = inspect.signature(cli.capture).parameters
    assert params["duration"].default.default == capture_mod.DEFAULT_DURATION_S
    assert params["max_packets"].default.default == capture_mod.DEFAULT_MAX_PACKETS
