"""The fast paths of the Postfix reading path give exactly what the grammar gives.

* ``split_syslog`` splits ``FIXED_BSD`` lines by offsets and spaces instead of running the envelope
  pattern: it must equal both the full pattern over the column and ``parse_line`` (pyparsing).
* ``shape_columns`` cuts messages in a strict layout (``grammars.postfix.LAYOUTS``) at literals, finds
  the other shapes with plain matches and extracts groups on that shape's rows only: it must equal
  ``parse_message`` (pyparsing) line by line, and the reader must give the same events without layouts.
* ``syslog_times`` converts each run of equal stamps once (and each minute once, tests/test_timeconv.py);
  ``split_lines`` splits in Python;
  ``_sessions`` runs its windows on the smtpd rows only, sorted into contiguous session blocks;
  delivery messages are split at their shared ``, `` first (``grammars.postfix.SHARED_SEPARATORS``).
"""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from grammars import postfix as grammar
from grammars import syslog as syslog_grammar
from grammars.common import anchored
from logforensics.readers.base import ReadContext
from logforensics.readers.postfix import (
    FIELD_NAMES,
    USED_FIELDS,
    PostfixReader,
    event_columns,
    fill_forward_in_parts,
    first_in_parts,
    shape_columns,
    shape_parts,
)
from logforensics.readers.syslog import FIXED_BSD, YearHint, split_syslog, syslog_times
from logforensics.schema import EVENT_SCHEMA
from logforensics.site import SiteProfile
from logforensics.sources import split_lines
from tests.conftest import CORPUS, ROOT, SAMPLES

ENVELOPE = ("mon", "day", "hms", "iso", "iso_zone", "priority", "host", "tag", "pid", "facility", "msg")

#: Lines at the edges of the fixed layout: each either takes the fast path with the grammar's
#: fields, or leaves it for the full pattern.
EDGE_LINES = [
    "Dec  1 00:00:00 mx1 postfix/smtpd[3001]: connect from unknown[192.0.2.66]",
    "Dec 01 00:00:00 mx1 postfix/smtpd[3001]: connect from unknown[192.0.2.66]",
    "Dec 1 00:00:00 mx1 postfix/smtpd[3001]: unpadded day",
    "Dec  0 00:00:00 mx1 postfix/smtpd[3001]: day zero",
    "Dec 31 23:59:59 mx1 postfix/smtpd: no pid",
    "Dec 31 23:59:59 mx1 dovecot: lmtp(3004, user3109): msgid=<x@y>: saved mail to INBOX",
    "Dec 31 23:59:59 mx1 postfix/smtpd[3001]:  two spaces",
    "Dec 31 23:59:59 mx1 postfix/smtpd[3001]:\ttab",
    "Dec 31 23:59:59 mx1 postfix/smtpd[3001]:no space",
    "Dec 31 23:59:59 mx1 postfix/smtpd[3001]: ",
    "Dec 31 23:59:59 mx1 postfix/smtpd[3001]:",
    "Dec 31 23:59:59 mx1 postfix/smtpd[3001]: [ID 801593 mail.info] connect from x[1.2.3.4]",
    "Dec 31 23:59:59 mx1 postfix/smtpd[3001]: [ID x] not solaris",
    "Dec 31 23:59:59 <mail.info> mx1 postfix/smtpd[3001]: priority",
    "Dec 31 23:59:59 <mx1> postfix/smtpd[3001]: odd host",
    "Dec 31 23:59:59 mx1: postfix/smtpd[3001]: host ends in a colon",
    "Dec 31 23:59:59 m postfix/smtpd[3001]: one-letter host",
    "Dec 31 23:59:59 postfix/smtpd[3001]: no host",
    "Dec 31 23:59:59 ünï.example postfix/smtpd[3001]: non-ASCII host and ünïcode text",
    "Dec 31 23:59:59.123 mx1 postfix/smtpd[3001]: fraction",
    "Dec 31 23:59:59  mx1 postfix/smtpd[3001]: two spaces before host",
    "Dec 31 23:59:59 mx1  postfix/smtpd[3001]: two spaces before tag",
    "Dec 31 23:59:59 mx1 postfix/smtpd[30x1]: bad pid",
    "Dec 31 23:59:59 mx1 postfix/smtpd[]: empty pid",
    "Dec 31 23:59:59 mx1 1postfix/smtpd[1]: tag starts with a digit",
    "Dec 31 25:61:61 mx1 postfix/smtpd[1]: impossible time",
    "Dec 31 2:00:00 mx1 postfix/smtpd[1]: one-digit hour",
    "Dez 31 23:59:59 mx1 postfix/smtpd[1]: not a month",
    "Dec\t31 23:59:59 mx1 postfix/smtpd[1]: tab in the stamp",
    "Dec 31 23:59:59 mx1 postfix/smtpd[1]: line with\na newline",
    "Dec 31 23:59:59 mx1 postfix/smtpd[1]: carriage return\r",
    "2004-12-31T23:59:59.5+01:00 mx1 postfix/smtpd[1]: RFC 3339",
    "postfix/smtpd[1]: header-less",
    "postfix/postfix-script: fatal: header-less without pid",
    "Dec 31 23:59:59 mx1 last message repeated 3 times",
    "last message repeated 2 times",
    "",
    "not a log line",
    # Brackets and colons around the tag: the pid is the line's first ``[`` only before the first ": ".
    "Dec 31 23:59:59 mx1 postfix/smtpd: connect from unknown[192.0.2.66]",
    "Dec 31 23:59:59 mx1 sm-mta: x[1]: y: z",
    "Dec 31 23:59:59 mx1 postfix/smtpd: [ID 801593 mail.info] Solaris without pid",
    "Dec 31 23:59:59 mx1 postfix/smtpd:[1] no space after the colon",
    "Dec 31 23:59:59 mx[1] postfix/smtpd[3001]: bracket in the host",
    "Dec 31 23:59:59 2001:db8::1 postfix/smtpd[3001]: IPv6 host: colons",
    "Dec 31 23:59:59 mx1 postfix/smtpd[3001]x: text after the pid",
    "Dec 31 23:59:59 mx1 a[1][2]: two pids",
    "Dec 31 23:59:59 mx1 postfix-in/submission/smtpd[7]: three-part tag",
    "Dec 31 23:59:59 mx1 x[1]: one-letter tag",
]


def corpus_lines() -> list[str]:
    files = sorted(p for p in (CORPUS / "postfix").rglob("*") if p.is_file()) if CORPUS.is_dir() else []
    files += sorted((SAMPLES / "postfix" / "mx1" / "var" / "log").iterdir())
    return [line for p in files for line in p.read_text(encoding="utf-8", errors="replace").splitlines()]


@pytest.fixture(scope="module")
def generated_lines(tmp_path_factory) -> list[str]:
    """A small log from the benchmark generator (the very mix the speed work is measured on)."""
    out = tmp_path_factory.mktemp("gen") / "mail.log"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gen_postfix.py"), str(out), "--mb", "0.5"],
                   check=True, capture_output=True)
    return out.read_text(encoding="utf-8").splitlines()


def assert_envelope_paths_agree(lines: list[str]) -> int:
    """``split_syslog`` = the full envelope pattern over the column = ``parse_line``; returns how many
    lines took the fixed-layout path."""
    series = pl.Series("raw", lines, dtype=pl.String)
    frame = split_syslog(series)
    full = series.str.extract_groups(anchored(syslog_grammar.LINE)).struct.unnest()
    full = full.with_columns(pl.col("pid").cast(pl.Int64, strict=False))
    assert_frame_equal(frame.select(ENVELOPE), full.select(ENVELOPE))
    for text, row in zip(lines, frame.iter_rows(named=True), strict=True):
        parsed = syslog_grammar.parse_line(text) or {}
        column = {k: (str(row[k]) if k == "pid" else row[k]) for k in ENVELOPE if row[k] is not None}
        assert parsed == column, text
    return int(series.str.contains(FIXED_BSD).sum())


def assert_shapes_agree(messages: list[str]) -> None:
    frame = shape_columns(pl.DataFrame({"msg": messages}, schema={"msg": pl.String}))
    for text, row in zip(messages, frame.iter_rows(named=True), strict=True):
        kind, fields = grammar.parse_message(text)
        column_fields = {g: row[f"f_{g}"] for g in FIELD_NAMES if row[f"f_{g}"] is not None}
        assert (row["kind"], column_fields) == (kind, fields), text


def test_fixed_layout_edges_agree_with_the_grammar():
    fast = assert_envelope_paths_agree(EDGE_LINES)
    assert fast >= 10


def test_all_fixed_lines_agree_with_the_grammar():
    """When every line is in the fixed layout the full pattern never runs (its own branch)."""
    fixed = [line for line in EDGE_LINES if pl.Series([line]).str.contains(FIXED_BSD).all() and "\n" not in line
             and not line.split(": ", 1)[1].startswith("[ID ")]
    assert len(fixed) >= 15
    assert_envelope_paths_agree(fixed)


def test_program_and_instance_join_keeps_line_order():
    """``program``/``instance`` (each distinct tag split once, joined back) = splitting every tag, in
    line order, null where there is no tag."""
    frame = split_syslog(pl.Series("raw", EDGE_LINES * 3, dtype=pl.String))
    assert frame["line"].to_list() == list(range(1, 3 * len(EDGE_LINES) + 1))
    for row in frame.iter_rows(named=True):
        tag = row["tag"]
        expected = (None, None) if tag is None else (tag.split("/")[-1], tag.split("/")[0])
        assert (row["program"], row["instance"]) == expected, row["raw"]


def test_fixed_layout_agrees_on_corpus_and_sample_lines():
    lines = corpus_lines()
    assert assert_envelope_paths_agree(lines) > 300


def test_generated_log_agrees_both_ways(generated_lines):
    assert assert_envelope_paths_agree(generated_lines) > 0.8 * len(generated_lines)
    frame = split_syslog(pl.Series("raw", generated_lines, dtype=pl.String))
    messages = frame.filter(pl.col("instance").str.starts_with("postfix"))["msg"].to_list()
    assert_shapes_agree(messages)


def test_shapes_agree_on_edge_messages():
    qid = "0000010C2D"
    assert_shapes_agree([
        "", "connect from x[1.2.3.4]", "Connect from x[1.2.3.4]", "connect from x[1.2.3.4] trailing",
        "disconnect from x[1.2.3.4] ehlo=1 quit=1/1 commands=2/2", "disconnect from x[1.2.3.4] ehlo=1 junk",
        f"{qid}: client=x[1.2.3.4]:25, sasl_method=PLAIN, sasl_username=u@d, orig_client=o[5.6.7.8]",
        "NOQUEUE: client=x[1.2.3.4]", "warning: 0000010C2D: client=x[1.2.3.4]",
        f"{qid}: reject: RCPT from x[1.2.3.4]: 554 5.7.1 <a@b>: Relay access denied; from=<> to=<a@b> proto=SMTP",
        f"{qid}: proxy-accept: END-OF-MESSAGE: 250 2.0.0 Ok: queued as 1; from=<a@b> to=<c@d> proto=ESMTP helo=<h>",
        "warning: unknown[1.2.3.4]: SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username=a@b",
        f"{qid}: from=<a@b>, size=1, nrcpt=1 (queue active)", f"{qid}: from=<a@b>, status=expired, returned",
        f'{qid}: to=<"q>x"@b>, orig_to=bare, relay=none, delay=1, status=deferred (connect to x: refused)',
        f"{qid}: uid=0 from=<root>", f"{qid}: resent-message-id=<x@y>", f"{qid}: removed",
        "44JCRG5tYPzCqt2: removed", "lost connection after AUTH from unknown[1.2.3.4]",
    ])


def test_split_lines_matches_the_column_split():
    def reference(text: str) -> list[str]:
        if not text:
            return []
        series = pl.Series("raw", [text]).str.split("\n").explode()
        if text.endswith("\n"):
            series = series.head(series.len() - 1)
        return series.str.strip_suffix("\r").to_list()

    for text in ["", "a", "a\n", "\n", "\r\n", "\n\n", "a\r\nb", "a\n\nb\r\n\r", "a\rb\n", "x\r\r\n", "ü\n"]:
        got = split_lines(text)
        assert (got.name, got.dtype, got.to_list()) == ("raw", pl.String, reference(text)), repr(text)


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin"])
def test_each_stamp_run_converts_like_a_single_line(zone):
    lines = ["Mar 27 01:59:59 h p[1]: a", "Mar 27 01:59:59 h p[1]: b", "junk", "Mar 27 02:30:00 h p[1]: c",
             "Mar 27 02:30:00 h p[1]: d", "Mar 30 02:30:00 h p[1]: e", "2004-03-28T02:30:00 h p[1]: f",
             "2004-03-28T02:30:00Z h p[1]: g", "Feb 30 10:00:00 h p[1]: h", "Feb 30 10:00:00 h p[1]: i",
             "Mar 27 01:59:59 h p[1]: a stamp again after others", "Mar 27 01:59:59 h p[1]: and again"]
    frame = split_syslog(pl.Series(lines))
    hint = YearHint(start_year=2004)
    together, _ = syslog_times(frame, zone, hint)
    alone = [syslog_times(frame[i:i + 1], zone, hint)[0][0] for i in range(frame.height)]
    assert together.to_list() == alone
    assert together[0] is not None and together[2] is None and together[8] is None


def test_session_before_the_first_connect_starts_at_the_pids_first_line_of_any_program():
    """Only smtpd rows are windowed; a pid seen first under another program still keys the cut-off
    session by that first line."""
    text = "\n".join([
        "Jan 12 10:00:00 mx postfix/cleanup[77]: 0000010C2D: message-id=<a@b>",
        "Jan 12 10:00:01 mx postfix/smtpd[77]: lost connection after RCPT from x[1.2.3.4]",
        "Jan 12 10:00:02 mx postfix/smtpd[77]: disconnect from x[1.2.3.4]",
        "Jan 12 10:00:03 mx postfix/smtpd[77]: connect from y[5.6.7.8]",
        "Jan 12 10:00:04 mx postfix/smtpd[77]: 0000010C2E: client=y[5.6.7.8], sasl_method=LOGIN, sasl_username=u",
        "Jan 12 10:00:05 mx postfix/smtpd[77]: NOQUEUE: reject: RCPT from y[5.6.7.8]: 554 5.7.1 <a@b>: "
        "Relay access denied; from=<s@x> to=<a@b> proto=ESMTP helo=<hy>",
        "Jan 12 10:00:06 mx postfix/smtpd[77]: disconnect from y[5.6.7.8]",
        "Jan 12 10:00:07 mx postfix/smtpd[77]: warning: after the disconnect",
    ]) + "\n"
    res = PostfixReader().read(split_lines(text), ReadContext("s.log", SiteProfile(timezone="UTC"), None))
    got = res.events.select("line", "session", "client_ip", "auth_user").rows()
    assert got == [
        (1, None, None, None),
        (2, "s.log#mx#77#L1", "1.2.3.4", None),
        (3, "s.log#mx#77#L1", "1.2.3.4", None),
        (4, "s.log#mx#77#L4", "5.6.7.8", None),
        (5, "s.log#mx#77#L4", "5.6.7.8", "u"),
        (6, "s.log#mx#77#L4", "5.6.7.8", "u"),
        (7, "s.log#mx#77#L4", "5.6.7.8", None),
        (8, None, None, None),
    ]


def test_times_of_the_fixed_layout_are_the_grammar_fields():
    frame = split_syslog(pl.Series(["Dec  1 00:00:07 mx1 postfix/smtpd[3001]: x"]))
    ts, _ = syslog_times(frame, "UTC", YearHint(start_year=2004))
    assert ts[0] == datetime(2004, 12, 1, 0, 0, 7, tzinfo=UTC)


def test_root_is_the_project():
    assert (ROOT / "benchmarks" / "gen_postfix.py").is_file() and Path(__file__).parent.parent == ROOT


#: Messages at the edges of the strict layouts (grammars.postfix.LAYOUTS): each either takes its
#: layout with the full pattern's fields, or leaves it for the full patterns.
LAYOUT_EDGES = [
    # delivery
    "0000010C2D: to=<a@b>, relay=mx[1.2.3.4]:25, delay=1, delays=0.1/0/0.5/0.4, dsn=2.0.0, status=sent (250 ok)",
    "0000010C2D: to=<>, relay=none, delay=0, delays=0/0/0/0, dsn=5.0.0, status=bounced (x (y) z)",
    "0000010C2D: to=<a@b>, relay=mx[2001:db8::1]:25, delay=1, delays=1/0/0/0, dsn=4.0.0, status=deferred ((a)",
    "44JCRG5tYPzCqt2: to=<a@b>, relay=local, delay=1, delays=1/0/0/0, dsn=2.0.0, status=sent (delivered)",
    '0000010C2D: to=<"q>x,y"@b>, relay=local, delay=1, delays=1/0/0/0, dsn=2.0.0, status=sent (ok)',
    "0000010C2D: to=<a, b@c>, relay=local, delay=1, delays=1/0/0/0, dsn=2.0.0, status=sent (ok)",
    "0000010C2D: to=<a@b>, orig_to=<c@d>, relay=local, delay=1, delays=1/0/0/0, dsn=2.0.0, status=sent (ok)",
    "0000010C2D: to=<a@b>, relay=local, conn_use=2, delay=1, delays=1/0/0/0, dsn=2.0.0, status=sent (ok)",
    "0000010C2D: to=<a@b>, relay=local, delay=1, delays=1/0/0/0, dsn=2.0.0, status=sent (ok) ",
    "0000010C2D: to=<a@b>, relay=local, delay=1, delays=1/0/0/0, dsn=2.0.0, status=sent",
    "0000010C2D: to=<a@b>, relay=local, delay=1, delays=1/0/0/0, dsn=2.0.0, status=sent\t(ok)",
    "0000010C2D: to=<a@b>,  relay=local, delay=1, delays=1/0/0/0, dsn=2.0.0, status=sent (ok)",
    "0000010C2D: to=a@b, relay=local, delay=1, status=sent (ok)",
    "abcdefghij: to=<a@b>, relay=local, delay=1, delays=1/0/0/0, dsn=2.0.0, status=sent (ok)",
    "NOQUEUE: to=<a@b>, relay=local, delay=1, delays=1/0/0/0, dsn=2.0.0, status=sent (ünï)",
    # connect / disconnect
    "connect from unknown[2001:db8::1]", "connect from x[1.2.3.4]:25", "connect from x [1.2.3.4]",
    "connect from x[1.2.3.4] ", "connect from x[[1]]", "connect from [1.2.3.4]", "connect from ünï[1.2.3.4]",
    "disconnect from x[::1] ehlo=1 auth=0/1 commands=1/2", "disconnect from x[1.2.3.4]  ehlo=1",
    "disconnect from x[1.2.3.4] ehlo=1 ", "disconnect from x[1.2.3.4]", "disconnect from x[1.2.3.4] Ehlo=1",
    # received
    "0000010C2D: client=x[1.2.3.4]", "0000010C2D: client=x[1.2.3.4]:25", "NOQUEUE: client=x[1.2.3.4]",
    "0000010C2D: client=x[1.2.3.4], sasl_method=LOGIN, sasl_username=u@d", "0000010C2D: client=[::1]",
    "warning: client=x[1.2.3.4]", "0000010C2D: client=x[1.2.3.4] ",
    # action
    "NOQUEUE: reject: RCPT from x[1.2.3.4]: 554 5.7.1 <a@b>: Relay access denied; from=<s@x> to=<a@b> "
    "proto=ESMTP helo=<h>",
    "NOQUEUE: reject: RCPT from unknown[2001:db8::1]: 554 5.7.1 <a@b>: Relay access denied; from=<> to=<a@b> "
    "proto=ESMTP helo=<[2001:db8::1]>",
    "NOQUEUE: reject: RCPT from x[1.2.3.4]: 554 to=<z@z> in the reason; from=<s@x> to=<a@b> proto=SMTP helo=<h>",
    "NOQUEUE: reject: RCPT from x[1.2.3.4]: 554 a; b; from=<s@x> to=<a@b> proto=SMTP helo=<h>",
    "NOQUEUE: reject: RCPT from x[1.2.3.4]: 554 x; from=<s@x> to=<a@b> proto=SMTP helo=<h>; from=<t@y> to=<c@d> "
    "proto=SMTP helo=<i>",
    'NOQUEUE: reject: RCPT from x[1.2.3.4]: 554 x; from=<"a>b,c"@x> to=<a@b> proto=SMTP helo=<h>',
    'NOQUEUE: reject: RCPT from x[1.2.3.4]: 554 x; from=<s@x> to=<"q>x"@b> proto=SMTP helo=<h>',
    "NOQUEUE: reject: RCPT from x[1.2.3.4]:25: 554 x; from=<s@x> to=<a@b> proto=SMTP helo=<h>",
    "NOQUEUE: reject: RCPT from [1.2.3.4]:25: 550 x; from=<s@x>, to=<a@b>, proto=ESMTP, helo=<h>",
    "NOQUEUE: reject: RCPT from x[1.2.3.4]: 554 x; to=<a@b> proto=SMTP helo=<h>",
    "NOQUEUE: reject: RCPT from x[1.2.3.4]: 554 x; from=<s@x> to=<a@b> proto=SMTP helo=h",
    "NOQUEUE: reject: RCPT from x[1.2.3.4]: 554 x; from=<s@x> to=<a@b> proto=SMTP helo=<a b>",
    "NOQUEUE: reject: RCPT from x[1.2.3.4]: 554 x; from=<s@x> to=<a@b> proto=SMTP helo=<>",
    "NOQUEUE: reject: RCPT from x[1.2.3.4]: 554 x; from=<s@x> to=<a@b> proto=SMTP helo=<a>b>",
    "NOQUEUE: reject: RCPT from x[1.2.3.4]: 554 x; from=<s@x> to=<a@b> proto=SMTP helo=<h> ",
    "NOQUEUE: reject: RCPT from x[1.2.3.4]: 554 x; from=<s@x> to=<a@b> proto=SMTP",
    "NOQUEUE: reject: RCPT from x[1.2.3.4]: 554 x;  from=<s@x> to=<a@b> proto=SMTP helo=<h>",
    "NOQUEUE: reject: RCPT from x[1.2.3.4]:\t554 x; from=<s@x> to=<a@b> proto=SMTP helo=<h>",
    "0000010C2D: milter-reject: END-OF-MESSAGE from x[1.2.3.4]: 5.7.1 no; from=<s@x> to=<a@b> proto=ESMTP helo=<h>",
    "0000010C2D: reject_warning: MAIL from x[1.2.3.4]: 450 x; from=<s@x> to=<a@b> proto=ESMTP helo=<h>",
    "0000010C2D: proxy-accept: END-OF-MESSAGE from x[1.2.3.4]: 250 2.0.0 Ok: queued as 1; from=<a@b> to=<c@d> "
    "proto=ESMTP helo=<h>",
    "0000010C2D: reject: header Subject: x from x[1.2.3.4]; from=<s@x> to=<a@b> proto=ESMTP helo=<h>",
    "reject: RCPT from x[1.2.3.4]: 554 x; from=<s@x> to=<a@b> proto=SMTP helo=<h>",
    "NOQUEUE: rejected: RCPT from x[1.2.3.4]: 554 x; from=<s@x> to=<a@b> proto=SMTP helo=<h>",
    # queued, message-id, removed
    "0000010C2D: from=<a@b>, size=1, nrcpt=1 (queue active)", "0000010C2D: from=<a@b>, size=1, nrcpt=1",
    '0000010C2D: from=<"a>,b"@c>, size=1, nrcpt=1 (queue active)', "0000010C2D: from=<a@b>, size=1, nrcpt=1 (x) ",
    "0000010C2D: from=<a@b>, status=expired, returned to sender",
    "0000010C2D: message-id=<a@b>", "0000010C2D: message-id=", "0000010C2D: resent-message-id=<a@b>",
    "0000010C2D: message-id=<a b>; x: y ", "NOQUEUE: message-id=<a@b>",
    "0000010C2D: removed", "0000010C2D: removed ", "NOQUEUE: removed", "removed", "44JCRG5tYPzCqt2: removed",
    "0000010C2D: removed: x", "warning: 0000010C2D: removed",
]


def test_layout_groups_end_at_their_separators():
    """No group's class takes its separator's first character, so cutting at the first occurrence of
    the separator is the group's match."""
    for name, (_lead, steps) in grammar.LAYOUTS.items():
        for group, cls, sep in steps[:-1]:
            assert re.fullmatch(f"(?:{cls})", sep[0]) is None, (name, group)
            assert not re.fullmatch(f"(?:{cls})", "x" + sep[0]) and not re.fullmatch(f"(?:{cls})", "1" + sep[0])


def test_layouts_agree_with_the_full_patterns():
    assert_shapes_agree(LAYOUT_EDGES)
    fast = {name: sum(bool(re.match(anchored(grammar.layout_pattern(layout)), m)) for m in LAYOUT_EDGES)
            for name, layout in grammar.LAYOUTS.items()}
    assert all(n >= 1 for n in fast.values()), fast  # every layout really taken
    # The layouts exclude each other, so the order they are tried in does not matter.
    for m in LAYOUT_EDGES:
        assert sum(bool(re.match(anchored(grammar.layout_pattern(layout)), m))
                   for layout in grammar.LAYOUTS.values()) <= 1, m


def test_layouts_agree_on_corpus_and_sample_messages():
    frame = split_syslog(pl.Series("raw", corpus_lines(), dtype=pl.String))
    assert_shapes_agree(frame.filter(pl.col("instance").str.starts_with("postfix"))["msg"].to_list())


def test_read_equals_the_full_pattern_path(generated_lines, monkeypatch):
    """The whole reader with the layouts turned off gives the same events."""
    text = "\n".join(generated_lines[:3000] + [f"Jan 12 10:00:00 mx postfix/smtpd[77]: {m}" for m in LAYOUT_EDGES]
                     + [f"Jan 12 10:00:01 mx postfix/qmgr[78]: {m}" for m in LAYOUT_EDGES]) + "\n"
    ctx = ReadContext("s.log", SiteProfile(timezone="Europe/Berlin"), None, YearHint(start_year=2004))
    fast = PostfixReader().read(split_lines(text), ctx).events
    monkeypatch.setattr(grammar, "LAYOUTS", {})
    full = PostfixReader().read(split_lines(text), ctx).events
    assert_frame_equal(fast, full)


def test_shared_separators_split_at_the_layout_literals():
    """A shared separator occurs at most once per literal, not in the lead, and no group before the
    last literal holding it can take its first character: its first occurrences are the literals'."""
    for name, shared in grammar.SHARED_SEPARATORS.items():
        lead, steps = grammar.LAYOUTS[name]
        assert shared not in lead
        holding = [i for i, (_, _, sep) in enumerate(steps) if shared in sep]
        assert holding and all(steps[i][2].count(shared) == 1 for i in holding)
        for group, cls, _ in steps[:holding[-1] + 1]:
            for text in (shared[0], "x" + shared[0], "1" + shared[0], "x" + shared):
                assert re.fullmatch(f"(?:{cls})", text) is None, (name, group)


def test_cutting_only_the_wanted_groups_gives_the_same_columns():
    """``shape_columns`` with a few groups (cutting stops early, unwanted stretches skipped) gives the
    same columns as with every group, with and without the shared-separator split."""
    frame = pl.DataFrame({"msg": LAYOUT_EDGES}, schema={"msg": pl.String})
    full = shape_columns(frame)
    for groups in (USED_FIELDS, ["qid"], ["to", "status"], ["relay"], ["detail"], ["size", "helo"]):
        assert_frame_equal(shape_columns(frame, groups), full.select("msg", "kind", *(f"f_{g}" for g in groups)))


def test_shared_separator_split_equals_the_plain_cut(monkeypatch):
    frame = pl.DataFrame({"msg": LAYOUT_EDGES}, schema={"msg": pl.String})
    split = shape_columns(frame)
    monkeypatch.setattr(grammar, "SHARED_SEPARATORS", {})
    assert_frame_equal(shape_columns(frame), split)


def test_sessions_equal_a_line_by_line_reference():
    """``_sessions`` (sorted by group, contiguous session blocks) against a plain walk over the lines:
    random interleaved smtpd pids with connects, disconnects, client lines and lines after a
    disconnect, and other programs sharing a pid."""
    import random

    rng = random.Random(11)
    lines = []
    for i in range(1500):
        pid = rng.choice([101, 102, 103, 104])
        program = "smtpd" if rng.random() < 0.85 else "cleanup"
        stamp = f"Jan 12 10:{i // 60 % 60:02d}:{i % 60:02d}"
        msg = rng.choice([f"connect from h{i}[10.0.0.{i % 250}]", f"disconnect from h{i}[10.0.0.{i % 250}]",
                          f"{0x10000 + i:X}: client=c{i}[10.1.0.{i % 250}]", "lost connection after DATA",
                          f"NOQUEUE: reject: RCPT from r{i}[10.2.0.{i % 250}]: 554 x; from=<a@b> to=<c@d> "
                          f"proto=ESMTP helo=<h>"])
        lines.append(f"{stamp} mx postfix/{program}[{pid}]: {msg}")
    ctx = ReadContext("s.log", SiteProfile(timezone="UTC"), None, YearHint(start_year=2004))
    events = PostfixReader().read(split_lines("\n".join(lines) + "\n"), ctx).events.sort("line")
    first_line: dict[int, int] = {}
    state: dict[int, dict] = {}
    for row in events.iter_rows(named=True):
        pid = int(re.search(r"\[([0-9]+)\]: ", lines[row["line"] - 1]).group(1))
        first_line.setdefault(pid, row["line"])
        if "/smtpd[" not in lines[row["line"] - 1]:
            assert row["session"] is None
            continue
        text = lines[row["line"] - 1].split("]: ", 1)[1]
        st = state.get(pid)
        if text.startswith("connect from") or st is None:
            start = row["line"] if text.startswith("connect from") else first_line[pid]
            st = state[pid] = {"key": f"s.log#mx#{pid}#L{start}", "open": True, "ip": None, "after_disc": False}
        elif st["after_disc"]:
            st["open"] = False
        if st["open"]:
            found = re.search(r"\[([0-9.]+)\]", text)
            own = found.group(1) if found else None
            st["ip"] = own if own is not None else st["ip"]
            assert (row["session"], row["client_ip"]) == (st["key"], st["ip"]), row
        else:
            assert row["session"] is None, row
        st["after_disc"] = text.startswith("disconnect from")


def test_events_per_shape_equal_the_general_form(generated_lines):
    """``event_columns`` with each part's shape known (choices folded in Python) gives what the
    general form (one ``when/then`` chain on the ``kind`` column) gives over all rows: every edge
    message under the programs the shape choices look at, and the generated log's messages."""
    edge = [
        *LAYOUT_EDGES,
        "lost connection after AUTH from unknown[1.2.3.4]", "warning: hostname x does not resolve to address 1.2.3.4",
        "0000010C2D: from=<a@b>, status=expired, returned to sender", "0000010C2D: uid=0 from=<root>",
        "NOQUEUE: client=x[1.2.3.4]", "0000010C2D: client=x[], sasl_method=LOGIN, sasl_username=",
        "warning: unknown[1.2.3.4]: SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username=a@b",
        "0000010C2D: proxy-reject: END-OF-MESSAGE: 554 x; from=<a@b> to=<c@d> proto=ESMTP helo=<h>",
        "0000010C2D: reject: VRFY from x[1.2.3.4]: 550 5.1.1 <u@x>: Recipient address rejected: no; to=<u@x> "
        "proto=SMTP helo=<h>",
        "0000010C2D: to=<a@b>, relay=127.0.0.1[127.0.0.1]:10024, delay=1, status=sent (250 ok)",
        "0000010C2D: to=<a@b>, relay=x[private/dovecot-lmtp], delay=1, status=sent (250 ok)",
        "0000010C2D: to=<a@b>, relay=x[1.2.3.4]:25, delay=1, status=deferred (host x[1.2.3.4] said: 451 4.3.0 no)",
        "connect from [1.2.3.4]:4444", "disconnect from unknown[1.2.3.4] ehlo=1 quit=1 commands=2",
    ]
    messages = [(m, p) for m in edge for p in ("smtpd", "smtp", "postscreen", "local", "qmgr")]
    frame = split_syslog(pl.Series("raw", generated_lines, dtype=pl.String))
    messages += frame.filter(pl.col("instance").str.starts_with("postfix")).select("msg", "program").rows()
    df = pl.DataFrame(messages, schema={"msg": pl.String, "program": pl.String}, orient="row")
    parts = shape_parts(df, USED_FIELDS, carry=("program",))
    assert len({kind for kind, _ in parts}) >= 10
    folded = pl.concat([event_columns(part, kind) for kind, part in parts]).sort("row_")
    general = event_columns(shape_columns(df, USED_FIELDS).with_columns(
        pl.int_range(pl.len(), dtype=pl.UInt32).alias("row_"), pl.col("msg").fill_null("")))
    assert_frame_equal(folded, general)


def test_fills_in_parts_equal_the_windows():
    """``fill_forward_in_parts`` and ``first_in_parts`` (contiguous parts, no window) against
    ``forward_fill().over`` and ``drop_nulls().first().over`` on random parts with nulls."""
    import random

    rng = random.Random(5)
    for _ in range(30):
        n = rng.randint(0, 60)
        starts = [i == 0 or rng.random() < 0.3 for i in range(n)]
        part = list(__import__("itertools").accumulate(int(s) for s in starts))
        value = [rng.choice([None, None, "", "a", "b", "c"]) for _ in range(n)]
        frame = pl.DataFrame({"part": part, "v": value}, schema={"part": pl.Int64, "v": pl.String})
        want = frame.select(pl.col("v").forward_fill().over("part"), pl.col("v").drop_nulls().first().over("part")
                            .alias("first"))
        got = frame.select(fill_forward_in_parts(pl.col("v"), pl.col("part")).alias("v"))
        assert got["v"].to_list() == want["v"].to_list(), (part, value)
        assert first_in_parts(frame, "v", "part").to_list() == want["first"].to_list(), (part, value)


@pytest.mark.parametrize("lines", [[], ["junk"], ["Dec  1 00:00:00 mx dovecot: not postfix"]])
def test_no_postfix_rows_give_no_events_with_the_schema(lines):
    """No shape part has a row: one empty part still carries every column."""
    res = PostfixReader().read(pl.Series("raw", lines, dtype=pl.String), ReadContext("f", SiteProfile(), "srv"))
    assert res.events.height == 0 and res.events.columns == list(EVENT_SCHEMA)


@pytest.mark.parametrize("lines", [
    ["Dec  1 00:00:00 mx1 postfix/smtpd[1]: connect from a[192.0.2.1]"] * 3,
    ["Dec  1 00:00:00 mx1 postfix/smtpd[1]: connect from a[192.0.2.1]", "", " \t", "\u00a0\u2003", "junk",
     "Dec  1 00:00:01 mx1 last message repeated 2 times", "postfix/postfix-script: fatal: x", " x "],
])
def test_blank_lines_are_the_whitespace_only_lines(lines):
    """The blank test runs on untagged lines only: the count is still every whitespace-only line."""
    result = PostfixReader().read(pl.Series(lines, dtype=pl.String), ReadContext(
        "t", SiteProfile(timezone="UTC"), None, YearHint(start_year=2004)))
    assert result.blank == sum(1 for line in lines if not line.strip())
