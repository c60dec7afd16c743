"""Random damage to valid captures: only PcaploopError, balanced accounting, bounded memory."""

from __future__ import annotations

import struct
import tempfile
import tracemalloc
from pathlib import Path

import fixtures as fx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pcaploop.errors import PcaploopError
from pcaploop.ingest.loader import load

#: fixed bound on the peak of traced allocations while loading a small damaged file:
#: the reader's reused buffers (~7 MiB) plus decode arrays of one small batch
PEAK_BOUND = 12 << 20

_DIR = Path(tempfile.mkdtemp(prefix="pcaploop-fuzz-"))
_WARM: list[bool] = []


def _seed(make) -> bytes:
    d = Path(tempfile.mkdtemp(dir=_DIR))
    return make(d).read_bytes()


SEEDS = {
    "pcap_le": _seed(fx.make_pcap_us_le),
    "pcap_ns_be": _seed(fx.make_pcap_ns_be),
    "sll2": _seed(fx.make_sll2),
    "pcapng_multi": _seed(fx.make_pcapng_multi),
    "pcapng_single": _seed(fx.make_pcapng_single),
}
HUGE = [0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 262145, 262144, 65536, 0, 1, 3, 12, 16, 28, 32]


@st.composite
def damaged(draw) -> bytes:
    """A seed capture with bytes overwritten, 32-bit fields set to extreme values,
    slices removed or duplicated, and the end cut off."""
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.integers(0, 3))
        i = draw(st.integers(0, len(data) - 1))
        if kind == 0:
            data[i] = draw(st.integers(0, 255))
        elif kind == 1 and i + 4 <= len(data):
            order = draw(st.sampled_from("<>"))
            data[i : i + 4] = struct.pack(order + "I", draw(st.sampled_from(HUGE)))
        elif kind == 2:
            j = draw(st.integers(i, min(len(data), i + 64)))
            del data[i:j]
        else:
            j = draw(st.integers(i, min(len(data), i + 64)))
            data[i:i] = data[i:j]
        if not data:
            break
    cut = draw(st.integers(0, len(data)))
    return bytes(data[:cut] if draw(st.booleans()) else data)


def _load_checked(path: Path) -> None:
    """Load; accounting must balance whenever a result comes back."""
    try:
        pk = load([str(path)])
    except PcaploopError:
        return
    for p in pk.points:
        assert p.records == p.decoded + sum(p.skipped.values())
    assert sum(p.decoded for p in pk.points) == len(pk)
    pk.frame()  # the table builds from whatever came out


def _warm_up() -> None:
    """Import and compile everything once, so the memory bound measures the reading."""
    for name, data in SEEDS.items():
        path = _DIR / f"warm-{name}"
        for blob in (data, data[:40], data[: len(data) // 2]):
            path.write_bytes(blob)
            _load_checked(path)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged())
def test_damaged_captures(data):
    if not _WARM:
        _warm_up()
        _WARM.append(True)
    path = _DIR / "fuzz.pcap"
    path.write_bytes(data)
    tracemalloc.start()
    try:
        _load_checked(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < PEAK_BOUND, peak


@settings(max_examples=50, deadline=None)
@given(st.sampled_from(sorted(SEEDS)), st.integers(0, 3))
def test_gzip_damaged(seed, how):
    """gzip'd captures cut or flipped anywhere: reported, never a crash."""
    import gzip

    comp = bytearray(gzip.compress(SEEDS[seed]))
    if how == 0:
        comp = comp[: len(comp) // 2]
    elif how == 1:
        comp[len(comp) // 2] ^= 0xFF
    elif how == 2:
        comp = comp[:-4]
    path = _DIR / "fuzz.pcap.gz"
    path.write_bytes(bytes(comp))
    _load_checked(path)


@pytest.mark.parametrize("seed", sorted(SEEDS))
def test_every_prefix_of_a_capture(seed):
    """Cutting a capture at every 7th byte: only PcaploopError, accounting balances."""
    data = SEEDS[seed]
    path = _DIR / f"prefix-{seed}"
    for n in range(0, len(data), 7):
        path.write_bytes(data[:n])
        _load_checked(path)
