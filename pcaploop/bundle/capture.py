"""``pcaploop capture``: record an evidence bundle on the host while it loops.

One tcpdump per interface, with the options the lab found necessary
(``docs/design.md``, *What the kernel does*): ``--immediate-mode`` (without
it a fifth of the tail was lost at Ctrl-C while tcpdump reported "0
dropped"), a large kernel buffer, the snaplen the fingerprint needs, and a
bound in time (SIGINT after the duration) and count (``-c``).  Next to the
captures: the host's routes, neighbours, addresses, links and the sysctls
that decide whether a guest's dropped address loops, and ``manifest.json``
with the interfaces' roles, tcpdump's own statistics and the SHA-256 of every
file.

The bundle is assembled in a hidden directory beside the target and renamed
into place when complete, so a reader never sees half a bundle; the manifest
is written last.  No traffic is sent; only the interfaces named or
discovered are opened.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..errors import PcaploopError, UsageError
from .discover import Link, discover
from .model import FORMAT, FORMAT_VERSION, MANIFEST, STATE_FILES, SYSCTL_FILE, CaptureStats

__all__ = ["capture_bundle"]

#: bytes per packet kept: an ICMP error quoting an IPv6 packet behind a VLAN tag is
#: 14 + 4 + 40 + 8 + 40 + 24 = 130 bytes of what the fingerprint reads; 256 leaves room
SNAPLEN = 256
#: tcpdump -B (KiB): the kernel ring; a loop at line rate fills the default 2 MiB in ms
BUFFER_KIB = 32768
DEFAULT_DURATION_S = 30.0
DEFAULT_MAX_PACKETS = 1_000_000
#: longest capture accepted (a bundle is evidence of minutes, not a monitor)
MAX_DURATION_S = 24 * 3600.0
IP_TIMEOUT_S = 10.0
#: how long a tcpdump may take to say "listening on", and to stop after SIGINT
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
#: sysctls per interface under net.ipv4.conf.X / net.ipv6.conf.X
CONF4 = ("rp_filter", "proxy_arp", "send_redirects", "forwarding")
CONF6 = ("proxy_ndp", "forwarding")
GLOBAL_SYSCTLS = ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding")
#: where the sysctls are read (tests point it at a tree of their own)
PROC_SYS = "/proc/sys"

_STATS = re.compile(
    r"^(\d+) packets? (captured|received by filter|dropped by kernel|dropped by interface)\b"
)


def parse_tcpdump_stats(stderr: str) -> CaptureStats:
    """tcpdump's closing statistics ("N packets captured / received by filter /
    dropped by kernel [/ dropped by interface]") from its standard error.

    >>> parse_tcpdump_stats("12 packets captured\\n14 packets received by filter\\n"
    ...                     "2 packets dropped by kernel\\n")
    CaptureStats(captured=12, received_by_filter=14, dropped_by_kernel=2, dropped_by_interface=None)
    """
    got: dict[str, int] = {}
    for line in stderr.splitlines():
        m = _STATS.match(line.strip())
        if m:
            got[m.group(2).replace(" ", "_")] = int(m.group(1))
    return CaptureStats(
        got.get("captured"),
        got.get("received_by_filter"),
        got.get("dropped_by_kernel"),
        got.get("dropped_by_interface"),
    )


# --- the host -------------------------------------------------------------------------
def _run_ip(ip: str, args: Sequence[str]) -> str:
    try:
        r = subprocess.run(
            [ip, *args], capture_output=True, text=True, timeout=IP_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PcaploopError(f"ip {' '.join(args)}: {exc}") from None
    if r.returncode != 0:
        msg = r.stderr.strip().splitlines()[-1:] or [f"exit status {r.returncode}"]
        raise PcaploopError(f"ip {' '.join(args)}: {msg[0]}")
    return r.stdout


def _ip_json(ip: str, args: Sequence[str]) -> list[dict[str, Any]]:
    text = _run_ip(ip, args)
    try:
        doc = json.loads(text or "[]")
    except ValueError:
        raise PcaploopError(
            f"ip {' '.join(args)}: did not print JSON (iproute2 too old?)"
        ) from None
    return [d for d in doc if isinstance(d, dict)] if isinstance(doc, list) else []


def plan_links(
    interfaces: Sequence[str],
    routes4: Sequence[Mapping[str, Any]],
    routes6: Sequence[Mapping[str, Any]],
    links: Sequence[Mapping[str, Any]],
) -> tuple[list[Link], list[str]]:
    """(every interface with a role, the interfaces to capture) from ``-i`` and the
    host's ``ip -j`` output.

    Without ``-i`` the uplink(s) and guest links found in the routes are
    captured; with it exactly those interfaces (``any``: one Linux cooked
    capture of all, roles still from the routes).
    """
    found = discover(routes4, routes6, links)
    names = [str(lk["ifname"]) for lk in links if isinstance(lk.get("ifname"), str)]
    index = {str(lk["ifname"]): lk.get("ifindex") for lk in links if "ifname" in lk}
    given = list(dict.fromkeys(interfaces))
    if not given:
        if not found:
            raise UsageError(
                "found no interface to capture: no default route and no /32 or /128 host "
                "route; name the interfaces with -i IFACE"
            )
        return found, [lk.name for lk in found]
    if "any" in given and len(given) > 1:
        raise UsageError("-i any already captures every interface; give it alone")
    for g in given:
        if g != "any" and g not in names:
            shown = ", ".join(names[:12]) + (" …" if len(names) > 12 else "")
            raise UsageError(f"-i {g}: no such interface (this host has {shown or 'none'})")
    out = list(found)
    known = {lk.name for lk in found}
    for g in given:
        if g not in known and g != "any":
            ifx = index.get(g)
            out.append(Link(g, "unknown", "given with -i", ifx if isinstance(ifx, int) else None))
    return out, given


def read_sysctls(ifaces: Sequence[str], root: str | None = None) -> dict[str, Any]:
    """The sysctls that decide whether a dropped guest address loops, from ``/proc/sys``:
    ``{"net.ipv4.ip_forward": 1, "net.ipv4.conf": {"all": {"rp_filter": 2, …}, …}, …}``.

    ``ifaces``: the interfaces (besides ``all`` and ``default``) to read; one
    that has no entry is left out.
    """

    base = PROC_SYS if root is None else root

    def value(rel: str) -> int | str | None:
        try:
            with open(os.path.join(base, rel)) as f:
                text = f.read().strip()
        except OSError:
            return None
        try:
            return int(text)
        except ValueError:
            return text

    out: dict[str, Any] = {}
    for name in GLOBAL_SYSCTLS:
        v = value(name.replace(".", "/"))
        if v is not None:
            out[name] = v
    for fam, keys in (("ipv4", CONF4), ("ipv6", CONF6)):
        table: dict[str, dict[str, int | str]] = {}
        for iface in ("all", "default", *ifaces):
            if "/" in iface or iface in (".", ".."):
                continue
            per = {k: v for k in keys if (v := value(f"net/{fam}/conf/{iface}/{k}")) is not None}
            if per:
                table[iface] = per
        out[f"net.{fam}.conf"] = table
    return out


# --- tcpdump ------------------------------------------------------------------------------
def _parent_death_signal() -> Callable[[], None] | None:
    """A pre-exec hook that makes the kernel send a child SIGINT when pcaploop dies
    (prctl PR_SET_PDEATHSIG): a killed pcaploop never leaves a tcpdump running."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def hook() -> None:
        prctl(1, int(signal.SIGINT))  # PR_SET_PDEATHSIG

    return hook


@dataclass
class _Tcpdump:
    iface: str
    file: str
    argv: list[str]
    proc: subprocess.Popen[str] | None = None
    lines: list[str] = field(default_factory=list)
    #: set when tcpdump said "listening on", or its standard error ended
    listening: threading.Event = field(default_factory=threading.Event)
    heard: bool = False
    reader: threading.Thread | None = None
    started: str | None = None
    ended: str | None = None
    #: where the capture goes when written to standard output (``-w -``: watch)
    stdout: int = subprocess.DEVNULL

    def start(self, hook: Callable[[], None] | None) -> None:
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self.stdout,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=hook,  # only a prctl; the reader threads start after every fork
        )
        self.started = _now()

    def read(self) -> None:
        """Collect standard error in a thread (tcpdump blocks on a full pipe)."""

        def run() -> None:
            assert self.proc is not None and self.proc.stderr is not None
            for line in self.proc.stderr:
                self.lines.append(line.rstrip("\n"))
                if "listening on" in line:
                    self.heard = True
                    self.listening.set()
            self.listening.set()  # it ended: whoever waits finds out why

        self.reader = threading.Thread(target=run, daemon=True)
        self.reader.start()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        """SIGINT (tcpdump writes what it has, prints its statistics), then harder."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        if self.reader is not None:
            self.reader.join(timeout=STOP_TIMEOUT_S)
        if self.ended is None:
            self.ended = _now()

    def problem(self) -> str | None:
        if self.proc is None or self.proc.returncode in (0, None):
            return None
        said = [ln for ln in self.lines if ln and not _STATS.match(ln) and "listening on" not in ln]
        why = said[-1] if said else f"exit status {self.proc.returncode}"
        return f"tcpdump -i {self.iface}: {why}"

    def to_json(self) -> dict[str, Any]:
        rc = None if self.proc is None else self.proc.returncode
        return {
            "interface": self.iface,
            "file": self.file,
            "command": self.argv,
            "started": self.started,
            "ended": self.ended,
            "exit_status": rc,
            "stats": parse_tcpdump_stats("\n".join(self.lines)).to_json(),
            "stderr": self.lines[-20:],
            "problem": self.problem(),
        }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


# --- the bundle ---------------------------------------------------------------------------
@dataclass
class CaptureResult:
    """What :func:`capture_bundle` wrote."""

    path: str
    manifest: dict[str, Any]
    interrupted: bool = False

    @property
    def captures(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self.manifest["captures"]
        return out


def _check_target(out: str) -> None:
    if os.path.lexists(out) and not os.path.isdir(out):
        raise UsageError(f"{out}: exists and is not a directory")
    if os.path.isdir(out) and os.listdir(out):
        raise UsageError(f"{out}: the output directory is not empty; give a new one")


def _write(path: str, data: bytes) -> None:
    """Write a file atomically (temporary file beside it, fsync, rename)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".", suffix=".part", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _save_state(ip: str, tmp: str, ifaces: Sequence[str]) -> dict[str, Any]:
    """The host's ``ip -j`` output and sysctls into ``tmp/state/``; what was run."""
    done: dict[str, Any] = {"taken": _now(), "files": {}, "problems": []}
    for rel, args in STATE_FILES.items():
        try:
            text = _run_ip(ip, args)
        except PcaploopError as exc:
            done["problems"].append(str(exc))
            continue
        _write(os.path.join(tmp, rel), text.encode())
        done["files"][rel] = ["ip", *args]
    _write(
        os.path.join(tmp, SYSCTL_FILE),
        (json.dumps(read_sysctls(ifaces), indent=1, sort_keys=True) + "\n").encode(),
    )
    done["files"][SYSCTL_FILE] = "read from /proc/sys"
    return done


def _file_name(iface: str) -> str:
    return f"{iface}.pcap"


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM stops the capture as Ctrl-C does (the bundle is still written)."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def check_can_capture() -> tuple[str, str]:
    """(tcpdump, ip) paths, after refusing a host pcaploop cannot capture on."""
    if not sys.platform.startswith("linux"):
        raise PcaploopError("capture works on Linux only (it reads ip(8) and /proc/sys)")
    if os.geteuid() != 0:
        raise PcaploopError("capture needs root: tcpdump opens the interfaces (run it with sudo)")
    tcpdump, ip = shutil.which("tcpdump"), shutil.which("ip")
    if tcpdump is None:
        raise PcaploopError("tcpdump not found in PATH (install the tcpdump package)")
    if ip is None:
        raise PcaploopError("ip not found in PATH (install iproute2)")
    return tcpdump, ip


def capture_bundle(
    out: str | os.PathLike[str],
    duration_s: float = DEFAULT_DURATION_S,
    max_packets: int = DEFAULT_MAX_PACKETS,
    interfaces: Sequence[str] = (),
    say: Callable[[str], None] | None = None,
    command: str | None = None,
) -> CaptureResult:
    """Capture the host's uplink and guest links (or ``interfaces``) into a new bundle.

    Stops after ``duration_s`` seconds, or when every interface has
    ``max_packets`` packets, or at Ctrl-C/SIGTERM (then ``interrupted``; what
    was captured is still written).  ``say`` gets one line per step.

    >>> capture_bundle("incident-bundle", duration_s=30)   # doctest: +SKIP
    """
    out = os.fspath(out)
    say = say or (lambda _line: None)
    if not 0 < duration_s <= MAX_DURATION_S:
        raise UsageError(f"--duration must be more than 0 and at most {MAX_DURATION_S:.0f} s")
    if max_packets < 1:
        raise UsageError("--max-packets must be at least 1")
    tcpdump, ip = check_can_capture()
    _check_target(out)
    links = _ip_json(ip, ["-j", "link"])
    roles, wanted = plan_links(
        interfaces, _ip_json(ip, ["-j", "route"]), _ip_json(ip, ["-j", "-6", "route"]), links
    )
    host_ifaces = [str(lk["ifname"]) for lk in links if isinstance(lk.get("ifname"), str)]
    parent = os.path.dirname(os.path.abspath(out))
    try:
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(out))}.", dir=parent)
    except OSError as exc:
        raise PcaploopError(f"{out}: cannot create the bundle: {exc.strerror or exc}") from None
    dumps = [
        _Tcpdump(
            i,
            _file_name(i),
            [
                tcpdump,
                "-i",
                i,
                "-n",
                "-U",
                "--immediate-mode",
                "-B",
                str(BUFFER_KIB),
                "-s",
                str(SNAPLEN),
                "-Z",
                "root",
                "-c",
                str(max_packets),
                "-w",
                os.path.join(tmp, _file_name(i)),
            ],
        )
        for i in wanted
    ]
    try:
        with _sigterm_interrupts():
            manifest, interrupted = _run(
                dumps, tmp, ip, host_ifaces, roles, duration_s, max_packets, say, command
            )
    except BaseException:
        for d in dumps:
            with contextlib.suppress(Exception):
                d.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _move_into_place(tmp, out)
    return CaptureResult(out, manifest, interrupted)


def _run(
    dumps: list[_Tcpdump],
    tmp: str,
    ip: str,
    host_ifaces: list[str],
    roles: list[Link],
    duration_s: float,
    max_packets: int,
    say: Callable[[str], None],
    command: str | None,
) -> tuple[dict[str, Any], bool]:
    """Run the tcpdumps, save the state, write the manifest: the whole bundle in ``tmp``."""
    hook = _parent_death_signal()
    for d in dumps:  # every fork before any thread: pre-exec hooks and threads do not mix
        try:
            d.start(hook)
        except OSError as exc:
            raise PcaploopError(f"tcpdump -i {d.iface}: cannot start: {exc}") from None
    for d in dumps:
        d.read()
    limit = time.monotonic() + START_TIMEOUT_S
    for d in dumps:
        d.listening.wait(max(0.0, limit - time.monotonic()))
        if (d.listening.is_set() and not d.heard) or not d.running():
            d.stop()
            raise PcaploopError(d.problem() or f"tcpdump -i {d.iface}: ended at once")
        if not d.heard:
            raise PcaploopError(f"tcpdump -i {d.iface}: did not start within {START_TIMEOUT_S:g} s")
    started = _now()
    role = {lk.name: lk for lk in roles}
    say(
        "capturing "
        + ", ".join(
            f"{d.iface} ({role[d.iface].role}: {role[d.iface].why})" if d.iface in role else d.iface
            for d in dumps
        )
        + f" for {duration_s:g} s or {max_packets:,} packets each; Ctrl-C stops early"
    )
    say(f"meanwhile, from another shell: pcaploop watch {tmp}")
    interrupted = False
    state: dict[str, Any] | None = None
    stopped_by = "duration"
    try:
        state = _save_state(ip, tmp, host_ifaces)
        end = time.monotonic() + duration_s
        while time.monotonic() < end:
            if not any(d.running() for d in dumps):
                stopped_by = "max-packets"
                break
            time.sleep(min(0.1, max(0.0, end - time.monotonic())))
    except KeyboardInterrupt:
        interrupted, stopped_by = True, "interrupt"
    try:
        for d in dumps:
            d.stop()
    except KeyboardInterrupt:  # Ctrl-C again: stop waiting, keep what was captured
        interrupted, stopped_by = True, "interrupt"
        for d in dumps:
            if d.proc is not None and d.proc.poll() is None:
                d.proc.kill()
                d.proc.wait(timeout=STOP_TIMEOUT_S)
    ended = _now()
    if state is None:
        state = _save_state(ip, tmp, host_ifaces)
    files = {}
    for dirpath, _dirs, names in os.walk(tmp):
        for n in sorted(names):
            full = os.path.join(dirpath, n)
            rel = os.path.relpath(full, tmp)
            files[rel] = {"sha256": _sha256(full), "bytes": os.path.getsize(full)}
    u = os.uname()
    from .._version import __version__

    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "pcaploop_version": __version__,
        "host": socket.gethostname(),
        "kernel": f"{u.sysname} {u.release} {u.version} {u.machine}",
        "command": command,
        "started": started,
        "ended": ended,
        "stopped_by": stopped_by,
        "limits": {
            "duration_s": duration_s,
            "max_packets": max_packets,
            "snaplen": SNAPLEN,
            "buffer_kib": BUFFER_KIB,
        },
        "interfaces": [lk.to_json() for lk in roles],
        "captures": [d.to_json() for d in dumps],
        "state": state,
        "files": dict(sorted(files.items())),
    }
    _write(os.path.join(tmp, MANIFEST), (json.dumps(manifest, indent=1) + "\n").encode())
    return manifest, interrupted


def _move_into_place(tmp: str, out: str) -> None:
    """Rename the finished bundle over ``out`` (absent or empty); where that cannot be
    done (``out`` is a mount point) move its files in, the manifest last."""
    try:
        os.rename(tmp, out)
        return
    except OSError:
        pass
    try:
        os.makedirs(out, exist_ok=True)
        _check_target(out)
        for n in sorted(os.listdir(tmp), key=lambda n: n == MANIFEST):
            shutil.move(os.path.join(tmp, n), os.path.join(out, n))
        os.rmdir(tmp)
    except OSError as exc:
        raise PcaploopError(
            f"{out}: cannot put the bundle in place ({exc.strerror or exc}); it is in {tmp}"
        ) from None
