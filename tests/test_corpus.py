"""The real third-party corpus: every file is read without a crash and recognised as its format, and
every relay-denial line becomes a ``refused`` finding that cites that very line.

The files are read in place from ``../shared/corpus/real`` (never copied into the project).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from logforensics.scan import scan
from logforensics.site import SiteProfile
from tests.conftest import CORPUS

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"real corpus not found at {CORPUS}")

#: Corpus folder -> the format its files must be recognised as.
FOLDERS = {"postfix": "postfix", "sendmail": "sendmail", "exim": "exim", "iis-smtp": "w3c-smtp",
           "exchange-msgtrack": "exchange-tracking"}

#: Files in those folders that are not logs (see SOURCES.md): test data tables and a template.
NOT_LOGS = {"postfix/postfix-grok-patterns_messages.tsv": "TSV of message bodies, no syslog envelope",
            "postfix/modoboa_mail.log.template": "Python template: the date field is a %(day)s placeholder"}

#: A line in which the MTA refuses to relay a recipient (RCPT stage; VRFY probes excluded).
DENIAL = re.compile(r"Relay access denied|Relaying denied|relay not permitted")


def corpus_files(folder: str) -> list[Path]:
    root = CORPUS / folder
    return sorted(p for p in root.rglob("*") if p.is_file())


def rel(path: Path) -> str:
    return str(path.relative_to(CORPUS))


def denial_lines(path: Path) -> list[int]:
    out = []
    text = path.read_bytes().decode("utf-8", "replace")
    for n, line in enumerate(text.splitlines(), start=1):
        if DENIAL.search(line) and "VRFY" not in line and not line.startswith("#") \
                and not re.match(r"^\S+ \S+ \S+ \*\* ", line):  # Exim bounce: someone else refused us
            out.append(n)
    return out


@pytest.fixture(scope="module", params=sorted(FOLDERS))
def folder_scan(request):
    folder = request.param
    return folder, scan([CORPUS / folder], SiteProfile(timezone="UTC"))


def test_every_file_is_read_and_recognised(folder_scan):
    folder, result = folder_scan
    expected = FOLDERS[folder]
    reports = {rel(Path(r.path)): r for r in result.inputs}
    assert len(reports) == len(corpus_files(folder))
    wrong = {}
    for path, report in reports.items():
        if path in NOT_LOGS:
            assert report.format != expected or report.events == 0
            continue
        if report.lines == 0 or not Path(CORPUS / path).read_bytes().strip():
            continue  # an empty file has no format
        if report.format != expected or report.status not in ("ok", "duplicate"):
            wrong[path] = (report.format, report.status, report.warnings[:2])
    assert wrong == {}


def test_every_relay_denial_line_is_a_refused_finding(folder_scan):
    folder, result = folder_scan
    cited = {}  # every cited line; a rejection Exim wrote to mainlog and rejectlog is one finding citing both
    for f in result.findings.iter_rows(named=True):
        for e in f["evidence"]:
            cited.setdefault((rel(Path(e["path"])), e["line"]), f["verdict"])
    # A file identical to an earlier one is counted once: its lines are cited in the original.
    original = {}
    for r in result.inputs:
        if r.status == "duplicate":
            original[rel(Path(r.path))] = rel(Path(r.warnings[-1].split(": identical to ", 1)[1]
                                                  .split(" (same SHA-256)")[0]))
    missing = []
    expected = 0
    for path in corpus_files(folder):
        if rel(path) in NOT_LOGS:
            continue
        for n in denial_lines(path):
            expected += 1
            if cited.get((original.get(rel(path), rel(path)), n)) != "refused":
                missing.append((rel(path), n, cited.get((rel(path), n))))
    assert missing == []
    if folder in ("postfix", "sendmail", "exim"):
        assert expected > 0  # the corpus does hold relay denials for these MTAs


def test_corpus_expected_denial_counts():
    """The corpus itself: how many relay-denial lines each MTA folder holds (guards the test above)."""
    counts = {f: sum(len(denial_lines(p)) for p in corpus_files(f) if rel(p) not in NOT_LOGS) for f in FOLDERS}
    assert counts["postfix"] >= 5 and counts["sendmail"] >= 4 and counts["exim"] >= 20


def test_exim_corpus_screened_findings_equal_the_full_assessment(monkeypatch):
    """The Exim test suite's 989 files share timestamps, queue ids and line numbers, so ties are
    everywhere: the screened assessment (queue messages that cannot raise a finding skipped) must
    equal the full one there too, evidence order included, and two runs must agree."""
    import logforensics.detect.findings as findings_module
    from logforensics.detect.findings import build_findings_by_server
    from logforensics.ingest import ingest

    site = SiteProfile(timezone="UTC")
    events = ingest([CORPUS / "exim"], site, year=2010).events
    texts = lambda path, lines: [None] * len(lines)  # noqa: E731
    first = build_findings_by_server(events, site, {}, texts)
    # Most of its arrivals are local submissions (U=CALLER P=local-smtp: trusted), and many messages pass
    # through loopback (C="250 OK id=..." to 127.0.0.1: followed as one message), so ~200 remain.
    assert first.height > 150
    assert first.equals(build_findings_by_server(events, site, {}, texts))
    full = findings_module._assess
    monkeypatch.setattr(findings_module, "_assess",
                        lambda ev, s, raising_only: full(ev, s, raising_only=False))
    assert first.equals(build_findings_by_server(events, site, {}, texts))
