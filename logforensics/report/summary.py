"""The executive summary: the answer for management, as data and plain words, computed from the findings.

Every number here is counted from the findings frame; the wording of rules, verdicts, forms and relay
policies comes from their registries (``detect.rules``, ``site.RELAY_POLICIES``).

A *message* is estimated: relayed recipients that share a supporting log line other than their own
(for example the tracking record of one outbound message) count as one message.
"""

from __future__ import annotations

import zoneinfo
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from logforensics.detect.rules import RULES, SEVERITIES, VERDICTS, severity_rank
from logforensics.site import RELAY_POLICIES

#: The rules whose forms are known Exchange IMS vulnerabilities, and the fix for each.
FIXES: dict[str, str] = {
    "LF-Q264330": "Apply Exchange Server 5.5 Service Pack 4 (or the post-SP3 IMS hotfix, Msexcimc.exe "
                  "5.5.2652.78 or later) to close the KB Q264330 relay.",
    "LF-MS99-027": "Apply the MS99-027 fix (Exchange 5.5 SP3, or the post-SP2 IMS hotfix of KB Q237927) "
                   "to close the IMCEASMTP relay.",
}


@dataclass(frozen=True)
class Trick:
    """One rule that fired, with how often and with what outcome."""

    rule: str
    title: str
    description: str
    references: tuple[str, ...]
    forms: dict[str, int]
    verdicts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.verdicts.values())


@dataclass
class Summary:
    findings: int = 0
    incidents: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)
    severities: dict[str, int] = field(default_factory=dict)
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    relayed: int = 0
    #: relayed for clients that did not authenticate (the abuse)
    relayed_unauth: int = 0
    messages: int = 0
    victims: int = 0
    victim_domains: list[tuple[str, int]] = field(default_factory=list)
    first_relay: datetime | None = None
    last_relay: datetime | None = None
    accepted_external: int = 0
    refused: int = 0
    attempted: int = 0
    relaying_clients: list[tuple[str, int]] = field(default_factory=list)
    relaying_servers: list[tuple[str, int]] = field(default_factory=list)
    tricks: list[Trick] = field(default_factory=list)
    probes: dict[str, int] = field(default_factory=dict)
    relay_policy: str = "unknown"
    policy_inferred: str | None = None
    restriction_held: bool | None = None
    headline: str = ""
    abuse_text: str = ""
    trick_texts: list[str] = field(default_factory=list)
    restriction_text: str = ""
    recommendations: list[str] = field(default_factory=list)

    @property
    def abused(self) -> bool:
        return self.relayed_unauth > 0


def client_label(host: str | None, ip: str | None) -> str:
    """How a client is named in the report: ``host [ip]``, or whichever is known."""
    if host and ip and host != ip:
        return f"{host} [{ip}]"
    return host or ip or "(unknown client)"


def victim_domain(recipient: str | None) -> str | None:
    if not recipient or "@" not in recipient:
        return None
    return recipient.rsplit("@", 1)[-1].strip().strip(">").lower() or None


def when(ts: datetime | None, zone: str | None = None) -> str:
    """A UTC time in words: ``15 June 2000, 04:47 UTC``; with a site time zone also its local time:
    ``15 June 2000, 04:47 UTC (14 June 2000, 23:47 America/Chicago)``."""
    if ts is None:
        return "an unknown time"
    text = f"{ts.day} {ts:%B %Y}, {ts:%H:%M} UTC"
    if zone and zone != "UTC":
        try:
            local = ts.astimezone(zoneinfo.ZoneInfo(zone))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            return text
        text += f" ({local.day} {local:%B %Y}, {local:%H:%M} {zone})"
    return text


def site_zone(site: dict) -> str | None:
    """The one local time zone of the site (its own, or the one every server table shares), if any."""
    zones = {site.get("timezone")} | {(o or {}).get("timezone") for o in (site.get("servers") or {}).values()
                                      if (o or {}).get("timezone")}
    zones.discard(None)
    return zones.pop() if len(zones) == 1 else None


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (plural or word + 's')}"


def estimate_messages(relayed: pl.DataFrame) -> int:
    """Relayed recipients joined into messages by supporting lines they share (union-find): an MTA
    message's arrival line (``from=``, ``<=``, ``client=``) stands first in the evidence of each of
    its recipients; a protocol log's RCPT line names one recipient alone, and their messages join
    through the DATA/outbound lines they share."""
    parent: dict[int, int] = {}

    def find(i: int) -> int:
        while parent.setdefault(i, i) != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[tuple[str, int], int] = {}
    for i, evidence in enumerate(relayed["evidence"].to_list()):
        find(i)
        for ev in evidence or []:
            key = (ev.get("path") or "", ev.get("line") or 0)
            if key in owner:
                parent[find(i)] = find(owner[key])
            else:
                owner[key] = i
    return len({find(i) for i in range(relayed.height)})


def summarise(findings: pl.DataFrame, incidents: pl.DataFrame, site: dict) -> Summary:
    """The executive summary of these findings under this site profile."""
    s = Summary(findings=findings.height, incidents=incidents.height)
    s.relay_policy = str(site.get("relay_policy") or "unknown")
    s.policy_inferred = (site.get("inferred") or {}).get("relay_policy")
    if findings.is_empty():
        _words(s, site)
        return s
    s.verdicts = dict(Counter(findings["verdict"].to_list()))
    sev = Counter(findings["severity"].to_list())
    s.severities = {name: sev[name] for name in reversed(SEVERITIES) if sev.get(name)}
    s.first_seen, s.last_seen = findings["time"].min(), findings["time"].max()  # type: ignore[assignment]
    s.refused = s.verdicts.get("refused", 0)
    s.attempted = s.verdicts.get("attempted", 0)
    unauth = ~pl.col("authenticated").fill_null(False)
    external = pl.col("external").fill_null(False)
    relayed = findings.filter(pl.col("verdict") == "relayed")
    s.relayed = relayed.height
    abuse = relayed.filter(unauth & external)
    s.relayed_unauth = abuse.height
    s.accepted_external = findings.filter((pl.col("verdict") == "accepted") & unauth & external).height
    basis = abuse if abuse.height else relayed
    if basis.height:
        s.first_relay, s.last_relay = basis["time"].min(), basis["time"].max()  # type: ignore[assignment]
        s.messages = estimate_messages(basis)
        victims = [r.lower() for r, ext in zip(basis["effective_recipient"].to_list(),
                                               basis["external"].to_list(), strict=True) if r and ext]
        s.victims = len(set(victims))
        s.victim_domains = Counter(d for d in map(victim_domain, set(victims)) if d).most_common()
        clients = Counter(client_label(h, i) for h, i in zip(basis["client_host"].to_list(),
                                                             basis["client_ip"].to_list(), strict=True))
        s.relaying_clients = clients.most_common()
        s.relaying_servers = Counter(str(v) for v in basis["server"].to_list() if v).most_common() \
            if "server" in basis.columns else []
    for rule_id, part in sorted(findings.partition_by("rule", as_dict=True).items(),
                                key=lambda kv: _rule_weight(kv[1]), reverse=True):
        rid = str(rule_id[0])
        rule = RULES.get(rid)
        s.tricks.append(Trick(
            rule=rid, title=rule.title if rule else rid, description=rule.description if rule else "",
            references=rule.references if rule else (),
            forms=dict(Counter(part["form"].to_list()).most_common()),
            verdicts=dict(Counter(part["verdict"].to_list()).most_common()),
        ))
    s.probes = dict(Counter(p for p in findings["probe"].to_list() if p).most_common())
    _words(s, site)
    return s


def _rule_weight(part: pl.DataFrame) -> tuple:
    verdicts = part["verdict"].to_list()
    return (verdicts.count("relayed"), max(severity_rank(x) for x in part["severity"].to_list()), len(verdicts))


def _policy_words(s: Summary) -> str:
    text = RELAY_POLICIES.get(s.relay_policy, s.relay_policy)
    inferred = " (inferred from the logs)" if s.policy_inferred else ""
    return f"'{s.relay_policy}': {text}{inferred}"


def _words(s: Summary, site: dict) -> None:
    """The plain-words answers and the recommendations."""
    if not s.findings:
        s.headline = ("No: the logs show no relay abuse. No recipient was relayed, accepted or refused for "
                      "an outside destination without authentication, and no address trick was seen.")
        s.abuse_text = s.headline
        s.restriction_text = (f"Relay policy {_policy_words(s)}. Nothing in the logs tested it."
                              if s.relay_policy != "unknown" else "Nothing in the logs tested the relay restriction.")
        s.recommendations = ["Keep the original log files and their SHA-256 values (listed under Inputs) "
                             "with this report."]
        return
    zone = site_zone(site)
    period = f"between {when(s.first_relay, zone)} and {when(s.last_relay, zone)}"
    victims = (f"{_plural(s.victims, 'victim address', 'victim addresses')} at "
               f"{_plural(len(s.victim_domains), 'domain')}")
    if s.abused:
        servers = [name for name, _ in s.relaying_servers]
        if len(servers) == 1:
            who, it = f"the server {servers[0]} was", "It"
        elif servers:
            who = "the servers " + ", ".join(f"{n} ({c:,})" for n, c in s.relaying_servers) + " were"
            it = "Together they"
        else:
            who, it = "the server was", "It"
        s.headline = (f"Yes: {who} abused as a mail relay {period}. {it} passed on "
                      f"{_plural(s.relayed_unauth, 'recipient')} in about {_plural(s.messages, 'message')} "
                      f"for clients that had not authenticated, reaching {victims}.")
    elif s.relayed:
        s.headline = (f"Mail was relayed {period} ({_plural(s.relayed, 'recipient')} in about "
                      f"{_plural(s.messages, 'message')}, to {victims}), but only for clients that had "
                      "authenticated, using address tricks that deserve a look.")
    elif s.accepted_external:
        s.headline = (f"Not proven: the server accepted {_plural(s.accepted_external, 'recipient')} for outside "
                      "destinations from clients that had not authenticated, but the logs show no outbound "
                      "delivery of them. Check whether logs are missing for that period.")
    else:
        s.headline = (f"No relay abuse was found: the server refused or never completed all "
                      f"{_plural(s.findings, 'suspicious recipient')} "
                      f"({s.refused:,} refused, {s.attempted:,} cut off before a reply).")
    parts = [s.headline]
    if s.relaying_clients:
        top = ", ".join(f"{c} ({n:,})" for c, n in s.relaying_clients[:5])
        parts.append(f"Relaying clients: {top}.")
    if s.victim_domains:
        top = ", ".join(f"{d} ({n:,})" for d, n in s.victim_domains[:8])
        more = f" and {len(s.victim_domains) - 8:,} more" if len(s.victim_domains) > 8 else ""
        parts.append(f"Victim domains: {top}{more}.")
    if s.accepted_external and s.relayed:
        parts.append(f"A further {_plural(s.accepted_external, 'recipient')} for outside destinations "
                     "was accepted without authentication, with no outbound delivery seen.")
    if s.probes:
        parts.append("Relay testers seen: " + ", ".join(f"{p} ({n:,} findings)" for p, n in s.probes.items()) + ".")
    s.abuse_text = " ".join(parts)

    s.trick_texts = []
    for t in s.tricks:
        outcome = ", ".join(f"{n:,} {v}" for v, n in t.verdicts.items())
        forms = ", ".join(f"{f} ({n:,})" for f, n in t.forms.items())
        refs = f" References: {', '.join(t.references)}." if t.references else ""
        desc = t.description.rstrip(".")
        s.trick_texts.append(f"{t.title} ({t.rule}), {_plural(t.total, 'finding')}: {outcome}. "
                             f"{desc}. Address forms seen: {forms}.{refs}")

    if s.relay_policy == "open":
        s.restriction_held = False
        s.restriction_text = (f"There is no relay restriction to hold: relay policy {_policy_words(s)}. "
                              f"{s.refused:,} recipients were refused anyway.")
    elif s.abused:
        s.restriction_held = False
        s.restriction_text = (f"No. Under relay policy {_policy_words(s)}, the server still relayed "
                              f"{_plural(s.relayed_unauth, 'recipient')} for unauthenticated clients, while it "
                              f"refused {s.refused:,}. The relay restriction was bypassed, not switched off.")
    elif s.accepted_external:
        s.restriction_held = None
        s.restriction_text = (f"Partly. Under relay policy {_policy_words(s)}, the server refused "
                              f"{s.refused:,} recipients but accepted {s.accepted_external:,} for outside "
                              "destinations from unauthenticated clients; no outbound delivery of those was seen.")
    else:
        s.restriction_held = True
        s.restriction_text = (f"Yes. Under relay policy {_policy_words(s)}, nothing was relayed for an "
                              f"unauthenticated client; the server refused {s.refused:,} recipients.")

    recs: list[str] = []
    fired = {t.rule for t in s.tricks if any(v in t.verdicts for v in ("relayed", "accepted"))}
    for rule_id, fix in FIXES.items():
        if rule_id in fired:
            recs.append(fix)
    if s.relay_policy in ("open", "unknown") or s.abused or s.accepted_external:
        recs.append("Restrict relaying to authenticated clients (and, if needed, a short list of trusted "
                    "networks); then test it from outside with the same tricks this report lists.")
    if "LF-AUTH-ABUSE" in fired:
        recs.append("Reset the passwords of the accounts named in the LF-AUTH-ABUSE findings, check how they "
                    "were obtained (guessing after the failed logins, or a compromised client), and lock out "
                    "accounts after repeated failed logins.")
    if "LF-ROUTED-ADDRESS" in fired:
        recs.append("Refuse routed recipient addresses (percent hack, source routes, bang paths, "
                    "\"user@host\"@relay) at the SMTP door instead of accepting them and bouncing later.")
    if s.abused or s.relayed:
        via = " and the smart host's provider" if site.get("forward_all_to") or any(
            (o or {}).get("forward_all_to") for o in (site.get("servers") or {}).values()) else ""
        recs.append(f"Check the victims: tell the abuse desks of the victim domains{via} which mail left the "
                    "server and when; check the server's address against the DNS blocklists and request "
                    "delisting once it is fixed.")
        recs.append("Find the relaying clients' owners (their addresses are listed under Incidents) and "
                    "report them to their providers' abuse desks.")
    recs.append("Preserve the evidence: keep the original log files unchanged, with the SHA-256 values "
                "listed under Inputs, together with this report and the scan output.")
    s.recommendations = recs


def verdict_meaning(verdict: str) -> str:
    """The registry's meaning of a verdict."""
    return VERDICTS.get(verdict, verdict)
