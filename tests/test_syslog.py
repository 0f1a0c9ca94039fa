"""The syslog envelope grammar, syslog time (year inference, zones) and rotation order."""

from __future__ import annotations

import polars as pl
import pytest

from grammars import syslog as grammar
from logforensics.readers.syslog import YearHint, first_dated_month, split_syslog, syslog_times
from logforensics.rotation import newest_first, rotation_key
from tests.conftest import utc

ENVELOPES = [
    ("Nov 16 11:03:12 server postfix/smtpd[30624]: connect from x[1.2.3.4]",
     {"mon": "Nov", "day": "16", "host": "server", "tag": "postfix/smtpd", "pid": "30624"}),
    ("Apr  6 13:05:01 server postfix/smtpd[20589]: NOQUEUE: reject",
     {"mon": "Apr", "day": "6", "host": "server", "tag": "postfix/smtpd"}),
    ("Mar 7 02:09:33 server postfix/smtpd[27246]: 1D8CC1CA0A7F: milter-reject",
     {"mon": "Mar", "day": "7", "tag": "postfix/smtpd"}),
    ("Nov 06 11:03:12 mx.example.org postfix-smo/submission/smtpd[22427]: 44JCRG5tYPzCqt2: reject",
     {"day": "06", "host": "mx.example.org", "tag": "postfix-smo/submission/smtpd"}),
    ("2024-08-25T10:04:35.051238+00:00 machine postfix/smtpd[3814725]: NOQUEUE",
     {"iso": "2024-08-25T10:04:35.051238", "iso_zone": "+00:00", "host": "machine"}),
    ("postfix/smtpd[10419]: NOQUEUE: reject: RCPT from unknown[200.71.50.65]",
     {"tag": "postfix/smtpd", "pid": "10419", "msg": "NOQUEUE: reject: RCPT from unknown[200.71.50.65]"}),
    ("Jul 11 20:37:58 rt sendmail[9156]: [ID 801593 mail.info] n6BKbwgB009156: from=nobody",
     {"tag": "sendmail", "facility": "mail.info", "msg": "n6BKbwgB009156: from=nobody"}),
    ("mail.example.com exim[3751842]: 2021-07-17 23:20:49 plain_server authenticator failed",
     {"host": "mail.example.com", "tag": "exim", "msg": "2021-07-17 23:20:49 plain_server authenticator failed"}),
    ("Feb 25 03:01:10 kismet sm-acceptingconnections[27713]: s1P819mk027713: ruleset=check_rcpt",
     {"tag": "sm-acceptingconnections", "pid": "27713"}),
]


@pytest.mark.parametrize(("text", "expected"), ENVELOPES)
def test_envelope_grammar_and_column_path_agree(text, expected):
    fields = grammar.parse_line(text)
    assert fields is not None
    for key, value in expected.items():
        assert fields[key] == value
    row = split_syslog(pl.Series([text])).row(0, named=True)
    for key, value in fields.items():
        assert row[key] == (int(value) if key == "pid" else value)


@pytest.mark.parametrize("text", ["", "garbage with no tag", "   ", "\x00\x01\x02"])
def test_non_syslog_lines_give_nothing(text):
    assert grammar.parse_line(text) is None
    assert split_syslog(pl.Series([text]))["tag"][0] is None


def test_last_message_repeated_is_its_own_shape():
    text = "Mar  7 02:09:33 server last message repeated 3 times"
    assert grammar.repeated.parse_string(text, parse_all=True)["times"] == "3"


def times(lines: list[str], zone: str = "UTC", hint: YearHint | None = None):
    return syslog_times(split_syslog(pl.Series(lines)), zone, hint)


NEW_YEAR = ["Dec 31 23:59:58 mx postfix/smtpd[1]: a", "Jan  1 00:00:02 mx postfix/smtpd[1]: b",
            "Jan  1 00:10:00 mx postfix/smtpd[1]: c"]


def test_year_rolls_over_at_new_year_with_a_start_year():
    ts, warning = times(NEW_YEAR, hint=YearHint(start_year=2004))
    assert ts.to_list() == [utc("2004-12-31 23:59:58"), utc("2005-01-01 00:00:02"), utc("2005-01-01 00:10:00")]
    assert warning is None


def test_year_anchored_on_the_end_month():
    # The file was last written in February 2005: its last line (January) is from 2005.
    ts, _ = times(NEW_YEAR, hint=YearHint(end_at=(2005, 2)))
    assert [t.year for t in ts] == [2004, 2005, 2005]
    # Last written in November 2005: a January line cannot be later than that, so still 2005.
    ts, _ = times(NEW_YEAR, hint=YearHint(end_at=(2005, 11)))
    assert [t.year for t in ts] == [2004, 2005, 2005]
    # A December file whose mtime is the next January belongs to the previous year.
    ts, _ = times(["Dec 30 10:00:00 mx postfix/qmgr[2]: x"], hint=YearHint(end_at=(2005, 1)))
    assert ts.to_list() == [utc("2004-12-30 10:00:00")]


def test_year_from_mtime():
    hint = YearHint.from_mtime(utc("2003-06-02 08:00:00").timestamp())
    assert hint.end_at == (2003, 6)
    ts, _ = times(["May 30 10:00:00 mx postfix/qmgr[2]: x"], hint=hint)
    assert ts[0].year == 2003


def test_no_anchor_warns():
    ts, warning = times(["May 30 10:00:00 mx postfix/qmgr[2]: x"])
    assert ts[0] is not None
    assert warning is not None and "no year known" in warning


def test_rfc3339_lines_anchor_the_year_of_bsd_lines_in_a_mixed_file():
    lines = ["2023-12-31T23:00:00+00:00 mx postfix/smtpd[1]: a", "Jan  1 00:30:00 mx postfix/smtpd[1]: b"]
    ts, warning = times(lines, hint=YearHint(end_at=(2030, 1)))
    assert ts.to_list() == [utc("2023-12-31 23:00:00"), utc("2024-01-01 00:30:00")]
    assert warning is None


def test_local_time_converts_to_utc_and_offsets_are_honoured():
    ts, _ = times(["Jun 14 23:47:11 mx postfix/smtpd[1]: a",
                   "2000-06-14T23:47:11-05:00 mx postfix/smtpd[1]: b",
                   "2000-06-14T23:47:11.5Z mx postfix/smtpd[1]: c",
                   "2000-06-14T23:47:11 mx postfix/smtpd[1]: d"],
                  zone="America/Chicago", hint=YearHint(start_year=2000))
    assert ts[0] == utc("2000-06-15 04:47:11")
    assert ts[1] == utc("2000-06-15 04:47:11")
    assert str(ts[2]) == "2000-06-14 23:47:11.500000+00:00"
    assert ts[3] == utc("2000-06-15 04:47:11")  # no offset: the site's zone


def test_first_dated_month_is_local():
    frame = split_syslog(pl.Series(["junk", "Jan  1 00:30:00 mx postfix/smtpd[1]: b"]))
    ts, _ = syslog_times(frame, "America/Chicago", YearHint(start_year=2005))
    assert first_dated_month(frame, ts, "America/Chicago") == (2005, 1)


def test_rotation_order_newest_first():
    paths = ["/l/mail.log.2.gz", "/l/mail.log", "/l/mail.log.10.gz", "/l/mail.log.1", "/l/other.log",
             "/x/maillog-20040101.gz", "/x/maillog-20040108"]
    assert newest_first(paths) == ["/l/mail.log", "/l/mail.log.1", "/l/mail.log.2.gz", "/l/mail.log.10.gz",
                                   "/l/other.log", "/x/maillog-20040108", "/x/maillog-20040101.gz"]
    assert rotation_key("/l/mail.log.3.gz").group == rotation_key("/l/mail.log").group
    assert rotation_key("a.zip!var/log/mail.log.1").group == rotation_key("a.zip!var/log/mail.log").group


def test_year_chains_across_numbered_rotations_newest_anchored_by_mtime(tmp_path):
    """mail.log (newest, last written 3 Jan 2005), mail.log.1, mail.log.2.gz: each older file ends
    before the newer one starts, so the year crosses New Year between .2 and .1 (and inside .1)."""
    import gzip
    import os
    from datetime import UTC, datetime

    from logforensics.ingest import ingest
    from logforensics.site import SiteProfile

    def line(stamp: str, n: int) -> str:
        return f"{stamp} mx1 postfix/smtpd[{n}]: connect from unknown[203.0.113.{n}]\n"

    logs = tmp_path / "var" / "log"
    logs.mkdir(parents=True)
    (logs / "mail.log").write_text(line("Jan  2 10:00:00", 1) + line("Jan  3 09:00:00", 2))
    (logs / "mail.log.1").write_text(line("Dec 31 23:00:00", 3) + line("Jan  1 01:00:00", 4))
    (logs / "mail.log.2.gz").write_bytes(gzip.compress((line("Dec 24 08:00:00", 5)
                                                        + line("Dec 30 08:00:00", 6)).encode()))
    when = datetime(2005, 1, 3, 12, 0, tzinfo=UTC).timestamp()
    for f in logs.iterdir():  # only the newest file's mtime can be trusted: the others were copied later
        os.utime(f, (when + 86400 * 700, when + 86400 * 700))
    os.utime(logs / "mail.log", (when, when))
    res = ingest([tmp_path], SiteProfile(timezone="America/Chicago"))
    got = {(r["source"].rsplit("/", 1)[1], r["line"]): r["ts"] for r in res.events.iter_rows(named=True)}
    assert got[("mail.log", 1)] == utc("2005-01-02 16:00:00")
    assert got[("mail.log.1", 1)] == utc("2005-01-01 05:00:00")  # Dec 31 2004, 23:00 CST
    assert got[("mail.log.1", 2)] == utc("2005-01-01 07:00:00")
    assert got[("mail.log.2.gz", 1)] == utc("2004-12-24 14:00:00")
    assert got[("mail.log.2.gz", 2)] == utc("2004-12-30 14:00:00")
    # --year overrides: each file's first line is in that year.
    forced = ingest([logs / "mail.log.2.gz"], SiteProfile(timezone="UTC"), year=1999)
    assert forced.events["ts"][0] == utc("1999-12-24 08:00:00")


RFC5424_REJECT = ("<22>1 2004-08-25T10:04:35.051238+02:00 mx1 postfix/smtpd 3814725 - - NOQUEUE: reject: RCPT "
                  "from unknown[192.0.2.1]: 554 5.7.1 <x@far.example>: Relay access denied; "
                  "from=<s@spam.example> to=<x@far.example> proto=ESMTP helo=<x>")


def test_rfc5424_lines_are_read_like_the_others(tmp_path):
    """RFC 5424 on-the-wire lines (``<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG``) give the same
    envelope columns, by grammar and by column, and a Postfix reject among them is a refused RCPT."""
    from logforensics.site import SiteProfile
    from tests.conftest import read_log, rows

    fields = grammar.rfc5424.parse_string(RFC5424_REJECT, parse_all=True).as_dict()
    row = split_syslog(pl.Series([RFC5424_REJECT])).row(0, named=True)
    for key in ("iso", "iso_zone", "host", "tag", "msg"):
        assert row[key] == fields[key]
    assert (row["program"], row["pid"]) == ("smtpd", 3814725)
    assert grammar.syslog_line.matches("<13>1 - - - - - -", parse_all=True)
    res = read_log(tmp_path, RFC5424_REJECT + "\n" + RFC5424_REJECT.replace("10:04:35", "10:04:36") + "\n",
                   name="mail.log", site=SiteProfile(timezone="UTC"))
    assert res.inputs[0].format == "postfix"
    assert rows(res, "ts", "event", "reply", "recipient")[0] == (
        utc("2004-08-25 08:04:35").replace(microsecond=51238), "rcpt", 554, "x@far.example")


def test_year_dates_the_oldest_file_and_newer_rotations_continue_from_it(tmp_path):
    """``--year 2000`` over a rotation across New Year: mail.log.1 (December) is 2000, mail.log
    (January) 2001, in scan and batch alike."""
    from logforensics.batch import batch
    from logforensics.scan import scan
    from logforensics.site import SiteProfile

    logs = tmp_path / "logs" / "mx" / "var" / "log"
    logs.mkdir(parents=True)
    line = "{} mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from x[203.0.113.9]: 554 5.7.1 <{}>: Relay access " \
           "denied; from=<s@x.example> to=<{}> proto=ESMTP helo=<x>\n"
    (logs / "mail.log.1").write_text(line.format("Dec 31 23:59:00", "a@far.example", "a@far.example"))
    (logs / "mail.log").write_text(line.format("Jan  1 00:01:00", "b@far.example", "b@far.example"))
    site = SiteProfile(timezone="UTC")
    got = {r["recipient"]: r["time"].year for r in scan([tmp_path / "logs"], site, year=2000).findings.iter_rows(
        named=True)}
    assert got == {"a@far.example": 2000, "b@far.example": 2001}
    done = batch([tmp_path / "logs"], site, tmp_path / "out", jobs=1, show_progress=False, year=2000)
    assert {r["recipient"]: r["time"].year for r in done.detection.findings.iter_rows(named=True)} == got
