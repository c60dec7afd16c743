"""``pcaploop watch`` live in the namespace lab (issue #15).

Builds the lab's ``incident`` topology (samples/lab/lab.py, documentation
addresses only, in namespaces this test creates), starts ``pcaploop watch
uplink tap101 --jsonl`` inside the host namespace — tcpdump on both
interfaces — and sends the scenario's bounded traffic: the guest dropped
203.0.113.7 with forwarding on, so the host's packets for it loop.  The loop's
start must be printed within 2 s of its first copy, and its end within 2 s of
its last (both by the capture's own clock, which is this machine's).  Needs
root, ip(8) with network namespaces and tcpdump; skipped otherwise.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
from test_capture_lab import _env, _load_lab, _pcaploop, _why_not

WITHIN_S = 2.0
SETTLE_S = 4.0  # after the traffic: the end event, with room to spare


def _in_host(lab: object, *argv: str) -> subprocess.Popen[str]:
    """A command inside the lab's host namespace, its output read as text."""
    return subprocess.Popen(
        ["ip", "netns", "exec", lab.ns("host"), *argv],  # type: ignore[attr-defined]
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )


def _epoch(iso: str) -> float:
    whole, frac = iso.rstrip("Z").split(".")
    return datetime.fromisoformat(whole + "+00:00").timestamp() + float("0." + frac)


@pytest.mark.lab
def test_watch_reports_the_loop_live(tmp_path: Path) -> None:
    why = _why_not()
    if why:
        pytest.skip(f"lab: {why}")
    lab_mod = _load_lab()
    lab = lab_mod.Lab([])
    proc = None
    events: list[tuple[float, dict]] = []
    try:
        plan = lab_mod.sc_incident(lab)
        lab_mod.warm(lab, plan.flows)
        proc = _in_host(lab, *_pcaploop("watch", "uplink", "tap101", "--jsonl"))
        assert proc.stderr is not None and proc.stdout is not None
        first = proc.stderr.readline()  # "watching …" once both tcpdumps listen
        assert first.startswith("watching uplink, tap101"), first + proc.stderr.read()

        def read() -> None:
            assert proc is not None and proc.stdout is not None
            for line in proc.stdout:
                events.append((time.time(), json.loads(line)))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        sent = lab_mod.send(lab, plan.flows)
        time.sleep(SETTLE_S)
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=30)
        err = proc.stderr.read()
        reader.join(timeout=10)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        lab.teardown()
    assert all(n == f.count for f, n in zip(plan.flows, sent["client"])), sent
    assert rc == 130, err
    kinds = [(doc["event"], doc["destination"]) for _, doc in events]
    assert kinds == [("loop-start", "203.0.113.7"), ("loop-end", "203.0.113.7")], (kinds, err)
    (t_start, start), (t_end, end) = events
    assert start["capture_points"] == ["tap101"] and start["copies_per_packet"] > 1
    assert t_start - _epoch(start["time"]) <= WITHIN_S, (t_start, start)
    assert t_end - _epoch(end["time"]) <= WITHIN_S, (t_end, end)
    assert end["reason"] == "quiet" and end["copies"] >= end["looping_packets"] > 0
    # TTL arithmetic: each packet reaches tap101 with TTL 63 (the router took one) and
    # is seen there once per TTL value, going in and coming back, down to 1
    assert end["copies"] == 63 * end["looping_packets"], end


@pytest.mark.lab
def test_watch_follows_the_bundle_capture_is_writing(tmp_path: Path) -> None:
    """``pcaploop capture`` names the directory it is writing; ``pcaploop watch DIR``
    follows its captures while the loop happens and reports it."""
    why = _why_not()
    if why:
        pytest.skip(f"lab: {why}")
    lab_mod = _load_lab()
    lab = lab_mod.Lab([])
    cap = watcher = None
    bundle = tmp_path / "bundle"
    try:
        plan = lab_mod.sc_incident(lab)
        lab_mod.warm(lab, plan.flows)
        cap = _in_host(lab, *_pcaploop("capture", "--duration", "8", "-o", str(bundle)))
        assert cap.stderr is not None
        first, second = cap.stderr.readline(), cap.stderr.readline()
        assert first.startswith("capturing "), first + second
        growing = second.strip().rsplit(" ", 1)[-1]
        assert second.startswith("meanwhile, from another shell: pcaploop watch "), second
        watcher = subprocess.Popen(
            _pcaploop("watch", growing, "--jsonl", "--duration", "6"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        assert watcher.stderr is not None
        assert watcher.stderr.readline().startswith("watching ")
        lab_mod.send(lab, plan.flows)
        out, err = watcher.communicate(timeout=60)
        cap.communicate(timeout=60)
    finally:
        for p in (watcher, cap):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(timeout=10)
        lab.teardown()
    assert watcher.returncode == 0, err
    docs = [json.loads(line) for line in out.splitlines()]
    assert [(d["event"], d["destination"]) for d in docs] == [
        ("loop-start", "203.0.113.7"),
        ("loop-end", "203.0.113.7"),
    ], err
    assert docs[-1]["capture_points"] == ["tap101"]
    assert docs[-1]["copies"] == 63 * docs[-1]["looping_packets"]
