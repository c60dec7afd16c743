#!/usr/bin/env python3
"""pcaploop as a user runs it: whole commands, next to cat, capinfos and tshark, in one run.

    python benchmarks/bench.py            # 2 M-packet captures, median of 3 rounds, + 20 M
    python benchmarks/bench.py --quick    # 200 k-packet captures, 1 round, no 20 M

Why whole processes: what a user waits for is the command, interpreter start,
imports, decoding, analysis and output included; a library call can be fast
while the command is slow.  So every measurement is a child process of its
own, started through GNU ``/usr/bin/time`` (or a small wrapper) so that its
peak RSS is that child's and never this script's, and every pcaploop command
is also run on a 10-packet capture: its *net* time (big − tiny) is the cost of
the packets, its tiny time the cold start.

Why two captures of the same size: the analysis has a per-loop cost as well
as a per-packet one.  *Few loops* (one incident, a handful of destinations)
and *many loops* (a scanner's sweep, thousands of destinations) differ only
in how the looping packets are spread, so their ratio is the per-loop cost.

Why rounds: on a shared VM a burst of load hits whatever runs at that moment.
Rounds interleave the methods, so it falls on all of them alike, and each row
is the median.  Absolute numbers move ±20–35 % between hours on such machines:
read the ratios within one run.  Results go to ``benchmarks/RESULTS.md``,
which only this script writes.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TIME_BIN = "/usr/bin/time"
MIB = 1024 * 1024

# --- targets (issue 13) -------------------------------------------------------------------
INFO_VS_CAT = 3.0  # pcaploop info, net, at most 3× cat
ANALYZE_VS_CAT = 6.0  # pcaploop analyze, net, at most 6× cat
VS_TSHARK = 100.0  # analyze at least 100× the packets/s of tshark -T fields
COLD_START_S = 1.0  # info and analyze on 10 packets
JOBS_SPEEDUP = 1.7  # --jobs 2 against --jobs 1
#: the commands measured with --jobs 1 and --jobs 2, where they have the option
JOB_COMMANDS = ("analyze", "info", "report")
RSS_GROWTH = 1.2  # analyze peak RSS on 20 M packets against 2 M
RSS_LIMIT_MIB = 1024.0  # … and under 1 GiB
PER_LOOP = 20.0  # analyze net on many loops at most 20× few loops

TSHARK_FIELDS = ("frame.number", "ip.src", "ip.dst", "ip.ttl", "ip.id")
#: samples of the cold-start commands (10 packets), over all rounds together
COLD_SAMPLES = 5
#: free disk kept beyond the 20 M capture itself (other users of the machine, outputs)
DISK_SPARE = 4 * 1024**3


# ----------------------------------------------------------------------------------------
# children: `bench.py --child decode FILE TINY` prints one JSON line as its last output
# ----------------------------------------------------------------------------------------
def _child(argv: list[str]) -> int:
    if argv[0] != "decode":
        raise SystemExit(f"unknown child {argv[0]!r}")
    print(json.dumps(_c_decode(argv[1], argv[2])), flush=True)
    return 0


def _c_decode(path: str, tiny: str) -> dict[str, Any]:
    """pcaploop's streaming decode (``Loader.run``), each block consumed and dropped.

    The library-level figure: read, walk, compiled decode, fingerprint, capture
    points and accounting, without interpreter start, imports, analysis or
    output.  ``reuse=True`` is how ``pcaploop info`` streams.  Timed after the
    imports and a warm-up on the 10-packet file, so the compiled kernels are loaded.
    """
    from pcaploop.ingest.loader import Loader
    from pcaploop.ingest.specs import CaptureSpec

    def run(p: str) -> tuple[int, Any]:
        loader = Loader([CaptureSpec(p)], {})
        n = 0
        for cols, _arp in loader.run(reuse=True):
            n += len(cols["time_ns"])
        return n, loader

    run(tiny)
    c, t = time.process_time(), time.perf_counter()
    n, _loader = run(path)
    dt, dc = time.perf_counter() - t, time.process_time() - c
    return {"work_s": dt, "work_cpu_s": dc, "decoded": n}


def _wrap(argv: list[str]) -> int:
    """Launcher when GNU time is missing: run argv[1:], write '%M %U %S' to argv[0]."""
    p = subprocess.Popen(argv[1:])
    _, status, ru = os.wait4(p.pid, 0)
    Path(argv[0]).write_text(f"{ru.ru_maxrss} {ru.ru_utime} {ru.ru_stime}\n")
    return os.waitstatus_to_exitcode(status)


# ----------------------------------------------------------------------------------------
# one measurement
# ----------------------------------------------------------------------------------------
@dataclass
class Sample:
    """One run of one command."""

    wall_s: float
    cpu_s: float  # user + system, the child and the children it waited for
    rss_mib: float  # the largest single process (ru_maxrss)
    tree_mib: float  # summed RSS of the process group, sampled; nan when not sampled
    rc: int
    timed_out: bool = False
    error: str = ""
    result: dict[str, Any] = field(default_factory=dict)  # a Python child's JSON line

    @property
    def peak_mib(self) -> float:
        return max(self.rss_mib, 0.0 if math.isnan(self.tree_mib) else self.tree_mib)


class TreeRSS(threading.Thread):
    """Peak of the summed RSS of every process in one process group, sampled at 10 Hz.

    Why: ``ru_maxrss`` is the largest single process.  When a command forks
    workers (``--jobs``) the memory it needs is their sum.  Short peaks between
    samples are missed; ``ru_maxrss`` still bounds each process from below.
    Finding the group's members means reading every process's ``stat``, so
    that is done every fifth sample; in between only the members are read.
    """

    def __init__(self, pgid: int, skip: int, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pgid, self.skip, self.interval = pgid, skip, interval
        self.stop = threading.Event()
        self.peak = 0
        self.members: set[str] = set()
        self.page = os.sysconf("SC_PAGE_SIZE")

    def _rss(self, pid: str) -> int | None:
        """The process's RSS in bytes if it is in the group, else None."""
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                s = f.read()
        except OSError:
            return None
        rest = s[s.rfind(b")") + 2 :].split()  # after comm: state ppid pgrp … rss (22nd)
        return int(rest[21]) * self.page if int(rest[2]) == self.pgid else None

    def sample(self, scan: bool) -> None:
        pids = (
            [d.name for d in os.scandir("/proc") if d.name.isdigit()]
            if scan
            else list(self.members)
        )
        total = 0
        for pid in pids:
            if pid == str(self.skip):
                continue
            rss = self._rss(pid)
            if rss is None:
                self.members.discard(pid)
            else:
                self.members.add(pid)
                total += rss
        self.peak = max(self.peak, total)

    def run(self) -> None:
        i = 0
        while not self.stop.wait(self.interval):
            self.sample(scan=i % 5 == 0)
            i += 1


def child_env(tree: Path) -> dict[str, str]:
    """The children's environment: the tree under test first on the path, JIT on."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tree) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    env.setdefault("PCAPLOOP_FP_KEY", "000102030405060708090a0b0c0d0e0f")
    for k in ("NUMBA_DISABLE_JIT", "PCAPLOOP_NO_JIT"):
        env.pop(k, None)
    return env


def measure(
    cmd: Sequence[str],
    env: dict[str, str],
    *,
    keep_stdout: bool = True,
    timeout: float = 900.0,
    sample_tree: bool = False,
) -> Sample:
    """Run one child to its end: wall time, CPU time and its own peak RSS.

    Linux carries the RSS high-water mark of a forking process into the
    forked-and-exec'd child's ``ru_maxrss``, so the child is started through a
    small launcher (GNU time, or the ``--wrap`` fallback) whose footprint is
    the floor, never this process's.  The child gets a process group of its
    own: a timeout kills the group (workers included), and the group is what
    :class:`TreeRSS` sums.
    """
    rfd, rpath = tempfile.mkstemp(prefix="pcaploop-bench-rusage-")
    os.close(rfd)
    if os.access(TIME_BIN, os.X_OK):
        full = [TIME_BIN, "-f", "%M %U %S", "-o", rpath, *cmd]
    else:
        full = [sys.executable, "-S", str(Path(__file__).resolve()), "--wrap", rpath, *cmd]
    out = tempfile.TemporaryFile() if keep_stdout else open(os.devnull, "wb")
    err = tempfile.TemporaryFile()
    timed_out = threading.Event()
    t = time.perf_counter()
    p = subprocess.Popen(
        full,
        stdout=out,
        stderr=err,
        stdin=subprocess.DEVNULL,
        cwd=tempfile.gettempdir(),
        env=env,
        start_new_session=True,
    )

    def kill() -> None:
        timed_out.set()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)

    killer = threading.Timer(timeout, kill)
    killer.start()
    sampler = TreeRSS(p.pid, p.pid) if sample_tree else None
    if sampler:
        sampler.start()
    try:
        rc = p.wait()
    except BaseException:
        kill()
        p.wait()
        raise
    finally:
        killer.cancel()
        if sampler:
            sampler.stop.set()
            sampler.join()
    wall = time.perf_counter() - t
    try:
        fields = Path(rpath).read_text().strip().splitlines()[-1].split()
        rss_kib, ut, st = (float(x) for x in fields[-3:])
    except (OSError, ValueError, IndexError):
        rss_kib = ut = st = float("nan")
    os.unlink(rpath)
    text = ""
    if keep_stdout:
        out.seek(0)
        text = out.read()[-200_000:].decode(errors="replace")
    out.close()
    err.seek(0)
    etext = err.read()[-20_000:].decode(errors="replace")
    err.close()
    s = Sample(
        wall_s=wall,
        cpu_s=ut + st,
        rss_mib=rss_kib / 1024,
        tree_mib=sampler.peak / MIB if sampler else float("nan"),
        rc=rc,
        timed_out=timed_out.is_set(),
    )
    if s.timed_out:
        s.error = f"timed out after {timeout:.0f} s"
    elif rc != 0:
        lines = [ln for ln in etext.strip().splitlines() if "Command exited" not in ln]
        s.error = f"exit {rc}: " + (lines[-1][:160] if lines else "no message")
    if rc == 0 and text.strip():
        with contextlib.suppress(ValueError, IndexError):
            last = json.loads(text.strip().splitlines()[-1])
            if isinstance(last, dict):
                s.result = last
    return s


# ----------------------------------------------------------------------------------------
# what is run
# ----------------------------------------------------------------------------------------
@dataclass
class Capture:
    key: str  # few, many, big, tiny
    label: str
    path: Path
    packets: int
    meta: dict[str, Any]
    prefix: Path | None = None  # the first prefix_packets records, for the slow methods
    prefix_packets: int = 0


@dataclass
class Job:
    """One command on one capture, run once per round (or per_round times)."""

    key: str  # method@capture
    method: str
    cmd: list[str]
    capture: str
    packets: int  # packets this command reads (a prefix for the slow methods)
    base: str | None = None  # the same command on the 10-packet capture
    keep_stdout: bool = True
    sample_tree: bool = False
    once: bool = False
    per_round: int = 1
    json_out: Path | None = None
    samples: list[Sample] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(s.rc != 0 for s in self.samples)


@dataclass
class Stat:
    """A job's runs summarised: median times, the largest peak RSS."""

    n: int
    wall_s: float
    wall_min: float
    wall_max: float
    cpu_s: float
    peak_mib: float
    rss_mib: float
    tree_mib: float
    work_s: float | None
    work_cpu_s: float | None
    error: str = ""


def stat_of(job: Job) -> Stat | None:
    """Median over the successful runs (a failed run's time means nothing), None if unrun."""
    if not job.samples:
        return None
    bad = [s for s in job.samples if s.rc != 0]
    ok = [s for s in job.samples if s.rc == 0] or job.samples
    walls = [s.wall_s for s in ok]
    works = [s.result["work_s"] for s in ok if "work_s" in s.result]
    wcpu = [s.result["work_cpu_s"] for s in ok if "work_cpu_s" in s.result]
    trees = [s.tree_mib for s in ok if not math.isnan(s.tree_mib)]
    return Stat(
        n=len(ok),
        wall_s=statistics.median(walls),
        wall_min=min(walls),
        wall_max=max(walls),
        cpu_s=statistics.median(s.cpu_s for s in ok),
        peak_mib=max(s.peak_mib for s in ok),
        rss_mib=max(s.rss_mib for s in ok),
        tree_mib=max(trees) if trees else float("nan"),
        work_s=statistics.median(works) if works else None,
        work_cpu_s=statistics.median(wcpu) if wcpu else None,
        error=bad[0].error if bad else "",
    )


def run_rounds(
    jobs: dict[str, Job],
    env: dict[str, str],
    repeat: int,
    timeout: float,
    slow: float,
    log: Callable[[str], None],
) -> None:
    """Every job once per round, in order; a failed job is not retried, a slow one
    (first run above ``slow`` seconds) not repeated: its one run is its median."""
    for rnd in range(repeat):
        log(f"round {rnd + 1}/{repeat}:")
        for job in jobs.values():
            if job.samples and (
                job.once
                or job.failed
                or (job.per_round == 1 and min(s.wall_s for s in job.samples) > slow)
            ):
                continue
            for arg in job.cmd:  # in the page cache now: a host may reclaim cold pages
                if arg.endswith(".pcap") and os.path.isfile(arg):  # between runs (DAMON)
                    warm(Path(arg))
            t = time.perf_counter()
            for _ in range(job.per_round):
                s = measure(
                    job.cmd,
                    env,
                    keep_stdout=job.keep_stdout,
                    timeout=timeout,
                    sample_tree=job.sample_tree,
                )
                job.samples.append(s)
                if s.rc != 0:
                    log(f"  {job.key}: {s.error}")
                    break
            log(f"  {job.key} {time.perf_counter() - t:.1f} s")


# ----------------------------------------------------------------------------------------
# captures
# ----------------------------------------------------------------------------------------
def gen_args(path: Path, packets: int, scanner: bool) -> list[str]:
    """gen.py's command line: the one place that maps a capture's shape to its options."""
    args = [sys.executable, str(HERE / "gen.py"), str(path), "--packets", str(packets)]
    return args + (["--scanner"] if scanner else [])


def generate(path: Path, packets: int, scanner: bool = False) -> dict[str, Any]:
    """Run gen.py in its own process: it caches by parameters, and this process stays small."""
    subprocess.run(gen_args(path, packets, scanner), check=True, stdout=subprocess.DEVNULL)
    meta: dict[str, Any] = json.loads(path.with_name(path.name + ".json").read_text())
    return meta


def is_cached(path: Path, packets: int, scanner: bool = False) -> bool:
    """Whether gen.py would reuse the file: decides if the big capture needs disk space."""
    cmd = [*gen_args(path, packets, scanner), "--cached"]
    return subprocess.run(cmd, stdout=subprocess.DEVNULL).returncode == 0


def prefix_file(src: Path, dst: Path, k: int) -> Path:
    """The first k records of a classic pcap (cached next to it)."""
    side = dst.with_name(dst.name + ".json")
    st = src.stat()
    want = {"source": src.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "records": k}
    with contextlib.suppress(OSError, ValueError):
        if dst.exists() and json.loads(side.read_text()) == want:
            return dst
    with open(src, "rb") as f:
        head = f.read(24)
        endian = "<" if head[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        pos = 24
        for _ in range(k):
            f.seek(pos + 8)
            hdr = f.read(4)
            if len(hdr) < 4:
                break
            pos += 16 + struct.unpack(endian + "I", hdr)[0]
    tmp = dst.with_name(dst.name + ".tmp")
    with open(src, "rb") as f, open(tmp, "wb") as g:
        left = pos
        while left:
            chunk = f.read(min(left, 1 << 24))
            g.write(chunk)
            left -= len(chunk)
    os.replace(tmp, dst)
    side.write_text(json.dumps(want))
    return dst


def warm(path: Path) -> None:
    """Read a file once, so every method finds it in the page cache."""
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


# ----------------------------------------------------------------------------------------
# the machine
# ----------------------------------------------------------------------------------------
def _first_line(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.strip().splitlines()[0] if out.strip() else ""


def _version_of(tool: str) -> str:
    """'TShark (Wireshark) 4.0.17' from the first line of ``tool --version``, '' if missing."""
    if not shutil.which(tool):
        return ""
    return _first_line([tool, "--version"]).split(" (Git")[0].rstrip(".")


def tree_state(tree: Path) -> dict[str, Any]:
    """The commit under test, its uncommitted files, and fingerprints of the source and
    of the installed packages.

    Why the fingerprints: on a shared machine someone may commit, edit or
    install while the benchmark runs; taken at the start and at the end, they
    tell whether one tree and one environment were measured.
    """
    git = ["git", "-C", str(tree)]
    commit = _first_line([*git, "log", "-1", "--format=%h %s"])
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--", "pcaploop"], capture_output=True, text=True
    ).stdout.splitlines()
    src = hashlib.sha256()
    for f in sorted((tree / "pcaploop").rglob("*")):
        if f.is_file() and "__pycache__" not in f.parts:
            st = f.stat()
            src.update(f"{f.relative_to(tree)} {st.st_size} {st.st_mtime_ns}\n".encode())
    dists = sorted(f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions())
    return {
        "commit": commit or "not a git checkout",
        "uncommitted": len([d for d in dirty if d.strip()]),
        "source_digest": src.hexdigest()[:16],
        "packages_digest": hashlib.sha256("\n".join(dists).encode()).hexdigest()[:16],
    }


def tree_changes(start: dict[str, Any], end: dict[str, Any]) -> list[str]:
    """What changed between two :func:`tree_state` calls, in words."""
    out = []
    if start["commit"] != end["commit"]:
        out.append(f"the commit moved from `{start['commit']}` to `{end['commit']}`")
    elif start["source_digest"] != end["source_digest"]:
        out.append("files under pcaploop/ were edited")
    if start["packages_digest"] != end["packages_digest"]:
        out.append("installed Python packages changed")
    return out


def machine(tree: Path) -> dict[str, Any]:
    """What the numbers were measured on, and which pcaploop."""
    cpu = platform.processor() or "?"
    with contextlib.suppress(OSError):
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                cpu = ln.split(":", 1)[1].strip()
                break
    ram = float("nan")
    with contextlib.suppress(OSError, ValueError, IndexError):
        for ln in Path("/proc/meminfo").read_text().splitlines():
            if ln.startswith("MemTotal:"):
                ram = int(ln.split()[1]) / 1024**2
    versions = {}
    for pkg in ("numba", "numpy", "pandas"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "not installed"
    pv = "?"
    with contextlib.suppress(OSError):
        m = re.search(
            r"__version__\s*=\s*['\"]([^'\"]+)", (tree / "pcaploop/_version.py").read_text()
        )
        pv = m.group(1) if m else "?"
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count() or 0
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": affinity,
        "ram_gib": round(ram, 1),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        **versions,
        "pcaploop": pv,
        **tree_state(tree),
        "tshark": _version_of("tshark"),
        "capinfos": _version_of("capinfos"),
    }


def cli_command() -> list[str]:
    """The console script beside this interpreter, as a user of the environment runs it;
    ``python -m pcaploop`` when there is none."""
    exe = Path(sys.executable).parent / "pcaploop"
    if exe.is_file() and os.access(exe, os.X_OK):
        return [str(exe)]
    return [sys.executable, "-m", "pcaploop"]


def has_option(cli: list[str], command: str, option: str, env: dict[str, str]) -> bool:
    try:
        p = subprocess.run(
            [*cli, command, "--help"], capture_output=True, text=True, env=env, timeout=120
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return option in p.stdout


# ----------------------------------------------------------------------------------------
# results
# ----------------------------------------------------------------------------------------
MAIN = ("few", "many")
REFERENCE = ("cat", "capinfos", "tshark", "python", "imports")  # not pcaploop's own commands


def fmt_rate(r: float | None) -> str:
    if r is None or not math.isfinite(r):
        return "n/a"
    if r >= 1e6:
        return f"{r / 1e6:.2f} M"
    if r >= 1e3:
        return f"{r / 1e3:.1f} k"
    return f"{r:.0f}"


def fmt_s(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.3f}" if abs(x) < 1 else f"{x:.2f}"


def fmt_n(x: int | None) -> str:
    return "n/a" if x is None else f"{x:,}"


def md_table(head: Sequence[str], rows: Sequence[Sequence[str]], right: str = "") -> list[str]:
    """A Markdown table; ``right`` has an 'r' for each right-aligned column."""
    align = ["---:" if right[i : i + 1] == "r" else "---" for i in range(len(head))]
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    return out + ["| " + " | ".join(r) + " |" for r in rows]


class Results:
    """What the runs mean: net seconds, rates, loops found."""

    def __init__(self, jobs: dict[str, Job], caps: dict[str, Capture]) -> None:
        self.jobs, self.caps = jobs, caps
        self.stats = {k: stat_of(j) for k, j in jobs.items()}

    def row(self, key: str) -> dict[str, Any]:
        """Seconds for the whole capture (extrapolated from a prefix where marked), net
        seconds (minus the same command on 10 packets), packets/s of the net time."""
        job, st = self.jobs.get(key), self.stats.get(key)
        if job is None or st is None:
            return {"error": "not run"}
        if st.error:
            return {"error": st.error, "n": st.n}
        cap = self.caps[job.capture]
        scale = cap.packets / job.packets
        out: dict[str, Any] = {"n": st.n, "extrapolated": scale != 1.0, "peak_mib": st.peak_mib}
        if job.base:
            b = self.stats.get(job.base)
            if b is None or b.error:
                return {"error": f"on 10 packets: {b.error if b else 'not run'}"}
            net = (st.wall_s - b.wall_s) * scale
            out.update(seconds=b.wall_s + net, net=net, cpu=b.cpu_s + (st.cpu_s - b.cpu_s) * scale)
        elif st.work_s is not None:  # a Python child that timed its own work
            out.update(seconds=st.work_s, net=st.work_s, cpu=st.work_cpu_s)
        else:
            out.update(seconds=st.wall_s, net=st.wall_s, cpu=st.cpu_s)
        out["pps"] = cap.packets / out["net"] if out["net"] > 0 else None
        return out

    def net(self, key: str) -> float | None:
        r = self.row(key)
        return r["net"] if r.get("pps") else None

    def error(self, key: str) -> str:
        return str(self.row(key).get("error", ""))

    def loops(self, key: str) -> dict[str, Any] | None:
        """Loops found, from the command's ``--json`` output (its last run)."""
        job = self.jobs.get(key)
        if job is None or job.json_out is None or job.failed or not job.json_out.exists():
            return None
        try:
            d = json.loads(job.json_out.read_text())
        except (OSError, ValueError):
            return None
        summ = d.get("summary") or {}
        return {
            "loops": summ.get("loops"),
            "listed": len(d.get("loops") or []),
            "looping_packets": summ.get("looping_packets"),
            "digest": json.dumps([summ, d.get("loops")], sort_keys=True, default=str),
        }

    def n_loops(self, key: str) -> int | None:
        lp = self.loops(key)
        return lp["loops"] if lp else None


@dataclass
class Verdict:
    target: str
    verdict: str  # PASS, FAIL or N/A
    measured: str


def judge(name: str, ok: bool, measured: str) -> Verdict:
    return Verdict(name, "PASS" if ok else "FAIL", measured)


def missing(res: Results, name: str, keys: Sequence[str], why: str) -> Verdict:
    """A target that could not be judged: FAIL when a pcaploop command failed or timed
    out (that is a miss), N/A when it could not run here or the time is not measurable."""
    for k in keys:
        e = res.error(k)
        if e:
            method, cap = k.split("@")
            fail = method not in REFERENCE and ("exit " in e or "timed out" in e)
            return Verdict(
                name, "FAIL" if fail else "N/A", f"{method} on {res.caps[cap].label}: {e}"
            )
    return Verdict(name, "N/A", why)


NOISE = "net time ≤ 0: start-up and noise dominate (use more packets)"


def targets(res: Results, ctx: dict[str, Any]) -> list[Verdict]:
    """Every target of issue 13, judged on this run."""
    caps, out = res.caps, []
    for m, limit in (("info", INFO_VS_CAT), ("analyze", ANALYZE_VS_CAT)):
        for c in MAIN:
            name = f"`{m}` net ≤ {limit:g}× `cat` ({caps[c].label})"
            a, b = res.net(f"{m}@{c}"), res.net(f"cat@{c}")
            if a and b:
                out.append(judge(name, a / b <= limit, f"{a / b:.1f}× ({a:.2f} s; cat {b:.3f} s)"))
            else:
                out.append(missing(res, name, [f"{m}@{c}", f"cat@{c}"], NOISE))
    for c in MAIN:
        name = f"`analyze` ≥ {VS_TSHARK:g}× `tshark -T fields`, packets/s ({caps[c].label})"
        a, t = res.net(f"analyze@{c}"), res.net(f"tshark@{c}")
        if not ctx["tools"]["tshark"]:
            out.append(Verdict(name, "N/A", "tshark not installed"))
        elif a and t:
            out.append(
                judge(name, t / a >= VS_TSHARK, f"{t / a:.0f}× ({a:.2f} s; tshark {t:.0f} s)")
            )
        else:
            out.append(missing(res, name, [f"analyze@{c}", f"tshark@{c}"], NOISE))
    for m in ("info", "analyze"):
        name = f"cold start: `{m}` on 10 packets ≤ {COLD_START_S:g} s"
        st = res.stats.get(f"{m}@tiny")
        if st is None or st.error:
            out.append(missing(res, name, [f"{m}@tiny"], "not run"))
        else:
            span = f"median of {st.n}, {st.wall_min:.2f}–{st.wall_max:.2f}"
            out.append(judge(name, st.wall_s <= COLD_START_S, f"{st.wall_s:.2f} s ({span})"))
    for c in MAIN:
        name = f"`analyze --jobs 2` ≥ {JOBS_SPEEDUP:g}× `--jobs 1` ({caps[c].label})"
        a, b = res.net(f"analyze_j1@{c}"), res.net(f"analyze_j2@{c}")
        if not ctx["jobs"]["analyze"]:
            out.append(Verdict(name, "N/A", "no --jobs option"))
        elif a and b:
            out.append(judge(name, a / b >= JOBS_SPEEDUP, f"{a / b:.2f}× ({a:.2f} s → {b:.2f} s)"))
        else:
            out.append(missing(res, name, [f"analyze_j1@{c}", f"analyze_j2@{c}"], NOISE))
    big = f"{ctx['big_packets'] / 1e6:g} M"
    names = (
        f"`analyze` peak RSS: {big} packets ≤ {RSS_GROWTH:g}× {caps['few'].packets / 1e6:g} M",
        f"`analyze` peak RSS on {big} packets < 1 GiB",
    )
    rb, rs = res.row("analyze@big"), res.row("analyze@few")
    if "big" not in caps:
        out += [Verdict(n, "N/A", ctx["big_skipped"]) for n in names]
    elif "error" in rb or "error" in rs:
        out += [missing(res, n, ["analyze@big", "analyze@few"], "") for n in names]
    else:
        x = rb["peak_mib"] / rs["peak_mib"]
        out.append(
            judge(
                names[0],
                x <= RSS_GROWTH,
                f"{x:.2f}× ({rs['peak_mib']:.0f} → {rb['peak_mib']:.0f} MiB)",
            )
        )
        out.append(judge(names[1], rb["peak_mib"] < RSS_LIMIT_MIB, f"{rb['peak_mib']:.0f} MiB"))
    name = f"`analyze` net: many loops ≤ {PER_LOOP:g}× few loops"
    a, b = res.net("analyze@many"), res.net("analyze@few")
    lf, lm = res.n_loops("analyze@few"), res.n_loops("analyze@many")
    if a and b:
        note = ""
        if lf is not None and lm is not None:
            note = f"; loops {lf:,} → {lm:,}" + (f" ({lm / lf:.0f}× more)" if lf else "")
        out.append(judge(name, a / b <= PER_LOOP, f"{a / b:.1f}× ({b:.2f} s → {a:.2f} s){note}"))
    else:
        out.append(missing(res, name, ["analyze@many", "analyze@few"], NOISE))
    return out


def section_machine(mach: dict[str, Any], ctx: dict[str, Any]) -> list[str]:
    la, other = ctx["load"], ctx["other_cpu"]
    loads = "; ".join(
        f"{label} {' / '.join(f'{x:.2f}' for x in la[k])}"
        for k, label in (("start", "at start"), ("rounds_start", "rounds began"), ("end", "ended"))
    )
    commit = f"{mach['pcaploop']}, commit `{mach['commit']}`"
    if mach["uncommitted"]:
        commit += f" + uncommitted changes in {mach['uncommitted']} file(s) under pcaploop/"
    rows = [
        ["CPU", f"{mach['cpu']} — {mach['cores']} cores ({mach['usable_cores']} usable)"],
        ["RAM", f"{mach['ram_gib']} GiB"],
        ["kernel", mach["kernel"]],
        ["Python", mach["python"]],
        ["numba / numpy / pandas", f"{mach['numba']} / {mach['numpy']} / {mach['pandas']}"],
        ["pcaploop", commit],
        ["tshark / capinfos", f"{mach['tshark'] or 'not installed'} / {mach['capinfos'] or '—'}"],
        ["load average (1 / 5 / 15 min)", loads],
        [
            "other processes during the rounds",
            f"{other['cores']:.2f} of {mach['cores']} cores on average"
            f" (hypervisor steal {other['steal']:.2f})",
        ],
    ]
    out = md_table(["", ""], rows)
    if ctx["changed"]:
        out += [
            "",
            "**The tree under test changed during the run:** "
            + "; ".join(ctx["changed"])
            + ". Rows measured before and after the change are mixed in the medians.",
        ]
    if other["cores"] >= BUSY_CORES:
        out += [
            "",
            f"**The machine was busy:** other processes used {other['cores']:.2f} cores on"
            " average while the rounds ran. Times are longer and noisier than on an idle"
            " machine; compare ratios within this run.",
        ]
    return out


def section_captures(caps: dict[str, Capture], ctx: dict[str, Any]) -> list[str]:
    rows = []
    for c in caps.values():
        st = c.meta.get("stats", {})
        d6 = st.get("loop_destinations_ipv6") or 0
        rows.append(
            [
                f"{c.label} (`{c.path.name}`)",
                f"{c.packets:,}",
                f"{c.meta.get('size', 0) / 1e9:.2f} GB",
                f"{st.get('avg_frame', 0):.0f} B",
                f"{st.get('replica_share', 0):.0%}",
                f"{st.get('looping_packets', 0):,}",
                fmt_n(st.get("loop_destinations")) + (f" ({d6:,} IPv6)" if d6 else ""),
                f"{st.get('time_exceeded', 0):,}",
            ]
        )
    head = ["capture", "packets", "size", "avg frame", "loop replicas", "looping packets"]
    out = md_table([*head, "loop destinations", "ICMP time-exceeded"], rows, "-rrrrrrr")
    if ctx["big_skipped"]:
        out += ["", f"{ctx['big_packets']:,}-packet capture: {ctx['big_skipped']}."]
    return out


COMMANDS = (
    ("cat", "`cat FILE > /dev/null`"),
    ("capinfos", "`capinfos FILE`"),
    ("tshark", "`tshark -r FILE -T fields -e …` (5 fields)"),
    ("decode", "library: `Loader.run` (work only)"),
    ("info", "`pcaploop info FILE`"),
    ("analyze", "`pcaploop analyze FILE --json OUT.json`"),
    ("report", "`pcaploop report FILE -o OUT.html`"),
)


def section_commands(res: Results, ctx: dict[str, Any]) -> list[str]:
    rows, star = [], False
    for method, label in COMMANDS:
        for c in MAIN:
            key, lab = f"{method}@{c}", res.caps[c].label
            if key not in res.jobs:
                rows.append([label, lab, "", "n/a", "", "", "", "", "", f"{method} not installed"])
                continue
            r = res.row(key)
            if "error" in r:
                rows.append(
                    [label, lab, str(r.get("n", "")), "n/a", "", "", "", "", "", r["error"]]
                )
                continue
            cat = res.net(f"cat@{c}")
            mark = "*" if r["extrapolated"] else ""
            star |= bool(mark)
            rows.append(
                [
                    label,
                    lab,
                    str(r["n"]),
                    fmt_s(r["seconds"]) + mark,
                    fmt_s(r["net"]) + mark,
                    fmt_rate(r["pps"]),
                    f"{r['net'] / cat:.1f}" if cat and r["pps"] else "n/a",
                    fmt_s(r["cpu"]) + mark,
                    f"{r['peak_mib']:.0f}",
                    "" if r["pps"] else NOISE,
                ]
            )
    head = ["method", "capture", "runs", "seconds", "net s", "packets/s", "× cat", "CPU s"]
    out = md_table([*head, "peak RSS MiB", "note"], rows, "--rrrrrrr-")
    out += ["", "tshark's fields: " + ", ".join(f"`{f}`" for f in TSHARK_FIELDS) + "."]
    if star:
        out += [
            f"\\* tshark read the first {ctx['prefix']:,} packets of each capture; its net time"
            " is extrapolated to the whole capture at the measured rate.",
        ]
    return out


def section_cold(res: Results) -> list[str]:
    rows = []
    for key, label in (
        ("python@tiny", "`python -c pass` (for scale)"),
        ("imports@tiny", "`python -c 'import numpy, pandas, numba'` (for scale)"),
        ("info@tiny", "`pcaploop info TINY`"),
        ("analyze@tiny", "`pcaploop analyze TINY --json OUT.json`"),
        ("report@tiny", "`pcaploop report TINY -o OUT.html`"),
    ):
        st = res.stats.get(key)
        if st is None:
            continue
        span = f"{st.wall_min:.3f}–{st.wall_max:.3f}"
        cells = [fmt_s(st.wall_s), span, str(st.n), f"{st.peak_mib:.0f}"]
        rows.append([label, *(["n/a", "", str(st.n), ""] if st.error else cells), st.error])
    return md_table(
        ["command", "median s", "min–max s", "runs", "peak RSS MiB", "note"], rows, "-rrrr-"
    )


def info_of(out_dir: Path, jobs: int, cap: str) -> Path:
    """Where ``info --jobs N --json`` writes its summary of a capture."""
    return out_dir / f"info_j{jobs}-{cap}.json"


def same_file(a: Path, b: Path) -> str:
    """Whether two outputs are byte for byte the same."""
    try:
        return "yes" if a.read_bytes() == b.read_bytes() else "**NO**"
    except OSError:
        return "n/a"


def report_of(out_dir: Path, jobs: int, cap: str) -> Path:
    """Where ``report --jobs N`` writes its report on a capture."""
    return out_dir / f"report_j{jobs}-{cap}.html"


def same_report(a: Path, b: Path) -> str:
    """Whether two reports are the same but for their footer (the time, the command)."""
    try:
        x, y = (
            [ln for ln in p.read_text().splitlines() if "Made by pcaploop" not in ln]
            for p in (a, b)
        )
    except OSError:
        return "n/a"
    return "yes" if x == y else "**NO**"


def section_jobs(res: Results, ctx: dict[str, Any]) -> list[str]:
    rows = []
    for m in JOB_COMMANDS:
        for c in MAIN:
            lab = res.caps[c].label
            if not ctx["jobs"][m]:
                rows.append([f"`pcaploop {m}`", lab, "n/a (no --jobs option)", "", "", "", ""])
                continue
            k1, k2 = f"{m}_j1@{c}", f"{m}_j2@{c}"
            r1, r2 = res.row(k1), res.row(k2)
            if "error" in r1 or "error" in r2:
                err = r1.get("error") or r2.get("error", "")
                rows.append([f"`pcaploop {m}`", lab, "n/a", "", "", "", err])
                continue
            note = ""
            if m == "analyze":
                l1, l2 = res.loops(k1), res.loops(k2)
                same = (
                    "n/a"
                    if not (l1 and l2)
                    else "yes"
                    if l1["digest"] == l2["digest"]
                    else "**NO**"
                )
                note = f"same JSON summary and loops: {same}"
            if m == "info":
                d = ctx["out_dir"]
                note = f"same JSON: {same_file(info_of(d, 1, c), info_of(d, 2, c))}"
            if m == "report":
                d = ctx["out_dir"]
                same = same_report(report_of(d, 1, c), report_of(d, 2, c))
                note = f"same HTML but for its footer: {same}"
            a, b = res.net(k1), res.net(k2)
            rows.append(
                [
                    f"`pcaploop {m}`",
                    lab,
                    fmt_s(r1["net"]),
                    fmt_s(r2["net"]),
                    f"{a / b:.2f}×" if a and b else "n/a",
                    f"{r1['peak_mib']:.0f} / {r2['peak_mib']:.0f}",
                    note,
                ]
            )
    head = ["command", "capture", "`--jobs 1` net s", "`--jobs 2` net s", "speed-up"]
    return md_table([*head, "peak RSS MiB (1 / 2)", "note"], rows, "--rrrr-")


def section_scale(res: Results, ctx: dict[str, Any]) -> list[str]:
    rows = []
    for c in ("few", "big"):
        if c not in res.caps:
            rows.append([f"{ctx['big_packets']:,}", "", "", "", "", ctx["big_skipped"]])
            continue
        r = res.row(f"analyze@{c}")
        n = f"{res.caps[c].packets:,}"
        if "error" in r:
            rows.append([n, "", "", "", "", r["error"]])
            continue
        loops = fmt_n(res.n_loops(f"analyze@{c}"))
        runs = f"{r['n']} run" + ("s" if r["n"] != 1 else "")
        rows.append([n, fmt_s(r["net"]), fmt_rate(r["pps"]), f"{r['peak_mib']:.0f}", loops, runs])
    return md_table(
        ["packets", "net s", "packets/s", "peak RSS MiB", "loops", "note"], rows, "rrrrr-"
    )


def section_loops(res: Results) -> list[str]:
    rows = []
    for c in MAIN:
        r, rr, lp = res.row(f"analyze@{c}"), res.row(f"report@{c}"), res.loops(f"analyze@{c}")
        st = res.caps[c].meta.get("stats", {})
        rows.append(
            [
                res.caps[c].label,
                fmt_n(st.get("loop_destinations")),
                fmt_n(lp["loops"]) if lp else "n/a",
                fmt_n(lp["listed"]) if lp else "n/a",
                fmt_n(lp["looping_packets"]) if lp else "n/a",
                fmt_s(r.get("net")),
                f"{r['peak_mib']:.0f}" if "peak_mib" in r else "n/a",
                fmt_s(rr.get("net")),
                r.get("error") or rr.get("error", ""),
            ]
        )
    head = ["capture", "loop destinations generated", "loops found (`summary.loops`)"]
    head += ["loops listed", "looping packets found", "analyze net s", "analyze peak RSS MiB"]
    out = md_table([*head, "report net s", "note"], rows, "-rrrrrrr-")
    nf, nm = res.net("analyze@few"), res.net("analyze@many")
    lf, lm = res.n_loops("analyze@few"), res.n_loops("analyze@many")
    rf, rm = res.net("report@few"), res.net("report@many")
    if lf and lm and lm > lf:
        out.append("")
        for name, f, m in (("analyze", nf, nm), ("report", rf, rm)):
            if f and m:
                per = (m - f) / (lm - lf) * 1e3
                cost = f"{per:.1f} ms per extra loop" if per > 0 else "no extra cost measurable"
                out.append(
                    f"`{name}` on many loops: {m / f:.1f}× the net time of few loops for"
                    f" {lm / lf:.0f}× the loops, {cost}."
                )
    return out


def render(res: Results, verdicts: list[Verdict], ctx: dict[str, Any], mach: dict[str, Any]) -> str:
    """RESULTS.md: what was run, on what, the tables and the verdicts."""
    rounds = f"{ctx['repeat']} round" + ("s" if ctx["repeat"] != 1 else "")
    opts = f" {ctx['options']}" if ctx["options"] else ""
    n_pass = sum(v.verdict == "PASS" for v in verdicts)
    n_fail = sum(v.verdict == "FAIL" for v in verdicts)
    L = [
        "# Benchmark results",
        "",
        "<!-- Written by benchmarks/bench.py; do not edit: run the script again. -->",
        "",
        f"Measured {ctx['date']} by `python benchmarks/bench.py{opts}`: {rounds}, each row the"
        f" median of its runs and the largest peak RSS; {ctx['elapsed_min']:.0f} min in all."
        " What each row measures: `benchmarks/README.md`.",
        "",
        "## Machine",
        "",
        *section_machine(mach, ctx),
        "",
        "## Captures",
        "",
        *section_captures(res.caps, ctx),
        "",
        "## Commands on the two captures",
        "",
        "*net* = the command on the capture minus the same command on the 10-packet capture"
        " (start-up); packets/s and × `cat` are of net seconds.",
        "",
        *section_commands(res, ctx),
        "",
        "## Cold start (10 packets)",
        "",
        *section_cold(res),
        "",
        "## Parallel work (`--jobs`)",
        "",
        *section_jobs(res, ctx),
        "",
        "## Memory at scale (`pcaploop analyze`, few loops)",
        "",
        *section_scale(res, ctx),
        "",
        "## Per-loop cost (few against many loops, same number of packets)",
        "",
        *section_loops(res),
        "",
        "## Targets",
        "",
        *md_table(
            ["target", "verdict", "measured"],
            [
                [v.target, f"**{v.verdict}**" if v.verdict == "FAIL" else v.verdict, v.measured]
                for v in verdicts
            ],
        ),
        "",
        f"{n_pass} passed, {n_fail} failed, {len(verdicts) - n_pass - n_fail} not applicable.",
        "",
    ]
    return "\n".join(L)


def write_atomic(path: Path, text: str) -> None:
    """Write through a temporary file in the same directory: never a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make it private
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# ----------------------------------------------------------------------------------------
# other load on the machine
# ----------------------------------------------------------------------------------------
BUSY_CORES = 0.25  # other processes' average use above which RESULTS.md says "busy"


def cpu_counters() -> tuple[float, float, float]:
    """(CPU seconds all processes used, hypervisor steal, this process and its children)."""
    tick = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iow, irq, soft, steal = (
        int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    t = os.times()
    ours = t.user + t.system + t.children_user + t.children_system
    return (user + nice + system + irq + soft) / tick, steal / tick, ours


def other_cpu(
    before: tuple[float, float, float], after: tuple[float, float, float], wall: float
) -> dict[str, float]:
    """Cores other processes kept busy on average: the machine's CPU time minus ours.

    Why: the load average counts this script's own child too and lags by
    minutes; this is what the measured commands competed with.
    """
    busy, steal, ours = (b - a for a, b in zip(before, after))
    w = max(wall, 1e-9)
    return {"cores": max(0.0, (busy - ours) / w), "steal": steal / w}


# ----------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------
def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="pcaploop benchmark: whole commands as a user runs them, side by side"
    )
    ap.add_argument("--quick", action="store_true", help="200 k-packet captures, 1 round, no 20 M")
    ap.add_argument("--repeat", type=int, help="rounds (median; default 3, --quick 1)")
    ap.add_argument("--packets", type=int, help="packets in each main capture (default 2,000,000)")
    ap.add_argument(
        "--prefix",
        type=int,
        default=200_000,
        help="packets tshark reads; its rate is extrapolated (default 200,000)",
    )
    big = ap.add_mutually_exclusive_group()
    big.add_argument(
        "--big",
        dest="big",
        action="store_true",
        default=None,
        help="run the 20 M-packet capture for the RSS check (default: when the disk has room,"
        " not with --quick)",
    )
    big.add_argument("--no-big", dest="big", action="store_false", help="do not")
    ap.add_argument(
        "--big-packets",
        type=int,
        default=20_000_000,
        help="packets in the big capture (default 20,000,000: ~12 GB)",
    )
    ap.add_argument(
        "--data-dir",
        default=os.environ.get("PCAPLOOP_BENCH_DIR")
        or os.path.join(tempfile.gettempdir(), "pcaploop-bench"),
        help="cache of generated captures (default $PCAPLOOP_BENCH_DIR, else pcaploop-bench"
        " in the temp dir)",
    )
    ap.add_argument("--json", help="also write every measurement to this JSON file")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    ap.add_argument(
        "--out",
        default=str(HERE / "RESULTS.md"),
        help="where the Markdown results go (default benchmarks/RESULTS.md)",
    )
    ap.add_argument(
        "--timeout", type=float, default=900.0, help="seconds before a command is killed (900)"
    )
    ap.add_argument(
        "--slow",
        type=float,
        default=60.0,
        help="a command slower than this many seconds is run in one round only (60)",
    )
    ap.add_argument(
        "--tree",
        default=str(REPO),
        help="the source tree whose pcaploop is measured (default: this checkout)",
    )
    a = ap.parse_args(argv)
    for name in ("repeat", "packets", "prefix", "big_packets"):
        v = getattr(a, name)
        if v is not None and v < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    return a


def options_text(a: argparse.Namespace) -> str:
    """The options that shape the numbers (paths left out: they are the machine's)."""
    parts = ["--quick"] if a.quick else []
    parts += [f"--{n} {getattr(a, n)}" for n in ("repeat", "packets") if getattr(a, n)]
    if a.prefix != 200_000:
        parts.append(f"--prefix {a.prefix}")
    if a.big is not None:
        parts.append("--big" if a.big else "--no-big")
    if a.big_packets != 20_000_000:
        parts.append(f"--big-packets {a.big_packets}")
    if Path(a.tree).resolve() != REPO:
        parts.append("--tree DIR")
    return " ".join(parts)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def make_captures(
    a: argparse.Namespace, data: Path, npk: int, kpre: int
) -> tuple[dict[str, Capture], str]:
    """Generate (or find cached) the captures; the big one only if wanted and room for it."""
    caps: dict[str, Capture] = {}
    for key, label, n, scanner in (
        ("tiny", "10 packets", 10, False),
        ("few", "few loops", npk, False),
        ("many", "many loops", npk, True),
    ):
        path = data / ("tiny-10.pcap" if key == "tiny" else f"{label.replace(' ', '-')}-{n}.pcap")
        t = time.perf_counter()
        meta = generate(path, n, scanner)
        caps[key] = Capture(key, label, path, n, meta)
        log(
            f"  {label}: {n:,} packets, {meta['size'] / 1e9:.2f} GB"
            f" ({time.perf_counter() - t:.1f} s)"
        )
    skipped = ""
    want = a.big if a.big is not None else not a.quick
    path = data / f"few-loops-{a.big_packets}.pcap"
    if not want:
        skipped = "skipped: --quick (add --big to run it)" if a.quick else "skipped: --no-big"
    elif not is_cached(path, a.big_packets):
        need = caps["few"].meta["size"] / npk * a.big_packets
        free = shutil.disk_usage(data).free
        if free < need + DISK_SPARE:
            skipped = (
                f"skipped: not enough disk (needs {need / 1e9:.1f} GB + {DISK_SPARE / 1e9:.0f} GB"
                f" spare, {free / 1e9:.1f} GB free)"
            )
    if skipped:
        log(f"  big: {skipped}")
    else:
        t = time.perf_counter()
        log(f"  {a.big_packets:,} packets (generated once, then cached) …")
        meta = generate(path, a.big_packets)
        caps["big"] = Capture(
            "big", f"{a.big_packets / 1e6:g} M packets", path, a.big_packets, meta
        )
        log(f"  {meta['size'] / 1e9:.2f} GB ({time.perf_counter() - t:.1f} s)")
    for c in MAIN:
        cap = caps[c]
        cap.prefix_packets = min(kpre, cap.packets)
        cap.prefix = cap.path
        if kpre < cap.packets:
            cap.prefix = prefix_file(cap.path, data / f"{cap.path.stem}-first{kpre}.pcap", kpre)
    return caps, skipped


def build_jobs(
    caps: dict[str, Capture], cli: list[str], ctx: dict[str, Any], out_dir: Path, k_cold: int
) -> dict[str, Job]:
    """Every command of the run, in the order a round runs them: each command's 10-packet
    baseline next to it, the two captures one after the other."""
    jobs: dict[str, Job] = {}
    py, me, tiny = sys.executable, str(Path(__file__).resolve()), caps["tiny"]

    def add(key: str, cmd: list[str], cap: str, n: int, **kw: Any) -> None:
        jobs[key] = Job(key, key.split("@")[0], cmd, cap, n, **kw)

    add("python@tiny", [py, "-c", "pass"], "tiny", 10, per_round=k_cold)
    add("imports@tiny", [py, "-c", "import numpy, pandas, numba"], "tiny", 10, per_round=k_cold)

    def family(
        method: str,
        make: Callable[[Path, str], list[str]],
        *,
        ours: bool = True,
        prefix: bool = False,
        tiny_rounds: int = 1,
        json_out: bool = False,
    ) -> None:
        """The command on the 10-packet capture (its baseline), then on both captures."""
        kw: dict[str, Any] = {"sample_tree": ours, "keep_stdout": ours or method == "capinfos"}
        jo = (lambda c: out_dir / f"{method}-{c}.json") if json_out else (lambda c: None)
        add(
            f"{method}@tiny",
            make(tiny.path, "tiny"),
            "tiny",
            10,
            per_round=tiny_rounds,
            json_out=jo("tiny"),
            **kw,
        )
        for c in MAIN:
            path, n = (
                (caps[c].prefix or caps[c].path, caps[c].prefix_packets)
                if prefix
                else (caps[c].path, caps[c].packets)
            )
            add(f"{method}@{c}", make(path, c), c, n, base=f"{method}@tiny", json_out=jo(c), **kw)

    family("cat", lambda p, _c: ["cat", str(p)], ours=False)
    if ctx["tools"]["capinfos"]:
        family("capinfos", lambda p, _c: ["capinfos", str(p)], ours=False)
    if ctx["tools"]["tshark"]:
        fields = [x for f in TSHARK_FIELDS for x in ("-e", f)]
        family(
            "tshark",
            lambda p, _c: ["tshark", "-n", "-r", str(p), "-T", "fields", *fields],
            ours=False,
            prefix=True,
        )
    for c in MAIN:
        add(
            f"decode@{c}",
            [py, me, "--child", "decode", str(caps[c].path), str(tiny.path)],
            c,
            caps[c].packets,
        )
    family("info", lambda p, _c: [*cli, "info", str(p)], tiny_rounds=k_cold)
    family(
        "analyze",
        lambda p, c: [*cli, "analyze", str(p), "--json", str(out_dir / f"analyze-{c}.json")],
        tiny_rounds=k_cold,
        json_out=True,
    )
    family("report", lambda p, c: [*cli, "report", str(p), "-o", str(out_dir / f"report-{c}.html")])
    for m in JOB_COMMANDS:
        if not ctx["jobs"][m]:
            continue
        for j in (1, 2):

            def make(p: Path, c: str, m: str = m, j: int = j) -> list[str]:
                extra = {
                    "analyze": ["--json", str(out_dir / f"{m}_j{j}-{c}.json")],
                    "info": ["--json", str(info_of(out_dir, j, c))],
                    "report": ["-o", str(report_of(out_dir, j, c))],
                }.get(m, [])
                return [*cli, m, str(p), "--jobs", str(j), *extra]

            family(f"{m}_j{j}", make, json_out=m == "analyze")
    if "big" in caps:
        jo = out_dir / "analyze-big.json"
        add(
            "analyze@big",
            [*cli, "analyze", str(caps["big"].path), "--json", str(jo)],
            "big",
            caps["big"].packets,
            base="analyze@tiny",
            sample_tree=True,
            once=True,
            json_out=jo,
        )
    return jobs


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return _child(argv[1:])
    if argv[:1] == ["--wrap"]:
        return _wrap(argv[1:])
    a = parse_args(argv)
    t_start, load_start = time.perf_counter(), os.getloadavg()
    npk = a.packets or (200_000 if a.quick else 2_000_000)
    repeat = a.repeat or (1 if a.quick else 3)
    kpre = min(a.prefix, npk)
    tree = Path(a.tree).resolve()
    env = child_env(tree)
    data = Path(a.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    mach = machine(tree)
    log(f"captures in {data} …")
    caps, big_skipped = make_captures(a, data, npk, kpre)
    cli = cli_command()
    ctx: dict[str, Any] = {
        "options": options_text(a),
        "repeat": repeat,
        "packets": npk,
        "prefix": kpre,
        "big_packets": a.big_packets,
        "big_skipped": big_skipped,
        "jobs": {m: has_option(cli, m, "--jobs", env) for m in JOB_COMMANDS},
        "tools": {t: bool(shutil.which(t)) for t in ("capinfos", "tshark")},
    }
    out_dir = Path(tempfile.mkdtemp(prefix="pcaploop-bench-out-"))
    ctx["out_dir"] = out_dir  # where the reports compared by section_jobs are
    try:
        jobs = build_jobs(caps, cli, ctx, out_dir, max(1, math.ceil(COLD_SAMPLES / repeat)))
        log("warming the page cache …")
        for c in caps.values():  # the big capture first: the others must stay in the cache
            for p in {c.path, c.prefix or c.path}:
                warm(p)
        log("warm-up: each command once on 10 packets (loads or compiles the numba cache) …")
        for key, job in jobs.items():
            if key.endswith("@tiny") and job.method not in REFERENCE:
                w = measure(job.cmd, env, timeout=a.timeout)
                if w.rc != 0:
                    log(f"  {job.method} on 10 packets: {w.error}")
        w = measure(
            jobs["decode@few"].cmd[:-2] + [str(caps["tiny"].path)] * 2, env, timeout=a.timeout
        )
        if w.rc != 0:
            log(f"  Loader.run: {w.error}")
        load_rounds, cpu0, t0 = os.getloadavg(), cpu_counters(), time.perf_counter()
        run_rounds(jobs, env, repeat, a.timeout, a.slow, log)
        ctx["other_cpu"] = other_cpu(cpu0, cpu_counters(), time.perf_counter() - t0)
        ctx["changed"] = tree_changes(mach, tree_state(tree))
        ctx["load"] = {"start": load_start, "rounds_start": load_rounds, "end": os.getloadavg()}
        ctx["date"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        ctx["elapsed_min"] = (time.perf_counter() - t_start) / 60
        res = Results(jobs, caps)
        verdicts = targets(res, ctx)
        text = render(res, verdicts, ctx, mach)
        print(text)
        write_atomic(Path(a.out), text)
        log(f"wrote {a.out}")
        if a.json:
            dump = {
                "context": ctx,
                "machine": mach,
                "captures": {k: {"file": c.path.name, **c.meta} for k, c in caps.items()},
                "rows": {k: res.row(k) for k in jobs},
                "loops": {
                    k: {kk: v for kk, v in lp.items() if kk != "digest"}
                    for k in jobs
                    if (lp := res.loops(k))
                },
                "runs": {
                    k: {
                        "command": [Path(x).name for x in j.cmd],
                        "samples": [vars(s) for s in j.samples],
                    }
                    for k, j in jobs.items()
                },
                "targets": [vars(v) for v in verdicts],
            }
            write_atomic(Path(a.json), json.dumps(dump, indent=1, default=str) + "\n")
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    return 1 if a.strict and any(v.verdict == "FAIL" for v in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
