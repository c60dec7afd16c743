"""Writing output files safely: atomically, into created directories, never over an input.

A report, extract or export is written to a temporary file beside its
target and renamed over it only when complete, so an interrupted run (Ctrl-C,
a full disk) leaves either the old file or none — never half of one.  A
target that is one of the captures being read is refused: the captures are
the evidence.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from typing import IO

from ..errors import PcaploopError, UsageError


def check_target(path: str | os.PathLike[str], inputs: Iterable[str] = ()) -> str:
    """The target as a string, after refusing one that is an input capture."""
    target = os.fspath(path)
    for src in inputs:
        try:
            if os.path.exists(target) and os.path.samefile(target, src):
                raise UsageError(
                    f"{target}: is one of the input captures; pcaploop never overwrites its inputs"
                )
        except OSError:
            continue
    return target


def ensure_parent(path: str) -> None:
    """Create the directory a file goes into, as ``plot -o newdir/`` does."""
    parent = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as exc:
        raise PcaploopError(f"{parent}: cannot create directory: {exc.strerror}") from None


def is_special(path: str) -> bool:
    """Whether ``path`` is a device, pipe or socket (``/dev/null``, ``/dev/stdout``, a
    FIFO): written in place, never renamed over — that would replace the device
    with a regular file."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


@contextlib.contextmanager
def _in_place(target: str) -> Iterator[IO[bytes]]:
    try:
        with open(target, "wb") as f:
            yield f
    except OSError as exc:
        raise PcaploopError(f"{target}: cannot write: {exc.strerror or exc}") from None


@contextlib.contextmanager
def atomic(path: str | os.PathLike[str], inputs: Iterable[str] = ()) -> Iterator[IO[bytes]]:
    """A binary file object whose content replaces ``path`` when the block ends without
    an error (and is discarded otherwise).  A device or pipe is written in place."""
    target = check_target(path, inputs)
    if is_special(target):
        with _in_place(target) as f:
            yield f
        return
    ensure_parent(target)
    fd, tmp = -1, ""
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=".pcaploop-", suffix=".part", dir=os.path.dirname(os.path.abspath(target))
        )
        with os.fdopen(fd, "wb") as f:
            fd = -1
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
        tmp = ""
    except OSError as exc:
        raise PcaploopError(f"{target}: cannot write: {exc.strerror or exc}") from None
    finally:
        if fd >= 0:
            os.close(fd)
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], inputs: Iterable[str] = ()) -> Iterator[str]:
    """A temporary path beside ``path``, with the same suffixes (writers infer the format
    from them), renamed over ``path`` when the block ends without an error.  For a
    device or pipe, the temporary file is in the temporary directory and its bytes
    are copied into it."""
    target = check_target(path, inputs)
    special = is_special(target)
    if not special:
        ensure_parent(target)
    head, name = os.path.split(os.path.abspath(target))
    if special:
        head = tempfile.gettempdir()
    tmp = os.path.join(head, f".pcaploop-{os.getpid()}-{name}")
    try:
        yield tmp
        if special:
            with open(tmp, "rb") as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
        else:
            os.replace(tmp, target)
    except OSError as exc:
        raise PcaploopError(f"{target}: cannot write: {exc.strerror or exc}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def write_atomic(path: str | os.PathLike[str], data: bytes, inputs: Iterable[str] = ()) -> str:
    """Write ``data`` to ``path`` atomically; returns the path written."""
    with atomic(path, inputs) as f:
        f.write(data)
    return os.fspath(path)
