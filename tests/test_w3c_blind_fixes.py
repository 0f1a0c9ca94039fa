"""IIS SMTP reader (W3C, NCSA, IIS format): defects a blind tester found, each with inline input.

1. ``+`` inside an angle-bracket address is a literal ``+`` (IMCEA encodings), a space outside the
   brackets and inside a quoted string (KB Q264330); the same rule in every IIS layout.
2. A ``#Fields`` set with ``time`` but no ``date`` takes the ``#Date`` day with each line's own time.
3. IIS-format (comma-separated, local time) logs warn when no time zone is known.
4. A file without ``#Fields`` warns which default fields were assumed.
5. A line cut short (missing only trailing fields) is kept, with a warning naming file and line.
"""

from __future__ import annotations

import polars as pl
import pytest

from grammars import w3c_smtp as grammar
from logforensics.classify import classify_address
from logforensics.site import SiteProfile
from tests.conftest import read_log, rows, utc

FIELDS = ("#Fields: date time c-ip cs-username s-sitename s-computername s-ip s-port cs-method cs-uri-stem "
          "cs-uri-query sc-status sc-win32-status sc-bytes cs-bytes time-taken cs-version cs-host "
          "cs(User-Agent) cs(Cookie) cs(Referer)\n")
HEADER = ("#Software: Microsoft Internet Information Services 6.0\n#Version: 1.0\n#Date: 2007-03-31 23:58:00\n"
          + FIELDS)
SITE = SiteProfile(timezone="UTC", local_domains=("corp.example", "local.example"))


def _w3c(t: str, verb: str, query: str, status: int | str = 250, ip: str = "203.0.113.200",
         helo: str = "pc.example") -> str:
    return (f"2007-03-31 {t} {ip} {helo} SMTPSVC1 WEB02 192.168.1.80 0 {verb} - {query} {status} 0 40 30 0 "
            "SMTP - - - -\n")


# -- 1. "+" inside and outside angle brackets ---------------------------------------------------

@pytest.mark.parametrize(("logged", "text"), [
    ("+TO:+<IMCEASMTP-victim7+40example+2Enet@corp.example>", " TO: <IMCEASMTP-victim7+40example+2Enet@corp.example>"),
    ('+TO:+<"IMCEA+user@domain2.com"@local.example>', ' TO: <"IMCEA user@domain2.com"@local.example>'),
    ("FROM:<a+b@x.example>+SIZE=1722", "FROM:<a+b@x.example> SIZE=1722"),
    ("421+4.7.0+Try+again+later", "421 4.7.0 Try again later"),
    ('+TO:+<"a\\"+b"+c@x>+X', ' TO: <"a\\" b"+c@x> X'),  # \" does not end the quoted string
    ('+TO:+<"a>b"+c@x>+X', ' TO: <"a>b"+c@x> X'),  # a ">" inside quotes does not end the address
    ("+TO:+<user+tag@ex", " TO: <user+tag@ex"),  # an address cut off keeps its "+"
    ("+TO:+<a@b>+<c+d@e>", " TO: <a@b> <c+d@e>"),
])
def test_decode_value_plus_rule(logged, text):
    assert grammar.decode_value(logged) == text


def test_plus_inside_angle_brackets_is_literal_in_w3c(tmp_path):
    text = HEADER + "".join([
        _w3c("23:58:01", "HELO", "+pc.example", helo="-"),
        _w3c("23:58:02", "MAIL", "+FROM:+<bulk+list@deals.example>+SIZE=4000"),
        _w3c("23:58:03", "RCPT", "+TO:<IMCEASMTP-x3+40example+2Ecom@corp.example>"),
        _w3c("23:58:04", "RCPT", "+TO:<IMCEAEX-_O=CORP_OU=FIRST+20ADMINISTRATIVE+20GROUP_CN=RECIPIENTS_CN=jsmith"
                                 "@corp.example>"),
        _w3c("23:58:05", "RCPT", '+TO:+<"IMCEA+user@domain2.com"@local.example>'),
        _w3c("23:58:06", "RCPT", "+TO:+<x1@example.net>+NOTIFY=SUCCESS,FAILURE"),
    ])
    res = read_log(tmp_path, text, name="ex070331.log", site=SITE)
    assert rows(res, "line", "sender", "recipient", "size") == [
        (5, None, None, None),
        (6, "bulk+list@deals.example", None, 4000),
        (7, "bulk+list@deals.example", "IMCEASMTP-x3+40example+2Ecom@corp.example", None),
        (8, "bulk+list@deals.example",
         "IMCEAEX-_O=CORP_OU=FIRST+20ADMINISTRATIVE+20GROUP_CN=RECIPIENTS_CN=jsmith@corp.example", None),
        (9, "bulk+list@deals.example", '"IMCEA user@domain2.com"@local.example', None),
        (10, "bulk+list@deals.example", "x1@example.net", None),
    ]
    assert res.events.filter(pl.col("line") == 10)["text"][0] == "RCPT TO: <x1@example.net> NOTIFY=SUCCESS,FAILURE"
    locality = SITE.locality()
    ms99 = classify_address("IMCEASMTP-x3+40example+2Ecom@corp.example", locality)
    assert (ms99.form, ms99.imcea_type, ms99.effective_recipient, ms99.external) == (
        "imcea-encapsulated", "SMTP", "x3@example.com", True)
    ex = classify_address(res.events.filter(pl.col("line") == 8)["recipient"][0], locality)
    assert (ex.form, ex.imcea_type, ex.external) == ("imcea-encapsulated", "EX", False)
    q = classify_address(res.events.filter(pl.col("line") == 9)["recipient"][0], locality)
    assert (q.form, q.effective_recipient) == ("imcea-quoted", "user@domain2.com")


def test_plus_rule_in_ncsa_and_iis_format(tmp_path):
    ncsa = (
        '203.0.113.50 - ncsa.example [09/Oct/2006:09:00:04 -0400] '
        '"RCPT -?+TO:+<IMCEASMTP-n4+40example+2Enet@corp.example> SMTP" 250 30\n'
        '203.0.113.50 - ncsa.example [09/Oct/2006:09:00:05 -0400] '
        '"RCPT -?+TO:+<\"IMCEA+n5@example.org\"@corp.example> SMTP" 250 30\n'
    )
    res = read_log(tmp_path, ncsa, name="nc061009.log", site=SITE)
    assert rows(res, "line", "recipient", "text") == [
        (1, "IMCEASMTP-n4+40example+2Enet@corp.example", "RCPT TO: <IMCEASMTP-n4+40example+2Enet@corp.example>"),
        (2, '"IMCEA n5@example.org"@corp.example', 'RCPT TO: <"IMCEA n5@example.org"@corp.example>'),
    ]
    native = ("203.0.113.60, iis.example, 10/9/06, 9:00:03, SMTPSVC1, MAIL04, 192.168.1.4, 0, 30, 30, 250, 0, "
              "RCPT, -, TO:<IMCEASMTP-i6+40example+2Enet@corp.example>+NOTIFY=NEVER,\n")
    res = read_log(tmp_path, native, name="in061009.log", site=SITE)
    assert rows(res, "line", "recipient", "text") == [
        (1, "IMCEASMTP-i6+40example+2Enet@corp.example",
         "RCPT TO:<IMCEASMTP-i6+40example+2Enet@corp.example> NOTIFY=NEVER")]


# -- 2. time without date -----------------------------------------------------------------------

def test_time_without_date_uses_date_directive_day_and_row_time(tmp_path):
    def row(t: str, verb: str, query: str, status: int = 250) -> str:
        return f"{t} 203.0.113.45 {verb} {query} {status} bulk.example MAIL01 0\n"

    # A first block of the full field set (so the file is recognised), then a service restart with a
    # field set that has time but no date (the blind tester's layout).
    text = (HEADER.replace("2007-03-31 23:58:00", "2006-10-09 20:00:00")
            + _w3c("20:00:01", "HELO", "+a.example").replace("2007-03-31", "2006-10-09")
            + "#Software: Microsoft Internet Information Services 5.0\n#Version: 1.0\n#Date: 2006-10-09 23:59:00\n"
            "#Fields: time c-ip cs-method cs-uri-query sc-status cs-username s-computername time-taken\n"
            + row("23:59:01", "EHLO", "+bulk.example")
            + row("00:00:02", "MAIL", "+FROM:+<a@bulk.example>")     # past midnight: the next day
            + row("23:59:59", "RCPT", "+TO:+<kim@example.net>")       # logged late: still the day before
            + row("00:00:03", "RCPT", "+TO:+<leo@example.org>", 550)
            + row("13:30:00", "DATA", "+<b1@bulk.example>")           # later the same (next) day
            + "#Software: Microsoft Internet Information Services 5.0\n#Date: 2006-10-11 06:00:00\n"
            + row("05:59:30", "QUIT", "-", 240)                       # a little before its #Date: same day
            + row("06:10:00", "HELO", "+x.example"))
    res = read_log(tmp_path, text, name="ex061009.log")
    report = res.inputs[0]
    assert (report.events, report.skipped_lines) == (8, 0)
    assert rows(res, "line", "ts", "verb") == [
        (5, utc("2006-10-09 20:00:01"), "HELO"),
        (10, utc("2006-10-09 23:59:01"), "EHLO"),
        (11, utc("2006-10-10 00:00:02"), "MAIL"),
        (12, utc("2006-10-09 23:59:59"), "RCPT"),
        (13, utc("2006-10-10 00:00:03"), "RCPT"),
        (14, utc("2006-10-10 13:30:00"), "DATA"),
        (17, utc("2006-10-11 05:59:30"), "QUIT"),
        (18, utc("2006-10-11 06:10:00"), "HELO"),
    ]
    assert any("time but no date" in w and "#Date" in w for w in report.warnings)


# -- 3. IIS format without a time zone ----------------------------------------------------------

NATIVE = ("203.0.113.60, iis.example, 10/9/06, 9:00:02, SMTPSVC1, MAIL04, 192.168.1.4, 0, 30, 30, 250, 0, "
          "RCPT, -, TO:<i1@example.net>,\n")


def test_iis_format_warns_without_time_zone(tmp_path):
    res = read_log(tmp_path, NATIVE, name="in061009.log", site=SiteProfile())
    src = str(tmp_path / "in061009.log")
    assert f"{src}: no time zone known; local times read as UTC (set timezone in the site profile); " \
        "1 line(s) affected" in res.inputs[0].warnings
    assert rows(res, "ts") == [(utc("2006-10-09 09:00:02"),)]
    zoned = read_log(tmp_path / "z", NATIVE, name="in061009.log", site=SiteProfile(timezone="America/New_York"))
    assert not any("time zone" in w for w in zoned.inputs[0].warnings)
    assert rows(zoned, "ts") == [(utc("2006-10-09 13:00:02"),)]
    # NCSA lines carry their own offset and W3C times are UTC: no such warning.
    ncsa = ('203.0.113.50 - n.example [09/Oct/2006:09:00:02 -0400] "RCPT -?+TO:+<n1@example.net> SMTP" 250 30\n')
    assert not any("time zone" in w for w in
                   read_log(tmp_path / "n", ncsa, name="nc061009.log", site=SiteProfile()).inputs[0].warnings)


# -- 4. no #Fields ------------------------------------------------------------------------------

def test_no_fields_directive_warns_which_fields_were_assumed(tmp_path):
    res = read_log(tmp_path, _w3c("10:00:03", "RCPT", "+TO:<nohdr@example.net>"), name="ex080506.log")
    report = res.inputs[0]
    assert (report.format, report.events, report.skipped_lines) == ("w3c-smtp", 1, 0)
    src = str(tmp_path / "ex080506.log")
    (warning,) = [w for w in report.warnings if "#Fields" in w]
    assert warning.startswith(f"{src}: no #Fields directive")
    assert " ".join(grammar.DEFAULT_FIELDS) in warning
    # Lines before the first #Fields of a file are named as such.
    res = read_log(tmp_path / "b", _w3c("10:00:03", "RCPT", "+TO:<a@example.net>") + HEADER
                   + _w3c("23:58:01", "RCPT", "+TO:<b@example.net>"), name="ex080506.log")
    assert any("before the first #Fields directive (line 5)" in w for w in res.inputs[0].warnings)
    # A file with its #Fields first gets no such warning.
    res = read_log(tmp_path / "c", HEADER + _w3c("23:58:01", "RCPT", "+TO:<b@example.net>"), name="ex.log")
    assert not any("assumed" in w for w in res.inputs[0].warnings)


# -- 5. lines cut short -------------------------------------------------------------------------

def test_line_missing_trailing_fields_is_kept_with_warning(tmp_path):
    full = _w3c("23:58:01", "HELO", "+pc.example", helo="-")
    cut = "2007-03-31 23:58:05 203.0.113.200 pc.example SMTPSVC1 WEB02 192.168.1.80 0 RCPT - +TO:+<z3@example.net>"
    text = (HEADER + full
            + cut + " 250 0 40 30 0 SMTP - - - - EXTRA\n"                   # 6: too many fields: skipped
            + "garbage \x01\x02 line nonsense\n"                            # 7: garbage: skipped
            + "2007-03-31 23:58:06 203.0.113.200 pc.example SMTPSVC1\n"      # 8: cut before the command: skipped
            + "2007-03-31 23:58:06 not-an-ip pc.example SMTPSVC1 WEB02 192.168.1.80 0 RCPT\n"  # 9: bad c-ip
            + cut + "\r\n"                                                  # 10: cut after cs-uri-query: kept
            + cut.replace("+<z3", "+<z4") + " 55")                          # 11: last line, cut in sc-status
    res = read_log(tmp_path, text, name="ex070331.log")
    report = res.inputs[0]
    assert (report.lines, report.events, report.skipped_lines) == (11, 3, 4)
    assert rows(res, "line", "ts", "verb", "recipient", "reply") == [
        (5, utc("2007-03-31 23:58:01"), "HELO", None, 250),
        (10, utc("2007-03-31 23:58:05"), "RCPT", "z3@example.net", None),
        (11, utc("2007-03-31 23:58:05"), "RCPT", "z4@example.net", None),  # "55" is no reply code
    ]
    src = str(tmp_path / "ex070331.log")
    for n in (6, 7, 8, 9):
        assert any(w.startswith(f"{src}:{n}: not a data line of the current #Fields set") for w in report.warnings)
    cut_warnings = [w for w in report.warnings if "cut off?" in w]
    assert [w.split(": line has")[0] for w in cut_warnings] == [f"{src}:10", f"{src}:11"]
    assert "11 of the 21 #Fields fields" in cut_warnings[0] and "(sc-status sc-win32-status" in cut_warnings[0]


def test_cut_line_in_field_set_without_date_time(tmp_path):
    text = ("#Software: Microsoft Internet Information Services 7.0\n#Version: 1.0\n#Date: 2010-01-09 18:49:30\n"
            "#Fields: c-ip cs-username s-sitename s-computername s-ip s-port cs-method cs-uri-query "
            "sc-win32-status cs-bytes cs-version cs(User-Agent) cs(Referer)\n"
            "127.0.0.1 H SMTPSVC1 H 127.0.0.1 0 RCPT +TO:<martin@example.com> 0 32 SMTP - -\n"
            "127.0.0.1 H SMTPSVC1 H 127.0.0.1 0 RCPT +TO:<cut@example.com>\n"
            "deadbeef nonsense\n")
    res = read_log(tmp_path, text, name="ex100109.log")
    assert (res.inputs[0].events, res.inputs[0].skipped_lines) == (2, 1)
    assert rows(res, "line", "ts", "recipient") == [
        (5, utc("2010-01-09 18:49:30"), "martin@example.com"),
        (6, utc("2010-01-09 18:49:30"), "cut@example.com"),
    ]
