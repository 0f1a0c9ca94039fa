"""Sendmail 8.x log messages, as written to syslog (the part after the envelope of ``grammars.syslog``).

Layout (research note generic-smtp §3)::

    [QID ": "] BODY

    QID   = 8-16 letters and digits ending in five digits: ``DAA00442`` (8.9/8.10), ``f77KHdX04091``
            (8.11), ``s1P819mk027713`` (8.12+, the last digits are the pid). Some lines have none
            (``ruleset=check_relay``, ``AUTH=server``, ``STARTTLS=``).

Bodies, tried in this order (each one ``pp.Regex`` anchored at its own end; the last one takes any
other text, as a note)::

    from=<s>, size=N, class=N, [pri=N, ]nrcpts=N[, msgid=<m>][, bodytype=B][, proto=P][, daemon=D]
        [, relay=CLIENT | user@localhost]                 message received (relay = the SENDING client)
    to=A[,A...], [ctladdr=X (uid/gid), ]delay=[d+]hh:mm:ss, [xdelay=.., ][mailer=M, ][pri=N, ]
        [relay=name. [ip], ][dsn=x.y.z, ]stat=TEXT      delivery attempt (relay = the RECEIVING host)
    ruleset=R, arg1=A[, arg2=B][, relay=CLIENT], reject=NNN TEXT | discard | quarantine=TEXT
    AUTH=server|client, relay=CLIENT, [authid=U, ]mech=M, bits=N
    AUTH failure (MECH): REASON[, user=U], relay=CLIENT
    CLIENT: possible SMTP attack: command=C, count=N
    CLIENT: VRFY|EXPN ARG[ [rejected]]
    CLIENT did not issue MAIL/EXPN/VRFY/ETRN during connection to DAEMON
    lost input channel from CLIENT[ to DAEMON][ after STAGE]
    rejecting commands from CLIENT due to pre-greeting traffic[ after N seconds]
    <addr>... TEXT                                          a recipient refused during SMTP
    Milter: STAGE[=ARG], reject=NNN TEXT
    STARTTLS=server|client, relay=CLIENT, version=...
    anything else                                           a note

    CLIENT = [name][ ][ "[" ip "]" ][ " (may be forged)" ]

The program tag is ``sendmail``, ``sm-mta``, ``sm-msp-queue`` or a process title such as
``sm-acceptingconnections`` (:data:`TAG`).
"""

from __future__ import annotations

import pyparsing as pp

from grammars.common import regex_leaf
from grammars.syslog import BSD_STAMP, ISO_STAMP, WIRE_PRI

#: A syslog tag written by Sendmail (the whole tag; ``postfix/sendmail`` is Postfix's).
TAG = r"(?:sendmail|sm-[A-Za-z0-9-]+)"

#: FreeBSD ``syslogd -v`` puts ``<facility.level>`` between the stamp and the host; the reader drops
#: it before the envelope grammar runs (``Jun 17 14:37:39 <mail.info> robin sm-mta[2794]: ...``), keeping
#: a wire priority before the stamp (``<22>Jun 17 ...``) for the envelope grammar.
PRIORITY_PREFIX = (
    r"(?P<stamp>(?:" + WIRE_PRI + r")?(?:" + BSD_STAMP + r"|" + ISO_STAMP + r")[ \t]+)<[A-Za-z0-9]+\.[A-Za-z]+>[ \t]+"
)

#: The queue id and the separator after it.
QID = r"(?P<qid>[A-Za-z0-9]{3,11}[0-9]{5}):[ \t]+"

#: A whole message: an optional queue id, then the body (column path only).
MESSAGE = r"(?:" + QID + r")?(?P<body>.*)$"

#: An address in angle brackets; a quoted local part may hold ``>`` and ``,``.
_BRACKETED = r"<(?:\"(?:[^\"\\]|\\.)*\"|[^>\"])*>"
#: An address without brackets: quoted (``"|/usr/bin/procmail"``) or a bare word (``root``).
_BARE = r"\"(?:[^\"\\]|\\.)*\"[^ \t,]*|[^ \t,<\"][^ \t,]*"
ADDRESS = _BRACKETED + r"|" + _BARE

#: ``[d+]hh:mm:ss``.
DELAY = r"(?:[0-9]+\+)?[0-9]+:[0-9]{2}:[0-9]{2}"

#: The other end of an SMTP connection: ``name [ip]``, ``[ip]``, ``name [ip] (may be forged)``, ``name``.
CLIENT = (
    r"(?:(?P<client_host>[^ \t\[\],]+)[ \t]?)?(?:\[(?P<client_ip>[^\]]*)\])?"
    r"(?P<forged>[ \t]\(may be forged\))?"
)

FROM = (
    r"from=(?P<sender>" + ADDRESS + r"), size=(?P<size>[0-9]+), class=(?P<mclass>-?[0-9]+), "
    r"(?:pri=(?P<pri>[0-9]+), )?nrcpts=(?P<nrcpts>[0-9]+)"
    r"(?:, msgid=(?P<msgid><[^>]*>|[^,]*))?"
    r"(?:, bodytype=(?P<bodytype>[^,]*))?"
    r"(?:, proto=(?P<proto>[^,]*))?"
    r"(?:, daemon=(?P<daemon>[^,]*))?"
    r"(?:, relay=(?:(?P<local_user>[^ \t@,\[\]]+)@(?P<local_host>[^ \t,\[\]]+)|" + CLIENT + r"))?"
    r"[ \t]*$"
)

TO = (
    r"to=(?P<to>(?:" + ADDRESS + r")(?:,(?:" + ADDRESS + r"))*), "
    r"(?:ctladdr=(?P<ctladdr>" + ADDRESS + r")(?: \((?P<uid>[0-9]+)/(?P<gid>[0-9]+)\))?, )?"
    r"delay=(?P<delay>" + DELAY + r"), "
    r"(?:xdelay=(?P<xdelay>" + DELAY + r"), )?"
    r"(?:mailer=(?P<mailer>[^ \t,]+), )?"
    r"(?:pri=(?P<pri>[0-9]+), )?"
    r"(?:relay=(?P<relay>(?P<relay_name>\[[^\]]*\]|[^ \t,\[]+)?(?:[ \t]?\[(?P<relay_ip>[^\]]*)\])?"
    r"(?:[ \t]\(may be forged\))?), )?"
    r"(?:dsn=(?P<dsn>[0-9]\.[0-9]{1,3}\.[0-9]{1,3}), )?"
    r"stat=(?P<stat>.*)$"
)

RULESET = (
    r"ruleset=(?P<ruleset>[A-Za-z0-9_]+), arg1=(?P<arg1>" + _BRACKETED + r"|[^,]*)"
    r"(?:, arg2=(?P<arg2>" + _BRACKETED + r"|[^,]*))?"
    r"(?:, relay=" + CLIENT + r")?, "
    r"(?:reject=(?P<code>[2-5][0-9]{2})(?:[ \t](?P<reply_text>.*))?|(?P<action>discard|quarantine=.*))$"
)

AUTH = (
    r"AUTH=(?P<side>server|client), relay=" + CLIENT + r", (?:authid=(?P<authid>.*?), )?"
    r"mech=(?P<mech>[^ \t,]+), bits=(?P<bits>[0-9]+)[ \t]*$"
)

AUTH_FAILURE = (
    r"AUTH failure \((?P<mech>[^)]*)\):[ \t](?P<reason>.*?)(?:, user=(?P<user>.*?))?, relay="
    + CLIENT + r"[ \t]*$"
)

ATTACK = CLIENT + r": possible SMTP attack: command=(?P<command>[^,]*), count=(?P<count>[0-9]+)[ \t]*$"

VRFY_EXPN = CLIENT + r": (?P<verb>(?i:vrfy|expn))(?:[ \t](?P<arg>.*?))?(?P<rejected>[ \t]\[rejected\])?[ \t]*$"

NO_MAIL = CLIENT + r" did not issue (?P<commands>[A-Z/]+) during connection to (?P<daemon>.*?)[ \t]*$"

LOST_INPUT = (
    r"lost input channel from " + CLIENT
    + r"(?: to (?P<daemon>[^ \t]+))?(?: after (?P<stage>.*?))?[ \t]*$"
)

PREGREET = (
    r"rejecting commands from[ \t]+" + CLIENT
    + r" due to pre-greeting traffic(?: after (?P<seconds>[0-9]+) seconds?)?[ \t]*$"
)

USER_ERROR = r"(?P<addr>" + _BRACKETED + r")\.\.\.[ \t]*(?P<error>.*)$"

MILTER_REJECT = (
    r"Milter: (?P<stage>[a-z]+)(?:=(?P<marg>" + _BRACKETED + r"|[^,]*))?, "
    r"reject=(?P<code>[2-5][0-9]{2})(?:[ \t](?P<reply_text>.*))?$"
)

STARTTLS = r"STARTTLS=(?P<side>server|client), relay=" + CLIENT + r", (?P<params>version=.*)$"

NOTE = r"(?P<note>.*)$"

#: Body shapes in the order they are tried: name -> pattern.
SHAPES: dict[str, str] = {
    "from": FROM,
    "to": TO,
    "ruleset": RULESET,
    "auth": AUTH,
    "auth_failure": AUTH_FAILURE,
    "attack": ATTACK,
    "vrfy_expn": VRFY_EXPN,
    "no_mail": NO_MAIL,
    "lost_input": LOST_INPUT,
    "pregreet": PREGREET,
    "user_error": USER_ERROR,
    "milter_reject": MILTER_REJECT,
    "starttls": STARTTLS,
    "note": NOTE,
}

#: Bodies starting like this must match their shape; otherwise the line is malformed (cut off).
STRICT_PREFIXES: dict[str, str] = {
    "from=": "from",
    "to=": "to",
    "ruleset=": "ruleset",
    "AUTH=server,": "auth",
    "AUTH=client,": "auth",
    "AUTH failure": "auth_failure",
}

queue_id = regex_leaf(QID, "queue id")
shape_elements: dict[str, pp.Regex] = {name: regex_leaf(pattern, f"sendmail {name}")
                                       for name, pattern in SHAPES.items()}

#: The whole message grammar: an optional queue id, then the first body shape that matches.
message = (
    pp.Opt(queue_id) + pp.MatchFirst([element("shape_" + name) for name, element in shape_elements.items()])
).set_name("sendmail message")
message.leave_whitespace()
message.parse_with_tabs()


def parse_message(text: str) -> dict[str, str]:
    """The reference (slow) path for one message: ``kind`` (the shape's name) and its named fields.

    Fields that did not take part in the match are left out.
    """
    result = message.parse_string(text, parse_all=True)
    fields = {k: v for k, v in result.as_dict().items() if isinstance(v, str) and not k.startswith("shape_")}
    kind = next(name for name in shape_elements if "shape_" + name in result)
    fields["kind"] = kind
    return fields
