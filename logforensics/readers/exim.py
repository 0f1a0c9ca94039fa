"""Reader for Exim 4 main logs and reject logs, native or written through syslog -> common events.

The line grammar is :mod:`grammars.exim`; its patterns run here over whole Polars columns.

* **Native files** (``mainlog``, ``rejectlog``): a record starts at a line beginning with
  ``YYYY-MM-DD hh:mm:ss``. Lines without a stamp after a record are its continuation (the reject
  log's ``Envelope-from:``/``Envelope-to:`` and header dump, multi-line messages); they are counted
  in ``continuation`` and appended to the record's ``text``.
* **Syslog** (``Jun 29 16:04:19 host exim[1234]: ...``, ``2019-10-22 03:39:17 host exim[1]: ...``,
  journal lines ``host exim[1]: 2021-07-17 23:20:49 ...``): the envelope is split by
  :mod:`logforensics.readers.syslog`; Exim's own stamp inside the message wins over the syslog
  stamp. ``[n/m]`` / ``[n\\m]`` fragments (Exim splits long and multi-line entries) are joined to
  their first fragment (same pid); the later fragments count as continuation. A line repeated by
  syslog because Exim sent it once as main log and once as reject log is kept once (``raw_line``
  points at the twin). Other programs' lines count as ``not_mail``.
* Times are local (site ``timezone``) unless Exim logged a ``+hhmm`` zone.
* ``server`` of a syslog line is its host made canonical
  (:func:`logforensics.readers.syslog.canonical_hosts`: ``exsys.initech.example`` next to ``exsys``
  is ``exsys``); ``client_ip`` is the bare address (``[IPv6:2001:db8::1]`` -> ``2001:db8::1``,
  ``[::ffff:10.1.2.3]`` -> ``10.1.2.3``, :func:`logforensics.readers.syslog.bare_ip`).

Events (see ``schema.EVENTS``): ``<=`` received (one row per ``for`` recipient), ``=> -> >> *>``
deliver (status sent / suppressed), ``**`` deliver bounced, ``==`` deliver deferred, ``rejected
RCPT`` rcpt, other rejections by command (mail, helo, data, command, connect, starttls, auth),
authenticator failures auth/failed, ``SMTP connection from`` connect/quit, anything else note.
"""

from __future__ import annotations

import re
from typing import ClassVar

import polars as pl

from grammars import exim as grammar
from grammars import syslog as syslog_grammar
from grammars.common import anchored
from logforensics.readers.base import ReadContext, ReadResult, bad_line_warnings
from logforensics.readers.smtp_columns import ip_or_null
from logforensics.readers.syslog import (
    bare_ip,
    canonical_hosts,
    first_dated_month,
    last_dated_month,
    split_syslog,
    syslog_times,
    wall_clock_stamps,
)
from logforensics.schema import UTC_DATETIME, conform
from logforensics.timeconv import wall_clock_to_utc

CONTINUATION_CHARS = 2000

_SNIFF_NATIVE = re.compile(anchored(grammar.SNIFF_NATIVE))
_SNIFF_SYSLOG = re.compile(grammar.SNIFF_SYSLOG_TAG)
_SNIFF_STAMPED = re.compile(anchored(grammar.SNIFF_STAMPED))

#: Exim does not log the SMTP code of an ACL rejection. Its defaults (smtp_in.c,
#: ``smtp_handle_acl_fail``): 451 for a temporary rejection ("temporarily rejected"), else the
#: ACL's code, 550 (554 for the connect ACL); an ACL message that starts with a code overrides it.
DEFAULT_REJECT = 550
DEFAULT_DEFER = 451
DEFAULT_CONNECT_REJECT = 554

_DELIVERY_STATUS = {"=>": "sent", "->": "sent", ">>": "sent", "*>": "suppressed", "**": "bounced",
                    "==": "deferred"}

#: ``rejected WHAT`` -> (event, verb) for rejections other than RCPT.
_REJECT_EVENT = {
    "MAIL": ("mail", "MAIL"), "EHLO": ("helo", "EHLO"), "HELO": ("helo", "HELO"),
    "VRFY": ("command", "VRFY"), "EXPN": ("command", "EXPN"), "ETRN": ("command", "ETRN"),
    "ATRN": ("command", "ATRN"), "STARTTLS": ("starttls", "STARTTLS"), "AUTH": ("auth", "AUTH"),
    "DATA": ("data", "DATA"), "BDAT": ("data", "BDAT"), "after": ("data", "DATA"),
    "from": ("data", "DATA"), "during": ("data", "DATA"), "DKIM": ("data", "DATA"),
    "connection": ("connect", None),
}

_LOOPBACK = r"^(?:127\.|::1$|0:0:0:0:0:0:0:1$)"


def _body_columns() -> tuple[list[str], dict[str, list[str]]]:
    """All group names of the body shapes, and each shape's own groups."""
    own = {kind: list(re.compile(pattern).groupindex) for kind, pattern in grammar.BODIES.items()}
    names: list[str] = []
    for groups in own.values():
        names += [g for g in groups if g not in names]
    return names, own


def parse_payload(payload: pl.Series) -> pl.DataFrame:
    """Every named field of each text (an Exim line, or the message of an Exim syslog line).

    The column twin of :func:`grammars.exim.parse_line`: the same patterns, the same order. Columns:
    the prefix groups (and ``body``), ``kind``, every body group and every field group (null where
    not matched).
    """
    df = pl.DataFrame({"payload": payload.cast(pl.String)})
    df = df.with_columns(pl.col("payload").str.extract_groups(anchored(grammar.HEAD)).alias("h")).unnest("h")
    body = pl.col("body").fill_null("")
    kind = pl.lit(None, pl.String)
    for k in reversed(list(grammar.BODIES)):
        kind = pl.when(body.str.contains(anchored(grammar.BODIES[k]))).then(pl.lit(k)).otherwise(kind)
    df = df.with_columns(kind.alias("kind"))
    names, own = _body_columns()
    df = df.with_columns(
        [body.str.extract_groups(anchored(pattern)).alias(f"_b_{k}") for k, pattern in grammar.BODIES.items()]
    )
    df = df.with_columns([
        pl.coalesce([pl.when(pl.col("kind") == k).then(pl.col(f"_b_{k}").struct.field(name))
                     for k in grammar.BODIES if name in own[k]]).alias(name)
        for name in names
    ]).drop([f"_b_{k}" for k in grammar.BODIES])
    found: dict[str, list[pl.Expr]] = {}
    for i, search in enumerate(grammar.SEARCHES):
        source = pl.coalesce([
            pl.when(pl.col("kind") == k).then(pl.col(search.source or grammar.FIELD_SOURCE[k]))
            for k in search.kinds
        ])
        if search.mode == "match":
            text, pattern = source, anchored(search.pattern)
        else:
            text, pattern = pl.lit(search.prefix) + source, search.pattern
        df = df.with_columns(text.str.extract_groups(pattern).alias(f"_s{i}"))
        for name in re.compile(search.pattern).groupindex:
            found.setdefault(name, []).append(pl.col(f"_s{i}").struct.field(name))
    df = df.with_columns([pl.coalesce(exprs).alias(name) for name, exprs in found.items()])
    return df.drop([f"_s{i}" for i in range(len(grammar.SEARCHES))])


class EximReader:
    """Exim 4 mainlog/rejectlog (also via syslog)."""

    name: ClassVar[str] = "exim"
    description: ClassVar[str] = ("Exim 4 mainlog/rejectlog, native or via syslog; local time unless "
                                  "a +zone is logged")

    def sniff(self, head: list[str]) -> float:
        """Native stamps with an Exim-looking body, or syslog lines tagged ``exim``/``exim4``."""
        lines = [h for h in head if h.strip()]
        if not lines:
            return 0.0
        hits = sum(1 for h in lines if _SNIFF_NATIVE.match(h) or _SNIFF_SYSLOG.search(" " + h))
        if not hits:
            # Nothing but Exim-stamped lines without a known phrase (test harness output, logwrite).
            return 0.35 if all(_SNIFF_STAMPED.match(h) for h in lines) else 0.0
        return 0.6 + 0.35 * hits / len(lines)

    def read(self, lines: pl.Series, ctx: ReadContext) -> ReadResult:
        zone = ctx.site.timezone or "UTC"
        frame = split_syslog(lines)
        frame = frame.with_columns(canonical_hosts(frame["host"], ctx.server))
        total = frame.height
        warnings: list[str] = []

        frame = self._classify(frame)
        frame = self._join_fragments(frame)

        records = frame.filter(pl.col("role") == "record")
        parsed = parse_payload(records["parse_text"])
        parsed = pl.concat([records.select("line", "raw", "record_text", "exim_syslog",
                                           pl.col("host").alias("syslog_host"),
                                           "twin_line", "continued"),
                            parsed], how="horizontal")

        # Syslog time for the syslog lines; Exim's own stamp inside a syslog message replaces the
        # syslog stamp (as an RFC 3339 stamp would: it also anchors the year of the stamps around
        # it). Other programs' lines help find the Dec -> Jan roll-over.
        inner = parsed.filter(pl.col("exim_syslog") & pl.col("date").is_not_null()).select(
            "line",
            (pl.col("date") + pl.lit("T") + pl.col("time")
             + pl.when(pl.col("msec").is_not_null()).then(pl.lit(".") + pl.col("msec")).otherwise(pl.lit("")))
            .alias("inner_iso"),
            pl.col("zone").alias("inner_zone"))
        frame = frame.join(inner, on="line", how="left")
        syslog_row = pl.col("syslog_line") & pl.col("inner_iso").is_null()
        stamps = frame.select(
            *[pl.when(syslog_row).then(pl.col(c)).otherwise(None).alias(c) for c in ("mon", "day", "hms")],
            pl.coalesce("inner_iso", pl.when(syslog_row).then(pl.col("iso"))).alias("iso"),
            pl.when(pl.col("inner_iso").is_not_null()).then(pl.col("inner_zone"))
            .when(syslog_row).then(pl.col("iso_zone")).alias("iso_zone"),
        )
        syslog_ts, year_warning = syslog_times(stamps, zone, ctx.year_hint)
        frame = frame.with_columns(syslog_ts.alias("syslog_ts"))
        parsed = parsed.join(frame.select("line", "syslog_ts"), on="line", how="left")
        parsed = parsed.with_columns(
            pl.when(pl.col("exim_syslog")).then(pl.col("syslog_ts")).otherwise(self._exim_times(parsed, zone))
            .alias("ts"))
        if year_warning is not None and parsed.filter(
                pl.col("exim_syslog") & pl.col("date").is_null()).height:
            warnings.append(f"{ctx.source}: {year_warning}")

        bad_ts = parsed.filter(pl.col("ts").is_null())
        if bad_ts.height:
            warnings += bad_line_warnings(ctx.source, bad_ts.select("line", "raw"),
                                          "time stamp is not a valid date/time")
        parsed = parsed.filter(pl.col("ts").is_not_null())

        orphans = frame.filter(pl.col("role") == "orphan")
        if orphans.height:
            warnings += bad_line_warnings(ctx.source, orphans, "not an Exim log line")

        events = self._events(parsed, ctx)
        return ReadResult(
            events=conform(events),
            lines=total,
            skipped=orphans.height + bad_ts.height,
            continuation=int(frame["role"].is_in(["continuation", "fragment"]).sum()),
            blank=int((frame["role"] == "blank").sum()),
            not_mail=int((frame["role"] == "not_mail").sum()),
            warnings=warnings,
            first_month=first_dated_month(parsed, parsed["ts"], zone) if parsed.height else None,
            last_month=last_dated_month(parsed["ts"], zone) if parsed.height else None,
            # Exim's own stamps without a logged +zone, and syslog stamps without an offset.
            wall_clock=int(parsed.select((~pl.col("exim_syslog") & pl.col("zone").is_null()).sum()).item())
            + wall_clock_stamps(stamps),
        )

    @staticmethod
    def _classify(frame: pl.DataFrame) -> pl.DataFrame:
        """Each line's role: record, fragment, twin, continuation, blank, not_mail or orphan."""
        exim_tag = pl.col("program").str.contains(r"^(?i:exim)[0-9]*$").fill_null(False)
        native = pl.col("raw").str.contains(r"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")
        stamped = pl.col("mon").is_not_null() | pl.col("iso").is_not_null()
        frame = frame.with_columns(
            (pl.col("tag").is_not_null() & exim_tag).alias("exim_syslog"),
            native.alias("native"),
            (pl.col("raw").str.strip_chars() == "").alias("blank"),
            # Another program's line: syslogd's "last message repeated", a BSD syslog stamp (never
            # on a native Exim line), or a tag with a pid (with a stamp, or where no native Exim
            # stamp is). Reject-log dump lines such as "Envelope-to: <x>" are none of these.
            (pl.col("raw").str.contains(anchored(syslog_grammar.REPEATED))
             | (pl.col("tag").is_not_null() & ~exim_tag
                & (pl.col("mon").is_not_null() | (pl.col("pid").is_not_null() & (stamped | ~native)))))
            .alias("other"),
        )
        frame = frame.with_columns(
            pl.when(pl.col("exim_syslog")).then(pl.col("msg")).otherwise(pl.col("raw")).alias("payload"),
        )
        frame = frame.with_columns(
            pl.when(pl.col("exim_syslog")).then(pl.col("payload").str.extract_groups(anchored(grammar.FRAGMENT)))
            .alias("fr")).unnest("fr")
        frame = frame.with_columns(pl.col("frag").cast(pl.Int64, strict=False),
                                   pl.col("frag_of").cast(pl.Int64, strict=False))
        anchor = (pl.when(pl.col("exim_syslog")).then(pl.lit("syslog"))
                  .when(pl.col("other")).then(pl.lit("other"))
                  .when(pl.col("native")).then(pl.lit("native")).otherwise(None))
        frame = frame.with_columns(anchor.forward_fill().alias("last_anchor"))
        role = (
            pl.when(pl.col("blank")).then(pl.lit("blank"))
            .when(pl.col("exim_syslog") & (pl.col("frag") > 1)).then(pl.lit("fragment"))
            .when(pl.col("exim_syslog")).then(pl.lit("record"))
            .when(pl.col("other")).then(pl.lit("not_mail"))
            .when(pl.col("native")).then(pl.lit("record"))
            .when(pl.col("last_anchor") == "native").then(pl.lit("continuation"))
            .otherwise(pl.lit("orphan"))
        )
        frame = frame.with_columns(role.alias("role"))
        frame = frame.with_columns(
            (pl.col("exim_syslog") | (pl.col("role") == "not_mail")).alias("syslog_line"))
        # A syslog line repeated at once (Exim logs a rejection to syslog as main and reject log).
        key = pl.concat_str([pl.col("mon"), pl.col("day"), pl.col("hms"), pl.col("iso"), pl.col("host"),
                             pl.col("pid").cast(pl.String), pl.col("msg")], separator="\x00",
                            ignore_nulls=True)
        records = frame.filter(pl.col("exim_syslog") & (pl.col("role") == "record")).select("line", key.alias("k"))
        records = records.with_columns(pl.col("k").shift(1).alias("prev_k"),
                                       pl.col("line").shift(1).alias("prev_line"))
        twins = records.filter(pl.col("k") == pl.col("prev_k")).select(
            pl.col("line"), pl.col("prev_line"))
        frame = frame.with_columns(
            pl.when(pl.col("line").is_in(twins["line"].implode())).then(pl.lit("twin"))
            .otherwise(pl.col("role")).alias("role"))
        return frame.join(twins.select(pl.col("prev_line").alias("line"), pl.col("line").alias("twin_line")),
                          on="line", how="left")

    @staticmethod
    def _join_fragments(frame: pl.DataFrame) -> pl.DataFrame:
        """``record_text``/``parse_text`` of each record, fragments and continuation joined."""
        # Syslog fragments [n/m] of one entry share the process; each piece ends with a newline
        # when its marker was ``\``.
        sub = frame.filter(pl.col("exim_syslog") & pl.col("role").is_in(["record", "fragment"]))
        sub = sub.with_columns(
            pl.when(pl.col("frag").is_null()).then(-1).when(pl.col("frag") == 1).then(pl.col("line"))
            .otherwise(None).forward_fill().over("host", "pid").alias("start"))
        piece = pl.col("piece") + pl.when(pl.col("frag_sep") == "\\").then(pl.lit("\n")).otherwise(pl.lit(""))
        joined = (sub.filter(pl.col("frag").is_not_null() & (pl.col("start") > 0))
                  .group_by("start", maintain_order=True)
                  .agg(piece.str.join("").str.strip_suffix("\n").alias("joined"))
                  .rename({"start": "line"}))
        frame = frame.join(joined, on="line", how="left")
        frame = frame.with_columns(pl.coalesce(pl.col("joined"), pl.col("payload")).alias("record_text"))
        frame = frame.with_columns(pl.col("record_text").str.replace_all("\n", " ", literal=True)
                                   .alias("parse_text"))
        # Native continuation lines belong to the record above.
        frame = frame.with_columns(
            pl.when(pl.col("role") == "record").then(pl.col("line")).forward_fill().alias("record_line"))
        extra = (frame.filter(pl.col("role") == "continuation").group_by("record_line")
                 .agg(pl.col("raw").str.join("\n").str.slice(0, CONTINUATION_CHARS).alias("continued")))
        return frame.join(extra.rename({"record_line": "line"}), on="line", how="left")

    @staticmethod
    def _exim_times(parsed: pl.DataFrame, zone: str) -> pl.Expr:
        """UTC from Exim's own stamp: local time in ``zone``, or its logged ``+hhmm`` offset."""
        date = pl.col("date").str.split_exact("-", 2).struct
        hms = pl.col("time").str.split_exact(":", 2).struct
        fields = [date.field("field_0"), date.field("field_1"), date.field("field_2"),
                  hms.field("field_0"), hms.field("field_1"), hms.field("field_2")]
        y, mo, d, h, mi, s = (f.cast(pl.Int32, strict=False) for f in fields)
        micro = (pl.col("msec").str.pad_end(6, "0").cast(pl.Int64, strict=False)).fill_null(0)
        local = wall_clock_to_utc(y, mo, d, h, mi, s, zone)
        naive = pl.format("{}-{}-{} {}:{}:{}", y, mo, d, h, mi, s).str.to_datetime(
            "%Y-%m-%d %H:%M:%S", strict=False, time_unit="us").dt.replace_time_zone("UTC")
        sign = pl.when(pl.col("zone").str.starts_with("-")).then(-1).otherwise(1)
        offset = sign * (pl.col("zone").str.slice(1, 2).cast(pl.Int64, strict=False) * 60
                         + pl.col("zone").str.slice(3, 2).cast(pl.Int64, strict=False))
        zoned = naive - pl.duration(minutes=offset)
        stamp = pl.when(pl.col("zone").is_not_null()).then(zoned).otherwise(local)
        return (stamp + pl.duration(microseconds=micro)).cast(UTC_DATETIME)

    def _events(self, df: pl.DataFrame, ctx: ReadContext) -> pl.DataFrame:
        kind = pl.col("kind")
        flag = pl.col("flag")

        def unbracket(col: pl.Expr) -> pl.Expr:
            return col.str.replace(r"^<(.*)>$", "$1")

        sender = (
            pl.when(kind == "arrival").then(unbracket(pl.col("sender")))
            .otherwise(pl.coalesce(pl.col("from_path"), pl.col("from_bare"),
                                   pl.when(kind.is_in(["delivery", "failure"])
                                           & pl.col("proto").str.starts_with("<"))
                                   .then(unbracket(pl.col("proto")))))
        )
        rest = pl.col("rest").fill_null("")
        what = pl.col("what")
        what_key = pl.when(what.str.to_uppercase().is_in(list(_REJECT_EVENT)))\
            .then(what.str.to_uppercase()).otherwise(what)
        reject_event = what_key.replace_strict({k: v[0] for k, v in _REJECT_EVENT.items()}, default="command")
        reject_event = (pl.when((what == "by") & rest.str.starts_with(" local_scan")).then(pl.lit("data"))
                        .when(what == "by").then(pl.lit("note")).otherwise(reject_event))
        reject_verb = what_key.replace_strict({k: v[1] for k, v in _REJECT_EVENT.items()},
                                              default=what.str.to_uppercase(), return_dtype=pl.String)
        reject_verb = (pl.when((what == "by") & rest.str.starts_with(" local_scan")).then(pl.lit("DATA"))
                       .when(what == "by").then(None).otherwise(reject_verb))
        connect_word = pl.col("who").str.contains(r"\(TCP/IP connection count = ", literal=False)
        event = (
            pl.when(kind == "arrival").then(pl.lit("received"))
            .when(kind.is_in(["delivery", "failure"])).then(pl.lit("deliver"))
            .when(kind.is_in(["reject_rcpt", "discard_rcpt"])).then(pl.lit("rcpt"))
            .when(kind == "reject").then(reject_event)
            .when(kind == "auth_failed").then(pl.lit("auth"))
            .when(kind == "connection").then(pl.when(connect_word & (pl.col("conn") == "SMTP connection"))
                                             .then(pl.lit("connect")).otherwise(pl.lit("quit")))
            .otherwise(pl.lit("note"))
        )
        verb = (
            pl.when(kind.is_in(["reject_rcpt", "discard_rcpt"])).then(pl.lit("RCPT"))
            .when(kind == "reject").then(reject_verb)
            .when(kind == "auth_failed").then(pl.lit("AUTH"))
            .otherwise(None)
        )
        reason_code = pl.col("reason_code").cast(pl.Int64, strict=False)
        temp = pl.col("temp").is_not_null()
        reply = (
            pl.when(kind == "reject_rcpt").then(
                pl.coalesce(reason_code, pl.when(temp).then(DEFAULT_DEFER).otherwise(DEFAULT_REJECT)))
            .when(kind == "discard_rcpt").then(pl.lit(250))
            .when(kind == "reject").then(
                pl.coalesce(reason_code, pl.when(temp).then(DEFAULT_DEFER)
                            .when(what == "connection").then(DEFAULT_CONNECT_REJECT)
                            .otherwise(DEFAULT_REJECT)))
            .when(kind == "auth_failed").then(pl.col("code").cast(pl.Int64, strict=False))
            .when(kind == "failure").then(pl.col("error_code").cast(pl.Int64, strict=False))
            .when(kind == "delivery").then(pl.col("confirm").str.extract(r"^([2-5][0-9]{2})", 1)
                                           .cast(pl.Int64, strict=False))
            .otherwise(None)
        )
        reply_text = (
            pl.when(kind == "reject_rcpt").then(pl.coalesce(pl.col("reason"),
                                                            pl.col("trailer").str.strip_chars()))
            .when(kind == "discard_rcpt").then(pl.col("reason"))
            .when(kind == "reject").then(rest.str.extract(r"^.*?: (.*)$", 1))
            .when(kind == "auth_failed").then(pl.col("reply_text"))
            .otherwise(None)
        )
        # A reject text that starts with its code: the code is in ``reply``, the rest is the text.
        reply_text = pl.when(kind.is_in(["reject_rcpt", "reject"]) & pl.col("reason_code").is_not_null())\
            .then(reply_text.str.replace(r"^[2-5][0-9]{2}[ -]", "")).otherwise(reply_text)
        reply_text = (
            pl.when(kind.is_in(["reject_rcpt", "discard_rcpt", "reject", "auth_failed"])).then(reply_text)
            .when(kind == "failure").then(pl.col("error"))
            .when(kind == "delivery").then(pl.col("confirm").str.replace(r"^[2-5][0-9]{2}[ -]?", ""))
            .otherwise(None)
        )
        data_refusal = (kind == "reject") & (reject_event == "data") & pl.col("continued").is_not_null()
        recipient = (
            pl.when(kind == "arrival").then(pl.col("rcpt_item"))
            .when(kind.is_in(["delivery", "failure"])).then(pl.col("rcpt"))
            .when(kind.is_in(["reject_rcpt", "discard_rcpt"]))
            # (a bare form starting with "<" is a path cut off before its ">")
            .then(pl.coalesce(pl.col("rcpt_path"), pl.col("rcpt_bare").str.strip_prefix("<")))
            .when((kind == "reject") & (reject_verb.is_in(["VRFY", "EXPN"])))
            .then(unbracket(rest.str.strip_chars()))
            .when(data_refusal).then(pl.col("rcpt_item"))
            .otherwise(None)
        )
        # ``rejected MAIL <s>`` / ``rejected MAIL FROM:<s>``: the sender is the path.
        mail_sender = pl.when((kind == "reject") & (reject_verb == "MAIL")).then(
            rest.str.extract(r"<((?:\"(?:[^\"\\]|\\.)*\"|[^>\"])*)>", 1))
        helo = pl.coalesce(
            pl.col("host_helo"),
            pl.when((kind == "reject") & (reject_event == "helo"))
            .then(rest.str.extract(r"^ or HELO ([^ ]+)", 1)))
        ip = bare_ip(ip_or_null(pl.coalesce(pl.col("host_ip"),
                                            pl.when(kind == "failure").then(pl.col("error_host_ip")))))
        remote = ip.is_not_null() & ~ip.str.contains(_LOOPBACK).fill_null(False)
        # An arrival with no sending host (no ``H=``; ``P=local``, ``local-esmtp``...) was submitted on
        # the server itself (a local user or process): direction local, like a delivery kept here.
        local_arrival = ((kind == "arrival") & ip.is_null()
                         & (pl.col("host_name").is_null()
                            | pl.col("proto").str.starts_with("local").fill_null(False)))
        direction = (
            pl.when(kind.is_in(["delivery", "failure"])).then(
                pl.when((flag != "*>") & remote).then(pl.lit("out")).otherwise(pl.lit("local")))
            .when(kind == "other").then(None)
            .when(local_arrival).then(pl.lit("local"))
            .otherwise(pl.lit("in"))
        )
        is_delivery = kind.is_in(["delivery", "failure"])
        relay_host = pl.when(is_delivery).then(
            pl.coalesce(pl.col("host").str.strip_chars(), pl.col("error_host")))
        client = ~is_delivery
        auth_user = (
            pl.when(kind == "auth_failed").then(pl.col("set_id"))
            .when(client & pl.col("authenticator").is_not_null())
            .then(pl.coalesce(pl.when(pl.col("auth_id") != "").then(pl.col("auth_id")),
                              pl.col("authenticator")))
        )
        status = (
            pl.when(is_delivery).then(flag.replace_strict(_DELIVERY_STATUS, default=None,
                                                          return_dtype=pl.String))
            .when(kind == "auth_failed").then(pl.lit("failed"))
            .when((kind == "reject") & (reject_event == "auth")).then(pl.lit("failed"))
            .when(kind == "discard_rcpt").then(pl.lit("discarded"))
            .when((kind == "arrival") & (flag == "(=")).then(pl.lit("fakereject"))
            .otherwise(None)
        )
        text = pl.when(pl.col("continued").is_not_null()).then(
            pl.col("body") + pl.lit("\n") + pl.col("continued")).otherwise(pl.col("body"))
        host_name = pl.col("host_name")
        # A rejection after DATA in the rejectlog lists its recipients in the record's
        # ``Envelope-to:`` header (continued on indented lines): one refused row per recipient.
        envelope_to = pl.col("continued").str.extract(r"(?m)^Envelope-to:((?:[^\n]*)(?:\n[ \t][^\n]*)*)", 1)
        df = df.with_columns(
            pl.when(kind == "arrival").then(pl.col("rcpts").str.split(" "))
            .when(data_refusal).then(envelope_to.str.extract_all(r"<([^<>\s]*)>")
                                     .list.eval(pl.element().str.strip_chars("<>")))
            .alias("rcpt_item"))
        df = df.explode("rcpt_item")
        df = df.with_columns(pl.when(pl.col("rcpt_item") == "").then(None).otherwise(pl.col("rcpt_item"))
                             .alias("rcpt_item"))
        out = df.select(
            pl.col("ts"),
            pl.lit(ctx.source).alias("source"),
            pl.col("line"),
            pl.lit(self.name).alias("format"),
            pl.coalesce(pl.when(pl.col("exim_syslog")).then(pl.col("syslog_host")), pl.lit(ctx.server)).alias("server"),
            pl.lit(None, pl.String).alias("session"),
            pl.col("msgid").alias("message"),
            direction.alias("direction"),
            event.alias("event"),
            verb.alias("verb"),
            reply.alias("reply"),
            reply_text.alias("reply_text"),
            pl.when(client).then(pl.when(host_name != "").then(host_name)).alias("client_host"),
            pl.when(client).then(bare_ip(ip_or_null(pl.col("host_ip")))).alias("client_ip"),
            pl.when(client).then(pl.when(helo != "").then(helo)).alias("helo"),
            relay_host.alias("relay_host"),
            pl.coalesce(sender, mail_sender).alias("sender"),
            recipient.alias("recipient"),
            pl.when(is_delivery).then(pl.col("parent")).alias("orig_recipient"),
            auth_user.alias("auth_user"),
            status.alias("status"),
            pl.when(is_delivery).then(pl.col("transport")).alias("transport"),
            pl.col("size").cast(pl.Int64, strict=False).alias("size"),
            text.alias("text"),
            pl.col("twin_line").alias("raw_line"),
        )
        return out
