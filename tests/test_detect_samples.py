"""Detection end to end on samples/: every inbound RCPT against the hand-written ground truth."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import polars as pl
import pytest

from logforensics.detect.findings import assess_recipients
from logforensics.detect.infer import infer_site
from logforensics.ingest import ingest
from logforensics.scan import scan
from logforensics.site import SiteProfile, load_site_profile
from tests.conftest import ROOT, SAMPLES

TRUTH = SAMPLES / "ims55" / "GROUND_TRUTH.md"
SITE = SAMPLES / "site-ims55.toml"


def ground_truth() -> list[dict]:
    """The RCPT table of GROUND_TRUTH.md (written by hand, independently of the code)."""
    rows = []
    for line in TRUTH.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 13 and re.fullmatch(r"\d+", cells[0]) and cells[1].endswith(".LOG"):
            rows.append({
                "file": cells[1], "line": int(cells[2]), "recipient": cells[4].strip("`").strip("<>"),
                "auth": cells[6].startswith("yes"), "reply": int(cells[7]), "form": cells[8],
                "effective": cells[9].strip("`"), "verdict": cells[10].strip("*"),
                "probe": None if cells[11] in ("—", "-", "") else cells[11].split()[0].lower(),
            })
    return rows


@pytest.fixture(scope="module")
def assessed() -> pl.DataFrame:
    site = load_site_profile(SITE)
    res = ingest([SAMPLES / "ims55"], site)
    events, effective = infer_site(res.events, site)
    return assess_recipients(events, effective).with_columns(
        pl.col("source").str.extract(r"([^/]+)$", 1).alias("file"))


def test_ground_truth_table_is_complete():
    truth = ground_truth()
    assert len(truth) == 54
    assert {r["verdict"] for r in truth} == {"refused", "accepted", "relayed"}


def test_every_recipient_matches_ground_truth(assessed):
    got = {(r["file"], r["line"]): r for r in assessed.filter(pl.col("origin") == "protocol").iter_rows(named=True)}
    truth = ground_truth()
    assert len(got) == len(truth)
    mismatches = []
    for t in truth:
        g = got.get((t["file"], t["line"]))
        if g is None:
            mismatches.append((t["file"], t["line"], "missing"))
            continue
        want = (t["recipient"], t["reply"], t["form"], t["verdict"], bool(t["auth"]))
        have = (g["recipient"], g["reply"], g["form"], g["verdict"], bool(g["authenticated"]))
        if want != have:
            mismatches.append((t["file"], t["line"], want, have))
        if t["effective"].startswith("/"):  # an X.500 DN: the decoded IMCEAEX value, mailbox stays local
            if not t["effective"].upper().startswith((g["imcea_decoded"] or "?").upper()):
                mismatches.append((t["file"], t["line"], t["effective"], g["imcea_decoded"]))
        elif t["effective"].lower() != (g["effective_recipient"] or "").lower():
            mismatches.append((t["file"], t["line"], t["effective"], g["effective_recipient"]))
        if t["probe"] == "nmap" and g["probe"] != "nmap":
            mismatches.append((t["file"], t["line"], "probe", g["probe"]))
    assert mismatches == []


def test_no_profile_finds_the_q264330_relays_and_infers_the_site():
    with_profile = scan([SAMPLES], load_site_profile(SITE))
    without = scan([SAMPLES], SiteProfile())
    relayed = lambda r: sorted(r.findings.filter(  # noqa: E731
        (pl.col("verdict") == "relayed") & (pl.col("rule") == "LF-Q264330"))["recipient"].to_list())
    assert len(relayed(with_profile)) == 11
    assert relayed(without) == relayed(with_profile)
    assert set(without.findings.filter(pl.col("rule") == "LF-Q264330")["severity"]) == {"critical", "high"}
    inferred = without.site.inferred
    assert without.site.local_domains == ("acme-widgets.com",)
    assert without.site.timezone == "Etc/GMT+5"
    assert without.site.forward_all_to == "smtp.relay-isp.net"
    assert without.site.relay_policy == "authenticated-only"
    assert {"timezone", "local_domains", "forward_all_to", "relay_policy"} <= set(inferred)
    assert with_profile.site.inferred == {}


def test_nothing_above_info_on_ordinary_mail(assessed):
    result = scan([SAMPLES], load_site_profile(SITE))
    ordinary = [r for r in ground_truth() if r["form"] == "plain" and not r["probe"]
                and r["effective"].lower().endswith("@acme-widgets.com")]
    assert ordinary
    flagged = {(e["path"].rsplit("/", 1)[-1], e["line"]) for ev in result.findings["evidence"].to_list()
               for e in ev[:1]}
    assert not [r for r in ordinary if (r["file"], r["line"]) in flagged]
    # Authenticated plain mail raises nothing, unless the account looks compromised (other samples).
    authenticated = result.findings.filter(pl.col("authenticated") & (pl.col("form") == "plain"))
    assert set(authenticated["rule"]) <= {"LF-AUTH-ABUSE"}
    assert not [ev for ev in authenticated["evidence"].to_list() if "ims55" in ev[0]["path"]]


def test_q264330_finding_is_fully_traceable():
    result = scan([SAMPLES], load_site_profile(SITE))
    f = result.findings.filter(pl.col("recipient") == '"IMCEA hanako.s@yahoo.co.jp"@acme-widgets.com').row(
        0, named=True)
    assert (f["rule"], f["verdict"], f["severity"]) == ("LF-Q264330", "relayed", "critical")
    assert f["time"].isoformat() == "2000-06-15T04:47:11+00:00"
    first = f["evidence"][0]
    assert first["path"].endswith("L0000000.LOG") and "RCPT TO" in first["text"]
    assert len(first["sha256"]) == 64
    assert any("Tracking.log" in e["path"] and "\t1011\t" in (e["text"] or "") for e in f["evidence"])
    assert "KB Q264330" in f["explanation"]
    inc = result.incidents.filter(pl.col("id") == f["incident"]).row(0, named=True)
    assert inc["severity"] == "critical" and "yahoo.co.jp" in inc["victim_domains"]


def test_scan_cli_json_document_and_fail_on():
    cmd = [sys.executable, "-m", "logforensics", "scan", str(SAMPLES), "--site", str(SITE), "--format", "json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert set(doc) == {"tool", "version", "generated", "site", "inputs", "findings", "incidents"}
    f = doc["findings"][0]
    for key in ("id", "rule", "form", "verdict", "severity", "time", "server", "client_host", "client_ip",
                "authenticated", "sender", "recipient", "effective_recipient", "explanation", "probe",
                "incident", "evidence"):
        assert key in f
    assert f["time"].endswith("Z")
    assert {"path", "sha256", "bytes", "format", "events", "skipped_lines", "warnings"} <= set(doc["inputs"][0])
    assert {"id", "first_seen", "last_seen", "client_host", "client_ip", "findings", "verdicts", "forms",
            "severity", "probe", "victim_domains", "summary"} <= set(doc["incidents"][0])
    proc = subprocess.run([*cmd, "--fail-on", "critical"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 3
    proc = subprocess.run([*cmd, "--min-severity", "critical"], capture_output=True, text=True, cwd=ROOT)
    assert {f["severity"] for f in json.loads(proc.stdout)["findings"]} == {"critical"}
    proc = subprocess.run([*cmd[:-2], "--format", "csv"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0 and "L0000000.LOG:197" in proc.stdout
    # Times are ISO 8601 UTC with Z, as in the JSON.
    times = [row.split(",")[5] for row in proc.stdout.splitlines()[1:3]]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", t) for t in times), times
