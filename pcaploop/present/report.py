"""An incident report someone else can read: one self-contained HTML file, or Markdown.

The reader may be a hosting provider's support with nothing but a browser,
so the HTML embeds every plot (base64 PNG), fetches nothing (a
Content-Security-Policy forbids it, and scripts), and escapes every string
that came from a capture: interface names and comments are chosen by
whoever wrote the file.  Order follows what the reader needs: verdict,
timeline, loops, who is implicated, why and how to fix, how to check it
in Wireshark, what was read, and how the report was made.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import os
import re
from collections.abc import Callable, Set
from typing import TYPE_CHECKING, Any

from .._version import __version__
from ..analysis.explain import copies_per_entry
from ..errors import UsageError
from . import extract as X
from .files import check_target, ensure_parent, write_atomic
from .terminal import duration

if TYPE_CHECKING:  # pragma: no cover
    from ..analysis.model import Loop
    from ..analysis.pipeline import Analysis


__all__ = ["write_report"]

ROLE_WORDS = {
    "loop-destination": "destination of looping packets",
    "bounce-destination": "destination of packets a guest returned once (bounce)",
    "source": "sent packets that looped",
    "icmp-reporter": "sent ICMP time-exceeded for looping packets",
    "guest-link": "a guest's own address (its time-exceeded came out of a guest link)",
    "proxy-arp-responder": "answered ARP/NDP for a looping destination",
}
POINT_ROLE_WORDS = {"uplink": "uplink", "guest-link": "guest link", "unknown": "unknown"}


def shown(path: str, full: bool) -> str:
    """A capture's path as the report shows it: its file name, or the whole path."""
    return path if full else os.path.basename(path)


_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1a1a1a;
max-width:1120px;margin:0 auto;padding:24px}
h1{font-size:1.6em;margin:0 0 .3em}h2{margin-top:1.8em;border-bottom:2px solid #eee;
padding-bottom:.2em}h3{margin-top:1.4em}
.verdict{font-size:1.2em;font-weight:600;padding:14px 18px;border-radius:6px;margin:12px 0}
.loop{background:#fbe3d6;border-left:6px solid #D55E00}.bounce{background:#fff4d6;
border-left:6px solid #E69F00}.ok{background:#dff3ea;border-left:6px solid #009E73}
table{border-collapse:collapse;margin:8px 0;font-size:.9em}th,td{border:1px solid #ddd;
padding:4px 8px;text-align:left;vertical-align:top}th{background:#f4f4f4}
td.n{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:14px 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:.9em}
pre{background:#f6f6f6;padding:8px;white-space:pre-wrap;word-break:break-all;max-height:12em;
overflow:auto;font-size:.85em}pre.filter{max-height:none;overflow:visible}
code{background:#f3f3f3;padding:0 3px}.scroll{max-width:100%;overflow-x:auto}
.muted{color:#666}.warn{color:#8a4b00}footer{margin-top:3em;color:#666;font-size:.85em}
"""

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def e(value: Any) -> str:
    """Escape anything for HTML text and attribute values."""
    return html.escape("" if value is None else str(value), quote=True)


def _code_spans(text: str, wrap: Callable[[str], str], plain: Callable[[str], str]) -> str:
    """Render `backtick` spans of explanation/fix text with ``wrap``, the rest with ``plain``."""
    parts = re.split(r"`([^`]*)`", text)
    return "".join(wrap(p) if k % 2 else plain(p) for k, p in enumerate(parts))


def _n(v: Any, fmt: str = "{:,}") -> str:
    if v is None:
        return "–"
    return fmt.format(v)


def _when(iso: str | None) -> str:
    return (iso or "–").replace("T", " ").replace("Z", " UTC")


# --- content shared by HTML and Markdown ---------------------------------------------
def events(a: Analysis, limit: int = 60) -> list[tuple[str | None, str]]:
    """(ISO time, what happened) for the incident timeline, in time order."""
    from ..contract import iso_ns

    out: list[tuple[str | None, str]] = []
    for p in a.packets.points:
        if p.first_ns is not None:
            out.append((iso_ns(p.first_ns), f"capture point {p.name}: first record"))
            out.append((iso_ns(p.last_ns), f"capture point {p.name}: last record"))
    cols = a.packets.cols
    for lp in a.loops:
        tag = f"loop {lp.id} ({lp.destination}, {lp.kind})"
        out.append((lp.first_seen, f"{tag} begins: first looping packet seen"))
        out.append(
            (
                lp.last_seen,
                f"{tag} ends: last copy seen "
                f"({lp.looping_packets:,} looping packets, "
                f"{lp.observations:,} copies)",
            )
        )
        icmp = a.evidence[lp.id].icmp
        if lp.kind == "l3" and len(icmp):
            first = int(cols["time_ns"][icmp].min())
            out.append(
                (
                    iso_ns(first),
                    f"{tag}: first ICMP time-exceeded ({len(icmp)} in all, "
                    f"from {', '.join(lp.icmp_senders)})",
                )
            )
    out.sort(key=lambda ev: ev[0] or "")
    return out[:limit]


def accounting_rows(a: Analysis, full_paths: bool = False) -> list[dict[str, Any]]:
    """Per capture point: what was read, what was skipped and why."""
    rows = []
    for p in a.packets.points:
        j = p.to_json()
        skipped = ", ".join(f"{k.replace('_', '-')} {v:,}" for k, v in j["skipped"].items() if v)
        notes = []
        if j.get("capture_dropped"):
            notes.append(f"capture dropped {j['capture_dropped']:,} packets")
        if j.get("truncated_tail"):
            notes.append(f"damaged tail: {p.problem or 'cut off'}")
        if p.comment:
            notes.append(f"comment: {p.comment}")
        rows.append(
            {
                "name": p.name,
                "file": shown(p.path, full_paths),
                "format": p.format,
                "linktype": j["linktype"],
                "records": p.records,
                "decoded": p.decoded,
                "skipped": skipped or "none",
                "first": _when(j["first_seen"]),
                "last": _when(j["last_seen"]),
                "notes": "; ".join(notes) or "–",
            }
        )
    return rows


def _captures_arg(a: Analysis, full_paths: bool = False) -> str:
    """The capture arguments that give the same capture point names again (NAME=PATH)."""
    import shlex

    from ..ingest.specs import CaptureSpec

    words = {}
    for p in a.packets.points:
        if p.path in words:
            continue
        named = p.format == "pcap" and p.name != CaptureSpec(p.path).stem
        path = shown(p.path, full_paths)
        words[p.path] = f"{p.name}={path}" if named else path
    return " ".join(shlex.quote(w) for w in words.values())


def _figures(
    a: Analysis, progress: Callable[[str], None] | None, jobs: int = 1
) -> dict[str, tuple[str, bytes]]:
    """stem → (caption, PNG bytes) of every plot, drawn by ``jobs`` processes."""
    from . import plots

    out = {}
    for stem, caption, data in plots.rendered(a, ("png",), jobs):
        if progress:
            progress(stem)
        out[stem] = (caption, data["png"])
    return out


# --- HTML ---------------------------------------------------------------------------------
def _table(headers: list[str], rows: list[list[str]], numeric: Set[int] = frozenset()) -> str:
    """Rows are already-escaped HTML cells."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class=n>{c}</td>" if k in numeric else f"<td>{c}</td>" for k, c in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    # a table wider than the window scrolls in its own box: the page never does
    return (
        f"<div class=scroll><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table></div>"
    )


def _img(figs: dict[str, tuple[str, bytes]], stem: str) -> str:
    if stem not in figs:
        return ""
    caption, png = figs[stem]
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{e(caption)}">'
        f"<figcaption>{e(caption)}</figcaption></figure>"
    )


def _verdict_class(a: Analysis) -> str:
    return "loop" if a.loops else ("bounce" if a.bounces else "ok")


#: loops the report explains one by one (the most copies first); the table lists all
MAX_LOOP_SECTIONS = 20


def detailed(a: Analysis) -> list[Loop]:
    """The loops the report details, in id order: the :data:`MAX_LOOP_SECTIONS` with
    most copies (the others are rows of the loops table)."""
    top = sorted(a.loops, key=lambda lp: (-lp.observations, lp.id))[:MAX_LOOP_SECTIONS]
    return sorted(top, key=lambda lp: lp.id)


def html_report(
    a: Analysis,
    command: str | None = None,
    progress: Callable[[str], None] | None = None,
    full_paths: bool = False,
    jobs: int = 1,
) -> str:
    """The whole report as one HTML string (no external resources, no scripts); its
    figures are drawn by ``jobs`` processes."""
    figs = _figures(a, progress, jobs)
    s = a.summary
    parts = [
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>",
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name=viewport content="width=device-width, initial-scale=1">',
        f"<title>pcaploop report: {e(a.verdict)}</title><style>{_CSS}</style></head><body>",
        "<h1>Routing loop report</h1>",
        f'<div class="verdict {_verdict_class(a)}" id=verdict>{e(a.verdict)}</div>',
        f"<p>{s.observations:,} observations at {len(a.packets.points)} capture point(s); "
        f"{s.loop_observations:,} of them are loop copies "
        f"({100 * s.loop_share:.1f} %); {s.duplicates:,} duplicate record(s) counted "
        "once.</p>",
    ]
    if a.warnings:
        parts.append(
            "<ul class=warn>" + "".join(f"<li>warning: {e(w)}</li>" for w in a.warnings) + "</ul>"
        )
    parts += [
        "<h2 id=timeline>Incident timeline</h2>",
        _img(figs, "timeline"),
        _table(["time", "event"], [[e(_when(t)), e(w)] for t, w in events(a)]),
    ]
    parts.append(_roles_html(a))
    parts.append(_loops_html(a, figs, full_paths))
    parts.append(_implicated_html(a))
    if a.loops:
        parts += [
            "<h2 id=amplification>Amplification</h2>",
            _img(figs, "amplification"),
            _img(figs, "copies"),
            _img(figs, "cycle-time"),
        ]
    parts.append(_accounting_html(a, full_paths))
    parts.append(_footer_html(command))
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)


def _roles_html(a: Analysis) -> str:
    if not a.roles:
        return ""
    rows = [
        [
            e(r.name),
            e(POINT_ROLE_WORDS[r.role]),
            e(r.confidence),
            e("; ".join(r.evidence) or "nothing in the capture tells"),
        ]
        for r in a.roles
    ]
    return (
        "<h2 id=roles>Capture points</h2><p>What each capture point is, decided from what "
        "its packets show (a name is only a hint).</p>"
        + _table(["capture point", "role", "confidence", "evidence"], rows)
    )


def _loops_html(a: Analysis, figs: dict[str, tuple[str, bytes]], full_paths: bool) -> str:
    if not a.loops:
        return "<h2 id=loops>Loops</h2><p>No routing loop was found.</p>" + _bounces_html(a)
    rows = []
    for lp in a.loops:
        fates = ", ".join(f"{k} {v:,}" for k, v in lp.fates.items() if v) or "–"
        drops = ", ".join(f"{k} {v:,}" for k, v in lp.dropped_by.items() if v) or "–"
        rows.append(
            [
                str(lp.id),
                e(lp.destination),
                e(lp.kind + (" (estimated)" if lp.estimated else "")),
                e(", ".join(lp.capture_points)),
                _n(lp.ttl_step),
                _n(lp.looping_packets),
                _n(lp.observations),
                _n(lp.amplification, "×{:.1f}"),
                _n(lp.duration_s, "{:.3f}"),
                e(duration(lp.cycle_time_ms / 1e3) if lp.cycle_time_ms is not None else "–"),
                _n(lp.extra_pps_peak, "{:,.0f}"),
                e(fates),
                e(drops),
                _n(lp.icmp_time_exceeded),
            ]
        )
    out = [
        "<h2 id=loops>Loops</h2>",
        _table(
            [
                "#",
                "destination",
                "kind",
                "capture points",
                "TTL step",
                "looping packets",
                "copies",
                "amplification",
                "duration (s)",
                "one round",
                "peak extra/s",
                "fates",
                "dropped by",
                "ICMP time-exceeded",
            ],
            rows,
            {0, 4, 5, 6, 7, 8, 10, 13},
        ),
        _bounces_html(a),
    ]
    shown_loops = detailed(a)
    for lp in shown_loops:
        out.append(_one_loop_html(a, lp, figs, full_paths))
    if len(shown_loops) < len(a.loops):
        out.append(
            f"<p class=muted>{len(a.loops) - len(shown_loops):,} more loop(s) are in the table "
            f"above; this report details the {len(shown_loops)} with most copies. "
            "<code>pcaploop analyze --all</code> or <code>--json</code> explains every one.</p>"
        )
    return "\n".join(out)


def _one_loop_html(
    a: Analysis, lp: Loop, figs: dict[str, tuple[str, bytes]], full_paths: bool
) -> str:
    # a multi-line command (an nft script) must stay runnable when pasted
    def code(t: str) -> str:
        return f"<pre>{e(t)}</pre>" if "\n" in t else f"<code>{e(t)}</code>"

    fixes = "".join(f"<li>{_code_spans(f, code, e)}</li>" for f in lp.fixes)
    filt = X.wireshark_filters(a, lp.id)
    frows = [
        [
            e(shown(f["file"], full_paths)),
            e(", ".join(f["capture_points"])),
            _n(f["packets"]),
            f"<pre class=filter>{e(f['filter'])}</pre>"
            if f["filter"]
            else "<span class=muted>too scattered for a display filter: use the extract</span>",
        ]
        for f in filt
    ]
    cmd = (
        f"pcaploop extract {_captures_arg(a, full_paths)} --loop {lp.id} "
        f"-o loop{lp.id}-evidence.pcapng"
    )
    return "\n".join(
        [
            f"<h3 id=loop{lp.id}>Loop {lp.id}: {e(lp.destination)}</h3>",
            f"<p>{_code_spans(lp.explanation, code, e)}</p>",
            f"<p>First seen {e(_when(lp.first_seen))}, last seen {e(_when(lp.last_seen))}; "
            f"sources: {e(', '.join(lp.sources) or '–')}.</p>",
            f"<p>{e(copies_per_entry(lp))}.</p>" if lp.kind == "l3" else "",
            "<p><b>Fix</b> (any one of these stops this kind of loop):</p>",
            f"<ol class=fixes>{fixes}</ol>",
            _img(figs, f"ttl-loop{lp.id}"),
            _img(figs, f"ladder-loop{lp.id}"),
            "<p><b>Check it in Wireshark</b>: open the capture file and apply the display filter; "
            + (
                f"it selects the {sum(f['packets'] for f in filt):,} packets that arrived and "
                f"expired behind the capture point (their {lp.observations:,} copies are "
                "estimated).</p>"
                if lp.kind == "inferred"
                else f"it selects exactly the loop's {lp.observations:,} copies.</p>"
            ),
            _table(["capture file", "capture points", "packets", "display filter"], frows, {2}),
            f"<p>Evidence for a ticket (original bytes and timestamps): {code(cmd)}</p>",
        ]
    )


def _bounces_html(a: Analysis) -> str:
    if not a.bounces:
        return ""
    return (
        "<h3 id=bounces>Bounces</h3><p>Packets a guest returned for an address it does "
        "not own, dropped after one round trip (not a loop, same misconfiguration).</p>"
        + _table(
            ["destination", "capture point", "packets"],
            [[e(b.destination), e(b.capture_point), _n(b.packets)] for b in a.bounces],
            {2},
        )
    )


def _implicated_html(a: Analysis) -> str:
    if not a.implicated:
        return ""
    rows = [
        [
            e(i.address),
            e(", ".join(i.roles)),
            e("; ".join(ROLE_WORDS.get(r, r) for r in i.roles)),
            e(i.capture_point or "–"),
            _n(i.packets),
        ]
        for i in a.implicated
    ]
    return "<h2 id=implicated>Implicated addresses</h2>" + _table(
        ["address", "roles", "meaning", "capture point", "packets"], rows, {4}
    )


def _accounting_html(a: Analysis, full_paths: bool) -> str:
    rows = [
        [
            e(r["name"]),
            e(r["file"]),
            e(r["format"]),
            e(r["linktype"]),
            _n(r["records"]),
            _n(r["decoded"]),
            e(r["skipped"]),
            e(r["first"]),
            e(r["last"]),
            e(r["notes"]),
        ]
        for r in accounting_rows(a, full_paths)
    ]
    return (
        "<h2 id=captures>What was read</h2><p>Every record is accounted for: records = "
        "decoded + skipped.</p>"
        + _table(
            [
                "capture point",
                "file",
                "format",
                "link type",
                "records",
                "decoded",
                "skipped",
                "first record",
                "last record",
                "notes",
            ],
            rows,
            {4, 5},
        )
    )


def _footer_html(command: str | None) -> str:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        f"<footer>Made by pcaploop {e(__version__)} on {now} with: "
        f"<code id=command>{e(command or '(called from Python)')}</code></footer>"
    )


# --- Markdown -----------------------------------------------------------------------------
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def md(value: Any) -> str:
    """Escape for Markdown text and table cells (HTML too: renderers pass it through)."""
    text = html.escape("" if value is None else str(value), quote=False)
    return _MD_SPECIAL.sub(r"\\\1", text).replace("\n", " ")


def _md_code(text: str) -> str:
    """A code span whose fence is longer than any backtick run inside (CommonMark);
    a multi-line command becomes a fenced block inside its list item."""
    if "\n" in text:
        fence = "~" * max([4] + [len(r) + 1 for r in re.findall(r"~+", text)])
        body = "\n".join("   " + line for line in text.splitlines())
        return f"\n\n   {fence}sh\n{body}\n   {fence}\n"
    runs = [len(r) for r in re.findall(r"`+", text)]
    if not runs:
        return f"`{text}`"
    fence = "`" * (max(runs) + 1)
    return f"{fence} {text} {fence}"


def _md_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def markdown_report(
    a: Analysis,
    path: str,
    command: str | None = None,
    progress: Callable[[str], None] | None = None,
    full_paths: bool = False,
    jobs: int = 1,
) -> list[str]:
    """Write ``path`` (Markdown) and its PNGs beside it; returns every file written."""
    base = os.path.splitext(path)[0]
    stem = os.path.basename(base)
    figs = _figures(a, progress, jobs)
    written = []
    for key, (_caption, png) in figs.items():
        written.append(_write(f"{base}-{key}.png", png, a))

    def img(key: str) -> str:
        return f"![{md(figs[key][0])}]({stem}-{key}.png)\n" if key in figs else ""

    s = a.summary
    out = [
        "# Routing loop report",
        "",
        f"**{md(a.verdict)}**",
        "",
        f"{s.observations:,} observations at {len(a.packets.points)} capture point(s); "
        f"{s.loop_observations:,} are loop copies ({100 * s.loop_share:.1f} %).",
        "",
    ]
    out += [f"- warning: {md(w)}" for w in a.warnings]
    out += [
        "",
        "## Incident timeline",
        "",
        img("timeline"),
        _md_table(["time", "event"], [[md(_when(t)), md(w)] for t, w in events(a)]),
        "",
        "## Loops",
        "",
    ]
    if not a.loops:
        out.append("No routing loop was found.")
    else:
        out.append(
            _md_table(
                [
                    "#",
                    "destination",
                    "kind",
                    "capture points",
                    "TTL step",
                    "looping packets",
                    "copies",
                    "amplification",
                    "duration (s)",
                ],
                [
                    [
                        str(lp.id),
                        md(lp.destination),
                        md(lp.kind),
                        md(", ".join(lp.capture_points)),
                        _n(lp.ttl_step),
                        _n(lp.looping_packets),
                        _n(lp.observations),
                        _n(lp.amplification, "×{:.1f}"),
                        _n(lp.duration_s, "{:.3f}"),
                    ]
                    for lp in a.loops
                ],
            )
        )
    if a.bounces:
        out += [
            "",
            "### Bounces",
            "",
            _md_table(
                ["destination", "capture point", "packets"],
                [[md(b.destination), md(b.capture_point), _n(b.packets)] for b in a.bounces],
            ),
        ]
    shown_loops = detailed(a)
    if len(shown_loops) < len(a.loops):
        out += [
            "",
            f"{len(a.loops) - len(shown_loops):,} more loop(s) are in the table above; this "
            f"report details the {len(shown_loops)} with most copies (`pcaploop analyze --all` "
            "or `--json` explains every one).",
        ]
    for lp in shown_loops:
        out += [
            "",
            f"### Loop {lp.id}: {md(lp.destination)}",
            "",
            _code_spans(lp.explanation, _md_code, md),
            "",
            "**Fix** (any one of these stops it):",
            "",
        ]
        out += [f"{k}. {_code_spans(f, _md_code, md)}" for k, f in enumerate(lp.fixes, 1)]
        out += [
            "",
            img(f"ttl-loop{lp.id}"),
            img(f"ladder-loop{lp.id}"),
            "**Check it in Wireshark** (display filter per capture file):",
            "",
        ]
        for f in X.wireshark_filters(a, lp.id):
            out += [
                f"- {md(shown(f['file'], full_paths))} ({md(', '.join(f['capture_points']))}): "
                f"{f['packets']:,} packets",
                "",
            ]
            out += (
                ["  ```", f"  {f['filter']}", "  ```", ""]
                if f["filter"]
                else ["  too scattered for a display filter: use the extract", ""]
            )
        cmd = (
            f"pcaploop extract {_captures_arg(a, full_paths)} --loop {lp.id} "
            f"-o loop{lp.id}-evidence.pcapng"
        )
        out += [f"Evidence for a ticket: {_md_code(cmd)}"]
    if a.implicated:
        out += [
            "",
            "## Implicated addresses",
            "",
            _md_table(
                ["address", "roles", "capture point", "packets"],
                [
                    [
                        md(i.address),
                        md(", ".join(i.roles)),
                        md(i.capture_point or "–"),
                        _n(i.packets),
                    ]
                    for i in a.implicated
                ],
            ),
        ]
    if a.loops:
        out += ["", "## Amplification", "", img("amplification"), img("copies"), img("cycle-time")]
    out += [
        "",
        "## What was read",
        "",
        _md_table(
            [
                "capture point",
                "file",
                "format",
                "link type",
                "records",
                "decoded",
                "skipped",
                "notes",
            ],
            [
                [
                    md(r["name"]),
                    md(r["file"]),
                    md(r["format"]),
                    md(r["linktype"]),
                    _n(r["records"]),
                    _n(r["decoded"]),
                    md(r["skipped"]),
                    md(r["notes"]),
                ]
                for r in accounting_rows(a, full_paths)
            ],
        ),
        "",
        "---",
        "",
        f"Made by pcaploop {__version__} with: {_md_code(command or '(called from Python)')}",
        "",
    ]
    written.insert(0, _write(path, "\n".join(out).encode(), a))
    return written


def _write(path: str, data: bytes, a: Analysis) -> str:
    return write_atomic(path, data, [p.path for p in a.packets.points])


def write_report(
    a: Analysis,
    path: str | os.PathLike[str],
    command: str | None = None,
    progress: Callable[[str], None] | None = None,
    full_paths: bool = False,
    jobs: int = 1,
) -> list[str]:
    """HTML for ``.html``/``.htm``, Markdown (+ PNGs) for ``.md``; returns the files written.

    Files are named, not their full paths, unless ``full_paths`` (a report travels
    to people who do not have the machine that made it).  Each file is written
    atomically; the directory is created if missing.  ``jobs``: processes drawing
    the figures (the same bytes with any number).

    >>> write_report(pcaploop.analyze(["tap101.pcap"]), "report.html")  # doctest: +SKIP
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".html", ".htm", ".md"):
        raise UsageError(f"{path}: report must end in .html, .htm or .md")
    check_target(path, [p.path for p in a.packets.points])
    ensure_parent(path)  # before the plots are drawn (that takes seconds), not after
    if ext in (".html", ".htm"):
        return [_write(path, html_report(a, command, progress, full_paths, jobs).encode(), a)]
    return markdown_report(a, path, command, progress, full_paths, jobs)
