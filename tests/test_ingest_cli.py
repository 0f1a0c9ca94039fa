"""Ingest (sources, sniffing, server names) and the parse/formats commands end to end."""

from __future__ import annotations

import gzip
import json

import polars as pl
import pytest
from typer.testing import CliRunner

from logforensics.cli import app
from logforensics.ingest import ingest, server_from_path
from logforensics.output import neutralise_csv
from logforensics.site import SiteProfile

runner = CliRunner()

PROTO = ("6/14/00 11:47:05 PM : A connection was accepted from 203.0.113.77.\r\n"
         "6/14/00 11:47:06 PM : <<< HELO =cmd|' /C calc'!A0\r\n"
         "6/14/00 11:47:11 PM : <<< RCPT TO:<\"IMCEA victim@hotmail.com\" @acme-widgets.com>\r\n"
         "6/14/00 11:47:11 PM : >>> 250 OK - Recipient <\"IMCEA victim@hotmail.com\"@acme-widgets.com>\r\n")


@pytest.mark.parametrize(("path", "server"), [
    ("evidence/EXCH01/Exchsrvr/Imcdata/Log/L0000000.LOG", "EXCH01"),
    ("evidence/EXCH02/Imcdata/Log/L0000001.LOG", "EXCH02"),
    ("D/EXCH03/exchsrvr/Tracking.log/20000615.log", "EXCH03"),
    ("archive.zip!EXCH04/Exchsrvr/Tracking.log/20000615.log", "EXCH04"),
    ("logs/L0000000.LOG", None),
    ("x/EXCH05/TransportRoles/Logs/ProtocolLog/SmtpReceive/RECV2010061500-1.LOG", "EXCH05"),
    ("/mnt/EXCH06/Program Files/Microsoft/Exchange Server/V14/TransportRoles/Logs/MessageTracking/MSGTRK.LOG",
     "EXCH06"),
    ("C:\\Program Files\\Microsoft\\Exchange Server\\V15\\TransportRoles\\Logs\\SEND1.LOG", None),
])
def test_server_from_path(path, server):
    assert server_from_path(path) == server


def test_gzip_detected_by_magic_not_suffix(tmp_path):
    p = tmp_path / "EXCH01" / "Imcdata" / "Log" / "L0000000.LOG"
    p.parent.mkdir(parents=True)
    p.write_bytes(gzip.compress(PROTO.encode()))
    res = ingest([tmp_path], SiteProfile(timezone="America/Chicago"))
    report = res.inputs[0]
    assert (report.format, report.compression, report.events) == ("ims55-protocol", "gzip", 4)
    assert set(res.events["server"].to_list()) == {"EXCH01"}
    assert res.events["client_ip"][0] == "203.0.113.77"


def test_unrecognised_and_empty_files_are_reported_not_fatal(tmp_path):
    (tmp_path / "notes.txt").write_text("hello\nworld\n")
    (tmp_path / "empty.log").write_bytes(b"")
    (tmp_path / "L0000000.LOG").write_text(PROTO)
    res = ingest([tmp_path], SiteProfile(timezone="UTC"))
    by_name = {r.path.rsplit("/", 1)[-1]: r for r in res.inputs}
    assert by_name["notes.txt"].status == "unrecognised"
    assert by_name["notes.txt"].skipped_lines == 2
    assert by_name["empty.log"].status == "empty" and by_name["empty.log"].warnings
    assert by_name["L0000000.LOG"].events == 4


def test_parse_command_writes_each_output_type(tmp_path):
    log = tmp_path / "L0000000.LOG"
    log.write_text(PROTO)
    site = tmp_path / "site.toml"
    site.write_text('timezone = "America/Chicago"\n')
    for suffix in (".parquet", ".csv", ".jsonl"):
        out = tmp_path / f"events{suffix}"
        result = runner.invoke(app, ["parse", str(log), "--site", str(site), "--output", str(out)])
        assert result.exit_code == 0, result.output
        assert "ims55-protocol" in result.output
    frame = pl.read_parquet(tmp_path / "events.parquet")
    assert frame.height == 4
    assert frame["ts"][2].isoformat() == "2000-06-15T04:47:11+00:00"
    first = json.loads((tmp_path / "events.jsonl").read_text().splitlines()[2])
    assert first["recipient"] == '"IMCEA victim@hotmail.com" @acme-widgets.com'
    csv_text = (tmp_path / "events.csv").read_text()
    assert ",'=cmd|'," in csv_text  # the HELO name column: formula neutralised, text kept
    assert "\n=cmd" not in csv_text and ",=cmd" not in csv_text


def test_csv_neutralisation_rules():
    frame = pl.DataFrame({"a": ["=1+1", "+x", "-y", "@z", "\tt", "\rr", "ok", None], "n": list(range(8))})
    assert neutralise_csv(frame)["a"].to_list() == ["'=1+1", "'+x", "'-y", "'@z", "'\tt", "'\rr", "ok", None]


def test_user_errors_exit_2_without_traceback(tmp_path):
    result = runner.invoke(app, ["parse", str(tmp_path / "missing"), "-o", str(tmp_path / "x.csv")])
    assert result.exit_code != 0
    bad = tmp_path / "site.toml"
    bad.write_text('relay_policy = "whatever"\n')
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-m", "logforensics", "parse", str(tmp_path), "--site", str(bad),
                           "-o", str(tmp_path / "x.csv")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "[relay_policy]" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "logforensics", "parse", str(tmp_path / "missing"),
                           "-o", str(tmp_path / "x.csv")], capture_output=True, text=True)
    assert proc.returncode == 2 and "no such file or folder" in proc.stderr and "Traceback" not in proc.stderr


def test_formats_lists_every_reader():
    result = runner.invoke(app, ["formats"])
    assert result.exit_code == 0
    assert "ims55-protocol" in result.output and "ims55-tracking" in result.output


def test_classify_command_json():
    result = runner.invoke(app, ["classify", '"IMCEA user@domain2.com" @localdomain1.com', "jsmith@localdomain1.com",
                                 "--local-domain", "localdomain1.com", "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [d["address"] for d in data] == ['"IMCEA user@domain2.com" @localdomain1.com', "jsmith@localdomain1.com"]
    assert (data[0]["form"], data[0]["effective_recipient"], data[0]["external"]) == (
        "imcea-quoted", "user@domain2.com", True)
    assert (data[1]["form"], data[1]["effective_recipient"], data[1]["external"]) == ("plain", None, False)
    assert all(d["explanation"] for d in data)
    table = runner.invoke(app, ["classify", "a%b.com@x.org", "--local-domain", "x.org"])
    assert table.exit_code == 0 and "percent-hack" in table.output and "a@b.com" in table.output
