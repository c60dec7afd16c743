"""The incident report (issue #4): self-contained HTML, escaped capture strings, Markdown,
and a real headless Chromium that renders it, loads every image and takes a screenshot."""

from __future__ import annotations

import base64
import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from loopgen import tunnel_loop, write, write_mixed, write_pcapng_loop

import pcaploop
from pcaploop.cli import app
from pcaploop.errors import PcaploopError, UsageError
from pcaploop.present import report as R

CHROMIUM = next(
    (
        p
        for p in (
            shutil.which("chromium"),
            shutil.which("chromium-browser"),
            shutil.which("google-chrome"),
        )
        if p
    ),
    None,
)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium)"
)
XSS_NAME = "<script>alert(1)</script>"
XSS_COMMENT = '<img src=x onerror=alert(2)> & "quoted"'


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    return pcaploop.analyze(write_mixed(tmp_path_factory.mktemp("mixed")))


@pytest.fixture(scope="module")
def mixed_html(mixed):
    return R.html_report(mixed, command="pcaploop report lan.pcap tap101.pcap -o r.html")


@pytest.fixture(scope="module")
def xss(tmp_path_factory):
    """A loop on a pcapng interface whose name and comment are HTML."""
    d = tmp_path_factory.mktemp("xss")
    a = pcaploop.analyze([write_pcapng_loop(d, XSS_NAME, XSS_COMMENT)])
    assert a.loops and list(a.loops[0].capture_points) == [XSS_NAME]
    path = d / "report.html"
    R.write_report(a, path, command=f"pcaploop report {XSS_NAME}")
    return path


def images(doc: str) -> list[str]:
    return re.findall(r"<img\b[^>]*\bsrc=\"([^\"]*)\"", doc)


# --- content ------------------------------------------------------------------------------
def test_sections_in_order(mixed, mixed_html):
    doc = mixed_html
    order = [
        "id=verdict",
        "id=timeline",
        "id=loops",
        "id=bounces",
        "id=loop1",
        "id=implicated",
        "id=amplification",
        "id=captures",
        "id=command",
    ]
    pos = [doc.index(x) for x in order]
    assert pos == sorted(pos)
    assert html.escape(mixed.verdict) in doc
    assert doc.index(html.escape(mixed.verdict)) < doc.index("Incident timeline")


def test_every_fact_is_there(mixed, mixed_html):
    doc = mixed_html
    for lp in mixed.loops:
        assert f"Loop {lp.id}: {lp.destination}" in doc
        for fix in lp.fixes:
            first_code = re.search(r"`([^`]*)`", fix)
            if first_code:
                tag = "pre" if "\n" in first_code.group(1) else "code"
                assert f"<{tag}>{html.escape(first_code.group(1))}</{tag}>" in doc
        for f in pcaploop.present.extract.wireshark_filters(mixed, lp.id):
            assert html.escape(f["filter"]) in doc
        assert f"--loop {lp.id} -o loop{lp.id}-evidence.pcapng" in doc
    for imp in mixed.implicated:
        assert imp.address in doc
    assert "destination of looping packets" in doc  # roles are explained
    for p in mixed.packets.points:  # file names, not the paths of the machine that made it
        assert f"<td>{html.escape(p.name)}</td>" in doc
        assert html.escape(Path(p.path).name) in doc and html.escape(p.path) not in doc
    full = R.html_report(mixed, full_paths=True)
    assert all(html.escape(p.path) in full for p in mixed.packets.points)
    assert f"pcaploop {pcaploop.__version__}" in doc
    assert "pcaploop report lan.pcap tap101.pcap -o r.html" in doc
    assert "first ICMP time-exceeded" in doc  # timeline events


def test_self_contained(mixed_html):
    doc = mixed_html
    srcs = images(doc)
    assert len(srcs) >= 6
    for s in srcs:
        assert s.startswith("data:image/png;base64,")
        assert base64.b64decode(s.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r"\b(src|href)=\"?(https?:|//)", doc)
    assert "@import" not in doc and "url(" not in doc
    assert "<script" not in doc
    assert "Content-Security-Policy" in doc and "default-src 'none'" in doc


def test_capture_strings_escaped(xss):
    doc = xss.read_text()
    assert XSS_NAME not in doc and "<img src=x" not in doc
    assert html.escape(XSS_NAME) in doc
    assert html.escape(XSS_COMMENT) in doc
    assert "<script" not in doc


def test_no_loop_report(tmp_path):
    from loopgen import HOST, ROUTER, T0, eth, ip4

    caps = {
        "uplink": [
            (T0 + k * 0.01, eth(ip4("203.0.113.101", 64, k), ROUTER, HOST)) for k in range(10)
        ]
    }
    a = pcaploop.analyze(write(caps, tmp_path))
    doc = R.html_report(a)
    assert 'class="verdict ok"' in doc and "No routing loop was found." in doc
    assert "(called from Python)" in doc
    assert len(images(doc)) == 1  # the timeline only


def test_markdown_report(mixed, tmp_path):
    out = tmp_path / "r.md"
    written = R.write_report(mixed, out, command="pcaploop report x -o r.md")
    assert written[0] == str(out)
    text = out.read_text()
    refs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert refs and all((tmp_path / r).exists() for r in refs)
    assert {str(tmp_path / r) for r in refs} == set(written[1:])
    assert text.splitlines()[2] == f"**{R.md(mixed.verdict)}**"
    assert "ip.dst == 203.0.113.7 && frame.number in {" in text
    assert "Made by pcaploop" in text


def test_markdown_escapes(tmp_path):
    a = pcaploop.analyze([write_pcapng_loop(tmp_path, "tap[x](javascript:alert(1))|<b>")])
    out = tmp_path / "r.md"
    R.write_report(a, out)
    text = out.read_text()
    text = re.sub(r"~~~~sh\n.*?~~~~", "", text, flags=re.S)  # fenced blocks render literally
    outside_code = re.sub(r"(`+) .*? \1|`[^`]*`", "", text)  # so do code spans
    assert "[x](javascript" not in outside_code and "<b>" not in outside_code
    assert r"tap\[x\](javascript:alert(1))\|&lt;b&gt;" in outside_code
    assert R._md_code("a`b") == "`` a`b ``" and R._md_code("x``y") == "``` x``y ```"


def test_bad_suffix_and_unwritable(mixed, tmp_path):
    with pytest.raises(UsageError, match="must end in"):
        R.write_report(mixed, tmp_path / "r.pdf")
    assert R.write_report(mixed, tmp_path / "new" / "r.md")  # the directory is made
    (tmp_path / "plain").write_text("a file, not a directory")
    with pytest.raises(PcaploopError, match="cannot create directory"):
        R.write_report(mixed, tmp_path / "plain" / "r.html")


def test_cli_report_with_json(tmp_path):
    from typer.testing import CliRunner

    args = write(tunnel_loop(n=3), tmp_path)
    out, js = tmp_path / "r.html", tmp_path / "a.json"
    res = CliRunner().invoke(app, ["report", *args, "-o", str(out), "--json", str(js)])
    assert res.exit_code == 0, res.output
    assert "wrote" in res.output and out.exists()
    doc = json.loads(js.read_text())
    pcaploop.validate_json(doc)
    assert doc["loops"][0]["observations"] == 63 * 3
    assert "pcaploop report" in out.read_text()
    res = CliRunner().invoke(app, ["report", "--help"])
    assert "Example:" in res.output
    res = CliRunner().invoke(app, ["plot", *args, "--out", str(tmp_path / "p"), "--svg"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "p" / "timeline.svg").exists()
    assert (tmp_path / "p" / "ladder-loop1.png").exists()


# --- a real browser ---------------------------------------------------------------------
_CHECK = """<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var bad = imgs.filter(function (i) {
    return i.src.indexOf('data:') !== 0 || !i.complete || i.naturalWidth === 0; });
  var filters = Array.prototype.slice.call(document.querySelectorAll('pre.filter'));
  var clipped = filters.filter(function (p) {
    return p.scrollHeight > p.clientHeight + 1 || p.scrollWidth > p.clientWidth + 1; });
  var wide = document.documentElement.scrollWidth > window.innerWidth ? 1 : 0;
  document.title = 'CHECK images=' + imgs.length + ' bad=' + bad.length +
    ' scripts=' + document.scripts.length + ' filters=' + filters.length +
    ' clipped=' + clipped.length + ' wide=' + wide;
});
</script>"""


def chromium(tmp_path: Path, page: Path, *extra: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
        *extra,
        page.as_uri(),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def with_checker(src: Path, dst: Path) -> Path:
    """The report plus a script reporting on images through the title.

    Only ``script-src`` is added to the policy: images are still held to the
    report's own ``img-src data:``.
    """
    doc = src.read_text()
    doc = doc.replace("default-src 'none';", "default-src 'none'; script-src 'unsafe-inline';")
    dst.write_text(doc.replace("</body>", _CHECK + "</body>"))
    return dst


@needs_chromium
def test_chromium_renders_report(mixed_html, tmp_path):
    page = tmp_path / "report.html"
    page.write_text(mixed_html)
    shot = tmp_path / "shot.png"
    res = chromium(tmp_path, page, f"--screenshot={shot}", "--window-size=1280,2000")
    assert shot.exists() and shot.read_bytes()[:4] == b"\x89PNG", res.stderr[-2000:]
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
    res = chromium(
        tmp_path,
        with_checker(page, tmp_path / "check.html"),
        "--dump-dom",
        "--window-size=1024,2000",
    )
    m = re.search(
        r"<title>CHECK images=(\d+) bad=(\d+) scripts=(\d+) filters=(\d+) clipped=(\d+) "
        r"wide=(\d+)</title>",
        res.stdout,
    )
    assert m, res.stdout[:500] + res.stderr[-2000:]
    assert int(m.group(1)) == len(images(mixed_html)) and m.group(2) == "0"
    # every Wireshark display filter is shown whole, and nothing runs off the page
    assert int(m.group(4)) >= 1 and m.group(5) == "0" and m.group(6) == "0", m.group(0)


@needs_chromium
def test_chromium_shows_html_names_as_text(xss, tmp_path):
    shot = tmp_path / "xss.png"
    res = chromium(tmp_path, xss, f"--screenshot={shot}", "--window-size=1280,2000")
    assert shot.exists(), res.stderr[-2000:]
    res = chromium(tmp_path, with_checker(xss, tmp_path / "check.html"), "--dump-dom")
    dom = res.stdout
    m = re.search(r"<title>CHECK images=(\d+) bad=(\d+) scripts=(\d+) ", dom)
    assert m, dom[:500] + res.stderr[-2000:]
    assert m.group(2) == "0"
    assert m.group(3) == "1"  # only the checker: the interface name did not become a script
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom  # shown as text
    assert '<img src="x"' not in dom and "onerror" not in dom.replace("onerror=alert(2)&gt;", "")


def test_evidence_command_keeps_capture_names(tmp_path):
    args = write(tunnel_loop(n=2), tmp_path)
    renamed = [a.replace("uplink=", "eth0=") for a in args]
    a = pcaploop.analyze(renamed)
    words = R._captures_arg(a).split()
    assert any(w.startswith("eth0=") and w.endswith("uplink.pcap") for w in words)
    assert any(w.endswith("tap101.pcap") and "=" not in w for w in words)
