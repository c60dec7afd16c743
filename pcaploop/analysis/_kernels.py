"""Compiled kernels of the correlate stage (path assignment and per-path summary)."""

from __future__ import annotations

import numpy as np

from .._jit import njit
from ..schema import DIR_IN, DIR_OUT, DIR_UNKNOWN

_NOTTL = 1 << 20


@njit
def assign_paths(fp, t, lane, ttl, nlanes, reorder_ns, gap_ns, out):  # pragma: no cover
    """Split rows (sorted by fingerprint, then time) into paths.

    A new path starts with a new fingerprint, after a silence longer than
    ``gap_ns``, or when a lane sees the fingerprint again with a TTL not
    lower than before (a sender re-sent identical bytes) unless it is within
    ``reorder_ns`` of that earlier copy (timestamps are not monotonic).
    Returns the number of paths.
    """
    n = fp.shape[0]
    minttl = np.full(nlanes, _NOTTL, dtype=np.int64)
    mint = np.zeros(nlanes, dtype=np.int64)
    touched = np.empty(nlanes, dtype=np.int64)
    nt = 0
    pid = -1
    for i in range(n):
        ln = lane[i]
        new = i == 0 or fp[i] != fp[i - 1] or t[i] - t[i - 1] > gap_ns
        if not new and minttl[ln] <= ttl[i] and t[i] - mint[ln] > reorder_ns:
            new = True
        if new:
            pid += 1
            for k in range(nt):
                minttl[touched[k]] = _NOTTL
            nt = 0
        if minttl[ln] == _NOTTL:
            touched[nt] = ln
            nt += 1
        if ttl[i] < minttl[ln]:
            minttl[ln] = ttl[i]
            mint[ln] = t[i]
        out[i] = pid
    return pid + 1


@njit
def _min_drop(ttl, k, m, stride):  # pragma: no cover
    """Smallest positive TTL drop between records ``stride`` apart in ``ttl[k:m]``."""
    best = _NOTTL
    for r in range(k, m - stride):
        d = ttl[r] - ttl[r + stride]
        if 0 < d < best:
            best = d
    return best


@njit
def summarize_paths(
    path, plane, dirn, ttl, npaths, p_loop, p_bounce, p_step, p_bounce_plane, row_loop
):  # pragma: no cover
    """Per path: looping?, bounce?, TTL step; per row: is it a copy at a loop point.

    Rows must be sorted by (path, plane, direction, TTL descending).  A lane
    (plane + direction) with 2+ copies holds replicas when its direction is
    known; with unknown direction 3+ copies with falling TTL are needed.
    """
    n = path.shape[0]
    i = 0
    while i < n:
        p = path[i]
        j = i
        while j < n and path[j] == p:
            j += 1
        minttl = ttl[i]
        for r in range(i, j):
            if ttl[r] < minttl:
                minttl = ttl[r]
        step = _NOTTL
        looping = False
        k = i
        while k < j:
            m = k
            while m < j and plane[m] == plane[k] and dirn[m] == dirn[k]:
                m += 1
            cnt = m - k
            if cnt >= 2 and (dirn[k] != DIR_UNKNOWN or cnt >= 3):
                mind = _min_drop(ttl, k, m, 1)
                if mind == 1 and dirn[k] == DIR_UNKNOWN:
                    # both directions in one lane: a cycle is two records apart
                    mind = _min_drop(ttl, k, m, 2)
                if mind < _NOTTL:
                    looping = True
                    for r in range(k, m):
                        row_loop[r] = 1
                    if mind < step:
                        step = mind
            k = m
        if looping:
            # every copy at a plane (point + VLAN) that holds replicas counts
            k = i
            while k < j:
                m = k
                while m < j and plane[m] == plane[k]:
                    m += 1
                hit = False
                for r in range(k, m):
                    if row_loop[r]:
                        hit = True
                if hit:
                    for r in range(k, m):
                        row_loop[r] = 1
                k = m
            p_loop[p] = 1
            p_step[p] = step
        else:
            k = i
            while k < j:
                m = k
                while m < j and plane[m] == plane[k]:
                    m += 1
                if m - k == 2:
                    a, b = k, k + 1
                    if ttl[a] < ttl[b]:
                        a, b = b, a
                    ok_dir = (dirn[a] == DIR_OUT and dirn[b] == DIR_IN) or (
                        dirn[a] == DIR_UNKNOWN and dirn[b] == DIR_UNKNOWN
                    )
                    # returned with TTL 1 it expired (the host drops it for that): no
                    # filter was involved, so it is no bounce
                    if ttl[a] - ttl[b] == 1 and ok_dir and ttl[b] == minttl and ttl[b] > 1:
                        p_bounce[p] = 1
                        p_bounce_plane[p] = plane[k]
                k = m
        i = j


@njit
def group_fingerprints(  # pragma: no cover - compiled; run as Python by the no-JIT pass
    fp, t, table, keys, gid, g_first, g_last, g_size
):
    """Number the distinct fingerprints of ``fp`` (in order of first appearance) with an
    open-addressing hash table, and per group its first and last time and its rows.

    Why not a sort: the window groups every buffered row by fingerprint at each
    flush; an argsort of the 64-bit fingerprints was the largest single cost of
    streaming a capture.  Fingerprints are keyed hashes (a random key per run),
    so their bits are uniform and cannot be steered by a crafted capture.
    ``table`` has a power-of-two length of at least twice the rows, filled with -1.
    Returns the number of groups.
    """
    mask = len(table) - 1
    ng = 0
    for i in range(len(fp)):
        k = fp[i]
        h = np.int64((k ^ (k >> np.uint64(29))) & np.uint64(mask))
        while True:
            g = table[h]
            if g == -1:
                table[h] = ng
                keys[ng] = k
                g_first[ng] = t[i]
                g_last[ng] = t[i]
                g_size[ng] = 1
                gid[i] = ng
                ng += 1
                break
            if keys[g] == k:
                if t[i] < g_first[g]:
                    g_first[g] = t[i]
                if t[i] > g_last[g]:
                    g_last[g] = t[i]
                g_size[g] += 1
                gid[i] = g
                break
            h = (h + 1) & mask
    return ng
