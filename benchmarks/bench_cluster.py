"""``logforensics batch`` locally (``--jobs N``) against a loopback Dask cluster of N workers, same archive.

Run on demand (needs ``pip install -e '.[dask]'``)::

    .venv/bin/python benchmarks/bench_cluster.py --mb 200 --workers 2

Generates ``benchmarks/data/archive-<MB>mb`` once (benchmarks/gen_archive.py), starts ``dask scheduler``
and N ``dask worker`` processes (one process, one thread each) on 127.0.0.1, then times, into fresh
output folders: ``batch --jobs N`` and ``batch --scheduler tcp://127.0.0.1:PORT``. Prints wall time,
MB/s of input, the parse and detection split (from batch's own progress notes), the per-file cost
(worker seconds per file and per MB, from the per-file progress timestamps) and checks that both
runs give the same findings. Cluster start-up is not counted (a real cluster is already running).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_archive import generate

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_cluster(workers: int, threads: int) -> tuple[str, list[subprocess.Popen]]:
    from distributed import Client

    address = f"tcp://127.0.0.1:{free_port()}"
    env = {**os.environ, "POLARS_MAX_THREADS": str(threads)}
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", address.rsplit(":", 1)[1], "--no-dashboard"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    procs += [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "1",
                                "--nthreads", "1", "--no-dashboard", "--host", "127.0.0.1"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(workers)]
    for _ in range(100):
        try:
            with Client(address, timeout="5s") as client:
                client.wait_for_workers(workers, timeout=60)
            return address, procs
        except OSError:
            time.sleep(0.3)
    raise SystemExit("the loopback cluster did not start")


def run_batch(archive: Path, out: Path, extra: list[str]) -> tuple[float, str]:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "logforensics", "batch", str(archive), "--site", str(HERE / "site.toml"),
           "-o", str(out), *extra]
    env = {**os.environ, "CI": "1"}  # plain progress lines, not a bar
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(done.stderr)
    return wall, done.stderr


def seconds(note: str, stderr: str) -> float:
    m = re.search(rf"batch: {note}.* in ([0-9.]+) s", stderr)
    return float(m.group(1)) if m else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--data", type=Path, default=HERE / "data")
    ap.add_argument("--repeat", type=int, default=1, help="Alternate local and dask runs this many times "
                    "(a shared machine is noisy; compare the best of each).")
    args = ap.parse_args()
    archive = args.data / f"archive-{int(args.mb)}mb"
    if not archive.exists():
        generate(archive, args.mb)
    files = sorted(p for p in archive.rglob("*") if p.is_file())
    on_disk = sum(p.stat().st_size for p in files) / 1e6
    print(f"archive: {archive} ({len(files)} files, {on_disk:.1f} MB on disk, nominal {args.mb:.0f} MB of text); "
          f"{os.cpu_count()} cores")
    threads = max(1, (os.cpu_count() or 1) // args.workers)

    rows = []
    address, procs = start_cluster(args.workers, threads)
    try:
        for _ in range(args.repeat):
            wall, err = run_batch(archive, args.data / "cluster-bench-local", ["--jobs", str(args.workers)])
            rows.append((f"local --jobs {args.workers}", wall, err))
            wall, err = run_batch(archive, args.data / "cluster-bench-dask", ["--scheduler", address])
            rows.append((f"dask, {args.workers} workers", wall, err))
            print(f"  load average after this round: {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        for p in procs[::-1]:
            p.send_signal(signal.SIGTERM)
        for p in procs[::-1]:
            p.wait(timeout=30)

    print(f"{'run':<22} {'wall s':>7} {'MB/s':>6} {'parse s':>8} {'detect s':>9} {'s/file':>7} {'s/MB':>6}")
    for name, wall, err in rows:
        parse = seconds("parsed", err)
        detect = seconds("detection", err)
        # Busy worker-seconds per file: N workers for the parse phase, spread over the files.
        per_file = parse * args.workers / len(files)
        per_mb = parse * args.workers / args.mb
        print(f"{name:<22} {wall:7.1f} {args.mb / wall:6.1f} {parse:8.1f} {detect:9.1f} {per_file:7.2f} {per_mb:6.3f}")

    import polars as pl

    a = pl.read_parquet(args.data / "cluster-bench-local" / "findings.parquet").drop("evidence").sort("id", "recipient")
    b = pl.read_parquet(args.data / "cluster-bench-dask" / "findings.parquet").drop("evidence").sort("id", "recipient")
    print(f"findings: local {a.height}, dask {b.height}, identical: {a.equals(b)}")


if __name__ == "__main__":
    main()
