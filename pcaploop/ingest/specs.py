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

from ..errors import PcaploopError, UsageError

__all__ = ["CaptureSpec", "capture_specs", "parse_ifmap"]


@dataclass(frozen=True)
class CaptureSpec:
    """A capture given by the user: ``NAME=PATH`` or just ``PATH``."""

    path: str
    name: str | None = None

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
        base = Path(self.path).name
        for ext in (".gz", ".pcapng", ".pcap", ".cap", ".dmp"):
            if base.lower().endswith(ext):
                base = base[: -len(ext)]
        return base or Path(self.path).name


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
