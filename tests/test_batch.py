"""Batch: compressed and nested inputs, the Parquet dataset, manifest, resumption, scan equivalence."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import shutil
import zipfile
from pathlib import Path

import polars as pl
import pytest

from logforensics.batch import batch, plan_units, scan_events
from logforensics.scan import scan
from logforensics.site import SiteProfile, load_site_profile
from tests.conftest import ROOT, SAMPLES

SITE = load_site_profile(SAMPLES / "site-ims55.toml")
EXCH = SAMPLES / "ims55" / "EXCH01" / "Exchsrvr"
LOGS = sorted((EXCH / "Imcdata" / "Log").glob("L*.LOG"))
TRACKING = sorted((EXCH / "Tracking.log").glob("*.log"))


def comparable(findings: pl.DataFrame | list[dict]) -> list[tuple]:
    """Findings as sortable tuples of everything but the machine-specific paths' prefix."""
    rows = findings.iter_rows(named=True) if isinstance(findings, pl.DataFrame) else findings
    out = []
    for f in rows:
        evidence = tuple((Path(e["path"]).name, e["line"], e["sha256"], e["text"]) for e in f["evidence"])
        out.append((f["id"], f["rule"], f["form"], f["verdict"],
                    f["severity"], f["recipient"], f["client_ip"], f["incident"], evidence))
    return sorted(out)


def tree(tmp_path: Path, files: list[Path], name: str = "tree") -> Path:
    root = tmp_path / name
    for f in files:
        rel = f.relative_to(SAMPLES)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, root / rel)
    return root


def test_scan_and_batch_give_the_same_findings_on_the_samples(tmp_path):
    scanned = scan([SAMPLES / "ims55"], SITE)
    result = batch([SAMPLES / "ims55"], SITE, tmp_path / "out", jobs=2, show_progress=False)
    assert result.detection.findings.height == scanned.findings.height > 0
    assert comparable(result.detection.findings) == comparable(scanned.findings)
    written = pl.read_parquet(tmp_path / "out" / "findings.parquet")
    assert comparable(written) == comparable(scanned.findings)
    incidents = pl.read_parquet(tmp_path / "out" / "incidents.parquet")
    assert incidents["id"].to_list() == scanned.incidents["id"].to_list()
    # The events dataset holds exactly scan's events, partitioned by format and day.
    events = scan_events(tmp_path / "out").collect()
    assert events.height == scanned.events.height
    days = {p.parent.name for p in (tmp_path / "out" / "events").rglob("*.parquet")}
    assert days == {"day=2000-06-14", "day=2000-06-15"}


def test_one_job_and_two_jobs_agree(tmp_path, monkeypatch):
    monkeypatch.setattr("logforensics.batch.SMALL_RUN_BYTES", 0)  # really start a worker
    one = batch([SAMPLES / "ims55"], SITE, tmp_path / "one", jobs=1, show_progress=False)
    two = batch([SAMPLES / "ims55"], SITE, tmp_path / "two", jobs=2, show_progress=False)
    assert comparable(one.detection.findings) == comparable(two.detection.findings)


def test_manifest_records_chain_of_custody(tmp_path):
    batch([SAMPLES / "ims55"], SITE, tmp_path / "out", jobs=1, show_progress=False)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    by_path = {i["path"]: i for i in manifest["inputs"]}
    log = by_path[str(LOGS[0])]
    assert log["format"] == "ims55-protocol" and log["status"] == "ok"
    assert log["sha256"] == __import__("hashlib").sha256(LOGS[0].read_bytes()).hexdigest()
    assert log["bytes"] == LOGS[0].stat().st_size and log["mtime"] == LOGS[0].stat().st_mtime
    assert log["events"] > 0 and isinstance(log["warnings"], list) and "skipped_lines" in log
    assert by_path[str(SAMPLES / "ims55" / "GROUND_TRUTH.md")]["status"] == "unrecognised"
    assert manifest["site"]["timezone"] == "America/Chicago"
    assert manifest["findings"] == pl.read_parquet(tmp_path / "out" / "findings.parquet").height


def _compress(kind: str, data: bytes) -> bytes:
    return {"gzip": gzip.compress, "bzip2": bz2.compress, "xz": lzma.compress}[kind](data)


@pytest.mark.parametrize("kind", ["gzip", "bzip2", "xz"])
def test_each_compression_by_magic_bytes_not_suffix(tmp_path, kind):
    root = tree(tmp_path, [*LOGS, *TRACKING])
    # Compress one protocol log under a misleading name (no suffix, or the wrong one).
    target = root / LOGS[1].relative_to(SAMPLES)
    target.write_bytes(_compress(kind, target.read_bytes()))
    target.rename(target.with_name(target.name + ".old"))
    plain = batch([tree(tmp_path, [*LOGS, *TRACKING], "plain")], SITE, tmp_path / "p", jobs=1, show_progress=False)
    packed = batch([root], SITE, tmp_path / "c", jobs=1, show_progress=False)
    entry = next(i for i in packed.inputs if i["path"].endswith(".LOG.old"))
    assert entry["compression"] == kind and entry["status"] == "ok" and entry["events"] > 0
    assert sorted(f[1:8] for f in comparable(packed.detection.findings)) == \
        sorted(f[1:8] for f in comparable(plain.detection.findings))


def test_zip_members_are_named_archive_bang_member_and_nested_gzip_is_read(tmp_path):
    archive = tmp_path / "in" / "exch01-logs.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as z:
        for f in [*LOGS, *TRACKING]:
            data = f.read_bytes()
            name = str(f.relative_to(SAMPLES / "ims55"))
            if f == LOGS[2]:
                data, name = gzip.compress(data), name + ".gz"
            z.writestr(name, data)
    result = batch([archive.parent], SITE, tmp_path / "out", jobs=1, show_progress=False)
    paths = {i["path"]: i for i in result.inputs}
    member = f"{archive}!EXCH01/Exchsrvr/Imcdata/Log/L0000002.LOG.gz"
    assert paths[member]["compression"] == "zip+gzip" and paths[member]["events"] > 0
    scanned = scan([SAMPLES / "ims55"], SITE)
    assert result.detection.findings.height == scanned.findings.height
    cited = {e["path"] for ev in result.detection.findings["evidence"] for e in ev}
    assert all("!" in p for p in cited)
    assert all(e["text"] for ev in result.detection.findings["evidence"] for e in ev)


def test_rerun_skips_new_file_joins_nothing_doubles(tmp_path):
    root = tree(tmp_path, [LOGS[0], *TRACKING])
    out = tmp_path / "out"
    first = batch([root], SITE, out, jobs=1, show_progress=False)
    assert first.processed == 3 and first.skipped == 0
    events_first = scan_events(out).collect().height

    again = batch([root], SITE, out, jobs=1, show_progress=False)
    assert again.processed == 0 and again.skipped == 3
    assert scan_events(out).collect().height == events_first
    assert comparable(again.detection.findings) == comparable(first.detection.findings)

    # New files join; the result equals a fresh run over everything.
    tree(tmp_path, LOGS[1:])
    joined = batch([root], SITE, out, jobs=1, show_progress=False)
    assert joined.processed == 2 and joined.skipped == 3
    fresh = batch([root], SITE, tmp_path / "fresh", jobs=1, show_progress=False)
    assert comparable(joined.detection.findings) == comparable(fresh.detection.findings)
    assert scan_events(out).collect().height == scan_events(tmp_path / "fresh").collect().height
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["inputs"]) == 5 and len(manifest["runs"]) == 3


def test_a_changed_file_replaces_its_events_and_a_copy_is_not_counted_twice(tmp_path):
    root = tree(tmp_path, [*LOGS, *TRACKING])
    out = tmp_path / "out"
    batch([root], SITE, out, jobs=1, show_progress=False)
    before = scan_events(out).collect().height
    # The same evidence again under another name: skipped as a duplicate.
    copy = root / "zz-copy-of-L0000000.LOG"  # sorts after the original
    shutil.copy2(root / LOGS[0].relative_to(SAMPLES), copy)
    dup = batch([root], SITE, out, jobs=1, show_progress=False)
    entry = next(i for i in dup.inputs if i["path"] == str(copy))
    assert entry["status"] == "duplicate"
    assert scan_events(out).collect().height == before
    # A file whose bytes change is parsed again and its old events are replaced, not added to.
    changed = root / LOGS[2].relative_to(SAMPLES)
    lines = changed.read_bytes().splitlines(keepends=True)
    changed.write_bytes(b"".join(lines[: len(lines) // 2]))
    redo = batch([root], SITE, out, jobs=1, show_progress=False)
    assert redo.processed == 1
    fresh = batch([root], SITE, tmp_path / "fresh", jobs=1, show_progress=False)
    assert scan_events(out).collect().height == scan_events(tmp_path / "fresh").collect().height
    assert comparable(redo.detection.findings) == comparable(fresh.detection.findings)


def test_progress_prints_plain_lines_when_not_a_terminal(tmp_path, capsys):
    batch([SAMPLES / "ims55"], SITE, tmp_path / "out", jobs=1, show_progress=True)
    err = capsys.readouterr().err
    assert "batch: 1/6 files" in err and "MB/s" in err and "ETA" in err


def test_units_are_files_largest_first():
    from logforensics.batch import FileFacts

    files = [FileFacts(p, s, 0.0) for p, s in [("/a/mail.log.2.gz", 5), ("/a/mail.log", 1),
                                               ("/a/mail.log.1", 2), ("/b/L0000000.LOG", 100)]]
    assert [[f.path for f in u] for u in plan_units(files)] == [
        ["/b/L0000000.LOG"], ["/a/mail.log.2.gz"], ["/a/mail.log.1"], ["/a/mail.log"]]


def _rotated_postfix(root: Path, *, trusted_mtimes: bool) -> Path:
    """mail.log, mail.log.1, mail.log.2.gz across New Year 2004/2005; mail.log was last written on
    3 Jan 2005. With untrusted mtimes the older files look copied in 2026."""
    import os
    from datetime import UTC, datetime

    def line(stamp: str, n: int, rcpt: str) -> str:
        return (f"{stamp} mx1 postfix/smtpd[{n}]: NOQUEUE: reject: RCPT from unknown[203.0.113.{n}]: 554 5.7.1 "
                f"<{rcpt}>: Relay access denied; from=<s@spam.example> to=<{rcpt}> proto=SMTP helo=<x>\n")

    logs = root / "mx1" / "var" / "log"
    logs.mkdir(parents=True)
    (logs / "mail.log").write_text(line("Jan  2 10:00:00", 1, "a@far.example"))
    (logs / "mail.log.1").write_text(line("Dec 31 23:00:00", 3, "b@far.example")
                                     + line("Jan  1 01:00:00", 4, "c@far.example"))
    (logs / "mail.log.2.gz").write_bytes(gzip.compress(line("Dec 24 08:00:00", 5, "d@far.example").encode()))
    newest = datetime(2005, 1, 3, 12, 0, tzinfo=UTC).timestamp()
    stamps = {"mail.log": newest, "mail.log.1": newest - 86400, "mail.log.2.gz": newest - 7 * 86400}
    for name, when in stamps.items():
        if not trusted_mtimes and name != "mail.log":
            when = datetime(2026, 11, 1, tzinfo=UTC).timestamp()
        os.utime(logs / name, (when, when))
    return root


@pytest.mark.parametrize("trusted_mtimes", [True, False])
def test_rotated_files_parse_in_parallel_and_get_scans_years(tmp_path, trusted_mtimes, monkeypatch):
    """Each rotated file is its own task; when copying reset the older files' mtimes, the years from
    rotation order win (as in scan) and those files are parsed again, without doubling events."""
    monkeypatch.setattr("logforensics.batch.SMALL_RUN_BYTES", 0)  # really in parallel
    root = _rotated_postfix(tmp_path / "in", trusted_mtimes=trusted_mtimes)
    site = SiteProfile(timezone="UTC")
    scanned = scan([root], site)
    result = batch([root], site, tmp_path / "out", jobs=2, show_progress=False)
    assert comparable(result.detection.findings) == comparable(scanned.findings)
    assert sorted(t.year for t in result.detection.findings["time"]) == [2004, 2004, 2005, 2005]
    assert scan_events(tmp_path / "out").collect().height == scanned.events.height


def test_a_complete_profile_skips_inference_and_still_matches_scan(tmp_path):
    from logforensics.batch import site_is_complete

    site = load_site_profile(ROOT / "benchmarks" / "site-archive.toml")
    assert site_is_complete(site) and not site_is_complete(SiteProfile(timezone="UTC"))
    scanned = scan([SAMPLES], site)
    result = batch([SAMPLES], site, tmp_path / "out", jobs=1, show_progress=False)
    assert result.detection.site.inferred == {} and scanned.site.inferred == {}
    assert comparable(result.detection.findings) == comparable(scanned.findings)


def test_a_delivery_days_after_the_window_still_makes_the_relay(tmp_path):
    """Mail offered at 23:50 and delivered after a retry two days later: the outcome rows in the
    window's margin link it, so one-day windows give scan's verdict."""
    log = tmp_path / "in" / "mx1" / "var" / "log" / "mail.log"
    log.parent.mkdir(parents=True)
    log.write_text(
        "Jan  5 23:50:00 mx1 postfix/smtpd[100]: connect from spam.example[203.0.113.9]\n"
        "Jan  5 23:50:01 mx1 postfix/smtpd[100]: ABC123DEF0: client=spam.example[203.0.113.9]\n"
        "Jan  5 23:50:02 mx1 postfix/qmgr[200]: ABC123DEF0: from=<x@spam.example>, size=900, nrcpt=1 "
        "(queue active)\n"
        "Jan  5 23:50:03 mx1 postfix/smtp[300]: ABC123DEF0: to=<victim@far.example>, relay=none, delay=1, "
        "delays=0/0/1/0, dsn=4.4.1, status=deferred (connect to mx.far.example[198.51.100.7]:25: timed out)\n"
        "Jan  7 02:10:00 mx1 postfix/smtp[301]: ABC123DEF0: to=<victim@far.example>, "
        "relay=mx.far.example[198.51.100.7]:25, delay=8000, delays=0/0/1/1, dsn=2.0.0, status=sent (250 Ok)\n"
        "Jan  7 02:10:00 mx1 postfix/qmgr[200]: ABC123DEF0: removed\n")
    site = SiteProfile(timezone="UTC", local_domains=("acme-widgets.com",))
    scanned = scan([tmp_path / "in"], site, year=2005)
    result = batch([tmp_path / "in"], site, tmp_path / "out", jobs=1, show_progress=False, year=2005,
                   window_days=1)
    assert scanned.findings["verdict"].to_list() == ["relayed"]
    assert comparable(result.detection.findings) == comparable(scanned.findings)


def test_hour_windows_for_busy_servers_give_the_same_findings(tmp_path, monkeypatch):
    """With a tiny row budget every window is an hour long; the findings do not change."""
    import logforensics.batch as batch_module

    monkeypatch.setattr(batch_module, "WINDOW_ROWS", 20)
    site = load_site_profile(SAMPLES / "site.toml")
    scanned = scan([SAMPLES], site)
    windowed = batch([SAMPLES], site, tmp_path / "out", jobs=1, show_progress=False)
    assert comparable(windowed.detection.findings) == comparable(scanned.findings)


def test_evidence_is_quoted_from_the_lines_kept_at_parse_time_not_by_reading_the_file_again(tmp_path, monkeypatch):
    """Detection quotes cited lines from ``lines/<key>.parquet``; the evidence file is not re-read."""
    import logforensics.source_lines as source_lines

    root = tree(tmp_path, [*LOGS, *TRACKING])
    reference = batch([root], SITE, tmp_path / "ref", jobs=1, show_progress=False)
    stores = sorted((tmp_path / "ref" / "lines").glob("*.parquet"))
    assert len(stores) == len(LOGS) + len(TRACKING)
    kept = pl.read_parquet(stores[0])
    assert kept.columns == ["line", "text"] and kept["line"].is_sorted() and kept.height > 0

    def no_reread(path):
        raise AssertionError(f"evidence file read again: {path}")

    monkeypatch.setattr(source_lines, "read_source", no_reread)
    again = batch([root], SITE, tmp_path / "again", jobs=1, show_progress=False)
    assert comparable(again.detection.findings) == comparable(reference.detection.findings)
    assert all(e["text"] for f in again.detection.findings.iter_rows(named=True) for e in f["evidence"])


def test_a_line_missing_from_the_store_is_read_from_the_evidence_file(tmp_path):
    from logforensics.source_lines import SourceLines

    log = tmp_path / "a.log"
    log.write_text("one\ntwo\nthree\n")
    store = tmp_path / "a.parquet"
    pl.DataFrame({"line": [1, 3], "text": ["one", "three"]}).write_parquet(store)
    sha = __import__("hashlib").sha256(log.read_bytes()).hexdigest()
    lines = SourceLines({str(log): sha}, {str(log): str(store)})
    assert lines.texts(str(log), [3, 1]) == ["three", "one"]  # from the store, in the order asked
    log.write_text("ONE\nTWO\nTHREE\n")  # the store holds what was parsed, whatever the file says now
    assert lines.texts(str(log), [1]) == ["one"]
    assert lines.texts(str(log), [2]) == [None]  # not in the store: re-read, and the file changed
    assert "changed since it was parsed" in lines.warnings[0]


def test_this_process_shares_the_work_with_the_workers():
    """``_run_shared``: every task runs once, results come back under their own index."""
    from logforensics.batch import _close_pools, _run_shared

    seen: dict[int, tuple[int, bool]] = {}
    try:
        _run_shared(2, pow, [(i, 2) for i in range(12)], lambda i, r, here: seen.__setitem__(i, (r, here)))
    finally:
        _close_pools()
    assert {i: r for i, (r, _) in seen.items()} == {i: i * i for i in range(12)}
    assert any(here for _, here in seen.values())  # this process took some of them


def test_a_newer_rotation_arriving_later_gives_the_older_files_scans_years(tmp_path):
    """Run 1 sees only the older rotations (copied: their mtimes say 2026, so years are guessed
    from them); run 2 gets the newest file, whose position anchors the others as scan would."""
    root = _rotated_postfix(tmp_path / "in", trusted_mtimes=False)
    logs = root / "mx1" / "var" / "log"
    newest = tmp_path / "held-back-mail.log"
    (logs / "mail.log").rename(newest)
    site = SiteProfile(timezone="UTC")
    first = batch([root], site, tmp_path / "out", jobs=1, show_progress=False)
    assert {t.year for t in first.detection.findings["time"]} >= {2026}
    newest.rename(logs / "mail.log")
    scanned = scan([root], site)
    again = batch([root], site, tmp_path / "out", jobs=1, show_progress=False)
    assert comparable(again.detection.findings) == comparable(scanned.findings)
    assert sorted(t.year for t in again.detection.findings["time"]) == [2004, 2004, 2005, 2005]
    assert scan_events(tmp_path / "out").collect().height == scanned.events.height


def test_failed_logins_hours_before_a_window_still_mark_the_stolen_password_relay(tmp_path, monkeypatch):
    """LF-AUTH-ABUSE looks back 24 hours for failed logins; a window must load them even when they
    fall in an earlier window, hours before it starts (one-hour windows here)."""
    import logforensics.batch as batch_module

    monkeypatch.setattr(batch_module, "WINDOW_ROWS", 1)
    fails = "".join(
        f"Mar  3 0{h}:00:0{i} mx1 postfix/smtpd[{100 + h}]: warning: unknown[198.51.100.140]: SASL LOGIN "
        f"authentication failed: UGFzc3dvcmQ6, sasl_username=jsmith\n" for h in range(1, 4) for i in range(3))
    relay = ("Mar  3 09:12:00 mx1 postfix/smtpd[200]: connect from unknown[198.51.100.140]\n"
             "Mar  3 09:12:01 mx1 postfix/smtpd[200]: 4A1B2C3D4E: client=unknown[198.51.100.140], "
             "sasl_method=LOGIN, sasl_username=jsmith\n"
             "Mar  3 09:12:02 mx1 postfix/qmgr[300]: 4A1B2C3D4E: from=<jsmith@acme-widgets.com>, size=900, nrcpt=1 "
             "(queue active)\n"
             "Mar  3 09:12:03 mx1 postfix/smtp[301]: 4A1B2C3D4E: to=<buyer@far.example>, "
             "relay=mx.far.example[203.0.113.9]:25, delay=1, delays=0.1/0/0.4/0.5, dsn=2.0.0, status=sent (250 ok)\n"
             "Mar  3 09:12:04 mx1 postfix/smtpd[200]: disconnect from unknown[198.51.100.140]\n")
    logs = tmp_path / "in" / "mx1" / "var" / "log"
    logs.mkdir(parents=True)
    (logs / "mail.log").write_text(fails + relay)
    site = SiteProfile(timezone="UTC", local_domains=("acme-widgets.com",), relay_policy="authenticated-or-ip-allowlist")
    scanned = scan([tmp_path / "in"], site, year=2005)
    assert scanned.findings["rule"].to_list() == ["LF-AUTH-ABUSE"]
    windowed = batch([tmp_path / "in"], site, tmp_path / "out", jobs=1, year=2005, show_progress=False)
    assert comparable(windowed.detection.findings) == comparable(scanned.findings)


def test_many_small_windows_equal_one_pass_on_a_generated_archive(tmp_path, monkeypatch):
    """Windows of a few thousand events over a generated mixed archive (IMS protocol and tracking,
    rotated Postfix with brute-forced accounts) give exactly scan's findings and evidence."""
    import sys

    import logforensics.batch as batch_module

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from gen_archive import generate

    archive = generate(tmp_path / "archive", 10, seed=11)
    site = load_site_profile(ROOT / "benchmarks" / "site-archive.toml")
    scanned = scan([archive], site)
    monkeypatch.setattr(batch_module, "WINDOW_ROWS", 3000)
    windowed = batch([archive], site, tmp_path / "out", jobs=1, show_progress=False)
    assert scanned.findings.height > 500
    assert set(scanned.findings["rule"]) >= {"LF-AUTH-ABUSE", "LF-Q264330"}
    assert comparable(windowed.detection.findings) == comparable(scanned.findings)
