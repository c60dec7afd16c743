"""Random damage to a real loop capture, through the whole pipeline a user runs:
read → analyze → JSON → report → extract.

Why: ``test_fuzz`` holds the reader and decoder to their contract on damaged
files; the later stages see only what those let through, and a damaged capture
can still hold a loop — with a copy missing, a TTL changed, a time out of order
or a point with nothing decoded.  Each stage must then either work or raise
:class:`PcaploopError` (a one-line error for the user), never anything else; the
JSON must still match its schema, every record must still be accounted for, and
an extract must hold exactly the packets it says it wrote.
"""

from __future__ import annotations

import struct
import tempfile
from pathlib import Path

import dpkt
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import pcaploop
from pcaploop.errors import PcaploopError

REPO = Path(__file__).resolve().parent.parent
INCIDENT = REPO / "samples" / "incident"
#: records of the guest tunnel's capture kept in the seed: enough for a loop of
#: several looping packets, small enough for many examples
SEED_RECORDS = 300
PCAP_FILE_HLEN = 24
PCAP_RECORD_HLEN = 16

_DIR = Path(tempfile.mkdtemp(prefix="pcaploop-fuzz-pipeline-"))


def _prefix(src: Path, records: int) -> bytes:
    """The file header and the first ``records`` records of a classic pcap, byte for byte."""
    data = src.read_bytes()
    big = data[:4] in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d")
    pos = PCAP_FILE_HLEN
    for _ in range(records):
        if pos + PCAP_RECORD_HLEN > len(data):
            break
        (incl,) = struct.unpack_from(">I" if big else "<I", data, pos + 8)
        pos += PCAP_RECORD_HLEN + incl
    return data[:pos]


SEEDS = {
    "uplink": (INCIDENT / "uplink.pcap").read_bytes(),
    "tap101": _prefix(INCIDENT / "tap101.pcap", SEED_RECORDS),
}


@st.composite
def damage(draw: st.DrawFn, data: bytes) -> bytes:
    """Byte flips, a cut, a repeated or a zeroed stretch: what disks, copies and
    crafted files do to a capture."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(["flip", "cut", "repeat", "zero", "word"]))
        if len(buf) <= PCAP_FILE_HLEN + 1:
            break
        at = draw(st.integers(PCAP_FILE_HLEN, len(buf) - 1))
        if kind == "flip":
            buf[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del buf[at:]
        elif kind == "repeat":
            n = draw(st.integers(1, 200))
            buf[at:at] = buf[at : at + n]
        elif kind == "zero":
            n = draw(st.integers(1, 64))
            buf[at : at + n] = bytes(len(buf[at : at + n]))
        elif at + 4 <= len(buf):
            buf[at : at + 4] = struct.pack(
                "<I", draw(st.sampled_from([0, 1, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF]))
            )
    return bytes(buf)


def _stage(what: str, fn, *args, **kw):  # type: ignore[no-untyped-def]
    """Run one stage: it may refuse with a PcaploopError, nothing else."""
    try:
        return fn(*args, **kw)
    except PcaploopError as exc:
        event(f"{what} refused: {str(exc).split(':')[-1][:40]}")
        return None
    except Exception as exc:  # the test's whole point
        raise AssertionError(f"{what} raised {type(exc).__name__}: {exc}") from exc


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.sampled_from(sorted(SEEDS)).flatmap(
        lambda name: st.tuples(st.just(name), damage(SEEDS[name]))
    ),
    st.sampled_from([".md", ".html"]),
)
def test_damaged_loop_capture_through_every_stage(case: tuple[str, bytes], ext: str) -> None:
    which, data = case
    d = Path(tempfile.mkdtemp(dir=_DIR))
    files = {name: d / f"{name}.pcap" for name in SEEDS}
    for name, path in files.items():
        path.write_bytes(data if name == which else SEEDS[name])
    specs = [f"{name}={path}" for name, path in files.items()]

    a = _stage("analyze", pcaploop.analyze, specs)
    if a is None:
        return
    doc = a.to_json()
    pcaploop.validate_json(doc)
    for c in doc["captures"]:
        assert c["records"] == c["decoded"] + sum(c["skipped"].values()), c

    written = _stage("report", pcaploop.write_report, a, d / f"report{ext}")
    if written is not None:
        assert all(Path(p).stat().st_size > 0 for p in written)
    assert not list(d.glob("*.tmp*")), "a temporary file was left behind"

    event("a loop to extract" if a.loops else "no loop")
    if not a.loops:
        return
    loop = a.loops[0]
    out = d / "loop.pcapng"
    res = _stage("extract", pcaploop.extract_packets, a, out, loop=loop.id)
    if res is None:
        assert not out.exists()
        return
    with out.open("rb") as f:
        got = sum(1 for _ in dpkt.pcapng.Reader(f))
    assert got == res["packets"], (got, res)
    for name, path in files.items():  # inputs are never touched
        assert path.read_bytes() == (data if name == which else SEEDS[name])
