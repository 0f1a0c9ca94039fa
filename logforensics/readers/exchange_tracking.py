"""Reader for Exchange 2000/2003 message tracking logs and the Exchange 2007+ tracking CSV.

Grammar: :mod:`grammars.exchange_tracking`. Both layouts are read by their field list (the
2000/2003 ``# Date<TAB>Time...`` comment, the 2007+ ``#Fields:`` directive, or the documented
default when a file has none); every row is one event for one recipient (2007+ rows listing several
recipients separated by ``;`` give one row per recipient). Header lines count as ``not_mail``.

Mapping to the MTA event model (``schema.EVENTS``); every row keeps ``verb`` (a short name) and,
for 2000/2003, ``event_id``:

========================  =====================================================================
2000/2003 event            row
========================  =====================================================================
1019 SMTP submit           ``received``, direction in: ``client_ip``, ``client_host``, ``sender``,
                           ``recipient``, ``size``, ``message`` = MSGID
1027 Store submit          ``received``, direction local (a mailbox user's submission), no client
1031 (and 1011)            ``deliver``, direction out, status sent, transport smtp, ``relay_host``
                           = the Partner-Name when it names a host, else the Client-hostname /
                           client-ip of the row (the peer), else null **[field use unconfirmed]**
1028 SD local delivery     ``deliver``, direction local, status sent, transport store
1030 NDR, 1021 badmail,    ``deliver``, status bounced, direction local (nothing left the
1026 AQ failed message     server)
anything else              ``note`` (with ``event_id``; 1020 begin-outbound included)
========================  =====================================================================

Most 10xx meanings are not confirmed by a readable Microsoft source (research note §6, §10): see
:data:`grammars.exchange_tracking.EVENTS_2003` for which are.

2007+: RECEIVE -> ``received`` (client fields when the source is SMTP; STOREDRIVER is a mailbox
submission, the 1027 analogue: direction local, like PICKUP and the other non-SMTP sources); SEND/SENDEXTERNAL from source SMTP -> ``deliver`` out (relay_host
= server-hostname, else server-ip; reply from recipient-status); DELIVER -> ``deliver`` local;
FAIL -> ``deliver`` bounced, direction local (reply from recipient-status); anything else -> ``note``.
``message`` = internal-message-id; ``server`` = the file's own host (the server-hostname of its
non-SEND rows, else the client-hostname of its SEND rows), else the context's server.
"""

from __future__ import annotations

import re
from typing import ClassVar

import polars as pl

from grammars import exchange_tracking as grammar
from grammars.common import anchored
from grammars.w3c_smtp import group_names
from logforensics.readers.base import ReadContext, ReadResult, bad_line_warnings
from logforensics.schema import conform, empty_events
from logforensics.timeconv import wall_clock_to_utc

#: Partner-Name values that name a service, not a host (KB 246965).
SERVICE_PARTNERS = {"SMTP", "X400", "MAPI", "IMAP4", "POP3", "STORE", "MTA", "-", ""}

RECEIVED_2003 = {1019: "smtp", 1027: "store"}
DELIVER_OUT_2003 = {1031, 1011}
DELIVER_LOCAL_2003 = {1028}
BOUNCED_2003 = {1030, 1021, 1026}


def _null(col: pl.Expr) -> pl.Expr:
    """``-`` and empty -> null."""
    stripped = col.str.strip_chars()
    return pl.when(stripped.is_in(["-", ""])).then(None).otherwise(stripped)


def unquote_csv(col: pl.Expr) -> pl.Expr:
    """An RFC 4180 CSV value as text (quotes removed, doubled quotes undoubled); empty -> null."""
    quoted = col.str.starts_with('"') & col.str.ends_with('"') & (col.str.len_chars() >= 2)
    inner = col.str.slice(1, col.str.len_chars() - 2).str.replace_all('""', '"', literal=True)
    value = pl.when(quoted).then(inner).otherwise(col)
    return pl.when(value == "").then(None).otherwise(value)


def _strip_brackets(col: pl.Expr) -> pl.Expr:
    return col.str.strip_chars().str.strip_prefix("<").str.strip_suffix(">")


class ExchangeTrackingReader:
    """Exchange 2000/2003 message tracking log (and 2007+ CSV)."""

    name: ClassVar[str] = "exchange-tracking"
    description: ClassVar[str] = (
        "Exchange 2000/2003 message tracking log (Exchsrvr\\SERVER.log\\yyyymmdd.log, TAB separated, GMT) "
        "and Exchange 2007+ message tracking CSV (MSGTRK*.LOG, UTC)")

    def sniff(self, head: list[str]) -> float:
        """The 2000/2003 header or a 2007+ ``#Log-type: Message Tracking Log``; without a header, rows
        of the documented field sets."""
        clean = [h.lstrip("\ufeff") for h in head]
        if any(h.startswith("# Message Tracking Log File") for h in clean[:5]):
            return 0.95
        if any(grammar.fields_2003.matches(h, parse_all=True) for h in clean[:5]):
            return 0.9
        if any(h.startswith("#Log-type:") for h in clean):
            return 0.95 if any(h.startswith("#Log-type: Message Tracking Log") for h in clean) else 0.0
        data = [h for h in clean if h.strip() and not h.startswith("#")]
        if not data:
            return 0.0
        tab = grammar.tab_line(grammar.DEFAULT_FIELDS_2003)
        date = grammar.date_2003
        tab_hits = sum(1 for h in data if h.count("\t") >= 19 and tab.matches(h, parse_all=True)
                       and date.matches(h.split("\t", 1)[0], parse_all=True))
        csv_hits = 0
        for h in data:
            if not grammar.iso_time.matches(h.split(",", 1)[0], parse_all=True):
                continue
            for fields in (grammar.FIELDS_2013, grammar.FIELDS_2010):
                res = _match(grammar.csv_pattern(fields), h)
                if res is not None and res.get("event_id", "").strip('"') in grammar.EVENTS_2007:
                    csv_hits += 1
                    break
        hits = max(tab_hits, csv_hits)
        return 0.8 if hits * 2 >= len(data) else 0.0

    def read(self, lines: pl.Series, ctx: ReadContext) -> ReadResult:
        frame = pl.DataFrame({"raw": lines}).with_row_index("line", offset=1)
        frame = frame.with_columns(pl.col("line").cast(pl.Int64), pl.col("raw").str.strip_prefix("\ufeff"))
        total = frame.height
        frame = frame.with_columns(
            (pl.col("raw").str.strip_chars() == "").alias("blank"),
            pl.col("raw").str.starts_with("#").alias("is_header"),
            pl.col("raw").str.extract(anchored(grammar.FIELDS_2003), 1).alias("tab_fields"),
            pl.col("raw").str.extract_groups(anchored(grammar.DIRECTIVE)).alias("d"),
        ).unnest("d")
        frame = frame.with_columns(
            pl.when(pl.col("directive").str.to_lowercase() == "fields").then(pl.col("value"))
            .otherwise(None).alias("csv_fields"),
        )
        frame = frame.with_columns(
            (pl.col("tab_fields").is_not_null() | pl.col("csv_fields").is_not_null()).cum_sum().alias("block"))
        blank = int(frame["blank"].sum())
        headers = int(frame["is_header"].sum())
        data = frame.filter(~pl.col("blank") & ~pl.col("is_header"))
        tab_mode = self._is_tab(frame, data)
        blocks: dict[int, list[str]] = {}
        for block, tf, cf in frame.filter(pl.col("tab_fields").is_not_null() | pl.col("csv_fields").is_not_null()
                                          ).select("block", "tab_fields", "csv_fields").iter_rows():
            blocks[int(block)] = tf.split("\t") if tf is not None else [f.strip() for f in cf.split(",")]

        parts: list[pl.DataFrame] = []
        for block in data["block"].unique().sort().to_list():
            sub = data.filter(pl.col("block") == block)
            if block in blocks:
                candidates = [blocks[block]]
            elif tab_mode:
                candidates = [list(grammar.DEFAULT_FIELDS_2003)]
            else:
                candidates = [list(grammar.FIELDS_2013), list(grammar.FIELDS_2010)]
            remaining = sub
            for fields in candidates:
                pattern = grammar.tab_pattern(fields) if tab_mode else grammar.csv_pattern(fields)
                names = group_names(fields)
                ext = remaining.with_columns(
                    pl.col("raw").str.extract_groups(anchored(pattern)).alias("x")).unnest("x")
                ok = ext.filter(pl.col(names[0]).is_not_null())
                if ok.height:
                    parts.append(ok)
                remaining = ext.filter(pl.col(names[0]).is_null()).select(sub.columns)
        rows = pl.concat(parts, how="diagonal_relaxed").sort("line") if parts else None
        parsed = rows.select("line") if rows is not None else pl.DataFrame({"line": []}, schema={"line": pl.Int64})
        bad = data.join(parsed, on="line", how="anti")
        warnings: list[str] = []
        if bad.height:
            warnings += bad_line_warnings(ctx.source, bad.select("line", "raw"),
                                          "not a tracking row of the current field list")
        events = None
        skipped = bad.height
        if rows is not None:
            rows = self._tab_rows(rows, ctx) if tab_mode else self._csv_rows(rows, ctx)
            bad_ts = rows.filter(pl.col("ts").is_null())
            if bad_ts.height:
                warnings += bad_line_warnings(ctx.source, bad_ts.select("line", "raw").unique("line", keep="first"),
                                              "date/time is not valid")
                skipped += bad_ts.select("line").n_unique()
            events = rows.filter(pl.col("ts").is_not_null())
        return ReadResult(
            events=conform(events) if events is not None else empty_events(),
            lines=total, skipped=skipped, blank=blank, not_mail=headers, warnings=warnings,
        )

    @staticmethod
    def _is_tab(frame: pl.DataFrame, data: pl.DataFrame) -> bool:
        if frame.filter(pl.col("tab_fields").is_not_null()).height:
            return True
        if frame.filter(pl.col("raw").str.starts_with("# Message Tracking Log File")).height:
            return True
        if frame.filter(pl.col("csv_fields").is_not_null()).height:
            return False
        tabs = int(data["raw"].str.contains("\t", literal=True).sum())
        return tabs * 2 > data.height

    # -- Exchange 2000/2003 -----------------------------------------------------------------------

    def _tab_rows(self, rows: pl.DataFrame, ctx: ReadContext) -> pl.DataFrame:
        for name in group_names(grammar.DEFAULT_FIELDS_2003):
            if name not in rows.columns:
                rows = rows.with_columns(pl.lit(None, pl.String).alias(name))
        d = pl.col("date").str.extract_groups(anchored(grammar.DATE_2003))
        t = pl.col("time").str.extract_groups(anchored(grammar.TIME_2003))
        rows = rows.with_columns(d.alias("dp"), t.alias("tp"))

        def part(s: str, f: str) -> pl.Expr:
            return pl.col(s).struct.field(f).cast(pl.Int32, strict=False)

        eid = pl.col("event_id").str.strip_chars().cast(pl.Int64, strict=False)
        names = {k: v[0] for k, v in grammar.EVENTS_2003.items()}
        meanings = {k: v[1] for k, v in grammar.EVENTS_2003.items()}
        partner = _null(pl.col("partner_name"))
        partner_host = pl.when(partner.str.to_uppercase().is_in(list(SERVICE_PARTNERS))).then(None).otherwise(partner)
        client_host = _null(pl.col("client_hostname"))
        client_ip = _null(pl.col("client_ip"))
        rows = rows.with_columns(
            wall_clock_to_utc(part("dp", "year"), part("dp", "month"), part("dp", "day"),
                              part("tp", "hour"), part("tp", "minute"), part("tp", "second"), "UTC").alias("ts"),
            eid.alias("event_id"),
        )
        e = pl.col("event_id")
        received = e.is_in(list(RECEIVED_2003))
        out = e.is_in(list(DELIVER_OUT_2003))
        local = e.is_in(list(DELIVER_LOCAL_2003))
        bounced = e.is_in(list(BOUNCED_2003))
        smtp_in = e == 1019
        return rows.with_columns(
            pl.lit(ctx.source).alias("source"),
            pl.lit(self.name).alias("format"),
            pl.coalesce(_null(pl.col("server_hostname")), pl.lit(ctx.server, pl.String)).alias("server"),
            _strip_brackets(_null(pl.col("msgid"))).alias("message"),
            pl.when(received).then(pl.lit("received"))
            .when(out | local | bounced).then(pl.lit("deliver")).otherwise(pl.lit("note")).alias("event"),
            # A Store (MAPI) submission is a mailbox user's: submitted on the server, not from a client.
            pl.when(received & smtp_in).then(pl.lit("in")).when(out).then(pl.lit("out"))
            .when(received | local | bounced).then(pl.lit("local")).otherwise(None).alias("direction"),
            e.replace_strict(names, default=None, return_dtype=pl.String).fill_null(
                pl.lit("event-") + e.cast(pl.String)).alias("verb"),
            pl.when(smtp_in).then(client_ip).otherwise(None).alias("client_ip"),
            pl.when(smtp_in).then(client_host).otherwise(None).alias("client_host"),
            pl.when(out).then(pl.coalesce(partner_host, client_host, client_ip)).otherwise(None).alias("relay_host"),
            _strip_brackets(_null(pl.col("sender_address"))).alias("sender"),
            _strip_brackets(_null(pl.col("recipient_address"))).alias("recipient"),
            pl.when(out | local).then(pl.lit("sent")).when(bounced).then(pl.lit("bounced"))
            .otherwise(_null(pl.col("recipient_report_status"))).alias("status"),
            pl.when(out).then(pl.lit("smtp")).when(local).then(pl.lit("store")).otherwise(None).alias("transport"),
            _null(pl.col("total_bytes")).cast(pl.Int64, strict=False).alias("size"),
            pl.concat_str(
                [e.cast(pl.String), pl.lit(" "),
                 e.replace_strict(meanings, default="unknown event", return_dtype=pl.String),
                 pl.lit(": client "), pl.coalesce(client_ip, pl.lit("-")),
                 pl.lit(" ("), pl.coalesce(client_host, pl.lit("-")), pl.lit("), partner "),
                 pl.coalesce(partner, pl.lit("-")),
                 pl.lit(", subject "), pl.coalesce(_null(pl.col("message_subject")), pl.lit("-"))]).alias("text"),
        )

    # -- Exchange 2007+ ---------------------------------------------------------------------------

    def _csv_rows(self, rows: pl.DataFrame, ctx: ReadContext) -> pl.DataFrame:
        for name in group_names(grammar.FIELDS_2013):
            if name not in rows.columns:
                rows = rows.with_columns(pl.lit(None, pl.String).alias(name))
        rows = rows.with_columns(*(unquote_csv(pl.col(n)).alias(n) for n in group_names(grammar.FIELDS_2013)))
        iso = pl.col("date_time").str.extract_groups(anchored(grammar.ISO_TIME))

        def part(f: str) -> pl.Expr:
            return pl.col("iso").struct.field(f).cast(pl.Int32, strict=False)

        rows = rows.with_columns(iso.alias("iso"))
        micros = (pl.col("iso").struct.field("fraction").str.slice(1).str.pad_end(6, "0").str.slice(0, 6)
                  .cast(pl.Int64, strict=False).fill_null(0))
        ts = wall_clock_to_utc(part("year"), part("month"), part("day"), part("hour"), part("minute"),
                               part("second"), "UTC") + pl.duration(microseconds=micros)
        ev = pl.col("event_id").str.to_uppercase()
        source = pl.col("source").str.to_uppercase()
        rows = rows.with_columns(
            ts.alias("ts"), ev.alias("ev"), source.alias("src"),
            pl.col("recipient_address").str.split(";").alias("rcpts"),
            pl.col("recipient_status").str.split(";").alias("rstats"),
        )
        # One row per recipient; a status pairs with its recipient when the counts agree.
        rows = rows.with_columns(
            pl.col("recipient_status").alias("rstatus_all"),
            pl.int_ranges(0, pl.col("rcpts").list.len()).alias("ri"),
            pl.col("rcpts").list.len().alias("nr"),
        ).explode(["rcpts", "ri"])
        rows = rows.with_columns(
            pl.when(pl.col("rstats").list.len() == pl.col("nr"))
            .then(pl.col("rstats").list.get(pl.col("ri"), null_on_oob=True))
            .otherwise(pl.col("rstatus_all")).alias("rstats"),
        )
        is_send = ev.is_in(["SEND", "SENDEXTERNAL"])
        smtp = pl.col("src") == "SMTP"
        received = ev == "RECEIVE"
        out = is_send & smtp
        local = ev == "DELIVER"
        bounced = ev == "FAIL"
        reply = pl.col("rstats").str.extract_groups(r"^(?P<rc>[2-5][0-9][0-9])[ ]?(?P<rt>.*)$")
        rows = rows.with_columns(reply.alias("rp")).unnest("rp")
        server = self._csv_server(rows, ctx)
        return rows.with_columns(
            pl.lit(ctx.source).alias("source"),
            pl.lit(self.name).alias("format"),
            pl.lit(server, pl.String).alias("server"),
            pl.coalesce(pl.col("internal_message_id"), _strip_brackets(pl.col("message_id"))).alias("message"),
            pl.when(received).then(pl.lit("received"))
            .when(out | local | bounced).then(pl.lit("deliver")).otherwise(pl.lit("note")).alias("event"),
            # Only SMTP arrivals come from a client; STOREDRIVER (mailbox), PICKUP, AGENT... are local.
            pl.when(received & smtp).then(pl.lit("in")).when(out).then(pl.lit("out"))
            .when(received | local | bounced).then(pl.lit("local")).otherwise(None).alias("direction"),
            pl.col("event_id").alias("verb"),
            pl.lit(None, pl.Int64).alias("event_id"),
            pl.when(received & smtp).then(pl.col("client_ip")).otherwise(None).alias("client_ip"),
            pl.when(received & smtp).then(pl.col("client_hostname")).otherwise(None).alias("client_host"),
            pl.when(out).then(pl.coalesce(pl.col("server_hostname"), pl.col("server_ip"))).otherwise(None)
            .alias("relay_host"),
            pl.when(pl.col("sender_address").is_null()).then(
                pl.when(pl.col("return_path") == "<>").then(pl.lit("")).otherwise(None))
            .otherwise(_strip_brackets(pl.col("sender_address"))).alias("sender"),
            _strip_brackets(pl.col("rcpts")).alias("recipient"),
            _strip_brackets(pl.col("related_recipient_address")).alias("orig_recipient"),
            pl.when(out | local).then(pl.lit("sent")).when(bounced).then(pl.lit("bounced"))
            .otherwise(None).alias("status"),
            pl.when(out | local | bounced).then(pl.col("src").str.to_lowercase()).otherwise(None).alias("transport"),
            pl.when(out | bounced).then(pl.col("rc").cast(pl.Int64, strict=False)).otherwise(None).alias("reply"),
            pl.when(out | bounced).then(pl.col("rt")).otherwise(None).alias("reply_text"),
            pl.col("total_bytes").cast(pl.Int64, strict=False).alias("size"),
            pl.concat_str([pl.col("event_id"), pl.lit(" "), pl.coalesce(pl.col("source"), pl.lit("-")),
                           pl.lit(" via "), pl.coalesce(pl.col("connector_id"), pl.lit("-")),
                           pl.lit(": "), pl.coalesce(pl.col("rstatus_all"), pl.col("source_context"), pl.lit("")),
                           pl.lit(" | subject "), pl.coalesce(pl.col("message_subject"), pl.lit("-"))]).alias("text"),
        )

    @staticmethod
    def _csv_server(rows: pl.DataFrame, ctx: ReadContext) -> str | None:
        own = rows.filter(~pl.col("ev").is_in(["SEND", "SENDEXTERNAL"]) & pl.col("server_hostname").is_not_null())
        if own.height:
            return str(own["server_hostname"].mode().sort()[0])
        sends = rows.filter(pl.col("client_hostname").is_not_null())
        if sends.height:
            return str(sends["client_hostname"].mode().sort()[0])
        return ctx.server


def _match(pattern: str, text: str) -> dict[str, str] | None:
    """The named groups of an anchored match (the sniffer's few lines), or None."""
    m = re.match(anchored(pattern), text)
    return m.groupdict(default="") if m else None
