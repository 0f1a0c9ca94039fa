"""``logforensics verify``: re-hash the inputs of an earlier scan or batch run and report changes."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from logforensics.cli import app
from logforensics.verify import verify
from tests.conftest import ROOT, SAMPLES

runner = CliRunner()
IMS = SAMPLES / "ims55" / "EXCH01" / "Exchsrvr"
SITE = str(SAMPLES / "site-ims55.toml")


@pytest.fixture
def evidence(tmp_path):
    ev = tmp_path / "ev"
    log = ev / "EXCH01" / "Exchsrvr" / "Imcdata" / "Log"
    log.mkdir(parents=True)
    shutil.copy(IMS / "Imcdata/Log/L0000000.LOG", log / "L0000000.LOG")
    (log / "L0000001.LOG.gz").write_bytes(gzip.compress((IMS / "Imcdata/Log/L0000001.LOG").read_bytes()))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("EXCH01/Exchsrvr/Tracking.log/20000614.log", (IMS / "Tracking.log/20000614.log").read_bytes())
        z.writestr("EXCH01/Exchsrvr/Tracking.log/20000615.log", (IMS / "Tracking.log/20000615.log").read_bytes())
    (ev / "tracking.zip").write_bytes(buf.getvalue())
    return ev


def _scan(ev: Path, out: Path) -> Path:
    result = runner.invoke(app, ["scan", str(ev), "--site", SITE, "--format", "json", "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_unchanged_scan_inputs_verify_ok(evidence, tmp_path):
    doc = _scan(evidence, tmp_path / "scan.json")
    checks = verify(doc)
    assert len(checks) == 4 and {c.status for c in checks} == {"ok"}
    assert sum("!" in c.path for c in checks) == 2  # zip members re-read from the archive
    result = runner.invoke(app, ["verify", str(doc)])
    assert result.exit_code == 0 and result.output.count("ok  ") == 4


def test_changed_missing_and_member_changes_exit_1(evidence, tmp_path):
    doc = _scan(evidence, tmp_path / "scan.json")
    log = evidence / "EXCH01/Exchsrvr/Imcdata/Log/L0000000.LOG"
    st = log.stat()
    log.write_bytes(log.read_bytes().replace(b"jsmith", b"jsmitH"))
    os.utime(log, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size and mtime: only the hash tells
    (evidence / "EXCH01/Exchsrvr/Imcdata/Log/L0000001.LOG.gz").unlink()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("EXCH01/Exchsrvr/Tracking.log/20000614.log", (IMS / "Tracking.log/20000614.log").read_bytes())
        z.writestr("EXCH01/Exchsrvr/Tracking.log/20000615.log", b"tampered\n")
    (evidence / "tracking.zip").write_bytes(buf.getvalue())
    status = {Path(c.path.split("!")[-1]).name: c.status for c in verify(doc)}
    assert status == {"L0000000.LOG": "changed", "L0000001.LOG.gz": "missing", "20000614.log": "ok",
                      "20000615.log": "changed"}
    result = runner.invoke(app, ["verify", str(doc), "--format", "json"])
    assert result.exit_code == 1
    rows = json.loads(result.output)
    changed = next(r for r in rows if r["path"].endswith("L0000000.LOG"))
    assert changed["expected"] != changed["actual"] and len(changed["actual"]) == 64


def test_a_removed_member_and_a_missing_archive(evidence, tmp_path):
    doc = _scan(evidence, tmp_path / "scan.json")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("EXCH01/Exchsrvr/Tracking.log/20000614.log", (IMS / "Tracking.log/20000614.log").read_bytes())
    (evidence / "tracking.zip").write_bytes(buf.getvalue())
    missing = [c for c in verify(doc) if c.status == "missing"]
    assert [Path(c.path).name for c in missing] == ["20000615.log"] and "no such member" in missing[0].detail
    (evidence / "tracking.zip").unlink()
    assert sorted(c.status for c in verify(doc) if "!" in c.path) == ["missing", "missing"]


def test_batch_folder_and_manifest(evidence, tmp_path):
    out = tmp_path / "batch"
    result = runner.invoke(app, ["batch", str(evidence), "--site", SITE, "-o", str(out), "-j", "1", "-q"])
    assert result.exit_code == 0, result.output
    for target in (out, out / "manifest.json"):
        checks = verify(target)
        assert {c.status for c in checks} == {"ok"}
        assert sorted(Path(c.path).name for c in checks) == ["L0000000.LOG", "L0000001.LOG.gz", "tracking.zip"]
    (evidence / "tracking.zip").write_bytes(b"PK\x05\x06" + bytes(18))
    assert runner.invoke(app, ["verify", str(out)]).exit_code == 1


def test_relative_paths_and_root(evidence, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    doc = _scan(Path("ev"), tmp_path / "scan.json")
    assert all(not i["path"].startswith("/") for i in json.loads(doc.read_text())["inputs"])
    monkeypatch.chdir(ROOT)
    assert {c.status for c in verify(doc)} == {"missing"}
    assert {c.status for c in verify(doc, root=tmp_path)} == {"ok"}
    assert runner.invoke(app, ["verify", str(doc), "--root", str(tmp_path)]).exit_code == 0


def test_inputs_the_run_could_not_read_are_not_hashed(tmp_path):
    doc = tmp_path / "scan.json"
    doc.write_text(json.dumps({"inputs": [{"path": str(tmp_path / "gone.log"), "sha256": "", "status": "unreadable"}]}))
    (check,) = verify(doc)
    assert check.status == "not-hashed"
    assert runner.invoke(app, ["verify", str(doc)]).exit_code == 0


def test_verify_never_writes_or_touches_the_evidence(evidence, tmp_path):
    doc = _scan(evidence, tmp_path / "scan.json")
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_mode) for p in evidence.rglob("*") if p.is_file()}
    assert {c.status for c in verify(doc)} == {"ok"}
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_mode) for p in evidence.rglob("*") if p.is_file()}
    assert after == before


@pytest.mark.parametrize("content", [b"not json", b"[1, 2]", b'{"findings": []}', b"\xff\xfe"])
def test_a_bad_result_file_is_a_user_error(tmp_path, content):
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    proc = subprocess.run([sys.executable, "-m", "logforensics", "verify", str(bad)], capture_output=True,
                          text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: {bad}: not a scan JSON document or batch manifest")
    assert "Traceback" not in proc.stderr
