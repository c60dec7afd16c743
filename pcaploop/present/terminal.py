"""Terminal output for the CLI, laid out for the terminal's width.  Presentation only.

What a person reads in an 80-column terminal, top to bottom: the verdict,
the capture points and what they are, the loops (one short block each, or
a summary grouped by link and prefix when there are many), the addresses to
look at, and why and how to fix — once per cause.  Numbers are never cut:
a line that would not fit wraps between words, and a command to paste sits
on its own indented line, continued with `` \\`` where it must wrap.  Text
taken from a capture is stripped of control characters and rich markup.
"""

from __future__ import annotations

import re
import shlex
import textwrap
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from ..addr import network_text

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from ..analysis.model import Loop
    from ..analysis.pipeline import Analysis
    from ..analysis.watch import LoopEvent

#: loops shown one by one before the rest are summarised (``--all`` shows every one)
MAX_LOOPS = 10
#: implicated addresses listed
MAX_IMPLICATED = 12
INDENT = "  "
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_ROLE_WORDS = {"uplink": "uplink", "guest-link": "guest link", "unknown": "role unknown"}
_DROPPER = {"guest": "the guest", "host": "the host", "router": "the router", "unknown": "unknown"}


def clean(text: Any) -> str:
    """Text from a capture, safe to print: control characters replaced, markup escaped."""
    return escape(_CONTROL.sub("?", str(text)))


#: a space that never breaks a line (``name{TIE}count`` stays together); printed as a space
TIE = "\xa0"


class Out:
    """Lines for one console, wrapped to its width."""

    def __init__(self, con: Console):
        self.con = con
        self.width = max(40, con.width)

    def line(self, text: str = "", style: str | None = None) -> None:
        """One line as is (the caller made it fit), markup allowed."""
        self.con.print(
            f"[{style}]{text}[/{style}]" if style else text,
            emoji=False,  # ":100:" in 2001:db8:0:100::1 is no emoji
            soft_wrap=False,
            overflow="ignore",
            crop=False,
        )

    def para(
        self, text: str, indent: str = INDENT, first: str | None = None, style: str | None = None
    ) -> None:
        """Plain text (already escaped) wrapped between words, hanging indent."""
        lead = first if first is not None else indent
        for ln in textwrap.wrap(
            text,
            self.width,
            initial_indent=lead,
            subsequent_indent=indent,
            break_long_words=False,
            break_on_hyphens=False,
        ) or [lead]:
            self.line(ln.replace(TIE, " "), style)

    def command(self, cmd: str, indent: str) -> None:
        """A shell command on its own lines: wrapped with `` \\`` continuations; a
        multi-line script (a here-document) printed as a block."""
        if "\n" in cmd:
            for ln in cmd.splitlines():
                self.line(escape(indent + ln))
            return
        room = self.width - len(indent) - 2
        words = cmd.split(" ")
        cur = ""
        lines = []
        for w in words:
            if cur and len(cur) + 1 + len(w) > room:
                lines.append(cur)
                cur = w
            else:
                cur = f"{cur} {w}" if cur else w
        lines.append(cur)
        for k, ln in enumerate(lines):
            more = " \\" if k < len(lines) - 1 else ""
            self.line(escape((indent if k == 0 else indent + "  ") + ln + more))

    def prose_with_commands(self, text: str, indent: str, first: str | None = None) -> None:
        """Text whose `backtick` spans are commands: prose wrapped, each command on its
        own deeper-indented line(s); a span that is a single word stays in the prose."""
        parts = re.split(r"`([^`]*)`", text)
        lead = first if first is not None else indent
        buf = ""
        for k, part in enumerate(parts):
            if k % 2 == 0:
                buf += part
                continue
            if " " not in part and "\n" not in part:
                buf += part  # a word (`all`), not a command
                continue
            if buf.strip():
                self.para(escape(buf.strip()), indent, lead)
                lead = indent
            buf = ""
            cmds = [part] if "\n" in part else [c.strip() for c in part.split("; ")]
            for cmd in cmds:
                self.command(cmd, indent + "  ")
        rest = buf.strip().lstrip(".;,").strip()
        if rest:
            self.para(
                escape(
                    rest[0].upper() + rest[1:]
                    if rest[0].islower() and buf.strip()[:1] in ".;"
                    else rest
                ),
                indent,
                lead,
            )


def _n(v: int | float | None, fmt: str = "{:,}") -> str:
    return "-" if v is None else fmt.format(v)


def _span(first: str | None, last: str | None) -> str:
    """``HH:MM:SS–HH:MM:SS`` (UTC; the date is in the heading, ns in --json)."""
    if not first:
        return "-"
    return f"{first[11:19]}–{last[11:19] if last else '?'}"


def _dates(captures: Sequence[dict[str, Any]]) -> str:
    days = sorted({c[k][:10] for c in captures for k in ("first_seen", "last_seen") if c[k]})
    return " to ".join([days[0], days[-1]] if len(days) > 1 else days) or "no packets"


def duration(seconds: float | None) -> str:
    """A duration with a unit a person reads: µs, ms, s, min, h."""
    if seconds is None:
        return "-"
    for unit, size, upto in (
        ("µs", 1e-6, 1e-3),
        ("ms", 1e-3, 1.0),
        ("s", 1.0, 120.0),
        ("min", 60.0, 7200.0),
    ):
        if seconds < upto:
            value = seconds / size
            return f"{value:.3g} {unit}" if value < 100 else f"{value:,.0f} {unit}"
    return f"{seconds / 3600:,.1f} h"


# --- info ----------------------------------------------------------------------------------
def info_tables(con: Console, doc: dict[str, Any]) -> None:
    """``pcaploop info``: one block per capture point."""
    o = Out(con)
    caps = doc["captures"]
    o.line(f"Capture points ({_dates(caps)}, times UTC)", "bold")
    width = min(max((len(c["name"]) for c in caps), default=4) + 2, 24)
    for c in caps:
        name = clean(c["name"])
        lead = INDENT + name.ljust(width) if len(c["name"]) < width else INDENT + name + " "
        sub = INDENT + " " * width
        skipped = (
            ", ".join(f"{k.replace('_', '-')} {v:,}" for k, v in c["skipped"].items() if v)
            or "none"
        )
        head = (
            f"{c['format']} {c['linktype']}: {c['records']:,} records, "
            f"{c['decoded']:,} decoded, skipped {skipped}; "
            f"{_span(c['first_seen'], c['last_seen'])}"
        )
        o.para(head, sub, lead)
        snap = c.get("snaplen")
        if snap is not None:
            o.para(f"snaplen {snap:,}; {c.get('truncated', 0):,} frame(s) cut by it", sub)
        if c["truncated_tail"]:
            o.para(f"damaged tail: {clean(c.get('problem') or 'cut off')}", sub, style="red")
        if c.get("capture_dropped"):
            o.para(
                f"the capture itself dropped {c['capture_dropped']:,} packet(s)", sub, style="red"
            )
        dirs = ", ".join(f"{k}{TIE}{v:,}" for k, v in c.get("directions", {}).items()) or "-"
        protos = ", ".join(
            f"{clean(k)}{TIE}{v:,}" for k, v in list(c.get("protocols", {}).items())[:5]
        )
        o.para(f"directions: {dirs}; protocols: {protos or '-'}", sub)
        about = "" if c.get("top_talkers_exact", True) else TIE + "(at least)"
        talkers = ", ".join(
            f"{x['address']}{TIE}{x['packets']:,}" for x in c.get("top_talkers", [])[:3]
        )
        if talkers:
            o.para(f"top talkers{about}: {talkers}", sub)
    files = doc.get("files") or []
    if files:
        o.line()
        o.line("Files", "bold")
        for f in files:
            size = "size unknown" if f.get("size") is None else f"{f['size']:,} bytes"
            o.para(f"{clean(f['path'])}: {size}", INDENT * 2, INDENT)
            if f.get("sha256"):
                o.line(INDENT * 2 + "sha256 " + f["sha256"])
        if not any(f.get("sha256") for f in files):
            o.para("(--sha256 adds each file's SHA-256, for the ticket)", INDENT * 2, INDENT * 2)
    for w in doc.get("warnings", []):
        o.para("warning: " + clean(w), INDENT, "", "yellow")


# --- analyze ---------------------------------------------------------------------------------
def analysis(con: Console, a: Analysis, all_loops: bool = False) -> None:
    """``pcaploop analyze``: verdict, roles, loops, bounces, addresses, why and fixes."""
    o = Out(con)
    s = a.summary
    style = "bold red" if s.loops else ("bold yellow" if s.bounces else "bold green")
    o.para(escape(a.verdict), "", "", style)
    for w in a.warnings:
        o.para("warning: " + clean(w), INDENT, "", "yellow")
    _roles(o, a)
    if a.loops:
        if len(a.loops) <= MAX_LOOPS or all_loops:
            _loop_blocks(o, a, a.loops)
        else:
            _loop_summary(o, a)
    if a.bounces:
        o.line()
        o.line(
            f"Bounces ({sum(b.packets for b in a.bounces):,} packets returned by a guest, "
            "then dropped)",
            "bold",
        )
        for b in a.bounces:
            o.para(
                f"{b.destination} on {clean(b.capture_point)}: {b.packets:,} packet(s)",
                INDENT * 2,
                INDENT,
            )
    _implicated(o, a)
    _causes(o, a, all_loops)


def _roles(o: Out, a: Analysis) -> None:
    if not a.roles:
        return
    o.line()
    o.line("Capture points", "bold")
    width = min(max(len(r.name) for r in a.roles) + 2, 24)
    for r in a.roles:
        name = clean(r.name)
        lead = INDENT + (name.ljust(width) if len(r.name) < width else name + " ")
        word = _ROLE_WORDS[r.role]
        why = "; ".join(clean(e) for e in r.evidence) or "nothing in the capture tells"
        o.para(f"{word} ({r.confidence}): {why}", INDENT + " " * width, lead)


def _where(a: Analysis, lp: Loop) -> str:
    pts = [f"{clean(p)} ({_ROLE_WORDS[a.role_of(p)]})" for p in lp.capture_points]
    return ", ".join(pts) or "an unseen link"


def _loop_blocks(o: Out, a: Analysis, loops: Iterable[Loop]) -> None:
    o.line()
    o.line(f"Loops ({len(a.loops):,})", "bold")
    for lp in loops:
        kind = {
            "l3": "routed loop",
            "l2": "layer-2 loop",
            "inferred": "loop behind the capture point (inferred)",
        }[lp.kind]
        step = f", TTL −{lp.ttl_step} per round" if lp.ttl_step else ""
        o.para(f"#{lp.id} {lp.destination} on {_where(a, lp)}: {kind}{step}", INDENT * 3, INDENT)
        sub = INDENT * 3
        est = " (estimated)" if lp.estimated else ""
        per = "; ".join(
            f"{n:,} entering with TTL {t}"
            for t, n in sorted(lp.entry_ttls.items(), key=lambda kv: -kv[1])[:3]
        )
        o.para(
            f"{lp.looping_packets:,} looping packet(s) → {lp.observations:,} copies{est}"
            + (f" ({per})" if per else ""),
            sub,
        )
        when = f"{_span(lp.first_seen, lp.last_seen)} UTC ({duration(lp.duration_s)})"
        if lp.cycle_time_ms is not None:
            when += f", one round {duration(lp.cycle_time_ms / 1e3)}"
        if lp.extra_pps_peak:
            when += f", peak {lp.extra_pps_peak:,.0f} extra packets/s"
        o.para(when, sub)
        drops = ", ".join(f"{_DROPPER.get(k, k)} {v:,}" for k, v in lp.dropped_by.items() if v)
        fates = f"expired {lp.fates.get('expired', 0):,}"
        if drops:
            fates += f" (dropped by {drops})"
        for k in ("escaped", "capture-ended"):
            if lp.fates.get(k):
                fates += f"; {k.replace('-', ' ')} {lp.fates[k]:,}"
        te = f"; ICMP time-exceeded {lp.icmp_time_exceeded:,}"
        if lp.icmp_senders:
            te += " from " + ", ".join(lp.icmp_senders[:3])
        o.para(fates + te, sub)
        if lp.after_end and lp.after_end.get("packets"):
            o.para(
                f"after its last copy the host dropped {lp.after_end['packets']:,} more "
                f"packet(s) for {lp.destination} (unreachable errors: "
                f"{lp.after_end.get('unreachable_errors', 0):,})",
                sub,
            )
        ev = a.evidence.get(lp.id)
        if ev is not None and ev.kept is not None:
            o.para(
                f"copies kept for paths, plots and extract: those of {len(ev.kept):,} of its "
                f"{lp.looping_packets:,} looping packets (a long loop keeps a sample; the "
                "numbers above count them all)",
                sub,
            )


def _prefix(dst: str) -> str:
    return network_text(dst, 64 if ":" in dst else 24)


def _loop_summary(o: Out, a: Analysis) -> None:
    loops = a.loops
    o.line()
    o.line(f"Loops ({len(loops):,})", "bold")
    by_point: dict[str, list[Loop]] = defaultdict(list)
    by_prefix: dict[str, list[Loop]] = defaultdict(list)
    for lp in loops:
        by_point[", ".join(lp.capture_points)].append(lp)
        by_prefix[_prefix(lp.destination)].append(lp)

    def line(key: str, group: list[Loop]) -> str:
        return (
            f"{key}: {len(group):,} loop(s), {sum(x.looping_packets for x in group):,} "
            f"looping packets, {sum(x.observations for x in group):,} copies"
        )

    o.line(INDENT + "by capture point")
    for key, group in sorted(by_point.items(), key=lambda kv: -len(kv[1]))[:MAX_LOOPS]:
        o.para(line(clean(key), group), INDENT * 3, INDENT * 2)
    o.line(INDENT + "by destination prefix")
    for key, group in sorted(by_prefix.items(), key=lambda kv: -len(kv[1]))[:MAX_LOOPS]:
        o.para(line(key, group), INDENT * 3, INDENT * 2)
    top = sorted(loops, key=lambda x: (-x.observations, x.id))[:MAX_LOOPS]
    o.line(INDENT + f"top {len(top)} by copies")
    for lp in top:
        o.para(
            f"#{lp.id} {lp.destination} on {clean(', '.join(lp.capture_points))}: "
            f"{lp.looping_packets:,} → {lp.observations:,} copies",
            INDENT * 3,
            INDENT * 2,
        )
    o.para(
        f"… and {len(loops) - len(top):,} more (--all lists every one; --json or "
        "report for everything)",
        INDENT,
        INDENT,
    )


def _implicated(o: Out, a: Analysis) -> None:
    if not a.implicated:
        return
    o.line()
    o.line("Implicated addresses", "bold")
    for e in a.implicated[:MAX_IMPLICATED]:
        where = f" at {clean(e.capture_point)}" if e.capture_point else ""
        pk = f", {e.packets:,} packet(s)" if e.packets else ""
        o.para(f"{e.address}: {', '.join(e.roles)}{where}{pk}", INDENT * 3, INDENT)
    if len(a.implicated) > MAX_IMPLICATED:
        o.para(f"… and {len(a.implicated) - MAX_IMPLICATED:,} more (--json)", INDENT, INDENT)


def _cause_key(lp: Loop) -> tuple[str, ...]:
    """Loops with the same cause share their explanation's shape and their fixes,
    up to the address."""
    return (lp.kind, ",".join(lp.capture_points), (":" in lp.destination and "v6") or "v4")


def _causes(o: Out, a: Analysis, all_loops: bool) -> None:
    """Why and how to fix: once per cause (kind, links, address family)."""
    groups: dict[tuple[str, ...], list[Loop]] = defaultdict(list)
    for lp in a.loops:
        groups[_cause_key(lp) if not all_loops else (str(lp.id),)].append(lp)
    for group in groups.values():
        first = group[0]
        o.line()
        others = len(group) - 1
        title = f"Why (loop {first.id}" + (f" and {others:,} more like it" if others else "") + ")"
        o.line(title, "bold")
        o.prose_with_commands(first.explanation, INDENT, INDENT)
        if others:
            dsts = Counter(_prefix(x.destination) for x in group)
            o.para(
                "The same holds for "
                + ", ".join(f"{n:,} address(es) in {p}" for p, n in dsts.most_common(5))
                + (" …" if len(dsts) > 5 else "")
                + "; run each fix for each address.",
                INDENT,
                INDENT,
            )
        o.line(INDENT + "[bold]Fix[/bold] (any one of these stops it):")
        for k, fix in enumerate(first.fixes, start=1):
            o.prose_with_commands(fix, INDENT * 3, f"{INDENT}{k}. ")


# --- paths ------------------------------------------------------------------------------------
def paths(con: Console, rows: pd.DataFrame, limit: int, hops: bool = False) -> None:
    """``pcaploop paths``: one line per path, or hop by hop with ``hops``."""
    o = Out(con)
    total = rows["path"].nunique() if len(rows) else 0
    if total == 0:
        o.line("No matching paths.")
        return
    shown = 0
    for pid, grp in rows.groupby("path", sort=False):
        if shown >= limit:
            break
        shown += 1
        first = grp.iloc[0]
        kind = "looping" if first["looping"] else ("bounce" if first["bounce"] else "path")
        ident = f", IP ID {first['ip_id']}" if "ip_id" in grp and int(first["ip_id"]) >= 0 else ""
        pts = " → ".join(dict.fromkeys(str(p) for p in grp["capture_point"]))
        span = grp["since_first_ms"].max() / 1e3
        o.para(
            f"path {pid} ({kind}) {first['src']} → {first['dst']} "
            f"{first.get('proto', '')}{ident}: {len(grp):,} copies, TTL "
            f"{int(grp['ttl'].max())}→{int(grp['ttl'].min())} at {clean(pts)}, "
            f"{duration(span)}, first {first['time'].strftime('%H:%M:%S.%f')} UTC",
            INDENT * 2,
            "",
        )
        if hops:
            hop_cols = zip(
                grp["capture_point"].astype(str).tolist(),
                grp["direction"].astype(str).tolist(),
                grp["ttl"].tolist(),
                grp["since_first_ms"].tolist(),
            )
            for k, (cp, dirn, ttl, ms) in enumerate(hop_cols, start=1):
                o.line(
                    f"{INDENT}{k:>4}  {clean(cp):<14} {dirn:<8} TTL {int(ttl):>3}  +{ms:,.3f} ms"
                )
    if total > shown:
        o.line(f"({total - shown:,} more path(s); --limit N shows more, --hops each hop)")


def command_text(words: Sequence[str]) -> str:
    """Words as one shell command line, quoted where needed."""
    return shlex.join(words)


#: a watch event's continuation lines start under its text, past the time of day
_WATCH_INDENT = " " * 13


def watch_event(con: Console, ev: LoopEvent) -> None:
    """One loop event of ``pcaploop watch``: one line to a pipe or log (one event per
    line, for grep), wrapped at words to a terminal's width."""
    text = _CONTROL.sub("?", ev.line())  # printed as text, not markup: no escaping
    lines = [text]
    if con.is_terminal and len(text) > con.width:
        lines = textwrap.wrap(
            text,
            width=con.width,
            subsequent_indent=_WATCH_INDENT,
            break_long_words=False,
            break_on_hyphens=False,
        )
    for line in lines:
        con.print(line, markup=False, highlight=False, soft_wrap=True)
