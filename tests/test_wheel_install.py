"""The wheel carries both packages (``logforensics`` and the top-level ``grammars``) and works alone.

Builds the wheel, installs it in a fresh virtual environment outside the checkout, and runs
``logforensics parse`` there, so nothing can be imported from the source tree by accident.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLES

pytestmark = pytest.mark.slow

LOG = ("6/14/00 11:47:05 PM : A connection was accepted from 203.0.113.77.\r\n"
       "6/14/00 11:47:11 PM : <<< RCPT TO:<\"IMCEA victim@hotmail.com\" @acme-widgets.com>\r\n"
       "6/14/00 11:47:11 PM : >>> 250 OK - Recipient <x>\r\n")


def test_wheel_installs_and_parses(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
                   check=True, cwd=tmp_path)
    wheel = next(dist.glob("logforensics-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "grammars/ims55_protocol.py" in names and "logforensics/cli.py" in names

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", str(wheel)], check=True, cwd=tmp_path)

    samples = sorted(SAMPLES.rglob("L*.LOG"))
    if samples:
        log = samples[0]
    else:
        log = tmp_path / "L0000000.LOG"
        log.write_text(LOG)
    out = tmp_path / "events.csv"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([str(env_dir / "bin" / "logforensics"), "parse", str(log), "-o", str(out)],
                          capture_output=True, text=True, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "ims55-protocol" in proc.stderr
    assert out.read_text().count("\n") > 2
    where = subprocess.run([str(py), "-c", "import grammars, logforensics; print(grammars.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, check=True).stdout
    assert str(Path(env_dir)) in where
