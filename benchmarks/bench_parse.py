"""Time ``logforensics parse`` on a generated IMS protocol log, next to ``grep -c RCPT``.

Run on demand: ``.venv/bin/python benchmarks/bench_parse.py --mb 100``. Prints MB/s, lines/s and
peak RSS of the parse, and the time ratio against grep.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_ims import generate


def timed(cmd: list[str]) -> tuple[float, str, int]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, proc.stdout + proc.stderr, max(peak, before)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mb", type=float, default=100)
    ap.add_argument("--data", type=Path, default=Path(__file__).parent / "data")
    args = ap.parse_args()
    args.data.mkdir(exist_ok=True)
    log = args.data / f"L{int(args.mb):07d}.LOG"
    if not log.exists():
        generate(log, args.mb)
    size = log.stat().st_size
    lines = sum(1 for _ in open(log, "rb"))
    grep_s, grep_out, _ = timed(["grep", "-c", "RCPT", str(log)])
    out = args.data / "events.parquet"
    parse_s, _parse_out, rss = timed([sys.executable, "-m", "logforensics", "parse", str(log),
                                     "--output", str(out)])
    print(f"file: {log} ({size / 1e6:.1f} MB, {lines:,} lines; grep counts {grep_out.strip()} RCPT lines)")
    print(f"grep -c RCPT : {grep_s:7.2f} s  {size / 1e6 / grep_s:8.1f} MB/s")
    print(f"parse        : {parse_s:7.2f} s  {size / 1e6 / parse_s:8.1f} MB/s  {lines / parse_s:,.0f} lines/s  "
          f"peak RSS {rss / 1024:.0f} MB")
    print(f"ratio parse/grep: {parse_s / grep_s:.1f}x")
    scan_out = args.data / "scan.json"
    scan_s, _scan_out, scan_rss = timed([sys.executable, "-m", "logforensics", "scan", str(log),
                                         "--site", str(Path(__file__).parent / "site.toml"),
                                         "--format", "json", "--output", str(scan_out)])
    print(f"scan         : {scan_s:7.2f} s  {size / 1e6 / scan_s:8.1f} MB/s  {lines / scan_s:,.0f} lines/s  "
          f"peak RSS {scan_rss / 1024:.0f} MB  (parse + classify + verdicts + incidents)")
    print(f"ratio scan/grep: {scan_s / grep_s:.1f}x")
    classify_rate()


def classify_rate(n: int = 50_000) -> None:
    """Distinct addresses per second through the classifier (grammar path and fast path)."""
    import random

    from logforensics.classify import classify_addresses
    from logforensics.site import Locality

    rng = random.Random(7)
    loc = Locality(("acme-widgets.com",), ("mail.acme-widgets.com",), ("192.0.2.25",))
    plain = [f"user{i}@dom{rng.randrange(999)}.example" for i in range(n)]
    tricky = [f'"IMCEA v{i}@hotmail.com" @acme-widgets.com' if i % 2 else f"u{i}%yahoo.com@acme-widgets.com"
              for i in range(n)]
    for label, addrs in (("plain (fast path)", plain), ("tricks (grammar)", tricky)):
        start = time.perf_counter()
        classify_addresses(addrs, loc)
        took = time.perf_counter() - start
        print(f"classify {label:18}: {n / took:,.0f} distinct addresses/s")


if __name__ == "__main__":
    main()
