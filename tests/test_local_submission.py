"""Mail submitted on the server itself (a cron job, a web form, a mailbox user) is not relaying: local
submissions are trusted like the server's own address, while a relay trick in them still shows."""

from __future__ import annotations

from pathlib import Path

from logforensics.scan import scan
from logforensics.site import SiteProfile
from tests.test_exchange_tracking import CSV_HEADER, HEADER, csv26, t03

SITE = SiteProfile(timezone="UTC", local_domains=("initech.example", "acme-widgets.com"),
                   relay_policy="authenticated-only")


def scan_text(tmp_path: Path, rel: str, text: str):
    path = tmp_path / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return scan([tmp_path], SITE, year=2007)


def findings(result) -> list[tuple[str, str, str]]:
    return [(r["recipient"], r["verdict"], r["severity"]) for r in result.findings.iter_rows(named=True)]


POSTFIX = """\
Feb  1 10:00:00 pfl postfix/pickup[900]: 1A2B3C4D5E: uid=33 from=<www-data>
Feb  1 10:00:00 pfl postfix/qmgr[902]: 1A2B3C4D5E: from=<www-data@pfl.initech.example>, size=700, nrcpt=1 (queue active)
Feb  1 10:00:01 pfl postfix/smtp[903]: 1A2B3C4D5E: to=<customer@shopper.example>, relay=mx.shopper.example[198.51.100.90]:25, delay=1, delays=0.5/0/0.3/0.2, dsn=2.0.0, status=sent (250 ok)
Feb  1 10:05:00 pfl postfix/pickup[900]: 2B3C4D5E6F: uid=0 from=<root>
Feb  1 10:05:00 pfl postfix/qmgr[902]: 2B3C4D5E6F: from=<root@pfl.initech.example>, size=700, nrcpt=1 (queue active)
Feb  1 10:05:01 pfl postfix/smtp[903]: 2B3C4D5E6F: to=<admin@oldisp.example>, relay=mx.oldisp.example[198.51.100.91]:25, delay=1, delays=0.5/0/0.3/0.2, dsn=5.7.1, status=bounced (host mx.oldisp.example[198.51.100.91] said: 554 5.7.1 <admin@oldisp.example>: Relay access denied (in reply to RCPT TO command))
Feb  1 10:06:00 pfl postfix/pickup[900]: 3C4D5E6F7A: uid=33 from=<www-data>
Feb  1 10:06:00 pfl postfix/qmgr[902]: 3C4D5E6F7A: from=<www-data@pfl.initech.example>, size=700, nrcpt=1 (queue active)
Feb  1 10:06:01 pfl postfix/smtp[903]: 3C4D5E6F7A: to=<victim%gmx.example@mx.shopper.example>, relay=mx.shopper.example[198.51.100.90]:25, delay=1, delays=0.5/0/0.3/0.2, dsn=2.0.0, status=sent (250 ok)
Feb  1 10:07:00 pfl postfix/smtpd[904]: connect from unknown[203.0.113.9]
Feb  1 10:07:01 pfl postfix/smtpd[904]: 4D5E6F7A8B: client=unknown[203.0.113.9]
Feb  1 10:07:01 pfl postfix/qmgr[902]: 4D5E6F7A8B: from=<spam@bad.example>, size=700, nrcpt=1 (queue active)
Feb  1 10:07:02 pfl postfix/smtp[903]: 4D5E6F7A8B: to=<victim@shopper.example>, relay=mx.shopper.example[198.51.100.90]:25, delay=1, delays=0.5/0/0.3/0.2, dsn=2.0.0, status=sent (250 ok)
"""


def test_postfix_pickup_is_local_submission(tmp_path):
    result = scan_text(tmp_path, "pfl/var/log/mail.log", POSTFIX)
    # Only the network client's relay, and the relay trick in a local submission (rated as from a
    # trusted network: lower than the same trick from an unknown client).
    assert sorted(findings(result)) == [("victim%gmx.example@mx.shopper.example", "relayed", "medium"),
                                        ("victim@shopper.example", "relayed", "high")]
    trick = result.findings.filter(result.findings["recipient"].str.contains("%")).row(0, named=True)
    assert "local submission" in trick["explanation"]


def test_exchange_2003_store_submission_is_local(tmp_path):
    text = HEADER + "".join([
        t03("2006-2-14", "15:6:0 GMT", "-", "-", "Store", "buyer@example.com", 1027, msgid="MSG2@EXCH02",
            sender="jdoe@acme-widgets.com"),
        t03("2006-2-14", "15:6:1 GMT", "198.51.100.77", "mx.example.com", "mx.example.com", "buyer@example.com",
            1031, msgid="MSG2@EXCH02", sender="jdoe@acme-widgets.com"),
        t03("2006-2-14", "15:7:0 GMT", "203.0.113.45", "spam.example", "SMTP", "kim@example.net", 1019),
        t03("2006-2-14", "15:7:3 GMT", "198.51.100.78", "mx.example.net", "mx.example.net", "kim@example.net", 1031),
    ])
    result = scan_text(tmp_path, "EXCH02/EXCH02.log/20060214.log", text)
    assert findings(result) == [("kim@example.net", "relayed", "high")]


def test_exchange_2007_storedriver_submission_is_local(tmp_path):
    text = CSV_HEADER + "".join([
        csv26("2009-03-02T10:00:01.000Z", "", "", "", "EXCH07", "STOREDRIVER", "RECEIVE", "buyer@example.com", "",
              sender="jdoe@acme-widgets.com"),
        csv26("2009-03-02T10:00:03.000Z", "10.20.1.10", "EXCH07", "198.51.100.77", "mx.example.com", "SMTP", "SEND",
              "buyer@example.com", "250 2.1.5 OK", sender="jdoe@acme-widgets.com"),
    ])
    result = scan_text(tmp_path, "EXCH07/MessageTracking/MSGTRK20090302-1.LOG", text)
    assert findings(result) == []


def test_exim_arrival_without_a_sending_host_is_local_submission(tmp_path):
    log = (
        "2007-02-01 10:00:00 1HCk00-0000aa-AA <= www-data@exl.initech.example U=www-data P=local S=900\n"
        "2007-02-01 10:00:01 1HCk00-0000aa-AA => customer@shopper.example R=dnslookup T=remote_smtp "
        "H=mx.shopper.example [198.51.100.90]\n"
        "2007-02-01 10:00:01 1HCk00-0000aa-AA Completed\n"
        "2007-02-01 10:01:00 1HCk01-0000ab-AB <= cron@exl.initech.example U=root P=local-esmtp S=500\n"
        "2007-02-01 10:01:01 1HCk01-0000ab-AB => ops@remote.example R=dnslookup T=remote_smtp "
        "H=mx.remote.example [198.51.100.91]\n"
        "2007-02-01 10:02:00 1HCk02-0000ac-AC <= spam@bad.example H=(x) [203.0.113.9] P=esmtp S=500\n"
        "2007-02-01 10:02:01 1HCk02-0000ac-AC => victim@remote.example R=dnslookup T=remote_smtp "
        "H=mx.remote.example [198.51.100.91]\n")
    result = scan_text(tmp_path, "exl/var/log/exim4/mainlog", log)
    assert findings(result) == [("victim@remote.example", "relayed", "high")]


def test_sendmail_local_user_submission_is_local(tmp_path):
    log = (
        "Feb  1 10:00:00 sml sendmail[700]: l11900aa000700: from=www-data, size=700, class=0, nrcpts=1, "
        "msgid=<200702010900.l11900aa000700@sml.initech.example>, relay=www-data@localhost\n"
        "Feb  1 10:00:01 sml sendmail[700]: l11900aa000700: to=customer@shopper.example, ctladdr=www-data (33/33), "
        "delay=00:00:01, xdelay=00:00:01, mailer=esmtp, pri=30700, relay=mx.shopper.example. [198.51.100.90], "
        "dsn=2.0.0, stat=Sent (ok)\n"
        "Feb  1 10:05:00 sml sendmail[710]: l11950aa000710: from=<spam@bad.example>, size=700, class=0, nrcpts=1, "
        "msgid=<x@bad.example>, proto=SMTP, daemon=MTA, relay=bad.example [203.0.113.9]\n"
        "Feb  1 10:05:01 sml sendmail[711]: l11950aa000710: to=<victim@remote.example>, delay=00:00:01, "
        "xdelay=00:00:01, mailer=esmtp, pri=30700, relay=mx.remote.example. [198.51.100.91], dsn=2.0.0, "
        "stat=Sent (ok)\n")
    result = scan_text(tmp_path, "sml/var/log/maillog", log)
    assert findings(result) == [("victim@remote.example", "relayed", "high")]
