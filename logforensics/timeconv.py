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


def wall_clock_series_to_utc(year: pl.Series, month: pl.Series, day: pl.Series, hour: pl.Series,
                             minute: pl.Series, second: pl.Series, zone: str) -> pl.Series:
    """:func:`wall_clock_to_utc` over integer Series, computed once per run of equal minutes.

    Log lines come in time order, so consecutive rows mostly share their minute. Each run of rows
    with equal (year, month, day, hour, minute) is converted by the exact path twice, at second 0
    and at second 59; a row of that run with second ``S`` in 0..59 is then the second-0 instant
    plus ``S`` seconds.

    Exactness: within one minute the exact path maps local time to UTC as ``t - offset(t)`` (the
    fall-back's earlier instant, or one hour later in a spring-forward gap), and ``offset`` changes
    only at the zone's transitions. The shortcut is used for a run only when both ends convert
    (neither is an invalid date nor in a gap of more than an hour) and the second-59 instant is
    exactly 59 s after the second-0 one, i.e. the offset is the same at both ends of the minute. No
    zone has two transitions less than a minute apart, so an equal offset at both ends means no
    transition inside: every second of the minute converts with that offset. A minute that holds a
    transition (historic LMT offsets with seconds, such as Amsterdam's +00:19:32) fails the check
    and takes the exact path, as do rows outside the plain ranges (second 60, which the exact path
    reads as the next minute's second 0; hours past 23; years outside 1000-9999; nulls).
    tests/test_timeconv.py compares both paths across DST transitions.
    """
    parts = pl.DataFrame({"y": year, "m": month, "d": day, "H": hour, "M": minute, "S": second},
                         schema={k: pl.Int64 for k in ("y", "m", "d", "H", "M", "S")}, strict=False)
    y, m, d, h, mi, s = (pl.col(c) for c in ("y", "m", "d", "H", "M", "S"))
    # ``plain``: the minute's fields are in their everyday ranges, where ``key`` tells minutes apart.
    plain = (y.is_between(1000, 9999) & m.is_between(1, 12) & d.is_between(1, 31) & h.is_between(0, 23)
             & mi.is_between(0, 59)).fill_null(False)
    key = ((((y * 13 + m) * 32 + d) * 24 + h) * 60 + mi)
    parts = parts.with_columns(plain.alias("plain"), key.rle_id().alias("run"))
    firsts = parts.filter(pl.col("run").is_first_distinct()).select(
        "plain",
        wall_clock_to_utc(y, m, d, h, mi, pl.lit(0), zone).alias("u0"),
        wall_clock_to_utc(y, m, d, h, mi, pl.lit(59), zone).alias("u59"),
    )
    good = firsts.select(
        (pl.col("plain") & (pl.col("u59") - pl.col("u0") == pl.duration(seconds=59))).fill_null(False))[:, 0]
    fast = parts.select(
        (pl.lit(good).gather(pl.col("run")) & pl.col("plain") & s.is_between(0, 59)).fill_null(False)
        .alias("fast"),
        (pl.lit(firsts["u0"]).gather(pl.col("run")) + pl.duration(seconds=s)).alias("ts"),
    )
    ts = fast["ts"]
    slow = ~fast["fast"]
    if slow.any():
        rows = slow.arg_true()
        exact = parts[rows].select(wall_clock_to_utc(y, m, d, h, mi, s, zone).alias("ts"))["ts"]
        ts = ts.scatter(rows, exact)
    return ts.cast(UTC_DATETIME)
