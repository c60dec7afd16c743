"""atheris target: any bytes as a capture file, through read, decode and the loader.

Run it as long as you like (``PCAPLOOP_NO_JIT=1`` so the kernels run as Python,
where atheris sees their branches)::

    PCAPLOOP_NO_JIT=1 python tests/fuzz/fuzz_capture.py -max_total_time=3600 [CORPUS_DIR]

A finding is an exception other than PcaploopError, or a capture point whose
records are not all accounted for (``records == decoded + skipped``).
"""

from __future__ import annotations

import os
import sys
import tempfile

import atheris

with atheris.instrument_imports():
    from pcaploop.errors import PcaploopError
    from pcaploop.ingest.loader import Loader
    from pcaploop.ingest.specs import capture_specs

_DIR = tempfile.mkdtemp(prefix="pcaploop-atheris-")
_SUFFIXES = (".pcap", ".pcapng", ".pcap.gz")


def one_input(data: bytes) -> None:
    if not data:
        return
    path = os.path.join(_DIR, "in" + _SUFFIXES[data[0] % len(_SUFFIXES)])
    with open(path, "wb") as f:
        f.write(data[1:])
    try:
        specs, imap = capture_specs([path], None)
        loader = Loader(specs, imap)
        for _cols, _arp in loader.run(reuse=True):
            pass
    except PcaploopError:
        return
    for p in loader.points:
        if p.records != p.decoded + sum(p.skipped.values()):
            raise AssertionError(f"{p.name}: {p.records} records, accounting {p}")


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
