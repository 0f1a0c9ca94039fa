"""The Exchange 5.5 IMS reading path alone: decode, split into lines, ``Ims55ProtocolReader.read``.

Run on demand (generates the log on first use)::

    .venv/bin/python benchmarks/bench_read_ims.py --mb 20 --runs 3
    .venv/bin/python benchmarks/bench_read_ims.py --file path/to/L0000000.LOG
    .venv/bin/python benchmarks/bench_read_ims.py --tracking path/to/Tracking.log/20000601.log

Prints, per stage, the best wall time and the best CPU time (all threads of this process) over
``--runs`` runs. On a shared machine compare CPU times. ``--profile`` runs one more read under
pyinstrument (when installed) and prints its tree.
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
from logforensics.readers.ims55_protocol import Ims55ProtocolReader  # noqa: E402
from logforensics.readers.ims55_tracking import Ims55TrackingReader  # noqa: E402
from logforensics.site import SiteProfile  # noqa: E402
from logforensics.sources import decode_text, split_lines  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mb", type=float, default=20)
    ap.add_argument("--file", type=Path, help="read this protocol log instead of a generated one")
    ap.add_argument("--tracking", type=Path, help="read this message tracking log instead (Ims55TrackingReader)")
    ap.add_argument("--data", type=Path, default=ROOT / "benchmarks" / "data")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--zone", default="America/New_York")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    reader = Ims55TrackingReader() if args.tracking else Ims55ProtocolReader()
    log = args.tracking or args.file or args.data / f"ims-{args.mb:g}mb" / "L0000000.LOG"
    if not log.exists():
        log.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gen_ims.py"), str(log), "--mb", str(args.mb)],
                       check=True)
    data = log.read_bytes()
    ctx = ReadContext(str(log), SiteProfile(timezone=args.zone), "EXCH01")
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
        for i, stage in enumerate(("decode", "split", "read")):
            w, c = marks[i + 1][0] - marks[i][0], marks[i + 1][1] - marks[i][1]
            wall[stage], cpu[stage] = min(wall.get(stage, w), w), min(cpu.get(stage, c), c)
        w, c = marks[-1][0] - marks[0][0], marks[-1][1] - marks[0][1]
        wall["total"], cpu["total"] = min(wall.get("total", w), w), min(cpu.get("total", c), c)
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
