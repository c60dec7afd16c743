"""The JSON contract's checker (pcaploop.contract)."""

from __future__ import annotations

import copy

import pytest
from loopgen import tunnel_loop, write

import pcaploop
from pcaploop.errors import PcaploopError


@pytest.fixture(scope="module")
def doc(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return pcaploop.analyze(write(tunnel_loop(n=3), tmp_path_factory.mktemp("c"))).to_json()


def test_a_violation_is_named_with_its_place(doc: dict) -> None:
    pcaploop.validate_json(doc)
    bad = copy.deepcopy(doc)
    bad["loops"][0]["observations"] = "many"
    with pytest.raises(PcaploopError, match="at loops/0/observations"):
        pcaploop.validate_json(bad)


def test_max_items_checks_the_first_items_of_each_array(doc: dict) -> None:
    """The CLI checks the first items of long arrays (all made by the same code); the
    document itself is left as it was."""
    bad = copy.deepcopy(doc)
    bad["loops"] = bad["loops"] * 3
    bad["loops"][2] = {**bad["loops"][2], "observations": "many"}
    with pytest.raises(PcaploopError, match="loops/2"):
        pcaploop.validate_json(bad)
    pcaploop.validate_json(bad, max_items=2)  # item 2 is past the check
    with pytest.raises(PcaploopError, match="loops/2"):
        pcaploop.validate_json(bad, max_items=3)
    assert len(bad["loops"]) == 3
