"""Batch runs over archived log trees: parallel, streaming, resumable, into a Parquet dataset.

Output folder layout::

    DIR/events/format=<fmt>/day=<YYYY-MM-DD>/<input-key>.parquet   one input's events of one day
    DIR/findings.parquet     the findings (same fields as scan's JSON; evidence = list of structs)
    DIR/incidents.parquet
    DIR/lines/<input-key>.parquet    the raw text of the lines findings can cite (line, text)
    DIR/manifest.json        per input: path, size, mtime, SHA-256, format, events, skipped lines,
                             warnings, status (plus the site profile used and the run history)
    DIR/state/all-findings.parquet   every finding before --since/--until/--min-severity

Work is split into units of one file (an archive's members stay together) that run in parallel
worker processes, each writing its file's events straight to Parquet, so memory is bounded by the
largest single file, never by the archive. Year-less syslog files get provisional years (the
rotation date in the name, else the mtime); :func:`reconcile_years` then applies rotation order
exactly as ``scan`` does and re-parses the rare file whose year it changes. Detection reads the
dataset back one server at a time, in windows of whole hours sized by event counts.

A rerun with the same DIR skips inputs already done (same path with the same size and mtime, or
the same SHA-256 under any path), parses only new or changed files, and recomputes the findings of
the servers those files touch. Nothing is counted twice: an input's events live in files named by
the input, which a re-parse replaces.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from logforensics import TOOL_NAME, __version__
from logforensics.detect.findings import AUTH_FAILURE_LOOKBACK, FAILED_LOGIN, build_findings, empty_findings
from logforensics.detect.incidents import group_incidents
from logforensics.detect.infer import Shift, infer_profile, shift_protocol_times, shift_reach
from logforensics.detect.pipeline import Detection, select
from logforensics.errors import LogForensicsError
from logforensics.ingest import InputReport, YearAnchors, read_one
from logforensics.readers.syslog import YearHint
from logforensics.rotation import newest_first, oldest_first, rotation_date, rotation_key
from logforensics.schema import EVENT_SCHEMA, conform
from logforensics.site import SiteProfile
from logforensics.source_lines import SourceLines
from logforensics.sources import iter_input_files, read_source

MANIFEST = "manifest.json"
EVENTS_DIR = "events"
LINES_DIR = "lines"
ALL_FINDINGS = "state/all-findings.parquet"

#: Detection walks each server's events in windows of this many days, so memory is bounded by one
#: window of one server, never by the archive. Each window also loads a margin before it (sessions,
#: clock offsets) and after it (queue lifetime plus the outbound-matching window), and keeps only
#: the findings whose time falls inside it, so the windows give exactly the unwindowed findings.
WINDOW_DAYS = 7
#: Before the window: sessions that began a little earlier (their HELO and AUTH lines); failed
#: logins from further back (LF-AUTH-ABUSE looks back ``AUTH_FAILURE_LOOKBACK``).
MARGIN_BEFORE = timedelta(hours=1)
#: After the window: every row for an hour (tracking records covered by a protocol RCPT within ten
#: minutes), then only the rows that can prove what became of mail offered inside the window:
#: deliveries and queue-manager lines (queue lifetime, 10 days), outbound tracking records and
#: outbound RCPTs (48 hours).
MARGIN_AFTER_ALL = timedelta(hours=1)
MARGIN_AFTER = timedelta(days=11)
OUTCOME_ROWS = (pl.col("event").is_in(["deliver", "queued", "tracking"])
                | ((pl.col("event") == "rcpt") & (pl.col("direction") == "out")))

#: Runs with less input than this (bytes on disk) run in this process alone: a worker process
#: takes about half a second to start, longer than such a run takes.
SMALL_RUN_BYTES = 4 << 20

#: Columns detection needs (``text`` and a few others stay on disk).
DETECT_COLUMNS = [c for c in EVENT_SCHEMA if c not in ("text", "size", "transport", "verb")]
#: Rows and columns site inference needs from the whole archive.
INFER_COLUMNS = ["server", "format", "event", "direction", "reply", "reply_text", "event_id", "recipient", "ts",
                 "client_ip", "session", "relay_host", "helo", "status", "message"]


@dataclass
class BatchResult:
    output: Path
    detection: Detection
    inputs: list[dict]
    processed: int
    skipped: int
    warnings: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Planning: what to parse


@dataclass
class FileFacts:
    path: str
    size: int
    mtime: float


def discover(paths: list[str | Path]) -> list[FileFacts]:
    """Every input file below ``paths`` with its size and mtime (stat only; nothing is read)."""
    out = []
    for p in iter_input_files(paths):
        try:
            st = p.stat()
        except OSError:
            out.append(FileFacts(str(p), -1, 0.0))  # reported as unreadable when it is read
            continue
        out.append(FileFacts(str(p), st.st_size, st.st_mtime))
    return out


def plan_units(files: list[FileFacts]) -> list[list[FileFacts]]:
    """One unit per file (an archive's members stay together), largest first (for load balance).

    The files of one rotated log are parsed in parallel with provisional years (the rotation date in
    the name, else the file's mtime); :func:`reconcile_years` then checks each against the rotation
    order, as ``scan`` reads it, and re-parses the rare file whose year it changes.
    """
    return [[f] for f in sorted(files, key=lambda f: (-max(f.size, 0), f.path))]


def reconcile_years(files: list[FileFacts], inputs: dict[str, dict], site: SiteProfile, year: int | None,
                    out: str, known_sha: dict[str, str]) -> list[str]:
    """Give year-less files the years ``scan`` gives them; returns the paths parsed again.

    Within a rotation group, newest first: a file whose name carries no date and that has a newer
    file is anchored by that file's first line (rotation order), not by its own mtime. When that
    anchor gives its last line another year than the provisional parse did, the file is parsed again
    with it (this happens when copying the evidence reset the mtimes).
    """
    groups: dict[str, list[FileFacts]] = {}
    for f in files:
        groups.setdefault(rotation_key(f.path).group, []).append(f)
    if year is not None:
        return _reconcile_given_year(groups, inputs, site, out, known_sha)
    redone = []
    for members in groups.values():
        order = newest_first([m.path for m in members])
        newer: tuple[int, int] | None = None
        for f in sorted(members, key=lambda m: order.index(m.path)):
            entry = inputs.get(f.path)
            if entry is None or entry.get("status") != "ok" or not entry.get("first_month"):
                continue  # no dated line (or an archive): the newer anchor carries on, as in scan
            if newer is not None and rotation_date(f.path) is None and entry.get("last_month"):
                last_year, last_month = entry["last_month"]
                chained = newer[0] if last_month <= newer[1] else newer[0] - 1
                if chained != last_year:
                    hint = YearHint(end_at=tuple(newer), end_source="rotation order")
                    entry = _reparse(f, hint, inputs, site, out, known_sha)
                    redone.append(f.path)
            newer = tuple(entry["first_month"]) if entry.get("first_month") else newer
    return redone


def _reconcile_given_year(groups: dict[str, list[FileFacts]], inputs: dict[str, dict], site: SiteProfile,
                          out: str, known_sha: dict[str, str]) -> list[str]:
    """With ``--year``, the oldest file of each rotation starts in that year (as parsed) and each newer
    file starts at or after the month the one before it ended, as ``scan`` reads them; a file whose
    provisional year (``--year`` for all) differs is parsed again."""
    redone = []
    for members in groups.values():
        order = oldest_first([m.path for m in members])
        older: tuple[int, int] | None = None
        for f in sorted(members, key=lambda m: order.index(m.path)):
            entry = inputs.get(f.path)
            if entry is None or entry.get("status") != "ok" or not entry.get("first_month"):
                continue
            first_year, first_month = entry["first_month"]
            if older is not None and first_year != (older[0] if first_month >= older[1] else older[0] + 1):
                entry = _reparse(f, YearHint(start_at=older), inputs, site, out, known_sha)
                redone.append(f.path)
            older = tuple(entry["last_month"]) if entry.get("last_month") else older
    return redone


def _reparse(f: FileFacts, hint: YearHint, inputs: dict[str, dict], site: SiteProfile, out: str,
             known_sha: dict[str, str]) -> dict:
    """Parse ``f`` again with ``hint`` (its old partitions go: other years, other days); its new entry."""
    for rel in inputs[f.path].get("parts", []):
        (Path(out) / rel).unlink(missing_ok=True)
    for e in process_unit([f], site, None, out, known_sha, None, {f.path: hint}):
        inputs[e["path"]] = e
    return inputs[f.path]


def input_key(path: str) -> str:
    """The file-name stem of an input's event partitions (stable for a path)."""
    return hashlib.sha1(path.encode("utf-8", "surrogateescape"), usedforsecurity=False).hexdigest()[:20]


# ---------------------------------------------------------------------------------------------
# Work: one unit in a worker process


def _write_parts(events: pl.DataFrame, out: Path, key: str) -> list[str]:
    """Write one input's events as ``events/format=F/day=D/<key>.parquet``; returns relative paths."""
    if events.is_empty():
        return []
    frame = events.with_columns(pl.col("ts").dt.strftime("%Y-%m-%d").fill_null("unknown").alias("day"))
    parts = []
    for (fmt, day), part in frame.partition_by("format", "day", as_dict=True).items():
        rel = f"{EVENTS_DIR}/format={fmt}/day={day}/{key}.parquet"
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{key}.{os.getpid()}.tmp")
        part.drop("format", "day").write_parquet(tmp, compression="zstd", statistics=True)
        tmp.replace(target)  # atomic: a crash never leaves half a partition
        parts.append(rel)
    return parts


#: Columns whose values are line numbers a finding can cite as evidence.
CITED_LINE_COLUMNS = ("line", "reply_line", "record_line", "raw_line")


def _write_quotable_lines(events: pl.DataFrame, lines: pl.Series, out: Path, key: str) -> list[str]:
    """Keep the raw text of every line a finding can cite (``LINES_DIR/<key>.parquet``: line, text).

    Detection quotes evidence from here instead of decompressing and splitting the evidence file a
    second time; the text is exactly the line that was parsed (from the bytes whose SHA-256 the
    manifest records). Returns the relative path, or nothing when the input has no events.
    """
    if events.is_empty():
        return []
    cited = pl.concat([events[c].drop_nulls() for c in CITED_LINE_COLUMNS]).unique().sort()
    cited = cited.filter(cited.is_between(1, lines.len()))
    frame = pl.DataFrame({"line": cited, "text": lines.gather(cited - 1)},
                         schema={"line": pl.Int64, "text": pl.String})
    rel = f"{LINES_DIR}/{key}.parquet"
    target = out / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{key}.{os.getpid()}.tmp")
    frame.write_parquet(tmp, compression="zstd", compression_level=1, statistics=True)
    tmp.replace(target)
    return [rel]


def process_unit(unit: list[FileFacts], site: SiteProfile, year: int | None, out: str,
                 known_sha: dict[str, str], progress: object | None = None,
                 hints: dict[str, YearHint] | None = None) -> list[dict]:
    """Parse the files of one unit (newest first) and write their events. Returns manifest entries.

    An input whose SHA-256 is already in ``known_sha`` (done under another path) is not parsed again.
    """
    out_dir = Path(out)
    anchors = YearAnchors(year)
    entries: list[dict] = []
    for facts in unit:
        try:
            sources = read_source(facts.path)
        except LogForensicsError as exc:
            entries.append({**InputReport(facts.path, "", max(facts.size, 0), None, warnings=[str(exc)],
                                          status="unreadable", mtime=facts.mtime).to_dict(),
                            "file": facts.path, "file_sha256": "", "parts": [], "servers": []})
            _tick(progress, facts)
            continue
        file_sha = sources[0].sha256 if len(sources) == 1 and "!" not in sources[0].path else ""
        if len(sources) != 1 or "!" in sources[0].path:
            try:
                file_sha = _file_sha(facts.path)
            except OSError:  # gone or unreadable since it was read: its members still count
                file_sha = ""
        order = newest_first([s.path for s in sources])
        for source in sorted(sources, key=lambda s: order.index(s.path)):
            if source.sha256 in known_sha and known_sha[source.sha256] != source.path:
                entries.append({**InputReport(source.path, source.sha256, source.size, None, status="duplicate",
                                              mtime=source.mtime, warnings=[
                                                  f"{source.path}: identical to {known_sha[source.sha256]} "
                                                  "(same SHA-256); not counted twice"]).to_dict(),
                                "file": facts.path, "file_sha256": file_sha, "parts": [], "servers": []})
                continue
            try:
                hint = (hints or {}).get(source.path) or anchors.hint(source)
                events, report, lines = read_one(source, site, year_hint=hint)
                parts = _write_parts(events, out_dir, input_key(source.path))
                parts += _write_quotable_lines(events, lines, out_dir, input_key(source.path))
                del lines
            except Exception as exc:  # a reader bug must not cost the rest of the archive
                report = InputReport(source.path, source.sha256, source.size, None, status="error",
                                     mtime=source.mtime, warnings=[
                                         f"{source.path}: internal error while reading "
                                         f"({type(exc).__name__}: {exc}); this input was skipped"])
                events, parts = pl.DataFrame(schema=EVENT_SCHEMA), []
            anchors.record(report)
            servers = sorted({s or "" for s in events["server"].unique().to_list()}) if events.height else []
            entries.append({**report.to_dict(), "file": facts.path, "file_sha256": file_sha, "parts": parts,
                            "servers": servers, "first_month": report.first_month,
                            "last_month": report.last_month})
            del events, source
        _tick(progress, facts)
    return entries


def _file_sha(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _tick(progress: object | None, facts: FileFacts) -> None:
    if progress is not None:
        with contextlib.suppress(Exception):  # progress is best effort; never lose work over it
            progress.put((facts.path, max(facts.size, 0)))  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------------------------
# Progress


class Progress:
    """Files, bytes, rate and ETA: a bar on a terminal, plain lines in CI or a pipe."""

    def __init__(self, total_files: int, total_bytes: int, *, enabled: bool = True,
                 emit: Callable[[str], None] | None = None) -> None:
        import sys

        self.total_files, self.total_bytes = total_files, total_bytes
        self.files = self.bytes = 0
        self.start = time.monotonic()
        self.enabled = enabled
        self.interactive = enabled and sys.stderr.isatty() and not os.environ.get("CI")
        self.emit = emit or (lambda text: print(text, file=sys.stderr, flush=True))
        self._bar = None
        if self.interactive:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )
            from rich.progress import Progress as Bar

            self._bar = Bar(TextColumn("[bold]batch"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                            TextColumn("files"), MofNCompleteColumn(), TimeRemainingColumn(), transient=False)
            self._files_task = self._bar.add_task("bytes", total=max(total_bytes, 1))
            self._bar.start()

    def advance(self, path: str, size: int) -> None:
        self.files += 1
        self.bytes += size
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._files_task, completed=self.bytes)
            return
        elapsed = max(time.monotonic() - self.start, 1e-9)
        rate = self.bytes / elapsed
        eta = (self.total_bytes - self.bytes) / rate if rate > 0 else 0.0
        self.emit(f"batch: {self.files}/{self.total_files} files, {self.bytes / 1e6:.1f}/"
                  f"{self.total_bytes / 1e6:.1f} MB, {rate / 1e6:.1f} MB/s, ETA {eta:.0f} s: {path}")

    def note(self, text: str) -> None:
        if self.enabled:
            self.emit(f"batch: {text}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


# ---------------------------------------------------------------------------------------------
# Manifest


def load_manifest(out: Path) -> dict:
    path = out / MANIFEST
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LogForensicsError(f"cannot read the manifest of an earlier run ({exc}); "
                                "use a new --output folder", path=str(path)) from None


def write_manifest(out: Path, manifest: dict) -> None:
    path = out / MANIFEST
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    tmp.replace(path)


# ---------------------------------------------------------------------------------------------
# The job


def _run_units(units: list[list[FileFacts]], site: SiteProfile, year: int | None, out: Path,
               known_sha: dict[str, str], jobs: int, progress: Progress,
               on_done: Callable[[list[dict]], None]) -> None:
    """Run the units on ``jobs`` processes (this one and ``jobs - 1`` workers); ``on_done`` gets each
    unit's entries as it finishes."""
    def done(unit: list[FileFacts], entries: list[dict], inline: bool) -> None:
        if not inline:  # a unit run here ticked the progress per file already
            for facts in unit:
                progress.advance(facts.path, max(facts.size, 0))
        on_done(entries)

    tasks = [(u, site, year, str(out), known_sha, None) for u in units]
    inline = [(u, site, year, str(out), known_sha, _InlineQueue(progress)) for u in units]
    _run_shared(jobs, process_unit, tasks, lambda i, entries, here: done(units[i], entries, here), inline)


def _run_shared(jobs: int, fn: Callable, tasks: list[tuple], on_result: Callable[[int, object, bool], None],
                inline_tasks: list[tuple] | None = None) -> None:
    """``fn(*task)`` for every task on ``jobs`` processes: ``jobs - 1`` workers and this process.

    All tasks are queued for the workers; this process, instead of waiting, takes tasks from the end
    of the queue (the smallest: tasks come largest first) that no worker has started, and runs them
    itself. So work starts at once, while the workers are still starting up, and no core idles.
    ``on_result(index, result, ran_here)`` is called in this process as each task finishes.
    ``inline_tasks``: the arguments to use for a task run here (default: the same).
    """
    inline_tasks = inline_tasks or tasks
    if jobs <= 1 or len(tasks) <= 1:
        for i, args in enumerate(inline_tasks):
            on_result(i, fn(*args), True)
        return
    pool = _pool(jobs - 1)
    futures = [pool.submit(fn, *args) for args in tasks]
    pending: dict[Future, int] = {fut: i for i, fut in enumerate(futures)}

    def collect(timeout: float | None) -> None:
        done, _ = wait(pending, timeout=timeout, return_when=FIRST_COMPLETED)
        for fut in sorted(done, key=pending.__getitem__):
            on_result(pending.pop(fut), fut.result(), False)

    for fut in reversed(futures):
        collect(0)
        if fut not in pending or not fut.cancel():
            break  # a worker has it (and every task before it): nothing left to take
        i = pending.pop(fut)
        on_result(i, fn(*inline_tasks[i]), True)
    while pending:
        collect(None)


_POOLS: dict[int, ProcessPoolExecutor] = {}


def _pool(workers: int) -> ProcessPoolExecutor:
    """Worker processes for this run, shared by parsing and detection (started once)."""
    if workers not in _POOLS:
        threads = max(1, (os.cpu_count() or 1) // (workers + 1))
        os.environ.setdefault("POLARS_MAX_THREADS", str(threads))  # workers inherit it
        ctx = multiprocessing.get_context("spawn")  # Polars is multi-threaded: never fork it
        _POOLS[workers] = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
    return _POOLS[workers]


def _close_pools() -> None:
    while _POOLS:
        _POOLS.popitem()[1].shutdown()


class _InlineQueue:
    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def put(self, item: tuple[str, int]) -> None:
        self.progress.advance(*item)


def scan_events(out: Path, *, keep_day: bool = False) -> pl.LazyFrame | None:
    """The events dataset as a lazy frame (``format`` and ``day`` from the partition path), or None."""
    files = sorted((out / EVENTS_DIR).glob("format=*/day=*/*.parquet"))
    if not files:
        return None
    # A glob, not the folder: a worker killed between write and rename leaves a stray ``.*.tmp``.
    lazy = pl.scan_parquet(str(out / EVENTS_DIR / "**" / "*.parquet"), hive_partitioning=True,
                           hive_schema={"format": pl.String, "day": pl.String})
    return lazy if keep_day else lazy.drop("day")


def batch(paths: list[str | Path], site: SiteProfile, output: str | Path, *, jobs: int | None = None,
          year: int | None = None, since: datetime | None = None, until: datetime | None = None,
          min_severity: str = "info", show_progress: bool = True, window_days: int = WINDOW_DAYS, scheduler: str | None = None) -> BatchResult:
    """Parse every input into the dataset under ``output`` (skipping what is done), then detect.

    ``scheduler``: a Dask scheduler address (``tcp://host:8786``) or ``local`` runs the work as
    tasks on a Dask cluster (logforensics.cluster): the per-file parsing and the per-server detection.
    """
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    manifest = load_manifest(out)
    started = datetime.now(UTC)
    jobs = jobs or os.cpu_count() or 1
    done_files: dict[str, dict] = manifest.get("files", {})
    inputs: dict[str, dict] = {e["path"]: e for e in manifest.get("inputs", [])}

    files = discover(paths)
    todo: list[FileFacts] = []
    skipped = 0
    affected: set[str | None] = set()
    for f in files:
        prev = done_files.get(f.path)
        if prev and prev.get("size") == f.size and prev.get("mtime") == f.mtime:
            skipped += 1
            continue
        if prev and f.size >= 0 and _file_sha(f.path) == prev.get("sha256"):
            prev["mtime"] = f.mtime  # same bytes, touched: nothing to redo
            skipped += 1
            continue
        if prev:  # changed: forget its old events
            for entry in [e for e in inputs.values() if e.get("file") == f.path]:
                for rel in entry.get("parts", []):
                    (out / rel).unlink(missing_ok=True)
                affected.update(s or None for s in entry.get("servers", []))
                del inputs[entry["path"]]
        todo.append(f)

    known_sha = {e["sha256"]: e["path"] for e in inputs.values() if e.get("sha256") and e.get("status") == "ok"}
    todo_bytes = sum(max(f.size, 0) for f in todo)
    if scheduler is None and todo_bytes < SMALL_RUN_BYTES:
        jobs = 1  # starting worker processes would cost more than the whole run
    progress = Progress(len(todo), todo_bytes, enabled=show_progress)
    if skipped:
        progress.note(f"{skipped} input file(s) already done in {out}; skipped")

    def on_done(entries: list[dict]) -> None:
        for e in entries:
            inputs[e["path"]] = e
            affected.update(s or None for s in e.get("servers", []))
            if e.get("file_sha256") or e.get("sha256"):
                size = next((f.size for f in files if f.path == e["file"]), None)
                mtime = next((f.mtime for f in files if f.path == e["file"]), None)
                done_files[e["file"]] = {"size": size, "mtime": mtime,
                                         "sha256": e.get("file_sha256") or e.get("sha256")}
        manifest.update(files=done_files, inputs=sorted(inputs.values(), key=lambda x: x["path"]))
        write_manifest(out, manifest)  # after every unit: an interrupted run resumes from here

    cluster = None
    if scheduler:  # parsing and per-server detection as tasks on a Dask cluster
        from logforensics.cluster import ClusterSession  # needs the optional dask extra

        cluster = ClusterSession(scheduler, jobs, progress)  # connects on first use
    try:
        if cluster is not None:
            cluster.run_units(plan_units(todo), site, year, out, known_sha, on_done)
        else:
            _run_units(plan_units(todo), site, year, out, known_sha, jobs, progress, on_done)
    except BaseException:
        _close_pools()
        if cluster is not None:
            cluster.close()
        raise
    finally:
        progress.close()
    # Over every file, not just this run's: a newer rotation that arrived now anchors older ones.
    for path in reconcile_years(files, inputs, site, year, str(out), known_sha):
        progress.note(f"{path}: parsed again with the year its rotation order gives")
        affected.update(s or None for s in inputs[path].get("servers", []))
    _drop_duplicates(out, inputs, affected)

    parse_seconds = time.monotonic() - progress.start
    progress.note(f"parsed {len(todo)} file(s) in {parse_seconds:.1f} s")
    detect_start = time.monotonic()
    try:
        detection, warnings = _detect(out, site, inputs, affected, manifest, progress, jobs, window_days, cluster)
    finally:
        _close_pools()
        if cluster is not None:
            cluster.close()
    progress.note(f"detection: {detection.findings.height} findings in {time.monotonic() - detect_start:.1f} s")
    selected = select(detection, since=since, until=until, min_severity=min_severity)
    _write_frame(selected.findings, out / "findings.parquet")
    _write_frame(selected.incidents, out / "incidents.parquet")

    manifest.update({
        "tool": TOOL_NAME, "version": __version__, "site": detection.site.to_dict(),
        "files": done_files, "inputs": sorted(inputs.values(), key=lambda x: x["path"]),
        "findings": selected.findings.height, "incidents": selected.incidents.height,
        "runs": [*manifest.get("runs", []), {
            "started": started.isoformat(), "finished": datetime.now(UTC).isoformat(), "jobs": jobs,
            "scheduler": scheduler,
            "parsed_files": len(todo), "skipped_files": skipped,
            "recomputed_servers": sorted("" if s is None else s for s in affected),
            "since": since.isoformat() if since else None, "until": until.isoformat() if until else None,
            "min_severity": min_severity}],
        "warnings": warnings,
    })
    write_manifest(out, manifest)
    return BatchResult(out, selected, manifest["inputs"], len(todo), skipped, warnings)


def _drop_duplicates(out: Path, inputs: dict[str, dict], affected: set[str | None]) -> None:
    """The same bytes under two paths count once: the first path (in path order) keeps its events."""
    first: dict[str, str] = {}
    for path in sorted(inputs):
        e = inputs[path]
        if e.get("status") != "ok" or not e.get("sha256") or not e.get("events"):
            continue
        if e["sha256"] not in first:
            first[e["sha256"]] = path
            continue
        for rel in e.get("parts", []):
            (out / rel).unlink(missing_ok=True)
        affected.update(s or None for s in e.get("servers", []))
        e.update(status="duplicate", parts=[], warnings=[
            *e.get("warnings", []), f"{path}: identical to {first[e['sha256']]} (same SHA-256); not counted twice"])


def site_is_complete(site: SiteProfile) -> bool:
    """True when the profile gives every key that zero configuration would otherwise infer."""
    return bool(site.timezone and site.server_names and site.local_domains and site.forward_all_to is not None
                and site.reroute_inbound is not None and site.relay_policy != "unknown")


def _write_frame(frame: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    frame.write_parquet(tmp, compression="zstd")
    tmp.replace(path)


def _detect(out: Path, site: SiteProfile, inputs: dict[str, dict], affected: set[str | None], manifest: dict,
            progress: Progress, jobs: int = 1, window_days: int = WINDOW_DAYS,
            cluster: object | None = None) -> tuple[Detection, list[str]]:
    """Findings for the affected servers, merged with the kept findings of the others."""
    lazy = scan_events(out)
    if lazy is None:
        findings, incidents = group_incidents(empty_findings())
        return Detection(site, findings, incidents), []
    if site_is_complete(site):  # nothing to infer: skip reading the dataset for it
        effective, shifts = site, {}
    else:
        infer_rows = lazy.filter(pl.col("event").is_in(["rcpt", "tracking", "helo", "connect", "deliver"])
                                 | (pl.col("reply") == 235)).select(INFER_COLUMNS).collect()
        effective, shifts = infer_profile(infer_rows, site)
        del infer_rows
    all_servers = [None if s is None else s for s in
                   lazy.select(pl.col("server").unique()).collect()["server"].to_list()]
    previous = out / ALL_FINDINGS
    kept = empty_findings()
    if previous.exists() and manifest.get("site") == effective.to_dict():
        old = pl.read_parquet(previous)
        kept = old.filter(~pl.col("server").is_in([s for s in affected if s is not None])
                          & ~(pl.col("server").is_null() if None in affected else pl.lit(False)))
        kept = kept.drop("incident") if "incident" in kept.columns else kept
        servers = [s for s in all_servers if s in affected]
    else:
        servers = all_servers
    servers.sort(key=lambda s: (s is None, s or ""))

    sha = {p: e.get("sha256", "") for p, e in inputs.items()}
    stored = {p: rel for p, e in inputs.items() for rel in e.get("parts", []) if rel.startswith(f"{LINES_DIR}/")}
    frames = [kept]
    warnings: list[str] = []
    windows = detection_windows(out, servers, window_days) if servers else []
    progress.note(f"detecting on {len(servers)} server(s) in {len(windows)} window(s)")
    # Biggest first is not known in advance; windows of one server are of similar size.
    tasks = [(str(out), server, effective, shifts.get(server, 0), sha, start, end, stored)
             for server, start, end in windows]
    if cluster is not None and tasks:  # workers need an absolute path to the shared dataset
        results = cluster.map(detect_window, [(str(out.resolve()), *t[1:]) for t in tasks])  # type: ignore[attr-defined]
    else:
        found: dict[int, tuple[str, list[str]]] = {}
        _run_shared(jobs, detect_window, tasks, lambda i, result, _here: found.__setitem__(i, result))
        results = [found[i] for i in range(len(tasks))]
    for path, server_warnings in results:
        frames.append(pl.read_parquet(path))
        Path(path).unlink(missing_ok=True)
        warnings += [w for w in server_warnings if w not in warnings]  # windows of a file say it once
    findings = pl.concat([f for f in frames if f.height] or [empty_findings()]).sort("time", "id")
    _write_frame(findings, previous)
    findings, incidents = group_incidents(findings)
    return Detection(effective, findings, incidents), warnings


#: A window closes early once it holds this many events (busy servers get shorter windows, down to
#: one hour).
WINDOW_ROWS = 500_000


def time_windows(lo: datetime, hi: datetime, counts: dict[datetime, int], window_days: int,
                 max_rows: int | None = None) -> list[tuple[datetime, datetime]]:
    """Consecutive [start, end) windows of whole UTC hours covering ``lo - 1 day .. hi + 1 day``: at
    most ``window_days`` days and, unless a single hour is bigger, at most ``max_rows`` events each.
    ``counts`` maps an hour (truncated UTC datetime) to its number of events."""
    max_rows = WINDOW_ROWS if max_rows is None else max_rows
    hour = timedelta(hours=1)
    start = datetime.combine(lo.date(), datetime.min.time(), UTC) - timedelta(days=1)
    last = datetime.combine(hi.date(), datetime.min.time(), UTC) + timedelta(days=2)
    limit = timedelta(days=window_days)
    windows, cursor, rows = [], start, 0
    while cursor < last:
        n = counts.get(cursor, 0)
        if cursor > start and (cursor - start >= limit or rows + n > max_rows):
            windows.append((start, cursor))
            start, rows = cursor, 0
        rows, cursor = rows + n, cursor + hour
    windows.append((start, cursor))
    return windows


def detection_windows(out: Path, servers: list[str | None], window_days: int = WINDOW_DAYS
                      ) -> list[tuple[str | None, datetime | None, datetime | None]]:
    """The detection tasks: (server, start, end) for each time window of each server's events (see
    :func:`time_windows`), plus (server, None, None) for a server's events without a time."""
    lazy = scan_events(out)
    assert lazy is not None
    wanted = [s for s in servers if s is not None]
    rows = lazy.filter(pl.col("server").is_in(wanted) | (pl.col("server").is_null() if None in servers
                                                        else pl.lit(False)))
    counts = (rows.group_by("server", pl.col("ts").dt.truncate("1h").alias("hour")).agg(pl.len().alias("n"))
              .collect())
    tasks: list[tuple[str | None, datetime | None, datetime | None]] = []
    for server in servers:
        mine = counts.filter(pl.col("server").eq_missing(pl.lit(server, pl.String)))
        dated = mine.filter(pl.col("hour").is_not_null())
        if dated.height:
            by_hour = dict(dated.select("hour", "n").iter_rows())
            tasks += [(server, start, end) for start, end in
                      time_windows(dated["hour"].min(), dated["hour"].max(), by_hour, window_days)]
        if mine.height > dated.height:
            tasks.append((server, None, None))
    return tasks


def detect_window(out: str, server: str | None, site: SiteProfile, shift: Shift, sha: dict[str, str],
                  start: datetime | None, end: datetime | None, stored: dict[str, str] | None = None
                  ) -> tuple[str, list[str]]:
    """Findings of one server in one window [start, end) from the dataset (``start`` None: its events
    without a time), written to a state file whose path is returned with the warnings of quoting
    evidence lines. ``stored``: input path -> its quotable lines file, relative to ``out``.

    The window's rows come with margins (see ``MARGIN_*``); only findings timed inside it are kept,
    so the windows together give exactly the findings of the whole server at once.
    """
    lazy = scan_events(Path(out), keep_day=True)
    assert lazy is not None
    mine = lazy.filter(pl.col("server").is_null() if server is None else (pl.col("server") == server))
    lines = SourceLines(sha, {path: str(Path(out) / rel) for path, rel in (stored or {}).items()})
    cols = list(DETECT_COLUMNS)
    if start is None or end is None:
        rows, keep = mine.filter(pl.col("ts").is_null()), pl.col("time").is_null()
    else:
        reach = shift_reach(shift) + MARGIN_AFTER_ALL  # the clock shift moves rows across edges
        lo, hi = start - reach - MARGIN_BEFORE, end + MARGIN_AFTER
        fails_from = lo - AUTH_FAILURE_LOOKBACK
        rows = mine.filter((pl.col("day") >= f"{fails_from:%Y-%m-%d}") & (pl.col("day") <= f"{hi:%Y-%m-%d}")
                           & (pl.col("ts") >= fails_from) & (pl.col("ts") < hi)
                           & ((pl.col("ts") >= lo) | FAILED_LOGIN)
                           & ((pl.col("ts") < end + reach) | OUTCOME_ROWS))
        keep = (pl.col("time") >= start) & (pl.col("time") < end)
    events = shift_protocol_times(conform(rows.select(cols).collect()), shift)
    findings = build_findings(events, site.for_server(server), sha, lines.texts).filter(keep)
    label = "undated" if start is None else f"{start:%Y%m%d%H}"
    target = Path(out) / "state" / f"findings-{input_key(server or '')}-{label}.parquet"
    _write_frame(findings, target)
    return str(target), lines.warnings
