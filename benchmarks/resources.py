#!/usr/bin/env python3
"""Resource bounds (issue 16): no input may make memory grow faster than the file, or time
faster than linearly.

    python benchmarks/resources.py            # N = 100,000 and 10·N records per input
    python benchmarks/resources.py --quick    # N = 20,000
    python benchmarks/resources.py --strict   # exit 1 when a check fails

Why adversarial inputs: the benchmark captures of ``bench.py`` look like real
traffic, and a decoder or an analysis that is linear on them can still be
quadratic, or hold every record, on a capture built to hit one code path.
Captures come from customers' tickets, so every input is someone's input.
Three are built here, each at a small and a ten times larger size:

* *identical*: every packet the same bytes (same addresses, IP ID, TTL and
  payload), so one fingerprint holds every record: what groups packets by
  fingerprint, or compares each copy with the others, meets its worst case;
* *tiny malformed*: records shorter than an Ethernet header, so every record
  is skipped: the accounting of skipped records must be as cheap as decoding;
* *idbs*: a pcapng with as many interface description blocks as packets, one
  packet per interface: every interface is a capture point of its own, so
  whatever costs per capture point is paid once per record.

Why whole processes and ``os.wait4``: the bound is what a user's machine
pays, so each command runs as a child and its peak RSS is the kernel's
``ru_maxrss`` for it.  Linux carries the RSS high-water mark of a forking
process into its child, so this script never grows: the captures are
generated, and the JSON outputs read, by children of their own
(``--child gen`` and ``--child tally``), and numpy is imported only there.

Why net of start-up: interpreter start and imports are a constant; the ratio
of two sizes only means something for the cost of the records.  Every
command also runs on a 10-packet capture (the cold start) and on a capture
just past pcaploop's JIT threshold (the cold start plus numba's load, which
every larger input pays once); the checks subtract the latter, since left in
the small capture's time that constant would flatter the ratio.

Results go to ``benchmarks/RESOURCES.md``, which only this script writes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import write_atomic  # beside this script: one atomic writer for both reports

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MIB = 1024 * 1024
MB = 1_000_000

# --- sizes ---------------------------------------------------------------------------------
N_DEFAULT = 100_000  # records in the small capture of each input
N_QUICK = 20_000
GROWTH = 10  # the large capture has GROWTH times the small one's records
#: the idbs input is the expensive one per record: its small capture has N / GROWTH
#: interfaces, its large one N
IDB_DIVISOR = GROWTH

# --- the checks (issue 16) -----------------------------------------------------------------
TIME_SLACK = 1.5  # net time may grow by the record ratio × this (linear, with noise)
RSS_PER_FILE_BYTE = 4  # peak RSS may grow by this many bytes per byte the file grew …
RSS_ALLOWANCE_MIB = 64  # … plus this much (allocator and import noise)
#: a small capture's net time below this is start-up noise, not a cost; the ratio is taken
#: against this floor instead (and the table says so)
NET_FLOOR_S = 0.1
TIMEOUT_S = 600.0
#: a 1-minute load average from which RESOURCES.md calls the machine busy
BUSY_LOAD = 0.5

# --- repetitions ---------------------------------------------------------------------------
STARTUP_RUNS = 5  # runs of each start-up reference: their median is subtracted
RUNS = 3  # runs of each command on each capture: the median time, the largest peak RSS
WARM_CHUNK = 1 << 20  # bytes read at a time to warm the page cache (this process stays small)

# --- what the captures hold ----------------------------------------------------------------
GEN_VERSION = 1  # bump when the bytes change: the cache key in each capture's sidecar
LINKTYPE_ETHERNET = 1
SNAPLEN = 65535
T0_S = 1_767_225_600  # the first record's time: 2026-01-01 00:00:00 UTC
STEP_US = 10  # records are this many microseconds apart
HOST_MAC = bytes.fromhex("02005e100001")  # locally administered
GUEST_MAC = bytes.fromhex("02005e100065")
SRC_IP = bytes([192, 0, 2, 10])  # RFC 5737 documentation addresses only
DST_IP = bytes([203, 0, 113, 20])
ORDINARY_DST = bytes([198, 51, 100, 30])
TTL = 64
UDP = 17
SPORT = 40_000
DPORT = 9  # discard
PAYLOAD = b"pcaploop-resource!"  # 18 bytes: a 60-byte frame, a multiple of 4 for pcapng
ETH_HDR = 14
IP_HDR = 20
UDP_HDR = 8
TINY_MAX = ETH_HDR - 1  # the longest tiny record is still shorter than an Ethernet header
TINY_STRIDE = 5  # coprime with TINY_MAX: lengths 1..TINY_MAX, in a scrambled order
ORDINARY_PACKETS = 10
ORDINARY_STEP_US = 1000
#: the compiled start-up reference: ordinary packets of this payload (full-size frames), just
#: enough of them for the file to pass pcaploop's JIT threshold
MTU_PAYLOAD = 1472
#: pcaploop._jit.ACTIVATE_BYTES when it cannot be read from the tree under test
JIT_BYTES_FALLBACK = 256 << 10
REC_HDR = 16  # classic pcap record header
EPB_HDR = 28  # pcapng EPB: type, length, interface, ts high, ts low, captured, original
SHB = 0x0A0D0D0A
IDB = 1
EPB = 6
BOM = 0x1A2B3C4D


# ----------------------------------------------------------------------------------------
# the captures (built in a child: numpy would raise this process's RSS, see the docstring)
# ----------------------------------------------------------------------------------------
def ones_sum(data: bytes) -> int:
    """The unfolded sum of big-endian 16-bit words (RFC 1071), before the complement."""
    return sum(struct.unpack(f"!{len(data) // 2}H", data))


def fold(s: int) -> int:
    """The IPv4 header checksum of a word sum."""
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ip_header(ip_id: int, dst: bytes, l4_len: int, csum: int | None = None) -> bytes:
    """An IPv4 header (no options, no DF) with a correct checksum unless one is given."""
    tot = IP_HDR + l4_len
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, tot, ip_id, 0, TTL, UDP, 0, SRC_IP, dst)
    c = fold(ones_sum(hdr)) if csum is None else csum
    return hdr[:10] + struct.pack("!H", c) + hdr[12:]


def frame(
    ip_id: int = 0, sport: int = SPORT, payload: bytes = PAYLOAD, dst: bytes = DST_IP
) -> bytes:
    """One Ethernet/IPv4/UDP frame, host → guest; UDP checksum 0 (none, valid for IPv4)."""
    l4 = struct.pack("!HHHH", sport, DPORT, UDP_HDR + len(payload), 0) + payload
    return GUEST_MAC + HOST_MAC + b"\x08\x00" + ip_header(ip_id, dst, len(l4)) + l4


def classic_header() -> bytes:
    """A classic pcap file header: little-endian, microseconds, Ethernet."""
    return struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET)


def gen_identical(n: int) -> list[bytes]:
    """n copies of one frame, STEP_US apart: one fingerprint for every record."""
    import numpy as np

    f = frame()
    rec = np.frombuffer(struct.pack("<IIII", 0, 0, len(f), len(f)) + f, dtype=np.uint8)
    m = np.tile(rec, (n, 1))
    us = np.arange(n, dtype=np.uint64) * np.uint64(STEP_US)
    m[:, 0:4] = (np.uint64(T0_S) + us // np.uint64(MB)).astype("<u4").view(np.uint8).reshape(n, 4)
    m[:, 4:8] = (us % np.uint64(MB)).astype("<u4").view(np.uint8).reshape(n, 4)
    return [classic_header(), m.tobytes()]


def gen_tiny(n: int) -> list[bytes]:
    """n records of 1..TINY_MAX bytes (the start of an Ethernet frame), STEP_US apart."""
    import numpy as np

    full = np.frombuffer(frame(), dtype=np.uint8)
    idx = np.arange(n, dtype=np.int64)
    length = 1 + (idx * TINY_STRIDE) % TINY_MAX
    end = np.cumsum(REC_HDR + length)
    start = end - (REC_HDR + length)
    buf = np.zeros(int(end[-1]), dtype=np.uint8)
    hdr = np.empty((n, REC_HDR), dtype=np.uint8)
    us = idx.astype(np.uint64) * np.uint64(STEP_US)
    hdr[:, 0:4] = (np.uint64(T0_S) + us // np.uint64(MB)).astype("<u4").view(np.uint8).reshape(n, 4)
    hdr[:, 4:8] = (us % np.uint64(MB)).astype("<u4").view(np.uint8).reshape(n, 4)
    hdr[:, 8:12] = length.astype("<u4").view(np.uint8).reshape(n, 4)
    hdr[:, 12:16] = hdr[:, 8:12]
    buf[start[:, None] + np.arange(REC_HDR)] = hdr
    within = np.arange(int(length.sum()), dtype=np.int64) - np.repeat(
        np.cumsum(length) - length, length
    )
    buf[np.repeat(start + REC_HDR, length) + within] = full[within]
    return [classic_header(), buf.tobytes()]


def gen_idbs(n: int) -> list[bytes]:
    """A pcapng with n Ethernet interfaces, then one distinct valid packet on each.

    The packets differ in IP ID and UDP source port, so the only thing pushed
    to its limit is the number of capture points.
    """
    import numpy as np

    f = frame()
    pad = b"\0" * (-len(f) % 4)
    epb_len = EPB_HDR + len(f) + len(pad) + 4
    shb = struct.pack("<IIIHHqI", SHB, 28, BOM, 1, 0, -1, 28)
    idb = struct.pack("<IIHHII", IDB, 20, LINKTYPE_ETHERNET, 0, SNAPLEN, 20)
    epb = struct.pack("<IIIIIII", EPB, epb_len, 0, 0, 0, len(f), len(f)) + f + pad
    m = np.tile(np.frombuffer(epb + struct.pack("<I", epb_len), dtype=np.uint8), (n, 1))
    i = np.arange(n, dtype=np.uint64)
    ts = np.uint64(T0_S * MB) + i * np.uint64(STEP_US)
    m[:, 8:12] = i.astype("<u4").view(np.uint8).reshape(n, 4)
    m[:, 12:16] = (ts >> np.uint64(32)).astype("<u4").view(np.uint8).reshape(n, 4)
    m[:, 16:20] = (ts & np.uint64(0xFFFFFFFF)).astype("<u4").view(np.uint8).reshape(n, 4)
    ip0 = EPB_HDR + ETH_HDR
    ip_id = i & np.uint64(0xFFFF)
    base = ones_sum(ip_header(0, DST_IP, UDP_HDR + len(PAYLOAD), csum=0))
    s = np.uint64(base) + ip_id
    for _ in range(2):
        s = (s & np.uint64(0xFFFF)) + (s >> np.uint64(16))
    csum = ~s & np.uint64(0xFFFF)
    sport = np.uint64(SPORT) + (i >> np.uint64(16))
    m[:, ip0 + 4 : ip0 + 6] = ip_id.astype(">u2").view(np.uint8).reshape(n, 2)
    m[:, ip0 + 10 : ip0 + 12] = csum.astype(">u2").view(np.uint8).reshape(n, 2)
    l4 = ip0 + IP_HDR
    m[:, l4 : l4 + 2] = sport.astype(">u2").view(np.uint8).reshape(n, 2)
    return [shb, idb * n, m.tobytes()]


def gen_ordinary(n: int, big: bool = False) -> list[bytes]:
    """n distinct UDP packets (full-size frames when ``big``): the start-up references."""
    out = [classic_header()]
    for k in range(n):
        body = (PAYLOAD * (MTU_PAYLOAD // len(PAYLOAD) + 1))[:MTU_PAYLOAD] if big else PAYLOAD
        payload = body[: len(body) - 10 + k % 10]
        f = frame(ip_id=k + 1, sport=SPORT + k % 20_000, payload=payload, dst=ORDINARY_DST)
        us = k * ORDINARY_STEP_US
        out.append(struct.pack("<IIII", T0_S + us // MB, us % MB, len(f), len(f)) + f)
    return out


def gen_ordinary_big(n: int) -> list[bytes]:
    """n distinct full-size UDP packets: the compiled start-up reference."""
    return gen_ordinary(n, big=True)


GENERATORS = {
    "identical": gen_identical,
    "tiny": gen_tiny,
    "idbs": gen_idbs,
    "ordinary": gen_ordinary,
    "ordinary-big": gen_ordinary_big,
}


def _child(argv: list[str]) -> int:
    """``--child gen KIND N PATH`` writes a capture; ``--child tally FILE`` prints counts."""
    if argv[:1] == ["gen"] and len(argv) == 4:
        kind, n, path = argv[1], int(argv[2]), Path(argv[3])
        parts = GENERATORS[kind](n)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                for p in parts:
                    f.write(p)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make it private
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return 0
    if argv[:1] == ["tally"] and len(argv) == 2:
        print(json.dumps(tally(json.loads(Path(argv[1]).read_text()))))
        return 0
    raise SystemExit(f"unknown child {argv!r}")


def tally(doc: dict[str, Any]) -> dict[str, Any]:
    """The accounting in a command's JSON, summed over its capture points."""
    caps = doc.get("captures") or []
    skipped: dict[str, int] = {}
    for c in caps:
        for reason, k in (c.get("skipped") or {}).items():
            skipped[reason] = skipped.get(reason, 0) + int(k)
    summary = doc.get("summary") or {}
    return {
        "captures": len(caps),
        "records": sum(int(c.get("records") or 0) for c in caps),
        "decoded": sum(int(c.get("decoded") or 0) for c in caps),
        "skipped": skipped,
        "loops": summary.get("loops"),
        "partial": doc.get("partial"),
        "warnings": len(doc.get("warnings") or []),
    }


# ----------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Input:
    """One adversarial shape of capture."""

    key: str
    title: str
    what: str
    suffix: str
    divisor: int = 1  # the small capture holds N / divisor records

    def records(self, n: int, size: str) -> int:
        small = n // self.divisor
        return small * GROWTH if size == "large" else small


INPUTS = (
    Input(
        "identical",
        "identical packets",
        "Ethernet/IPv4/UDP packets that are all the same bytes (addresses, IP ID 0, TTL 64,"
        " payload): one fingerprint for every record. Classic pcap, µs, "
        f"{STEP_US} µs apart.",
        "pcap",
    ),
    Input(
        "tiny",
        "tiny malformed records",
        f"records of 1–{TINY_MAX} bytes, shorter than an Ethernet header: every record is"
        " skipped. Classic pcap, LINKTYPE_ETHERNET.",
        "pcap",
    ),
    Input(
        "idbs",
        "one interface per packet",
        "a pcapng with as many interface description blocks as packets, then one enhanced"
        " packet block per interface, each a distinct valid Ethernet/IPv4/UDP frame: every"
        " packet is a capture point of its own.",
        "pcapng",
        divisor=IDB_DIVISOR,
    ),
)
SIZES = ("small", "large")
COMMANDS = ("info", "analyze")
COLD, COMPILED = "cold", "compiled"  # the two start-up references
REFS = (COLD, COMPILED)
REF_TITLES = {COLD: "cold", COMPILED: "compiled"}


@dataclass
class Capture:
    path: Path
    records: int

    @property
    def size(self) -> int:
        return self.path.stat().st_size


def make_capture(data: Path, kind: str, records: int, suffix: str) -> Capture:
    """The capture, generated by a child unless the cache holds one with the same key."""
    path = data / f"{kind}-{records}.{suffix}"
    side = path.with_name(path.name + ".json")
    key = {"generator_version": GEN_VERSION, "kind": kind, "records": records}
    with contextlib.suppress(OSError, ValueError):
        if path.is_file() and json.loads(side.read_text()) == key:
            return Capture(path, records)
    t = time.perf_counter()
    me = [sys.executable, str(Path(__file__).resolve())]
    subprocess.run([*me, "--child", "gen", kind, str(records), str(path)], check=True)
    side.write_text(json.dumps(key) + "\n")
    log(f"  generated {path.name} in {time.perf_counter() - t:.1f} s")
    return Capture(path, records)


# ----------------------------------------------------------------------------------------
# one measurement
# ----------------------------------------------------------------------------------------
@dataclass
class Run:
    """One child process, to its end."""

    wall_s: float
    rss_mib: float  # ru_maxrss from wait4
    rc: int
    timed_out: bool
    stderr: str


def measure(cmd: Sequence[str], env: dict[str, str], out: Path | None, timeout: float) -> Run:
    """Run cmd with stdout to ``out`` (or /dev/null): wall time, peak RSS, exit code.

    ``os.wait4`` on the child gives its own ``ru_maxrss``, exact for a single
    process (pcaploop starts no workers).  The child has a session of its own,
    so a timeout kills it and anything it started.
    """
    err_fd, err_path = tempfile.mkstemp(prefix="pcaploop-resources-err-")
    done = threading.Event()
    lock = threading.Lock()
    timed_out = threading.Event()
    with (
        open(out, "wb") if out else open(os.devnull, "wb") as stdout,
        os.fdopen(err_fd, "w+b") as stderr,
    ):
        t = time.perf_counter()
        p = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env=env,
            cwd=tempfile.gettempdir(),
            start_new_session=True,
        )

        def kill() -> None:
            with lock:
                if done.is_set():
                    return
                timed_out.set()
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)

        killer = threading.Timer(timeout, kill)
        killer.start()
        try:
            _, status, ru = os.wait4(p.pid, 0)
        finally:
            with lock:
                done.set()
            killer.cancel()
        wall = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        stderr.seek(0)
        text = stderr.read()[-20_000:].decode(errors="replace")
    os.unlink(err_path)
    return Run(wall, ru.ru_maxrss / 1024, p.returncode, timed_out.is_set(), text)


@dataclass
class Row:
    """The runs of one command on one capture."""

    input: str
    size: str
    command: str
    capture: Capture
    runs: list[Run] = field(default_factory=list)
    counts: dict[str, Any] | None = None  # tally() of the JSON output, when there was one

    @property
    def wall_s(self) -> float:
        return statistics.median(r.wall_s for r in self.runs)

    @property
    def rss_mib(self) -> float:
        return max(r.rss_mib for r in self.runs)

    @property
    def rc(self) -> int:
        return self.runs[-1].rc

    @property
    def timed_out(self) -> bool:
        return any(r.timed_out for r in self.runs)

    @property
    def stderr_lines(self) -> list[str]:
        return [ln for ln in self.runs[-1].stderr.splitlines() if ln.strip()]


def warm(path: Path) -> None:
    """Read a file once, so every command finds it in the page cache."""
    buf = bytearray(WARM_CHUNK)
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass


def read_counts(path: Path, timeout: float) -> dict[str, Any] | None:
    """tally() of a JSON output, computed by a child (a big JSON would grow this process)."""
    me = [sys.executable, str(Path(__file__).resolve())]
    try:
        p = subprocess.run(
            [*me, "--child", "tally", str(path)], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return None
    if p.returncode != 0:
        return None
    with contextlib.suppress(ValueError):
        d = json.loads(p.stdout)
        return d if isinstance(d, dict) else None
    return None


# ----------------------------------------------------------------------------------------
# the machine
# ----------------------------------------------------------------------------------------
def first_line(cmd: Sequence[str], env: dict[str, str] | None = None) -> str:
    try:
        out = subprocess.run(
            list(cmd), capture_output=True, text=True, timeout=120, env=env, cwd=REPO
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.strip().splitlines()[0] if out.strip() else ""


def machine(cli: list[str], env: dict[str, str]) -> dict[str, Any]:
    """What the numbers were measured on, and which pcaploop."""
    cpu = platform.processor() or "?"
    with contextlib.suppress(OSError):
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                cpu = ln.split(":", 1)[1].strip()
                break
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    changed = subprocess.run(
        ["git", "status", "--porcelain"], capture_output=True, text=True, cwd=REPO
    ).stdout.splitlines()
    under = [c for c in changed if c[3:].startswith("pcaploop/")]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable": usable,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "pcaploop": first_line([*cli, "--version"], env) or "?",
        "commit": first_line(["git", "rev-parse", "--short", "HEAD"]) or "not a git checkout",
        "dirty": bool(changed),
        "changed": len(changed),
        "changed_pcaploop": len(under),
    }


def cli_command() -> list[str]:
    """The console script beside this interpreter; ``python -m pcaploop`` when there is none."""
    exe = Path(sys.executable).parent / "pcaploop"
    if exe.is_file() and os.access(exe, os.X_OK):
        return [str(exe)]
    return [sys.executable, "-m", "pcaploop"]


def jit_threshold(env: dict[str, str]) -> int:
    """pcaploop's ``ACTIVATE_BYTES``: from this size of input on, it loads numba.

    Read by a child, so that importing pcaploop never grows this process.
    """
    code = "from pcaploop._jit import ACTIVATE_BYTES as b; print(b)"
    try:
        return int(first_line([sys.executable, "-c", code], env))
    except ValueError:
        return JIT_BYTES_FALLBACK


def child_env() -> dict[str, str]:
    """This checkout first on the path; a pinned fingerprint key, so runs are repeatable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    env.setdefault("PCAPLOOP_FP_KEY", "000102030405060708090a0b0c0d0e0f")
    return env


def own_hwm_mib() -> float:
    """This process's RSS high-water mark: the floor under every child's ru_maxrss."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for ln in Path("/proc/self/status").read_text().splitlines():
            if ln.startswith("VmHWM:"):
                return int(ln.split()[1]) / 1024
    return float("nan")


# ----------------------------------------------------------------------------------------
# the checks
# ----------------------------------------------------------------------------------------
@dataclass
class Check:
    input: str
    command: str
    check: str
    limit: str
    measured: str
    verdict: str  # PASS, FAIL or N/A


def expected_exit(inp: str, command: str, row: Row) -> tuple[bool, str]:
    """Whether the exit is the expected one, and the rule.

    Every record of the tiny input is skipped: ``info`` reports that (exit
    0); ``analyze`` may also refuse to analyse nothing, but only as one
    ``Error:`` line with exit 2, never a traceback.
    """
    if row.timed_out:
        return False, "0"
    if inp == "tiny" and command == "analyze":
        one_error = len(row.stderr_lines) == 1 and row.stderr_lines[0].startswith("Error:")
        return row.rc == 0 or (row.rc == 2 and one_error), "0, or 2 with one `Error:` line"
    return row.rc == 0, "0"


def net(row: Row, startup: dict[str, float]) -> float:
    """The row's wall time minus the same command's start-up."""
    return row.wall_s - startup[row.command]


def judge(
    rows: dict[tuple[str, str, str], Row], startup: dict[str, float], jit_bytes: int
) -> list[Check]:
    """Every check of issue 16, per input and command.

    Times are net of the *compiled* start-up: numba's load is a constant
    that only captures above the JIT threshold pay, and left in the small
    capture's time it would flatter the ratio.
    """
    out: list[Check] = []
    for inp in INPUTS:
        for cmd in COMMANDS:
            s, g = rows[inp.key, "small", cmd], rows[inp.key, "large", cmd]
            below = (
                " (small capture below the JIT threshold: decoded without numba)"
                if s.capture.size < jit_bytes <= g.capture.size
                else ""
            )
            # time: linear, with slack
            ratio_rec = g.capture.records / s.capture.records
            limit = ratio_rec * TIME_SLACK
            ns, ng = net(s, startup), net(g, startup)
            rule = f"≤ {limit:g}× small (small at least {NET_FLOOR_S:g} s)"
            if g.timed_out or s.timed_out:
                out.append(Check(inp.key, cmd, "net time large ÷ small", rule, "timed out", "FAIL"))
            else:
                if ns >= NET_FLOOR_S:
                    meas = f"{ng / ns:.1f}× ({ns:.3f} s → {ng:.3f} s)"
                else:  # the small capture's cost is within start-up noise: bound by the floor
                    meas = (
                        f"large {ng:.3f} s ({ng / NET_FLOOR_S:.1f}× the floor; small {ns:.3f} s,"
                        " below it)"
                    )
                out.append(
                    Check(
                        inp.key,
                        cmd,
                        "net time large ÷ small",
                        rule,
                        meas + below,
                        "PASS" if ng <= limit * max(ns, NET_FLOOR_S) else "FAIL",
                    )
                )
            # memory: no faster than the file
            grow_mib = (g.capture.size - s.capture.size) / MIB
            allowed = grow_mib * RSS_PER_FILE_BYTE + RSS_ALLOWANCE_MIB
            d = g.rss_mib - s.rss_mib
            timed = g.timed_out or s.timed_out
            out.append(
                Check(
                    inp.key,
                    cmd,
                    "peak RSS large − small",
                    f"≤ {RSS_PER_FILE_BYTE} × {grow_mib:.1f} + {RSS_ALLOWANCE_MIB} ="
                    f" {allowed:.0f} MiB",
                    f"{d:+.0f} MiB ({s.rss_mib:.0f} → {g.rss_mib:.0f} MiB)"
                    + (" (killed at the timeout: a lower bound)" if timed else "")
                    + below,
                    "PASS" if d <= allowed and not timed else "FAIL",
                )
            )
            # exit
            oks = [expected_exit(inp.key, cmd, r) for r in (s, g)]
            meas = " / ".join("timed out" if r.timed_out else str(r.rc) for r in (s, g))
            out.append(
                Check(
                    inp.key,
                    cmd,
                    "exit (small / large)",
                    oks[0][1],
                    meas,
                    "PASS" if all(ok for ok, _ in oks) else "FAIL",
                )
            )
            # accounting
            parts, verdicts = [], []
            for r in (s, g):
                c = r.counts
                if c is None:  # nothing to count; the exit check judges why
                    parts.append(f"no JSON (exit {'timed out' if r.timed_out else r.rc})")
                    verdicts.append("N/A")
                    continue
                sk = sum(c["skipped"].values())
                ok = c["records"] == c["decoded"] + sk == r.capture.records
                parts.append(
                    f"{c['records']:,} = {c['decoded']:,} + {sk:,}"
                    f" {'=' if ok else '≠'} {r.capture.records:,}"
                )
                verdicts.append("PASS" if ok else "FAIL")
            v = "FAIL" if "FAIL" in verdicts else "PASS" if "PASS" in verdicts else "N/A"
            out.append(
                Check(
                    inp.key,
                    cmd,
                    "records = decoded + skipped = generated",
                    "exact",
                    "; ".join(parts),
                    v,
                )
            )
    return out


# ----------------------------------------------------------------------------------------
# the report
# ----------------------------------------------------------------------------------------
def md_table(head: Sequence[str], rows: Sequence[Sequence[str]], right: str = "") -> list[str]:
    """A Markdown table; ``right`` has an 'r' for each right-aligned column."""
    align = ["---:" if right[i : i + 1] == "r" else "---" for i in range(len(head))]
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    return out + ["| " + " | ".join(r) + " |" for r in rows]


def fmt_s(x: float) -> str:
    return f"{x:.3f}" if abs(x) < 10 else f"{x:.1f}"


def notes(row: Row) -> str:
    """What else the run said: loops found, warnings, stderr, a timeout."""
    if row.timed_out:
        return "killed at the timeout"
    bits = []
    c = row.counts
    if c is not None:
        if c.get("loops") is not None:
            bits.append(f"loops {c['loops']:,}")
        if c.get("warnings"):
            bits.append(f"{c['warnings']} warning(s)")
        if c.get("partial"):
            bits.append("partial")
    err = row.stderr_lines
    if err:
        first = err[0].replace("|", "\\|")[:140]
        more = f" (+{len(err) - 1} more lines)" if len(err) > 1 else ""
        bits.append(f"stderr: `{first}`{more}")
    return "; ".join(bits)


def render(
    rows: dict[tuple[str, str, str], Row],
    cat: dict[tuple[str, str], Run],
    startup_rows: dict[tuple[str, str], Row],
    startup: dict[str, dict[str, float]],
    checks: list[Check],
    ctx: dict[str, Any],
) -> str:
    mach = ctx["machine"]
    L = [
        "# Resource bounds",
        "",
        "<!-- Written by benchmarks/resources.py; do not edit by hand, run the script. -->",
        "",
        "Issue 16: no input may make memory grow faster than the file, or time faster than"
        " linearly. This measures `pcaploop info` and `pcaploop analyze` as whole processes"
        " on three adversarial captures, each at two sizes ten times apart, and checks that"
        " the net time (minus the compiled start-up, below) grows no faster than the"
        f" records (× {TIME_SLACK:g} for noise), that peak RSS grows by at most"
        f" {RSS_PER_FILE_BYTE} bytes per byte of file plus {RSS_ALLOWANCE_MIB} MiB, that the"
        " exit code is the expected one, and that every record is accounted for. Peak RSS"
        " is the child's `ru_maxrss` (`os.wait4`); `cat FILE > /dev/null` is the read limit."
        " See benchmarks/README.md, *Resource bounds*.",
        "",
        f"Run {ctx['date']}, {ctx['elapsed_min']:.1f} min"
        + (f", options `{ctx['options']}`" if ctx["options"] else "")
        + ".",
        "",
        "## Machine",
        "",
        f"- {mach['cores']} cores ({mach['usable']} usable), {mach['cpu']}",
        f"- {mach['python']}, {mach['pcaploop']}",
        f"- commit `{mach['commit']}`"
        + (
            f", **dirty**: {mach['changed']} changed or untracked path(s),"
            f" {mach['changed_pcaploop']} under pcaploop/"
            + (" (measured as they are)" if mach["changed_pcaploop"] else "")
            if mach["dirty"]
            else ", clean tree"
        ),
        "- load average (1, 5, 15 min) at the start "
        + ", ".join(f"{x:.2f}" for x in ctx["load_start"])
        + ", at the end "
        + ", ".join(f"{x:.2f}" for x in ctx["load_end"])
        + (
            f" — **busy**: other work shared the {mach['usable']} cores, times are inflated"
            if max(ctx["load_start"][0], ctx["load_end"][0]) >= BUSY_LOAD
            else ""
        ),
        f"- this script's own peak RSS, the floor under every child's: {ctx['own_mib']:.0f} MiB",
        "",
        "## Start-up",
        "",
        f"Median of {STARTUP_RUNS} runs each. *Cold* is the start on 10 packets: an input that"
        " small is decoded without numba. *Compiled* is the same command on just enough"
        " full-size ordinary UDP packets to pass pcaploop's JIT threshold"
        f" (`ACTIVATE_BYTES`, {ctx['jit_bytes']:,} bytes), so numba's import and the load of"
        " its cached kernels are in it too. In the tables below, *net s* is a row's wall"
        " time minus the 10-packet start-up and *net s, compiled* minus the compiled one;"
        " the time checks use the latter, since every capture measured here (but a small"
        " one marked as below the threshold) pays numba's load once.",
        "",
    ]
    srows = []
    for ref in REFS:
        for cmd in COMMANDS:
            r = startup_rows[ref, cmd]
            srows.append(
                [
                    f"{REF_TITLES[ref]}: {r.capture.records:,} packets"
                    f" ({r.capture.size / 1000:,.1f} kB)",
                    f"`pcaploop {cmd} FILE --json -`",
                    str(r.rc),
                    fmt_s(startup[ref][cmd]),
                    f"{min(x.wall_s for x in r.runs):.3f}–{max(x.wall_s for x in r.runs):.3f}",
                    f"{r.rss_mib:.0f}",
                ]
            )
    L += md_table(
        ["start-up", "command", "exit", "wall s", "range s", "peak RSS MiB"], srows, "  rrrr"
    )
    L += [
        "",
        f"## Inputs (N = {ctx['n']:,}; each row the median of {RUNS} runs, the largest peak RSS)",
        "",
    ]
    for inp in INPUTS:
        L += [f"### {inp.key}: {inp.title}", "", inp.what[0].upper() + inp.what[1:], ""]
        trs = []
        for size in SIZES:
            cap = rows[inp.key, size, COMMANDS[0]].capture
            c = cat[inp.key, size]
            base = [size, f"{cap.records:,}", f"{cap.size / MB:.1f}"]
            trs.append(
                base + ["cat", str(c.rc), fmt_s(c.wall_s), "", "", f"{c.rss_mib:.0f}", "", "", ""]
            )
            for cmd in COMMANDS:
                r = rows[inp.key, size, cmd]
                cnt = r.counts
                dec = f"{cnt['decoded']:,}" if cnt else ""
                skip = (
                    ", ".join(f"{k} {v:,}" for k, v in cnt["skipped"].items() if v) or "0"
                    if cnt
                    else ""
                )
                trs.append(
                    base
                    + [
                        cmd,
                        "timed out" if r.timed_out else str(r.rc),
                        fmt_s(r.wall_s),
                        fmt_s(net(r, startup[COLD])),
                        fmt_s(net(r, startup[COMPILED])),
                        f"{r.rss_mib:.0f}",
                        dec,
                        skip,
                        notes(r),
                    ]
                )
        L += md_table(
            [
                "size",
                "records",
                "MB",
                "command",
                "exit",
                "wall s",
                "net s",
                "net s, compiled",
                "peak RSS MiB",
                "decoded",
                "skipped",
                "notes",
            ],
            trs,
            " rr rrrrrr",
        )
        L.append("")
    L += ["## Checks", ""]
    L += md_table(
        ["input", "command", "check", "limit", "measured", "verdict"],
        [[c.input, c.command, c.check, c.limit, c.measured, f"**{c.verdict}**"] for c in checks],
    )
    n_fail = sum(c.verdict == "FAIL" for c in checks)
    L += [
        "",
        f"{len(checks) - n_fail} of {len(checks)} checks pass"
        + (f", **{n_fail} FAIL**." if n_fail else "."),
        "",
    ]
    return "\n".join(L)


# ----------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------
def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="pcaploop resource bounds: time and memory on adversarial captures"
    )
    ap.add_argument(
        "--quick", action="store_true", help=f"N = {N_QUICK:,} instead of {N_DEFAULT:,}"
    )
    ap.add_argument(
        "--out",
        default=str(HERE / "RESOURCES.md"),
        help="where the Markdown results go (default benchmarks/RESOURCES.md)",
    )
    ap.add_argument(
        "--data-dir",
        default=os.path.join(tempfile.gettempdir(), "pcaploop-resources"),
        help="cache of generated captures and outputs (default pcaploop-resources in the temp dir)",
    )
    ap.add_argument("--strict", action="store_true", help="exit 1 when a check fails")
    ap.add_argument(
        "--timeout",
        type=float,
        default=TIMEOUT_S,
        help=f"seconds before a command is killed (default {TIMEOUT_S:g})",
    )
    return ap.parse_args(argv)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return _child(argv[1:])
    a = parse_args(argv)
    t_start, load_start = time.perf_counter(), os.getloadavg()
    n = N_QUICK if a.quick else N_DEFAULT
    data = Path(a.data_dir)
    outs = data / "out"
    outs.mkdir(parents=True, exist_ok=True)
    env, cli = child_env(), cli_command()

    jit_bytes = jit_threshold(env)
    big_frame = REC_HDR + ETH_HDR + IP_HDR + UDP_HDR + MTU_PAYLOAD - ORDINARY_PACKETS
    log(f"captures in {data} …")
    refs = {
        COLD: make_capture(data, "ordinary", ORDINARY_PACKETS, "pcap"),
        COMPILED: make_capture(data, "ordinary-big", jit_bytes // big_frame + 1, "pcap"),
    }
    caps = {
        (inp.key, size): make_capture(data, inp.key, inp.records(n, size), inp.suffix)
        for inp in INPUTS
        for size in SIZES
    }
    mach = machine(cli, env)

    def command(cmd: str, cap: Capture) -> list[str]:
        return [*cli, cmd, str(cap.path), "--json", "-"]

    log("warm-up: each command once per start-up capture (loads or compiles numba's cache) …")
    for ref, cap in refs.items():
        warm(cap.path)
        for cmd in COMMANDS:
            w = measure(command(cmd, cap), env, None, a.timeout)
            if w.rc != 0:
                log(f"  {cmd} on {ref}: exit {w.rc}: {w.stderr.strip()[-300:]}")
    startup_rows: dict[tuple[str, str], Row] = {}
    for ref, cap in refs.items():
        for cmd in COMMANDS:
            r = Row(ref, "start-up", cmd, cap)
            for _ in range(STARTUP_RUNS):
                r.runs.append(measure(command(cmd, cap), env, None, a.timeout))
            startup_rows[ref, cmd] = r
    startup = {ref: {cmd: startup_rows[ref, cmd].wall_s for cmd in COMMANDS} for ref in REFS}
    log(f"start-up: {startup}")

    rows: dict[tuple[str, str, str], Row] = {}
    cat: dict[tuple[str, str], Run] = {}
    for inp in INPUTS:
        for size in SIZES:
            cap = caps[inp.key, size]
            warm(cap.path)
            cat[inp.key, size] = measure(["cat", str(cap.path)], env, None, a.timeout)
            for cmd in COMMANDS:
                row = Row(inp.key, size, cmd, cap)
                out = outs / f"{inp.key}-{size}-{cmd}.json"
                for _ in range(RUNS):
                    row.runs.append(measure(command(cmd, cap), env, out, a.timeout))
                    if row.runs[-1].timed_out:
                        break
                if row.rc == 0 and not row.timed_out:
                    row.counts = read_counts(out, a.timeout)
                rows[inp.key, size, cmd] = row
                log(
                    f"  {inp.key} {size} {cmd}: exit {row.rc}, {row.wall_s:.2f} s,"
                    f" {row.rss_mib:.0f} MiB" + (" (timed out)" if row.timed_out else "")
                )
                with contextlib.suppress(OSError):
                    out.unlink()

    checks = judge(rows, startup[COMPILED], jit_bytes)
    ctx: dict[str, Any] = {
        "machine": mach,
        "n": n,
        "jit_bytes": jit_bytes,
        "options": "--quick" if a.quick else "",
        "load_start": load_start,
        "load_end": os.getloadavg(),
        "own_mib": own_hwm_mib(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "elapsed_min": (time.perf_counter() - t_start) / 60,
    }
    text = render(rows, cat, startup_rows, startup, checks, ctx)
    print(text)
    write_atomic(Path(a.out), text)
    log(f"wrote {a.out}")
    return 1 if a.strict and any(c.verdict == "FAIL" for c in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
