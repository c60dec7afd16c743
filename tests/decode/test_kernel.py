"""Decode stage: one test per link type, field values, fingerprint rules."""

from __future__ import annotations

import fixtures as fx
import pytest
from reference.refdecode import kernel_decode

from pcaploop import addr
from pcaploop import schema as S
from pcaploop.decode import linktypes as lt
from pcaploop.ingest.loader import load


def frame_of(path, key):
    """The packets table of one capture, in record order."""
    return load([str(path)], key=key).frame().sort_values("record").reset_index(drop=True)


def pd_na():
    import pandas as pd

    return pd.NA


def pd_isna(v):
    import pandas as pd

    return pd.isna(v)


@pytest.mark.parametrize(
    "name",
    [
        "pcap_us_le",
        "raw101",
        "raw12",
        "raw14",
        "sll",
        "sll2",
        "null_le",
        "null_be",
        "loop",
        "gzip_pcap",
        "pcapng_single",
    ],
)
def test_link_type_fields(captures, key, name):
    df = frame_of(captures[name], key)
    r = df.iloc[0]
    assert (r.src, r.dst, r.protocol, r.ttl, r.ip_id) == (fx.SRC4, fx.DST4, 17, 64, 0x1234)
    assert df.iloc[1].ttl == 63 and df.iloc[1].fingerprint == r.fingerprint
    assert df.iloc[2].tcp_flags == 0x18 and bool(df.iloc[2].dont_fragment)
    te = df.iloc[5]
    assert (
        te.icmp_type,
        te.src,
        te.inner_src,
        te.inner_dst,
        te.inner_ttl,
        te.inner_protocol,
        te.inner_ip_id,
    ) == (11, fx.GUEST4, fx.SRC4, fx.DST4, 1, 17, 0x1234)
    v6 = df.iloc[10]
    assert (v6.ip_version, v6.src, v6.dst, v6.flow_label) == (6, fx.SRC6, fx.DST6, 0x12345)
    assert pd_isna(v6.ip_id)
    assert df.iloc[13].protocol == 17 and df.iloc[13].dport == 53  # behind 3 ext headers


def test_ethernet_macs_and_arp(captures, key):
    pk = load([str(captures["pcap_us_le"])], key=key)
    df = pk.frame()
    assert set(df.eth_src) == {addr.mac_text(int.from_bytes(fx.MAC_A, "big"))}
    assert pk.points[0].skipped["non_ip"] == 1  # the ARP reply
    assert pk.arp["op"].tolist() == [2]
    assert addr.to_text(0, 0xFFFF00000000 | int(pk.arp["sender_ip"][0])) == fx.DST4


def test_vlan_and_qinq(captures, key):
    df = frame_of(captures["vlan"], key)
    assert df.vlan.tolist() == [101] * 4 + [200] * 4
    pk = load([str(captures["vlan"])], key=key)
    assert pk.cols["inner_vlan"].tolist() == [-1] * 4 + [101] * 4
    # tags are layer 2: the same 3 distinct packets (rows 0 and 1 differ in TTL only)
    assert len(set(df.fingerprint)) == 3


def test_ipv4_228_and_ipv6_229(captures, key):
    for name, version in (("ipv4", 4), ("ipv6", 6)):
        pk = load([str(captures[name])], key=key)
        assert set(pk.cols["ip_version"]) == {version}
        assert pk.points[0].skipped["malformed"] == 1  # the other family


def test_sll_direction(captures, key):
    df = frame_of(captures["sll"], key)
    assert df.direction.tolist()[:4] == ["in", "out", "in", "out"]


def test_sll2_points_and_direction(captures, key):
    pk = load([f"any={captures['sll2']}"], key=key)
    assert sorted(p.name for p in pk.points) == ["any:if2", "any:if5", "any:if7"]
    df = pk.frame().sort_values("record")
    assert df.direction.tolist()[:2] == ["in", "out"]


def test_null_address_families(captures, key):
    for name in ("null_le", "null_be"):
        pk = load([str(captures[name])], key=key)
        assert pk.points[0].decoded == len(fx.ip_packets())
        assert pk.points[0].skipped["non_ip"] == 1


def test_fragments(captures, key):
    df = frame_of(captures["raw101"], key)
    f1, f2 = df.iloc[8], df.iloc[9]
    assert bool(f1.more_fragments) and f1.frag_offset == 0 and f1.dport == 53
    assert not f2.more_fragments and f2.frag_offset == 24 and pd_isna(f2.dport)
    g1, g2 = df.iloc[14], df.iloc[15]
    assert (g1.ip_id, g2.ip_id, g2.frag_offset) == (0xABCDEF01, 0xABCDEF01, 32)
    assert g1.protocol == g2.protocol == 17


def test_icmpv6_errors_and_ndp(captures, key):
    df = frame_of(captures["raw101"], key)
    te, un, ns, na = (df.iloc[i] for i in (16, 17, 18, 19))
    assert (te.icmp_type, te.inner_src, te.inner_dst, te.inner_ttl, te.inner_protocol) == (
        3,
        fx.SRC6,
        fx.DST6,
        1,
        17,
    )
    assert un.icmp_type == 1 and un.inner_protocol == 6
    assert (ns.icmp_type, ns.inner_dst, na.icmp_type) == (135, fx.DST6, 136)
    assert pd_isna(ns.inner_src)


def test_snaplen_96_short_key(captures, key):
    df = frame_of(captures["snaplen96"], key)
    assert (df.truncated == (df.wirelen > df.caplen)).all() and df.truncated.sum() >= 6
    # the 24-byte prefix fits in 96 bytes, except behind three IPv6 extension headers
    # (row 2) and in the frame cut at 40 bytes (last row)
    assert df.short_key.tolist() == [False, False, True, False, False, False, False, True]
    assert df.iloc[6].inner_src == fx.SRC4
    whole = fx.eth(fx.udp4(payload=bytes(range(256)) * 4))
    assert df.iloc[0].fingerprint == _fp(whole, key, 1)  # snaplen does not change the key


def test_snaplen_96_sll2_ipv6_fragment(captures, key):
    """The prefix length was chosen for SLL2 (20) + IPv6 (40) + fragment header (8)."""
    df = frame_of(captures["snaplen96_sll2"], key)
    assert df.truncated.all() and not df.short_key.any()
    assert df.iloc[1].ip_id == 0xABCDEF01


def test_offload_superframes(captures, key):
    pk = load([str(captures["offload"])], key=key)
    assert pk.points[0].skipped["malformed"] == 0
    assert (pk.cols["flags"][1:] & S.F_OFFLOAD).all() and not pk.cols["flags"][0] & S.F_OFFLOAD


def test_malformed_frames(captures, key):
    p = load([str(captures["malformed_frames"])], key=key).points[0]
    assert (p.decoded, p.skipped["malformed"], p.skipped["non_ip"]) == (1, 7, 3)


def _fp(frame, key, linktype=101):
    status, row = kernel_decode(linktype, frame, len(frame), key)
    assert status == S.OK
    return row["fingerprint"]


@pytest.mark.parametrize("make", [fx.udp4, fx.tcp4, fx.echo4])
def test_fingerprint_invariant(key, make):
    base = _fp(make(), key)
    assert _fp(make(ttl=7), key) == base  # TTL (and so the IP checksum)
    assert _fp(make(df=True) if make is not fx.echo4 else make(), key) == base  # DF bit
    p = bytearray(make())
    p[10:12] = b"\xbe\xef"  # IP header checksum
    assert _fp(bytes(p), key) == base
    p = bytearray(make())
    csum = {17: 26, 6: 36, 1: 22}[p[9]]
    p[csum : csum + 2] = b"\x00\x00"  # L4 checksum left unfinished by offload
    assert _fp(bytes(p), key) == base
    assert _fp(fx.eth(make()), key, 1) == base  # layer 2
    assert _fp(fx.sll2(make(), 9, 4), key, 276) == base


def test_fingerprint_differs(key):
    base = _fp(fx.udp4(), key)
    others = [
        fx.udp4(src=fx.HOST4),
        fx.udp4(dst=fx.GUEST4),
        fx.udp4(ident=1),
        fx.udp4(payload=b"Pcaploop test payload 0123456789"),
        fx.udp4(sport=1),
    ]
    assert len({base} | {_fp(p, key) for p in others}) == len(others) + 1
    assert _fp(fx.udp6(), key) != _fp(fx.udp6(payload=b"X" * 32), key)
    assert _fp(fx.udp6(), key) == _fp(fx.udp6(hlim=3), key)


def test_fingerprint_keyed(key):
    other = (key[1], key[0])
    assert _fp(fx.udp4(), key) != _fp(fx.udp4(), other)


def test_typed_layout_covers_the_schema():
    """Every raw column but ``point`` is its own row of a typed matrix of the schema's width.

    The kernel's rows are handed on as views in the schema's dtype: a row of
    another width would give a view of the wrong length, a shared row wrong values.
    """

    from pcaploop.decode import layout as L

    assert set(S.RAW) - {"point"} <= set(L.AT)
    assert set(L.AT) - set(S.RAW) == set(L.PER_RECORD) - set(S.RAW)
    assert len(set(L.AT.values())) == len(L.AT)
    for name, (g, r) in L.AT.items():
        assert L.DTYPES[g].itemsize == L.view_dtype(name).itemsize, name
        assert 0 <= r < L.ROWS[g], name
    for g, d in enumerate(L.defaults()):  # defaulted rows first, then the record's own
        assert all(f.default is None for f in L.MATRICES[g][len(d) :])


def test_compiled_kernel_matches_its_python_function(captures, key):
    """numba's integers wrap where Python's grow: the same kernel, compiled and
    interpreted, gives the same fields on every fixture frame."""
    import numpy as np

    from pcaploop._jit import JIT
    from pcaploop.decode import batch as B
    from pcaploop.decode import kernel as K

    if not JIT:
        pytest.skip("without numba there is only the Python function")
    for name in sorted(fx.VALID):
        frames, codes = [], []
        for b, cap in _batches(captures[name]):
            for o, c in zip(b.off, b.caplen):
                frames.append(b.buf[o : o + c].tobytes())
                codes.append(lt.l2_code(cap.interfaces[0].linktype))
        if not frames:
            continue
        want = B.decode_frames(frames, codes, key)
        with pytest.MonkeyPatch.context() as m:
            m.setattr(B, "decode_rows", K.decode_rows.py_func)
            got = B.decode_frames(frames, codes, key)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k], f"{name}: {k}")


def _batches(path):
    from pcaploop.read import open_capture

    cap = open_capture(path)
    for b in cap.batches():
        yield b, cap


def test_row_lengths_are_no_power_of_two(tmp_path):
    """Slabs' rows are no multiple of 4 KiB apart, from the first slab to the largest.

    At a power-of-two row length every row's element ``j`` shares one cache
    set; the kernel then ran at half speed (see ``decode.unaliased``).
    """
    import dataclasses

    import numpy as np

    from pcaploop.decode import batch as D
    from pcaploop.decode import layout
    from pcaploop.ingest import loader as L
    from pcaploop.read import open_capture

    for n in (1, 8, 9, 24, 1000, 1024, 4096, 32768, L.BLOCK_ROWS):
        m = layout.unaliased(n)
        assert n <= m < n + 16 and m % 16 == 8
    assert layout.unaliased(L.BLOCK_ROWS) == L.BLOCK_ROWS
    for M in layout.empty(L.BLOCK_ROWS):
        assert M.strides[0] % 4096 != 0
    dec = D.BatchDecoder(capacity=L.BLOCK_ROWS)
    (b,) = open_capture(fx_pcap_of(tmp_path, 3000)).batches()
    part = dataclasses.replace(
        b,
        **{
            k: getattr(b, k)[:2999]
            for k in ("off", "caplen", "wirelen", "time_ns", "iface", "direction")
        },
    )
    caps = set()
    for _ in range(24):  # 72,000 rows: the slab grows step by step to its largest
        list(dec.add(part, np.ones(1, np.int64)))
        caps.add(dec.slabs[0].cap)
    assert len(caps) > 3 and max(caps) == L.BLOCK_ROWS
    assert all(c % 16 == 8 for c in caps)


def fx_pcap_of(d, n: int):
    """An Ethernet pcap of ``n`` UDP packets in directory ``d``."""
    frames = [fx.eth(fx.udp4(ident=i & 0xFFFF)) for i in range(n)]
    return fx.write_pcap(d / "udp.pcap", 1, fx.records(frames))


def test_blocks_carry_each_records_own_fields(tmp_path):
    """Time, lengths and record number come through a decoder whose blocks
    split batches anywhere (the kernel writes them from its row offset)."""
    import numpy as np

    from pcaploop.decode import batch as D
    from pcaploop.decode.layout import unaliased
    from pcaploop.read import open_capture

    cap = open_capture(fx_pcap_of(tmp_path, 500))
    dec = D.BatchDecoder(capacity=unaliased(37), slabs=2)
    got = {k: [] for k in ("record", "time_ns", "caplen", "wirelen")}
    want = {k: [] for k in got}
    for b in cap.batches():
        want["record"].append(np.arange(b.first_record, b.first_record + len(b.off)))
        want["time_ns"].append(b.time_ns.copy())
        want["caplen"].append(b.caplen.copy())
        want["wirelen"].append(b.wirelen.copy())
        for blk in dec.add(b, np.ones(1, np.int64)):
            d = blk.decoded()
            for k in got:
                got[k].append(d.cols[k])
    d = dec.flush()
    for k in got:
        got[k].append(d.cols[k])
        np.testing.assert_array_equal(np.concatenate(got[k]), np.concatenate(want[k]), k)
    assert len(np.concatenate(got["record"])) == 500


# --- ICMP errors: the packet they are about ----------------------------------------
def _fields(frames: list[bytes], key) -> dict:
    from pcaploop.decode.batch import decode_frames

    return decode_frames([fx.eth(f) for f in frames], [lt.L2_ETHERNET] * len(frames), key)


@pytest.mark.parametrize("v6", [False, True])
def test_error_carries_the_quoted_packets_fingerprint(key, v6):
    """A full quote gives the quoted packet's own fingerprint (whatever TTL it was
    quoted with); a quote cut short of the 24-byte prefix gives 0."""
    if v6:
        pkt, expired = fx.udp6(hlim=64), fx.udp6(hlim=1)
        full, short = fx.icmp6_error(expired, keep=88), fx.icmp6_error(expired, keep=40 + 16)
    else:
        pkt, expired = fx.udp4(ttl=64), fx.udp4(ttl=1)
        full, short = fx.icmp4_error(expired, keep=60), fx.icmp4_error(expired, keep=28)
    f = _fields([pkt, full, short], key)
    assert f["inner_fingerprint"][1] == f["fingerprint"][0] != 0
    assert f["inner_fingerprint"][2] == 0 and f["inner_fingerprint"][0] == 0


@pytest.mark.parametrize("v6", [False, True])
def test_errors_about_different_packets_differ(key, v6):
    """Errors a host sends about two packets of one flow share their first 24 bytes
    (IPv6 quotes no IP ID there): their fingerprints must still differ, and the same
    error seen twice must not."""
    if v6:
        a, b = (
            fx.udp6(hlim=1, payload=b"first packet .................."),
            fx.udp6(hlim=1, payload=b"second packet ................."),
        )
        ea, eb = fx.icmp6_error(a), fx.icmp6_error(b)
    else:
        a, b = fx.udp4(ttl=1, ident=1), fx.udp4(ttl=1, ident=2)
        ea, eb = fx.icmp4_error(a, keep=60, ident=7), fx.icmp4_error(b, keep=60, ident=7)
    f = _fields([ea, eb, ea], key)
    fp = f["fingerprint"]
    assert fp[0] != fp[1] and fp[0] == fp[2]


def test_redirects_for_different_destinations_differ(key):
    """An ICMPv6 redirect's first 24 bytes name only its target; the destination it
    redirects (the next 16) is part of its identity, and is decoded as inner_dst."""
    import struct

    def redirect(dst: str) -> bytes:
        msg = struct.pack(">BBHI", 137, 0, 0, 0) + fx.a6("fe80::1") + fx.a6(dst)
        return fx._ip6(58, fx._l4_csum6(fx.HOST6, fx.SRC6, 58, msg, 2), fx.HOST6, fx.SRC6, hlim=255)

    f = _fields([redirect("2001:db8:2::7"), redirect("2001:db8:2::8")], key)
    assert f["fingerprint"][0] != f["fingerprint"][1]
    assert addr.to_text(f["inner_dst_hi"][1], f["inner_dst_lo"][1]) == "2001:db8:2::8"
