"""correlate, detect and measure, each on small synthetic paths (no capture files).

Rows are raw columns (schema.RAW) built here; each stage is called on its own
so a failure names the stage.  The TTL arithmetic is docs/design.md's: a packet
entering a host↔guest loop with TTL T makes T − 1 copies on the guest link,
alternating host→guest (out) and guest→host (in), one TTL apart.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from pcaploop import schema as S
from pcaploop.analysis.correlate import CorrelationState, correlate
from pcaploop.analysis.detect import detect
from pcaploop.analysis.measure import measure
from pcaploop.analysis.model import PointRole
from pcaploop.analysis.options import Options

HOST, GUEST, ROUTER = 0x020000000010, 0x020000000065, 0x020000000001
NAMES = ["uplink", "tap101"]
UPLINK, TAP = 0, 1
DST = (0, 0xFFFF_CB00_7107)  # ::ffff:203.0.113.7
SRC = (0, 0xFFFF_C633_6409)  # ::ffff:198.51.100.9


def _cols(rows: list[dict[str, int]]) -> dict[str, np.ndarray]:
    """Raw columns for ``rows`` (sorted by time), every field not given a default."""
    default = {
        "vlan": -1,
        "inner_vlan": -1,
        "eth_src": int(S.NO_MAC),
        "eth_dst": int(S.NO_MAC),
        "ip_version": 4,
        "protocol": 17,
        "ip_id": 0,
        "sport": 40000,
        "dport": 9,
        "tcp_flags": -1,
        "icmp_type": -1,
        "icmp_code": -1,
        "inner_protocol": -1,
        "inner_ip_id": -1,
        "inner_ttl": -1,
        "caplen": 60,
        "wirelen": 60,
        "ip_len": 46,
        "dst_hi": DST[0],
        "dst_lo": DST[1],
        "src_hi": SRC[0],
        "src_lo": SRC[1],
    }
    rows = sorted(rows, key=lambda r: r["time_ns"])
    out = {}
    for k, dt in S.RAW.items():
        vals = [r.get(k, default.get(k, 0)) for r in rows]
        out[k] = np.array(vals, dtype=np.uint64 if dt == np.uint64 else np.int64).astype(dt)
    out["record"] = np.arange(len(rows), dtype=np.int64)
    return out


def loop_packet(ident: int, entry: int, t0: int, step_ns: int = 10_000) -> list[dict[str, int]]:
    """One packet's copies: the uplink arrival at ``entry``, then ``entry − 1`` copies
    on the tap, TTL −1 each, directions alternating."""
    fp = 0x1000 + ident
    rows = [
        {
            "time_ns": t0,
            "point": UPLINK,
            "ttl": entry,
            "fingerprint": fp,
            "ip_id": ident,
            "direction": S.DIR_IN,
            "eth_src": ROUTER,
        }
    ]
    for k, ttl in enumerate(range(entry - 1, 0, -1)):
        out = k % 2 == 0
        rows.append(
            {
                "time_ns": t0 + (k + 1) * step_ns,
                "point": TAP,
                "ttl": ttl,
                "fingerprint": fp,
                "ip_id": ident,
                "direction": S.DIR_OUT if out else S.DIR_IN,
                "eth_src": HOST if out else GUEST,
            }
        )
    return rows


def forwarded(ident: int, ttl: int, t0: int) -> list[dict[str, int]]:
    """An ordinary packet: in on the uplink, out to the guest one TTL lower."""
    fp = 0x90000 + ident
    return [
        {
            "time_ns": t0,
            "point": UPLINK,
            "ttl": ttl,
            "fingerprint": fp,
            "direction": S.DIR_IN,
            "eth_src": ROUTER,
            "dst_lo": 0xFFFF_CB00_7165,
        },
        {
            "time_ns": t0 + 5_000,
            "point": TAP,
            "ttl": ttl - 1,
            "fingerprint": fp,
            "direction": S.DIR_OUT,
            "eth_src": HOST,
            "dst_lo": 0xFFFF_CB00_7165,
        },
    ]


def _run(rows: list[dict[str, int]]):
    cols = _cols(rows)
    decoded = np.bincount(cols["point"].astype(np.int64), minlength=len(NAMES))
    corr = correlate(cols, NAMES, decoded, Options(), CorrelationState())
    det = detect(cols, corr, NAMES, Options())
    roles = [
        PointRole("uplink", "uplink", "given", ()),
        PointRole("tap101", "guest-link", "given", ()),
    ]
    loops, _ = measure(cols, corr, det, NAMES, Options(), roles)
    return cols, corr, det, loops


@settings(max_examples=40, deadline=None)
@given(st.integers(4, 255), st.integers(1, 6))
def test_n_copies_make_one_looping_packet_each(entry: int, packets: int) -> None:
    """correlate: one path per packet, looping; detect: one loop; measure: T − 1 copies
    per packet (amplification T − 1), dropped by whoever received TTL 1."""
    rows = []
    for k in range(packets):
        rows += loop_packet(k, entry, 1_000_000_000 + k * 50_000_000)
    rows += forwarded(999, 64, 999_000_000)
    _, corr, det, loops = _run(rows)
    assert int(corr.p_loop.sum()) == packets
    assert int(corr.p_bounce.sum()) == 0
    assert len(det.looping) == packets
    (lp,) = loops
    assert lp.kind == "l3" and lp.capture_points == ("tap101",)
    assert lp.looping_packets == packets
    assert lp.observations == packets * (entry - 1)
    assert lp.amplification == entry - 1
    assert lp.ttl_step == 2
    guest_drops = packets if entry % 2 == 0 else 0  # the host sent TTL 1 when T is even
    assert lp.dropped_by["guest"] == guest_drops
    assert lp.dropped_by["host"] == packets - guest_drops


@settings(max_examples=30, deadline=None)
@given(st.integers(3, 255))
def test_a_bounce_is_never_a_loop(ttl: int) -> None:
    """Out to the guest at T, back in at T − 1, then nothing (a filter dropped it)."""
    fp = 0x777
    rows = [
        {
            "time_ns": 1_000,
            "point": TAP,
            "ttl": ttl,
            "fingerprint": fp,
            "direction": S.DIR_OUT,
            "eth_src": HOST,
        },
        {
            "time_ns": 9_000,
            "point": TAP,
            "ttl": ttl - 1,
            "fingerprint": fp,
            "direction": S.DIR_IN,
            "eth_src": GUEST,
        },
    ]
    _, corr, det, loops = _run(rows)
    assert not loops
    assert int(corr.p_bounce.sum()) == 1 and int(corr.p_loop.sum()) == 0
    assert int(det.bounces["packets"].sum()) == 1


@settings(max_examples=30, deadline=None)
@given(st.integers(4, 64), st.integers(1, 3))
def test_a_duplicate_is_counted_once(entry: int, dups: int) -> None:
    """The same frame recorded again within microseconds (a capture duplicate) neither
    adds a copy nor makes a loop of an ordinary packet."""
    rows = loop_packet(1, entry, 1_000_000_000)
    extra = [dict(r, time_ns=r["time_ns"] + 1 + d) for r in rows[1:] for d in range(dups)]
    plain = forwarded(5, 64, 2_000_000_000)
    plain_dups = [dict(plain[1], time_ns=plain[1]["time_ns"] + 1 + d) for d in range(dups)]
    _, corr, _, loops = _run(rows + extra + plain + plain_dups)
    (lp,) = loops
    assert lp.observations == entry - 1
    assert corr.duplicates == len(extra) + len(plain_dups)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(3, 70), st.integers(0, 3)), min_size=1, max_size=6),
    st.integers(0, 4),
)
def test_path_frame_is_the_groupby_table(packets: list[tuple[int, int]], cut: int) -> None:
    """detect.path_frame (one lexsort, reduceat) gives the table pandas' groupbys give:
    same rows, columns, dtypes, index; also with copies cut short (a loop that escaped
    or was still running) and with the same copy seen twice (ties in the sort)."""
    from pcaploop.analysis.detect import _path_frame_pandas, path_frame

    rows: list[dict[str, int]] = []
    for k, (entry, twice) in enumerate(packets):
        mine = loop_packet(k, entry, 1_000_000_000 + k * 3_000_000)
        mine = mine[: max(2, len(mine) - cut)]
        rows += mine + mine[:twice]  # repeated copies: same TTL, same time
        rows += forwarded(500 + k, 64, 1_000_000_000 + k * 3_000_000 + 1_000)
    rows.sort(key=lambda r: r["time_ns"])
    cols = _cols(rows)
    decoded = np.bincount(cols["point"].astype(np.int64), minlength=len(NAMES))
    corr = correlate(cols, NAMES, decoded, Options(), CorrelationState())
    for got, want in zip(path_frame(cols, corr, NAMES), _path_frame_pandas(cols, corr, NAMES)):
        pd.testing.assert_frame_equal(got, want, check_exact=True)
