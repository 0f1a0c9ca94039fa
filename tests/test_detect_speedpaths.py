"""The fast paths of detection give exactly what the plain paths give.

Each whole-column shortcut is checked against the per-value code it replaces: IP trust in Polars against
``SiteProfile.is_trusted_ip``, probe tags by distinct value against the per-row expression, finding ids
against the documented SHA-1 formula, and the screened assessment (queue messages that cannot raise a
finding are left out early) against the full one, on synthetic queues and on every sample server.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from logforensics.detect import findings as findings_module
from logforensics.detect.findings import build_findings, build_findings_by_server
from logforensics.detect.incidents import group_incidents
from logforensics.detect.infer import infer_site
from logforensics.detect.probes import probe_by_values, probe_expr
from logforensics.ingest import ingest
from logforensics.schema import conform
from logforensics.site import SiteProfile, load_site_profile
from tests.conftest import SAMPLES

IPS = [
    "10.20.1.5", "10.20.255.255", "10.21.0.0", "10.19.255.255", "192.0.2.25", "192.0.2.26", "127.0.0.1",
    "127.255.255.254", "0.0.0.0", "255.255.255.255", "203.0.113.9", "1.2.3.4",
    # not canonical dotted quads: decided by ipaddress
    "256.1.1.1", "10.20.1.256", "010.20.1.5", "10.020.1.5", "1.2.3", "1.2.3.4.5", " 10.20.1.5", "10.20.1.5 ",
    "10.20.1.5\n", "+10.20.1.5", "10.20.1.5/32", "١٠.20.1.5", "1e1.2.3.4", "", "unknown", "[10.20.1.5]",
    # IPv6, IPv4-mapped IPv6, scoped
    "::1", "::", "::ffff:127.0.0.1", "::ffff:10.20.1.5", "::ffff:192.0.2.25", "2001:db8::25", "2001:db8::1",
    "2001:DB8::25", "fe80::1%eth0", "::ffff:a14:105", None,
]

PROFILES = [
    SiteProfile(),
    SiteProfile(trusted_networks=("10.20.0.0/16",), server_ips=("192.0.2.25",)),
    SiteProfile(trusted_networks=("10.20.3.4/16", "192.0.2.25/32"), server_ips=("2001:db8::25",)),
    SiteProfile(trusted_networks=("0.0.0.0/0",)),
    SiteProfile(trusted_networks=("::/0",)),
    SiteProfile(trusted_networks=("::ffff:0:0/96", "2001:db8::/32"), server_ips=("::ffff:10.20.1.5",)),
    SiteProfile(trusted_networks=("255.255.255.255/32", "0.0.0.0/32", "10.20.1.5/31")),
]


@pytest.mark.parametrize("site", PROFILES)
def test_trusted_ip_mask_equals_is_trusted_ip(site: SiteProfile) -> None:
    values = pl.Series(IPS * 2, dtype=pl.String)  # repeats: each distinct value once, every row answered
    assert site.trusted_ip_mask(values).to_list() == [site.is_trusted_ip(ip) for ip in IPS * 2]
    assert site.trusted_ip_mask(pl.Series([], dtype=pl.String)).to_list() == []
    assert site.trusted_ip_mask(pl.Series([None, None], dtype=pl.String)).to_list() == [False, False]


def test_probe_by_values_equals_probe_expr() -> None:
    rows = pl.DataFrame({
        "helo": ["nmap.scanme.org", "NMAP.SCANME.ORG", "x", "X", None, "maps1.pa.vix.com", "mail.example", None,
                 "cygnus.mail-abuse.org", "x"],
        "sender": [None, "antispam@a.example", "sender@example.com", None, "SpamTest@b.example", None,
                   "closeyouropenrelay@aol.com", "securitytest@c", None, "antispam@d"],
        "recipient": ["relaytest%x@y", None, "target@example.com", "a@nmap.scanme.org", None,
                      "nobody@mail-abuse.org", None, "user@acme-widgets.com", None, "TARGET@example.com"],
    })
    assert rows.select(probe_by_values(rows)).to_series().to_list() == rows.select(probe_expr()).to_series().to_list()


def test_finding_ids_follow_the_documented_formula() -> None:
    rows = pl.DataFrame({"source": ["a/mail.log", "b/ü.log", "c"], "line": [1, 22, 333],
                         "recipient": ['"IMCEA x@y"@z', "user%host@acme", "ünïcode@ex"]})
    expected = ["F-" + hashlib.sha1(f"{s}:{n}:{r}".encode()).hexdigest()[:12] for s, n, r in rows.iter_rows()]
    assert findings_module._finding_ids(rows).to_list() == expected


SITE = SiteProfile(timezone="UTC", local_domains=("acme-widgets.com",), trusted_networks=("10.20.0.0/16",),
                   relay_policy="authenticated-or-ip-allowlist")
T0 = datetime(2004, 3, 9, 10, 0, 0, tzinfo=UTC)


def ev(line: int, minutes: float, event: str, **cols) -> dict:
    return {"source": cols.pop("source", "mail.log"), "line": line, "ts": T0 + timedelta(minutes=minutes),
            "format": "postfix", "server": cols.pop("server", "mx1"), "event": event, **cols}


def queue_events() -> pl.DataFrame:
    """Messages of every kind the screen decides on, some sharing queue ids or arrival lines."""
    rows = [
        # open relay from outside, with a local recipient on the same message
        ev(1, 0, "received", message="A1", client_ip="203.0.113.9", direction="in"),
        ev(2, 0.1, "queued", message="A1", sender="x@spam.example"),
        ev(3, 0.5, "deliver", message="A1", recipient="v@yahoo.example", direction="out", status="sent"),
        ev(4, 0.6, "deliver", message="A1", recipient="jsmith@acme-widgets.com", direction="local",
           status="sent"),
        # the trusted LAN mailing out: screened away
        ev(5, 1, "received", message="B1", client_ip="10.20.1.5", direction="in"),
        ev(6, 1.1, "queued", message="B1", sender="ann@acme-widgets.com"),
        ev(7, 1.5, "deliver", message="B1", recipient="friend@far.example", direction="out", status="sent"),
        # a routed form from the trusted LAN: kept (not plain)
        ev(8, 2, "received", message="C1", client_ip="10.20.1.6", direction="in"),
        ev(9, 2.5, "deliver", message="C1", recipient="user%other.example@acme-widgets.com",
           orig_recipient="user%other.example@acme-widgets.com", direction="local", status="sent"),
        # local only, from outside: screened away
        ev(10, 3, "received", message="D1", client_ip="198.51.100.1", direction="in"),
        ev(11, 3.5, "deliver", message="D1", recipient="bob@acme-widgets.com", direction="local", status="sent"),
        # the queue id D1 reused for an open relay later
        ev(12, 30, "received", message="D1", client_ip="198.51.100.2", direction="in"),
        ev(13, 30.5, "deliver", message="D1", recipient="w@hotmail.example", direction="out", status="deferred"),
        ev(14, 40, "deliver", message="D1", recipient="w@hotmail.example", direction="out", status="sent"),
        # a stolen password: failed logins, then an authenticated relay with a local recipient too
        ev(15, 50, "auth", client_ip="198.51.100.4", status="failed"),
        ev(115, 51, "auth", client_ip="198.51.100.4", status="failed"),  # two: one alone is a typo
        ev(16, 60, "received", message="E1", client_ip="198.51.100.4", auth_user="jsmith", direction="in"),
        ev(17, 61, "deliver", message="E1", recipient="v@far.example", direction="out", status="sent"),
        ev(18, 61, "deliver", message="E1", recipient="carol@acme-widgets.com", direction="local", status="sent"),
        # arrivals that list their recipients (tracking style), one never delivered
        ev(19, 70, "received", message="F1", client_ip="198.51.100.7", recipient="z@far.example",
           direction="in"),
        ev(20, 70, "received", message="G1", client_ip="10.20.9.9", recipient="dave@acme-widgets.com",
           direction="in"),
        ev(21, 71, "deliver", message="G1", recipient="dave@acme-widgets.com", direction="local", status="sent"),
        # the same queue id on another server
        ev(22, 80, "received", message="A1", server="mx2", client_ip="10.20.1.5", direction="in"),
        ev(23, 80.5, "deliver", message="A1", server="mx2", recipient="v@yahoo.example", direction="out",
           status="sent"),
        # a refused relay attempt in an SMTP session
        ev(24, 90, "rcpt", session="s1", direction="in", client_ip="203.0.113.50", recipient="x@far.example",
           reply=554, reply_text="Relay access denied"),
    ]
    rows += [ev(100 + i, 100, "received", message=f"H{i}", client_ip="10.20.1.8", direction="in")
             for i in range(3)]
    rows += [ev(200 + i, 100.5, "deliver", message=f"H{i}", recipient=f"u{i}@acme-widgets.com",
                direction="local", status="sent") for i in range(3)]
    return conform(pl.DataFrame(rows, infer_schema_length=None))


def _unscreened(monkeypatch: pytest.MonkeyPatch) -> None:
    full = findings_module._assess
    monkeypatch.setattr(findings_module, "_assess",
                        lambda events, site, raising_only: full(events, site, raising_only=False))


def _findings(events: pl.DataFrame, site: SiteProfile) -> pl.DataFrame:
    texts = lambda path, lines: [f"{path}:{n}" for n in lines]  # noqa: E731
    return build_findings_by_server(events, site, {}, texts).sort("time", "id")


def test_screened_findings_equal_the_full_assessment(monkeypatch: pytest.MonkeyPatch) -> None:
    events = queue_events()
    fast = _findings(events, SITE)
    assert set(fast["recipient"]) >= {"v@yahoo.example", "user%other.example@acme-widgets.com",
                                      "w@hotmail.example", "v@far.example", "z@far.example", "x@far.example"}
    assert "carol@acme-widgets.com" not in set(fast["recipient"])  # local: no relay, no LF-AUTH-ABUSE
    _unscreened(monkeypatch)
    assert fast.equals(_findings(events, SITE))


def test_screen_that_keeps_no_message_gives_no_queue_findings() -> None:
    events = queue_events().filter(pl.col("message").is_in(["B1", "H0", "H1", "H2"]))
    assert build_findings(events, SITE, {}, lambda path, lines: [None] * len(lines)).is_empty()


def test_screened_findings_equal_the_full_assessment_on_the_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    site = load_site_profile(SAMPLES / "site.toml")
    events, effective = infer_site(ingest([SAMPLES], site).events, site)
    fast = _findings(events, effective)
    assert fast.height > 50
    fast_incidents = group_incidents(fast)
    _unscreened(monkeypatch)
    full = _findings(events, effective)
    assert fast.equals(full)
    assert all(a.equals(b) for a, b in zip(fast_incidents, group_incidents(full), strict=True))


def test_incidents_pick_probe_victims_and_host_like_the_rules_say() -> None:
    def finding(i: int, minutes: float, **cols) -> dict:
        return {"id": f"F-{i:012d}", "time": T0 + timedelta(minutes=minutes), "client_ip": "203.0.113.9",
                "client_host": None, "severity": "low", "verdict": "refused", "form": "plain", "probe": None,
                "external": True, "effective_recipient": None, **cols}

    findings = pl.DataFrame([
        finding(1, 0, client_host="UNKNOWN", probe="nmap", effective_recipient="a@Far.Example"),
        finding(2, 1, client_host="scanner.example", probe="maps", effective_recipient="b@far.example",
                severity="high", verdict="relayed", form="percent-hack"),
        finding(3, 2, effective_recipient="c@b.example", form="percent-hack"),
        finding(4, 3, external=False, effective_recipient="d@local.example"),
        finding(5, 200, client_ip=None, client_host="Lonely.Example", effective_recipient="no-at-sign"),
    ], schema_overrides={"time": pl.Datetime("us", "UTC"), "client_host": pl.String, "probe": pl.String,
                         "effective_recipient": pl.String})
    tagged, incidents = group_incidents(findings)
    assert tagged["incident"].to_list() == ["INC-0001"] * 4 + ["INC-0002"]
    assert incidents.select("client_host", "findings", "severity", "probe", "victim_domains", "verdicts",
                            "forms").rows() == [
        ("scanner.example", 4, "high", "maps", ["far.example"], '{"refused": 3, "relayed": 1}',
         '{"percent-hack": 2, "plain": 2}'),  # b.example was refused: no victim
        ("Lonely.Example", 1, "low", None, [], '{"refused": 1}', '{"plain": 1}'),
    ]
    assert incidents["summary"][0] == ("scanner.example: 4 suspicious recipient(s) (3 refused, 1 relayed) using "
                                       "plain x2, percent-hack x2, to 1 outside domain(s); looks like a maps "
                                       "relay probe.")
