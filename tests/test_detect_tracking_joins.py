"""Queue (tracking) recipients joined to what the client really offered: a decoded delivery stands
for the encoded address on the arrival, a server-side redirect is no recipient of the client's, and
a recipient both the SMTP protocol log and the tracking log show is one finding."""

from __future__ import annotations

from pathlib import Path

from logforensics.scan import scan
from logforensics.site import SiteProfile
from tests.test_exchange_tracking import CSV_HEADER, HEADER, csv26, t03
from tests.test_w3c_smtp import HEADER5

SITE = SiteProfile(timezone="UTC", local_domains=("acme-widgets.com",), relay_policy="authenticated-only")


def put(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def found(result) -> list[tuple]:
    return sorted((r["rule"], r["recipient"], r["verdict"], tuple(f"{Path(e['path']).name}:{e['line']}"
                                                                  for e in r["evidence"]))
                  for r in result.findings.iter_rows(named=True))


def test_imceasmtp_arrival_delivered_decoded_is_one_finding(tmp_path):
    enc = "IMCEASMTP-victim3+40example+2Ecom@acme-widgets.com"
    put(tmp_path, "EXCH02/EXCH02.log/20061009.log", HEADER + "".join([
        t03("2006-10-9", "14:5:6 GMT", "203.0.113.8", "spam.example", "SMTP", enc, 1019, msgid="M3@EXCH02"),
        t03("2006-10-9", "14:5:9 GMT", "198.51.100.7", "mx.example.com", "mx.example.com", "victim3@example.com",
            1031, msgid="M3@EXCH02"),
    ]))
    assert found(scan([tmp_path], SITE)) == [
        ("LF-MS99-027", enc, "relayed", ("20061009.log:4", "20061009.log:5"))]


def test_server_side_redirect_is_no_recipient_of_the_client(tmp_path):
    put(tmp_path, "EXCH07/MSGTRK20100617-1.LOG", CSV_HEADER + "".join([
        csv26("2010-06-17T09:00:00.000Z", "198.51.100.20", "mx.partner.example", "10.20.1.10", "EXCH07", "SMTP",
              "RECEIVE", "jsmith@acme-widgets.com", ""),
        csv26("2010-06-17T09:00:01.000Z", "", "", "", "EXCH07", "ROUTING", "REDIRECT", "jsmith.home@example.com", ""),
        csv26("2010-06-17T09:00:02.000Z", "10.20.1.10", "EXCH07", "198.51.100.77", "mx.example.com", "SMTP", "SEND",
              "jsmith.home@example.com", "250 2.1.5 OK"),
    ]))
    assert found(scan([tmp_path], SITE)) == []


def test_protocol_and_tracking_of_one_server_are_one_finding(tmp_path):
    put(tmp_path, "MAIL05/LogFiles/SMTPSVC1/ex061009.log", HEADER5 + "".join(
        f"2006-10-09 13:00:0{s} 203.0.113.7 spam.example SMTPSVC1 MAIL05 192.168.1.5 0 {verb} - {arg} 250 0 40 30 0 "
        "SMTP - - - -\n" for s, verb, arg in [
            (1, "EHLO", "+spam.example"), (2, "MAIL", "+FROM:+<promo@deals.example>"),
            (2, "RCPT", "+TO:+<victim1@example.net>"), (3, "RCPT", "+TO:+<victim2@example.org>"),
            (9, "DATA", "+<M1@deals.example>")]))
    put(tmp_path, "MAIL05/MAIL05.log/20061009.log", HEADER + "".join([
        t03("2006-10-9", "13:0:9 GMT", "203.0.113.7", "spam.example", "SMTP", "victim1@example.net", 1019,
            msgid="<M1@deals.example>"),
        t03("2006-10-9", "13:0:9 GMT", "203.0.113.7", "spam.example", "SMTP", "victim2@example.org", 1019,
            msgid="<M1@deals.example>"),
        t03("2006-10-9", "13:0:12 GMT", "198.51.100.25", "mx.example.net", "mx.example.net", "victim1@example.net",
            1031, msgid="<M1@deals.example>"),
    ]).replace("\tEXCH02\t", "\tMAIL05\t"))  # the same server as the protocol log
    assert found(scan([tmp_path], SITE)) == [
        ("LF-UNAUTH-RELAY", "victim1@example.net", "relayed", ("ex061009.log:7", "20061009.log:4", "20061009.log:6")),
        ("LF-UNAUTH-RELAY", "victim2@example.org", "accepted", ("ex061009.log:8", "20061009.log:5")),
    ]
