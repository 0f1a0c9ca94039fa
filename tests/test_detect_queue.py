"""Queue-linked verdicts for MTA logs: deliveries joined to the client that submitted the message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from logforensics.detect.findings import build_findings, inbound_recipients
from logforensics.schema import conform
from logforensics.site import SiteProfile

SITE = SiteProfile(timezone="UTC", local_domains=("acme-widgets.com",), trusted_networks=("10.20.0.0/16",),
                   relay_policy="authenticated-or-ip-allowlist")
T0 = datetime(2004, 3, 9, 10, 0, 0, tzinfo=UTC)
SRC = "mail.log"


def ev(line: int, minutes: float, event: str, **cols) -> dict:
    return {"source": cols.pop("source", SRC), "line": line, "ts": T0 + timedelta(minutes=minutes),
            "format": "postfix", "server": cols.pop("server", "mx1"), "event": event, **cols}


def frame(*rows: dict) -> pl.DataFrame:
    return conform(pl.DataFrame(list(rows), infer_schema_length=None))


def findings(events: pl.DataFrame) -> pl.DataFrame:
    return build_findings(events, SITE, {SRC: "ab" * 32}, lambda path, lines: [f"{path}:{n}" for n in lines])


def test_open_relay_is_linked_through_the_queue_id():
    events = frame(
        ev(1, 0, "received", message="10C0D60C50", client_host="spam.example", client_ip="203.0.113.9",
           direction="in"),
        ev(2, 0.1, "queued", message="10C0D60C50", sender="x@spam.example", size=900),
        ev(3, 0.5, "deliver", message="10C0D60C50", recipient="victim@yahoo.example", direction="out",
           status="sent", relay_host="mx.yahoo.example[198.51.100.7]:25", transport="smtp"),
        ev(4, 0.6, "deliver", message="10C0D60C50", recipient="jsmith@acme-widgets.com", direction="local",
           status="sent", transport="local"),
    )
    f = findings(events)
    assert f.select("verdict", "recipient", "client_ip", "sender", "authenticated").rows() == [
        ("relayed", "victim@yahoo.example", "203.0.113.9", "x@spam.example", False)]
    assert [(e["path"], e["line"]) for e in f["evidence"][0]] == [(SRC, 1), (SRC, 2), (SRC, 3)]
    assert f["time"][0] == T0


def test_deferred_then_sent_is_one_recipient_relayed_citing_both_attempts():
    events = frame(
        ev(1, 0, "received", message="AAA", client_ip="203.0.113.9", direction="in"),
        ev(2, 1, "deliver", message="AAA", recipient="v@far.example", direction="out", status="deferred"),
        ev(3, 90, "deliver", message="AAA", recipient="v@far.example", direction="out", status="sent"),
    )
    f = findings(events)
    assert f["verdict"].to_list() == ["relayed"]
    assert [e["line"] for e in f["evidence"][0]] == [1, 2, 3]


def test_never_delivered_out_is_accepted_not_relayed():
    events = frame(
        ev(1, 0, "received", message="AAA", client_ip="203.0.113.9", direction="in"),
        ev(2, 1, "deliver", message="AAA", recipient="v@far.example", direction="out", status="bounced"),
        ev(3, 2, "deliver", message="AAA", recipient="w@far.example", direction="out", status="deferred"),
    )
    assert findings(events).select("recipient", "verdict").rows() == [
        ("v@far.example", "accepted"), ("w@far.example", "accepted")]


def test_reused_queue_id_links_to_the_latest_arrival_before_the_delivery():
    events = frame(
        ev(1, 0, "received", message="AAA", client_ip="10.20.1.5", direction="in"),
        ev(2, 1, "deliver", message="AAA", recipient="friend@far.example", direction="out", status="sent"),
        ev(3, 60, "received", message="AAA", client_ip="203.0.113.9", direction="in"),
        ev(4, 61, "deliver", message="AAA", recipient="victim@far.example", direction="out", status="sent"),
    )
    rcpts = inbound_recipients(events).sort("line")
    assert rcpts.select("line", "client_ip", "recipient").rows() == [
        (1, "10.20.1.5", "friend@far.example"), (3, "203.0.113.9", "victim@far.example")]
    # The trusted LAN client raises nothing; the outside one is a relay.
    assert findings(events).select("client_ip", "verdict").rows() == [("203.0.113.9", "relayed")]


def test_same_queue_id_on_another_server_does_not_link():
    events = frame(
        ev(1, 0, "received", message="AAA", client_ip="203.0.113.9", direction="in", server="mx1"),
        ev(2, 1, "deliver", message="AAA", recipient="v@far.example", direction="out", status="sent",
           server="mx2"),
    )
    assert inbound_recipients(events).is_empty()


def test_authenticated_and_loopback_clients_are_trusted():
    events = frame(
        ev(1, 0, "received", message="AAA", client_ip="198.51.100.4", auth_user="info@acme-widgets.com",
           direction="in"),
        ev(2, 1, "deliver", message="AAA", recipient="v@far.example", direction="out", status="sent"),
        ev(3, 2, "received", message="BBB", client_ip="127.0.0.1", direction="in"),
        ev(4, 3, "deliver", message="BBB", recipient="w@far.example", direction="out", status="sent"),
    )
    rcpts = inbound_recipients(events).sort("line")
    assert rcpts.select("authenticated", "auth_user").rows() == [(True, "info@acme-widgets.com"), (False, None)]
    assert findings(events).is_empty()


def test_orig_to_is_the_offered_form_and_decides_the_rule():
    events = frame(
        ev(1, 0, "received", message="AAA", client_ip="203.0.113.9", direction="in"),
        ev(2, 1, "deliver", message="AAA", recipient="victim@far.example",
           orig_recipient="victim%far.example@acme-widgets.com", direction="out", status="sent"),
    )
    f = findings(events)
    assert f.select("form", "recipient", "effective_recipient", "verdict", "rule").rows() == [
        ("percent-hack", "victim%far.example@acme-widgets.com", "victim@far.example", "relayed",
         "LF-ROUTED-ADDRESS")]


def test_recipients_listed_on_the_arrival_without_delivery_lines_are_accepted():
    events = frame(
        ev(1, 0, "received", message="1LdZU0-0003hW-Vp", client_ip="203.0.113.9", direction="in",
           recipient="a@far.example", format="exim"),
        ev(1, 0, "received", message="1LdZU0-0003hW-Vp", client_ip="203.0.113.9", direction="in",
           recipient="b@far.example", format="exim"),
        ev(2, 1, "deliver", message="1LdZU0-0003hW-Vp", recipient="a@far.example", direction="out",
           status="sent", format="exim"),
    )
    assert findings(events).select("recipient", "verdict").sort("recipient").rows() == [
        ("a@far.example", "relayed"), ("b@far.example", "accepted")]


def test_reject_lines_without_a_session_are_refused_recipients():
    events = frame(
        ev(1, 0, "rcpt", direction="in", client_ip="203.0.113.9", recipient="v@far.example", reply=554,
           reply_text="5.7.1 <v@far.example>: Relay access denied", sender="x@spam.example"),
    )
    f = findings(events)
    assert f.select("verdict", "severity", "recipient").rows() == [("refused", "low", "v@far.example")]


def _sasl_relay(*extra: dict, client: str = "198.51.100.4") -> pl.DataFrame:
    return frame(
        *extra,
        ev(10, 60, "received", message="AAA", client_ip=client, auth_user="jsmith", direction="in"),
        ev(11, 61, "deliver", message="AAA", recipient="v@far.example", direction="out", status="sent"),
    )


def test_authenticated_relay_is_quiet_without_signs_of_a_stolen_password():
    assert findings(_sasl_relay()).is_empty()


def test_authenticated_relay_after_failed_logins_is_auth_abuse():
    fails = [ev(n, 50 + n, "auth", client_ip="198.51.100.4", status="failed") for n in (1, 2, 3)]
    f = findings(_sasl_relay(*fails))
    assert f.select("rule", "verdict", "severity", "auth_user").rows() == [
        ("LF-AUTH-ABUSE", "relayed", "high", "jsmith")]
    assert "stolen" in f["explanation"][0]
    assert [e["line"] for e in f["evidence"][0]] == [10, 11, 1, 2, 3]  # the failed logins are cited
    # A local recipient of the same message is no relay, so no LF-AUTH-ABUSE for it.
    local = _sasl_relay(*fails).vstack(frame(ev(12, 61, "deliver", message="AAA", recipient="ann@acme-widgets.com",
                                                direction="local", status="sent")))
    assert findings(local)["recipient"].to_list() == ["v@far.example"]
    # Failures for the same account from another address count too; failures after the relay do not.
    other = [ev(1, 30, "auth", client_ip="203.0.113.50", auth_user="jsmith", status="failed")]
    assert findings(_sasl_relay(*other))["rule"].to_list() == ["LF-AUTH-ABUSE"]
    later = [ev(20, 90, "auth", client_ip="198.51.100.4", status="failed")]
    assert findings(_sasl_relay(*later)).is_empty()
    # One failure from the same address just before is a mistyped password, not a stolen one.
    assert findings(_sasl_relay(fails[0])).is_empty()
    # From the trusted LAN it stays quiet.
    assert findings(_sasl_relay(*fails, client="10.20.1.5")).is_empty()


def test_authenticated_burst_to_many_outside_domains_is_auth_abuse():
    rows = [ev(1, 0, "received", message="BBB", client_ip="198.51.100.9", auth_user="ann", direction="in")]
    rows += [ev(2 + i, 1, "deliver", message="BBB", recipient=f"x@d{i}.example", direction="out", status="sent")
             for i in range(10)]
    assert set(findings(frame(*rows))["rule"]) == {"LF-AUTH-ABUSE"}
    assert findings(frame(*rows[:10])).is_empty()  # nine domains: an ordinary mailing


def test_debian_duplicate_syslog_files_count_once_cite_both_and_do_not_depend_on_file_order(tmp_path):
    """Debian's rsyslog writes mail lines to mail.log and again to mail.info/mail.warn: a refusal in
    both is one finding citing both lines, and reading the files in either order gives the same."""
    from logforensics.detect.findings import build_findings_by_server
    from logforensics.ingest import ingest
    from logforensics.site import load_site_profile
    from tests.conftest import SAMPLES

    log = next(SAMPLES.glob("postfix/*/var/log/mail.log-20050103"))
    logs = tmp_path / "mx1" / "var" / "log"
    logs.mkdir(parents=True)
    lines = log.read_text().splitlines(keepends=True)
    (logs / "mail.log").write_text("".join(lines))
    (logs / "mail.info").write_text("".join(lines[:-2]))  # a copy, not byte-identical
    site = load_site_profile(SAMPLES / "site.toml")
    texts = lambda path, numbers: [None] * len(numbers)  # noqa: E731
    single = build_findings_by_server(ingest([logs / "mail.log"], site, year=2005).events, site, {}, texts)
    events = ingest([tmp_path], site, year=2005).events
    both = build_findings_by_server(events, site, {}, texts)
    assert both.height == single.height > 0
    refused = both.filter(pl.col("verdict") == "refused")
    assert refused.height and all(
        {Path(e["path"]).name for e in f["evidence"]} == {"mail.log", "mail.info"} for f in refused.iter_rows(named=True))
    reversed_files = events.with_row_index("i").sort(["source", "i"], descending=[True, False]).drop("i")
    assert build_findings_by_server(reversed_files, site, {}, texts).equals(both)


def test_reject_warning_and_warn_lines_are_no_recipient_of_their_own(tmp_path):
    """``reject_warning``/``warn`` name a recipient the server did not refuse: the message's queue lines
    tell its real fate, so they add no "attempted" finding of their own."""
    from logforensics.scan import scan

    log = tmp_path / "mx" / "var" / "log" / "mail.log"
    log.parent.mkdir(parents=True)
    log.write_text(
        "Mar  1 10:00:00 mx postfix/smtpd[100]: connect from unknown[203.0.113.5]\n"
        "Mar  1 10:00:01 mx postfix/smtpd[100]: NOQUEUE: reject_warning: RCPT from unknown[203.0.113.5]: 554 5.7.1 "
        "<v@remote.example>: Relay access denied; from=<s@bad.example> to=<v@remote.example> proto=ESMTP helo=<x>\n"
        "Mar  1 10:00:01 mx postfix/smtpd[100]: NOQUEUE: warn: RCPT from unknown[203.0.113.5]: watch this; "
        "from=<s@bad.example> to=<w@remote.example> proto=ESMTP helo=<x>\n"
        "Mar  1 10:00:01 mx postfix/smtpd[100]: 1A2B3C4D5E: client=unknown[203.0.113.5]\n"
        "Mar  1 10:00:02 mx postfix/qmgr[102]: 1A2B3C4D5E: from=<s@bad.example>, size=700, nrcpt=2 (queue active)\n"
        "Mar  1 10:00:03 mx postfix/smtp[103]: 1A2B3C4D5E: to=<v@remote.example>, relay=mx.remote.example"
        "[198.51.100.9]:25, delay=1, delays=0.5/0/0.3/0.2, dsn=2.0.0, status=sent (250 ok)\n"
        "Mar  1 10:00:03 mx postfix/smtp[103]: 1A2B3C4D5E: to=<w@remote.example>, relay=mx.remote.example"
        "[198.51.100.9]:25, delay=1, delays=0.5/0/0.3/0.2, dsn=2.0.0, status=sent (250 ok)\n"
        "Mar  1 10:00:04 mx postfix/smtpd[100]: disconnect from unknown[203.0.113.5]\n")
    result = scan([tmp_path], SITE, year=2007)
    assert sorted(result.findings.select("recipient", "verdict").rows()) == [
        ("v@remote.example", "relayed"), ("w@remote.example", "relayed")]
    assert result.findings["probe"].to_list() == [None, None]  # a one-letter HELO alone is no probe


HANDOFF = """\
Dec 31 09:15:01 pfx1 postfix/smtpd[6230]: 6A7B81DC20: client=unknown[203.0.113.150]
Dec 31 09:15:01 pfx1 postfix/qmgr[815]: 6A7B81DC20: from=<casino@casino.example>, size=2048, nrcpt=1 (queue active)
Dec 31 09:15:02 pfx1 postfix/smtp[6234]: 6A7B81DC20: to=<player@games.example>, relay=127.0.0.1[127.0.0.1]:10024, delay=0.6, delays=0.1/0/0/0.5, dsn=2.0.0, status=sent (250 2.0.0 Ok, id=01234-02, from MTA([127.0.0.1]:10025): 250 2.0.0 Ok: queued as 7B8C91DC21)
Dec 31 09:15:02 pfx1 postfix/smtpd[6236]: 7B8C91DC21: client=localhost[127.0.0.1]{orig}
Dec 31 09:15:02 pfx1 postfix/qmgr[815]: 7B8C91DC21: from=<casino@casino.example>, size=2510, nrcpt=1 (queue active)
Dec 31 09:15:04 pfx1 postfix/smtp[6238]: 7B8C91DC21: to=<player@games.example>, relay=mx.games.example[198.51.100.130]:25, delay=2, delays=0/0/1/1, dsn=2.0.0, status=sent (250 OK id=1GzXXX-0001aB-00)
Dec 31 09:20:01 pfx1 postfix/pickup[900]: 8C9D0E1F2A: uid=33 from=<www-data>
Dec 31 09:20:02 pfx1 postfix/smtp[6234]: 8C9D0E1F2A: to=<buyer@shop.example>, relay=127.0.0.1[127.0.0.1]:10024, delay=0.6, delays=0.1/0/0/0.5, dsn=2.0.0, status=sent (250 2.0.0 Ok, id=01234-03, from MTA([127.0.0.1]:10025): 250 2.0.0 Ok: queued as 9D0E1F2A3B)
Dec 31 09:20:02 pfx1 postfix/smtpd[6236]: 9D0E1F2A3B: client=localhost[127.0.0.1]
Dec 31 09:20:04 pfx1 postfix/smtp[6238]: 9D0E1F2A3B: to=<buyer@shop.example>, relay=mx.shop.example[198.51.100.131]:25, delay=2, delays=0/0/1/1, dsn=2.0.0, status=sent (250 OK)
"""


def test_content_filter_handoff_continues_the_original_message(tmp_path):
    """A message passed through a content filter (amavis) and re-injected from loopback is one
    message: the original client's relay is 'relayed' once, citing both queue ids' lines; a local
    submission passed the same way stays quiet."""
    from logforensics.scan import scan

    for orig in (", orig_client=unknown[203.0.113.150]", ""):  # with and without orig_client=
        root = tmp_path / f"case{len(orig)}"
        log = root / "pfx1" / "var" / "log" / "mail.log"
        log.parent.mkdir(parents=True)
        log.write_text(HANDOFF.replace("{orig}", orig))
        result = scan([root], SITE, year=2006)
        rows = result.findings.select("recipient", "verdict", "client_ip").rows()
        assert rows == [("player@games.example", "relayed", "203.0.113.150")], orig
        assert [e["line"] for e in result.findings["evidence"][0]] == [1, 2, 3, 6]


def test_mainlog_and_rejectlog_copies_pair_by_sender_too(tmp_path):
    """Two refusals of one recipient in the same second from different senders: each mainlog line pairs
    with its own rejectlog copy, never with the other's."""
    from logforensics.scan import scan

    lines = ["2006-12-30 10:00:01 H=scanner.example.net (nmap.scanme.org) [203.0.113.5] F=<> rejected RCPT "
             "<relaytest@nmap.scanme.org>: relay not permitted\n",
             "2006-12-30 10:00:01 H=scanner.example.net (nmap.scanme.org) [203.0.113.5] "
             "F=<antispam@nmap.scanme.org> rejected RCPT <relaytest@nmap.scanme.org>: relay not permitted\n"]
    logs = tmp_path / "exmx" / "var" / "log" / "exim4"
    logs.mkdir(parents=True)
    (logs / "mainlog").write_text("".join(lines))
    (logs / "rejectlog").write_text("".join(lines) + "2006-12-30 10:00:09 H=(pc) [203.0.113.67] F=<s@x.example> "
                                    "rejected after DATA: spam\n")  # not byte-identical to the mainlog
    f = scan([tmp_path], SITE).findings
    cited = sorted(tuple(f"{e['path'].rsplit('/', 1)[1]}:{e['line']}" for e in ev) for ev in f["evidence"])
    assert cited == [("mainlog:1", "rejectlog:1"), ("mainlog:2", "rejectlog:2")]


def test_a_message_refused_at_end_of_data_is_a_refused_recipient(tmp_path):
    """Postfix milter-reject at END-OF-MESSAGE: the server had accepted the outside recipient and only
    the content filter stopped the relay; the first recipient the line names is a refused finding."""
    from logforensics.scan import scan

    log = tmp_path / "mx1" / "var" / "log" / "mail.log"
    log.parent.mkdir(parents=True)
    log.write_text(
        "Mar 12 23:08:10 mx1 postfix/smtpd[27650]: 58FE9EDCE4: client=x.isp.rs[77.46.133.9]\n"
        "Mar 12 23:08:11 mx1 postfix/cleanup[27656]: 58FE9EDCE4: milter-reject: END-OF-MESSAGE from "
        "x.isp.rs[77.46.133.9]: 5.7.1 Blocked by SpamAssassin; from=<office@isp.rs> to=<tom78@web.de> "
        "proto=ESMTP helo=<x>\n")
    f = scan([tmp_path], SITE, year=2015).findings
    assert f.select("recipient", "verdict", "severity").rows() == [("tom78@web.de", "refused", "low")]
    assert "refused it (milter-reject)" in f["explanation"][0]


def test_a_delivery_refused_by_the_remote_server_is_explained_as_such():
    events = frame(
        ev(1, 0, "received", message="B0", client_ip="203.0.113.9", direction="in"),
        ev(2, 1, "deliver", message="B0", recipient="eva@yahoo.example", direction="out", status="deferred"),
        ev(3, 2, "deliver", message="B0", recipient="eva@yahoo.example", direction="out", status="bounced"),
    )
    f = findings(events).row(0, named=True)
    assert f["verdict"] == "accepted"
    assert "tried to send it out, but the attempt ended bounced" in f["explanation"]
    assert [e["line"] for e in f["evidence"]] == [1, 2, 3]


def test_exim_rejectlog_refusal_after_data_names_its_envelope_recipients(tmp_path):
    from logforensics.scan import scan

    logs = tmp_path / "smtp2" / "var" / "log" / "exim4"
    logs.mkdir(parents=True)
    (logs / "rejectlog").write_text(
        "2011-06-20 14:26:02 H=(user-pc) [41.190.3.3] F=<cheap@replica-deal.ru> rejected after DATA: spam\n"
        "Envelope-from: <cheap@replica-deal.ru>\n"
        "Envelope-to: <bob.k@gmx.net>\n"
        "  <tina@t-online.de>\n"
        "P Received: from [41.190.3.3] (helo=user-pc)\n"
        "  Subject: Rolex 80% off\n")
    f = scan([tmp_path], SITE).findings
    assert sorted(f.select("recipient", "verdict").rows()) == [("bob.k@gmx.net", "refused"),
                                                               ("tina@t-online.de", "refused")]
