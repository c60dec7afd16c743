"""Column names and dtypes of the packets table, declared once.

Two layers:

* **raw columns** (``RAW``): what the decode kernels write, plain numpy
  arrays with compact fixed-width dtypes (addresses as two ``uint64`` each,
  IPv4 mapped into ``::ffff:0:0/96``; ``-1`` where a field is absent).
* **table columns** (``TABLE``): the pandas DataFrame a person reads:
  times as ``datetime64[ns, UTC]``, addresses as readable categoricals,
  absent values as ``<NA>``.

Both decoders (the compiled fast path in :mod:`pcaploop.decode` and the dpkt
reference in :mod:`pcaploop.refdecode`) fill the raw columns; tests check
they agree on every row.
"""

from __future__ import annotations

import numpy as np

#: raw columns by name (:data:`RAW`), one array each, all of one length
Columns = dict[str, np.ndarray]

# --- per-record decode status (how a record is accounted for) --------------
OK = 0
NON_IP = 1
MALFORMED = 2
UNSUPPORTED = 3
SKIP_REASONS = ("non_ip", "malformed", "unsupported")

# --- direction codes ----------------------------------------------------------
DIR_UNKNOWN = 0
DIR_IN = 1
DIR_OUT = 2
DIRECTIONS = ("unknown", "in", "out")

# --- flags (bit field in the raw ``flags`` column) --------------------------
F_TRUNCATED = 1  # captured length < original length (snaplen)
F_OFFLOAD = 2  # GSO/GRO super-frame: IP length 0 or larger than the frame
F_SHORT_KEY = 4  # fewer than PREFIX_LEN bytes of L4 available for the digest
F_DF = 8  # IPv4 don't-fragment bit
F_MF = 16  # more fragments (IPv4 or IPv6 fragment header)
F_INNER_SHORT = 32  # quoted packet in an ICMP error has < 8 bytes of L4

#: bytes of L4 header+payload that enter the fingerprint digest.  Chosen to be
#: present at snaplen 96 behind SLL2 (20) + IPv6 (40) + a fragment header (8).
PREFIX_LEN = 24

#: Missing MAC address marker (MACs are 48 bit).
NO_MAC = np.uint64(1 << 63)

#: name -> numpy dtype of every raw column, in table order.
RAW: dict[str, np.dtype] = {
    name: np.dtype(dt)
    for name, dt in [
        ("time_ns", "int64"),  # ns since the epoch, UTC
        ("point", "int16"),  # index into the list of capture points
        ("direction", "int8"),  # DIR_*
        ("vlan", "int32"),  # outermost 802.1Q id, -1 when untagged
        ("inner_vlan", "int32"),  # second tag (QinQ), -1 when absent
        ("eth_src", "uint64"),  # 48-bit MAC or NO_MAC
        ("eth_dst", "uint64"),
        ("ip_version", "uint8"),
        ("src_hi", "uint64"),
        ("src_lo", "uint64"),
        ("dst_hi", "uint64"),
        ("dst_lo", "uint64"),
        ("protocol", "uint8"),  # upper-layer protocol (after IPv6 ext headers)
        ("ttl", "uint8"),  # TTL or hop limit
        ("ip_id", "int64"),  # IPv4 ID, IPv6 fragment id, -1 when absent
        ("ip_len", "uint32"),  # total length of the IP packet per its header
        ("frag_offset", "uint16"),  # in bytes
        ("flow_label", "uint32"),
        ("sport", "int32"),  # -1 when absent
        ("dport", "int32"),
        ("tcp_flags", "int16"),
        ("icmp_type", "int16"),
        ("icmp_code", "int16"),
        ("inner_version", "uint8"),  # 0: no quoted packet
        ("inner_src_hi", "uint64"),
        ("inner_src_lo", "uint64"),
        ("inner_dst_hi", "uint64"),
        ("inner_dst_lo", "uint64"),
        ("inner_protocol", "int16"),
        ("inner_ip_id", "int64"),
        ("inner_ttl", "int16"),
        ("inner_l4", "uint64"),  # first 8 bytes of the quoted L4, checksum zeroed
        ("inner_fingerprint", "uint64"),  # the quoted packet's fingerprint, 0: quote too short
        ("l4_head", "uint64"),  # first 8 bytes of this packet's L4, checksum zeroed
        ("caplen", "uint32"),
        ("wirelen", "uint32"),
        ("flags", "uint8"),  # F_* bits
        ("fingerprint", "uint64"),
        ("record", "int64"),  # record number within its file (0-based)
    ]
}

#: Public DataFrame columns -> dtype (strings are pandas dtype names).
TABLE: dict[str, str] = {
    "time": "datetime64[ns, UTC]",
    "capture_point": "category",
    "direction": "category",
    "vlan": "Int32",
    "eth_src": "category",
    "eth_dst": "category",
    "ip_version": "uint8",
    "src": "category",
    "dst": "category",
    "protocol": "uint8",
    "ttl": "uint8",
    "ip_id": "Int64",
    "ip_len": "uint32",
    "frag_offset": "uint16",
    "more_fragments": "bool",
    "dont_fragment": "bool",
    "flow_label": "uint32",
    "sport": "Int32",
    "dport": "Int32",
    "tcp_flags": "Int16",
    "icmp_type": "Int16",
    "icmp_code": "Int16",
    "inner_src": "category",
    "inner_dst": "category",
    "inner_protocol": "Int16",
    "inner_ip_id": "Int64",
    "inner_ttl": "Int16",
    "inner_l4": "uint64",
    "inner_fingerprint": "uint64",
    "l4_head": "uint64",
    "caplen": "uint32",
    "wirelen": "uint32",
    "truncated": "bool",
    "offload": "bool",
    "short_key": "bool",
    "fingerprint": "uint64",
    "record": "int64",
}

PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6", 132: "sctp", 47: "gre", 50: "esp"}
