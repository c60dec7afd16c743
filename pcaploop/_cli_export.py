"""The ``pcaploop export`` command: parse captures once, explore the tables many times.

Kept out of :mod:`pcaploop.cli` so the command only maps options onto
:func:`pcaploop.export.write_export`; ``cli.py`` wires it in with
``register(app)``.

>>> from pcaploop.cli import app          # doctest: +SKIP
>>> register(app)                         # doctest: +SKIP
"""
from __future__ import annotations

from typing import List, Optional

import typer


def register(app: typer.Typer) -> None:
    """Add the ``export`` command to ``app`` (the ``pcaploop`` Typer application).

    >>> register(typer.Typer())
    """
    from ._cli_options import CapturesArg, IfmapOpt

    @app.command("export")
    def export(captures: List[str] = CapturesArg,
               output: str = typer.Option(..., "-o", "--output", metavar="FILE",
                                          help="Packets table: FILE.parquet (needs the "
                                               "'parquet' extra) or FILE.csv[.gz]."),
               ifmap: Optional[List[str]] = IfmapOpt,
               with_paths: bool = typer.Option(False, "--with-paths",
                                               help="Also write path observations to "
                                                    "FILE.paths.<ext>."),
               with_loops: bool = typer.Option(False, "--with-loops",
                                               help="Also write the loops table to "
                                                    "FILE.loops.<ext>."),
               merge_gap: float = typer.Option(10.0, "--merge-gap", metavar="SECONDS",
                                               help="Looping packets closer than this form "
                                                    "one loop (with --with-loops)."),
               merge_prefix: Optional[int] = typer.Option(None, "--merge-prefix", metavar="N",
                                                          help="Merge loops by destination "
                                                               "/N (with --with-loops).")
               ) -> None:
        """Write the packets table (and paths, loops) to Parquet or CSV, so a large capture
        is parsed once; read it back with pcaploop.read_export(FILE), dtypes intact.

        [bold]Example:[/bold] pcaploop export uplink=eth0.pcap tap101.pcap -o incident.parquet --with-paths --with-loops
        """
        from .export import export_paths, write_export

        export_paths(output)  # a wrong file name fails before a long parse
        if with_paths or with_loops:
            from .cli import _analyze

            data = _analyze(captures, ifmap, merge_gap, merge_prefix, keep="all")
        else:
            from ._progress import file_progress
            from .cli import _specs
            from .loader import load

            specs = _specs(captures)
            with file_progress(specs) as prog:
                data = load(specs, ifmap, prog)
        for path in write_export(data, output, with_paths=with_paths, with_loops=with_loops):
            typer.echo(f"wrote {path}")
