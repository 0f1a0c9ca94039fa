"""Exim 4 main log / reject log reader: grammar, every documented variant, samples and real corpus."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest

from grammars import exim as grammar
from grammars import syslog as syslog_grammar
from logforensics.ingest import ingest, split_lines
from logforensics.readers import READERS, sniff_format
from logforensics.readers.base import ReadContext
from logforensics.readers.exim import EximReader, parse_payload
from logforensics.readers.syslog import YearHint
from logforensics.site import SiteProfile
from tests.conftest import CORPUS, SAMPLES, read_log, rows, utc

EXIM_CORPUS = CORPUS / "exim"
needs_corpus = pytest.mark.skipif(not EXIM_CORPUS.is_dir(),
                                  reason=f"real Exim corpus not present at {EXIM_CORPUS}")
MX2 = SAMPLES / "exim" / "mx2" / "var" / "log" / "exim4"
RELAY1 = SAMPLES / "exim" / "relay1" / "var" / "log" / "mail.log"
UTC_SITE = SiteProfile(timezone="UTC")


def read(text: str, *, zone: str = "UTC", year: int | None = None, source: str = "mainlog"):
    """The reader's own result (with its line accounting), no ingest."""
    site = SiteProfile(timezone=zone)
    hint = YearHint(start_year=year) if year else YearHint(end_at=(2004, 12), end_source="test")
    return EximReader().read(split_lines(text), ReadContext(source, site, "mx.test", hint))


def one(text: str, *cols: str, **kw) -> tuple:
    """The single event of a one-line log, as a tuple of columns."""
    result = read(text + "\n", **kw)
    assert result.events.height == 1, result.events
    return result.events.select(cols).row(0)


# --- grammar -------------------------------------------------------------------------------------


def payloads(text: str) -> list[str]:
    """What the grammar sees of each line: the line, or the message of an Exim syslog line."""
    out = []
    for line in text.split("\n"):
        fields = syslog_grammar.parse_line(line)
        if fields and re.fullmatch(r"(?i:exim)[0-9]*", fields.get("tag", "").split("/")[-1]):
            out.append(fields["msg"])
        else:
            out.append(line)
    return out


def assert_grammar_agrees(texts: list[str]) -> None:
    """``parse_line`` (pyparsing) and ``parse_payload`` (Polars columns) give the same fields."""
    frame = parse_payload(pl.Series(texts, dtype=pl.String))
    for text, row in zip(texts, frame.iter_rows(named=True), strict=True):
        columns = {k: v for k, v in row.items() if v is not None and k not in ("payload", "body")}
        assert columns == grammar.parse_line(text), text


def test_group_names_do_not_collide() -> None:
    """A body group and a field group never share a name (except the two host forms and codes)."""
    body = {g for p in grammar.BODIES.values() for g in re.compile(p).groupindex}
    fields: dict[str, list[str]] = {}
    for search in grammar.SEARCHES:
        for g in re.compile(search.pattern).groupindex:
            fields.setdefault(g, []).append(search.name)
    assert not body & set(fields)
    shared = {g: names for g, names in fields.items() if len(names) > 1}
    assert set(shared) == {"host", "host_name", "host_helo", "host_ip", "host_port", "reason_code"}
    for names in shared.values():
        kinds = [next(s.kinds for s in grammar.SEARCHES if s.name == n) for n in names]
        assert not set(kinds[0]) & set(kinds[1])


def test_grammar_on_samples() -> None:
    texts = []
    for path in (MX2 / "mainlog", MX2 / "rejectlog", RELAY1):
        texts += payloads(path.read_text())
    assert_grammar_agrees(texts)


@needs_corpus
def test_grammar_on_corpus() -> None:
    texts = []
    for path in sorted(p for p in EXIM_CORPUS.rglob("*") if p.is_file()):
        texts += payloads(path.read_text(encoding="utf-8", errors="replace"))
    assert len(texts) > 19_000
    assert_grammar_agrees(texts)


def test_parse_line_fields() -> None:
    fields = grammar.parse_line("2013-06-10 18:33:32 [10099] H=(yakult.com.tw) [202.132.70.178]:3755 "
                                "I=[1.2.3.4]:25 F=menacedsj04@listserv.eurasia.org rejected RCPT dir@ml3.ru: "
                                "relay not permitted")
    assert fields["kind"] == "reject_rcpt"
    assert (fields["pid"], fields["host_helo"], fields["host_ip"], fields["host_port"]) == \
        ("10099", "yakult.com.tw", "202.132.70.178", "3755")
    assert (fields["from_bare"], fields["rcpt_bare"], fields["reason"]) == \
        ("menacedsj04@listserv.eurasia.org", "dir@ml3.ru", "relay not permitted")


# --- documented variants (research note generic-smtp §4, verbatim lines) ---------------------------

COLS = ("ts", "event", "direction", "message", "sender", "recipient", "client_host", "client_ip", "helo",
        "reply", "reply_text", "auth_user", "status")


def test_relay_denied_with_pid_and_port() -> None:
    line = ("2013-06-10 18:33:32 [10099] H=(yakult.com.tw) [202.132.70.178]:3755 I=[1.2.3.4]:25 "
            "F=menacedsj04@listserv.eurasia.org rejected RCPT dir@ml3.ru: relay not permitted")
    assert one(line, *COLS, "verb", "format", "line", "server", "text") == (
        utc("2013-06-10 18:33:32"), "rcpt", "in", None, "menacedsj04@listserv.eurasia.org", "dir@ml3.ru",
        None, "202.132.70.178", "yakult.com.tw", 550, "relay not permitted", None, None,
        "RCPT", "exim", 1, "mx.test",
        "H=(yakult.com.tw) [202.132.70.178]:3755 I=[1.2.3.4]:25 F=menacedsj04@listserv.eurasia.org "
        "rejected RCPT dir@ml3.ru: relay not permitted")


def test_relay_denied_testsuite_form() -> None:
    # V4NET is the test suite's placeholder: not an IP, so client_ip stays null.
    line = ("1999-03-02 09:44:33 H=(test) [V4NET.0.0.0] U=CALLER F=<userx@test.ex> rejected RCPT "
            "<x@ten-2.test.ex>: relay not permitted")
    assert one(line, "event", "sender", "recipient", "client_ip", "helo", "reply", "reply_text") == (
        "rcpt", "userx@test.ex", "x@ten-2.test.ex", None, "test", 550, "relay not permitted")


def test_relay_access_denied_custom_text() -> None:
    line = ("2009-05-14 10:12:01 H=([192.0.2.9]) [192.0.2.9] F=<x@example.net> rejected RCPT "
            "<bagnovec@cs-service.by>: Relay access denied")
    assert one(line, "recipient", "reply", "reply_text", "helo") == (
        "bagnovec@cs-service.by", 550, "Relay access denied", "[192.0.2.9]")


def test_reject_codes_temporary_and_explicit() -> None:
    assert one("1999-03-02 09:44:33 U=CALLER F=<unknown@x.x.x.x> temporarily rejected RCPT "
               "<unknown@u.u.u.u>: Could not complete sender verify callout",
               "reply", "reply_text", "sender") == (451, "Could not complete sender verify callout",
                                                    "unknown@x.x.x.x")
    assert one("2017-07-30 18:51:05.712 H=localhost (testhost.test.ex) [127.0.0.1] Ci=p1234 "
               "X=TLS1.x:ke-RSA-AES256-SHAnnn:xxx F=<> rejected RCPT <f1@test.ex>: 550 we really do not like you",
               "reply", "reply_text", "sender", "client_host", "helo", "client_ip") == (
        550, "we really do not like you", "", "localhost", "testhost.test.ex", "127.0.0.1")
    assert one("1999-03-02 09:44:33 U=CALLER F=<x@y> rejected RCPT <a@b>", "reply", "reply_text") == (550, None)


def test_discarded_rcpt() -> None:
    line = ("1999-03-02 09:44:33 H=localhost (primary.test.ex) [127.0.0.1] F=<CALLER@test.ex> "
            "RCPT <userx@domA.ex>: discarded by RCPT ACL")
    assert one(line, "event", "recipient", "reply", "status") == ("rcpt", "userx@domA.ex", 250, "discarded")


def test_arrival_local_legacy_id() -> None:
    line = "2009-07-25 09:00:09 1MUhnF-0000JZ-OX <= root@core2duo U=root P=local S=620"
    assert one(line, *COLS, "size") == (
        utc("2009-07-25 09:00:09"), "received", "local", "1MUhnF-0000JZ-OX", "root@core2duo", None, None, None,
        None, None, None, None, None, 620)


def test_arrival_authenticated_new_id_and_recipients() -> None:
    line = ("1999-03-02 09:44:33 10HmaZ-000000005vi-0000 <= userx@cus.cam.ac.uk H=(testclient.ex) [10.0.0.3] "
            "U=CALLER P=esmtpa A=mylogin S=sss for userx8@test.ex")
    assert one(line, "event", "message", "sender", "recipient", "client_ip", "helo", "auth_user", "size") == (
        "received", "10HmaZ-000000005vi-0000", "userx@cus.cam.ac.uk", "userx8@test.ex", "10.0.0.3",
        "testclient.ex", "mylogin", None)


def test_arrival_one_row_per_recipient_and_auth_id() -> None:
    text = ('2004-01-01 00:00:01 1AbmYu-0000jQ-00 <= a@acme-widgets.com H=mx.example.net (helo.example) '
            '[192.0.2.5]:4123 I=[10.20.0.25]:587 P=esmtpsa X=TLSv1:DES-CBC3-SHA:168 A=dovecot_plain:jsmith '
            'S=2311 id=x@y T="Deal for you" for r1@example.org "quoted@x"@acme-widgets.com r3%z@acme-widgets.com\n')
    result = read(text)
    assert result.events.select("line", "recipient", "auth_user", "client_host", "helo", "client_ip",
                                "size").rows() == [
        (1, "r1@example.org", "jsmith", "mx.example.net", "helo.example", "192.0.2.5", 2311),
        (1, '"quoted@x"@acme-widgets.com', "jsmith", "mx.example.net", "helo.example", "192.0.2.5", 2311),
        (1, "r3%z@acme-widgets.com", "jsmith", "mx.example.net", "helo.example", "192.0.2.5", 2311),
    ]


def test_auth_id_with_third_item() -> None:
    line = ("1999-03-02 09:44:33 10HmaX-000000005vi-0000 <= CALLER@myhost.test.ex H=hostname [5.6.7.8] "
            "U=ident P=protocol A=authname:authid:authsender S=sss")
    assert one(line, "auth_user", "client_host", "client_ip") == ("authid", "hostname", "5.6.7.8")


def test_fakereject_arrival() -> None:
    line = "2004-01-01 00:00:01 1AbmYu-0000jQ-00 (= x@example.net H=(a) [192.0.2.7] P=esmtp S=100 for u@acme-widgets.com"
    assert one(line, "event", "status", "recipient") == ("received", "fakereject", "u@acme-widgets.com")


def test_remote_delivery() -> None:
    line = ("2009-03-01 01:24:41 1LdZU0-0003hW-Vp => removeed(at)web.de R=dnslookup T=remote_smtp "
            "H=mx-ha01.web.de [217.72.192.149]")
    assert one(line, "event", "direction", "message", "recipient", "orig_recipient", "relay_host", "transport",
               "status", "reply") == (
        "deliver", "out", "1LdZU0-0003hW-Vp", "removeed(at)web.de", None, "mx-ha01.web.de [217.72.192.149]",
        "remote_smtp", "sent", None)


def test_loopback_delivery_with_parent_and_confirmation() -> None:
    line = ('1999-03-02 09:44:33 10HmaX-000000005vi-0000 => one@remote <list@test.ex> R=all T=smtp '
            'H=127.0.0.1 [127.0.0.1] C="250 OK"')
    assert one(line, "direction", "recipient", "orig_recipient", "relay_host", "transport", "reply",
               "reply_text", "status") == (
        "local", "one@remote", "list@test.ex", "127.0.0.1 [127.0.0.1]", "smtp", 250, "OK", "sent")


def test_delivery_flags() -> None:
    text = "\n".join([
        '2004-01-01 00:00:01 1AbmYu-0000jQ-00 -> two@example.org R=dnslookup T=remote_smtp H=mx.example.org '
        '[192.0.2.90]:25 C="250 2.0.0 Ok: queued as X"',
        '2004-01-01 00:00:01 1AbmYu-0000jQ-00 >> three@example.org P=<s@acme-widgets.com> R=dnslookup '
        'T=remote_smtp H=mx.example.org [192.0.2.90] C="250 OK"',
        '2004-01-01 00:00:01 1AbmYu-0000jQ-00 *> four@example.org R=dnslookup T=remote_smtp '
        'H=mx.example.org [192.0.2.90] C="delivery bypassed by -N option"',
        "2004-01-01 00:00:01 1AbmYu-0000jQ-00 => jsmith <jsmith@acme-widgets.com> R=local_user T=local_delivery",
    ]) + "\n"
    assert read(text).events.select("recipient", "orig_recipient", "direction", "status", "reply", "reply_text",
                                    "sender", "relay_host").rows() == [
        ("two@example.org", None, "out", "sent", 250, "2.0.0 Ok: queued as X", None, "mx.example.org [192.0.2.90]:25"),
        ("three@example.org", None, "out", "sent", 250, "OK", "s@acme-widgets.com", "mx.example.org [192.0.2.90]"),
        ("four@example.org", None, "local", "suppressed", None, "delivery bypassed by -N option", None,
         "mx.example.org [192.0.2.90]"),
        ("jsmith", "jsmith@acme-widgets.com", "local", "sent", None, None, None, None),
    ]


def test_deferred() -> None:
    line = "1999-03-02 09:44:33 10HmaY-000000005vi-0000 == CALLER@two.test.ex defer (-23): domain is held"
    assert one(line, "event", "status", "recipient", "reply", "reply_text", "direction") == (
        "deliver", "deferred", "CALLER@two.test.ex", None, "domain is held", "local")


def test_deferred_with_host() -> None:
    line = ("2004-01-01 00:12:42 1Abmsy-0000kL-00 == target2@example.net R=dnslookup T=remote_smtp defer (-44) "
            "H=mx1.example.net [192.0.2.81]: SMTP error from remote mail server after RCPT TO:<target2@example.net>: "
            "451 4.7.1 Greylisted")
    assert one(line, "status", "reply", "relay_host", "direction", "transport") == (
        "deferred", 451, "mx1.example.net [192.0.2.81]", "out", "remote_smtp")


def test_bounce_from_remote_relay_check() -> None:
    # Our server refused by someone else's relay check: a bounced delivery, not a rcpt row.
    line = ("2009-03-01 01:24:41 1LdZU1-0003hZ-0e ** philippklingberg@hotmial.de R=dnslookup T=remote_smtp: "
            "SMTP error from remote mail server after RCPT TO:<philippklingberg@hotmial.de>: host mail.hotmial.de "
            "[85.17.10.131]: 554 <philippklingberg@hotmial.de>: Relay access denied")
    assert one(line, "event", "status", "recipient", "reply", "relay_host", "direction", "transport",
               "reply_text") == (
        "deliver", "bounced", "philippklingberg@hotmial.de", 554, "mail.hotmial.de [85.17.10.131]", "out",
        "remote_smtp",
        "SMTP error from remote mail server after RCPT TO:<philippklingberg@hotmial.de>: host mail.hotmial.de "
        "[85.17.10.131]: 554 <philippklingberg@hotmial.de>: Relay access denied")


def test_bounce_unrouteable() -> None:
    assert one('2003-12-31 23:02:15 1Abld1-0000gH-00 ** "user@other.example"@acme-widgets.com: Unrouteable address',
               "recipient", "status", "reply_text", "direction") == (
        '"user@other.example"@acme-widgets.com', "bounced", "Unrouteable address", "local")


def test_millisecond_auth_failure() -> None:
    line = ("2023-05-30 06:10:13.345 login authenticator failed for millis.example.org [192.0.2.12]:5432: "
            "535 Incorrect authentication data (set_id=user)")
    assert one(line, "ts", "event", "verb", "status", "auth_user", "client_host", "client_ip", "reply",
               "reply_text") == (
        utc("2023-05-30 06:10:13").replace(microsecond=345_000),
        "auth", "AUTH", "failed", "user", "millis.example.org", "192.0.2.12", 535,
        "Incorrect authentication data (set_id=user)")


def test_auth_failure_forms() -> None:
    text = "\n".join([
        "2013-06-12 03:57:58 login authenticator failed for (ylmf-pc) [120.196.140.45]: 535 Incorrect "
        "authentication data: 1 Time(s)",
        "2014-12-02 03:00:23 auth_plain authenticator failed for (rom182) [193.254.202.35]:41556 I=[10.0.0.1]:25: "
        "535 Incorrect authentication data (set_id=webmaster)",
        "1999-03-02 09:44:33 expanded_prompt_plain authenticator failed for H=(test.host) [10.0.0.1] U=CALLER: "
        "535 Incorrect authentication data (set_id=userx)",
    ]) + "\n"
    assert read(text).events.select("helo", "client_ip", "auth_user", "reply").rows() == [
        ("ylmf-pc", "120.196.140.45", None, 535),
        ("rom182", "193.254.202.35", "webmaster", 535),
        ("test.host", "10.0.0.1", "userx", 535),
    ]


def test_timezone_logged_and_local() -> None:
    assert one("2003-04-25 11:17:07 +0100 1AbmYu-0000jQ-00 Completed", "ts", "message", "event",
               zone="America/Chicago") == (utc("2003-04-25 10:17:07"), "1AbmYu-0000jQ-00", "note")
    # No zone logged: the site's local time (CST in winter, CDT in summer).
    assert one("2003-12-31 22:00:02 Start queue run: pid=2201", "ts", zone="America/Chicago") == (
        utc("2004-01-01 04:00:02"),)
    assert one("2003-07-01 12:00:00 Start queue run: pid=2201", "ts", zone="America/Chicago") == (
        utc("2003-07-01 17:00:00"),)


def test_connections() -> None:
    text = "\n".join([
        "2004-01-01 00:12:39 SMTP connection from [198.51.100.77]:1234 I=[10.20.0.25]:25 "
        "(TCP/IP connection count = 1)",
        "2004-01-01 00:12:43 SMTP connection from (pc77.isp.example) [198.51.100.77] closed by QUIT",
        "2016-03-21 06:38:05 [5718] no MAIL in SMTP connection from www3005.sakura.ne.jp [49.212.207.15]:28890 "
        "I=[172.89.0.6]:25 D=21s C=EHLO,STARTTLS",
        "2013-06-02 09:22:06 SMTP call from [192.0.2.109] dropped: too many syntax or protocol errors "
        '(last command was "AUTH LOGIN")',
    ]) + "\n"
    assert read(text).events.select("event", "direction", "client_host", "client_ip", "helo").rows() == [
        ("connect", "in", None, "198.51.100.77", None),
        ("quit", "in", None, "198.51.100.77", "pc77.isp.example"),
        ("quit", "in", "www3005.sakura.ne.jp", "49.212.207.15", None),
        ("quit", "in", None, "192.0.2.109", None),
    ]


def test_other_rejections_by_command() -> None:
    text = "\n".join([
        "1999-03-02 09:44:33 H=[10.9.8.8] U=CALLER rejected MAIL <bad@test1>",
        "1999-03-02 09:44:33 H=(x.y.z) [10.9.8.10] U=CALLER rejected EHLO or HELO x.y.z",
        "1999-03-02 09:44:33 H=(x.y.z) [127.0.0.1] rejected VRFY a@b.c",
        "2013-06-15 11:20:36 [2516] 1Unmew-0000ea-SE H=egeftech.static.otenet.gr [83.235.177.148]:32706 "
        "I=[1.2.3.4]:25 F=auguriesvbd40@google.com rejected after DATA: This message contains a virus",
        '1999-03-02 09:44:33 H=[10.9.8.9] U=CALLER rejected connection in "connect" ACL: forcibly dropped',
        "2004-01-18 07:15:35 1Ai79e-0000Dq-8i F=uzwltcmwto24@melissacam.biz H=lsanca1.example.net "
        "[4.47.28.40] P=smtp rejected by local_scan(): Rejected: hits=7.5",
        "1999-03-02 09:44:33 H=(a.b.c) [10.9.8.10] U=CALLER rejected STARTTLS ",
    ]) + "\n"
    assert read(text).events.select("event", "verb", "reply", "reply_text", "sender", "recipient", "helo",
                                    "client_ip", "message").rows() == [
        ("mail", "MAIL", 550, None, "bad@test1", None, None, "10.9.8.8", None),
        ("helo", "EHLO", 550, None, None, None, "x.y.z", "10.9.8.10", None),
        ("command", "VRFY", 550, None, None, "a@b.c", "x.y.z", "127.0.0.1", None),
        ("data", "DATA", 550, "This message contains a virus", "auguriesvbd40@google.com", None, None,
         "83.235.177.148", "1Unmew-0000ea-SE"),
        ("connect", None, 554, "forcibly dropped", None, None, None, "10.9.8.9", None),
        ("data", "DATA", 550, "Rejected: hits=7.5", "uzwltcmwto24@melissacam.biz", None, None, "4.47.28.40",
         "1Ai79e-0000Dq-8i"),
        ("starttls", "STARTTLS", 550, None, None, None, "a.b.c", "10.9.8.10", None),
    ]


def test_notes_keep_text() -> None:
    text = ("2009-07-25 09:00:09 1MUhnF-0000JZ-OX Completed\n"
            "2003-12-31 21:58:02 exim 4.30 daemon started: pid=812, -q30m, listening for SMTP on port 25 (IPv4)\n"
            "2006-11-21 15:17:10 1Gmc37-00045w-00 Frozen (delivery error message)\n")
    assert read(text).events.select("event", "message", "text", "direction").rows() == [
        ("note", "1MUhnF-0000JZ-OX", "Completed", None),
        ("note", None, "exim 4.30 daemon started: pid=812, -q30m, listening for SMTP on port 25 (IPv4)", None),
        ("note", "1Gmc37-00045w-00", "Frozen (delivery error message)", None),
    ]


def test_rejectlog_record_with_header_dump() -> None:
    text = ("1999-03-02 09:44:33 10HmaY-000000005vi-0000 F=<userx@test1> rejected by non-SMTP ACL: "
            "don't like sender userx@test1\n"
            "Envelope-from: <userx@test1>\n"
            "Envelope-to: <userx@test.ex>\n"
            "P Received: from CALLER by myhost.test.ex with local (Exim x.yz)\n"
            "\t(envelope-from <userx@test1>)\n"
            "\tid 10HmaY-000000005vi-0000\n"
            "I Message-Id: <E10HmaY-000000005vi-0000@myhost.test.ex>\n"
            "F From: userx@test1\n"
            "  Date: Tue, 2 Mar 1999 09:44:33 +0000\n"
            "1999-03-02 09:44:33 H=(test.ex) [10.9.8.8] U=CALLER rejected EHLO or HELO test.ex\n")
    result = read(text, source="rejectlog")
    assert (result.lines, result.continuation, result.skipped, result.not_mail, result.blank) == (10, 8, 0, 0, 0)
    assert result.events.select("line", "event", "sender").rows() == [(1, "note", "userx@test1"), (10, "helo", None)]
    first = result.events["text"][0]
    assert first.startswith("F=<userx@test1> rejected by non-SMTP ACL")
    assert "\nEnvelope-to: <userx@test.ex>\n" in first


# --- syslog-wrapped -------------------------------------------------------------------------------


def test_syslog_with_inner_stamp_and_host() -> None:
    line = ("2019-10-22 03:39:17 mx1.fqdn.local exim[29786]: dovecot_login authenticator failed for (User) "
            "[192.0.2.37]: 535 Incorrect authentication data (set_id=test@domain.com)")
    assert one(line, "ts", "server", "event", "auth_user", "client_ip", "helo") == (
        utc("2019-10-22 03:39:17"), "mx1.fqdn.local", "auth", "test@domain.com", "192.0.2.37", "User")


def test_journal_line_inner_stamp_wins() -> None:
    line = ("mail.example.com exim[3751842]: 2021-07-17 23:20:49 plain_server authenticator failed for "
            "([192.0.2.17]) [192.0.2.27]: 535 Incorrect authentication data")
    assert one(line, "ts", "server", "event", "client_ip", "helo", zone="Europe/Berlin") == (
        utc("2021-07-17 21:20:49"), "mail.example.com", "auth", "192.0.2.27", "[192.0.2.17]")


def test_bsd_syslog_without_inner_stamp() -> None:
    line = ("Jun 29 15:33:46 server exim[1234]: H=test.com [1.2.3.4]:53343 F=<info@test.com> rejected RCPT "
            '<toto@toto.com>: "JunkMail rejected - test.com [1.2.3.4]:53343 is in an RBL"')
    assert one(line, "ts", "server", "event", "recipient", "client_host", "reply", year=2022) == (
        utc("2022-06-29 15:33:46"), "server", "rcpt", "toto@toto.com", "test.com", 550)


def test_headerless_tag_with_inner_stamp() -> None:
    line = "exim[15745]: 2006-11-21 15:17:10 1Gmc37-00045w-00 Frozen (delivery error message)"
    assert one(line, "ts", "server", "message", "event") == (
        utc("2006-11-21 15:17:10"), "mx.test", "1Gmc37-00045w-00", "note")


def test_syslog_ng_repeated_pid() -> None:
    line = ("2016-04-01 11:08:00 info exim[8001]: [8001] no MAIL in SMTP connection from (User) "
            "[192.0.2.29]:20042 I=[192.0.2.1]:25 Ci=8001 D=0.349s C=EHLO,AUTH,QUIT")
    assert one(line, "ts", "server", "event", "client_ip", "helo") == (
        utc("2016-04-01 11:08:00"), "info", "quit", "192.0.2.29", "User")


def test_fragments_joined() -> None:
    text = ("Sep 16 16:09:43 mx exim[901]: [1/3] 2002-09-16 16:09:43 H=(spam) [192.0.2.66] F=<a@example.net> "
            "rejected RCPT <b@exa\n"
            "Sep 16 16:09:43 mx exim[902]: 2002-09-16 16:09:43 Start queue run: pid=902\n"
            "Sep 16 16:09:43 mx exim[901]: [2/3] mple.org>: relay not\n"
            "Sep 16 16:09:43 mx exim[901]: [3\\3]  permitted\n")
    result = read(text, year=2002)
    assert (result.lines, result.continuation) == (4, 2)
    assert result.events.select("line", "event", "recipient", "reply_text").rows() == [
        (1, "rcpt", "b@example.org", "relay not permitted"),
        (2, "note", None, None),
    ]


def test_fragments_split_at_newline() -> None:
    text = ("Jan  1 00:04:33 relay1 exim[4420]: [1\\2] 2004-01-01 00:04:33 H=(friend) [203.0.113.150] "
            "F=<l@winner.example> rejected RCPT <u%example.com@acme-widgets.com>: relay not permitted\n"
            "Jan  1 00:04:33 relay1 exim[4420]: [2\\2] see http://www.acme-widgets.com/postmaster.html\n")
    result = read(text)
    assert result.events.select("recipient", "reply_text").rows() == [
        ("u%example.com@acme-widgets.com", "relay not permitted see http://www.acme-widgets.com/postmaster.html")]


def test_syslog_duplicate_kept_once() -> None:
    line = ("Dec 31 23:56:12 relay1 exim[4412]: 2003-12-31 23:56:12 H=(ylmf-pc) [203.0.113.201] "
            "F=<spam@bulk.example> rejected RCPT <victim9@example.org>: relay not permitted")
    result = read(line + "\n" + line + "\n" + line.replace("victim9", "victim10") + "\n")
    assert result.events.select("line", "recipient", "raw_line").rows() == [
        (1, "victim9@example.org", 2), (3, "victim10@example.org", None)]


def test_other_daemons_are_not_mail() -> None:
    text = ("Dec 31 23:55:01 relay1 CRON[4410]: (root) CMD (debian-sa1 1 1)\n"
            "Dec 31 23:57:40 relay1 dovecot: imap-login: Login: user=<kim>, rip=10.20.4.31\n"
            "Dec 31 23:58:40 relay1 exim[4415]: 1AbmWd-0001Fh-00 Completed\n"
            "Dec 31 23:58:41 relay1 last message repeated 2 times\n"
            "postfix/smtpd[10419]: NOQUEUE: reject: RCPT from unknown[200.71.50.65]: 554 Service unavailable\n"
            "\n")
    result = read(text, year=2003)
    assert (result.lines, result.not_mail, result.blank, result.skipped, result.events.height) == (6, 4, 1, 0, 1)


def test_syslog_rollover_anchored_by_inner_stamp() -> None:
    result = ingest([RELAY1], SiteProfile(timezone="America/Chicago"))
    ev = result.events
    assert ev.filter(pl.col("line") == 6)["ts"].to_list() == [utc("2004-01-01 06:00:01")]
    assert ev.filter(pl.col("line") == 2)["ts"].to_list() == [utc("2004-01-01 05:56:12")]
    assert result.inputs[0].warnings == []


# --- hostile input -------------------------------------------------------------------------------


def test_hostile_lines() -> None:
    text = ("**NOTE: harness text before the first record\n"
            "2004-01-01 00:00:01 1AbmYu-0000jQ-00 <= a@b H=(x) [192.0.2.1] P=esmtp S=1 for c@d\n"
            "2004-01-01 00:00:02 1AbmYu-0000jQ-00 => c@d R=dnslookup T=remote_smtp H=mx.d [192.0.2.\n"
            "2004-02-30 00:00:02 Start queue run: pid=1\n"
            "2004-01-01 00:00:03 \x00\x01\ufffd H=([\ufffd]) [192.0.2.3] F=<\ufffd@x> rejected RCPT <\ufffd@y>: no\n"
            "2004-01-01 00:00:04 H=(x) [192.0.2.4] F=<s@x> rejected RCPT <trunc@exam")
    result = read(text)
    assert (result.lines, result.skipped) == (6, 2)
    assert sorted(w.split(": ")[1] for w in result.warnings) == [
        "not an Exim log line", "time stamp is not a valid date/time"]
    assert result.events.select("line", "event", "recipient", "relay_host", "direction").rows() == [
        (2, "received", "c@d", None, "in"),
        (3, "deliver", "c@d", "mx.d", "local"),
        (5, "rcpt", "\ufffd@y", None, "in"),
        (6, "rcpt", "trunc@exam", None, "in"),
    ]


def test_garbage_bytes_through_ingest(tmp_path: Path) -> None:
    data = (b"2004-01-01 00:00:01 H=(\xff\xfe) [192.0.2.9] F=<a@b> rejected RCPT <c@example.org>: "
            b"relay not permitted\n")
    result = read_log(tmp_path, data, name="mainlog")
    assert result.inputs[0].format == "exim"
    assert rows(result, "event", "recipient", "reply") == [("rcpt", "c@example.org", 550)]


def test_empty_file_is_unrecognised(tmp_path: Path) -> None:
    result = read_log(tmp_path, "", name="mainlog")
    assert result.inputs[0].format is None and result.inputs[0].lines == 0


# --- sniffing -----------------------------------------------------------------------------------


def test_sniff() -> None:
    reader = EximReader()
    assert reader.sniff(["2004-01-01 00:00:01 1AbmYu-0000jQ-00 Completed"]) > 0.9
    assert reader.sniff(["Jun 29 16:04:19 server exim[1234]: H=x [1.2.3.4] rejected RCPT <a@b>: x"]) > 0.9
    assert reader.sniff(["Jun 29 16:04:19 server exim4[1234]: 2022-06-29 16:04:19 Start queue run"]) > 0.9
    # Nothing but Exim stamps: weak, but enough.
    assert reader.sniff(["1999-03-02 09:44:33 1: phil.hazel no"]) == pytest.approx(0.35)
    # A W3C line has an IP after the stamp; postfix, plain text and tabs are not Exim.
    assert reader.sniff(["2017-02-09 05:28:28 66.196.118.34 OutboundConnectionCommand SMTPSVC1 X - 25"]) == 0.0
    assert reader.sniff(["Apr  6 13:05:01 server postfix/smtpd[20589]: connect from x[1.2.3.4]"]) == 0.0
    assert reader.sniff(["2003-10-29\t10:00:00 GMT\t1.2.3.4"]) == 0.0
    assert reader.sniff(["", "   "]) == 0.0


@needs_corpus
def test_sniff_claims_no_other_format() -> None:
    reader = EximReader()
    for path in sorted(p for p in CORPUS.rglob("*") if p.is_file() and "exim" not in p.parts):
        head = path.read_text(encoding="utf-8", errors="replace").splitlines()[:50]
        assert reader.sniff(head) == 0.0, path


# --- samples ------------------------------------------------------------------------------------


def test_sample_tree() -> None:
    result = ingest([MX2 / "mainlog", MX2 / "rejectlog", RELAY1], SiteProfile(timezone="America/Chicago"))
    assert {(Path(r.path).name, r.format, r.skipped_lines, r.warnings == []) for r in result.inputs} == {
        ("mainlog", "exim", 0, True), ("rejectlog", "exim", 0, True), ("mail.log", "exim", 0, True)}
    ev = result.events.with_columns(pl.col("source").str.extract(r"([^/]+)$", 1).alias("file"))
    refused = ev.filter((pl.col("event") == "rcpt") & (pl.col("reply") >= 400))
    assert refused.filter(pl.col("file") == "mainlog").select("line", "client_ip", "recipient").rows() == [
        (18, "203.0.113.45", "victim1@example.org"), (19, "203.0.113.45", "victim2@example.org"),
        (20, "203.0.113.45", "victim3@example.net"), (29, "203.0.113.99", "relaytest@example.com"),
        (30, "203.0.113.99", "other.example!user@acme-widgets.com"),
        (64, "203.0.113.150", "ceo@example.com"), (65, "203.0.113.150", "nosuchuser@acme-widgets.com"),
    ]
    assert refused.filter(pl.col("file") == "rejectlog")["line"].to_list() == [1, 2, 3, 4, 5, 6, 7]
    assert refused.filter(pl.col("file") == "mail.log").select("line", "recipient").rows() == [
        (2, "victim9@example.org"), (8, "user%example.com@acme-widgets.com")]
    received = ev.filter((pl.col("event") == "received") & (pl.col("file") == "mainlog")
                         & pl.col("recipient").is_not_null())
    assert received.select("line", "client_ip", "auth_user", "recipient").rows() == [
        (5, "192.0.2.10", None, "sales@acme-widgets.com"),
        (9, "10.20.1.15", None, "bob@partner.example.net"),
        (12, None, None, "orders@acme-widgets.com"),
        (22, "192.0.2.33", None, "orders@acme-widgets.com"),
        (22, "192.0.2.33", None, "sales@acme-widgets.com"),
        (31, "203.0.113.99", None, '"user@other.example"@acme-widgets.com'),
        (34, "203.0.113.99", None, "user%other.example@acme-widgets.com"),
        (43, "192.0.2.200", "jsmith", "buyer1@example.net"),
        (43, "192.0.2.200", "jsmith", "buyer2@example.org"),
        (43, "192.0.2.200", "jsmith", "nobody@example.org"),
        (51, "192.0.2.200", "jsmith", "buyer3@example.com"),
        (56, "192.0.2.200", "jsmith", "buyer4@example.net"),
        (60, "198.51.100.77", None, "target1@example.com"),
        (60, "198.51.100.77", None, "target2@example.net"),
        (71, "10.20.4.31", "kim", "kim.home@example.net"),
    ]
    out = ev.filter((pl.col("event") == "deliver") & (pl.col("direction") == "out") & (pl.col("status") == "sent")
                    & (pl.col("file") == "mainlog"))
    assert out.select("line", "message", "recipient", "orig_recipient").rows() == [
        (10, "1AbkX3-0000cQ-00", "bob@partner.example.net", None),
        (35, "1Abld2-0000gJ-00", "user@other.example", "user%other.example@acme-widgets.com"),
        (44, "1AbmDf-0000iK-00", "buyer1@example.net", None),
        (45, "1AbmDf-0000iK-00", "buyer2@example.org", None),
        (52, "1AbmUm-0000jA-00", "buyer3@example.com", None),
        (57, "1AbmYu-0000jQ-00", "buyer4@example.net", None),
        (61, "1Abmsy-0000kL-00", "target1@example.com", None),
        (67, "1Abmsy-0000kL-00", "target2@example.net", None),
        (72, "1Abnyc-0000qB-00", "kim.home@example.net", None),
    ]
    # The year turns at mainlog line 54 (local time); UTC is six hours ahead in winter.
    assert ev.filter((pl.col("file") == "mainlog") & (pl.col("line") == 54))["ts"].to_list() == [
        utc("2004-01-01 06:00:01")]


def test_sample_line_accounting() -> None:
    for path, expected in ((MX2 / "mainlog", (75, 0, 0, 0, 0)), (MX2 / "rejectlog", (18, 10, 0, 0, 0)),
                           (RELAY1, (14, 1, 0, 4, 0))):
        result = read(path.read_text(), zone="America/Chicago")
        event_lines = set(result.events["line"]) | set(result.events["raw_line"].drop_nulls())
        assert (result.lines, result.continuation, result.blank, result.not_mail, result.skipped) == expected
        assert len(event_lines) + result.continuation + result.blank + result.not_mail + result.skipped \
            == result.lines


# --- the real corpus ----------------------------------------------------------------------------

RELAY_DENIAL = re.compile(r"rejected RCPT (<[^>]*>|[^ :]+): (?:relay not permitted|Relay access denied)",
                          re.IGNORECASE)


@needs_corpus
def test_corpus_every_file_is_exim_and_relay_denials_are_rcpt_rows() -> None:
    files = sorted(p for p in EXIM_CORPUS.rglob("*") if p.is_file())
    assert len(files) > 990
    result = ingest(files, UTC_SITE)
    by_path = {r.path: r for r in result.inputs}
    for path in files:
        report = by_path[str(path)]
        assert report.format == ("exim" if report.lines else None), path
        # (several test-suite files are byte-identical: the later ones are marked duplicate)
        assert report.status in (("ok", "duplicate") if report.lines else ("unrecognised",)), path
    denials = 0
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        if not RELAY_DENIAL.search(text):
            continue
        events = read(text, source=str(path)).events.filter(pl.col("event") == "rcpt")
        keyed = {n: (r, rc) for n, r, rc in events.select("line", "reply", "recipient").rows()}
        for number, line in enumerate(text.split("\n"), 1):
            match = RELAY_DENIAL.search(line)
            if not match or line.startswith("#"):
                continue
            denials += 1
            reply, recipient = keyed[number]
            assert reply >= 400, (path, number)
            assert recipient == match.group(1).strip("<>"), (path, number)
    assert denials == 34  # 32 in the Exim test suite (log and rejectlog), 2 in fail2ban_exim.log


@needs_corpus
def test_corpus_known_files() -> None:
    result = ingest([EXIM_CORPUS / "fail2ban_exim.log", EXIM_CORPUS / "crowdsec_exim-syslog-logs.log",
                     EXIM_CORPUS / "ossec-docs_exim_samples.log"], UTC_SITE, year=2022)
    summary = {Path(r.path).name: (r.format, r.lines, r.events, r.skipped_lines) for r in result.inputs}
    assert summary == {
        "fail2ban_exim.log": ("exim", 128, 51, 7),
        "crowdsec_exim-syslog-logs.log": ("exim", 11, 11, 0),
        "ossec-docs_exim_samples.log": ("exim", 7, 7, 0),
    }
    ossec = result.events.filter(pl.col("source").str.ends_with("ossec-docs_exim_samples.log"))
    assert ossec.select("line", "event", "status", "reply").rows()[:3] == [
        (1, "note", None, None), (2, "deliver", "bounced", 550), (3, "note", None, None)]


def test_registered() -> None:
    assert READERS["exim"] is EximReader
    assert sniff_format(["2004-01-01 00:00:01 1AbmYu-0000jQ-00 => a@b R=r T=t"]) == "exim"
