"""Incidents: findings grouped by client (IP, else host) and closeness in time.

Findings of one client belong to the same incident while each follows the previous one within
``gap`` (default one hour). An incident summarises first/last seen, counts by verdict and by form,
the victim domains (external effective destinations), the highest severity and the probe tool.
"""

from __future__ import annotations

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
    ordered = f.sort("time", "id").with_row_index("_pos")
    groups = ordered.group_by("incident", maintain_order=True).agg(
        pl.col("time").min().alias("first_seen"), pl.col("time").max().alias("last_seen"),
        pl.col("client_host").filter(pl.col("client_host").is_not_null()
                                     & (pl.col("client_host").str.to_lowercase() != "unknown"))
        .first().alias("client_host"),
        pl.col("client_ip").drop_nulls().first().alias("client_ip"),
        pl.len().cast(pl.Int64).alias("findings"),
        pl.col("severity").replace_strict(ranks, return_dtype=pl.Int64).max().alias("severity_rank"),
        pl.col("probe").drop_nulls().mode().sort().first().alias("probe"),
        victim.drop_nulls().unique().sort().alias("victim_domains"),
    )
    verdicts = _counts(ordered, "verdict", by_name=True).rename({"json": "verdicts", "words": "verdict_words"})
    forms = _counts(ordered, "form", by_name=False).rename({"json": "forms", "words": "form_words"})
    groups = groups.join(verdicts, on="incident", how="left").join(forms, on="incident", how="left")
    who = pl.coalesce(pl.col("client_host"), pl.col("client_ip"), pl.lit("unknown client"))
    n_victims = pl.col("victim_domains").list.len()
    summary = (pl.format("{}: {} suspicious recipient(s) ({}) using {}", who, pl.col("findings"),
                         pl.col("verdict_words"), pl.col("form_words"))
               + pl.when(n_victims > 0).then(pl.format(", to {} outside domain(s)", n_victims)).otherwise(pl.lit(""))
               + pl.when(pl.col("probe").is_not_null()).then(pl.format("; looks like a {} relay probe",
                                                                        pl.col("probe"))).otherwise(pl.lit(""))
               + pl.lit("."))
    incidents = groups.select(
        pl.col("incident").alias("id"), "first_seen", "last_seen", "client_host", "client_ip", "findings",
        "verdicts", "forms",
        pl.col("severity_rank").replace_strict(dict(enumerate(SEVERITIES)), return_dtype=pl.String)
        .alias("severity"),
        "probe", "victim_domains", summary.alias("summary"),
    ).cast(INCIDENT_SCHEMA).sort("first_seen", "id")
    return f.drop("client_key", "grp").sort("time", "id"), incidents


def _counts(ordered: pl.DataFrame, column: str, *, by_name: bool) -> pl.DataFrame:
    """Per incident: ``json`` = {value: count} sorted by value, and ``words`` = "N value, ..." (by value
    when ``by_name``, else "value xN, ..." most common first, ties in order of first appearance)."""
    counts = ordered.group_by("incident", column).agg(pl.len().alias("n"), pl.col("_pos").min().alias("first"))
    json_part = counts.sort("incident", column).group_by("incident", maintain_order=True).agg(
        pl.format('"{}": {}', pl.col(column), pl.col("n")).str.join(", ").alias("json"),
        pl.format("{} {}", pl.col("n"), pl.col(column)).str.join(", ").alias("by_name"))
    common = counts.sort("incident", pl.col("n"), "first", descending=[False, True, False]).group_by(
        "incident", maintain_order=True).agg(pl.format("{} x{}", pl.col(column), pl.col("n")).str.join(", ")
                                             .alias("common"))
    out = json_part.join(common, on="incident").with_columns((pl.lit("{") + pl.col("json") + pl.lit("}")).alias("json"))
    return out.select("incident", "json", pl.col("by_name" if by_name else "common").alias("words"))


__all__ = ["DEFAULT_GAP", "INCIDENT_SCHEMA", "SEVERITIES", "group_incidents"]
