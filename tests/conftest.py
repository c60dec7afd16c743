"""Shared pytest fixtures: every capture of :mod:`fixtures`, written once per session."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import fixtures

KEY = (np.uint64(0x0123456789ABCDEF), np.uint64(0xFEDCBA9876543210))


@pytest.fixture(scope="session")
def captures(tmp_path_factory) -> dict[str, Path]:
    """name → path of every fixture capture (valid, damaged and not-a-capture)."""
    out = {}
    for group in (fixtures.VALID, fixtures.DAMAGED, fixtures.NOT_CAPTURES):
        for name, make in group.items():
            out[name] = make(tmp_path_factory.mktemp(name))
    return out


@pytest.fixture(scope="session")
def key():
    """A fixed fingerprint key, so failures reproduce."""
    return KEY


def pytest_configure(config) -> None:
    """Run the suite with the kernels compiled, as a large capture would (small test
    inputs would otherwise stay in plain Python; the no-JIT pass covers that)."""
    from pcaploop import _jit

    _jit.activate()
