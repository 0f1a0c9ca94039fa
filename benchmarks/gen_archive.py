"""Generate a reproducible mixed log archive for the batch benchmark (deterministic for a seed).

Layout (sizes are of the uncompressed log text; ``--mb`` scales everything)::

    ARCHIVE/EXCH01/Exchsrvr/Imcdata/Log/L0000000.LOG ...    Exchange 5.5 IMS protocol logs (~45 %)
    ARCHIVE/EXCH01/Exchsrvr/Tracking.log/20000601.log ...   its message tracking logs (~5 %)
    ARCHIVE/mx1/var/log/mail.log, mail.log.1, mail.log.2.gz ... rotated Postfix logs, older ones
                                                              gzipped (~50 %)

    python benchmarks/gen_archive.py /tmp/archive --mb 200
"""

from __future__ import annotations

import argparse
import gzip
import random
import shutil
import sys
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gen_ims import generate as generate_ims
from gen_postfix import generate as generate_postfix

GW = "/o=Acme Widgets/ou=HQ/cn=Configuration/cn=Connections/cn=Internet Mail Service (EXCH01)"
DOMAINS = ["hotmail.com", "yahoo.com", "aol.com", "fabrikam.com", "example.de", "example.jp"]


def generate_tracking(path: Path, megabytes: float, day: datetime, seed: int) -> None:
    """Exchange 5.5 tracking records (1012 in, 1014/1011 out, 1013 local), one or more recipients."""
    rng = random.Random(seed)
    target = int(megabytes * 1_000_000)
    written, n, t = 0, 0, day
    with open(path, "w", newline="\r\n") as fh:
        while written < target:
            msgid = f"c=US;a= ;p=Acme Widgets;l=EXCH01-{t:%y%m%d%H%M%S}Z-{n}"
            rcpts = [f"user{rng.randrange(3000)}@acme-widgets.com" if rng.random() < 0.8
                     else f"victim{rng.randrange(100000)}@{rng.choice(DOMAINS)}" for _ in range(rng.randrange(1, 4))]
            for event in (1012, 1013 if all("acme" in r for r in rcpts) else 1014, 1011):
                when = f"{t.year}.{t.month}.{t.day} {t.hour}:{t.minute:02d}:{t.second:02d}"
                head = "\t".join([msgid, str(event), when, GW, f"mail{rng.randrange(500)}.example", "<x>",
                                  f"sender{rng.randrange(9000)}@{rng.choice(DOMAINS)}", "0",
                                  str(rng.randrange(900, 90000)), "0", "0", "", str(len(rcpts))])
                text = head + "\n" + "\n".join(rcpts) + "\n"
                fh.write(text)
                written += len(text) + text.count("\n")
            t += timedelta(seconds=rng.randrange(1, 40))
            n += 1


def generate(root: Path, megabytes: float, seed: int = 1) -> Path:
    if root.exists():
        shutil.rmtree(root)
    ims = root / "EXCH01" / "Exchsrvr"
    (ims / "Imcdata" / "Log").mkdir(parents=True)
    (ims / "Tracking.log").mkdir(parents=True)
    n_ims = 9
    for i in range(n_ims):
        generate_ims(ims / "Imcdata" / "Log" / f"L{i:07d}.LOG", megabytes * 0.45 / n_ims, seed=seed + i)
    for i in range(3):
        day = datetime(2000, 6, 1 + i)
        generate_tracking(ims / "Tracking.log" / f"{day:%Y%m%d}.log", megabytes * 0.05 / 3, day, seed + 100 + i)
    logs = root / "mx1" / "var" / "log"
    logs.mkdir(parents=True)
    # One continuous Postfix log, cut into rotations: mail.log (newest), mail.log.1, ... .5 (oldest).
    whole = root / "postfix-whole.log"
    generate_postfix(whole, megabytes * 0.5, seed=seed + 200)
    lines = whole.read_bytes().splitlines(keepends=True)
    whole.unlink()
    n_pf = 6
    size = -(-len(lines) // n_pf)
    for i in range(n_pf):
        chunk = lines[(n_pf - 1 - i) * size:(n_pf - i) * size]
        path = logs / ("mail.log" if i == 0 else f"mail.log.{i}")
        if i >= 2:  # logrotate's delaycompress: .1 stays plain, .2 and older are gzipped
            with gzip.open(str(path) + ".gz", "wb", compresslevel=6) as dst:
                dst.writelines(chunk)
        else:
            path.write_bytes(b"".join(chunk))
    return root


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("output", type=Path)
    ap.add_argument("--mb", type=float, default=200)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    generate(args.output, args.mb, args.seed)
