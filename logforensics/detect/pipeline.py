"""The detection pipeline shared by ``scan`` and ``batch``: infer the site, find, group, select."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from logforensics.detect.findings import LineTexts, build_findings_by_server
from logforensics.detect.incidents import group_incidents
from logforensics.detect.infer import infer_profile, shift_by_server
from logforensics.detect.rules import SEVERITIES, severity_rank
from logforensics.site import SiteProfile


@dataclass
class Detection:
    site: SiteProfile
    findings: pl.DataFrame
    incidents: pl.DataFrame


def detect(events: pl.DataFrame, site: SiteProfile, sha256: dict[str, str], line_texts: LineTexts
           ) -> tuple[Detection, pl.DataFrame]:
    """All findings and incidents; also returns the events with inferred clock offsets applied."""
    effective, shifts = infer_profile(events, site)
    events = shift_by_server(events, shifts)
    findings = build_findings_by_server(events, effective, sha256, line_texts)
    findings, incidents = group_incidents(findings)
    return Detection(effective, findings, incidents), events


def select(detection: Detection, *, since: datetime | None = None, until: datetime | None = None,
           min_severity: str = "info") -> Detection:
    """Only the findings in the time window and at or above the severity; incidents that keep one."""
    findings, incidents = detection.findings, detection.incidents
    if since is not None:
        findings = findings.filter(pl.col("time") >= since)
    if until is not None:
        findings = findings.filter(pl.col("time") <= until)
    floor = severity_rank(min_severity)
    ranks = {name: severity_rank(name) for name in SEVERITIES}
    findings = findings.filter(pl.col("severity").replace_strict(ranks, return_dtype=pl.Int64) >= floor)
    if since is not None or until is not None or floor:
        incidents = incidents.filter(pl.col("id").is_in(findings["incident"].unique().implode()))
    return Detection(detection.site, findings, incidents)
