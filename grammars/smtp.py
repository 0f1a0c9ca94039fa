"""SMTP command and reply grammar shared by the line grammars of every log format.

References:
    * RFC 5321 §4.1 (commands), §4.2 (replies); RFC 821 (the era's base); RFC 1869 (ESMTP parameters).
"""

from __future__ import annotations

from grammars.common import regex_leaf

#: A reply: three digits, then ``-`` (continued) or a space or nothing, then text.
REPLY = r"(?P<code>[2-5][0-9][0-9])(?:[ -](?P<reply_text>.*))?$"

#: A command verb (letters only) and its argument text.
COMMAND = r"(?P<verb>[A-Za-z]+)(?:[ \t]+(?P<args>.*))?$"

#: An SMTP path as logged: bracketed (quoted local parts may hold ``>`` and spaces), or bare.
PATH = (
    r"(?:<(?P<path>(?:\"(?:[^\"\\]|\\.)*\"|[^>\"])*)>"
    r"|(?P<bare_path>\"(?:[^\"\\]|\\.)*\"[ \t]*@[^ \t]*|[^ \t]+))"
)

#: ``MAIL FROM:`` / ``RCPT TO:`` in any case, optional space after the colon, then the path and
#: ESMTP parameters (``SIZE=1460``, ``NOTIFY=FAILURE,DELAY``).
ENVELOPE = (
    r"(?i:(?P<env_verb>MAIL)[ \t]+FROM|(?P<env_verb2>RCPT)[ \t]+TO)[ \t]*:[ \t]*"
    + PATH
    + r"(?P<params>.*)$"
)

reply = regex_leaf(REPLY, "smtp reply")
envelope_command = regex_leaf(ENVELOPE, "MAIL FROM / RCPT TO")
other_command = regex_leaf(COMMAND, "smtp command")

#: Any SMTP payload: a reply, an envelope command, or another command. Ordered choice, each
#: alternative anchored at its own end, so no alternative can half-match and fall through.
smtp_payload = (reply | envelope_command | other_command).set_name("smtp payload")
smtp_payload.leave_whitespace()
smtp_payload.parse_with_tabs()  # as its leaves: a TAB is data, never expanded to spaces
