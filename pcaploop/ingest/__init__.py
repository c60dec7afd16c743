"""Ingest stage: what the user named → capture points and one packets table.

Capture specs (``NAME=PATH``), capture points and their accounting
(``records == decoded + sum(skipped)``), the loader that reads several
captures in step, and ``info``'s per-point summaries.
"""

from __future__ import annotations
