"""Decode stage: record batches → typed packet columns (:mod:`pcaploop.schema`).

* :mod:`.linktypes` — which layer-2 decoder each pcap link type uses;
* :mod:`.kernel` — the compiled decode of one packet, and the batch decoder;
* :mod:`.fingerprint` — the keyed hash of what does not change hop to hop.

Decode states facts (addresses, TTL, ports, the packet quoted by an ICMP
error, the fingerprint); it never decides what a loop is.
"""

from __future__ import annotations
