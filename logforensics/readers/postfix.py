"""Reader for Postfix logs via syslog (``/var/log/mail.log``, ``maillog``) -> common MTA events.

The envelope is :mod:`grammars.syslog` (through :func:`logforensics.readers.syslog.split_syslog`);
the message after ``postfix/<service>[pid]:`` is one of the shapes of :mod:`grammars.postfix`,
whose patterns run here over whole columns. What becomes what (README "Event schema", ``EVENTS``):

* ``connect from`` / ``disconnect from`` -> ``connect`` / ``quit``;
* ``QID: client=...`` -> ``received`` (``orig_client=`` is the real client behind a content filter;
  ``sasl_username=`` is ``auth_user``); ``NOQUEUE: client=`` (before-queue filter) -> ``note``;
  ``proxy-accept`` (before-queue filter accepted the message) -> ``received`` with its ``to=``;
  pickup ``uid=N from=<s>`` -> ``received`` (``direction`` local);
* ``reject:`` / ``milter-reject:`` / ``proxy-reject:`` (also ``reject_warning``, ``discard``...) ->
  an event by the SMTP command (RCPT -> ``rcpt``, MAIL -> ``mail``, HELO/EHLO -> ``helo``,
  DATA/BDAT/END-OF-MESSAGE -> ``data``, else ``command``) with ``reply`` set only when the command
  was really rejected (``reject_warning`` and ``discard`` keep ``reply`` null; ``status`` = the action);
* SASL failures -> ``auth`` with ``status`` failed; qmgr ``from=, size=, nrcpt=`` -> ``queued``;
* ``to=..., relay=..., status=...`` -> ``deliver`` (``direction`` out only for the smtp client to a
  host that is not loopback, not a unix socket);
* anything else from Postfix -> ``note``; other programs in the file (dovecot, amavis...) are
  ``not_mail``; lines that are no syslog line at all are ``skipped`` with a warning.

Sessions: smtpd lines of one (host, pid) from ``connect from`` to ``disconnect from``; key
``source#host#pid#L<connect line>``. Lines of a pid before its first ``connect`` belong to a
session cut off by the file start (keyed by that pid's first line). Within a session the client,
the HELO name and the SASL login (logged on ``client=`` lines) fill the rows that lack them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import ClassVar

import polars as pl

from grammars import postfix as grammar
from grammars import smtp as smtp_grammar
from grammars import syslog as syslog_grammar
from grammars.common import anchored
from logforensics.readers.base import ReadContext, ReadResult, bad_line_warnings
from logforensics.readers.syslog import (
    adopt_bare_tags,
    canonical_hosts,
    first_dated_month,
    last_dated_month,
    split_syslog,
    syslog_times,
    wall_clock_stamps,
)
from logforensics.schema import conform

#: SMTP command in an action line -> event.
COMMAND_EVENTS: dict[str, str] = {
    "RCPT": "rcpt", "MAIL": "mail", "HELO": "helo", "EHLO": "helo",
    "DATA": "data", "BDAT": "data", "END-OF-MESSAGE": "data",
}

#: Actions that mean the command was refused with the logged reply.
REJECT_ACTIONS = ("reject", "milter-reject", "proxy-reject")

_GROUPS: dict[str, list[str]] = {name: list(re.compile(p).groupindex) for name, p in grammar.SHAPES.items()}
#: Every named group of every shape.
FIELD_NAMES: list[str] = sorted({g for groups in _GROUPS.values() for g in groups})
#: The groups the events are made of.
USED_FIELDS = ("qid", "action", "command", "reason", "detail", "relay", "client_host", "client_ip",
               "orig_client_host", "orig_client_ip", "to", "to_bare", "orig_to", "orig_to_bare", "status",
               "helo", "sasl_username", "sender", "size")

#: Loopback next hops (a content filter on this host) and unix-socket next hops.
_LOOPBACK = r"\[(?:127\.[0-9.]+|::1|::ffff:127\.[0-9.]+|[Ii][Pp][Vv]6:::1)\]"
_SOCKET = r"\[(?:private|public)/"


def shape_columns(df: pl.DataFrame, groups: Sequence[str] = FIELD_NAMES) -> pl.DataFrame:
    """Add ``kind`` (the first shape of :data:`grammars.postfix.SHAPES` matching the whole ``msg``)
    and ``f_<group>`` for each of ``groups`` (default: every named group; null unless the group
    belongs to that shape): the :func:`shape_parts` put back in row order."""
    parts = [part.with_columns(pl.lit(name, pl.String).alias("kind")) for name, part in shape_parts(df, groups)]
    fields = pl.concat([part.select("row_", "kind", *(f"f_{g}" for g in groups if f"f_{g}" in part.columns))
                        for part in parts], how="diagonal").rechunk().sort("row_")
    return df.with_columns(fields.select(
        "kind", *(pl.col(f"f_{g}") if f"f_{g}" in fields.columns else pl.lit(None, pl.String).alias(f"f_{g}")
                  for g in groups)))


def shape_parts(df: pl.DataFrame, groups: Sequence[str] = FIELD_NAMES, carry: Sequence[str] = ()
                ) -> list[tuple[str, pl.DataFrame]]:
    """The rows of ``df`` by shape: ``(shape, frame)`` pairs, each frame holding ``row_`` (the row's
    index in ``df``), ``msg`` (nulls as ``""``), the ``carry`` columns and those ``f_<group>`` of
    ``groups`` the shape has (absent columns are null). A shape may come in several parts (its
    strict layout's rows, then the others); parts are not in row order.

    Messages in a strict layout (:data:`grammars.postfix.LAYOUTS`: most of a busy log) are cut at
    the layout's literals. The rest take two passes that keep the capture groups off most rows: the
    shape comes from plain matches (no captures; each pattern tried only on the rows no earlier
    shape took, and :data:`grammar.NOTE` takes any text), then each shape's groups are extracted on
    its own rows only.
    """
    rest = df.select(pl.col("msg").fill_null(""), pl.int_range(pl.len(), dtype=pl.UInt32).alias("row_"), *carry)
    parts: list[tuple[str, pl.DataFrame]] = []
    for name, layout in grammar.LAYOUTS.items():
        hit = rest["msg"].str.contains(_LAYOUT_PATTERNS[name])
        parts.append((name, _cut_layout(rest.filter(hit), name, layout, groups)))
        rest = rest.filter(~hit)
    *tried, last = grammar.SHAPES
    for name in tried:
        if rest.is_empty():
            break
        hit = rest["msg"].str.contains(anchored(grammar.SHAPES[name]))
        parts.append((name, _extract_shape(rest.filter(hit), name)))
        rest = rest.filter(~hit)
    parts.append((last, _extract_shape(rest, last)))
    # Empty parts are dropped, but one is kept so that there is always a part (with every column).
    return [(name, part) for name, part in parts if part.height] or parts[-1:]


#: Each strict layout's full pattern, anchored.
_LAYOUT_PATTERNS = {name: anchored(grammar.layout_pattern(layout)) for name, layout in grammar.LAYOUTS.items()}


def _stretches(layout: grammar.Layout, shared: str | None) -> list[grammar.Layout]:
    """``layout`` as the layouts of its stretches between occurrences of ``shared`` (the literals
    holding it are cut there), or ``[layout]`` without a shared separator."""
    lead, steps = layout
    if shared is None:
        return [layout]
    out: list[grammar.Layout] = []
    current: list[tuple[str, str, str]] = []
    for group, cls, sep in steps:
        if shared in sep:
            before, after = sep.split(shared, 1)
            out.append((lead, (*current, (group, cls, before))))
            lead, current = after, []
        else:
            current.append((group, cls, sep))
    out.append((lead, tuple(current)))
    return out


def _cut_layout(rows: pl.DataFrame, name: str, layout: grammar.Layout,
                groups: Sequence[str] = FIELD_NAMES) -> pl.DataFrame:
    """``rows`` (``row_, msg`` and carried columns) with ``f_<group>...`` of messages in a strict
    layout: each group is the text up to the
    first occurrence of its separator (the last one's separator ends the text). Only the wanted
    ``groups`` are made: cutting stops after the last wanted one.

    A layout with a shared separator (:data:`grammars.postfix.SHARED_SEPARATORS`) is first split
    into its stretches by one ``splitn``; each stretch holding a wanted group is then cut alike.
    """
    wanted = set(groups)
    stretches = _stretches(layout, grammar.SHARED_SEPARATORS.get(name))
    if len(stretches) > 1:  # one pass splits every stretch off
        split = rows["msg"].str.splitn(grammar.SHARED_SEPARATORS[name], len(stretches)).struct.unnest()
        texts = [split[f"field_{i}"] for i in range(len(stretches))]
    else:
        texts = [rows["msg"]]
    columns: list[pl.Series] = rows.get_columns()
    for text, (lead, steps) in zip(texts, stretches, strict=True):
        names = [group for group, _, _ in steps]
        last_wanted = max((i for i, group in enumerate(names) if group in wanted), default=-1)
        if last_wanted < 0:
            continue
        frame = pl.DataFrame({"rest_": text.str.strip_prefix(lead)})
        *inner, (last_group, _, last_sep) = steps
        for i, (group, _, sep) in enumerate(inner):
            if i == last_wanted:  # the rest is not wanted: keep the group only
                frame = frame.with_columns(pl.col("rest_").str.splitn(sep, 2).struct.field("field_0")
                                           .alias(f"f_{group}"))
                break
            frame = frame.with_columns(pl.col("rest_").str.splitn(sep, 2).struct.rename_fields(
                [f"f_{group}", "rest_"])).unnest("rest_")
        else:
            frame = frame.with_columns(pl.col("rest_").str.strip_suffix(last_sep).alias(f"f_{last_group}"))
        columns += [frame[f"f_{group}"] for group in names[:last_wanted + 1] if group in wanted]
    return pl.DataFrame(columns)


def _extract_shape(rows: pl.DataFrame, name: str) -> pl.DataFrame:
    """``rows`` (``row_, msg`` and carried columns) with ``f_<group>...`` of messages of shape
    ``name``, by its full pattern."""
    groups = rows["msg"].str.extract_groups(anchored(grammar.SHAPES[name])).struct.unnest()
    return rows.hstack([groups[g].alias(f"f_{g}") for g in _GROUPS[name]])


def _is_postfix(instance: pl.Expr) -> pl.Expr:
    return instance.str.starts_with("postfix").fill_null(False)


#: A condition of :func:`event_columns`: an expression, or a Python bool when the shape is known.
Cond = pl.Expr | bool


def _is(kind: str | pl.Expr, *names: str) -> Cond:
    """``kind`` is one of ``names``: a bool for a known shape, else an expression over the rows."""
    if isinstance(kind, str):
        return kind in names
    return kind == names[0] if len(names) == 1 else kind.is_in(names)


def _and(a: Cond, b: Cond) -> Cond:
    """``a & b``, folded where either side is known (``False & expr`` would be an expression)."""
    if a is False or b is False:
        return False
    if a is True:
        return b
    return a if b is True else a & b


def _case(*branches: tuple[Cond, pl.Expr], otherwise: pl.Expr | None = None) -> pl.Expr:
    """``pl.when(c1).then(v1).when(c2).then(v2)....otherwise(otherwise)`` with the known conditions
    folded away: a ``False`` branch never applies, a ``True`` one applies to every row no earlier
    branch took (so it is the otherwise); the same values row by row."""
    live: list[tuple[pl.Expr, pl.Expr]] = []
    for cond, value in branches:
        if cond is False:
            continue
        if cond is True:
            otherwise = value
            break
        live.append((cond, value))
    rest = otherwise if otherwise is not None else pl.lit(None)
    if not live:
        return rest
    chain = pl.when(live[0][0]).then(live[0][1])
    for cond, value in live[1:]:
        chain = chain.when(cond).then(value)
    return chain.otherwise(rest)


#: The columns :func:`event_columns` gives, and their types.
EVENT_FIELDS: dict[str, pl.DataType] = {
    "event": pl.String(), "direction": pl.String(), "message": pl.String(), "verb": pl.String(),
    "reply": pl.Int64(), "reply_text": pl.String(), "own_client_host": pl.String(),
    "own_client_ip": pl.String(), "own_helo": pl.String(), "own_auth": pl.String(),
    "relay_host": pl.String(), "sender": pl.String(), "recipient": pl.String(),
    "orig_recipient": pl.String(), "status": pl.String(), "transport": pl.String(), "size": pl.Int64(),
}


#: The general form's shape: the ``kind`` column of :func:`shape_columns`.
KIND = pl.col("kind")


def event_columns(rows: pl.DataFrame, kind: str | pl.Expr = KIND) -> pl.DataFrame:
    """``row_`` and the :data:`EVENT_FIELDS` of ``rows`` (``row_, msg, program, f_<group>``; absent
    groups are null).

    ``kind`` is the rows' shape: a name when they all have that shape (a part of
    :func:`shape_parts`), so every choice by shape is made here in Python (:func:`_is`, :func:`_and`,
    :func:`_case` fold it) and only the chosen expressions run; or the ``kind`` column (the general
    form, one ``when/then`` chain over the rows), which tests/test_read_speedpaths.py checks gives
    the same columns.
    """
    rows = rows.with_columns(pl.lit(None, pl.String).alias(f"f_{g}") for g in USED_FIELDS
                             if f"f_{g}" not in rows.columns)
    f = lambda g: pl.col(f"f_{g}")  # noqa: E731
    msg = pl.col("msg")
    program = pl.col("program")
    action = f("action")
    command = f("command").str.to_uppercase()
    rejected = action.is_in(REJECT_ACTIONS).fill_null(False)
    reason = f("reason")
    is_action = _is(kind, "action")
    is_delivery = _is(kind, "delivery")
    note_client = _and(_is(kind, "note"), program.is_in(["smtpd", "postscreen", "tlsproxy"]))
    structs = []  # the reply structs, only where a shape can use them
    if is_action is not False:
        structs.append(reason.str.extract_groups(anchored(smtp_grammar.REPLY)).alias("rr"))
    if is_delivery is not False:
        structs.append(f("detail").str.extract_groups(anchored(grammar.REMOTE_REPLY)).alias("dr"))
    if note_client is not False:
        structs.append(pl.when(note_client).then(msg).str.extract_groups(grammar.CLIENT_IN_TEXT).alias("ct"))
    rows = rows.with_columns(structs)

    queued_as = reason.str.extract(r"queued as ([0-9A-Za-z]+)", 1)
    qid = pl.when(f("qid") == "NOQUEUE").then(None).otherwise(f("qid"))
    proxy_accept = _and(is_action, action == "proxy-accept")
    event = _case(
        (_is(kind, "connect"), pl.lit("connect")),
        (_is(kind, "disconnect"), pl.lit("quit")),
        (_and(_is(kind, "received"), qid.is_not_null()), pl.lit("received")),
        (_is(kind, "pickup"), pl.lit("received")),
        (proxy_accept, pl.lit("received")),
        (is_action, command.replace_strict(COMMAND_EVENTS, default="command")),
        (_is(kind, "sasl_failed"), pl.lit("auth")),
        (_is(kind, "queued"), pl.lit("queued")),
        (is_delivery, pl.lit("deliver")),
        otherwise=pl.lit("note"),
    )
    relay = f("relay")
    out = ((program == "smtp") & ~relay.str.contains(_LOOPBACK).fill_null(False)
           & ~relay.str.contains(_SOCKET).fill_null(False))
    direction = _case(
        (is_delivery, pl.when(out).then(pl.lit("out")).otherwise(pl.lit("local"))),
        (_is(kind, "pickup"), pl.lit("local")),
        (_is(kind, "connect", "disconnect", "received", "action", "sasl_failed"), pl.lit("in")),
    )
    rr = pl.col("rr").struct.field
    dr = pl.col("dr").struct.field
    ct = pl.col("ct").struct.field
    empty_null = lambda e: pl.when(e == "").then(None).otherwise(e)  # noqa: E731
    in_text = [] if note_client is False else [pl.when(note_client).then(empty_null(ct("client_host")))]
    client_host = pl.coalesce(empty_null(f("orig_client_host")), empty_null(f("client_host")), *in_text)
    in_text = [] if note_client is False else [pl.when(note_client).then(ct("client_ip"))]
    client_ip = pl.coalesce(empty_null(f("orig_client_ip")), empty_null(f("client_ip")), *in_text)
    in_reason = reason.str.extract(r"<(" + grammar.ADDR + r")>: (?:Recipient address rejected|Relay access)", 1)
    recipient = _case(
        (is_delivery, pl.coalesce(f("to"), f("to_bare"))),
        (is_action, pl.coalesce(f("to"), pl.when(command.is_in(["RCPT", "VRFY"])).then(in_reason))),
    )
    status = _case(
        (_is(kind, "delivery", "expired"), f("status").str.to_lowercase()),
        (_is(kind, "sasl_failed"), pl.lit("failed")),
        (is_action, action),
    )
    reply_code = _case(
        (_and(is_action, rejected), rr("code")),
        (proxy_accept, rr("code")),
        (is_delivery, dr("code")),
    ).cast(pl.Int64, strict=False)
    reply_text = _case(
        (_and(is_action, rejected | (action == "proxy-accept")),
         pl.coalesce(rr("reply_text"), pl.when(rr("code").is_null()).then(reason))),
        (is_delivery, dr("reply_text")),
    )
    columns = {
        "event": event,
        "direction": direction,
        "message": _case((proxy_accept, pl.coalesce(queued_as, qid)), otherwise=qid),
        "verb": _case((is_action, command), (_is(kind, "sasl_failed"), pl.lit("AUTH"))),
        "reply": reply_code,
        "reply_text": reply_text,
        "own_client_host": client_host,
        "own_client_ip": client_ip,
        "own_helo": f("helo"),
        "own_auth": _case((_is(kind, "received", "sasl_failed"), empty_null(f("sasl_username")))),
        "relay_host": _case((is_delivery, relay)),
        "sender": f("sender"),
        "recipient": recipient,
        "orig_recipient": _case((is_delivery, pl.coalesce(f("orig_to"), f("orig_to_bare")))),
        "status": status,
        "transport": _case((is_delivery, program)),
        "size": f("size").cast(pl.Int64, strict=False),
    }
    return rows.select("row_", *(expr.cast(EVENT_FIELDS[name]).alias(name) for name, expr in columns.items()))



def fill_forward_in_parts(value: pl.Expr, part: pl.Expr) -> pl.Expr:
    """``value.forward_fill().over(part)`` where ``part`` numbers contiguous blocks of rows in
    increasing order, without a window: the plain forward fill, kept where the value it carries
    comes from the same block (the block of the last non-null row so far is this row's block;
    blocks being contiguous and increasing, that row lies in this block)."""
    source_part = pl.when(value.is_not_null()).then(part).forward_fill()
    return pl.when(source_part == part).then(value.forward_fill())


def first_in_parts(frame: pl.DataFrame, column: str, part: str) -> pl.Series:
    """``pl.col(column).drop_nulls().first().over(part)``: each part's first non-null value on all its
    rows, taken from the (few) rows holding a value and joined back on the part number."""
    firsts = (frame.filter(pl.col(column).is_not_null()).group_by(part)
              .agg(pl.col(column).first().alias("first_")))
    return frame.select(part).join(firsts, on=part, how="left", maintain_order="left")["first_"].alias(column)


#: The columns of the split lines that :meth:`PostfixReader._events` reads.
_MAIL_COLUMNS = ("line", "ts", "host", "pid", "program", "msg", "pf_repeat", "repeat_times")


class PostfixReader:
    """Postfix (syslog)."""

    name: ClassVar[str] = "postfix"
    description: ClassVar[str] = "Postfix (syslog: mail.log / maillog), local time of the site"

    def sniff(self, head: list[str]) -> float:
        """Syslog lines whose tag's instance starts with ``postfix`` (postfix, postfix-in ...)."""
        tagged = postfix = 0
        for text in head:
            fields = syslog_grammar.parse_line(text)
            if not fields:
                continue
            tagged += 1
            if fields["tag"].split("/")[0].startswith("postfix"):
                postfix += 1
        if not postfix:
            return 0.0
        return 0.55 + 0.4 * postfix / tagged

    def read(self, lines: pl.Series, ctx: ReadContext) -> ReadResult:
        frame, bare_warning = adopt_bare_tags(self._headerless_tags(split_syslog(lines)), ctx.source)
        total = frame.height
        zone = ctx.site.timezone or "UTC"
        frame = self._repeated_stamps(frame)
        frame = frame.with_columns(canonical_hosts(frame["host"], ctx.server))
        ts, ts_warning = syslog_times(frame, zone, ctx.year_hint)
        frame = frame.with_columns(ts.alias("ts"))

        warnings: list[str] = [] if bare_warning is None else [bare_warning]
        if ts_warning is not None:
            warnings.append(f"{ctx.source}: {ts_warning}")
        # A tagged line is not blank (its tag holds a letter; an RFC 5424 line starts with ``<``), so
        # the whitespace test over the lines runs only when the file has untagged lines at all.
        if frame["tag"].null_count():
            blank = pl.col("tag").is_null() & (pl.col("raw").str.strip_chars() == "")
        else:
            blank = pl.lit(False)
        is_syslog = pl.col("tag").is_not_null()
        is_pf = _is_postfix(pl.col("instance"))
        prev_pf = is_pf.shift(1).fill_null(False)
        frame = frame.with_columns(
            blank.alias("is_blank"),
            (is_syslog & is_pf).alias("is_pf"),
            (pl.col("repeat_times").is_not_null() & prev_pf).alias("pf_repeat"),
        )
        frame = frame.with_columns(
            (~pl.col("is_blank") & ~is_syslog & pl.col("repeat_times").is_null()).alias("is_bad"),
            ((is_syslog & ~is_pf) | (pl.col("repeat_times").is_not_null() & ~pl.col("pf_repeat")))
            .alias("is_other"),
        )
        bad = frame.filter(pl.col("is_bad"))
        if bad.height:
            warnings += bad_line_warnings(ctx.source, bad, "not a syslog line")
        # Only the columns the events are made of (none of the others is a schema column, which
        # ``conform`` would otherwise fill with nulls) are filtered.
        mail = frame.select(*_MAIL_COLUMNS).filter(frame["is_pf"] | frame["pf_repeat"])
        undated = mail.filter(pl.col("ts").is_null())
        if undated.height:
            warnings.append(f"{ctx.source}: {undated.height} Postfix lines have no timestamp "
                            f"(first: line {undated['line'][0]}); their events have no time")

        events = self._events(mail, ctx)
        return ReadResult(
            events=conform(events),
            lines=total,
            skipped=bad.height,
            blank=int(frame["is_blank"].sum()),
            not_mail=int(frame["is_other"].sum()),
            warnings=warnings,
            first_month=first_dated_month(frame, ts, zone),
            last_month=last_dated_month(ts, zone),
            wall_clock=wall_clock_stamps(frame),
        )

    @staticmethod
    def _headerless_tags(frame: pl.DataFrame) -> pl.DataFrame:
        """Work around the envelope grammar on a header-less line whose tag has no ``[pid]``
        (``postfix/postfix-script: fatal: ...``): it reads the tag as the host and ``fatal`` as the
        tag. A "host" ending in ``:`` is such a tag."""
        unstamped = pl.col("iso").is_null() & pl.col("mon").is_null()
        fix = pl.when(unstamped).then(pl.col("host")).str.contains(r"^[A-Za-z][A-Za-z0-9_./-]*:$").fill_null(False)
        frame = frame.with_columns(fix.alias("fix_"))
        if not frame["fix_"].any():
            return frame.drop("fix_")
        fix = pl.col("fix_")
        tag = pl.col("host").str.strip_suffix(":")
        return frame.with_columns(
            pl.when(fix).then(None).otherwise(pl.col("host")).alias("host"),
            pl.when(fix).then(tag).otherwise(pl.col("tag")).alias("tag"),
            pl.when(fix).then(tag.str.split("/").list.last()).otherwise(pl.col("program")).alias("program"),
            pl.when(fix).then(tag.str.split("/").list.first()).otherwise(pl.col("instance")).alias("instance"),
            pl.when(fix).then(pl.col("raw").str.extract(r"^[^ \t]+:[ \t]?(.*)$", 1))
            .otherwise(pl.col("msg")).alias("msg"),
        ).drop("fix_")

    @staticmethod
    def _repeated_stamps(frame: pl.DataFrame) -> pl.DataFrame:
        """``last message repeated N times`` lines: their stamp and host, so they get a time too."""
        untagged = pl.when(pl.col("tag").is_null()).then(pl.col("raw"))  # only those can be one
        rep = untagged.str.extract_groups(anchored(syslog_grammar.REPEATED)).alias("rep")
        frame = frame.with_columns(rep)
        field = pl.col("rep").struct.field
        is_rep = pl.col("tag").is_null() & field("times").is_not_null()
        cols = [pl.when(is_rep).then(field("times")).otherwise(None).alias("repeat_times")]
        for name in ("mon", "day", "hms", "iso", "iso_zone", "host"):
            cols.append(pl.when(is_rep).then(field(name)).otherwise(pl.col(name)).alias(name))
        return frame.with_columns(cols).drop("rep")

    def _events(self, df: pl.DataFrame, ctx: ReadContext) -> pl.DataFrame:
        """The event columns of the Postfix rows ``df`` (in line order).

        Each shape part (:func:`shape_parts`) gets its columns from :func:`event_columns` with its
        shape known, so the choices by shape are made once per part, not per row; the parts are put
        back in row order once, beside ``df``'s own columns (which never move).
        """
        df = df.with_columns(
            pl.when(pl.col("pf_repeat"))
            .then(pl.lit("last message repeated ") + pl.col("repeat_times") + pl.lit(" times"))
            .otherwise(pl.col("msg")).alias("msg"),
        )
        parts = [event_columns(part, kind) for kind, part in shape_parts(df, USED_FIELDS, carry=("program",))]
        fields = pl.concat(parts, how="vertical").sort("row_").drop("row_")
        df = self._sessions(df.hstack(fields), ctx)
        return df.with_columns(
            pl.lit(ctx.source).alias("source"),
            pl.lit(self.name).alias("format"),
            pl.coalesce(pl.col("host"), pl.lit(ctx.server, pl.String)).alias("server"),
            pl.col("msg").alias("text"),
        )

    @staticmethod
    def _sessions(df: pl.DataFrame, ctx: ReadContext) -> pl.DataFrame:
        """smtpd sessions per (host, pid), and what a session knows filled into its rows.

        Only smtpd rows belong to sessions, so the work runs over those rows alone; the one fact
        it needs from the other rows is where each (host, pid) starts, which keys the session cut
        off by the file start.

        The smtpd rows are stably sorted by (host, pid) group, so each group's rows are contiguous
        and in line order. A *segment* starts at a group's first row and at each ``connect``; its
        *session part* runs from its start through its first ``disconnect`` (the rows after that
        belong to no session). Each part is a contiguous block numbered by a running count of
        block starts, so the per-session windows group by one integer; the results are scattered
        back through the same permutation.
        """
        grp = ["host_key", "pid"]
        df = df.with_columns(
            pl.coalesce(pl.col("host"), pl.lit(ctx.server or "", pl.String)).alias("host_key"),
            pl.col("own_client_host").alias("client_host"),
            pl.col("own_client_ip").alias("client_ip"),
            pl.col("own_helo").alias("helo"),
            pl.col("own_auth").alias("auth_user"),
            pl.lit(None, pl.String).alias("session"),
        )
        smtpd = (pl.col("program") == "smtpd") & pl.col("pid").is_not_null()
        rows = df.select(smtpd.arg_true())[:, 0]
        if rows.is_empty():
            return df
        # ``gid`` numbers the (host, pid) groups, so the sort and the windows use integers.
        pid_start = df.group_by(grp).agg(pl.col("line").min().alias("pid_start")).with_row_index("gid")
        sub = df.select("line", *grp, "event", "own_client_host", "own_client_ip", "own_helo",
                        "own_auth")[rows].with_columns(rows.alias("row_"))
        sub = sub.join(pid_start, on=grp, how="left", maintain_order="left").sort("gid", maintain_order=True)
        is_conn = pl.col("event") == "connect"  # the event of exactly the ``connect`` shape
        seg_head = (pl.col("gid") != pl.col("gid").shift(1)).fill_null(True) | is_conn
        sub = sub.with_columns(seg_head.alias("seg_head"))
        head = pl.col("seg_head")
        # ``quit`` is the event of exactly the ``disconnect`` shape.
        after_disc = (pl.col("event") == "quit").shift(1).fill_null(False) & ~head
        sub = sub.with_columns(
            # A segment's session key: its connect line, or the pid's first line for the cut-off one.
            pl.when(head).then(pl.when(is_conn).then(pl.col("line")).otherwise(pl.col("pid_start")))
            .forward_fill().alias("seg_start"),
            # In the session: in the block that starts the segment (not one after a disconnect).
            pl.when(head | after_disc).then(head).forward_fill().alias("in_session"),
            (head | after_disc).cum_sum().alias("part"),
        )
        # The session key is the same on every row of a segment: built once per segment, then gathered.
        heads = sub.filter(pl.col("seg_head"))
        keys = heads.select(pl.lit(ctx.source + "#") + pl.col("host_key") + pl.lit("#")
                            + pl.col("pid").cast(pl.String) + pl.lit("#L") + pl.col("seg_start").cast(pl.String))
        segment = sub.select(pl.col("seg_head").cum_sum() - 1)[:, 0]
        session = keys.to_series().gather(segment)
        sub = sub.with_columns(first_in_parts(sub, "own_auth", "part").alias("part_auth"))
        in_session = pl.col("in_session")
        session_fill = pl.col("event").is_in(["rcpt", "mail", "helo", "data", "command", "received"])

        def fill_forward(own: str) -> pl.Expr:
            return (pl.when(in_session).then(fill_forward_in_parts(pl.col(own), pl.col("part")))
                    .otherwise(pl.col(own)))

        sub = sub.select(
            "row_",
            pl.when(in_session).then(session).otherwise(None).alias("session"),
            fill_forward("own_client_host").alias("client_host"),
            fill_forward("own_client_ip").alias("client_ip"),
            fill_forward("own_helo").alias("helo"),
            pl.when(in_session & session_fill).then(pl.coalesce(pl.col("own_auth"), pl.col("part_auth")))
            .otherwise(pl.col("own_auth")).alias("auth_user"),
        )
        order = sub["row_"]
        return df.with_columns(df[name].scatter(order, sub[name]) for name in sub.columns if name != "row_")
