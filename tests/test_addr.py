"""Address text: the fast CIDR text against the standard library's."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pcaploop.addr import from_text, network_text, to_text

_v4 = st.integers(0, 2**32 - 1).map(lambda v: str(ipaddress.IPv4Address(v)))
_v6 = st.integers(0, 2**128 - 1).map(lambda v: ipaddress.IPv6Address(v).compressed)


@settings(max_examples=300, deadline=None)
@given(st.one_of(_v4, _v6), st.one_of(st.none(), st.integers(0, 140)))
def test_network_text_is_ipaddress_network(address: str, prefix: int | None) -> None:
    bits = ipaddress.ip_address(address).max_prefixlen
    plen = bits if prefix is None else min(prefix, bits)
    want = str(ipaddress.ip_network(f"{address}/{plen}", strict=False))
    assert network_text(address, prefix) == want


def test_network_text_refuses_a_negative_prefix() -> None:
    with pytest.raises(ValueError, match="negative"):
        network_text("192.0.2.1", -1)


@settings(max_examples=100, deadline=None)
@given(st.one_of(_v4, _v6))
def test_text_round_trips(address: str) -> None:
    mapped = ipaddress.ip_address(address).version == 6 and (
        ipaddress.IPv6Address(address).ipv4_mapped is not None
    )
    assume(not mapped)  # by design an IPv4-mapped address is written as IPv4
    assert to_text(*from_text(address)) == address
