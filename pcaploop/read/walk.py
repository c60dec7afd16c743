"""Record walkers: find record boundaries in a buffer chunk.

Walking record headers is a serial dependency (each offset depends on the
previous length), ~105 ns/record compiled, so the hot loop lives here and
:mod:`pcaploop.read` only handles the rare blocks.

Each walker exists twice.  The ``*_jit`` kernels are compiled by numba;
without numba they would run as plain Python over numpy scalars at ~27 µs
per record, so then the ``*_py`` twins run instead: the same checks in the
same order over a ``memoryview`` with :mod:`struct` (~1 µs per record).
Both fill only the first ``n`` output slots and return the same
``(n, pos, status)``; ``walk_pcap`` / ``walk_pcapng`` are whichever fits.
"""
from __future__ import annotations

import struct

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .._bytes import u16, u32
from .._jit import JIT, njit

MAX_CAPLEN = 262144  # libpcap's MAXIMUM_SNAPLEN: a larger captured length is corrupt

NEED_MORE = 0  # ran out of buffer (or of output slots)
OTHER_BLOCK = 1  # pcapng block that Python handles (SHB, IDB, ISB, unknown)
CORRUPT = 2  # lengths that cannot be right: stop reading here


# --- compiled kernels --------------------------------------------------------------
@njit
def walk_pcap_jit(buf, pos, end, big, nsres, snaplen, o_off, o_cap, o_wire, o_ts):  # pragma: no cover
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
def _epb_direction_jit(buf, p, stop, big):  # pragma: no cover
    """Direction from the epb_flags option (code 2) in ``buf[p:stop]``."""
    while stop - p >= 4:
        code = u16(buf, p, big)
        olen = u16(buf, p + 2, big)
        if code == 0 or p + 4 + olen > stop:
            return 0
        if code == 2 and olen == 4:
            d = u32(buf, p + 4, big) & 3
            return d if d != 3 else 0  # 3 is not a valid direction
        p += 4 + ((olen + 3) & ~3)
    return 0


@njit
def walk_pcapng_jit(buf, pos, end, big, o_off, o_cap, o_wire, o_ts, o_if, o_dir):  # pragma: no cover
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
        if btype != 6 and btype != 3 and btype != 2:
            return n, pos, OTHER_BLOCK
        if blen < 16 or (blen & 3) != 0 or blen > MAX_CAPLEN + 65536:
            return n, pos, CORRUPT
        if end - pos < blen:
            return n, pos, NEED_MORE
        if u32(buf, pos + blen - 4, big) != blen:
            return n, pos, CORRUPT
        if btype == 3:
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
            if btype == 6:
                o_if[n] = u32(buf, pos + 8, big)
            else:
                o_if[n] = u16(buf, pos + 8, big)
            o_ts[n] = (u32(buf, pos + 12, big) << 32) | u32(buf, pos + 16, big)
            o_off[n] = pos + 28
            o_cap[n] = cap
            o_wire[n] = u32(buf, pos + 24, big)
            if btype == 6:
                o_dir[n] = _epb_direction_jit(buf, pos + 28 + ((cap + 3) & ~3), pos + blen - 4, big)
            else:
                o_dir[n] = 0
        pos += blen
        n += 1
    return n, pos, NEED_MORE


# --- Python twins (no numba) ----------------------------------------------------------
_ORDERS = {big: tuple(struct.Struct(("<", ">")[big] + f).unpack_from
                      for f in ("I", "II", "HH", "IIIII", "H"))
           for big in (False, True)}


def walk_pcap_py(buf, pos, end, big, nsres, snaplen, o_off, o_cap, o_wire, o_ts):
    """:func:`walk_pcap_jit` without numba: same arguments, outputs and result.

    Only the captured lengths are chained, so the loop reads just those;
    the other header fields are gathered afterwards for all records at once.
    """
    u32 = _ORDERS[bool(big)][0]
    mv = memoryview(buf)
    starts = []
    status = NEED_MORE
    for _ in range(o_off.shape[0]):
        if end - pos < 16:
            break
        incl = u32(mv, pos + 8)[0]
        if incl > MAX_CAPLEN:
            status = CORRUPT
            break
        if end - pos - 16 < incl:
            break
        starts.append(pos)
        pos += 16 + incl
    n = len(starts)
    if n:
        _pcap_fields(buf, np.array(starts, dtype=np.int64), big, nsres, snaplen,
                     o_off[:n], o_cap[:n], o_wire[:n], o_ts[:n])
    return n, pos, status


def _pcap_fields(buf, starts, big, nsres, snaplen, o_off, o_cap, o_wire, o_ts):
    """Fill the outputs of the pcap records whose 16-byte headers start at ``starts``.

    Rows of a strided view of the buffer: 16 bytes copied per record, no index matrix.
    """
    heads = sliding_window_view(buf, 16)[starts]
    words = heads.view(">u4" if big else "<u4").astype(np.int64)
    o_ts[:] = words[:, 0] * 1000000000 + words[:, 1] * (1 if nsres else 1000)
    o_off[:] = starts + 16
    np.minimum(words[:, 2], snaplen, out=o_cap)
    o_wire[:] = words[:, 3]


def _epb_direction_py(buf, p, stop, big):
    """:func:`_epb_direction_jit` without numba (``buf``: any bytes-like object)."""
    u32, _, hh = _ORDERS[bool(big)][:3]
    while stop - p >= 4:
        code, olen = hh(buf, p)
        if code == 0 or p + 4 + olen > stop:
            return 0
        if code == 2 and olen == 4:
            d = u32(buf, p + 4)[0] & 3
            return d if d != 3 else 0
        p += 4 + ((olen + 3) & ~3)
    return 0


def walk_pcapng_py(buf, pos, end, big, o_off, o_cap, o_wire, o_ts, o_if, o_dir):
    """:func:`walk_pcapng_jit` without numba: same arguments, outputs and result.

    One row per packet block is collected in plain lists (numpy scalar
    writes would cost more than the parsing) and stored at the end.
    """
    u32, u32x2, _, epb, u16 = _ORDERS[bool(big)]
    mv = memoryview(buf)
    rows = []
    status = NEED_MORE
    for _ in range(o_off.shape[0]):
        if end - pos < 12:
            break
        btype, blen = u32x2(mv, pos)
        if btype != 6 and btype != 3 and btype != 2:
            status = OTHER_BLOCK
            break
        if blen < 16 or blen & 3 or blen > MAX_CAPLEN + 65536:
            status = CORRUPT
            break
        if end - pos < blen:
            break
        if u32(mv, pos + blen - 4)[0] != blen:
            status = CORRUPT
            break
        if btype == 3:
            orig = u32(mv, pos + 8)[0]
            rows.append((pos + 12, min(orig, blen - 16), orig, 0, 0, -1))
        else:
            if blen < 32:
                status = CORRUPT
                break
            iface, hi, lo, cap, wire = epb(mv, pos + 8)
            if cap > blen - 32 or cap > MAX_CAPLEN:
                status = CORRUPT
                break
            ts = (hi << 32) | lo
            if hi >= 0x80000000:  # the kernel's int64 shift wraps
                ts -= 1 << 64
            d = 0
            if btype == 6:
                opts, stop = pos + 28 + ((cap + 3) & ~3), pos + blen - 4
                if stop - opts >= 4:  # most blocks have no options: skip the call
                    d = _epb_direction_py(mv, opts, stop, big)
            else:
                iface = u16(mv, pos + 8)[0]
            rows.append((pos + 28, cap, wire, ts, iface, d))
        pos += blen
    n = len(rows)
    if n:
        for out, col in zip((o_off, o_cap, o_wire, o_ts, o_if, o_dir), zip(*rows)):
            out[:n] = col
    return n, pos, status


walk_pcap = walk_pcap_jit if JIT else walk_pcap_py
walk_pcapng = walk_pcapng_jit if JIT else walk_pcapng_py
