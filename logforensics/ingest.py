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
from logforensics.readers.syslog import YearHint
from logforensics.rotation import newest_first, rotation_date, rotation_key
from logforensics.rotation import oldest_first as rotation_oldest_first
from logforensics.schema import empty_events
from logforensics.site import SiteProfile
from logforensics.sources import (
    MAX_LINE_CHARS,
    Source,
    decode_text,
    gather_lines,
    iter_input_files,
    read_source,
    split_lines,
)

#: Path components that sit just below a server's own folder in an Exchange tree.
_EXCHANGE_DIRS = {"exchsrvr", "imcdata", "tracking.log"}
_WINDOWS_DIRS = {"system32", "windows", "winnt", "inetpub"}
#: Folders between an Exchange 2007+ server's folder and its ``TransportRoles`` (install paths).
_EXCHANGE_INSTALL_DIRS = {"v8", "v14", "v15", "exchange server", "microsoft", "program files",
                          "program files (x86)", "exchsrvr"}


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
    mtime: float | None = None
    #: (year, month) of the first dated line, for year-less formats (not part of the report).
    first_month: tuple[int, int] | None = field(default=None, repr=False)
    last_month: tuple[int, int] | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path, "sha256": self.sha256, "bytes": self.bytes, "format": self.format,
            "encoding": self.encoding, "compression": self.compression, "lines": self.lines,
            "events": self.events, "skipped_lines": self.skipped_lines, "warnings": self.warnings,
            "status": self.status, "mtime": self.mtime,
        }


@dataclass
class IngestResult:
    events: pl.DataFrame
    inputs: list[InputReport]
    lines: dict[str, pl.Series] = field(default_factory=dict)

    def line_texts(self, path: str, lines: list[int]) -> list[str | None]:
        """The raw text of these 1-based physical lines of an input (None where unknown)."""
        return gather_lines(self.lines.get(path), lines)


def server_from_path(path: str) -> str | None:
    """The server's folder in a collected log tree, when the layout names one.

    ``EXCH01/Exchsrvr/Imcdata/Log/L0000000.LOG`` -> EXCH01; ``mx2/var/log/exim4/mainlog`` -> mx2;
    ``WEB01/LogFiles/SMTPSVC1/ex060214.log`` -> WEB01 (not ``system32`` or ``WINDOWS``);
    ``EXCH03/Program Files/Microsoft/Exchange Server/V14/TransportRoles/Logs/ProtocolLog/SmtpReceive/
    RECV2010061500-1.LOG`` -> EXCH03 (Exchange 2007+, above the install folders).
    """
    parts = PurePath(path.replace("!", "/").replace("\\", "/")).parts
    for i, part in enumerate(parts):
        if part.lower() == "transportroles":
            j = i - 1
            while j >= 0 and parts[j].lower() in _EXCHANGE_INSTALL_DIRS:
                j -= 1
            if j >= 0 and parts[j] not in ("/", "\\") and not parts[j].endswith(":"):
                return parts[j]
            return None
    for i, part in enumerate(parts):
        if part.lower() in _EXCHANGE_DIRS:
            j = i - 1
            while j >= 0 and parts[j].lower() in _EXCHANGE_DIRS:
                j -= 1
            return parts[j] if j >= 0 else None
    for i, part in enumerate(parts[:-1]):
        below = i - 1
        if below < 0 or parts[below] in ("/", "\\") or parts[below].endswith(":"):
            continue
        if part == "var" and parts[i + 1] == "log":
            return parts[below]
        if part.lower() == "logfiles" and parts[below].lower() not in _WINDOWS_DIRS:
            return parts[below]
    return None


def server_named_in_path(path: str, site: SiteProfile) -> str | None:
    """A folder of ``path`` (innermost first) named like a server the site profile knows: a
    ``[servers.NAME]`` table, or one of ``server_names`` (or its short name). ``logs/smtp2/mainlog``
    with a ``[servers.smtp2]`` table is smtp2's, whatever layout the evidence was collected in."""
    known = {n.lower() for n in site.servers} | {n.lower() for n in site.server_names}
    known |= {n.split(".", 1)[0] for n in known}
    folders = PurePath(path.replace("!", "/").replace("\\", "/")).parts[:-1]
    return next((part for part in reversed(folders) if part.lower() in known), None)


def read_one(source: Source, site: SiteProfile, forced_format: str | None = None,
             year_hint: YearHint | None = None) -> tuple[pl.DataFrame, InputReport, pl.Series]:
    """Decode, sniff and read one source into events; also returns its physical lines.

    ``report.first_month`` is set for year-less formats (the anchor for the next older rotation).
    """
    report = InputReport(source.path, source.sha256, source.size, None, compression=source.compression,
                         warnings=list(source.warnings), mtime=source.mtime)
    text, encoding = decode_text(source.data)
    report.encoding = encoding
    if encoding not in ("utf-8", "utf-8-sig"):
        report.warnings.append(f"{source.path}: not plain UTF-8; decoded as {encoding} "
                               "(undecodable bytes kept as \\xNN)")
    lines = split_lines(cap_long_lines(text, source.path, report.warnings))
    del text
    if not len(source.data):
        report.status = "unreadable" if source.warnings else "empty"
        if not source.warnings:
            report.warnings.append(f"{source.path}: empty file; nothing to read")
        return empty_events(), report, lines
    fmt = forced_format or sniff_format(lines.head(SNIFF_LINES).to_list())
    report.format = fmt
    report.lines = lines.len()
    if fmt is None:
        report.status = "unrecognised"
        report.skipped_lines = report.lines
        what = "binary data, not a log" if _looks_binary(source.data) else "not a recognised log format"
        report.warnings.append(f"{source.path}: {what}; skipped")
        return empty_events(), report, lines
    server = (server_from_path(source.path) or server_named_in_path(source.path, site)
              or (site.server_names[0] if site.server_names else None))
    site = site.for_server(server)  # its [servers.NAME] table: time zone, date order...
    hint = year_hint or YearHint.from_mtime(source.mtime)
    result = READERS[fmt]().read(lines, ReadContext(source.path, site, server, hint))
    report.first_month = result.first_month
    report.last_month = result.last_month
    report.events = result.events.height
    report.skipped_lines = result.skipped
    report.warnings += result.warnings
    blind = result.events.filter((pl.col("event") == "rcpt") & pl.col("recipient").is_null())
    if blind.height:  # a RCPT whose address was cut off or garbled: say so, it can raise no finding
        report.warnings.append(f"{source.path}: {blind.height} RCPT line(s) name no readable recipient (cut off "
                               f"or malformed; first: line {blind['line'].min()}); they raise no finding")
    if result.wall_clock and site.timezone is None:
        report.warnings.append(f"{source.path}: no time zone known; local times read as UTC (set timezone in "
                               f"the site profile); {result.wall_clock} line(s) affected")
    return result.events, report, lines


def _looks_binary(data: bytes) -> bool:
    """NUL bytes or many control bytes near the start: not text (UTF-16 logs are decoded first)."""
    head = bytes(data[:4096])
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return False
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13))
    return b"\x00" in head or controls > len(head) // 10


def cap_long_lines(text: str, path: str, warnings: list[str], limit: int = MAX_LINE_CHARS) -> str:
    """Cut every line longer than ``limit`` characters there (with a marker and a warning).

    Lines keep their numbers, so the lines after a cut one are read and cited as usual. Works on
    the text before it is split: a line of hundreds of megabytes never becomes a Polars value
    (string kernels on one huge value cost several times its size). Costs one ``rfind`` per
    ``limit`` characters.
    """
    n = len(text)
    if n <= limit:
        return text
    pieces: list[str] = []
    cuts = 0
    pos = kept = 0  # pos: start of a line; kept: text before it already in pieces
    line = 1
    counted = 0
    while n - pos > limit:
        nl = text.rfind("\n", pos, pos + limit + 1)
        if nl >= 0:
            pos = nl + 1
            continue
        end = text.find("\n", pos)
        end = n if end < 0 else end
        line += text.count("\n", counted, pos)
        counted = pos
        cuts += 1
        if cuts <= 20:
            warnings.append(f"{path}:{line}: line of {end - pos} characters cut at {limit}")
        pieces += [text[kept:pos + limit], f"[... cut by logforensics: line longer than {limit} characters]"]
        pos = kept = end
        if end < n:
            pos = end + 1
    if not cuts:
        return text
    if cuts > 20:
        warnings.append(f"{path}: {cuts - 20} more lines cut at {limit} characters")
    pieces.append(text[kept:])
    return "".join(pieces)


def iter_sources(paths: list[str | Path], *, oldest_first: bool = False) -> Iterator[Source | InputReport]:
    """Sources for every input file; an unreadable file yields a failed :class:`InputReport`.

    Within each rotation group newer files come first (``mail.log`` before ``mail.log.1``), so
    that each older file's year can be anchored on the newer one; with ``oldest_first`` the other
    way round (``--year`` dates the oldest file, and each newer one continues from it).
    """
    order_files = rotation_oldest_first if oldest_first else newest_first
    files = order_files([str(p) for p in iter_input_files(paths)])
    for path in files:
        try:
            members = read_source(path)
        except LogForensicsError as exc:
            yield InputReport(str(path), "", 0, None, warnings=[str(exc)], status="unreadable")
            continue
        order = order_files([m.path for m in members])
        yield from sorted(members, key=lambda m: order.index(m.path))


class YearAnchors:
    """Year hints for year-less logs, strongest first: ``--year`` (the year of the oldest file of each
    rotation; read oldest first, each newer file starts where the one before it ended); the rotation
    date in the file name (``mail.log-20050103``); the first line of the next newer file of the same
    rotation; the mtime."""

    def __init__(self, year: int | None = None) -> None:
        self.year = year
        self._newer: dict[str, tuple[tuple[int, int], str]] = {}
        self._older: dict[str, tuple[int, int]] = {}

    def hint(self, source: Source) -> YearHint:
        if self.year is not None:
            older = self._older.get(rotation_key(source.path).group)
            return YearHint(start_year=self.year) if older is None else YearHint(start_at=older)
        dated = rotation_date(source.path)
        if dated is not None:
            return YearHint(end_at=dated[:2], end_source="the rotation date in the file name")
        newer = self._newer.get(rotation_key(source.path).group)
        if newer is not None:
            return YearHint(end_at=newer[0], end_source=f"rotation order (older than {newer[1]})")
        return YearHint.from_mtime(source.mtime)

    def record(self, report: InputReport) -> None:
        if self.year is not None:
            if report.last_month is not None:
                self._older[rotation_key(report.path).group] = tuple(report.last_month)
            return
        if report.first_month is not None:
            self._newer[rotation_key(report.path).group] = (report.first_month, report.path)


def ingest(paths: list[str | Path], site: SiteProfile, *, keep_lines: bool = False,
           year: int | None = None) -> IngestResult:
    """Read every input under ``paths`` into one events frame.

    With ``keep_lines`` the physical lines of each recognised input are kept, to quote evidence.
    ``year`` is the year of the first line of year-less (syslog) logs; by default it is inferred.
    Inputs are reported in path order.
    """
    frames: list[pl.DataFrame] = []
    reports: list[InputReport] = []
    kept: dict[str, pl.Series] = {}
    anchors = YearAnchors(year)
    for item in iter_sources(paths, oldest_first=year is not None):
        if isinstance(item, InputReport):
            reports.append(item)
            continue
        try:
            events, report, lines = read_one(item, site, year_hint=anchors.hint(item))
        except Exception as exc:  # a reader bug must not cost the rest of the evidence
            report = InputReport(item.path, item.sha256, item.size, None, status="error", mtime=item.mtime,
                                 compression=item.compression, warnings=[
                                     *item.warnings, f"{item.path}: internal error while reading "
                                     f"({type(exc).__name__}: {exc}); this input was skipped"])
            events, lines = empty_events(), pl.Series("raw", [], dtype=pl.String)
        del item
        anchors.record(report)
        reports.append(report)
        if keep_lines and report.format:
            kept[report.path] = lines
        if events.height:
            frames.append(events)
    reports.sort(key=lambda r: r.path)
    dropped = mark_duplicates(reports)
    if dropped:
        frames = [f.filter(~pl.col("source").is_in(list(dropped))) for f in frames]
    events = pl.concat(frames, how="vertical") if frames else empty_events()
    return IngestResult(events, reports, kept)


def mark_duplicates(reports: list[InputReport]) -> set[str]:
    """Mark inputs whose bytes repeat an earlier input (path order) as ``duplicate``; returns their paths.

    The same evidence under two names (a copy, an archive and its extracted file) is counted once.
    """
    first: dict[str, str] = {}
    dropped: set[str] = set()
    for r in sorted(reports, key=lambda r: r.path):
        if r.status != "ok" or not r.sha256 or not r.events:
            continue
        if r.sha256 in first:
            r.status = "duplicate"
            r.warnings.append(f"{r.path}: identical to {first[r.sha256]} (same SHA-256); not counted twice")
            dropped.add(r.path)
        else:
            first[r.sha256] = r.path
    return dropped
