"""``pcaploop capture`` end to end in the namespace lab (issue #15).

Builds the lab's ``incident`` topology (samples/lab/lab.py: client — router —
host — guest1, documentation addresses only, in network namespaces this test
creates), runs ``pcaploop capture`` *inside the host namespace* while the lab's
bounded traffic generator sends, and checks that ``pcaploop analyze BUNDLE/``
finds exactly the scenario's loop, with the roles taken from the saved state
and the explanation citing the host's saved route.  Needs root, ip(8) with
network namespaces and tcpdump; skipped otherwise.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAB_PY = REPO / "samples" / "lab" / "lab.py"
CAPTURE_S = 6  # seconds of capture: the traffic takes about 1 s
TIMEOUT = 60


def _load_lab():
    spec = importlib.util.spec_from_file_location("pcaploop_lab", LAB_PY)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "not running as root"
    for tool in ("ip", "tcpdump"):
        if shutil.which(tool) is None:
            return f"{tool} not found in PATH"
    name = f"pl{os.getpid()}-probe"
    try:
        r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True, timeout=15)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"ip netns add failed: {exc}"
    if r.returncode != 0:
        return f"ip netns add failed: {r.stderr.strip() or r.returncode}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=15)
    return None


def _pcaploop(*args: str) -> list[str]:
    return [sys.executable, "-m", "pcaploop", *args]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.pop("CI", None)
    return env


@pytest.mark.lab
def test_capture_in_the_host_namespace_finds_the_incident_loop(tmp_path: Path) -> None:
    why = _why_not()
    if why:
        pytest.skip(f"lab: {why}")
    lab_mod = _load_lab()
    log: list[str] = []
    lab = lab_mod.Lab(log)
    bundle = tmp_path / "bundle"
    t0 = time.monotonic()
    cap = None
    try:
        plan = lab_mod.sc_incident(lab)
        lab_mod.warm(lab, plan.flows)
        cap = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                lab.ns("host"),
                *_pcaploop("capture", "--duration", str(CAPTURE_S), "-o", str(bundle)),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        assert cap.stderr is not None
        first = cap.stderr.readline()  # "capturing …" once every tcpdump listens
        assert first.startswith("capturing "), first + cap.stderr.read()
        sent = lab_mod.send(lab, plan.flows)
        out, err = cap.communicate(timeout=CAPTURE_S + 30)
        assert cap.returncode == 0, first + err
        assert f"wrote {bundle}" in out.replace("\n", ""), out
    finally:
        if cap is not None and cap.poll() is None:
            cap.kill()
            cap.wait(timeout=10)
        lab.teardown()
    assert all(n == f.count for f, n in zip(plan.flows, sent["client"])), sent

    manifest = json.loads((bundle / "manifest.json").read_text())
    roles = {i["name"]: (i["role"], i["why"]) for i in manifest["interfaces"]}
    assert roles["uplink"] == ("uplink", "default route (IPv4 and IPv6)")
    assert roles["tap101"][0] == "guest-link"
    assert "203.0.113.7" in roles["tap101"][1]
    caps = {c["interface"]: c for c in manifest["captures"]}
    assert set(caps) == {"uplink", "tap101"}
    for c in caps.values():
        assert c["exit_status"] == 0 and c["problem"] is None, c
        assert c["stats"]["captured"] > 0 and c["stats"]["dropped_by_kernel"] == 0, c
        assert "--immediate-mode" in c["command"]
    for rel in ("uplink.pcap", "tap101.pcap", "state/ip-route.json", "state/sysctl.json"):
        assert rel in manifest["files"], rel
    sysctl = json.loads((bundle / "state/sysctl.json").read_text())
    assert sysctl["net.ipv4.ip_forward"] == 1
    assert sysctl["net.ipv4.conf"]["uplink"]["proxy_arp"] == 1

    r = subprocess.run(
        _pcaploop("analyze", str(bundle), "--json", "-"),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=_env(),
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [lp["destination"] for lp in doc["loops"]] == ["203.0.113.7"]
    lp = doc["loops"][0]
    assert lp["kind"] == "l3" and lp["capture_points"] == ["tap101"] and lp["ttl_step"] == 2
    got_roles = {c["name"]: c["role"] for c in doc["captures"]}
    assert got_roles == {"uplink": "uplink", "tap101": "guest-link"}
    evidence = {c["name"]: c["role_evidence"] for c in doc["captures"]}
    assert "carries host routes 203.0.113.7" in evidence["tap101"][0], evidence
    assert "the host's route: 203.0.113.7 dev tap101" in lp["explanation"], lp["explanation"]
    assert any("saved route: 203.0.113.7 dev tap101" in f for f in lp["fixes"]), lp["fixes"]
    assert time.monotonic() - t0 < 60
