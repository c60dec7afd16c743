"""Compute ``reference.json``: what Wireshark's tools read in every corpus file.

Why: ``tests/test_corpus.py`` holds pcaploop's reader to an independent one —
tshark's — on captures written by other people's tools.  The tests must run
where Wireshark is not installed (CI, a developer's laptop), so tshark's
verdicts are computed once, here, and committed beside the files.  Run it again
(``python tests/corpus/make_reference.py``) after adding or removing a file;
``--check`` tells whether the committed JSON is still what the files say.

Per file it records:

``records``
    how many records tshark reads before it stops (``tshark -T fields -e
    frame.number``; capinfos stops at the same place);
``whole``
    whether tshark read the file to its end without an error (exit status 0
    and nothing on stderr but its "running as root" notice);
``error``
    tshark's error text when not (file names replaced by ``FILE``);
``verdict``
    that outcome in one word (see :func:`verdict`);
``file_type`` and ``encapsulations``
    capinfos' file type and the encapsulations of the records it read
    (Wireshark's names);
``linktypes``
    the LINKTYPE_* values of the records tshark read, or of the whole file
    when it read none: taken from the pcap file header or from the pcapng
    interface blocks that tshark's per-record section number and interface id
    name.  Wireshark's encapsulation numbers are its own, not LINKTYPE values,
    so the numbers are read from the file, by the small parser below, which
    shares no code with pcaploop's reader;
``size`` and ``sha256``
    so the test can tell a stale reference from a disagreement.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
#: what lives in the corpus folder but is no capture
NOT_CAPTURES = {"SOURCES.md", "reference.json", "make_reference.py", "README.md"}
#: tshark's and capinfos' notice when run as root: not an error about the file
ROOT_NOTICE = re.compile(r'^Running as user "[^"]*" and group "[^"]*"\. This could be dangerous\.$')

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": "<",  # microseconds
    b"\xa1\xb2\xc3\xd4": ">",
    b"\x4d\x3c\xb2\xa1": "<",  # nanoseconds
    b"\xa1\xb2\x3c\x4d": ">",
    b"\x34\xcd\xb2\xa1": "<",  # Alexey Kuznetsov's modified pcap
    b"\xa1\xb2\xcd\x34": ">",
}
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_IDB = 1
PCAPNG_PB = 2  # obsolete packet block
PCAPNG_SPB = 3
PCAPNG_EPB = 6
PCAPNG_BOM = 0x1A2B3C4D


def capture_files(corpus: Path) -> list[Path]:
    """Every capture below ``corpus``, in a stable order."""
    return sorted(
        p
        for p in corpus.rglob("*")
        if p.is_file() and p.name not in NOT_CAPTURES and p.suffix not in {".py", ".md"}
    )


def head_bytes(path: Path, limit: int = 64 << 20) -> bytes:
    """The file's bytes, gunzipped as far as they go when it is gzip.

    A damaged gzip stream yields what decompressed before the damage, as
    Wireshark's reader does.
    """
    raw = path.read_bytes()
    if not raw.startswith(b"\x1f\x8b"):
        return raw
    out = bytearray()
    data = raw
    while data.startswith(b"\x1f\x8b") and len(out) < limit:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out += d.decompress(data, limit - len(out))
        except zlib.error:
            break
        if not d.eof:
            break
        data = d.unused_data  # a further gzip member, as `cat a.gz b.gz` makes
    return bytes(out)


def pcapng_interfaces(data: bytes) -> list[list[int]]:
    """Per section (in order), the link type of each interface block.

    Stops quietly at the first block that does not parse: the result is what
    the readable part of the file declares.
    """
    sections: list[list[int]] = []
    off = 0
    order = "<"
    while off + 12 <= len(data):
        (btype_le,) = struct.unpack_from("<I", data, off)
        if btype_le == PCAPNG_SHB:
            bom = data[off + 8 : off + 12]
            if bom == struct.pack("<I", PCAPNG_BOM):
                order = "<"
            elif bom == struct.pack(">I", PCAPNG_BOM):
                order = ">"
            else:
                break
            sections.append([])
        elif not sections:
            break
        btype, blen = struct.unpack_from(order + "II", data, off)
        if blen < 12 or blen % 4 or off + blen > len(data):
            break
        if btype == PCAPNG_IDB and blen >= 20:
            (linktype,) = struct.unpack_from(order + "H", data, off + 8)
            sections[-1].append(linktype)
        off += blen
    return sections


def file_linktypes(path: Path) -> tuple[str, Any]:
    """``("pcap", linktype)``, ``("pcapng", per-section interface link types)`` or unknown."""
    data = head_bytes(path)
    endian = PCAP_MAGICS.get(data[:4])
    if endian is not None and len(data) >= 24:
        (network,) = struct.unpack_from(endian + "I", data, 20)
        return "pcap", network & 0xFFFF  # the upper bits are FCS length and reserved
    if len(data) >= 12 and struct.unpack_from("<I", data)[0] == PCAPNG_SHB:
        return "pcapng", pcapng_interfaces(data)
    return "other", None


def run(cmd: list[str], timeout: float = 300) -> tuple[int, str, list[str]]:
    """Exit status, stdout and the stderr lines that are about the file."""
    p = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=timeout)
    err = [ln for ln in p.stderr.splitlines() if ln.strip() and not ROOT_NOTICE.match(ln)]
    return p.returncode, p.stdout, err


def tshark_records(path: Path) -> tuple[list[tuple[int, int]], bool, str | None]:
    """(section, interface) of every record tshark reads, whether it read all, its error."""
    rc, out, err = run(
        [
            "tshark",
            "-n",
            "-r",
            str(path),
            "-T",
            "fields",
            "-E",
            "separator=,",
            "-e",
            "frame.section_number",
            "-e",
            "frame.interface_id",
            "-e",
            "frame.encap_type",
        ]
    )
    records: list[tuple[int, int]] = []
    for line in out.splitlines():
        section, iface, encap = (line.split(",") + ["", "", ""])[:3]
        if not encap:
            continue  # a pcapng custom block, which tshark lists as a frame: no packet
        records.append((int(section or 1), int(iface or 0)))
    error = " ".join(err).replace(str(path), "FILE") or None
    return records, rc == 0 and error is None, error


def capinfos(path: Path) -> tuple[str | None, list[str], int | None]:
    """capinfos' file type, the encapsulations in use by its packets, their number."""
    _, out, _ = run(["capinfos", "-t", "-E", "-c", "-M", str(path)])
    file_type = None
    packets = None
    encaps: list[str] = []
    in_list = False
    for line in out.splitlines():
        key, _, value = line.partition(":")
        if key == "File type":
            file_type = value.strip().rsplit(" - ", 1)[-1]
            in_list = False
        elif key == "Number of packets":
            packets = int(value.strip())
            in_list = False
        elif key == "File encapsulation":
            if value.strip() != "Per packet":
                encaps = [value.strip()]
        elif key.startswith("Encapsulation in use by packets"):
            in_list = True
            encaps = []
        elif in_list and line.startswith(" "):
            encaps.append(re.sub(r"\s*\(\d+\)$", "", line.strip()))
        else:
            in_list = False
    return file_type, sorted(set(encaps)), packets


def record_linktypes(path: Path, records: Iterable[tuple[int, int]]) -> list[int]:
    """The LINKTYPE values behind the records tshark read (the declared ones if none)."""
    kind, declared = file_linktypes(path)
    if kind == "pcap":
        return [declared]
    if kind != "pcapng":
        return []
    found: set[int] = set()
    any_record = False
    for section, iface in records:
        any_record = True
        if 1 <= section <= len(declared) and iface < len(declared[section - 1]):
            found.add(declared[section - 1][iface])
    if not any_record:
        found = {lt for sec in declared for lt in sec}
    return sorted(found)


def verdict(whole: bool, records: int, error: str | None) -> str:
    """tshark's outcome in one word, for the test to choose its expectation by.

    ``whole``: read to the end.  ``cut_short``: a record or block stops at the
    end of the file (the records before it are good).  ``unknown_linktype``:
    tshark does not know the file's link type, which says nothing about the
    file's structure.  ``damaged``: an error after some records.  ``rejected``:
    tshark read no record at all (not a capture, an unsupported version, a
    broken header).
    """
    if whole:
        return "whole"
    text = error or ""
    if "appears to have been cut short" in text:
        return "cut_short"
    if re.search(r"network type \d+ unknown or unsupported", text):
        return "unknown_linktype"
    return "damaged" if records else "rejected"


def reference_for(path: Path, corpus: Path) -> tuple[str, dict[str, Any]]:
    """One file's entry, keyed by its path relative to the corpus."""
    records, whole, error = tshark_records(path)
    file_type, encaps, packets = capinfos(path)
    data = path.read_bytes()
    entry = {
        "records": len(records),
        "capinfos_records": packets,
        "whole": whole,
        "verdict": verdict(whole, len(records), error),
        "error": error,
        "file_type": file_type,
        "encapsulations": encaps,
        "linktypes": record_linktypes(path, records),
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    return path.relative_to(corpus).as_posix(), entry


def tool_version(tool: str) -> str:
    """``4.0.17`` from ``TShark (Wireshark) 4.0.17 (Git v4.0.17 …)``."""
    _, out, _ = run([tool, "--version"])
    m = re.search(r"\) (\S+)", out.splitlines()[0] if out else "")
    return m.group(1) if m else "unknown"


def build(corpus: Path, jobs: int) -> dict[str, Any]:
    """The whole reference document."""
    files = capture_files(corpus)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        entries = dict(pool.map(lambda p: reference_for(p, corpus), files))
    return {
        "generator": {
            "script": "tests/corpus/make_reference.py",
            "tshark": tool_version("tshark"),
            "capinfos": tool_version("capinfos"),
        },
        "files": entries,
    }


def dumps(doc: dict[str, Any]) -> str:
    """Stable text: sorted keys, one level of indentation, a final newline."""
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=HERE, help="folder of captures")
    ap.add_argument("--output", type=Path, default=None, help="default: CORPUS/reference.json")
    ap.add_argument("--check", action="store_true", help="only compare with the existing file")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args(argv)
    corpus = args.corpus.resolve()
    output = args.output or corpus / "reference.json"
    text = dumps(build(corpus, args.jobs))
    if args.check:
        same = output.exists() and output.read_text() == text
        print(f"{output}: {'up to date' if same else 'STALE'}")
        return 0 if same else 1
    tmp = output.with_suffix(".json.tmp")
    tmp.write_text(text)
    tmp.replace(output)
    n = len(json.loads(text)["files"])
    print(f"{output}: {n} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
