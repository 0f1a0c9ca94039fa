"""IIS SMTP service / Exchange 2000-2003 SMTP protocol log (W3C extended and NCSA): every variant of
the research note (generic-smtp §5), sessions, outbound pairing, hostile input, corpus and sample."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest

from grammars import w3c_smtp as grammar
from grammars.common import anchored
from logforensics.readers import READERS, sniff_format
from logforensics.site import SiteProfile
from tests.conftest import CORPUS, SAMPLES, read_log, rows, utc

IIS_CORPUS = CORPUS / "iis-smtp"
SAMPLE = SAMPLES / "iis-smtp" / "WEB01" / "LogFiles" / "SMTPSVC1" / "ex060214.log"
needs_corpus = pytest.mark.skipif(not IIS_CORPUS.is_dir(), reason=f"corpus folder {IIS_CORPUS} not present")

HEADER5 = (
    "#Software: Microsoft Internet Information Services 5.0\n#Version: 1.0\n#Date: 2006-10-09 05:00:15\n"
    "#Fields: date time c-ip cs-username s-sitename s-computername s-ip s-port cs-method cs-uri-stem "
    "cs-uri-query sc-status sc-win32-status sc-bytes cs-bytes time-taken cs-version cs-host cs(User-Agent) "
    "cs(Cookie) cs(Referer) \n"
)
# Research note §5.1, verbatim (corpus iis-smtp/ossec-docs_exchange2000_smtp_w3c.log).
OSSEC = (
    "2006-10-09 05:00:15 24.118.118.106 36A42160 SMTPSVC1 MEE-PDC 192.168.1.2 0 HELO - +36A42160 250 0 48 13 0 SMTP - - - -\n"
    "2006-10-09 05:00:16 24.118.118.106 36A42160 SMTPSVC1 MEE-PDC 192.168.1.2 0 MAIL - +FROM:+<EldonpyzWestoncusk@sbcglobal.net> 250 0 57 45 0 SMTP - - - -\n"
    "2006-10-09 05:00:16 24.118.118.106 36A42160 SMTPSVC1 MEE-PDC 192.168.1.2 0 RCPT - +TO:+<pamb@meelift.com> 250 0 29 27 0 SMTP - - - -\n"
    "2006-10-09 05:00:19 24.118.118.106 36A42160 SMTPSVC1 MEE-PDC 192.168.1.2 0 DATA - +<4F5002F2.860022@web.de> 250 0 108 1399 1922 SMTP - - - -\n"
    "2006-10-09 05:01:04 24.95.255.99 - SMTPSVC1 MEE-PDC 192.168.1.2 0 xxxx - +rr.com 500 0 32 11 0 SMTP - - - -\n"
)
# Research note §5.1 outbound (corpus iis-smtp/blog-lichty_case-of-the-open-relay_iis-smtp-w3c.log).
LICHTY = (
    "2017-02-09 05:28:28 66.196.118.34 OutboundConnectionCommand SMTPSVC1 VSERVER14541 - 25 MAIL - "
    "FROM:<MillionairesBlueprint@earthlink.com>+SIZE=1722 0 0 4 0 0 SMTP - - - -\n"
    "2017-02-09 05:28:28 66.196.118.34 OutboundConnectionResponse SMTPSVC1 VSERVER14541 - 25 - - "
    "421+4.7.0+[TSS04]+Messages+from+192.223.13.201+temporarily+deferred+due+to+user+complaints+-+4.16.55.1;"
    "+see+https://help.yahoo.com/kb/postmaster/SLN3434.html 0 0 157 0 16 SMTP - - - -\n"
)
# Research note §5.1: the IIS 7 field set without date/time.
IIS7 = (
    "#Software: Microsoft Internet Information Services 7.0\n#Version: 1.0\n#Date: 2010-01-09 18:49:30\n"
    "#Fields: c-ip cs-username s-sitename s-computername s-ip s-port cs-method cs-uri-query sc-win32-status "
    "cs-bytes cs-version cs(User-Agent) cs(Referer)\n"
    "127.0.0.1 MYHOST-MYSERVER SMTPSVC1 MYHOST-MYSERVER 127.0.0.1 0 EHLO +ServerName 0 18 SMTP - -\n"
    "127.0.0.1 MYHOST-MYSERVER SMTPSVC1 MYHOST-MYSERVER 127.0.0.1 0 MAIL +FROM:enquiries@company.com 0 47 SMTP - -\n"
    "127.0.0.1 MYHOST-MYSERVER SMTPSVC1 MYHOST-MYSERVER 127.0.0.1 0 RCPT +TO:<martin@hinshelwood.com> 0 32 SMTP - -\n"
)
# Research note §5.2, verbatim (corpus iis-smtp/ossec-docs_exchange2000_smtp_ncsa.log).
NCSA = (
    '205.188.158.121 - OutboundConnectionCommand [11/Oct/2006:13:16:39 -0600] "EHLO -?mee-pdc.meelift.com SMTP" 0 4\n'
    '61.47.65.115 - 207.250.64.66 [11/Oct/2006:13:16:41 -0600] "MAIL -?+FROM:+<Keith@boardermail.com> SMTP" 250 46\n'
    '61.47.65.115 - 207.250.64.66 [11/Oct/2006:13:16:41 -0600] "RCPT -?+TO:+<s-r_kke@meelift.com> SMTP" 550 32\n'
    '205.188.158.121 - OutboundConnectionResponse [11/Oct/2006:13:16:39 -0600] "- -?250-rly-yi06.mx.aol.com SMTP" 0 58\n'
)


def _line(t: str, ip: str, helo: str, verb: str, arg: str, status: int) -> str:
    return f"2006-02-14 {t} {ip} {helo} SMTPSVC1 WEB01 10.20.1.80 0 {verb} - {arg} {status} 0 1 1 0 SMTP - - - -\n"


def test_ossec_w3c_lines(tmp_path):
    res = read_log(tmp_path, HEADER5 + OSSEC, name="ex061009.log")
    report = res.inputs[0]
    assert (report.format, report.lines, report.events, report.skipped_lines) == ("w3c-smtp", 9, 5, 0)
    assert rows(res, "line", "event", "verb", "reply", "client_ip", "helo", "sender", "recipient", "message") == [
        (5, "helo", "HELO", 250, "24.118.118.106", "36A42160", None, None, None),
        (6, "mail", "MAIL", 250, "24.118.118.106", "36A42160", "EldonpyzWestoncusk@sbcglobal.net", None, None),
        (7, "rcpt", "RCPT", 250, "24.118.118.106", "36A42160", "EldonpyzWestoncusk@sbcglobal.net",
         "pamb@meelift.com", None),
        (8, "data", "DATA", 250, "24.118.118.106", "36A42160", "EldonpyzWestoncusk@sbcglobal.net", None,
         "4F5002F2.860022@web.de"),
        (9, "command", "XXXX", 500, "24.95.255.99", None, None, None, None),
    ]
    ev = res.events.row(2, named=True)
    assert ev["ts"] == utc("2006-10-09 05:00:16")
    assert ev["server"] == "MEE-PDC"
    assert ev["direction"] == "in"
    assert ev["format"] == "w3c-smtp"
    assert ev["text"] == "RCPT TO: <pamb@meelift.com>"
    assert ev["reply_text"] is None
    assert ev["session"] == f"{tmp_path / 'ex061009.log'}#24.118.118.106#L5"


def test_relay_denial_is_rcpt_row_with_reply(tmp_path):
    text = HEADER5 + _line("10:00:00", "203.0.113.9", "spam.example", "HELO", "+spam.example", 250) \
        + _line("10:00:01", "203.0.113.9", "spam.example", "MAIL", "+FROM:<a@spam.example>", 250) \
        + _line("10:00:02", "203.0.113.9", "spam.example", "RCPT", "+TO:<victim@example.net>", 550)
    res = read_log(tmp_path, text, name="ex060214.log")
    rcpt = res.events.filter(pl.col("event") == "rcpt").row(0, named=True)
    assert (rcpt["line"], rcpt["reply"], rcpt["recipient"], rcpt["sender"], rcpt["helo"], rcpt["client_ip"]) == (
        7, 550, "victim@example.net", "a@spam.example", "spam.example", "203.0.113.9")


def test_outbound_command_paired_with_next_response(tmp_path):
    res = read_log(tmp_path, LICHTY, name="ex170209.log")
    assert res.inputs[0].format == "w3c-smtp"
    assert rows(res, "line", "event", "direction", "verb", "reply", "reply_line", "relay_host", "sender", "size") == [
        (1, "mail", "out", "MAIL", 421, 2, "66.196.118.34", "MillionairesBlueprint@earthlink.com", 1722),
        (2, "reply", "out", None, 421, None, "66.196.118.34", "MillionairesBlueprint@earthlink.com", None),
    ]
    mail = res.events.row(0, named=True)
    assert mail["reply_text"] == ("4.7.0 [TSS04] Messages from 192.223.13.201 temporarily deferred due to user "
                                  "complaints - 4.16.55.1; see https://help.yahoo.com/kb/postmaster/SLN3434.html")
    assert mail["client_ip"] is None
    assert mail["server"] == "VSERVER14541"


def test_outbound_pairing_across_interleaved_remote_hosts(tmp_path):
    def out(t, ip, kind, verb, arg):
        return (f"2006-02-14 {t} {ip} OutboundConnection{kind} SMTPSVC1 WEB01 - 25 {verb} - {arg} "
                "0 0 4 0 0 SMTP - - - -\n")
    text = (out("10:00:00", "198.51.100.1", "Response", "-", "220+a.example")
            + out("10:00:00", "198.51.100.2", "Response", "-", "220+b.example")
            + out("10:00:01", "198.51.100.1", "Command", "RCPT", "TO:<x@a.example>")
            + out("10:00:01", "198.51.100.2", "Command", "RCPT", "TO:<y@b.example>")
            + out("10:00:02", "198.51.100.2", "Response", "-", "550+5.1.1+no+such+user")
            + out("10:00:02", "198.51.100.1", "Response", "-", "250+2.1.5+OK"))
    res = read_log(tmp_path, text, name="ex060214.log")
    got = rows(res, "line", "event", "recipient", "reply", "reply_text", "reply_line", "relay_host")
    assert got[2] == (3, "rcpt", "x@a.example", 250, "2.1.5 OK", 6, "198.51.100.1")
    assert got[3] == (4, "rcpt", "y@b.example", 550, "5.1.1 no such user", 5, "198.51.100.2")


def test_header_block_mid_file_changes_fields(tmp_path):
    second = ("#Software: Microsoft Internet Information Services 6.0\n#Version: 1.0\n#Date: 2006-02-14 14:30:12\n"
              "#Fields: date time c-ip cs-username s-computername s-ip s-port cs-method cs-uri-query sc-status "
              "time-taken cs-version \n"
              "2006-02-14 14:31:00 192.0.2.5 relay.example WEB01 10.20.1.80 0 RCPT +TO:<x@example.org> 550 0 SMTP\n")
    res = read_log(tmp_path, HEADER5 + OSSEC[:OSSEC.index("\n") + 1] + second, name="ex060214.log")
    report = res.inputs[0]
    assert (report.lines, report.events, report.skipped_lines) == (10, 2, 0)
    assert rows(res, "line", "ts", "verb", "reply", "recipient", "server", "helo") == [
        (5, utc("2006-10-09 05:00:15"), "HELO", 250, None, "MEE-PDC", "36A42160"),
        (10, utc("2006-02-14 14:31:00"), "RCPT", 550, "x@example.org", "WEB01", "relay.example"),
    ]


def test_iis7_field_set_without_date_time_uses_date_directive(tmp_path):
    res = read_log(tmp_path, IIS7, name="ex100109.log")
    report = res.inputs[0]
    assert (report.format, report.events, report.skipped_lines) == ("w3c-smtp", 3, 0)
    assert set(res.events["ts"].to_list()) == {utc("2010-01-09 18:49:30")}
    assert any("no date/time" in w and "#Date" in w for w in report.warnings)
    assert rows(res, "line", "verb", "reply", "sender", "recipient", "helo") == [
        (5, "EHLO", None, None, None, "MYHOST-MYSERVER"),
        (6, "MAIL", None, "enquiries@company.com", None, "MYHOST-MYSERVER"),
        (7, "RCPT", None, "enquiries@company.com", "martin@hinshelwood.com", "MYHOST-MYSERVER"),
    ]


def test_ncsa_variant_local_time_with_offset(tmp_path):
    res = read_log(tmp_path, NCSA, name="nc061011.log", site=SiteProfile(timezone="America/Chicago"))
    report = res.inputs[0]
    assert (report.format, report.events, report.skipped_lines) == ("w3c-smtp", 4, 0)
    assert rows(res, "line", "ts", "direction", "event", "verb", "reply", "reply_line", "recipient", "client_ip",
                "relay_host", "helo") == [
        (1, utc("2006-10-11 19:16:39"), "out", "helo", "EHLO", 250, 4, None, None, "205.188.158.121",
         "mee-pdc.meelift.com"),
        (2, utc("2006-10-11 19:16:41"), "in", "mail", "MAIL", 250, None, None, "61.47.65.115", None, "207.250.64.66"),
        (3, utc("2006-10-11 19:16:41"), "in", "rcpt", "RCPT", 550, None, "s-r_kke@meelift.com", "61.47.65.115",
         None, "207.250.64.66"),
        (4, utc("2006-10-11 19:16:39"), "out", "reply", None, 250, None, None, None, "205.188.158.121",
         "mee-pdc.meelift.com"),
    ]
    assert res.events.filter(pl.col("line") == 4)["text"][0] == "250-rly-yi06.mx.aol.com"


def test_auth_status_and_decoded_user(tmp_path):
    # AUTH PLAIN with an initial response "\0webmaster\0secret" (how IIS logs AUTH is unconfirmed, §10).
    text = HEADER5 + _line("10:00:00", "198.51.100.150", "WS7", "EHLO", "+WS7", 250) \
        + _line("10:00:01", "198.51.100.150", "WS7", "AUTH", "+LOGIN", 535) \
        + _line("10:00:02", "198.51.100.150", "WS7", "AUTH", "+PLAIN+AHdlYm1hc3RlcgBzZWNyZXQ=", 235) \
        + _line("10:00:03", "198.51.100.150", "WS7", "MAIL", "+FROM:<webmaster@acme-widgets.com>", 250) \
        + _line("10:00:04", "198.51.100.150", "WS7", "RCPT", "+TO:<ivan@example.net>", 250)
    res = read_log(tmp_path, text, name="ex060214.log")
    assert rows(res, "line", "event", "reply", "status", "auth_user") == [
        (5, "helo", 250, None, None),
        (6, "auth", 535, "failed", None),
        (7, "auth", 235, "ok", "webmaster"),
        (8, "mail", 250, None, "webmaster"),
        (9, "rcpt", 250, None, "webmaster"),
    ]


def test_sessions_split_on_helo_quit_and_gap(tmp_path):
    ip = "192.0.2.7"
    text = HEADER5 + "".join([
        _line("10:00:00", ip, "a", "HELO", "+a", 250),
        _line("10:00:01", "192.0.2.8", "b", "HELO", "+b", 250),  # another client, interleaved
        _line("10:00:02", ip, "a", "MAIL", "+FROM:<s@a.example>", 250),
        _line("10:00:03", ip, "a", "QUIT", "a", 240),
        _line("10:00:04", ip, "a", "MAIL", "+FROM:<t@a.example>", 250),  # after QUIT: new session
        _line("10:20:00", ip, "a", "RCPT", "+TO:<u@example.net>", 250),  # 20-minute gap: new session
        _line("10:20:01", "192.0.2.8", "b", "MAIL", "+FROM:<v@b.example>", 250),  # b's gap too: new session
    ])
    res = read_log(tmp_path, text, name="ex060214.log")
    src = str(tmp_path / "ex060214.log")
    assert rows(res, "line", "session", "sender") == [
        (5, f"{src}#{ip}#L5", None),
        (6, f"{src}#192.0.2.8#L6", None),
        (7, f"{src}#{ip}#L5", "s@a.example"),
        (8, f"{src}#{ip}#L5", "s@a.example"),
        (9, f"{src}#{ip}#L9", "t@a.example"),
        (10, f"{src}#{ip}#L10", None),
        (11, f"{src}#192.0.2.8#L11", "v@b.example"),
    ]


def test_hostile_lines_are_skipped_with_warnings(tmp_path):
    text = (HEADER5 + OSSEC.splitlines(keepends=True)[0]
            + "2006-10-09 05:00:16 24.118.118.106 36A42160 SMTPSVC1 MEE-PDC 192.168.1.2 0 MAIL - +FROM:+<cut\n"
            + "\n"
            + "Feb 14 10:00:00 web01 CRON[123]: (root) CMD (run-parts /etc/cron.hourly)\n"
            + "\x00\x01garbage\xff\n"
            + "2006-13-45 05:00:16 24.118.118.106 36A42160 SMTPSVC1 MEE-PDC 192.168.1.2 0 QUIT - - 240 0 1 1 0 SMTP - - - -\n"
            + OSSEC.splitlines(keepends=True)[2])
    res = read_log(tmp_path, text, name="ex061009.log")
    report = res.inputs[0]
    assert report.format == "w3c-smtp"
    # Line 6 is cut short but only its trailing fields are missing: kept (with a warning).
    assert (report.lines, report.events, report.skipped_lines) == (11, 3, 3)
    assert [e for e in rows(res, "line", "verb", "sender")] == [
        (5, "HELO", None), (6, "MAIL", "cut"), (11, "RCPT", "cut")]
    src = str(tmp_path / "ex061009.log")
    assert report.warnings[0].startswith(f"{src}:8: not a data line of the current #Fields set: ")
    assert report.warnings[1].startswith(f"{src}:9: not a data line")
    assert any(w.startswith(f"{src}:10: no valid date/time") for w in report.warnings)
    assert any(w.startswith(f"{src}:6: line has 11 of the 21 #Fields fields (cut off?)") for w in report.warnings)


def test_sniff_claims_iis_smtp_not_iis_web_or_exchange(tmp_path):
    assert sniff_format((HEADER5 + OSSEC).splitlines()) == "w3c-smtp"
    assert sniff_format(LICHTY.splitlines()) == "w3c-smtp"
    assert sniff_format(NCSA.splitlines()) == "w3c-smtp"
    web = ["#Software: Microsoft Internet Information Services 6.0", "#Version: 1.0",
           "#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) "
           "sc-status sc-substatus sc-win32-status",
           "2006-02-14 10:00:00 10.20.1.80 GET /index.html - 80 - 192.0.2.1 Mozilla/4.0 200 0 0"]
    assert READERS["w3c-smtp"]().sniff(web) == 0.0
    msgtrk = ["#Software: Microsoft Exchange Server", "#Version: 14.0.0.0", "#Log-type: Message Tracking Log"]
    assert READERS["w3c-smtp"]().sniff(msgtrk) == 0.0


def _column_rows(lines: list[str]) -> list[tuple[int, str, dict]]:
    """(line number, kind, named fields) for every line, by the reader's rules: directives, NCSA
    lines, else data lines of the most recent #Fields (default set before any)."""
    out = []
    fields = list(grammar.DEFAULT_FIELDS)
    for n, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        if text.startswith("#"):
            d = grammar.directive.parse_string(text, parse_all=True).as_dict()
            if d["directive"] == "Fields":
                fields = grammar.split_fields(d["value"])
            out.append((n, "directive", d))
        elif grammar.ncsa_line.matches(text, parse_all=True):
            out.append((n, "ncsa", grammar.ncsa_line.parse_string(text, parse_all=True).as_dict()))
        else:
            out.append((n, "w3c:" + " ".join(fields), grammar.data_line(fields).parse_string(text, parse_all=True)
                        .as_dict()))
    return out


def _assert_grammar_matches_columns(path: Path) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    checked = 0
    for n, kind, fields in _column_rows(lines):
        pattern = (grammar.DIRECTIVE if kind == "directive" else grammar.NCSA if kind == "ncsa"
                   else grammar.data_pattern(kind[4:].split(" ")))
        col = pl.Series([lines[n - 1]]).str.extract_groups(anchored(pattern)).struct.unnest().row(0, named=True)
        assert {k: v for k, v in col.items() if v is not None} == {
            k: v for k, v in fields.items() if v is not None}, (path, n)
        assert re.match(anchored(pattern), lines[n - 1])
        checked += 1
    return checked


def test_grammar_matches_column_path_on_sample():
    assert _assert_grammar_matches_columns(SAMPLE) == 248


@needs_corpus
@pytest.mark.parametrize("name", sorted(p.name for p in IIS_CORPUS.glob("*.log")) if IIS_CORPUS.is_dir() else [])
def test_grammar_matches_column_path_on_corpus(name):
    path = IIS_CORPUS / name
    assert _assert_grammar_matches_columns(path) == len([x for x in path.read_text().splitlines() if x.strip()])


@needs_corpus
def test_corpus_files_recognised_and_fully_read(tmp_path):
    from logforensics.ingest import ingest

    res = ingest([IIS_CORPUS], SiteProfile(timezone="America/Chicago"))
    got = {Path(r.path).name: (r.format, r.lines, r.events, r.skipped_lines) for r in res.inputs}
    assert got == {
        "blog-hinshelwood_iis7-smtp-w3c.log": ("w3c-smtp", 25, 21, 0),
        "blog-lichty_case-of-the-open-relay_iis-smtp-w3c.log": ("w3c-smtp", 2, 2, 0),
        "ossec-docs_exchange2000_smtp_ncsa.log": ("w3c-smtp", 40, 40, 0),
        "ossec-docs_exchange2000_smtp_w3c.log": ("w3c-smtp", 41, 37, 0),
    }
    ev = res.events
    # Every RCPT line answered >= 400 becomes an rcpt row with that reply and the rejected address.
    # The corpus has no inbound relay denial (§10); its one rejected RCPT is outbound (a 504 answer).
    rejected = ev.filter((pl.col("event") == "rcpt") & (pl.col("reply") >= 400))
    assert rejected.select("line", "direction", "reply", "recipient").rows() == [
        (14, "out", 504, "martin@hinshelwood.com")]
    assert ev.filter(pl.col("event") == "rcpt").height == 19
    assert ev.filter(pl.col("verb") == "XXXX").height == 7


def _heads(root: Path):
    from logforensics.ingest import split_lines
    from logforensics.sources import decode_text

    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != "SOURCES.md"):
        text, _ = decode_text(path.read_bytes())
        yield path, split_lines(text).head(50).to_list()


@needs_corpus
def test_no_other_corpus_file_is_taken_for_w3c():
    claimed = sorted(str(p.relative_to(CORPUS)) for p, head in _heads(CORPUS) if sniff_format(head) == "w3c-smtp")
    assert claimed == sorted(f"iis-smtp/{p.name}" for p in IIS_CORPUS.glob("*.log"))


def _ground_truth(path: Path) -> list[tuple[int, str, str]]:
    rows_ = []
    for text in path.read_text().splitlines():
        m = re.match(r"^\| (\d+) \| ([^|]+) \| [^|]+ \| `([^`]+)` \| ([a-z]+)", text)
        if m:
            rows_.append((int(m[1]), m[2].strip(), m[3], m[4]))
    return rows_


def test_sample_matches_ground_truth():
    from logforensics.ingest import ingest

    res = ingest([SAMPLE], SiteProfile(timezone="America/Chicago", local_domains=("acme-widgets.com",)))
    report = res.inputs[0]
    assert (report.format, report.lines, report.events, report.skipped_lines) == ("w3c-smtp", 248, 240, 0)
    ev = res.events
    truth = _ground_truth(SAMPLES / "iis-smtp" / "GROUND_TRUTH.md")
    assert len(truth) == 19
    inbound = ev.filter((pl.col("event") == "rcpt") & (pl.col("direction") == "in"))
    assert inbound.select("line", "client_ip", "recipient").rows() == [(n, ip, r) for n, ip, r, _ in truth]
    for n, _, rcpt, verdict in truth:
        row = inbound.filter(pl.col("line") == n).row(0, named=True)
        assert (row["reply"] >= 500) == (verdict == "refused"), n
        if verdict == "relayed":  # the effective address was sent on by an outbound RCPT answered 250
            out = ev.filter((pl.col("direction") == "out") & (pl.col("event") == "rcpt")
                            & (pl.col("recipient") == rcpt) & (pl.col("reply") == 250) & (pl.col("ts") >= row["ts"]))
            assert out.height >= 1, n
    assert ev.filter(pl.col("event") == "auth").select("line", "status").rows() == [(173, "failed"), (174, "failed"), (177, "ok")]
    assert set(ev["server"].unique().to_list()) == {"WEB01"}
    deferred = ev.filter(pl.col("line") == 78).row(0, named=True)
    assert (deferred["verb"], deferred["reply"], deferred["relay_host"]) == ("MAIL", 421, "192.0.2.50")


IIS_NATIVE_LOG = (
    "10.3.5.1, Nwtraders.com, 8/18/06, 13:17:35, SMTPSVC1, MAIL01, 10.200.200.1, 0, 42, 0, 250, 0, EHLO, -, "
    "Nwtraders.com,\n"
    # Microsoft's own example line of the IIS log format (research note §5.3), verbatim:
    "10.3.5.1, Nwtraders.com, 8/18/06, 13:17:37, SMTPSVC1, MAIL01, 10.200.200.1, 90, 42, 0, 250, 0, MAIL FROM, -, "
    "FROM:<maria@Nwtraders.com>,\n"
    "10.3.5.1, Nwtraders.com, 8/18/06, 13:17:38, SMTPSVC1, MAIL01, 10.200.200.1, 0, 30, 0, 550, 0, RCPT TO, -, "
    "TO:<victim@far.example>,\n"
)


def test_iis_native_comma_separated_layout(tmp_path):
    """The IIS log format (comma separated, local M/D/YY time) is read by the same reader."""
    from grammars import w3c_smtp as grammar

    for line in IIS_NATIVE_LOG.splitlines():
        fields = grammar.native_line.parse_string(line, parse_all=True).as_dict()
        assert fields["n_ip"] == "10.3.5.1" and fields["n_service"] == "SMTPSVC1"
    res = read_log(tmp_path, IIS_NATIVE_LOG, name="in060818.log",
                   site=SiteProfile(timezone="America/Chicago", local_domains=("nwtraders.com",)))
    assert (res.inputs[0].format, res.inputs[0].skipped_lines) == ("w3c-smtp", 0)
    assert rows(res, "line", "ts", "event", "reply", "client_ip", "server", "sender", "recipient") == [
        (1, utc("2006-08-18 18:17:35"), "helo", 250, "10.3.5.1", "MAIL01", None, None),
        (2, utc("2006-08-18 18:17:37"), "mail", 250, "10.3.5.1", "MAIL01", "maria@Nwtraders.com", None),
        (3, utc("2006-08-18 18:17:38"), "rcpt", 550, "10.3.5.1", "MAIL01", "maria@Nwtraders.com",
         "victim@far.example"),
    ]
