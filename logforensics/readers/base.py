"""What every reader shares: its context, its result, and how it reports bad lines."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Protocol

import polars as pl

from logforensics.readers.syslog import YearHint
from logforensics.site import SiteProfile

EXCERPT_CHARS = 80


@dataclass
class ReadContext:
    """What a reader knows besides the lines: where they came from and the site profile."""

    source: str
    site: SiteProfile
    server: str | None = None
    #: What is known about the year, for formats whose stamps have none (syslog).
    year_hint: YearHint | None = None


@dataclass
class ReadResult:
    """A reader's output: events in the common schema, and an account of every line.

    ``lines`` = events' lines + ``continuation`` + ``blank`` + ``not_mail`` + ``skipped``
    (de-duplicated raw packets count among the events' lines).
    """

    events: pl.DataFrame
    lines: int
    skipped: int = 0
    continuation: int = 0
    blank: int = 0
    not_mail: int = 0
    warnings: list[str] = field(default_factory=list)
    #: (year, month) of the first dated line in local time, for year-less formats: it anchors the
    #: year of the next older rotated file.
    first_month: tuple[int, int] | None = None
    #: (year, month) of the last dated line in local time (batch checks its provisional years with it).
    last_month: tuple[int, int] | None = None
    #: Lines whose time was read as wall-clock time in the site's zone (no zone or offset of their own):
    #: with no zone known they are read as UTC, which ingest warns about.
    wall_clock: int = 0


class Reader(Protocol):
    """A log format: its name, a human description, a cheap sniffer and a reader."""

    name: ClassVar[str]
    description: ClassVar[str]

    def sniff(self, head: list[str]) -> float:
        """How sure (0-1) it is that these first lines of a file are this format."""
        ...

    def read(self, lines: pl.Series, ctx: ReadContext) -> ReadResult:
        """Turn a file's lines (physical, 1-based order) into events of the common schema."""
        ...


def excerpt(text: str) -> str:
    """The first characters of a line, with control characters escaped, for a warning."""
    short = text[:EXCERPT_CHARS]
    shown = short.encode("unicode_escape").decode("ascii")
    return shown + ("..." if len(text) > EXCERPT_CHARS else "")


def bad_line_warnings(source: str, frame: pl.DataFrame, reason: str, limit: int = 20) -> list[str]:
    """Warnings ``path:line: reason: excerpt`` for the first ``limit`` rows of (line, raw)."""
    out = [f"{source}:{row['line']}: {reason}: {excerpt(row['raw'])}"
           for row in frame.head(limit).iter_rows(named=True)]
    if frame.height > limit:
        out.append(f"{source}: {frame.height - limit} more lines: {reason}")
    return out
