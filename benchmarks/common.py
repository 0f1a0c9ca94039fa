"""Shared helpers for the benchmark runners: time a command and measure its own peak RSS."""

from __future__ import annotations

import subprocess
import sys
import time

#: A fresh Python process runs the command and reports its children's peak RSS (KiB), so each
#: measurement covers exactly one command (and the processes it started).
_WRAPPER = ("import resource, subprocess, sys; "
            "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
            "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
            "print('PEAK_RSS_KB', u.ru_maxrss, file=sys.stderr); "
            "print('CPU_S', u.ru_utime + u.ru_stime, file=sys.stderr); "
            "sys.exit(r.returncode)")


def run_measured(cmd: list[str]) -> tuple[float, int, str]:
    """(wall seconds, peak RSS in MB, stderr) of one command; its stdout is discarded."""
    elapsed, peak, _cpu, err = run_measured_cpu(cmd)
    return elapsed, peak, err


def run_measured_cpu(cmd: list[str]) -> tuple[float, int, float, str]:
    """(wall seconds, peak RSS in MB, CPU seconds (user + system, all its processes), stderr)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _WRAPPER, *cmd], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    peak_kb, cpu = 0, 0.0
    for line in proc.stderr.splitlines():
        if line.startswith("PEAK_RSS_KB "):
            peak_kb = int(line.split()[1])
        elif line.startswith("CPU_S "):
            cpu = float(line.split()[1])
    if proc.returncode != 0:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}")
    return elapsed, peak_kb // 1024, cpu, proc.stderr


def line_count(path: str) -> int:
    with open(path, "rb") as fh:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))


def row(name: str, seconds: float, mb: float, lines: int, rss: int | None = None, base: float | None = None) -> str:
    text = f"{name:<28} {seconds:8.2f} s {mb / seconds:9.1f} MB/s {lines / seconds:12,.0f} lines/s"
    if rss is not None:
        text += f"  peak RSS {rss:6d} MB"
    if base:
        text += f"  {seconds / base:6.1f}x grep"
    return text
