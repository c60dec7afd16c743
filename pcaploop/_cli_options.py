"""Options shared by every command (one definition, so help texts agree)."""
from __future__ import annotations

import typer

CapturesArg = typer.Argument(..., metavar="CAPTURE...",
                             help="Capture files (pcap, pcapng, .gz), optionally NAME=PATH.")
IfmapOpt = typer.Option(None, "--ifmap", metavar="MAP",
                        help="SLL2 interface names: INDEX=NAME[,…] or a file with the host's "
                             "'ip -o link' output. Repeatable.")
JsonOpt = typer.Option(None, "--json", metavar="FILE", help="Also write JSON to FILE ('-' = stdout).")
MergeGapOpt = typer.Option(10.0, "--merge-gap", metavar="SECONDS",
                           help="Looping packets closer than this form one loop.")
MergePrefixOpt = typer.Option(None, "--merge-prefix", metavar="N",
                              help="Merge IPv4 loops by destination /N, 0-32 (Hengartner et al. "
                                   "used 24); IPv6 destinations stay whole.")
