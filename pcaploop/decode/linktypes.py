"""Link-type table: pcap LINKTYPE value → (name, layer-2 decoder).

Dispatch is by table, as dpkt does: the compiled kernel switches on the
small decoder code, the reference decoder looks up a function by the same
code.  A link type missing here is reported as unsupported for its file;
other files go on.
"""
from __future__ import annotations

L2_UNSUPPORTED = 0
L2_ETHERNET = 1
L2_RAW = 2  # IPv4 or IPv6, version nibble decides
L2_IPV4 = 3
L2_IPV6 = 4
L2_SLL = 5
L2_SLL2 = 6
L2_NULL = 7  # 4-byte address family in the writer's byte order
L2_LOOP = 8  # 4-byte address family in network byte order

LINKTYPES: dict[int, tuple[str, int]] = {
    0: ("NULL", L2_NULL),
    1: ("EN10MB", L2_ETHERNET),
    12: ("RAW", L2_RAW),  # DLT_RAW on most BSDs
    14: ("RAW", L2_RAW),  # DLT_RAW on OpenBSD
    101: ("RAW", L2_RAW),
    108: ("LOOP", L2_LOOP),
    113: ("LINUX_SLL", L2_SLL),
    228: ("IPV4", L2_IPV4),
    229: ("IPV6", L2_IPV6),
    276: ("LINUX_SLL2", L2_SLL2),
}



def linktype_name(linktype: int) -> str:
    """``EN10MB`` for 1, ``LINKTYPE_147`` for what the table does not know."""
    entry = LINKTYPES.get(linktype)
    return entry[0] if entry else f"LINKTYPE_{linktype}"


def l2_code(linktype: int) -> int:
    """Decoder code for a link type, :data:`L2_UNSUPPORTED` when unknown."""
    entry = LINKTYPES.get(linktype)
    return entry[1] if entry else L2_UNSUPPORTED
