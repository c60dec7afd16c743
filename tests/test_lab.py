"""Real-kernel lab and golden samples (samples/lab/lab.py, samples/*/).

Two groups of tests:

* ``lab`` (marked ``@pytest.mark.lab``): run ``samples/lab/lab.py`` once per
  session into a temporary directory (network namespaces, tcpdump; needs
  root), check that the expectations it wrote are self-consistent, and run
  ``pcaploop analyze`` on every freshly made capture form.
* committed samples: run ``pcaploop analyze`` on every
  ``samples/<scenario>/<form>.expected.json`` and compare with the golden
  numbers (no root needed, so not marked ``lab``).

The expectations were computed by the lab from the scenario plan, TTL
arithmetic and tshark counts, never from pcaploop (see samples/README.md).
The comparison follows the JSON contract of docs/design.md: loops[].
destination, kind, capture_points, ttl_step, looping_packets, observations;
bounces[].destination, capture_point, packets.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
LAB_PY = SAMPLES / "lab" / "lab.py"
LAB_TIMEOUT = 420  # seconds for the whole lab run (it takes about 2.5 min)
ANALYZE_TIMEOUT = 300

SCENARIOS = [
    "healthy",
    "incident",
    "forwarding-off",
    "two-guests",
    "rp-filter",
    "router-loop",
    "two-tunnels",
    "fix-readd",
    "fix-delroute",
    "fix-noforward",
    "fix-rpfilter",
    "fix-nft-ipv6",
    "fix-same-iface",
]
FORMS = ["per-interface", "any", "pcapng", "raw", "sll1"]
LOOPING = {"incident", "two-guests", "router-loop", "two-tunnels"}
BOUNCING = {"rp-filter", "fix-rpfilter", "fix-nft-ipv6", "fix-same-iface"}
FIXES = {s for s in SCENARIOS if s.startswith("fix-")}


def _load_lab():
    spec = importlib.util.spec_from_file_location("pcaploop_lab", LAB_PY)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


# --------------------------------------------------------------------------
# running pcaploop and comparing with an expectation
# --------------------------------------------------------------------------
def run_analyze(expected_path: Path) -> dict:
    """pcaploop's JSON document for one golden's inputs (in-process: one JIT load for all)."""
    import pcaploop

    exp = json.loads(expected_path.read_text())
    base = expected_path.parent
    specs = []
    for item in exp["inputs"]:
        name, sep, rel = item.partition("=")
        specs.append(f"{name}={base / rel}" if sep else str(base / item))
    ifmap = [str(base / exp["ifmap"])] if exp.get("ifmap") else None
    doc = pcaploop.analyze(specs, ifmap=ifmap).to_json()
    pcaploop.validate_json(doc)
    return json.loads(json.dumps(doc, allow_nan=False))


def run_analyze_cli(expected_path: Path) -> dict:
    """The same through the command line, as a user runs it."""
    exp = json.loads(expected_path.read_text())
    cmd = [sys.executable, "-m", "pcaploop", "analyze", *exp["inputs"]]
    if exp.get("ifmap"):
        cmd += ["--ifmap", exp["ifmap"]]
    cmd += ["--json", "-"]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    r = subprocess.run(
        cmd,
        cwd=expected_path.parent,
        capture_output=True,
        text=True,
        timeout=ANALYZE_TIMEOUT,
        env=env,
    )
    assert r.returncode == 0, (
        f"`{' '.join(cmd[1:])}` in {expected_path.parent} exited {r.returncode}\n{r.stderr[-3000:]}"
    )
    return json.loads(r.stdout)


def compare(exp: dict, got: dict) -> list[str]:
    """Differences between a golden expectation and analyze's JSON output."""
    diffs = []
    got_loops: dict[str, list[dict]] = {}
    for lp in got.get("loops", []):
        got_loops.setdefault(lp.get("destination"), []).append(lp)
    exp_loops = {lp["destination"]: lp for lp in exp["loops"]}
    if set(got_loops) != set(exp_loops):
        diffs.append(f"loop destinations: expected {sorted(exp_loops)}, got {sorted(got_loops)}")
    for dst, e in exp_loops.items():
        gl = got_loops.get(dst)
        if not gl:
            continue
        if len(gl) != 1:
            diffs.append(f"{dst}: expected one loop, got {len(gl)} (split?)")
            continue
        g = gl[0]
        for field in ("kind", "ttl_step", "looping_packets", "observations"):
            if g.get(field) != e[field]:
                diffs.append(f"{dst}: {field} expected {e[field]!r}, got {g.get(field)!r}")
        if sorted(g.get("capture_points") or []) != sorted(e["capture_points"]):
            diffs.append(
                f"{dst}: capture_points expected {sorted(e['capture_points'])}, "
                f"got {sorted(g.get('capture_points') or [])}"
            )
    for dst in exp["not_looping"]:
        if dst in got_loops:
            diffs.append(f"{dst} must not loop, got loop(s) {got_loops[dst]}")
    exp_b = sorted((b["destination"], b["capture_point"], b["packets"]) for b in exp["bounces"])
    got_b = sorted(
        (b.get("destination"), b.get("capture_point"), b.get("packets"))
        for b in got.get("bounces", [])
    )
    if exp_b != got_b:
        diffs.append(
            f"bounces (destination, capture_point, packets): expected {exp_b}, got {got_b}"
        )
    return diffs


def check_against_pcaploop(expected_path: Path) -> None:
    exp = json.loads(expected_path.read_text())
    got = run_analyze(expected_path)
    diffs = compare(exp, got)
    assert not diffs, f"{expected_path}:\n  " + "\n  ".join(diffs)


# --------------------------------------------------------------------------
# committed samples
# --------------------------------------------------------------------------
COMMITTED = sorted(SAMPLES.glob("*/*.expected.json"))


@pytest.mark.parametrize(
    "expected_path",
    COMMITTED,
    ids=[f"{p.parent.name}/{p.name.removesuffix('.expected.json')}" for p in COMMITTED],
)
def test_committed_sample_matches_golden(expected_path: Path) -> None:
    check_against_pcaploop(expected_path)


@pytest.mark.parametrize("scenario", ["incident", "two-tunnels"])
def test_committed_sample_through_the_cli(scenario: str) -> None:
    path = SAMPLES / scenario / "any.expected.json"
    diffs = compare(json.loads(path.read_text()), run_analyze_cli(path))
    assert not diffs, f"{path}:\n  " + "\n  ".join(diffs)


def test_committed_samples_present() -> None:
    names = {p.parent.name for p in COMMITTED}
    missing = [s for s in SCENARIOS if s not in names]
    assert not missing, (
        f"samples/ lacks expectations for {missing}; regenerate with samples/lab/lab.py"
    )
    for p in COMMITTED:
        _check_consistent(p.parent.name, json.loads(p.read_text()), p.parent)


# --------------------------------------------------------------------------
# the lab, run once per session
# --------------------------------------------------------------------------
@pytest.fixture(scope="session")
def lab_run(tmp_path_factory) -> tuple[Path, str]:
    lab = _load_lab()
    why = lab.netns_available()
    if why:
        print(f"lab tests skipped: {why}")
        pytest.skip(f"lab: cannot build network namespaces: {why}")
    out = tmp_path_factory.mktemp("lab")
    try:
        r = subprocess.run(
            [sys.executable, str(LAB_PY), "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=LAB_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the lab run took more than {LAB_TIMEOUT} s")
    if r.returncode == 77:
        print(f"lab tests skipped: {r.stdout.strip()}")
        pytest.skip(r.stdout.strip())
    return out, r.stdout + r.stderr


def _scenario_status(output: str, scenario: str) -> str:
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(f"{scenario}: "):
            rest = [line]
            for more in lines[i + 1 :]:
                if not more.startswith("  - "):
                    break
                rest.append(more)
            return "\n".join(rest)
    return ""


def _check_consistent(scenario: str, exp: dict, sdir: Path) -> None:
    """Self-consistency of one expectation file (no pcaploop involved)."""
    assert exp["scenario"] == scenario
    assert exp["form"] in FORMS
    for key in (
        "inputs",
        "ifmap",
        "records",
        "loops",
        "bounces",
        "not_looping",
        "fix_commands",
        "notes",
    ):
        assert key in exp, f"{scenario}/{exp['form']}: missing key {key}"
    for spec in exp["inputs"]:
        rel = spec.rpartition("=")[2]
        assert (sdir / rel).is_file(), f"{scenario}: input {rel} missing"
        assert exp["records"].get(rel, 0) > 0, f"{scenario}: no record count for {rel}"
        assert (sdir / rel).stat().st_size < 1_000_000, f"{scenario}: {rel} is larger than 1 MB"
    if exp["ifmap"]:
        assert (sdir / exp["ifmap"]).is_file()
    if scenario in LOOPING:
        assert exp["loops"], f"{scenario}/{exp['form']}: a loop scenario without loops"
    else:
        assert not exp["loops"], f"{scenario}/{exp['form']}: unexpected loops {exp['loops']}"
    if scenario in BOUNCING:
        assert exp["bounces"], f"{scenario}/{exp['form']}: no bounce"
        for b in exp["bounces"]:
            assert b["packets"] > 0
    else:
        assert not exp["bounces"]
    if scenario in FIXES:
        assert exp["fix_commands"], f"{scenario}: fix_commands empty"
    merged = exp["form"] == "sll1"
    for lp in exp["loops"]:
        assert lp["destination"] not in exp["not_looping"]
        assert lp["kind"] == "l3"
        assert lp["looping_packets"] > 0
        assert lp["ttl_step"] in (2, 4)
        if merged:
            assert lp["capture_points"] == ["any"]
            per_packet = lp["entry_ttl"]  # the uplink copy is at the same point
        elif lp["capture_points"] == ["uplink"]:
            per_packet = lp["entry_ttl"]  # host <-> router: every copy on the uplink
        else:
            per_packet = lp["entry_ttl"] - 1  # tunnel copies T-1 ... 1
        assert lp["observations"] == lp["looping_packets"] * per_packet, (
            f"{scenario}/{exp['form']} {lp.destination}: {lp.observations} observations, "
            f"TTL arithmetic says {lp.looping_packets} x {per_packet}"
        )


@pytest.mark.lab
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_lab_scenario(lab_run, scenario: str) -> None:
    out, output = lab_run
    status = _scenario_status(output, scenario)
    if "skipped" in status:
        pytest.skip(status)
    assert status.startswith(f"{scenario}: ok"), (
        f"lab output for {scenario}:\n{status or output[-3000:]}"
    )
    sdir = out / scenario
    forms = {p.name.removesuffix(".expected.json") for p in sdir.glob("*.expected.json")}
    required = {"per-interface", "any", "raw"}
    if shutil.which("dumpcap"):
        required.add("pcapng")
    if scenario not in BOUNCING:
        required.add("sll1")
    assert required <= forms, f"{scenario}: forms {sorted(forms)}, expected {sorted(required)}"
    assert (sdir / "iplink.txt").read_text().strip()
    for form in forms:
        _check_consistent(scenario, json.loads((sdir / f"{form}.expected.json").read_text()), sdir)


@pytest.mark.lab
@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("form", FORMS)
def test_lab_capture_matches_golden(lab_run, scenario: str, form: str) -> None:
    out, _ = lab_run
    path = out / scenario / f"{form}.expected.json"
    if not path.exists():
        pytest.skip(f"the lab made no {form} form for {scenario}")
    check_against_pcaploop(path)
