"""Postfix log messages: the part of a syslog line after ``postfix/<service>[pid]: ``.

The syslog envelope itself is :mod:`grammars.syslog`; this module reads its ``msg`` group.
Each line shape is one ``pp.Regex`` (patterns in the common subset of Python ``re`` and Rust
``regex``), tried in the order of :data:`SHAPES`; the last one, :data:`NOTE`, takes any text,
so every Postfix message has exactly one shape. Research note generic-smtp §2, verbatim samples::

    connect from misas5.babino.pl[207.154.235.157]
    disconnect from main.nope.org.es[185.5.53.87] ehlo=2 starttls=1 mail=2 rcpt=2 data=2 quit=1 commands=11
    10C0D60C50: client=host16-181-238-85.hiway.at[85.238.181.16], sasl_method=LOGIN, sasl_username=info@x.it
    1FEB7E00C4: client=localhost.localdomain[127.0.0.1], orig_client=misas5.babino.pl[207.154.235.157]
    NOQUEUE: reject: RCPT from x.example.com[1.2.3.4]: 554 5.7.1 <a@b>: Relay access denied; from=<j@c>
        to=<a@b> proto=SMTP helo=<198.51.100.17>                                   (one line)
    NOQUEUE: reject: RCPT from [216.245.194.173]:60591: 550 5.7.1 Service unavailable; client [...]
        blocked using rbl.example.com; from=<s@x>, to=<g@y>, proto=ESMTP, helo=<b.example.com>   (postscreen)
    warning: unknown[203.0.113.10]: SASL LOGIN authentication failed: (reason unavailable), sasl_username=p@x
    1FEB7E00C4: from=<zwroty@babino.pl>, size=53549, nrcpt=1 (queue active)
    1FEB7E00C4: to=<info@test2.com>, relay=mail.domain.test[94.23.191.34]:25, delay=11,
        delays=0.05/0.01/6.1/5.2, dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as 5DDDA1F30002)

Queue ids: ``NOQUEUE``, short upper-case hex (``A0320E00C3``), or long ids
(``enable_long_queue_ids``: digits and consonants only, ``44JCRG5tYPzCqt2``), which is how a
queue id is told from a word such as ``warning:``. Client input is logged with control
characters escaped (a literal ``\\r\\n``), so a message is always one physical line.
"""

from __future__ import annotations

import pyparsing as pp

from grammars.common import regex_leaf
from grammars.smtp import REPLY

#: ``NOQUEUE``, a short hex queue id, or a long (base-52, vowel-free) queue id.
QUEUE_ID = r"NOQUEUE|[0-9A-F]{5,}|[0-9B-DF-HJ-NP-TV-Zb-df-hj-np-tv-z]{10,}"

#: ``name[ip]`` with an optional ``:port``; postscreen logs ``[ip]:port`` (empty name).
CLIENT = (r"(?P<client_host>[^\[\] \t]*)\[(?P<client_ip>[^\]]*)\]"
          r"(?::(?P<client_port>[0-9]+))?")

#: An address inside ``<...>``: quoted local parts may hold ``>``.
ADDR = r"(?:\"(?:[^\"\\]|\\.)*\"|[^>\"])*"

#: smtpd ``connect from name[ip]``.
CONNECT = r"connect from " + CLIENT + r"[ \t]*$"

#: smtpd ``disconnect from name[ip]`` with the newer command counters (``ehlo=1 ... commands=5``).
DISCONNECT = r"disconnect from " + CLIENT + r"(?P<counters>(?:[ \t]+[a-z]+=[0-9]+(?:/[0-9]+)?)*)[ \t]*$"

#: smtpd ``QID: client=name[ip]`` (a queue file was created: the message is being received), with
#: the SASL login and, after a content filter re-injection, the real client (``orig_client=``).
RECEIVED = (
    r"(?P<qid>" + QUEUE_ID + r"): client=" + CLIENT
    + r"(?:, sasl_method=(?P<sasl_method>[^,]*))?"
    r"(?:, sasl_username=(?P<sasl_username>.*?))?"
    r"(?:, sasl_sender=(?P<sasl_sender>.*?))?"
    r"(?:, orig_queue_id=(?P<orig_queue_id>[^,]*))?"
    r"(?:, orig_client=(?P<orig_client_host>[^\[\] \t]*)\[(?P<orig_client_ip>[^\]]*)\](?::[0-9]+)?)?"
    r"[ \t]*$"
)

#: The ``; from=<s> to=<r> proto=P helo=<h>`` tail of an smtpd/postscreen/cleanup action line
#: (postscreen separates with ``, ``); ``from=`` and ``to=`` are each optional.
TAIL = (
    r"(?:from=<(?P<sender>" + ADDR + r")>,? )?"
    r"(?:to=<(?P<to>" + ADDR + r")>,? )?"
    r"proto=(?P<proto>[A-Za-z0-9]*)"
    r"(?:,? helo=<?(?P<helo>.*?)>?)?"
)

#: An access/milter/proxy action on an SMTP command: ``[QID|NOQUEUE: ](milter-|proxy-)reject: CMD
#: [from name[ip][:port]]: REASON[; TAIL]`` (also ``reject_warning``, ``discard``, ``proxy-accept``...).
ACTION = (
    r"(?:(?P<qid>" + QUEUE_ID + r"): )?"
    r"(?P<action>(?:milter-|proxy-)?reject(?:_warning)?|proxy-accept|discard|filter|hold|redirect"
    r"|bcc|prepend|warn|info): "
    r"(?P<command>[A-Z][A-Z-]*)(?: from " + CLIENT + r")?: "
    r"(?P<reason>.*?)(?:; " + TAIL + r")?[ \t]*$"
)

#: smtpd SASL failure (``sasl_username=`` only in newer versions).
SASL_FAILED = (
    r"warning: " + CLIENT + r": SASL (?P<sasl_method>[A-Za-z0-9_-]+) authentication failed:?[ \t]?"
    r"(?P<sasl_reason>.*?)(?:, sasl_username=(?P<sasl_username>.*?))?[ \t]*$"
)

#: qmgr: the message entered the active queue.
QUEUED = (
    r"(?P<qid>" + QUEUE_ID + r"): from=<(?P<sender>" + ADDR + r")>, size=(?P<size>[0-9]+), "
    r"nrcpt=(?P<nrcpt>[0-9]+)(?: \((?P<queue>[^)]*)\))?[ \t]*$"
)

#: qmgr: the message expired (``from=<s>, status=expired, returned to sender``).
EXPIRED = (
    r"(?P<qid>" + QUEUE_ID + r"): from=<(?P<sender>" + ADDR + r")>, status=(?P<status>[A-Za-z_-]+)"
    r"(?:, (?P<outcome>.*?))?[ \t]*$"
)

#: A delivery attempt by smtp/lmtp/local/virtual/pipe/error/discard. Old versions log addresses
#: without ``<>`` and no ``delays=``/``dsn=``; newer ones may add ``conn_use=`` and ``tls=``.
DELIVERY = (
    r"(?P<qid>" + QUEUE_ID + r"): to=(?:<(?P<to>" + ADDR + r")>|(?P<to_bare>[^,<> \t]*)), "
    r"(?:orig_to=(?:<(?P<orig_to>" + ADDR + r")>|(?P<orig_to_bare>[^,<> \t]*)), )?"
    r"relay=(?P<relay>[^,]*), (?:conn_use=(?P<conn_use>[0-9]+), )?delay=(?P<delay>[0-9.]+), "
    r"(?:delays=(?P<delays>[0-9./]+), )?(?:tls=(?P<tls>[^,]*), )?(?:dsn=(?P<dsn>[0-9.]+), )?"
    r"status=(?P<status>[A-Za-z_-]+)(?: \((?P<detail>.*)\))?[ \t]*$"
)

#: pickup: a local submission (``sendmail`` command / maildrop).
PICKUP = r"(?P<qid>" + QUEUE_ID + r"): uid=(?P<uid>[0-9]+) from=<(?P<sender>" + ADDR + r")>[ \t]*$"

#: cleanup: the message's Message-ID header.
MESSAGE_ID = r"(?P<qid>" + QUEUE_ID + r"): (?:resent-)?message-id=(?P<message_id>.*)$"

#: Anything else a Postfix daemon logs (``QID: removed``, warnings, postscreen, anvil...).
NOTE = r"(?:(?P<qid>" + QUEUE_ID + r"): )?(?P<note>.*)$"

#: The remote (or local agent's) reply inside a delivery's ``(...)`` detail.
REMOTE_REPLY = r"(?:host (?P<said_host>[^ \t]+) said: )?" + REPLY

#: ``from name[ip]`` anywhere in a note (postscreen ``[ip]:port``, ``lost connection after ...``).
CLIENT_IN_TEXT = r"from (?P<client_host>[^\[\] \t]*)\[(?P<client_ip>[0-9A-Fa-f.:]+)\]"

#: Shape name -> pattern, in the order they are tried (the first that matches whole wins).
SHAPES: dict[str, str] = {
    "connect": CONNECT,
    "disconnect": DISCONNECT,
    "received": RECEIVED,
    "action": ACTION,
    "sasl_failed": SASL_FAILED,
    "queued": QUEUED,
    "expired": EXPIRED,
    "delivery": DELIVERY,
    "pickup": PICKUP,
    "message_id": MESSAGE_ID,
    "note": NOTE,
}

#: Regex metacharacters, escaped in a layout's literal separators (``re.escape`` would also escape
#: characters such as the space, which Rust's regex refuses).
_META = set("\\.^$|?*+()[]{}")


def literal(text: str) -> str:
    """``text`` as a pattern matching exactly itself, in the Python/Rust common subset."""
    return "".join("\\" + c if c in _META else c for c in text)


#: A strict layout: a leading literal, then ``(group, class, separator)`` steps; each group is a run
#: of ``class`` ended by the literal ``separator``, the last one's separator ending the text.
Layout = tuple[str, tuple[tuple[str, str, str], ...]]

#: Strict layouts of the busiest shapes: the lines Postfix itself writes (single spaces, no
#: trailing blanks, the everyday optional parts present or absent as listed). Two properties,
#: checked by tests/test_read_speedpaths.py, make their fields cheap to take:
#:
#: * no group's class matches the first character of its separator, so a group is the text up to
#:   the first occurrence of its separator (the reader cuts at literals, no capture engine);
#: * on a message matching a layout, the shape's pattern in :data:`SHAPES` has exactly that reading
#:   (the same groups; every group not listed did not take part) and no earlier shape matches:
#:   each earlier shape needs another word where the layout has its literal, and a queue id holds
#:   no vowel-bearing lower-case word (``connect``, ``reject``, ``warning``...). The reasons per
#:   shape: ``action``'s reason holds no ``;``, so the lazy reason ends at the only ``; `` and the
#:   tail is read from there; ``delivery``'s and ``action``'s greedy/lazy last groups end at the
#:   text's last ``)`` / ``>``; ``disconnect``'s counters are the whole rest.
#:
#: Messages that do not match a layout take the full patterns.
_ADDR_PLAIN = r"[^<>\", \t;]*"  # an address without quotes, spaces, commas or semicolons
_NAME = r"[^\[\] \t]*"  # a client name (CLIENT's), also the bracketed address without blanks
LAYOUTS: dict[str, Layout] = {  # busiest first: each tried only on the rows no other took
    "delivery": ("", (
        ("qid", QUEUE_ID, ": to=<"), ("to", _ADDR_PLAIN, ">, relay="), ("relay", r"[^,]*", ", delay="),
        ("delay", r"[0-9.]+", ", delays="), ("delays", r"[0-9./]+", ", dsn="), ("dsn", r"[0-9.]+", ", status="),
        ("status", r"[A-Za-z_-]+", " ("), ("detail", r".*", ")"),
    )),
    "connect": ("connect from ", (("client_host", _NAME, "["), ("client_ip", _NAME, "]"))),
    "disconnect": ("disconnect from ", (
        ("client_host", _NAME, "["), ("client_ip", _NAME, "]"),
        ("counters", r"(?: [a-z]+=[0-9]+(?:/[0-9]+)?)*", ""),
    )),
    "received": ("", (
        ("qid", QUEUE_ID, ": client="), ("client_host", _NAME, "["), ("client_ip", _NAME, "]"),
    )),
    "queued": ("", (
        ("qid", QUEUE_ID, ": from=<"), ("sender", _ADDR_PLAIN, ">, size="), ("size", r"[0-9]+", ", nrcpt="),
        ("nrcpt", r"[0-9]+", " ("), ("queue", r"[^)]*", ")"),
    )),
    "message_id": ("", (("qid", QUEUE_ID, ": message-id="), ("message_id", r".*", ""))),
    "note": ("", (("qid", QUEUE_ID, ": "), ("note", r"removed", ""))),
    "action": ("", (
        ("qid", QUEUE_ID, ": "),
        ("action", r"(?:milter-|proxy-)?reject(?:_warning)?|proxy-accept|discard|filter|hold|redirect"
                   r"|bcc|prepend|warn|info", ": "),
        ("command", r"[A-Z][A-Z-]*", " from "), ("client_host", _NAME, "["), ("client_ip", _NAME, "]: "),
        ("reason", r"[^;]*", "; from=<"), ("sender", _ADDR_PLAIN, "> to=<"), ("to", _ADDR_PLAIN, "> proto="),
        ("proto", r"[A-Za-z0-9]*", " helo=<"), ("helo", r"[^<>]*", ">"),
    )),
}


def layout_pattern(layout: Layout) -> str:
    """The pattern of a strict layout (unanchored at the start, like the shapes)."""
    lead, steps = layout
    return literal(lead) + "".join(f"(?:{cls}){literal(sep)}" for _, cls, sep in steps) + "$"


ELEMENTS: dict[str, pp.Regex] = {name: regex_leaf(pattern, f"postfix {name}")
                                 for name, pattern in SHAPES.items()}

#: Any Postfix message: an ordered choice, each alternative anchored at its own end.
message = pp.MatchFirst(list(ELEMENTS.values())).set_name("postfix message")
message.leave_whitespace()
message.parse_with_tabs()

remote_reply = regex_leaf(REMOTE_REPLY, "remote reply")


def parse_message(text: str) -> tuple[str, dict[str, str]]:
    """The shape of one Postfix message and its named fields (groups that did not take part left out)."""
    for name, element in ELEMENTS.items():
        try:
            result = element.parse_string(text, parse_all=True)
        except pp.ParseException:
            continue
        return name, {k: v for k, v in result.as_dict().items() if v is not None}
    raise AssertionError("unreachable: NOTE takes any text")  # pragma: no cover


#: Layouts cut first at a separator they share: on a message matching the layout, the text between
#: two occurrences of it is a stretch of the layout. Each of the layout's literals holds it at most
#: once, and no group before the last literal holding it can take its first character (checked by
#: tests/test_read_speedpaths.py), so its first occurrences are the literals' and one ``splitn``
#: gives every stretch; the last stretch (``status=... (detail)``) keeps any later occurrence.
SHARED_SEPARATORS: dict[str, str] = {"delivery": ", "}
