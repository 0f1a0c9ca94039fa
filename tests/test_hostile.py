"""Hostile and broken evidence (issue 8): never crash, never lose a finding, never touch the evidence.

Every case below is built at run time (no big files in the repository). The last tests put all of
them in one folder and scan it.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import io
import json
import lzma
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from logforensics import sources
from logforensics.cli import app
from logforensics.ingest import ingest
from logforensics.scan import scan
from logforensics.site import load_site_profile
from tests.conftest import ROOT, SAMPLES

runner = CliRunner()

IMS_LOG = SAMPLES / "ims55" / "EXCH01" / "Exchsrvr" / "Imcdata" / "Log" / "L0000000.LOG"
SITE_FILE = SAMPLES / "site-ims55.toml"
SITE = load_site_profile(SITE_FILE)
IMS_BYTES = IMS_LOG.read_bytes()
IMS_TEXT = IMS_BYTES.decode("utf-8")


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "logforensics", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, timeout=600)


def _log_path(folder: Path, name: str = "L0000000.LOG", server: str = "EXCH01") -> Path:
    p = folder / server / "Exchsrvr" / "Imcdata" / "Log" / name
    p.parent.mkdir(parents=True, exist_ok=True)
    return p


def _finding_keys(result, path_map=None) -> list[tuple]:
    """What identifies a finding, independent of the file it came from (rule, recipient, lines)."""
    out = []
    for f in result.findings.iter_rows(named=True):
        out.append((f["rule"], f["verdict"], f["recipient"], f["client_ip"],
                    tuple(e["line"] for e in f["evidence"]), tuple(e["text"] for e in f["evidence"])))
    return sorted(out)


@pytest.fixture(scope="module")
def reference():
    """The findings of the plain sample file: every hostile variant must give the same."""
    result = scan([IMS_LOG], SITE)
    assert result.findings.height > 10
    return _finding_keys(result)


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# Encodings


@pytest.mark.parametrize(("codec", "bom", "encoding"), [
    ("utf-16-le", codecs.BOM_UTF16_LE, "utf-16-le"),
    ("utf-16-be", codecs.BOM_UTF16_BE, "utf-16-be"),
    ("utf-8", codecs.BOM_UTF8, "utf-8-sig"),
])
def test_bom_encoded_copies_give_the_same_findings(tmp_path, reference, codec, bom, encoding):
    p = _log_path(tmp_path)
    p.write_bytes(bom + IMS_TEXT.encode(codec))
    result = scan([p], SITE)
    assert result.inputs[0].encoding == encoding
    assert result.inputs[0].lines == IMS_TEXT.count("\n")
    assert _finding_keys(result) == reference


def test_windows_1252_and_mixed_bytes_keep_every_line_and_byte_visible(tmp_path, reference):
    extra = ("6/14/00 11:59:58 PM : A connection was accepted from 198.51.100.9.\r\n"
             "6/14/00 11:59:59 PM : <<< HELO m\xfcller-pc\r\n").encode("cp1252")
    mixed = b"6/14/00 11:59:59 PM : <<< NOOP caf\xc3\xa9 \x81\x8d \xff\xfe\x00 end\r\n"
    p = _log_path(tmp_path)
    p.write_bytes(IMS_BYTES + extra + mixed)
    result = scan([p], SITE)
    report = result.inputs[0]
    assert report.encoding == "utf-8+windows-1252"
    assert report.lines == IMS_TEXT.count("\n") + 3
    assert any("not plain UTF-8" in w for w in report.warnings)
    assert _finding_keys(result) == reference
    ingested = ingest([p], SITE)
    helo = ingested.events.filter(ingested.events["line"] == report.lines - 1)["helo"].to_list()
    assert helo == ["müller-pc"]
    text = ingested.events.filter(ingested.events["line"] == report.lines)["text"][0]
    assert "café" in text and "\\x81" in text and "\\x8d" in text and "ÿþ" in text


# ---------------------------------------------------------------------------------------------
# Broken files


def test_binary_junk_and_empty_files_are_reported(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(os.urandom(1 << 16).replace(b"\x1f\x8b", b"..").replace(b"PK", b"..")
                     .replace(b"BZh", b"...").replace(b"\xfd7zXZ", b"....."))
    (tmp_path / "empty.log").write_bytes(b"")
    res = ingest([tmp_path], SITE)
    by = {Path(r.path).name: r for r in res.inputs}
    assert by["junk.bin"].status == "unrecognised"
    assert any("binary data" in w for w in by["junk.bin"].warnings)
    assert by["empty.log"].status == "empty"
    assert by["empty.log"].warnings == [f"{tmp_path / 'empty.log'}: empty file; nothing to read"]


@pytest.mark.parametrize("kind", ["gzip", "bzip2", "xz"])
def test_truncated_compressed_log_keeps_what_decompressed(tmp_path, kind):
    compress = {"gzip": gzip.compress, "bzip2": lambda b: bz2.compress(b, 1), "xz": lzma.compress}[kind]
    packed = compress(IMS_BYTES * 8)  # bzip2 blocks of 100 kB: a cut one is lost, the ones before are kept
    p = _log_path(tmp_path, "L0000000.LOG.z")
    p.write_bytes(packed[: len(packed) * 2 // 3])
    result = scan([p], SITE)
    report = result.inputs[0]
    assert report.compression == kind and report.status == "ok"
    assert any("truncated or corrupt" in w and "kept the" in w for w in report.warnings)
    assert 0 < report.lines < 8 * IMS_TEXT.count("\n")
    # what did decompress is read: the findings of those lines are there
    full = scan([IMS_LOG], SITE)
    last_line = report.lines - 1  # the last line may be cut in the middle
    expected = [k for k in _finding_keys(full) if max(k[4]) < last_line]
    got = _finding_keys(result)
    assert expected and all(k in got for k in expected)


def test_corrupt_and_truncated_zip_warn_and_the_run_goes_on(tmp_path):
    good = _zip({"L0000000.LOG": IMS_BYTES})
    (tmp_path / "cut.zip").write_bytes(good[: len(good) // 2])
    (tmp_path / "junk.zip").write_bytes(b"PK\x03\x04" + os.urandom(4000))
    bad_crc = bytearray(_zip({"a.log": IMS_BYTES}))
    bad_crc[60] ^= 0xFF  # inside the deflated data
    (tmp_path / "crc.zip").write_bytes(bytes(bad_crc))
    shutil.copy(IMS_LOG, _log_path(tmp_path))
    result = scan([tmp_path], SITE)
    by = {Path(r.path.split("!")[0]).name: r for r in result.inputs}
    for name in ("cut.zip", "junk.zip"):
        assert by[name].status == "unreadable"
        assert any("corrupt zip archive" in w for w in by[name].warnings), by[name].warnings
    assert any("zip member" in w for w in by["crc.zip"].warnings), by["crc.zip"].warnings
    assert by["L0000000.LOG"].events > 0 and result.findings.height > 10


def _deny(monkeypatch, victim: Path):
    real_open = open

    def fake_open(file, *args, **kwargs):
        if Path(file).resolve() == victim.resolve():
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(sources, "open", fake_open, raising=False)


def test_unreadable_file_is_reported_with_its_reason(tmp_path, monkeypatch, reference):
    secret = tmp_path / "secret.log"
    secret.write_bytes(IMS_BYTES)
    shutil.copy(IMS_LOG, _log_path(tmp_path))
    _deny(monkeypatch, secret)  # tests run as root: chmod 000 would not stop a read
    result = scan([tmp_path], SITE)
    by = {Path(r.path).name: r for r in result.inputs}
    assert by["secret.log"].status == "unreadable"
    assert by["secret.log"].warnings == [f"{secret}: cannot read: Permission denied"]
    assert _finding_keys(result) == reference


def _vanish_after_discovery(monkeypatch, module, victim: Path):
    real = module.iter_input_files

    def discover_then_delete(paths):
        found = list(real(paths))
        yield from found
        victim.unlink()  # gone between discovery and reading

    monkeypatch.setattr(module, "iter_input_files", discover_then_delete)


def test_a_file_that_disappears_during_the_run(tmp_path, monkeypatch, reference):
    import logforensics.ingest as ingest_module

    gone = tmp_path / "a-gone.log"
    gone.write_bytes(IMS_BYTES)
    shutil.copy(IMS_LOG, _log_path(tmp_path))
    _vanish_after_discovery(monkeypatch, ingest_module, gone)
    result = scan([tmp_path], SITE)
    by = {Path(r.path).name: r for r in result.inputs}
    assert by["a-gone.log"].status == "unreadable"
    assert "No such file or directory" in by["a-gone.log"].warnings[0]
    assert _finding_keys(result) == reference


def test_batch_reports_unreadable_and_vanished_files(tmp_path, monkeypatch):
    import logforensics.batch as batch_module

    ev = tmp_path / "ev"
    shutil.copy(IMS_LOG, _log_path(ev))
    gone, secret = ev / "gone.log", ev / "secret.log"
    gone.write_bytes(b"x\n")
    secret.write_bytes(b"y\n")
    _vanish_after_discovery(monkeypatch, batch_module, gone)
    _deny(monkeypatch, secret)
    result = batch_module.batch([ev], SITE, tmp_path / "out", jobs=1, show_progress=False)
    by = {Path(e["path"]).name: e for e in result.inputs}
    assert by["gone.log"]["status"] == "unreadable" and "No such file" in by["gone.log"]["warnings"][0]
    assert by["secret.log"]["status"] == "unreadable" and "Permission denied" in by["secret.log"]["warnings"][0]
    assert by["L0000000.LOG"]["status"] == "ok" and result.detection.findings.height > 10


def test_a_reader_bug_costs_only_its_input(tmp_path, monkeypatch, reference):
    from logforensics.readers import READERS

    shutil.copy(IMS_LOG, _log_path(tmp_path))
    (tmp_path / "20000615.log").write_bytes((SAMPLES / "ims55/EXCH01/Exchsrvr/Tracking.log/20000615.log")
                                            .read_bytes())
    reader = READERS["ims55-tracking"]

    def boom(self, lines, ctx):
        raise ValueError("reader bug")

    monkeypatch.setattr(reader, "read", boom)
    result = scan([tmp_path], SITE)
    by = {Path(r.path).name: r for r in result.inputs}
    assert by["20000615.log"].status == "error" and "reader bug" in by["20000615.log"].warnings[-1]
    assert by["L0000000.LOG"].events > 0


# ---------------------------------------------------------------------------------------------
# Absurd sizes


def test_a_30_mb_line_is_cut_and_the_lines_after_it_still_parse(tmp_path, reference):
    lines = IMS_TEXT.split("\n")
    at = 100  # before most findings: their line numbers must not move
    monster = "6/14/00 2:59:00 PM : <<< NOOP " + "A" * (30 << 20)
    p = _log_path(tmp_path)
    p.write_text("\n".join([*lines[:at], monster, *lines[at:]]), encoding="utf-8")
    result = scan([p], SITE)
    report = result.inputs[0]
    assert f"{p}:{at + 1}: line of {len(monster)} characters cut at {sources.MAX_LINE_CHARS}" in report.warnings
    shifted = [(r, v, rc, ip, tuple(ln + (ln > at) for ln in lines_), texts)
               for r, v, rc, ip, lines_, texts in reference]
    assert _finding_keys(result) == sorted(shifted)


def test_the_line_cap_keeps_line_numbers():
    from logforensics.ingest import cap_long_lines

    warnings: list[str] = []
    text = "a\n" + "x" * 10 + "\nb\n" + "y" * 12 + "\r\nc"
    out = cap_long_lines(text, "f", warnings, limit=5)
    assert out.split("\n") == ["a", "xxxxx" + "[... cut by logforensics: line longer than 5 characters]", "b",
                               "yyyyy" + "[... cut by logforensics: line longer than 5 characters]", "c"]
    assert warnings == ["f:2: line of 10 characters cut at 5", "f:4: line of 13 characters cut at 5"]
    assert cap_long_lines("short\n", "f", warnings, limit=5) == "short\n"


def _write_nul_bomb(path: Path, size: int, tail: bytes = b"") -> None:
    """``size`` NUL bytes, no newline, gzip streamed (never held in memory)."""
    block = b"\x00" * (1 << 20)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz:
        for _ in range(size >> 20):
            gz.write(block)
        gz.write(tail)


def test_decompression_is_capped_by_ratio(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "RATIO_FLOOR_BYTES", 1 << 20)
    p = tmp_path / "bomb.gz"
    _write_nul_bomb(p, 32 << 20)
    (src,) = sources.read_source(p)
    limit = sources.MAX_RATIO * p.stat().st_size
    assert len(src.data) == limit
    assert any(f"decompression stopped at {limit} bytes: ratio above {sources.MAX_RATIO}:1" in w
               for w in src.warnings)


def test_zip_bomb_members_share_one_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "RATIO_FLOOR_BYTES", 1 << 20)
    zeros = b"\x00" * (8 << 20)
    p = tmp_path / "bomb.zip"
    p.write_bytes(_zip({f"m{i}.log": zeros for i in range(6)}))
    members = sources.read_source(p)
    total = sum(len(m.data) for m in members)
    assert total == sources.MAX_RATIO * p.stat().st_size
    assert any("decompression stopped" in w for m in members for w in m.warnings)


@pytest.mark.slow
def test_one_gib_gzip_bomb_stays_under_2_gb(tmp_path):
    """1 GiB of NULs in a ~1 MB gzip with no newline: capped, warned, memory bounded."""
    ev = tmp_path / "ev"
    bomb = ev / "bomb.log.gz"
    bomb.parent.mkdir()
    _write_nul_bomb(bomb, 1 << 30)
    assert bomb.stat().st_size < 1_100_000
    shutil.copy(IMS_LOG, _log_path(ev))
    out = tmp_path / "scan.json"
    # a fresh parent whose only child is the scan, so that its peak RSS is the scan's alone
    measure = ("import resource, subprocess, sys; "
               "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode; "
               "print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    proc = subprocess.run([sys.executable, "-c", measure, sys.executable, "-m", "logforensics", "scan", str(ev),
                           "--site", str(SITE_FILE), "--format", "json", "--output", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    rc, peak_kib = (int(x) for x in proc.stdout.split())
    assert rc == 0, proc.stderr
    print(f"peak RSS of scan on the 1 GiB gzip bomb: {peak_kib / 1024:.0f} MiB")
    assert peak_kib < 2 << 20  # KiB: under 2 GiB
    doc = json.loads(out.read_bytes().decode("utf-8"))
    by = {Path(i["path"]).name: i for i in doc["inputs"]}
    warnings = by["bomb.log.gz"]["warnings"]
    assert any("decompression stopped at" in w and "ratio above" in w for w in warnings)
    assert any("line of" in w and "cut at" in w for w in warnings)
    assert by["L0000000.LOG"]["events"] > 0 and len(doc["findings"]) > 10


# ---------------------------------------------------------------------------------------------
# Archives


def _tree(*roots: Path) -> set[tuple[str, int, int]]:
    out = set()
    for root in roots:
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                p = Path(dirpath) / name
                st = p.lstat()
                out.add((str(p), st.st_size, st.st_mtime_ns))
    return out


def test_zip_members_are_never_extracted_whatever_their_name(tmp_path, monkeypatch, reference):
    ev = tmp_path / "case" / "ev"
    ev.mkdir(parents=True)
    archive = ev / "evil.zip"
    archive.write_bytes(_zip({"../../x": IMS_BYTES, "/tmp/abs-evil.log": b"hello\n",
                              "..\\..\\win.log": b"x\n", "EXCH01/Exchsrvr/Imcdata/Log/L0000000.LOG": IMS_BYTES}))

    def no_extract(*args, **kwargs):
        raise AssertionError("a zip member was extracted")

    monkeypatch.setattr(zipfile.ZipFile, "extract", no_extract)
    monkeypatch.setattr(zipfile.ZipFile, "extractall", no_extract)
    monkeypatch.chdir(ev)  # where a relative extraction would land: ../../x is tmp_path/x
    before = _tree(tmp_path)
    result = scan([ev], SITE)
    assert _tree(tmp_path) == before  # nothing was written
    assert not (tmp_path / "x").exists() and not Path("/tmp/abs-evil.log").exists()
    names = sorted(r.path for r in result.inputs)
    assert names == sorted(f"{archive}!{m}" for m in (
        "../../x", "/tmp/abs-evil.log", "..\\..\\win.log", "EXCH01/Exchsrvr/Imcdata/Log/L0000000.LOG"))
    by = {r.path.split("!", 1)[1]: r for r in result.inputs}
    assert by["../../x"].events > 0
    # the same bytes twice in one archive are counted once, so the findings are the sample's
    assert [k[:4] for k in _finding_keys(result)] == [k[:4] for k in reference]


def test_nested_archives_are_followed_to_a_fixed_depth(tmp_path):
    gz_member = gzip.compress(IMS_BYTES)
    level3 = _zip({"inner.zip": _zip({"L0000000.LOG.gz": gz_member})})  # zip > zip > gzip: 3 layers
    level4 = _zip({"a.zip": _zip({"b.zip": _zip({"c.zip": _zip({"L0000000.LOG": IMS_BYTES})})})})  # 4 layers
    (tmp_path / "ok.zip").write_bytes(level3)
    (tmp_path / "deep.zip").write_bytes(level4)
    res = ingest([tmp_path], SITE)
    by = {r.path: r for r in res.inputs}
    ok = by[f"{tmp_path / 'ok.zip'}!inner.zip!L0000000.LOG.gz"]
    assert ok.compression == "zip+zip+gzip" and ok.events > 0 and ok.status == "ok"
    deep = by[f"{tmp_path / 'deep.zip'}!a.zip!b.zip!c.zip"]
    assert deep.status == "unreadable" and deep.events == 0
    assert any(f"nested 4 layers deep (limit {sources.MAX_ARCHIVE_DEPTH}); not opened" in w for w in deep.warnings)


# ---------------------------------------------------------------------------------------------
# Evidence integrity


def _snapshot(paths: list[Path]) -> dict[str, tuple]:
    out = {}
    for p in paths:
        st = p.stat()
        out[str(p)] = (p.read_bytes(), st.st_mtime_ns, st.st_ctime_ns, st.st_mode, st.st_ino, st.st_size)
    return out


def test_inputs_are_never_modified_by_scan_batch_report_verify_or_parse(tmp_path):
    ev = tmp_path / "ev"
    plain = _log_path(ev)
    plain.write_bytes(IMS_BYTES)
    gz = _log_path(ev, "L0000001.LOG.gz")
    gz.write_bytes(gzip.compress(IMS_LOG.with_name("L0000001.LOG").read_bytes()))
    zp = ev / "tracking.zip"
    zp.write_bytes(_zip({"EXCH01/Exchsrvr/Tracking.log/20000615.log":
                         (IMS_LOG.parents[2] / "Tracking.log" / "20000615.log").read_bytes()}))
    files = [plain, gz, zp]
    for p in files:
        os.chmod(p, 0o444)
    before = _snapshot(files)
    out = tmp_path / "out"
    runs = [
        ["scan", str(ev), "--site", str(SITE_FILE), "--format", "json", "-o", str(out / "scan.json")],
        ["scan", str(ev), "--site", str(SITE_FILE), "--format", "csv", "-o", str(out / "scan.csv")],
        ["parse", str(ev), "--site", str(SITE_FILE), "-o", str(out / "events.parquet")],
        ["batch", str(ev), "--site", str(SITE_FILE), "-o", str(out / "batch"), "-j", "1", "-q"],
        ["report", str(ev), "--site", str(SITE_FILE), "-o", str(out / "report.html")],
        ["verify", str(out / "scan.json")],
        ["verify", str(out / "batch")],
    ]
    for args in runs:
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.output)
    assert _snapshot(files) == before
    assert sorted(p.name for p in ev.rglob("*") if p.is_file()) == sorted(p.name for p in files)


# ---------------------------------------------------------------------------------------------
# Output safety

HOSTILE_LOG = (
    "6/14/00 11:47:05 PM : A connection was accepted from 203.0.113.77.\r\n"
    "6/14/00 11:47:06 PM : <<< HELO =cmd|' /C calc'!A0\r\n"
    "6/14/00 11:47:07 PM : <<< MAIL FROM:<+SUM(1+1)@evil.example>\r\n"
    "6/14/00 11:47:08 PM : <<< RCPT TO:<=HYPERLINK(\"http://x\")%evil.example@acme-widgets.com>\r\n"
    "6/14/00 11:47:08 PM : >>> 250 OK - Recipient\r\n"
    "6/14/00 11:47:09 PM : <<< RCPT TO:<@evil.example:-2+3@acme-widgets.com>\r\n"
    "6/14/00 11:47:09 PM : >>> 250 OK - Recipient\r\n"
    "6/14/00 11:47:10 PM : <<< RCPT TO:<\"\tvictim@evil.example\"@acme-widgets.com>\r\n"
    "6/14/00 11:47:10 PM : >>> 250 OK - Recipient\r\n"
)


def test_scan_csv_neutralises_formulas_and_keeps_the_text(tmp_path):
    p = _log_path(tmp_path)
    p.write_text(HOSTILE_LOG, encoding="utf-8")
    out = tmp_path / "f.csv"
    result = runner.invoke(app, ["scan", str(p), "--site", str(SITE_FILE), "--format", "csv", "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert len(rows) >= 3
    cells = [c for r in rows for c in r.values() if c]
    assert not [c for c in cells if c[0] in "=+-@\t\r"]
    recipients = {r["recipient"] for r in rows}
    assert "'=HYPERLINK(\"http://x\")%evil.example@acme-widgets.com" in recipients
    assert "'@evil.example:-2+3@acme-widgets.com" in recipients
    assert {r["sender"] for r in rows} == {"'+SUM(1+1)@evil.example"}


def test_csv_neutralisation_of_every_dangerous_start():
    import polars as pl

    from logforensics.output import neutralise_csv

    frame = pl.DataFrame({"s": ["=a", "+a", "-a", "@a", "\ta", "\ra", "a=", " =a", ""],
                          "l": [["=x", "y"]] * 9})
    out = neutralise_csv(frame)
    assert out["s"].to_list() == ["'=a", "'+a", "'-a", "'@a", "'\ta", "'\ra", "a=", " =a", ""]
    assert out["l"][0] == "'=x; y"


def test_scan_json_is_valid_utf8_whatever_the_bytes(tmp_path):
    raw = HOSTILE_LOG.encode("utf-8") + (
        b"6/14/00 11:47:11 PM : <<< RCPT TO:<ab\xff\xfe\x81\x00\x1b[31m\x07\x7f\xed\xa0\x80x%evil.example"
        b"@acme-widgets.com>\r\n6/14/00 11:47:11 PM : >>> 250 OK\r\n")
    p = _log_path(tmp_path)
    p.write_bytes(raw)
    out = tmp_path / "s.json"
    result = runner.invoke(app, ["scan", str(p), "--site", str(SITE_FILE), "--format", "json", "-o", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_bytes().decode("utf-8", errors="strict"))
    texts = [e["text"] for f in doc["findings"] for e in f["evidence"]]
    assert any("\x00\x1b[31m\x07" in t and "\\x81" in t for t in texts)
    parse_out = tmp_path / "e.jsonl"
    result = runner.invoke(app, ["parse", str(p), "-o", str(parse_out)])
    assert result.exit_code == 0
    for line in parse_out.read_bytes().decode("utf-8", errors="strict").splitlines():
        json.loads(line)


# ---------------------------------------------------------------------------------------------
# Errors and --strict


@pytest.mark.parametrize("command", [
    ["parse", "-o", "{tmp}/x.csv"], ["scan"], ["batch", "-o", "{tmp}/b"], ["report", "-o", "{tmp}/r.html"],
])
def test_missing_input_is_one_line_and_exit_2(tmp_path, command):
    args = [a.format(tmp=tmp_path) for a in command]
    proc = _cli(*args[:1], str(tmp_path / "nope.log"), *args[1:])
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {tmp_path / 'nope.log'}: no such file or folder"
    assert "Traceback" not in proc.stderr


def test_bad_site_profiles_name_the_key_or_line(tmp_path):
    shutil.copy(IMS_LOG, tmp_path / "L0000000.LOG")
    syntax = tmp_path / "syntax.toml"
    syntax.write_text('timezone = "UTC"\nlocal_domains = [\n', encoding="utf-8")
    key = tmp_path / "key.toml"
    key.write_text('timezone = "Mars/Olympus"\n', encoding="utf-8")
    for bad, where in ((syntax, f"{syntax}:"), (key, "[timezone]")):
        proc = _cli("scan", str(tmp_path / "L0000000.LOG"), "--site", str(bad))
        assert proc.returncode == 2, proc.stderr
        assert where in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1


def test_usage_and_output_errors_exit_2_without_traceback(tmp_path):
    proc = _cli("scan", str(IMS_LOG), "--no-such-option")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    folder = tmp_path / "out.csv"
    folder.mkdir()
    proc = _cli("parse", str(IMS_LOG), "-o", str(folder))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "error:" in proc.stderr
    proc = _cli("verify", str(IMS_LOG))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_strict_turns_warnings_into_exit_4_after_writing(tmp_path):
    clean = _log_path(tmp_path / "clean")
    clean.write_bytes(IMS_BYTES)
    dirty = tmp_path / "dirty"
    shutil.copytree(tmp_path / "clean", dirty)
    (dirty / "junk.bin").write_bytes(b"\x00\x01\x02 not a log\n")
    for cmd, out in (("scan", "s.json"), ("parse", "e.parquet"), ("batch", "b")):
        extra = ["--format", "json"] if cmd == "scan" else (["-q"] if cmd == "batch" else [])
        ok = _cli(cmd, str(clean), "--site", str(SITE_FILE), "-o", str(tmp_path / f"clean-{out}"), *extra,
                  "--strict")
        assert ok.returncode == 0, ok.stderr
        bad = _cli(cmd, str(dirty), "--site", str(SITE_FILE), "-o", str(tmp_path / f"dirty-{out}"), *extra,
                   "--strict")
        assert bad.returncode == 4, bad.stderr
        assert "--strict" in bad.stderr and "junk.bin" in bad.stderr and "Traceback" not in bad.stderr
        assert (tmp_path / f"dirty-{out}").exists()  # the output is written first
    assert _cli("scan", str(dirty), "--site", str(SITE_FILE), "--format", "json").returncode == 0


# ---------------------------------------------------------------------------------------------
# Everything together


def build_hostile_folder(root: Path, bomb_bytes: int) -> dict[str, str]:
    """One evidence folder holding every hostile case; returns name -> what it is."""
    cases: dict[str, str] = {}

    def put(rel: str, data: bytes, what: str) -> None:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        cases[rel] = what

    put("junk.bin", os.urandom(1 << 16).replace(b"\x1f\x8b", b"..").replace(b"PK", b".."), "binary")
    put("empty.log", b"", "empty")
    put("U16LE/Exchsrvr/Imcdata/Log/L0000000.LOG", codecs.BOM_UTF16_LE + IMS_TEXT.encode("utf-16-le"),
        "utf-16-le copy of the sample")
    put("U16BE/Exchsrvr/Imcdata/Log/L0000000.LOG", codecs.BOM_UTF16_BE + IMS_TEXT.encode("utf-16-be"),
        "utf-16-be copy of the sample")
    put("CP1252/Exchsrvr/Imcdata/Log/L0000000.LOG",
        IMS_BYTES + "6/14/00 11:59:59 PM : <<< HELO m\xfcller\r\n".encode("cp1252"), "cp1252")
    for kind, fn in (("gz", gzip.compress), ("bz2", lambda b: bz2.compress(b, 1)), ("xz", lzma.compress)):
        packed = fn(IMS_BYTES * 8)
        put(f"cut.log.{kind}", packed[:-200], f"truncated {kind}")
    good_zip = _zip({"L0000000.LOG": IMS_BYTES})
    put("corrupt.zip", good_zip[: len(good_zip) // 2], "corrupt zip")
    put("evil.zip", _zip({"../../x": b"6/14/00 2:00:00 PM : hello\r\n", "/etc/evil": b"x\n"}), "zip slip names")
    put("deep.zip", _zip({"a.zip": _zip({"b.zip": _zip({"c.zip": _zip({"d.log": IMS_BYTES})})})}),
        "nested beyond depth")
    lines = IMS_TEXT.split("\n")
    put("LONG/Exchsrvr/Imcdata/Log/L0000000.LOG",
        "\n".join([*lines[:100], "6/14/00 2:59:00 PM : <<< NOOP " + "A" * (30 << 20), *lines[100:]])
        .encode(), "30 MB line")
    bomb = root / "bomb.log.gz"
    _write_nul_bomb(bomb, bomb_bytes)
    cases["bomb.log.gz"] = "gzip bomb"
    put("secret.log", IMS_BYTES, "unreadable")
    put("PLAIN/Exchsrvr/Imcdata/Log/L0000000.LOG", IMS_BYTES, "plain sample")
    return cases


def test_scan_over_a_folder_of_every_hostile_case(tmp_path, monkeypatch, reference):
    ev = tmp_path / "ev"
    cases = build_hostile_folder(ev, 300 << 20)
    _deny(monkeypatch, ev / "secret.log")
    monkeypatch.chdir(tmp_path)
    before = _tree(tmp_path)
    out = tmp_path / "out" / "scan.json"
    result = runner.invoke(app, ["scan", "ev", "--site", str(SITE_FILE), "--format", "json", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert {p for p in _tree(tmp_path) - before if not p[0].startswith(str(tmp_path / "out"))} == set()
    doc = json.loads(out.read_bytes().decode("utf-8"))
    inputs = {i["path"]: i for i in doc["inputs"]}

    def one(rel: str) -> dict:
        hits = [i for p, i in inputs.items() if p == f"ev/{rel}" or p.startswith(f"ev/{rel}!")]
        assert hits, rel
        return hits[0]

    for rel in cases:
        assert one(rel)["status"], rel
    assert one("junk.bin")["status"] == "unrecognised" and one("junk.bin")["warnings"]
    assert one("empty.log")["status"] == "empty" and one("empty.log")["warnings"]
    for kind in ("gz", "bz2", "xz"):
        assert any("truncated or corrupt" in w for w in one(f"cut.log.{kind}")["warnings"])
    assert one("corrupt.zip")["status"] == "unreadable"
    assert "ev/evil.zip!../../x" in inputs and "ev/evil.zip!/etc/evil" in inputs
    assert any("not opened" in w for w in one("deep.zip")["warnings"])
    assert any("cut at" in w for w in one("LONG/Exchsrvr/Imcdata/Log/L0000000.LOG")["warnings"])
    assert any("decompression stopped" in w for w in one("bomb.log.gz")["warnings"])
    assert one("secret.log")["status"] == "unreadable" and "Permission denied" in one("secret.log")["warnings"][0]
    for rel in ("U16LE", "U16BE", "CP1252", "LONG"):
        assert one(f"{rel}/Exchsrvr/Imcdata/Log/L0000000.LOG")["events"] > 0, rel
    # the valid logs inside: each copy gives the sample's findings (same recipients, same lines)
    for server in ("PLAIN", "U16LE", "U16BE", "CP1252"):
        path = f"ev/{server}/Exchsrvr/Imcdata/Log/L0000000.LOG"
        mine = [f for f in doc["findings"] if f["evidence"][0]["path"] == path]
        got = sorted((f["rule"], f["verdict"], f["recipient"], f["client_ip"],
                      tuple(e["line"] for e in f["evidence"]), tuple(e["text"] for e in f["evidence"]))
                     for f in mine)
        assert got == reference, server
    long_path = "ev/LONG/Exchsrvr/Imcdata/Log/L0000000.LOG"
    long_findings = [f for f in doc["findings"] if f["evidence"][0]["path"] == long_path]
    assert sorted((f["rule"], f["recipient"]) for f in long_findings) == sorted(k[:3:2] for k in reference)
    # findings of valid content inside the damaged files are there too
    for kind in ("gz", "bz2", "xz"):
        assert one(f"cut.log.{kind}")["events"] > 0


def test_a_file_with_cr_line_ends_only_is_read_line_by_line(tmp_path):
    """Classic Mac OS line ends (CR alone, no LF anywhere in the file) are line ends too."""
    from tests.conftest import read_log

    text = ("6/14/00 11:50:00 PM : A connection was accepted from 203.0.113.9.\r"
            "6/14/00 11:50:00 PM : <<< RCPT TO:<v@hotmail.com>\r"
            "6/14/00 11:50:00 PM : >>> 550 Relaying is prohibited\r")
    res = read_log(tmp_path, text)
    report = res.inputs[0]
    assert (report.format, report.lines, report.events) == ("ims55-protocol", 3, 3)
    rcpt = res.events.filter(res.events["event"] == "rcpt").row(0, named=True)
    assert (rcpt["line"], rcpt["reply"], rcpt["reply_line"]) == (2, 550, 3)
