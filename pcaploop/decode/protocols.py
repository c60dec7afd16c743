"""Protocol numbers by name, declared once (as dpkt's ``ethernet.py``/``ip.py``/``ip6.py``).

The compiled kernel, the analysis stages and the tests all use these names;
numba reads module-level integers as compile-time constants, so a name
costs nothing in the kernel.  Values are from the IANA registries and the
Linux headers named beside each group.
"""

from __future__ import annotations

from typing import Final

# --- EtherTypes (linux/if_ether.h) -----------------------------------------------------
ETH_ALEN: Final = 6  # bytes in a MAC address
ETH_P_IP: Final = 0x0800
ETH_P_ARP: Final = 0x0806
ETH_P_IPV6: Final = 0x86DD
ETH_P_8021Q: Final = 0x8100  # VLAN tag
ETH_P_8021AD: Final = 0x88A8  # service VLAN tag (QinQ outer)
ETH_P_QINQ1: Final = 0x9100  # pre-standard QinQ tag
#: EtherTypes that mean "a VLAN tag follows"
VLAN_TPIDS: Final = (ETH_P_8021Q, ETH_P_8021AD, ETH_P_QINQ1)
#: VLAN tags read before giving up (QinQ has two; more is a crafted frame)
MAX_VLAN_TAGS: Final = 4

# --- ARP (linux/if_arp.h) ----------------------------------------------------------------
ARPHRD_ETHER: Final = 1
ARPOP_REQUEST: Final = 1
ARPOP_REPLY: Final = 2
#: ARP body for Ethernet/IPv4: hardware, protocol, lengths, op, 2 × (MAC + IPv4)
ARP_ETH_IP_LEN: Final = 28

# --- IP protocol numbers (netinet/in.h) -------------------------------------------------
IPPROTO_HOPOPTS: Final = 0
IPPROTO_ICMP: Final = 1
IPPROTO_TCP: Final = 6
IPPROTO_UDP: Final = 17
IPPROTO_ROUTING: Final = 43
IPPROTO_FRAGMENT: Final = 44
IPPROTO_GRE: Final = 47
IPPROTO_ESP: Final = 50
IPPROTO_AH: Final = 51
IPPROTO_ICMPV6: Final = 58
IPPROTO_DSTOPTS: Final = 60
IPPROTO_SCTP: Final = 132
IPPROTO_MH: Final = 135
IPPROTO_UDPLITE: Final = 136
IPPROTO_HIP: Final = 139
IPPROTO_SHIM6: Final = 140
#: IPv6 extension headers with the generic (next header, length in 8-octet units) layout
IPV6_EXT_GENERIC: Final = (
    IPPROTO_HOPOPTS,
    IPPROTO_ROUTING,
    IPPROTO_DSTOPTS,
    IPPROTO_MH,
    IPPROTO_HIP,
    IPPROTO_SHIM6,
)
#: extension headers walked before giving up (an endless chain is a crafted packet)
MAX_IPV6_EXT: Final = 8

PROTO_NAMES: Final = {
    IPPROTO_ICMP: "icmp",
    IPPROTO_TCP: "tcp",
    IPPROTO_UDP: "udp",
    IPPROTO_ICMPV6: "icmpv6",
    IPPROTO_SCTP: "sctp",
    IPPROTO_GRE: "gre",
    IPPROTO_ESP: "esp",
}

# --- header sizes -------------------------------------------------------------------------
ETH_HLEN: Final = 14
SLL_HLEN: Final = 16
SLL2_HLEN: Final = 20
NULL_HLEN: Final = 4
IPV4_MIN_HLEN: Final = 20
IPV6_HLEN: Final = 40
IPV6_FRAG_HLEN: Final = 8
ICMP_HLEN: Final = 8  # type, code, checksum, 4 bytes of rest-of-header, then the quote

# --- IPv4 header bits ---------------------------------------------------------------------
IP_DF: Final = 0x4000
IP_MF_SHIFT: Final = 13
IP_OFFMASK: Final = 0x1FFF

# --- ICMP types (netinet/ip_icmp.h) --------------------------------------------------------
ICMP_ECHOREPLY: Final = 0
ICMP_DEST_UNREACH: Final = 3
ICMP_SOURCE_QUENCH: Final = 4
ICMP_REDIRECT: Final = 5
ICMP_ECHO: Final = 8
ICMP_TIME_EXCEEDED: Final = 11
ICMP_PARAMETERPROB: Final = 12
#: ICMP types that quote the packet they are about (RFC 792)
ICMP_ERRORS: Final = (
    ICMP_DEST_UNREACH,
    ICMP_SOURCE_QUENCH,
    ICMP_REDIRECT,
    ICMP_TIME_EXCEEDED,
    ICMP_PARAMETERPROB,
)

# --- ICMPv6 types (netinet/icmp6.h) -------------------------------------------------------
ICMP6_DST_UNREACH: Final = 1
ICMP6_PACKET_TOO_BIG: Final = 2
ICMP6_TIME_EXCEEDED: Final = 3
ICMP6_PARAM_PROB: Final = 4
ICMP6_ECHO_REQUEST: Final = 128
ICMP6_ECHO_REPLY: Final = 129
MLD_LISTENER_QUERY: Final = 130
MLD_LISTENER_REPORT: Final = 131
MLD_LISTENER_DONE: Final = 132
ND_ROUTER_SOLICIT: Final = 133
ND_ROUTER_ADVERT: Final = 134
ND_NEIGHBOR_SOLICIT: Final = 135
ND_NEIGHBOR_ADVERT: Final = 136
ND_REDIRECT: Final = 137
MLDV2_LISTENER_REPORT: Final = 143
#: ICMPv6 types that quote the packet they are about (RFC 4443: types below 128)
ICMP6_ERROR_MAX: Final = ICMP6_PARAM_PROB
#: ICMPv6 types whose body starts with a target address (RFC 4861 NS/NA)
ND_TARGETED: Final = (ND_NEIGHBOR_SOLICIT, ND_NEIGHBOR_ADVERT)
ND_TARGET_OFFSET: Final = 8  # the target address follows 4 bytes of flags/reserved
ND_REDIRECT_DEST_OFFSET: Final = 24  # a redirect: target (8..24), then the destination

# --- Linux cooked capture packet types (linux/if_packet.h) -------------------------------
PACKET_HOST: Final = 0  # to us
PACKET_BROADCAST: Final = 1
PACKET_MULTICAST: Final = 2
PACKET_OTHERHOST: Final = 3
PACKET_OUTGOING: Final = 4  # sent by us
#: packet types above this say nothing about direction (loopback, kernel internals)
PACKET_TYPE_MAX_DIRECTION: Final = PACKET_OUTGOING

# --- PPP (RFC 1661, 1662), Cisco HDLC, Frame Relay (RFC 2427) ------------------------------
PPP_ADDRESS: Final = 0xFF  # all-stations, then ...
PPP_CONTROL: Final = 0x03  # ... unnumbered information
PPP_IP: Final = 0x0021
PPP_IPV6: Final = 0x0057
CHDLC_UNICAST: Final = 0x0F
CHDLC_BROADCAST: Final = 0x8F
CHDLC_HLEN: Final = 4  # address, control, EtherType
FR_MAX_ADDRESS: Final = 4  # Q.922 address octets, the last with its EA bit set
FR_UI: Final = 0x03
NLPID_PAD: Final = 0x00
NLPID_SNAP: Final = 0x80
NLPID_IP: Final = 0xCC
NLPID_IPV6: Final = 0x8E
SNAP_HLEN: Final = 5  # OUI (3) and protocol id (2) after NLPID_SNAP

# --- IEEE 802.11 (data frames) with LLC/SNAP, behind radiotap or PPI -----------------------
IEEE80211_HLEN: Final = 24  # frame control, duration, three addresses, sequence control
IEEE80211_ADDR4_LEN: Final = 6  # the fourth address, when both DS bits are set
IEEE80211_QOS_LEN: Final = 2
IEEE80211_HTC_LEN: Final = 4  # HT control, on QoS data frames with the order bit
IEEE80211_TYPE_DATA: Final = 2  # frame control bits 2-3
IEEE80211_SUBTYPE_NODATA: Final = 0x4  # subtype bit: null function, no payload
IEEE80211_SUBTYPE_QOS: Final = 0x8
IEEE80211_FC1_TODS: Final = 0x01
IEEE80211_FC1_FROMDS: Final = 0x02
IEEE80211_FC1_PROTECTED: Final = 0x40  # encrypted: the payload cannot be read
IEEE80211_FC1_ORDER: Final = 0x80
LLC_SNAP: Final = 0xAAAA03  # DSAP, SSAP, control of an LLC/SNAP header
LLC_SNAP_HLEN: Final = 8  # LLC (3), OUI (3), EtherType (2)
RADIOTAP_MIN_HLEN: Final = 8
PPI_MIN_HLEN: Final = 8

# --- address families in BSD NULL / LOOP headers (sys/socket.h of each OS) ----------------
AF_INET: Final = 2
#: AF_INET6 as written by Linux (10), NetBSD/OpenBSD (24), FreeBSD (28) and macOS (30)
AF_INET6_VALUES: Final = (10, 24, 28, 30)

# --- L4 checksum positions (RFC 793, 768, 3828, 792, 4443, 9260) --------------------------
#: protocol → (offset of the checksum in its header, width in bytes)
CHECKSUM_AT: Final = {
    IPPROTO_TCP: (16, 2),
    IPPROTO_UDP: (6, 2),
    IPPROTO_UDPLITE: (6, 2),
    IPPROTO_ICMP: (2, 2),
    IPPROTO_ICMPV6: (2, 2),
    IPPROTO_SCTP: (8, 4),
}
#: protocols whose header starts with 16-bit source and destination ports
PORT_PROTOCOLS: Final = (IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE, IPPROTO_SCTP)
TCP_FLAGS_OFFSET: Final = 13
