"""Grammar for SMTP paths as they appear in mail-server logs, including relay tricks.

The grammar accepts what real logs contain, not only what the RFCs allow, and keeps every routing trick
visible in the results so that a classifier can decide where the mail would really have gone:

* ``<user@example.com>`` or ``user@example.com``; white space inside ``< ... >``, around ``@``, ``,``
  and ``:`` (RFC 822 allows it, and KB Q264330 prints ``"IMCEA user@domain2.com" @localdomain1.com``);
* quoted local parts with spaces, escaped characters (``\\"``) and ``@ % !`` inside the quotes;
* RFC 821 source routes ``@a,@b:user@d``; UUCP bang paths ``a!b!user`` and ``a!user@relay``; the percent
  hack ``user%dom@relay`` and ``user%dom``;
* several ``@`` (``user@host@relay``): Postfix before 3.5 logged ``"user@host"@relay`` without quotes;
* IP literals ``[192.0.2.1]`` and ``[IPv6:2001:db8::1]``; the null path ``<>``;
* IMCEA encapsulation ``IMCEA<type>-<encoded>@domain`` (any letter case, ``+XX`` escapes in either case,
  ``_`` for ``/``) and the malformed KB Q264330 variant: a quoted local part that starts with ``IMCEA``
  followed by white space and an unencoded address (``"IMCEA user@domain2.com"@localdomain1.com``). The
  same variant without its quotes (``IMCEA user@domain2.com@localdomain1.com``) is accepted too, because
  Postfix before 3.5 logged the internal, unquoted form.

The grammar is built from a few :class:`pyparsing.Regex` leaves (fast; see the project's performance
notes) and never runs on text longer than :data:`MAX_PATH_CHARS`. It does not resolve anything: that is
``logforensics.classify``'s job. This module is pure pyparsing and imports nothing from the project.

Results names set by :func:`parse_path`:

``null_path``
    the text ``<>`` (null reverse-path).
``route``
    the source-route hops, in order (``@a,@b:`` gives ``["a", "b"]``).
``local_part``
    the local part exactly as written (quotes and escapes kept).
``domains``
    every ``@domain`` after the local part, left to right; ``domain`` is the last (rightmost) one.
``imcea_prefix``, ``imcea_type``, ``imcea_encoded``
    an IMCEA encapsulated local part, split (the prefix keeps its letter case).
``imcea_prefix``, ``imcea_inner``
    the KB Q264330 variant: the text after ``IMCEA`` and the white space.

References:
    * RFC 821 §4.1.2 (path, route-addr ``@a,@b:user@d``) and RFC 5321 §4.1.2 (Path, Mailbox,
      address-literal), §4.1.3 (IPv6 literals), Appendix C (source routes).
    * RFC 822 §6 (route-addr, local-part of words, quoted-string).
    * [MS-OXCMAIL] §2.1.3.1.8 "IMCEA encapsulation" (encoding: ``+HH`` and ``_`` for ``/``).
    * KB Q264330 "XFOR: Internet Mail Service Relays Messages Despite Restrictions" (Exchange 5.5, SP4).
    * MS99-027 / KB Q237927 / CVE-1999-0682: encapsulated ``IMCEASMTP-`` addresses bypassed anti-relay.
    * KB Q271575 (Exchange 5.5 only recognises an upper-case ``IMCEA`` prefix).
    * Postfix ``resolve.c`` / ``rewrite.c`` (percent hack, ``swap_bangpath``, quoted local parts).
"""

from __future__ import annotations

import re

import pyparsing as pp

__all__ = [
    "IMCEA_ENCAPSULATED_PATTERN",
    "IMCEA_QUOTED_PATTERN",
    "MAX_PATH_CHARS",
    "imcea_decode",
    "imcea_encode",
    "imcea_split",
    "imcea_unescape",
    "make_smtp_path",
    "parse_path",
    "smtp_path",
]

#: Longer text is never given to the grammar (RFC 5321 caps a path at 256 octets).
MAX_PATH_CHARS = 2000

# Characters that end an unquoted local part or a domain: white space, specials, control characters.
_UNQUOTED_CHAR = r'[^\s"<>@,:;\[\]()\\\x00-\x1f\x7f]'
# A domain name character: as above, and not a routing operator either.
_DOMAIN_CHAR = r'[^\s"<>@,:;\[\]()\\%!\x00-\x1f\x7f]'
_QUOTED_STRING = r'"(?:[^"\\]|\\.)*"'
# A local part as RFC 822 words, loosely: quoted strings, unquoted characters and backslash escapes.
_LOCAL_WORD = r"(?:" + _QUOTED_STRING + "|" + _UNQUOTED_CHAR + r"|\\.)+"
# Not the start of an IMCEA form (those have their own alternatives).
_NOT_IMCEA = r'(?!"?\s*[Ii][Mm][Cc][Ee][Aa])'
_IP_LITERAL = r"\[(?:[Ii][Pp][Vv]6:[0-9A-Fa-f:.]+|[0-9]{1,3}(?:\.[0-9]{1,3}){3})\]"
# Every local-part alternative must check what follows it. pyparsing's ordered choice never backtracks
# into the next alternative once one has matched, so an alternative that matched a prefix would make
# the whole path fail (see the performance notes: "put the terminator inside each alternative").
_LOCAL_END = r"(?=\s*(?:@|>|\Z))"

#: ``IMCEA<type>-<encoded>`` ([MS-OXCMAIL] 2.1.3.1.8). Any letter case; ``.`` is tolerated unescaped.
IMCEA_ENCAPSULATED_PATTERN = (
    r"(?P<imcea_prefix>[Ii][Mm][Cc][Ee][Aa])"
    r"(?P<imcea_type>[A-Za-z0-9]+)-"
    r"(?P<imcea_encoded>(?:[A-Za-z0-9=_.\-]|\+[0-9A-Fa-f]{2})*)"
)
#: The KB Q264330 local part once dequoted: ``IMCEA``, white space (or an escaped quote, as in
#: ``"IMCEA\"user@domain2.com"``: the research note's detection pattern strips quotes first), then an
#: unencoded address.
IMCEA_QUOTED_PATTERN = r'\s*(?P<imcea_prefix>[Ii][Mm][Cc][Ee][Aa])(?:\s+|\s*"\s*)(?P<imcea_inner>[^\s"].*)'

_IMCEA_ENCAPSULATED_RE = re.compile(IMCEA_ENCAPSULATED_PATTERN, re.ASCII)
_IMCEA_PREFIX_RE = re.compile(r"[Ii][Mm][Cc][Ee][Aa](?P<type>[A-Za-z0-9]+)-", re.ASCII)
_IMCEA_ESCAPES_RE = re.compile(r"(?:\+[0-9A-Fa-f]{2})+", re.ASCII)


def make_smtp_path(*, with_common_path: bool = True) -> pp.ParserElement:
    """Build a fresh SMTP path grammar (a factory, so tests and diagrams get their own copy).

    The first alternative, ``common_path``, is one regex for the everyday shape (an optional bracket
    pair around ``local@domain`` or a bare ``local``, no route, no IMCEA prefix); it is most of a real
    log and costs one regex call. Everything else goes through the general alternatives, which accept
    the common shapes too, with the same results.

    Args:
        with_common_path: Leave out the ``common_path`` shortcut when False (for differential tests).

    Returns:
        The top element; it must match the whole text (it ends with ``StringEnd``).
    """
    at = pp.Suppress("@")

    ip_literal = pp.Regex(_IP_LITERAL).set_name("ip_literal")
    host_name = pp.Regex(_DOMAIN_CHAR + "+").set_name("host_name")
    domain = (host_name | ip_literal).set_name("domain")

    route = (
        pp.Group(at + domain + pp.ZeroOrMore(pp.Suppress(",") + at + domain))("route")
        + pp.Suppress(":")
    ).set_name("source_route")

    imcea_quoted = pp.Regex(
        r'"\s*(?P<imcea_prefix>[Ii][Mm][Cc][Ee][Aa])\s+(?P<imcea_inner>(?:[^"\\\s]|\\.)(?:[^"\\]|\\.)*)"'
        + _LOCAL_END
    ).set_name("imcea_quoted")
    imcea_unquoted = pp.Regex(
        r"(?P<imcea_prefix>[Ii][Mm][Cc][Ee][Aa])[ \t]+(?P<imcea_inner>" + _UNQUOTED_CHAR + "+)" + _LOCAL_END
    ).set_name("imcea_unquoted")
    imcea_encapsulated = pp.Regex(IMCEA_ENCAPSULATED_PATTERN + _LOCAL_END).set_name("imcea_encapsulated")
    local_word = pp.Regex(_NOT_IMCEA + _LOCAL_WORD + _LOCAL_END).set_name("local_word")
    # Starts like IMCEA but is none of the IMCEA forms: still an ordinary local part.
    imcea_like_word = pp.Regex(_LOCAL_WORD + _LOCAL_END).set_name("imcea_like_word")
    local_part = (local_word | imcea_quoted | imcea_unquoted | imcea_encapsulated | imcea_like_word)
    local_part = local_part("local_part").set_name("local_part")

    mailbox = (local_part + pp.ZeroOrMore(at + domain("domains*"))).set_name("mailbox")
    mailbox.add_parse_action(_set_last_domain)
    address = (pp.Opt(route) + mailbox).set_name("address")

    common_path = pp.Regex(
        r"(?P<open><\s*)?" + _NOT_IMCEA + r"(?P<local_part>" + _LOCAL_WORD + r")"
        r"(?:\s*@\s*(?P<domain>" + _IP_LITERAL + "|" + _DOMAIN_CHAR + r"+))?"
        r"\s*(?(open)>)(?=\s*\Z)"
    ).set_name("common_path")
    common_path.add_parse_action(_common_path_tokens)
    null_path = pp.Regex(r"<\s*>")("null_path").set_name("null_path")
    bracketed = (pp.Suppress("<") + address + pp.Suppress(">")).set_name("bracketed_path")
    alternatives = [common_path] if with_common_path else []
    top = pp.MatchFirst([*alternatives, null_path, bracketed, address]) + pp.StringEnd()
    # Keep tabs: pyparsing would otherwise expand them to spaces, changing quoted local parts.
    return top.parse_with_tabs().set_name("smtp_path")


def _common_path_tokens(tokens: pp.ParseResults) -> None:
    """Give ``common_path`` the same tokens and names as the general alternatives."""
    local_part, domain = tokens["local_part"], tokens["domain"]
    del tokens["open"]
    del tokens[0]
    tokens.append(local_part)
    if domain is None:
        del tokens["domain"]
    else:
        tokens.append(domain)
        tokens["domains"] = [domain]


def _set_last_domain(tokens: pp.ParseResults) -> None:
    """Name the rightmost domain ``domain`` (the one an MTA looks at first)."""
    domains = tokens.get("domains")
    if domains:
        tokens["domain"] = domains[-1]


smtp_path: pp.ParserElement = make_smtp_path()


def parse_path(text: str) -> pp.ParseResults:
    """Parse one SMTP path (an address as a log shows it).

    Args:
        text: The path, with or without angle brackets; leading and trailing white space is ignored.

    Returns:
        The parse results; see the module docstring for the results names.

    Raises:
        pyparsing.ParseException: The text is not a path, or it is longer than :data:`MAX_PATH_CHARS`.
    """
    if len(text) > MAX_PATH_CHARS:
        raise pp.ParseException(text[:80], 0, f"longer than {MAX_PATH_CHARS} characters")
    return smtp_path.parse_string(text)  # the grammar ends with StringEnd: parse_all is implied


def imcea_encode(address_type: str, address: str) -> str:
    """Encapsulate ``address`` as an IMCEA local part ([MS-OXCMAIL] 2.1.3.1.8).

    Letters, digits, ``-`` and ``=`` are kept, ``/`` becomes ``_`` and every other byte of the UTF-8
    encoding becomes ``+HH`` (upper-case hex). Exchange 5.5 worked in an ANSI code page; UTF-8 is used
    here so that every string round-trips through :func:`imcea_decode`.

    Args:
        address_type: The address type, e.g. ``"SMTP"``, ``"EX"``, ``"X400"``; upper-cased.
        address: The address to encapsulate.

    Returns:
        ``IMCEA<TYPE>-<encoded>`` without a domain (append ``@domain`` yourself).

    Raises:
        ValueError: ``address_type`` is not made of ASCII letters and digits.
    """
    if not re.fullmatch(r"[A-Za-z0-9]+", address_type, re.ASCII):
        raise ValueError(f"IMCEA address type must be ASCII letters and digits: {address_type!r}")
    out = []
    for char in address:
        if char == "/":
            out.append("_")
        elif char.isascii() and (char.isalnum() or char in "-="):
            out.append(char)
        else:
            out.extend(f"+{byte:02X}" for byte in char.encode("utf-8"))
    return f"IMCEA{address_type.upper()}-{''.join(out)}"


def imcea_unescape(encoded: str) -> str:
    """Decode the encoded part of an IMCEA address (the text after ``IMCEA<type>-``).

    ``_`` becomes ``/`` first, then each ``+HH`` (either hex case) becomes a byte. A run of escapes is
    read as UTF-8 when it is valid UTF-8 and as Latin-1 otherwise (old Exchange data used an ANSI code
    page). A ``+`` that is not followed by two hex digits is kept as it is.

    Args:
        encoded: The encoded text.

    Returns:
        The decoded text.
    """

    def run(match: re.Match[str]) -> str:
        raw = bytes.fromhex(match.group(0).replace("+", ""))
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")

    return _IMCEA_ESCAPES_RE.sub(run, encoded.replace("_", "/"))


def imcea_decode(encoded: str) -> str:
    """Decode an IMCEA address: a whole local part ``IMCEA<type>-<encoded>`` or just its encoded part.

    When the text starts with ``IMCEA<type>-`` (any case) that prefix is removed first, so
    ``imcea_decode(imcea_encode(t, s)) == s`` for every string ``s``. To decode an encoded part that
    itself starts with such text, call :func:`imcea_unescape`.

    Args:
        encoded: ``IMCEASMTP-user+40example+2Ecom`` or ``user+40example+2Ecom``.

    Returns:
        The decoded address, e.g. ``user@example.com``.
    """
    prefix = _IMCEA_PREFIX_RE.match(encoded)
    return imcea_unescape(encoded[prefix.end():] if prefix else encoded)


def imcea_split(local_part: str) -> tuple[str, str] | None:
    """Split an IMCEA encapsulated local part into its type (upper-cased) and encoded text.

    Args:
        local_part: A dequoted local part, e.g. ``IMCEAEX-_O=ORG_OU=SITE_CN=RECIPIENTS_CN=ALIAS``.

    Returns:
        ``(type, encoded)``, or None when the text is not valid IMCEA encapsulation.
    """
    match = _IMCEA_ENCAPSULATED_RE.fullmatch(local_part)
    if match is None:
        return None
    return match["imcea_type"].upper(), match["imcea_encoded"]
