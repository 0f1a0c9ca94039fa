"""The report in a real browser: headless Chromium loads it from disk and the test reads the DOM it built.

Uses Debian's ``chromium`` (``.ci/run`` installs it in CI) with ``--dump-dom``. The page records script
errors, failed resources and anything its Content-Security-Policy blocked (any network access) in
``#js-errors``, which must stay empty. Skipped only when no Chromium binary is found.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from itertools import pairwise
from pathlib import Path

import polars as pl
import pytest

from logforensics.detect.incidents import group_incidents
from logforensics.report import ReportData, from_scan, write_report
from logforensics.report.charts import CHARTS
from logforensics.report.data import normalise_findings
from logforensics.scan import scan
from logforensics.site import SiteProfile, load_site_profile
from tests.conftest import SAMPLES

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (Debian package "
                                "'chromium'; .ci/run installs it in CI)")

HOSTILE = "<script>document.title='pwned'</script>"
HOSTILE_LOG = "\r\n".join([
    f"6/14/00 2:11:05 PM : A connection was accepted from {HOSTILE}.",
    f"6/14/00 2:11:06 PM : <<< HELO {HOSTILE}",
    "6/14/00 2:11:06 PM : >>> 250 OK",
    "6/14/00 2:11:07 PM : <<< MAIL From:<x@evil.example>",
    "6/14/00 2:11:07 PM : >>> 250 OK",
    "6/14/00 2:11:08 PM : <<< RCPT To:<victim@evil.example>",
    "6/14/00 2:11:08 PM : >>> 250 OK - Recipient <victim@evil.example>",
    "6/14/00 2:11:08 PM : <<< RCPT To:<\"</script><script>document.title='pwned'</script>\"@evil.example>",
    "6/14/00 2:11:08 PM : >>> 550 Relaying is prohibited",
    "6/14/00 2:11:09 PM : <<< QUIT",
    "6/14/00 2:11:09 PM : >>> 221 closing connection",
    "",
])


def load(report: Path, tmp_path: Path, fragment: str = "") -> tuple[str, float]:
    """The DOM after the page ran (up to 10 s of virtual time), and the wall time Chromium took."""
    profile = tmp_path / f"chromium-profile-{time.monotonic_ns()}"
    cmd = [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
           "--disable-extensions", "--disable-background-networking", "--disable-dev-shm-usage",
           f"--user-data-dir={profile}", "--virtual-time-budget=10000", "--dump-dom",
           report.resolve().as_uri() + fragment]
    start = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, check=False)
    took = time.monotonic() - start
    assert done.returncode == 0, done.stderr[-2000:]
    assert "</html>" in done.stdout, done.stderr[-2000:]
    return done.stdout, took


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Dom(HTMLParser):
    """What the test needs from the dumped DOM."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, dict]] = []
        self.charts: dict[str, int] = {}
        self.errors = ""
        self.title = ""
        self.text: dict[str, str] = {}
        self.rows: dict[str, int] = {"finding-table": 0, "incident-table": 0}

    def _inside(self, key: str, value: str) -> str | None:
        for _, attrs in reversed(self.stack):
            if attrs.get(key, "").startswith(value):
                return attrs[key]
        return None

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        chart = self._inside("id", "chart-")
        if tag == "svg" and "main-svg" in a.get("class", "").split() and chart:
            self.charts[chart] = self.charts.get(chart, 0) + 1
        if tag == "tr" and not a.get("class"):
            table = self._inside("id", "finding-table") or self._inside("id", "incident-table")
            if table and any(t == "tbody" for t, _ in self.stack):
                self.rows[table] += 1
        if tag not in VOID:
            self.stack.append((tag, a))
        if a.get("id", "").startswith("chart-"):
            self.charts.setdefault(a["id"], 0)

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                return

    def handle_data(self, data):
        if self._inside("id", "js-errors"):
            self.errors += data
        if self.stack and self.stack[-1][0] == "title":
            self.title += data
        for key in ("filter-status", "headline"):
            if self._inside("id", key):
                self.text[key] = self.text.get(key, "") + data


def parse(dom: str) -> Dom:
    d = Dom()
    d.feed(dom)
    d.close()
    return d


def check_page(dom: str) -> Dom:
    d = parse(dom)
    assert d.errors.strip() == "", d.errors
    assert 'data-report-ready="1"' in dom  # the page script ran to its end
    assert len(d.charts) == len(CHARTS), d.charts
    missing = [c for c, n in d.charts.items() if n < 1]
    assert not missing, f"charts without plotly SVG: {missing}"
    assert dom.count('class="main-svg"') >= len(CHARTS)
    return d


@pytest.fixture(scope="module")
def samples_report(tmp_path_factory) -> Path:
    """The README's main job: the report on samples/ with the sample site profile."""
    out = tmp_path_factory.mktemp("report") / "reports" / "report.html"
    result = scan([SAMPLES], load_site_profile(SAMPLES / "site-ims55.toml"))
    return write_report(from_scan(result, [SAMPLES]), out)


def test_samples_report_renders_every_chart_without_errors(samples_report, tmp_path):
    dom, took = load(samples_report, tmp_path)
    d = check_page(dom)
    print(f"\nchromium loaded {samples_report.stat().st_size:,} bytes in {took:.1f} s")
    assert d.rows["finding-table"] > 0 and d.rows["incident-table"] > 0
    assert d.text["headline"].startswith("Yes: the servers EXCH01 (11), WEB01 (11)")  # named, busiest first
    assert "were abused as a mail relay" in d.text["headline"]
    assert re.search(r"Charts: (\d+) of \1 findings", d.text["filter-status"]), d.text["filter-status"]


def test_severity_filter_updates_charts_and_tables(samples_report, tmp_path):
    dom, _ = load(samples_report, tmp_path, "#sev=4")  # critical only
    d = check_page(dom)
    m = re.search(r"Charts: (\d+) of (\d+) findings; table: (\d+) of (\d+) rows", d.text["filter-status"])
    assert m, d.text["filter-status"]
    shown, total, rows, _ = map(int, m.groups())
    assert 0 < shown < total and rows == shown
    assert d.rows["finding-table"] == rows


def test_time_filter_with_nothing_in_range(samples_report, tmp_path):
    dom, _ = load(samples_report, tmp_path, "#from=1980-01-01T00:00:00&to=1980-01-02T00:00:00")
    d = check_page(dom)
    assert "Charts: 0 of" in d.text["filter-status"]
    assert "Nothing matches the filters." in dom
    assert dom.count(">no data<") >= len(CHARTS)


def _report_data(report: Path) -> dict:
    text = report.read_text(encoding="utf-8")
    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', text, re.S)
    assert m
    return json.loads(m.group(1))


def _zoomed_copy(report: Path, tmp_path: Path, name: str, events: list[dict]) -> Path:
    """A copy of ``report`` whose page, after the report's own script, sends ``events`` as relayouts
    of its first chart with a time axis, in turn, as a person zooming and double-clicking would."""
    script = ("<script>(async function () {var D = JSON.parse(document.getElementById('report-data')"
              ".textContent); var c = D.charts.filter(function (c) { return ((c.figure.layout || {}).xaxis"
              " || {}).type === 'date'; })[0]; var div = document.getElementById('chart-' + c.id);"
              f" var evs = {json.dumps(events)}; for (var i = 0; i < evs.length; i++) "
              "{ await Plotly.relayout(div, evs[i]); }})();</script>")
    copy = tmp_path / name
    copy.write_text(report.read_text(encoding="utf-8").replace("</body>", script + "</body>"), encoding="utf-8")
    return copy


def test_zooming_a_time_chart_sets_the_time_filter(samples_report, tmp_path):
    data = _report_data(samples_report)
    times = sorted(f["t"] for f in data["findings"] if f["t"] is not None)
    # From before the first finding into the middle of the widest quiet spell (wider than a chart's
    # time step, so the charts and the table keep the same findings).
    gap, i = max((b - a, i) for i, (a, b) in enumerate(pairwise(times)))
    assert gap > 2 * data["step"], (gap, data["step"])
    cut = times[i] + gap // 2
    fmt = lambda ms: datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:23]  # noqa: E731
    expected = i + 1
    assert 0 < expected < len(times)
    zoom = {"xaxis.range[0]": fmt(times[0] - 1000), "xaxis.range[1]": fmt(cut)}
    d = check_page(load(_zoomed_copy(samples_report, tmp_path, "zoom.html", [zoom]), tmp_path)[0])
    m = re.search(r"Charts: (\d+) of (\d+) findings; table: (\d+) of (\d+) rows", d.text["filter-status"])
    assert m, d.text["filter-status"]
    assert int(m.group(3)) == expected
    assert int(m.group(1)) == expected  # the charts too
    # Double-click (autoscale) widens the filter to everything again.
    back = _zoomed_copy(samples_report, tmp_path, "back.html", [zoom, {"xaxis.autorange": True}])
    d = check_page(load(back, tmp_path)[0])
    m = re.search(r"Charts: (\d+) of (\d+) findings; table: (\d+) of (\d+) rows", d.text["filter-status"])
    assert m and m.group(1) == m.group(2) and m.group(3) == m.group(4), d.text["filter-status"]


def test_hostile_helo_shows_as_text(tmp_path):
    log = tmp_path / "logs" / "L0000000.LOG"
    log.parent.mkdir()
    log.write_text(HOSTILE_LOG, encoding="utf-8", newline="")
    result = scan([log.parent], SiteProfile(timezone="UTC", local_domains=("acme-widgets.com",)))
    assert any(HOSTILE in (h or "") for h in result.findings["client_host"].to_list())
    report = write_report(from_scan(result, [log.parent]), tmp_path / "report.html")
    dom, _ = load(report, tmp_path)
    d = check_page(dom)
    assert "pwned" not in d.title and d.title.startswith("Mail relay forensic report")
    # Shown as text (serialised escaped) in the summary, the tables and the chart labels...
    assert dom.count("&lt;script&gt;document.title='pwned'&lt;/script&gt;") >= 3
    # ...and never as an element; no entity plotly would show as written (it decodes only numeric
    # references for quotes, so a label holding " must not carry &quot;).
    assert "<script>document.title" not in dom
    assert "&amp;quot;" not in dom and "&amp;#x27;" not in dom
    assert d.rows["finding-table"] == result.findings.height


def test_thousands_of_findings_open_quickly(tmp_path):
    t0 = datetime(2000, 6, 15, tzinfo=UTC)
    rows = []
    for n in range(5000):
        burst = n // 50
        eff = f"user{n}@victim{burst % 30}.example"
        rows.append({
            "id": f"F-{n:012d}", "rule": "LF-Q264330", "form": "imcea-quoted",
            "verdict": ("relayed", "accepted", "refused")[burst % 3],
            "severity": ("critical", "high", "low")[burst % 3], "time": t0 + timedelta(seconds=20 * n),
            "server": "EXCH01", "client_host": f"spam{burst % 25}.example", "client_ip": f"203.0.113.{burst % 25}",
            "authenticated": False, "auth_user": None, "sender": "s@x.example",
            "recipient": f'"IMCEA {eff}"@acme-widgets.com', "effective_recipient": eff, "external": True,
            "explanation": "x", "probe": None,
            "evidence": [{"path": "L0000000.LOG", "line": 2 * n + 1, "sha256": "ab" * 32, "text": "RCPT TO:<x>"}],
        })
    findings = normalise_findings(pl.DataFrame(rows, schema_overrides={"time": pl.Datetime("us", "UTC")}))
    findings, incidents = group_incidents(findings.drop("incident"))
    data = ReportData(findings=findings, incidents=incidents, site={"relay_policy": "authenticated-only"},
                      inputs=[{"path": "L0000000.LOG", "format": "ims55-protocol", "sha256": "ab" * 32}])
    report = write_report(data, tmp_path / "big.html")
    dom, took = load(report, tmp_path)
    d = check_page(dom)
    print(f"\nchromium loaded 5,000 findings ({report.stat().st_size:,} bytes) in {took:.1f} s")
    assert d.rows["finding-table"] == 100  # one page
    assert "rows 1–100 of 5000" in dom
    assert took < 60
