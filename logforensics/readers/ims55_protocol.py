"""Reader for Exchange 5.5 IMS SMTP protocol logs (``Imcdata\\Log\\L*.LOG``) -> common events.

The line grammar is :mod:`grammars.ims55_protocol`; its ``pp.Regex`` patterns run here over whole
Polars columns. Everything stateful is column work too:

* **renderings**: a file in the CSV-quoted rendering of KB Q239816 (more quoted entries than plain
  ones) is unquoted first, exactly (:func:`grammars.ims55_protocol.unquote_lines`), with a warning;
  a file without any timestamped entry is read in the layout of KB Q245787 (entries are session
  starts and arrow or ``IO: |`` lines, :data:`~grammars.ims55_protocol.UNTIMED`), its events
  without a time (``ts`` null) and one warning;
* **merged lines** (the 1024-byte buffer, KB Q159290): a line is cut before every embedded
  timestamp + `` : `` (:func:`grammars.ims55_protocol.split_merged`); each piece is an entry (or
  continuation) of its own with the line's number, and the line gets a warning. The line counts
  once in the account of lines (as an event's line before continuation, skipped, blank);
* **continuations**: a line without a timestamp belongs to the entry above it; its text is
  appended (up to 2,000 characters) to that entry's ``text``. Only text continues an entry: a line
  with control characters or starting like a cut-off timestamp is skipped with a warning
  (:func:`grammars.ims55_protocol.is_continuation`);
* **message data**: rows after a ``354`` of the server up to its next reply, a ``.`` line or a
  parsed command (:data:`~grammars.ims55_protocol.COMMAND_LINE`) are message text: ``note`` rows,
  never commands, replies, senders or recipients;
* **sessions**: one file is one connection *slot*, reused; a session starts at each
  ``A connection was accepted from`` (inbound) or ``A connection to ... was established``
  (outbound) line. Lines before the first start belong to a session cut off by the file start;
* **raw packets**: an ``IO: |`` line whose payload is logged again parsed on the next entry is a
  duplicate; the parsed line is kept and ``raw_line`` points at the packet;
* **command/reply pairing**: a command row carries the code, text and line of the first reply
  that follows it before the next command (``reply``, ``reply_text``, ``reply_line``).

Speed (the same patterns, run on fewer strings; ``tests/test_ims55_speedpaths.py`` proves the
output equal to the grammar and to the straightforward column path):

* a line is split at its first `` : `` (a literal split); the :data:`~grammars.ims55_protocol.ENTRY`
  pattern runs on each *distinct* head (``head : ``), and only a head it consumes completely is
  trusted. The timestamp pattern cannot span `` : `` (its colons follow digits), so the match on
  the head is the match on the line. Every other line gets the pattern on the whole line;
* timestamps are converted once per distinct head;
* the body patterns (session start, arrows, SMTP reply, command verb, envelope, AUTH) run once per
  distinct body, each only on the bodies a literal or anchored prefix test lets through;
* four of them are replaced by literal cuts on the bodies whose layout makes the cut provably the
  regex's match (see :func:`_connect_in_peer`, :func:`_reply_groups`, :func:`_envelope_groups`,
  :func:`_helo_arg`); every other body still gets the regex;
* sessions are contiguous runs of rows, so per-session windows are shifts and fills checked
  against the session's first and last row instead of ``.over()`` windows.
"""

from __future__ import annotations

import itertools
import re
from typing import ClassVar

import polars as pl

from grammars import ims55_protocol as grammar
from grammars import smtp as smtp_grammar
from grammars.common import anchored
from logforensics.readers.auth_decode import auth_user
from logforensics.readers.base import ReadContext, ReadResult, bad_line_warnings
from logforensics.readers.smtp_columns import (
    AUTH_INITIAL,
    AUTH_MECHANISM,
    FIRST_ARG,
    SIZE_PARAM,
    VERB_EVENTS,
    VERB_WORD,
    ip_or_null,
)
from logforensics.schema import conform
from logforensics.timeconv import full_year, hour24, wall_clock_to_utc

CONTINUATION_CHARS = 2000

#: First words :data:`grammars.ims55_protocol.COMMAND_LINE` can match (upper case).
_COMMAND_WORDS = ["MAIL", "RCPT", "QUIT", "RSET", "DATA", "NOOP", "STARTTLS", "TURN", "HELO", "EHLO",
                  "ETRN", "VRFY", "EXPN", "AUTH", "XAUTH", "BDAT"]

#: The separator the fast path splits a line at (see the module docstring).
_SEP = " : "
#: Longest possible ``(arrow)(space)(IO: |)`` prefix of a body (:data:`grammars.ims55_protocol.PROTO`).
_PROTO_HEAD_CHARS = 9
_TIME_FIELDS = ("date_a", "date_b", "year", "hour", "minute", "second", "ampm")


class Ims55ProtocolReader:
    """Exchange Server 5.5 Internet Mail Service SMTP protocol log."""

    name: ClassVar[str] = "ims55-protocol"
    description: ClassVar[str] = ("Exchange 5.5 IMS SMTP protocol log (Imcdata\\Log\\L*.LOG), "
                                  "server local time")

    def sniff(self, head: list[str]) -> float:
        """Timestamped ``M/D/YY h:mm:ss AM : `` lines with IMS session or arrow markers; also the
        CSV-quoted (KB Q239816) and the timestamp-less (KB Q245787) renderings."""
        if _quoted_mode(head):
            head = grammar.unquote_lines(head)
        entries = [h for h in head if grammar.entry.matches(h, parse_all=True)]
        if entries:
            markers = sum(1 for h in entries if (" : <<< " in h or " : >>> " in h or "A connection " in h
                                                 or " : IO: |" in h))
            return 0.9 if markers else 0.4
        # Without timestamps: commands and replies with arrows both ways, or a session start.
        bodies = [h.lstrip(" \t") for h in head if grammar.untimed.matches(h, parse_all=True)]
        sent = sum(1 for b in bodies if b.startswith(">>>"))
        received = sum(1 for b in bodies if b.startswith("<<<"))
        starts = sum(1 for b in bodies if not b.startswith(("<<<", ">>>", "IO:")))
        return 0.6 if sent and received and (starts or sent + received >= 4) else 0.0

    def read(self, lines: pl.Series, ctx: ReadContext) -> ReadResult:
        warnings: list[str] = []
        total = lines.len()
        frame = pl.DataFrame({"raw": lines}).with_row_index("line", offset=1)
        frame = frame.with_columns(pl.col("line").cast(pl.Int64))
        frame = _unquote(frame, ctx, warnings)
        frame = _split_merged(frame, ctx, warnings)
        frame, heads = self._entries(frame)
        frame = frame.drop("head", "rest", strict=False)
        untimed = not frame["is_entry"].any()
        if untimed:
            frame = _untimed_entries(frame)
            untimed = bool(frame["is_entry"].any())
        frame = frame.with_columns(pl.col("is_entry").cum_sum().alias("entry_no"))

        rest = ~pl.col("is_entry") & ~pl.col("blank")
        orphans = frame.filter(rest & (pl.col("entry_no") == 0))
        if orphans.height:
            warnings += bad_line_warnings(ctx.source, orphans, "text before the first entry" if untimed
                                          else "text before the first timestamped entry")
        after = frame.filter(rest & (pl.col("entry_no") > 0))
        damaged_mask = _damaged(after["raw"])
        damaged = after.filter(damaged_mask)
        continuation = after.filter(~damaged_mask)
        if damaged.height:
            warnings += bad_line_warnings(
                ctx.source, damaged, "not an entry and not a continuation line (control characters or "
                "a cut-off timestamp); skipped")

        entries = frame.filter(pl.col("is_entry"))
        if untimed:
            entries = entries.with_columns(pl.lit(None, pl.Datetime("us", "UTC")).alias("ts"))
            warnings.append(f"{ctx.source}: no timestamps in this file (the rendering of KB Q245787); "
                            "its events have no time (ts null)")
            bad_ts = entries.clear()
        else:
            entries = self._timestamps(entries, heads, ctx, warnings)
            bad_ts = entries.filter(pl.col("ts").is_null())
            if bad_ts.height:
                warnings += bad_line_warnings(ctx.source, bad_ts, "timestamp is not a valid date/time")
            entries = entries.filter(pl.col("ts").is_not_null())

        if continuation.height:
            extra = continuation.group_by("entry_no").agg(
                pl.col("raw").str.join("\n").str.slice(0, CONTINUATION_CHARS).alias("continued"))
            entries = entries.join(extra, on="entry_no", how="left", maintain_order="left")
        else:
            entries = entries.with_columns(pl.lit(None, pl.String).alias("continued"))

        events = self._events(entries, ctx)
        blank = frame.filter(pl.col("blank"))
        skipped = (orphans, damaged, bad_ts)
        if frame.height == total:  # one piece per line
            n_skipped = sum(f.height for f in skipped)
            n_continuation, n_blank = continuation.height, blank.height
        else:  # a merged line counts once, by its most telling piece
            n_skipped, n_continuation, n_blank = _count_lines(entries, continuation, skipped, blank)
        return ReadResult(
            events=conform(events),
            lines=total,
            skipped=n_skipped,
            continuation=n_continuation,
            blank=n_blank,
            warnings=warnings,
            wall_clock=int(events["ts"].is_not_null().sum()),
        )

    @staticmethod
    def _entries(frame: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
        """Mark the timestamped entries: ``is_entry``, ``body``, ``blank``, and ``hid`` (the row of the
        returned frame of distinct heads with their timestamp fields) or, on lines the fast path
        does not cover, the timestamp fields themselves."""
        raw = frame["raw"]
        if "rest" not in frame.columns:  # else already split (see _split_merged)
            parts = raw.str.splitn(_SEP, 2).struct.unnest()
            frame = frame.with_columns(parts["field_0"].alias("head"), parts["field_1"].alias("rest"))
        frame = frame.with_columns((pl.col("raw").str.strip_chars() == "").alias("blank"))
        # ``.`` stops at a line feed, so a line holding one is never an entry: the slow path decides.
        candidate = pl.col("rest").is_not_null() & ~pl.col("raw").str.contains("\n", literal=True)
        frame = frame.with_columns(candidate.alias("candidate"))
        heads = frame.filter(pl.col("candidate")).select(pl.col("head").unique())
        heads = heads.with_columns(
            (pl.col("head") + pl.lit(_SEP)).str.extract_groups(anchored(grammar.ENTRY)).alias("e"),
        ).unnest("e")
        # Trusted only when the pattern consumed the whole ``head : `` (nothing left for the body).
        heads = heads.filter(pl.col("body") == "").drop("body").with_row_index("hid")
        frame = frame.join(heads.select("head", "hid"), on="head", how="left", maintain_order="left")
        frame = frame.with_columns((pl.col("hid").is_not_null() & pl.col("candidate")).alias("fast"))
        slow_mask = ~frame["fast"] & ~frame["blank"]
        slow_idx = slow_mask.arg_true()
        slow = frame.filter(slow_mask).select(
            pl.col("raw").str.extract_groups(anchored(grammar.ENTRY)).alias("e")).unnest("e")
        cols = {name: _scatter(frame.height, slow_idx, slow[name]).alias(name) for name in (*_TIME_FIELDS, "body")}
        frame = frame.with_columns(
            pl.when(pl.col("fast")).then(pl.col("rest")).otherwise(cols["body"]).alias("body"),
            pl.when(pl.col("fast")).then(pl.col("hid")).otherwise(None).alias("hid"),
            *(cols[name] for name in _TIME_FIELDS),
        )
        frame = frame.with_columns(pl.col("body").is_not_null().alias("is_entry"))
        return frame.drop("head", "rest", "candidate", "fast"), heads

    @staticmethod
    def _timestamps(entries: pl.DataFrame, heads: pl.DataFrame, ctx: ReadContext,
                    warnings: list[str]) -> pl.DataFrame:
        """``ts`` for each entry: converted once per distinct fast-path head, else per line."""
        slow = entries.filter(pl.col("hid").is_null())
        a = pl.concat([heads["date_a"], slow["date_a"]]).cast(pl.Int32, strict=False)
        b = pl.concat([heads["date_b"], slow["date_b"]]).cast(pl.Int32, strict=False)
        order = ctx.site.ims_date_order
        if order == "MDY" and a.len() and (a.max() or 0) > 12 and (b.max() or 0) <= 12:
            order = "DMY"
            warnings.append(f"{ctx.source}: dates read as day/month/year (a first field above 12 "
                            "was seen); set ims_date_order in the site profile to override")
        month, day = ("date_a", "date_b") if order == "MDY" else ("date_b", "date_a")
        zone = ctx.site.zone()
        ts = wall_clock_to_utc(
            full_year(pl.col("year")),
            pl.col(month).cast(pl.Int32, strict=False),
            pl.col(day).cast(pl.Int32, strict=False),
            hour24(pl.col("hour"), pl.col("ampm")),
            pl.col("minute").cast(pl.Int32, strict=False),
            pl.col("second").cast(pl.Int32, strict=False),
            zone,
        )
        head_ts = heads.select(ts).to_series()
        slow_idx = entries["hid"].is_null().arg_true()
        slow_ts = _scatter(entries.height, slow_idx, slow.select(ts).to_series())
        return entries.with_columns(
            pl.when(pl.col("hid").is_null()).then(slow_ts).otherwise(head_ts.gather(entries["hid"])).alias("ts"),
        )

    @staticmethod
    def _body_features(bodies: pl.Series) -> pl.DataFrame:
        """Everything the body patterns give, once per distinct body (``bodies`` holds no duplicates).

        Each pattern runs only on the bodies that pass a cheap test it implies: a literal prefix or
        substring, or an anchored prefix of the pattern itself.
        """
        body = bodies.alias("body")
        peer_in = _connect_in_peer(body)
        peer_out = _masked(body, body.str.contains("onnection to ", literal=True)
                           & body.str.contains(" established", literal=True),
                           lambda s: s.str.extract(anchored(grammar.CONNECT_OUT), 1))
        is_connect = peer_in.is_not_null() | peer_out.is_not_null()
        # Arrow and raw-packet marker: decided by the first few characters (``.*$`` always matches).
        head = body.str.slice(0, _PROTO_HEAD_CHARS)
        heads = pl.DataFrame({"head": head.unique()}).with_columns(
            pl.col("head").str.extract_groups(anchored(grammar.PROTO)).alias("p")).unnest("p")
        heads = heads.select(
            "head", "arrow", pl.col("io").is_not_null().alias("is_io"),
            (pl.col("head").str.len_chars() - pl.col("payload").str.len_chars()).alias("skip"))
        f = pl.DataFrame({"body": body, "head": head, "peer_in": peer_in, "peer_out": peer_out,
                          "is_connect": is_connect})
        f = f.join(heads, on="head", how="left", maintain_order="left")
        f = f.with_columns(
            pl.when(pl.col("is_connect")).then(None)
            .otherwise(pl.col("body").str.slice(pl.col("skip")).fill_null("")).alias("payload"),
        )
        payload = f["payload"].fill_null("")
        reply = _reply_groups(payload)
        code = reply["code"].cast(pl.Int64, strict=False)
        word = _masked(payload, code.is_null() & ~is_connect,
                        lambda s: s.str.extract(VERB_WORD, 1).str.to_uppercase())
        word_event = word.replace_strict(VERB_EVENTS, default=None, return_dtype=pl.String)
        helo_arg = _helo_arg(payload, word_event == "helo")
        is_auth = word == "AUTH"
        auth_mech = _masked(payload, is_auth, lambda s: s.str.extract(AUTH_MECHANISM, 1).str.to_uppercase())
        auth_initial = _masked(payload, is_auth, lambda s: s.str.extract(AUTH_INITIAL, 1))
        # A parsed-command shape (ends message data whose reply was not logged): only words it allows.
        cmd_line = _masked(payload, word.is_in(_COMMAND_WORDS),
                           lambda s: s.str.contains(anchored(grammar.COMMAND_LINE))).fill_null(False)
        env = _envelope_groups(payload)
        path = pl.DataFrame(env).select(pl.coalesce(
            pl.col("path"), pl.col("bare_path").str.strip_prefix("<").str.strip_suffix(">"))).to_series()
        size = _masked(env["params"], env["params"].is_not_null(),
                       lambda s: s.str.extract(SIZE_PARAM, 1).cast(pl.Int64, strict=False))
        return f.drop("head", "skip").with_columns(
            code.alias("code"),
            reply["reply_text"].alias("reply_text"),
            code.is_not_null().alias("is_reply"),
            (payload.str.strip_chars() != "").alias("nonblank"),
            word.alias("word"),
            word_event.alias("word_event"),
            cmd_line.alias("cmd_line"),
            helo_arg.alias("helo_arg"),
            auth_mech.alias("mech"),
            auth_initial.alias("initial"),
            path.alias("path"),
            size.alias("size_param"),
        )

    def _events(self, entries: pl.DataFrame, ctx: ReadContext) -> pl.DataFrame:
        feats = self._body_features(entries["body"].unique())
        df = entries.select("line", "ts", "body", "continued").join(
            feats, on="body", how="left", maintain_order="left")

        # Sessions: split on connection-start lines.
        first_line = df["line"].min() if df.height else 0
        df = df.with_columns(
            pl.when(pl.col("is_connect")).then(pl.col("line")).otherwise(None)
            .forward_fill().fill_null(first_line).alias("session_start"),
            pl.col("is_connect").cum_sum().alias("sid"),
            pl.when(pl.col("peer_in").is_not_null()).then(pl.lit("in"))
            .when(pl.col("peer_out").is_not_null()).then(pl.lit("out"))
            .otherwise(None).alias("conn_dir"),
        )

        # Raw-packet twins: an IO: | row whose payload is logged again on the next row of its session.
        sid, is_io = df["sid"], df["is_io"]
        candidate = is_io & (sid.shift(-1) == sid).fill_null(False) & ~is_io.shift(-1).fill_null(True)
        at = candidate.arg_true()
        payload = df["payload"]
        same = (payload.gather(at).str.strip_chars() == payload.gather(at + 1).str.strip_chars())
        dup_at = at.filter(same.fill_null(False))
        io_dup = _scatter(df.height, dup_at, pl.repeat(True, dup_at.len(), eager=True)).fill_null(False)
        raw_line = _scatter(df.height, dup_at + 1, df["line"].gather(dup_at))
        df = df.with_columns(raw_line.alias("raw_line")).filter(~io_dup)

        # Session bounds: rows are in log order, so a session is a contiguous run of rows.
        sid = pl.col("sid")
        df = df.with_columns(
            pl.int_range(pl.len(), dtype=pl.Int64).alias("_i"),
            (sid != sid.shift(1)).fill_null(True).alias("_first"),
            (sid != sid.shift(-1)).fill_null(True).alias("_last"),
        )
        df = df.with_columns(
            pl.when(pl.col("_first")).then(pl.col("_i")).forward_fill().alias("_start"),
            pl.when(pl.col("_last")).then(pl.col("_i")).backward_fill().alias("_end"),
        )

        # Session direction: from its start line, else from who sends commands.
        is_reply, is_connect = pl.col("is_reply"), pl.col("is_connect")
        cmd_dir = (
            pl.when(~is_reply & ~is_connect & (pl.col("arrow") == "<<<")).then(pl.lit("in"))
            .when(~is_reply & ~is_connect & (pl.col("arrow") == ">>>")).then(pl.lit("out")).otherwise(None)
        )
        df = df.with_columns(cmd_dir.alias("cmd_dir"))
        first_cmd = pl.when(pl.col("cmd_dir").is_not_null()).then(pl.col("_i")).backward_fill().gather(pl.col("_start"))
        df = df.with_columns(
            pl.coalesce(pl.col("conn_dir").gather(pl.col("_start")),
                        pl.when(first_cmd <= pl.col("_end")).then(pl.col("cmd_dir").gather(first_cmd)))
            .alias("direction"),
        )

        # Message data: from a 354 reply of the server to its next reply, a "." line or a parsed
        # command; those rows are message text (notes), never commands or replies.
        arrow, direction = pl.col("arrow"), pl.col("direction")
        server_reply = is_reply & (arrow.is_null() | direction.is_null()
                                   | ((direction == "in") & (arrow == ">>>"))
                                   | ((direction == "out") & (arrow == "<<<")))
        ends = server_reply | is_connect | (~pl.col("is_io") & pl.col("cmd_line"))
        mark = (pl.when(server_reply & (pl.col("code") == 354)).then(pl.lit(1, pl.Int8))
                .when(ends | (pl.col("payload").str.strip_chars() == ".")).then(pl.lit(0, pl.Int8)))
        df = df.with_columns(
            ((_previous(_fill_forward(mark)).fill_null(0) == 1) & ~ends).alias("in_data"))
        in_data = pl.col("in_data")
        df = df.with_columns(
            (is_reply & ~in_data).alias("is_reply"),
            pl.when(in_data).then(None).otherwise(pl.col("code")).alias("code"),
            pl.when(in_data).then(None).otherwise(pl.col("reply_text")).alias("reply_text"),
        )
        df = df.with_columns(_previous(_fill_forward(pl.col("code"))).alias("prev_reply"))

        # Commands (verb, event), as in smtp_columns.command_columns.
        is_command = ~is_reply & pl.col("nonblank") & ~in_data
        in_auth = is_command & (pl.col("prev_reply") == 334)
        df = df.with_columns(
            pl.when(in_auth).then(None).when(is_command).then(pl.col("word")).otherwise(None).alias("verb"),
            pl.when(in_auth).then(pl.lit("auth")).when(is_command).then(pl.col("word_event"))
            .otherwise(None).alias("smtp_event"),
        )

        # Envelope, as in smtp_columns.envelope_columns.
        event = pl.col("smtp_event")
        sender_mark = (
            pl.when(event == "mail").then(pl.col("path").fill_null(""))
            .when(event.is_in(["rset", "helo"]) | is_connect).then(pl.lit("\x00"))
            .otherwise(None)
        )
        helo_mark = (
            pl.when(event == "helo").then(pl.col("helo_arg").fill_null(""))
            .when(is_connect).then(pl.lit("\x00"))
            .otherwise(None)
        )
        df = df.with_columns(
            _fill_forward(sender_mark).alias("sender"),
            _fill_forward(helo_mark).alias("helo"),
            pl.when(event == "rcpt").then(pl.col("path")).otherwise(None).alias("recipient"),
            pl.when(event == "mail").then(pl.col("size_param")).otherwise(None).alias("size"),
        )
        df = df.with_columns(
            pl.when(pl.col("sender") == "\x00").then(None).otherwise(pl.col("sender")).alias("sender"),
            pl.when(pl.col("helo") == "\x00").then(None).otherwise(pl.col("helo")).alias("helo"),
            pl.when(is_connect).then(pl.lit("connect"))
            .when(is_reply).then(pl.lit("reply"))
            .when(~pl.col("nonblank") | in_data).then(pl.lit("note"))
            .when(pl.col("arrow").is_null() & pl.col("smtp_event").is_null()).then(pl.lit("note"))
            .otherwise(pl.col("smtp_event").fill_null("command")).alias("event"),
        )
        df = self._auth_users(df)

        # Command/reply pairing, as in smtp_columns.pair_replies.
        paired = ~pl.col("event").is_in(["connect", "reply", "note"])
        nxt = pl.when(is_reply | paired).then(pl.col("_i")).backward_fill().shift(-1)
        df = df.with_columns(pl.when(paired & (nxt <= pl.col("_end"))).then(nxt).alias("_next"))
        df = df.with_columns(
            pl.when(pl.col("is_reply").gather(pl.col("_next"))).then(pl.col("_next")).alias("_reply"))
        reply_at = pl.col("_reply")

        text = pl.coalesce(pl.col("body"), pl.lit(""))
        df = df.with_columns(
            pl.col("line").gather(reply_at).alias("reply_line"),
            pl.when(is_reply).then(pl.col("code")).otherwise(pl.col("code").gather(reply_at)).alias("reply"),
            pl.col("reply_text").gather(reply_at).alias("reply_text"),
            (pl.lit(ctx.source + "#L") + pl.col("session_start").cast(pl.String)).alias("session"),
            pl.lit(ctx.source).alias("source"),
            pl.lit(Ims55ProtocolReader.name).alias("format"),
            pl.lit(ctx.server, pl.String).alias("server"),
            pl.when(pl.col("direction") == "in").then(pl.col("peer_in").gather(pl.col("_start")))
            .otherwise(None).alias("client_host"),
            pl.when(pl.col("direction") == "out").then(pl.col("peer_out").gather(pl.col("_start")))
            .otherwise(None).alias("relay_host"),
            pl.when(is_connect).then(text)
            .when(is_reply).then(pl.col("reply_text"))
            .otherwise(pl.col("payload")).alias("text_first"),
        )
        hosts = df.select(pl.col("client_host").unique().drop_nulls())
        hosts = hosts.with_columns(ip_or_null(pl.col("client_host")).alias("client_ip"))
        df = df.join(hosts, on="client_host", how="left", maintain_order="left")
        return df.with_columns(
            pl.when(pl.col("continued").is_not_null())
            .then(pl.col("text_first") + pl.lit("\n") + pl.col("continued"))
            .otherwise(pl.col("text_first")).alias("text"),
        )

    @staticmethod
    def _auth_users(df: pl.DataFrame) -> pl.DataFrame:
        """``auth_user``, as in smtp_columns.auth_user_column: decoded once per distinct
        (mechanism, challenge, data), on the rows of an AUTH exchange only."""
        is_auth_cmd = pl.col("verb") == "AUTH"
        mech = (pl.when(is_auth_cmd).then(pl.col("mech")).when(pl.col("is_connect")).then(pl.lit(""))
                .otherwise(None))
        challenge = _previous(_fill_forward(pl.when(pl.col("is_reply")).then(pl.col("reply_text"))))
        data = (pl.when(is_auth_cmd).then(pl.col("initial"))
                .when(pl.col("smtp_event") == "auth").then(pl.col("payload")).otherwise(None))
        keys = df.with_columns(
            _fill_forward(mech).alias("auth_mech"),
            pl.when(is_auth_cmd).then(None).otherwise(challenge).alias("auth_challenge"),
            data.alias("auth_data"),
        ).select("auth_mech", "auth_challenge", "auth_data")
        wanted = keys["auth_data"].is_not_null()
        at = wanted.arg_true()
        rows = keys.filter(wanted)
        users = {key: auth_user(*key) for key in rows.unique().iter_rows()}
        found = pl.Series([users[key] for key in rows.iter_rows()], dtype=pl.String)
        return df.with_columns(_scatter(df.height, at, found).alias("auth_user"))


def _quoted_mode(head: list[str]) -> bool:
    """Whether these lines are the CSV-quoted rendering: more quoted entries than plain ones."""
    quoted = 0
    for text in head:
        if text.startswith('"') and grammar.quoted_open.matches(text, parse_all=True):
            inner = grammar.quoted_open.parse_string(text, parse_all=True)["inner"].replace('""', '"')
            quoted += grammar.entry.matches(inner, parse_all=True) or grammar.untimed.matches(inner, parse_all=True)
    return quoted > 0 and quoted > sum(1 for text in head if grammar.entry.matches(text, parse_all=True))


def _unquote(frame: pl.DataFrame, ctx: ReadContext, warnings: list[str]) -> pl.DataFrame:
    """The CSV-quoted rendering (KB Q239816) unquoted exactly (:func:`grammars.ims55_protocol.unquote_lines`),
    when quoted entries outnumber plain ones; other files are returned as they are."""
    raw = frame["raw"]
    opens = raw.str.starts_with('"')
    if not opens.any():
        return frame
    inner = raw.filter(opens).str.extract(anchored(grammar.QUOTED_OPEN), 1).str.replace_all('""', '"', literal=True)
    quoted = int((inner.str.contains(anchored(grammar.ENTRY)) | inner.str.contains(anchored(grammar.UNTIMED))).sum())
    if not quoted or quoted <= int(raw.str.contains(anchored(grammar.ENTRY)).sum()):
        return frame
    first, more = re.compile(grammar.QUOTED_OPEN), re.compile(grammar.QUOTED_MORE)
    out: list[str | None] = []
    inside = False
    for text in raw.to_list():
        if text is None or "\n" in text or (not inside and not text.startswith('"')):
            out.append(text)
            inside = False if text is None or "\n" in text else inside
            continue
        m = (more if inside else first).fullmatch(text)
        if m is None:
            out.append(text)
            inside = False
            continue
        out.append(m["inner"].replace('""', '"'))
        inside = m["close"] is None
    warnings.append(f"{ctx.source}: lines are wrapped in CSV quotes (the rendering of KB Q239816); "
                    "read without the quoting")
    return frame.with_columns(pl.Series("raw", out, dtype=pl.String))


#: Python form of the cut points of :func:`grammars.ims55_protocol.split_merged`.
_MERGE_CUT = re.compile("(?<=[^0-9])(?=" + grammar.STAMP_SEP + ")")


#: A head (the text before a line's first `` : ``) that ends in a merged entry's timestamp.
_MERGED_HEAD = "[^0-9]" + grammar.STAMP + "$"


def _split_merged(frame: pl.DataFrame, ctx: ReadContext, warnings: list[str]) -> pl.DataFrame:
    """A line holding several entries (KB Q159290) becomes one row per entry, each with the line's
    number (:func:`grammars.ims55_protocol.split_merged`), with a warning naming the line.

    Speed: the :data:`~grammars.ims55_protocol.EMBEDDED` pattern runs only on lines where it can
    match. Its `` : `` is either the line's first one, so the head before it ends in ``non-digit +
    timestamp`` (tested once per distinct head), or a later one, which starts at least three
    characters after the first (one starting inside `` : : `` follows a ``:``, and no timestamp ends
    in ``:``), so the rest after the first separator holds `` : ``. When nothing is split, the
    ``head``/``rest`` columns of that first split are kept for :meth:`Ims55ProtocolReader._entries`.
    """
    raw = frame["raw"]
    parts = raw.str.splitn(_SEP, 2).struct.unnest()
    head, rest = parts["field_0"], parts["field_1"]
    maybe = rest.str.contains(_SEP, literal=True).fill_null(False)
    heads = head.filter(rest.is_not_null()).unique()
    heads = heads.filter(heads.str.contains(_MERGED_HEAD))
    if heads.len():
        maybe = maybe | (rest.is_not_null() & head.is_in(heads.implode()))
    at = maybe.arg_true()
    at = at.filter(raw.gather(at).str.contains(grammar.EMBEDDED))
    if not at.len():
        return frame.with_columns(head.alias("head"), rest.alias("rest"))
    merged = frame[at]
    numbers: list[int] = []
    pieces: list[str] = []
    for number, text in merged.iter_rows():
        bounds = [0, *(m.start() for m in _MERGE_CUT.finditer(text)), len(text)]
        for a, b in itertools.pairwise(bounds):
            numbers.append(number)
            pieces.append(text[a:b])
    warnings += bad_line_warnings(ctx.source, merged, "entries merged on one line (the IMS 1024-byte "
                                  "buffer, KB Q159290); read as separate entries")
    split = pl.DataFrame({"line": numbers, "raw": pieces}, schema=frame.schema)
    keep = frame.filter(~frame["line"].is_in(merged["line"].implode()))
    return pl.concat([keep, split]).sort("line", maintain_order=True)


def _untimed_entries(frame: pl.DataFrame) -> pl.DataFrame:
    """Entries of the rendering without timestamps (KB Q245787), for a file with no timestamped entry."""
    body = _masked(frame["raw"], ~frame["blank"], lambda s: s.str.extract(anchored(grammar.UNTIMED), 1))
    return frame.with_columns(body.alias("body"), body.is_not_null().alias("is_entry"))


def _damaged(raw: pl.Series) -> pl.Series:
    """Lines that cannot continue an entry (:func:`grammars.ims55_protocol.is_continuation`)."""
    return raw.str.contains(grammar.CONTROL_CHAR) | raw.str.contains(anchored(grammar.BROKEN_STAMP))


def _count_lines(events: pl.DataFrame, continuation: pl.DataFrame, skipped: tuple[pl.DataFrame, ...],
                 blank: pl.DataFrame) -> tuple[int, int, int]:
    """(skipped, continuation, blank) physical lines when some lines hold several pieces: each line
    counts once, as an event's line first, then as continuation, skipped, blank."""
    ranked = pl.concat([
        f.select("line", pl.lit(rank, pl.Int8).alias("rank"))
        for rank, f in ((0, events), (1, continuation), *((2, f) for f in skipped), (3, blank))
    ])
    best = ranked.group_by("line").agg(pl.col("rank").min())["rank"]
    return int((best == 2).sum()), int((best == 1).sum()), int((best == 3).sum())


def _scatter(n: int, at: pl.Series, values: pl.Series) -> pl.Series:
    """A column of ``n`` nulls with ``values`` put at the row positions ``at``."""
    out = pl.repeat(None, n, dtype=values.dtype, eager=True)
    return out.scatter(at, values) if at.len() else out


def _masked(column: pl.Series, mask: pl.Series, compute) -> pl.Series:
    """``compute`` run only on the rows where ``mask`` holds; null elsewhere."""
    mask = mask.fill_null(False)
    return _scatter(column.len(), mask.arg_true(), compute(column.filter(mask)))


def _masked_groups(column: pl.Series, mask: pl.Series, pattern: str, names: tuple[str, ...]) -> dict[str, pl.Series]:
    """The named groups of ``pattern`` (``str.extract_groups``), only on the rows where ``mask`` holds."""
    mask = mask.fill_null(False)
    at = mask.arg_true()
    groups = column.filter(mask).str.extract_groups(pattern).struct.unnest()
    return {name: _scatter(column.len(), at, groups[name]) for name in names}


def _fill_forward(value: pl.Expr) -> pl.Expr:
    """``value.forward_fill().over(session)`` on contiguous sessions (columns ``_i``, ``_start``)."""
    last = pl.when(value.is_not_null()).then(pl.col("_i")).forward_fill()
    return pl.when(last >= pl.col("_start")).then(value.forward_fill())


def _previous(value: pl.Expr) -> pl.Expr:
    """``value.shift(1).over(session)`` on contiguous sessions (column ``_first``)."""
    return pl.when(~pl.col("_first")).then(value.shift(1))


# Literal paths for the body patterns. Each gives exactly what its regex gives, on the rows its
# literal test admits, and hands every other row to the regex. Bodies never hold a line feed (a
# line with one is never an entry), but each test still sends such text to the regex.

_CONNECT_IN_PREFIX = "A connection was accepted from "


def _connect_in_peer(body: pl.Series) -> pl.Series:
    """Group ``peer`` of :data:`~grammars.ims55_protocol.CONNECT_IN`, null where it does not match.

    Exactness: after the literal prefix, ``(?P<peer>.*?)\\.?[ \\t]*$`` takes the *shortest* peer
    whose remainder is an optional ``.`` and then only blanks. With no line feed in the text (``.``
    stops at one), that is the rest with trailing spaces and tabs stripped, then one final ``.``
    removed. Text holding a line feed goes to the regex.
    """
    starts = body.str.starts_with(_CONNECT_IN_PREFIX)
    sub = body.filter(starts)
    has_lf = sub.str.contains("\n", literal=True)
    peer = sub.str.slice(len(_CONNECT_IN_PREFIX)).str.strip_chars_end(" \t").str.strip_suffix(".")
    if has_lf.any():
        slow = sub.filter(has_lf).str.extract(anchored(grammar.CONNECT_IN), 1)
        peer = peer.scatter(has_lf.arg_true(), slow)
    return _scatter(body.len(), starts.arg_true(), peer)


def _reply_groups(payload: pl.Series) -> dict[str, pl.Series]:
    """Groups ``code`` and ``reply_text`` of :data:`grammars.smtp.REPLY` (anchored), no regex capture.

    Exactness: ``[2-5][0-9][0-9](?:[ -](?P<reply_text>.*))?$`` matches a text exactly when it is
    three such digits and either nothing more, or ``' '``/``'-'`` followed by any text without a line
    feed (``.`` stops at one and ``$`` is the end of the text); ``reply_text`` is then everything
    after the fourth character, else null.
    """
    digits = payload.str.contains(r"^[2-5][0-9][0-9]")
    at = digits.arg_true()
    sub = payload.gather(at)
    n = sub.str.len_chars()
    texted = sub.str.slice(3, 1).is_in([" ", "-"]) & ~sub.str.contains("\n", literal=True)
    matched = (n == 3) | texted
    code = pl.select(pl.when(matched).then(sub.str.slice(0, 3))).to_series()
    text = pl.select(pl.when(texted).then(sub.str.slice(4))).to_series()
    return {"code": _scatter(payload.len(), at, code), "reply_text": _scatter(payload.len(), at, text)}


#: Envelope commands in the exact spelling the IMS logs them, with the ``<`` that opens the path.
_ENVELOPE_PREFIXES = ("RCPT To:<", "MAIL From:<")


def _envelope_groups(payload: pl.Series) -> dict[str, pl.Series]:
    """Groups ``path``, ``bare_path``, ``params`` of :data:`grammars.smtp.ENVELOPE` (anchored).

    Strict layout, cut at literals: ``RCPT To:<`` or ``MAIL From:<``, then a middle holding no ``>``,
    no ``\\`` and an even number of ``"``, then a final ``>``. Exactness: the prefix matches the verb
    part (no blanks around the colon); the bracketed alternative of :data:`~grammars.smtp.PATH` is
    tried first, and its repetition is forced: a ``"`` can only open a quoted part (``[^>"]`` refuses
    it), which without backslashes ends at the next ``"``, so the quotes pair up in order and every
    other character is one ``[^>"]``. The repetition thus consumes exactly the middle (it cannot
    pass the final ``>``, which is outside any quoted part), the ``>`` follows, and ``params`` is
    ``.*$`` on the empty rest. So ``path`` is the middle, ``bare_path`` null and ``params`` empty, the
    only match. Every other envelope line goes to the regex.
    """
    n = payload.len()
    path = pl.repeat(None, n, dtype=pl.String, eager=True)
    params = pl.repeat(None, n, dtype=pl.String, eager=True)
    fast = pl.repeat(False, n, eager=True)
    for prefix in _ENVELOPE_PREFIXES:
        at = payload.str.starts_with(prefix).arg_true()
        middle = payload.gather(at).str.strip_prefix(prefix)
        ok = (middle.str.ends_with(">") & ~middle.str.head(-1).str.contains(r'[>\\]')
              & (middle.str.count_matches('"', literal=True) % 2 == 0))
        ok_at = at.filter(ok)
        path = path.scatter(ok_at, middle.filter(ok).str.head(-1)) if ok_at.len() else path
        fast = fast.scatter(ok_at, True) if ok_at.len() else fast
    slow = payload.str.contains(r"^(?i:MAIL[ \t]+FROM|RCPT[ \t]+TO)") & ~fast
    env = _masked_groups(payload, slow, anchored(smtp_grammar.ENVELOPE), ("path", "bare_path", "params"))
    params = pl.select(pl.when(fast).then(pl.lit("")).otherwise(env["params"])).to_series()
    return {"path": path.fill_null(env["path"]), "bare_path": env["bare_path"], "params": params}


def _helo_arg(payload: pl.Series, mask: pl.Series) -> pl.Series:
    """Group 1 of :data:`~logforensics.readers.smtp_columns.FIRST_ARG` on the rows of ``mask``.

    Exactness: on ``HELO `` or ``EHLO `` followed by a non-empty rest holding no space or tab,
    ``[A-Za-z]+`` takes the verb (the space stops it), ``[ \\t]+`` the one space, and ``[^ \\t]+`` the
    whole rest. Other rows of the mask go to the regex.
    """
    mask = mask.fill_null(False)
    rest = payload.str.slice(5)
    fast = (mask & (payload.str.starts_with("HELO ") | payload.str.starts_with("EHLO "))
            & (rest != "") & ~rest.str.contains("[ \t]"))
    arg = pl.select(pl.when(fast).then(rest)).to_series()
    slow = mask & ~fast
    if slow.any():
        arg = arg.fill_null(_masked(payload, slow, lambda s: s.str.extract(FIRST_ARG, 1)))
    return arg
