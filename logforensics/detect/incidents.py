"""Incidents: findings grouped by client (IP, else host) and closeness in time.

Findings of one client belong to the same incident while each follows the previous one within
``gap`` (default one hour). An incident summarises first/last seen, counts by verdict and by form,
the victim domains (external effective destinations), the highest severity and the probe tool.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta

import polars as pl

from logforensics.detect.rules import SEVERITIES, severity_rank

DEFAULT_GAP = timedelta(hours=1)

INCIDENT_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.String, "first_seen": pl.Datetime("us", "UTC"), "last_seen": pl.Datetime("us", "UTC"),
    "client_host": pl.String, "client_ip": pl.String, "findings": pl.Int64,
    "verdicts": pl.String, "forms": pl.String, "severity": pl.String, "probe": pl.String,
    "victim_domains": pl.List(pl.String), "summary": pl.String,
}


def group_incidents(findings: pl.DataFrame, gap: timedelta = DEFAULT_GAP) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Assign ``incident`` ids to findings and build the incidents table.

    ``verdicts`` and ``forms`` are JSON objects (name -> count) kept as strings in the frame.
    """
    if findings.is_empty():
        return findings.with_columns(pl.lit(None, pl.String).alias("incident")), pl.DataFrame(schema=INCIDENT_SCHEMA)
    f = findings.with_columns(
        pl.coalesce(pl.col("client_ip"), pl.col("client_host").str.to_lowercase(), pl.lit("(unknown)"))
        .alias("client_key"),
    ).sort("client_key", "time")
    f = f.with_columns(
        ((pl.col("time").diff().over("client_key") > pl.duration(seconds=gap.total_seconds()))
         .fill_null(True)).cum_sum().alias("grp"),
    )
    order = f.group_by("grp").agg(pl.col("time").min().alias("start")).sort("start", "grp")
    ids = {g: f"INC-{i + 1:04d}" for i, g in enumerate(order["grp"].to_list())}
    f = f.with_columns(pl.col("grp").replace_strict(ids, return_dtype=pl.String).alias("incident"))
    parts = f.partition_by("incident", as_dict=True)
    rows = [_incident(inc_id, parts[(inc_id,)]) for inc_id in ids.values()]
    incidents = pl.DataFrame(rows, schema=INCIDENT_SCHEMA, orient="row").sort("first_seen")
    return f.drop("client_key", "grp").sort("time", "id"), incidents


def _incident(inc_id: str, part: pl.DataFrame) -> tuple:
    verdicts = Counter(part["verdict"].to_list())
    forms = Counter(part["form"].to_list())
    severity = max(part["severity"].to_list(), key=severity_rank)
    probes = Counter(p for p in part["probe"].to_list() if p)
    probe = probes.most_common(1)[0][0] if probes else None
    victims = sorted({(r or "").rsplit("@", 1)[-1].lower()
                      for r, ext in zip(part["effective_recipient"].to_list(), part["external"].to_list(),
                                        strict=True)
                      if r and ext and "@" in r})
    host = next((h for h in part["client_host"].to_list() if h and h.lower() != "unknown"), None)
    ip = next((i for i in part["client_ip"].to_list() if i), None)
    first, last = part["time"].min(), part["time"].max()
    parts = [f"{n} {v}" for v, n in sorted(verdicts.items())]
    trick = ", ".join(f"{k} x{n}" for k, n in forms.most_common())
    summary = (f"{host or ip or 'unknown client'}: {part.height} suspicious recipient(s) "
               f"({', '.join(parts)}) using {trick}"
               + (f", to {len(victims)} outside domain(s)" if victims else "")
               + (f"; looks like a {probe} relay probe" if probe else "") + ".")
    return (inc_id, first, last, host, ip, part.height, json.dumps(dict(sorted(verdicts.items()))),
            json.dumps(dict(sorted(forms.items()))), severity, probe, victims, summary)


__all__ = ["DEFAULT_GAP", "INCIDENT_SCHEMA", "SEVERITIES", "group_incidents"]
