"""The command line: thin commands over ingest, classify, detect and report.

User errors print one line and exit 2; no traceback (and never local variables, since evidence
may be sensitive).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from logforensics import __version__
from logforensics.classify import classify_address
from logforensics.detect.rules import SEVERITIES, severity_rank
from logforensics.errors import LogForensicsError
from logforensics.ingest import InputReport, ingest
from logforensics.output import write_frame
from logforensics.readers import READERS
from logforensics.scan import scan as run_scan
from logforensics.scan_output import SCAN_FORMATS, write_scan
from logforensics.site import SiteProfile, load_site_profile, site_profile_from_dict

app = typer.Typer(
    name="logforensics",
    help="Forensic analysis of historical mail-relay abuse in archived SMTP logs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

SiteOption = Annotated[Path | None, typer.Option("--site", help="Site profile (TOML).", dir_okay=False)]
PathsArg = Annotated[list[Path], typer.Argument(help="Log files or folders (searched recursively).")]
StrictOption = Annotated[bool, typer.Option(
    "--strict", help="Exit with code 4 (after writing the output) when any input has warnings, skipped "
                     "lines or a status other than ok (unreadable, empty, unrecognised, ...).")]
YearOption = Annotated[int | None, typer.Option(
    "--year", min=1970, max=2100,
    help="Year of the first line of the oldest file of each syslog log rotation, whose stamps carry none; "
         "each newer file continues from the one before it, Dec -> Jan advances it (default: inferred "
         "from rotation order and the file's modification time).")]


def _strict(inputs: list[InputReport] | list[dict], extra: list[str] | None = None) -> None:
    """``--strict``: exit 4 when the run read anything less than cleanly; say why on stderr."""
    rows = [i if isinstance(i, dict) else i.to_dict() for i in inputs]
    bad = [r for r in rows if r.get("warnings") or r.get("skipped_lines") or r.get("status") != "ok"]
    if not bad and not extra:
        return
    first = bad[0] if bad else None
    why = (f"{first['path']}: status {first.get('status')}, {first.get('skipped_lines') or 0} skipped lines, "
           f"{len(first.get('warnings') or [])} warnings" if first else (extra or [""])[0])
    print(f"error: --strict: {len(bad)} input(s) with warnings, skipped lines or a non-ok status"
          + (f", {len(extra)} run warning(s)" if extra else "") + f" (first: {why})", file=sys.stderr)
    raise typer.Exit(4)


def _site(path: Path | None) -> SiteProfile:
    return load_site_profile(path) if path else SiteProfile()


def _print_inputs(reports: list[InputReport]) -> None:
    """A per-file summary on stderr: format, events, skipped lines, warnings."""
    err = sys.stderr
    width = max((len(r.path) for r in reports), default=10)
    print(f"{'file':<{width}}  {'format':<16} {'events':>7} {'skipped':>7}  warnings", file=err)
    for r in reports:
        print(f"{r.path:<{width}}  {r.format or '-':<16} {r.events:>7} {r.skipped_lines:>7}  "
              f"{len(r.warnings)}", file=err)
    for r in reports:
        for w in r.warnings:
            print(f"warning: {w}", file=err)


@app.command()
def parse(
    paths: PathsArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="Events file: .parquet, .csv or .jsonl.")],
    site: SiteOption = None,
    year: YearOption = None,
    strict: StrictOption = False,
) -> None:
    """Read logs into the common event schema and write the events.

    Exit codes: 0 done; 2 user error (missing file, bad site profile); 4 --strict and an input was
    not read cleanly.
    """
    profile = _site(site)
    result = ingest(list(paths), profile, year=year)
    write_frame(result.events, output)
    _print_inputs(result.inputs)
    print(f"{result.events.height} events from {len(result.inputs)} inputs written to {output}",
          file=sys.stderr)
    if strict:
        _strict(result.inputs)


def _when(text: str | None, option: str) -> datetime | None:
    """An ISO 8601 date or date-time; naive values are UTC."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise LogForensicsError(f"{option} {text!r} is not an ISO 8601 date or date-time "
                                "(e.g. 2000-06-15 or 2000-06-15T04:47:00Z)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _severity(text: str | None, option: str) -> str | None:
    if text is not None and text not in SEVERITIES:
        raise LogForensicsError(f"{option} must be one of {', '.join(SEVERITIES)}")
    return text


@app.command()
def scan(
    paths: PathsArg,
    site: SiteOption = None,
    fmt: Annotated[str | None, typer.Option("--format", help="table, json, csv or parquet "
                                            "(default: table on a terminal, else json).")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")] = None,
    since: Annotated[str | None, typer.Option(help="Only findings at or after this UTC time.")] = None,
    until: Annotated[str | None, typer.Option(help="Only findings at or before this UTC time.")] = None,
    min_severity: Annotated[str, typer.Option(help="Hide findings below this severity.")] = "info",
    fail_on: Annotated[str | None, typer.Option(help="Exit 3 when a finding at or above this "
                                                "severity exists.")] = None,
    year: YearOption = None,
    strict: StrictOption = False,
) -> None:
    """Find relay abuse: classify every inbound recipient, decide verdicts, group incidents.

    Exit codes: 0 done; 2 user error; 3 --fail-on matched; 4 --strict and an input was not read
    cleanly (checked first).
    """
    _severity(min_severity, "--min-severity")
    _severity(fail_on, "--fail-on")
    fmt = fmt or ("table" if output is None and sys.stdout.isatty() else "json")
    if fmt not in SCAN_FORMATS:
        raise LogForensicsError(f"--format must be one of {', '.join(SCAN_FORMATS)}")
    if fmt == "parquet" and output is None:
        raise LogForensicsError("--format parquet needs --output FILE")
    result = run_scan(list(paths), _site(site), since=_when(since, "--since"), until=_when(until, "--until"),
                      min_severity=min_severity, year=year)
    _print_inputs(result.inputs)
    write_scan(result, fmt, output)
    if strict:
        _strict(result.inputs)
    if fail_on and result.findings.height and any(
            severity_rank(s) >= severity_rank(fail_on) for s in result.findings["severity"].to_list()):
        raise typer.Exit(3)


@app.command()
def batch(
    paths: PathsArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder (Parquet dataset, findings, "
                                         "incidents, manifest.json); a rerun resumes it.")],
    site: SiteOption = None,
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", min=1, help="Worker processes "
                                             "(default: all cores).")] = None,
    since: Annotated[str | None, typer.Option(help="Only findings at or after this UTC time.")] = None,
    until: Annotated[str | None, typer.Option(help="Only findings at or before this UTC time.")] = None,
    min_severity: Annotated[str, typer.Option(help="Keep findings at or above this severity.")] = "info",
    year: YearOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
    strict: StrictOption = False,
    scheduler: Annotated[str | None, typer.Option("--scheduler", help="Run the parsing on a Dask cluster: "
                                                  "a scheduler address (tcp://host:8786), or 'local' for a "
                                                  "LocalCluster of --jobs workers. Needs logforensics[dask]; "
                                                  "inputs and --output must be at the same path on every "
                                                  "worker.")] = None,
) -> None:
    """Process archived log trees (compressed, nested, many servers) into a resumable Parquet dataset.

    Exit codes: 0 done; 2 user error; 4 --strict and an input was not read cleanly.
    """
    from logforensics.batch import batch as run_batch

    _severity(min_severity, "--min-severity")
    result = run_batch(list(paths), _site(site), output, jobs=jobs, year=year, since=_when(since, "--since"),
                       until=_when(until, "--until"), min_severity=min_severity, show_progress=not quiet,
                       scheduler=scheduler)
    statuses = Counter(i.get("status") for i in result.inputs)
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"{result.processed} file(s) parsed, {result.skipped} already done; {len(result.inputs)} inputs ("
          + ", ".join(f"{n} {s}" for s, n in sorted(statuses.items())) + "); "
          f"{result.detection.findings.height} findings in "
          f"{result.detection.incidents.height} incidents -> {result.output}", file=sys.stderr)
    if strict:
        _strict(result.inputs, result.warnings)


@app.command()
def report(
    paths: Annotated[list[Path] | None, typer.Argument(help="Log files or folders (searched recursively).")] = None,
    site: SiteOption = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="HTML file to write (a folder gets "
                                                "report.html; default reports/report.html).")] = None,
    from_batch: Annotated[Path | None, typer.Option("--from-batch", help="Report on a batch output folder "
                                                    "instead of scanning PATHs.", file_okay=False)] = None,
    year: YearOption = None,
    strict: StrictOption = False,
) -> None:
    """Write the management report: one self-contained, offline HTML file with summary and dashboards.

    Exit codes: 0 done; 2 user error; 4 --strict and an input (of the scan) was not read cleanly.
    """
    from logforensics.report import from_batch as report_from_batch
    from logforensics.report import from_scan as report_from_scan
    from logforensics.report import write_report

    if from_batch is not None and paths:
        raise LogForensicsError("give either PATHs to scan or --from-batch DIR, not both")
    if from_batch is not None:
        data = report_from_batch(from_batch)
    elif paths:
        result = run_scan(list(paths), _site(site), year=year)
        _print_inputs(result.inputs)
        data = report_from_scan(result, list(paths))
        strict_inputs: list[InputReport] = result.inputs
    else:
        raise LogForensicsError("give the log files or folders to report on, or --from-batch DIR")
    written = write_report(data, output)
    print(f"report on {data.findings.height} findings in {data.incidents.height} incidents written to "
          f"{written}", file=sys.stderr)
    if strict and paths:
        _strict(strict_inputs)


@app.command()
def classify(
    addresses: Annotated[list[str], typer.Argument(help="Addresses exactly as logged.")],
    site: SiteOption = None,
    local_domain: Annotated[list[str] | None, typer.Option(help="A local domain (repeatable).")] = None,
    server_name: Annotated[list[str] | None, typer.Option(help="The server's own name (repeatable).")] = None,
    server_ip: Annotated[list[str] | None, typer.Option(help="The server's own IP (repeatable).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Explain addresses: relay form, where the mail would really go, and whether that is outside."""
    if fmt not in ("table", "json"):
        raise LogForensicsError("--format must be table or json")
    profile = _site(site)
    if local_domain or server_name or server_ip:
        profile = site_profile_from_dict({
            "local_domains": [*profile.local_domains, *(local_domain or [])],
            "server_names": [*profile.server_names, *(server_name or [])],
            "server_ips": [*profile.server_ips, *(server_ip or [])],
        }, source="command line")
    results = [classify_address(a, profile.locality()) for a in addresses]
    if fmt == "json":
        print(json.dumps([r.to_json() for r in results], indent=2, ensure_ascii=False))
        return
    for r in results:
        print(f"{r.address}\n  form: {r.form}\n  goes to: {r.effective_recipient}"
              f" ({'external' if r.external else 'local'})\n  {r.explanation}")


@app.command()
def verify(
    result: Annotated[Path, typer.Argument(help="A scan JSON document, or a batch output folder or its "
                                           "manifest.json.")],
    root: Annotated[Path | None, typer.Option("--root", help="Folder that relative input paths are "
                                              "taken from (default: the current folder).",
                                              file_okay=False)] = None,
    fmt: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Re-hash the inputs of an earlier run and report any change: ok, changed, missing, unreadable.

    Exit codes: 0 every input is unchanged; 1 any input changed, is missing or cannot be read;
    2 user error (RESULT is not a scan document or batch manifest).
    """
    from logforensics.verify import PASSING, render_table
    from logforensics.verify import verify as run_verify

    if fmt not in ("table", "json"):
        raise LogForensicsError("--format must be table or json")
    checks = run_verify(result, root)
    if fmt == "json":
        print(json.dumps([c.to_dict() for c in checks], indent=2, ensure_ascii=False))
    else:
        print(render_table(checks))
    if any(c.status not in PASSING for c in checks):
        raise typer.Exit(1)


@app.command()
def formats() -> None:
    """List the supported log formats."""
    for name, reader in READERS.items():
        print(f"{name:<18} {reader.description}")


@app.command()
def version() -> None:
    """Print the version."""
    print(f"logforensics {__version__}")


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2 (usage errors too)."""
    try:
        app()
    except LogForensicsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except BrokenPipeError:  # output piped into head, less, ...
        sys.stderr.close()
        sys.exit(1)
    except OSError as exc:  # an output that cannot be written (a folder, no permission, disk full)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        sys.exit(2)
