"""Exchange 4.0-5.5 message tracking log: record layout variants, recipients, events, GMT."""

from __future__ import annotations

import pytest

from grammars import ims55_tracking as grammar
from tests.conftest import read_log, rows, utc

GW = "/o=Acme Widgets/ou=HQ/cn=Configuration/cn=Connections/cn=Internet Mail Service (EXCH01)"
MSGID = "c=US;a= ;p=Acme Widgets;l=EXCH01-000615044714Z-17"


def header(event: int, when: str, nrcpt: int, *, partner: str = "mail.bad.example",
           originator: str = "promo@cheap.example") -> str:
    return "\t".join([MSGID, str(event), when, GW, partner, "<abc@bad.example>[PBZ70AAB]",
                      originator, "0", "2907", "0", "0", "", str(nrcpt)])


@pytest.mark.parametrize("when", [
    "2000.6.15 4:47:13",      # the 1996 sample's layout: one field, dots, no padding
    "2000.6.15\t4:47:13",     # date and time as two TAB-separated fields
    "2000-6-15 4:47:13",
    "2000/06/15 04:47:13",
    "2000.6.15 4:47:13 GMT",
    "2000-6-15\t4:47:13 GMT",
])
def test_date_time_variants(tmp_path, when):
    text = header(1012, when, 1) + "\nvictim@hotmail.com\n"
    res = read_log(tmp_path, text, name="20000615.log")
    assert res.inputs[0].format == "ims55-tracking"
    assert rows(res, "ts", "line", "record_line", "recipient") == [
        (utc("2000-06-15 04:47:13"), 2, 1, "victim@hotmail.com")]


@pytest.mark.parametrize("eol", ["\r\n", "\n"])
def test_record_per_recipient_with_crlf_or_lf(tmp_path, eol):
    text = eol.join([
        header(1012, "2000.6.15 4:47:13", 2),
        '"IMCEA victim@hotmail.com"@acme-widgets.com',
        "jsmith@acme-widgets.com",
        header(1014, "2000.6.15 4:47:14", 1),
        "victim@hotmail.com",
        header(1011, "2000.6.15 4:47:20", 1, partner="smtp.relay-isp.net"),
        "victim@hotmail.com",
        "",
    ])
    res = read_log(tmp_path, text, name="20000615.log")
    assert res.inputs[0].skipped_lines == 0
    got = rows(res, "line", "record_line", "event_id", "verb", "direction", "recipient", "sender", "relay_host")
    assert got == [
        (2, 1, 1012, "smtp-received-inbound", "in", '"IMCEA victim@hotmail.com"@acme-widgets.com',
         "promo@cheap.example", "mail.bad.example"),
        (3, 1, 1012, "smtp-received-inbound", "in", "jsmith@acme-widgets.com", "promo@cheap.example",
         "mail.bad.example"),
        (5, 4, 1014, "smtp-message-rerouted", "out", "victim@hotmail.com", "promo@cheap.example",
         "mail.bad.example"),
        (7, 6, 1011, "smtp-transferred-outbound", "out", "victim@hotmail.com", "promo@cheap.example",
         "smtp.relay-isp.net"),
    ]
    assert set(res.events["message"].to_list()) == {MSGID}
    assert set(res.events["size"].to_list()) == {2907}
    assert all(t.startswith(("SMTP received inbound", "SMTP message rerouted", "SMTP transferred outbound"))
               for t in res.events["text"].to_list())


def test_report_status_blank_line_separator_and_inline_recipients(tmp_path):
    text = "\n".join([
        header(1017, "2000.6.15 5:00:00", 1),
        "promo@cheap.example\t1",
        "",
        header(1000, "2000.6.15 5:01:00", 2) + "\tjsmith@acme-widgets.com\t0\tmjones@acme-widgets.com",
        "",
        "stray text after a blank line",
    ])
    res = read_log(tmp_path, text, name="20000615.log")
    assert rows(res, "line", "event_id", "recipient", "status") == [
        (2, 1017, "promo@cheap.example", "1"),
        (4, 1000, "jsmith@acme-widgets.com", "0"),
        (4, 1000, "mjones@acme-widgets.com", None),
    ]
    assert res.inputs[0].skipped_lines == 1
    assert any(":6: not a tracking record or recipient line" in w for w in res.inputs[0].warnings)


def test_record_without_recipient_lines_still_counts(tmp_path):
    res = read_log(tmp_path, header(4, "1996.7.1 17:30:48", 0) + "\n", name="19960701.log")
    assert rows(res, "line", "event_id", "verb", "recipient") == [(1, 4, "submission", None)]


def test_event_table_covers_documented_ims_events():
    for number in range(1010, 1019):
        assert number in grammar.EVENTS
    assert grammar.EVENTS[1011][0] == "smtp-transferred-outbound"
    assert 1008 not in grammar.EVENTS and 1009 not in grammar.EVENTS  # the gap is real (Q173364)


def test_exchange_2000_file_is_not_taken_for_55(tmp_path):
    text = ("# Message Tracking Log File\n# Exchange System Attendant Version 6.0.6249.0\n"
            "# Date\tTime\tclient-ip\n")
    res = read_log(tmp_path, text, name="20031012.log")
    assert res.inputs[0].format != "ims55-tracking"


def test_header_grammar_matches_column_path(tmp_path):
    line = header(1011, "2000.6.15 4:47:20", 1, partner="smtp.relay-isp.net")
    ref = grammar.parse_header(line)
    res = read_log(tmp_path, line + "\nvictim@hotmail.com\n", name="20000615.log")
    row = res.events.row(0, named=True)
    assert (row["message"], row["event_id"], row["relay_host"], row["sender"], row["size"]) == (
        ref["msgid"], int(ref["event"]), ref["partner"], ref["originator"], int(ref["length"]))
