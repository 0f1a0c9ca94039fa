"""The fast paths of the IMS protocol-log reader give exactly what the straightforward paths give.

* ``Ims55ProtocolReader`` splits a line at its first `` : `` and runs the ENTRY pattern once per
  distinct head, runs the body patterns once per distinct body (each on the bodies a prefix test
  lets through), converts each distinct timestamp once, and computes per-session windows on
  contiguous runs of rows;
* ``StraightReader`` below is the straightforward column path it replaced (the pattern over every
  line, ``.over()`` windows, the shared ``smtp_columns`` functions): the two must give equal frames,
  counters and warnings, on the samples, a generated log, edge lines and random line soup;
* and the reader must agree with the pyparsing grammar (``parse_entry``, ``smtp_payload``) line by
  line.
"""

from __future__ import annotations

import random
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pyparsing as pp
import pytest
from polars.testing import assert_frame_equal

from grammars import ims55_protocol as grammar
from grammars import smtp as smtp_grammar
from grammars.common import anchored
from logforensics.readers.base import ReadContext, ReadResult
from logforensics.readers.ims55_protocol import Ims55ProtocolReader
from logforensics.readers.smtp_columns import (
    auth_user_column,
    command_columns,
    envelope_columns,
    ip_or_null,
    pair_replies,
)
from logforensics.site import SiteProfile
from logforensics.sources import decode_text, split_lines
from logforensics.timeconv import YEAR_PIVOT, full_year, hour24, wall_clock_to_utc
from tests.conftest import ROOT, SAMPLES


class StraightReader(Ims55ProtocolReader):
    """The straightforward column path: every pattern over every row, windows with ``.over()``.

    ``read`` itself is shared (quoting, merged lines, the rendering without timestamps, continuation
    checks and line accounting are written once); the stages with fast paths are replaced here.
    """

    @staticmethod
    def _entries(frame: pl.DataFrame) -> tuple[pl.DataFrame, None]:
        frame = frame.with_columns(
            pl.col("raw").str.extract_groups(anchored(grammar.ENTRY)).alias("entry"),
            (pl.col("raw").str.strip_chars() == "").alias("blank"),
        ).unnest("entry")
        return frame.with_columns(pl.col("body").is_not_null().alias("is_entry")), None

    def _timestamps(self, entries: pl.DataFrame, heads: None, ctx: ReadContext,
                    warnings: list[str]) -> pl.DataFrame:
        return self._straight_timestamps(entries, ctx, warnings)

    def _events(self, entries: pl.DataFrame, ctx: ReadContext) -> pl.DataFrame:
        return self._straight_events(entries, ctx)

    @staticmethod
    def _straight_timestamps(entries: pl.DataFrame, ctx: ReadContext, warnings: list[str]) -> pl.DataFrame:
        order = ctx.site.ims_date_order
        a = entries["date_a"].cast(pl.Int32, strict=False)
        b = entries["date_b"].cast(pl.Int32, strict=False)
        if order == "MDY" and a.len() and (a.max() or 0) > 12 and (b.max() or 0) <= 12:
            order = "DMY"
            warnings.append(f"{ctx.source}: dates read as day/month/year (a first field above 12 "
                            "was seen); set ims_date_order in the site profile to override")
        month, day = ("date_a", "date_b") if order == "MDY" else ("date_b", "date_a")
        return entries.with_columns(wall_clock_to_utc(
            full_year(pl.col("year")), pl.col(month).cast(pl.Int32, strict=False),
            pl.col(day).cast(pl.Int32, strict=False), hour24(pl.col("hour"), pl.col("ampm")),
            pl.col("minute").cast(pl.Int32, strict=False), pl.col("second").cast(pl.Int32, strict=False),
            ctx.site.zone()).alias("ts"))

    @staticmethod
    def _straight_events(entries: pl.DataFrame, ctx: ReadContext) -> pl.DataFrame:
        body = pl.col("body")
        df = entries.select("line", "raw", "ts", "body", "entry_no", "continued").with_columns(
            body.str.extract(anchored(grammar.CONNECT_IN), 1).alias("peer_in"),
            body.str.extract(anchored(grammar.CONNECT_OUT), 1).alias("peer_out"),
        )
        df = df.with_columns(
            (pl.col("peer_in").is_not_null() | pl.col("peer_out").is_not_null()).alias("is_connect"),
            body.str.extract_groups(anchored(grammar.PROTO)).alias("proto"),
        ).unnest("proto")
        first_line = df["line"].min() if df.height else 0
        df = df.with_columns(
            pl.when(pl.col("is_connect")).then(pl.col("line")).otherwise(None)
            .forward_fill().fill_null(first_line).alias("session_start"))
        df = df.with_columns(
            pl.col("is_connect").cum_sum().alias("sid"),
            (pl.lit(ctx.source + "#L") + pl.col("session_start").cast(pl.String)).alias("session"),
            pl.when(pl.col("peer_in").is_not_null()).then(pl.lit("in"))
            .when(pl.col("peer_out").is_not_null()).then(pl.lit("out")).otherwise(None).alias("conn_dir"),
        )
        payload = pl.col("payload").fill_null("")
        df = df.with_columns(
            pl.when(pl.col("is_connect")).then(None).otherwise(payload).alias("payload"),
            pl.col("io").is_not_null().alias("is_io"),
        )
        df = df.with_columns(payload.str.extract_groups(anchored(smtp_grammar.REPLY)).alias("rep")).unnest("rep")
        df = df.with_columns(pl.col("code").cast(pl.Int64, strict=False).alias("code"),
                             pl.col("code").is_not_null().alias("is_reply"))
        nxt_payload = pl.col("payload").shift(-1).over("sid")
        nxt_io = pl.col("is_io").shift(-1).over("sid")
        df = df.with_columns(
            (pl.col("is_io") & ~nxt_io.fill_null(True)
             & (pl.col("payload").str.strip_chars() == nxt_payload.str.strip_chars())).alias("io_dup"))
        df = df.with_columns(
            pl.when(pl.col("io_dup").shift(1).over("sid").fill_null(False))
            .then(pl.col("line").shift(1).over("sid")).otherwise(None).alias("raw_line"),
        ).filter(~pl.col("io_dup"))
        df = df.with_columns(
            pl.when(~pl.col("is_reply") & ~pl.col("is_connect") & (pl.col("arrow") == "<<<")).then(pl.lit("in"))
            .when(~pl.col("is_reply") & ~pl.col("is_connect") & (pl.col("arrow") == ">>>")).then(pl.lit("out"))
            .otherwise(None).alias("cmd_dir"))
        df = df.with_columns(pl.coalesce(pl.col("conn_dir").first().over("sid"),
                                         pl.col("cmd_dir").drop_nulls().first().over("sid")).alias("direction"))
        # Message data: after a 354 of the server, up to its next reply, a "." line or a parsed command.
        arrow, direction, is_reply = pl.col("arrow"), pl.col("direction"), pl.col("is_reply")
        server_reply = is_reply & (arrow.is_null() | direction.is_null()
                                   | ((direction == "in") & (arrow == ">>>"))
                                   | ((direction == "out") & (arrow == "<<<")))
        cmd_line = (~pl.col("is_io") & ~is_reply
                    & pl.col("payload").str.contains(anchored(grammar.COMMAND_LINE))).fill_null(False)
        ends = server_reply | pl.col("is_connect") | cmd_line
        mark = (pl.when(server_reply & (pl.col("code") == 354)).then(pl.lit(1, pl.Int8))
                .when(ends | (pl.col("payload").str.strip_chars() == ".")).then(pl.lit(0, pl.Int8)))
        df = df.with_columns(
            ((mark.forward_fill().shift(1).over("sid").fill_null(0) == 1) & ~ends).alias("in_data"))
        in_data = pl.col("in_data")
        df = df.with_columns(
            (is_reply & ~in_data).alias("is_reply"),
            pl.when(in_data).then(None).otherwise(pl.col("code")).alias("code"),
            pl.when(in_data).then(None).otherwise(pl.col("reply_text")).alias("reply_text"),
            pl.when(in_data).then(pl.lit("")).otherwise(pl.col("payload")).alias("cmd_payload"),
        )
        df = command_columns(df, payload_col="cmd_payload", is_reply_col="is_reply", session_col="sid")
        df = envelope_columns(df, payload_col="cmd_payload", session_col="sid")
        df = df.with_columns(
            pl.when(pl.col("is_connect")).then(pl.lit("connect"))
            .when(pl.col("is_reply")).then(pl.lit("reply"))
            .when((pl.col("payload").str.strip_chars() == "") | in_data).then(pl.lit("note"))
            .when(pl.col("arrow").is_null() & pl.col("smtp_event").is_null()).then(pl.lit("note"))
            .otherwise(pl.col("smtp_event").fill_null("command")).alias("event"))
        df = auth_user_column(df, payload_col="cmd_payload", session_col="sid")
        df = pair_replies(df, session_col="sid")
        peer_in = pl.col("peer_in").forward_fill().over("sid")
        peer_out = pl.col("peer_out").forward_fill().over("sid")
        text = pl.coalesce(pl.col("body"), pl.lit(""))
        df = df.with_columns(
            pl.lit(ctx.source).alias("source"), pl.lit(Ims55ProtocolReader.name).alias("format"),
            pl.lit(ctx.server, pl.String).alias("server"),
            pl.when(pl.col("direction") == "in").then(peer_in).otherwise(None).alias("client_host"),
            pl.when(pl.col("direction") == "out").then(peer_out).otherwise(None).alias("relay_host"),
            pl.when(pl.col("is_connect")).then(text).when(pl.col("is_reply")).then(pl.col("reply_own_text"))
            .otherwise(pl.col("payload")).alias("text_first"))
        return df.with_columns(
            ip_or_null(pl.col("client_host")).alias("client_ip"),
            pl.when(pl.col("continued").is_not_null())
            .then(pl.col("text_first") + pl.lit("\n") + pl.col("continued"))
            .otherwise(pl.col("text_first")).alias("text"))


#: Lines at the edges of the `` : `` split and of the body prefilters.
EDGE_LINES = [
    "5/13/00 2:36:27 PM : A connection was accepted from SERVER1.",
    "5/13/00 2:36:27 PM : <<< EHLO server1.COMPANY1.COM",
    "5/13/00 2:36:27 PM : >>> 250-server2.COMPANY2.COM Hello [server2]",
    "250-XEXCH50",
    "",
    "5/13/00 2:36:28 PM : <<< AUTH NTLM TlRMTVNTUAABAAAAt5IAQAcABwAgAAAAAAAAAAAAAABUSU1EVU1QAAAAAAAAAAA=",
    "5/13/00 2:36:28 PM : >>> 334 TlRMTVNTUAACAAAADgAOADAAAAC1ggFAkDTQvqfglJ8AAAAAAAAAAAAAAAA+AAAAVABJAE0ARABPAEYAVQA=",
    "5/13/00 2:36:28 PM : <<< TlRMTVNTUAADAAAAGAAYAHgAAAAYABgAkAAAAA4ADgBAAAAAGgAaAE4AAAAQABAAaAAAABAAEACoAAAAtYIBQFQASQBNAEQATwBGAFUAYQBkAG0AaQBuAGkAcwB0AHIAYQB0AG8AcgBUAEkATQBOAFQAUwAyADAAY2qLBIf9tVBTxY9/NJ02/bhh87MSMPu+qZyHMgS735h75FsyxOlmOLegHnkDN8VFbU99BoofZ3hP6D2cFwsbsQ==",
    "5/13/00 2:36:28 PM : >>> 235 ntlm authentication successful",
    "5/13/00 2:36:28 PM : <<< MAIL FROM:<JohnD@COMPANY1.com> SIZE=1460 RET=FULL",
    "5/13/00 2:36:28 PM : <<< mail from: \"a b\"@c.example size=12",
    "5/13/00 2:36:28 PM : <<< RCPT TO:<\"x>y\"@z.example> NOTIFY=FAILURE,DELAY",
    "5/13/00 2:36:28 PM : <<< RCPT  TO:<cut@off",
    "5/13/00 2:36:28 PM : >>> 250 OK - Recipient <janed@company2.com>",
    "5/13/00 2:36:28 PM:<<< no space before the colon",
    "5/13/00 2:36:28 PM :<<< no space after the colon",
    "5/13/00 2:36:28 PM  :  <<< two spaces",
    "5/13/00 2:36:28 PM\t:\t>>> 250 tabs",
    "5/13/00 2:36:28PM : <<< HELO no space before PM",
    "5/13/00 14:36:28 : <<< HELO 24-hour clock",
    "5/13/2000 2:36:28 pm : <<< HELO four-digit year, lower-case pm",
    "5/13/000 2:36:28 PM : <<< HELO three-digit year",
    "5/13/00 2:36:28 PM : <<< x : y : z, more separators",
    "5/13/00 2:36:28 PM: x : y, the first separator in the body",
    "5/13/00 2:36:28 PM :",
    "5/13/00 2:36:28 PM : ",
    "5/13/00 2:36:28 PM :  ",
    "5/13/00 2:36:28 PM : >>>",
    "5/13/00 2:36:28 PM : >>> ",
    "5/13/00 2:36:28 PM : <<< IO: |HELO pop3.test.com",
    "5/13/00 2:36:28 PM : <<< HELO pop3.test.com",
    "5/13/00 2:36:28 PM : >>> IO:|250 OK",
    "5/13/00 2:36:28 PM : >>>\tIO: |250 OK",
    "5/13/00 2:36:28 PM : >>> 250 OK",
    "5/13/00 2:36:28 PM : IO: |QUIT",
    "5/13/00 2:36:28 PM : IO: |QUIT",
    "5/13/00 2:36:28 PM : <<<IO: |x",
    "5/13/00 2:36:28 PM : 250",
    "5/13/00 2:36:28 PM : 2501",
    "5/13/00 2:36:28 PM : 650 not a reply",
    "5/13/00 2:36:28 PM : A connection to 10.1.1.25 was established.",
    "5/13/00 2:36:28 PM : Connection to smarthost.example established",
    "5/13/00 2:36:28 PM : A connection to nowhere was not established yet",
    "5/13/00 2:36:28 PM : A connection was accepted from ",
    "5/13/00 2:36:28 PM : A connection was accepted from host.example. \t",
    "5/13/00 2:36:28 PM : >>> AUTH LOGIN",
    "5/13/00 2:36:28 PM : <<< 334 VXNlcm5hbWU6",
    "5/13/00 2:36:28 PM : >>> dXNlcg==",
    "5/13/00 2:36:28 PM : <<< 334 UGFzc3dvcmQ6",
    "5/13/00 2:36:28 PM : >>> cGFzcw==",
    "5/13/00 2:36:28 PM : <<< 235 ok",
    "5/13/00 2:36:28 PM : <<< XEXCH50 12 2",
    "5/13/00 2:36:28 PM : <<< verylongverbnameisnotaverb x",
    "5/13/00 2:36:28 PM : <<< ünïcode körper",
    "5/13/00 2:36:28 PM : <<< line with\ra carriage return",
    "5/13/00 2:36:28 PM : <<< line with\na line feed",
    "5/13/00 2:36:28 PM\n : <<< line feed in the head",
    "13/45/00 99:99:99 PM : <<< HELO bad date",
    "2/30/00 1:02:03 : <<< HELO no such day",
    "\x00\xff\ufffd garbage : more",
    " : starts with the separator",
    "5/13/00 2:36:29 PM : >>> 221 closing connection",
    # The literal paths of the body patterns (connect peer, reply, envelope, HELO argument).
    "5/13/00 2:36:30 PM : A connection was accepted from h..",
    "5/13/00 2:36:30 PM : A connection was accepted from h . ",
    "5/13/00 2:36:30 PM : A connection was accepted from .",
    "5/13/00 2:36:30 PM : A connection was accepted from \tsp\xe4ce d.example.\t",
    "5/13/00 2:36:30 PM : <<< HELO a\tb",
    "5/13/00 2:36:30 PM : <<< HELO  two-spaces",
    "5/13/00 2:36:30 PM : <<< HELO trailing ",
    "5/13/00 2:36:30 PM : <<< EHLO h\xf6st.example",
    "5/13/00 2:36:30 PM : <<< HELO ",
    "5/13/00 2:36:30 PM : <<< helo lower.example",
    "5/13/00 2:36:30 PM : <<< RCPT To:<plain@x.example>",
    "5/13/00 2:36:30 PM : <<< RCPT To:<>",
    "5/13/00 2:36:30 PM : <<< MAIL From:<>",
    "5/13/00 2:36:30 PM : <<< RCPT To:<\"IMCEA victim1@aol.com\" @acme.example>",
    "5/13/00 2:36:30 PM : <<< RCPT To:<\"a>b c\"@x.example>",
    "5/13/00 2:36:30 PM : <<< RCPT To:<\"odd@x.example>",
    "5/13/00 2:36:30 PM : <<< RCPT To:<\"a\\\"b\"@x.example>",
    "5/13/00 2:36:30 PM : <<< RCPT To:<a@x.example>>",
    "5/13/00 2:36:30 PM : <<< RCPT To:<a@x.example> ",
    "5/13/00 2:36:30 PM : <<< MAIL From:<a@x.example> SIZE=12",
    "5/13/00 2:36:30 PM : <<< RCPT To:<\"q\"\"r\"@x.example>",
    "5/13/00 2:36:30 PM : <<< RCPT To:<\xfcser@b\xfccher.example>",
    "5/13/00 2:36:30 PM : <<< RCPT To:<",
    "5/13/00 2:36:30 PM : <<< RCPT To:<<a@b>",
    "5/13/00 2:36:30 PM : >>> 250",
    "5/13/00 2:36:30 PM : >>> 250-",
    "5/13/00 2:36:30 PM : >>> 250 ",
    "5/13/00 2:36:30 PM : >>> 250x",
    "5/13/00 2:36:30 PM : >>> 199 low",
    "5/13/00 2:36:30 PM : >>> 2\u0665\u0660 arabic-indic digits",
    "5/13/00 2:36:30 PM : >>> 550 R\xe9lais interdit",
]

#: Fragments for random lines (heads, separators, bodies), glued at random.
HEADS = ["5/13/00 2:36:28 PM", "5/13/00 2:36:28PM", "13/5/2000 14:36:28", "5/13/00 2:36:28 pm", "5/13/00",
         "x", "", "5/13/00 2:36:28 XM", "1/1/70 12:00:00 AM", "12/31/69 12:00:00 AM"]
SEPS = [" : ", ":", " :", ": ", "  :  ", "\t:", " : : ", " ", "\n : "]
BODIES = ["A connection was accepted from h.example.", "A connection to 1.2.3.4 was established.",
          "<<< HELO a", ">>> 250 OK", "<<< IO: |RCPT TO:<a@b>", "<<< RCPT TO:<a@b>", ">>> 550 no",
          "<<< MAIL FROM:<> SIZE=9", "<<< AUTH LOGIN dXNlcg==", "<<< 334 UGFzc3dvcmQ6", "<<< cGFzcw==",
          ">>> 235 ok", "<<< RSET", "<<< QUIT", "", " ", "250-continued", ">>> IO: |x : y", "<<< DATA",
          "IO: |HELO z", "HELO z", "<<< EHLO [1.2.3.4]", "<<< RCPT To:<\"IMCEA v@w\" @x>", "<<< MAIL From:<>",
          "<<< RCPT To:<\"a>b\"@c>", "A connection was accepted from h. ", ">>> 250-", "<<< HELO a b"]


def _ctx(name: str = "L0000000.LOG", zone: str = "America/New_York") -> ReadContext:
    return ReadContext(name, SiteProfile(timezone=zone), "EXCH01")


def _assert_same(lines: pl.Series | list[str], ctx: ReadContext | None = None) -> ReadResult:
    series = lines if isinstance(lines, pl.Series) else pl.Series("raw", lines, dtype=pl.String)
    ctx = ctx or _ctx()
    fast = Ims55ProtocolReader().read(series, ctx)
    straight = StraightReader().read(series, ctx)
    assert_frame_equal(fast.events, straight.events, check_exact=True)
    assert (fast.lines, fast.skipped, fast.continuation, fast.blank, fast.not_mail) == (
        straight.lines, straight.skipped, straight.continuation, straight.blank, straight.not_mail)
    assert fast.warnings == straight.warnings
    return fast


def _file_lines(path: Path) -> pl.Series:
    return split_lines(decode_text(path.read_bytes())[0])


IMS_SAMPLES = sorted((SAMPLES / "ims55").rglob("L*.LOG"))


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ims") / "L0000000.LOG"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gen_ims.py"), str(out), "--mb", "0.3"], check=True)
    return out


@pytest.mark.parametrize("path", IMS_SAMPLES, ids=lambda p: p.name)
def test_samples_fast_equals_straight(path):
    _assert_same(_file_lines(path), _ctx(str(path)))


def test_generated_log_fast_equals_straight(generated):
    res = _assert_same(_file_lines(generated), _ctx(str(generated)))
    assert res.events.height > 3000 and res.events["raw_line"].is_not_null().any()


@pytest.mark.parametrize("zone", ["UTC", "America/New_York"])
def test_edge_lines_fast_equals_straight(zone):
    res = _assert_same(EDGE_LINES, _ctx(zone=zone))
    assert res.events.height > 30


@pytest.mark.parametrize("lines", [[], [""], ["only a continuation"], ["\x00\xff garbage", "  "],
                                   ["13/5/2000 14:36:28 : <<< HELO day first", "14/5/2000 1:00:00 : QUIT"]],
                         ids=["empty", "blank", "lone-continuation", "garbage", "day-first"])
def test_hostile_inputs_fast_equals_straight(lines):
    _assert_same(lines)


@pytest.mark.parametrize("seed", range(6))
def test_random_line_soup_fast_equals_straight(seed):
    rng = random.Random(seed)
    lines = [rng.choice(HEADS) + rng.choice(SEPS) + rng.choice(BODIES) if rng.random() < 0.9
             else rng.choice(BODIES + EDGE_LINES) for _ in range(400)]
    _assert_same(lines)


# --- the reader against the pyparsing grammar, line by line --------------------------------------

def _reference_ts(fields: dict) -> datetime | None:
    """The UTC time of an entry (site zone UTC, month/day order) from the grammar's fields."""
    year = int(fields["year"])
    if len(fields["year"]) <= 2:
        year += 2000 if year < YEAR_PIVOT else 1900
    hour = int(fields["hour"])
    if fields.get("ampm"):
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if fields["ampm"].upper() == "PM" else 0)
    try:
        return datetime(year, int(fields["date_a"]), int(fields["date_b"]), hour, int(fields["minute"]),
                        int(fields["second"]), tzinfo=UTC)
    except ValueError:
        return None


def _check_against_grammar(lines: list[str]) -> int:
    res = Ims55ProtocolReader().read(pl.Series("raw", lines, dtype=pl.String), _ctx(zone="UTC"))
    events = {row["line"]: row for row in res.events.iter_rows(named=True)}
    twins = {row["raw_line"] for row in events.values() if row["raw_line"] is not None}
    checked = 0
    for number, raw in enumerate(lines, start=1):
        fields = grammar.parse_entry(raw)
        if fields is None or _reference_ts(fields) is None:
            assert number not in events and number not in twins, (number, raw)
            continue
        if number in twins:
            continue
        row = events[number]
        assert row["ts"] == _reference_ts(fields), (number, raw)
        first_text = (row["text"] or "").split("\n", 1)[0]
        if fields["kind"] in ("connect_in", "connect_out"):
            assert row["event"] == "connect" and first_text == fields["body"], (number, raw)
            peer = row["client_host"] if fields["kind"] == "connect_in" else row["relay_host"]
            assert peer == fields["peer"], (number, raw)
            continue
        assert row["event"] != "connect", (number, raw)
        try:
            parsed = smtp_grammar.smtp_payload.parse_string(fields["payload"], parse_all=True).as_dict()
        except pp.ParseException:
            parsed = {}  # not SMTP (a note, a garbled line): neither a reply nor an envelope
        code = parsed.get("code")
        if code is not None:
            assert row["event"] == "reply" and row["reply"] == int(code), (number, raw)
            assert first_text == (parsed.get("reply_text") or ""), (number, raw)
        else:
            assert row["event"] != "reply" and first_text == fields["payload"], (number, raw)
        if row["event"] == "rcpt" and (parsed.get("env_verb2") or "").upper() == "RCPT":
            bare = parsed.get("bare_path")
            want = parsed.get("path") if parsed.get("path") is not None else bare.removeprefix("<").removesuffix(">")
            assert row["recipient"] == want, (number, raw)
        if parsed.get("verb") and row["verb"] is not None:
            assert row["verb"] == parsed["verb"].upper(), (number, raw)
        checked += 1
    return checked


@pytest.mark.parametrize("path", IMS_SAMPLES, ids=lambda p: p.name)
def test_samples_agree_with_the_grammar(path):
    assert _check_against_grammar(_file_lines(path).to_list()) > 100


def test_generated_log_agrees_with_the_grammar(generated):
    lines = _file_lines(generated).to_list()[:3000]
    assert _check_against_grammar(lines) > 2500


def test_edge_lines_agree_with_the_grammar():
    lines = [line for line in EDGE_LINES if "\n" not in line]
    assert _check_against_grammar(lines) > 30
    # A line feed ends ``.``: such a line is never an entry, in the grammar or in the reader.
    with pytest.raises(pp.ParseException):
        grammar.entry.parse_string("5/13/00 2:36:28 PM : a\nb", parse_all=True)


# --- the literal paths of the body patterns against their regexes ----------------------------------

#: Payloads (and bodies) at the edges of the literal tests: quoting, brackets, blanks, line feeds,
#: non-ASCII text, truncation.
PAYLOADS = [
    "", " ", "250", "250 ", "250-", "250 OK", "250-x", "2500", "250x", "250\tx", "250\n", "250 a\nb", "199 x",
    "650 x", "25", "2\u0665\u0660 x", "550 R\xe9lais", "\u00e9250 x",
    "RCPT To:<a@b>", "RCPT To:<>", "MAIL From:<>", "MAIL From:<a@b> SIZE=9", "RCPT To:<a@b> ", "RCPT To:<a@b>>",
    "RCPT To:<\"IMCEA v@w\" @x>", "RCPT To:<\"a>b\"@c>", "RCPT To:<\"odd@c>", "RCPT To:<\"a\\\"b\"@c>",
    "RCPT To:<\"q\"\"r\"@c>", "RCPT To:<\"\"@c>", "RCPT To:<", "RCPT To:<<a@b>", "RCPT To:<a\nb>",
    "RCPT To:<\xfcser@b\xfccher.example>", "RCPT TO:<a@b>", "rcpt to: <a@b>", "RCPT To:a@b", "MAIL From:<a b@c>",
    "RCPT To:<a@b\\>", "RCPT To:<\\\"x\"@c>", "MAIL From:<\"\">", "RCPT  To:<a@b>", "RCPT To: <a@b>",
    "HELO a", "HELO ", "HELO  a", "HELO a b", "HELO a\tb", "HELO a ", "EHLO [1.2.3.4]", "helo a", "HELO\ta",
    "EHLO h\xf6st", "HELO a\nb", "HELOa",
    "A connection was accepted from ", "A connection was accepted from h", "A connection was accepted from h.",
    "A connection was accepted from h..", "A connection was accepted from h . \t", "A connection was accepted from .",
    "A connection was accepted from \t.", "A connection was accepted from h.\n", "A connection was accepted from a\nb.",
    "A connection was accepted from sp\xe4ce d. ", "A connection was accepted from h.\r",
]


def _payloads() -> pl.Series:
    rng = random.Random(7)
    alphabet = ['"', "<", ">", "\\", " ", "\t", "@", ".", "a", "\xe4", "\n"]
    soup = [rng.choice(["RCPT To:<", "MAIL From:<", "HELO ", "EHLO ", "250", "A connection was accepted from "])
            + "".join(rng.choice(alphabet) for _ in range(rng.randrange(8))) for _ in range(3000)]
    return pl.Series("p", PAYLOADS + soup, dtype=pl.String)


def test_reply_literal_path_equals_regex():
    from logforensics.readers.ims55_protocol import _reply_groups
    p = _payloads()
    want = p.str.extract_groups(anchored(smtp_grammar.REPLY)).struct.unnest()
    got = _reply_groups(p)
    for name in ("code", "reply_text"):
        assert got[name].to_list() == want[name].to_list(), name


def test_envelope_literal_path_equals_regex():
    from logforensics.readers.ims55_protocol import _envelope_groups
    p = _payloads()
    mask = p.str.contains(r"^(?i:MAIL[ \t]+FROM|RCPT[ \t]+TO)")
    want = p.str.extract_groups(anchored(smtp_grammar.ENVELOPE)).struct.unnest()
    got = _envelope_groups(p)
    for name in ("path", "bare_path", "params"):
        expected = pl.select(pl.when(mask).then(want[name])).to_series()
        assert got[name].to_list() == expected.to_list(), name
    assert got["path"].is_not_null().sum() > 10


def test_helo_literal_path_equals_regex():
    from logforensics.readers.ims55_protocol import _helo_arg
    from logforensics.readers.smtp_columns import FIRST_ARG
    p = _payloads()
    mask = p.str.to_uppercase().str.starts_with("HELO") | p.str.to_uppercase().str.starts_with("EHLO")
    got = _helo_arg(p, mask)
    expected = pl.select(pl.when(mask).then(p.str.extract(FIRST_ARG, 1))).to_series()
    assert got.to_list() == expected.to_list()


def test_connect_literal_path_equals_regex():
    from logforensics.readers.ims55_protocol import _connect_in_peer
    p = _payloads()
    got = _connect_in_peer(p)
    assert got.to_list() == p.str.extract(anchored(grammar.CONNECT_IN), 1).to_list()
    # and the grammar agrees on the peer
    for text, peer in zip(p.to_list(), got.to_list(), strict=True):
        if peer is not None:
            assert grammar.connect_in.parse_string(text, parse_all=True)["peer"] == peer
