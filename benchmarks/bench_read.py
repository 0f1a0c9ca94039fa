"""The Postfix reading path alone, stage by stage: decode, split into lines, ``PostfixReader.read``.

Run on demand (generates the log on first use)::

    .venv/bin/python benchmarks/bench_read.py --mb 50 --runs 3

Prints the best wall time of each stage over ``--runs`` runs in this process, and the total.
``--profile`` runs one more read under pyinstrument (when installed) and prints its tree.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from logforensics.readers.base import ReadContext  # noqa: E402
from logforensics.readers.postfix import PostfixReader  # noqa: E402
from logforensics.readers.syslog import YearHint  # noqa: E402
from logforensics.site import SiteProfile  # noqa: E402
from logforensics.sources import decode_text, split_lines  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mb", type=float, default=50)
    ap.add_argument("--file", type=Path, help="read this log instead of a generated one")
    ap.add_argument("--data", type=Path, default=ROOT / "benchmarks" / "data")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--zone", default="UTC")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    log = args.file or args.data / f"postfix-{int(args.mb)}mb" / "mail.log"
    if not log.exists():
        log.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gen_postfix.py"), str(log),
                        "--mb", str(args.mb)], check=True)
    data = log.read_bytes()
    ctx = ReadContext(str(log), SiteProfile(timezone=args.zone), None, YearHint(start_year=2004))
    best: dict[str, float] = {}
    events = lines = 0
    for _ in range(args.runs):
        t0 = time.perf_counter()
        text, _encoding = decode_text(data)
        t1 = time.perf_counter()
        series = split_lines(text)
        t2 = time.perf_counter()
        result = PostfixReader().read(series, ctx)
        t3 = time.perf_counter()
        for stage, seconds in (("decode", t1 - t0), ("split", t2 - t1), ("read", t3 - t2), ("total", t3 - t0)):
            best[stage] = min(best.get(stage, seconds), seconds)
        events, lines = result.events.height, series.len()
    mb = len(data) / 1e6
    print(f"file: {log} ({mb:.1f} MB, {lines:,} lines, {events:,} events); best of {args.runs}")
    for stage, seconds in best.items():
        print(f"  {stage:<7} {seconds:7.3f} s {mb / seconds:9.1f} MB/s")
    if args.profile:
        try:
            from pyinstrument import Profiler
        except ImportError:
            print("pyinstrument is not installed; no profile")
            return
        with Profiler() as profiler:
            PostfixReader().read(split_lines(decode_text(data)[0]), ctx)
        print(profiler.output_text(color=False, show_all=False))


if __name__ == "__main__":
    main()
