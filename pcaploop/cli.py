"""Command line: maps options onto library calls and prints; no analysis here."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, List, Optional

import typer

from .errors import PcaploopError

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode="rich",
                  pretty_exceptions_enable=False,
                  help="Find routing loops between a virtualisation host and its guests "
                       "in packet captures.")

from ._cli_options import CapturesArg, IfmapOpt, JsonOpt, MergeGapOpt, MergePrefixOpt


def _console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


def _emit_json(doc: dict[str, Any], target: str) -> None:
    text = json.dumps(doc, indent=2, allow_nan=False)
    if target == "-":
        sys.stdout.write(text + "\n")
    else:
        try:
            Path(target).write_text(text + "\n")
        except OSError as exc:
            raise PcaploopError(f"{target}: cannot write JSON: {exc.strerror}") from None


def _specs(captures: List[str]):
    from .loader import CaptureSpec

    return [CaptureSpec.parse(c) for c in captures]


@app.command()
def info(captures: List[str] = CapturesArg, ifmap: Optional[List[str]] = IfmapOpt,
         json_out: Optional[str] = JsonOpt) -> None:
    """What is in the captures: per capture point format, link type, records, what was
    skipped and why, time span, directions, protocols and top talkers.

    [bold]Example:[/bold] pcaploop info uplink=eth0.pcap tap101.pcap
    """
    from ._progress import file_progress
    from .info import capture_info
    from . import render

    specs = _specs(captures)
    with file_progress(specs) as prog:
        doc = capture_info(specs, ifmap, prog)
    if json_out:
        _emit_json(doc, json_out)
    if json_out != "-":
        render.info_tables(_console(), doc)


@app.command()
def analyze(captures: List[str] = CapturesArg, ifmap: Optional[List[str]] = IfmapOpt,
            json_out: Optional[str] = JsonOpt,
            merge_gap: float = MergeGapOpt,
            merge_prefix: Optional[int] = MergePrefixOpt,
            fail_on_loop: bool = typer.Option(False, "--fail-on-loop",
                                              help="Exit 1 when a loop is found (monitoring).")
            ) -> None:
    """Find routing loops: verdict, loops table, implicated addresses, fixes.

    [bold]Example:[/bold] pcaploop analyze uplink=eth0.pcap tap101.pcap --json report.json
    """
    a = _analyze(captures, ifmap, merge_gap, merge_prefix)
    if json_out:
        from .validate import validate_json

        doc = a.to_json()
        validate_json(doc)
        _emit_json(doc, json_out)
    if json_out != "-":
        from . import render

        render.analysis(_console(), a)
    if fail_on_loop and a.loops:
        raise typer.Exit(1)


def _analyze(captures, ifmap, merge_gap=10.0, merge_prefix=None, keep="evidence"):
    from ._progress import file_progress
    from .analysis import analyze as run

    if merge_gap < 0:
        raise PcaploopError("--merge-gap must not be negative")
    if merge_prefix is not None and not 0 <= merge_prefix <= 32:
        raise PcaploopError("--merge-prefix must be an IPv4 prefix length, 0 to 32")
    specs = _specs(captures)
    with file_progress(specs) as prog:
        return run(specs, ifmap, merge_gap, merge_prefix, prog, keep=keep)


@app.command()
def paths(captures: List[str] = CapturesArg, ifmap: Optional[List[str]] = IfmapOpt,
          dst: Optional[str] = typer.Option(None, "--dst", metavar="ADDR",
                                            help="Only paths to this destination."),
          loop: Optional[int] = typer.Option(None, "--loop", metavar="N",
                                             help="Only paths of loop N (see analyze)."),
          limit: int = typer.Option(5, "--limit", metavar="N", help="Show at most N paths."),
          all_paths: bool = typer.Option(False, "--all",
                                         help="Also paths that do not loop or bounce.")) -> None:
    """Reconstructed paths hop by hop: capture point, direction, TTL, time since first seen.

    [bold]Example:[/bold] pcaploop paths tap101.pcap --dst 203.0.113.7 --limit 2
    """
    from . import render

    # other packets' paths only when asked for: they cost memory on a big capture
    a = _analyze(captures, ifmap, keep="paths" if (dst or all_paths) else "evidence")
    rows = a.path_rows()
    if dst:
        from .addr import from_text, to_text

        try:
            want = to_text(*from_text(dst))
        except ValueError:
            raise PcaploopError(f"--dst {dst!r} is not an IP address") from None
        rows = rows[rows["dst"] == want]
    if loop is not None:
        if not any(lp["id"] == loop for lp in a.loops):
            raise PcaploopError(f"there is no loop {loop} (found {len(a.loops)})")
        rows = rows[rows["loop"].eq(loop).fillna(False).astype(bool)]
    elif not all_paths:
        rows = rows[rows["looping"] | rows["bounce"]]
    render.paths(_console(), rows, limit)


from ._cli_export import register as _register_export  # noqa: E402
from ._cli_present import register as _register_present  # noqa: E402

_register_present(app)
_register_export(app)


def main() -> None:
    """Entry point: library errors become one line and exit status 2."""
    try:
        app(standalone_mode=True)
    except PcaploopError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("Error: interrupted", file=sys.stderr)
        sys.exit(2)
    except MemoryError:
        print("Error: out of memory", file=sys.stderr)
        sys.exit(2)
    except Exception as exc:  # a bug: still one line, unless debugging
        if os.environ.get("PCAPLOOP_DEBUG"):
            raise
        print(f"Error: internal error ({type(exc).__name__}: {exc}); set PCAPLOOP_DEBUG=1 "
              "for a traceback and please report it", file=sys.stderr)
        sys.exit(2)
