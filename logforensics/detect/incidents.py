"""Incidents: findings grouped by client (IP, else host) and closeness in time.

Findings of one client belong to the same incident while each follows the previous one within
``gap`` (default one hour). An incident summarises first/last seen, counts by verdict and by form,
the victim domains (external effective destinations not refused), the highest severity and the probe tool.
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
    # Grouping runs on the key columns alone; the findings (with their evidence) are sorted once, below.
    keys = findings.select(
        pl.coalesce(pl.col("client_ip"), pl.col("client_host").str.to_lowercase(), pl.lit("(unknown)"))
        .alias("client_key"), "time",
    ).with_row_index("_row").sort("client_key", "time")
    keys = keys.with_columns(
        ((pl.col("time").diff().over("client_key") > pl.duration(seconds=gap.total_seconds()))
         .fill_null(True)).cum_sum().alias("grp"),
    )
    order = keys.group_by("grp").agg(pl.col("time").min().alias("start")).sort("start", "grp")
    # ``_inc`` numbers the incidents 0, 1, ... in id order: the groupings below run on it, not on the text ids.
    order = order.select("grp", pl.int_range(pl.len(), dtype=pl.Int64).alias("_inc"))
    keys = keys.select("_row", pl.col("grp").replace_strict(order["grp"], order["_inc"], return_dtype=pl.Int64)
                       .alias("_inc")).sort("_row")
    incident = pl.lit("INC-") + (pl.col("_inc") + 1).cast(pl.String).str.zfill(4)
    f = findings.with_columns(keys["_inc"]).with_columns(incident.alias("incident"))
    ranks = {name: severity_rank(name) for name in SEVERITIES}
    # Victims: outside domains the server accepted mail for (a refused recipient got nothing).
    victim = pl.when(pl.col("external") & (pl.col("verdict") != "refused")
                     & pl.col("effective_recipient").str.contains("@")).then(
        pl.col("effective_recipient").str.split("@").list.last().str.to_lowercase())
    ordered = f.sort("time", "id").with_row_index("_pos")
    # Per-row values first, so that every aggregation below is a plain first/min/max/len.
    known_host = pl.col("client_host").is_not_null() & (pl.col("client_host").str.to_lowercase() != "unknown")
    rows = ordered.select(
        "_inc", "incident", "time", pl.when(known_host).then(pl.col("client_host")).alias("client_host"),
        "client_ip", pl.col("severity").replace_strict(ranks, return_dtype=pl.Int64).alias("severity_rank"))
    groups = rows.group_by("_inc", maintain_order=True).agg(
        pl.col("incident").first(),
        pl.col("time").min().alias("first_seen"), pl.col("time").max().alias("last_seen"),
        pl.col("client_host").first(ignore_nulls=True).alias("client_host"),
        pl.col("client_ip").first(ignore_nulls=True).alias("client_ip"),
        pl.len().cast(pl.Int64).alias("findings"),
        pl.col("severity_rank").max().alias("severity_rank"),
    )
    # The most common probe tool (ties: the first by name), and the sorted distinct victim domains.
    probes = (ordered.filter(pl.col("probe").is_not_null()).group_by("_inc", "probe").agg(pl.len().alias("n"))
              .sort("_inc", "n", "probe", descending=[False, True, False])
              .unique("_inc", keep="first", maintain_order=True).select("_inc", "probe"))
    victims = (ordered.select("_inc", victim.alias("victim")).drop_nulls().unique().sort("_inc", "victim")
               .group_by("_inc", maintain_order=True).agg(pl.col("victim").alias("victim_domains")))
    groups = groups.join(probes, on="_inc", how="left").join(victims, on="_inc", how="left").with_columns(
        pl.col("victim_domains").fill_null(pl.lit([], pl.List(pl.String))))
    verdicts = _counts(ordered, "verdict", by_name=True).rename({"json": "verdicts", "words": "verdict_words"})
    forms = _counts(ordered, "form", by_name=False).rename({"json": "forms", "words": "form_words"})
    groups = groups.join(verdicts, on="_inc", how="left").join(forms, on="_inc", how="left")
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
    return ordered.drop("_pos", "_inc"), incidents


def _counts(ordered: pl.DataFrame, column: str, *, by_name: bool) -> pl.DataFrame:
    """Per incident: ``json`` = {value: count} sorted by value, and ``words`` = "N value, ..." (by value
    when ``by_name``, else "value xN, ..." most common first, ties in order of first appearance)."""
    counts = ordered.group_by("_inc", column).agg(pl.len().alias("n"), pl.col("_pos").min().alias("first"))
    # Each text piece is formatted on whole columns; the groups only collect them (joined as lists).
    json_part = counts.sort("_inc", column).select(
        "_inc", pl.format('"{}": {}', pl.col(column), pl.col("n")).alias("json"),
        pl.format("{} {}", pl.col("n"), pl.col(column)).alias("by_name"),
    ).group_by("_inc", maintain_order=True).agg("json", "by_name").with_columns(
        pl.col("json").list.join(", "), pl.col("by_name").list.join(", "))
    common = counts.sort("_inc", pl.col("n"), "first", descending=[False, True, False]).select(
        "_inc", pl.format("{} x{}", pl.col(column), pl.col("n")).alias("common"),
    ).group_by("_inc", maintain_order=True).agg("common").with_columns(pl.col("common").list.join(", "))
    out = json_part.join(common, on="_inc").with_columns((pl.lit("{") + pl.col("json") + pl.lit("}")).alias("json"))
    return out.select("_inc", "json", pl.col("by_name" if by_name else "common").alias("words"))


__all__ = ["DEFAULT_GAP", "INCIDENT_SCHEMA", "SEVERITIES", "group_incidents"]
