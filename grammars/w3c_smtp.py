"""IIS SMTP service / Exchange 2000-2003 SMTP protocol log (``SMTPSVC<n>\\exYYMMDD.log``).

Two layouts of the same service's log (research note generic-smtp §5):

**W3C extended** (the default): directive lines, then space-separated data lines whose columns are
named by the most recent ``#Fields:`` directive::

    #Software: Microsoft Internet Information Services 5.0
    #Version: 1.0
    #Date: 2006-10-09 05:00:15
    #Fields: date time c-ip cs-username s-sitename s-computername s-ip s-port cs-method cs-uri-stem cs-uri-query sc-status sc-win32-status sc-bytes cs-bytes time-taken cs-version cs-host cs(User-Agent) cs(Cookie) cs(Referer)
    2006-10-09 05:00:16 24.118.118.106 36A42160 SMTPSVC1 MEE-PDC 192.168.1.2 0 RCPT - +TO:+<pamb@meelift.com> 250 0 29 27 0 SMTP - - - -

* header blocks reappear mid-file (service restart, rollover) and the field set may change there;
  ``#Fields`` may end with a space; an IIS 7 field set has no ``date``/``time`` at all;
* values never hold a space: ``+`` stands for one, ``-`` for an empty value; a literal ``+`` is
  not escaped, so :func:`decode_value` tells the two apart by where the ``+`` stands (below);
* ``date``/``time`` are UTC;
* the data-line pattern depends on the field list, so it is built by :func:`data_pattern` (one
  ``pp.Regex`` per field set; :data:`DEFAULT_FIELDS` when a file has no ``#Fields`` at all);
  :func:`truncated_pattern` matches a line cut short (only its leading fields present).

**``+`` in values.** IIS writes every space of a value as ``+`` and leaves a literal ``+`` as it
is, so ``+`` is ambiguous. Inside an angle-bracket address a literal ``+`` is common (``user+tag``,
the IMCEA encodings ``IMCEASMTP-victim+40example+2Enet@corp.example`` and
``IMCEAEX-_O=CORP_OU=FIRST+20ADMINISTRATIVE+20GROUP...``), while an unquoted space can never be part
of an address; a quoted string may hold a space (KB Q264330: ``<"IMCEA user@domain2.com"@local>``,
logged ``<"IMCEA+user@domain2.com"@local>``). Hence the rule of :func:`decode_value`:

* a ``+`` outside ``<...>`` is a space (``+TO:+<a@b>``, ``FROM:<a@b>+SIZE=1722``, reply texts);
* inside ``<...>`` a ``+`` is a space only inside a double-quoted string (``\\`` escapes the next
  character there, so ``\\"`` does not end it), and a literal ``+`` elsewhere in the address;
* ``<...>`` runs from a ``<`` to the next ``>`` outside a quoted string, or to the end of the value
  (an address cut off by a truncated line keeps its ``+``); a ``>`` inside quotes does not end it.

Limits: a space a client really sent unquoted inside the brackets (invalid syntax) reads as ``+``;
an ESMTP parameter's xtext ``+XX`` (``ORCPT=rfc822;a+2Bb@x``) outside the brackets reads as a space.

**NCSA common** (same service, other logging option), local time with its UTC offset::

    61.47.65.115 - 207.250.64.66 [11/Oct/2006:13:16:41 -0600] "MAIL -?+FROM:+<Keith@boardermail.com> SMTP" 250 46
    205.188.158.121 - OutboundConnectionCommand [11/Oct/2006:13:16:39 -0600] "EHLO -?mee-pdc.meelift.com SMTP" 0 4

In both, inbound lines carry the client's HELO name in the user-name column, and outbound lines
(the service as a client) carry ``OutboundConnectionCommand`` / ``OutboundConnectionResponse``
there, with the remote reply text in the query column.

References: generic-smtp research note §5 (corpus iis-smtp/: OSSEC Exchange 2000 W3C and NCSA
samples, an IIS 7 reduced-field log, an open-relay victim's excerpt); W3C Working Draft
WD-logfile-960323 (Extended Log File Format).
"""

from __future__ import annotations

import re

import pyparsing as pp

from grammars.common import regex_leaf

#: A directive line: ``#Name: value`` (``#Fields:`` may carry a trailing space).
DIRECTIVE = r"#(?P<directive>[A-Za-z-]+):[ \t]*(?P<value>.*?)[ \t]*$"

#: The ``#Date:`` directive value: ``2006-10-09 05:00:15`` (UTC).
DATE_VALUE = (
    r"(?P<year>[0-9]{4})-(?P<month>[0-9]{1,2})-(?P<day>[0-9]{1,2})[ T]+"
    r"(?P<hour>[0-9]{1,2}):(?P<minute>[0-9]{1,2}):(?P<second>[0-9]{1,2})(?:\.[0-9]+)?Z?"
)

#: W3C ``date`` and ``time`` field values.
W3C_DATE = r"(?P<year>[0-9]{4})-(?P<month>[0-9]{1,2})-(?P<day>[0-9]{1,2})"
W3C_TIME = r"(?P<hour>[0-9]{1,2}):(?P<minute>[0-9]{1,2}):(?P<second>[0-9]{1,2})(?:\.[0-9]+)?"

#: The IIS 5.0/6.0 SMTP default field set, assumed for data lines before any ``#Fields``
#: (e.g. an excerpt without its header block).
DEFAULT_FIELDS: tuple[str, ...] = (
    "date", "time", "c-ip", "cs-username", "s-sitename", "s-computername", "s-ip", "s-port",
    "cs-method", "cs-uri-stem", "cs-uri-query", "sc-status", "sc-win32-status", "sc-bytes",
    "cs-bytes", "time-taken", "cs-version", "cs-host", "cs(User-Agent)", "cs(Cookie)", "cs(Referer)",
)

#: One W3C value: anything but a space or TAB (spaces are written as ``+``).
VALUE = r"[^ \t]*"

#: An NCSA common-format line of the SMTP service.
NCSA = (
    r"(?P<c_ip>[^ \t]+) (?P<ident>[^ \t]+) (?P<user>[^ \t]+) "
    r"\[(?P<day>[0-9]{1,2})/(?P<mon>[A-Za-z]{3})/(?P<year>[0-9]{4}):"
    r"(?P<hour>[0-9]{1,2}):(?P<minute>[0-9]{1,2}):(?P<second>[0-9]{1,2})[ \t]+"
    r"(?P<offset>[+-][0-9]{4})\] "
    r"\"(?P<method>[^ \t\"]*) (?P<stem>[^ \t\"?]*)(?:\?(?P<query>.*))? (?P<version>[A-Za-z][A-Za-z0-9/.]*)\""
    r" (?P<status>-|[0-9]+) (?P<bytes>-|[0-9]+)[ \t]*$"
)

#: An IIS native (comma-separated) line of the SMTP service (research note §5.3, Microsoft's example:
#: ``10.3.5.1, Nwtraders.com, 8/18/06, 13:17:37, SMTPSVC1, MAIL01, 10.200.200.1, 90, 42, 0, 250, 0,
#: MAIL FROM, -, FROM:<maria@Nwtraders.com>,``): client IP, client domain, date (M/D/YY, local time),
#: time, service, server name, server IP, ms, bytes received, bytes sent, reply code, Win32 status,
#: command, target, parameters.
IIS_NATIVE = (
    r"(?P<n_ip>[^ ,\t]+), (?P<n_user>[^,]*), (?P<n_month>[0-9]{1,2})/(?P<n_day>[0-9]{1,2})/"
    r"(?P<n_year>[0-9]{4}|[0-9]{2}), (?P<n_hour>[0-9]{1,2}):(?P<n_minute>[0-9]{2}):(?P<n_second>[0-9]{2}), "
    r"(?P<n_service>[^,]*), (?P<n_server>[^,]*), (?P<n_sip>[^,]*), (?P<n_ms>-|[0-9]+), (?P<n_recv>-|[0-9]+), "
    r"(?P<n_sent>-|[0-9]+), (?P<n_status>-|[0-9]+), (?P<n_win32>-|[0-9]+), (?P<n_command>[^,]*), "
    r"(?P<n_target>[^,]*), (?P<n_params>.*?),?[ \t]*$"
)

#: The user-name value of outbound lines (the service acting as an SMTP client).
OUTBOUND_COMMAND = "OutboundConnectionCommand"
OUTBOUND_RESPONSE = "OutboundConnectionResponse"

directive = regex_leaf(DIRECTIVE, "w3c directive")
date_value = regex_leaf(DATE_VALUE, "w3c #Date value")
ncsa_line = regex_leaf(NCSA, "ncsa smtp line")
native_line = regex_leaf(IIS_NATIVE, "iis native smtp line")


def group_name(field: str) -> str:
    """A field name as a regex group name: ``c-ip`` -> ``c_ip``, ``cs(User-Agent)`` -> ``cs_user_agent``."""
    return re.sub(r"[^a-z0-9]+", "_", field.lower()).strip("_") or "field"


def split_fields(value: str) -> list[str]:
    """The field names of a ``#Fields:`` value (space separated; trailing space ignored)."""
    return value.split()


def group_names(fields: list[str] | tuple[str, ...]) -> list[str]:
    """Unique group names for a field list (a repeated field gets ``_2``, ``_3``...)."""
    out: list[str] = []
    for f in fields:
        name = base = group_name(f)
        n = 2
        while name in out:
            name = f"{base}_{n}"
            n += 1
        out.append(name)
    return out


def data_pattern(fields: list[str] | tuple[str, ...]) -> str:
    """The data-line pattern for one field set: one named group per field, single spaces between
    them (trailing blanks allowed). Common subset of Python ``re`` and Rust ``regex``."""
    groups = [f"(?P<{name}>{VALUE})" for name in group_names(fields)]
    return " ".join(groups) + r"[ \t]*$"


def truncated_pattern(fields: list[str] | tuple[str, ...]) -> str:
    """The pattern of a data line cut short under ``fields``: the first field, then each further
    field only if the one before it is there (``a(?: b(?: c)?)?``); absent fields are unmatched
    groups. Match it against the line with trailing blanks removed (else a trailing blank would
    read as one more, empty, field). Common subset of Python ``re`` and Rust ``regex``."""
    groups = [f"(?P<{name}>{VALUE})" for name in group_names(fields)]
    tail = ""
    for group in reversed(groups[1:]):
        tail = f"(?: {group}{tail})?"
    return groups[0] + tail + "$"


#: What a value of a typed field must look like (group name -> pattern, ``-`` = empty). A data
#: line cut short is kept only when each of its fields that is there passes its check.
IP_VALUE = r"-|[0-9A-Fa-f.:]+"
NUMBER_VALUE = r"-|[0-9]+"
FIELD_CHECKS: dict[str, str] = {
    "date": W3C_DATE, "time": W3C_TIME, "c_ip": IP_VALUE, "s_ip": IP_VALUE, "s_port": NUMBER_VALUE,
    "sc_status": NUMBER_VALUE, "sc_win32_status": NUMBER_VALUE, "sc_bytes": NUMBER_VALUE,
    "cs_bytes": NUMBER_VALUE, "time_taken": NUMBER_VALUE,
}


#: Values whose ``+`` signs are not all spaces (:func:`decode_value` must look at them): a ``+`` or
#: a ``"`` between a ``<`` and the next ``>``. In every other value each ``+`` is a space.
NEEDS_ADDRESS_DECODE = r'<[^>]*[+"]'


def decode_value(value: str) -> str:
    """A W3C/NCSA/IIS value as text, by the ``+`` rule of the module docstring: ``+`` is a space
    outside ``<...>`` and inside a quoted string within it, a literal ``+`` elsewhere inside it.

    >>> decode_value('+TO:+<IMCEASMTP-v+40example+2Enet@corp.example>+NOTIFY=NEVER')
    ' TO: <IMCEASMTP-v+40example+2Enet@corp.example> NOTIFY=NEVER'
    >>> decode_value('+TO:+<"IMCEA+user@domain2.com"@local.example>')
    ' TO: <"IMCEA user@domain2.com"@local.example>'
    """
    if "+" not in value:
        return value
    out: list[str] = []
    angle = quoted = escaped = False
    for ch in value:
        if ch == "+":
            out.append(" " if quoted or not angle else "+")
            escaped = False
            continue
        out.append(ch)
        if not angle:
            angle = ch == "<"
        elif quoted:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == ">":
            angle = False
    return "".join(out)


def data_line(fields: list[str] | tuple[str, ...]) -> pp.Regex:
    """The pyparsing element of a data line under ``fields``."""
    return regex_leaf(data_pattern(fields), "w3c data line")


#: The whole-file grammar of one W3C line, for diagrams: a directive or a data line of the
#: default field set.
line = (directive | data_line(DEFAULT_FIELDS)).set_name("w3c smtp line")
