"""The scan job: ingest -> infer the site -> findings -> incidents -> one result document."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from logforensics import TOOL_NAME, __version__
from logforensics.detect.pipeline import detect, select
from logforensics.ingest import InputReport, ingest
from logforensics.site import SiteProfile


@dataclass
class ScanResult:
    site: SiteProfile
    inputs: list[InputReport]
    events: pl.DataFrame
    findings: pl.DataFrame
    incidents: pl.DataFrame

    def document(self) -> dict:
        """The JSON document (README "scan output")."""
        site = self.site.to_dict()
        findings = []
        for f in self.findings.iter_rows(named=True):
            findings.append({
                "id": f["id"], "rule": f["rule"], "form": f["form"], "verdict": f["verdict"],
                "severity": f["severity"], "time": _iso(f["time"]), "server": f["server"],
                "client_host": f["client_host"], "client_ip": f["client_ip"],
                "authenticated": f["authenticated"], "auth_user": f["auth_user"], "sender": f["sender"], "recipient": f["recipient"],
                "effective_recipient": f["effective_recipient"], "external": f["external"],
                "explanation": f["explanation"], "probe": f["probe"], "incident": f["incident"],
                "evidence": f["evidence"],
            })
        incidents = self._incident_dicts()
        return {
            "tool": TOOL_NAME, "version": __version__, "generated": _iso(datetime.now(UTC)),
            "site": site, "inputs": [r.to_dict() for r in self.inputs],
            "findings": findings, "incidents": incidents,
        }


    def _incident_dicts(self) -> list[dict]:
        return [{**i, "first_seen": _iso(i["first_seen"]), "last_seen": _iso(i["last_seen"]),
                 "verdicts": json.loads(i["verdicts"]), "forms": json.loads(i["forms"])}
                for i in self.incidents.iter_rows(named=True)]

    def document_json(self) -> str:
        """:meth:`document` as JSON text, fast for many findings: one finding per line.

        The findings and incidents are serialised by Polars (valid UTF-8 JSON; every string from a
        log is escaped by the JSON writer); the rest of the document by :mod:`json`.
        """
        head = self.document_head()
        findings = self.findings.select(
            "id", "rule", "form", "verdict", "severity", _iso_expr("time"), "server", "client_host", "client_ip",
            "authenticated", "auth_user", "sender", "recipient", "effective_recipient", "external", "explanation",
            "probe", "incident", "evidence")
        incidents = ",\n".join("    " + json.dumps(i, ensure_ascii=False) for i in self._incident_dicts())
        parts = [json.dumps(head, indent=2, ensure_ascii=False)[:-2]]
        parts.append(',\n  "findings": [\n' + _ndjson_rows(findings) + "\n  ]")
        parts.append(',\n  "incidents": [\n' + incidents + "\n  ]\n}\n")
        return "".join(parts)

    def document_head(self) -> dict:
        return {"tool": TOOL_NAME, "version": __version__, "generated": _iso(datetime.now(UTC)),
                "site": self.site.to_dict(), "inputs": [r.to_dict() for r in self.inputs]}


def _iso_expr(col: str) -> pl.Expr:
    """A UTC datetime column as ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z`` (like :func:`_iso`)."""
    c = pl.col(col)
    return (pl.when(c.dt.microsecond() == 0).then(c.dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
            .otherwise(c.dt.strftime("%Y-%m-%dT%H:%M:%S.%6fZ")).alias(col))


def _ndjson_rows(frame: pl.DataFrame) -> str:
    if frame.is_empty():
        return ""
    text = frame.write_ndjson()
    return ",\n".join("    " + line for line in text.splitlines())


def _iso(ts: datetime | None) -> str | None:
    if ts is None:
        return None
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + (f".{ts.microsecond:06d}" if ts.microsecond else "") + "Z"


def scan(paths: list[str | Path], site: SiteProfile, *, since: datetime | None = None,
         until: datetime | None = None, min_severity: str = "info", year: int | None = None) -> ScanResult:
    """Run the whole analysis on these paths (``year``: see :func:`ingest`)."""
    ingested = ingest(paths, site, keep_lines=True, year=year)
    sha = {r.path: r.sha256 for r in ingested.inputs}
    found, events = detect(ingested.events, site, sha, ingested.line_texts)
    found = select(found, since=since, until=until, min_severity=min_severity)
    return ScanResult(found.site, ingested.inputs, events, found.findings, found.incidents)
