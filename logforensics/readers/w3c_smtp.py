"""Reader for the IIS SMTP service / Exchange 2000-2003 SMTP protocol log -> common events.

Both layouts of the service's log are read here (grammar: :mod:`grammars.w3c_smtp`):

* **W3C extended** (``exYYMMDD.log``): every data line is parsed by the most recent ``#Fields:``
  directive (header blocks reappear mid-file and the field set may change there). Data lines
  before any ``#Fields`` (a file without one, or an excerpt) are read with the IIS 5/6 default
  set, with a warning naming the file and the assumed fields. Times are UTC. A field set with
  ``time`` but no ``date`` takes the day of the last ``#Date:`` directive with each line's own
  time (midnight crossings counted, see :func:`_days_from_date_directive`); one with neither
  (IIS 7 can be set up so) takes the ``#Date:`` time itself; both with a warning. A line with fewer
  fields than ``#Fields`` whose fields that are there pass their checks (date, time, IPs, numbers;
  the command among them) was cut short: it is kept, the missing trailing fields empty, with a
  ``path:line`` warning; lines with too many fields or garbage are skipped with warnings.
* **NCSA common** (same service): ``c-ip - helo [dd/Mon/yyyy:hh:mm:ss -0600] "VERB -?args SMTP"
  status bytes``; local time with its UTC offset.
* **IIS log format** (comma separated, ``inYYMMDD.log``): local M/D/YY times in the site's time
  zone; without a site time zone they are read as UTC and the reader warns, as for other
  local-time formats.

``+`` in the query value (the same rule for all three layouts; :func:`grammars.w3c_smtp.decode_value`):
IIS writes each space as ``+`` and does not escape a literal ``+``, so the position decides. Outside
``<...>`` a ``+`` is a space (``+TO:+<a@b>``, ``<a@b>+SIZE=1722``, reply texts). Inside ``<...>`` it is
a space only within a double-quoted string (KB Q264330: ``<"IMCEA+user@domain2.com"@local.example>``
is ``"IMCEA user@domain2.com"@local.example``) and a literal ``+`` elsewhere, because an unquoted
space can never be part of an address while a ``+`` often is (``user+tag``, the IMCEA encodings
``IMCEASMTP-victim7+40example+2Enet@corp.example``, ``IMCEAEX-..._OU=FIRST+20ADMINISTRATIVE...``).

Rows (one per data line; directives are counted as ``not_mail``):

* inbound lines (user-name column = the client's HELO argument): one command row per line with
  ``verb`` = the method, the server's reply code in ``reply`` (the reply text is not logged),
  ``client_ip``, ``helo``; ``sender``/``recipient`` from the MAIL/RCPT argument; ``message`` = the
  DATA argument (the message id); ``auth`` rows get ``status`` ok (235) or failed (4xx/5xx);
* outbound lines (``OutboundConnectionCommand`` / ``OutboundConnectionResponse``): command rows
  and ``reply`` rows, ``direction`` out, ``relay_host`` = the remote IP; each command is paired
  with the next response from the same remote IP (``reply``, ``reply_text``, ``reply_line``).

Sessions (no session id is logged, so this is a heuristic): inbound lines are grouped by client
IP, a new session starting at HELO/EHLO, after QUIT, or after a gap of more than 10 minutes;
outbound lines by remote IP, a new session starting at a ``220`` banner, at an EHLO/HELO not
preceded by one, at a command after QUIT, or after a 10-minute gap. Keys are
``SOURCE#IP#L<first line>``.
"""

from __future__ import annotations

import re
from typing import ClassVar

import polars as pl

from grammars import smtp as smtp_grammar
from grammars import w3c_smtp as grammar
from grammars.common import anchored
from logforensics.readers.auth_decode import auth_user
from logforensics.readers.base import ReadContext, ReadResult, bad_line_warnings, excerpt
from logforensics.readers.smtp_columns import VERB_EVENTS, envelope_columns, pair_replies
from logforensics.schema import UTC_DATETIME, conform, empty_events
from logforensics.timeconv import full_year, wall_clock_to_utc

SESSION_GAP = pl.duration(minutes=10)

#: Event names a command row may carry (schema vocabulary); other verbs are ``command``.
COMMAND_EVENTS = {"helo", "auth", "mail", "rcpt", "data", "rset", "quit", "starttls"}

_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)}

#: Columns of a data line the reader uses (W3C group names).
_WANTED = ("date", "time", "c_ip", "cs_username", "s_computername", "cs_method", "cs_uri_query",
           "sc_status")


def _w3c_null(col: pl.Expr) -> pl.Expr:
    """``-`` (and empty) -> null."""
    return pl.when(col.is_in(["-", ""])).then(None).otherwise(col)


def _decode(query: pl.Series) -> pl.Expr:
    """The query values as text by the ``+`` rule (:func:`grammars.w3c_smtp.decode_value`): every
    ``+`` a space, except in the few distinct values with a ``+`` or quote inside ``<...>``, which
    are decoded one by one."""
    plain = pl.col("query").str.replace_all("+", " ", literal=True)
    special = query.filter(query.str.contains(grammar.NEEDS_ADDRESS_DECODE).fill_null(False)).unique()
    if special.is_empty():
        return plain
    mapping = {v: grammar.decode_value(v) for v in special.to_list()}
    return (pl.when(pl.col("query").is_in(list(mapping))).then(pl.col("query").replace(mapping))
            .otherwise(plain))


def _days_from_date_directive(df: pl.DataFrame, hour: pl.Expr, minute: pl.Expr, second: pl.Expr
                              ) -> pl.DataFrame:
    """``tod_ts``: a time-only line's UTC time, the day of the last ``#Date`` directive plus the days
    its time has wrapped past midnight since that directive.

    Lines follow the ``#Date`` in time order, so a time more than an hour earlier than the one
    before it (the first line's "before" is the ``#Date`` time itself) means midnight has passed:
    the next day. A time up to an hour earlier is a line logged late (IIS writes a line when the
    command finishes), the same day; a time more than 23 hours later than the one before it is
    such a late line from before midnight (23:59:58 after 00:00:01): the day before. Days counted
    from each ``#Date`` afresh; lines with no valid time count for nothing.
    """
    valid = hour.is_between(0, 23) & minute.is_between(0, 59) & second.is_between(0, 59)
    tod = pl.when(valid).then(hour * 3600 + minute * 60 + second).otherwise(None)
    anchor = pl.col("date_anchor")
    anchor_tod = (anchor.dt.hour().cast(pl.Int64) * 3600 + anchor.dt.minute().cast(pl.Int64) * 60
                  + anchor.dt.second().cast(pl.Int64))
    df = df.with_columns(tod.cast(pl.Int64).alias("tod"))
    before = pl.col("tod").shift(1).forward_fill().over("date_seg")
    step = pl.col("tod") - pl.coalesce(before, anchor_tod)
    wrap = (pl.when(step < -3600).then(1).when(step > 23 * 3600).then(-1).otherwise(0)
            .fill_null(0).cast(pl.Int64))
    df = df.with_columns(wrap.cum_sum().over("date_seg").alias("day_wraps"))
    return df.with_columns(
        (anchor.dt.truncate("1d") + pl.duration(days=pl.col("day_wraps"), seconds=pl.col("tod")))
        .alias("tod_ts"))


def _truncated_warnings(source: str, cut: pl.DataFrame, limit: int = 20) -> list[str]:
    """``path:line:`` warnings for data lines kept although cut short."""
    out = []
    for row in cut.head(limit).iter_rows(named=True):
        missing = row["field_list"].split(" ")[row["n_present"]:]
        out.append(f"{source}:{row['line']}: line has {row['n_present']} of the {row['n_fields']} #Fields "
                   f"fields (cut off?); kept, with the missing trailing fields empty "
                   f"({' '.join(missing)}): {excerpt(row['raw'])}")
    if cut.height > limit:
        out.append(f"{source}: {cut.height - limit} more lines cut short; kept with missing trailing fields empty")
    return out


_DEFAULT_LINE = re.compile(anchored(grammar.data_pattern(grammar.DEFAULT_FIELDS)))
_IP = re.compile(r"^[0-9A-Fa-f.:]+$")


def _smtp_data_line(text: str) -> bool:
    """A header-less data line of the default field set that is plainly the SMTP service's."""
    m = _DEFAULT_LINE.match(text)
    if not m:
        return False
    return (bool(_IP.match(m["c_ip"])) and m["cs_version"] == "SMTP"
            and (m["s_sitename"].upper().startswith("SMTPSVC") or m["cs_method"] != ""))


class W3cSmtpReader:
    """IIS SMTP / Exchange 2000-2003 SMTP protocol log (W3C extended, or NCSA)."""

    name: ClassVar[str] = "w3c-smtp"
    description: ClassVar[str] = (
        "IIS SMTP service / Exchange 2000-2003 SMTP protocol log (SMTPSVC1\\exYYMMDD.log): W3C extended "
        "parsed by each #Fields block (UTC), and the same service's NCSA (local time + offset) and IIS "
        "comma-separated (local time) formats")

    def sniff(self, head: list[str]) -> float:
        """IIS directives with SMTP-service lines, or W3C/NCSA data lines of the SMTP service."""
        if any(h.startswith("#Software: Microsoft Exchange") for h in head):
            return 0.0
        iis = any(h.lstrip("\ufeff").startswith("#Software: Microsoft Internet Information Services")
                  for h in head)
        data = [h for h in head if h.strip() and not h.startswith("#")]
        smtp = [h for h in data if " SMTPSVC" in h or " SMTP " in h or "OutboundConnection" in h]
        if iis and (smtp or not data):
            return 0.95 if smtp else 0.5
        w3c = sum(1 for h in smtp if _smtp_data_line(h))
        ncsa = sum(1 for h in data if " SMTP\" " in h and grammar.ncsa_line.matches(h, parse_all=True))
        native = sum(1 for h in data if ", SMTPSVC" in h and grammar.native_line.matches(h, parse_all=True))
        if data and (w3c + ncsa + native) * 2 >= len(data):
            return 0.85
        return 0.0

    def read(self, lines: pl.Series, ctx: ReadContext) -> ReadResult:
        frame = pl.DataFrame({"raw": lines}).with_row_index("line", offset=1)
        frame = frame.with_columns(pl.col("line").cast(pl.Int64), pl.col("raw").str.strip_prefix("\ufeff"))
        total = frame.height
        warnings: list[str] = []
        frame = frame.with_columns(
            (pl.col("raw").str.strip_chars() == "").alias("blank"),
            pl.col("raw").str.extract_groups(anchored(grammar.DIRECTIVE)).alias("d"),
        ).unnest("d")
        frame = frame.with_columns(
            pl.col("directive").is_not_null().alias("is_directive"),
            (pl.col("directive").str.to_lowercase() == "fields").fill_null(False).alias("is_fields"),
        )
        date_dir = pl.col("value").str.extract_groups(anchored(grammar.DATE_VALUE))
        is_date = (pl.col("directive").str.to_lowercase() == "date").fill_null(False)
        frame = frame.with_columns(
            pl.col("is_fields").cum_sum().alias("block"),
            is_date.cum_sum().alias("date_seg"),
            pl.when(pl.col("directive").str.to_lowercase() == "date").then(date_dir).otherwise(None)
            .alias("dd"),
        )
        frame = frame.with_columns(
            pl.when(pl.col("dd").struct.field("year").is_not_null()).then(wall_clock_to_utc(
                *(pl.col("dd").struct.field(f).cast(pl.Int32, strict=False)
                  for f in ("year", "month", "day", "hour", "minute", "second")), "UTC"))
            .otherwise(None).forward_fill().alias("date_anchor"),
        )
        blank = int(frame["blank"].sum())
        directives = int(frame["is_directive"].sum())
        data = frame.filter(~pl.col("blank") & ~pl.col("is_directive"))

        ncsa = data.with_columns(pl.col("raw").str.extract_groups(anchored(grammar.NCSA)).alias("n")
                                 ).unnest("n").filter(pl.col("c_ip").is_not_null())
        native = data.join(ncsa.select("line"), on="line", how="anti").with_columns(
            pl.col("raw").str.extract_groups(anchored(grammar.IIS_NATIVE)).alias("n")
        ).unnest("n").filter(pl.col("n_ip").is_not_null())
        w3c_input = data.join(pl.concat([ncsa.select("line"), native.select("line")]), on="line", how="anti")
        parts = [self._ncsa_rows(ncsa)] if ncsa.height else []
        if native.height:
            parts.append(self._native_rows(native, ctx.site.zone()))
        fields_by_block = {int(b): grammar.split_fields(v) for b, v in frame.filter(pl.col("is_fields"))
                           .select("block", "value").iter_rows()}
        time_modes: set[str] = set()
        for block in w3c_input["block"].unique().sort().to_list():
            fields = fields_by_block.get(block, list(grammar.DEFAULT_FIELDS))
            sub = w3c_input.filter(pl.col("block") == block)
            rows, mode = self._w3c_rows(sub, fields)
            n_ok = int(rows["ok"].sum())
            if n_ok:
                time_modes.add(mode)
            if block == 0 and n_ok:
                where = (f"data lines before the first #Fields directive (line "
                         f"{frame.filter(pl.col('is_fields'))['line'][0]})" if fields_by_block
                         else "no #Fields directive in the file; its data lines")
                warnings.append(f"{ctx.source}: {where} read with the assumed IIS 5.0/6.0 SMTP default "
                                f"fields: {' '.join(grammar.DEFAULT_FIELDS)} ({n_ok} of "
                                f"{sub.height} such lines matched them)")
            parts.append(rows)
        if "time-only" in time_modes:
            warnings.append(f"{ctx.source}: a #Fields set has time but no date; each line's day is taken "
                            "from the last #Date directive (a time more than an hour earlier than the "
                            "line before it is taken as the next day)")
        if "anchor" in time_modes:
            warnings.append(f"{ctx.source}: a #Fields set has no date/time; times are taken from the "
                            "last #Date directive (accurate to the header block only)")
        rows = (pl.concat(parts, how="diagonal_relaxed") if parts else
                pl.DataFrame(schema={"line": pl.Int64, "raw": pl.String, "ts": UTC_DATETIME, "ok": pl.Boolean}))
        rows = rows.sort("line")
        parsed = rows.filter(pl.col("ok")) if rows.height else rows
        bad_shape = data.join(parsed.select("line"), on="line", how="anti")
        bad_ts = parsed.filter(pl.col("ts").is_null())
        if bad_shape.height:
            warnings += bad_line_warnings(ctx.source, bad_shape.select("line", "raw"),
                                          "not a data line of the current #Fields set")
        if bad_ts.height:
            warnings += bad_line_warnings(ctx.source, bad_ts.select("line", "raw"),
                                          "no valid date/time for this line")
        if "n_present" in parsed.columns:
            warnings += _truncated_warnings(ctx.source, parsed.filter(
                pl.col("n_present").is_not_null() & pl.col("ts").is_not_null()))
        good = parsed.filter(pl.col("ts").is_not_null())
        events = self._events(good, ctx) if good.height else None
        return ReadResult(
            events=conform(events) if events is not None else empty_events(),
            lines=total,
            skipped=bad_shape.height + bad_ts.height,
            blank=blank,
            not_mail=directives,
            warnings=warnings,
            wall_clock=native.height,  # the IIS format's local times (W3C is UTC, NCSA has its offset)
        )

    # -- line layouts -> one normal form ----------------------------------------------------------

    @staticmethod
    def _w3c_rows(sub: pl.DataFrame, fields: list[str]) -> tuple[pl.DataFrame, str]:
        """The normal form of one ``#Fields`` block's lines, and how their times were found: ``own``
        (date and time fields), ``time-only`` (the #Date day with each line's time) or ``anchor``
        (the #Date time itself)."""
        names = grammar.group_names(fields)
        ext = sub.with_columns(
            pl.col("raw").str.extract_groups(anchored(grammar.data_pattern(fields))).alias("w")
        ).unnest("w")
        full = ext.filter(pl.col(names[0]).is_not_null()).with_columns(
            pl.lit(True).alias("ok"), pl.lit(None, pl.Int64).alias("n_present"))
        # A line cut short (a truncated last line): kept when only trailing fields are missing,
        # i.e. the fields that are there pass their checks and the command is among them.
        short = ext.filter(pl.col(names[0]).is_null()).drop(names).with_columns(
            pl.col("raw").str.strip_chars_end(" \t").str.extract_groups(
                anchored(grammar.truncated_pattern(fields))).alias("w")
        ).unnest("w")
        present = [pl.col(n).is_not_null() for n in names]
        checks = [pl.col(names[0]).is_not_null()]
        checks += [pl.col(n).is_null() | pl.col(n).str.contains(anchored(grammar.FIELD_CHECKS[n]) + "$")
                   for n in names if n in grammar.FIELD_CHECKS]
        checks += [pl.col(n).is_not_null() for n in ("date", "time", "cs_method") if n in names]
        short = short.with_columns(
            pl.all_horizontal(checks).fill_null(False).alias("ok"),
            pl.sum_horizontal(present).cast(pl.Int64).alias("n_present"))
        ext = pl.concat([full, short], how="diagonal_relaxed").sort("line")
        for name in _WANTED:
            if name not in names:
                ext = ext.with_columns(pl.lit(None, pl.String).alias(name))
        d = pl.col("date").str.extract_groups(anchored(grammar.W3C_DATE))
        t = pl.col("time").str.extract_groups(anchored(grammar.W3C_TIME))
        ext = ext.with_columns(d.alias("dparts"), t.alias("tparts"))

        def part(struct: str, f: str) -> pl.Expr:
            return pl.col(struct).struct.field(f).cast(pl.Int32, strict=False)

        if "date" in names and "time" in names:
            mode = "own"
            ts = wall_clock_to_utc(part("dparts", "year"), part("dparts", "month"), part("dparts", "day"),
                                   part("tparts", "hour"), part("tparts", "minute"), part("tparts", "second"),
                                   "UTC")
        elif "time" in names:
            mode = "time-only"
            ext = _days_from_date_directive(ext, part("tparts", "hour"), part("tparts", "minute"),
                                            part("tparts", "second"))
            ts = pl.col("tod_ts")
        else:
            mode = "anchor"
            ts = pl.col("date_anchor")
        # A cut line whose time is no time is not a data line (a whole one is: "no valid date/time").
        ok = pl.col("ok") & (pl.col("n_present").is_null() | ts.is_not_null())
        out = ext.select(
            "line", "raw", ok.alias("ok"), ts.alias("ts"),
            _w3c_null(pl.col("c_ip")).alias("c_ip"),
            _w3c_null(pl.col("cs_username")).alias("user"),
            _w3c_null(pl.col("s_computername")).alias("host"),
            _w3c_null(pl.col("cs_method")).alias("method"),
            _w3c_null(pl.col("cs_uri_query")).alias("query"),
            pl.col("sc_status").cast(pl.Int64, strict=False).alias("status"),
            "n_present", pl.lit(len(names), pl.Int64).alias("n_fields"),
            pl.lit(" ".join(fields)).alias("field_list"),
        )
        return out, mode

    @staticmethod
    def _ncsa_rows(ncsa: pl.DataFrame) -> pl.DataFrame:
        naive = pl.format("{}-{}-{} {}:{}:{}", pl.col("year"),
                          pl.col("mon").str.to_lowercase().replace_strict(_MONTHS, default=None,
                                                                          return_dtype=pl.Int32),
                          pl.col("day"), pl.col("hour"), pl.col("minute"), pl.col("second")
                          ).str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False, time_unit="us")
        off = pl.col("offset")
        minutes = (off.str.slice(1, 2).cast(pl.Int64) * 60 + off.str.slice(3, 2).cast(pl.Int64))
        signed = pl.when(off.str.starts_with("-")).then(-minutes).otherwise(minutes)
        ts = (naive - pl.duration(minutes=signed)).dt.replace_time_zone("UTC").cast(UTC_DATETIME)
        return ncsa.select(
            "line", "raw", pl.lit(True).alias("ok"), ts.alias("ts"),
            _w3c_null(pl.col("c_ip")).alias("c_ip"),
            _w3c_null(pl.col("user")).alias("user"),
            pl.lit(None, pl.String).alias("host"),
            _w3c_null(pl.col("method")).alias("method"),
            _w3c_null(pl.col("query")).alias("query"),
            pl.col("status").cast(pl.Int64, strict=False).alias("status"),
        )

    @staticmethod
    def _native_rows(native: pl.DataFrame, zone: str) -> pl.DataFrame:
        """IIS native lines: local time (the site's zone), command ``MAIL FROM`` + parameters."""
        ts = wall_clock_to_utc(full_year(pl.col("n_year")), *(pl.col(c).cast(pl.Int32, strict=False) for c in (
            "n_month", "n_day", "n_hour", "n_minute", "n_second")), zone)
        command = pl.col("n_command").str.strip_chars()
        return native.select(
            "line", "raw", pl.lit(True).alias("ok"), ts.alias("ts"),
            _w3c_null(pl.col("n_ip")).alias("c_ip"),
            _w3c_null(pl.col("n_user").str.strip_chars()).alias("user"),
            _w3c_null(pl.col("n_server").str.strip_chars()).alias("host"),
            _w3c_null(command.str.extract(r"^([A-Za-z]+)", 1)).alias("method"),
            _w3c_null(pl.col("n_params").str.strip_chars()).alias("query"),
            pl.col("n_status").cast(pl.Int64, strict=False).alias("status"),
        )

    # -- normal form -> events --------------------------------------------------------------------

    def _events(self, df: pl.DataFrame, ctx: ReadContext) -> pl.DataFrame:
        user = pl.col("user").fill_null("")
        is_resp = user == grammar.OUTBOUND_RESPONSE
        is_out = is_resp | (user == grammar.OUTBOUND_COMMAND)
        arg = _decode(df["query"]).str.strip_chars(" ")
        verb = pl.col("method").str.to_uppercase()
        df = df.with_columns(
            is_resp.alias("is_reply"),
            pl.when(is_out).then(pl.lit("out")).otherwise(pl.lit("in")).alias("direction"),
            pl.when(is_resp).then(None).otherwise(verb).alias("verb"),
            arg.alias("arg"),
        )
        df = df.with_columns(
            pl.when(pl.col("is_reply")).then(pl.col("arg").fill_null(""))
            .when(pl.col("arg").is_not_null() & (pl.col("arg") != ""))
            .then(pl.col("verb").fill_null("") + pl.lit(" ") + pl.col("arg"))
            .otherwise(pl.col("verb").fill_null("")).alias("payload"),
        )
        reply = pl.col("payload").str.extract_groups(anchored(smtp_grammar.REPLY))
        df = df.with_columns(reply.alias("rep")).unnest("rep")
        df = df.with_columns(
            pl.when(pl.col("is_reply")).then(pl.col("code").cast(pl.Int64, strict=False))
            .otherwise(None).alias("code"),
            pl.when(pl.col("is_reply")).then(pl.col("reply_text")).otherwise(None).alias("reply_text"),
            pl.when(pl.col("is_reply")).then(pl.lit("reply"))
            .when(pl.col("verb").is_null()).then(pl.lit("note"))
            .otherwise(pl.col("verb").replace_strict(VERB_EVENTS, default="command", return_dtype=pl.String))
            .alias("smtp_event"),
        )
        df = df.with_columns(
            pl.when(pl.col("smtp_event").is_in([*COMMAND_EVENTS, "reply", "note"]))
            .then(pl.col("smtp_event")).otherwise(pl.lit("command")).alias("event"),
            pl.lit(False).alias("is_connect"),
        )
        df = self._sessions(df, ctx)
        df = df.with_columns(
            pl.when(pl.col("event").is_in(["reply", "note"])).then(None).otherwise(pl.col("event"))
            .alias("smtp_event"))
        df = envelope_columns(df, payload_col="payload", session_col="session")
        df = pair_replies(df, session_col="session")

        inbound = pl.col("direction") == "in"
        own_status = pl.when(pl.col("status").is_between(100, 599)).then(pl.col("status")).otherwise(None)
        reply_code = pl.when(inbound).then(own_status).otherwise(pl.col("reply"))
        df = df.with_columns(
            reply_code.alias("reply"),
            pl.when(inbound).then(None).otherwise(pl.col("reply_text")).alias("reply_text"),
            pl.when(inbound).then(None).otherwise(pl.col("reply_line")).alias("reply_line"),
        )
        df = self._auth(df)
        message = (pl.when(inbound & (pl.col("event") == "data"))
                   .then(pl.col("arg").str.strip_chars().str.strip_prefix("<").str.strip_suffix(">"))
                   .otherwise(None))
        df = df.with_columns(
            pl.lit(ctx.source).alias("source"),
            pl.lit(W3cSmtpReader.name).alias("format"),
            pl.coalesce(pl.col("host"), pl.lit(ctx.server, pl.String)).alias("server"),
            pl.when(message == "").then(None).otherwise(message).alias("message"),
            pl.when(inbound).then(pl.col("c_ip")).otherwise(None).alias("client_ip"),
            pl.when(inbound).then(None).otherwise(pl.col("c_ip")).alias("relay_host"),
            pl.when(inbound).then(pl.coalesce(pl.col("user"), pl.col("helo")))
            .otherwise(pl.col("helo")).alias("helo"),
            pl.col("payload").alias("text"),
        )
        return df

    @staticmethod
    def _sessions(df: pl.DataFrame, ctx: ReadContext) -> pl.DataFrame:
        key = ["c_ip", "direction"]
        df = df.with_columns(pl.col("c_ip").fill_null("-"))
        prev_ts = pl.col("ts").shift(1).over(key)
        gap = ((pl.col("ts") - prev_ts) > SESSION_GAP).fill_null(False)
        first = pl.col("line") == pl.col("line").min().over(key)
        is_cmd = ~pl.col("is_reply")
        prev_verb = pl.col("verb").shift(1).over(key)
        last_cmd_before = pl.when(is_cmd).then(pl.col("verb")).otherwise(None).forward_fill().shift(1).over(key)
        prev_banner = (pl.col("is_reply") & (pl.col("code") == 220)).shift(1).over(key).fill_null(False)
        helo = pl.col("verb").is_in(["HELO", "EHLO"]).fill_null(False)
        start_in = first | helo | (prev_verb == "QUIT").fill_null(False) | gap
        start_out = (first | gap
                     | (pl.col("is_reply") & (pl.col("code") == 220)).fill_null(False)
                     | (is_cmd & helo & ~prev_banner)
                     | (is_cmd & (last_cmd_before == "QUIT").fill_null(False)))
        df = df.with_columns(
            pl.when(pl.col("direction") == "in").then(start_in).otherwise(start_out).alias("start"))
        df = df.with_columns(pl.col("start").cast(pl.Int64).cum_sum().over(key).alias("session_no"))
        first_line = pl.col("line").min().over([*key, "session_no"])
        return df.with_columns(
            (pl.lit(ctx.source + "#") + pl.col("c_ip") + pl.lit("#L") + first_line.cast(pl.String))
            .alias("session"),
            pl.when(pl.col("c_ip") == "-").then(None).otherwise(pl.col("c_ip")).alias("c_ip"),
        )

    @staticmethod
    def _auth(df: pl.DataFrame) -> pl.DataFrame:
        """``status`` ok/failed on AUTH rows; ``auth_user`` decoded from an initial response (once per
        distinct value) and carried on the session's later rows after a successful AUTH."""
        is_auth = (pl.col("event") == "auth") & (pl.col("direction") == "in")
        mech_data = pl.col("arg").str.extract_groups(r"^(?P<mech>[A-Za-z0-9_-]+)(?:[ \t]+(?P<data>[^ \t]+))?")
        df = df.with_columns(mech_data.alias("md")).unnest("md")
        df = df.with_columns(
            pl.when(is_auth).then(pl.col("mech").str.to_uppercase()).otherwise(None).alias("mech"),
            pl.when(is_auth).then(pl.col("data")).otherwise(None).alias("data"),
        )
        wanted = df.filter(pl.col("data").is_not_null()).select("mech", "data").unique()
        lookup = pl.DataFrame([(m, d, auth_user(m, None, d)) for m, d in wanted.iter_rows()],
                              schema={"mech": pl.String, "data": pl.String, "decoded": pl.String},
                              orient="row")
        df = df.join(lookup, on=["mech", "data"], how="left", nulls_equal=False, maintain_order="left")
        status = (pl.when(is_auth & (pl.col("reply") == 235)).then(pl.lit("ok"))
                  .when(is_auth & (pl.col("reply") >= 400)).then(pl.lit("failed")).otherwise(None))
        df = df.with_columns(status.alias("status"))
        ok_user = (pl.when(pl.col("status") == "ok").then(pl.col("decoded"))
                   .when(pl.col("event") == "helo").then(pl.lit(""))
                   .otherwise(None).forward_fill().over("session"))
        return df.with_columns(
            pl.coalesce(pl.col("decoded"), pl.when(ok_user == "").then(None).otherwise(ok_user))
            .alias("auth_user"))
