"""Rendering a scan: a terminal table, the JSON document, or CSV/Parquet finding tables."""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl

from logforensics.output import neutralise_csv
from logforensics.scan import ScanResult

SCAN_FORMATS = ("table", "json", "csv", "parquet")


def findings_flat(result: ScanResult) -> pl.DataFrame:
    """Findings with evidence as a list of ``path:line`` strings (CSV and Parquet)."""
    f = result.findings
    return f.with_columns(
        pl.col("evidence").list.eval(
            pl.element().struct.field("path") + pl.lit(":") + pl.element().struct.field("line").cast(pl.String)
        ).alias("evidence"),
    )


def table(result: ScanResult) -> str:
    """A readable summary for a terminal."""
    lines = []
    inferred = result.site.inferred
    if inferred:
        lines.append("Inferred site facts (no profile value given):")
        for key, why in inferred.items():
            lines.append(f"  {key} = {result.site.inferred_value(key)!r}: {why}")
        lines.append("")
    if result.incidents.is_empty():
        lines.append("No findings.")
        return "\n".join(lines)
    lines.append(f"{result.findings.height} findings in {result.incidents.height} incidents")
    by_incident = result.findings.partition_by("incident", as_dict=True)
    for inc in result.incidents.iter_rows(named=True):
        lines.append(f"\n{inc['id']}  {inc['severity'].upper():8}  {inc['first_seen']:%Y-%m-%d %H:%M:%S} .. "
                     f"{inc['last_seen']:%Y-%m-%d %H:%M:%S} UTC")
        lines.append(f"  {inc['summary']}")
        part = by_incident.get((inc["id"],))
        for f in part.iter_rows(named=True) if part is not None else []:
            ev = f["evidence"][0] if f["evidence"] else None
            where = f"{Path(ev['path']).name}:{ev['line']}" if ev else ""
            lines.append(f"  {f['severity']:8} {f['verdict']:9} {f['form']:18} {f['recipient']}"
                         f"  -> {f['effective_recipient']}  [{where}]")
    return "\n".join(lines)


def write_scan(result: ScanResult, fmt: str, output: Path | None) -> None:
    """Write the scan in ``fmt`` to ``output`` (or stdout)."""
    if fmt == "table":
        text = table(result) + "\n"
    elif fmt == "json":
        text = result.document_json()
    elif fmt == "csv":
        text = neutralise_csv(findings_flat(result)).write_csv()
    else:
        assert output is not None
        output.parent.mkdir(parents=True, exist_ok=True)
        findings_flat(result).write_parquet(output)
        return
    if output is None:
        sys.stdout.write(text)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
