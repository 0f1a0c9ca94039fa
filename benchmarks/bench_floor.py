"""The floor: the least work any Polars design must do on the batch benchmark's Postfix part.

Run on demand::

    .venv/bin/python benchmarks/bench_floor.py --mb 200 [--runs 3]

The batch issue asks ``logforensics batch`` to be at least 4x faster than Debian's pflogsumm on the
Postfix part of the generated archive (``benchmarks/gen_archive.py``). This runner times, in a fresh
process like the batch run, only the steps no honest reading of those files can skip, with every file
on its own thread (2 threads on 2 cores; threads cost less than worker processes):

* ``read``: read each file, SHA-256 it (the manifest's evidence hash), gunzip by magic bytes, decode,
  split into lines, cut the syslog envelope (one ``splitn``) and run one capture regex over the
  messages (queue id and ``to=``/``relay=``, a fraction of what the Postfix grammar reads);
* ``read + write``: the same, then write those columns as Parquet (the events dataset).

No time conversion, no sessions, no second regex, no detection, no findings or incidents. It prints
each next to pflogsumm and next to a quarter of pflogsumm's time (the issue's 4x budget), so the
figures show how much of that budget remains for everything else the batch does.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_batch import text_size
from common import row, run_measured_cpu
from gen_archive import generate

HERE = Path(__file__).resolve().parent

#: The child process: ``--child MODE OUT FILE...`` (MODE ``read`` or ``write``).
_CHILD = r"""
import gzip, hashlib, sys
from concurrent.futures import ThreadPoolExecutor
import polars as pl

mode, out, files = sys.argv[1], sys.argv[2], sys.argv[3:]

def one(job):
    i, path = job
    with open(path, "rb") as fh:
        data = fh.read()
    hashlib.sha256(data).hexdigest()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    lines = pl.Series("raw", [data.decode("utf-8", "surrogateescape")]).str.split("\n").explode()
    frame = pl.DataFrame(lines).with_columns(
        pl.col("raw").str.splitn(" ", 6).struct.rename_fields(["mon", "day", "hms", "host", "tag", "msg"])
    ).unnest("raw")
    frame = frame.with_columns(pl.col("msg").str.extract_groups(
        r"^(?:([0-9A-F]+): )?(?:to=<([^>]*)>, relay=([^,]*), )?").alias("x")).unnest("x")
    if mode == "write":
        frame.write_parquet(f"{out}/part{i}.parquet", compression="zstd")
    return frame.height

with ThreadPoolExecutor(2) as pool:
    print(sum(pool.map(one, enumerate(files))))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=200)
    ap.add_argument("--data", type=Path, default=HERE / "data")
    ap.add_argument("--runs", type=int, default=3, help="best of N for each measurement")
    args = ap.parse_args()
    archive = args.data / f"archive-{int(args.mb)}mb"
    if not archive.exists():
        generate(archive, args.mb)
    postfix = sorted(p for p in archive.rglob("*") if p.is_file() and "mail.log" in p.name)
    pf_mb, pf_lines = text_size(postfix)
    print(f"Postfix part of {archive}: {len(postfix)} files, {pf_mb:.1f} MB of text, {pf_lines:,} lines")

    pflog = shutil.which("pflogsumm")
    pf_s = None
    if pflog:
        quoted = " ".join(f"'{p}'" for p in reversed(postfix))
        pf_s, pf_rss, pf_cpu, _ = min(run_measured_cpu(["sh", "-c", f"zcat -f {quoted} | {pflog}"])
                                      for _ in range(args.runs))
        print(row("pflogsumm", pf_s, pf_mb, pf_lines, pf_rss) + f"  CPU {pf_cpu:.2f} s")
        print(f"{'4x budget (pflogsumm / 4)':<28} {pf_s / 4:8.2f} s")
    else:
        print("pflogsumm: not installed (apt-get install pflogsumm); no budget to compare with")

    with tempfile.TemporaryDirectory() as out:
        for mode, label in (("read", "floor: read"), ("write", "floor: read + write")):
            cmd = [sys.executable, "-c", _CHILD, mode, out, *map(str, postfix)]
            secs, rss, cpu, _ = min(run_measured_cpu(cmd) for _ in range(args.runs))
            text = row(label, secs, pf_mb, pf_lines, rss) + f"  CPU {cpu:.2f} s"
            if pf_s:
                text += f"  = {pf_s / secs:.1f}x pflogsumm; leaves {pf_s / 4 - secs:+.2f} s of the 4x budget"
            print(text)


if __name__ == "__main__":
    main()
