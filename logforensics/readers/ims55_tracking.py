"""Reader for Exchange 4.0/5.0/5.5 message tracking logs (``Tracking.log\\YYYYMMDD.log``).

One output row per recipient: the record header's fields are copied onto each of the record's
recipient lines. ``line`` is the recipient line and ``record_line`` the header line, so a finding
can cite both. Times are GMT (no time-zone conversion).
"""

from __future__ import annotations

from typing import ClassVar

import polars as pl

from grammars import ims55_tracking as grammar
from grammars.common import anchored
from logforensics.readers.base import ReadContext, ReadResult, bad_line_warnings
from logforensics.schema import conform
from logforensics.timeconv import wall_clock_to_utc

#: Event number -> direction relative to the server (None: neither, e.g. local delivery).
EVENT_DIRECTION: dict[int, str] = {
    0: "in", 1: "in", 2: "in", 1001: "in", 1004: "in", 1005: "in", 1012: "in", 1013: "in", 1015: "in",
    6: "out", 7: "out", 8: "out", 1002: "out", 1003: "out", 1006: "out", 1010: "out", 1011: "out",
    1014: "out", 1016: "out",
}


class Ims55TrackingReader:
    """Exchange Server 4.0/5.0/5.5 message tracking log."""

    name: ClassVar[str] = "ims55-tracking"
    description: ClassVar[str] = ("Exchange 4.0-5.5 message tracking log (Tracking.log\\YYYYMMDD.log), "
                                  "GMT")

    def sniff(self, head: list[str]) -> float:
        """A TAB-separated line with a message id, an event number and a ``YYYY.M.D`` date."""
        if any(h.startswith("# Message Tracking Log File") for h in head[:3]):
            return 0.0  # Exchange 2000/2003 layout
        hits = sum(1 for h in head if "\t" in h and grammar.header.matches(h, parse_all=True))
        return 0.95 if hits else 0.0

    def read(self, lines: pl.Series, ctx: ReadContext) -> ReadResult:
        frame = pl.DataFrame({"raw": lines}).with_row_index("line", offset=1)
        frame = frame.with_columns(pl.col("line").cast(pl.Int64))
        total = frame.height
        frame = frame.with_columns(
            pl.col("raw").str.extract_groups(anchored(grammar.HEADER)).alias("h"),
            (pl.col("raw").str.strip_chars() == "").alias("blank"),
        ).unnest("h")
        is_header = pl.col("event").is_not_null()
        frame = frame.with_columns(is_header.alias("is_header"))
        frame = frame.with_columns(
            pl.col("is_header").cum_sum().alias("record_no"),
            pl.when(pl.col("is_header")).then(pl.col("line")).otherwise(None).forward_fill()
            .alias("record_line"),
        )
        # A blank line ends a record: later non-header lines are orphans, not recipients.
        frame = frame.with_columns(
            pl.when(pl.col("is_header")).then(pl.lit(False)).when(pl.col("blank")).then(pl.lit(True))
            .otherwise(None).forward_fill().fill_null(False).alias("after_blank"),
        )
        headers = frame.filter(pl.col("is_header"))
        rcpt_lines = frame.filter(~pl.col("is_header") & ~pl.col("blank"))
        orphans = rcpt_lines.filter((pl.col("record_no") == 0) | pl.col("after_blank"))
        rcpt_lines = rcpt_lines.filter((pl.col("record_no") > 0) & ~pl.col("after_blank"))
        warnings: list[str] = []
        if orphans.height:
            warnings += bad_line_warnings(ctx.source, orphans, "not a tracking record or recipient line")

        rcpts = rcpt_lines.select(
            "record_no", "line",
            pl.col("raw").str.extract_groups(anchored(grammar.RECIPIENT)).alias("r"),
        ).unnest("r")
        inline = self._inline_recipients(headers)
        rcpts = pl.concat([rcpts, inline], how="vertical_relaxed")
        records = headers.select(
            "record_no", pl.col("line").alias("record_line"), "msgid", "event", "year", "month", "day",
            "hour", "minute", "second", "gateway", "partner", "remote_id", "originator", "length",
            "subject_id",
        )
        # Records without recipient lines still give one row (recipient null).
        rows = records.join(rcpts, on="record_no", how="left").with_columns(
            pl.coalesce(pl.col("line"), pl.col("record_line")).alias("line"),
        ).sort("line")
        ts = wall_clock_to_utc(*(pl.col(c).cast(pl.Int32, strict=False)
                                 for c in ("year", "month", "day", "hour", "minute", "second")), "UTC")
        event_id = pl.col("event").cast(pl.Int64, strict=False)
        names = {k: v[0] for k, v in grammar.EVENTS.items()}
        descriptions = {k: v[1] for k, v in grammar.EVENTS.items()}
        rows = rows.with_columns(ts.alias("ts"), event_id.alias("event_id"))
        bad = rows.filter(pl.col("ts").is_null())
        if bad.height:
            warnings += bad_line_warnings(
                ctx.source, frame.filter(pl.col("line").is_in(bad["record_line"].implode())),
                "record date/time is not valid")
        rows = rows.filter(pl.col("ts").is_not_null())
        blank_to_null = {"": None}
        events = rows.with_columns(
            pl.lit(ctx.source).alias("source"),
            pl.lit(self.name).alias("format"),
            pl.lit(ctx.server, pl.String).alias("server"),
            pl.col("msgid").alias("message"),
            pl.col("event_id").replace_strict(EVENT_DIRECTION, default=None, return_dtype=pl.String)
            .alias("direction"),
            pl.lit("tracking").alias("event"),
            pl.col("event_id").replace_strict(names, default=None, return_dtype=pl.String).alias("verb"),
            pl.col("partner").replace(blank_to_null).alias("relay_host"),
            pl.col("originator").replace(blank_to_null).alias("sender"),
            pl.col("recipient").str.strip_chars().replace(blank_to_null).alias("recipient"),
            pl.col("report_status").alias("status"),
            pl.col("length").cast(pl.Int64, strict=False).alias("size"),
            pl.format("{}; gateway={}; partner={}; remote-id={}",
                      pl.col("event_id").replace_strict(descriptions, default="event",
                                                        return_dtype=pl.String),
                      pl.col("gateway"), pl.col("partner"), pl.col("remote_id")).alias("text"),
        )
        return ReadResult(
            events=conform(events),
            lines=total,
            skipped=orphans.height + bad.select("record_line").n_unique(),
            blank=int(frame["blank"].sum()),
            warnings=warnings,
        )

    @staticmethod
    def _inline_recipients(headers: pl.DataFrame) -> pl.DataFrame:
        """Recipients written after the 13th field on the header line (TAB-separated)."""
        inline = headers.filter(pl.col("inline").is_not_null() & (pl.col("inline").str.strip_chars() != ""))
        parts = inline.select(
            "record_no", "line", pl.col("inline").str.split("\t").alias("f"),
        ).explode("f").with_columns(pl.col("f").str.strip_chars())
        parts = parts.filter(pl.col("f") != "")
        is_status = pl.col("f").str.contains(r"^-?[0-9]+$")
        parts = parts.with_columns(
            pl.when(is_status).then(pl.col("f")).otherwise(None).shift(-1).over("record_no")
            .alias("report_status"),
        ).filter(~is_status)
        return parts.select(
            "record_no", "line", pl.col("f").alias("recipient"),
            pl.when(pl.col("report_status").is_not_null()).then(pl.col("report_status"))
            .otherwise(None).alias("report_status"),
        )
