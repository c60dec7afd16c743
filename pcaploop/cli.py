"""Command line: every command maps its options onto library calls and prints.

No analysis here: each command is a few lines over :mod:`pcaploop`'s stages
(``ingest``, ``analysis``, ``present``).  Options shared by several commands
are declared once, below, so their help texts agree.  Library errors
(:class:`~pcaploop.errors.PcaploopError`) become one ``Error:`` line and
exit status 2 in :func:`main`; a closed pipe (``| head``) ends the program
quietly, as it does other Unix tools.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer
import typer.core

from .errors import PcaploopError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

    from .analysis.pipeline import Analysis
    from .analysis.watch import LoopEvent
    from .bundle.model import BundleInputs
    from .ingest.specs import CaptureSpec


def _version(value: bool) -> None:
    if value:
        from ._version import __version__

        typer.echo(f"pcaploop {__version__}")
        raise typer.Exit()


class _Plain(typer.core.TyperCommand):
    """Help as a person reads it: no ``<list[str]>`` types, no braces round arguments."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for p in self.params:
            if isinstance(p, typer.core.TyperArgument):
                name = p.metavar or (p.name or "").upper()
                p.display_type_rich = lambda ctx: None  # type: ignore[method-assign]
                shown = name + ("..." if p.nargs != 1 else "")
                p._usage_display_name = lambda shown=shown: shown  # type: ignore[method-assign,misc]


class _PlainGroup(typer.core.TyperGroup):
    """The group's help the same way (its options have no types to show)."""


app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    cls=_PlainGroup,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    help="Find routing loops between a virtualisation host and its guests in packet captures.",
)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Find routing loops between a virtualisation host and its guests in packet captures.

    \b
    Example:
      pcaploop analyze uplink=eth0.pcap tap101.pcap
    """


# --- options shared by several commands (declared once) -------------------------------
CapturesArg = typer.Argument(
    ...,
    metavar="CAPTURE",
    show_default=False,
    help="Capture files (pcap, pcapng, .gz), optionally NAME=PATH, or a bundle "
    "directory written by 'pcaploop capture'.",
)
IfmapOpt = typer.Option(
    None,
    "--ifmap",
    metavar="MAP",
    help="Names for a tcpdump -i any capture's interface numbers: "
    "INDEX=NAME[,…] or a file with the host's 'ip -o link' output. "
    "Repeatable.",
)
UplinkOpt = typer.Option(
    None,
    "--uplink",
    metavar="NAME",
    help="This capture point is the host's uplink (overrides what the "
    "packets suggest). Repeatable.",
)
GuestOpt = typer.Option(
    None,
    "--guest-link",
    metavar="NAME",
    help="This capture point is a link to a guest. Repeatable.",
)
JsonOpt = typer.Option(
    None, "--json", metavar="FILE", help="Also write JSON to FILE ('-' = stdout)."
)
MergeGapOpt = typer.Option(
    10.0, "--merge-gap", metavar="SECONDS", help="Looping packets closer than this form one loop."
)
MergePrefixOpt = typer.Option(
    None,
    "--merge-prefix",
    metavar="N",
    help="Merge IPv4 loops by destination /N, 0-32 (Hengartner et al. "
    "used 24); IPv6 destinations stay whole.",
)


FigureJobsOpt = typer.Option(
    None,
    "--jobs",
    "-j",
    metavar="N",
    min=1,
    help="Draw the figures in N processes (default: this machine's cores); the figures "
    "are the same with any N.",
)


InfoJobsOpt = typer.Option(
    None,
    "--jobs",
    "-j",
    metavar="N",
    min=1,
    help="Decode and count large captures in N processes (default: this machine's "
    "cores); the summary is the same with any N.",
)


def _jobs(jobs: int | None) -> int:
    from ._procs import default_jobs

    return default_jobs() if jobs is None else jobs


#: extract says how much it is about to write from this size on
ANNOUNCE_BYTES = 10_000_000


StrictOpt: bool = typer.Option(
    False,
    "--strict",
    help="Exit 2 when any record was skipped, a capture was cut short or could not be read.",
)


# --- helpers ------------------------------------------------------------------------------
def _console() -> Console:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


def _err_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=False)


def _emit_json(doc: dict[str, Any], target: str, inputs: list[CaptureSpec]) -> None:
    text = json.dumps(doc, indent=2, allow_nan=False) + "\n"
    if target == "-":
        sys.stdout.write(text)
        return
    from .present.files import write_atomic

    write_atomic(target, text.encode(), [s.path for s in inputs])


def _strict(
    points: Sequence[tuple[str, str, Mapping[str, int], bool]], specs: Sequence[CaptureSpec]
) -> None:
    """--strict: exit 2 (after the output) when any record was skipped, a capture was
    cut short, or a capture could not be read at all."""
    problems = []
    read = {path for _, path, _, _ in points}
    problems += [f"{s.path}: not read" for s in specs if s.path not in read]
    for name, _, skipped, cut in points:
        n = sum(skipped.values())
        if n:
            why = ", ".join(f"{k.replace('_', '-')} {v:,}" for k, v in skipped.items() if v)
            problems.append(f"{name}: {n:,} record(s) skipped ({why})")
        if cut:
            problems.append(f"{name}: its capture was cut short")
    if problems:
        raise UsageError("--strict: " + "; ".join(problems))


def _specs(captures: Sequence[str | CaptureSpec | os.PathLike[str]]) -> list[CaptureSpec]:
    from .ingest.specs import capture_specs

    return capture_specs(captures)[0]


def _expand(
    captures: list[str], ifmap: list[str] | None
) -> tuple[list[CaptureSpec], list[str] | dict[int, str] | None, BundleInputs | None]:
    """CAPTURE arguments with each bundle directory replaced by its captures (named
    after the host's interfaces), and ``--ifmap`` completed from the saved links."""
    if not any(os.path.isdir(c) for c in captures):
        return _specs(captures), ifmap, None
    from .bundle import expand_captures
    from .ingest.specs import parse_ifmap

    got = expand_captures(captures)
    return _specs(got.captures), {**got.ifmap, **parse_ifmap(ifmap or [])}, got


def _bundle_roles(
    got: BundleInputs | None, uplinks: list[str] | None, guest_links: list[str] | None
) -> tuple[list[str], list[str]]:
    """--uplink/--guest-link as given, then the roles the bundles' manifests give the
    other capture points."""
    up, guests = list(uplinks or ()), list(guest_links or ())
    if got is None:
        return up, guests
    named = set(up) | set(guests)
    up += [n for n in got.uplinks if n not in named]
    guests += [n for n in got.guest_links if n not in named]
    return up, guests


def _with_host_state(a: Analysis, got: BundleInputs, named: set[str]) -> None:
    """Roles given by a bundle say so; explanations and fixes cite the host's state."""
    from dataclasses import replace

    from .analysis.explain import with_host_state
    from .bundle.model import apply_capture_stats

    why = {
        lk.name: f"the host's saved state ({os.path.join(b.path, 'manifest.json')}): {lk.why}"
        for b in reversed(got.bundles)
        for lk in b.interfaces
    }
    a.roles = [
        replace(r, evidence=(why[r.name],))
        if r.confidence == "given" and r.name in why and r.name not in named
        else r
        for r in a.roles
    ]
    a.loops = with_host_state(a.loops, a.roles, got.bundles)
    a.warnings += got.warnings
    apply_capture_stats(a.packets.points, got.bundles)


#: the analyses this process ran: a command whose analysis Ctrl-C cut short still
#: writes what it found (marked partial), then exits 130
_RUNS: list[Analysis] = []


def _analyze(
    captures: list[str],
    ifmap: list[str] | None,
    merge_gap: float = 10.0,
    merge_prefix: int | None = None,
    keep: str = "evidence",
    uplinks: list[str] | None = None,
    guest_links: list[str] | None = None,
    follow: bool = False,
) -> Analysis:
    from .analysis.pipeline import analyze as run
    from .present.progress import file_progress

    if merge_gap < 0:
        raise UsageError("--merge-gap must not be negative")
    if merge_prefix is not None and not 0 <= merge_prefix <= 32:
        raise UsageError("--merge-prefix must be an IPv4 prefix length, 0 to 32")
    specs, imap, got = _expand(captures, ifmap)
    up, guests = _bundle_roles(got, uplinks, guest_links)
    if follow:
        typer.echo("following the captures as they grow; Ctrl-C ends the input", err=True)
    with file_progress([] if follow else specs) as prog:
        a = run(
            specs,
            imap,
            merge_gap,
            merge_prefix,
            None if follow else prog,
            keep=keep,
            uplinks=up,
            guest_links=guests,
            follow=follow,
        )
    if got is not None:
        _with_host_state(a, got, set(uplinks or ()) | set(guest_links or ()))
    _RUNS.append(a)
    return a


#: items of each JSON array the CLI checks against the schema before writing
JSON_CHECK_ITEMS = 100


def _validated_json(a: Analysis, target: str) -> None:
    from .contract import validate_json

    doc = a.to_json()
    validate_json(doc, max_items=JSON_CHECK_ITEMS)
    _emit_json(doc, target, [])


@contextmanager
def _status(what: str) -> Iterator[Callable[[str], None] | None]:
    """A spinner on stderr naming the step; nothing when not a terminal."""
    if not sys.stderr.isatty() or os.environ.get("CI"):
        yield None
        return
    from rich.console import Console

    with Console(stderr=True).status(what) as st:
        yield lambda stem: st.update(f"{what}: {stem}")


def _command_line(name: str, captures: list[str], **opts: Any) -> str:
    """The command as typed when run from a shell, else rebuilt from the options."""
    import shlex

    if len(sys.argv) > 1 and sys.argv[1] == name:
        return shlex.join(["pcaploop", *sys.argv[1:]])
    words = ["pcaploop", name, *captures]
    for flag, value in opts.items():
        if value is None or value is False:
            continue
        for v in value if isinstance(value, list) else [value]:
            words += [flag] if v is True else [flag, str(v)]
    return shlex.join(words)


def _size(path: str) -> str:
    try:
        n = os.path.getsize(path)
    except OSError:
        return "?"
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


# --- commands -----------------------------------------------------------------------------
@app.command(cls=_Plain)
def info(
    captures: list[str] = CapturesArg,
    ifmap: list[str] | None = IfmapOpt,
    json_out: str | None = JsonOpt,
    sha256: bool = typer.Option(
        False, "--sha256", help="Also hash each file (SHA-256, for chain of custody)."
    ),
    strict: bool = StrictOpt,
    jobs: int | None = InfoJobsOpt,
) -> None:
    """What is in the captures: per capture point format, link type, records, what was
    skipped and why, time span, snaplen and frames it cut, directions, protocols and
    top talkers; per file its size (and SHA-256 with --sha256: one more read).

    \b
    Example:
      pcaploop info uplink=eth0.pcap tap101.pcap
      pcaploop info --sha256 --json info.json capture.pcapng
    """
    from .ingest.info import capture_info
    from .present import terminal
    from .present.progress import file_progress

    specs, imap, _ = _expand(captures, ifmap)
    with file_progress(specs) as prog:
        doc = capture_info(specs, imap, prog, sha256=sha256, jobs=_jobs(jobs))
    if json_out:
        _emit_json(doc, json_out, specs)
    if json_out != "-":
        terminal.info_tables(_console(), doc)
    if strict:
        _strict(
            [(c["name"], c["path"], c["skipped"], c["truncated_tail"]) for c in doc["captures"]],
            specs,
        )


@app.command(cls=_Plain)
def analyze(
    captures: list[str] = CapturesArg,
    ifmap: list[str] | None = IfmapOpt,
    uplink: list[str] | None = UplinkOpt,
    guest_link: list[str] | None = GuestOpt,
    json_out: str | None = JsonOpt,
    merge_gap: float = MergeGapOpt,
    merge_prefix: int | None = MergePrefixOpt,
    all_loops: bool = typer.Option(
        False, "--all", help="List every loop and its fixes, not a summary when there are many."
    ),
    fail_on_loop: bool = typer.Option(
        False, "--fail-on-loop", help="Exit 1 when a loop is found (monitoring)."
    ),
    strict: bool = StrictOpt,
    follow: bool = typer.Option(
        False,
        "--follow",
        "-f",
        help="Keep reading the captures as they grow (like tail -f); Ctrl-C ends the "
        "input and the analysis covers all that was read.",
    ),
) -> None:
    """Find routing loops: the verdict, what each capture point is, the loops, the
    addresses to look at, why it happened and how to fix it.

    \b
    Example:
      pcaploop analyze uplink=eth0.pcap tap101.pcap --json report.json
    """
    a = _analyze(
        captures,
        ifmap,
        merge_gap,
        merge_prefix,
        uplinks=uplink,
        guest_links=guest_link,
        follow=follow,
    )
    if json_out:
        _validated_json(a, json_out)
    if json_out != "-":
        from .present import terminal

        terminal.analysis(_console(), a, all_loops=all_loops)
    if strict:
        _strict(
            [(p.name, p.path, p.skipped, p.truncated_tail) for p in a.packets.points],
            _expand(captures, ifmap)[0],
        )
    if a.partial:
        raise typer.Exit(130)
    if fail_on_loop and a.loops:
        raise typer.Exit(1)


@app.command(cls=_Plain)
def paths(
    captures: list[str] = CapturesArg,
    ifmap: list[str] | None = IfmapOpt,
    uplink: list[str] | None = UplinkOpt,
    guest_link: list[str] | None = GuestOpt,
    dst: str | None = typer.Option(
        None, "--dst", metavar="ADDR", help="Only paths to this destination."
    ),
    loop: int | None = typer.Option(
        None, "--loop", metavar="N", help="Only paths of loop N (see analyze)."
    ),
    limit: int = typer.Option(5, "--limit", metavar="N", help="Show at most N paths."),
    hops: bool = typer.Option(False, "--hops", help="Every observation of each path."),
    all_paths: bool = typer.Option(False, "--all", help="Also paths that do not loop or bounce."),
) -> None:
    """Reconstructed paths: one line each (capture points, TTL first→last, copies, IP ID,
    protocol, time), or hop by hop with --hops.

    \b
    Example:
      pcaploop paths tap101.pcap --dst 203.0.113.7 --limit 2 --hops
    """
    from .present import terminal

    # other packets' paths only when asked for: they cost memory on a big capture
    a = _analyze(
        captures,
        ifmap,
        keep="paths" if (dst or all_paths) else "evidence",
        uplinks=uplink,
        guest_links=guest_link,
    )
    rows = a.loop_path_rows(loop) if loop is not None else a.path_rows()
    if dst:
        from .addr import from_text, to_text

        try:
            want = to_text(*from_text(dst))
        except ValueError:
            raise UsageError(f"--dst {dst!r} is not an IP address") from None
        rows = rows[rows["dst"] == want]
    if loop is None and not all_paths:
        rows = rows[rows["looping"] | rows["bounce"]]
    terminal.paths(_console(), rows, limit, hops=hops)
    from .present.extract import kept_of

    sampled = kept_of(a, loop)
    if sampled:
        _console().print(
            f"(loop {loop} kept the copies of {sampled[0]:,} of its {sampled[1]:,} looping "
            "packets: a long loop keeps a sample; analyze's numbers count them all)",
            markup=False,
        )


@app.command(cls=_Plain)
def plot(
    captures: list[str] = CapturesArg,
    ifmap: list[str] | None = IfmapOpt,
    uplink: list[str] | None = UplinkOpt,
    guest_link: list[str] | None = GuestOpt,
    output: str = typer.Option(
        ...,
        "--output",
        "-o",
        "--out",
        metavar="DIR",
        help="Directory for the plots (created if missing).",
    ),
    svg: bool = typer.Option(False, "--svg", help="Also write SVG files."),
    merge_gap: float = MergeGapOpt,
    merge_prefix: int | None = MergePrefixOpt,
    jobs: int | None = FigureJobsOpt,
) -> None:
    """Draw the plots of the loops found: timeline, TTL staircase and path ladder per
    loop, amplification, copies and cycle-time distributions (PNG, and SVG on request).

    \b
    Example:
      pcaploop plot uplink=eth0.pcap tap101.pcap -o plots/
    """
    from .present.plots import write_plots

    a = _analyze(captures, ifmap, merge_gap, merge_prefix, uplinks=uplink, guest_links=guest_link)
    with _status("drawing") as prog:
        written = write_plots(a, output, svg=svg, progress=prog, jobs=_jobs(jobs))
    con = _console()
    for p in written:
        con.print(f"wrote {p}", markup=False)


@app.command(cls=_Plain)
def report(
    captures: list[str] = CapturesArg,
    ifmap: list[str] | None = IfmapOpt,
    uplink: list[str] | None = UplinkOpt,
    guest_link: list[str] | None = GuestOpt,
    output: str = typer.Option(
        ...,
        "--output",
        "-o",
        metavar="FILE",
        help="report.html (one self-contained file) or report.md (PNGs written beside it).",
    ),
    full_paths: bool = typer.Option(
        False, "--full-paths", help="Show each capture's full path, not only its file name."
    ),
    json_out: str | None = JsonOpt,
    merge_gap: float = MergeGapOpt,
    merge_prefix: int | None = MergePrefixOpt,
    jobs: int | None = FigureJobsOpt,
) -> None:
    """Write an incident report for someone else: verdict, timeline, loops, implicated
    addresses, explanation and fixes, Wireshark filters, what was read.

    \b
    Example:
      pcaploop report uplink=eth0.pcap tap101.pcap -o report.html
    """
    from .present.report import write_report

    a = _analyze(captures, ifmap, merge_gap, merge_prefix, uplinks=uplink, guest_links=guest_link)
    if json_out:
        _validated_json(a, json_out)
    cmd = _command_line(
        "report",
        captures,
        **{"--ifmap": ifmap, "-o": output, "--json": json_out, "--merge-prefix": merge_prefix},
    )
    with _status("writing the report") as prog:
        written = write_report(a, output, cmd, prog, full_paths=full_paths, jobs=_jobs(jobs))
    if json_out != "-":
        con = _console()
        con.print(a.verdict, markup=False)
        for p in written:
            con.print(f"wrote {p} ({_size(p)})", markup=False)


@app.command(cls=_Plain)
def extract(
    captures: list[str] = CapturesArg,
    ifmap: list[str] | None = IfmapOpt,
    uplink: list[str] | None = UplinkOpt,
    guest_link: list[str] | None = GuestOpt,
    loop: int | None = typer.Option(
        None, "--loop", metavar="N", help="Packets of loop N (see analyze)."
    ),
    dst: str | None = typer.Option(
        None, "--dst", metavar="ADDR", help="Packets of every loop and bounce to ADDR."
    ),
    output: str = typer.Option(..., "--output", "-o", metavar="FILE", help="pcapng file to write."),
    copies_only: bool = typer.Option(
        False,
        "--copies-only",
        help="Only the loop copies (what 'observations' "
        "counts), not the entry packets and ICMP "
        "errors.",
    ),
    max_packets: int | None = typer.Option(
        None,
        "--max-packets",
        metavar="N",
        help="Write at most N packets (an even sample of whole paths).",
    ),
    merge_gap: float = MergeGapOpt,
    merge_prefix: int | None = MergePrefixOpt,
) -> None:
    """Write the implicated packets (original bytes and timestamps, one interface per
    capture point) to a small pcapng file to attach to a ticket.

    \b
    Example:
      pcaploop extract uplink=eth0.pcap tap101.pcap --loop 1 -o loop1.pcapng
    """
    from .present.extract import extract as run

    if (loop is None) == (dst is None):
        raise UsageError("give exactly one of --loop N or --dst ADDR")
    if max_packets is not None and max_packets < 1:
        raise UsageError("--max-packets must be at least 1")
    a = _analyze(captures, ifmap, merge_gap, merge_prefix, uplinks=uplink, guest_links=guest_link)

    def announce(packets: int, nbytes: int) -> None:
        if nbytes >= ANNOUNCE_BYTES:
            hint = "" if max_packets else " (--max-packets N writes a sample)"
            _err_console().print(
                f"writing {packets:,} packets, about {nbytes / 1e6:,.1f} MB{hint}", markup=False
            )

    res = run(
        a,
        output,
        loop=loop,
        dst=dst,
        copies_only=copies_only,
        max_packets=max_packets,
        announce=announce,
    )
    per = ", ".join(f"{k} {v:,}" for k, v in res["capture_points"].items())
    more = f"; {res['left_out']:,} more left out by --max-packets" if res.get("left_out") else ""
    if res.get("kept_of"):
        k, n = res["kept_of"]
        more += f"; the copies of {k:,} of its {n:,} looping packets (a long loop keeps a sample)"
    _console().print(
        f"wrote {res['path']}: {res['packets']:,} packets of {res['what']} "
        f"({per}; {_size(res['path'])}){more}",
        markup=False,
    )


@app.command("export", cls=_Plain)
def export(
    captures: list[str] = CapturesArg,
    output: str = typer.Option(
        ...,
        "-o",
        "--output",
        metavar="FILE",
        help="Packets table: FILE.parquet (needs the 'parquet' extra) or FILE.csv[.gz].",
    ),
    ifmap: list[str] | None = IfmapOpt,
    with_paths: bool = typer.Option(
        False, "--with-paths", help="Also write path observations to FILE.paths.<ext>."
    ),
    with_loops: bool = typer.Option(
        False, "--with-loops", help="Also write the loops table to FILE.loops.<ext>."
    ),
    merge_gap: float = MergeGapOpt,
    merge_prefix: int | None = MergePrefixOpt,
) -> None:
    """Write the packets table (and paths, loops) to Parquet or CSV, so a large capture
    is parsed once; read it back with pcaploop.read_export(FILE), dtypes intact.

    \b
    Example:
      pcaploop export uplink=eth0.pcap tap101.pcap -o incident.parquet --with-loops
    """
    from .present.export import export_paths, write_export

    export_paths(output)  # a wrong file name fails before a long parse
    data: Any
    if with_paths or with_loops:
        data = _analyze(captures, ifmap, merge_gap, merge_prefix, keep="all")
    else:
        from .ingest.loader import load
        from .present.progress import file_progress

        specs, imap, _ = _expand(captures, ifmap)
        with file_progress(specs) as prog:
            data = load(specs, imap, prog)
    for path in write_export(data, output, with_paths=with_paths, with_loops=with_loops):
        typer.echo(f"wrote {path}")


@app.command(cls=_Plain)
def capture(
    output: str = typer.Option(
        ...,
        "--output",
        "-o",
        metavar="DIR",
        help="The bundle directory to write (new, or empty).",
    ),
    duration: float = typer.Option(
        30.0, "--duration", metavar="SECONDS", help="Capture this long (at most a day)."
    ),
    max_packets: int = typer.Option(
        1_000_000,
        "--max-packets",
        metavar="N",
        help="Stop an interface's capture after N packets.",
    ),
    interface: list[str] | None = typer.Option(
        None,
        "--interface",
        "-i",
        metavar="IFACE",
        help="Capture this interface instead of the uplink and guest links found in the "
        "routes ('any': one Linux cooked capture of all). Repeatable.",
    ),
) -> None:
    """Record the evidence on the host itself while it loops (Linux, as root): one
    tcpdump per interface — the uplink (the default route's) and the guest links (those
    carrying /32 or /128 host routes), or -i — without losing packets and bounded in
    time and count, plus the host's routes, neighbours, addresses, links and sysctls,
    and a manifest with each capture's drop counts and the SHA-256 of every file.
    Every command that takes CAPTURE reads the bundle directory. Ctrl-C stops early:
    the bundle is still written (exit status 130). The directory is readable by its
    owner only: captures hold other people's traffic.

    \b
    Example:
      sudo pcaploop capture --duration 20 -o incident/
      pcaploop analyze incident/
    """
    from .bundle.capture import capture_bundle

    def say(line: str) -> None:
        typer.echo(line, err=True)

    res = capture_bundle(
        output,
        duration,
        max_packets,
        interface or (),
        say=say,
        command=_command_line(
            "capture",
            [],
            **{"--duration": duration, "--max-packets": max_packets, "-i": interface, "-o": output},
        ),
    )
    con = _console()
    for c in res.captures:
        st = c["stats"]
        n = st.get("captured")
        drops = [
            f"{st[k]:,} dropped by {k.rsplit('_', 1)[1]}"
            for k in ("dropped_by_kernel", "dropped_by_interface")
            if st.get(k)
        ]
        path = os.path.join(res.path, c["file"])
        con.print(
            f"{c['interface']}: {'?' if n is None else f'{n:,}'} packets captured"
            f"{', ' + ', '.join(drops) if drops else ', none dropped'} → {path} ({_size(path)})"
            + (f"; {c['problem']}" if c.get("problem") else ""),
            markup=False,
        )
    how = "stopped by Ctrl-C" if res.interrupted else f"stopped by {res.manifest['stopped_by']}"
    con.print(f"wrote {res.path} ({len(res.manifest['files']) + 1} files, {how})", markup=False)
    con.print(f"next: pcaploop analyze {res.path}", markup=False)
    if res.interrupted:
        raise typer.Exit(130)


@app.command(cls=_Plain)
def watch(
    sources: list[str] = typer.Argument(
        ...,
        metavar="SOURCE",
        help="Network interfaces (captured live with tcpdump, as root), capture files "
        "still being written (NAME=PATH or PATH), a bundle directory, or '-' (a pcap or "
        "pcapng stream on standard input).",
    ),
    jsonl: bool = typer.Option(
        False, "--jsonl", help="One JSON object per event on standard output, for monitoring."
    ),
    fail_on_loop: bool = typer.Option(
        False, "--fail-on-loop", help="Exit 1 at the first loop (after printing its start)."
    ),
    duration: float | None = typer.Option(
        None, "--duration", metavar="SECONDS", help="Stop after this long (default: Ctrl-C)."
    ),
    quiet: float = typer.Option(
        1.0,
        "--quiet",
        metavar="SECONDS",
        help="A loop ends after this long without a looping copy.",
    ),
    ifmap: list[str] | None = IfmapOpt,
) -> None:
    """Report loops while they happen: one line when a destination starts looping
    (capture point, copies per packet, rate) and one when it stops (duration, looping
    packets, copies), within about a second. Files are followed as they grow; memory
    stays bounded however long it runs. Ctrl-C stops (exit status 130).

    \b
    Example:
      sudo pcaploop watch eth0 tap101
      tcpdump -i tap101 -U -w - | pcaploop watch - --jsonl
    """
    from .analysis.live import watch as run
    from .ingest.specs import parse_ifmap
    from .present import terminal

    imap = parse_ifmap(ifmap) if ifmap else None
    out = _console()

    def show(ev: LoopEvent) -> None:
        if jsonl:
            sys.stdout.write(json.dumps(ev.to_json()) + "\n")
            sys.stdout.flush()
        else:
            terminal.watch_event(out, ev)

    def ready(names: list[str]) -> None:
        typer.echo(f"watching {', '.join(names)}; Ctrl-C to stop", err=True)

    res = run(sources, show, duration, quiet, stop_at_first=fail_on_loop, ifmap=imap, ready=ready)
    for w in res.warnings:
        typer.echo(f"warning: {w}", err=True)
    typer.echo(
        f"{res.reason}: {res.packets:,} IP packet(s) read, {res.loops} loop(s) started", err=True
    )
    if res.reason == "interrupted":
        raise typer.Exit(130)
    if fail_on_loop and res.loops:
        raise typer.Exit(1)


def main() -> None:
    """Entry point: library errors become one line and exit status 2."""
    if hasattr(signal, "SIGPIPE"):  # `pcaploop … | head`: end quietly, as cat does
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        _run_app()
    finally:
        # The interpreter's last garbage collection walks every object left: once
        # numba is loaded, its type system and compiled code, about 0.25 s of every
        # large command's run.  The work is done and the outputs are closed, so
        # those objects are frozen out of it; exit handlers still run.
        gc.freeze()


def _run_app() -> None:
    try:
        app(standalone_mode=True)
    except SystemExit as exc:  # every command ends here; Ctrl-C cut its analysis short
        if exc.code in (0, None) and any(a.partial for a in _RUNS):
            sys.exit(130)
        raise
    except PcaploopError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("Error: interrupted", file=sys.stderr)
        sys.exit(130)
    except MemoryError:
        print("Error: out of memory", file=sys.stderr)
        sys.exit(2)
    except Exception as exc:  # a bug: still one line, unless debugging
        if os.environ.get("PCAPLOOP_DEBUG"):
            raise
        print(
            f"Error: internal error ({type(exc).__name__}: {exc}); set PCAPLOOP_DEBUG=1 "
            "for a traceback and please report it",
            file=sys.stderr,
        )
        sys.exit(2)
