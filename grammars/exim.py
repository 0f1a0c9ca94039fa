"""Exim 4 main log and reject log lines (native files, or the message part of a syslog line).

Layout (research note generic-smtp §4; Exim spec, chapter "Log files")::

    YYYY-MM-DD hh:mm:ss[.mmm][ +hhmm][ [pid]] [MSGID] [FLAG] body

* ``.mmm`` with ``log_selector = +millisec``; ``+hhmm`` with ``log_timezone = true``; ``[pid]``
  with ``+pid``. Message ids are 16 characters (6-6-2) before Exim 4.97 and 23 (6-11-4) since.
* Flags: ``<=`` arrival, ``(=`` fake-reject arrival, ``=>`` delivery, ``->`` another address of the
  same delivery, ``>>`` cutthrough delivery, ``*>`` delivery suppressed by ``-N``, ``**`` bounce,
  ``==`` deferral. Lines without a flag: rejections (``H=... F=<s> rejected RCPT <r>: text``),
  authenticator failures, ``SMTP connection from ...``, ``Completed``, queue runs ...
* Fields ``KEY=value``: ``H=`` is ``name [ip]``, ``(helo) [ip]``, ``name (helo) [ip]`` or ``[ip]``,
  with an optional ``:port`` ("only the final address in square brackets can be relied on").
* Via syslog the message may start with a fragment marker ``[n/m]`` (split for length) or
  ``[n\\m]`` (split at a newline); the first fragment carries the Exim time stamp, if any.

Every pattern below is in the common subset of Python ``re`` and Rust ``regex``. The line is one
:data:`HEAD` prefix then exactly one body shape (:data:`BODIES`, tried in order); each body shape
names the group holding its ``KEY=value`` fields (:data:`FIELD_SOURCE`), which the field patterns
(:data:`FIELDS`) then search, leftmost match first, in that text with one space prepended.
"""

from __future__ import annotations

import pyparsing as pp

from grammars.common import regex_leaf

#: Exim message id: legacy 6-6-2, 4.97+ 6-11-4 (base 62, or base 36 on case-insensitive systems).
MSGID = r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4}"

#: ``YYYY-MM-DD hh:mm:ss`` with optional milliseconds and numeric zone.
STAMP = (
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2}) (?P<time>[0-9]{2}:[0-9]{2}:[0-9]{2})"
    r"(?:\.(?P<msec>[0-9]{1,6}))?(?: (?P<zone>[+-][0-9]{4}))?"
)

#: The line prefix: stamp (optional inside syslog), ``[pid]``, message id. Every part is optional,
#: so the prefix always matches; a native line is one whose ``date`` matched.
HEAD_PREFIX = (
    r"(?:" + STAMP + r"[ ]?)?"
    r"(?:\[(?P<pid>[0-9]+)\][ ]?)?"
    r"(?:(?P<msgid>" + MSGID + r")(?:[ ]|$))?"
)
#: The prefix and the rest of the line as ``body`` (for column work).
HEAD = HEAD_PREFIX + r"(?P<body>.*)$"

#: Syslog fragment marker, then the fragment's text.
FRAGMENT = r"\[(?P<frag>[0-9]+)(?P<frag_sep>[/\\])(?P<frag_of>[0-9]+)\][ ]?(?P<piece>.*)$"

#: An address as Exim logs it bare: a quoted local part (spaces allowed) with its domain, or a word.
_ADDR = r"(?:\"(?:[^\"\\]|\\.)*\"[^ ]*|[^ ]+)"
#: The same, but not ending in a colon (``** user@x: Unrouteable address``).
_ADDR_NC = r"(?:\"(?:[^\"\\]|\\.)*\"[^ :]*|[^ ]*[^ :])"
#: The inside of ``<...>`` (quoted local parts may hold ``>``).
_PATH = r"(?:\"(?:[^\"\\]|\\.)*\"|[^>\"])*"
#: A recipient as logged on a reject line: ``<path>`` or bare.
_RCPT = r"(?:<(?P<rcpt_path>" + _PATH + r")>|(?P<rcpt_bare>" + _ADDR_NC + r"))"

#: ``<= sender fields`` (and ``(=`` fakereject). ``fields`` keeps its leading space.
ARRIVAL = r"(?P<flag><=|\(=) (?P<sender>" + _ADDR + r")(?P<fields>(?: .*)?)$"

#: ``=> rcpt <parent> fields`` and ``->``, ``>>``, ``*>``.
DELIVERY = (
    r"(?P<flag>=>|->|>>|\*>) (?P<rcpt>" + _ADDR_NC + r")(?: <(?P<parent>" + _PATH + r")>)?"
    r"(?P<fields>(?: .*)?)$"
)

#: ``** rcpt <parent> fields: error`` and ``== ...``; the fields hold no colon outside ``[...]``
#: except a port (``:25``); the error is the text after the first other colon.
FAILURE = (
    r"(?P<flag>\*\*|==) (?P<rcpt>" + _ADDR_NC + r")(?: <(?P<parent>" + _PATH + r")>)?"
    r"(?P<fields>(?:[^:\[]|\[[^\]]*\]|:[0-9])*)(?::[ ]?(?P<error>.*))?$"
)

#: ``H=... F=<s> [temporarily ]rejected RCPT <r>[: text]`` (the text is the site's ACL message).
REJECT_RCPT = (
    r"(?P<pre>.*?)[ ]?(?P<temp>temporarily )?rejected RCPT " + _RCPT
    + r"(?:[ ]?:[ ]?(?P<reason>.*)|(?P<trailer> .*))?$"
)

#: ``H=... F=<s> RCPT <r>: discarded by RCPT ACL`` (the client was told 250).
DISCARD_RCPT = r"(?P<pre>.*?)[ ]?RCPT " + _RCPT + r":[ ]?(?P<reason>discarded .*)$"

#: Any other rejection: ``rejected MAIL``, ``rejected EHLO or HELO``, ``rejected VRFY``,
#: ``rejected after DATA``, ``rejected by local_scan()``, ``rejected connection in "connect" ACL``.
#: The text before it holds no quote (so a "rejected" inside a quoted command or event is not one).
REJECT = (
    r"(?P<whole>(?P<pre>[^\"]*?)[ ]?(?P<temp>temporarily )?rejected "
    r"(?P<what>[A-Z][A-Z]+|after|from|by|during|connection)(?P<rest>(?:[ :].*)?))$"
)

#: ``NAME authenticator failed for HOST: 535 text (set_id=user)``.
AUTH_FAILED = (
    r"(?P<failed_authenticator>[^ ]+) authenticator failed for (?P<who>.*?):[ ]"
    r"(?P<code>[2-5][0-9]{2})(?:[ -](?P<reply_text>.*))?$"
)

#: ``SMTP connection from HOST ...``, ``SMTP call from HOST dropped: ...``,
#: ``no MAIL in SMTP connection from HOST ...``.
CONNECTION = r"(?P<conn>no MAIL in SMTP connection|SMTP connection|SMTP call) from (?P<who>.*)$"

#: Everything else Exim logs (``Completed``, ``Start queue run``, TLS and DKIM notes ...).
OTHER = r"(?P<text>.*)$"

#: Body shapes in the order they are tried.
BODIES: dict[str, str] = {
    "arrival": ARRIVAL,
    "delivery": DELIVERY,
    "failure": FAILURE,
    "reject_rcpt": REJECT_RCPT,
    "discard_rcpt": DISCARD_RCPT,
    "reject": REJECT,
    "auth_failed": AUTH_FAILED,
    "connection": CONNECTION,
    "other": OTHER,
}

#: Which group of each body shape holds its ``KEY=value`` fields.
FIELD_SOURCE: dict[str, str] = {
    "arrival": "fields", "delivery": "fields", "failure": "fields", "reject_rcpt": "pre",
    "discard_rcpt": "pre", "reject": "whole", "auth_failed": "who", "connection": "who", "other": "text",
}

#: What makes a stamped line look like Exim (for sniffing): a message id, a flag, a field, or one
#: of the fixed phrases Exim logs without a message id.
SNIFF_BODY = (
    r"(?:" + MSGID + r"(?: |$)|(?:<=|\(=|=>|->|>>|\*>|\*\*|==) |[HUF]=|SMTP (?:connection|call) from "
    r"|no MAIL in SMTP connection|SMTP protocol (?:synchronization )?error|[^ ]+ authenticator failed for "
    r"|Start queue run|End queue run|exim [^ ]+ daemon started|TLS error on connection"
    r"|no (?:host name|IP address) found for |(?:temporarily )?rejected |refused connection from "
    r"|(?:VRFY|EXPN|ETRN) |Completed$|Frozen)"
)
#: A native line that looks like Exim.
SNIFF_NATIVE = STAMP + r"(?: \[[0-9]+\])? " + SNIFF_BODY
#: Any line with Exim's stamp, no TAB and not an IPv4 address next (as W3C logs have): a file
#: of nothing else is taken as Exim, weakly.
SNIFF_STAMPED = STAMP + r"(?: \[[0-9]+\])? (?:[^\t0-9]|[0-9]+(?:[^0-9.\t]|$))[^\t]*$"
#: A syslog (or journal) line from Exim: its tag, searched in the line with a space prepended.
SNIFF_SYSLOG_TAG = r"[ ]exim[0-9]*(?:\[[0-9]+\])?:[ ]"

#: A host as Exim logs it: ``name``, ``(helo)``, ``[ip]`` in that order, each optional, ``:port``.
HOSTSPEC = (
    r"(?P<host_name>[^ ()\[\]=\"]+)?(?:[ ]?\((?P<host_helo>[^)]*)\))?"
    r"(?:[ ]?\[(?P<host_ip>[^\]]*)\](?::(?P<host_port>[0-9]+))?)?"
)

_ALL = tuple(BODIES)
_NOT_WHO = tuple(k for k in BODIES if k not in ("auth_failed", "connection"))


class Search:
    """One field pattern: where it is looked for and how.

    ``mode`` is ``search`` (leftmost match anywhere in ``prefix + text``) or ``match`` (at the start
    of the text). ``kinds`` are the body shapes it applies to; ``source`` names the group searched
    (``None``: the shape's own field group, :data:`FIELD_SOURCE`).
    """

    def __init__(self, name: str, pattern: str, kinds: tuple[str, ...], source: str | None = None,
                 mode: str = "search", prefix: str = " ") -> None:
        self.name, self.pattern, self.kinds, self.source = name, pattern, kinds, source
        self.mode, self.prefix = mode, prefix
        self.element = regex_leaf(pattern, name)


#: Field patterns, in order. Group names are unique except where the kinds are disjoint.
SEARCHES: tuple[Search, ...] = (
    Search("host", r"[ ]H=(?P<host>" + HOSTSPEC + r")", _NOT_WHO),
    # On authenticator-failure and connection lines the host comes first, with or without H=.
    Search("who_host", r"(?:H=)?(?P<host>" + HOSTSPEC + r")", ("auth_failed", "connection"), mode="match"),
    Search("ident", r"[ ]U=(?P<ident>[^ ]+)", _ALL),
    Search("proto", r"[ ]P=(?P<proto>[^ ]+)", _ALL),
    Search("auth", r"[ ]A=(?P<authenticator>[^ :]+)(?::(?P<auth_id>[^ :]*))?(?::(?P<auth_sender>[^ ]*))?",
           _ALL),
    Search("size", r"[ ]S=(?P<size>[0-9]+)", _ALL),
    Search("router", r"[ ]R=(?P<router>[^ ]+)", _ALL),
    Search("transport", r"[ ]T=(?P<transport>\"(?:[^\"\\]|\\.)*\"|[^ :]+)", _ALL),
    Search("from", r"[ ]F=(?:<(?P<from_path>" + _PATH + r")>|(?P<from_bare>[^ ]+))", _ALL),
    Search("confirm", r"[ ]C=\"(?P<confirm>(?:[^\"\\]|\\.)*)\"", _ALL),
    Search("message_id", r"[ ]id=(?P<message_id>[^ ]+)", _ALL),
    Search("set_id", r"\(set_id=(?P<set_id>[^)]*)\)", ("auth_failed",), source="reply_text", prefix=""),
    # ``for r1 r2`` ends an arrival line (log_selector +received_recipients); quoted strings such
    # as the subject ``T="..."`` are skipped whole, so a " for " inside them does not count.
    Search("for", r"(?:[^\"]|\"(?:[^\"\\]|\\.)*\")*? for (?P<rcpts>.+)$", ("arrival",), mode="match"),
    # The remote host and its reply code inside the error of a ``**``/``==`` line.
    Search("error_host", r"[ ]host (?P<error_host>(?P<error_host_name>[^ \[]+) \[(?P<error_host_ip>[^\]]+)\])",
           ("failure",), source="error"),
    Search("error_code", r": (?P<error_code>[2-5][0-9]{2})[ -]", ("failure",), source="error", prefix=": "),
    # A reject text that starts with an SMTP code (an ACL ``message =`` beginning with one).
    Search("reason_code", r"(?P<reason_code>[2-5][0-9]{2})[ -]", ("reject_rcpt",), source="reason",
           mode="match"),
    Search("rest_code", r": (?P<reason_code>[2-5][0-9]{2})[ -]", ("reject",), source="rest", prefix=": "),
)

head = regex_leaf(HEAD_PREFIX, "exim prefix")
fragment = regex_leaf(FRAGMENT, "syslog fragment")
bodies = {kind: regex_leaf(pattern, kind) for kind, pattern in BODIES.items()}

#: The whole line: the prefix, then the first body shape that matches to the end.
body = pp.MatchFirst([element(kind) for kind, element in bodies.items()]).set_name("exim body")
line = (head + body).set_name("exim line")
line.leave_whitespace()
line.parse_with_tabs()


def _apply(search: Search, text: str) -> dict[str, str]:
    if search.mode == "match":
        try:
            found = search.element.parse_string(text).as_dict()
        except pp.ParseException:
            return {}
    else:
        hits = search.element.search_string(search.prefix + text, max_matches=1)
        if not hits:
            return {}
        found = hits[0].as_dict()
    return {k: v for k, v in found.items() if isinstance(v, str)}


def parse_line(text: str) -> dict[str, str]:
    """Every named field of one Exim line (or syslog message), the reference way, plus ``kind``.

    Groups that did not match are left out. (``other`` accepts any text without a newline.)
    """
    result = line.parse_string(text, parse_all=True)
    kind = next(k for k in BODIES if k in result)
    out = {k: v for k, v in result.as_dict().items() if isinstance(v, str) and k not in BODIES}
    out["kind"] = kind
    for search in SEARCHES:
        if kind not in search.kinds:
            continue
        source = out.get(search.source or FIELD_SOURCE[kind])
        if source is not None:
            out.update(_apply(search, source))
    return out
