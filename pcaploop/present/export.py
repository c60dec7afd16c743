"""Write the packets, paths and loops tables to Parquet or CSV, and read them back.

Parsing a large capture is the slow part; exploring it is not.  Export the
tables once, then load them in any notebook in a second, with the same
dtypes as :meth:`pcaploop.Packets.frame` (categoricals, ``datetime64[ns, UTC]``,
nullable integers): each file carries a description of its columns (Parquet
schema metadata; for CSV a sidecar ``<file>.dtypes.json``).

>>> a = pcaploop.analyze(["uplink=uplink.pcap", "tap101.pcap"])          # doctest: +SKIP
>>> write_export(a, "incident.parquet", with_paths=True, with_loops=True)  # doctest: +SKIP
[PosixPath('incident.parquet'), PosixPath('incident.paths.parquet'), …]
>>> read_export("incident.parquet", table="paths").dtypes["time"]          # doctest: +SKIP
datetime64[ns, UTC]
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict, cast

import pandas as pd

from .._version import __version__
from ..errors import PcaploopError, UsageError
from ..ingest.loader import Packets
from .files import atomic_path, write_atomic

if TYPE_CHECKING:
    from ..analysis.pipeline import Analysis


__all__ = ["export_paths", "read_export", "write_export"]

Table = Literal["packets", "paths", "loops"]
TABLES: tuple[str, ...] = ("packets", "paths", "loops")

_META_KEY = b"pcaploop.export"
_SIDECAR = ".dtypes.json"
_COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".zip")
_FORMAT_VERSION = 1


class _CsvFloatOptions(TypedDict, total=False):
    float_precision: Literal["round_trip"]


# pandas 3 parses floats exactly by default and deprecates the option
_ROUND_TRIP: _CsvFloatOptions = (
    {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}
)


def _split(path: Path) -> tuple[str, str, str]:
    """``dir/name.csv.gz`` → (``dir/name``, ``csv``, ``.csv.gz``); unknown formats raise."""
    name = path.name.lower()
    comp = next((c for c in _COMPRESSED if name.endswith(c)), "")
    core = name[: len(name) - len(comp)]
    for fmt in ("parquet", "csv"):
        if core.endswith("." + fmt):
            suffix = path.name[len(core) - len(fmt) - 1 :]
            if fmt == "parquet" and comp:
                break
            return str(path)[: len(str(path)) - len(suffix)], fmt, suffix
    raise UsageError(
        f"{path}: cannot tell the export format; name the file *.parquet or "
        "*.csv (optionally *.csv.gz)"
    )


def _require_pyarrow() -> None:
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise PcaploopError(
            "Parquet needs pyarrow: pip install 'pcaploop[parquet]' (or export to .csv)"
        ) from None


def export_paths(path: str | os.PathLike[str]) -> dict[str, Path]:
    """The file each table goes to for an export named ``path`` (siblings share its stem).

    >>> export_paths("out/packets.parquet")["paths"]
    PosixPath('out/packets.paths.parquet')
    """
    stem, _fmt, suffix = _split(Path(path))
    return {t: Path(path) if t == "packets" else Path(f"{stem}.{t}{suffix}") for t in TABLES}


def _is_nested(s: pd.Series) -> bool:
    return s.dtype == object and any(isinstance(v, (list, dict, tuple)) for v in s.dropna())


def _describe(df: pd.DataFrame) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Column descriptions, and the frame with list/dict cells encoded as JSON text."""
    cols, out = [], {}
    for name in df.columns:
        s = df[name]
        col: dict[str, Any] = {"name": str(name), "dtype": str(s.dtype)}
        if isinstance(s.dtype, pd.CategoricalDtype):
            col["categories"] = [
                c if isinstance(c, (str, int, float, bool)) else str(c)
                for c in s.cat.categories.tolist()
            ]
            col["ordered"] = bool(s.cat.ordered)
            col["categories_dtype"] = str(s.cat.categories.dtype)
        elif _is_nested(s):
            col["codec"] = "json"
            s = s.map(
                lambda v: None if _isna(v) else json.dumps(v, default=str), na_action=None
            ).astype(object)
        cols.append(col)
        out[str(name)] = s
    return pd.DataFrame(out, index=pd.RangeIndex(len(df))), cols


def _isna(v: Any) -> bool:
    return not isinstance(v, (list, dict, tuple)) and bool(pd.isna(v))


def _source_tables(
    data: Any, with_paths: bool, with_loops: bool
) -> tuple[dict[str, pd.DataFrame], list[dict[str, Any]]]:
    from ..analysis.pipeline import Analysis

    captures: list[dict[str, Any]] = []
    if isinstance(data, Analysis):
        captures = [p.to_json() for p in data.packets.points]
        tables = {"packets": data.packets.frame()}
        if with_paths:
            tables["paths"] = data.path_rows()
        if with_loops:
            tables["loops"] = data.loops_frame()
        return tables, captures
    if with_paths or with_loops:
        raise UsageError(
            "paths and loops tables need an Analysis (pcaploop.analyze(...)), "
            f"not {type(data).__name__}"
        )
    if isinstance(data, Packets):
        return {"packets": data.frame()}, [p.to_json() for p in data.points]
    if isinstance(data, pd.DataFrame):
        return {"packets": data}, captures
    raise UsageError(f"cannot export {type(data).__name__}: give an Analysis, Packets or DataFrame")


def write_export(
    data: Analysis | Packets | pd.DataFrame,
    path: str | os.PathLike[str],
    *,
    with_paths: bool = False,
    with_loops: bool = False,
) -> list[Path]:
    """Write the packets table (and optionally paths and loops) to ``path``; return the files.

    The format follows the name: ``*.parquet`` (needs pyarrow, the ``parquet``
    extra) or ``*.csv`` / ``*.csv.gz``.  Paths and loops go to siblings
    (``x.paths.parquet``, ``x.loops.parquet``, see :func:`export_paths`).
    The DataFrame index is not written; ``reset_index()`` first to keep it.
    An :class:`~pcaploop.analysis.Analysis` exports the rows it kept: the
    evidence by default, every row with ``analyze(..., keep="all")``.

    >>> write_export(pcaploop.load(["tap101.pcap"]), "tap101.csv")      # doctest: +SKIP
    [PosixPath('tap101.csv'), PosixPath('tap101.csv.dtypes.json')]
    """
    _stem, fmt, _suffix = _split(Path(path))
    if fmt == "parquet":
        _require_pyarrow()
    tables, captures = _source_tables(data, with_paths, with_loops)
    inputs = [c["path"] for c in captures]
    targets = export_paths(path)
    written: list[Path] = []
    for name, df in tables.items():
        flat, cols = _describe(df)
        meta = {
            "format_version": _FORMAT_VERSION,
            "pcaploop_version": __version__,
            "table": name,
            "rows": len(df),
            "columns": cols,
            "captures": captures,
        }
        target = targets[name]
        with atomic_path(target, inputs) as tmp:
            if fmt == "parquet":
                _write_parquet(flat, meta, Path(tmp))
            else:
                flat.to_csv(tmp, index=False)
        if fmt == "csv":
            sidecar = Path(str(target) + _SIDECAR)
            meta_text = json.dumps(meta, indent=1, allow_nan=False) + "\n"
            write_atomic(sidecar, meta_text.encode(), inputs)
            written.append(target)
            target = sidecar
        written.append(target)
    return written


def _write_parquet(df: pd.DataFrame, meta: dict[str, Any], target: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    md = dict(table.schema.metadata or {})
    md[_META_KEY] = json.dumps(meta, allow_nan=False).encode()
    pq.write_table(table.replace_schema_metadata(md), target)


def read_export(path: str | os.PathLike[str], table: Table = "packets") -> pd.DataFrame:
    """Read a table written by :func:`write_export` (or ``pcaploop export``), dtypes restored.

    ``path`` is the name given when exporting; ``table`` picks the sibling
    (``"packets"``, ``"paths"`` or ``"loops"``).  Provenance (capture points,
    pcaploop version) is in ``df.attrs["pcaploop"]``.

    >>> df = read_export("incident.parquet")                          # doctest: +SKIP
    >>> df["capture_point"].dtype                                    # doctest: +SKIP
    CategoricalDtype(categories=['uplink', 'tap101'], ordered=False, …)
    """
    if table not in TABLES:
        raise UsageError(f"table must be one of {', '.join(TABLES)}, not {table!r}")
    _stem, fmt, _suffix = _split(Path(path))
    target = export_paths(path)[table]
    if not target.exists():
        raise PcaploopError(
            f"{target}: no such file (was it exported with --with-{table}?)"
            if table != "packets"
            else f"{target}: no such file"
        )
    try:
        if fmt == "parquet":
            df, meta = _read_parquet(target)
        else:
            df, meta = _read_csv(target)
    except OSError as exc:
        raise PcaploopError(f"{target}: cannot read: {exc.strerror or exc}") from None
    if meta is None:
        return df
    df = _restore(df, meta["columns"], from_text=(fmt == "csv"))
    df.attrs["pcaploop"] = {k: meta.get(k) for k in ("table", "pcaploop_version", "captures")}
    return df


def _read_parquet(target: Path) -> tuple[pd.DataFrame, dict[str, Any] | None]:
    _require_pyarrow()
    import pyarrow.parquet as pq

    try:
        t = pq.read_table(target)
    except Exception as exc:  # pyarrow raises ArrowInvalid etc. for damaged files
        raise PcaploopError(f"{target}: not a readable Parquet file ({exc})") from None
    raw = (t.schema.metadata or {}).get(_META_KEY)
    return t.to_pandas(), (json.loads(raw) if raw else None)


def _read_csv(target: Path) -> tuple[pd.DataFrame, dict[str, Any] | None]:
    sidecar = Path(str(target) + _SIDECAR)
    if not sidecar.exists():
        return pd.read_csv(target), _fallback_meta(target)
    try:
        meta = json.loads(sidecar.read_text())
        cols = meta["columns"]
    except (ValueError, KeyError, TypeError):
        raise PcaploopError(f"{sidecar}: not a pcaploop dtypes file") from None
    plain = {c["name"]: c["dtype"] for c in cols if _csv_native(c)}
    text = {c["name"]: object for c in cols if not _csv_native(c)}
    try:
        df = pd.read_csv(
            target, dtype={**plain, **text}, keep_default_na=False, na_values=[""], **_ROUND_TRIP
        )
    except (ValueError, TypeError) as exc:
        raise PcaploopError(f"{target}: does not match {sidecar.name}: {exc}") from None
    return df, meta


def _csv_native(col: dict[str, Any]) -> bool:
    """Dtypes ``read_csv`` parses exactly by itself (numbers, bools, nullable ints)."""
    dt = col["dtype"]
    return "codec" not in col and (
        dt in ("bool", "boolean", "float32", "float64")
        or dt.lstrip("U").lower().startswith(("int", "uint"))
    )


def _fallback_meta(target: Path) -> dict[str, Any] | None:
    """A CSV without sidecar: if it is a packets table, use the declared dtypes."""
    from ..schema import TABLE

    head = pd.read_csv(target, nrows=0).columns.tolist()
    if head != list(TABLE):
        return None
    return {"table": "packets", "columns": [{"name": k, "dtype": v} for k, v in TABLE.items()]}


def _restore(df: pd.DataFrame, cols: list[dict[str, Any]], from_text: bool) -> pd.DataFrame:
    out = {}
    for col in cols:
        s, dt = df[col["name"]], col["dtype"]
        if col.get("codec") == "json":
            s = s.map(
                lambda v: (
                    None if v is None or (isinstance(v, float) and pd.isna(v)) else json.loads(v)
                )
            ).astype(object)
        elif dt == "category":
            cats = col.get("categories")
            if cats is not None:
                cats = pd.Index(cats, dtype=col.get("categories_dtype"))
            s = _categorical(s, cats, col.get("ordered", False), from_text)
        elif dt.startswith("datetime64"):
            aware = "," in dt
            s = pd.to_datetime(s, utc=aware, format="ISO8601" if from_text else None)
            if aware:
                tz_dtype = cast(pd.DatetimeTZDtype, pd.DatetimeTZDtype.construct_from_string(dt))
                s = s.dt.tz_convert(tz_dtype.tz)
            s = s.astype(dt)
        elif str(s.dtype) != dt:
            s = s.astype(dt)
        out[col["name"]] = s
    return pd.DataFrame(out, index=df.index)


def _categorical(s: pd.Series, cats: pd.Index | None, ordered: bool, from_text: bool) -> pd.Series:
    if cats is None:  # no description (CSV fallback): categories from the values
        return s.astype("category")
    if isinstance(s.dtype, pd.CategoricalDtype) and not from_text:
        return s.cat.set_categories(cats, ordered=ordered)
    lookup = {str(c): i for i, c in enumerate(cats)}
    codes = s.map(lookup).fillna(-1).astype("int64")
    return pd.Series(
        pd.Categorical.from_codes(codes.to_numpy(), categories=cats, ordered=ordered), index=s.index
    )
