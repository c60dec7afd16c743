"""Link types that carry IP behind a simple header decode their IP packets (issue #16):
PPP and PPP-in-HDLC, Cisco HDLC, Frame Relay, 802.11 with LLC/SNAP, radiotap, PPI."""

from __future__ import annotations

from pathlib import Path

import fixtures as fx
import pytest

from pcaploop.decode import linktypes as lt
from pcaploop.ingest.info import capture_info

N_IP = len(fx.ip_packets())

#: fixture → (link type name, records that carry no IP, records marked unsupported)
CASES = {
    "ppp": ("PPP", 1, 0),  # an LCP frame
    "ppp_hdlc": ("PPP_HDLC", 0, 0),
    "chdlc": ("C_HDLC", 1, 0),  # SLARP
    "frelay": ("FRELAY", 1, 0),  # Q.933 signalling
    "wlan": ("IEEE802_11", 2, 1),  # a beacon and a null frame; one encrypted frame
    "radiotap": ("IEEE802_11_RADIO", 2, 1),
    "ppi": ("PPI", 0, 1),  # PPI naming a link type we do not decode
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_ip_behind_the_link_header(captures: dict[str, Path], name: str) -> None:
    linktype, non_ip, unsupported = CASES[name]
    (c,) = capture_info([str(captures[name])])["captures"]
    assert c["linktype"] == linktype
    extra = 1 if name == "ppi" else 0  # its Ethernet record is one more IP packet
    assert c["decoded"] == N_IP + extra
    assert c["skipped"]["non_ip"] == non_ip
    assert c["skipped"]["unsupported"] == unsupported
    assert c["skipped"]["malformed"] == 0
    assert c["protocols"].get("udp", 0) > 0 and c["protocols"].get("icmpv6", 0) > 0


def test_every_link_type_has_a_decoder() -> None:
    for code in {e[1] for e in lt.LINKTYPES.values()}:
        assert code != lt.L2_UNSUPPORTED
