"""CLI commands of the present stage: ``plot``, ``report``, ``extract``.

Kept apart from :mod:`pcaploop.cli` so the analysis commands stay small;
``cli`` calls :func:`register` on its app.  Like the rest of the CLI these
only map options onto library calls (:mod:`pcaploop.plots`,
:mod:`pcaploop.report`, :mod:`pcaploop.extract`) and print what was written.
"""
from __future__ import annotations

import os
import shlex
import sys
from contextlib import contextmanager
from typing import Callable, Iterator, List, Optional

import typer

from ._cli_options import CapturesArg, IfmapOpt, MergeGapOpt, MergePrefixOpt  # noqa: F401


@contextmanager
def _status(what: str) -> Iterator[Callable[[str], None] | None]:
    """A spinner on stderr naming the plot being drawn; nothing when not a terminal."""
    if not sys.stderr.isatty() or os.environ.get("CI"):
        yield None
        return
    from rich.console import Console

    with Console(stderr=True).status(what) as st:
        yield lambda stem: st.update(f"{what}: {stem}")


def _command_line(name: str, captures: List[str], **opts) -> str:
    """The command as typed when run from a shell, else rebuilt from the options."""
    if len(sys.argv) > 1 and sys.argv[1] == name:
        return shlex.join(["pcaploop", *sys.argv[1:]])
    words = ["pcaploop", name, *captures]
    for flag, value in opts.items():
        if value is None or value is False:
            continue
        values = value if isinstance(value, list) else [value]
        for v in values:
            words += [flag] if v is True else [flag, str(v)]
    return shlex.join(words)


def _size(path: str) -> str:
    try:
        n = os.path.getsize(path)
    except OSError:
        return "?"
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def register(app: typer.Typer) -> None:
    """Add ``plot``, ``report`` and ``extract`` to the pcaploop app."""

    @app.command()
    def plot(captures: List[str] = CapturesArg, ifmap: Optional[List[str]] = IfmapOpt,
             out: str = typer.Option(..., "--out", "-o", metavar="DIR",
                                     help="Directory for the plots (created if missing)."),
             svg: bool = typer.Option(False, "--svg", help="Also write SVG files."),
             merge_gap: float = MergeGapOpt, merge_prefix: Optional[int] = MergePrefixOpt
             ) -> None:
        """Draw the plots of the loops found: timeline, TTL staircase and path ladder per
        loop, amplification, copies and cycle-time distributions (PNG, and SVG on request).

        [bold]Example:[/bold] pcaploop plot uplink=eth0.pcap tap101.pcap --out plots/
        """
        from .cli import _analyze, _console
        from .plots import write_plots

        a = _analyze(captures, ifmap, merge_gap, merge_prefix)
        with _status("drawing") as prog:
            paths = write_plots(a, out, svg=svg, progress=prog)
        con = _console()
        for p in paths:
            con.print(f"wrote {p}", markup=False)

    @app.command()
    def report(captures: List[str] = CapturesArg, ifmap: Optional[List[str]] = IfmapOpt,
               output: str = typer.Option(..., "--output", "-o", metavar="FILE",
                                          help="report.html (one self-contained file) or "
                                               "report.md (PNGs written beside it)."),
               json_out: Optional[str] = typer.Option(None, "--json", metavar="FILE",
                                                      help="Also write JSON to FILE "
                                                           "('-' = stdout)."),
               merge_gap: float = MergeGapOpt, merge_prefix: Optional[int] = MergePrefixOpt
               ) -> None:
        """Write an incident report for someone else: verdict, timeline, loops, implicated
        addresses, explanation and fixes, Wireshark filters, what was read.

        [bold]Example:[/bold] pcaploop report uplink=eth0.pcap tap101.pcap -o report.html
        """
        from .cli import _analyze, _console, _emit_json
        from .report import write_report

        a = _analyze(captures, ifmap, merge_gap, merge_prefix)
        if json_out:
            from .validate import validate_json

            doc = a.to_json()
            validate_json(doc)
            _emit_json(doc, json_out)
        cmd = _command_line("report", captures, **{"--ifmap": ifmap, "-o": output,
                                                   "--json": json_out,
                                                   "--merge-prefix": merge_prefix})
        with _status("writing the report") as prog:
            paths = write_report(a, output, cmd, prog)
        if json_out != "-":
            con = _console()
            con.print(a.verdict, markup=False)
            for p in paths:
                con.print(f"wrote {p} ({_size(p)})", markup=False)

    @app.command()
    def extract(captures: List[str] = CapturesArg, ifmap: Optional[List[str]] = IfmapOpt,
                loop: Optional[int] = typer.Option(None, "--loop", metavar="N",
                                                   help="Packets of loop N (see analyze)."),
                dst: Optional[str] = typer.Option(None, "--dst", metavar="ADDR",
                                                  help="Packets of every loop and bounce to ADDR."),
                output: str = typer.Option(..., "--output", "-o", metavar="FILE",
                                           help="pcapng file to write."),
                copies_only: bool = typer.Option(False, "--copies-only",
                                                 help="Only the loop copies (what 'observations' "
                                                      "counts), not the entry packets and ICMP "
                                                      "errors."),
                merge_gap: float = MergeGapOpt, merge_prefix: Optional[int] = MergePrefixOpt
                ) -> None:
        """Write the implicated packets (original bytes and timestamps, one interface per
        capture point) to a small pcapng file to attach to a ticket.

        [bold]Example:[/bold] pcaploop extract uplink=eth0.pcap tap101.pcap --loop 1 -o loop1.pcapng
        """
        from .cli import _analyze, _console
        from .errors import UsageError
        from .extract import extract as run

        if (loop is None) == (dst is None):
            raise UsageError("give exactly one of --loop N or --dst ADDR")
        a = _analyze(captures, ifmap, merge_gap, merge_prefix)
        res = run(a, output, loop=loop, dst=dst, copies_only=copies_only)
        per = ", ".join(f"{k} {v:,}" for k, v in res["capture_points"].items())
        _console().print(f"wrote {res['path']}: {res['packets']:,} packets of {res['what']} "
                         f"({per}; {_size(res['path'])})", markup=False)
