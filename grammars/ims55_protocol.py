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

Damaged lines and renderings (:func:`split_merged`, :func:`unquote_lines`, :data:`UNTIMED`,
:func:`is_continuation`):

* **merged lines**: the 4.0 writer's 1024-byte buffer left lines without their line feed (KB
  Q159290), so one physical line may hold two entries; the second starts at a timestamp and
  `` : `` right after a non-digit (:data:`STAMP_SEP`);
* **CSV quoting**: KB Q239816 prints each line in double quotes with the inner quotes doubled
  (``"7/5/99 9:31:55 PM : 499 ... subject: ""RE:33%s5%s99"". ..."``); a quoted value may go on over
  the next lines (the KB's wrapping). Unquoting is exact (RFC 4180 field rules);
* **no timestamps**: KB Q245787 prints the lines without their timestamps; there a line is an entry
  when it is a session start or begins with an arrow or ``IO: |`` (:data:`UNTIMED`);
* **continuations** are text: a line holding control characters (binary junk, NUL bytes) or
  starting like a cut-off timestamp (``7/14/00 4:00:0``) is damage, not a continuation;
* **message data**: after a ``354`` reply, the lines up to the end of data are message text, not
  commands. The text ends at the next reply of the server, at a ``.`` line, or at a line the IMS
  logged as a parsed command (:data:`COMMAND_LINE`; the IMS does not parse message text, so such a
  line means the closing reply was not logged, KB Q295725). This is session state: the reader
  applies it.

References:
    * KB Q295725, Q262945, Q228725, Q245787, Q154505, Q159290 (samples and logging levels).
    * Exchange 5.5 SP1 docs, "SMTP protocol log" (xmt04019).
"""

from __future__ import annotations

import itertools
import re

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


#: The timestamp without group names, to find one inside a line.
STAMP = re.sub(r"\(\?P<[a-z_]+>", "(?:", TIMESTAMP)

#: Where a merged entry starts inside a line: a timestamp and `` : `` (KB Q159290). Only where the
#: character before it is not a digit (see :func:`split_merged`).
STAMP_SEP = STAMP + " : "

#: A line of an entry with a timestamp, for finding a merged one (non-digit, then STAMP_SEP).
EMBEDDED = r"[^0-9]" + STAMP_SEP

#: The CSV-quoted rendering (KB Q239816): the first line of a quoted value, and a line inside one.
#: ``inner`` holds the text with its quotes still doubled; ``close`` the closing quote, if on this line.
QUOTED_OPEN = r'"(?P<inner>(?:[^"]|"")*)(?P<close>"[ \t]*)?$'
QUOTED_MORE = r'(?P<inner>(?:[^"]|"")*)(?P<close>"[ \t]*)?$'

#: An entry of the rendering without timestamps (KB Q245787): a session start, or protocol data
#: that begins with an arrow or a raw-packet marker. Indentation (KB text blocks) is allowed.
UNTIMED = (
    r"[ \t]*(?P<body>(?:<<<|>>>|IO:[ \t]?\|).*|A connection was accepted from .*"
    r"|(?:A )?[Cc]onnection to .* (?:was )?established\.?[ \t]*)$"
)

#: What a continuation line may not hold: control characters other than TAB, CR and LF.
CONTROL_CHAR = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
#: What a continuation line may not start with: a date and the start of a time (a cut-off entry).
BROKEN_STAMP = r"[0-9]{1,2}/[0-9]{1,2}/[0-9]{2,4}[ \t]+[0-9]{1,2}:"

#: A payload the IMS logged as a parsed SMTP command (verb and arguments in command shape, not a
#: ``Name: value`` header). Inside message data such a line ends the data (its reply was not logged).
COMMAND_LINE = (
    r"(?i:(?:MAIL[ \t]+FROM|RCPT[ \t]+TO)[ \t]*:.*"
    r"|(?:QUIT|RSET|DATA|NOOP|STARTTLS|TURN)[ \t]*"
    r"|(?:HELO|EHLO|ETRN|VRFY|EXPN)[ \t]+[^ \t]+[ \t]*"
    r"|X?AUTH[ \t]+[A-Za-z0-9_-]+(?:[ \t]+[^ \t]+)?[ \t]*"
    r"|BDAT[ \t]+[0-9]+(?:[ \t]+LAST)?[ \t]*)$"
)

timestamp = regex_leaf(TIMESTAMP, "timestamp")
entry = regex_leaf(ENTRY, "ims entry")
connect_in = regex_leaf(CONNECT_IN, "connection accepted")
connect_out = regex_leaf(CONNECT_OUT, "connection established")
proto = regex_leaf(PROTO, "protocol data")
stamp_sep = regex_leaf(STAMP_SEP, "timestamp and separator")
quoted_open = regex_leaf(QUOTED_OPEN, "CSV-quoted line")
quoted_more = regex_leaf(QUOTED_MORE, "CSV-quoted line, continued")
untimed = regex_leaf(UNTIMED, "entry without timestamp")
control_char = regex_leaf(CONTROL_CHAR, "control character")
broken_stamp = regex_leaf(BROKEN_STAMP, "cut-off timestamp")
command_line = regex_leaf(COMMAND_LINE, "parsed SMTP command")

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


_DIGITS = "0123456789"


def split_merged(text: str) -> list[str]:
    """The entries one physical line holds (KB Q159290): cut before every timestamp + `` : ``
    whose preceding character is not a digit. A line without one is returned whole."""
    cuts = [at for at in range(1, len(text))
            if text[at] in _DIGITS and text[at - 1] not in _DIGITS and stamp_sep.matches(text[at:], parse_all=False)]
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def unquote_lines(lines: list[str]) -> list[str]:
    """The lines of the CSV-quoted rendering (KB Q239816) without their quoting, one per line.

    A line outside a quoted value that opens one (:data:`QUOTED_OPEN`) loses its opening quote; a
    line inside one (:data:`QUOTED_MORE`) continues it; the closing quote (and blanks after it) ends
    it; doubled quotes inside become single. A line that fits neither, or holds a line feed, is
    kept as it is (and ends an open value).
    """
    out: list[str] = []
    inside = False
    for text in lines:
        element = quoted_more if inside else quoted_open
        if "\n" in text or (not inside and not text.startswith('"')):
            out.append(text)
            inside = inside and "\n" not in text
            continue
        try:
            res = element.parse_string(text, parse_all=True)
        except pp.ParseException:
            out.append(text)
            inside = False
            continue
        out.append(res["inner"].replace('""', '"'))
        inside = res.get("close") is None
    return out


def is_continuation(text: str) -> bool:
    """Whether a line without a timestamp can continue the entry above it: text without control
    characters that does not start like a cut-off timestamp."""
    return not control_char.search_string(text, max_matches=1) and not broken_stamp.matches(text, parse_all=False)
