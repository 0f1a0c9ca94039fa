"""Exchange 5.5 IMS SMTP protocol log: every line shape, sessions, raw packets, time."""

from __future__ import annotations

import pytest

from grammars import ims55_protocol as grammar
from logforensics.site import SiteProfile
from tests.conftest import read_log, rows, utc

CRLF = "\r\n"

# Q262945 (verbatim shape): ESMTP, multi-line EHLO reply continuation lines, AUTH NTLM, blank lines.
Q262945 = """5/13/00 2:36:27 PM : A connection was accepted from SERVER1.
5/13/00 2:36:27 PM : <<< EHLO server1.COMPANY1.COM
5/13/00 2:36:27 PM : >>> 250-server2.COMPANY2.COM Hello [server2]
250-XEXCH50
250-HELP
250-ETRN
250-DSN
250-SIZE 0
250-AUTH LOGIN
250 AUTH=LOGIN

5/13/00 2:36:28 PM : <<< AUTH NTLM TlRMTVNTUAABAAAAt5IAQAcABwAgAAAAAAAAAAAAAABUSU1EVU1QAAAAAAAAAAA=
5/13/00 2:36:28 PM : >>> 334 TlRMTVNTUAACAAAADgAOADAAAAC1ggFAkDTQvqfglJ8AAAAAAAAAAAAAAAA+AAAAVABJAE0ARABPAEYAVQA=

5/13/00 2:36:28 PM : <<< TlRMTVNTUAADAAAAGAAYAHgAAAAYABgAkAAAAA4ADgBAAAAAGgAaAE4AAAAQABAAaAAAABAAEACoAAAAtYIBQFQASQBNAEQATwBGAFUAYQBkAG0AaQBuAGkAcwB0AHIAYQB0AG8AcgBUAEkATQBOAFQAUwAyADAAY2qLBIf9tVBTxY9/NJ02/bhh87MSMPu+qZyHMgS735h75FsyxOlmOLegHnkDN8VFbU99BoofZ3hP6D2cFwsbsQ==

5/13/00 2:36:28 PM : >>> 235 ntlm authentication successful

5/13/00 2:36:28 PM : <<< MAIL FROM:<JohnD@COMPANY1.com> SIZE=1460 RET=FULL
5/13/00 2:36:28 PM : >>> 250 OK - mail from <JohnD@COMPANY1.com>; can accomodate 1460 bytes

5/13/00 2:36:28 PM : <<< RCPT TO:<janed@company2.com> NOTIFY=FAILURE,DELAY
5/13/00 2:36:28 PM : >>> 250 OK - Recipient <janed@company2.com>

5/13/00 2:36:28 PM : <<< DATA
5/13/00 2:36:28 PM : >>> 354 Send data.  End with CRLF.CRLF

5/13/00 2:36:28 PM : >>> 554 Mailbox is not local: JohnD@COMPANY1.com

5/13/00 2:36:28 PM : <<< QUIT
5/13/00 2:36:29 PM : >>> 221 closing connection
"""


def test_q262945_every_line_accounted(tmp_path):
    res = read_log(tmp_path, Q262945)
    report = res.inputs[0]
    assert report.format == "ims55-protocol"
    assert report.skipped_lines == 0
    events = rows(res, "line", "event", "verb", "reply", "reply_line")
    assert events == [
        (1, "connect", None, None, None),
        (2, "helo", "EHLO", 250, 3),
        (3, "reply", None, 250, None),
        (12, "auth", "AUTH", 334, 13),
        (13, "reply", None, 334, None),
        (15, "auth", None, 235, 17),  # the NTLM response answers the 334 challenge
        (17, "reply", None, 235, None),
        (19, "mail", "MAIL", 250, 20),
        (20, "reply", None, 250, None),
        (22, "rcpt", "RCPT", 250, 23),
        (23, "reply", None, 250, None),
        (25, "data", "DATA", 354, 26),
        (26, "reply", None, 354, None),
        (28, "reply", None, 554, None),
        (30, "quit", "QUIT", 221, 31),
        (31, "reply", None, 221, None),
    ]
    ev = res.events
    rcpt = ev.filter(ev["event"] == "rcpt").row(0, named=True)
    assert rcpt["recipient"] == "janed@company2.com"
    assert rcpt["sender"] == "JohnD@COMPANY1.com"
    assert rcpt["client_host"] == "SERVER1"
    assert rcpt["helo"] == "server1.COMPANY1.COM"
    assert rcpt["direction"] == "in"
    assert rcpt["reply_text"] == "OK - Recipient <janed@company2.com>"
    mail = ev.filter(ev["event"] == "mail").row(0, named=True)
    assert mail["size"] == 1460
    ehlo_reply = ev.filter(ev["line"] == 3).row(0, named=True)
    assert "250 AUTH=LOGIN" in ehlo_reply["text"]  # continuation lines kept with their entry
    assert report.lines == 31


def test_q295725_session_split_on_reused_file(tmp_path):
    text = """2/7/01 5:01:20 PM : A connection was accepted from mail.domain1.com
2/7/01 5:01:21 PM : <<< HELO mail.domain1.com
2/7/01 5:01:21 PM : >>> 250 OK
2/7/01 5:01:21 PM : <<< MAIL From:<user@domain1.com>
2/7/01 5:01:21 PM : >>> 250 OK - mail from <user@domain1.com>
2/7/01 5:01:22 PM : <<< RCPT To:<user@domain2.com>
2/7/01 5:01:22 PM : >>> 250 OK - Recipient <user@domain2.com>
2/7/01 5:01:23 PM : <<< DATA
2/7/01 5:01:23 PM : >>> 354 Send data. End with CRLF.CRLF
2/7/01 5:05:44 PM : A connection was accepted from mail.domain3.com
2/7/01 5:05:45 PM : <<< HELO mail.domain3.com
"""
    res = read_log(tmp_path, text)
    sessions = rows(res, "line", "session", "client_host", "helo")
    src = str(tmp_path / "L0000000.LOG")
    assert sessions[0] == (1, f"{src}#L1", "mail.domain1.com", None)
    assert sessions[8] == (9, f"{src}#L1", "mail.domain1.com", "mail.domain1.com")
    assert sessions[9] == (10, f"{src}#L10", "mail.domain3.com", None)
    assert sessions[10] == (11, f"{src}#L10", "mail.domain3.com", "mail.domain3.com")
    rcpt = res.events.filter(res.events["event"] == "rcpt").row(0, named=True)
    assert (rcpt["recipient"], rcpt["sender"], rcpt["reply"]) == ("user@domain2.com", "user@domain1.com", 250)


def test_maximum_level_io_lines_counted_once(tmp_path):
    text = """4/2/01 11:44:31 AM : A connection was accepted from pop3.test.com.
4/2/01 11:44:31 AM : <<< IO: |HELO pop3.test.com
4/2/01 11:44:31 AM : <<< HELO pop3.test.com
4/2/01 11:44:31 AM : >>> 250 OK
4/2/01 11:44:31 AM : <<< IO: |MAIL From:<a@test.com>
4/2/01 11:44:31 AM : <<< MAIL From:<a@test.com>
4/2/01 11:44:31 AM : >>> 250 OK - mail from <a@test.com>
4/2/01 11:44:31 AM : <<< IO: |RCPT To:<b@example.org>
4/2/01 11:44:31 AM : <<< RCPT To:<b@example.org>
4/2/01 11:44:32 AM : >>> 250 OK - Recipient <b@example.org>
4/2/01 11:44:32 AM : <<< IO: |DATA
"""
    res = read_log(tmp_path, text)
    got = rows(res, "line", "event", "raw_line")
    assert got == [
        (1, "connect", None), (3, "helo", 2), (4, "reply", None), (6, "mail", 5), (7, "reply", None),
        (9, "rcpt", 8), (10, "reply", None),
        (11, "data", None),  # a raw packet with no parsed twin is kept (cut-off log)
    ]
    assert res.events.filter(res.events["event"] == "rcpt").height == 1


def test_outbound_session_reversed_arrows_q245787(tmp_path):
    text = """6/15/00 4:48:01 AM : A connection to 10.1.1.25 was established.
6/15/00 4:48:01 AM : <<< IO: |220 firewall.expedia.com Generic SMTP handler
6/15/00 4:48:01 AM : <<< 220 firewall.expedia.com Generic SMTP handler
6/15/00 4:48:01 AM : >>> EHLO ExchangeSending.microsoft.com
6/15/00 4:48:01 AM : <<< IO: |500 Command unrecognized
6/15/00 4:48:01 AM : <<< 500 Command unrecognized
6/15/00 4:48:01 AM : >>> HELO ExchangeSending.microsoft.com
6/15/00 4:48:01 AM : <<< 250 OK
6/15/00 4:48:02 AM : >>> MAIL FROM: <bob@microsoft.com>
6/15/00 4:48:02 AM : <<< 250 <bob@microsoft.com>: Sender Ok
6/15/00 4:48:02 AM : >>> RCPT TO:<vincent@expedia.com>
6/15/00 4:48:02 AM : <<< IO: |550 Domain invalid
6/15/00 4:48:02 AM : <<< 550 Domain invalid
6/15/00 4:48:02 AM : >>> QUIT
"""
    res = read_log(tmp_path, text)
    ev = res.events
    assert set(ev["direction"].to_list()) == {"out"}
    assert set(ev["relay_host"].to_list()) == {"10.1.1.25"}
    assert ev["client_host"].null_count() == ev.height
    rcpt = ev.filter(ev["event"] == "rcpt").row(0, named=True)
    assert (rcpt["recipient"], rcpt["sender"], rcpt["reply"], rcpt["reply_line"]) == (
        "vincent@expedia.com", "bob@microsoft.com", 550, 13)
    assert rows(res, "line", "event", "reply")[2] == (4, "helo", 500)


def test_outbound_without_arrows_q228725_and_wrapped_reschedule_line(tmp_path):
    text = """4/5/99 10:22:41 AM : A connection to 10.1.1.1 was established.
4/5/99 10:22:41 AM : IO: |220 r40.domain.com InterLock SMTP Gateway 3.0 ready
at Mon, 5 Apr 1999 10:22:41 -0400
4/5/99 10:22:41 AM : EHLO xxmims2.srv.dom.com
4/5/99 10:22:41 AM : IO: |250-Hello xxmims2.srv.dom.com, pleased to meet you
4/5/99 10:22:41 AM : MAIL FROM:bob@dom.com
4/5/99 10:22:42 AM : IO: |250 bob@dom.com... Sender ok
4/5/99 10:22:42 AM : RCPT TO:sam@tool.com
4/5/99 10:22:42 AM : IO: |250 sam@tool.com... Recipient ok
4/5/99 10:22:42 AM : DATA
4/5/99 10:22:43 AM : IO: |354 Enter mail, end with "." on a line by itself
4/5/99 10:22:43 AM : 354 Enter mail, end with "." on a line by itself
4/5/99 10:22:44 AM : 499 No routing hosts are reachable for tool.com. Message
subject: ""Case 27375"". Rescheduling delivery for later.
"""
    res = read_log(tmp_path, text)
    assert res.inputs[0].skipped_lines == 0
    got = rows(res, "line", "event", "verb", "reply", "direction")
    assert got == [
        (1, "connect", None, None, "out"),
        (2, "reply", None, 220, "out"),
        (4, "helo", "EHLO", 250, "out"),
        (5, "reply", None, 250, "out"),
        (6, "mail", "MAIL", 250, "out"),
        (7, "reply", None, 250, "out"),
        (8, "rcpt", "RCPT", 250, "out"),
        (9, "reply", None, 250, "out"),
        (10, "data", "DATA", 354, "out"),
        (12, "reply", None, 354, "out"),
        (13, "reply", None, 499, "out"),
    ]
    ev = res.events
    assert ev.filter(ev["event"] == "rcpt")["recipient"][0] == "sam@tool.com"  # bare path, no <>
    assert ev.filter(ev["event"] == "mail")["sender"][0] == "bob@dom.com"
    assert "Rescheduling delivery for later." in ev.filter(ev["line"] == 13)["text"][0]


@pytest.mark.parametrize(("command", "event", "verb", "recipient"), [
    ("RCPT TO:<a@b.com>", "rcpt", "RCPT", "a@b.com"),
    ("rcpt to:<a@b.com>", "rcpt", "RCPT", "a@b.com"),
    ("Rcpt To: <a@b.com>", "rcpt", "RCPT", "a@b.com"),
    ("RCPT TO:a@b.com", "rcpt", "RCPT", "a@b.com"),
    ("RCPT  TO : <a@b.com> NOTIFY=FAILURE,DELAY", "rcpt", "RCPT", "a@b.com"),
    ('RCPT TO:<"IMCEA user@domain2.com" @localdomain1.com>', "rcpt", "RCPT",
     '"IMCEA user@domain2.com" @localdomain1.com'),
    ('RCPT TO:"IMCEA user@domain2.com" @localdomain1.com', "rcpt", "RCPT",
     '"IMCEA user@domain2.com" @localdomain1.com'),
    ('RCPT TO:<"a>b"@c.com>', "rcpt", "RCPT", '"a>b"@c.com'),
    ("RCPT TO:<@hosta.int,@jkl.org:userc@d.bar.org>", "rcpt", "RCPT", "@hosta.int,@jkl.org:userc@d.bar.org"),
    ("RCPT TO:<>", "rcpt", "RCPT", ""),
    ("HELO x", "helo", "HELO", None),
    ("ehlo x", "helo", "EHLO", None),
    ("AUTH LOGIN", "auth", "AUTH", None),
    ("DATA", "data", "DATA", None),
    ("RSET", "rset", "RSET", None),
    ("QUIT", "quit", "QUIT", None),
    ("STARTTLS", "starttls", "STARTTLS", None),
    ("VRFY root", "vrfy", "VRFY", None),
    ("XEXCH50 1 2", "command", "XEXCH50", None),
    ("FOOBAR baz", "command", "FOOBAR", None),
])
def test_commands_any_case(tmp_path, command, event, verb, recipient):
    text = f"6/14/00 1:00:00 PM : A connection was accepted from h.example\n6/14/00 1:00:01 PM : <<< {command}\n"
    res = read_log(tmp_path, text)
    row = res.events.filter(res.events["line"] == 2).row(0, named=True)
    assert (row["event"], row["verb"], row["recipient"]) == (event, verb, recipient)


@pytest.mark.parametrize(("reply", "code", "text"), [
    ("250 OK - Recipient <a@b.com>", 250, "OK - Recipient <a@b.com>"),
    ("550 Relaying is prohibited", 550, "Relaying is prohibited"),
    ("550 relaying prohibited.", 550, "relaying prohibited."),
    ("235 ntlm authentication successful", 235, "ntlm authentication successful"),
    ("221 closing connection", 221, "closing connection"),
    ("554 Mailbox is not local: x@y.com", 554, "Mailbox is not local: x@y.com"),
    ("250", 250, None),
])
def test_replies(tmp_path, reply, code, text):
    log = f"6/14/00 1:00:00 PM : A connection was accepted from h.example\n6/14/00 1:00:01 PM : >>> {reply}\n"
    res = read_log(tmp_path, log)
    row = res.events.filter(res.events["line"] == 2).row(0, named=True)
    assert (row["event"], row["reply"], row["text"]) == ("reply", code, text)


def test_kb_time_zone_example(tmp_path):
    """6/14/00 11:47:11 PM on a server in America/Chicago is 2000-06-15 04:47:11 UTC."""
    res = read_log(tmp_path, "6/14/00 11:47:11 PM : A connection was accepted from x.example.\n",
                   site=SiteProfile(timezone="America/Chicago"))
    assert res.events["ts"][0] == utc("2000-06-15 04:47:11")


@pytest.mark.parametrize(("stamp", "expected"), [
    ("6/14/00 11:47:11 PM", "2000-06-14 23:47:11"),
    ("6/14/00 12:05:00 AM", "2000-06-14 00:05:00"),
    ("6/14/00 12:05:00 PM", "2000-06-14 12:05:00"),
    ("6/14/2000 23:47:11", "2000-06-14 23:47:11"),
    ("12/31/99 11:59:59 PM", "1999-12-31 23:59:59"),
    ("1/1/2001 0:00:00", "2001-01-01 00:00:00"),
    ("06/04/00 01:02:03 pm", "2000-06-04 13:02:03"),
])
def test_timestamp_shapes(tmp_path, stamp, expected):
    res = read_log(tmp_path, f"{stamp} : A connection was accepted from x.\n")
    assert res.events["ts"][0] == utc(expected)


def test_day_month_order_is_inferred_when_unambiguous(tmp_path):
    res = read_log(tmp_path, "25/12/00 10:00:00 : A connection was accepted from x.\n")
    assert res.events["ts"][0] == utc("2000-12-25 10:00:00")
    assert any("day/month/year" in w for w in res.inputs[0].warnings)


def test_invalid_date_is_skipped_with_location(tmp_path):
    text = "2/30/00 10:00:00 AM : A connection was accepted from x.\n2/28/00 10:00:00 AM : <<< QUIT\n"
    res = read_log(tmp_path, text)
    assert rows(res, "line", "event") == [(2, "quit")]
    assert res.inputs[0].skipped_lines == 1
    assert any(w.endswith("L0000000.LOG:1: timestamp is not a valid date/time: "
                          "2/30/00 10:00:00 AM : A connection was accepted from x.")
               for w in res.inputs[0].warnings)


def test_crlf_truncated_last_line_and_orphan_start(tmp_path):
    text = ("50-SIZE 0 (tail of a packet from before the archive started)" + CRLF
            + "6/14/00 1:00:00 PM : <<< RCPT TO:<a@b.com>" + CRLF
            + "6/14/00 1:00:00 PM : >>> 250 OK - Recipient <a@b.com>" + CRLF
            + "6/14/00 1:00:01 PM : <<< RCPT TO:<c@d.co")  # cut off mid-line, no newline
    res = read_log(tmp_path, text)
    got = rows(res, "line", "event", "recipient", "reply", "direction")
    assert got == [
        (2, "rcpt", "a@b.com", 250, "in"),
        (3, "reply", None, 250, "in"),
        (4, "rcpt", "c@d.co", None, "in"),
    ]
    assert all("\r" not in (t or "") for t in res.events["text"].to_list())
    report = res.inputs[0]
    assert report.skipped_lines == 1
    assert any(":1: text before the first timestamped entry" in w for w in report.warnings)


def test_undecodable_bytes_stay_visible(tmp_path):
    data = b"6/14/00 1:00:00 PM : <<< HELO caf\xe9\x81.example\r\n"
    res = read_log(tmp_path, data)
    assert res.events["helo"][0] == "caf\u00e9\\x81.example"
    assert res.inputs[0].encoding == "utf-8+windows-1252"


@pytest.mark.parametrize("line", [
    "5/13/00 2:36:28 PM : <<< MAIL FROM:<JohnD@COMPANY1.com> SIZE=1460 RET=FULL",
    '6/14/00 11:47:11 PM : <<< RCPT TO: <"IMCEA victim@hotmail.com" @acme-widgets.com>',
    "6/14/00 11:47:11 PM : >>> 250 OK - Recipient <x@y.com>",
    "4/5/99 10:22:41 AM : IO: |220 r40.domain.com InterLock SMTP Gateway 3.0 ready",
    "5/13/00 2:36:27 PM : A connection was accepted from SERVER1.",
    "4/5/99 10:22:41 AM : A connection to 10.1.1.1 was established.",
    "6/14/2000 23:47:11 : <<< QUIT",
])
def test_grammar_and_column_path_agree(tmp_path, line):
    """The reference pyparsing path and the Polars column path give the same fields."""
    ref = grammar.parse_entry(line)
    assert ref is not None
    res = read_log(tmp_path, line + "\n")
    row = res.events.row(0, named=True)
    if ref["kind"] == "connect_in":
        assert row["client_host"] == ref["peer"]
    elif ref["kind"] == "connect_out":
        assert row["relay_host"] == ref["peer"]
    else:
        full = grammar.line.parse_string(line, parse_all=True)
        payload = full.get("payload")
        if full.get("code"):
            assert row["reply"] == int(full["code"])
        else:
            assert row["verb"] == (full.get("verb") or full.get("env_verb") or full.get("env_verb2")).upper()
            path = full.get("path") if full.get("path") is not None else full.get("bare_path")
            if row["event"] == "rcpt":
                assert row["recipient"] == path
            if row["event"] == "mail":
                assert row["sender"] == path
        assert payload is not None
