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
The comparison follows the JSON contract of docs/design.md: captures[].name
and role; loops[].destination, kind, capture_points, ttl_step, looping_packets,
observations, dropped_by (the keys the golden gives; a key pcaploop leaves out
counts as 0), icmp_time_exceeded and, where the golden has it,
after_end.packets; bounces[].destination, capture_point, packets.

Forms: ``per-interface``, ``any`` (with --ifmap), ``pcapng``, ``raw``, ``sll1``
(all interfaces folded into one point), ``noname`` (the per-interface files
under neutral names, no NAME=), ``any-noifmap`` (the -i any file without
--ifmap: points ``any:if<N>``) and ``uplink-only`` (only the uplink: loops
behind it are ``inferred``, ttl_step null, copies estimated).
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
LAB_TIMEOUT = 540  # seconds for the whole lab run (it takes about 4 min)
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
    "traceroute",
    "ipv6-redirect-nd",
    "dynamic-neigh",
    "bridge-uplink",
    "ttl-sweep",
    "drop-midway",
]
FORMS = ["per-interface", "any", "pcapng", "raw", "sll1", "noname", "any-noifmap", "uplink-only"]
LOOPING = {
    "incident",
    "two-guests",
    "router-loop",
    "two-tunnels",
    "ipv6-redirect-nd",
    "dynamic-neigh",
    "bridge-uplink",
    "ttl-sweep",
    "drop-midway",
}
BOUNCING = {"rp-filter", "fix-rpfilter", "fix-nft-ipv6", "fix-same-iface"}
FIXES = {s for s in SCENARIOS if s.startswith("fix-")}
# scenarios with a host<->guest loop: they also have the uplink-only form
UPLINK_ONLY = LOOPING - {"router-loop"}
# no sll1 form: folded into one point a bounce, or ttl-sweep's entry TTL 3
# (uplink in 3, tap in 1), looks like a replica
NO_SLL1 = BOUNCING | {"ttl-sweep"}
STOPPING = {"dynamic-neigh"}  # the loop ends by itself: goldens have after_end
ROLES = ("uplink", "guest-link", "unknown")


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
    if "roles" in exp:
        got_roles = {c.get("name"): c.get("role") for c in got.get("captures", [])}
        if got_roles != exp["roles"]:
            wrong = {
                n: (r, got_roles.get(n, "<no such point>"))
                for n, r in exp["roles"].items()
                if got_roles.get(n, "<no such point>") != r
            }
            extra = sorted(set(got_roles) - set(exp["roles"]))
            diffs.append(
                "roles (capture point: expected, got): "
                + ", ".join(f"{n}: {e!r}, {g!r}" for n, (e, g) in sorted(wrong.items()))
                + (f"; points not in the golden: {extra}" if extra else "")
            )
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
        # kind "inferred" (uplink-only) has ttl_step null: compared like any value
        fields = ["kind", "ttl_step", "looping_packets", "observations"]
        if "icmp_time_exceeded" in e:
            fields.append("icmp_time_exceeded")
        for field in fields:
            if g.get(field) != e[field]:
                diffs.append(f"{dst}: {field} expected {e[field]!r}, got {g.get(field)!r}")
        if sorted(g.get("capture_points") or []) != sorted(e["capture_points"]):
            diffs.append(
                f"{dst}: capture_points expected {sorted(e['capture_points'])}, "
                f"got {sorted(g.get('capture_points') or [])}"
            )
        if "dropped_by" in e:
            got_d = g.get("dropped_by") or {}
            mine = {k: got_d.get(k, 0) for k in e["dropped_by"]}
            if mine != e["dropped_by"]:
                diffs.append(f"{dst}: dropped_by expected {e['dropped_by']}, got {got_d}")
        if "after_end" in e:
            got_a = (g.get("after_end") or {}).get("packets")
            if got_a != e["after_end"]["packets"]:
                diffs.append(
                    f"{dst}: after_end.packets expected {e['after_end']['packets']}, got {got_a!r}"
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


@pytest.mark.parametrize(
    ("scenario", "form"),
    [
        ("incident", "any"),
        ("two-tunnels", "any"),
        ("incident", "noname"),
        ("incident", "any-noifmap"),
        ("incident", "uplink-only"),
    ],
)
def test_committed_sample_through_the_cli(scenario: str, form: str) -> None:
    path = SAMPLES / scenario / f"{form}.expected.json"
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
    for scenario in {p.parent.name for p in COMMITTED}:
        _check_forms_agree(scenario, SAMPLES / scenario)


def test_committed_files_are_small() -> None:
    big = [
        f"{p.relative_to(SAMPLES)} ({p.stat().st_size} bytes)"
        for p in SAMPLES.rglob("*")
        if p.is_file() and p.stat().st_size >= 1_000_000
    ]
    assert not big, f"committed sample files of 1 MB or more: {big}"


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


def _dropper(uplink_shape: bool, origin: str, entry: int) -> str:
    """Who receives the TTL-1 copy (docs/design.md, *What the kernel does*)."""
    if uplink_shape:  # host <-> router: in at T, out T-1, ...: TTL 1 comes in when T is odd
        return "host" if entry % 2 else "router"
    # first copy on the guest link: host -> guest at T-1, or guest -> host at T when the
    # guest sent it; TTL 1 goes the same way when that first TTL is odd
    first = entry - 1 if origin == "uplink" else entry
    return "guest" if (origin == "uplink") == (first % 2 == 1) else "host"


def _check_consistent(scenario: str, exp: dict, sdir: Path) -> None:
    """Self-consistency of one expectation file (no pcaploop involved)."""
    assert exp["scenario"] == scenario
    form = exp["form"]
    assert form in FORMS
    where = f"{scenario}/{form}"
    for key in (
        "inputs",
        "ifmap",
        "records",
        "roles",
        "loops",
        "bounces",
        "not_looping",
        "fix_commands",
        "notes",
    ):
        assert key in exp, f"{where}: missing key {key}"
    for spec in exp["inputs"]:
        rel = spec.rpartition("=")[2]
        assert (sdir / rel).is_file(), f"{scenario}: input {rel} missing"
        assert exp["records"].get(rel, 0) > 0, f"{scenario}: no record count for {rel}"
        assert (sdir / rel).stat().st_size < 1_000_000, f"{scenario}: {rel} is larger than 1 MB"
    if exp["ifmap"]:
        assert (sdir / exp["ifmap"]).is_file()

    # roles, keyed by the capture point names pcaploop will use
    roles = exp["roles"]
    assert roles and set(roles.values()) <= set(ROLES), f"{where}: roles {roles}"
    if form == "sll1":
        assert roles == {"any": "unknown"}, f"{where}: the folded point is uplink and guest link"
    elif form == "uplink-only":
        assert exp["inputs"] == ["uplink=uplink.pcap"] and roles == {"uplink": "uplink"}
    elif form == "noname":
        assert not any("=" in i for i in exp["inputs"]), f"{where}: inputs carry names"
        assert set(roles) == {Path(i).stem for i in exp["inputs"]}
        assert all(n.startswith("capture-") for n in roles)
        assert exp["ifmap"] is None
    elif form == "any-noifmap":
        assert exp["inputs"] == ["any.pcap"] and exp["ifmap"] is None
        assert all(n.startswith("any:if") for n in roles), f"{where}: points {sorted(roles)}"
    else:  # points carry the host's interface names
        for n, r in roles.items():
            if n in ("uplink", "br0"):
                assert r == "uplink", f"{where}: {n} is {r}"
            elif n.startswith("tap"):
                assert r == "guest-link", f"{where}: {n} is {r}"
    if form != "sll1":
        assert "uplink" in roles.values(), f"{where}: no uplink among {roles}"

    if scenario in LOOPING:
        assert exp["loops"], f"{where}: a loop scenario without loops"
    else:
        assert not exp["loops"], f"{where}: unexpected loops {exp['loops']}"
    if scenario in BOUNCING:
        assert exp["bounces"], f"{where}: no bounce"
        for b in exp["bounces"]:
            assert b["packets"] > 0
            assert b["capture_point"] in roles
    else:
        assert not exp["bounces"]
    if scenario in FIXES:
        assert exp["fix_commands"], f"{scenario}: fix_commands empty"
    merged = form == "sll1"
    inferred = form == "uplink-only"
    for lp in exp["loops"]:
        dst = lp["destination"]
        assert dst not in exp["not_looping"]
        assert lp["looping_packets"] > 0
        assert set(lp["capture_points"]) <= set(roles), f"{where} {dst}: points not in roles"
        if inferred:
            assert lp["kind"] == "inferred" and lp["ttl_step"] is None, f"{where} {dst}"
            assert lp["capture_points"] == ["uplink"] and lp["origin"] == "uplink"
        else:
            assert lp["kind"] == "l3"
            assert lp["ttl_step"] in (2, 4)
        if merged:
            assert lp["capture_points"] == ["any"]
        # host <-> router: every copy on the uplink, the router takes the guest's part
        uplink_shape = "router" in lp["dropped_by"]
        if not merged and not inferred:
            on_uplink = all(roles[c] == "uplink" for c in lp["capture_points"])
            assert uplink_shape == on_uplink, f"{where} {dst}: dropped_by {lp['dropped_by']}"
        entries = {int(t): n for t, n in lp["entry_ttls"].items()}
        assert sum(entries.values()) == lp["looping_packets"], f"{where} {dst}: entry_ttls"
        assert lp["entry_ttl"] == (next(iter(entries)) if len(entries) == 1 else None)
        if inferred:
            per_packet = {t: t - 1 for t in entries}  # estimated: T-1 copies behind the uplink
        elif merged or uplink_shape or lp["origin"] == "guest":
            per_packet = {t: t for t in entries}  # the first copy is at a loop point too
        else:
            per_packet = {t: t - 1 for t in entries}  # tunnel copies T-1 ... 1
        predicted = sum(n * per_packet[t] for t, n in entries.items())
        assert lp["observations"] == predicted, (
            f"{where} {dst}: {lp['observations']} observations, "
            f"TTL arithmetic says {predicted} ({entries})"
        )
        # dropped_by: every looping packet once, by the parity of its entry TTL
        keys = ("router", "host") if uplink_shape else ("guest", "host")
        assert set(lp["dropped_by"]) == set(keys), f"{where} {dst}: dropped_by {lp['dropped_by']}"
        want = dict.fromkeys(keys, 0)
        for t, n in entries.items():
            want[_dropper(uplink_shape, lp["origin"], t)] += n
        assert lp["dropped_by"] == want, f"{where} {dst}: dropped_by {lp['dropped_by']} != {want}"
        te = lp["icmp_time_exceeded"]
        assert isinstance(te, int) and 0 <= te <= lp["looping_packets"], f"{where} {dst}: {te}"
        if scenario in STOPPING:
            assert lp["after_end"]["packets"] > 0, f"{where} {dst}: the loop did not stop"
        else:
            assert "after_end" not in lp


def _check_forms_agree(scenario: str, sdir: Path) -> None:
    """All forms of one scenario come from one capture run: they must agree."""
    docs = {
        p.name.removesuffix(".expected.json"): json.loads(p.read_text())
        for p in sdir.glob("*.expected.json")
    }
    base = docs["per-interface"]
    ref = {lp["destination"]: lp for lp in base["loops"]}
    for form, doc in docs.items():
        where = f"{scenario}/{form}"
        loops = {lp["destination"]: lp for lp in doc["loops"]}
        if form == "uplink-only":
            # a loop a guest feeds itself never crosses the uplink
            assert set(loops) == {d for d, lp in ref.items() if lp["origin"] == "uplink"}, where
        else:
            assert set(loops) == set(ref), f"{where}: loops {sorted(loops)} != {sorted(ref)}"
        for dst, lp in loops.items():
            for key in ("looping_packets", "entry_ttls", "dropped_by", "after_end"):
                assert lp.get(key) == ref[dst].get(key), f"{where} {dst}: {key} differs"
            if form == "uplink-only":
                assert lp["icmp_time_exceeded"] <= ref[dst]["icmp_time_exceeded"], where
            else:
                assert lp["icmp_time_exceeded"] == ref[dst]["icmp_time_exceeded"], where
        if form in ("noname", "raw", "pcapng"):
            assert sorted(doc["roles"].values()) == sorted(base["roles"].values()), where
        if form == "any-noifmap" and "any" in docs:
            assert sorted(doc["roles"].values()) == sorted(docs["any"]["roles"].values())
    required = {"per-interface", "any", "raw", "noname", "any-noifmap"}
    if scenario not in NO_SLL1:
        required.add("sll1")
    if scenario in UPLINK_ONLY:
        required.add("uplink-only")
    assert required <= set(docs), f"{scenario}: forms {sorted(docs)}, expected {sorted(required)}"
    assert "uplink-only" in docs or scenario not in UPLINK_ONLY


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
    required = {"per-interface", "any", "raw", "noname", "any-noifmap"}
    if shutil.which("dumpcap"):
        required.add("pcapng")
    if scenario not in NO_SLL1:
        required.add("sll1")
    if scenario in UPLINK_ONLY:
        required.add("uplink-only")
    assert required <= forms, f"{scenario}: forms {sorted(forms)}, expected {sorted(required)}"
    assert (sdir / "iplink.txt").read_text().strip()
    for form in forms:
        _check_consistent(scenario, json.loads((sdir / f"{form}.expected.json").read_text()), sdir)
    _check_forms_agree(scenario, sdir)


@pytest.mark.lab
@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("form", FORMS)
def test_lab_capture_matches_golden(lab_run, scenario: str, form: str) -> None:
    out, _ = lab_run
    path = out / scenario / f"{form}.expected.json"
    if not path.exists():
        pytest.skip(f"the lab made no {form} form for {scenario}")
    check_against_pcaploop(path)
