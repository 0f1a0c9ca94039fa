"""The command line: thin commands over ingest, classify, detect and report.

User errors print one line and exit 2; no traceback (and never local variables, since evidence
may be sensitive).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from logforensics import __version__
from logforensics.errors import LogForensicsError
from logforensics.ingest import InputReport, ingest
from logforensics.output import write_frame
from logforensics.readers import READERS
from logforensics.site import SiteProfile, load_site_profile

app = typer.Typer(
    name="logforensics",
    help="Forensic analysis of historical mail-relay abuse in archived SMTP logs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

SiteOption = Annotated[Path | None, typer.Option("--site", help="Site profile (TOML).", dir_okay=False)]
PathsArg = Annotated[list[Path], typer.Argument(help="Log files or folders (searched recursively).")]


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
) -> None:
    """Read logs into the common event schema and write the events."""
    profile = _site(site)
    result = ingest(list(paths), profile)
    write_frame(result.events, output)
    _print_inputs(result.inputs)
    print(f"{result.events.height} events from {len(result.inputs)} inputs written to {output}",
          file=sys.stderr)


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
