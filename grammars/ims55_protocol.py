"""Exchange Server 5.5 Internet Mail Service SMTP protocol log (``Imcdata\\Log\\L*.LOG``).

Line layout (research note §1.3)::

    2/7/01 5:01:20 PM : A connection was accepted from mail.domain1.com
    2/7/01 5:01:22 PM : <<< RCPT To:<user@domain2.com>
    2/7/01 5:01:22 PM : >>> 250 OK - Recipient <user@domain2.com>
    4/2/01 11:44:31 AM : <<< IO: |HELO pop3.test.com
    4/5/99 10:22:41 AM : A connection to 10.1.1.25 was established.

* ``<<<`` is data received by the IMS, ``>>>`` data it sent; in outbound sessions (the IMS as
  client) commands are ``>>>`` and replies ``<<<``. Some renderings lack the arrows, so the payload
  itself (three digits = reply) decides command vs reply.
* ``IO: |`` marks a raw packet (Maximum logging level); the same data is then logged again parsed.
* Lines without a timestamp continue the previous entry (multi-line EHLO replies, wrapped text,
  message data at Maximum level). Blank lines occur.
* Dates are US locale ``M/D/YY`` by default; four-digit years and 24-hour clocks are accepted.

References:
    * KB Q295725, Q262945, Q228725, Q245787, Q154505, Q159290 (samples and logging levels).
    * Exchange 5.5 SP1 docs, "SMTP protocol log" (xmt04019).
"""

from __future__ import annotations

import pyparsing as pp

from grammars.common import regex_leaf
from grammars.smtp import smtp_payload

#: ``M/D/YY h:mm:ss AM`` (also ``D/M/YYYY HH:MM:SS``). ``date_a``/``date_b`` are month/day in the
#: server's locale order; the reader decides which is which.
TIMESTAMP = (
    r"(?P<date_a>[0-9]{1,2})/(?P<date_b>[0-9]{1,2})/(?P<year>[0-9]{4}|[0-9]{2})[ \t]+"
    r"(?P<hour>[0-9]{1,2}):(?P<minute>[0-9]{1,2}):(?P<second>[0-9]{1,2})"
    r"(?:[ \t]*(?P<ampm>[AaPp][Mm]))?"
)

#: A timestamped entry: timestamp, `` : ``, body.
ENTRY = TIMESTAMP + r"[ \t]*:[ \t]?(?P<body>.*)$"

#: Inbound session start; the host may end with a period (``SERVER1.``).
CONNECT_IN = r"A connection was accepted from (?P<peer>.*?)\.?[ \t]*$"

#: Outbound session start (the IMS connects to a remote host or the smart host).
CONNECT_OUT = r"(?:A )?[Cc]onnection to (?P<peer>.*?) (?:was )?established\.?[ \t]*$"

#: Protocol data: optional arrow, optional raw-packet marker, payload.
PROTO = r"(?:(?P<arrow><<<|>>>)[ \t]?)?(?P<io>IO:[ \t]?\|)?(?P<payload>.*)$"



timestamp = regex_leaf(TIMESTAMP, "timestamp")
entry = regex_leaf(ENTRY, "ims entry")
connect_in = regex_leaf(CONNECT_IN, "connection accepted")
connect_out = regex_leaf(CONNECT_OUT, "connection established")
proto = regex_leaf(PROTO, "protocol data")

#: The body of an entry: a session start or protocol data (whose payload is an SMTP command or reply).
body = (connect_in | connect_out | proto).set_name("ims body")

#: The whole line grammar, for diagrams and for the reference (slow) path:
#: timestamp, ``:``, then a body, then the SMTP payload inside protocol data.
line = (
    timestamp("timestamp")
    + pp.Suppress(regex_leaf(r"[ \t]*:[ \t]?", "colon"))
    + (connect_in("connect_in") | connect_out("connect_out")
       | (regex_leaf(r"(?:(?P<arrow><<<|>>>)[ \t]?)?(?P<io>IO:[ \t]?\|)?", "arrow and raw marker")
          + pp.Opt(smtp_payload("payload"))))
).set_name("ims55 protocol line")
line.leave_whitespace()
line.parse_with_tabs()


def parse_entry(text: str) -> dict[str, str | None] | None:
    """Parse one physical line the reference way; ``None`` when it is not a timestamped entry.

    Returns the named groups of :data:`ENTRY` plus those of the body alternative that matched.
    """
    try:
        head = entry.parse_string(text, parse_all=True)
    except pp.ParseException:
        return None
    fields = dict(head.as_dict())
    fields.setdefault("ampm", None)
    body_text = fields.get("body") or ""
    for name, element in (("connect_in", connect_in), ("connect_out", connect_out), ("proto", proto)):
        try:
            res = element.parse_string(body_text, parse_all=True)
        except pp.ParseException:
            continue
        fields["kind"] = name
        fields.update(res.as_dict())
        break
    return fields
