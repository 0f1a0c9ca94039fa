"""Time conversion: log-local wall-clock fields to UTC, as Polars expressions.

Protocol logs are written in the server's local time, tracking logs in GMT. Every event's ``ts`` is
UTC. Two-digit years pivot into 1970-2069, which covers the 1990s-2000s data this tool is for.
Wall-clock times that occur twice at a daylight-saving fall-back are read as the earlier instant;
times that do not exist (spring-forward gap) are read one hour later, as Windows did.
"""

from __future__ import annotations

import polars as pl

from logforensics.schema import UTC_DATETIME

YEAR_PIVOT = 70


def full_year(year: pl.Expr) -> pl.Expr:
    """A year column (strings of 2 or 4 digits) as a full year: ``00`` -> 2000, ``99`` -> 1999."""
    y = year.cast(pl.Int32, strict=False)
    return (
        pl.when(year.str.len_chars() <= 2)
        .then(pl.when(y < YEAR_PIVOT).then(y + 2000).otherwise(y + 1900))
        .otherwise(y)
    )


def hour24(hour: pl.Expr, ampm: pl.Expr) -> pl.Expr:
    """An hour on a 12-hour clock (with ``AM``/``PM``) or a 24-hour clock, as 0-23 (null if bad)."""
    h = hour.cast(pl.Int32, strict=False)
    marker = ampm.str.to_uppercase()
    out = (
        pl.when(marker.is_null()).then(h)
        .when((h < 1) | (h > 12)).then(None)
        .when(marker == "AM").then(pl.when(h == 12).then(0).otherwise(h))
        .otherwise(pl.when(h == 12).then(12).otherwise(h + 12))
    )
    return out


def wall_clock_to_utc(year: pl.Expr, month: pl.Expr, day: pl.Expr, hour: pl.Expr, minute: pl.Expr,
                      second: pl.Expr, zone: str) -> pl.Expr:
    """Integer wall-clock fields in ``zone`` -> UTC datetime (null where the fields are not a date)."""
    text = pl.format("{}-{}-{} {}:{}:{}", year, month, day, hour, minute, second)
    naive = text.str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False, time_unit="us")
    if zone == "UTC":
        return naive.dt.replace_time_zone("UTC").cast(UTC_DATETIME)
    local = naive.dt.replace_time_zone(zone, ambiguous="earliest", non_existent="null")
    gap = (naive + pl.duration(hours=1)).dt.replace_time_zone(zone, ambiguous="earliest",
                                                              non_existent="null")
    return pl.coalesce(local, gap).dt.convert_time_zone("UTC").cast(UTC_DATETIME)
