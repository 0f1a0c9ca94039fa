"""Writing frames to files safely: Parquet, CSV (formula-neutralised) and JSON Lines.

Everything in a log is attacker-controlled. CSV cells that a spreadsheet would run as a formula
(starting with ``=``, ``+``, ``-``, ``@``, TAB or CR) get a leading ``'`` (OWASP CSV injection
advice); the text itself is kept. JSON is always valid UTF-8.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from logforensics.errors import LogForensicsError

OUTPUT_SUFFIXES = (".parquet", ".csv", ".jsonl")
_FORMULA_START = r"^[=+\-@\t\r]"


def neutralise_csv(frame: pl.DataFrame) -> pl.DataFrame:
    """Prefix ``'`` to every string cell that starts like a spreadsheet formula; lists are joined."""
    exprs = []
    for name, dtype in frame.schema.items():
        col = pl.col(name)
        if dtype == pl.List(pl.String) or isinstance(dtype, pl.List):
            col = col.cast(pl.List(pl.String)).list.join("; ")
            dtype = pl.String()
        elif isinstance(dtype, pl.Datetime) and dtype.time_zone == "UTC":  # ISO 8601 with Z, as in JSON
            col = col.dt.strftime("%Y-%m-%dT%H:%M:%S%.fZ").str.replace(r"\.000000Z$", "Z")
            dtype = pl.String()
            exprs.append(col.alias(name))
            continue
        if dtype == pl.String:
            col = pl.when(col.str.contains(_FORMULA_START)).then(pl.lit("'") + col).otherwise(col)
        exprs.append(col.alias(name))
    return frame.select(exprs)


def write_frame(frame: pl.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` by the file's suffix (.parquet, .csv, .jsonl)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise LogForensicsError(f"unknown output type {suffix or '(none)'}; use one of "
                                f"{', '.join(OUTPUT_SUFFIXES)}", path=str(p))
    if p.parent and not p.parent.exists():
        p.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".parquet":
        frame.write_parquet(p)
    elif suffix == ".csv":
        neutralise_csv(frame).write_csv(p)
    else:
        frame.write_ndjson(p)
    return p
