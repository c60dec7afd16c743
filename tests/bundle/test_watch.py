"""``pcaploop watch`` and ``analyze --follow`` on captures that arrive while they are
read (issue #15): a file still being written, a pipe, standard input.

Expected numbers come from the generator's plan (``loopgen.tunnel_loop``: ``n``
looping packets entering with TTL 64, a copy per TTL step), never from pcaploop.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from loopgen import tunnel_loop, write

from pcaploop.analysis.live import watch
from pcaploop.analysis.watch import LoopEvent

REPO = Path(__file__).resolve().parents[2]
LOOPING = 5  # looping packets in the generated loop
COPIES = LOOPING * 63  # copies at the tunnel: TTL 63 down to 1
PCAP_FILE_HLEN, PCAP_RECORD_HLEN = 24, 16


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "pcaploop", *args]


@pytest.fixture(scope="module")
def loop_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    specs = write(tunnel_loop(n=LOOPING), tmp_path_factory.mktemp("watch"))
    return {s.split("=", 1)[0]: Path(s.split("=", 1)[1]) for s in map(str, specs)}


def _records(data: bytes) -> list[int]:
    """Byte offsets where each record of a little-endian pcap ends."""
    ends, pos = [], PCAP_FILE_HLEN
    while pos + PCAP_RECORD_HLEN <= len(data):
        (incl,) = struct.unpack_from("<I", data, pos + 8)
        pos += PCAP_RECORD_HLEN + incl
        ends.append(pos)
    return ends


def test_a_loop_starts_and_ends(loop_files: dict[str, Path]) -> None:
    """Read to the end (no follow): one start, one end, the plan's counts."""
    events: list[LoopEvent] = []
    res = watch([f"{k}={v}" for k, v in loop_files.items()], events.append, follow=False)
    assert [e.kind for e in events] == ["start", "end"]
    start, end = events
    assert start.destination == end.destination == "203.0.113.7"
    assert end.points == ("tap101",)
    assert (end.looping_packets, end.copies) == (LOOPING, COPIES)
    assert end.copies_per_packet == pytest.approx(63)
    assert res.loops == 1 and res.reason == "input ended"
    doc = end.to_json()
    assert doc["event"] == "loop-end" and doc["time"].endswith("Z")


def test_bad_sources_are_one_line_errors(tmp_path: Path) -> None:
    r = subprocess.run(
        _cli("watch", "no-such-thing0"), capture_output=True, text=True, env=_env(), timeout=60
    )
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "Error: no-such-thing0: no such file, directory or network interface"
    ]
    empty = tmp_path / "nothing"
    empty.mkdir()
    r = subprocess.run(
        _cli("watch", str(empty)), capture_output=True, text=True, env=_env(), timeout=60
    )
    assert r.returncode == 2 and "no capture files" in r.stderr
    from fixtures import T0, Rec, shb, write_pcap

    pktap = write_pcap(tmp_path / "pktap.pcap", 258, [Rec(T0, bytes(40))])
    damaged = tmp_path / "damaged.pcapng"
    head = bytearray(shb("<"))
    head[-4:] = (len(head) + 4).to_bytes(4, "little")  # its two lengths disagree
    damaged.write_bytes(bytes(head))
    for bad, why in ((pktap, "unsupported link type"), (damaged, "nothing usable")):
        r = subprocess.run(
            _cli("watch", str(bad), "--duration", "2"),
            capture_output=True,
            text=True,
            env=_env(),
            timeout=60,
        )
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and why in lines[0], r.stderr
    for cmd in ("watch", "analyze"):  # standard input is named so, not by a temporary path
        r = subprocess.run(
            _cli(cmd, "-"), input="hello\n", capture_output=True, text=True, env=_env(), timeout=60
        )
        assert r.returncode == 2
        assert r.stderr.strip().splitlines()[-1] == (
            "Error: standard input: not a pcap or pcapng capture (looks like text)"
        )


def test_follow_a_file_while_it_is_written(loop_files: dict[str, Path], tmp_path: Path) -> None:
    """A capture growing on disk, as tcpdump -w writes it: the first half (cut inside a
    record) is there when the watch starts, the rest comes later; the loop is reported
    in full once the rest arrives, and the watch ends cleanly at its duration."""
    data = loop_files["tap101"].read_bytes()
    ends = _records(data)
    cut = ends[len(ends) // 2] - 7  # inside a record: the reader must wait for the rest
    growing = tmp_path / "tap101.pcap"
    growing.write_bytes(data[:cut])
    events: list[LoopEvent] = []
    got: list[object] = []

    th = threading.Thread(
        target=lambda: got.append(watch([f"tap101={growing}"], events.append, duration_s=4.0))
    )
    th.start()
    time.sleep(1.0)
    with growing.open("ab") as f:
        f.write(data[cut:])
    th.join(timeout=30)
    assert not th.is_alive()
    (res,) = got
    ends_ev = [e for e in events if e.kind == "end"]
    assert sum(e.copies for e in ends_ev) == COPIES, events
    assert res.reason == "duration" and res.packets == len(ends)  # type: ignore[attr-defined]


def test_stdin_stream_events_come_while_it_flows(loop_files: dict[str, Path]) -> None:
    """``tcpdump -U -w - | pcaploop watch -``: the loop's start is printed while the
    stream is still open, within 2 s of its packets being written."""
    data = loop_files["tap101"].read_bytes()
    p = subprocess.Popen(
        _cli("watch", "-", "--jsonl"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(),
    )
    assert p.stdin is not None and p.stdout is not None
    lines: list[tuple[float, dict]] = []

    def read() -> None:
        assert p.stdout is not None
        for line in p.stdout:
            lines.append((time.monotonic(), json.loads(line)))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    p.stdin.write(data)
    p.stdin.flush()
    written = time.monotonic()
    deadline = written + 20  # the first run may load the compiled decoder
    while not lines and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.05)
    assert lines, p.stderr.read().decode() if p.poll() is not None else "no event"
    first_at, first = lines[0]
    assert first["event"] == "loop-start" and first["destination"] == "203.0.113.7"
    p.stdin.close()  # the stream ends: the loop's end follows, then the exit
    assert p.wait(timeout=30) == 0
    reader.join(timeout=10)
    assert [doc["event"] for _, doc in lines] == ["loop-start", "loop-end"]
    assert lines[-1][1]["copies"] == COPIES
    # within 2 s once the decoder is loaded (the first run compiles it: retry then)
    if first_at - written > 2.0:
        pytest.xfail(f"start event after {first_at - written:.1f} s: a cold decoder cache?")


def test_analyze_follow_reads_what_arrives_until_ctrl_c(
    loop_files: dict[str, Path], tmp_path: Path
) -> None:
    """``analyze --follow``: Ctrl-C ends the input, not the analysis: the loop is there
    in full, the JSON is not marked partial, the exit status is the verdict's."""
    data = loop_files["tap101"].read_bytes()
    ends = _records(data)
    cut = ends[len(ends) // 3]
    growing = tmp_path / "tap101.pcap"
    growing.write_bytes(data[:cut])
    out = tmp_path / "a.json"
    p = subprocess.Popen(
        _cli("analyze", "--follow", f"tap101={growing}", "--json", str(out)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    assert p.stderr is not None
    assert "following" in p.stderr.readline()
    time.sleep(1.0)
    with growing.open("ab") as f:
        f.write(data[cut:])
    time.sleep(1.5)
    p.send_signal(signal.SIGINT)
    rc = p.wait(timeout=60)
    err = p.stderr.read()
    assert rc == 0, err
    doc = json.loads(out.read_text())
    assert doc["partial"] is False
    assert [lp["destination"] for lp in doc["loops"]] == ["203.0.113.7"]
    assert doc["loops"][0]["observations"] == COPIES
    assert doc["captures"][0]["records"] == len(ends)


def test_a_layer2_storm_is_one_loop(tmp_path: Path) -> None:
    """Three frames forwarded again and again at one point (a bridging loop): one start,
    one end, 3 looping frames and every copy counted, however many windows it spans."""
    from loopgen import HOST, ROUTER, T0, eth, ip4

    frames = [eth(ip4("203.0.113.9", 60, ident), ROUTER, HOST) for ident in (42, 43, 44)]
    n = 70_000
    (spec,) = write({"lan": [(T0 + i * 1e-5, frames[i % 3]) for i in range(n)]}, tmp_path)
    events: list[LoopEvent] = []
    watch([str(spec)], events.append, follow=False)
    assert [e.kind for e in events] == ["start", "end"]
    assert (events[-1].looping_packets, events[-1].copies) == (3, n)


def test_a_packet_that_passes_without_looping_ends_the_loop(tmp_path: Path) -> None:
    """The guest took its address back: the next packet for it crosses the tunnel once.
    The loop ends there ("delivered"), not after the quiet time."""
    from loopgen import GUEST, HOST, T0, eth, ip4

    caps = tunnel_loop(n=LOOPING, uplink=False)
    caps["tap101"].append((T0 + 0.5, eth(ip4("203.0.113.7", 63, 9999), HOST, GUEST)))
    (spec,) = write(caps, tmp_path)
    events: list[LoopEvent] = []
    watch([str(spec)], events.append, follow=False, quiet_s=30)
    assert [(e.kind, e.reason) for e in events] == [("start", None), ("end", "delivered")]
    assert events[-1].copies == COPIES


SAMPLES = REPO / "samples"


@pytest.mark.parametrize("scenario", ["incident", "two-tunnels", "ipv6-redirect-nd"])
def test_a_loop_behind_the_uplink_is_inferred(scenario: str) -> None:
    """The uplink alone: no copy is seen, the loop shows by ICMP time-exceeded for
    packets that arrived with TTL 64.  Its packets and estimated copies are those of
    the scenario's plan (the uplink-only golden)."""
    gold = json.loads((SAMPLES / scenario / "uplink-only.expected.json").read_text())
    events: list[LoopEvent] = []
    watch([str(SAMPLES / scenario / "uplink.pcap")], events.append, follow=False)
    ends = {e.destination: e for e in events if e.kind == "end"}
    want = {lp["destination"]: lp for lp in gold["loops"] if lp["kind"] == "inferred"}
    assert set(ends) == set(want) and want
    for dst, lp in want.items():
        e = ends[dst]
        assert e.inferred and e.points == ("uplink",)
        assert (e.looping_packets, e.copies) == (lp["looping_packets"], lp["observations"])
        assert e.to_json()["inferred"] is True
        assert "behind uplink (inferred)" in e.line() and "~" in e.line()
    starts = [e for e in events if e.kind == "start"]
    assert len(starts) == len(want) and all(e.inferred for e in starts)


def test_a_loop_seen_at_the_tunnel_is_not_inferred() -> None:
    """Uplink and tunnel together: the copies are seen at tap101, so the uplink's
    ICMP errors do not make a second, inferred loop (as analyze decides)."""
    d = SAMPLES / "incident"
    events: list[LoopEvent] = []
    watch(
        [f"uplink={d / 'uplink.pcap'}", f"tap101={d / 'tap101.pcap'}"], events.append, follow=False
    )
    assert [(e.kind, e.inferred) for e in events] == [("start", False), ("end", False)]
    assert (events[1].looping_packets, events[1].copies) == (60, 60 * 63)


def test_traceroute_is_not_a_loop() -> None:
    """Probes that expire because they were sent with a low TTL draw time-exceeded
    quoting TTL 1, but arrived with a TTL too low to loop: no event."""
    events: list[LoopEvent] = []
    watch([str(SAMPLES / "traceroute" / "uplink.pcap")], events.append, follow=False)
    assert events == []


def test_many_loops_behind_the_uplink(tmp_path: Path) -> None:
    """A sweep of 500 addresses, each looping behind the uplink: 500 inferred loops,
    each with the plan's 2 packets × 63 copies (errors and arrivals are looked up
    per window, not per loop; the quotes are RFC 792's short ones)."""
    from loopgen import uplink_sweep

    dsts = [f"{net}.{k}" for net in ("203.0.113", "192.0.2") for k in range(1, 251)]
    (arg,) = write(uplink_sweep(dsts), tmp_path)
    events: list[LoopEvent] = []
    watch([arg], events.append, follow=False)
    ends = [e for e in events if e.kind == "end"]
    assert sorted(e.destination for e in ends) == sorted(dsts)
    assert {(e.inferred, e.looping_packets, e.copies) for e in ends} == {(True, 2, 126)}
    assert sum(e.kind == "start" for e in events) == len(dsts)


def _stepped(path: Path, step_ns: int) -> list[LoopEvent]:
    """Feed a capture to a Watcher in time steps of ``step_ns``, moving time on after
    each, as a live watch does (its windows are then a few packets each)."""
    import numpy as np

    from pcaploop.analysis.watch import Watcher
    from pcaploop.ingest.loader import Loader
    from pcaploop.ingest.specs import CaptureSpec

    loader = Loader([CaptureSpec(str(path))], {})
    blocks = [{k: v.copy() for k, v in c.items()} for c, _ in loader.run()]
    cols = {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]}
    o = np.argsort(cols["time_ns"], kind="stable")
    cols = {k: v[o] for k, v in cols.items()}
    w = Watcher(lambda: loader.points, lambda: np.zeros(len(loader.points), np.int64))
    t = cols["time_ns"]
    events: list[LoopEvent] = []
    cur = int(t[0])
    while cur <= int(t[-1]):
        m = (t >= cur) & (t < cur + step_ns)
        if m.any():
            w.add({k: v[m] for k, v in cols.items()})
        cur += step_ns
        events += w.advance(cur)
    return events + w.close()


@pytest.mark.parametrize("step_ms", [1, 10, 100])
@pytest.mark.parametrize("scenario", ["incident", "two-tunnels", "ipv6-redirect-nd"])
def test_inferred_counts_do_not_depend_on_the_windows(scenario: str, step_ms: int) -> None:
    """Live, a window holds a few packets; an error can come many windows after the
    packet it quotes, identical datagrams come late: the counts stay the plan's."""
    gold = json.loads((SAMPLES / scenario / "uplink-only.expected.json").read_text())
    want = {
        lp["destination"]: (lp["looping_packets"], lp["observations"])
        for lp in gold["loops"]
        if lp["kind"] == "inferred"
    }
    events = _stepped(SAMPLES / scenario / "uplink.pcap", step_ms * 1_000_000)
    got = {e.destination: (e.looping_packets, e.copies) for e in events if e.kind == "end"}
    assert got == want


@pytest.mark.parametrize("step_ms", [1, 1000])
def test_a_sweep_in_small_windows(tmp_path: Path, step_ms: int) -> None:
    from loopgen import uplink_sweep

    dsts = [f"203.0.113.{k}" for k in range(1, 201)]
    (arg,) = write(uplink_sweep(dsts), tmp_path)
    events = _stepped(Path(arg.split("=", 1)[1]), step_ms * 1_000_000)
    ends = [e for e in events if e.kind == "end"]
    assert sorted(e.destination for e in ends) == sorted(dsts)
    assert {(e.looping_packets, e.copies) for e in ends} == {(2, 126)}


def test_arrivals_before_the_first_error_count(tmp_path: Path) -> None:
    """An answer, then 5 arrivals of which only the last draws an error, then 3 more:
    the loop holds the 8 arrivals since the answer, as analyze counts them."""
    from loopgen import CLIENT, HOST, ROUTER, eth, icmp_te, ip4

    import pcaploop

    t0, dst = 1_700_000_000.0, "203.0.113.50"
    frames = [(t0 - 1.0, eth(ip4(CLIENT, 64, 1, src=dst), HOST, ROUTER))]
    frames += [(t0 + 0.01 * j, eth(ip4(dst, 64, 1000 + j), ROUTER, HOST)) for j in range(5)]
    quoted = ip4(dst, 1, 1004)[:28]
    frames.append((t0 + 0.045, eth(icmp_te(quoted, "203.0.113.101", CLIENT), HOST, ROUTER)))
    frames += [(t0 + 0.01 * j + 0.05, eth(ip4(dst, 64, 1000 + j), ROUTER, HOST)) for j in (5, 6, 7)]
    (arg,) = write({"uplink": sorted(frames)}, tmp_path)
    (lp,) = pcaploop.analyze([arg]).loops
    assert (lp.looping_packets, lp.observations) == (8, 8 * 63)
    for step_ms in (1, 1000):
        ends = [
            e for e in _stepped(tmp_path / "uplink.pcap", step_ms * 1_000_000) if e.kind == "end"
        ]
        assert [(e.looping_packets, e.copies) for e in ends] == [(8, 8 * 63)], step_ms
