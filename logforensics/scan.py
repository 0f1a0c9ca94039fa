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
        incidents = []
        for i in self.incidents.iter_rows(named=True):
            incidents.append({**i, "first_seen": _iso(i["first_seen"]), "last_seen": _iso(i["last_seen"]),
                              "verdicts": json.loads(i["verdicts"]), "forms": json.loads(i["forms"])})
        return {
            "tool": TOOL_NAME, "version": __version__, "generated": _iso(datetime.now(UTC)),
            "site": site, "inputs": [r.to_dict() for r in self.inputs],
            "findings": findings, "incidents": incidents,
        }


def _iso(ts: datetime | None) -> str | None:
    if ts is None:
        return None
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + (f".{ts.microsecond:06d}" if ts.microsecond else "") + "Z"


def scan(paths: list[str | Path], site: SiteProfile, *, since: datetime | None = None,
         until: datetime | None = None, min_severity: str = "info", year: int | None = None) -> ScanResult:
    """Run the whole analysis on these paths (``year``: see :func:`ingest`)."""
    ingested = ingest(paths, site, keep_lines=True, year=year)
    sha = {r.path: r.sha256 for r in ingested.inputs}
    found, events = detect(ingested.events, site, sha, ingested.line_text)
    found = select(found, since=since, until=until, min_severity=min_severity)
    return ScanResult(found.site, ingested.inputs, events, found.findings, found.incidents)
