"""Exchange 2000/2003 message tracking (TAB) and Exchange 2007+ tracking CSV: every variant of the
research note (generic-smtp §6, §7.1), the event model, hostile input, corpus and sample."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest

from grammars import exchange_tracking as grammar
from grammars.common import anchored
from logforensics.readers import READERS, sniff_format
from logforensics.site import SiteProfile
from tests.conftest import CORPUS, SAMPLES, read_log, rows, utc

MSGTRK_CORPUS = CORPUS / "exchange-msgtrack"
SAMPLE = SAMPLES / "exchange2003" / "EXCH02" / "EXCH02.log" / "20060214.log"
needs_corpus = pytest.mark.skipif(not MSGTRK_CORPUS.is_dir(),
                                  reason=f"corpus folder {MSGTRK_CORPUS} not present")

HEADER = (
    "# Message Tracking Log File\n# Exchange System Attendant Version 6.5.7638.1\n"
    "# Date\tTime\tclient-ip\tClient-hostname\tPartner-Name\tServer-hostname\tserver-IP\tRecipient-Address\t"
    "Event-ID\tMSGID\tPriority\tRecipient-Report-Status\ttotal-bytes\tNumber-Recipients\tOrigination-Time\t"
    "Encryption\tservice-Version\tLinked-MSGID\tMessage-Subject\tSender-Address\n"
)


def t03(date: str, time: str, cip: str, chost: str, partner: str, rcpt: str, eid: int, msgid: str = "MSG1@EXCH02",
        size: str = "2048", sender: str = "a@example.net") -> str:
    return "\t".join([date, time, cip, chost, partner, "EXCH02", "10.20.1.10", rcpt, str(eid), msgid, "0", "-",
                      size, "1", f"{date} {time}", "0", "Version: 6.0.3790.1830", "-", "Hello", sender]) + "\n"


@pytest.mark.parametrize(("date", "time"), [
    ("2006-10-9", "0:0:16 GMT"), ("2006-10-09", "00:00:16 GMT"), ("2006-10-9", "00:00:16"),
    ("2006-10-09", "0:0:16"),
])
def test_2003_date_time_variants(tmp_path, date, time):
    res = read_log(tmp_path, HEADER + t03(date, time, "192.0.2.1", "mx.example.net", "SMTP", "u@acme-widgets.com", 1019),
                   name="20061009.log")
    assert res.inputs[0].format == "exchange-tracking"
    assert rows(res, "line", "ts") == [(4, utc("2006-10-09 00:00:16"))]


def test_2003_event_model(tmp_path):
    text = HEADER + "".join([
        t03("2006-2-14", "15:5:29 GMT", "203.0.113.45", "spam.example", "SMTP", "kim@example.net", 1019),
        t03("2006-2-14", "15:5:30 GMT", "-", "-", "-", "kim@example.net", 1033),
        t03("2006-2-14", "15:5:31 GMT", "198.51.100.77", "mx.example.net", "mx.example.net", "kim@example.net", 1020),
        t03("2006-2-14", "15:5:33 GMT", "198.51.100.77", "mx.example.net", "mx.example.net", "kim@example.net", 1031),
        t03("2006-2-14", "15:6:0 GMT", "-", "-", "Store", "jdoe@acme-widgets.com", 1027, msgid="MSG2@EXCH02",
            sender="jdoe@acme-widgets.com"),
        t03("2006-2-14", "15:6:1 GMT", "-", "-", "Store", "sales@acme-widgets.com", 1028, msgid="MSG2@EXCH02"),
        t03("2006-2-14", "15:6:2 GMT", "-", "-", "SMTP", "x%y@acme-widgets.com", 1030, msgid="<MSG3@EXCH02>"),
        t03("2006-2-14", "15:6:3 GMT", "-", "-", "-", "z@acme-widgets.com", 9999),
    ])
    res = read_log(tmp_path, text, name="20060214.log")
    report = res.inputs[0]
    assert (report.lines, report.events, report.skipped_lines) == (11, 8, 0)
    assert rows(res, "line", "event", "event_id", "verb", "direction", "status", "transport", "relay_host",
                "client_ip", "client_host", "recipient", "message") == [
        (4, "received", 1019, "smtp-submit", "in", None, None, None, "203.0.113.45", "spam.example",
         "kim@example.net", "MSG1@EXCH02"),
        (5, "note", 1033, "smtp-categorized", None, None, None, None, None, None, "kim@example.net", "MSG1@EXCH02"),
        (6, "note", 1020, "smtp-begin-outbound", None, None, None, None, None, None, "kim@example.net",
         "MSG1@EXCH02"),
        (7, "deliver", 1031, "smtp-transferred-out", "out", "sent", "smtp", "mx.example.net", None, None,
         "kim@example.net", "MSG1@EXCH02"),
        (8, "received", 1027, "store-submit", "local", None, None, None, None, None, "jdoe@acme-widgets.com",
         "MSG2@EXCH02"),
        (9, "deliver", 1028, "sd-local-delivery", "local", "sent", "store", None, None, None,
         "sales@acme-widgets.com", "MSG2@EXCH02"),
        (10, "deliver", 1030, "smtp-ndr", "local", "bounced", None, None, None, None, "x%y@acme-widgets.com",
         "MSG3@EXCH02"),
        (11, "note", 9999, "event-9999", None, None, None, None, None, None, "z@acme-widgets.com", "MSG1@EXCH02"),
    ]
    first = res.events.row(0, named=True)
    assert (first["server"], first["sender"], first["size"], first["format"]) == (
        "EXCH02", "a@example.net", 2048, "exchange-tracking")
    assert first["text"] == ("1019 SMTP submit message to AQ (message entered via SMTP): client 203.0.113.45 "
                             "(spam.example), partner SMTP, subject Hello")


def test_2003_without_header_and_with_lf_or_crlf(tmp_path):
    line = t03("2006-2-14", "6:12:6 GMT", "10.20.1.80", "WEB01", "SMTP", "sales@acme-widgets.com", 1019)
    res = read_log(tmp_path, (line + line).replace("\n", "\r\n"), name="20060214.log")
    assert res.inputs[0].format == "exchange-tracking"
    assert rows(res, "line", "event", "client_ip") == [(1, "received", "10.20.1.80"), (2, "received", "10.20.1.80")]


def test_not_taken_for_exchange55_and_55_not_taken(tmp_path):
    e55 = "ABC123\t1012\t2000.6.15 4:47:13 GMT\tIMS\tSMTP\t-\t/O=ACME/OU=SITE/CN=RECIPIENTS/CN=X\t0\t2048\t0\t1\t\t1\n"
    assert READERS["exchange-tracking"]().sniff(e55.splitlines()) == 0.0
    head = (HEADER + t03("2006-2-14", "6:12:6 GMT", "10.20.1.80", "WEB01", "SMTP", "s@acme-widgets.com", 1019))
    assert sniff_format(head.splitlines()) == "exchange-tracking"
    assert READERS["ims55-tracking"]().sniff(head.splitlines()) == 0.0


CSV_HEADER = (
    "#Software: Microsoft Exchange Server\r\n#Version: 8.1.240.5\r\n#Log-type: Message Tracking Log\r\n"
    "#Date: 2009-03-02T10:00:00.000Z\r\n#Fields: " + ",".join(grammar.FIELDS_2010) + "\r\n"
)


def csv26(ts: str, cip: str, chost: str, sip: str, shost: str, source: str, event: str, rcpt: str, status: str,
          sender: str = "promo@deals.example", subject: str = "Hi") -> str:
    vals = [ts, cip, chost, sip, shost, "", "EXCH07\\Default EXCH07", source, event, "4242", "<m1@deals.example>",
            rcpt, status, "1200", "2", "", "", subject, sender, sender, "", "", "", "", "", ""]
    return ",".join(vals) + "\r\n"


def test_2007_csv_event_model_quoting_and_recipients(tmp_path):
    text = "\ufeff" + CSV_HEADER + "".join([
        csv26("2009-03-02T10:00:01.123Z", "203.0.113.45", "spam.example", "10.20.1.10", "EXCH07", "SMTP", "RECEIVE",
              "a@example.net;b@example.org", "", subject='"Buy, now ""cheap"""'),
        csv26("2009-03-02T10:00:03.000Z", "10.20.1.10", "EXCH07", "198.51.100.77", "mx.example.net", "SMTP", "SEND",
              "a@example.net", "250 2.1.5 OK"),
        csv26("2009-03-02T10:00:04.000Z", "", "", "", "EXCH07", "SMTP", "FAIL", "b@example.org",
              '"550 5.1.1 User unknown, sorry"'),
        csv26("2009-03-02T10:00:05.000Z", "", "", "", "EXCH07", "STOREDRIVER", "DELIVER", "jdoe@acme-widgets.com", ""),
        csv26("2009-03-02T10:00:06.000Z", "", "", "", "EXCH07", "ROUTING", "EXPAND", "all@acme-widgets.com", ""),
    ])
    res = read_log(tmp_path, text.encode("utf-8"), name="MSGTRK20090302-1.LOG")
    report = res.inputs[0]
    assert (report.format, report.lines, report.events, report.skipped_lines) == ("exchange-tracking", 10, 6, 0)
    assert rows(res, "line", "ts", "event", "verb", "direction", "status", "recipient", "client_ip", "relay_host",
                "reply", "reply_text", "message") == [
        (6, pl.Series([utc("2009-03-02 10:00:01")]).dt.offset_by("123ms")[0], "received", "RECEIVE", "in", None,
         "a@example.net", "203.0.113.45", None, None, None, "4242"),
        (6, pl.Series([utc("2009-03-02 10:00:01")]).dt.offset_by("123ms")[0], "received", "RECEIVE", "in", None,
         "b@example.org", "203.0.113.45", None, None, None, "4242"),
        (7, utc("2009-03-02 10:00:03"), "deliver", "SEND", "out", "sent", "a@example.net", None, "mx.example.net",
         250, "2.1.5 OK", "4242"),
        (8, utc("2009-03-02 10:00:04"), "deliver", "FAIL", "local", "bounced", "b@example.org", None, None, 550,
         "5.1.1 User unknown, sorry", "4242"),
        (9, utc("2009-03-02 10:00:05"), "deliver", "DELIVER", "local", "sent", "jdoe@acme-widgets.com", None, None,
         None, None, "4242"),
        (10, utc("2009-03-02 10:00:06"), "note", "EXPAND", None, None, "all@acme-widgets.com", None, None, None, None,
         "4242"),
    ]
    assert set(res.events["server"].to_list()) == {"EXCH07"}
    assert res.events.row(0, named=True)["text"].endswith('| subject Buy, now "cheap"')
    assert res.events.row(0, named=True)["sender"] == "promo@deals.example"


def test_hostile_lines_are_skipped_with_warnings(tmp_path):
    good = t03("2006-2-14", "6:12:6 GMT", "10.20.1.80", "WEB01", "SMTP", "s@acme-widgets.com", 1019)
    text = (HEADER + good + "2006-2-14\t6:12:7 GMT\t10.20.1.80\tWEB01\n" + "\n"
            + "Feb 14 10:00:00 exch02 CRON[1]: (root) CMD (true)\n" + "\x00\xff\xfegarbage\n"
            + good.replace("6:12:6 GMT", "25:61:99 GMT", 1) + good)
    res = read_log(tmp_path, text, name="20060214.log")
    report = res.inputs[0]
    assert (report.format, report.lines, report.events, report.skipped_lines) == ("exchange-tracking", 10, 2, 4)
    src = str(tmp_path / "20060214.log")
    assert report.warnings[0].startswith(f"{src}:5: not a tracking row of the current field list: ")
    assert any(w.startswith(f"{src}:9: date/time is not valid") for w in report.warnings)
    assert rows(res, "line") == [(4,), (10,)]


def _grammar_rows(path: Path) -> int:
    """Every data line: the pyparsing element and the column path give the same fields."""
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    tab = any(x.startswith("# Message Tracking Log File") for x in lines[:3])
    fields: list[str] | None = None
    checked = 0
    for text in lines:
        if text.startswith("#"):
            if grammar.fields_2003.matches(text, parse_all=True):
                fields = grammar.fields_2003.parse_string(text, parse_all=True)["fields"].split("\t")
            elif text.startswith("#Fields:"):
                fields = [f.strip() for f in text[len("#Fields:"):].split(",")]
            continue
        if not text.strip():
            continue
        options = [fields] if fields else ([list(grammar.DEFAULT_FIELDS_2003)] if tab
                                           else [list(grammar.FIELDS_2013), list(grammar.FIELDS_2010)])
        for f in options:
            pattern = grammar.tab_pattern(f) if tab else grammar.csv_pattern(f)
            element = grammar.tab_line(f) if tab else grammar.csv_line(f)
            if not element.matches(text, parse_all=True):
                continue
            parsed = element.parse_string(text, parse_all=True).as_dict()
            col = pl.Series([text]).str.extract_groups(anchored(pattern)).struct.unnest().row(0, named=True)
            assert col == {k: parsed.get(k, "") for k in col}, text
            assert re.match(anchored(pattern), text)
            checked += 1
            break
        else:
            raise AssertionError(f"no field set parses {text!r}")
    return checked


def test_grammar_matches_column_path_on_sample():
    assert _grammar_rows(SAMPLE) == 65


@needs_corpus
def test_grammar_matches_column_path_on_corpus():
    assert _grammar_rows(MSGTRK_CORPUS / "elastic-beats_bom8_exchange2010_msgtrk.log") == 2
    assert _grammar_rows(MSGTRK_CORPUS / "elastic-integrations_test-messagetracking.log") == 6


@needs_corpus
def test_corpus_files_recognised_and_mapped():
    from logforensics.ingest import ingest

    res = ingest([MSGTRK_CORPUS], SiteProfile())
    got = {Path(r.path).name: (r.format, r.lines, r.events, r.skipped_lines) for r in res.inputs}
    assert got == {
        "elastic-beats_bom8_exchange2010_msgtrk.log": ("exchange-tracking", 7, 2, 0),
        "elastic-integrations_test-messagetracking.log": ("exchange-tracking", 6, 6, 0),
    }
    ev = res.events.filter(pl.col("source").str.ends_with("test-messagetracking.log"))
    assert ev.select("line", "event", "verb", "direction", "message", "client_ip", "relay_host", "sender",
                     "recipient", "reply", "size").rows() == [
        (1, "note", "HAREDIRECTFAIL", None, "70971234566456", None, None, "MAILER-DAEMON@host01.my.domain.com",
         "mailuser@my.domain.com", None, 15054),
        (2, "received", "RECEIVE", "in", "70912345566403", "10.11.12.14", None, "root@host01.my.domain.com",
         "mailuser@my.domain.com", None, 7229),
        (3, "received", "RECEIVE", "in", "70912345566407", "10.11.12.14", None, "root@pve-vhost01.my.domain.com",
         "mailuser@my.domain.com", None, 8251),
        (4, "deliver", "SEND", "out", "29519319995411", None, "exchange.example.com", "support@example.com",
         "uwe.musterman@example.com", 250, 38663),
        (5, "deliver", "SENDEXTERNAL", "out", "8774618205228", None,
         "global-mail-onmicrosoft-com.mail.protection.outlook.com", "", "email@email.com", 250, 136349),
        (6, "note", "NOTIFYMAPI", None, None, None, None, "email@email.com", None, None, None),
    ]
    beats = res.events.filter(pl.col("source").str.ends_with("bom8_exchange2010_msgtrk.log"))
    assert beats.select("line", "event", "verb", "ts").rows() == [
        (6, "note", "NOTIFYMAPI", pl.Series([utc("2016-04-05 00:00:02")]).dt.offset_by("52ms")[0]),
        (7, "note", "NOTIFYMAPI", pl.Series([utc("2016-04-05 00:00:02")]).dt.offset_by("145ms")[0]),
    ]


@needs_corpus
def test_no_other_corpus_file_is_taken_for_exchange_tracking():
    from logforensics.ingest import split_lines
    from logforensics.sources import decode_text

    claimed = []
    for path in sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.name != "SOURCES.md"):
        text, _ = decode_text(path.read_bytes())
        if sniff_format(split_lines(text).head(50).to_list()) == "exchange-tracking":
            claimed.append(str(path.relative_to(CORPUS)))
    assert claimed == sorted(f"exchange-msgtrack/{p.name}" for p in MSGTRK_CORPUS.glob("*.log"))


def test_sample_matches_ground_truth():
    from logforensics.ingest import ingest

    res = ingest([SAMPLE], SiteProfile(timezone="America/Chicago", local_domains=("acme-widgets.com",)))
    report = res.inputs[0]
    assert (report.format, report.lines, report.events, report.skipped_lines) == ("exchange-tracking", 68, 65, 0)
    ev = res.events
    assert ev.group_by("event").len().sort("event").rows() == [
        ("deliver", 15), ("note", 35), ("received", 15)]
    truth = []
    for text in (SAMPLES / "exchange2003" / "GROUND_TRUTH.md").read_text().splitlines():
        m = re.match(r"^\| (\d+) \| ([^|]+) \| [^|]+ \| `([^`]+)` \| ([a-z]+)", text)
        if m:
            truth.append((int(m[1]), m[2].strip(), m[3], m[4]))
    assert len(truth) == 15
    received = ev.filter(pl.col("event") == "received")
    assert received.select("line", "recipient").rows() == [(n, r) for n, _, r, _ in truth]
    for n, ip, rcpt, verdict in truth:
        row = received.filter(pl.col("line") == n).row(0, named=True)
        assert row["client_ip"] == (None if ip == "(Store)" else ip), n
        later = ev.filter((pl.col("event") == "deliver") & (pl.col("message") == row["message"])
                          & (pl.col("recipient") == rcpt) & (pl.col("ts") >= row["ts"]))
        assert later["direction"].to_list() == (["out"] if verdict == "relayed" else ["local"]), n
    assert set(ev["server"].to_list()) == {"EXCH02"}
