"""What the user named: capture specs (``NAME=PATH``) and the ``--ifmap`` interface map.

The library and the CLI turn what they are given into specs here, once
(:func:`capture_specs`); every later stage takes :class:`CaptureSpec` s.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import PcaploopError, UsageError, show_as

__all__ = ["CaptureSpec", "capture_specs", "parse_ifmap"]


@dataclass(frozen=True)
class CaptureSpec:
    """A capture given by the user: ``NAME=PATH`` or just ``PATH``."""

    path: str
    name: str | None = None
    #: what the file is called in names and messages when not its path's stem
    #: (standard input's temporary copy is ``stdin``)
    label: str | None = None

    @classmethod
    def parse(cls, text: str | os.PathLike[str]) -> CaptureSpec:
        """``NAME=PATH`` or ``PATH`` (an existing file whose name contains '=' is a path)."""
        text = os.fspath(text)
        if "=" in text and not os.path.exists(text):
            name, path = text.split("=", 1)
            if name and path:
                return cls(path, name)
        return cls(text)

    @property
    def stem(self) -> str:
        """File name without capture extensions (``uplink.pcap.gz`` → ``uplink``)."""
        if self.label:
            return self.label
        base = Path(self.path).name
        for ext in (".gz", ".pcapng", ".pcap", ".cap", ".dmp"):
            if base.lower().endswith(ext):
                base = base[: -len(ext)]
        return base or Path(self.path).name


#: the capture path that means standard input, and its capture point's default name
STDIN = "-"
STDIN_NAME = "stdin"
#: how messages name standard input (never by its temporary copy's path)
STDIN_SHOWN = "standard input"
_spooled: list[str] = []


def spool_stdin() -> str:
    """Standard input copied to a temporary file, once per process; its path.

    Why a file: a capture is read more than once (``report`` and ``extract``
    fetch the evidence's original bytes again), and a pipe can be read only
    once.  The copy streams in chunks (memory stays small), is removed when
    the process ends, and is never named in output as anything but ``-``'s
    capture point (``stdin``).
    """
    if _spooled:
        return _spooled[0]
    import atexit
    import shutil
    import sys
    import tempfile

    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError("'-' reads a capture from standard input, but it is a terminal")
    fd, path = tempfile.mkstemp(prefix="pcaploop-stdin-", suffix=".cap")
    atexit.register(_remove, path)
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(sys.stdin.buffer, out, 1 << 20)
    except OSError as exc:
        raise PcaploopError(f"standard input: cannot keep a copy: {exc.strerror}") from None
    _spooled.append(path)
    show_as(path, STDIN_SHOWN)
    return path


def _remove(path: str) -> None:
    import contextlib

    with contextlib.suppress(OSError):
        os.remove(path)


def parse_ifmap(specs: Iterable[str]) -> dict[int, str]:
    """``--ifmap`` values → {ifindex: name}.

    Each value is either ``INDEX=NAME[,INDEX=NAME…]`` or a file with the
    host's ``ip -o link`` output (``3: tap101@if2: <…>``).

    >>> parse_ifmap(["2=uplink,5=tap101"])
    {2: 'uplink', 5: 'tap101'}
    """
    out: dict[int, str] = {}
    for spec in specs:
        if os.path.isfile(spec):
            try:
                text = Path(spec).read_text(errors="replace")
            except OSError as exc:
                raise PcaploopError(f"{spec}: cannot read interface map: {exc.strerror}") from None
            for line in text.splitlines():
                m = re.match(r"\s*(\d+):\s+([^\s:@]+)", line)
                if m:
                    out[int(m.group(1))] = m.group(2)
            continue
        if "=" not in spec:
            raise UsageError(
                f"--ifmap {spec}: no such file (give a file with the host's "
                "'ip -o link' output, or INDEX=NAME pairs)"
            )
        for part in spec.split(","):
            m = re.fullmatch(r"\s*(\d+)\s*=\s*(\S+)\s*", part)
            if not m:
                raise UsageError(
                    f"--ifmap {spec!r}: expected INDEX=NAME pairs or an 'ip -o link' file"
                )
            out[int(m.group(1))] = m.group(2)
    return out


def capture_specs(
    captures: Sequence[CaptureSpec | str | os.PathLike[str]],
    ifmap: Mapping[int, str] | Iterable[str] | None = None,
) -> tuple[list[CaptureSpec], dict[int, str]]:
    """Captures and ``--ifmap`` as given → specs and {ifindex: name}.

    Specs pass through unchanged; text is parsed as ``NAME=PATH`` or ``PATH``.

    >>> capture_specs(["uplink=eth0.pcap"], ["5=tap101"])
    ([CaptureSpec(path='eth0.pcap', name='uplink')], {5: 'tap101'})
    """
    if ifmap is None:
        imap: dict[int, str] = {}
    elif isinstance(ifmap, Mapping):
        imap = dict(ifmap)
    else:
        imap = parse_ifmap(ifmap)
    specs = [c if isinstance(c, CaptureSpec) else CaptureSpec.parse(c) for c in captures]
    specs = [
        CaptureSpec(spool_stdin(), sp.name, STDIN_NAME) if sp.path == STDIN else sp for sp in specs
    ]
    if not specs:
        raise UsageError("no capture files given")
    seen: dict[str, CaptureSpec] = {}
    for sp in specs:
        name = sp.name or sp.stem
        other = seen.get(name)
        if other is not None and other.path != sp.path:
            how = "given twice" if sp.name and other.name else "the name both files would get"
            raise UsageError(
                f"capture name {name!r} is {how} ({other.path}, {sp.path}); "
                "name each capture: NAME=PATH"
            )
        seen[name] = sp
    return specs, imap
