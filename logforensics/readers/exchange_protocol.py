"""Reader for the Exchange 2007+ SMTP protocol logs (SmtpReceive and SmtpSend) -> common events.

Grammar: :mod:`grammars.exchange_protocol`. Every row is read by the most recent ``#Fields``
directive (the documented nine fields before any); directive lines count as ``not_mail``. A quoted
value holding a line break continues on the next physical lines: they are joined to their record
(counted as ``continuation``), as long as they do not start like a record or a directive.

Rows (one per CSV row):

* ``+`` -> ``connect``; ``-`` (disconnect) and ``*`` (information) -> ``note``, ``text`` = the
  ``data`` value with the ``context`` after it in parentheses;
* ``<``/``>``: in a Receive log (``#Log-type: SMTP Receive Protocol Log``, ``direction`` in) ``<``
  is the client's command and ``>`` the server's reply; in a Send log (``direction`` out) it is the
  other way round. Without a ``#Log-type`` the direction is voted per session from the payloads
  (three digits = reply), and a session with no ``<``/``>`` row and an empty ``local-endpoint`` (a
  Send log before the connection) is out;
* commands get ``verb``/``event`` (helo, auth, mail, rcpt, data, rset, quit, starttls, else
  command), ``sender``/``recipient``/``size``/``helo`` as the other SMTP transcript readers;
  replies get ``event`` reply, ``reply`` = their code, ``text`` = the whole reply.

Sessions: ``session-id`` (a second ``+`` under the same id starts a new session). The first session
under an id in a file is keyed ``SERVER#sid#<session-id>``, so a session the log cut at a roll-over
(its AUTH in ``RECV...-1.LOG``, its RCPTs in ``-2.LOG``) is one session across the files; a later
session under the same id in that file is ``SOURCE#L<its first line>``. Rows keep file order.

Command/reply pairing follows SMTP pipelining (RFC 2920), which Exchange uses as a client: within a
session, a run of commands is answered by the run of replies after it, in order (the n-th command
by the n-th reply). Only final reply lines count (``250-`` continuation lines and ``334`` AUTH
challenges do not), so ``AUTH`` gets its ``235``/``535``. A lone command is paired exactly as in
the other readers: with the first reply after it, before the next command.

AUTH: Exchange does not log the client's AUTH data (``334 <authentication response>``); the
account shows in an information row ``*,DOMAIN\\user,authenticated``, which sets ``auth_user`` on
that row, on the session's rows after it and on the AUTH command it answered. An initial response
that is logged (``AUTH PLAIN <base64>``) is decoded as in the other readers. AUTH rows get
``status`` ok (235) or failed (4xx/5xx).

``client_ip`` = the remote endpoint's address for inbound sessions, ``relay_host`` for outbound
ones; ``server`` = the context's server (site profile or path), else the server named in a Receive
connector's id (``SERVER\\Connector``).
"""

from __future__ import annotations

import re
from typing import ClassVar

import polars as pl

from grammars import exchange_protocol as grammar
from grammars import smtp as smtp_grammar
from grammars.common import anchored
from grammars.exchange_tracking import ISO_TIME
from logforensics.readers.auth_decode import auth_user
from logforensics.readers.base import ReadContext, ReadResult, bad_line_warnings
from logforensics.readers.exchange_tracking import unquote_csv
from logforensics.readers.smtp_columns import command_columns, envelope_columns
from logforensics.schema import conform, empty_events
from logforensics.timeconv import wall_clock_to_utc

#: Event names a command row may carry (schema vocabulary); other verbs are ``command``.
COMMAND_EVENTS = {"helo", "auth", "mail", "rcpt", "data", "rset", "quit", "starttls"}

#: At most this many physical lines continue one record (a quoted value with line breaks).
MAX_CONTINUATION = 200

#: The standard fields the reader uses (group names) -> column names.
_WANTED = {"date_time": "date_time", "connector_id": "connector_id", "session_id": "session_id",
           "sequence_number": "seq", "local_endpoint": "local_ep", "remote_endpoint": "remote_ep",
           "event": "ev", "data": "data", "context": "context"}


_DEFAULT_ROW = re.compile(anchored(grammar.row_pattern(grammar.DEFAULT_FIELDS)))
_EVENT = re.compile(anchored(grammar.EVENT))


def _endpoint_ip(col: pl.Expr) -> pl.Expr:
    ep = col.str.extract_groups(anchored(grammar.ENDPOINT))
    ip = pl.coalesce(ep.struct.field("ip6"), ep.struct.field("ip"))
    return pl.when(ip == "").then(None).otherwise(ip)


class ExchangeProtocolReader:
    """Exchange 2007+ SMTP protocol log (SmtpReceive / SmtpSend)."""

    name: ClassVar[str] = "exchange-smtp-protocol"
    description: ClassVar[str] = (
        "Exchange 2007+ SMTP protocol log (TransportRoles\\Logs\\ProtocolLog\\SmtpReceive\\RECV*.LOG and "
        "SmtpSend\\SEND*.LOG): CSV rows by each #Fields block, session-id sessions, UTC")

    def sniff(self, head: list[str]) -> float:
        """``#Log-type: SMTP Receive/Send Protocol Log``, a ``#Fields`` line with the protocol log's
        own fields, or rows of the documented field set."""
        clean = [h.lstrip("\ufeff") for h in head]
        for h in clean:
            if h.startswith("#Log-type:"):
                kind = h[len("#Log-type:"):].strip()
                return 0.95 if kind in (grammar.RECEIVE_LOG_TYPE, grammar.SEND_LOG_TYPE) else 0.0
        for h in clean:
            if h.startswith("#Fields:"):
                fields = {f.strip().lower() for f in h[len("#Fields:"):].split(",")}
                return 0.9 if {"session-id", "sequence-number", "event", "data"} <= fields else 0.0
        data = [h for h in clean if h.strip() and not h.startswith("#")]
        if not data:
            return 0.0
        hits = 0
        for h in data:
            if not grammar.date_time.matches(h.split(",", 1)[0], parse_all=True):
                continue
            m = _DEFAULT_ROW.match(h)
            if m and m["event"] and _EVENT.match(m["event"]) and m["sequence_number"].isdigit():
                hits += 1
        return 0.85 if hits * 2 >= len(data) else 0.0

    def read(self, lines: pl.Series, ctx: ReadContext) -> ReadResult:
        frame = pl.DataFrame({"raw": lines}).with_row_index("line", offset=1)
        frame = frame.with_columns(pl.col("line").cast(pl.Int64), pl.col("raw").str.strip_prefix("\ufeff"))
        total = frame.height
        frame = frame.with_columns(
            (pl.col("raw").str.strip_chars() == "").alias("blank"),
            pl.col("raw").str.starts_with("#").alias("is_header"),
            pl.col("raw").str.extract_groups(anchored(grammar.DIRECTIVE)).alias("d"),
            pl.col("raw").str.contains(anchored(grammar.RECORD_START)).alias("starts"),
        ).unnest("d")
        directive = pl.col("directive").str.to_lowercase()
        frame = frame.with_columns(
            (directive == "fields").fill_null(False).alias("is_fields"),
            pl.when(directive == "log-type").then(pl.col("value")).otherwise(None).forward_fill().alias("log_type"),
        )
        frame = frame.with_columns(pl.col("is_fields").cum_sum().alias("block"))
        frame = self._join_continuations(frame)
        blank = int((frame["blank"] & ~frame["cont"]).sum())
        headers = int(frame["is_header"].sum())
        continuation = int(frame["cont"].sum())
        data = frame.filter(~pl.col("blank") & ~pl.col("is_header") & ~pl.col("cont"))

        fields_by_block = {int(b): [f.strip() for f in v.split(",")] for b, v in
                           frame.filter(pl.col("is_fields")).select("block", "value").iter_rows()}
        parts: list[pl.DataFrame] = []
        for block in data["block"].unique().sort().to_list():
            fields = fields_by_block.get(block, list(grammar.DEFAULT_FIELDS))
            names = grammar.field_names(fields)
            sub = data.filter(pl.col("block") == block)
            ext = sub.with_columns(pl.col("record").str.extract_groups(anchored(grammar.row_pattern(fields)))
                                   .alias("x"))
            parts.append(ext.select(
                "line", "raw", "log_type", pl.col("x").struct.field(names[0]).is_not_null().alias("ok"),
                *((pl.col("x").struct.field(g) if g in names else pl.lit(None, pl.String)).alias(c)
                  for g, c in _WANTED.items())))
        rows = (pl.concat(parts) if parts else
                pl.DataFrame(schema={"line": pl.Int64, "raw": pl.String, "ok": pl.Boolean}))
        rows = rows.sort("line")
        warnings: list[str] = []
        bad_shape = rows.filter(~pl.col("ok"))
        rows = rows.filter(pl.col("ok"))
        if rows.height:
            rows = rows.with_columns(*(unquote_csv(pl.col(c)).alias(c) for c in _WANTED.values()))
            rows = rows.with_columns(self._timestamp(pl.col("date_time")).alias("ts"))
        bad_ts = rows.filter(pl.col("ts").is_null()) if rows.height else rows
        bad_event = (rows.filter(pl.col("ts").is_not_null()
                                 & ~pl.col("ev").fill_null("").str.contains(anchored(grammar.EVENT)))
                     if rows.height else rows)
        for frame_, reason in ((bad_shape, "not a row of the current #Fields set"),
                               (bad_ts, "no valid date-time"),
                               (bad_event, "the event is not one of + - < > *")):
            if frame_.height:
                warnings += bad_line_warnings(ctx.source, frame_.select("line", "raw"), reason)
        good = rows.join(pl.concat([bad_ts.select("line"), bad_event.select("line")]), on="line", how="anti") \
            if rows.height else rows
        events = self._events(good, ctx) if good.height else None
        skipped_lines = pl.concat([bad_shape.select("line"), bad_ts.select("line"), bad_event.select("line")])
        # A bad record's continuation lines are skipped with it.
        skipped = skipped_lines.height + int(frame.filter(pl.col("cont") & pl.col("rec_line").is_in(
            skipped_lines["line"].implode())).height)
        return ReadResult(
            events=conform(events) if events is not None else empty_events(),
            lines=total, skipped=skipped, continuation=continuation - (skipped - skipped_lines.height),
            blank=blank, not_mail=headers, warnings=warnings,
        )

    # -- physical lines -> records ----------------------------------------------------------------

    @staticmethod
    def _join_continuations(frame: pl.DataFrame) -> pl.DataFrame:
        """``cont``: the line continues the record above it (a quoted value still open); ``record``:
        the record's whole text on its first line (lines joined with ``\\n``), ``rec_line`` its line."""
        starts, header = pl.col("starts"), pl.col("is_header")
        quotes = pl.when(header).then(0).otherwise(pl.col("raw").str.count_matches('"', literal=True))
        frame = frame.with_columns((starts | header).cum_sum().alias("grp"), quotes.alias("q"))
        open_before = ((pl.col("q").cum_sum() - pl.col("q")).over("grp") % 2) == 1
        chain = (starts | open_before).cast(pl.Int8).cum_min().over("grp") == 1
        first_is_start = starts.first().over("grp")
        pos = pl.int_range(pl.len()).over("grp")
        frame = frame.with_columns(
            (~starts & ~header & chain & first_is_start & (pos <= MAX_CONTINUATION)).alias("cont"))
        frame = frame.with_columns(
            pl.when(pl.col("cont")).then(pl.col("line").first().over("grp")).otherwise(pl.col("line")).alias("rec_line"))
        if not frame["cont"].any():
            return frame.with_columns(pl.col("raw").alias("record")).drop("grp", "q")
        joined = (frame.filter(pl.col("cont") | (pl.col("cont").any().over("grp") & starts))
                  .group_by("rec_line", maintain_order=True).agg(pl.col("raw").str.join("\n").alias("joined")))
        frame = frame.join(joined, left_on="line", right_on="rec_line", how="left", maintain_order="left")
        return frame.with_columns(pl.coalesce(pl.col("joined"), pl.col("raw")).alias("record")).drop(
            "grp", "q", "joined")

    @staticmethod
    def _timestamp(col: pl.Expr) -> pl.Expr:
        iso = col.str.extract_groups(anchored(ISO_TIME))

        def part(f: str) -> pl.Expr:
            return iso.struct.field(f).cast(pl.Int32, strict=False)

        micros = (iso.struct.field("fraction").str.slice(1).str.pad_end(6, "0").str.slice(0, 6)
                  .cast(pl.Int64, strict=False).fill_null(0))
        return wall_clock_to_utc(part("year"), part("month"), part("day"), part("hour"), part("minute"),
                                 part("second"), "UTC") + pl.duration(microseconds=micros)

    # -- records -> events ------------------------------------------------------------------------

    def _events(self, df: pl.DataFrame, ctx: ReadContext) -> pl.DataFrame:
        df = df.with_row_index("_i").with_columns(pl.col("_i").cast(pl.Int64))
        ev = pl.col("ev")
        # Sessions: session-id; a second connect under the same id starts a new one.
        sid = pl.coalesce(pl.col("session_id"), pl.lit("#L") + pl.col("line").cast(pl.String))
        df = df.with_columns(sid.alias("sid"), (ev == "+").alias("is_connect"))
        plus_before = (pl.col("is_connect").cast(pl.Int64).cum_sum() - pl.col("is_connect").cast(pl.Int64)).over("sid")
        df = df.with_columns((pl.col("is_connect") & (plus_before >= 1)).cast(pl.Int64).cum_sum().over("sid")
                             .alias("sno"))
        # The first session under an id in this file may have begun in the previous file (the log
        # rolls over mid-session): it is keyed by the server and the id alone, so its login joins.
        first = pl.col("sno") == 0
        df = df.with_columns(
            pl.when(first & pl.col("session_id").is_not_null())
            .then(pl.lit(f"{ctx.server or ''}#sid#") + pl.col("sid"))
            .otherwise(pl.lit(ctx.source + "#L") + pl.col("line").min().over("sid", "sno").cast(pl.String))
            .alias("session"))

        # Direction: the log type, else a vote of the session's payloads.
        is_msg = ev.is_in(["<", ">"])
        replyish = pl.col("data").fill_null("").str.contains(r"^[2-5][0-9][0-9](?:[ -]|$)")
        command_like = ~replyish & pl.col("data").is_not_null()
        vote_in = (is_msg & (((ev == ">") & replyish) | ((ev == "<") & command_like))).cast(pl.Int64)
        vote_out = (is_msg & (((ev == "<") & replyish) | ((ev == ">") & command_like))).cast(pl.Int64)
        log_type = pl.col("log_type").fill_null("").str.strip_chars()
        voted = (pl.when(vote_out.sum().over("session") > vote_in.sum().over("session")).then(pl.lit("out"))
                 .when(vote_in.sum().over("session") > 0).then(pl.lit("in"))
                 .when(pl.col("local_ep").is_null().any().over("session")).then(pl.lit("out"))
                 .otherwise(pl.lit("in")))
        df = df.with_columns(
            pl.when(log_type == grammar.RECEIVE_LOG_TYPE).then(pl.lit("in"))
            .when(log_type == grammar.SEND_LOG_TYPE).then(pl.lit("out")).otherwise(voted).alias("direction"))
        inbound = pl.col("direction") == "in"
        is_reply = is_msg & ((inbound & (ev == ">")) | (~inbound & (ev == "<")))
        reply = pl.col("data").str.extract_groups(anchored(smtp_grammar.REPLY))
        df = df.with_columns(
            is_reply.alias("is_reply"),
            pl.when(is_reply).then(reply.struct.field("code").cast(pl.Int64, strict=False)).alias("code"),
            pl.when(is_reply).then(reply.struct.field("reply_text")).alias("reply_text"),
            pl.when(is_msg & ~is_reply).then(pl.col("data")).alias("cmd_payload"),
        )
        df = command_columns(df, payload_col="cmd_payload", is_reply_col="is_reply", session_col="session")
        df = df.with_columns(
            pl.when(ev == "+").then(pl.lit("connect"))
            .when(pl.col("is_reply")).then(pl.lit("reply"))
            .when(pl.col("smtp_event").is_in(list(COMMAND_EVENTS))).then(pl.col("smtp_event"))
            .when(pl.col("cmd_payload").is_not_null()).then(pl.lit("command"))
            .otherwise(pl.lit("note")).alias("event"),
        )
        df = df.with_columns(
            pl.when(pl.col("event").is_in(["connect", "reply", "note"])).then(None).otherwise(pl.col("smtp_event"))
            .alias("smtp_event"))
        df = envelope_columns(df, payload_col="cmd_payload", session_col="session")
        df = self._pair(df)
        df = self._auth(df)

        remote_ip = _endpoint_ip(pl.col("remote_ep"))
        conn = pl.col("connector_id").str.extract_groups(anchored(grammar.CONNECTOR))
        data_text = pl.col("data").fill_null("")
        note_text = (pl.when(pl.col("data").is_not_null() & pl.col("context").is_not_null())
                     .then(data_text + pl.lit(" (") + pl.col("context") + pl.lit(")"))
                     .otherwise(pl.coalesce(pl.col("data"), pl.col("context"), pl.lit(""))))
        return df.with_columns(
            pl.lit(ctx.source).alias("source"),
            pl.lit(self.name).alias("format"),
            pl.coalesce(pl.lit(ctx.server, pl.String), conn.struct.field("conn_server")).alias("server"),
            pl.when(inbound).then(remote_ip).otherwise(None).alias("client_ip"),
            pl.when(inbound).then(None).otherwise(remote_ip).alias("relay_host"),
            pl.when(is_msg).then(data_text).otherwise(note_text).alias("text"),
        )

    @staticmethod
    def _pair(df: pl.DataFrame) -> pl.DataFrame:
        """``reply``/``reply_text``/``reply_line`` on command rows, in pipelining order (module doc)."""
        is_cmd = ~pl.col("event").is_in(["connect", "reply", "note"])
        final = (pl.col("is_reply") & pl.col("code").is_not_null() & (pl.col("code") != 334)
                 & (pl.col("data").str.slice(3, 1) != "-"))
        sub = df.filter(is_cmd | final).select("_i", "session", is_cmd.alias("_cmd"))
        prev_cmd = pl.col("_cmd").shift(1).over("session").fill_null(True)
        sub = sub.with_columns((pl.col("_cmd") & ~prev_cmd).cast(pl.Int64).cum_sum().over("session").alias("_seg"))
        sub = sub.with_columns(pl.int_range(pl.len()).over("session", "_seg", "_cmd").alias("_rank"))
        replies = sub.filter(~pl.col("_cmd")).select("session", "_seg", "_rank", pl.col("_i").alias("_r"))
        pairs = sub.filter(pl.col("_cmd")).join(replies, on=["session", "_seg", "_rank"]).select("_i", "_r")
        own = df.select(pl.col("_i").alias("_r"), pl.col("line").alias("reply_line"), pl.col("code").alias("_pc"),
                        pl.col("reply_text").alias("_pt"))
        pairs = pairs.join(own, on="_r").drop("_r")
        df = df.join(pairs, on="_i", how="left", maintain_order="left")
        return df.with_columns(
            pl.when(pl.col("is_reply")).then(pl.col("code")).otherwise(pl.col("_pc")).alias("reply"),
            pl.when(pl.col("is_reply")).then(None).otherwise(pl.col("_pt")).alias("reply_text"),
        ).drop("_pc", "_pt")

    @staticmethod
    def _auth(df: pl.DataFrame) -> pl.DataFrame:
        """``status`` on AUTH rows; ``auth_user`` from the ``authenticated`` information row (or a
        logged initial response, decoded once per distinct value)."""
        is_auth = (pl.col("event") == "auth") & (pl.col("verb") == "AUTH")
        df = df.with_columns(
            pl.when(is_auth & (pl.col("reply") == 235)).then(pl.lit("ok"))
            .when(is_auth & (pl.col("reply") >= 400)).then(pl.lit("failed")).otherwise(None).alias("status"),
            pl.when(is_auth).then(pl.col("cmd_payload").str.extract(r"^[A-Za-z]+[ \t]+([A-Za-z0-9_-]+)", 1)
                                  .str.to_uppercase()).alias("_mech"),
            pl.when(is_auth).then(pl.col("cmd_payload").str.extract(r"^[A-Za-z]+[ \t]+[A-Za-z0-9_-]+[ \t]+([^ \t<>]+)$",
                                                                     1)).alias("_data"),
        )
        wanted = df.filter(pl.col("_data").is_not_null()).select("_mech", "_data").unique()
        lookup = pl.DataFrame([(m, d, auth_user(m, None, d)) for m, d in wanted.iter_rows()],
                              schema={"_mech": pl.String, "_data": pl.String, "_decoded": pl.String}, orient="row")
        df = df.join(lookup, on=["_mech", "_data"], how="left", maintain_order="left")
        account = (pl.when((pl.col("ev") == "*") & (pl.col("context").fill_null("").str.strip_chars()
                                                     .str.to_lowercase() == "authenticated"))
                   .then(pl.col("data")).otherwise(None))
        df = df.with_columns(account.alias("_account"))
        later = pl.col("_account").forward_fill().over("session")
        answered = pl.when(pl.col("status") == "ok").then(pl.col("_account").backward_fill().over("session"))
        return df.with_columns(pl.coalesce(pl.col("_decoded"), later, answered).alias("auth_user")).drop(
            "_mech", "_data", "_decoded", "_account")
