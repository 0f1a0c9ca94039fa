"""Sendmail 8.x via syslog: every line shape of the research note, sessions, AUTH, time, corpus, samples."""

from __future__ import annotations

import os
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from grammars import sendmail as grammar
from logforensics.ingest import ingest, split_lines
from logforensics.readers import READERS, SNIFF_LINES, sniff_format
from logforensics.readers.base import ReadContext
from logforensics.readers.sendmail import SendmailReader, message_columns
from logforensics.readers.syslog import YearHint, split_syslog
from logforensics.site import SiteProfile
from tests.conftest import CORPUS, SAMPLES, rows, utc

SENDMAIL_CORPUS = CORPUS / "sendmail"
needs_corpus = pytest.mark.skipif(not SENDMAIL_CORPUS.is_dir(),
                                  reason=f"real corpus not present at {SENDMAIL_CORPUS}")
SAMPLE_LOGS = SAMPLES / "sendmail" / "relay1" / "var" / "log"

# Verbatim lines from research note generic-smtp.md §1 and §3.
SOLARIS = ("Jul 11 20:37:58 rt sendmail[9156]: [ID 801593 mail.info] n6BKbwgB009156: from=nobody, size=2651, "
           "class=0, nrcpts=1, msgid=<rt-3.8.2-27793-1247344678-1788.566003-159-0@rt.example.net>, "
           "relay=nobody@localhost")
SONIC_FROM = ("Nov 12 13:01:25 b.mail.sonic.net sm-mta[24787]: qACL1Pfa024787: from=<augie@corp.sonic.net>, "
              "size=7712, class=0, nrcpts=1, "
              "msgid=<CE31E757C7050D48A2ED38864E85A393014544DA@wlbexch01.wlbutler.com>, proto=ESMTP, "
              "daemon=MTA, relay=mail.wlbutler.com [208.106.122.5]")
SONIC_TO = ("Nov 13 14:52:10 a.mail.sonic.net sm-mta[16961]: qADMh0cd016570: to=<augie@corp.sonic.net>,"
            "<augie@sonic.net>,<augie@schwer.us>, delay=00:09:09, xdelay=00:00:09, mailer=esmtp, pri=4437228, "
            "relay=ign-com.mail.eo.outlook.com. [216.32.180.22], dsn=2.0.0, stat=Sent "
            "(<00b601cdc1f0$4d506a80$e7f13f80$@com> [InternalId=14475985] Queued mail for delivery)")
MSP = ("Sep 26 07:55:01 dship1 sendmail[12663]: v8Q7t1BT012663: to=dship, ctladdr=root (0/0), "
       "delay=00:00:00, xdelay=00:00:00, mailer=relay, pri=30561, relay=[127.0.0.1] [127.0.0.1], dsn=2.0.0, "
       "stat=Sent (v8Q7t1RQ012670 Message accepted for delivery)")
RELAY_AUTH_REQUIRED = (
    "Feb 25 03:01:10 kismet sm-acceptingconnections[27713]: s1P819mk027713: ruleset=check_rcpt, "
    "arg1=<asservnew@freemailhost.ru>, relay=128-68-136-133.broadband.corbina.ru [128.68.136.133], "
    "reject=550 5.7.1 <asservnew@freemailhost.ru>... Relaying denied. Proper authentication required.")
RELAY_LOOKUP_FAILED = (
    "Feb 27 15:44:18 batman sm-mta[87838]: s1REiHdq087838: ruleset=check_rcpt, arg1=<gert-jan@t-online.ch>, "
    "relay=[41.204.78.137], reject=550 5.7.1 <gert-jan@t-online.ch>... Relaying denied. IP name lookup "
    "failed [41.204.78.137]")
RELAY_FORGED = (
    "Feb 23 21:36:14 petermurray sm-mta[22248]: s1NLaDQT022248: ruleset=check_rcpt, "
    "arg1=<dautareuk2@hotmail.it>, relay=int0.client.access.azadnet.net [80.253.155.119] (may be forged), "
    "reject=550 5.7.1 <dautareuk2@hotmail.it>... Relaying denied. IP name possibly forged [80.253.155.119]")
SENDER_DOMAIN = (
    "Feb 23 07:57:28 petermurray sm-mta[6519]: s1N7vR47006519: ruleset=check_rcpt, "
    "arg1=<camila.pinto@camilopinto.pt>, relay=[2.180.185.27], reject=553 5.1.8 "
    "<camila.pinto@camilopinto.pt>... Domain of sender address camila.pinto@andrewweitzman.com does not exist")
CHECK_RELAY = (
    "Feb 24 01:46:44 petermurray sm-mta[24422]: ruleset=check_relay, arg1=leased-line-54-82.telecom.by, "
    "arg2=217.21.54.82, relay=leased-line-54-82.telecom.by [217.21.54.82], reject=421 4.3.2 Connection rate "
    "limit exceeded.")
AUTH_OK = ("Dec  6 11:43:12 b.mail.sonic.net sm-mta[29813]: AUTH=server, relay=127.0.0.1.dsl.dynamic.sonic.net "
           "[127.0.0.1], authid=augie, mech=PLAIN, bits=0")
ATTACK = ("Feb 16 23:33:20 smtp1 sm-mta[5133]: s1GNXHYB005133: [190.5.230.178]: possible SMTP attack: "
          "command=AUTH, count=5")


def read_sm(tmp_path: Path, text: str | bytes, *, year: int = 2005, name: str = "maillog",
            site: SiteProfile | None = None):
    """Write a log and ingest it with a known year (syslog stamps have none)."""
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return ingest([path], site or SiteProfile(timezone="UTC"), year=year)


def read_direct(text: str, *, zone: str = "UTC", year: int = 2005, server: str | None = None):
    """Run the reader itself (for the line accounting that ingest does not report)."""
    site = SiteProfile(timezone=zone)
    return SendmailReader().read(split_lines(text), ReadContext("m.log", site, server, YearHint(start_year=year)))


def one(result, **where) -> dict:
    ev = result.events
    for col, value in where.items():
        ev = ev.filter(pl.col(col) == value)
    assert ev.height == 1, ev
    return ev.row(0, named=True)


# -- research-note lines -------------------------------------------------------------------------------


def test_solaris_message_id_and_local_submission(tmp_path):
    res = read_sm(tmp_path, SOLARIS + "\n", year=2009)
    assert res.inputs[0].format == "sendmail"
    row = one(res)
    assert row["event"] == "received"
    assert row["message"] == "n6BKbwgB009156"
    assert row["sender"] == "nobody"
    assert row["client_host"] == "localhost"
    assert row["client_ip"] is None
    assert row["size"] == 2651
    assert row["server"] == "rt"
    assert row["direction"] == "local"  # relay=nobody@localhost: submitted on the server itself
    assert row["ts"] == utc("2009-07-11 20:37:58")
    assert row["session"].endswith("maillog#rt#9156")
    assert row["text"].startswith("n6BKbwgB009156: from=nobody, size=2651")


def test_received_and_multi_recipient_delivery_pair(tmp_path):
    res = read_sm(tmp_path, SONIC_FROM + "\n" + SONIC_TO + "\n", year=2012)
    rec = one(res, event="received")
    assert (rec["message"], rec["sender"], rec["size"]) == ("qACL1Pfa024787", "augie@corp.sonic.net", 7712)
    assert (rec["client_host"], rec["client_ip"]) == ("mail.wlbutler.com", "208.106.122.5")
    assert rec["server"] == "b.mail.sonic.net"
    deliveries = rows(res, "line", "event", "message", "recipient", "status", "direction", "transport",
                      "relay_host", "server")
    assert deliveries[1:] == [
        (2, "deliver", "qADMh0cd016570", r, "sent", "out", "esmtp",
         "ign-com.mail.eo.outlook.com. [216.32.180.22]", "a.mail.sonic.net")
        for r in ("augie@corp.sonic.net", "augie@sonic.net", "augie@schwer.us")
    ]
    d = res.events.filter(pl.col("event") == "deliver").row(0, named=True)
    assert d["reply"] is None
    assert d["reply_text"] == "<00b601cdc1f0$4d506a80$e7f13f80$@com> [InternalId=14475985] Queued mail for delivery"
    assert d["orig_recipient"] is None
    assert d["ts"] == utc("2012-11-13 14:52:10")


def test_msp_to_loopback_is_local(tmp_path):
    row = one(read_sm(tmp_path, MSP + "\n"))
    assert row["event"] == "deliver"
    assert (row["recipient"], row["transport"], row["direction"], row["status"]) == ("dship", "relay", "local",
                                                                                     "sent")
    assert row["relay_host"] == "[127.0.0.1] [127.0.0.1]"
    assert row["reply_text"] == "v8Q7t1RQ012670 Message accepted for delivery"


@pytest.mark.parametrize(("line", "recipient", "client_host", "client_ip", "reply", "reply_text"), [
    (RELAY_AUTH_REQUIRED, "asservnew@freemailhost.ru", "128-68-136-133.broadband.corbina.ru", "128.68.136.133",
     550, "5.7.1 <asservnew@freemailhost.ru>... Relaying denied. Proper authentication required."),
    (RELAY_LOOKUP_FAILED, "gert-jan@t-online.ch", None, "41.204.78.137",
     550, "5.7.1 <gert-jan@t-online.ch>... Relaying denied. IP name lookup failed [41.204.78.137]"),
    (RELAY_FORGED, "dautareuk2@hotmail.it", "int0.client.access.azadnet.net", "80.253.155.119",
     550, "5.7.1 <dautareuk2@hotmail.it>... Relaying denied. IP name possibly forged [80.253.155.119]"),
    (SENDER_DOMAIN, "camila.pinto@camilopinto.pt", None, "2.180.185.27",
     553, "5.1.8 <camila.pinto@camilopinto.pt>... Domain of sender address camila.pinto@andrewweitzman.com "
          "does not exist"),
])
def test_check_rcpt_rejects(tmp_path, line, recipient, client_host, client_ip, reply, reply_text):
    row = one(read_sm(tmp_path, line + "\n"))
    assert (row["event"], row["verb"], row["direction"]) == ("rcpt", "RCPT", "in")
    assert row["recipient"] == recipient
    assert (row["client_host"], row["client_ip"]) == (client_host, client_ip)
    assert (row["reply"], row["reply_text"]) == (reply, reply_text)
    assert row["message"] == line.split(": ")[1]
    assert row["sender"] is None  # no from= line in this file


def test_check_relay_is_a_refused_connect(tmp_path):
    row = one(read_sm(tmp_path, CHECK_RELAY + "\n"))
    assert (row["event"], row["reply"], row["reply_text"]) == ("connect", 421,
                                                               "4.3.2 Connection rate limit exceeded.")
    assert (row["client_host"], row["client_ip"], row["message"]) == ("leased-line-54-82.telecom.by",
                                                                      "217.21.54.82", None)


def test_check_relay_uses_relay_not_dnsbl_answer(tmp_path):
    line = ("Sep  7 04:31:10 mail sm-mta[64143]: ruleset=check_relay, arg1=60-240-56-231.tpgi.com.au, "
            "arg2=127.0.0.3, relay=60-240-56-231.tpgi.com.au [60.240.56.231], reject=553 5.3.0 Message from "
            "60.240.56.231 blocked - see http://dynablock.njabl.org/")
    row = one(read_sm(tmp_path, line + "\n"))
    assert row["client_ip"] == "60.240.56.231"


def test_auth_server_and_attack(tmp_path):
    res = read_sm(tmp_path, AUTH_OK + "\n" + ATTACK + "\n")
    ok = one(res, line=1)
    assert (ok["event"], ok["status"], ok["auth_user"], ok["message"]) == ("auth", "ok", "augie", None)
    assert (ok["client_host"], ok["client_ip"]) == ("127.0.0.1.dsl.dynamic.sonic.net", "127.0.0.1")
    bad = one(res, line=2)
    assert (bad["event"], bad["verb"], bad["status"], bad["client_ip"]) == ("auth", "AUTH", "failed",
                                                                            "190.5.230.178")


def test_auth_failure_user_and_injected_relay(tmp_path):
    text = (
        "Feb 25 04:02:27 relay1 sendmail[16664]: 06I02CNi016764: AUTH failure (LOGIN): authentication failure "
        "(-13) SASL(-13): authentication failure: checkpass failed, user=user@example.com, "
        "relay=example.com [192.0.2.3] (may be forged)\n"
        "Feb 25 04:02:28 relay1 sendmail[16665]: 06I02CNi016765: AUTH failure (LOGIN): authentication failure "
        "(-13) SASL(-13): authentication failure: checkpass failed, user=criminal, relay=[192.0.2.100], "
        "relay=[192.0.2.4] (may be forged)\n"
        "May 29 23:14:05 server sendmail[25411]: 26H8MRrS025411: AUTH failure (LOGIN): authentication failure "
        "(-13) SASL(-13): authentication failure: checkpass failed, relay=[192.0.2.9]\n")
    got = rows(read_sm(tmp_path, text), "event", "status", "auth_user", "client_host", "client_ip")
    assert got == [
        ("auth", "failed", "user@example.com", "example.com", "192.0.2.3"),
        # The last relay= is the real client; the user name carries the injected text as logged.
        ("auth", "failed", "criminal, relay=[192.0.2.100]", None, "192.0.2.4"),
        ("auth", "failed", None, None, "192.0.2.9"),
    ]


# -- the other shapes ------------------------------------------------------------------------------------


def test_other_shapes(tmp_path):
    text = "\n".join([
        "Feb 23 21:18:47 batman sm-mta[93301]: s1NKIkZa093301: [76.72.174.70]: EXPN root [rejected]",
        "Feb 22 14:02:44 batman sm-mta[4030]: s1MD2hsd004030: rrcs-24-73-201-194.se.biz.rr.com "
        "[24.73.201.194]: VRFY root [rejected]",
        "Mar  7 15:04:37 s192-168-0-1 sm-mta[18624]: v27K4Vj8018624: some-host-24.example.org [192.0.2.195] "
        "(may be forged) did not issue MAIL/EXPN/VRFY/ETRN during connection to MSP-v4",
        "Jul 31 13:03:43 alarmpi sm-mta[24291]: 56VFYCxS024291: lost input channel from mail.aqicn.org "
        "[139.162.120.196] to MTA-v4 after rcpt",
        "Feb 27 10:53:06 batman sm-mta[44307]: s1R9r60D044307: rejecting commands from  [209.15.212.253] due "
        "to pre-greeting traffic after 0 seconds",
        "Sep  7 02:43:30 mail sm-mta[63495]: k876hJS0063495: Milter: data, reject=550 5.7.1 Blocked by "
        "SpamAssassin",
        "Aug  9 18:36:16 mail sm-mta[11761]: k79IaGJL011761: ruleset=check_mail, arg1=<direto@mkt.example.br>, "
        "relay=mkt1.example.br [1.2.3.4], reject=553 5.3.0 <direto@mkt.example.br>... SPAM REJECT",
        "Dec  6 11:56:09 b.mail.sonic.net sm-mta[10180]: STARTTLS=server, relay=173-8-135-25-SFBA.hfc."
        "comcastbusiness.net [173.8.135.25], version=TLSv1/SSLv3, verify=NO, cipher=AES128-SHA, bits=128/128",
        "Nov 30 10:35:10 a.spam.sonic.net sendmail[20393]: STARTTLS=client, relay=gmail-smtp-in.l.google.com., "
        "version=TLSv1/SSLv3, verify=OK, cipher=RC4-SHA, bits=128/128",
        "Dec  4 10:24:32 c.spam.sonic.net sendmail[32283]: ruleset=tls_server, arg1=SOFTWARE, "
        "relay=goransoncpa-com.mail.eo.outlook.com, reject=403 4.7.0 TLS handshake failed.",
        "Apr  2 00:15:25 mta001 sendmail[32302]: u31FFPtp032300: done; delay=00:00:00, ntries=2",
        "Sep 24 01:32:57 gatekeeper sendmail[19921]: h8O5WptI019921: Losing ./qfh8O5WptI0 19921: savemail panic",
        "Nov 30 14:46:00 d.spam.sonic.net sendmail[12906]: STARTTLS: write error=syscall error (-1), errno=104",
        "Jan 10 10:00:00 mail sendmail[100]: SYSERR(root): collect: I/O error on connection from x, from=<a@b>",
    ]) + "\n"
    got = rows(read_sm(tmp_path, text), "line", "event", "verb", "status", "reply", "recipient", "sender",
               "client_host", "client_ip", "relay_host", "direction")
    assert got == [
        (1, "command", "EXPN", "rejected", None, "root", None, None, "76.72.174.70", None, "in"),
        (2, "command", "VRFY", "rejected", None, "root", None, "rrcs-24-73-201-194.se.biz.rr.com",
         "24.73.201.194", None, "in"),
        (3, "note", None, None, None, None, None, "some-host-24.example.org", "192.0.2.195", None, "in"),
        (4, "note", None, None, None, None, None, "mail.aqicn.org", "139.162.120.196", None, "in"),
        (5, "note", None, None, None, None, None, None, "209.15.212.253", None, "in"),
        (6, "data", "DATA", None, 550, None, None, None, None, None, "in"),
        (7, "mail", "MAIL", None, 553, None, "direto@mkt.example.br", "mkt1.example.br", "1.2.3.4", None, "in"),
        (8, "note", None, None, None, None, None, "173-8-135-25-SFBA.hfc.comcastbusiness.net", "173.8.135.25",
         None, "in"),
        (9, "note", None, None, None, None, None, None, None, "gmail-smtp-in.l.google.com.", "out"),
        (10, "note", None, None, 403, None, None, None, None, "goransoncpa-com.mail.eo.outlook.com", "out"),
        (11, "note", None, None, None, None, None, None, None, None, None),
        (12, "note", None, None, None, None, None, None, None, None, None),
        (13, "note", None, None, None, None, None, None, None, None, None),
        (14, "note", None, None, None, None, None, None, None, None, None),
    ]


def test_user_unknown_is_a_refused_recipient_with_the_sessions_sender(tmp_path):
    text = (
        "Jun 17 14:37:39 <mail.notice> robin sm-mta[2794]: 55HIbcGI002794: <baduser@yourhost.com>... User "
        "unknown\n"
        "Jun 17 14:37:39 <mail.info> robin sm-mta[2794]: 55HIbcGI002794: from=<root@yourhost.com>, size=108, "
        "class=0, nrcpts=0, proto=ESMTP, daemon=MTA-v4, relay=[192.168.1.45]\n")
    res = read_sm(tmp_path, text)
    assert res.inputs[0].skipped_lines == 0
    assert rows(res, "event", "verb", "recipient", "sender", "client_ip", "reply", "reply_text", "status",
                "server") == [
        ("rcpt", "RCPT", "baduser@yourhost.com", "root@yourhost.com", "192.168.1.45", None, "User unknown",
         "rejected", "robin"),
        ("mail", "MAIL", None, "root@yourhost.com", "192.168.1.45", None, None, None, "robin"),
    ]


def test_reject_gets_sender_of_same_session_and_queue_id_only(tmp_path):
    text = (
        "Mar  1 10:00:01 mx sm-mta[100]: k21A00aa000100: ruleset=check_rcpt, arg1=<x@example.net>, "
        "relay=[192.0.2.7], reject=550 5.7.1 <x@example.net>... Relaying denied\n"
        "Mar  1 10:00:02 mx sm-mta[200]: k21A00aa000100: from=<other@example.org>, size=0, class=0, nrcpts=0, "
        "proto=SMTP, daemon=MTA, relay=[192.0.2.8]\n"
        "Mar  1 10:00:03 mx sm-mta[100]: k21A00aa000100: from=<spam@example.org>, size=0, class=0, nrcpts=0, "
        "proto=SMTP, daemon=MTA, relay=[192.0.2.7]\n")
    row = one(read_sm(tmp_path, text), event="rcpt")
    assert (row["sender"], row["reply"], row["reply_text"]) == ("spam@example.org", 550,
                                                                "5.7.1 <x@example.net>... Relaying denied")


def test_delivery_status_reply_and_direction(tmp_path):
    head = "Apr  2 00:15:25 mta001 sendmail[1]: u31FFPtp032300: to="
    text = "\n".join(head + body for body in [
        "<a@example.com>, delay=00:00:15, xdelay=00:00:15, mailer=esmtp, pri=34527, relay=[93.184.216.34] "
        "[93.184.216.34], dsn=4.3.5, stat=Deferred: 451 4.3.5 Server configuration problem",
        "<b@example.com>, delay=1+00:00:15, xdelay=00:00:15, mailer=esmtp, pri=34527, relay=mx.example.com. "
        "[192.0.2.80], dsn=5.1.1, stat=User unknown",
        "<c@example.com>, delay=5+00:00:01, xdelay=00:00:00, mailer=esmtp, pri=8034527, relay=mx.example.com., "
        "dsn=4.4.7, stat=Cannot send message for 5 days",
        "<d@example.com>, delay=00:00:00, pri=30747, stat=Mail Rejected: high volume mailings not allowed.",
        "<e@example.com>, delay=00:00:00, xdelay=00:00:00, mailer=relay, pri=1, relay=localhost [127.0.0.1], "
        "dsn=2.0.0, stat=Sent (k1 Message accepted for delivery)",
        "\"|/usr/bin/procmail\", ctladdr=<joe@acme-widgets.com> (500/500), delay=00:00:01, xdelay=00:00:00, "
        "mailer=prog, pri=30823, dsn=2.0.0, stat=Sent",
        "/var/spool/archive, ctladdr=<joe@acme-widgets.com> (500/500), delay=00:00:01, xdelay=00:00:00, "
        "mailer=*file*, pri=30823, dsn=2.0.0, stat=Sent",
        "<f@example.com>, delay=00:00:00, xdelay=00:00:00, mailer=esmtp, pri=1, relay=mx.example.com. "
        "[192.0.2.80], dsn=2.0.0, stat=Sent (250 2.0.0 Ok: queued as X1)",
        "<g@example.com>, delay=00:00:00, mailer=esmtp, pri=1, stat=queued",
    ]) + "\n"
    got = rows(read_sm(tmp_path, text), "recipient", "status", "reply", "reply_text", "direction", "transport")
    assert got == [
        ("a@example.com", "deferred", 451, "4.3.5 Server configuration problem", "out", "esmtp"),
        ("b@example.com", "bounced", None, None, "out", "esmtp"),
        ("c@example.com", "expired", None, None, "out", "esmtp"),
        ("d@example.com", "mail", None, None, "local", None),
        ("e@example.com", "sent", None, "k1 Message accepted for delivery", "local", "relay"),
        ('"|/usr/bin/procmail"', "sent", None, None, "local", "prog"),
        ("/var/spool/archive", "sent", None, None, "local", "*file*"),
        ("f@example.com", "sent", 250, "2.0.0 Ok: queued as X1", "out", "esmtp"),
        ("g@example.com", "queued", None, None, "out", "esmtp"),
    ]


def test_to_list_with_bare_quoted_and_bracketed_items(tmp_path):
    line = ('May  1 12:00:00 mx sendmail[5]: k41C00ab000005: to=<a@example.com>,bob,"c d"@example.org,'
            '<"e,f"@example.net>, delay=00:00:01, mailer=esmtp, pri=1, relay=mx.example. [192.0.2.1], '
            "dsn=2.0.0, stat=Sent (ok)\n")
    got = [r[0] for r in rows(read_sm(tmp_path, line), "recipient")]
    assert got == ["a@example.com", "bob", '"c d"@example.org', '"e,f"@example.net']


# -- sessions and AUTH ----------------------------------------------------------------------------------


def test_auth_identity_goes_to_the_same_session_and_client(tmp_path):
    text = "\n".join([
        "Dec  6 12:02:33 mx sm-mta[100]: AUTH=server, relay=[198.51.100.9], authid=augie, mech=PLAIN, bits=0",
        "Dec  6 12:02:34 mx sm-mta[100]: qB6K2Xab000100: from=<augie@example.com>, size=10, class=0, nrcpts=1, "
        "msgid=<1@x>, proto=ESMTPA, daemon=MTA, relay=[198.51.100.9]",
        "Dec  6 12:02:35 mx sm-mta[100]: qB6K2Xac000100: from=<augie@example.com>, size=11, class=0, nrcpts=1, "
        "msgid=<2@x>, proto=ESMTPA, daemon=MTA, relay=[198.51.100.9]",
        "Dec  6 12:02:36 mx sm-mta[101]: qB6K2Xad000101: from=<x@example.com>, size=12, class=0, nrcpts=1, "
        "msgid=<3@x>, proto=ESMTP, daemon=MTA, relay=[198.51.100.9]",
        "Dec  6 12:02:37 other sm-mta[100]: qB6K2Xae000100: from=<y@example.com>, size=13, class=0, nrcpts=1, "
        "msgid=<4@x>, proto=ESMTP, daemon=MTA, relay=[198.51.100.9]",
        "Dec  6 12:05:00 mx sm-mta[100]: qB6K50af000100: from=<z@example.com>, size=14, class=0, nrcpts=1, "
        "msgid=<5@x>, proto=ESMTP, daemon=MTA, relay=[192.0.2.99]",
        "Dec  6 15:00:00 mx sm-mta[100]: qB6F00ag000100: from=<w@example.com>, size=15, class=0, nrcpts=1, "
        "msgid=<6@x>, proto=ESMTP, daemon=MTA, relay=[198.51.100.9]",
    ]) + "\n"
    got = rows(read_sm(tmp_path, text), "line", "event", "auth_user", "server")
    assert got == [
        (1, "auth", "augie", "mx"),
        (2, "received", "augie", "mx"),
        (3, "received", "augie", "mx"),  # a second message in the same connection
        (4, "received", None, "mx"),  # another process
        (5, "received", None, "other"),  # same pid on another host
        (6, "received", None, "mx"),  # pid reused by another client
        (7, "received", None, "mx"),  # hours later: a new connection with a reused pid
    ]


def test_sessions_are_source_host_pid(tmp_path):
    res = read_sm(tmp_path, SONIC_FROM + "\n" + AUTH_OK + "\n")
    sessions = [s for (s,) in rows(res, "session")]
    path = str(tmp_path / "maillog")
    assert sessions == [f"{path}#b.mail.sonic.net#24787", f"{path}#b.mail.sonic.net#29813"]


# -- envelope variants, time, hostile input --------------------------------------------------------------


def test_header_less_and_iso_lines(tmp_path):
    text = (
        "sm-mta[11761]: k79IaGJL011761: ruleset=check_mail, arg1=<direto@mkt.example.br>, relay=mkt1.example.br "
        "[1.2.3.4], reject=553 5.3.0 <direto@mkt.example.br>... SPAM REJECT\n"
        "2004-08-25T10:04:35.051238-05:00 mx sendmail[77]: i7PF4Zab000077: ruleset=check_rcpt, "
        "arg1=<v@example.net>, relay=[192.0.2.5], reject=550 5.7.1 <v@example.net>... Relaying denied\n")
    res = read_sm(tmp_path, text, site=SiteProfile(timezone="America/Chicago"))
    assert res.inputs[0].format == "sendmail"
    got = rows(res, "line", "ts", "server", "event")
    assert got == [(1, None, None, "mail"), (2, utc("2004-08-25 15:04:35").replace(microsecond=51238), "mx",
                                             "rcpt")]
    assert any("1 Sendmail lines have no timestamp" in w for w in res.inputs[0].warnings)


def test_local_time_and_december_january_rollover(tmp_path):
    text = (
        "Dec 31 23:59:41 relay1 sendmail[9988]: hBVNxeKq009988: ruleset=check_rcpt, arg1=<a@example.org>, "
        "relay=[198.51.100.77], reject=550 5.7.1 <a@example.org>... Relaying denied\n"
        "Jan  1 00:00:12 relay1 sendmail[9988]: hBVNxeKq009988: ruleset=check_rcpt, arg1=<b@example.org>, "
        "relay=[198.51.100.77], reject=550 5.7.1 <b@example.org>... Relaying denied\n")
    res = read_sm(tmp_path, text, year=2003, site=SiteProfile(timezone="America/Chicago"))
    assert [ts for (ts,) in rows(res, "ts")] == [utc("2004-01-01 05:59:41"), utc("2004-01-01 06:00:12")]


def test_accounting_hostile_and_mixed_input():
    text = "\n".join([
        "# failJSON: { \"match\": true }",  # 1 test-fixture comment: not mail
        "",  # 2 blank
        "Feb 25 03:01:10 kismet sm-mta[27713]: s1P819mk027713: ruleset=check_rcpt, arg1=<asse",  # 3 cut off
        "Feb 25 03:01:11 kismet dovecot: imap-login: Login: user=<bob>, method=PLAIN",  # 4 other program
        "Feb 25 03:01:12 kismet sm-mta[27714]: s1P819mk027714: \\xff\\xfe garbage \x00\x1b bytes",  # 5 note
        "Feb 25 03:01:12 kism",  # 6 not a syslog line
        "Feb 25 03:01:13 kismet last message repeated 3 times",  # 7 repeats line 5 (the last tagged line)
        "Feb 25 03:01:14 kismet CRON[1]: (root) CMD (run-parts /etc/cron.hourly)",  # 8 other program
        "Feb 25 03:01:15 kismet last message repeated 2 times",  # 9 repeat of CRON: not mail
        "Feb 25 03:01:16 kismet postfix/sendmail[3]: fatal: usage error",  # 10 Postfix's sendmail command
        "   ",  # 11 blank
        "Feb 25 03:01:17 kismet sm-mta[27715]: s1P819mk027715: from=<a@b.example>, size=1",  # 12 cut off
    ])
    res = read_direct(text)
    assert res.lines == 12
    assert res.blank == 2
    assert res.not_mail == 5  # 1, 4, 8, 9, 10
    assert res.skipped == 3  # 3, 6, 12
    lines = res.events["line"].to_list()
    assert lines == [5, 7]
    assert res.lines == len(set(lines)) + res.blank + res.not_mail + res.skipped
    assert res.warnings == [
        "m.log:6: not a syslog line: Feb 25 03:01:12 kism",
        "m.log:3: malformed Sendmail line (cut off?): Feb 25 03:01:10 kismet sm-mta[27713]: "
        "s1P819mk027713: ruleset=check_rcpt, arg1=<...",  # excerpts stop at 80 characters
        "m.log:12: malformed Sendmail line (cut off?): Feb 25 03:01:17 kismet sm-mta[27715]: "
        "s1P819mk027715: from=<a@b.example>, size=1",
    ]
    assert res.events.filter(pl.col("line") == 7)["text"].to_list() == [
        "Feb 25 03:01:13 kismet last message repeated 3 times"]


def test_undecodable_bytes_do_not_stop_the_reader(tmp_path):
    raw = (b"Feb 25 03:01:12 kismet sm-mta[27714]: s1P819mk027714: from=<caf\xe9@example.com>, size=5, class=0, "
           b"nrcpts=1, msgid=<x@y>, proto=SMTP, daemon=MTA, relay=[192.0.2.1]\n")
    res = read_sm(tmp_path, raw)
    row = one(res)
    assert row["event"] == "received"
    assert row["sender"] == "caf\u00e9@example.com"


def test_empty_file_and_only_other_programs():
    assert read_direct("").events.height == 0
    res = read_direct("Feb 25 03:01:11 kismet dovecot: imap-login: Login\n")
    assert (res.events.height, res.not_mail, res.skipped) == (0, 1, 0)


def test_first_month_and_time_warning():
    res = SendmailReader().read(split_lines(SONIC_FROM + "\n"),
                                ReadContext("x", SiteProfile(timezone="UTC"), None, YearHint()))
    assert res.first_month is not None
    assert res.warnings and res.warnings[0].startswith("x: no year known")


# -- grammar and column path agree ------------------------------------------------------------------------


def _all_lines() -> list[str]:
    out = [SOLARIS, SONIC_FROM, SONIC_TO, MSP, RELAY_AUTH_REQUIRED, RELAY_LOOKUP_FAILED, RELAY_FORGED,
           SENDER_DOMAIN, CHECK_RELAY, AUTH_OK, ATTACK]
    for path in sorted(SAMPLE_LOGS.iterdir()):
        out += path.read_text().splitlines()
    if SENDMAIL_CORPUS.is_dir():
        for path in sorted(SENDMAIL_CORPUS.iterdir()):
            out += path.read_text(encoding="utf-8", errors="replace").splitlines()
    return out


def test_pyparsing_grammar_and_column_path_agree():
    lines = pl.Series([re.sub(grammar.PRIORITY_PREFIX, lambda m: m["stamp"], x, count=1) for x in _all_lines()])
    frame = split_syslog(lines)
    frame = frame.filter(pl.col("tag").str.contains("^" + grammar.TAG + "$").fill_null(False))
    assert frame.height > 150
    cols = message_columns(frame["msg"])
    kinds = set()
    for msg, row in zip(frame["msg"].to_list(), cols.iter_rows(named=True), strict=True):
        reference = grammar.parse_message(msg)
        kind = row["kind"]
        column = {k.split(".", 1)[1]: v for k, v in row.items() if k.startswith(kind + ".") and v is not None}
        if row["qid"] is not None:
            column["qid"] = row["qid"]
        column["kind"] = kind
        assert reference == column, msg
        kinds.add(kind)
    assert kinds == set(grammar.SHAPES)


# -- corpus ---------------------------------------------------------------------------------------------

CORPUS_EXPECTED = {
    # file: (events, skipped lines)
    "fail2ban_sendmail-auth.log": (13, 0),
    "fail2ban_sendmail-reject.log": (45, 0),
    "fluent-plugin-sendmail_test-data.log": (12, 0),
    "grok-test_sonic-net_sendmail.log": (21, 0),
    "ossec-docs_sendmail_samples.log": (8, 0),
}


@needs_corpus
@pytest.mark.parametrize("name", sorted(CORPUS_EXPECTED))
def test_corpus_file(name):
    res = ingest([SENDMAIL_CORPUS / name], SiteProfile(timezone="UTC"), year=2005)
    report = res.inputs[0]
    assert report.format == "sendmail"
    assert (report.events, report.skipped_lines) == CORPUS_EXPECTED[name]


@needs_corpus
def test_corpus_every_relay_denial_is_a_refused_rcpt():
    denial = re.compile(r"^(?P<prefix>.*?): ruleset=check_rcpt, arg1=<(?P<rcpt>[^>]*)>.*Relaying "
                        r"(?:temporarily )?denied")
    seen = 0
    for path in sorted(SENDMAIL_CORPUS.iterdir()):
        res = ingest([path], SiteProfile(timezone="UTC"), year=2005)
        for number, text in enumerate(split_lines(path.read_text()).to_list(), start=1):
            m = denial.match(text)
            if not m:
                continue
            seen += 1
            row = res.events.filter(pl.col("line") == number).row(0, named=True)
            assert row["event"] == "rcpt", text
            assert row["reply"] >= 400, text
            assert row["recipient"] == m["rcpt"], text
    assert seen == 5


@needs_corpus
def test_corpus_other_formats_are_not_claimed():
    checked = 0
    for path in sorted(CORPUS.rglob("*")):
        if not path.is_file() or path.parent == SENDMAIL_CORPUS or path.name == "SOURCES.md":
            continue
        head = split_lines(path.read_bytes().decode("utf-8", "replace")).head(SNIFF_LINES).to_list()
        assert SendmailReader().sniff(head) == 0.0, path
        checked += 1
    assert checked > 10
    for path in sorted(SENDMAIL_CORPUS.iterdir()):
        head = split_lines(path.read_text()).head(SNIFF_LINES).to_list()
        assert sniff_format(head) == "sendmail", path


def test_registered():
    assert READERS["sendmail"] is SendmailReader


# -- samples --------------------------------------------------------------------------------------------


@pytest.fixture
def sample_events(tmp_path):
    """Both sample files read together, renamed to numbered rotations (``maillog``, ``maillog.1``):
    the newer file's mtime (6 Jan 2004) anchors its year, and rotation order the older file's."""
    shutil.copytree(SAMPLES / "sendmail", tmp_path / "sendmail")
    logs = tmp_path / "sendmail/relay1/var/log"
    (logs / "maillog-20040104").rename(logs / "maillog.1")
    (logs / "maillog-20040107").rename(logs / "maillog")
    when = datetime(2004, 1, 6, 16, 10, tzinfo=UTC).timestamp()
    os.utime(tmp_path / "sendmail/relay1/var/log/maillog", (when, when))
    res = ingest([tmp_path / "sendmail" / "relay1"], SiteProfile(timezone="America/Chicago",
                                                       local_domains=("acme-widgets.com",)))
    events = res.events.with_columns(pl.col("source").str.split("/").list.last().alias("file"))
    return res, events


def test_samples_accounting(sample_events):
    res, _ = sample_events
    reports = {Path(r.path).name: r for r in res.inputs}
    assert {n: (r.format, r.lines, r.skipped_lines) for n, r in reports.items()} == {
        "maillog": ("sendmail", 29, 1), "maillog.1": ("sendmail", 67, 0)}
    assert any("maillog:29: malformed Sendmail line" in w for w in reports["maillog"].warnings)
    # The newest file's year rests on its modification time, and says so; the older one on rotation.
    assert any("year taken from the file modification time" in w for w in reports["maillog"].warnings)
    assert not any("modification time" in w for w in reports["maillog.1"].warnings)
    direct = read_direct((SAMPLE_LOGS / "maillog-20040104").read_text(), zone="America/Chicago", year=2003)
    assert (direct.not_mail, direct.blank, direct.skipped) == (7, 0, 0)


def test_samples_times(sample_events):
    _, ev = sample_events

    def at(file, line):
        return ev.filter((pl.col("file") == file) & (pl.col("line") == line))["ts"][0]

    assert at("maillog.1", 5) == utc("2003-12-29 14:02:14")
    assert at("maillog.1", 57) == utc("2004-01-01 06:00:12")
    assert at("maillog", 28) == utc("2004-01-06 16:05:17")


def test_samples_relay_denials_and_tricks(sample_events):
    _, ev = sample_events
    refused = ev.filter(pl.col("event") == "rcpt").sort("file", "line")
    assert refused.select("file", "line", "recipient", "client_ip", "reply").rows() == [
        ("maillog", 18, "claims%example.net@acme-widgets.com", "198.51.100.23", 550),
        ("maillog", 20, "l.brown@example.com", "203.0.113.77", 550),
        ("maillog", 23, "m.rossi@example.org", "198.51.100.141", 550),
        ("maillog", 25, '"ap@northwind-traders.example"@acme-widgets.com', "10.20.1.22", None),
        ("maillog.1", 11, "jsmith@example.net", "198.51.100.77", 550),
        ("maillog.1", 12, "mary.jones@example.net", "198.51.100.77", 550),
        ("maillog.1", 13, "k.lee@example.com", "198.51.100.77", 550),
        ("maillog.1", 19, "info%example.org@acme-widgets.com", "192.0.2.144", 550),
        ("maillog.1", 20, "example.org!info@acme-widgets.com", "192.0.2.144", 550),
        ("maillog.1", 21, '"info@example.org"@acme-widgets.com', "192.0.2.144", 550),
        ("maillog.1", 49, "jdoe@acme-widgets.com", "192.0.2.60", None),
        ("maillog.1", 55, "r.patel@example.org", "198.51.100.77", 550),
        ("maillog.1", 57, "s.kim@example.org", "198.51.100.77", 550),
    ]
    assert refused.filter(pl.col("line") == 19)["sender"].to_list() == ["probe@relay-check.example"]


def test_samples_relays_join_to_their_received_rows(sample_events):
    _, ev = sample_events
    received = ev.filter(pl.col("event") == "received").select(
        "file", "message", pl.col("client_ip").alias("from_ip"), pl.col("auth_user").alias("authid"))
    out = (ev.filter((pl.col("event") == "deliver") & (pl.col("direction") == "out") & (pl.col("status") == "sent"))
           .join(received, on=["file", "message"], how="left")
           .sort("file", "line", "recipient"))
    assert out.select("file", "line", "recipient", "from_ip", "authid").rows() == [
        ("maillog", 5, "m.rossi@example.org", "198.51.100.141", "dave"),
        ("maillog", 15, "claims%example.net@acme-widgets.com", "198.51.100.23", None),
        ("maillog", 27, "ap@northwind-traders.example", "10.20.1.22", None),
        ("maillog.1", 10, "ap@northwind-traders.example", "10.20.1.15", None),
        ("maillog.1", 10, "buyer@northwind-traders.example", "10.20.1.15", None),
        ("maillog.1", 38, "p.wright@example.com", "198.51.100.140", "dave"),
        ("maillog.1", 38, "t.nguyen@example.com", "198.51.100.140", "dave"),
        ("maillog.1", 42, "h.garcia@example.net", "198.51.100.140", "dave"),
        ("maillog.1", 46, "buyer@northwind-traders.example", "203.0.113.150", "bob"),
        ("maillog.1", 48, "ap@northwind-traders.example", "203.0.113.40", None),
        ("maillog.1", 63, "winner%example.org@acme-widgets.com", "198.51.100.23", None),
        ("maillog.1", 65, "d.white@example.com", "203.0.113.77", None),
        ("maillog.1", 65, "l.brown@example.com", "203.0.113.77", None),
    ]
    local = ev.filter((pl.col("event") == "deliver") & (pl.col("direction") == "local"))
    assert sorted(local["recipient"].to_list()) == ["alice", "alice@acme-widgets.com", "alice@acme-widgets.com",
                                                    "alice@acme-widgets.com", "bob", "bob@acme-widgets.com",
                                                    "carol", "root"]
