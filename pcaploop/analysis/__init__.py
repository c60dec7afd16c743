"""Analysis stages: correlate → detect → measure → explain, and the pipeline.

* :mod:`.correlate` states facts: which observations are copies of one
  packet (paths), their TTLs, directions and capture points;
* :mod:`.detect` alone decides what is a loop, a bounce, a duplicate or a
  layer-2 repeat;
* :mod:`.measure` only counts: the numbers of each loop;
* :mod:`.explain` turns a loop into words and fix commands;
* :mod:`.window` runs correlate and detect over a stream in bounded memory;
* :mod:`.pipeline` ties the stages together (:func:`analyze`, :class:`Analysis`).
"""

from __future__ import annotations
