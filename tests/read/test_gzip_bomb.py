"""A .gz that expands far beyond any capture's ratio is read only so far, and says so."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pytest

from pcaploop.ingest.info import capture_info
from pcaploop.read.capture import GZIP_MAX_RATIO


def _bomb(path: Path, zeros: int) -> Path:
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        f.write(bytes(zeros))
    return path


def test_reading_stops_at_the_ratio(tmp_path: Path) -> None:
    p = _bomb(tmp_path / "bomb.pcap.gz", 8 << 20)
    assert p.stat().st_size * GZIP_MAX_RATIO < (8 << 20)  # zeros compress ~1000-fold
    (c,) = capture_info([str(p)])["captures"]
    assert c["truncated_tail"] and "decompression bomb" in c["problem"]
    assert c["records"] == c["decoded"] + sum(c["skipped"].values())
    read = c["records"] * 16 + 24  # empty records: 16 header bytes each
    assert read <= p.stat().st_size * GZIP_MAX_RATIO + (4 << 20)


def test_the_limit_can_be_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = _bomb(tmp_path / "bomb.pcap.gz", 2 << 20)
    monkeypatch.setenv("PCAPLOOP_GZIP_MAX_RATIO", "0")
    (c,) = capture_info([str(p)])["captures"]
    assert not c["truncated_tail"]
    assert c["records"] == (2 << 20) // 16


def test_a_file_that_ends_as_it_crosses_the_ratio_is_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Crossing the ratio with the stream's last bytes is no bomb: every record read and
    nothing reported (found on zeek's mime-header-size-limit.pcap.gz, 203-fold)."""
    p = _bomb(tmp_path / "edge.pcap.gz", 64 << 10)
    unpacked = 24 + (64 << 10)
    monkeypatch.setenv("PCAPLOOP_GZIP_MAX_RATIO", str((unpacked - 8) / p.stat().st_size))
    (c,) = capture_info([str(p)])["captures"]
    assert not c["truncated_tail"] and c["problem"] is None
    assert c["records"] == (64 << 10) // 16
