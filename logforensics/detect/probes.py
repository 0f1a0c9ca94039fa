"""Relay-tester fingerprints, as data: which tool left which marks in a session.

Sources: nmap ``smtp-open-relay.nse`` (EHLO nmap.scanme.org, antispam@/relaytest@, RSET between
tests, no DATA), Metasploit ``smtp_relay`` (EHLO X, sender@example.com -> target@example.com; tagged by the addresses),
MAPS relay test (nobody@mail-abuse.org, spamtest@, cygnus.mail-abuse.org, maps1.pa.vix.com),
AOL (CloseYourOpenRelay@aol.com). See research/relay-forms-and-peer-tools.md §1.
"""

from __future__ import annotations

import polars as pl

#: tool -> list of (field, case-insensitive regex). A session matching any entry is tagged.
PROBE_SIGNATURES: dict[str, list[tuple[str, str]]] = {
    "nmap": [
        ("helo", r"^nmap\.scanme\.org$"),
        ("sender", r"^antispam@"),
        ("recipient", r"relaytest(@|%)"),
        ("recipient", r"nmap\.scanme\.org"),
    ],
    # Its ``EHLO X`` alone is no fingerprint (spam tools send one-letter HELOs too): the session is
    # tagged by the module's default addresses, which a default run sends with it.
    "metasploit": [
        ("sender", r"^sender@example\.com$"),
        ("recipient", r"^target@example\.com$"),
    ],
    "maps": [
        ("helo", r"(cygnus\.mail-abuse\.org|maps1\.pa\.vix\.com)"),
        ("sender", r"^spamtest@"),
        ("recipient", r"nobody@mail-abuse\.org"),
        ("sender", r"^securitytest@"),
    ],
    "aol": [
        ("sender", r"^closeyouropenrelay@aol\.com$"),
        ("recipient", r"closeyouropenrelay@aol\.com"),
    ],
}


def probe_expr() -> pl.Expr:
    """An expression over columns helo, sender, recipient giving the probe tool's name (or null)."""
    expr = pl.lit(None, pl.String)
    for tool in reversed(list(PROBE_SIGNATURES)):
        cond = pl.lit(False)
        for column, pattern in PROBE_SIGNATURES[tool]:
            cond = cond | pl.col(column).fill_null("").str.to_lowercase().str.contains(pattern)
        expr = pl.when(cond).then(pl.lit(tool)).otherwise(expr)
    return expr


def probe_by_values(rows: pl.DataFrame) -> pl.Expr:
    """The same as :func:`probe_expr`, for the rows of ``rows``: each pattern runs once per distinct
    value of its field, and the rows are tagged by membership (no regex per row)."""
    distinct = {col: rows[col].drop_nulls().unique() for col in ("helo", "sender", "recipient")}
    lowered = {col: values.str.to_lowercase() for col, values in distinct.items()}
    expr = pl.lit(None, pl.String)
    for tool in reversed(list(PROBE_SIGNATURES)):
        cond = pl.lit(False)
        for column, pattern in PROBE_SIGNATURES[tool]:
            values = distinct[column]
            hits = values.filter(lowered[column].str.contains(pattern))
            if hits.len():
                cond = cond | pl.col(column).is_in(hits.implode()).fill_null(False)
        expr = pl.when(cond).then(pl.lit(tool)).otherwise(expr)
    return expr


def session_probes(rows: pl.DataFrame) -> pl.DataFrame:
    """Per session: the probe tool whose fingerprint any of its rows carries (session, probe).

    The patterns run once per distinct value of each field, not once per row (the same result as
    :func:`probe_expr` on every row).
    """
    if rows.is_empty():
        return pl.DataFrame(schema={"session": pl.String, "probe": pl.String})
    marked = rows.filter(pl.col("helo").is_not_null() | pl.col("sender").is_not_null()
                         | pl.col("recipient").is_not_null()).select("session", "helo", "sender", "recipient")
    tagged = marked.select("session", probe_by_values(marked).alias("probe")).drop_nulls()
    return tagged.group_by("session").agg(pl.col("probe").mode().sort().first())
