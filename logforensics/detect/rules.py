"""The detector registry: every rule's id, title, description, references and severity logic, as data.

A finding is raised for an inbound recipient when (1) its effective destination is external and the
client was neither authenticated nor trusted, or (2) its address form is not ``plain`` (encapsulation
and routing tricks are always worth a look, at a lower severity from authenticated or trusted
clients). The rule is chosen by the address form; the severity by the rule's table below.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SEVERITIES: tuple[str, ...] = ("info", "low", "medium", "high", "critical")

#: Verdict -> what it means (README).
VERDICTS: dict[str, str] = {
    "refused": "the server rejected the recipient with a 4xx or 5xx reply",
    "accepted": "the server accepted the recipient (250, or a tracking 'received inbound' record), "
                "but no outbound delivery of the effective recipient was seen in the logs (a message only "
                "queued out, rescheduled or bounced by the remote server stays here)",
    "relayed": "outbound evidence exists: the effective recipient was sent on (tracking event 1011 or "
               "1002/1003, an outbound SMTP session that sent it, or an MTA delivery 'sent' to another "
               "host)",
    "attempted": "the recipient was offered but no reply was logged (session cut off at the end of "
                 "a file) and no outbound evidence exists",
}


def severity_rank(severity: str) -> int:
    """0 for info ... 4 for critical."""
    return SEVERITIES.index(severity)


@dataclass(frozen=True)
class Rule:
    """A detector: what it looks for, why it matters, and how severe each verdict is."""

    id: str
    title: str
    description: str
    forms: tuple[str, ...]
    references: tuple[str, ...] = ()
    #: verdict -> severity for an unauthenticated, untrusted client
    severity: dict[str, str] = field(default_factory=dict)
    #: severity for ``relayed`` when the profile says relay_policy = authenticated-only
    relayed_when_auth_only: str | None = None
    #: severity levels to subtract when the client authenticated or is trusted (never below info)
    trusted_discount: int = 1
    #: only these IMCEA types make the rule apply (None: any)
    imcea_types: tuple[str, ...] | None = None


RULES: dict[str, Rule] = {rule.id: rule for rule in (
    Rule(
        id="LF-Q264330",
        title="Quoted IMCEA recipient (KB Q264330)",
        description=("A quoted local part starting with 'IMCEA', a space and an unencoded address "
                     "(\"IMCEA user@remote\"@local). An Exchange 5.5 IMS that forwards all mail to a "
                     "smart host, reroutes inbound SMTP mail and restricts relaying to authenticated "
                     "clients relays it anyway (fixed in 5.5 SP4)."),
        forms=("imcea-quoted",),
        references=("KB Q264330", "KB Q246889"),
        severity={"relayed": "high", "accepted": "high", "attempted": "medium", "refused": "low"},
        relayed_when_auth_only="critical",
    ),
    Rule(
        id="LF-MS99-027",
        title="Encapsulated SMTP address (IMCEASMTP, MS99-027)",
        description=("An IMCEASMTP- one-off address under a local domain. Before the MS99-027 fix the "
                     "IMS skipped its relay checks for it and delivered to the decoded address."),
        forms=("imcea-encapsulated",),
        imcea_types=("SMTP",),
        references=("MS99-027", "KB Q237927", "CVE-1999-0682"),
        severity={"relayed": "high", "accepted": "high", "attempted": "medium", "refused": "low"},
        relayed_when_auth_only="critical",
    ),
    Rule(
        id="LF-IMCEA-OTHER",
        title="Encapsulated non-SMTP address (IMCEA)",
        description=("An IMCEA-encapsulated X.500, X.400, fax or other non-SMTP address. Normal "
                     "Exchange traffic when it stays local; worth a look when it leads outside."),
        forms=("imcea-encapsulated",),
        references=("MS-OXCMAIL 2.1.3.1.8", "KB Q245045"),
        severity={"relayed": "high", "accepted": "info", "attempted": "info", "refused": "info"},
    ),
    Rule(
        id="LF-ROUTED-ADDRESS",
        title="Routed recipient address (relay trick)",
        description=("A recipient that routes through the server to somewhere else: percent hack, "
                     "quoted \"user@host\"@relay, user@host@relay, source route, bang path or an IP "
                     "literal. These are the forms relay testers (nmap, Metasploit, MAPS) use."),
        forms=("quoted-route", "percent-hack", "double-at", "source-route", "bang-path", "ip-literal"),
        references=("RFC 1123 5.2.16", "KB Q244346", "KB Q304897", "nmap smtp-open-relay"),
        severity={"relayed": "high", "accepted": "medium", "attempted": "low", "refused": "low"},
    ),
    Rule(
        id="LF-AUTH-ABUSE",
        title="Relay through an authenticated account, likely compromised",
        description=("A client outside trusted_networks authenticated and sent mail outside the site "
                     "after failed logins within 24 hours (two or more from that address, or any for that "
                     "account from another address), or "
                     "while mailing 10 or more outside domains within an hour: a guessed or stolen "
                     "password used to relay."),
        forms=(),
        references=("RFC 4954", "KB Q251149"),
        severity={"relayed": "high", "accepted": "medium", "attempted": "low", "refused": "low"},
        trusted_discount=0,
    ),
    Rule(
        id="LF-UNAUTH-RELAY",
        title="Unauthenticated mail to an external recipient",
        description=("A client that neither authenticated nor sits in trusted_networks offered mail "
                     "for a domain outside the site: a relay attempt."),
        forms=("plain", "unparseable"),
        references=("KB Q193922", "KB Q260562"),
        severity={"relayed": "high", "accepted": "medium", "attempted": "low", "refused": "low"},
    ),
)}


def rule_for(form: str, imcea_type: str | None) -> Rule:
    """The rule that covers an address form (and IMCEA type)."""
    for rule in RULES.values():
        if form in rule.forms and (rule.imcea_types is None or (imcea_type or "") in rule.imcea_types):
            return rule
    return RULES["LF-UNAUTH-RELAY"]


def severity_for(rule: Rule, verdict: str, *, trusted: bool, relay_policy: str) -> str:
    """The severity of a finding from its rule, verdict and the client's standing."""
    base = rule.severity.get(verdict, "low")
    if verdict == "relayed" and rule.relayed_when_auth_only and relay_policy == "authenticated-only":
        base = rule.relayed_when_auth_only
    if trusted:
        base = SEVERITIES[max(0, severity_rank(base) - rule.trusted_discount)]
    return base
