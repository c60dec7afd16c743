"""What the distribution plots draw, computed apart from the drawing (as seaborn's
``_statistics.py``): per loop, one value per looping packet.

Why one pass: a report on a capture with thousands of loops selected each
loop's rows from the per-path table one by one (a pandas lookup per loop,
twice); here every loop's rows are gathered with one indexer and split.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # pragma: no cover
    from ..analysis.model import Loop
    from ..analysis.pipeline import Analysis

_NS = 1e9


def _l3_columns(a: Analysis, names: tuple[str, ...]) -> list[tuple[Loop, dict[str, np.ndarray]]]:
    """Per routed loop, ``names`` of detect's per-path table for its looping packets."""
    loops = [lp for lp in a.loops if lp.kind == "l3"]
    if not loops:
        return []
    paths = [np.asarray(a.evidence[lp.id].paths, dtype=np.int64) for lp in loops]
    table = a.detection.looping
    pos = table.index.get_indexer(pd.Index(np.concatenate(paths)))
    if (pos < 0).any():  # pragma: no cover - every loop's paths are in the table
        raise KeyError("a loop's path is missing from the per-path table")
    cuts = np.cumsum([len(p) for p in paths])[:-1]
    cols = {n: np.split(table[n].to_numpy()[pos], cuts) for n in names}
    return [(lp, {n: cols[n][k] for n in names}) for k, lp in enumerate(loops)]


def copies_per_packet(a: Analysis) -> list[tuple[Loop, np.ndarray]]:
    """Per loop with captured copies (routed or layer-2), the copies of each looping
    packet at the loop's capture points, in the order of ``a.loops``."""
    l3 = {lp.id: d["copies"] for lp, d in _l3_columns(a, ("copies",))}
    out = []
    for lp in a.loops:
        if lp.kind == "l3":
            out.append((lp, l3[lp.id]))
        elif lp.kind == "l2":
            rows = a.evidence[lp.id].copies
            out.append((lp, np.unique(a.packets.cols["fingerprint"][rows], return_counts=True)[1]))
    return out


def cycle_times(a: Analysis) -> list[tuple[Loop, np.ndarray]]:
    """Per routed loop, the seconds one trip around it took, per looping packet whose
    copies span at least one trip (first to last copy over the TTL steps between)."""
    names = ("loop_max_ttl", "loop_min_ttl", "ttl_step", "first_ns", "last_ns")
    out = []
    for lp, d in _l3_columns(a, names):
        steps = d["loop_max_ttl"].astype(np.int64) - d["loop_min_ttl"].astype(np.int64)
        cycles = steps / np.maximum(d["ttl_step"].astype(np.int64), 1)
        span = d["last_ns"].astype(np.int64) - d["first_ns"].astype(np.int64)
        ok = cycles > 0
        ct = span[ok] / cycles[ok] / _NS
        ct = ct[~np.isnan(ct)]
        if len(ct):
            out.append((lp, ct))
    return out
