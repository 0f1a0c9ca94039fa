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
    ranks = {name: severity_rank(name) for name in SEVERITIES}
    victim = pl.when(pl.col("external") & pl.col("effective_recipient").str.contains("@")).then(
        pl.col("effective_recipient").str.split("@").list.last().str.to_lowercase())
    groups = f.sort("time", "id").group_by("incident", maintain_order=True).agg(
        pl.col("time").min().alias("first_seen"), pl.col("time").max().alias("last_seen"),
        pl.col("client_host").filter(pl.col("client_host").is_not_null()
                                     & (pl.col("client_host").str.to_lowercase() != "unknown"))
        .first().alias("client_host"),
        pl.col("client_ip").drop_nulls().first().alias("client_ip"),
        pl.len().cast(pl.Int64).alias("findings"),
        pl.col("verdict").alias("verdict_list"), pl.col("form").alias("form_list"),
        pl.col("severity").replace_strict(ranks, return_dtype=pl.Int64).max().alias("severity_rank"),
        pl.col("probe").drop_nulls().alias("probes"),
        victim.drop_nulls().unique().sort().alias("victim_domains"),
    )
    rows = [_incident(r) for r in groups.iter_rows(named=True)]
    incidents = pl.DataFrame(rows, schema=INCIDENT_SCHEMA, orient="row").sort("first_seen", "id")
    return f.drop("client_key", "grp").sort("time", "id"), incidents


def _incident(g: dict) -> tuple:
    """One incident's row from its aggregated lists: counts as JSON, the probe tool, a summary."""
    verdicts = Counter(g["verdict_list"])
    forms = Counter(g["form_list"])
    probes = Counter(g["probes"])
    probe = max(sorted(probes), key=lambda p: probes[p]) if probes else None
    victims = g["victim_domains"]
    host, ip = g["client_host"], g["client_ip"]
    parts = [f"{n} {v}" for v, n in sorted(verdicts.items())]
    trick = ", ".join(f"{k} x{n}" for k, n in forms.most_common())
    summary = (f"{host or ip or 'unknown client'}: {g['findings']} suspicious recipient(s) "
               f"({', '.join(parts)}) using {trick}"
               + (f", to {len(victims)} outside domain(s)" if victims else "")
               + (f"; looks like a {probe} relay probe" if probe else "") + ".")
    return (g["incident"], g["first_seen"], g["last_seen"], host, ip, g["findings"],
            json.dumps(dict(sorted(verdicts.items()))), json.dumps(dict(sorted(forms.items()))),
            SEVERITIES[g["severity_rank"]], probe, victims, summary)


__all__ = ["DEFAULT_GAP", "INCIDENT_SCHEMA", "SEVERITIES", "group_incidents"]
