"""``batch --scheduler``: the parsing and per-server detection of a batch run as Dask distributed tasks.

Needs the optional extra (``pip install 'logforensics[dask]'``); the core install never imports Dask.

What runs where:

* **Here (the client)**: discovery, the resume check against manifest.json, the plan (rotation
  groups), the manifest itself, the progress bar; after parsing, site inference over the dataset, and
  at the end the merge of the servers' findings and incident grouping.
* **On the workers**, as tasks: one task per unit (the files of one rotated log, newest first),
  running :func:`logforensics.batch.process_unit`: each file is read and its events are written
  straight to ``OUTPUT/events/format=F/day=D/<input-key>.parquet`` (tmp + rename); the task returns
  only the manifest entries (a few hundred bytes per file), never events. Then one task per time
  window of each server, running :func:`logforensics.batch.detect_window`, which reads that window's
  events (with its margins) from the dataset and writes its findings to ``OUTPUT/state/``. Both are the very functions a local run calls, so the
  findings are identical to a single-machine run.

So the input files and the output folder must be at the same path on every worker and on the client:
a shared file system (NFS, SMB, CephFS, Lustre, a bind mount), or, with ``--scheduler local``, this
machine's disk. A preflight check asks every worker whether it can see a probe file written into the
output folder and the first inputs, and stops with a one-line error naming the worker if not.

Failures: a worker that dies mid-unit takes the task with it; the scheduler re-runs the task on another
worker (up to Dask's ``distributed.scheduler.allowed-failures``, 3 by default) and a task that raises
is retried ``RETRIES`` times. Re-running is harmless: an input's partitions are named by the input,
so the re-run overwrites what the dead worker wrote, and the manifest takes each unit's entries once,
when its task finishes. A file a reader cannot parse is reported in the manifest by the worker exactly
as locally (``process_unit`` catches it). A unit that still fails after all retries (a file that
kills every worker that reads it) is recorded as ``status: error`` with the reason, its stray
partitions are removed, and it is not marked done, so the next run tries it again.
"""

from __future__ import annotations

import contextlib
import os
import queue
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from logforensics import __version__
from logforensics.batch import EVENTS_DIR, MANIFEST, FileFacts, Progress, process_unit
from logforensics.errors import LogForensicsError
from logforensics.ingest import InputReport
from logforensics.site import SiteProfile

#: Retries of a task that raised (worker deaths are re-run by the scheduler on its own).
RETRIES = 2
#: Seconds to wait for the scheduler to answer and for a first worker to join it.
CONNECT_TIMEOUT = 30
WORKER_TIMEOUT = 60
#: Dask event topic on which workers report each finished file (for the progress bar).
TOPIC = "logforensics-batch-progress"
INSTALL_HINT = "--scheduler needs Dask distributed: pip install 'logforensics[dask]'"


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise LogForensicsError(INSTALL_HINT) from None
    return distributed


# ---------------------------------------------------------------------------------------------
# On the workers


class _WorkerTicker:
    """The progress queue ``process_unit`` ticks on a worker: one Dask event per finished file."""

    def __init__(self, run: str) -> None:
        self.run = run

    def put(self, item: tuple[str, int]) -> None:
        from distributed import get_worker

        get_worker().log_event(TOPIC, {"run": self.run, "path": item[0], "size": item[1]})


def unit_task(unit: list[FileFacts], site: SiteProfile, year: int | None, out: str,
              known_sha: dict[str, str], run: str) -> list[dict]:
    """One Dask task: parse one unit on a worker, write its partitions, return its manifest entries."""
    return process_unit(unit, site, year, out, known_sha, _WorkerTicker(run))


def worker_facts(probe: str, token: str, inputs: list[str]) -> dict:
    """What the preflight check asks each worker (runs there via ``Client.run``)."""
    try:
        sees_output = Path(probe).read_text(encoding="utf-8") == token
    except OSError:
        sees_output = False
    return {"version": __version__, "output": sees_output, "host": os.uname().nodename,
            "missing": [p for p in inputs if not os.access(p, os.R_OK)]}


# ---------------------------------------------------------------------------------------------
# On the client


@contextlib.contextmanager
def connect(scheduler: str, jobs: int, progress: Progress) -> Iterator[Any]:
    """A Client for ``scheduler`` (an address, or ``local`` for a LocalCluster of ``jobs`` workers)."""
    distributed = _distributed()
    cluster = None
    if scheduler == "local":
        threads = max(1, (os.cpu_count() or 1) // max(jobs, 1))
        cluster = distributed.LocalCluster(n_workers=max(jobs, 1), threads_per_worker=1, processes=True,
                                           dashboard_address=":0" if _has_bokeh() else None,
                                           env={"POLARS_MAX_THREADS": str(threads)})
        client = distributed.Client(cluster)
    else:
        try:
            client = distributed.Client(scheduler, timeout=f"{CONNECT_TIMEOUT}s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise LogForensicsError(f"cannot reach the Dask scheduler at {scheduler} ({exc})") from None
    try:
        try:
            client.wait_for_workers(1, timeout=WORKER_TIMEOUT)
        except (TimeoutError, OSError):
            raise LogForensicsError(f"no Dask worker joined the scheduler at {scheduler} within "
                                    f"{WORKER_TIMEOUT} s; start some with: dask worker {scheduler}") from None
        workers = len(client.nthreads())
        link = f"; dashboard {client.dashboard_link}" if _has_bokeh() else ""
        progress.note(f"Dask scheduler {client.scheduler.address} with {workers} worker(s){link}")
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _has_bokeh() -> bool:
    try:
        import bokeh  # noqa: F401
    except ImportError:
        return False
    return True


def preflight(client: Any, out: Path, inputs: list[str]) -> None:
    """Every worker runs our version and sees the output folder and ``inputs`` at the same paths."""
    token = uuid.uuid4().hex
    probe = out / f".cluster-probe-{token}"
    probe.write_text(token, encoding="utf-8")
    try:
        answers = client.run(worker_facts, str(probe), token, inputs, on_error="return")
    finally:
        probe.unlink(missing_ok=True)
    for worker, facts in sorted(answers.items()):
        if isinstance(facts, BaseException):
            raise LogForensicsError(f"Dask worker {worker} cannot run logforensics ({type(facts).__name__}: "
                                    f"{facts}); install logforensics {__version__} on every worker")
        where = f"Dask worker {worker} (host {facts['host']})"
        if facts["version"] != __version__:
            raise LogForensicsError(f"{where} runs logforensics {facts['version']}, this client {__version__}; "
                                    "install the same version everywhere")
        if not facts["output"]:
            raise LogForensicsError(f"{where} cannot see the output folder {out}; it must be on storage "
                                    "every worker reaches at the same path (a shared file system)")
        if facts["missing"]:
            raise LogForensicsError(f"{where} cannot read the input {facts['missing'][0]}; inputs must be at "
                                    "the same path on every worker (absolute paths on shared storage)")


def failed_entries(unit: list[FileFacts], exc: BaseException | None) -> list[dict]:
    """Manifest entries for the files of a unit whose task failed for good (not marked done)."""
    reason = f"{type(exc).__name__}: {exc}" if exc is not None else "cancelled"
    return [{**InputReport(f.path, "", max(f.size, 0), None, status="error", mtime=f.mtime, warnings=[
        f"{f.path}: the cluster task reading this file failed after retries ({reason}); "
        "this input was skipped and the next run tries it again"]).to_dict(),
        "file": f.path, "file_sha256": "", "parts": [], "servers": []} for f in unit]


def sweep(out: Path, orphans: bool) -> None:
    """Remove ``.tmp`` files of killed writers and, after a failed unit, partitions no input owns."""
    events = out / EVENTS_DIR
    for tmp in events.glob("format=*/day=*/.*.tmp"):
        tmp.unlink(missing_ok=True)
    if not orphans:
        return
    import json

    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    owned = {rel for e in manifest.get("inputs", []) for rel in e.get("parts", [])}
    for part in events.glob("format=*/day=*/*.parquet"):
        if part.relative_to(out).as_posix() not in owned:
            part.unlink(missing_ok=True)


class ClusterSession:
    """One batch run's use of a cluster: connected on first use, checked once, closed at the end."""

    def __init__(self, scheduler: str, jobs: int, progress: Progress) -> None:
        self.distributed = _distributed()  # fails here, before any work, without the extra
        self.scheduler, self.jobs, self.progress = scheduler, jobs, progress
        self._stack = contextlib.ExitStack()
        self._client: Any = None
        self._checked = False

    def client(self, out: Path, inputs: list[str]) -> Any:
        if self._client is None:
            self._client = self._stack.enter_context(connect(self.scheduler, self.jobs, self.progress))
        if not self._checked:
            preflight(self._client, out, inputs)
            self._checked = True
        return self._client

    def close(self) -> None:
        self._stack.close()
        self._client = None

    def map(self, fn: Callable[..., Any], tasks: list[tuple]) -> list[Any]:
        """``fn(*task)`` for each task on the workers (retried like the units), results in task order.

        Used for the detection windows; ``task[0]`` is the absolute output folder.
        """
        if not tasks:
            return []
        client = self.client(Path(tasks[0][0]), [])
        run = uuid.uuid4().hex[:8]
        futures = [client.submit(fn, *task, retries=RETRIES, key=f"logforensics-{fn.__name__}-{run}-{i:06d}")
                   for i, task in enumerate(tasks)]
        try:
            return client.gather(futures)
        finally:
            for fut in futures:
                fut.cancel()

    def run_units(self, units: list[list[FileFacts]], site: SiteProfile, year: int | None, out: Path,
                  known_sha: dict[str, str], on_done: Callable[[list[dict]], None]) -> None:
        """``batch._run_units`` on the cluster: one task per unit; ``on_done`` per finished task."""
        if not units:
            return
        out = Path(out).resolve()  # workers may have another working folder
        client = self.client(out, [u[0].path for u in units[:3] if u[0].size >= 0])
        progress = self.progress
        run = uuid.uuid4().hex
        ticks: queue.SimpleQueue = queue.SimpleQueue()

        def on_event(event: tuple[float, Any]) -> None:  # on the client's event loop thread
            msg = event[1]
            if isinstance(msg, dict) and msg.get("run") == run:
                ticks.put((msg["path"], msg["size"]))

        client.subscribe_topic(TOPIC, on_event)
        counted: set[str] = set()

        def advance(path: str, size: int) -> None:
            if path not in counted:  # a retried task ticks its files again
                counted.add(path)
                progress.advance(path, size)

        # known_sha travels with each task (not scattered): data scattered to a worker that dies is
        # lost, and Dask then cancels every task that needs it.
        def submit(unit: list[FileFacts], i: int, attempt: int) -> Any:
            return client.submit(unit_task, unit, site, year, str(out), known_sha, run, retries=RETRIES,
                                 key=f"logforensics-unit-{run[:8]}-{i:06d}-{attempt}", priority=len(units) - i)

        futures = {submit(unit, i, 0): (unit, i, 0) for i, unit in enumerate(units)}
        failed = False
        try:
            done = self.distributed.as_completed(list(futures))
            while not done.is_empty():
                ready = done.next_batch(block=False) if done.has_ready() else []
                if not ready:
                    time.sleep(0.1)
                while True:
                    try:
                        advance(*ticks.get_nowait())
                    except queue.Empty:
                        break
                for fut in ready:
                    unit, index, attempt = futures.pop(fut)
                    if fut.status == "cancelled" and attempt < RETRIES:  # lost with a dead worker: again
                        again = submit(unit, index, attempt + 1)
                        futures[again] = (unit, index, attempt + 1)
                        done.add(again)
                        fut.release()
                        continue
                    if fut.status == "finished":
                        entries = fut.result()
                    else:
                        failed = True
                        entries = failed_entries(unit, fut.exception() if fut.status == "error" else None)
                    for f in unit:
                        advance(f.path, max(f.size, 0))
                    on_done(entries)
                    fut.release()
        finally:
            with contextlib.suppress(Exception):
                client.unsubscribe_topic(TOPIC)
            for fut in futures:  # interrupted: stop the remaining work on the cluster
                fut.cancel()
            sweep(out, orphans=failed)
