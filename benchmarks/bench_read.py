"""One reader alone, stage by stage: decode, split into lines, ``Reader.read``.

Run on demand (generates the log on first use)::

    .venv/bin/python benchmarks/bench_read.py --format postfix --mb 50 --runs 3
    .venv/bin/python benchmarks/bench_read.py --format ims55-protocol --mb 20
    .venv/bin/python benchmarks/bench_read.py --format ims55-tracking --file Tracking.log/20000601.log

Prints the best wall and CPU time of each stage over ``--runs`` runs in this process, and the total.
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

from logforensics.readers import READERS  # noqa: E402
from logforensics.readers.base import ReadContext  # noqa: E402
from logforensics.readers.syslog import YearHint  # noqa: E402
from logforensics.site import SiteProfile  # noqa: E402
from logforensics.sources import decode_text, split_lines  # noqa: E402

#: Format -> (generator script, generated file name) for the logs this benchmark can make itself.
GENERATORS = {
    "postfix": ("gen_postfix.py", "mail.log"),
    "ims55-protocol": ("gen_ims.py", "L0000000.LOG"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--format", choices=sorted(READERS), default="postfix")
    ap.add_argument("--mb", type=float, default=50)
    ap.add_argument("--file", type=Path, help="read this log instead of a generated one")
    ap.add_argument("--data", type=Path, default=ROOT / "benchmarks" / "data")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--zone", default="UTC")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    reader = READERS[args.format]()
    log = args.file
    if log is None:
        if args.format not in GENERATORS:
            ap.error(f"no generator for {args.format}: pass --file")
        script, name = GENERATORS[args.format]
        log = args.data / f"{args.format}-{args.mb:g}mb" / name
        if not log.exists():
            log.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), str(log), "--mb", str(args.mb)],
                           check=True)
    data = log.read_bytes()
    ctx = ReadContext(str(log), SiteProfile(timezone=args.zone), None, YearHint(start_year=2004))
    wall: dict[str, float] = {}
    cpu: dict[str, float] = {}
    events = lines = 0
    for _ in range(args.runs):
        marks = [(time.perf_counter(), time.process_time())]
        text, _encoding = decode_text(data)
        marks.append((time.perf_counter(), time.process_time()))
        series = split_lines(text)
        marks.append((time.perf_counter(), time.process_time()))
        result = reader.read(series, ctx)
        marks.append((time.perf_counter(), time.process_time()))
        spans = [(stage, marks[i], marks[i + 1]) for i, stage in enumerate(("decode", "split", "read"))]
        for stage, (w0, c0), (w1, c1) in [*spans, ("total", marks[0], marks[-1])]:
            wall[stage] = min(wall.get(stage, w1 - w0), w1 - w0)
            cpu[stage] = min(cpu.get(stage, c1 - c0), c1 - c0)
        events, lines = result.events.height, series.len()
    mb = len(data) / 1e6
    print(f"{reader.name}: {log} ({mb:.1f} MB, {lines:,} lines, {events:,} events); best of {args.runs}")
    for stage in wall:
        print(f"  {stage:<7} wall {wall[stage]:7.3f} s  cpu {cpu[stage]:7.3f} s  {mb / wall[stage]:8.1f} MB/s")
    if args.profile:
        try:
            from pyinstrument import Profiler
        except ImportError:
            print("pyinstrument is not installed; no profile")
            return
        with Profiler() as profiler:
            reader.read(split_lines(decode_text(data)[0]), ctx)
        print(profiler.output_text(color=False, show_all=False))


if __name__ == "__main__":
    main()
