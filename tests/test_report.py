"""The management report: summary numbers, escaping, self-containment, batch folders and the CLI."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import polars as pl
import pytest
from plotly.offline import get_plotlyjs
from typer.testing import CliRunner

from logforensics.cli import app
from logforensics.detect.incidents import group_incidents
from logforensics.errors import LogForensicsError
from logforensics.report import from_batch, from_scan, output_path, render_report, write_report
from logforensics.report import html as report_html
from logforensics.report.charts import CHARTS, build_cube, rollup
from logforensics.report.data import ReportData, normalise_findings
from logforensics.report.summary import summarise
from logforensics.scan import scan
from logforensics.site import SiteProfile, load_site_profile
from tests.conftest import SAMPLES

runner = CliRunner()
T0 = datetime(2000, 6, 15, 4, 47, 11, tzinfo=UTC)
SITE = {"name": "EXCH01", "relay_policy": "authenticated-only", "local_domains": ["acme-widgets.com"],
        "timezone": "America/Chicago", "source": None,
        "inferred": {"timezone": "protocol-log times are UTC-5h"}}
HOSTILE = "<script>alert(1)</script>"
BREAKOUT = "</script><script>alert(2)</script><!--"


def ev(path: str, line: int, text: str = "") -> dict:
    return {"path": path, "line": line, "sha256": "ab" * 32, "text": text or f"line {line}"}


def finding(n: int, *, verdict: str = "relayed", rule: str = "LF-Q264330", form: str = "imcea-quoted",
            severity: str = "critical", client: str = "203.0.113.77", rcpt: str | None = None,
            external: bool = True, authenticated: bool = False, evidence: list | None = None,
            minutes: float = 0, server: str = "EXCH01") -> dict:
    eff = rcpt or f"victim{n}@example{n % 3}.com"
    return {
        "id": f"F-{n:012d}", "rule": rule, "form": form, "verdict": verdict, "severity": severity,
        "time": T0 + timedelta(minutes=minutes), "server": server, "client_host": client, "client_ip": None,
        "authenticated": authenticated, "auth_user": None, "sender": "spam@bulk.example",
        "recipient": f'"IMCEA {eff}"@acme-widgets.com', "effective_recipient": eff, "external": external,
        "explanation": f"{client} offered {eff}", "probe": None,
        "evidence": evidence or [ev("Log/L0000000.LOG", 100 + 2 * n)],
    }


def frame(rows: list[dict]) -> tuple[pl.DataFrame, pl.DataFrame]:
    findings = normalise_findings(pl.DataFrame(rows, schema_overrides={"time": pl.Datetime("us", "UTC")}))
    return group_incidents(findings.drop("incident"))


def data_for(rows: list[dict], site: dict | None = None) -> ReportData:
    findings, incidents = frame(rows) if rows else (pl.DataFrame(), pl.DataFrame())
    inputs = [{"path": "Log/L0000000.LOG", "sha256": "ab" * 32, "bytes": 10, "format": "ims55-protocol",
               "lines": 5, "events": 4, "skipped_lines": 0, "warnings": [], "status": "ok"}]
    return ReportData(findings=findings, incidents=incidents, site=site or SITE, inputs=inputs, origin="test")


def abuse_rows() -> list[dict]:
    """Three relayed recipients of one message (they share tracking line 56), one of another message,
    one refused, one accepted without outbound evidence, one MS99-027 refused."""
    shared = [ev("Tracking.log/20000615.log", 56)]
    return [
        finding(1, evidence=[ev("Log/L0000000.LOG", 195), *shared, ev("Tracking.log/20000615.log", 57)]),
        finding(2, evidence=[ev("Log/L0000000.LOG", 197), *shared, ev("Tracking.log/20000615.log", 58)]),
        finding(3, rcpt="x@hotmail.com", evidence=[ev("Log/L0000000.LOG", 199), *shared]),
        finding(4, rcpt="y@hotmail.com", minutes=17, evidence=[ev("Log/L0000000.LOG", 241),
                                                               ev("Tracking.log/20000615.log", 92)]),
        finding(5, verdict="refused", severity="low", rule="LF-UNAUTH-RELAY", form="plain", minutes=20),
        finding(6, verdict="accepted", severity="high", minutes=21),
        finding(7, verdict="refused", severity="low", rule="LF-MS99-027", form="imcea-encapsulated", minutes=22),
    ]


# -- summary -------------------------------------------------------------------------------------------

def test_summary_numbers_come_from_the_findings():
    findings, incidents = frame(abuse_rows())
    s = summarise(findings, incidents, SITE)
    assert s.findings == 7 and s.incidents == 1
    assert s.abused and s.relayed == 4 and s.relayed_unauth == 4
    assert s.messages == 2  # 1-3 share a tracking line; 4 stands alone
    assert s.victims == 4
    assert dict(s.victim_domains)["hotmail.com"] == 2
    assert s.first_relay == T0 and s.last_relay == T0 + timedelta(minutes=17)
    assert s.refused == 2 and s.accepted_external == 1
    assert s.restriction_held is False
    assert s.headline.startswith("Yes: the server EXCH01 was abused as a mail relay between 15 June 2000, 04:47 UTC "
                                 "(14 June 2000, 23:47 America/Chicago) and 15 June 2000, 05:04 UTC "
                                 "(15 June 2000, 00:04 America/Chicago)")
    assert "4 recipients in about 2 messages" in s.headline
    q = next(t for t in s.trick_texts if "LF-Q264330" in t)
    assert "KB Q264330" in q and "5 findings: 4 relayed, 1 accepted" in q
    assert any("MS99-027" in t for t in s.trick_texts)
    recs = " ".join(s.recommendations)
    assert "Service Pack 4" in recs and "KB Q264330" in recs
    assert "MS99-027 fix" not in recs  # MS99-027 was only refused here
    assert "Preserve the evidence" in recs


def test_summary_when_the_restriction_held():
    rows = [finding(1, verdict="refused", severity="low", rule="LF-UNAUTH-RELAY", form="plain"),
            finding(2, verdict="refused", severity="low", rule="LF-UNAUTH-RELAY", form="plain")]
    findings, incidents = frame(rows)
    s = summarise(findings, incidents, SITE)
    assert not s.abused and s.restriction_held is True
    assert s.headline.startswith("No relay abuse was found")
    assert s.restriction_text.startswith("Yes.")
    assert not any("Service Pack" in r for r in s.recommendations)


def test_summary_without_findings_says_so_and_the_page_still_renders():
    s = summarise(pl.DataFrame(), pl.DataFrame(), {})
    assert s.headline.startswith("No: the logs show no relay abuse")
    page = render_report(data_for([]))
    assert "No: the logs show no relay abuse" in page
    data = _page_data(page)
    assert len(data["charts"]) == len(CHARTS)
    for chart in data["charts"]:
        assert chart["figure"]["layout"]["annotations"][0]["text"] == "no data"
    assert data["findings"] == [] and data["findingsTotal"] == 0


def test_summary_on_the_ims55_samples_matches_the_ground_truth():
    result = scan([SAMPLES / "ims55"], load_site_profile(SAMPLES / "site-ims55.toml"))
    s = summarise(result.findings, result.incidents, result.site.to_dict())
    assert s.abused and s.relayed_unauth == 11 and s.messages == 3 and s.victims == 11
    assert "LF-Q264330" in s.tricks[0].rule
    assert s.restriction_held is False


# -- charts ----------------------------------------------------------------------------------------------

def test_cube_rollups_count_every_finding():
    data = data_for(abuse_rows())
    cube, step, _ = build_cube(data.findings, data.inputs)
    assert cube["n"].sum() == 7 and step == 60
    xs, _, cells = rollup(cube, "verdict", "form")
    assert sum(cells.values()) == 7 and xs == ["relayed", "accepted", "refused"]
    xs, _, cells = rollup(cube, "srvfmt", "severity")
    assert xs == ["EXCH01 · ims55-protocol"]
    xs, _, cells = rollup(cube, "victim", "verdict", top=2)
    assert xs == ["example1.com", "example2.com"]  # ties (2 each, with hotmail.com) by name


# -- safety ----------------------------------------------------------------------------------------------

def test_json_for_script_cannot_break_out():
    value = {"a": BREAKOUT, "b": "x\u2028y\u2029z", "c": "&amp; <!-- -->", HOSTILE: 1}
    text = report_html.json_for_script(value)
    for bad in ("<", ">", "&", "\u2028", "\u2029"):
        assert bad not in text
    assert json.loads(text) == value


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text outside script/style elements."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self._in: list[str] = []
        self.script_bodies: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag in ("script", "style"):
            self._in.append(tag)
            self.script_bodies.append("")

    def handle_endtag(self, tag):
        if self._in and self._in[-1] == tag:
            self._in.pop()

    def handle_data(self, data):
        if self._in:
            self.script_bodies[-1] += data
        else:
            self.text.append(data)


def parse(page: str) -> Tags:
    p = Tags()
    p.feed(page)
    p.close()
    return p


def _page_data(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)
    assert m
    return json.loads(m.group(1))


def hostile_rows() -> list[dict]:
    img = '<img src=x onerror="document.title=1">'
    return [
        finding(1, client=HOSTILE, rcpt=f'"{BREAKOUT}"@evil.example',
                evidence=[ev("Log/L0000000.LOG", 8, f"RCPT TO:<{BREAKOUT}>"), ev("Log/x.log", 9, img)]),
        finding(2, client=img, rcpt="=HYPERLINK(\"http://evil.example\")@evil.example", verdict="accepted",
                severity="high", server="{{DATA}}"),
    ]


def test_hostile_log_text_is_text_never_markup():
    page = render_report(data_for(hostile_rows()))
    tags = parse(page)
    # Only the page's own four scripts; no element comes from the data.
    scripts = [a for t, a in tags.tags if t == "script"]
    assert len(scripts) == 4 and sum(1 for a in scripts if a.get("type") == "application/json") == 1
    assert not [t for t, _ in tags.tags if t in ("img", "iframe", "object", "embed", "link", "base")]
    assert not [a for _, a in tags.tags if any(k.startswith("on") for k in a)]
    # The summary shows the hostile client as text.
    text = "".join(tags.text)
    assert HOSTILE in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # The data survives intact for the page's script, which writes it with textContent.
    data = _page_data(page)
    assert data["findings"][0]["client"] == HOSTILE
    assert data["findings"][0]["ev"][0][3] == f"RCPT TO:<{BREAKOUT}>"
    assert data["findings"][1]["server"] == "{{DATA}}"  # a placeholder-like value stays a value
    # Chart labels are escaped for plotly's pseudo-HTML.
    clients = next(c for c in data["charts"] if c["id"] == "clients")["figure"]["data"]
    labels = [y for t in clients for y in t["y"]]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in labels and HOSTILE not in labels
    # The page's script never uses innerHTML (or similar) with data.
    js = report_html._asset("report.js")
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function", js)


def test_page_is_self_contained_and_fetches_nothing():
    page = render_report(data_for(abuse_rows()))
    tags = parse(page)
    for tag, attrs in tags.tags:
        assert "src" not in attrs, (tag, attrs)
        if tag == "link":
            raise AssertionError(f"link element {attrs}")
        if "href" in attrs:
            assert attrs["href"].startswith("#"), attrs
    css = report_html._asset("report.css")
    assert "@import" not in css and "url(" not in css
    csp = next(a for t, a in tags.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in csp["content"]
    # plotly.js embedded exactly once
    head = get_plotlyjs()[:80]
    assert page.count(head) == 1
    assert page.count("Plotly.newPlot(") == 1  # one call site, in the page script


def test_large_input_is_aggregated_and_paginated():
    rows = []
    for n in range(6000):  # bursts of 50 recipients from one client, one every 2 seconds
        burst = n // 50
        sev = ("critical", "high", "medium", "low", "info")[burst % 5]
        rows.append(finding(n, severity=sev, minutes=n / 30, client=f"10.0.{burst % 40}.1",
                            verdict=("relayed", "accepted", "refused")[burst % 3]))
    data = data_for(rows)
    page = render_report(data)
    payload = _page_data(page)
    assert payload["findingsTotal"] == 6000
    assert len(payload["findings"]) == report_html.DETAIL_CAP
    assert {f["sev"] for f in payload["findings"]} >= {"critical", "high"}
    assert "most severe of 6,000" in page
    assert len(payload["cube"]["rows"]) < 6000
    assert payload["pageSize"] == 100
    assert len(page) < 20_000_000


# -- sources ---------------------------------------------------------------------------------------------

def write_batch(folder, rows: list[dict]) -> None:
    findings, incidents = frame(rows)
    folder.mkdir(parents=True, exist_ok=True)
    findings.write_parquet(folder / "findings.parquet")
    incidents.write_parquet(folder / "incidents.parquet")
    manifest = {
        "tool": "logforensics", "version": "0.0.9",
        "site": {**SITE, "inferred": {"relay_policy": "9 refused, 2 accepted after authentication"}},
        "inputs": [{"path": "Log/L0000000.LOG", "size": 21513, "mtime": 1.0, "sha256": "cd" * 32,
                    "format": "ims55-protocol", "events": 289, "skipped_lines": 0, "warnings": ["w <b>1</b>"],
                    "status": "ok"}],
    }
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def test_report_from_a_batch_folder(tmp_path):
    write_batch(tmp_path / "out", abuse_rows())
    data = from_batch(tmp_path / "out")
    assert data.findings.height == 7 and data.incidents.height == 1
    assert data.producer_version == "0.0.9"
    page = render_report(data)
    assert "cd" * 32 in page and "21,513" in page and "ims55-protocol" in page
    assert "inferred: 9 refused, 2 accepted after authentication" in page
    assert "w &lt;b&gt;1&lt;/b&gt;" in page
    assert "Yes: the server" in page and "abused as a mail relay" in page
    assert "batch folder" in page and "version 0.0.9" in page


def test_batch_folder_errors_name_the_file(tmp_path):
    with pytest.raises(LogForensicsError, match=r"manifest\.json"):
        from_batch(tmp_path)
    write_batch(tmp_path / "out", abuse_rows())
    (tmp_path / "out" / "incidents.parquet").unlink()
    with pytest.raises(LogForensicsError, match=r"incidents\.parquet"):
        from_batch(tmp_path / "out")


def test_report_from_a_scan_lists_inputs_and_site():
    result = scan([SAMPLES / "ims55"], SiteProfile())
    page = render_report(from_scan(result, [SAMPLES / "ims55"]))
    for r in result.inputs:
        assert r.sha256 in page
    assert page.count('class="inferred"') == len(result.site.inferred) > 0
    assert "L0000000.LOG" in page


# -- CLI ---------------------------------------------------------------------------------------------------

def test_cli_report_writes_into_reports_by_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["report", str(SAMPLES / "ims55"), "--site", str(SAMPLES / "site-ims55.toml")])
    assert result.exit_code == 0, result.output
    out = tmp_path / "reports" / "report.html"
    page = out.read_text(encoding="utf-8")
    assert "KB Q264330" in page and "Yes: the server" in page and "abused as a mail relay" in page


def test_cli_report_output_and_from_batch(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_batch(tmp_path / "b", abuse_rows())
    result = runner.invoke(app, ["report", "--from-batch", str(tmp_path / "b"), "--output", "x/r.html"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "x" / "r.html").stat().st_size > 1_000_000
    (tmp_path / "dir").mkdir()
    assert output_path(tmp_path / "dir") == tmp_path / "dir" / "report.html"


@pytest.mark.parametrize("args", [["report"], ["report", "x.log", "--from-batch", "."]])
def test_cli_report_usage_errors(tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code != 0
    assert isinstance(result.exception, LogForensicsError)


def test_write_report_creates_the_folder(tmp_path):
    path = write_report(data_for(abuse_rows()), tmp_path / "a" / "b" / "r.html")
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_summary_recommends_password_resets_for_compromised_accounts():
    """An LF-AUTH-ABUSE relay in the samples leads to the password-reset recommendation."""
    from logforensics.report.summary import summarise
    from logforensics.scan import scan
    from logforensics.site import load_site_profile

    result = scan([SAMPLES / "postfix"], load_site_profile(SAMPLES / "site.toml"))
    assert "LF-AUTH-ABUSE" in set(result.findings["rule"])
    summary = summarise(result.findings, result.incidents, result.site.to_dict())
    assert any("Reset the passwords" in r for r in summary.recommendations)


def test_mta_messages_are_counted_by_their_arrival_line():
    """Exim/Sendmail cite the message's arrival line first for each recipient, then its own delivery
    line: two recipients of one message (separate => lines) are one message, a second message another."""
    from logforensics.report.summary import estimate_messages

    rows = [finding(1, evidence=[ev("mainlog", 32), ev("mainlog", 33)]),
            finding(2, rcpt="b@far.example", evidence=[ev("mainlog", 32), ev("mainlog", 34)]),
            finding(3, rcpt="c@far.example", evidence=[ev("mainlog", 40), ev("mainlog", 41)])]
    findings, _ = frame(rows)
    assert estimate_messages(findings) == 2
