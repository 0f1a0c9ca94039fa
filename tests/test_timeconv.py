"""The per-minute fast path of :func:`logforensics.timeconv.wall_clock_series_to_utc` against the exact
expression :func:`logforensics.timeconv.wall_clock_to_utc`, around real zone transitions."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from logforensics.timeconv import wall_clock_series_to_utc, wall_clock_to_utc

#: Zone -> years scanned for transitions: ordinary DST, a 30-minute DST (Lord Howe), a +05:45 zone
#: whose offset moved by 15 minutes (Kathmandu 1986), and historic LMT offsets with seconds
#: (Chicago 1883: -05:50:36; Amsterdam until 1937: +00:19:32).
ZONES = {
    "America/Chicago": (1883, 2004, 2007),
    "Europe/Berlin": (1945, 2004),
    "Australia/Lord_Howe": (1981, 2004),
    "Asia/Kathmandu": (1985, 1986),
    "Europe/Amsterdam": (1937, 1940),
    "UTC": (2004,),
}

SECONDS = (0, 1, 29, 30, 58, 59, 60, 61)


def _transitions(zone: str, year: int) -> list[datetime]:
    """UTC instants (to the second) where ``zone``'s offset changes during ``year``."""
    tz = ZoneInfo(zone)
    out = []
    t = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    step = timedelta(hours=1)
    while t < end:
        if t.astimezone(tz).utcoffset() != (t + step).astimezone(tz).utcoffset():
            lo, hi = t, t + step
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                mid = mid.replace(microsecond=0)
                if mid.astimezone(tz).utcoffset() == lo.astimezone(tz).utcoffset():
                    lo = mid
                else:
                    hi = mid
            out.append(hi)
        t += step
    return out


def _rows(zone: str) -> pl.DataFrame:
    """Wall-clock fields minute by minute around each transition (and a plain stretch), in time
    order (so runs form) with several seconds per minute, plus odd fields the exact path rejects."""
    tz = ZoneInfo(zone)
    rows: list[tuple[int, int, int, int, int, int]] = []
    for year in ZONES[zone]:
        centres = [datetime(year, 6, 15, 12, tzinfo=UTC), *_transitions(zone, year)]
        for centre in centres:
            for offset in {centre.astimezone(tz).utcoffset(), (centre - timedelta(seconds=1)).astimezone(tz).utcoffset()}:
                local = (centre + offset).replace(tzinfo=None, second=0)
                for k in range(-90, 91):
                    w = local + timedelta(minutes=k)
                    for s in SECONDS:
                        rows.append((w.year, w.month, w.day, w.hour, w.minute, s))
    rows += [(2004, 2, 30, 1, 0, 0), (2004, 2, 29, 24, 0, 0), (2004, 13, 1, 0, 0, 0), (2004, 1, 1, 0, 60, 0),
             (2004, 1, 1, 1, 0, 5), (2004, 1, 1, 0, 60, 5), (99, 1, 1, 0, 0, 0), (2004, 0, 1, 0, 0, 0)]
    return pl.DataFrame(rows, schema=["y", "m", "d", "H", "M", "S"], orient="row")


def _compare(frame: pl.DataFrame, zone: str) -> None:
    exact = frame.select(wall_clock_to_utc(*(pl.col(c) for c in ("y", "m", "d", "H", "M", "S")), zone))[:, 0]
    fast = wall_clock_series_to_utc(*(frame[c] for c in ("y", "m", "d", "H", "M", "S")), zone)
    assert fast.dtype == exact.dtype
    bad = frame.with_columns(exact.alias("exact"), fast.alias("fast")).filter(
        ~pl.col("exact").eq_missing(pl.col("fast")))
    assert bad.is_empty(), bad


@pytest.mark.parametrize("zone", sorted(ZONES))
def test_fast_path_matches_exact_path(zone: str) -> None:
    frame = _rows(zone)
    _compare(frame, zone)
    # Runs of one row each, and nulls among the fields.
    _compare(frame.sample(fraction=1.0, shuffle=True, seed=7), zone)
    with_nulls = frame.with_columns(
        pl.when(pl.int_range(pl.len()) % 97 == 3).then(None).otherwise(pl.col("H")).alias("H"),
        pl.when(pl.int_range(pl.len()) % 89 == 5).then(None).otherwise(pl.col("y")).alias("y"))
    _compare(with_nulls, zone)


@pytest.mark.parametrize("zone", ["America/Chicago", "Australia/Lord_Howe", "Asia/Kathmandu", "Europe/Amsterdam"])
def test_transitions_are_found(zone: str) -> None:
    """The scan sees the transitions the comparison is about (it would pass vacuously otherwise)."""
    assert any(_transitions(zone, year) for year in ZONES[zone])


def test_random_stamps_in_time_order() -> None:
    """Sorted random stamps over two years in a DST zone, as a log holds them."""
    rng = random.Random(3)
    zone = "Europe/Berlin"
    start = datetime(2003, 1, 1)
    stamps = sorted(start + timedelta(seconds=rng.randrange(2 * 365 * 86400)) for _ in range(20000))
    frame = pl.DataFrame([(w.year, w.month, w.day, w.hour, w.minute, w.second) for w in stamps],
                         schema=["y", "m", "d", "H", "M", "S"], orient="row")
    _compare(frame, zone)
