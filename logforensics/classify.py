"""Classify recipient (and sender) addresses by relay form, and resolve where the mail would really go.

Every distinct address is parsed once (by ``grammars.address``, or by a strict plain-address regex that
gives exactly the same split), then resolved the way Postfix's ``trivial-rewrite`` does it
(``resolve.c``: strip the local domain, then ``%`` and ``!`` routing, and retry until stable), extended
with what Exchange 5.5's IMS did with IMCEA addresses:

1. Remove a source route ``@a,@b:`` (Sendmail, Postfix and Exchange IMC prune it) and dequote the local
   part (Postfix ``resolve_dequoted_address = yes``: routing characters inside quotes count).
2. Loop: strip a trailing ``@``; if the rightmost ``@domain`` is not local, stop: that is the
   destination. Otherwise strip it, then

   * a KB Q264330 local part ``IMCEA <address>`` becomes ``<address>``;
   * an IMCEA encapsulated local part is decoded ([MS-OXCMAIL] de-encapsulates only at a local domain);
     an ``SMTP`` one becomes the decoded address (MS99-027), any other type (``EX``, ``X400``,
     ``FAX``, ``MS``, ...) is a local mailbox and resolution stops;
   * if ``@`` is left, retry; else ``site!user`` becomes ``user@site`` at the *first* ``!``
     (Postfix ``swap_bangpath``, so ``a!b!user`` becomes ``b!user@a``); else the *rightmost* ``%``
     becomes ``@`` (percent hack); else stop: the address is local (or unqualified, which an MTA
     qualifies with its own domain).

The form names the most specific trick the address uses. When several combine, the first of
:data:`FORM_PRECEDENCE` wins and the explanation names the others: the IMCEA forms identify a known
Exchange vulnerability, quoting that hides routing characters is an evasion of simple filters, and the
remaining tricks are ordered from the most to the least explicit routing syntax.

Special cases: the null path ``<>`` (and empty text, as logs write ``from=<>`` or ``from=``) is form
``plain`` with no effective recipient and ``external`` False: it is the null sender of bounces, not a
destination. Text that does not parse, or is longer than ``grammars.address.MAX_PATH_CHARS``, is form
``unparseable``; the raw text is kept and nothing raises. ``ip-literal`` also covers a bare IP address
used as a domain (``user@192.0.2.1``, which RFC 5321 does not allow).

References:
    * Postfix ``src/trivial-rewrite/resolve.c`` and ``rewrite.c``; ``postconf(5)``:
      ``allow_percent_hack``, ``swap_bangpath``, ``resolve_dequoted_address``.
    * Sendmail ``cf/README`` (percent hack, ``loose_relay_check``, route-addr pruning).
    * [MS-OXCMAIL] §2.1.3.1.8; KB Q264330; MS99-027 / KB Q237927; KB Q271575.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import polars as pl
import pyparsing as pp

from grammars import address as grammar
from logforensics.site import Locality

#: Relay forms, with a one-sentence meaning each (the README lists them).
FORMS: dict[str, str] = {
    "plain": "An ordinary user@domain address (or an unqualified user, or the null path <>); it is "
             "external when its domain lies outside the site.",
    "imcea-quoted": "KB Q264330: a quoted local part starting with IMCEA and an unencoded address, which "
                    "Exchange 5.5 IMS before SP4 could relay despite its routing restrictions.",
    "imcea-encapsulated": "An IMCEA<type>-<encoded>@domain address; type SMTP at a local domain is the "
                          "MS99-027 relay, other types (EX, X400, FAX, MS...) are local mailboxes.",
    "quoted-route": "A quoted (or backslash-escaped) local part hiding routing characters (@ % !) that a "
                    "dequoting MTA acts on, as in \"user@remote\" or \"user@remote\"@local.",
    "percent-hack": "user%remote@local: the local domain is stripped and the rightmost % becomes @.",
    "double-at": "user@remote@local: several @, the local domain is stripped and the rest routed "
                 "(Postfix before 3.5 logged \"user@remote\"@local this way).",
    "source-route": "An RFC 821 source route @hop1,@hop2:user@domain; modern MTAs prune it to "
                    "user@domain, old ones followed the first hop.",
    "bang-path": "A UUCP bang path site!user (also site!user@local), rewritten to user@site.",
    "ip-literal": "The destination domain is an IP address ([192.0.2.1]); local only when it is the "
                  "server's own address.",
    "unparseable": "The text is not an SMTP path this tool can parse; it is kept as it is.",
}

#: When an address combines tricks, the first form in this order names it.
FORM_PRECEDENCE: tuple[str, ...] = (
    "imcea-quoted",
    "imcea-encapsulated",
    "quoted-route",
    "source-route",
    "double-at",
    "percent-hack",
    "bang-path",
    "ip-literal",
)

_IMCEA_KINDS = {
    "SMTP": "SMTP",
    "EX": "Exchange X.500 DN",
    "X400": "X.400 O/R",
    "FAX": "fax",
    "MS": "MS Mail",
    "MSA": "MS Mail (AppleTalk)",
    "CCMAIL": "cc:Mail",
    "NOTES": "Lotus Notes",
}

_TRICK_WORDS = {
    "imcea-quoted": "the KB Q264330 quoted IMCEA form",
    "imcea-encapsulated": "IMCEA encapsulation",
    "quoted-route": "routing characters inside quotes",
    "source-route": "a source route",
    "double-at": "several @",
    "percent-hack": "the percent hack",
    "bang-path": "a bang path",
    "ip-literal": "an IP-literal domain",
}

_LEADS = {
    "imcea-quoted": "KB Q264330 form: quoted IMCEA local part with an unencoded address",
    "quoted-route": "Quoted local part hiding routing characters",
    "source-route": "RFC 821 source route",
    "double-at": "Several @ (user@host@relay)",
    "percent-hack": "Percent hack",
    "bang-path": "UUCP bang path",
    "ip-literal": "IP-literal domain",
    "plain": "Plain address",
}

_SCHEMA: dict[str, Any] = {
    "address": pl.String,
    "form": pl.String,
    "effective_recipient": pl.String,
    "effective_domain": pl.String,
    "external": pl.Boolean,
    "imcea_type": pl.String,
    "imcea_decoded": pl.String,
    "explanation": pl.String,
}

# Strict plain address, ASCII only: no quotes, no white space, no % or !, one @, bracket pair or none.
# Everything it accepts, the grammar accepts with the same split (tests/test_classify.py proves it).
_FAST_PATH_RE = re.compile(
    r"(?P<open><?)(?P<local>[A-Za-z0-9#$&'*+/=?^_`{|}~.\-]+)"
    r"@(?P<domain>[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.?)(?P<close>>?)",
    re.ASCII,
)
_LOCAL_TOKEN_RE = re.compile(r'"(?P<quoted>(?:[^"\\]|\\.)*)"|\\(?P<escaped>.)|(?P<plain>[^"\\]+)', re.S)
_BACKSLASH_RE = re.compile(r"\\(.)", re.S)
_IMCEA_QUOTED_RE = re.compile(grammar.IMCEA_QUOTED_PATTERN, re.S)
_IMCEA_LIKE_RE = re.compile(r"\s*imcea", re.I)
_NO_QUOTES_NEEDED_RE = re.compile(r'[^\s"(),:;<>@\[\]\\\x00-\x1f\x7f]+')
_PATH_WHITESPACE = " \t\r\n"


@dataclass(frozen=True)
class AddressClass:
    """How one address is classified and where the mail would really go.

    Attributes:
        address: The input, unchanged.
        form: One of :data:`FORMS`.
        effective_recipient: The resolved destination address (``user@domain``, or a bare ``user`` when
            no domain is left); None only for the null path and unparseable text.
        effective_domain: The lower-cased domain of ``effective_recipient``.
        external: True when the destination lies outside the site.
        imcea_type: The IMCEA address type (upper-cased), e.g. ``"SMTP"`` or ``"EX"``.
        imcea_decoded: The decoded IMCEA address (for KB Q264330: the unencoded inner address).
        explanation: One plain-English sentence.
    """

    address: str
    form: str
    effective_recipient: str | None
    effective_domain: str | None
    external: bool
    imcea_type: str | None
    imcea_decoded: str | None
    explanation: str

    def to_json(self) -> dict[str, Any]:
        """Plain data; ``effective_recipient`` is None when it is just the address without brackets."""
        out = asdict(self)
        if self.effective_recipient == _without_brackets(self.address):
            out["effective_recipient"] = None
        return out


class _Split(NamedTuple):
    """A parsed path, reduced to what resolution needs. Both parsing paths produce it."""

    null: bool
    route: tuple[str, ...] = ()
    local_part: str = ""
    domains: tuple[str, ...] = ()


_NULL_SPLIT = _Split(null=True)


def classify_address(address: str, locality: Locality, *, fast_path: bool = True) -> AddressClass:
    """Classify one address and resolve its effective destination. Never raises.

    Args:
        address: The address as the log shows it, with or without angle brackets.
        locality: What counts as this site.
        fast_path: Let a strict plain-address regex skip the grammar (same result, faster).

    Returns:
        The classification.
    """
    if not isinstance(address, str):
        address = "" if address is None else str(address)
    text = address.strip(_PATH_WHITESPACE)
    if not text:
        return AddressClass(address, "plain", None, None, False, None, None,
                            "Empty text, treated as the null path <>: no recipient (the null sender of "
                            "bounces and notifications).")
    if len(text) > grammar.MAX_PATH_CHARS:
        return _unparseable(address, f"longer than {grammar.MAX_PATH_CHARS} characters, not parsed")
    split = _split_fast(text) if fast_path else None
    if split is None:
        try:
            split = _split_with_grammar(text)
        except pp.ParseBaseException as exc:
            return _unparseable(address, f"not an SMTP path ({exc.msg} at character {exc.loc})")
    return _resolve(address, split, locality)


def classify_addresses(addresses: pl.Series | Iterable[str | None], locality: Locality) -> pl.DataFrame:
    """Classify each distinct address once.

    Args:
        addresses: A string Series or any iterable of strings; nulls are skipped.
        locality: What counts as this site.

    Returns:
        One row per distinct non-null address, columns ``address, form, effective_recipient,
        effective_domain, external, imcea_type, imcea_decoded, explanation``; join it back on
        ``address``.
    """
    if isinstance(addresses, pl.Series):
        distinct = addresses.cast(pl.String).drop_nulls().unique(maintain_order=True)
    else:
        distinct = pl.Series(list(dict.fromkeys(a for a in addresses if a is not None)), dtype=pl.String)
    frame = pl.DataFrame({"address": distinct})
    plain = frame.with_columns(
        pl.col("address").str.strip_chars(_PATH_WHITESPACE).str.extract_groups(_FAST_PATH_COLUMN).alias("m"),
    ).unnest("m").filter(
        pl.col("local").is_not_null() & (pl.col("open") == "<").eq(pl.col("close") == ">")
        & ~pl.col("local").str.to_lowercase().str.starts_with("imcea"))
    rows = _classify_by_template(frame.join(plain.select("address"), on="address", how="anti")["address"].to_list(),
                                 locality)
    slow = pl.DataFrame(rows, schema=_SCHEMA, orient="row")
    fast = _classify_plain_by_domain(plain, locality)
    return pl.concat([fast, slow]).join(frame.with_row_index("_order"), on="address").sort("_order").drop("_order")


#: The fast-path pattern for whole columns (the same as :data:`_FAST_PATH_RE`, anchored).
_FAST_PATH_COLUMN = "^" + _FAST_PATH_RE.pattern + "$"
#: A stand-in local part: resolving ``SENTINEL@domain`` once per domain gives every plain address
#: of that domain, with the sentinel replaced by the real local part (tested against the per-address path).
_SENTINEL = "lfLOCALPARTlf"


#: A user-name token: a word right before ``@`` or ``%`` that starts the local part (or follows a space,
#: quote, ``<``, ``!``, ``:`` or ``,``). Such a token is never a domain, an IMCEA marker or encoded text,
#: so addresses that differ only in these tokens classify alike (tested against the per-address path).
_USER_TOKEN_RE = re.compile(r'(?:(?<=^)|(?<=[ "<!:,]))(?!(?i:imcea))([A-Za-z0-9_]{1,64})(?=[@%])')
_TOKEN_MARK = "lfu{}lf"  # noqa: S105 - a placeholder pattern, not a password
_TEMPLATE_MAX_CHARS = grammar.MAX_PATH_CHARS // 4


def _template(value: str) -> tuple[str, list[str]]:
    """The address with its user-name tokens replaced by numbered marks, and the tokens."""
    parts = _USER_TOKEN_RE.split(value)  # text, token, text, token, ..., text
    tokens = parts[1::2]
    for i in range(len(tokens)):
        parts[2 * i + 1] = _TOKEN_MARK.format(i)
    return "".join(parts), tokens


def _put_back(text: str | None, tokens: list[str]) -> str | None:
    if text is None:
        return None
    for i in range(len(tokens) - 1, -1, -1):
        text = text.replace(_TOKEN_MARK.format(i), tokens[i])
    return text


def _classify_by_template(values: list[str], locality: Locality) -> list[tuple[Any, ...]]:
    """Classify addresses the grammar must parse, once per *shape*: user-name tokens are replaced by
    marks, each distinct template is classified once, and the tokens are put back. Unparseable
    templates (whose messages cite character positions) are classified address by address.

    Returns:
        One row per value, the :class:`AddressClass` fields in order (the columns of ``_SCHEMA``).
    """
    done: dict[str, AddressClass] = {}
    out = []
    for value in values:
        template, tokens = _template(value) if len(value) <= _TEMPLATE_MAX_CHARS else (value, [])
        cls = None
        if tokens:
            cls = done.get(template)
            if cls is None:
                cls = done[template] = classify_address(template, locality)
        if cls is None or cls.form == "unparseable" or "lfu" in (cls.effective_domain or ""):
            # A token that ended up in a domain (a bang path can move it there) changes locality.
            own = classify_address(value, locality)
            out.append((own.address, own.form, own.effective_recipient, own.effective_domain, own.external,
                        own.imcea_type, own.imcea_decoded, own.explanation))
            continue
        out.append((value, cls.form, _put_back(cls.effective_recipient, tokens), cls.effective_domain,
                    cls.external, cls.imcea_type, _put_back(cls.imcea_decoded, tokens),
                    _put_back(cls.explanation, tokens)))
    return out


def _classify_plain_by_domain(plain: pl.DataFrame, locality: Locality) -> pl.DataFrame:
    """Classify obviously plain ``local@domain`` addresses: resolve each distinct domain once."""
    if plain.is_empty():
        return pl.DataFrame(schema=_SCHEMA)
    templates = []
    for domain in plain["domain"].unique().to_list():
        t = _resolve(f"{_SENTINEL}@{domain}", _Split(False, (), _SENTINEL, (domain,)), locality)
        templates.append((domain, t.form, t.effective_recipient, t.effective_domain, t.external, t.imcea_type,
                          t.imcea_decoded, t.explanation))
    table = pl.DataFrame(templates, schema={"domain": pl.String, **{k: v for k, v in _SCHEMA.items()
                                                                    if k != "address"}}, orient="row")
    joined = plain.select("address", "local", "domain").join(table, on="domain", how="left")
    return joined.select(
        "address", "form",
        pl.col("effective_recipient").str.replace_all(_SENTINEL, pl.col("local"), literal=True),
        "effective_domain", "external", "imcea_type", "imcea_decoded",
        pl.col("explanation").str.replace_all(_SENTINEL, pl.col("local"), literal=True),
    ).cast(_SCHEMA)


# Parsing ------------------------------------------------------------------------------------------


def _split_fast(text: str) -> _Split | None:
    """Split an obviously plain ``user@domain`` without the grammar; None when not obviously plain."""
    match = _FAST_PATH_RE.fullmatch(text)
    if match is None or bool(match["open"]) != bool(match["close"]):
        return None
    return _Split(False, (), match["local"], (match["domain"],))


def _split_with_grammar(text: str) -> _Split:
    """Split with the pyparsing grammar; raises pyparsing.ParseBaseException when it does not parse."""
    result = grammar.parse_path(text)
    if "null_path" in result:
        return _NULL_SPLIT
    route = tuple(result["route"]) if "route" in result else ()
    domains = tuple(result["domains"]) if "domains" in result else ()
    return _Split(False, route, result["local_part"], domains)


# Resolution ---------------------------------------------------------------------------------------


def _is_local(locality: Locality, domain: str) -> bool:
    try:
        return _is_local_cached(locality, domain)
    except TypeError:  # a Locality built with lists instead of tuples is not hashable
        return locality.is_local_domain(domain)


@functools.lru_cache(maxsize=1 << 16)
def _is_local_cached(locality: Locality, domain: str) -> bool:
    return locality.is_local_domain(domain)


@dataclass
class _Trace:
    """What resolution found out, for the form and the explanation."""

    tricks: dict[str, None] = field(default_factory=dict)  # an ordered set
    notes: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    imcea_type: str | None = None
    imcea_decoded: str | None = None
    imcea_applied: bool = False
    mailbox_type: str | None = None  # set when resolution ends at a non-SMTP IMCEA mailbox


def _resolve(address: str, split: _Split, locality: Locality) -> AddressClass:
    if split.null:
        return AddressClass(address, "plain", None, None, False, None, None,
                            "Null path <>: no recipient (the null sender of bounces and notifications).")
    local, quoted_text, unquoted_text = _dequote(split.local_part)
    trace = _Trace()
    _note_syntax(trace, split, local, quoted_text, unquoted_text, locality)
    addr, local_domain, remote_domain = _route(trace, local + "".join("@" + d for d in split.domains),
                                               locality)
    final_domain = remote_domain if remote_domain is not None else local_domain
    effective = _externalize(addr, final_domain)
    effective_domain = _normalize_domain(final_domain) if final_domain is not None else None
    if effective_domain is not None and _is_ip_domain(effective_domain):
        trace.tricks["ip-literal"] = None
    external = remote_domain is not None
    form = next((f for f in FORM_PRECEDENCE if f in trace.tricks), "plain")
    explanation = _explain(trace, form, effective, final_domain, external, locality)
    return AddressClass(address, form, effective, effective_domain, external, trace.imcea_type,
                        trace.imcea_decoded, explanation)


def _note_syntax(trace: _Trace, split: _Split, local: str, quoted_text: str, unquoted_text: str,
                 locality: Locality) -> None:
    """Record the tricks the address shows as written, whether or not they take effect here."""
    if quoted := _IMCEA_QUOTED_RE.fullmatch(local):
        trace.tricks["imcea-quoted"] = None
        # Unquoted (as Postfix before 3.5 logged it), the inner address runs up to the last @.
        inner = _IMCEA_QUOTED_RE.fullmatch(local + "".join("@" + d for d in split.domains[:-1]))
        trace.imcea_decoded = (inner or quoted)["imcea_inner"].strip()
        if '"' not in split.local_part:
            trace.notes.append("the quotes are missing, as Postfix before 3.5 logged it")
    elif encapsulated := grammar.imcea_split(local):
        trace.tricks["imcea-encapsulated"] = None
        trace.imcea_type = encapsulated[0]
        trace.imcea_decoded = grammar.imcea_unescape(encapsulated[1])
    elif _IMCEA_LIKE_RE.match(local):
        trace.notes.append("the local part starts with IMCEA but is not valid IMCEA encoding")
    if (quoted or trace.imcea_type) and not local.lstrip().startswith("IMCEA"):
        trace.notes.append("the IMCEA prefix is not upper case, which Exchange 5.5 did not recognise "
                           "(KB Q271575)")
    if any(op in quoted_text for op in "@%!"):
        trace.tricks["quoted-route"] = None
    if split.route:
        trace.tricks["source-route"] = None
        first_hop = split.route[0]
        if not _is_local(locality, first_hop):
            trace.notes.append(f"the first route hop {first_hop} is outside the site, where an MTA that "
                               "follows routes would send it")
        trace.steps.append(f"dropped the source route @{',@'.join(split.route)}:")
    if len(split.domains) > 1:
        trace.tricks["double-at"] = None
    if "%" in unquoted_text:
        trace.tricks["percent-hack"] = None
    if "!" in unquoted_text:
        trace.tricks["bang-path"] = None


def _route(trace: _Trace, addr: str, locality: Locality) -> tuple[str, str | None, str | None]:
    """The resolver loop on an internal (unquoted) address.

    Returns:
        ``(local part left, last local domain stripped or None, remote destination domain or None)``.
    """
    local_domain: str | None = None
    for _ in range(len(addr) + 10):  # every step shortens the text or removes an operator
        addr = addr.strip()
        if addr.startswith("@") and ":" in addr:  # a source route uncovered by decoding
            hops, _, addr = addr.partition(":")
            trace.tricks["source-route"] = None
            trace.steps.append(f"dropped the source route {hops}:")
            continue
        addr = addr.rstrip("@")
        at = addr.rfind("@")
        if at >= 0:
            domain = addr[at + 1:].strip()
            if not _is_local(locality, domain):
                return addr[:at], local_domain, domain
            addr = addr[:at]
            local_domain = domain
            trace.steps.append(f"stripped the local domain {domain}")
        if quoted_inner := _IMCEA_QUOTED_RE.fullmatch(addr):
            trace.tricks["imcea-quoted"] = None
            trace.imcea_applied = True
            addr = quoted_inner["imcea_inner"].strip()
            if trace.imcea_decoded is None:
                trace.imcea_decoded = addr
            trace.steps.append(f"took the address after IMCEA, {addr}")
            continue
        if encapsulated := grammar.imcea_split(addr):
            trace.tricks["imcea-encapsulated"] = None
            trace.imcea_applied = True
            decoded = grammar.imcea_unescape(encapsulated[1])
            if trace.imcea_type is None:
                trace.imcea_type, trace.imcea_decoded = encapsulated[0], decoded
            if encapsulated[0] == "SMTP" and decoded.strip():
                trace.steps.append(f"de-encapsulated {addr} to {decoded}")
                addr = decoded
                continue
            trace.mailbox_type = encapsulated[0]
            break
        if "@" in addr:
            continue
        if "!" in addr:  # Postfix swap_bangpath: the first ! splits site from user
            site, _, user = addr.partition("!")
            trace.steps.append(f"swapped the bang path {addr} to {user}@{site}")
            addr = f"{user}@{site}"
            trace.tricks["bang-path"] = None
            continue
        if "%" in addr:  # percent hack: the rightmost % becomes @
            cut = addr.rfind("%")
            routed = addr[:cut] + "@" + addr[cut + 1:]
            trace.steps.append(f"turned the percent hack {addr} into {routed}")
            addr = routed
            trace.tricks["percent-hack"] = None
            continue
        break
    return addr, local_domain, None


def _dequote(local_part: str) -> tuple[str, str, str]:
    """The internal (unquoted) local part, plus the text that was quoted (or escaped) and the rest."""
    internal: list[str] = []
    inside: list[str] = []
    outside: list[str] = []
    for match in _LOCAL_TOKEN_RE.finditer(local_part):
        if match["plain"] is not None:
            text = match["plain"]
            outside.append(text)
        elif match["escaped"] is not None:  # a backslash-escaped character (RFC 821 quoted-pair)
            text = match["escaped"]
            inside.append(text)
        else:
            text = _BACKSLASH_RE.sub(r"\1", match["quoted"])
            inside.append(text)
        internal.append(text)
    return "".join(internal), "".join(inside), "".join(outside)


def _externalize(local: str, domain: str | None) -> str:
    """``local@domain`` with the local part quoted when it needs quotes."""
    if not _NO_QUOTES_NEEDED_RE.fullmatch(local):
        local = '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{local}@{domain}" if domain is not None else local


def _normalize_domain(domain: str) -> str:
    return domain.strip().rstrip(".").lower()


@functools.lru_cache(maxsize=1 << 16)
def _is_ip_domain(domain: str) -> bool:
    """True for an IP literal ``[..]`` or a bare IP address used as a domain."""
    if domain.startswith("[") and domain.endswith("]"):
        return True
    try:
        ipaddress.ip_address(domain)
    except ValueError:
        return False
    return True


def _explain(trace: _Trace, form: str, effective: str, final_domain: str | None, external: bool,
             locality: Locality) -> str:
    """One sentence: what the form is, how it resolves, and where the mail would go."""
    if form == "imcea-encapsulated" and trace.imcea_type == "SMTP":
        lead = "MS99-027 (KB Q237927) form: IMCEASMTP encapsulated SMTP address"
    elif form == "imcea-encapsulated":
        kind = _IMCEA_KINDS.get(trace.imcea_type or "", "non-SMTP")
        lead = f"IMCEA{trace.imcea_type} encapsulated {kind} address"
    else:
        lead = _LEADS[form]
    parts = [lead]
    others = [_TRICK_WORDS[t] for t in trace.tricks if t != form
              and not (form == "imcea-quoted" and t in ("quoted-route", "double-at"))]
    if others:
        parts.append("combined with " + " and ".join(others))
    parts.extend(trace.notes)
    if form not in ("plain", "ip-literal"):
        parts.extend(trace.steps)
    if trace.mailbox_type is not None:
        kind = _IMCEA_KINDS.get(trace.mailbox_type, f"type {trace.mailbox_type}")
        parts.append(f"decodes to the {kind} address {trace.imcea_decoded!r} of a local mailbox, not a relay")
    elif external:
        if form.startswith("imcea") and not trace.imcea_applied:
            parts.append(f"the outer domain {final_domain} is not local, so no server here would "
                         "de-encapsulate it")
        parts.append(f"mail would go to {effective}, outside the site")
    elif final_domain is None:
        parts.append(f"unqualified {effective}: the server adds its own domain, so it stays local")
    else:
        own_ip = _is_ip_domain(_normalize_domain(final_domain)) and _is_local(locality, final_domain)
        where = "the server's own address" if own_ip else "a local domain"
        parts.append(f"stays local: {effective} is at {where}")
    return "; ".join(parts) + "."


def _unparseable(address: str, why: str) -> AddressClass:
    return AddressClass(address, "unparseable", None, None, False, None, None,
                        f"Unparseable: {why}; kept as written.")


def _without_brackets(address: str) -> str:
    text = address.strip(_PATH_WHITESPACE)
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip(_PATH_WHITESPACE)
    return text
