"""Read stage: capture files (pcap, pcapng, gzip) → batches of raw records.

Nothing here knows what a packet contains: a record is bytes, lengths, a
timestamp, an interface and, where the format says so, a direction.
Damaged files are read as far as they are intact; :class:`CaptureFile`
says what was left unread and why.
"""

from __future__ import annotations

from .capture import CaptureFile as CaptureFile
from .capture import Interface as Interface
from .capture import RecordBatch as RecordBatch
from .capture import open_capture as open_capture
from .capture import sniff as sniff
