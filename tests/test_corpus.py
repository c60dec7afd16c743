"""pcaploop's reader holds on captures that other people's tools wrote.

Why: our own fixtures are written by our own writer, so they agree with our
reader by construction.  Captures in tickets come from tcpdump and libpcap on
other systems, from test generators and from fuzzers, and some are cut short
or crafted.  ``tests/corpus`` holds such files from tcpdump's, libpcap's and
the pcapng test generator's test suites (``SOURCES.md``), and
``reference.json`` what tshark reads in each (``make_reference.py``), so these
tests need no Wireshark.

Each file goes through the *installed* ``pcaploop info`` and ``pcaploop
analyze`` — the program a user runs, with its exit status and its stderr —
under a timeout and a memory cap, and must:

* never hang, never show a traceback or an internal error, exit 0 or 2, and
  exit 2 only with one ``Error:`` line;
* account for every record at every capture point
  (``records == decoded + sum(skipped)``);
* read as many records as tshark wherever tshark read the file whole (or up
  to a cut-off last record) and pcaploop supports all its link types;
* exit 2 where tshark could read no record at all, and for ``analyze`` where
  no link type of the file is supported; ``info`` may instead describe such a
  file, every record counted as skipped for its link type — that description
  is what ``info`` is for;
* never exit 2 on a file tshark reads whole, unless none of its link types is
  supported.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pcaploop.decode.linktypes import LINKTYPES

CORPUS = Path(__file__).resolve().parent / "corpus"
REFERENCE: dict[str, dict[str, Any]] = json.loads((CORPUS / "reference.json").read_text())["files"]
COMMANDS = ("info", "analyze")
#: generous: the first file over numba's threshold compiles the kernels when the
#: per-user cache is cold (~25 s here, more with two compiles sharing two cores)
TIMEOUT_S = 120.0
#: address space per command: a capture of at most 1 MB has no business near it
MEMORY_CAP = 2 << 30
#: commands run at once; the suite's run time is this corpus' commands over this
WORKERS = max(1, min(os.cpu_count() or 1, 4))
MAX_FILE_BYTES = 1 << 20
MAX_CORPUS_BYTES = 25 << 20

Key = tuple[str, str]  # (command, file relative to the corpus)

#: Deviations found and explained, each to be decided in pcaploop.  strict: when
#: one is fixed the test says so, and the entry goes.
KNOWN: dict[Key, str] = {}


def pcaploop_command() -> list[str]:
    """The console script installed beside this interpreter, as a user runs it."""
    script = Path(sys.executable).with_name("pcaploop")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "pcaploop"]


def _limit_memory() -> None:
    """In the child, before exec: cap its address space so a blow-up fails fast."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


@dataclass
class Run:
    """One finished command: what a user would have seen."""

    argv: list[str]
    returncode: int | None  # None: killed at the timeout
    stdout: str
    stderr: str
    seconds: float

    def describe(self) -> str:
        """Command line, exit status and the start of stderr, for failure messages."""
        head = "\n    ".join(self.stderr.splitlines()[:8])
        return (
            f"$ {' '.join(self.argv)}\n  exit {self.returncode} after {self.seconds:.1f} s\n"
            f"  stderr: {head or '(empty)'}"
        )


@dataclass
class _Proc:
    popen: subprocess.Popen[bytes]
    argv: list[str]
    out: Path
    err: Path
    started: float


class Runner:
    """Runs the corpus commands ``WORKERS`` at a time, in the order the tests ask.

    Why: some 400 commands one after another would take minutes; run side by
    side they take the time of the slowest core.  Every child is started from
    this thread (``preexec_fn`` is unsafe once other threads exist) and writes
    to files, not pipes (a full pipe would stall a child nobody reads yet).
    """

    def __init__(self, order: list[Key], tmp: Path) -> None:
        self.pending: deque[Key] = deque(dict.fromkeys(order))
        self.running: dict[Key, _Proc] = {}
        self.done: dict[Key, Run] = {}
        self.tmp = tmp
        self.started = 0  # names the output files
        self.env = dict(os.environ, PCAPLOOP_DEBUG="1")  # a bug shows its traceback

    def result(self, key: Key) -> Run:
        """The finished run of ``key``, starting it first if nobody has yet."""
        if key not in self.done and key not in self.running:
            if key in self.pending:
                self.pending.remove(key)
            self.pending.appendleft(key)
        while key not in self.done:
            self._start()
            if not self._reap():
                time.sleep(0.02)
        return self.done.pop(key)

    def close(self) -> None:
        """Kill whatever still runs (an interrupted session)."""
        for proc in self.running.values():
            self._kill(proc)
        self.running.clear()

    def _start(self) -> None:
        while self.pending and len(self.running) < WORKERS:
            command, rel = key = self.pending.popleft()
            argv = [*pcaploop_command(), command, str(CORPUS / rel), "--json", "-"]
            self.started += 1
            out, err = self.tmp / f"{self.started}.out", self.tmp / f"{self.started}.err"
            with out.open("wb") as fo, err.open("wb") as fe:
                popen = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=fo,
                    stderr=fe,
                    env=self.env,
                    preexec_fn=_limit_memory,
                    start_new_session=True,  # the timeout kills the whole group
                )
            self.running[key] = _Proc(popen, argv, out, err, time.monotonic())

    def _reap(self) -> bool:
        finished = False
        for key, proc in list(self.running.items()):
            elapsed = time.monotonic() - proc.started
            rc = proc.popen.poll()
            if rc is None and elapsed <= TIMEOUT_S:
                continue
            if rc is None:
                self._kill(proc)
            del self.running[key]
            self.done[key] = Run(
                argv=proc.argv,
                returncode=rc,
                stdout=proc.out.read_text(errors="replace"),
                stderr=proc.err.read_text(errors="replace"),
                seconds=elapsed,
            )
            proc.out.unlink()
            proc.err.unlink()
            finished = True
        return finished

    @staticmethod
    def _kill(proc: _Proc) -> None:
        with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
            os.killpg(proc.popen.pid, signal.SIGKILL)
        proc.popen.wait()


def expectation(entry: dict[str, Any]) -> str:
    """What pcaploop owes on a file, from tshark's verdict and pcaploop's link types.

    ``refuse``: exit 2 (tshark read no record at all).  ``unsupported``: no link
    type of the file is pcaploop's (``analyze`` exits 2; ``info`` may describe it).
    ``count``: exit 0 and tshark's number of records.  ``read``: exit 0, no count
    to compare (a link type tshark does not know, or some unsupported ones).
    ``any``: exit 0 or 2 (tshark stopped at damage after some records).
    """
    linktypes: list[int] = entry["linktypes"]
    ours = [lt in LINKTYPES for lt in linktypes]
    verdict = entry["verdict"]
    if verdict == "rejected":
        return "refuse"
    if linktypes and not any(ours):
        return "unsupported"
    if verdict in ("whole", "cut_short"):
        return "count" if all(ours) else "read"
    if verdict == "unknown_linktype":
        return "read"
    return "any"


def _params() -> list[Any]:
    params = []
    for command in COMMANDS:
        for rel in sorted(REFERENCE):
            reason = KNOWN.get((command, rel))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            params.append(pytest.param(command, rel, id=f"{command}:{rel}", marks=marks))
    return params


@pytest.fixture(scope="module")
def runner(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Runner]:
    """One runner for the module, told up front which commands the session will ask for."""
    here = Path(__file__).resolve()
    order: list[Key] = []
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or Path(str(item.path)).resolve() != here:
            continue
        if {"command", "rel"} <= callspec.params.keys():
            order.append((callspec.params["command"], callspec.params["rel"]))
    r = Runner(order, tmp_path_factory.mktemp("corpus-runs"))
    yield r
    r.close()


def test_reference_describes_the_corpus() -> None:
    """reference.json was computed on exactly these files, and they stay small.

    Why: a file added without re-running make_reference.py, or changed after it,
    would be held to another file's counts.
    """
    on_disk = {
        p.relative_to(CORPUS).as_posix(): p
        for p in CORPUS.rglob("*")
        if p.is_file() and p.suffix not in {".py", ".md", ".json", ".pyc"}
    }
    assert sorted(on_disk) == sorted(REFERENCE), "run tests/corpus/make_reference.py"
    total = 0
    for rel, path in on_disk.items():
        data = path.read_bytes()
        total += len(data)
        entry = REFERENCE[rel]
        assert (len(data), hashlib.sha256(data).hexdigest()) == (entry["size"], entry["sha256"]), (
            f"{rel} changed since reference.json was made"
        )
        assert len(data) <= MAX_FILE_BYTES, f"{rel}: {len(data):,} bytes, over 1 MB"
    assert total <= MAX_CORPUS_BYTES
    sources = (CORPUS / "SOURCES.md").read_text()
    for project in {rel.split("/", 1)[0] for rel in REFERENCE}:
        assert f"`{project}/" in sources, f"SOURCES.md does not say where {project}/ is from"


def test_known_deviations_are_in_the_corpus() -> None:
    """Every xfail names a file and command that exist: a stale entry would hide nothing."""
    for command, rel in KNOWN:
        assert command in COMMANDS and rel in REFERENCE, (command, rel)


@pytest.mark.parametrize(("command", "rel"), _params())
def test_corpus_file(command: str, rel: str, runner: Runner) -> None:
    """One corpus file through one installed command: see the module's docstring."""
    entry = REFERENCE[rel]
    expect = expectation(entry)
    run = runner.result((command, rel))
    tshark = f"tshark: {entry['records']} records, {entry['verdict']}" + (
        f" ({entry['error']})" if entry["error"] else ""
    )
    where = f"{run.describe()}\n  {tshark}; link types {entry['linktypes']}; expected {expect}"

    assert run.returncode is not None, f"no answer within {TIMEOUT_S:.0f} s\n{where}"
    assert "Traceback" not in run.stderr, where
    assert "internal error" not in run.stderr and "out of memory" not in run.stderr, where
    assert run.returncode in (0, 2), where
    if run.returncode == 2:
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), where

    if expect == "refuse" or (expect == "unsupported" and command == "analyze"):
        assert run.returncode == 2, where
        return
    if expect in ("count", "read"):
        assert run.returncode == 0, where
    if run.returncode != 0:
        return

    doc = json.loads(run.stdout)
    captures = doc["captures"]
    for c in captures:
        assert c["records"] == c["decoded"] + sum(c["skipped"].values()), (
            f"capture point {c['name']}: {c['records']} records, {c['decoded']} decoded, "
            f"skipped {c['skipped']}\n{where}"
        )
    records = sum(c["records"] for c in captures)
    got = f"pcaploop: {records} records at {len(captures)} capture point(s)"
    if expect == "unsupported":  # info describing a file it cannot decode
        assert all(c["decoded"] == 0 for c in captures), f"{got}\n{where}"
        assert sum(c["skipped"]["unsupported"] for c in captures) == records, f"{got}\n{where}"
    if expect in ("count", "unsupported") and entry["verdict"] in ("whole", "cut_short"):
        assert records == entry["records"], f"{got}\n{where}"
    if entry["verdict"] == "cut_short":
        assert any(c["truncated_tail"] or c["problem"] for c in captures), (
            f"the cut-off end goes unreported\n{where}"
        )
