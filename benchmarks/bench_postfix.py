"""``logforensics scan`` on a large generated Postfix log, next to ``grep -c`` and Debian's pflogsumm.

Run on demand::

    .venv/bin/python benchmarks/bench_postfix.py --mb 100

Prints wall time, MB/s, lines/s and peak RSS of each, and the ratios. pflogsumm comes from Debian
(``apt-get install pflogsumm``); it is skipped with a note when missing.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import line_count, row, run_measured

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mb", type=float, default=100)
    ap.add_argument("--data", type=Path, default=HERE / "data")
    ap.add_argument("--runs", type=int, default=1, help="repeat each measurement; the best is shown")
    args = ap.parse_args()
    args.data.mkdir(exist_ok=True)
    log = args.data / f"postfix-{int(args.mb)}mb" / "mail.log"
    if not log.exists():
        log.parent.mkdir(parents=True, exist_ok=True)
        run_measured([sys.executable, str(HERE / "gen_postfix.py"), str(log), "--mb", str(args.mb)])
    size_mb = log.stat().st_size / 1e6
    lines = line_count(str(log))
    print(f"file: {log} ({size_mb:.1f} MB, {lines:,} lines)")

    def best(cmd: list[str]) -> tuple[float, int]:
        results = [run_measured(cmd)[:2] for _ in range(args.runs)]
        return min(r[0] for r in results), max(r[1] for r in results)

    grep_s, _ = best(["env", "LC_ALL=C", "grep", "-c", "Relay access denied", str(log)])
    print(row("grep -c 'Relay access denied'", grep_s, size_mb, lines))
    pflog = shutil.which("pflogsumm")
    pf_s = None
    if pflog:
        pf_s, pf_rss = best([pflog, str(log)])
        print(row("pflogsumm (full report)", pf_s, size_mb, lines, pf_rss, grep_s))
    else:
        print("pflogsumm: not installed (apt-get install pflogsumm); skipped")
    out = args.data / "postfix-scan.json"
    scan_s, scan_rss = best([sys.executable, "-m", "logforensics", "scan", str(log), "--site",
                             str(HERE / "site-postfix.toml"), "--year", "2004", "--format", "json",
                             "--output", str(out)])
    print(row("logforensics scan", scan_s, size_mb, lines, scan_rss, grep_s))
    if pf_s:
        print(f"scan is {pf_s / scan_s:.1f}x faster than pflogsumm (goal >= 4x, aim 10x); "
              f"{scan_s / grep_s:.1f}x the time of grep -c")


if __name__ == "__main__":
    main()
