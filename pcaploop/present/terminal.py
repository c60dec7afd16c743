"""Terminal output (rich tables) for the CLI. Presentation only."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def _span(first: str | None, last: str | None) -> str:
    """``HH:MM:SS–HH:MM:SS`` (UTC; the date is in the table title, ns in --json)."""
    if not first:
        return "-"
    return f"{first[11:19]}–{last[11:19] if last else '?'}"


def _dates(captures: list[dict[str, Any]]) -> str:
    days = sorted({c[k][:10] for c in captures for k in ("first_seen", "last_seen") if c[k]})
    return " to ".join([days[0], days[-1]] if len(days) > 1 else days) or "no packets"


def info_tables(con: Console, doc: dict[str, Any]) -> None:
    t = Table(
        title=f"Capture points ({_dates(doc['captures'])}, times UTC)",
        title_justify="left",
        header_style="bold",
    )
    for col, just in (
        ("point", "left"),
        ("format", "left"),
        ("records", "right"),
        ("decoded", "right"),
        ("skipped", "left"),
        ("first–last seen", "left"),
    ):
        t.add_column(col, justify=just, overflow="fold", no_wrap=col == "first–last seen")
    for c in doc["captures"]:
        skipped = ", ".join(f"{k} {v:,}" for k, v in c["skipped"].items() if v) or "0"
        if c["truncated_tail"]:
            skipped += " [red](tail damaged)[/red]"
        if c.get("capture_dropped"):
            skipped += f" [red](capture dropped {c['capture_dropped']:,})[/red]"
        t.add_row(
            escape(c["name"]),
            f"{c['format']} {c['linktype']}",
            f"{c['records']:,}",
            f"{c['decoded']:,}",
            skipped,
            _span(c["first_seen"], c["last_seen"]),
        )
    con.print(t)
    t = Table(title="Traffic", title_justify="left", header_style="bold")
    for col in ("point", "directions", "protocols", "top talkers (packets)"):
        t.add_column(col, overflow="fold")
    for c in doc["captures"]:
        t.add_row(
            escape(c["name"]),
            ", ".join(f"{k} {v:,}" for k, v in c["directions"].items()) or "-",
            ", ".join(f"{k} {v:,}" for k, v in list(c["protocols"].items())[:4]) or "-",
            ", ".join(f"{x['address']} {x['packets']:,}" for x in c["top_talkers"][:3]) or "-",
        )
    con.print(t)
    for w in doc.get("warnings", []):
        con.print(f"[yellow]warning:[/yellow] {escape(w)}")


def analysis(con: Console, a) -> None:
    s = a.summary
    style = "bold red" if s.loops else ("bold yellow" if s.bounces else "bold green")
    con.print(f"[{style}]{escape(a.verdict)}[/{style}]")
    for w in a.warnings:
        con.print(f"[yellow]warning:[/yellow] {escape(w)}")
    if a.loops:
        t = Table(title="Loops", title_justify="left", header_style="bold")
        for col, just in (
            ("#", "right"),
            ("destination", "left"),
            ("kind", "left"),
            ("points", "left"),
            ("TTL step", "right"),
            ("packets", "right"),
            ("copies", "right"),
            ("×", "right"),
            ("seconds", "right"),
            ("peak extra/s", "right"),
        ):
            t.add_column(col, justify=just, no_wrap=col in ("destination", "copies"))
        for lp in a.loops:
            amp = f"{lp.amplification:.1f}" if lp.amplification is not None else "-"
            peak = lp.extra_pps_peak
            t.add_row(
                str(lp.id),
                lp.destination,
                lp.kind + (" est." if lp.estimated else ""),
                escape(", ".join(lp.capture_points)),
                str(lp.ttl_step if lp.ttl_step is not None else "-"),
                f"{lp.looping_packets:,}",
                f"{lp.observations:,}",
                amp,
                f"{lp.duration_s:.2f}" if lp.duration_s is not None else "-",
                f"{peak:,.0f}" if peak is not None else "-",
            )
        con.print(t)
    if a.bounces:
        t = Table(
            title="Bounces (returned by a guest, then dropped)",
            title_justify="left",
            header_style="bold",
        )
        for col in ("destination", "capture point", "packets"):
            t.add_column(col)
        for b in a.bounces:
            t.add_row(b.destination, escape(b.capture_point), f"{b['packets']:,}")
        con.print(t)
    if a.implicated:
        t = Table(title="Implicated addresses", title_justify="left", header_style="bold")
        for col in ("address", "roles", "capture point", "packets"):
            t.add_column(col)
        for e in a.implicated[:20]:
            t.add_row(
                e.address, ", ".join(e.roles), escape(e.capture_point or "-"), f"{e.packets:,}"
            )
        con.print(t)
    for lp in a.loops:
        con.print(f"\n[bold]Loop {lp.id}[/bold] — {escape(lp.explanation)}")
        fates = ", ".join(f"{k} {v}" for k, v in lp.fates.items() if v) or "-"
        drops = ", ".join(f"{k} {v}" for k, v in lp.dropped_by.items() if v) or "-"
        te = lp.icmp_time_exceeded
        senders = ", ".join(lp.icmp_senders) or "-"
        con.print(
            f"  fates: {fates}; dropped by: {drops}; ICMP time-exceeded: {te} "
            f"(from {escape(senders)})"
        )
        con.print(
            "  [bold]fixes[/bold] (as applied in the lab's fix-* scenarios, "
            "where each stopped the loop):"
        )
        for f in lp.fixes:
            con.print(f"  • {escape(f)}")


def paths(con: Console, rows, limit: int) -> None:
    shown = 0
    for pid, grp in rows.groupby("path", sort=False):
        if shown >= limit:
            break
        shown += 1
        first = grp.iloc[0]
        kind = "looping" if first["looping"] else ("bounce" if first["bounce"] else "path")
        t = Table(
            title=f"Path {pid} ({kind}) {first['src']} → {first['dst']}",
            title_justify="left",
            header_style="bold",
        )
        for col in ("hop", "capture point", "direction", "TTL", "+ms"):
            t.add_column(col, justify="right" if col in ("hop", "TTL", "+ms") else "left")
        for k, r in enumerate(grp.itertuples(), start=1):
            t.add_row(
                str(k),
                escape(str(r.capture_point)),
                str(r.direction),
                str(r.ttl),
                f"{r.since_first_ms:.3f}",
            )
        con.print(t)
    total = rows["path"].nunique() if len(rows) else 0
    if total > shown:
        con.print(f"({total - shown} more path(s); use --limit)")
    if total == 0:
        con.print("no matching paths")
