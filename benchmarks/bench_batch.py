"""``logforensics batch`` on a generated 200 MB mixed archive, next to ``zcat | grep -c`` and pflogsumm.

Run on demand::

    .venv/bin/python benchmarks/bench_batch.py --mb 200 --jobs 2 [--runs 3]

Generates ``benchmarks/data/archive-<MB>mb`` once (benchmarks/gen_archive.py: Exchange 5.5 IMS
protocol + tracking logs, rotated Postfix logs partly gzipped), then prints wall time, MB/s and
lines/s (of uncompressed log text), peak RSS and CPU seconds (all processes) for: ``zcat -f | grep -c`` over every file, Debian's
pflogsumm over the Postfix rotation, ``logforensics batch`` over the Postfix part alone and over
the whole archive, and the ratios the batch issue asks for.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import row, run_measured, run_measured_cpu
from gen_archive import generate

HERE = Path(__file__).resolve().parent


def text_size(files: list[Path]) -> tuple[float, int]:
    """(MB, lines) of the uncompressed text of these files."""
    total, lines = 0, 0
    for f in files:
        opener = gzip.open if f.suffix == ".gz" else open
        with opener(f, "rb") as fh:
            for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                total += len(chunk)
                lines += chunk.count(b"\n")
    return total / 1e6, lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=200)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--data", type=Path, default=HERE / "data")
    ap.add_argument("--runs", type=int, default=1, help="best of N for pflogsumm and the Postfix part")
    args = ap.parse_args()
    archive = args.data / f"archive-{int(args.mb)}mb"
    if not archive.exists():
        generate(archive, args.mb)
    files = sorted(p for p in archive.rglob("*") if p.is_file())
    postfix = sorted(p for p in files if "mail.log" in p.name)
    mb, lines = text_size(files)
    pf_mb, pf_lines = text_size(postfix)
    print(f"archive: {archive} ({len(files)} files, {mb:.1f} MB of text, {lines:,} lines; "
          f"Postfix part {pf_mb:.1f} MB, {pf_lines:,} lines)")

    quoted = " ".join(f"'{p}'" for p in files)
    grep_s, _, _ = run_measured(["sh", "-c", f"zcat -f {quoted} | LC_ALL=C grep -c RCPT"])
    print(row("zcat -f | grep -c (all)", grep_s, mb, lines))
    pf_quoted = " ".join(f"'{p}'" for p in reversed(postfix))
    pflog = shutil.which("pflogsumm")
    pf_s = None
    if pflog:
        pf_s, pf_rss, pf_cpu, _ = min(run_measured_cpu(["sh", "-c", f"zcat -f {pf_quoted} | {pflog}"])
                                      for _ in range(args.runs))
        print(row("pflogsumm (Postfix part)", pf_s, pf_mb, pf_lines, pf_rss) + f"  CPU {pf_cpu:.2f} s")
    else:
        print("pflogsumm: not installed (apt-get install pflogsumm); skipped")

    out = args.data / "batch-out"
    shutil.rmtree(out, ignore_errors=True)
    site = ["--site", str(HERE / "site-archive.toml")]
    def postfix_part() -> tuple[float, int, float, str]:
        shutil.rmtree(out, ignore_errors=True)
        return run_measured_cpu([sys.executable, "-m", "logforensics", "batch", str(archive / "mx1"), "-o",
                                 str(out), "--jobs", str(args.jobs), "--quiet", *site])

    pfb_s, pfb_rss, pfb_cpu, _ = min(postfix_part() for _ in range(args.runs))
    print(row(f"batch --jobs {args.jobs} (Postfix part)", pfb_s, pf_mb, pf_lines, pfb_rss)
          + f"  CPU {pfb_cpu:.2f} s")
    shutil.rmtree(out, ignore_errors=True)
    b_s, b_rss, b_cpu, err = run_measured_cpu([sys.executable, "-m", "logforensics", "batch", str(archive), "-o",
                                               str(out), "--jobs", str(args.jobs), "--quiet", *site])
    print(row(f"batch --jobs {args.jobs} (all)", b_s, mb, lines, b_rss) + f"  CPU {b_cpu:.2f} s")
    summary = [line for line in err.splitlines() if " file(s) parsed, " in line]
    print(summary[-1] if summary else "")
    r_s, _, _ = run_measured([sys.executable, "-m", "logforensics", "batch", str(archive), "-o", str(out),
                              "--jobs", str(args.jobs), "--quiet", *site])
    print(row("batch rerun (all skipped)", r_s, mb, lines))
    if pf_s:
        print(f"Postfix part: batch is {pf_s / pfb_s:.1f}x faster than pflogsumm (issue: >= 4x, goal 10x)")
    print(f"whole archive: batch takes {b_s / grep_s:.1f}x the time of zcat -f | grep -c (issue: within 30x, "
          "goal 10x)")


if __name__ == "__main__":
    main()
