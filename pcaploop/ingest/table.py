"""Raw columns → the packets DataFrame a person reads (dtypes from :mod:`schema`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .. import schema as S
from ..addr import categorical, macs_to_categorical, pairs_to_categorical


def _nullable(values: np.ndarray, dtype: str) -> pd.api.extensions.ExtensionArray:
    mask = values < 0
    return pd.arrays.IntegerArray(np.where(mask, 0, values).astype(dtype.lower()), mask)


def to_frame(cols: dict[str, np.ndarray], point_names: Sequence[str]) -> pd.DataFrame:
    """Build the packets table from raw columns.

    >>> df = to_frame(empty_cols, ["uplink"])            # doctest: +SKIP
    >>> list(df.columns) == list(schema.TABLE)           # doctest: +SKIP
    True
    """
    c = cols
    flags = c["flags"]
    inner = c["inner_version"] > 0
    inner_dst_valid = inner | ((c["inner_dst_hi"] | c["inner_dst_lo"]) != 0)
    data = {
        "time": pd.to_datetime(c["time_ns"], unit="ns", utc=True),
        "capture_point": categorical(c["point"].astype(np.int64), point_names),
        "direction": categorical(c["direction"].astype(np.int64), S.DIRECTIONS),
        "vlan": _nullable(c["vlan"], "Int32"),
        "eth_src": macs_to_categorical(c["eth_src"], int(S.NO_MAC)),
        "eth_dst": macs_to_categorical(c["eth_dst"], int(S.NO_MAC)),
        "ip_version": c["ip_version"],
        "src": pairs_to_categorical(c["src_hi"], c["src_lo"]),
        "dst": pairs_to_categorical(c["dst_hi"], c["dst_lo"]),
        "protocol": c["protocol"],
        "ttl": c["ttl"],
        "ip_id": _nullable(c["ip_id"], "Int64"),
        "ip_len": c["ip_len"],
        "frag_offset": c["frag_offset"],
        "more_fragments": (flags & S.F_MF) != 0,
        "dont_fragment": (flags & S.F_DF) != 0,
        "flow_label": c["flow_label"],
        "sport": _nullable(c["sport"], "Int32"),
        "dport": _nullable(c["dport"], "Int32"),
        "tcp_flags": _nullable(c["tcp_flags"], "Int16"),
        "icmp_type": _nullable(c["icmp_type"], "Int16"),
        "icmp_code": _nullable(c["icmp_code"], "Int16"),
        "inner_src": pairs_to_categorical(c["inner_src_hi"], c["inner_src_lo"], inner),
        "inner_dst": pairs_to_categorical(c["inner_dst_hi"], c["inner_dst_lo"], inner_dst_valid),
        "inner_protocol": _nullable(c["inner_protocol"], "Int16"),
        "inner_ip_id": _nullable(c["inner_ip_id"], "Int64"),
        "inner_ttl": _nullable(c["inner_ttl"], "Int16"),
        "inner_l4": c["inner_l4"],
        "inner_fingerprint": c["inner_fingerprint"],
        "l4_head": c["l4_head"],
        "caplen": c["caplen"],
        "wirelen": c["wirelen"],
        "truncated": (flags & S.F_TRUNCATED) != 0,
        "offload": (flags & S.F_OFFLOAD) != 0,
        "short_key": (flags & S.F_SHORT_KEY) != 0,
        "fingerprint": c["fingerprint"],
        "record": c["record"],
    }
    df = pd.DataFrame(data)
    return df[list(S.TABLE)]
