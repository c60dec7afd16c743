"""``pcaploop watch``: read captures while they are written and report loops live.

A source is an interface (a tcpdump started here writes to a pipe), a capture
file still being written (followed like ``tail -f``), a bundle directory (its
captures, followed) or ``-`` (standard input, e.g. ``tcpdump -U -w - | …``).
Each source is read on its own thread, so a quiet interface never holds up a
busy one; the :class:`~pcaploop.analysis.watch.Watcher` correlates them in
step on the main thread.  Time moves on with the packets, and with the clock
while a source is silent, so a loop's end is reported even when traffic
stops altogether.
"""

from __future__ import annotations

import contextlib
import glob
import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..bundle.capture import BUFFER_KIB, SNAPLEN, START_TIMEOUT_S, _parent_death_signal, _Tcpdump
from ..bundle.model import is_bundle, load_bundle
from ..decode import linktypes as lt
from ..errors import PcaploopError, UnsupportedLinkTypeError, UsageError, show_as
from ..ingest.loader import Loader
from ..ingest.points import CapturePoint
from ..ingest.specs import STDIN_SHOWN, CaptureSpec
from ..read import open_capture
from .watch import DEFAULT_QUIET_S, LoopEvent, Watcher

__all__ = ["WatchResult", "watch"]

#: how long the main loop waits for a block before it moves time on by the clock
TICK_S = 0.1
#: how long a source that has handed over nothing yet holds time still (_horizon)
FIRST_WAIT_S = 0.5
#: how long a stopped watch waits for its readers to finish their files
DRAIN_S = 2.0
#: how long a watch waits for each source's first block before it says it is watching
FIRST_BLOCK_S = 2.0
STDIN = "/dev/stdin"
ANY = "any"
CAPTURE_GLOBS = ("*.pcap", "*.pcapng", "*.cap", "*.pcap.gz", "*.pcapng.gz")


@dataclass
class WatchResult:
    """How a watch ended."""

    loops: int  # loops that started
    packets: int  # packets read
    reason: str  # "input ended" | "duration" | "first loop" | "interrupted"
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Source:
    label: str
    spec: CaptureSpec
    dump: _Tcpdump | None = None
    loader: Loader | None = None
    mark: int | None = None  # newest packet time read
    arrived: float = 0.0  # monotonic time of the newest block
    done: bool = False
    local: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


def resolve(sources: Sequence[str]) -> list[_Source]:
    """Each argument as a source: ``-``, a file, a bundle or capture directory, or an
    interface name (anything else is an error naming it)."""
    if not sources:
        raise UsageError("watch needs at least one interface, capture file, bundle or '-'")
    out: list[_Source] = []
    for text in sources:
        if text == "-":
            show_as(STDIN, STDIN_SHOWN)
            out.append(_Source("stdin", CaptureSpec(STDIN, "stdin", label="stdin")))
            continue
        if text == ANY:  # tcpdump -i any: every interface, one Linux cooked capture
            out.append(_Source(ANY, CaptureSpec("", ANY)))
            continue
        spec = CaptureSpec.parse(text)
        if os.path.isdir(spec.path):
            out += _directory(spec.path)
        elif os.path.exists(spec.path):
            out.append(_Source(spec.name or spec.stem, spec))
        elif os.path.isdir(f"/sys/class/net/{text}") and "/" not in text:
            out.append(_Source(text, CaptureSpec("", text)))
        else:
            raise UsageError(f"{text}: no such file, directory or network interface")
    names = [s.label for s in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UsageError(f"two sources named {dup[0]}: name them (NAME=PATH)")
    return out


def _directory(path: str) -> list[_Source]:
    if is_bundle(path):
        b = load_bundle(path)
        return [_Source(c.interface, CaptureSpec(c.path, c.interface)) for c in b.captures]
    files = sorted({f for g in CAPTURE_GLOBS for f in glob.glob(os.path.join(path, g))})
    if not files:
        raise UsageError(f"{path}: a directory with no capture files (*.pcap, *.pcapng)")
    specs = [CaptureSpec(f) for f in files]
    return [_Source(s.stem, s) for s in specs]


def host_ifmap(root: str = "/sys/class/net") -> dict[int, str]:
    """This host's interface index → name (what a live ``-i any`` capture needs)."""
    out: dict[int, str] = {}
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        with (
            contextlib.suppress(OSError, ValueError),
            open(os.path.join(root, name, "ifindex")) as f,
        ):
            out[int(f.read().strip())] = name
    return out


def _start_live(live: list[_Source]) -> None:
    """One tcpdump per interface, writing to a pipe; fails with tcpdump's own words."""
    from ..bundle.capture import check_can_capture

    tcpdump, _ip = check_can_capture()
    hook = _parent_death_signal()
    for s in live:
        argv = [tcpdump, "-i", s.label, "-n", "-U", "--immediate-mode"]
        argv += ["-B", str(BUFFER_KIB), "-s", str(SNAPLEN), "-w", "-"]
        s.dump = _Tcpdump(s.label, "-", argv, stdout=subprocess.PIPE)
        s.dump.start(hook)
        s.dump.read()
    for s in live:
        assert s.dump is not None and s.dump.proc is not None and s.dump.proc.stdout is not None
        s.dump.listening.wait(START_TIMEOUT_S)
        if not s.dump.heard or not s.dump.running():
            for other in live:
                if other.dump is not None:
                    other.dump.stop()
            raise PcaploopError(s.dump.problem() or f"tcpdump -i {s.label} did not start")
        s.spec = CaptureSpec(f"/proc/self/fd/{s.dump.proc.stdout.fileno()}", s.label)


def watch(
    sources: Sequence[str],
    on_event: Callable[[LoopEvent], None],
    duration_s: float | None = None,
    quiet_s: float = DEFAULT_QUIET_S,
    stop_at_first: bool = False,
    ifmap: dict[int, str] | None = None,
    follow: bool = True,
    ready: Callable[[list[str]], None] | None = None,
) -> WatchResult:
    """Read ``sources`` until they end, ``duration_s`` passes, the first loop starts
    (``stop_at_first``) or Ctrl-C; call ``on_event`` for every loop start and end.

    ``follow=False`` reads files to their current end instead of waiting for more.
    ``ready`` hears the sources' names once every one is open (tcpdumps listening).

    >>> watch(["tap101"], print, duration_s=60)  # doctest: +SKIP
    """
    if duration_s is not None and duration_s <= 0:
        raise UsageError("--duration must be more than 0 seconds")
    if quiet_s <= 0:
        raise UsageError("--quiet must be more than 0 seconds")
    srcs = resolve(sources)
    for s in srcs:
        _check_link_type(s.spec.path)
    stop = threading.Event()
    live = [s for s in srcs if not s.spec.path]
    if live:
        _start_live(live)
    if ifmap is None and any(s.label == ANY and s.dump is not None for s in srcs):
        ifmap = host_ifmap()  # live on this host: its own interface names
    points: list[CapturePoint] = []
    point_file: list[int] = []
    w = Watcher(lambda: points, lambda: np.asarray(point_file, np.int64), quiet_s=quiet_s)
    q: queue.Queue[tuple[int, object]] = queue.Queue(maxsize=64)  # bounded: back-pressure
    threads = []
    for i, s in enumerate(srcs):
        follows = follow and s.spec.path != STDIN  # a file on stdin ends where it ends
        s.loader = Loader([s.spec], ifmap or {}, follow=stop.is_set if follows else None)
        th = threading.Thread(target=_read, args=(i, s.loader, q), daemon=True)
        threads.append(th)
    t0 = time.monotonic()
    for th in threads:
        th.start()
    pending: list[tuple[int, object]] = []
    try:
        _wait_first(len(srcs), q, pending)
    except BaseException:
        stop.set()
        for s in live:
            if s.dump is not None:
                s.dump.stop()
        raise
    if ready is not None:
        ready([s.label for s in srcs])
    packets, started, reason = 0, 0, "input ended"
    last_horizon = -1
    began = time.monotonic()  # the sources are open: the first-wait counts from here

    def emit(events: list[LoopEvent]) -> bool:
        nonlocal started
        for ev in events:
            on_event(ev)
            if ev.kind == "start":
                started += 1
                if stop_at_first:
                    return True
        return False

    try:
        while not all(s.done for s in srcs):
            try:  # blocks that came while the sources opened, in order, then the queue
                i, item = pending.pop(0) if pending else q.get(timeout=TICK_S)
            except queue.Empty:
                pass
            else:
                s = srcs[i]
                if isinstance(item, BaseException):
                    raise item
                if item is None:
                    s.done = True
                else:
                    assert isinstance(item, dict) and s.loader is not None
                    packets += _add(w, s, i, item, points, point_file)
            # the blocks that came while the sources opened are all added first
            horizon = None if pending else _horizon(srcs, began)
            if horizon is not None and horizon > last_horizon:
                last_horizon = horizon
                if emit(w.advance(horizon)):
                    reason = "first loop"
                    break
            if duration_s is not None and time.monotonic() - t0 >= duration_s:
                reason = "duration"
                break
    except KeyboardInterrupt:
        reason = "interrupted"
    finally:
        stop.set()
        for s in live:
            if s.dump is not None:
                s.dump.stop()
    if reason != "first loop":
        if reason != "input ended":  # what the readers still hand over counts
            _drain(q, srcs, w, points, point_file, threads)
        emit(w.close())
    warnings = []
    for s in srcs:
        if s.loader is not None:
            warnings += s.loader.warnings
        if s.dump is not None and s.dump.problem():
            warnings.append(str(s.dump.problem()))
    return WatchResult(started, packets, reason, warnings)


def _check_link_type(path: str) -> None:
    """A regular pcap file whose link type pcaploop cannot decode is refused at once,
    as ``analyze`` refuses it, instead of being watched for nothing."""
    if not path or not os.path.isfile(path):
        return
    cap = open_capture(path)
    if cap.format == "pcap" and lt.l2_code(cap.interfaces[0].linktype) == lt.L2_UNSUPPORTED:
        raise UnsupportedLinkTypeError(
            path, f"unsupported link type {lt.linktype_name(cap.interfaces[0].linktype)}"
        )


def _wait_first(
    n: int, q: queue.Queue[tuple[int, object]], pending: list[tuple[int, object]]
) -> None:
    """Until every source has handed over its first block or its end (or a moment has
    passed: a quiet interface or a file not written yet), keeping what came in
    ``pending``; a source's error then is raised before anything was said (one
    line, exit 2)."""
    deadline = time.monotonic() + FIRST_BLOCK_S
    heard = [False] * n
    while not all(heard) and time.monotonic() < deadline:
        try:
            i, item = q.get(timeout=TICK_S)
        except queue.Empty:
            continue
        if isinstance(item, BaseException):
            raise item
        heard[i] = True
        pending.append((i, item))


def _read(i: int, loader: Loader, q: queue.Queue[tuple[int, object]]) -> None:
    """One source's blocks into the queue, then None (or the error that ended it)."""
    try:
        for cols, _arp in loader.run():
            q.put((i, cols))
        q.put((i, None))
    except BaseException as exc:  # the main thread raises it
        q.put((i, exc))


def _add(
    w: Watcher,
    s: _Source,
    i: int,
    cols: dict[str, np.ndarray],
    points: list[CapturePoint],
    point_file: list[int],
) -> int:
    """A source's block into the watcher, its capture points renumbered into one list."""
    assert s.loader is not None
    mine = s.loader.points
    while len(s.local) < len(mine):  # points the source has shown since its last block
        s.local = np.r_[s.local, len(points)]
        p = mine[len(s.local) - 1]
        if p.name in {q.name for q in points}:  # two sources, one name: keep both apart
            p.name = f"{s.label}:{p.name}"
        points.append(p)
        point_file.append(i)
    n = len(cols["time_ns"])
    if n:
        cols["point"] = s.local[cols["point"].astype(np.int64)].astype(np.int16)
        s.mark = max(s.mark or int(cols["time_ns"].max()), int(cols["time_ns"].max()))
        s.arrived = time.monotonic()
        w.add(cols)
    return n


def _horizon(srcs: Sequence[_Source], began: float = 0.0) -> int | None:
    """No packet stamped before this is still to come: the oldest source's newest
    packet, moved on by the clock while that source is silent.  For the first
    :data:`FIRST_WAIT_S` after the sources opened (``began``, monotonic), a source
    that has not handed over anything yet holds time still: the first packets of
    every capture point are correlated together (a silent one is left out after)."""
    now = time.monotonic()
    if now - began < FIRST_WAIT_S and any(s.mark is None and not s.done for s in srcs):
        return None
    marks = [
        s.mark + int((now - s.arrived) * 1e9) for s in srcs if s.mark is not None and not s.done
    ]
    if marks:
        return min(marks)
    done = [s.mark for s in srcs if s.mark is not None]
    return max(done) if done else None


def _drain(
    q: queue.Queue[tuple[int, object]],
    srcs: Sequence[_Source],
    w: Watcher,
    points: list[CapturePoint],
    point_file: list[int],
    threads: Sequence[threading.Thread],
) -> None:
    """Blocks read when the watch was stopped still count, and each reader is given a
    moment to finish its file (its accounting and warnings come at the end)."""
    deadline = time.monotonic() + DRAIN_S
    while time.monotonic() < deadline and (any(t.is_alive() for t in threads) or q.qsize()):
        try:
            i, item = q.get(timeout=TICK_S)
        except queue.Empty:
            continue
        if isinstance(item, dict):
            _add(w, srcs[i], i, item, points, point_file)
