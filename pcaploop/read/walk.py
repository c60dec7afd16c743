"""Record walkers: find record boundaries in a buffer chunk.

Walking record headers is a serial dependency (each offset depends on the
previous length), so the hot loop lives here, compiled, and
:mod:`pcaploop.read` only handles the rare blocks.

Both walkers fill only the first ``n`` output slots and return
``(n, pos, status)``.  Without numba they run as plain Python, with the same
semantics (slowly: for debugging and the tests' no-numba pass).
"""

from __future__ import annotations

from .._bytes import u16, u32
from .._jit import njit
from . import formats as F
from .formats import MAX_CAPLEN

NEED_MORE = 0  # ran out of buffer (or of output slots)
OTHER_BLOCK = 1  # pcapng block that Python handles (SHB, IDB, ISB, unknown)
CORRUPT = 2  # lengths that cannot be right: stop reading here


# --- compiled kernels --------------------------------------------------------------
@njit
def walk_pcap(buf, pos, end, big, nsres, snaplen, o_off, o_cap, o_wire, o_ts):  # pragma: no cover
    """Walk classic pcap records in ``buf[pos:end]``; returns (n, pos, status)."""
    n = 0
    maxn = o_off.shape[0]
    mult = 1 if nsres else 1000
    while n < maxn:
        if end - pos < 16:
            return n, pos, NEED_MORE
        incl = u32(buf, pos + 8, big)
        if incl > MAX_CAPLEN:
            return n, pos, CORRUPT
        if end - pos - 16 < incl:
            return n, pos, NEED_MORE
        sec = u32(buf, pos, big)
        frac = u32(buf, pos + 4, big)
        o_ts[n] = sec * 1000000000 + frac * mult
        o_off[n] = pos + 16
        o_cap[n] = incl if incl <= snaplen else snaplen
        o_wire[n] = u32(buf, pos + 12, big)
        pos += 16 + incl
        n += 1
    return n, pos, NEED_MORE


@njit
def _epb_direction(buf, p, stop, big):  # pragma: no cover
    """Direction from the epb_flags option (code 2) in ``buf[p:stop]``."""
    while stop - p >= 4:
        code = u16(buf, p, big)
        olen = u16(buf, p + 2, big)
        if code == F.OPT_ENDOFOPT or p + 4 + olen > stop:
            return 0
        if code == F.EPB_FLAGS and olen == 4:
            d = u32(buf, p + 4, big) & F.EPB_DIRECTION_MASK
            return d if d != F.EPB_DIRECTION_MASK else 0  # 3 is not a valid direction
        p += 4 + ((olen + 3) & ~3)
    return 0


@njit
def walk_pcapng(buf, pos, end, big, o_off, o_cap, o_wire, o_ts, o_if, o_dir):  # pragma: no cover
    """Walk pcapng packet blocks (EPB 6, SPB 3, obsolete PB 2).

    Stops at any other block (status OTHER_BLOCK) so Python can parse it.
    ``o_ts`` holds raw timestamp units; an SPB, which has none, gets
    ``o_dir = -1`` (the caller carries the previous timestamp and clears it).
    """
    n = 0
    maxn = o_off.shape[0]
    while n < maxn:
        if end - pos < 12:
            return n, pos, NEED_MORE
        btype = u32(buf, pos, big)
        blen = u32(buf, pos + 4, big)
        if btype != F.BT_EPB and btype != F.BT_SPB and btype != F.BT_PB:
            return n, pos, OTHER_BLOCK
        if blen < 16 or (blen & 3) != 0 or blen > MAX_CAPLEN + 65536:
            return n, pos, CORRUPT
        if end - pos < blen:
            return n, pos, NEED_MORE
        if u32(buf, pos + blen - 4, big) != blen:
            return n, pos, CORRUPT
        if btype == F.BT_SPB:
            orig = u32(buf, pos + 8, big)
            avail = blen - 16
            o_off[n] = pos + 12
            o_cap[n] = orig if orig < avail else avail
            o_wire[n] = orig
            o_ts[n] = 0
            o_if[n] = 0
            o_dir[n] = -1  # marks an SPB: no timestamp of its own
        else:
            if blen < 32:
                return n, pos, CORRUPT
            cap = u32(buf, pos + 20, big)
            if cap > blen - 32 or cap > MAX_CAPLEN:
                return n, pos, CORRUPT
            if btype == F.BT_EPB:
                o_if[n] = u32(buf, pos + 8, big)
            else:
                o_if[n] = u16(buf, pos + 8, big)
            hi = u32(buf, pos + 12, big)
            if hi >= 0x80000000:  # wraps to a negative int64, compiled or not (garbage anyway)
                hi -= 0x100000000
            o_ts[n] = (hi << 32) | u32(buf, pos + 16, big)
            o_off[n] = pos + 28
            o_cap[n] = cap
            o_wire[n] = u32(buf, pos + 24, big)
            if btype == F.BT_EPB:
                o_dir[n] = _epb_direction(buf, pos + 28 + ((cap + 3) & ~3), pos + blen - 4, big)
            else:
                o_dir[n] = 0
        pos += blen
        n += 1
    return n, pos, NEED_MORE
