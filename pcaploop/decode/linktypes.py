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
L2_PPP = 9  # PPP, with or without HDLC-like address/control (also Cisco HDLC in PPP_HDLC)
L2_CHDLC = 10  # Cisco HDLC: address, control, EtherType
L2_FRELAY = 11  # Frame Relay: Q.922 address, UI, NLPID (RFC 2427)
L2_IEEE80211 = 12  # 802.11 data frames carrying LLC/SNAP
L2_RADIOTAP = 13  # radiotap header, then 802.11
L2_PPI = 14  # PPI header, then the link type it names (802.11 or Ethernet)

# --- LINKTYPE_* values (tcpdump.org/linktypes.html) -----------------------------------
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_PPP = 9
LINKTYPE_PPP_HDLC = 50
LINKTYPE_RAW = 101
LINKTYPE_C_HDLC = 104
LINKTYPE_IEEE802_11 = 105
LINKTYPE_FRELAY = 107
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IEEE802_11_RADIOTAP = 127
LINKTYPE_PPI = 192
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
DLT_RAW_BSD = 12  # DLT_RAW on most BSDs
DLT_RAW_OPENBSD = 14

LINKTYPES: dict[int, tuple[str, int]] = {
    LINKTYPE_NULL: ("NULL", L2_NULL),
    LINKTYPE_ETHERNET: ("EN10MB", L2_ETHERNET),
    DLT_RAW_BSD: ("RAW", L2_RAW),
    DLT_RAW_OPENBSD: ("RAW", L2_RAW),
    LINKTYPE_RAW: ("RAW", L2_RAW),
    LINKTYPE_LOOP: ("LOOP", L2_LOOP),
    LINKTYPE_LINUX_SLL: ("LINUX_SLL", L2_SLL),
    LINKTYPE_IPV4: ("IPV4", L2_IPV4),
    LINKTYPE_IPV6: ("IPV6", L2_IPV6),
    LINKTYPE_LINUX_SLL2: ("LINUX_SLL2", L2_SLL2),
    LINKTYPE_PPP: ("PPP", L2_PPP),
    LINKTYPE_PPP_HDLC: ("PPP_HDLC", L2_PPP),
    LINKTYPE_C_HDLC: ("C_HDLC", L2_CHDLC),
    LINKTYPE_FRELAY: ("FRELAY", L2_FRELAY),
    LINKTYPE_IEEE802_11: ("IEEE802_11", L2_IEEE80211),
    LINKTYPE_IEEE802_11_RADIOTAP: ("IEEE802_11_RADIO", L2_RADIOTAP),
    LINKTYPE_PPI: ("PPI", L2_PPI),
}


def linktype_name(linktype: int) -> str:
    """``EN10MB`` for 1, ``LINKTYPE_147`` for what the table does not know."""
    entry = LINKTYPES.get(linktype)
    return entry[0] if entry else f"LINKTYPE_{linktype}"


def l2_code(linktype: int) -> int:
    """Decoder code for a link type, :data:`L2_UNSUPPORTED` when unknown."""
    entry = LINKTYPES.get(linktype)
    return entry[1] if entry else L2_UNSUPPORTED
