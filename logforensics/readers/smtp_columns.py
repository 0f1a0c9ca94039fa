"""Column work shared by readers of SMTP transcripts (IMS protocol logs, IIS/Exchange W3C logs).

Each function takes a frame with one row per logged command or reply, in log order, and adds
columns; all of it is whole-column Polars work using the patterns of :mod:`grammars.smtp`.
"""

from __future__ import annotations

import polars as pl

from grammars import smtp as smtp_grammar
from grammars.common import anchored
from logforensics.readers.auth_decode import auth_user

#: SMTP verb -> normalised event name.
VERB_EVENTS: dict[str, str] = {
    "HELO": "helo", "EHLO": "helo",
    "AUTH": "auth", "XAUTH": "auth",
    "MAIL": "mail", "RCPT": "rcpt", "DATA": "data", "BDAT": "data",
    "RSET": "rset", "QUIT": "quit", "STARTTLS": "starttls",
    "NOOP": "noop", "VRFY": "vrfy", "EXPN": "expn", "HELP": "help",
    "ETRN": "etrn", "TURN": "turn", "ATRN": "turn", "XEXCH50": "command",
}

#: The first word of a command, when it is a plausible verb (group 1).
VERB_WORD = r"^([A-Za-z][A-Za-z0-9_-]{0,15})(?:[ \t:]|$)"
#: The first argument of a command (the HELO/EHLO name), group 1.
FIRST_ARG = r"^[A-Za-z]+[ \t]+([^ \t]+)"
#: The AUTH mechanism (group 1) and its optional initial response.
AUTH_MECHANISM = r"^[A-Za-z]+[ \t]+([A-Za-z0-9_-]+)(?:[ \t]+([^ \t]+))?"
#: The AUTH initial response (group 1).
AUTH_INITIAL = r"^[A-Za-z]+[ \t]+[A-Za-z0-9_-]+[ \t]+([^ \t]+)"
#: The ESMTP ``SIZE=`` parameter among MAIL FROM parameters (group 1).
SIZE_PARAM = r"(?i)(?:^|[ \t])SIZE=([0-9]{1,18})"

_IP = r"^\[?(?:[Ii][Pp][Vv]6:)?([0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.[0-9.]+)?)\]?$"


def ip_or_null(host: pl.Expr) -> pl.Expr:
    """The IP address in a host field (``203.0.113.7``, ``[203.0.113.7]``, ``[IPv6:...]``), else null."""
    return host.str.strip_chars().str.extract(_IP, 1)


def command_columns(df: pl.DataFrame, *, payload_col: str, is_reply_col: str,
                    session_col: str = "session") -> pl.DataFrame:
    """Add ``verb`` (upper-cased, or null when the first word is not a plausible verb) and
    ``smtp_event`` (from :data:`VERB_EVENTS`; ``auth`` for the data lines of an AUTH exchange, i.e.
    commands answering a ``334`` challenge)."""
    payload = pl.col(payload_col).fill_null("")
    token = payload.str.extract(VERB_WORD, 1).str.to_uppercase()
    prev_reply = (
        pl.when(pl.col(is_reply_col)).then(pl.col("code")).otherwise(None)
        .forward_fill().shift(1).over(session_col)
    )
    is_command = ~pl.col(is_reply_col) & (payload.str.strip_chars() != "")
    return df.with_columns(
        pl.when(is_command & (prev_reply == 334)).then(None)
        .when(is_command).then(token).otherwise(None).alias("verb"),
        pl.when(is_command & (prev_reply == 334)).then(pl.lit("auth"))
        .when(is_command).then(token.replace_strict(VERB_EVENTS, default=None, return_dtype=pl.String))
        .otherwise(None).alias("smtp_event"),
    )


def envelope_columns(df: pl.DataFrame, *, payload_col: str, session_col: str = "session") -> pl.DataFrame:
    """Add ``sender`` (the transaction's MAIL FROM path on every row until RSET/HELO/a new
    session), ``recipient`` (RCPT rows), ``size`` (SIZE= parameter), ``helo`` (the session's
    HELO/EHLO name) from MAIL/RCPT/HELO commands. Paths keep their quoting, without ``< >``."""
    env = pl.col(payload_col).str.extract_groups(anchored(smtp_grammar.ENVELOPE))
    df = df.with_columns(env.alias("env")).unnest("env")
    # A bare path keeps no stray brackets (a line cut off inside ``<...`` leaves one).
    path = pl.coalesce(pl.col("path"), pl.col("bare_path").str.strip_prefix("<").str.strip_suffix(">"))
    event = pl.col("smtp_event")
    helo_arg = pl.col(payload_col).str.extract(FIRST_ARG, 1)
    sender_mark = (
        pl.when(event == "mail").then(path.fill_null(""))
        .when(event.is_in(["rset", "helo"]) | pl.col("is_connect")).then(pl.lit("\x00"))
        .otherwise(None)
    )
    helo_mark = (
        pl.when(event == "helo").then(helo_arg.fill_null(""))
        .when(pl.col("is_connect")).then(pl.lit("\x00"))
        .otherwise(None)
    )
    df = df.with_columns(
        sender_mark.forward_fill().over(session_col).alias("sender"),
        helo_mark.forward_fill().over(session_col).alias("helo"),
        pl.when(event == "rcpt").then(path).otherwise(None).alias("recipient"),
        pl.when(event == "mail")
        .then(pl.col("params").str.extract(SIZE_PARAM, 1).cast(pl.Int64, strict=False))
        .otherwise(None).alias("size"),
    )
    return df.with_columns(
        pl.when(pl.col("sender") == "\x00").then(None).otherwise(pl.col("sender")).alias("sender"),
        pl.when(pl.col("helo") == "\x00").then(None).otherwise(pl.col("helo")).alias("helo"),
    )


def pair_replies(df: pl.DataFrame, *, session_col: str = "session") -> pl.DataFrame:
    """Link each command to its reply: the first reply after it and before the next command.

    Command rows get ``reply`` (code), ``reply_text`` and ``reply_line``; reply rows keep their own
    code in ``reply`` and their text in ``reply_own_text``.
    """
    is_command = pl.col("event").is_in(["connect", "reply", "note"]).not_()
    marker = (
        pl.when(pl.col("is_reply")).then(pl.col("line"))
        .when(is_command).then(pl.lit(-1, pl.Int64))
        .otherwise(None)
    )
    df = df.with_columns(
        pl.col("reply_text").alias("reply_own_text"),
        pl.when(is_command).then(marker.shift(-1).backward_fill().over(session_col))
        .otherwise(None).alias("reply_line"),
    )
    df = df.with_columns(
        pl.when(pl.col("reply_line") > 0).then(pl.col("reply_line")).otherwise(None).alias("reply_line"),
    )
    replies = df.filter(pl.col("is_reply")).select(
        pl.col("line").alias("reply_line"),
        pl.col("code").alias("paired_code"),
        pl.col("reply_own_text").alias("paired_text"),
    )
    df = df.join(replies, on="reply_line", how="left", maintain_order="left")
    return df.with_columns(
        pl.when(pl.col("is_reply")).then(pl.col("code")).otherwise(pl.col("paired_code")).alias("reply"),
        pl.col("paired_text").alias("reply_text"),
    )


def auth_user_column(df: pl.DataFrame, *, payload_col: str, session_col: str = "session") -> pl.DataFrame:
    """Add ``auth_user``: the user name decoded from the AUTH exchange, on the row that carries it.

    Decoding runs once per distinct (mechanism, challenge, data) triple, on AUTH rows only.
    """
    is_auth_cmd = pl.col("verb") == "AUTH"
    args = pl.col(payload_col).str.extract(AUTH_MECHANISM, 1)
    initial = pl.col(payload_col).str.extract(AUTH_INITIAL, 1)
    df = df.with_columns(
        pl.when(is_auth_cmd).then(args.str.to_uppercase()).when(pl.col("is_connect")).then(pl.lit(""))
        .otherwise(None).forward_fill().over(session_col).alias("auth_mech"),
        pl.when(pl.col("is_reply")).then(pl.col("reply_text")).otherwise(None)
        .forward_fill().shift(1).over(session_col).alias("auth_challenge"),
    )
    data = pl.when(is_auth_cmd).then(initial).when(pl.col("smtp_event") == "auth").then(pl.col(payload_col))
    df = df.with_columns(data.otherwise(None).alias("auth_data"))
    wanted = df.filter(pl.col("auth_data").is_not_null()).select(
        "auth_mech", pl.when(pl.col("verb") == "AUTH").then(None).otherwise(pl.col("auth_challenge"))
        .alias("auth_challenge"), "auth_data").unique()
    users = {tuple(r): auth_user(*r) for r in wanted.iter_rows()}
    lookup = pl.DataFrame(
        [(*k, v) for k, v in users.items()],
        schema={"auth_mech": pl.String, "auth_challenge": pl.String, "auth_data": pl.String, "auth_user": pl.String},
        orient="row",
    )
    df = df.with_columns(
        pl.when(pl.col("verb") == "AUTH").then(None).otherwise(pl.col("auth_challenge")).alias("auth_challenge"))
    return df.join(lookup, on=["auth_mech", "auth_challenge", "auth_data"], how="left", nulls_equal=True,
                   maintain_order="left")
