"""Postfix via syslog: every line shape of the research note (generic-smtp §1, §2), sessions, time,
the grammar/column agreement on every corpus and sample line, the samples' ground truth."""

from __future__ import annotations

import collections
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from grammars import postfix as grammar
from grammars import syslog as syslog_grammar
from logforensics.ingest import split_lines
from logforensics.readers import sniff_format
from logforensics.readers.base import ReadContext
from logforensics.readers.postfix import FIELD_NAMES, PostfixReader, shape_columns
from logforensics.readers.syslog import split_syslog
from logforensics.site import SiteProfile
from tests.conftest import CORPUS, SAMPLES, read_log, rows, utc

PF_CORPUS = CORPUS / "postfix"
needs_corpus = pytest.mark.skipif(not PF_CORPUS.is_dir(),
                                  reason=f"real corpus folder {PF_CORPUS} not present on this machine")
SAMPLE_DIR = SAMPLES / "postfix" / "mx1" / "var" / "log"
ENV = "Jan 12 10:00:00 mx postfix/smtpd[4242]: "

COLS = ("line", "event", "verb", "message", "client_host", "client_ip", "helo", "sender", "recipient",
        "reply", "reply_text", "status", "direction")


def read(text: str, *, zone: str = "UTC", source: str = "mail.log"):
    """Run the reader directly (counts: not_mail, blank, skipped)."""
    return PostfixReader().read(split_lines(text), ReadContext(source, SiteProfile(timezone=zone), "ctxhost"))


def one(line: str, *cols: str) -> tuple:
    res = read(line + "\n")
    assert res.events.height == 1, res.events
    return res.events.select(cols or COLS).row(0)


# --------------------------------------------------------------------------------------------------
# Grammar and column path agree, on every line we have.


def corpus_lines() -> list[str]:
    out = []
    for path in sorted(PF_CORPUS.glob("*.log")):
        out += path.read_text(encoding="utf-8", errors="replace").splitlines()
    return out


def tsv_messages() -> list[tuple[str, str, str]]:
    rows_ = (PF_CORPUS / "postfix-grok-patterns_messages.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [tuple(r.split("\t", 2)) for r in rows_]


def sample_lines() -> list[str]:
    return [line for p in sorted(SAMPLE_DIR.iterdir()) for line in p.read_text().splitlines()]


def assert_agree(messages: list[str]) -> collections.Counter:
    """pyparsing (``parse_message``) and the Polars column path give the same shape and fields."""
    frame = shape_columns(pl.DataFrame({"msg": messages}, schema={"msg": pl.String}))
    kinds: collections.Counter = collections.Counter()
    for text, row in zip(messages, frame.iter_rows(named=True), strict=True):
        kind, fields = grammar.parse_message(text)
        column_fields = {g: row[f"f_{g}"] for g in FIELD_NAMES if row[f"f_{g}"] is not None}
        assert (row["kind"], column_fields) == (kind, fields), text
        kinds[kind] += 1
    return kinds


def envelope_agree(lines: list[str]) -> list[str]:
    """The envelope grammar and ``split_syslog`` agree; returns the Postfix messages."""
    frame = split_syslog(pl.Series("raw", lines, dtype=pl.String))
    envelope = [g for g in ("mon", "day", "hms", "iso", "iso_zone", "host", "tag", "pid", "facility", "msg")]
    messages = []
    for text, row in zip(lines, frame.iter_rows(named=True), strict=True):
        parsed = syslog_grammar.parse_line(text)
        column = {k: (str(row[k]) if k == "pid" else row[k]) for k in envelope if row[k] is not None}
        assert (parsed or {}) == column, text
        if parsed and parsed["tag"].split("/")[0].startswith("postfix"):
            messages.append(parsed["msg"])
    return messages


@needs_corpus
def test_grammar_and_columns_agree_on_every_corpus_line():
    messages = envelope_agree(corpus_lines())
    kinds = assert_agree(messages)
    assert sum(kinds.values()) == len(messages) > 400


@needs_corpus
def test_every_tsv_message_body_parses_the_same_both_ways():
    bodies = [m for _, _, m in tsv_messages()]
    assert len(bodies) == 191
    kinds = assert_agree(bodies)
    assert kinds == {"note": 135, "delivery": 22, "action": 18, "disconnect": 5, "message_id": 4, "expired": 2,
                     "pickup": 1, "queued": 1, "connect": 1, "received": 1, "sasl_failed": 1}


@needs_corpus
def test_tsv_message_shapes_by_grok_pattern():
    """Every delivery, reject and qmgr body of the grok test set gets its shape (none falls to note)."""
    for source, pattern, body in tsv_messages():
        kind, fields = grammar.parse_message(body)
        if ", relay=" in body and "status=" in body:
            assert kind == "delivery", (source, body)
        if "reject: " in body and " from " in body:
            assert kind == "action" and fields["action"].endswith(("reject", "reject_warning")), (source, body)
        if pattern == "^%{POSTFIX_QMGR}$" and "nrcpt=" in body:
            assert kind == "queued", (source, body)
        if "SASL" in body and "authentication failed:" in body and body.startswith("warning:"):
            assert kind == "sasl_failed", (source, body)


def test_grammar_and_columns_agree_on_every_sample_line():
    messages = envelope_agree(sample_lines())
    assert assert_agree(messages)["delivery"] == 12


# --------------------------------------------------------------------------------------------------
# Relay denials: every variant.


def test_relay_denied_verbatim():
    line = ("Jul 12 07:47:48 saturn postfix/smtpd[8738]: NOQUEUE: reject: RCPT from 1-2-3-4-example.com[1.2.3.4]: "
            "554 5.7.1 <smtp@example.com>: Relay access denied; from=<john@example.com> to=<smtp@example.org> "
            "proto=SMTP helo=<198.51.100.17>")
    assert one(line) == (1, "rcpt", "RCPT", None, "1-2-3-4-example.com", "1.2.3.4", "198.51.100.17",
                         "john@example.com", "smtp@example.org", 554,
                         "5.7.1 <smtp@example.com>: Relay access denied", "reject", "in")
    assert one(line, "server", "format", "text", "session") == (
        "saturn", "postfix", line.split(": ", 1)[1], "mail.log#saturn#8738#L1")


def test_relay_denied_soft_454_rfc3339_stamp(tmp_path):
    line = ("2024-08-25T10:04:35.051238+00:00 machine postfix/smtpd[3814725]: NOQUEUE: reject: RCPT from "
            "unknown[192.168.1.1]: 454 4.7.1 <spammer@domain.tld>: Relay access denied; from=<spammer@domain.tld> "
            "to=<spammer@domain.tld> proto=ESMTP helo=<WIN-9QL4SDRB93L>")
    res = read_log(tmp_path, line, name="mail.log")
    assert res.inputs[0].format == "postfix"
    ts = rows(res, "ts")[0][0]
    assert ts == utc("2024-08-25 10:04:35") + timedelta(microseconds=51238)
    assert rows(res, "event", "reply", "recipient", "helo", "server") == [
        ("rcpt", 454, "spammer@domain.tld", "WIN-9QL4SDRB93L", "machine")]


def test_relay_denied_older_wording():
    line = ("Sep 3 01:04:31 placebo postfix/smtpd[52016]: NOQUEUE: reject: RCPT from unknown[118.249.97.104]: "
            "554 5.7.1 <csj-lx@sohu.com>: Recipient address rejected: Relay access denied; "
            "from=<ydhgxp@iresearch.org.uk> to=<csj-lx@sohu.com> proto=ESMTP helo=<HPX>")
    assert one(line, "event", "reply", "reply_text", "recipient", "sender", "helo") == (
        "rcpt", 554, "5.7.1 <csj-lx@sohu.com>: Recipient address rejected: Relay access denied",
        "csj-lx@sohu.com", "ydhgxp@iresearch.org.uk", "HPX")


def test_vrfy_relay_denied_ipv6_without_from():
    body = ("NOQUEUE: reject: VRFY from unknown[2001:968:9999:20:88b:9b7d:2a54:2bd2]: 454 4.7.1 <aap@henk.com>: "
            "Relay access denied; to=<aap@henk.com> proto=SMTP helo=<me>")
    assert one(ENV + body, "event", "verb", "client_ip", "sender", "recipient", "reply", "helo") == (
        "command", "VRFY", "2001:968:9999:20:88b:9b7d:2a54:2bd2", None, "aap@henk.com", 454, "me")


def test_reject_with_queue_id_instead_of_noqueue():
    line = ("Aug 13 15:45:46 server postfix/smtpd[13844]: 00ADB3C0899: reject: RCPT from example.com[192.0.2.1]: "
            "550 5.1.1 <sales@server.com>: Recipient address rejected: User unknown in local recipient table; "
            "from=<xxxxxx@example.com> to=<sales@server.com> proto=ESMTP helo=<mail.example.com>")
    assert one(line, "event", "message", "reply", "recipient") == ("rcpt", "00ADB3C0899", 550, "sales@server.com")


@pytest.mark.parametrize(("line", "expected"), [
    ("Jan 31 13:55:24 xxx postfix/smtpd[3462]: NOQUEUE: reject: EHLO from s271272.static.corbina.ru"
     "[78.107.251.238]: 504 5.5.2 <User>: Helo command rejected: need fully-qualified hostname; proto=SMTP "
     "helo=<User>", ("helo", "EHLO", None, 504, "User", None, "reject")),
    ("Sep  4 01:14:35 vector postfix/smtpd[15337]: NOQUEUE: reject: MAIL from 89.pool85-60-78.dynamic.orange.es"
     "[85.60.78.89]: 452 4.3.1 Insufficient system storage; proto=ESMTP helo=<89.pool85-60-78.dynamic.orange.es>",
     ("mail", "MAIL", None, 452, "89.pool85-60-78.dynamic.orange.es", None, "reject")),
    ("Mar 7 02:09:33 server postfix/smtpd[27246]: 1D8CC1CA0A7F: milter-reject: DATA from 66-220-155-151.mail-"
     "mail.facebook.com[192.0.2.151]: 550 5.7.1 Command rejected; from=<security@mail.example.com> "
     "to=<hostmaster@example.com> proto=ESMTP helo=<192-0-2-151.mail-mail.example.com>",
     ("data", "DATA", "1D8CC1CA0A7F", 550, "192-0-2-151.mail-mail.example.com", "hostmaster@example.com",
      "milter-reject")),
    ("Mar 11 23:27:54 server postfix-smo/submission/smtpd[22427]: 44JCRG5tYPzCqt2: reject: BDAT from "
     "signing-milter.example.com[192.0.2.109]: 550 5.5.3 <DATA>: Data command rejected: Multi-recipient bounce; "
     "from=<> to=<some@example.com> proto=ESMTP helo=<domain.tld>",
     ("data", "BDAT", "44JCRG5tYPzCqt2", 550, "domain.tld", "some@example.com", "reject")),
    (ENV + "NOQUEUE: reject: ETRN from relay.example.com[192.0.2.8]: 554 5.7.1 <example.com>: Etrn command "
     "rejected: Access denied; proto=ESMTP helo=<relay.example.com>",
     ("command", "ETRN", None, 554, "relay.example.com", None, "reject")),
    (ENV + "proxy-reject: END-OF-MESSAGE: 554 5.7.0 Reject, contact postmaster@example.com, id=31619-02 - spam; "
     "from=<> to=<user2@example2.com> proto=SMTP helo=<17.33.12.53>",
     ("data", "END-OF-MESSAGE", None, 554, "17.33.12.53", "user2@example2.com", "proxy-reject")),
    (ENV + "NOQUEUE: milter-reject: RCPT from mailrelay.example.com[8.8.8.8]: 451 4.7.1 Greylisting in action, "
     "please come back later; from=<support@example.com> to=<example@example.org> proto=ESMTP "
     "helo=<mailrelay.example.com>",
     ("rcpt", "RCPT", None, 451, "mailrelay.example.com", "example@example.org", "milter-reject")),
])
def test_reject_commands(line, expected):
    event, verb, message, reply, helo, recipient, status = expected
    got = one(line, "event", "verb", "message", "reply", "helo", "recipient", "status")
    assert got == (event, verb, message, reply, helo, recipient, status)


def test_postscreen_reject_comma_separated_with_port():
    line = ("May  5 15:51:11 xxx postfix/postscreen[1148]: NOQUEUE: reject: RCPT from [216.245.194.173]:60591: "
            "550 5.7.1 Service unavailable; client [216.245.194.173] blocked using rbl.example.com; "
            "from=<spammer@example.com>, to=<goodguy@example.com>, proto=ESMTP, helo=<badguy.example.com>")
    assert one(line, "event", "client_host", "client_ip", "sender", "recipient", "helo", "reply", "reply_text",
               "session") == (
        "rcpt", None, "216.245.194.173", "spammer@example.com", "goodguy@example.com", "badguy.example.com", 550,
        "5.7.1 Service unavailable; client [216.245.194.173] blocked using rbl.example.com", None)


def test_reject_without_tail_and_with_empty_null_sender():
    assert one("May 11 04:02:37 host1 postfix/smtpd[26897]: NOQUEUE: reject: RCPT from unknown[192.168.1.1]: "
               "554 5.7.1 Service unavailable", "event", "reply", "reply_text", "recipient", "sender") == (
        "rcpt", 554, "5.7.1 Service unavailable", None, None)
    assert one("Feb 21 09:21:54 xxx postfix/smtpd[14398]: NOQUEUE: reject: RCPT from example.com[192.0.43.10]: "
               "450 4.7.1 : Helo command rejected: Host not found; from=<> to=<> proto=ESMTP helo=",
               "sender", "recipient", "helo", "reply") == ("", "", "", 450)


def test_reject_warning_and_discard_are_not_refusals():
    warn = one(ENV + "NOQUEUE: reject_warning: RCPT from example.com[93.184.216.34]: 553 5.7.1 <sender@example.com>: "
               "Sender address rejected: not owned by user ph123; from=<sender@example.com> "
               "to=<recipient@example.com> proto=ESMTP helo=<example.com>", "event", "reply", "status", "recipient")
    assert warn == ("rcpt", None, "reject_warning", "recipient@example.com")
    assert one(ENV + "NOQUEUE: discard: MAIL from ccm231.constantcontact.com[208.75.123.231]: <b@in.example.com>: "
               "Sender address SPAM; from=<b@in.example.com> proto=ESMTP helo=<ccm231.constantcontact.com>",
               "event", "reply", "status", "sender") == ("mail", None, "discard", "b@in.example.com")


def test_reject_recipient_falls_back_to_the_reply_address():
    line = ("Aug 10 10:55:38 f-vanier-bourgeois postfix/smtpd[2162]: NOQUEUE: reject: VRFY from "
            "72-53-132-234.cpe.distributel.net[72.53.132.234]: 550 5.1.1 <x@y.example>: Recipient address "
            "rejected: User unknown in local recipient tab")
    assert one(line, "event", "verb", "recipient", "reply") == ("command", "VRFY", "x@y.example", 550)


def test_quoted_recipient_with_angle_bracket_inside():
    line = (ENV + 'NOQUEUE: reject: RCPT from unknown[203.0.113.5]: 554 5.7.1 <"a>b@other.example"@acme-widgets.com>: '
            'Relay access denied; from=<x@example.net> to=<"a>b@other.example"@acme-widgets.com> proto=ESMTP helo=<h>')
    assert one(line, "recipient", "helo") == ('"a>b@other.example"@acme-widgets.com', "h")


# --------------------------------------------------------------------------------------------------
# Message arrival, queue manager, delivery.


def test_client_with_sasl_login_is_received_with_auth_user():
    line = ("Mar  9 10:05:51 server postfix/smtpd[22074]: 10C0D60C50: client=host16-181-238-85.hiway.at"
            "[85.238.181.16], sasl_method=LOGIN, sasl_username=info@brunoaita.it")
    assert one(line, "event", "message", "client_host", "client_ip", "auth_user", "direction") == (
        "received", "10C0D60C50", "host16-181-238-85.hiway.at", "85.238.181.16", "info@brunoaita.it", "in")


def test_orig_client_after_content_filter_is_the_client():
    line = ("Nov 16 11:03:15 server postfix/smtpd[30647]: 1FEB7E00C4: client=localhost.localdomain[127.0.0.1], "
            "orig_client=misas5.babino.pl[207.154.235.157]")
    assert one(line, "event", "message", "client_host", "client_ip") == (
        "received", "1FEB7E00C4", "misas5.babino.pl", "207.154.235.157")


def test_noqueue_client_is_a_note_and_proxy_accept_is_received():
    text = ("Nov 16 11:03:12 server postfix/smtpd[30624]: NOQUEUE: client=misas5.babino.pl[207.154.235.157]\n"
            "Nov 16 11:03:15 server postfix/smtpd[30624]: proxy-accept: END-OF-MESSAGE: 250 2.0.0 from "
            "MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as 1FEB7E00C4; from=<zwroty@babino.pl> "
            "to=<info@test2.com> proto=ESMTP helo=<misas5.babino.pl>\n")
    got = read(text).events.select("event", "message", "client_ip", "sender", "recipient", "reply", "helo").rows()
    assert got == [("note", None, "207.154.235.157", None, None, None, None),
                   ("received", "1FEB7E00C4", "207.154.235.157", "zwroty@babino.pl", "info@test2.com", 250,
                    "misas5.babino.pl")]


def test_qmgr_queued_and_expired():
    assert one("Nov 16 11:03:15 server postfix/qmgr[26163]: 1FEB7E00C4: from=<zwroty@babino.pl>, size=53549, "
               "nrcpt=1 (queue active)", "event", "message", "sender", "size", "direction") == (
        "queued", "1FEB7E00C4", "zwroty@babino.pl", 53549, None)
    assert one(ENV + "585BC3F: from=<>, status=expired, returned to sender", "event", "message", "sender",
               "status") == ("note", "585BC3F", "", "expired")


def test_pickup_is_a_local_submission():
    assert one(ENV.replace("smtpd", "pickup") + "D2FAE20586: uid=0 from=<fail2ban>", "event", "message", "sender",
               "direction") == ("received", "D2FAE20586", "fail2ban", "local")


DELIVERY_COLS = ("event", "message", "recipient", "orig_recipient", "relay_host", "transport", "status",
                 "direction", "reply", "reply_text")


@pytest.mark.parametrize(("service", "body", "expected"), [
    ("smtp", "1FEB7E00C4: to=<info@test2.com>, relay=mail.domain.test[94.23.191.34]:25, delay=11, "
     "delays=0.05/0.01/6.1/5.2, dsn=2.0.0, status=sent (250 2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: "
     "queued as 5DDDA1F30002)",
     ("deliver", "1FEB7E00C4", "info@test2.com", None, "mail.domain.test[94.23.191.34]:25", "smtp", "sent", "out",
      250, "2.0.0 from MTA(smtp:[127.0.0.1]:10025): 250 2.0.0 Ok: queued as 5DDDA1F30002")),
    ("smtp", "0D9633D: to=<jos@example.com>, orig_to=<bestuur@example.com>, relay=mail1.example.net[10.74.103.11]:25,"
     " delay=11, delays=5.4/0.06/5.1/0.03, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as F12DF84004)",
     ("deliver", "0D9633D", "jos@example.com", "bestuur@example.com", "mail1.example.net[10.74.103.11]:25", "smtp",
      "sent", "out", 250, "2.0.0 Ok: queued as F12DF84004")),
    ("smtp", "4B1C22A0F1: to=<bob@acme-widgets.com>, relay=127.0.0.1[127.0.0.1]:10024, delay=1.3, "
     "delays=0.1/0/0.02/1.2, dsn=2.0.0, status=sent (250 2.0.0 Ok, id=01877-01)",
     ("deliver", "4B1C22A0F1", "bob@acme-widgets.com", None, "127.0.0.1[127.0.0.1]:10024", "smtp", "sent", "local",
      250, "2.0.0 Ok, id=01877-01")),
    ("smtp", "A0E85200BD: to=<whatever-user@lists.example.org>, relay=open.example.nl[10.49.140.10]:25, delay=2.3, "
     "delays=0.25/0.05/2/0.04, dsn=4.2.0, status=deferred (host open.example.nl[10.49.140.10] said: 450 4.2.0 "
     "<whatever-user@lists.example.org>: Recipient address rejected: Greylisted (in reply to RCPT TO command))",
     ("deliver", "A0E85200BD", "whatever-user@lists.example.org", None, "open.example.nl[10.49.140.10]:25", "smtp",
      "deferred", "out", 450, "4.2.0 <whatever-user@lists.example.org>: Recipient address rejected: Greylisted "
      "(in reply to RCPT TO command)")),
    ("smtp", "4E74613FE76: to=<redacted@gmail.com>, relay=gmail-smtp-in.l.google.com[2607:f8b0:400e:c04::1b]:25, "
     "delay=1.9, delays=0.05/0/1.1/0.71, dsn=5.7.1, status=bounced (host gmail-smtp-in.l.google.com"
     "[2607:f8b0:400e:c04::1b] said: 550-5.7.1 spam (in reply to end of DATA command))",
     ("deliver", "4E74613FE76", "redacted@gmail.com", None, "gmail-smtp-in.l.google.com[2607:f8b0:400e:c04::1b]:25",
      "smtp", "bounced", "out", 550, "5.7.1 spam (in reply to end of DATA command)")),
    ("smtp", "2847EE008E: to=<info@test2.com>, relay=mail.domain.test[94.23.191.34]:25, delay=6.3, "
     "delays=0.04/0.01/6/0.19, dsn=2.1.5, status=deliverable (250 2.1.5 Ok)",
     ("deliver", "2847EE008E", "info@test2.com", None, "mail.domain.test[94.23.191.34]:25", "smtp", "deliverable",
      "out", 250, "2.1.5 Ok")),
    ("smtp", "7EE668039: to=<user@example.com>, relay=mail.example.com[1.2.3.4]:25, delay=3.6, "
     "delays=0.08/0.02/0.85/0.14, tls=dane/requiretls, dsn=2.1.5, status=sent (250 2.0.0 Ok)",
     ("deliver", "7EE668039", "user@example.com", None, "mail.example.com[1.2.3.4]:25", "smtp", "sent", "out",
      250, "2.0.0 Ok")),
    ("lmtp", "A0320E00C3: to=<user@test.com>, relay=mail.koalabs.org[private/dovecot-lmtp], delay=0.32, "
     "delays=0.11/0.01/0.01/0.2, dsn=2.0.0, status=sent (250 2.0.0 <user@test.com> z5FOLrRhDVpddgAABvoInA Saved)",
     ("deliver", "A0320E00C3", "user@test.com", None, "mail.koalabs.org[private/dovecot-lmtp]", "lmtp", "sent",
      "local", 250, "2.0.0 <user@test.com> z5FOLrRhDVpddgAABvoInA Saved")),
    ("local", "2A22C263F6: to=user@hostname.example.com, orig_to=root@localhost, relay=local, delay=0.07, "
     "delays=0.04/0/0/0.03, dsn=2.0.0, status=sent (delivered to command: procmail -a \"$EXTENSION\")",
     ("deliver", "2A22C263F6", "user@hostname.example.com", "root@localhost", "local", "local", "sent", "local",
      None, None)),
    ("pipe", "153053D: to=<tom@example.com>, orig_to=<admin@example.com>, relay=dovecot, delay=3.4, "
     "delays=3.3/0.03/0/0.12, dsn=2.0.0, status=sent (delivered via dovecot service)",
     ("deliver", "153053D", "tom@example.com", "admin@example.com", "dovecot", "pipe", "sent", "local", None, None)),
    ("virtual", "B657F2DB195D: to=<postmaster@example.com>, relay=virtual, delay=0.52, delays=0.51/0.01/0/0, "
     "dsn=2.0.0, status=sent (delivered to maildir)",
     ("deliver", "B657F2DB195D", "postmaster@example.com", None, "virtual", "virtual", "sent", "local", None, None)),
    ("error", "3E29030F8637E: to=<user@yahoo.com>, relay=none, delay=0.01, delays=0.01/0/0/0, dsn=5.1.1, "
     "status=undeliverable-but-not-cached (User unknown in virtual alias table)",
     ("deliver", "3E29030F8637E", "user@yahoo.com", None, "none", "error", "undeliverable-but-not-cached", "local",
      None, None)),
    ("discard", "25F2E5E061: to=<george.desantis@test.example.com>, relay=none, delay=0.05, delays=0.05/0/0/0, "
     "dsn=2.0.0, status=sent (test.example.com)",
     ("deliver", "25F2E5E061", "george.desantis@test.example.com", None, "none", "discard", "sent", "local", None,
      None)),
    ("local", "892A0205B6: to=ghdsgfhdslfh@localhost, relay=local, delay=0.05, delays=0.02/0/0/0.02, dsn=5.1.1, "
     "status=bounced (unknown user: \"ghdsgfhdslfh\")",
     ("deliver", "892A0205B6", "ghdsgfhdslfh@localhost", None, "local", "local", "bounced", "local", None, None)),
])
def test_delivery_relay_forms_and_status(service, body, expected):
    assert one(f"Jan 12 10:00:00 mx postfix/{service}[77]: {body}", *DELIVERY_COLS) == expected


def test_old_delivery_without_delays_or_dsn():
    line = "Oct  3 04:02:11 gw postfix/smtp[1200]: 3F2A12B4C: to=<a@example.net>, relay=mx.example.net[192.0.2.9], " \
           "delay=2, status=sent (250 Ok)"
    assert one(line, "event", "recipient", "status", "direction", "reply") == ("deliver", "a@example.net", "sent",
                                                                               "out", 250)


# --------------------------------------------------------------------------------------------------
# Connections, sessions, auth, notes.


SESSION = """Nov 16 11:06:45 server postfix/smtpd[31172]: connect from main.nope.org.es[185.5.53.87]
Nov 16 11:06:46 server postfix/smtpd[31172]: NOQUEUE: reject: RCPT from main.nope.org.es[185.5.53.87]: 554 5.7.1 <a@b.example>: Relay access denied; from=<s@nope.example> to=<a@b.example> proto=ESMTP helo=<nope>
Nov 16 11:06:46 server dovecot: imap-login: Login: user=<x>, method=PLAIN, rip=127.0.0.1
Nov 16 11:06:47 server postfix/smtpd[31172]: lost connection after RCPT from main.nope.org.es[185.5.53.87]
Nov 16 11:06:54 server postfix/smtpd[31172]: disconnect from main.nope.org.es[185.5.53.87] ehlo=2 starttls=1 mail=2 rcpt=2 data=2 rset=1 quit=1 commands=11
Nov 16 11:07:00 server postfix/submission/smtpd[31172]: connect from unknown[192.0.2.44]
Nov 16 11:07:02 server postfix/submission/smtpd[31172]: 0A1B2C3D4E: client=unknown[192.0.2.44], sasl_method=PLAIN, sasl_username=joe
Nov 16 11:07:03 server postfix/submission/smtpd[31172]: NOQUEUE: reject: RCPT from unknown[192.0.2.44]: 550 5.1.1 <x@y.example>: Recipient address rejected: User unknown; from=<joe@z.example> to=<x@y.example> proto=ESMTP helo=<pc>
Nov 16 11:07:04 server postfix/submission/smtpd[31172]: disconnect from unknown[192.0.2.44]
Nov 16 11:07:05 server postfix/smtpd[31172]: warning: stray line after disconnect
"""


def test_sessions_from_connect_to_disconnect():
    res = read(SESSION, source="s.log")
    assert (res.lines, res.events.height, res.not_mail, res.skipped, res.blank) == (10, 9, 1, 0, 0)
    got = res.events.select("line", "event", "session", "client_ip", "helo", "auth_user", "direction").rows()
    first, second = "s.log#server#31172#L1", "s.log#server#31172#L6"
    assert got == [
        (1, "connect", first, "185.5.53.87", None, None, "in"),
        (2, "rcpt", first, "185.5.53.87", "nope", None, "in"),
        (4, "note", first, "185.5.53.87", "nope", None, None),
        (5, "quit", first, "185.5.53.87", "nope", None, "in"),
        (6, "connect", second, "192.0.2.44", None, None, "in"),
        (7, "received", second, "192.0.2.44", None, "joe", "in"),
        (8, "rcpt", second, "192.0.2.44", "pc", "joe", "in"),
        (9, "quit", second, "192.0.2.44", "pc", None, "in"),
        (10, "note", None, None, None, None, None),
    ]


def test_session_cut_off_by_the_start_of_the_file():
    text = ("Nov 16 11:00:20 server postfix/smtpd[28914]: proxy-accept: END-OF-MESSAGE: 250 2.0.0 Ok: queued as "
            "A0320E00C3; from=<v@cmail19.example> to=<user@test.com> proto=ESMTP helo=<mx139.example>\n"
            "Nov 16 11:00:20 server postfix/smtpd[28914]: disconnect from mx139.example[103.28.42.139]\n")
    got = read(text, source="c.log").events.select("event", "session", "message").rows()
    assert got == [("received", "c.log#server#28914#L1", "A0320E00C3"), ("quit", "c.log#server#28914#L1", None)]


@pytest.mark.parametrize(("line", "user", "ip"), [
    ("May  6 09:25:41 mail postfix/smtps/smtpd[16997]: warning: unknown[203.0.113.10]: SASL LOGIN authentication "
     "failed: (reason unavailable), sasl_username=postmaster@example.org", "postmaster@example.org", "203.0.113.10"),
    ("May 11 04:02:36 host1 postfix/smtpd[26897]: warning: unknown[192.168.1.1]: SASL LOGIN authentication failed: "
     "authentication failure", None, "192.168.1.1"),
    ("Aug 4 16:47:52 mail3 postfix/smtpd[31152]: warning: unknown[192.0.2.237]:55729: SASL LOGIN authentication "
     "failed: authentication failure", None, "192.0.2.237"),
    ("Aug 3 15:30:49 ksusha postfix/smtpd[17041]: warning: mail.foldsandwalker.com[98.191.84.74]: SASL Plain "
     "authentication failed:", None, "98.191.84.74"),
])
def test_sasl_failures(line, user, ip):
    assert one(line, "event", "verb", "status", "auth_user", "client_ip") == ("auth", "AUTH", "failed", user, ip)


def test_connect_disconnect_forms():
    assert one(ENV + "connect from misas5.babino.pl[207.154.235.157]", "event", "client_host", "client_ip") == (
        "connect", "misas5.babino.pl", "207.154.235.157")
    assert one(ENV + "disconnect from unknown[192.0.2.1] helo=1 auth=0/1 quit=1 commands=2/3", "event",
               "client_ip") == ("quit", "192.0.2.1")
    assert one(ENV + "disconnect from 061238241086.static.ctinets.com[61.238.241.86]", "event", "client_host") == (
        "quit", "061238241086.static.ctinets.com")


@pytest.mark.parametrize(("line", "expected"), [
    ("Nov 16 11:03:15 server postfix/cleanup[30637]: 1FEB7E00C4: message-id=<de35d4cf@link.crazygecko.pl>",
     ("note", "1FEB7E00C4", None, "1FEB7E00C4: message-id=<de35d4cf@link.crazygecko.pl>")),
    ("Nov 16 11:03:26 server postfix/qmgr[26163]: 1FEB7E00C4: removed",
     ("note", "1FEB7E00C4", None, "1FEB7E00C4: removed")),
    ("Dec 23 19:39:13 xxx postfix/postscreen[21057]: PREGREET 14 after 0.08 from [192.0.2.2]:59415: EHLO ylmf-pc\\r\\n",
     ("note", None, "192.0.2.2", "PREGREET 14 after 0.08 from [192.0.2.2]:59415: EHLO ylmf-pc\\r\\n")),
    ("Sep 17 18:19:20 mxhost postfix/smtpd[12345]: NOQUEUE: lost connection after CONNECT from unknown[192.0.2.25]",
     ("note", None, "192.0.2.25", "NOQUEUE: lost connection after CONNECT from unknown[192.0.2.25]")),
    ("Jul 11 20:37:58 rt postfix/smtpd[9156]: [ID 197553 mail.info] warning: 9BECF3F19D: sender_canonical_maps "
     "lookup problem", ("note", None, None, "warning: 9BECF3F19D: sender_canonical_maps lookup problem")),
])
def test_notes(line, expected):
    assert one(line, "event", "message", "client_ip", "text") == expected


def test_literal_backslash_escapes_stay_in_text():
    text = one(ENV.replace("smtpd", "postscreen") + "PREGREET 6 after 1.2 from [216.81.72.72]:43421: RSET\\r\\n",
               "text")[0]
    assert text.endswith("RSET\\r\\n") and "\r" not in text


def test_solaris_message_id_tag():
    line = "Jul 11 20:37:58 rt postfix/smtpd[9156]: [ID 197553 mail.info] connect from x.example[192.0.2.3]"
    assert one(line, "event", "client_ip") == ("connect", "192.0.2.3")


def test_headerless_lines_keep_their_events_without_time():
    text = ("postfix/smtpd[10419]: NOQUEUE: reject: RCPT from unknown[200.71.50.65]: 554 Service unavailable; "
            "from=<k@superig.example> to=<c@lac.example> proto=SMTP helo=<h>\n"
            "postfix/postfix-script: fatal: the Postfix mail system is not running\n")
    res = read(text, source="o.log")
    assert res.events.select("ts", "event", "reply", "recipient", "server", "text").rows() == [
        (None, "rcpt", 554, "c@lac.example", "ctxhost", res.events["text"][0]),
        (None, "note", None, None, "ctxhost", "fatal: the Postfix mail system is not running"),
    ]
    assert res.not_mail == 0
    assert res.warnings == ["o.log: 2 Postfix lines have no timestamp (first: line 1); their events have no time"]


def test_last_message_repeated_after_postfix_is_a_note_else_not_mail():
    text = ("Jan  1 09:10:09 mx1 postfix/smtpd[3]: warning: unknown[198.51.100.140]: SASL LOGIN authentication "
            "failed: UGFzc3dvcmQ6\n"
            "Jan  1 09:10:09 mx1 last message repeated 2 times\n"
            "Jan  1 09:10:10 mx1 dovecot: auth: failed\n"
            "Jan  1 09:10:11 mx1 last message repeated 3 times\n")
    res = read(text)
    assert res.events.select("line", "event", "text", "server", "ts").rows() == [
        (1, "auth", res.events["text"][0], "mx1", res.events["ts"][0]),
        (2, "note", "last message repeated 2 times", "mx1", res.events["ts"][0]),
    ]
    assert (res.not_mail, res.skipped) == (2, 0)


# --------------------------------------------------------------------------------------------------
# Time, mixed files, hostile input, sniffing.


def test_local_time_zone_and_year_rollover_inside_a_file(tmp_path):
    text = ("Dec 31 23:59:58 mx1 postfix/smtpd[1]: connect from a.example[192.0.2.1]\n"
            "Jan  1 00:00:03 mx1 postfix/smtpd[1]: disconnect from a.example[192.0.2.1]\n")
    res = read_log(tmp_path, text, name="mail.log", site=SiteProfile(timezone="America/Chicago"))
    (t1,), (t2,) = rows(res, "ts")
    assert t2 - t1 == timedelta(seconds=5)
    assert (t1.month, t1.day, t1.hour, t1.minute, t2.year - t1.year) == (1, 1, 5, 59, 0)


def test_mixed_stamp_styles_in_one_file():
    text = ("May 11 04:02:36 host1 postfix/smtpd[26897]: warning: unknown[192.168.1.1]: SASL LOGIN authentication "
            "failed: authentication failure\n"
            "2024-08-26T01:33:38.572449+00:00 machine postfix/smtpd[60203]: connect from unknown[192.168.1.1]\n")
    res = read(text)
    assert res.events["ts"][1] == utc("2024-08-26 01:33:38") + timedelta(microseconds=572449)
    assert res.events["ts"][0] == utc("2024-05-11 04:02:36")
    assert res.events["server"].to_list() == ["host1", "machine"]


def test_hostile_input_is_counted_and_reported():
    text = ("Nov 16 11:03\n"
            "\x00\xff garbage \x1b[31m\n"
            "\n"
            "Nov 16 11:03:12 server postfix/smtpd[30624]: NOQUEUE: reject: RCPT from unkno\n"
            "Nov 16 11:03:13 server amavis[14540]: (14540-09) Passed CLEAN {RelayedInbound}\n"
            "Nov 16 11:03:14 server CRON[1]: (root) CMD (true)\n"
            "Nov 16 11:03:15 server opendkim[9]: A0320E00C3: no signature data\n")
    res = read(text, source="h.log")
    assert (res.lines, res.events.height, res.skipped, res.blank, res.not_mail) == (7, 1, 2, 1, 3)
    assert res.events.select("line", "event", "text").row(0) == (
        4, "note", "NOQUEUE: reject: RCPT from unkno")
    assert [w for w in res.warnings if "syslog" in w] == ["h.log:1: not a syslog line: Nov 16 11:03",
                            "h.log:2: not a syslog line: \\x00\\xff garbage \\x1b[31m"]


def test_every_line_is_accounted_for():
    res = read(SESSION + "\n\nnot a log line\n")
    assert res.events.height + res.skipped + res.blank + res.not_mail + res.continuation == res.lines == 13


def test_sniff():
    reader = PostfixReader()
    assert reader.sniff(SESSION.splitlines()) == pytest.approx(0.55 + 0.4 * 9 / 10)
    assert reader.sniff(["Nov 16 11:04:01 server dovecot: imap-login: Login: user=<a>"]) == 0.0
    assert reader.sniff(["Jul 11 20:37:58 rt sendmail[9156]: n6BKbwgB009156: from=nobody, size=2651"]) == 0.0
    assert reader.sniff(["6/14/00 11:47:11 PM : A connection was accepted from x."]) == 0.0
    assert sniff_format(SESSION.splitlines()) == "postfix"


def test_server_falls_back_to_context():
    assert one("postfix/smtpd[1]: connect from a[192.0.2.1]", "server") == ("ctxhost",)


# --------------------------------------------------------------------------------------------------
# The real corpus.

#: file -> (events, skipped, not_mail, blank)
CORPUS_COUNTS = {
    "crowdsec_postfix-helo.log": (2, 0, 0, 0),
    "crowdsec_postfix-honeypot-users.log": (9, 0, 0, 0),
    "crowdsec_postfix-logs.log": (7, 0, 0, 0),
    "crowdsec_postfix-non-smtp.log": (1, 0, 0, 0),
    "crowdsec_postfix-relay.log": (2, 0, 0, 0),
    "crowdsec_postfix-sasl-bf.log": (3, 0, 0, 0),
    "crowdsec_postfix-spam.log": (6, 0, 0, 1),
    "fail2ban_postfix.log": (63, 17, 71, 52),
    "modoboa_mail.log": (331, 0, 188, 0),
    "ossec-docs_postfix_samples.log": (19, 0, 0, 0),
}


def read_corpus(name: str):
    path = PF_CORPUS / name
    return PostfixReader().read(split_lines(path.read_text(encoding="utf-8")),
                                ReadContext(str(path), SiteProfile(timezone="UTC")))


@needs_corpus
@pytest.mark.parametrize("name", sorted(CORPUS_COUNTS))
def test_corpus_file_counts_and_sniff(name):
    res = read_corpus(name)
    assert (res.events.height, res.skipped, res.not_mail, res.blank) == CORPUS_COUNTS[name]
    assert res.events.height + res.skipped + res.not_mail + res.blank == res.lines
    head = split_lines((PF_CORPUS / name).read_text(encoding="utf-8")).head(50).to_list()
    assert sniff_format(head) == "postfix"


@needs_corpus
def test_fixture_files_that_are_not_logs_are_not_claimed():
    for name in ("modoboa_mail.log.template", "postfix-grok-patterns_messages.tsv"):
        head = (PF_CORPUS / name).read_text(encoding="utf-8").splitlines()[:50]
        assert PostfixReader().sniff(head) == 0.0, name


@needs_corpus
def test_every_corpus_relay_denial_is_a_refused_rcpt():
    seen = 0
    for name in CORPUS_COUNTS:
        res = read_corpus(name)
        lines = split_lines((PF_CORPUS / name).read_text(encoding="utf-8"))
        denials = [i + 1 for i, text in enumerate(lines.to_list())
                   if "Relay access denied" in text and "RCPT from" in text]
        for line in denials:
            row = res.events.filter(pl.col("line") == line).row(0, named=True)
            text = lines[line - 1]
            rejected = text.split(" to=<", 1)[1].split(">", 1)[0]
            assert (row["event"], row["recipient"]) == ("rcpt", rejected), text
            assert row["reply"] >= 400
            seen += 1
    assert seen == 5


@needs_corpus
def test_modoboa_delivery_chain_and_orig_client():
    res = read_corpus("modoboa_mail.log")
    chain = res.events.filter(pl.col("message") == "1FEB7E00C4").select(
        "line", "event", "client_ip", "sender", "recipient", "relay_host", "status", "direction").rows()
    assert chain == [
        (21, "received", "207.154.235.157", None, None, None, None, "in"),
        (22, "note", None, None, None, None, None, None),
        (23, "queued", None, "zwroty@babino.pl", None, None, None, None),
        (26, "received", "207.154.235.157", "zwroty@babino.pl", "info@test2.com", None, "proxy-accept", "in"),
        (32, "deliver", None, None, "info@test2.com", "mail.domain.test[94.23.191.34]:25", "sent", "out"),
        (33, "note", None, None, None, None, None, None),
    ]


# --------------------------------------------------------------------------------------------------
# The sample tree and its ground truth.


@pytest.fixture(scope="module")
def sample_events():
    from logforensics.ingest import ingest
    res = ingest([SAMPLE_DIR], SiteProfile(timezone="America/Chicago", local_domains=("acme-widgets.com",)))
    return res


def test_sample_files_read_cleanly(sample_events):
    reports = {Path(r.path).name: r for r in sample_events.inputs}
    assert {n: (r.format, r.lines, r.events, r.skipped_lines) for n, r in reports.items()} == {
        "mail.log-20050103": ("postfix", 37, 34, 0), "mail.log-20050101": ("postfix", 56, 50, 0)}


def test_sample_ground_truth(sample_events):
    ev = sample_events.events.with_columns(pl.col("source").str.split("/").list.last().alias("file"))

    def at(file, line, *cols):
        return ev.filter((pl.col("file") == file) & (pl.col("line") == line)).select(cols).row(0)

    refused = {("mail.log-20050101", 32): "relaytest@example.net",
               ("mail.log-20050101", 33): "relaytest%example.net@acme-widgets.com",
               ("mail.log-20050101", 34): "relaytest@example.net@acme-widgets.com",
               ("mail.log-20050101", 35): "example.net!relaytest@acme-widgets.com",
               ("mail.log-20050103", 3): "buyer4@example.com", ("mail.log-20050103", 23): "sales@example.org",
               ("mail.log-20050103", 24): "nosuchuser@acme-widgets.com",
               ("mail.log-20050103", 28): "victim@example.net@acme-widgets.com"}
    for (file, line), rcpt in refused.items():
        event, recipient, reply, direction = at(file, line, "event", "recipient", "reply", "direction")
        assert (event, recipient, direction) == ("rcpt", rcpt, "in") and reply >= 400
    relayed = {("mail.log-20050101", 44): ("E1A0B2A102", "buyer1@example.com"),
               ("mail.log-20050101", 45): ("E1A0B2A102", "buyer2@example.org"),
               ("mail.log-20050101", 54): ("2A7702A110", "buyer3@example.net"),
               ("mail.log-20050101", 24): ("93A512A0F7", "orders@partner.example"),
               ("mail.log-20050103", 17): ("5F3E12A201", "pharma1@example.com"),
               ("mail.log-20050103", 18): ("5F3E12A201", "pharma2@example.org"),
               ("mail.log-20050103", 20): ("5F3E12A201", "pharma3@example.net")}
    for (file, line), (qid, rcpt) in relayed.items():
        assert at(file, line, "event", "message", "recipient", "direction", "status", "transport") == (
            "deliver", qid, rcpt, "out", "sent", "smtp")
    assert at("mail.log-20050103", 19, "status", "reply") == ("deferred", 450)
    accepted = {("mail.log-20050101", 16): "bob@acme-widgets.com", ("mail.log-20050101", 29): "postmaster@acme-widgets.com",
                ("mail.log-20050103", 35): "carol@acme-widgets.com"}
    for (file, line), rcpt in accepted.items():
        assert at(file, line, "event", "recipient", "direction", "status") == ("deliver", rcpt, "local", "sent")
    assert at("mail.log-20050101", 13, "direction", "relay_host") == ("local", "127.0.0.1[127.0.0.1]:10024")
    # Who sent them: the open relay was unauthenticated, the spam run authenticated as jsmith.
    assert at("mail.log-20050101", 40, "event", "client_ip", "auth_user") == ("received", "192.0.2.77", None)
    assert at("mail.log-20050103", 13, "event", "client_ip", "auth_user") == ("received", "198.51.100.140", "jsmith")
    assert at("mail.log-20050101", 9, "client_host", "client_ip") == ("mail.partner.example", "198.51.100.20")
    assert [at("mail.log-20050103", n, "event", "status") for n in (6, 7, 8, 9)] == [
        ("auth", "failed")] * 3 + [("note", None)]
    # Local time America/Chicago (CST, UTC-6), across the year roll-over.
    t44 = at("mail.log-20050101", 44, "ts")[0]
    t54 = at("mail.log-20050101", 54, "ts")[0]
    assert (t44.month, t44.day, t44.hour, t44.minute, t44.second) == (1, 1, 4, 41, 14)
    assert t54 - t44 == timedelta(hours=1, minutes=23, seconds=34)
    assert at("mail.log-20050103", 1, "ts")[0] > at("mail.log-20050101", 56, "ts")[0]


def test_a_reject_line_cut_before_its_recipient_is_warned_about(tmp_path):
    text = ("Mar  1 10:00:00 mx postfix/smtpd[100]: connect from unknown[203.0.113.5]\n"
            "Mar  1 10:00:01 mx postfix/smtpd[100]: NOQUEUE: reject: RCPT from unknown[203.0.113.5]: 554 5.7.1 "
            "<trunc@remote.exa\n")
    report = read_log(tmp_path, text, name="mail.log").inputs[0]
    assert any("1 RCPT line(s) name no readable recipient" in w and "line 2" in w for w in report.warnings)
