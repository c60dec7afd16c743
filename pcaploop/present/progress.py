"""A progress bar on stderr for inputs that take more than a moment (CLI only)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from ..ingest.loader import Progress
from ..ingest.specs import CaptureSpec

_THRESHOLD = 32 << 20  # below this much input there is nothing to watch


@contextmanager
def file_progress(
    specs: Sequence[CaptureSpec], label: str = "reading"
) -> Iterator[Progress | None]:
    """Yield a callback taking bytes consumed, or ``None`` when no bar is useful."""
    sizes = []
    for s in specs:
        try:
            sizes.append(os.path.getsize(s.path))
        except OSError:
            sizes.append(0)
    compressed = any(s.path.endswith(".gz") for s in specs)
    if sum(sizes) < _THRESHOLD or not sys.stderr.isatty() or os.environ.get("CI"):
        yield None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )
    from rich.progress import Progress as Bar

    with Bar(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        transient=True,
        console=_stderr_console(),
    ) as bar:
        task = bar.add_task(label, total=None if compressed else sum(sizes))
        yield lambda n: bar.advance(task, n)


def _stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True)
