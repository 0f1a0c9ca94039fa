"""Exchange 2007+ SMTP protocol logs (SmtpReceive / SmtpSend): every variant of the research note
(generic-smtp §7.2, §9 items 8-9, §10), sessions, pipelined reply pairing, AUTH, hostile input,
corpus and sample."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest

from grammars import exchange_protocol as grammar
from grammars.common import anchored
from logforensics.detect.findings import RELAY_DENIAL
from logforensics.readers import READERS, sniff_format
from logforensics.site import SiteProfile
from tests.conftest import CORPUS, SAMPLES, read_log, rows, utc

PROTO_CORPUS = CORPUS / "exchange-smtp-protocol"
EXCH03 = SAMPLES / "exchange2010" / "EXCH03" / "TransportRoles" / "Logs" / "ProtocolLog"
RECV = EXCH03 / "SmtpReceive" / "RECV2010061500-1.LOG"
SEND = EXCH03 / "SmtpSend" / "SEND2010061500-1.LOG"
needs_corpus = pytest.mark.skipif(not PROTO_CORPUS.is_dir(), reason=f"corpus folder {PROTO_CORPUS} not present")
SITE = SiteProfile(timezone="UTC", local_domains=("acme-widgets.com",), server_names=("EXCH03",))

FIELDS = "#Fields: " + ",".join(grammar.DEFAULT_FIELDS)


def header(log_type: str = "SMTP Receive Protocol Log", nl: str = "\n") -> str:
    return nl.join(["#Software: Microsoft Exchange Server", "#Version: 14.0.0.0", f"#Log-type: {log_type}",
                    "#Date: 2010-06-15T09:00:00.000Z", FIELDS]) + nl


def row(ms: int, sid: str, seq: int, event: str, data: str = "", context: str = "", *,
        local: str = "10.20.1.30:25", remote: str = "203.0.113.45:3391", conn: str = "EXCH03\\Default EXCH03") -> str:
    return (f"2010-06-15T09:00:{ms // 1000:02d}.{ms % 1000:03d}Z,{conn},{sid},{seq},{local},{remote},{event},"
            f"{data},{context}\n")


def session(sid: str, start: int, lines: list[tuple[str, str]], **kw) -> str:
    out = [row(start, sid, 0, "+", **kw)]
    for n, (ev, data) in enumerate(lines, start=1):
        out.append(row(start + n, sid, n, ev, data, **kw))
    return "".join(out)


RELAY_ATTEMPT = [(">", "220 EXCH03.acme-widgets.com Microsoft ESMTP MAIL Service ready"),
                 ("<", "EHLO spam.example"), (">", "250-EXCH03.acme-widgets.com Hello [203.0.113.45]"),
                 (">", "250-PIPELINING"), (">", "250 CHUNKING"),
                 ("<", "MAIL FROM:<promo@deals.example> SIZE=4096"), (">", "250 2.1.0 Sender OK"),
                 ("<", "RCPT TO:<victim1@example.net>"), (">", "550 5.7.1 Unable to relay"),
                 ("<", "RCPT TO:<victim2@example.org>"),
                 (">", "550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain"),
                 ("<", "QUIT"), (">", "221 2.0.0 Service closing transmission channel")]


# -- the format, row by row -----------------------------------------------------------------------

def test_receive_session_events_and_relay_denials(tmp_path):
    res = read_log(tmp_path, header() + session("08CCDA6B3F2E1A04", 0, RELAY_ATTEMPT) + row(20, "08CCDA6B3F2E1A04", 14, "-", "", "Local"),
                   name="RECV2010061500-1.LOG", site=SITE)
    report = res.inputs[0]
    assert (report.format, report.lines, report.events, report.skipped_lines, report.warnings) == (
        "exchange-smtp-protocol", 20, 15, 0, [])
    assert rows(res, "line", "event", "verb", "reply", "reply_line", "sender", "recipient") == [
        (6, "connect", None, None, None, None, None),
        (7, "reply", None, 220, None, None, None),
        (8, "helo", "EHLO", 250, 11, None, None),
        (9, "reply", None, 250, None, None, None),
        (10, "reply", None, 250, None, None, None),
        (11, "reply", None, 250, None, None, None),
        (12, "mail", "MAIL", 250, 13, "promo@deals.example", None),
        (13, "reply", None, 250, None, "promo@deals.example", None),
        (14, "rcpt", "RCPT", 550, 15, "promo@deals.example", "victim1@example.net"),
        (15, "reply", None, 550, None, "promo@deals.example", None),
        (16, "rcpt", "RCPT", 550, 17, "promo@deals.example", "victim2@example.org"),
        (17, "reply", None, 550, None, "promo@deals.example", None),
        (18, "quit", "QUIT", 221, 19, "promo@deals.example", None),
        (19, "reply", None, 221, None, "promo@deals.example", None),
        (20, "note", None, None, None, "promo@deals.example", None),
    ]
    ev = res.events
    assert set(ev["direction"]) == {"in"} and set(ev["client_ip"]) == {"203.0.113.45"}
    assert set(ev["server"]) == {"EXCH03"} and ev["session"].n_unique() == 1
    assert ev["session"][0] == "EXCH03#sid#08CCDA6B3F2E1A04"  # server and id: joins the next file
    first = ev.row(0, named=True)
    assert first["ts"] == utc("2010-06-15 09:00:00")
    assert ev.filter(pl.col("line") == 8)["helo"][0] == "spam.example"
    assert ev.filter(pl.col("line") == 12)["size"][0] == 4096
    assert ev.filter(pl.col("line") == 16)["reply_text"][0] == "5.7.54 SMTP; Unable to relay recipient in non-accepted domain"
    assert ev.filter(pl.col("line") == 17)["text"][0] == "550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain"
    assert ev.filter(pl.col("line") == 20)["text"][0] == "Local"
    # Both documented refusal texts are relay denials to the detectors.
    for text in ev.filter(pl.col("event") == "rcpt")["reply_text"]:
        assert re.search(RELAY_DENIAL[4:], text, re.IGNORECASE), text


def test_relay_denials_are_refused_findings_without_local_domains(tmp_path):
    from logforensics.scan import scan

    path = tmp_path / "RECV2010061500-1.LOG"
    path.write_text(header() + session("08CCDA6B3F2E1A04", 0, RELAY_ATTEMPT))
    result = scan([path], SiteProfile(timezone="UTC"))
    got = {(f["recipient"], f["verdict"], f["rule"]) for f in result.findings.iter_rows(named=True)}
    assert got == {("victim1@example.net", "refused", "LF-UNAUTH-RELAY"),
                   ("victim2@example.org", "refused", "LF-UNAUTH-RELAY")}


def test_bom_and_crlf(tmp_path):
    text = "\ufeff" + header(nl="\r\n") + session("A1", 0, RELAY_ATTEMPT[:2]).replace("\n", "\r\n")
    res = read_log(tmp_path, text, name="RECV2010061500-1.LOG")
    report = res.inputs[0]
    assert (report.format, report.encoding, report.lines, report.events, report.skipped_lines) == (
        "exchange-smtp-protocol", "utf-8-sig", 8, 3, 0)
    assert rows(res, "line", "event", "helo", "text") == [
        (6, "connect", None, ""), (7, "reply", None, "220 EXCH03.acme-widgets.com Microsoft ESMTP MAIL Service ready"),
        (8, "helo", "spam.example", "EHLO spam.example")]


def test_quoted_fields_with_commas_and_doubled_quotes(tmp_path):
    conn = '"EXCH03\\Default, ""Internet"" EXCH03"'
    text = header() + "".join(row(n, "A1", n, ev, data, ctx, conn=conn) for n, (ev, data, ctx) in enumerate([
        ("+", "", ""),
        (">", '"220 EXCH03.acme-widgets.com Microsoft ESMTP MAIL Service ready at Tue, 15 Jun 2010 04:00:00 -0500"', ""),
        ("<", "MAIL FROM:<promo@deals.example>", ""),
        (">", "250 2.1.0 Sender OK", ""),
        ("<", '"RCPT TO:<""victim3@example.com""@acme-widgets.com>"', ""),
        (">", "250 2.1.5 Recipient OK", ""),
        ("*", "\"Tarpit for '0.00:00:05' due to 'DelayedAck', \"\"x\"\"\"", "Delivered"),
    ]))
    res = read_log(tmp_path, text, name="RECV.LOG", site=SITE)
    assert res.inputs[0].skipped_lines == 0
    assert res.events["server"].unique().to_list() == ["EXCH03"]
    assert rows(res, "line", "event", "recipient", "text") == [
        (6, "connect", None, ""),
        (7, "reply", None, "220 EXCH03.acme-widgets.com Microsoft ESMTP MAIL Service ready at Tue, 15 Jun 2010 04:00:00 -0500"),
        (8, "mail", None, "MAIL FROM:<promo@deals.example>"),
        (9, "reply", None, "250 2.1.0 Sender OK"),
        (10, "rcpt", '"victim3@example.com"@acme-widgets.com', 'RCPT TO:<"victim3@example.com"@acme-widgets.com>'),
        (11, "reply", None, "250 2.1.5 Recipient OK"),
        (12, "note", None, "Tarpit for '0.00:00:05' due to 'DelayedAck', \"x\" (Delivered)"),
    ]


def test_quoted_value_with_line_breaks_is_one_record(tmp_path):
    """Unconfirmed in real files (§9 item 8): the physical lines of one quoted value are joined."""
    text = header() + "".join([
        row(0, "A1", 0, "+"),
        row(1, "A1", 1, ">", '"220-EXCH03 first line\n220-second, line\n\n220 last"'),
        row(2, "A1", 2, "<", "EHLO x"),
        "garbage line after a closed record\n",
        row(3, "A1", 3, ">", '"250 never closed'),
        row(4, "A1", 4, "<", "QUIT"),
    ])
    res = read_log(tmp_path, text, name="RECV.LOG")
    report = res.inputs[0]
    # 14 lines = 5 header + 4 events + 3 continuation lines + 1 garbage + 1 unterminated record
    assert (report.lines, report.events, report.skipped_lines) == (14, 4, 2)
    assert rows(res, "line", "event", "text") == [
        (6, "connect", ""), (7, "reply", "220-EXCH03 first line\n220-second, line\n\n220 last"),
        (11, "helo", "EHLO x"), (14, "quit", "QUIT")]
    src = report.path
    assert report.warnings == [f"{src}:12: not a row of the current #Fields set: garbage line after a closed record",
                               f"{src}:13: not a row of the current #Fields set: "
                               "2010-06-15T09:00:00.003Z,EXCH03\\\\Default EXCH03,A1,3,10.20.1.30:25,203.0.113.45:3..."]


def test_fields_change_mid_file(tmp_path):
    """Each #Fields block is read by its own list (here a restart writes a reordered, shorter set)."""
    short = "#Fields: date-time,session-id,event,data,remote-endpoint,connector-id\n"
    text = (header() + row(0, "A1", 0, "+") + row(1, "A1", 1, "<", "EHLO a.example")
            + "#Software: Microsoft Exchange Server\n#Log-type: SMTP Receive Protocol Log\n" + short
            + "2010-06-15T10:00:00.000Z,B2,+,,192.0.2.9:1025,EXCH04\\Default\n"
            + "2010-06-15T10:00:01.000Z,B2,<,RCPT TO:<x@example.net>,192.0.2.9:1025,EXCH04\\Default\n"
            + "2010-06-15T10:00:02.000Z,B2,>,250 2.1.5 Recipient OK,192.0.2.9:1025,EXCH04\\Default\n")
    res = read_log(tmp_path, text, name="RECV.LOG", site=SiteProfile(timezone="UTC"))
    report = res.inputs[0]
    assert (report.lines, report.events, report.skipped_lines) == (13, 5, 0)
    assert rows(res, "line", "event", "client_ip", "server", "recipient", "reply") == [
        (6, "connect", "203.0.113.45", "EXCH03", None, None),
        (7, "helo", "203.0.113.45", "EXCH03", None, None),
        (11, "connect", "192.0.2.9", "EXCH04", None, None),
        (12, "rcpt", "192.0.2.9", "EXCH04", "x@example.net", 250),
        (13, "reply", "192.0.2.9", "EXCH04", None, 250),
    ]


def test_missing_trailing_field_is_null_and_short_rows_are_bad(tmp_path):
    text = header() + "".join([
        "2010-06-15T09:00:00.000Z,EXCH03\\Default EXCH03,A1,0,10.20.1.30:25,203.0.113.45:3391,+\n",  # no data, no context
        "2010-06-15T09:00:01.000Z,EXCH03\\Default EXCH03,A1,1,10.20.1.30:25,203.0.113.45:3391,<,EHLO x\n",  # no context
        "2010-06-15T09:00:02.000Z,EXCH03\\Default EXCH03,A1,2,10.20.1.30:25\n",  # cut before the event
    ])
    res = read_log(tmp_path, text, name="RECV.LOG")
    report = res.inputs[0]
    assert (report.events, report.skipped_lines) == (2, 1)
    assert rows(res, "line", "event", "helo") == [(6, "connect", None), (7, "helo", "x")]
    assert report.warnings[0].startswith(f"{report.path}:8: not a row of the current #Fields set")


def test_garbage_lines_are_skipped_with_warnings_and_the_rest_is_read(tmp_path):
    text = header() + "".join([
        row(0, "A1", 0, "+"),
        "this is not a row\n",
        row(1, "A1", 1, "<", "EHLO x").replace("09:00:00.001Z", "09:61:00.001Z"),  # bad time
        row(2, "A1", 2, "?", "EHLO x"),  # unknown event
        "\x00\x01\x02 binary junk, with, commas, \"quote\n",
        row(3, "A1", 3, "<", "EHLO y"),
        "#Fields: 1x,1x,f_1x\n",  # hostile field names: read by them
        "a,b,c\n",
        "\n",
    ])
    res = read_log(tmp_path, text, name="RECV.LOG")
    report = res.inputs[0]
    assert (report.lines, report.events, report.skipped_lines) == (14, 2, 5)
    assert rows(res, "line", "event") == [(6, "connect"), (11, "helo")]
    src = report.path
    assert [w.split(": ", 2)[:2] for w in report.warnings] == [
        [f"{src}:7", "not a row of the current #Fields set"],
        [f"{src}:10", "not a row of the current #Fields set"],
        [f"{src}:8", "no valid date-time"],
        [f"{src}:13", "no valid date-time"],  # a row of the hostile field set, which has no date-time
        [f"{src}:9", "the event is not one of + - < > *"],
    ]


def test_ipv6_endpoints(tmp_path):
    text = header() + session("A1", 0, [(">", "220 ready"), ("<", "EHLO EXCH03"), (">", "250 ok")],
                              local="[::1]:25", remote="[::1]:50123")
    text += row(9, "A2", 0, "+", local="[2001:db8::25]:25", remote="[2001:db8::7]:4433")
    res = read_log(tmp_path, text, name="RECV.LOG")
    assert set(res.events.filter(pl.col("line") == 6)["client_ip"]) == {"::1"}
    assert res.events.filter(pl.col("line") == 10)["client_ip"].to_list() == ["2001:db8::7"]
    def parts(text: str) -> dict:
        return {k: v for k, v in grammar.endpoint.parse_string(text, parse_all=True).as_dict().items() if v}

    assert parts("[::1]:25") == {"ip6": "::1", "port": "25"}
    assert parts("fe80::1:25") == {"ip": "fe80::1", "port": "25"}


# -- sessions, pairing, AUTH, outbound --------------------------------------------------------------

def test_interleaved_sessions_and_a_reused_session_id(tmp_path):
    text = header() + "".join([
        row(0, "A1", 0, "+", remote="192.0.2.1:1000"),
        row(1, "B2", 0, "+", remote="192.0.2.2:2000"),
        row(2, "A1", 1, "<", "EHLO one", remote="192.0.2.1:1000"),
        row(3, "B2", 1, "<", "EHLO two", remote="192.0.2.2:2000"),
        row(4, "B2", 2, ">", "250 two", remote="192.0.2.2:2000"),
        row(5, "A1", 2, ">", "250 one", remote="192.0.2.1:1000"),
        row(6, "A1", 0, "+", remote="192.0.2.3:3000"),  # the same id connects again: a new session
        row(7, "A1", 1, "<", "EHLO three", remote="192.0.2.3:3000"),
    ])
    res = read_log(tmp_path, text, name="RECV.LOG")
    got = [(ln, ev, s.rsplit("#", 1)[1], helo, reply, rl)
           for ln, ev, s, helo, reply, rl in rows(res, "line", "event", "session", "helo", "reply", "reply_line")]
    assert got == [  # the first session under an id is keyed by the id (it may go on in the next file)
        (6, "connect", "A1", None, None, None),
        (7, "connect", "B2", None, None, None),
        (8, "helo", "A1", "one", 250, 11),
        (9, "helo", "B2", "two", 250, 10),
        (10, "reply", "B2", "two", 250, None),
        (11, "reply", "A1", "one", 250, None),
        (12, "connect", "L12", None, None, None),
        (13, "helo", "L12", "three", None, None),
    ]


SEND_SESSION = [
    ("*", "None", "Set Session Permissions", ""), ("*", "", "attempting to connect", ""),
    ("+", "", "", "10.20.1.30:49023"), ("<", "220 mx.example.com ESMTP", "", "10.20.1.30:49023"),
    (">", "EHLO mail.acme-widgets.com", "", "10.20.1.30:49023"), ("<", "250-mx.example.com", "", "10.20.1.30:49023"),
    ("<", "250 PIPELINING", "", "10.20.1.30:49023"),
    (">", "MAIL FROM:<promo@deals.example> SIZE=4096", "", "10.20.1.30:49023"),
    (">", "RCPT TO:<victim3@example.com>", "", "10.20.1.30:49023"),
    (">", "RCPT TO:<nobody@example.com>", "", "10.20.1.30:49023"),
    ("<", "250 2.1.0 Ok", "", "10.20.1.30:49023"), ("<", "250 2.1.5 Ok", "", "10.20.1.30:49023"),
    ("<", "550 5.1.1 No such user", "", "10.20.1.30:49023"), (">", "DATA", "", "10.20.1.30:49023"),
    ("<", "354 go ahead", "", "10.20.1.30:49023"), ("<", "250 2.0.0 queued", "", "10.20.1.30:49023"),
]


def _send_log(with_header: bool = True) -> str:
    out = [row(n, "S1", n, ev, data, ctx, local=local, remote="198.51.100.77:25", conn="Internet Send Connector")
           for n, (ev, data, ctx, local) in enumerate(SEND_SESSION)]
    return (header("SMTP Send Protocol Log") if with_header else "") + "".join(out)


@pytest.mark.parametrize("with_header", [True, False])
def test_send_log_is_outbound_with_pipelined_replies_in_order(tmp_path, with_header):
    res = read_log(tmp_path, _send_log(with_header), name="SEND2010061500-1.LOG", site=SITE)
    report = res.inputs[0]
    assert (report.format, report.events, report.skipped_lines) == ("exchange-smtp-protocol", 16, 0)
    off = 5 if with_header else 0
    ev = res.events
    assert set(ev["direction"]) == {"out"} and set(ev["relay_host"]) == {"198.51.100.77"}
    assert ev["client_ip"].null_count() == ev.height
    cmds = ev.filter(~pl.col("event").is_in(["connect", "reply", "note"]))
    assert [(ln - off, e, r, (rl or 0) - off if rl else None, rcpt) for ln, e, r, rl, rcpt in cmds.select(
        "line", "event", "reply", "reply_line", "recipient").rows()] == [
        (5, "helo", 250, 7, None),
        (8, "mail", 250, 11, None),
        (9, "rcpt", 250, 12, "victim3@example.com"),
        (10, "rcpt", 550, 13, "nobody@example.com"),
        (14, "data", 354, 15, None),
    ]
    assert ev.filter(pl.col("event") == "rcpt")["sender"].to_list() == ["promo@deals.example"] * 2
    assert ev.filter(pl.col("line") == 1 + off)["text"][0] == "None (Set Session Permissions)"


def test_outbound_rcpts_are_evidence_for_the_detectors(tmp_path):
    from logforensics.detect.findings import outbound_evidence

    res = read_log(tmp_path, _send_log(), name="SEND.LOG", site=SITE)
    out = outbound_evidence(res.events)
    assert out.select("k", "line", "line2", "sender_k").rows() == [
        ("victim3@example.com", 14, 17, "promo@deals.example")]


def test_auth_success_failure_and_account(tmp_path):
    lines = [(">", "220 ready"), ("<", "EHLO User"), (">", "250-EXCH03 Hello"), (">", "250 AUTH NTLM LOGIN"),
             ("<", "AUTH LOGIN"), (">", "334 <authentication response>"), (">", "334 <authentication response>"),
             ("*", "Tarpit for '0.00:00:05' due to '535 5.7.3 Authentication unsuccessful'"),
             (">", "535 5.7.3 Authentication unsuccessful"),
             ("<", "AUTH LOGIN"), (">", "334 <authentication response>"), (">", "334 <authentication response>"),
             ("*", "SMTPSubmit SMTPAcceptAnyRecipient SMTPAcceptAuthenticationFlag"),
             ("*", "ACME\\webmaster"), (">", "235 2.7.0 Authentication successful"),
             ("<", "MAIL FROM:<webmaster@acme-widgets.com>"), (">", "250 2.1.0 Sender OK"),
             ("<", "AUTH PLAIN dGVzdAB0ZXN0AHNlY3JldA=="), (">", "503 5.5.2 Already authenticated")]
    text = header() + row(0, "A1", 0, "+")
    for n, (ev, data) in enumerate(lines, start=1):
        ctx = {13: "Set Session Permissions", 14: "authenticated"}.get(n, "")
        text += row(n, "A1", n, ev, data, ctx)
    res = read_log(tmp_path, text, name="RECV.LOG")
    auth = res.events.filter(pl.col("event") == "auth")
    assert auth.select("line", "status", "reply", "reply_line", "auth_user").rows() == [
        (11, "failed", 535, 15, None), (16, "ok", 235, 21, "ACME\\webmaster"), (24, "failed", 503, 25, "test")]
    ev = res.events
    assert ev.filter(pl.col("line") < 20)["auth_user"].null_count() == 13  # before the account row: only line 16
    assert ev.filter(pl.col("line").is_between(20, 23))["auth_user"].to_list() == ["ACME\\webmaster"] * 4
    assert ev.filter(pl.col("line") == 20)["text"][0] == "ACME\\webmaster (authenticated)"


def test_sniff_claims_protocol_logs_only():
    reader = READERS["exchange-smtp-protocol"]()
    assert sniff_format(header().splitlines()) == "exchange-smtp-protocol"
    assert sniff_format(header("SMTP Send Protocol Log").splitlines()) == "exchange-smtp-protocol"
    assert sniff_format([FIELDS]) == "exchange-smtp-protocol"
    assert sniff_format(session("A1", 0, RELAY_ATTEMPT).splitlines()) == "exchange-smtp-protocol"
    msgtrk = ["#Software: Microsoft Exchange Server", "#Version: 14.0.0.0", "#Log-type: Message Tracking Log",
              "#Fields: date-time,client-ip,client-hostname,server-ip"]
    assert reader.sniff(msgtrk) == 0.0
    iis = ["#Software: Microsoft Internet Information Services 6.0", "#Version: 1.0",
           "#Fields: date time c-ip cs-username s-sitename s-computername s-ip s-port cs-method"]
    assert reader.sniff(iis) == 0.0
    assert READERS["w3c-smtp"]().sniff(header().splitlines()) == 0.0
    assert READERS["exchange-tracking"]().sniff(header().splitlines()) == 0.0


def _heads(root: Path):
    from logforensics.ingest import split_lines
    from logforensics.sources import decode_text

    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() not in (".md", ".toml")):
        text, _ = decode_text(path.read_bytes())
        yield path, split_lines(text).head(50).to_list()


@needs_corpus
def test_sniffing_of_every_corpus_file():
    """Exactly the protocol-log corpus files are taken; the IIS W3C and tracking files keep their reader."""
    got = {str(p.relative_to(CORPUS)): sniff_format(head) for p, head in _heads(CORPUS)}
    assert sorted(k for k, v in got.items() if v == "exchange-smtp-protocol") == sorted(
        f"exchange-smtp-protocol/{p.name}" for p in PROTO_CORPUS.iterdir())
    assert {k: v for k, v in got.items() if k.startswith("iis-smtp/")} == {
        f"iis-smtp/{p.name}": "w3c-smtp" for p in (CORPUS / "iis-smtp").iterdir()}
    assert {k: v for k, v in got.items() if k.startswith("exchange-msgtrack/")} == {
        f"exchange-msgtrack/{p.name}": "exchange-tracking" for p in (CORPUS / "exchange-msgtrack").iterdir()}


def test_sniffing_of_every_sample_file():
    got = {str(p.relative_to(SAMPLES)): sniff_format(head) for p, head in _heads(SAMPLES)}
    mine = {k for k, v in got.items() if v == "exchange-smtp-protocol"}
    assert mine == {str(RECV.relative_to(SAMPLES)), str(SEND.relative_to(SAMPLES))}
    assert got["iis-smtp/WEB01/LogFiles/SMTPSVC1/ex060214.log"] == "w3c-smtp"
    assert got["exchange2003/EXCH02/EXCH02.log/20060214.log"] == "exchange-tracking"


# -- grammar vs columns, corpus, sample ------------------------------------------------------------

def _assert_grammar_matches_columns(path: Path) -> int:
    """Every non-blank line: the pyparsing element and the Polars pattern give the same fields."""
    text = path.read_bytes().decode("utf-8-sig")
    lines = [ln.rstrip("\r") for ln in text.split("\n")]
    fields = list(grammar.DEFAULT_FIELDS)
    checked = 0
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        if line.startswith("#"):
            element, pattern = grammar.directive, grammar.DIRECTIVE
        else:
            element, pattern = grammar.row(fields), grammar.row_pattern(fields)
        parsed = element.parse_string(line, parse_all=True).as_dict()
        col = pl.Series([line]).str.extract_groups(anchored(pattern)).struct.unnest().row(0, named=True)
        assert {k: v for k, v in col.items() if v is not None} == parsed, (path, n)
        if line.startswith("#Fields:"):
            fields = [f.strip() for f in parsed["value"].split(",")]
        if not line.startswith("#"):
            assert grammar.date_time.matches(parsed["date_time"], parse_all=True), (path, n)
            assert grammar.event.matches(parsed["event"], parse_all=True), (path, n)
            for ep in (parsed["local_endpoint"], parsed["remote_endpoint"]):
                assert ep == "" or grammar.endpoint.matches(ep, parse_all=True), (path, n)
        checked += 1
    return checked


def test_grammar_matches_column_path_on_sample():
    assert _assert_grammar_matches_columns(RECV) == 227
    assert _assert_grammar_matches_columns(SEND) == 113


@needs_corpus
@pytest.mark.parametrize("name", sorted(p.name for p in PROTO_CORPUS.iterdir()) if PROTO_CORPUS.is_dir() else [])
def test_grammar_matches_column_path_on_corpus(name):
    path = PROTO_CORPUS / name
    assert _assert_grammar_matches_columns(path) == len([x for x in path.read_text().splitlines() if x.strip()])


@needs_corpus
def test_corpus_files_recognised_and_fully_read():
    from logforensics.ingest import ingest

    res = ingest([PROTO_CORPUS], SiteProfile())
    got = {Path(r.path).name: (r.format, r.lines, r.events, r.skipped_lines, r.status) for r in res.inputs}
    assert got == {
        "crowdsec_exchange-smtp-bf.log": ("exchange-smtp-protocol", 9, 9, 0, "ok"),
        "crowdsec_exchange-smtp-logs.log": ("exchange-smtp-protocol", 1, 1, 0, "ok"),
        "elastic-integrations_test-smtp_SmtpReceive.log": ("exchange-smtp-protocol", 4, 4, 0, "ok"),
        "elastic-integrations_test-smtp_SmtpSend.log": ("exchange-smtp-protocol", 3, 3, 0, "ok"),
        "script-comment_exchange2010_SmtpReceive.log": ("exchange-smtp-protocol", 7, 2, 0, "ok"),
    }
    ev = res.events

    def of(name: str) -> pl.DataFrame:
        return ev.filter(pl.col("source").str.ends_with(name))

    assert of("crowdsec_exchange-smtp-logs.log").select("event", "reply", "direction", "client_ip", "server").rows() == [
        ("reply", 535, "in", "192.168.9.212", "EXCHANGE-1")]
    recv = of("test-smtp_SmtpReceive.log")
    assert recv.select("line", "event", "reply", "helo", "client_ip", "server").rows() == [
        (1, "reply", 220, None, "10.11.12.14", "NETBIOS"),
        (2, "connect", None, None, "10.11.12.14", "NETBIOS"),
        (3, "helo", None, "mgt.my.domain.tld", "10.11.12.14", "NETBIOS"),
        (4, "reply", 220, None, "10.11.12.14", "NETBIOS"),
    ]
    assert recv["session"].n_unique() == 2  # two interleaved sessions, by session-id
    send = of("test-smtp_SmtpSend.log")
    assert send.select("event", "direction", "relay_host", "server").rows() == [
        ("note", "out", "10.11.12.13", None)] * 3
    assert send["text"][2].startswith("Failed to connect. Winsock error code: 10061, Win32 error code: 10061,")
    e2010 = of("script-comment_exchange2010_SmtpReceive.log")
    assert e2010.select("line", "event", "ts", "client_ip", "server").rows() == [
        (6, "connect", pl.Series([utc("2019-01-25 00:03:58")]).dt.offset_by("478ms")[0], "185.234.217.220",
         "TAIL-EXCH-1"),
        (7, "note", pl.Series([utc("2019-01-25 00:03:58")]).dt.offset_by("494ms")[0], "185.234.217.220",
         "TAIL-EXCH-1"),
    ]
    # The anonymous Internet session holds SMTPSubmit: a permission, not an authentication.
    assert e2010["auth_user"].null_count() == 2


def _ground_truth() -> list[tuple[int, str, str, str]]:
    out = []
    for text in (SAMPLES / "exchange2010" / "GROUND_TRUTH.md").read_text().splitlines():
        m = re.match(r"^\| (\d+) \| ([^|]+) \| [^|]+ \| `([^`]+)` \| ([a-z]+) \| ([^|]+) \|", text)
        if m:
            out.append((int(m[1]), m[2].strip(), m[3], m[4], m[5].strip()))
    return out


def test_sample_events_match_the_ground_truth():
    from logforensics.ingest import ingest

    res = ingest([EXCH03], SITE)
    got = {Path(r.path).name: (r.format, r.lines, r.events, r.skipped_lines, r.warnings) for r in res.inputs}
    assert got == {"RECV2010061500-1.LOG": ("exchange-smtp-protocol", 227, 222, 0, []),
                   "SEND2010061500-1.LOG": ("exchange-smtp-protocol", 113, 108, 0, [])}
    ev = res.events
    truth = _ground_truth()
    assert len(truth) == 10
    inbound = ev.filter((pl.col("event") == "rcpt") & (pl.col("direction") == "in")).sort("line")
    assert inbound.select("line", "client_ip", "recipient").rows() == [(n, ip, r) for n, ip, r, _, _ in truth]
    for n, _, _, verdict, _ in truth:
        reply = inbound.filter(pl.col("line") == n)["reply"][0]
        assert (reply >= 500) == (verdict == "refused"), n
    recv = ev.filter(pl.col("source").str.ends_with("RECV2010061500-1.LOG"))
    assert recv.filter(pl.col("event") == "auth").select("line", "status").rows() == [
        (68, "ok"), (150, "failed"), (155, "failed"), (160, "failed"), (165, "failed"), (185, "ok")]
    assert recv.filter(pl.col("text").str.ends_with("(authenticated)")).select("line", "auth_user").rows() == [
        (72, "ACME\\jdoe"), (189, "ACME\\webmaster")]
    out = ev.filter((pl.col("event") == "rcpt") & (pl.col("direction") == "out")).sort("line")
    assert out.select("line", "recipient", "reply", "reply_line").rows() == [
        (17, "buyer@partner.example", 250, 19), (38, "victim3@example.com", 250, 40),
        (61, "judy@example.org", 250, 63), (83, "ivan@example.net", 250, 85), (104, "partner@example.com", 250, 106)]


def test_sample_findings_match_the_ground_truth():
    from logforensics.scan import scan
    from logforensics.site import load_site_profile

    result = scan([SAMPLES / "exchange2010"], load_site_profile(SAMPLES / "site.toml"))
    got = {}
    for f in result.findings.iter_rows(named=True):
        first = f["evidence"][0]
        assert Path(first["path"]).name == "RECV2010061500-1.LOG"
        got[first["line"]] = (f["recipient"], f["verdict"], f"{f['rule']}, {f['severity']}")
    expected = {n: (r, v, what.split(" (")[0].split(":")[0]) for n, _, r, v, what in _ground_truth()
                if what.startswith("LF-")}
    assert got == expected
    assert result.incidents.height == 2
    for f in result.findings.iter_rows(named=True):
        if f["verdict"] == "relayed":
            assert any(Path(e["path"]).name == "SEND2010061500-1.LOG" for e in f["evidence"])


def test_a_session_cut_by_the_log_rollover_keeps_its_login(tmp_path):
    """RECV...-1.LOG ends after the client's AUTH; the same session id goes on in -2.LOG with its RCPT:
    one session, so the relay is authenticated (after failed logins: LF-AUTH-ABUSE), not anonymous."""
    from logforensics.scan import scan

    logs = tmp_path / "EXCH03" / "TransportRoles" / "Logs" / "ProtocolLog" / "SmtpReceive"
    logs.mkdir(parents=True)
    failed = "".join(session(f"F{n}", 100 * n, [("<", "EHLO x"), (">", "250 hi"), ("<", "AUTH LOGIN"),
                                                (">", "535 5.7.3 failed")],
                             remote="198.51.100.150:4000") for n in range(1, 4))
    first = session("C1", 1000, [("<", "EHLO roadwarrior"), (">", "250 hi"), ("<", "AUTH LOGIN"),
                                 (">", "235 2.7.0 ok")], remote="198.51.100.150:4001")
    (logs / "RECV2010061500-1.LOG").write_text(header() + failed + first + row(1005, "C1", 5, "*", "CORP\\webmaster",
                                                                               "authenticated",
                                                                               remote="198.51.100.150:4001"))
    rest = "".join(row(2000 + n, "C1", 6 + n, ev, data, remote="198.51.100.150:4001") for n, (ev, data) in enumerate([
        ("<", "MAIL FROM:<webmaster@acme-widgets.com>"), (">", "250 2.1.0 Sender OK"),
        ("<", "RCPT TO:<ivan@example.net>"), (">", "250 2.1.5 Recipient OK")]))
    (logs / "RECV2010061500-2.LOG").write_text(header() + rest)
    site = SiteProfile(timezone="UTC", local_domains=("acme-widgets.com",), relay_policy="authenticated-only")
    f = scan([tmp_path], site).findings
    assert f.select("recipient", "rule", "authenticated").rows() == [("ivan@example.net", "LF-AUTH-ABUSE", True)]
