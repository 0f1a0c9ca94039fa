"""Exchange 2007+ SMTP protocol log (``TransportRoles\\Logs\\ProtocolLog\\SmtpReceive\\RECV*.LOG`` and
``...\\SmtpSend\\SEND*.LOG``).

W3C-style directive lines, then one RFC 4180 CSV row per protocol event (research note generic-smtp
§7.2)::

    #Software: Microsoft Exchange Server
    #Version: 14.0.0.0
    #Log-type: SMTP Receive Protocol Log
    #Date: 2019-01-25T00:03:58.478Z
    #Fields: date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,event,data,context
    2019-01-25T00:03:58.478Z,TAIL-EXCH-1\\Internet Mail,08D675E58CA1DA38,0,10.0.0.6:25,185.234.217.220:61061,+,,
    2022-07-20T21:12:06.270Z,EXCHANGE-1\\Default Frontend EXCHANGE-1,08DA4F7C11473A60,9,192.168.9.241:25,192.168.9.212:53722,>,535 5.7.3 Authentication unsuccessful,

* ``date-time`` is UTC with milliseconds and ``Z``; a file may start with a UTF-8 BOM and use CRLF;
* values holding a comma or a quote are quoted, quotes doubled inside; a quoted value may hold a line
  break **[unconfirmed]** (the reader joins such physical lines into one record);
* ``#Fields`` may come again mid-file, possibly with another field list: each block is read by its own;
* ``event``: ``+`` connect, ``-`` disconnect, ``>`` sent by this server, ``<`` received by it,
  ``*`` information (``data`` and ``context`` then hold e.g. the session permissions and
  ``Set Session Permissions``, or the authenticated account and ``authenticated``);
* in a Receive log the server answers (``>`` = reply), in a Send log it is the client (``>`` =
  command); a Send log's ``local-endpoint`` is empty until the connection is made;
* endpoints are ``IP:port``; IPv6 ones are bracketed (``[::1]:25``);
* ``data`` of ``<``/``>`` rows is an SMTP command or reply (:mod:`grammars.smtp`).

References: research note generic-smtp §7.2, §9 (8, 9), §10; corpus exchange-smtp-protocol/ (an
Exchange 2010 SmtpReceive header and rows, Exchange 2013+ SmtpReceive and SmtpSend rows);
TechNet "Protocol logging" (Exchange 2007/2010).
"""

from __future__ import annotations

import pyparsing as pp

from grammars.common import regex_leaf
from grammars.exchange_tracking import CSV_VALUE, DIRECTIVE, ISO_TIME
from grammars.w3c_smtp import group_names

#: The documented field list (Exchange 2007 to 2019), assumed for rows before any ``#Fields``.
DEFAULT_FIELDS: tuple[str, ...] = (
    "date-time", "connector-id", "session-id", "sequence-number", "local-endpoint", "remote-endpoint",
    "event", "data", "context",
)

#: The ``#Log-type`` values of the two logs.
RECEIVE_LOG_TYPE = "SMTP Receive Protocol Log"
SEND_LOG_TYPE = "SMTP Send Protocol Log"

#: The ``event`` value.
EVENT = r"(?P<event>[-+<>*])$"

#: An endpoint: ``10.0.0.6:25``, ``[::1]:25`` (an unbracketed IPv6 address takes the last ``:`` as
#: the port's).
ENDPOINT = r"(?:\[(?P<ip6>[^\]]*)\]|(?P<ip>[^\[\],]*)):(?P<port>[0-9]{1,5})$"

#: The ``connector-id`` of a Receive connector: ``SERVER\Connector name`` (Send connectors have only
#: a name).
CONNECTOR = r"(?:(?P<conn_server>[^\\,]+)\\)?(?P<conn_name>.*)$"

#: The first line of a record: its ``date-time`` and a comma (used to tell records from the
#: continuation lines of a quoted value holding a line break).
RECORD_START = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]*Z?,"


def field_names(fields: list[str] | tuple[str, ...]) -> list[str]:
    """Regex group names for a field list (``date-time`` -> ``date_time``; a repeated field gets
    ``_2``; a name that would start with a digit gets ``f_``, as group names must not)."""
    prefixed = [n if n[0].isalpha() or n[0] == "_" else "f_" + n for n in group_names(fields)]
    return group_names(prefixed)


def required_count(fields: list[str] | tuple[str, ...]) -> int:
    """How many leading fields a row must have: up to ``event`` (``data`` and ``context`` may be
    missing at the end of a row, as when a writer cut it short); all when there is no ``event``."""
    names = [f.lower() for f in fields]
    return names.index("event") + 1 if "event" in names else len(names)


def row_pattern(fields: list[str] | tuple[str, ...]) -> str:
    """A CSV row under ``fields``: one named group per field (RFC 4180 quoting), comma separated;
    the fields after ``event`` are optional at the end. Common subset of Python ``re`` and Rust
    ``regex``."""
    names = field_names(fields)
    need = required_count(fields)
    groups = [f"(?P<{n}>{CSV_VALUE})" for n in names]
    pattern = ",".join(groups[:need])
    tail = ""
    for g in reversed(groups[need:]):
        tail = f"(?:,{g}{tail})?"
    return pattern + tail + r"[ \t]*$"


def row(fields: list[str] | tuple[str, ...]) -> pp.Regex:
    """The pyparsing element of a row under ``fields``."""
    return regex_leaf(row_pattern(fields), "exchange protocol row")


directive = regex_leaf(DIRECTIVE, "protocol log directive")
date_time = regex_leaf(ISO_TIME, "protocol log date-time")
event = regex_leaf(EVENT, "protocol log event")
endpoint = regex_leaf(ENDPOINT, "protocol log endpoint")
connector = regex_leaf(CONNECTOR, "protocol log connector-id")
default_row = row(DEFAULT_FIELDS)

#: The whole-file grammar of one line, for diagrams: a directive or a row of the default fields.
line = (directive | default_row).set_name("exchange smtp protocol line")
line.leave_whitespace()
line.parse_with_tabs()  # as its leaves: a TAB is data, never expanded to spaces
