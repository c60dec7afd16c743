"""One exception tree for the whole library.

The library raises these; the CLI catches :class:`PcaploopError`, prints
``Error: <message>`` on one line and exits with status 2.  Anything else
escaping to the user is a bug.
"""

from __future__ import annotations

__all__ = [
    "CaptureError",
    "NotACaptureError",
    "PcaploopError",
    "UnsupportedLinkTypeError",
    "UsageError",
]


#: paths shown to people under another name (standard input's temporary copy)
_SHOWN: dict[str, str] = {}


def show_as(path: str, text: str) -> None:
    """From now on, messages name ``path`` as ``text``."""
    _SHOWN[str(path)] = text


def shown(path: str) -> str:
    """``path`` as messages name it (see :func:`show_as`)."""
    return _SHOWN.get(str(path), str(path))


class PcaploopError(Exception):
    """Base class of every error pcaploop raises on purpose."""


class CaptureError(PcaploopError):
    """A capture file could not be read (unreadable path, nothing usable in it).

    ``path`` names the file so the message can be printed as ``<file>: <what>``.
    """

    def __init__(self, path: str, message: str) -> None:
        self.path = str(path)
        self.reason = message
        super().__init__(f"{shown(self.path)}: {message}")

    def __reduce__(self) -> tuple[type[CaptureError], tuple[str, str]]:
        """Pickled as (path, reason): a worker process's error reaches the parent whole."""
        return type(self), (self.path, self.reason)


class NotACaptureError(CaptureError):
    """The file is not a pcap or pcapng capture (text, JPEG, empty …)."""


class UnsupportedLinkTypeError(CaptureError):
    """Every interface of the file uses a link type pcaploop cannot decode."""


class UsageError(PcaploopError):
    """Options that contradict each other or name something that does not exist."""
