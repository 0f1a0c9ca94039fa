"""Findings on every bundled sample, with the samples' own site profile, against their GROUND_TRUTH.md.

Each expectation is (file name, line of the first evidence, recipient as offered) -> verdict; the
Exchange 5.5 sample is covered in detail by test_detect_samples.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from logforensics.scan import scan
from logforensics.site import load_site_profile
from tests.conftest import SAMPLES

EXPECTED = {
    "postfix": {
        ("mail.log-20050101", 32, "relaytest@example.net"): "refused",
        ("mail.log-20050101", 33, "relaytest%example.net@acme-widgets.com"): "refused",
        ("mail.log-20050101", 34, "relaytest@example.net@acme-widgets.com"): "refused",
        ("mail.log-20050101", 35, "example.net!relaytest@acme-widgets.com"): "refused",
        ("mail.log-20050101", 40, "buyer1@example.com"): "relayed",
        ("mail.log-20050101", 40, "buyer2@example.org"): "relayed",
        ("mail.log-20050101", 50, "buyer3@example.net"): "relayed",
        ("mail.log-20050103", 3, "buyer4@example.com"): "refused",
        ("mail.log-20050103", 23, "sales@example.org"): "refused",
        ("mail.log-20050103", 28, "victim@example.net@acme-widgets.com"): "refused",
        ("mail.log-20050103", 13, "pharma1@example.com"): "relayed",  # jsmith, after a brute force
    },
    "sendmail": {
        ("maillog-20040104", 11, "jsmith@example.net"): "refused",
        ("maillog-20040104", 19, "info%example.org@acme-widgets.com"): "refused",
        ("maillog-20040104", 20, "example.org!info@acme-widgets.com"): "refused",
        ("maillog-20040104", 21, '"info@example.org"@acme-widgets.com'): "refused",
        ("maillog-20040104", 62, "winner%example.org@acme-widgets.com"): "relayed",
        ("maillog-20040104", 64, "l.brown@example.com"): "relayed",
        ("maillog-20040104", 64, "d.white@example.com"): "relayed",
        ("maillog-20040107", 14, "claims%example.net@acme-widgets.com"): "relayed",
        ("maillog-20040107", 18, "claims%example.net@acme-widgets.com"): "refused",
        ("maillog-20040107", 25, '"ap@northwind-traders.example"@acme-widgets.com'): "refused",
    },
    "exim": {
        ("mainlog", 18, "victim1@example.org"): "refused",
        ("mainlog", 30, "other.example!user@acme-widgets.com"): "refused",
        ("mainlog", 31, '"user@other.example"@acme-widgets.com'): "accepted",
        ("mainlog", 34, "user%other.example@acme-widgets.com"): "relayed",
        ("mainlog", 60, "target1@example.com"): "relayed",
        ("mail.log", 8, "user%example.com@acme-widgets.com"): "refused",
    },
    "iis-smtp": {
        ("ex060214.log", 41, "relaycheck@example.net"): "relayed",
        ("ex060214.log", 58, "alice@example.net"): "relayed",
        ("ex060214.log", 59, "carol@example.org"): "relayed",
        ("ex060214.log", 97, "erin@example.net"): "relayed",
        ("ex060214.log", 150, "frank@example.net"): "refused",
        ("ex060214.log", 151, "frank%example.net@acme-widgets.com"): "relayed",
        ("ex060214.log", 199, "oscar@example.com"): "refused",
    },
}

#: Legitimate traffic that must raise nothing: (file, recipient).
QUIET = {
    "postfix": [("mail.log-20050101", "orders@partner.example"), ("mail.log-20050101", "bob@acme-widgets.com")],
    "sendmail": [("maillog-20040104", "buyer@northwind-traders.example"),
                 ("maillog-20040104", "ap@northwind-traders.example")],
    "iis-smtp": [("ex060214.log", "partner@example.com")],
}


@pytest.fixture(scope="module")
def findings():
    result = scan([SAMPLES], load_site_profile(SAMPLES / "site.toml"))
    got = {}
    for f in result.findings.iter_rows(named=True):
        first = f["evidence"][0]
        got[(Path(first["path"]).parent.parts, Path(first["path"]).name, first["line"], f["recipient"])] = f
    return result, got


@pytest.mark.parametrize("sample", sorted(EXPECTED))
def test_sample_verdicts_match_the_ground_truth(findings, sample):
    _, got = findings
    by_key = {(name, line, rcpt): f for (parts, name, line, rcpt), f in got.items()
              if sample in parts}
    verdicts = {key: by_key[key]["verdict"] if key in by_key else None for key in EXPECTED[sample]}
    assert verdicts == EXPECTED[sample]


@pytest.mark.parametrize("sample", sorted(QUIET))
def test_legitimate_mail_raises_no_finding(findings, sample):
    _, got = findings
    raised = {(name, rcpt) for (parts, name, _line, rcpt) in got if sample in parts}
    assert [q for q in QUIET[sample] if q in raised] == []


def test_every_sample_file_is_read(findings):
    result, _ = findings
    logs = [r for r in result.inputs if not r.path.endswith((".md", ".toml"))]
    assert logs and all(r.status == "ok" and r.format for r in logs)
    assert {r.format for r in logs} == {"ims55-protocol", "ims55-tracking", "postfix", "sendmail", "exim",
                                        "w3c-smtp", "exchange-tracking", "exchange-smtp-protocol"}


def test_finding_ids_are_unique(findings):
    result, _ = findings
    assert result.findings["id"].n_unique() == result.findings.height


def test_compromised_accounts_are_findings(findings):
    """Authenticated relays after failed logins (the ground truths' stolen passwords) are raised."""
    result, _ = findings
    import polars as pl

    abuse = result.findings.filter(pl.col("rule") == "LF-AUTH-ABUSE")
    got = {(f["auth_user"], f["recipient"], f["verdict"]) for f in abuse.iter_rows(named=True)}
    assert {("jsmith", "pharma1@example.com", "relayed"), ("jsmith", "pharma2@example.org", "relayed"),
            (None, "ivan@example.net", "relayed")} <= got
    assert set(abuse["severity"]) <= {"high", "medium"} and all(abuse["authenticated"])
