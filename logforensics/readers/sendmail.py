"""Reader for Sendmail 8.x logs (syslog ``maillog`` / ``mail.log``) -> common MTA events.

The envelope is :mod:`grammars.syslog` (via :func:`logforensics.readers.syslog.split_syslog`); the
message grammar is :mod:`grammars.sendmail`, whose patterns run here over whole Polars columns.

Rows (see ``schema.EVENTS``):

* ``from=`` with ``nrcpts`` > 0 -> ``received`` (``relay=`` is the sending client); with ``nrcpts=0``
  (every recipient refused, or the client gave up after MAIL) -> ``mail``;
* ``to=`` -> one ``deliver`` row per listed recipient (``relay=`` is the receiving host); ``status``:
  ``Sent`` -> sent, ``Deferred`` -> deferred, ``Cannot send message for N days`` -> expired, a
  ``dsn=5.x.x`` -> bounced, else the first word of ``stat=`` lower-cased (``queued``); ``direction``
  out for SMTP mailers (esmtp, smtp, relay, dsmtp, smtp8) to a non-loopback relay, else local;
* ``ruleset=check_rcpt ... reject=`` -> ``rcpt`` with the reply; ``check_mail`` -> ``mail``;
  ``check_relay`` -> ``connect``; ``check_vrfy``/``check_expn``/``check_etrn`` -> ``command``;
  ``<addr>... User unknown`` (a recipient refused during SMTP, no code logged) -> ``rcpt``;
* ``AUTH=server`` -> ``auth`` ok; ``AUTH failure`` and ``possible SMTP attack: command=AUTH`` ->
  ``auth`` failed; everything else from Sendmail -> ``note``.

``client_ip`` is the bare address (:func:`logforensics.readers.syslog.bare_ip`): ``relay=name
[IPv6:fd00:1::15]`` gives ``fd00:1::15``, an IPv4-mapped ``IPv6:::ffff:10.1.2.3`` gives ``10.1.2.3``.
``server`` is the envelope host made canonical (:func:`logforensics.readers.syslog.canonical_hosts`:
``smhub.initech.example`` next to ``smhub`` is ``smhub``).

Sendmail forks one process per SMTP connection, so ``(host, pid)`` is the session
(``session = source#host#pid``). ``AUTH=server`` carries no queue id: its ``authid`` goes to the
later ``from=`` rows of the same session and client. Refused recipients get the sender of the
``from=`` line of the same session and queue id.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import ClassVar

import polars as pl

from grammars import sendmail as grammar
from grammars import syslog as syslog_grammar
from grammars.common import anchored
from logforensics.readers.base import ReadContext, ReadResult, bad_line_warnings
from logforensics.readers.syslog import (
    bare_ip,
    canonical_hosts,
    first_dated_month,
    last_dated_month,
    split_syslog,
    syslog_times,
    wall_clock_stamps,
)
from logforensics.schema import EVENT_SCHEMA, conform

#: Mailers that hand the message to another host over SMTP.
SMTP_MAILERS = ("esmtp", "smtp", "relay", "dsmtp", "smtp8")

#: How long after an ``AUTH=server`` line its identity still applies to the session's messages.
AUTH_WINDOW = timedelta(hours=1)

#: Ruleset -> (event, verb) for reject lines; rulesets not listed become notes (with the reply).
RULESET_EVENTS: dict[str, tuple[str, str | None]] = {
    "check_rcpt": ("rcpt", "RCPT"),
    "check_mail": ("mail", "MAIL"),
    "check_relay": ("connect", None),
    "check_vrfy": ("command", "VRFY"),
    "check_expn": ("command", "EXPN"),
    "check_etrn": ("command", "ETRN"),
    "check_data": ("data", "DATA"),
    "check_eoh": ("data", "DATA"),
    "check_eom": ("data", "DATA"),
}

#: Milter stage -> (event, verb) for ``Milter: STAGE, reject=`` lines.
MILTER_EVENTS: dict[str, tuple[str, str | None]] = {
    "to": ("rcpt", "RCPT"),
    "from": ("mail", "MAIL"),
    "helo": ("helo", "HELO"),
    "connect": ("connect", None),
    "data": ("data", "DATA"),
    "eoh": ("data", "DATA"),
    "eom": ("data", "DATA"),
    "body": ("data", "DATA"),
    "header": ("data", "DATA"),
}

_TAG_RE = re.compile("^" + grammar.TAG + "$")
_ENVELOPE_RE = re.compile(syslog_grammar.LINE)
_PRIORITY_RE = re.compile(grammar.PRIORITY_PREFIX)


def _groups(pattern: str) -> list[str]:
    return list(re.compile(pattern).groupindex)


def _strip_brackets(col: pl.Expr) -> pl.Expr:
    """``<a@b>`` -> ``a@b`` (``<>`` -> empty string); bare addresses stay as they are."""
    return (pl.when(col.str.starts_with("<") & col.str.ends_with(">"))
            .then(col.str.slice(1, col.str.len_chars() - 2)).otherwise(col))


def message_columns(messages: pl.Series) -> pl.DataFrame:
    """Column path of the message grammar: ``kind``, ``qid``, ``body`` and every shape's fields.

    A field of shape ``s`` is the column ``s.field``; only the matched shape's fields are set.
    ``kind`` is the first shape that matches, as :func:`grammars.sendmail.parse_message` picks it.
    """
    frame = pl.DataFrame({"msg": messages}).with_columns(
        pl.col("msg").str.extract_groups(anchored(grammar.MESSAGE)).alias("m")).unnest("m")
    kind: pl.Expr = pl.lit(None, pl.String)
    for name in reversed(grammar.SHAPES):
        pattern = grammar.SHAPES[name]
        frame = frame.with_columns(pl.col("body").str.extract_groups(anchored(pattern)).alias("_s"))
        matched = pl.col("body").str.contains(anchored(pattern))
        frame = frame.with_columns(
            [pl.when(matched).then(pl.col("_s").struct.field(g)).alias(f"{name}.{g}")
             for g in _groups(pattern)] + [matched.alias(f"_is_{name}")]
        ).drop("_s")
    for name in reversed(grammar.SHAPES):
        kind = pl.when(pl.col(f"_is_{name}")).then(pl.lit(name)).otherwise(kind)
    frame = frame.with_columns(kind.alias("kind"))
    return frame.drop([c for c in frame.columns if c.startswith("_is_")])


class SendmailReader:
    """Sendmail 8.x (syslog)."""

    name: ClassVar[str] = "sendmail"
    description: ClassVar[str] = ("Sendmail 8.x via syslog (maillog, mail.log; tags sendmail, sm-mta, "
                                  "sm-msp-queue), server local time")

    def sniff(self, head: list[str]) -> float:
        """Syslog lines tagged ``sendmail`` or ``sm-*``; surer when they carry Sendmail's fields."""
        tagged = shaped = 0
        for text in head:
            text = _PRIORITY_RE.sub(lambda m: m["stamp"], text, count=1) if "<" in text else text
            m = _ENVELOPE_RE.match(text)
            if m is None or not _TAG_RE.match(m["tag"]):
                continue
            tagged += 1
            msg = m["msg"]
            if any(key in msg for key in ("from=", "to=", "ruleset=", "AUTH=", "STARTTLS=", "stat=",
                                          "did not issue", "possible SMTP attack", "lost input channel")):
                shaped += 1
        if shaped:
            return 0.9
        return 0.6 if tagged else 0.0

    def read(self, lines: pl.Series, ctx: ReadContext) -> ReadResult:
        zone = ctx.site.timezone or "UTC"
        lines = lines.cast(pl.String).alias("raw")
        cleaned = lines.str.replace(anchored(grammar.PRIORITY_PREFIX), "${stamp}")
        frame = split_syslog(cleaned).with_columns(lines.alias("raw"))
        frame = frame.with_columns(canonical_hosts(frame["host"], ctx.server))
        ts, time_warning = syslog_times(frame, zone, ctx.year_hint)
        frame = frame.with_columns(ts.alias("ts"))
        warnings: list[str] = []
        if time_warning is not None:
            warnings.append(f"{ctx.source}: {time_warning}")

        stripped = pl.col("raw").str.strip_chars()
        frame = frame.with_columns(
            (stripped == "").alias("is_blank"),
            stripped.str.starts_with("#").alias("is_comment"),
            pl.col("raw").str.contains(anchored(syslog_grammar.REPEATED)).alias("is_repeat"),
            pl.col("tag").str.contains("^" + grammar.TAG + "$").fill_null(False).alias("is_sm"),
        )
        frame = frame.with_columns(
            # A repeat of a Sendmail line is a Sendmail line (the previous tagged line decides).
            pl.when(pl.col("tag").is_not_null()).then(pl.col("is_sm")).otherwise(None)
            .forward_fill().shift(1).fill_null(False).alias("after_sm"),
        )
        blank = frame.filter(pl.col("is_blank"))
        comment = frame.filter(~pl.col("is_blank") & pl.col("is_comment"))
        rest = frame.filter(~pl.col("is_blank") & ~pl.col("is_comment"))
        repeat = rest.filter(pl.col("is_repeat"))
        rest = rest.filter(~pl.col("is_repeat"))
        not_syslog = rest.filter(pl.col("tag").is_null())
        other = rest.filter(pl.col("tag").is_not_null() & ~pl.col("is_sm"))
        mail = rest.filter(pl.col("is_sm"))
        repeat_mail = repeat.filter(pl.col("after_sm"))

        parsed = pl.concat([mail, message_columns(mail["msg"]).drop("msg")], how="horizontal")
        prefix_kind: pl.Expr = pl.lit(None, pl.String)
        for prefix, kind in reversed(grammar.STRICT_PREFIXES.items()):
            prefix_kind = pl.when(pl.col("body").str.starts_with(prefix)).then(pl.lit(kind)).otherwise(prefix_kind)
        parsed = parsed.with_columns(prefix_kind.alias("expected"))
        malformed = parsed.filter(pl.col("expected").is_not_null() & (pl.col("expected") != pl.col("kind")))
        parsed = parsed.filter(pl.col("expected").is_null() | (pl.col("expected") == pl.col("kind")))

        if not_syslog.height:
            warnings += bad_line_warnings(ctx.source, not_syslog, "not a syslog line")
        if malformed.height:
            warnings += bad_line_warnings(ctx.source, malformed, "malformed Sendmail line (cut off?)")
        no_time = parsed.filter(pl.col("ts").is_null()).height
        if no_time:
            warnings.append(f"{ctx.source}: {no_time} Sendmail lines have no timestamp (ts left empty)")

        events = self._events(parsed, repeat_mail, ctx)
        return ReadResult(
            events=events,
            lines=frame.height,
            skipped=not_syslog.height + malformed.height,
            blank=blank.height,
            not_mail=comment.height + other.height + repeat.height - repeat_mail.height,
            warnings=warnings,
            first_month=first_dated_month(frame, ts, zone),
            last_month=last_dated_month(ts, zone),
            wall_clock=wall_clock_stamps(frame),
        )

    # -- events ------------------------------------------------------------------------------

    def _events(self, parsed: pl.DataFrame, repeats: pl.DataFrame, ctx: ReadContext) -> pl.DataFrame:
        server = pl.coalesce(pl.col("host"), pl.lit(ctx.server, pl.String))
        common = [
            pl.col("ts"), pl.lit(ctx.source).alias("source"), pl.col("line"),
            pl.lit(self.name).alias("format"), server.alias("server"),
            pl.when(pl.col("pid").is_not_null())
            .then(pl.lit(ctx.source + "#") + server.fill_null("") + pl.lit("#") + pl.col("pid").cast(pl.String))
            .alias("session"),
            pl.col("qid").alias("message"), pl.col("msg").alias("text"),
        ]
        k = parsed.get_column("kind")
        frames = [
            self._from_rows(parsed.filter(k == "from"), common),
            self._to_rows(parsed.filter(k == "to"), common),
            self._ruleset_rows(parsed.filter(k == "ruleset"), common),
            self._auth_rows(parsed.filter(k == "auth"), common),
            self._client_rows(parsed.filter(k == "auth_failure"), "auth_failure", common, [
                pl.lit("auth").alias("event"), pl.lit("AUTH").alias("verb"), pl.lit("failed").alias("status"),
                pl.col("auth_failure.user").alias("auth_user"), pl.lit("in").alias("direction")]),
            self._client_rows(parsed.filter(k == "attack"), "attack", common, [
                pl.when(pl.col("attack.command").str.to_uppercase() == "AUTH").then(pl.lit("auth"))
                .otherwise(pl.lit("note")).alias("event"),
                pl.col("attack.command").str.to_uppercase().alias("verb"),
                pl.when(pl.col("attack.command").str.to_uppercase() == "AUTH").then(pl.lit("failed"))
                .alias("status"), pl.lit("in").alias("direction")]),
            self._client_rows(parsed.filter(k == "vrfy_expn"), "vrfy_expn", common, [
                pl.lit("command").alias("event"), pl.col("vrfy_expn.verb").str.to_uppercase().alias("verb"),
                pl.col("vrfy_expn.arg").alias("recipient"),
                pl.when(pl.col("vrfy_expn.rejected").is_not_null()).then(pl.lit("rejected")).alias("status"),
                pl.lit("in").alias("direction")]),
            *[self._client_rows(parsed.filter(k == kind), kind, common, [
                pl.lit("note").alias("event"), pl.lit("in").alias("direction")])
              for kind in ("no_mail", "lost_input", "pregreet")],
            self._user_error_rows(parsed.filter(k == "user_error"), common),
            self._milter_rows(parsed.filter(k == "milter_reject"), common),
            self._starttls_rows(parsed.filter(k == "starttls"), common),
            parsed.filter(k == "note").select(*common, pl.lit("note").alias("event")),
        ]
        if repeats.height:
            frames.append(repeats.with_columns(pl.lit(None, pl.String).alias("qid"),
                                               pl.col("raw").alias("msg"))
                          .select(*common, pl.lit("note").alias("event")))
        frames = [f for f in frames if f.height]
        if not frames:
            return conform(pl.DataFrame(schema=EVENT_SCHEMA))
        events = pl.concat([conform(f) for f in frames], how="vertical").sort("line", maintain_order=True)
        events = events.with_columns(bare_ip(pl.col("client_ip")).alias("client_ip"))
        events = self._attach_auth(events)
        events = self._attach_sender(events)
        return conform(events)

    @staticmethod
    def _client(prefix: str) -> list[pl.Expr]:
        return [pl.col(f"{prefix}.client_host").alias("client_host"),
                pl.col(f"{prefix}.client_ip").alias("client_ip")]

    def _client_rows(self, df: pl.DataFrame, prefix: str, common: list[pl.Expr],
                     extra: list[pl.Expr]) -> pl.DataFrame:
        return df.select(*common, *self._client(prefix), *extra)

    def _from_rows(self, df: pl.DataFrame, common: list[pl.Expr]) -> pl.DataFrame:
        nrcpts = pl.col("from.nrcpts").cast(pl.Int64, strict=False)
        return df.select(
            *common,
            pl.when(nrcpts > 0).then(pl.lit("received")).otherwise(pl.lit("mail")).alias("event"),
            pl.when(nrcpts > 0).then(None).otherwise(pl.lit("MAIL")).alias("verb"),
            # ``relay=user@host`` without an address: a local user submitted it on the server itself.
            pl.when(pl.col("from.local_host").is_not_null() & pl.col("from.client_ip").is_null())
            .then(pl.lit("local")).otherwise(pl.lit("in")).alias("direction"),
            _strip_brackets(pl.col("from.sender")).alias("sender"),
            pl.col("from.size").cast(pl.Int64, strict=False).alias("size"),
            pl.coalesce(pl.col("from.client_host"), pl.col("from.local_host")).alias("client_host"),
            pl.col("from.client_ip").alias("client_ip"),
        )

    def _to_rows(self, df: pl.DataFrame, common: list[pl.Expr]) -> pl.DataFrame:
        item = grammar.ADDRESS
        mailer = pl.col("to.mailer").str.to_lowercase()
        name = pl.col("to.relay_name")
        ip = bare_ip(pl.coalesce(pl.col("to.relay_ip"),
                                 pl.when(name.str.starts_with("[")).then(name.str.strip_chars("[]"))))
        loopback = (ip.str.starts_with("127.") | (ip == "::1")
                    | name.str.to_lowercase().str.starts_with("localhost")).fill_null(False)
        stat = pl.col("to.stat")
        word = stat.str.extract(r"^([A-Za-z]+)", 1).str.to_lowercase()
        status = (
            pl.when(word == "sent").then(pl.lit("sent"))
            .when(word == "deferred").then(pl.lit("deferred"))
            .when(stat.str.starts_with("Cannot send message for")).then(pl.lit("expired"))
            .when(pl.col("to.dsn").str.starts_with("5")).then(pl.lit("bounced"))
            .otherwise(word)
        )
        # The remote reply: ``Sent (TEXT)`` or ``Deferred: NNN TEXT``; a leading code is split off.
        remote = (pl.when(word == "sent").then(stat.str.extract(r"^Sent \((.*)\)[ \t]*$", 1))
                  .when(word == "deferred").then(stat.str.extract(r"^Deferred: ([2-5][0-9]{2}[ -].*)$", 1)))
        code = remote.str.extract(r"^([2-5][0-9]{2})(?:[ -]|$)", 1)
        out = df.select(
            *common,
            pl.lit("deliver").alias("event"),
            pl.col("to.to").str.extract_all(item).alias("recipients"),
            pl.when(mailer.is_in(list(SMTP_MAILERS)) & ~loopback).then(pl.lit("out"))
            .otherwise(pl.lit("local")).alias("direction"),
            pl.col("to.relay").alias("relay_host"),
            pl.col("to.mailer").alias("transport"),
            status.alias("status"),
            code.cast(pl.Int64, strict=False).alias("reply"),
            pl.when(code.is_not_null()).then(remote.str.slice(4)).otherwise(remote).alias("reply_text"),
        ).explode("recipients")
        return out.with_columns(_strip_brackets(pl.col("recipients")).alias("recipient")).drop("recipients")

    def _ruleset_rows(self, df: pl.DataFrame, common: list[pl.Expr]) -> pl.DataFrame:
        ruleset = pl.col("ruleset.ruleset").str.to_lowercase()
        event = ruleset.replace_strict({k: v[0] for k, v in RULESET_EVENTS.items()}, default="note",
                                       return_dtype=pl.String)
        verb = ruleset.replace_strict({k: v[1] for k, v in RULESET_EVENTS.items()}, default=None,
                                      return_dtype=pl.String)
        arg1 = _strip_brackets(pl.col("ruleset.arg1"))
        return df.select(
            *common,
            event.alias("event"), verb.alias("verb"),
            pl.when(ruleset.is_in(["tls_server", "tls_rcpt"])).then(pl.lit("out"))
            .otherwise(pl.lit("in")).alias("direction"),
            pl.col("ruleset.code").cast(pl.Int64, strict=False).alias("reply"),
            pl.coalesce(pl.col("ruleset.reply_text"), pl.col("ruleset.action")).alias("reply_text"),
            pl.when(ruleset == "check_rcpt").then(arg1).alias("recipient"),
            pl.when(ruleset == "check_mail").then(arg1).alias("sender"),
            pl.when(ruleset.is_in(["tls_server", "tls_rcpt"])).then(None)
            .when(ruleset == "check_relay")
            .then(pl.coalesce(pl.col("ruleset.client_host"),
                              pl.when(~arg1.str.starts_with("[")).then(arg1)))
            .otherwise(pl.col("ruleset.client_host")).alias("client_host"),
            pl.when(ruleset.is_in(["tls_server", "tls_rcpt"])).then(None)
            .when(ruleset == "check_relay")
            .then(pl.coalesce(pl.col("ruleset.client_ip"), pl.col("ruleset.arg2")))
            .otherwise(pl.col("ruleset.client_ip")).alias("client_ip"),
            pl.when(ruleset.is_in(["tls_server", "tls_rcpt"]))
            .then(pl.col("ruleset.client_host")).alias("relay_host"),
        )

    def _auth_rows(self, df: pl.DataFrame, common: list[pl.Expr]) -> pl.DataFrame:
        server_side = pl.col("auth.side") == "server"
        return df.select(
            *common,
            pl.when(server_side).then(pl.lit("auth")).otherwise(pl.lit("note")).alias("event"),
            pl.lit("AUTH").alias("verb"),
            pl.when(server_side).then(pl.lit("ok")).alias("status"),
            pl.when(server_side).then(pl.lit("in")).otherwise(pl.lit("out")).alias("direction"),
            pl.col("auth.authid").alias("auth_user"),
            pl.when(server_side).then(pl.col("auth.client_host")).alias("client_host"),
            pl.when(server_side).then(pl.col("auth.client_ip")).alias("client_ip"),
            pl.when(~server_side).then(pl.col("auth.client_host")).alias("relay_host"),
        )

    def _user_error_rows(self, df: pl.DataFrame, common: list[pl.Expr]) -> pl.DataFrame:
        return df.select(
            *common,
            pl.lit("rcpt").alias("event"), pl.lit("RCPT").alias("verb"), pl.lit("in").alias("direction"),
            _strip_brackets(pl.col("user_error.addr")).alias("recipient"),
            pl.col("user_error.error").alias("reply_text"),
            pl.lit("rejected").alias("status"),
        )

    def _milter_rows(self, df: pl.DataFrame, common: list[pl.Expr]) -> pl.DataFrame:
        stage = pl.col("milter_reject.stage").str.to_lowercase()
        arg = _strip_brackets(pl.col("milter_reject.marg"))
        return df.select(
            *common,
            stage.replace_strict({k: v[0] for k, v in MILTER_EVENTS.items()}, default="note",
                                 return_dtype=pl.String).alias("event"),
            stage.replace_strict({k: v[1] for k, v in MILTER_EVENTS.items()}, default=None,
                                 return_dtype=pl.String).alias("verb"),
            pl.lit("in").alias("direction"),
            pl.col("milter_reject.code").cast(pl.Int64, strict=False).alias("reply"),
            pl.col("milter_reject.reply_text").alias("reply_text"),
            pl.when(stage == "to").then(arg).alias("recipient"),
            pl.when(stage == "from").then(arg).alias("sender"),
        )

    def _starttls_rows(self, df: pl.DataFrame, common: list[pl.Expr]) -> pl.DataFrame:
        server_side = pl.col("starttls.side") == "server"
        return df.select(
            *common,
            pl.lit("note").alias("event"),
            pl.when(server_side).then(pl.lit("in")).otherwise(pl.lit("out")).alias("direction"),
            pl.when(server_side).then(pl.col("starttls.client_host")).alias("client_host"),
            pl.when(server_side).then(pl.col("starttls.client_ip")).alias("client_ip"),
            pl.when(~server_side).then(pl.col("starttls.client_host")).alias("relay_host"),
        )

    @staticmethod
    def _attach_auth(events: pl.DataFrame) -> pl.DataFrame:
        """Give the session's ``AUTH=server`` identity to its later messages from the same client."""
        client = pl.coalesce(pl.col("client_ip"), pl.col("client_host"))
        is_auth = (pl.col("event") == "auth") & (pl.col("status") == "ok") & pl.col("session").is_not_null()
        if not events.select(is_auth.any()).item():
            return events
        auths = events.filter(is_auth).select(
            pl.col("line").alias("_a_line"), pl.col("auth_user").alias("_a_user"),
            client.alias("_a_client"), pl.col("ts").alias("_a_ts"))
        events = events.with_columns(
            pl.when(is_auth).then(pl.col("line")).otherwise(None)
            .forward_fill().over("session", order_by="line").alias("_a_line"))
        events = events.join(auths, on="_a_line", how="left", maintain_order="left")
        gap = pl.col("ts") - pl.col("_a_ts")
        attach = (
            pl.col("event").is_in(["received", "mail", "rcpt", "data"]) & pl.col("session").is_not_null()
            & pl.col("auth_user").is_null() & pl.col("_a_user").is_not_null()
            & (client == pl.col("_a_client")).fill_null(False)
            & ((gap <= AUTH_WINDOW) & (gap >= timedelta(0))).fill_null(True)
        )
        return events.with_columns(
            pl.when(attach).then(pl.col("_a_user")).otherwise(pl.col("auth_user")).alias("auth_user")
        ).drop("_a_line", "_a_user", "_a_client", "_a_ts")

    @staticmethod
    def _attach_sender(events: pl.DataFrame) -> pl.DataFrame:
        """Refused recipients (and DATA rejects) get the sender and client of the session's ``from=`` line.

        The key is (server, session, queue id): Sendmail logs the refusals and the ``from=`` line of
        one SMTP transaction under the same queue id and process.
        """
        keys = ["server", "session", "message"]
        filled = ["sender", "client_host", "client_ip"]
        senders = (events.filter(pl.col("event").is_in(["received", "mail"]) & pl.col("message").is_not_null()
                                 & pl.col("session").is_not_null() & pl.col("sender").is_not_null())
                   .group_by(keys, maintain_order=True)
                   .agg([pl.col(c).first().alias(f"_from_{c}") for c in filled]))
        if senders.is_empty():
            return events
        events = events.join(senders, on=keys, how="left", maintain_order="left")
        target = pl.col("event").is_in(["rcpt", "data"])
        return events.with_columns(
            [pl.when(target & pl.col(c).is_null()).then(pl.col(f"_from_{c}")).otherwise(pl.col(c)).alias(c)
             for c in filled]
        ).drop([f"_from_{c}" for c in filled])
