"""Exchange 5.5 IMS readers: fixes for the defects a blind test corpus found.

* the CSV-quoted rendering (KB Q239816) and the rendering without timestamps (KB Q245787) are read
  as protocol logs (they were "not a recognised log format; skipped", losing a Q264330 RCPT);
* a line holding two merged entries (the 1024-byte buffer, KB Q159290) is split, with a warning;
* junk without a timestamp (NUL bytes, a cut-off timestamp) is skipped with a warning instead of
  being glued onto the entry above as a continuation;
* message text after ``354`` at Maximum logging (``<<< IO: |Received: ...``) is not read as
  commands;
* Exchange 4.0 tracking logs: IMC traffic as 1004 (gateway transfer in) / 1003 (gateway transfer
  out) rows.

Every fast path is held to the pyparsing grammar (:mod:`grammars.ims55_protocol`) or to the
straightforward column path of ``tests/test_ims55_speedpaths.py``.
"""

from __future__ import annotations

import random
from pathlib import Path

import polars as pl
import pytest

from grammars import ims55_protocol as grammar
from logforensics.readers import SNIFF_LINES, sniff_format
from logforensics.readers.base import ReadContext
from logforensics.readers.ims55_protocol import Ims55ProtocolReader, _damaged, _split_merged, _unquote
from logforensics.site import SiteProfile
from logforensics.sources import decode_text, split_lines
from tests.conftest import CORPUS, SAMPLES, read_log, rows, utc
from tests.test_ims55_speedpaths import _assert_same

# --- 1. the CSV-quoted rendering (KB Q239816) -----------------------------------------------------

CSV_QUOTED = '''"7/15/00 9:31:50 PM : A connection was accepted from mx.bulk-deals.example."
"7/15/00 9:31:50 PM : <<< HELO mx.bulk-deals.example"
"7/15/00 9:31:50 PM : >>> 250 OK"
"7/15/00 9:31:51 PM : <<< MAIL FROM:<a@bulk-deals.example>"
"7/15/00 9:31:51 PM : >>> 250 OK - mail from <a@bulk-deals.example>"
"7/15/00 9:31:52 PM : <<< RCPT TO:<""IMCEA victim41@yahoo.com""@contoso.example>"
"7/15/00 9:31:52 PM : >>> 250 OK - Recipient <""IMCEA victim41@yahoo.com""@contoso.example>"
"7/15/00 9:31:55 PM : 499 No routing hosts are reachable for test.com. Message
subject: ""RE:33%s5%s99"". Rescheduling delivery for later."
'''


def test_csv_quoted_rendering_is_read_and_unquoted_exactly(tmp_path):
    res = read_log(tmp_path, CSV_QUOTED.replace("\n", "\r\n"))
    report = res.inputs[0]
    assert report.format == "ims55-protocol"
    assert report.skipped_lines == 0
    assert any("CSV quotes" in w for w in report.warnings)
    rcpt = res.events.filter(pl.col("event") == "rcpt").row(0, named=True)
    assert (rcpt["line"], rcpt["recipient"], rcpt["reply"], rcpt["reply_line"], rcpt["ts"]) == (
        6, '"IMCEA victim41@yahoo.com"@contoso.example', 250, 7, utc("2000-07-15 21:31:52"))
    assert rcpt["sender"] == "a@bulk-deals.example" and rcpt["client_host"] == "mx.bulk-deals.example"
    # The quoted value goes on over the next line (the KB's wrapping): one entry, quotes undoubled.
    last = res.events.filter(pl.col("line") == 8).row(0, named=True)
    assert (last["reply"], last["text"]) == (
        499, 'No routing hosts are reachable for test.com. Message\nsubject: "RE:33%s5%s99". '
             "Rescheduling delivery for later.")
    assert report.lines == 9


def test_unquoting_equals_the_grammar():
    rng = random.Random(3)
    alphabet = ['"', '""', "a", " ", "\t", "<", ">", "7/15/00 9:31:50 PM : "]
    soup = [rng.choice(['"', "", " "]) + "".join(rng.choice(alphabet) for _ in range(rng.randrange(6)))
            for _ in range(2000)]
    lines = CSV_QUOTED.splitlines() * 3 + soup + ["\"x\ny\"", '"open', 'still ""in""', 'closed" ', '""']
    frame = pl.DataFrame({"line": range(1, len(lines) + 1), "raw": lines},
                         schema={"line": pl.Int64, "raw": pl.String})
    warnings: list[str] = []
    got = _unquote(frame, _ctx(), warnings)["raw"].to_list()
    assert warnings  # quoted entries outnumber plain ones here
    assert got == grammar.unquote_lines(lines)


def test_plain_logs_are_not_unquoted(tmp_path):
    """A plain log whose message text quotes a (KB-style) log line keeps its quotes: quoted lines
    are fewer than plain entries."""
    text = ("7/15/00 9:31:50 PM : A connection was accepted from h.example.\n"
            "7/15/00 9:31:51 PM : <<< IO: |Subject: see KB\n"
            '"<<< RCPT TO:<""IMCEA v@w.example""@x.example>"\n'
            "7/15/00 9:31:52 PM : >>> 250 OK\n")
    res = read_log(tmp_path, text)
    assert not any("CSV quotes" in w for w in res.inputs[0].warnings)
    assert rows(res, "line", "event") == [(1, "connect"), (2, "command"), (4, "reply")]
    assert res.events.filter(pl.col("line") == 2)["text"][0].endswith('"<<< RCPT TO:<""IMCEA v@w.example""@x.example>"')


# --- 1. the rendering without timestamps (KB Q245787) --------------------------------------------

KB_NO_TIMESTAMPS = """A connection to 10.1.1.25 was established.

<<< IO: |220 firewall.expedia.com Generic SMTP handler

<<< 220 firewall.expedia.com Generic SMTP handler

>>> EHLO ExchangeSending.microsoft.com

<<< IO: |500 Command unrecognized

<<< 500 Command unrecognized

>>> HELO ExchangeSending.microsoft.com

<<< 250 OK

>>> MAIL FROM: <bob@microsoft.com>

<<< IO: |250 <bob@microsoft.com>: Sender Ok

<<< 250 <bob@microsoft.com>: Sender Ok

>>> RCPT TO:<vincent@expedia.com>

<<< IO: |550 Domain invalid

<<< 550 Domain invalid

>>> QUIT

<<< IO: |221 firewall.microsoft.com closing connection. Goodbye!
"""

KB_INBOUND_NO_TIMESTAMPS = """A connection was accepted from mx.bulk-deals.example.

<<< HELO mx.bulk-deals.example

>>> 250 OK

<<< MAIL FROM:<a@bulk-deals.example>

>>> 250 OK - mail from <a@bulk-deals.example>

<<< RCPT TO:<"IMCEA victim40@hotmail.com" @contoso.example>

>>> 250 OK - Recipient <"IMCEA victim40@hotmail.com" @contoso.example>
"""


def test_rendering_without_timestamps_q245787_outbound(tmp_path):
    res = read_log(tmp_path, KB_NO_TIMESTAMPS)
    report = res.inputs[0]
    assert report.format == "ims55-protocol"
    assert report.skipped_lines == 0
    assert res.events["ts"].null_count() == res.events.height > 0
    assert sum("no timestamps" in w for w in report.warnings) == 1  # one warning per file
    assert set(res.events["direction"].to_list()) == {"out"}
    rcpt = res.events.filter(pl.col("event") == "rcpt").row(0, named=True)
    assert (rcpt["line"], rcpt["recipient"], rcpt["sender"], rcpt["reply"], rcpt["reply_line"]) == (
        23, "vincent@expedia.com", "bob@microsoft.com", 550, 27)
    assert rcpt["relay_host"] == "10.1.1.25"
    assert rows(res, "line", "raw_line")[1:3] == [(5, 3), (7, None)]  # raw-packet twin counted once


def test_rendering_without_timestamps_inbound_q264330_rcpt(tmp_path):
    res = read_log(tmp_path, "   " + KB_INBOUND_NO_TIMESTAMPS.replace("\n<<<", "\n   <<<"))  # KB indent
    assert res.inputs[0].format == "ims55-protocol"
    rcpt = res.events.filter(pl.col("event") == "rcpt").row(0, named=True)
    assert (rcpt["recipient"], rcpt["reply"], rcpt["direction"], rcpt["ts"]) == (
        '"IMCEA victim40@hotmail.com" @contoso.example', 250, "in", None)


def test_timestamped_logs_never_use_the_untimed_layout(tmp_path):
    """In a log with timestamps, a line that starts with an arrow is a continuation, not an entry."""
    text = ("7/14/00 2:30:05 AM : A connection was accepted from mx.example.\n"
            "7/14/00 2:30:06 AM : >>> 250 OK\n"
            ">>> 250 OK - Recipient <hidden@inside-body.example>\n"
            "<<< RCPT TO:<hidden@inside-body.example>\n")
    res = read_log(tmp_path, text)
    assert rows(res, "line", "event") == [(1, "connect"), (2, "reply")]
    assert res.inputs[0].skipped_lines == 0
    assert not any("no timestamps" in w for w in res.inputs[0].warnings)


@pytest.mark.parametrize("text", [CSV_QUOTED, KB_NO_TIMESTAMPS, KB_INBOUND_NO_TIMESTAMPS])
def test_renderings_are_sniffed(text):
    assert sniff_format(text.splitlines()[:SNIFF_LINES]) == "ims55-protocol"


def _heads(root: Path) -> list[tuple[Path, list[str]]]:
    out = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix.lower() not in (".md", ".toml", ".zip", ".gz", ".bz2", ".xz"):
            head = split_lines(decode_text(path.read_bytes()[:256_000])[0]).head(SNIFF_LINES).to_list()
            out.append((path, head))
    return out


@pytest.mark.parametrize("root", [SAMPLES, CORPUS], ids=["samples", "corpus"])
def test_sniffer_claims_no_other_format(root):
    """The renderings widen the sniffer; every non-IMS file of the samples and corpus still scores 0."""
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    heads = _heads(root)
    assert len(heads) > 5
    for path, head in heads:
        score = Ims55ProtocolReader().sniff(head)
        if "imcdata" in str(path).lower():
            assert score >= 0.9, path
        else:
            assert score == 0.0, path


@pytest.mark.parametrize("head", [
    [">>> print('a python session')", "a python session", ">>> 1 + 1", "2"],
    ["> > > quoted mail", ">>> deeper quoting", "<<< not a log"],
    ['"a","b","c"', '"1","2","3"'],
    ['"2010-06-15T00:00:01.000Z,EXCH03\\Default,08CC,0,10.0.0.1:25,192.0.2.9:1234,+,,"'],
])
def test_sniffer_ignores_look_alikes(head):
    assert Ims55ProtocolReader().sniff(head) == 0.0


# --- 2a. merged lines (KB Q159290) ----------------------------------------------------------------

MERGED = """7/14/00 4:00:00 AM : A connection was accepted from cheap-mail.bulk-deals.example.
7/14/00 4:00:00 AM : <<< HELO cheap-mail.bulk-deals.example
7/14/00 4:00:00 AM : >>> 250 OK
7/14/00 4:00:00 AM : <<< MAIL FROM:<x@bulk-deals.example>
7/14/00 4:00:00 AM : <<< RCPT TO:<victim15@hotmail.com>7/14/00 4:00:00 AM : >>> 550 Relaying is prohibited
7/14/00 4:00:01 AM : <<< QUIT
7/14/00 4:00:01 AM : >>> 221 closing connection
"""


def test_merged_line_is_split_into_its_entries(tmp_path):
    res = read_log(tmp_path, MERGED)
    report = res.inputs[0]
    got = rows(res, "line", "event", "recipient", "reply", "reply_line", "text")
    assert got[4:6] == [
        (5, "rcpt", "victim15@hotmail.com", 550, 5, "RCPT TO:<victim15@hotmail.com>"),
        (5, "reply", None, 550, None, "Relaying is prohibited"),
    ]
    assert [w for w in report.warnings if "merged" in w] == [
        f"{tmp_path / 'L0000000.LOG'}:5: entries merged on one line (the IMS 1024-byte buffer, KB Q159290); "
        "read as separate entries: 7/14/00 4:00:00 AM : <<< RCPT TO:<victim15@hotmail.com>7/14/00 4:00:00 AM "
        ": >>> ..."]
    assert (report.lines, report.skipped_lines) == (7, 0)


def test_merged_continuation_and_many_merges(tmp_path):
    text = ("7/14/00 4:00:00 AM : A connection was accepted from h.example.\n"
            "7/14/00 4:00:00 AM : >>> 250-h Hello\n"
            "250 HELP7/14/00 4:00:01 AM : <<< MAIL FROM:<a@b.example>7/14/00 4:00:01 AM : >>> 250 OK"
            "7/14/00 4:00:02 AM : <<< RCPT TO:<c@d.example>\n"
            "7/14/00 4:00:02 AM : >>> 550 Relaying is prohibited\n")
    res = read_log(tmp_path, text)
    assert rows(res, "line", "event", "reply") == [
        (1, "connect", None), (2, "reply", 250), (3, "mail", 250), (3, "reply", 250), (3, "rcpt", 550),
        (4, "reply", 550)]
    assert "250 HELP" in res.events.filter(pl.col("line") == 2)["text"][0]
    assert res.inputs[0].skipped_lines == 0


def test_merge_split_equals_the_grammar():
    rng = random.Random(5)
    stamps = ["7/14/00 4:00:00 AM : ", "12/31/1999 23:59:59 : ", "7/14/00 4:00:0 : ", "7/14/00 4:00:00 AM: ",
              "17/14/00 4:00:00 PM : ", "1/2/03 4:05:06pm : "]
    parts = ["<<< RCPT TO:<a@b>", ">>> 550 no", "x", "9", "/", " ", "A connection was accepted from h.",
             "\x00", ":", " : "]
    lines = ["".join(rng.choice(stamps + parts) for _ in range(rng.randrange(1, 7))) for _ in range(3000)]
    frame = pl.DataFrame({"line": range(1, len(lines) + 1), "raw": lines},
                         schema={"line": pl.Int64, "raw": pl.String})
    split = _split_merged(frame, _ctx(), [])
    want = [(n, piece) for n, text in enumerate(lines, start=1) for piece in grammar.split_merged(text)]
    assert list(split.iter_rows()) == want
    assert split.height > len(lines) + 500


# --- 2b. damaged lines are not continuations ------------------------------------------------------

DAMAGED = """7/14/00 4:00:00 AM : A connection was accepted from cheap-mail.bulk-deals.example.
7/14/00 4:00:00 AM : <<< EHLO cheap-mail.bulk-deals.example
7/14/00 4:00:00 AM : >>> 250-mail.contoso.example Hello [cheap-mail]
250-XEXCH50
250 AUTH=LOGIN
7/14/00 4:00:00 AM : <<< RCPT TO:<victim15@hotmail.com>
7/14/00 4:00:00 AM : >>> 550 Relaying is prohibited
\x01\x02garbage\x7f\x00\x00\xff\xfe
7/14/00 4:00:0
7/14/00 4:00:01 AM : <<< QUIT
"""


def test_damaged_lines_are_skipped_with_location(tmp_path):
    res = read_log(tmp_path, DAMAGED)
    report = res.inputs[0]
    reply = res.events.filter(pl.col("line") == 7).row(0, named=True)
    assert reply["text"] == "Relaying is prohibited"  # nothing glued on
    ehlo_reply = res.events.filter(pl.col("line") == 3).row(0, named=True)
    assert ehlo_reply["text"].endswith("250-XEXCH50\n250 AUTH=LOGIN")  # real continuations still join
    assert report.skipped_lines == 2
    src = tmp_path / "L0000000.LOG"
    reason = "not an entry and not a continuation line (control characters or a cut-off timestamp); skipped"
    assert f"{src}:8: {reason}: \\x01\\x02garbage\\x7f\\x00\\x00\\xff\\xfe" in report.warnings
    assert f"{src}:9: {reason}: 7/14/00 4:00:0" in report.warnings


def test_continuation_check_equals_the_grammar():
    rng = random.Random(11)
    alphabet = ["a", " ", "\t", "\r", "\x00", "\x1f", "\x7f", "\x85", "\xe9", "7/14/00 ", "4:", "1", "/", ":"]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(6))) for _ in range(3000)]
    texts += ["250-XEXCH50", "subject: \"x\". Rescheduling delivery for later.", "7/14/00 4:00:0", "7/14/00 4",
              "at Mon, 5 Apr 1999 10:22:41 -0400", "12/7/2000 10:", "..."]
    got = _damaged(pl.Series(texts, dtype=pl.String)).to_list()
    assert got == [not grammar.is_continuation(t) for t in texts]


# --- 3. message text at Maximum logging -----------------------------------------------------------

MAXIMUM_DATA = """7/14/00 2:30:05 AM : A connection was accepted from mx.bulk-deals.example.
7/14/00 2:30:05 AM : <<< IO: |HELO mx.bulk-deals.example
7/14/00 2:30:05 AM : <<< HELO mx.bulk-deals.example
7/14/00 2:30:05 AM : >>> 250 OK
7/14/00 2:30:06 AM : <<< IO: |MAIL FROM:<news@bulk-deals.example>
7/14/00 2:30:06 AM : <<< MAIL FROM:<news@bulk-deals.example>
7/14/00 2:30:06 AM : >>> 250 OK - mail from <news@bulk-deals.example>
7/14/00 2:30:06 AM : <<< IO: |RCPT TO:<carol@contoso.example>
7/14/00 2:30:06 AM : <<< RCPT TO:<carol@contoso.example>
7/14/00 2:30:06 AM : >>> 250 OK - Recipient <carol@contoso.example>
7/14/00 2:30:07 AM : <<< IO: |DATA
7/14/00 2:30:07 AM : <<< DATA
7/14/00 2:30:07 AM : >>> 354 Send data.  End with CRLF.CRLF
7/14/00 2:30:08 AM : <<< IO: |Received: from bulk ([66.12.4.10]) by mx.bulk-deals.example
From: news@bulk-deals.example
RCPT TO:<hidden@inside-body.example>
7/14/00 2:30:08 AM : <<< IO: |RCPT TO:<hidden2@inside-body.example>
7/14/00 2:30:08 AM : <<< IO: |250 OK - looks like a reply
7/14/00 2:30:08 AM : <<< IO: |MAIL FROM:<fake@inside-body.example>
7/14/00 2:30:08 AM : <<< IO: |.
7/14/00 2:30:09 AM : >>> 250 OK
7/14/00 2:30:09 AM : <<< IO: |QUIT
7/14/00 2:30:09 AM : <<< QUIT
7/14/00 2:30:09 AM : >>> 221 closing connection
"""


def test_message_text_after_354_is_not_commands(tmp_path):
    res = read_log(tmp_path, MAXIMUM_DATA)
    got = rows(res, "line", "event", "verb", "reply", "recipient", "sender")
    assert got[7:] == [
        (12, "data", "DATA", 354, None, "news@bulk-deals.example"),
        (13, "reply", None, 354, None, "news@bulk-deals.example"),
        (14, "note", None, None, None, "news@bulk-deals.example"),
        (17, "note", None, None, None, "news@bulk-deals.example"),
        (18, "note", None, None, None, "news@bulk-deals.example"),
        (19, "note", None, None, None, "news@bulk-deals.example"),  # MAIL FROM in the text: no new sender
        (20, "note", None, None, None, "news@bulk-deals.example"),
        (21, "reply", None, 250, None, "news@bulk-deals.example"),
        (23, "quit", "QUIT", 221, None, "news@bulk-deals.example"),
        (24, "reply", None, 221, None, "news@bulk-deals.example"),
    ]
    assert res.events.filter(pl.col("event") == "rcpt")["recipient"].to_list() == ["carol@contoso.example"]
    assert res.events.filter(pl.col("line") == 14)["text"][0].startswith("Received: from bulk ([66.12.4.10])")


def test_message_data_ends_at_a_parsed_command_when_its_reply_is_missing(tmp_path):
    """Q295725: the 250 after the data may be missing; the next parsed command still counts."""
    text = ("6/1/00 1:00:00 AM : A connection was accepted from h.example.\n"
            "6/1/00 1:00:00 AM : <<< DATA\n"
            "6/1/00 1:00:00 AM : >>> 354 Send data.  End with CRLF.CRLF\n"
            "6/1/00 1:00:01 AM : <<< IO: |Subject: hello\n"
            "6/1/00 1:00:02 AM : <<< MAIL From:<a@b.example>\n"
            "6/1/00 1:00:02 AM : >>> 250 OK - mail from <a@b.example>\n"
            "6/1/00 1:00:02 AM : <<< RCPT To:<v@victim.example>\n"
            "6/1/00 1:00:02 AM : >>> 550 Relaying is prohibited\n")
    res = read_log(tmp_path, text)
    assert rows(res, "line", "event", "reply") == [
        (1, "connect", None), (2, "data", 354), (3, "reply", 354), (4, "note", None), (5, "mail", 250),
        (6, "reply", 250), (7, "rcpt", 550), (8, "reply", 550)]


def test_outbound_data_ends_at_the_remote_reply(tmp_path):
    text = ("6/1/00 1:00:00 AM : A connection to relay.example was established.\n"
            "6/1/00 1:00:00 AM : >>> DATA\n"
            "6/1/00 1:00:00 AM : <<< 354 Enter mail\n"
            "6/1/00 1:00:01 AM : >>> IO: |Subject: x\n"
            "6/1/00 1:00:01 AM : >>> IO: |250 in the text\n"
            "6/1/00 1:00:02 AM : <<< 250 Message accepted\n"
            "6/1/00 1:00:02 AM : >>> QUIT\n")
    res = read_log(tmp_path, text)
    assert rows(res, "line", "event", "reply") == [
        (1, "connect", None), (2, "data", 354), (3, "reply", 354), (4, "note", None), (5, "note", None),
        (6, "reply", 250), (7, "quit", None)]


#: Bodies for a line soup with message data in it.
DATA_BODIES = ["<<< DATA", ">>> 354 Send data.", "<<< 354 Enter mail", ">>> DATA", "<<< IO: |Received: x",
               "<<< IO: |RCPT TO:<h@i>", "<<< IO: |.", ".", "<<< .", ">>> 250 OK", "<<< 250 OK", "<<< QUIT",
               "<<< RCPT TO:<a@b>", "<<< MAIL FROM:<c@d>", "<<< IO: |250 x", "<<< IO: |334 x", "<<< Subject: y",
               "A connection was accepted from h.", "A connection to r was established.", "354 go", "QUIT",
               "<<< HELO a", "<<< AUTH LOGIN", ">>> 334 VXNlcm5hbWU6", "<<< IO: |QUIT", "IO: |Received: z",
               "<<< help me", "<<< IO: |RSET", "<<< RSET"]


@pytest.mark.parametrize("seed", range(4))
def test_message_data_fast_path_equals_straight(seed):
    rng = random.Random(seed)
    stamp = "6/1/00 1:00:0{} AM : "
    lines = [(stamp.format(rng.randrange(10)) + rng.choice(DATA_BODIES)) if rng.random() < 0.9
             else rng.choice(["250-x", "", "body text", "\x00junk", "6/1/00 1:0"]) for _ in range(600)]
    res = _assert_same(lines)
    assert res.events.filter(pl.col("event") == "note").height > 20


@pytest.mark.parametrize("text", [CSV_QUOTED, KB_NO_TIMESTAMPS, MERGED, DAMAGED, MAXIMUM_DATA],
                         ids=["csv", "untimed", "merged", "damaged", "maximum"])
def test_fixes_fast_path_equals_straight(text):
    _assert_same(text.splitlines())


# --- 4. Exchange 4.0 tracking: IMC traffic as 1004 / 1003 -----------------------------------------

GW40 = "/o=Contoso/ou=NYC/cn=Configuration/cn=Connections/cn=Internet Mail Connector (OLD40)"


def test_exchange40_imc_gateway_events(tmp_path):
    msgid = "c=US;a= ;p=Contoso;l=OLD40-970303120000Z-5"
    tail = ["<s1@spammer.example>[PBZ70AAX]", "bulk@spammer.example", "0", "2048", "0", "1", ""]
    text = "\r\n".join([
        "\t".join([msgid, "1004", "1997/3/3 12:0:1", GW40, "spammer.example", *tail, "2"]),
        "victim50@compuserve.com",
        "victim51@prodigy.com",
        "",
        "\t".join([msgid, "1003", "1997/3/3 12:0:9", GW40, "compuserve.com", *tail, "2",
                   "victim50@compuserve.com", "victim51@prodigy.com"]),
        "",
    ])
    res = read_log(tmp_path, text, name="19970303.log")
    assert res.inputs[0].format == "ims55-tracking"
    assert rows(res, "line", "record_line", "event", "event_id", "verb", "direction", "recipient", "sender",
                "relay_host") == [
        (2, 1, "tracking", 1004, "gateway-transfer-in", "in", "victim50@compuserve.com", "bulk@spammer.example",
         "spammer.example"),
        (3, 1, "tracking", 1004, "gateway-transfer-in", "in", "victim51@prodigy.com", "bulk@spammer.example",
         "spammer.example"),
        (5, 5, "tracking", 1003, "gateway-transfer-out", "out", "victim50@compuserve.com",
         "bulk@spammer.example", "compuserve.com"),
        (5, 5, "tracking", 1003, "gateway-transfer-out", "out", "victim51@prodigy.com", "bulk@spammer.example",
         "compuserve.com"),
    ]
    assert res.events["ts"].to_list()[0] == utc("1997-03-03 12:00:01")
    assert "Internet Mail Connector (OLD40)" in res.events["text"][0]


def _ctx() -> ReadContext:
    return ReadContext("L0000000.LOG", SiteProfile(timezone="UTC"), "EXCH01")
