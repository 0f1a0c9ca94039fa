"""From input paths to one events frame: read each source, recognise its format, run its reader.

This is the one place where files become events; ``parse``, ``scan`` and ``batch`` all use it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePath

import polars as pl

from logforensics.errors import LogForensicsError
from logforensics.readers import READERS, SNIFF_LINES, ReadContext, sniff_format
from logforensics.schema import empty_events
from logforensics.site import SiteProfile
from logforensics.sources import Source, decode_text, iter_input_files, read_source

#: Path components that sit just below a server's own folder in an Exchange tree.
_EXCHANGE_DIRS = {"exchsrvr", "imcdata", "tracking.log"}


@dataclass
class InputReport:
    """What happened to one input: the chain-of-custody facts and the reader's account."""

    path: str
    sha256: str
    bytes: int
    format: str | None
    encoding: str | None = None
    compression: str | None = None
    lines: int = 0
    events: int = 0
    skipped_lines: int = 0
    warnings: list[str] = field(default_factory=list)
    status: str = "ok"

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path, "sha256": self.sha256, "bytes": self.bytes, "format": self.format,
            "encoding": self.encoding, "compression": self.compression, "lines": self.lines,
            "events": self.events, "skipped_lines": self.skipped_lines, "warnings": self.warnings,
            "status": self.status,
        }


@dataclass
class IngestResult:
    events: pl.DataFrame
    inputs: list[InputReport]
    lines: dict[str, pl.Series] = field(default_factory=dict)

    def line_text(self, path: str, line: int) -> str | None:
        """The raw text of a 1-based physical line of an input (kept when ``keep_lines``)."""
        series = self.lines.get(path)
        if series is None or not 1 <= line <= series.len():
            return None
        return series[line - 1]


def split_lines(text: str) -> pl.Series:
    """Physical lines (LF or CRLF), in order; a final line without a newline is kept."""
    if not text:
        return pl.Series("raw", [], dtype=pl.String)
    series = pl.Series("raw", [text]).str.split("\n").explode()
    if text.endswith("\n"):
        series = series.head(series.len() - 1)
    return series.str.strip_suffix("\r")


def server_from_path(path: str) -> str | None:
    """The server folder above an Exchange tree (``EXCH01/Exchsrvr/Imcdata/Log/L0000000.LOG``)."""
    parts = PurePath(path.replace("!", "/")).parts
    for i, part in enumerate(parts):
        if part.lower() in _EXCHANGE_DIRS:
            j = i - 1
            while j >= 0 and parts[j].lower() in _EXCHANGE_DIRS:
                j -= 1
            return parts[j] if j >= 0 else None
    return None


def read_one(source: Source, site: SiteProfile, forced_format: str | None = None
             ) -> tuple[pl.DataFrame, InputReport, pl.Series]:
    """Decode, sniff and read one source into events; also returns its physical lines."""
    report = InputReport(source.path, source.sha256, source.size, None, compression=source.compression,
                         warnings=list(source.warnings))
    text, encoding = decode_text(source.data)
    report.encoding = encoding
    if encoding not in ("utf-8", "utf-8-sig"):
        report.warnings.append(f"{source.path}: not plain UTF-8; decoded as {encoding} "
                               "(undecodable bytes kept as \\xNN)")
    lines = split_lines(text)
    fmt = forced_format or sniff_format(lines.head(SNIFF_LINES).to_list())
    report.format = fmt
    report.lines = lines.len()
    if fmt is None:
        report.status = "unrecognised"
        report.skipped_lines = report.lines
        if report.lines:
            report.warnings.append(f"{source.path}: not a recognised log format; skipped")
        return empty_events(), report, lines
    server = server_from_path(source.path) or (site.server_names[0] if site.server_names else None)
    result = READERS[fmt]().read(lines, ReadContext(source.path, site, server))
    report.events = result.events.height
    report.skipped_lines = result.skipped
    report.warnings += result.warnings
    if fmt == "ims55-protocol" and site.timezone is None:
        report.warnings.append(f"{source.path}: no time zone known; local times read as UTC "
                               "(set timezone in the site profile)")
    return result.events, report, lines


def iter_sources(paths: list[str | Path]) -> Iterator[Source | InputReport]:
    """Sources for every input file; an unreadable file yields a failed :class:`InputReport`."""
    for path in iter_input_files(paths):
        try:
            yield from read_source(path)
        except LogForensicsError as exc:
            yield InputReport(str(path), "", 0, None, warnings=[str(exc)], status="unreadable")


def ingest(paths: list[str | Path], site: SiteProfile, *, keep_lines: bool = False) -> IngestResult:
    """Read every input under ``paths`` into one events frame, in input order.

    With ``keep_lines`` the physical lines of each recognised input are kept, to quote evidence.
    """
    frames: list[pl.DataFrame] = []
    reports: list[InputReport] = []
    kept: dict[str, pl.Series] = {}
    for item in iter_sources(paths):
        if isinstance(item, InputReport):
            reports.append(item)
            continue
        events, report, lines = read_one(item, site)
        reports.append(report)
        if keep_lines and report.format:
            kept[report.path] = lines
        if events.height:
            frames.append(events)
    events = pl.concat(frames, how="vertical") if frames else empty_events()
    return IngestResult(events, reports, kept)
