"""Numbers of the capture file formats by name (libpcap's pcap-savefile, the pcapng draft).

Declared once for the walkers (compiled: numba reads module-level integers
as constants) and for the block parsers in :mod:`.capture`.
"""

from __future__ import annotations

from typing import Final

#: libpcap's MAXIMUM_SNAPLEN: a larger captured length is corrupt
MAX_CAPLEN: Final = 262144
PCAP_FILE_HLEN: Final = 24
PCAP_RECORD_HLEN: Final = 16
#: pcap major version 2 (and DG/UX tcpdump's 543.0): Wireshark reads any minor
#: version of 2, libpcap up to 2.4; both refuse other majors
PCAP_VERSION_MAJOR: Final = 2
PCAP_VERSION_DGUX: Final = (543, 0)
#: the link-type field's bits 16-25 are reserved and must be zero (bits 26-31 say
#: whether and how long a frame check sequence is)
LINKTYPE_MASK: Final = 0xFFFF
LINKTYPE_RESERVED_MASK: Final = 0x03FF0000

# --- pcapng block types --------------------------------------------------------------
BT_SHB: Final = 0x0A0D0D0A  # section header (its value reads the same in both byte orders)
BT_IDB: Final = 1  # interface description
BT_PB: Final = 2  # obsolete packet block
BT_SPB: Final = 3  # simple packet block
BT_NRB: Final = 4  # name resolution
BT_ISB: Final = 5  # interface statistics
BT_EPB: Final = 6  # enhanced packet block
BYTE_ORDER_MAGIC: Final = 0x1A2B3C4D
BLOCK_OVERHEAD: Final = 12  # type, length, trailing length
EPB_HLEN: Final = 28  # block overhead's first 8 bytes + interface, 2 × timestamp, 2 × length
SPB_HLEN: Final = 12
#: section header versions libpcap reads: 1.0, and 1.2 that some writers put
PCAPNG_VERSION_MAJOR: Final = 1
PCAPNG_VERSION_MINORS: Final = (0, 2)

# --- pcapng options ---------------------------------------------------------------------
OPT_ENDOFOPT: Final = 0
OPT_COMMENT: Final = 1
IF_NAME: Final = 2
IF_DESCRIPTION: Final = 3
IF_TSRESOL: Final = 9
IF_TSOFFSET: Final = 14
EPB_FLAGS: Final = 2
ISB_IFDROP: Final = 5
ISB_OSDROP: Final = 7
SHB_USERAPPL: Final = 4
#: epb_flags bits 0-1: 0 unknown, 1 inbound, 2 outbound (3 is not valid)
EPB_DIRECTION_MASK: Final = 3
