"""The terminal view prints capture text as it is: no markup, no emoji codes."""

from __future__ import annotations

import io

from rich.console import Console

from pcaploop.present.terminal import Out


def test_addresses_are_not_emoji_codes() -> None:
    """rich turns ``:100:`` into an emoji: 2001:db8:0:100::1 must stay an address."""
    buf = io.StringIO()
    o = Out(Console(file=buf, width=80))
    o.line("loop to 2001:db8:0:100::1")
    o.para("dropped 2001:db8:0:100::1 and 2001:db8:0:cat::1 " * 3)
    text = buf.getvalue()
    assert text.count("2001:db8:0:100::1") == 4
    assert "💯" not in text
