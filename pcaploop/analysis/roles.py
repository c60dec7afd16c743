"""What each capture point is: the host's uplink, a guest's link, or unknown.

A name is only a hint (``tap101``, ``vnet3``, ``veth…``): users pass files
as they come, and ``tcpdump -i any`` names interfaces by index.
"""

from __future__ import annotations

import re

#: names that look like a guest's point-to-point link (a hint, not evidence)
GUEST_LINK_NAME = re.compile(r"^(tap|tun|veth|vnet|ppp|venet|vif|vm|fwpr|fwln|guest)", re.I)


def guest_link_by_name(name: str) -> bool:
    """Whether ``name`` looks like a guest link's interface name."""
    return GUEST_LINK_NAME.match(name) is not None
