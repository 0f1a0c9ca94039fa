"""Exchange Server 4.0/5.0/5.5 message tracking log (``Exchsrvr\\Tracking.log\\YYYYMMDD.log``).

A record is one TAB-separated line of 13 fields, then one line per recipient (research note §2)::

    msgid <TAB> event <TAB> 2000.6.15 4:47:13 <TAB> gateway <TAB> partner <TAB> remote-id <TAB>
    originator <TAB> priority <TAB> length <TAB> seconds <TAB> cost <TAB> subject-id <TAB> recipients
    recipient-1 [<TAB> report-status]
    recipient-2 ...

Times are GMT. Accepted variants, because no verbatim 5.5 line is public (§7.1): date and time as
one field (space) or two (TAB); ``.``, ``-`` or ``/`` date separators; no zero padding; an optional
``GMT`` suffix; CRLF or LF; a blank line between records; recipients on the header line itself,
after a TAB (as some converters write them).

References:
    * KB Q173280 (field order), Q173364 (5.0/5.5 event numbers), Q153188 (verbatim 1996 sample),
      Q163074 (column letters); Exchange 5.5 SP1 docs (xmt04027).
"""

from __future__ import annotations

import pyparsing as pp

from grammars.common import regex_leaf

DATETIME = (
    r"(?P<year>[0-9]{4})[./-](?P<month>[0-9]{1,2})[./-](?P<day>[0-9]{1,2})[ \t]+"
    r"(?P<hour>[0-9]{1,2}):(?P<minute>[0-9]{1,2}):(?P<second>[0-9]{1,2})(?:[ \t]*GMT)?"
)

#: The record header: the 13 documented fields. A line with a message id, an integer event number
#: and a date/time in fields 1-3 starts a record; anything else is a recipient line.
HEADER = (
    r"(?P<msgid>[^\t]*)\t(?P<event>[0-9]{1,5})\t" + DATETIME
    + r"\t(?P<gateway>[^\t]*)\t(?P<partner>[^\t]*)\t(?P<remote_id>[^\t]*)\t(?P<originator>[^\t]*)"
    r"\t(?P<priority>-?[0-9]*)\t(?P<length>[0-9]*)\t(?P<seconds>[0-9]*)\t(?P<cost>-?[0-9]*)"
    r"\t(?P<subject_id>[^\t]*)\t[ ]*(?P<recipients>[0-9]*)[ \t]*(?:\t(?P<inline>.*))?$"
)

#: A recipient line: the recipient (DN or proxy address), optionally TAB + report status (0/1).
RECIPIENT = r"(?P<recipient>[^\t]*?)[ \t]*(?:\t[ \t]*(?P<report_status>-?[0-9]+)[ \t]*)?$"

header = regex_leaf(HEADER, "tracking record header")
recipient_line = regex_leaf(RECIPIENT, "tracking recipient")

#: Event number -> (short name, meaning), KB Q173364 (5.0/5.5) and Q174078 (4.0).
EVENTS: dict[int, tuple[str, str]] = {
    0: ("transfer-in", "Message transfer in"),
    1: ("probe-transfer-in", "Probe transfer in"),
    2: ("report-transfer-in", "Report transfer in"),
    4: ("submission", "Message submission"),
    5: ("probe-submission", "Probe submission"),
    6: ("probe-transfer-out", "Probe transfer out"),
    7: ("transfer-out", "Message transfer out"),
    8: ("report-transfer-out", "Report transfer out"),
    9: ("delivered", "Message delivered"),
    10: ("report-delivered", "Report delivered"),
    26: ("dl-expansion", "Distribution list expansion"),
    28: ("redirected", "Message redirected"),
    29: ("rerouted", "Message rerouted"),
    31: ("downgrading", "Downgrading"),
    33: ("report-absorption", "Report absorption"),
    34: ("report-generation", "Report generation"),
    43: ("unroutable-report-discarded", "Unroutable report discarded"),
    50: ("gateway-deleted-message", "Gateway deleted message"),
    51: ("gateway-deleted-probe", "Gateway deleted probe"),
    52: ("gateway-deleted-report", "Gateway deleted report"),
    1000: ("local-delivery", "Local delivery"),
    1001: ("backbone-transfer-in", "Backbone transfer in"),
    1002: ("backbone-transfer-out", "Backbone transfer out"),
    1003: ("gateway-transfer-out", "Gateway transfer out"),
    1004: ("gateway-transfer-in", "Gateway transfer in"),
    1005: ("gateway-report-transfer-in", "Gateway report transfer in"),
    1006: ("gateway-report-transfer-out", "Gateway report transfer out"),
    1007: ("gateway-report-generation", "Gateway report generation"),
    1010: ("smtp-queued-outbound", "SMTP queued outbound"),
    1011: ("smtp-transferred-outbound", "SMTP transferred outbound"),
    1012: ("smtp-received-inbound", "SMTP received inbound"),
    1013: ("smtp-transferred-inbound", "SMTP transferred inbound"),
    1014: ("smtp-message-rerouted", "SMTP message rerouted"),
    1015: ("smtp-report-transferred-in", "SMTP report transferred in"),
    1016: ("smtp-report-transferred-out", "SMTP report transferred out"),
    1017: ("smtp-report-generated", "SMTP report generated"),
    1018: ("smtp-report-absorbed", "SMTP report absorbed"),
}


def parse_header(text: str) -> dict[str, str | None] | None:
    """Parse a record header line the reference way; ``None`` when the line is not a header."""
    try:
        return dict(header.parse_string(text, parse_all=True).as_dict())
    except pp.ParseException:
        return None
