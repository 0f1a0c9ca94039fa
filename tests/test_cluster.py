"""batch --scheduler: a real Dask scheduler and two workers on loopback give exactly a local run's results.

The cluster tests need the optional extra (``pip install -e '.[test,dask]'``, which CI installs) and
skip, saying so, without it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from importlib.util import find_spec
from pathlib import Path

import polars as pl
import pytest

from logforensics import cluster
from logforensics.batch import batch, scan_events
from logforensics.errors import LogForensicsError
from logforensics.site import load_site_profile
from tests.conftest import ROOT, SAMPLES
from tests.test_batch import comparable

needs_dask = pytest.mark.skipif(find_spec("distributed") is None,
                                reason="Dask distributed is not installed (pip install -e '.[test,dask]')")

SITE_IMS = load_site_profile(SAMPLES / "site-ims55.toml")
SITE_ALL = load_site_profile(SAMPLES / "site.toml")
SITE_GEN = load_site_profile(ROOT / "benchmarks" / "site.toml")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoopbackCluster:
    """``dask scheduler`` and two ``dask worker`` processes (one process, one thread each) on 127.0.0.1."""

    def __init__(self, tmp: Path) -> None:
        from distributed import Client

        self.address = f"tcp://127.0.0.1:{_free_port()}"
        env = {**os.environ, "POLARS_MAX_THREADS": "1", "PYTHONPATH": str(ROOT)}
        self.procs: list[subprocess.Popen] = []
        self.log = tmp / "cluster.log"
        log = self.log.open("w")
        self.procs.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
             "--port", self.address.rsplit(":", 1)[1], "--no-dashboard"],
            env=env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT))
        for name in ("w1", "w2"):
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", self.address, "--name", name,
                 "--nworkers", "1", "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"],
                env=env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 60
        while True:
            try:
                self.client = Client(self.address, timeout="5s")
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.close()
                    raise
                time.sleep(0.3)
        self.client.wait_for_workers(2, timeout=60)

    def worker_pids(self) -> dict[str, int]:
        return self.client.run(os.getpid)

    def close(self) -> None:
        if getattr(self, "client", None) is not None:
            with contextlib.suppress(Exception):
                self.client.shutdown()  # scheduler and workers stop at once
            self.client.close()
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    pytest.importorskip("distributed", reason="Dask distributed is not installed (pip install -e '.[test,dask]')")
    c = LoopbackCluster(tmp_path_factory.mktemp("dask"))
    yield c
    c.close()


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """A generated 6 MB mixed archive (IMS protocol + tracking, rotated Postfix partly gzipped)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from gen_archive import generate

    return generate(tmp_path_factory.mktemp("gen") / "archive", 6, seed=7)


def inputs_of(out: Path) -> dict[str, tuple]:
    """Per input path: what the manifest says about it, minus timing."""
    manifest = json.loads((out / "manifest.json").read_text())
    return {i["path"]: (i["status"], i["format"], i["sha256"], i["events"], i.get("skipped_lines"),
                        tuple(i["warnings"]), tuple(sorted(i["parts"])))
            for i in manifest["inputs"]}


def assert_same(local, remote, local_out: Path, remote_out: Path) -> None:
    assert remote.detection.findings.height == local.detection.findings.height > 0
    assert comparable(remote.detection.findings) == comparable(local.detection.findings)
    assert comparable(pl.read_parquet(remote_out / "findings.parquet")) == \
        comparable(pl.read_parquet(local_out / "findings.parquet"))
    assert pl.read_parquet(remote_out / "incidents.parquet").equals(pl.read_parquet(local_out / "incidents.parquet"))
    assert inputs_of(remote_out) == inputs_of(local_out)
    cols = ["source", "line", "format", "event", "recipient", "ts"]
    ours = scan_events(remote_out).select(cols).sort(cols).collect()
    theirs = scan_events(local_out).select(cols).sort(cols).collect()
    assert ours.height == theirs.height and ours.equals(theirs)
    assert not list((remote_out / "events").rglob(".*.tmp"))


@needs_dask
@pytest.mark.parametrize(("name", "site"), [("ims55", SITE_IMS), ("", SITE_ALL)], ids=["ims55", "all-samples"])
def test_samples_on_the_cluster_match_a_local_run(dask_cluster, tmp_path, name, site):
    root = SAMPLES / name if name else SAMPLES
    local = batch([root], site, tmp_path / "local", jobs=1, show_progress=False)
    remote = batch([root], site, tmp_path / "remote", show_progress=False, scheduler=dask_cluster.address)
    assert_same(local, remote, tmp_path / "local", tmp_path / "remote")
    manifest = json.loads((tmp_path / "remote" / "manifest.json").read_text())
    assert manifest["runs"][-1]["scheduler"] == dask_cluster.address


@needs_dask
def test_generated_archive_on_the_cluster_matches_and_resumes(dask_cluster, archive, tmp_path):
    local = batch([archive], SITE_GEN, tmp_path / "local", jobs=1, show_progress=False)
    lines: list[str] = []
    from logforensics import batch as batch_mod

    real = batch_mod.Progress

    class Recording(real):  # the bar is fed per file, from the workers' events and the completions
        def __init__(self, *a, **kw):
            super().__init__(*a, **{**kw, "enabled": True, "emit": lines.append})

    from distributed import get_task_stream

    batch_mod.Progress = Recording
    try:
        with get_task_stream(dask_cluster.client) as stream:
            remote = batch([archive], SITE_GEN, tmp_path / "remote", scheduler=dask_cluster.address)
    finally:
        batch_mod.Progress = real
    # Parsing (one task per file) and detection (one task per window of each of the 2 servers) ran on
    # both workers.
    keys = [str(t["key"]) for t in stream.data]
    assert sum(k.startswith("logforensics-unit-") for k in keys) == sum(1 for p in archive.rglob("*") if p.is_file())
    assert sum(k.startswith("logforensics-detect_window-") for k in keys) >= 2
    assert len({t["worker"] for t in stream.data}) == 2
    assert_same(local, remote, tmp_path / "local", tmp_path / "remote")
    n_files = sum(1 for p in archive.rglob("*") if p.is_file())
    ticks = [line for line in lines if " files, " in line]
    assert len(ticks) == n_files and ticks[-1].startswith(f"batch: {n_files}/{n_files} files")
    # Resumption through the cluster: nothing left to do, same findings.
    again = batch([archive], SITE_GEN, tmp_path / "remote", show_progress=False, scheduler=dask_cluster.address)
    assert (again.processed, again.skipped) == (0, n_files)
    assert comparable(again.detection.findings) == comparable(local.detection.findings)


@needs_dask
def test_unreadable_and_unparseable_files_are_reported_like_locally(dask_cluster, tmp_path):
    root = tmp_path / "tree"
    log = root / "Imcdata" / "Log"
    log.mkdir(parents=True)
    src = sorted((SAMPLES / "ims55" / "EXCH01" / "Exchsrvr" / "Imcdata" / "Log").glob("L*.LOG"))[0]
    (log / "L0000001.LOG").write_bytes(src.read_bytes())
    (log / "L0000002.LOG.gz").write_bytes(b"\x1f\x8b\x08\x00 not really gzip")  # unreadable
    (log / "junk.bin").write_bytes(bytes(range(256)) * 40)  # not a log
    local = batch([root], SITE_IMS, tmp_path / "local", jobs=1, show_progress=False)
    remote = batch([root], SITE_IMS, tmp_path / "remote", show_progress=False, scheduler=dask_cluster.address)
    assert inputs_of(tmp_path / "remote") == inputs_of(tmp_path / "local")
    statuses = {Path(p).name: v[0] for p, v in inputs_of(tmp_path / "remote").items()}
    assert statuses["L0000001.LOG"] == "ok" and statuses["L0000002.LOG.gz"] != "ok"
    bad = next(v for p, v in inputs_of(tmp_path / "remote").items() if p.endswith(".gz"))
    assert bad[5] and "L0000002.LOG.gz" in bad[5][0]  # the reason, naming the file
    assert comparable(remote.detection.findings) == comparable(local.detection.findings)


@needs_dask
def test_a_worker_killed_mid_file_loses_nothing_and_counts_nothing_twice(dask_cluster, tmp_path_factory,
                                                                         tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from gen_postfix import generate as generate_postfix

    # One large file (one task, the largest, so it starts first) among a few small ones.
    big = tmp_path_factory.mktemp("big") / "archive"
    (big / "mx1" / "var" / "log").mkdir(parents=True)
    generate_postfix(big / "mx1" / "var" / "log" / "mail.log", 20, seed=3)
    shutil.copytree(SAMPLES / "ims55" / "EXCH01", big / "EXCH01")
    local = batch([big], SITE_GEN, tmp_path / "local", jobs=1, show_progress=False)

    client = dask_cluster.client
    result: dict = {}

    def run() -> None:
        try:
            result["remote"] = batch([big], SITE_GEN, tmp_path / "remote", show_progress=False,
                                     scheduler=dask_cluster.address)
        except BaseException as exc:  # surfaced below
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    victim = key = None
    deadline = time.monotonic() + 60
    while victim is None and time.monotonic() < deadline:  # the largest unit (the 20 MB log) starts first
        for worker, keys in client.processing().items():
            for k in keys:
                if str(k).startswith("logforensics-unit-") and str(k).endswith("-000000-0"):
                    victim, key = worker, k
        time.sleep(0.01)
    assert victim is not None, "the large unit never started"
    time.sleep(0.3)  # mid-file: reading and parsing 20 MB takes seconds
    assert key in client.processing().get(victim, ()), "the task finished before it could be killed"
    pid = client.run(os.getpid, workers=[victim])[victim]
    os.kill(pid, signal.SIGKILL)
    thread.join(timeout=120)
    assert not thread.is_alive()
    if "error" in result:
        raise result["error"]
    remote = result["remote"]
    # The scheduler saw the task's worker die under it (and re-ran the work); the result is still
    # exactly the local one.
    story = client.story(key)
    assert any("worker-cleanup" in str(entry) for entry in story), story
    assert_same(local, remote, tmp_path / "local", tmp_path / "remote")
    manifest = json.loads((tmp_path / "remote" / "manifest.json").read_text())
    paths = [i["path"] for i in manifest["inputs"]]
    assert len(paths) == len(set(paths)) == sum(1 for p in big.rglob("*") if p.is_file())
    assert sum(i["events"] or 0 for i in manifest["inputs"]) == scan_events(tmp_path / "remote").collect().height
    client.wait_for_workers(2, timeout=60)  # the nanny restarted it


@needs_dask
def test_cli_scheduler_local(tmp_path):
    local = tmp_path / "local"
    remote = tmp_path / "remote"
    base = [sys.executable, "-m", "logforensics", "batch", str(SAMPLES / "ims55"), "--site",
            str(SAMPLES / "site-ims55.toml"), "-q"]
    subprocess.run([*base, "-o", str(local), "--jobs", "1"], check=True, cwd=ROOT, capture_output=True)
    done = subprocess.run([*base, "-o", str(remote), "--jobs", "2", "--scheduler", "local"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "34 findings" in done.stderr or "findings in" in done.stderr
    assert comparable(pl.read_parquet(remote / "findings.parquet")) == \
        comparable(pl.read_parquet(local / "findings.parquet"))
    assert inputs_of(remote) == inputs_of(local)


@needs_dask
def test_unreachable_scheduler_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 2)
    with pytest.raises(LogForensicsError, match="cannot reach the Dask scheduler"):
        batch([SAMPLES / "ims55"], SITE_IMS, tmp_path / "out", show_progress=False,
              scheduler=f"tcp://127.0.0.1:{_free_port()}")


def test_without_dask_the_option_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails as if not installed
    with pytest.raises(LogForensicsError, match=r"logforensics\[dask\]"):
        batch([SAMPLES / "ims55"], SITE_IMS, tmp_path / "out", show_progress=False, scheduler="local")


def test_the_core_install_never_imports_dask(tmp_path):
    code = ("import sys; from logforensics.batch import batch; from logforensics.site import SiteProfile; "
            f"batch([{str(SAMPLES / 'ims55')!r}], SiteProfile(), {str(tmp_path / 'o')!r}, jobs=1, "
            "show_progress=False); assert 'distributed' not in sys.modules and 'dask' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
