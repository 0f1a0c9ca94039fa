"""Exchange 2000/2003 message tracking log, and the Exchange 2007+ message tracking CSV.

**Exchange 2000/2003** (``\\Exchsrvr\\<SERVER>.log\\yyyymmdd.log``; KB 246965, research note
generic-smtp §6): three comment lines, then one TAB-separated line per event and recipient::

    # Message Tracking Log File
    # Exchange System Attendant Version 6.5.7638.1
    # Date	Time	client-ip	Client-hostname	Partner-Name	Server-hostname	server-IP	Recipient-Address	Event-ID	MSGID	Priority	Recipient-Report-Status	total-bytes	Number-Recipients	Origination-Time	Encryption	service-Version	Linked-MSGID	Message-Subject	Sender-Address

Times are GMT. No verbatim data line is public (§6, §10), so the date and time values accept
``2006-10-9`` / ``2006-10-09`` and ``0:0:16 GMT`` / ``00:00:16`` (with or without `` GMT``);
empty values may be written as ``-`` or left empty.

**Exchange 2007+** (``MSGTRK*.LOG``; §7.1): W3C-style directives (``#Software: Microsoft Exchange
Server``, ``#Log-type: Message Tracking Log``, ``#Fields: date-time,client-ip,...``), then RFC 4180
CSV rows (fields with commas or quotes are quoted, quotes doubled), ISO times with ``Z``; 26 fields
(2007/2010) or 30 (2013+), always read by ``#Fields`` (a file without it by its column count).
Files may start with a UTF-8 BOM.

References: KB 246965 (2000/2003 fields), KB 246959 / KB 821905 / KB 311739 (event ids),
techtarget "Message tracking event IDs in Exchange Server 2003" (1019 / 1027), TechNet cc539063
(2007 event ids), corpus exchange-msgtrack/ (2010 with BOM, 2016/2019 30 columns).
"""

from __future__ import annotations

import pyparsing as pp

from grammars.common import regex_leaf
from grammars.w3c_smtp import group_names

# -- Exchange 2000/2003 -------------------------------------------------------------------------

#: A comment line of the 2000/2003 header (``# Message Tracking Log File`` ...).
COMMENT = r"#[ \t]?(?P<comment>.*)$"

#: The 2000/2003 fields comment: ``# Date<TAB>Time<TAB>...``.
FIELDS_2003 = r"#[ \t]*(?P<fields>Date\tTime\t.*?)[ \t]*$"

#: The documented 2000/2003 field order (KB 246965), for files whose header is missing.
DEFAULT_FIELDS_2003: tuple[str, ...] = (
    "Date", "Time", "client-ip", "Client-hostname", "Partner-Name", "Server-hostname", "server-IP",
    "Recipient-Address", "Event-ID", "MSGID", "Priority", "Recipient-Report-Status", "total-bytes",
    "Number-Recipients", "Origination-Time", "Encryption", "service-Version", "Linked-MSGID",
    "Message-Subject", "Sender-Address",
)

#: One TAB-separated value.
TAB_VALUE = r"[^\t]*"

#: The ``Date`` value: ``2006-2-14`` or ``2006-02-14`` (``.`` and ``/`` accepted too).
DATE_2003 = r"(?P<year>[0-9]{4})[-./](?P<month>[0-9]{1,2})[-./](?P<day>[0-9]{1,2})[ \t]*"

#: The ``Time`` value: ``0:0:16 GMT``, ``00:00:16`` (optional `` GMT``).
TIME_2003 = r"[ \t]*(?P<hour>[0-9]{1,2}):(?P<minute>[0-9]{1,2}):(?P<second>[0-9]{1,2})(?:[ \t]*GMT)?[ \t]*"

# -- Exchange 2007+ -----------------------------------------------------------------------------

#: A directive line (same shape as the W3C directives of the IIS logs).
DIRECTIVE = r"#(?P<directive>[A-Za-z-]+):[ \t]*(?P<value>.*?)[ \t]*$"

#: One CSV value: quoted (quotes doubled inside) or bare.
CSV_VALUE = r"(?:\"(?:[^\"]|\"\")*\"|[^,\"]*)"

#: ``date-time``: ``2016-04-05T00:00:02.052Z``.
ISO_TIME = (
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})-(?P<day>[0-9]{2})T"
    r"(?P<hour>[0-9]{2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})(?P<fraction>\.[0-9]{1,7})?Z"
)

#: Exchange 2007/2010 fields (26).
FIELDS_2010: tuple[str, ...] = (
    "date-time", "client-ip", "client-hostname", "server-ip", "server-hostname", "source-context",
    "connector-id", "source", "event-id", "internal-message-id", "message-id", "recipient-address",
    "recipient-status", "total-bytes", "recipient-count", "related-recipient-address", "reference",
    "message-subject", "sender-address", "return-path", "message-info", "directionality", "tenant-id",
    "original-client-ip", "original-server-ip", "custom-data",
)

#: Exchange 2013+ fields (30).
#: ``network-message-id`` follows ``message-id``; the other three are appended (corpus
#: exchange-msgtrack/elastic-integrations_test-messagetracking.log).
FIELDS_2013: tuple[str, ...] = (
    *FIELDS_2010[:11], "network-message-id", *FIELDS_2010[11:], "transport-traffic-type", "log-id",
    "schema-version",
)


def tab_pattern(fields: list[str] | tuple[str, ...]) -> str:
    """A 2000/2003 data line under ``fields``: one group per field, TAB separated. Extra trailing
    TAB-separated values (a newer build's extra columns) are tolerated and ignored."""
    groups = [f"(?P<{name}>{TAB_VALUE})" for name in group_names(fields)]
    return "\t".join(groups) + r"(?:\t.*)?$"


def csv_pattern(fields: list[str] | tuple[str, ...]) -> str:
    """A 2007+ CSV row under ``fields``: one group per field, comma separated, RFC 4180 quoting."""
    groups = [f"(?P<{name}>{CSV_VALUE})" for name in group_names(fields)]
    return ",".join(groups) + r"[ \t]*$"


def tab_line(fields: list[str] | tuple[str, ...]) -> pp.Regex:
    return regex_leaf(tab_pattern(fields), "exchange 2000/2003 tracking line")


def csv_line(fields: list[str] | tuple[str, ...]) -> pp.Regex:
    return regex_leaf(csv_pattern(fields), "exchange 2007+ tracking row")


comment = regex_leaf(COMMENT, "tracking comment")
fields_2003 = regex_leaf(FIELDS_2003, "tracking fields comment")
directive = regex_leaf(DIRECTIVE, "tracking directive")
date_2003 = regex_leaf(DATE_2003, "tracking date")
time_2003 = regex_leaf(TIME_2003, "tracking time")
iso_time = regex_leaf(ISO_TIME, "tracking date-time")

#: Exchange 2000/2003 event id -> (short name, meaning, confirmed?). Sources: KB 246959 / 821905 /
#: 311739 for 0-52 (confirmed); 1019 and 1027 from the techtarget FAQ (confirmed as "first event of an
#: SMTP-submitted" / "Store-submitted message"); the other 10xx meanings are the commonly published
#: Exchange 2003 list and are NOT confirmed by a Microsoft source we could read (research note §6, §10).
EVENTS_2003: dict[int, tuple[str, str, bool]] = {
    0: ("transfer-in", "Message transfer in", True),
    1: ("probe-transfer-in", "Probe transfer in", True),
    2: ("report-transfer-in", "Report transfer in", True),
    4: ("submission", "Message submission", True),
    5: ("probe-submission", "Probe submission", True),
    6: ("probe-transfer-out", "Probe transfer out", True),
    7: ("transfer-out", "Message transfer out", True),
    8: ("report-transfer-out", "Report transfer out", True),
    9: ("delivered", "Message delivered", True),
    10: ("report-delivered", "Report delivered", True),
    18: ("start-assoc", "StartAssocByMTSUser", True),
    23: ("release-assoc", "ReleaseAssocByMTSUser", True),
    26: ("dl-expansion", "Distribution list expansion", True),
    28: ("redirected", "Message redirected", True),
    29: ("rerouted", "Message rerouted", True),
    31: ("downgrading", "Downgrading", True),
    33: ("report-absorption", "Report absorption", True),
    34: ("report-generation", "Report generation", True),
    43: ("unroutable-report-discarded", "Unroutable report discarded", True),
    50: ("gateway-deleted-message", "Gateway deleted message", True),
    51: ("gateway-deleted-probe", "Gateway deleted probe", True),
    52: ("gateway-deleted-report", "Gateway deleted report", True),
    1000: ("local-delivery", "Local delivery", False),
    1001: ("backbone-transfer-in", "Backbone transfer in", False),
    1002: ("backbone-transfer-out", "Backbone transfer out", False),
    1003: ("gateway-transfer-out", "Gateway transfer out", False),
    1004: ("gateway-transfer-in", "Gateway transfer in", False),
    1005: ("gateway-report-transfer-in", "Gateway report transfer in", False),
    1006: ("gateway-report-transfer-out", "Gateway report transfer out", False),
    1007: ("gateway-report-generation", "Gateway report generation", False),
    1010: ("smtp-queued-outbound", "SMTP queued outbound", False),
    1011: ("smtp-transferred-outbound", "SMTP transferred outbound", False),
    1012: ("smtp-received-inbound", "SMTP received inbound", False),
    1013: ("smtp-transferred-inbound", "SMTP transferred inbound", False),
    1014: ("smtp-rerouted", "SMTP message rerouted", False),
    1015: ("smtp-report-transferred-in", "SMTP report transferred in", False),
    1016: ("smtp-report-transferred-out", "SMTP report transferred out", False),
    1017: ("smtp-report-generated", "SMTP report generated", False),
    1018: ("smtp-report-absorbed", "SMTP report absorbed", False),
    1019: ("smtp-submit", "SMTP submit message to AQ (message entered via SMTP)", True),
    1020: ("smtp-begin-outbound", "SMTP begin outbound transfer", False),
    1021: ("smtp-badmail", "SMTP bad mail", False),
    1022: ("smtp-aq-failure", "SMTP AQ failure", False),
    1023: ("smtp-local-delivery", "SMTP local delivery", False),
    1024: ("smtp-submit-to-cat", "SMTP submit message to categorizer", False),
    1025: ("smtp-begin-submit", "SMTP begin submit message", False),
    1026: ("smtp-aq-failed-message", "SMTP AQ failed message", False),
    1027: ("store-submit", "SMTP submit message to SD (message submitted by the Store)", True),
    1028: ("sd-local-delivery", "SMTP store driver: message delivered locally to the store", False),
    1029: ("sd-gateway-delivery", "SMTP store driver: message delivered to a gateway", False),
    1030: ("smtp-ndr", "SMTP: non-delivered (NDR) to all recipients", False),
    1031: ("smtp-transferred-out", "SMTP end outbound transfer (message transferred out)", False),
    1032: ("smtp-retry-cat", "SMTP message scheduled to retry categorization", False),
    1033: ("smtp-categorized", "SMTP message categorized and queued for routing", False),
    1034: ("smtp-routed-remote", "SMTP message routed and queued for remote delivery", False),
    1035: ("smtp-retry-routing", "SMTP message scheduled to retry routing", False),
    1036: ("smtp-queued-local", "SMTP message queued for local delivery", False),
    1037: ("smtp-retry-local", "SMTP message scheduled to retry local delivery", False),
    1038: ("smtp-routed-gateway", "SMTP message routed and queued for gateway delivery", False),
    1039: ("imf-deleted", "Message deleted by the Intelligent Message Filter", False),
    1040: ("imf-rejected", "Message rejected by the Intelligent Message Filter", False),
    1041: ("imf-archived", "Message archived by the Intelligent Message Filter", False),
}

#: Exchange 2007+ ``event-id`` values (TechNet cc539063, plus those seen in the corpus).
EVENTS_2007: tuple[str, ...] = (
    "BADMAIL", "DEFER", "DELIVER", "DSN", "DUPLICATEDELIVER", "DUPLICATEEXPAND", "DUPLICATEREDIRECT",
    "EXPAND", "FAIL", "HADISCARD", "HARECEIVE", "HAREDIRECT", "HAREDIRECTFAIL", "INITMESSAGECREATED",
    "LOAD", "MODERATIONEXPIRE", "MODERATORAPPROVE", "MODERATORREJECT", "MODERATORSALLNDR",
    "NOTIFYMAPI", "NOTIFYSHADOW", "POISONMESSAGE", "PROCESS", "PROCESSMEETINGMESSAGE", "RECEIVE",
    "REDIRECT", "RESOLVE", "RESUBMIT", "RESUBMITDEFER", "RESUBMITFAIL", "SEND", "SENDEXTERNAL",
    "SUBMIT", "SUBMITDEFER", "SUBMITFAIL", "SUPPRESSED", "THROTTLE", "TRANSFER", "AGENTINFO",
    "DROP", "DELAYEDDELIVER",
)
