"""Reader for Exchange 5.5 IMS SMTP protocol logs (``Imcdata\\Log\\L*.LOG``) -> common events.

The line grammar is :mod:`grammars.ims55_protocol`; its ``pp.Regex`` patterns run here over whole
Polars columns. Everything stateful is column work too:

* **continuations**: a line without a timestamp belongs to the entry above it; its text is
  appended (up to 2,000 characters) to that entry's ``text``;
* **sessions**: one file is one connection *slot*, reused; a session starts at each
  ``A connection was accepted from`` (inbound) or ``A connection to ... was established``
  (outbound) line. Lines before the first start belong to a session cut off by the file start;
* **raw packets**: an ``IO: |`` line whose payload is logged again parsed on the next entry is a
  duplicate; the parsed line is kept and ``raw_line`` points at the packet;
* **command/reply pairing**: a command row carries the code, text and line of the first reply
  that follows it before the next command (``reply``, ``reply_text``, ``reply_line``).
"""

from __future__ import annotations

from typing import ClassVar

import polars as pl

from grammars import ims55_protocol as grammar
from grammars import smtp as smtp_grammar
from grammars.common import anchored
from logforensics.readers.base import ReadContext, ReadResult, bad_line_warnings
from logforensics.readers.smtp_columns import (
    auth_user_column,
    command_columns,
    envelope_columns,
    ip_or_null,
    pair_replies,
)
from logforensics.schema import conform
from logforensics.timeconv import full_year, hour24, wall_clock_to_utc

CONTINUATION_CHARS = 2000


class Ims55ProtocolReader:
    """Exchange Server 5.5 Internet Mail Service SMTP protocol log."""

    name: ClassVar[str] = "ims55-protocol"
    description: ClassVar[str] = ("Exchange 5.5 IMS SMTP protocol log (Imcdata\\Log\\L*.LOG), "
                                  "server local time")

    def sniff(self, head: list[str]) -> float:
        """Timestamped ``M/D/YY h:mm:ss AM : `` lines with IMS session or arrow markers."""
        entries = [h for h in head if grammar.entry.matches(h, parse_all=True)]
        if not entries:
            return 0.0
        markers = sum(1 for h in entries if (" : <<< " in h or " : >>> " in h or "A connection " in h
                                             or " : IO: |" in h))
        return 0.9 if markers else 0.4

    def read(self, lines: pl.Series, ctx: ReadContext) -> ReadResult:
        frame = pl.DataFrame({"raw": lines}).with_row_index("line", offset=1)
        frame = frame.with_columns(pl.col("line").cast(pl.Int64))
        total = frame.height
        frame = frame.with_columns(
            pl.col("raw").str.extract_groups(anchored(grammar.ENTRY)).alias("entry"),
            (pl.col("raw").str.strip_chars() == "").alias("blank"),
        ).unnest("entry")
        frame = frame.with_columns(pl.col("body").is_not_null().alias("is_entry"))
        frame = frame.with_columns(pl.col("is_entry").cum_sum().alias("entry_no"))

        warnings: list[str] = []
        orphans = frame.filter(~pl.col("is_entry") & ~pl.col("blank") & (pl.col("entry_no") == 0))
        if orphans.height:
            warnings += bad_line_warnings(ctx.source, orphans, "text before the first timestamped entry")
        continuation = frame.filter(~pl.col("is_entry") & ~pl.col("blank") & (pl.col("entry_no") > 0))
        blank = int(frame["blank"].sum())

        entries = self._timestamps(frame.filter(pl.col("is_entry")), ctx, warnings)
        bad_ts = entries.filter(pl.col("ts").is_null())
        if bad_ts.height:
            warnings += bad_line_warnings(ctx.source, bad_ts, "timestamp is not a valid date/time")
        entries = entries.filter(pl.col("ts").is_not_null())

        if continuation.height:
            extra = continuation.group_by("entry_no").agg(
                pl.col("raw").str.join("\n").str.slice(0, CONTINUATION_CHARS).alias("continued"))
            entries = entries.join(extra, on="entry_no", how="left")
        else:
            entries = entries.with_columns(pl.lit(None, pl.String).alias("continued"))

        events = self._events(entries, ctx)
        return ReadResult(
            events=conform(events),
            lines=total,
            skipped=orphans.height + bad_ts.height,
            continuation=continuation.height,
            blank=blank,
            warnings=warnings,
        )

    @staticmethod
    def _timestamps(entries: pl.DataFrame, ctx: ReadContext, warnings: list[str]) -> pl.DataFrame:
        order = ctx.site.ims_date_order
        a = entries["date_a"].cast(pl.Int32, strict=False)
        b = entries["date_b"].cast(pl.Int32, strict=False)
        if order == "MDY" and a.len() and (a.max() or 0) > 12 and (b.max() or 0) <= 12:
            order = "DMY"
            warnings.append(f"{ctx.source}: dates read as day/month/year (a first field above 12 "
                            "was seen); set ims_date_order in the site profile to override")
        month, day = ("date_a", "date_b") if order == "MDY" else ("date_b", "date_a")
        zone = ctx.site.zone()
        return entries.with_columns(
            wall_clock_to_utc(
                full_year(pl.col("year")),
                pl.col(month).cast(pl.Int32, strict=False),
                pl.col(day).cast(pl.Int32, strict=False),
                hour24(pl.col("hour"), pl.col("ampm")),
                pl.col("minute").cast(pl.Int32, strict=False),
                pl.col("second").cast(pl.Int32, strict=False),
                zone,
            ).alias("ts")
        )

    def _events(self, entries: pl.DataFrame, ctx: ReadContext) -> pl.DataFrame:
        body = pl.col("body")
        df = entries.select("line", "raw", "ts", "body", "entry_no", "continued").with_columns(
            body.str.extract(anchored(grammar.CONNECT_IN), 1).alias("peer_in"),
            body.str.extract(anchored(grammar.CONNECT_OUT), 1).alias("peer_out"),
        )
        df = df.with_columns(
            (pl.col("peer_in").is_not_null() | pl.col("peer_out").is_not_null()).alias("is_connect"),
            body.str.extract_groups(anchored(grammar.PROTO)).alias("proto"),
        ).unnest("proto")

        # Sessions: split on connection-start lines.
        first_line = df["line"].min() if df.height else 0
        df = df.with_columns(
            pl.when(pl.col("is_connect")).then(pl.col("line")).otherwise(None)
            .forward_fill().fill_null(first_line).alias("session_start"),
        )
        df = df.with_columns(
            pl.col("is_connect").cum_sum().alias("sid"),
            (pl.lit(ctx.source + "#L") + pl.col("session_start").cast(pl.String)).alias("session"),
            pl.when(pl.col("peer_in").is_not_null()).then(pl.lit("in"))
            .when(pl.col("peer_out").is_not_null()).then(pl.lit("out"))
            .otherwise(None).alias("conn_dir"),
        )

        # Payload: reply or command (the arrows are not trusted; some renderings lack them).
        payload = pl.col("payload").fill_null("")
        df = df.with_columns(
            pl.when(pl.col("is_connect")).then(None).otherwise(payload).alias("payload"),
            pl.col("io").is_not_null().alias("is_io"),
        )
        df = df.with_columns(
            payload.str.extract_groups(anchored(smtp_grammar.REPLY)).alias("rep"),
        ).unnest("rep")
        df = df.with_columns(
            pl.col("code").cast(pl.Int64, strict=False).alias("code"),
            pl.col("code").is_not_null().alias("is_reply"),
        )

        # Raw-packet twins: an IO: | row whose payload is logged again on the next row.
        nxt_payload = pl.col("payload").shift(-1).over("sid")
        nxt_io = pl.col("is_io").shift(-1).over("sid")
        df = df.with_columns(
            (pl.col("is_io") & ~nxt_io.fill_null(True)
             & (pl.col("payload").str.strip_chars() == nxt_payload.str.strip_chars())).alias("io_dup"),
        )
        df = df.with_columns(
            pl.when(pl.col("io_dup").shift(1).over("sid").fill_null(False))
            .then(pl.col("line").shift(1).over("sid")).otherwise(None).alias("raw_line"),
        ).filter(~pl.col("io_dup"))

        # Session direction: from its start line, else from who sends commands.
        df = df.with_columns(
            pl.when(~pl.col("is_reply") & ~pl.col("is_connect") & (pl.col("arrow") == "<<<"))
            .then(pl.lit("in"))
            .when(~pl.col("is_reply") & ~pl.col("is_connect") & (pl.col("arrow") == ">>>"))
            .then(pl.lit("out")).otherwise(None).alias("cmd_dir"),
        )
        df = df.with_columns(
            pl.coalesce(pl.col("conn_dir").first().over("sid"),
                        pl.col("cmd_dir").drop_nulls().first().over("sid")).alias("direction"),
        )

        df = command_columns(df, payload_col="payload", is_reply_col="is_reply", session_col="sid")
        df = envelope_columns(df, payload_col="payload", session_col="sid")
        df = df.with_columns(
            pl.when(pl.col("is_connect")).then(pl.lit("connect"))
            .when(pl.col("is_reply")).then(pl.lit("reply"))
            .when(pl.col("payload").str.strip_chars() == "").then(pl.lit("note"))
            .when(pl.col("arrow").is_null() & pl.col("smtp_event").is_null()).then(pl.lit("note"))
            .otherwise(pl.col("smtp_event").fill_null("command")).alias("event"),
        )
        df = auth_user_column(df, payload_col="payload", session_col="sid")
        df = pair_replies(df, session_col="sid")

        peer_in = pl.col("peer_in").forward_fill().over("sid")
        peer_out = pl.col("peer_out").forward_fill().over("sid")
        text = pl.coalesce(pl.col("body"), pl.lit(""))
        df = df.with_columns(
            pl.col("ts"),
            pl.lit(ctx.source).alias("source"),
            pl.lit(Ims55ProtocolReader.name).alias("format"),
            pl.lit(ctx.server, pl.String).alias("server"),
            pl.when(pl.col("direction") == "in").then(peer_in).otherwise(None).alias("client_host"),
            pl.when(pl.col("direction") == "out").then(peer_out).otherwise(None).alias("relay_host"),
            pl.when(pl.col("is_connect")).then(text)
            .when(pl.col("is_reply")).then(pl.col("reply_own_text"))
            .otherwise(pl.col("payload")).alias("text_first"),
        )
        df = df.with_columns(
            ip_or_null(pl.col("client_host")).alias("client_ip"),
            pl.when(pl.col("continued").is_not_null())
            .then(pl.col("text_first") + pl.lit("\n") + pl.col("continued"))
            .otherwise(pl.col("text_first")).alias("text"),
        )
        return df
