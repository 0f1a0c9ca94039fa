"""Generate a large, realistic Exchange 5.5 IMS protocol log for benchmarks (deterministic)."""

from __future__ import annotations

import argparse
import random
from datetime import datetime, timedelta
from pathlib import Path

DOMAINS = ["hotmail.com", "yahoo.com", "aol.com", "fabrikam.com", "example.de", "example.jp"]


def stamp(t: datetime) -> str:
    hour = t.hour % 12 or 12
    return f"{t.month}/{t.day}/{t.year % 100:02d} {hour}:{t.minute:02d}:{t.second:02d} {'AM' if t.hour < 12 else 'PM'}"


def session(rng: random.Random, t: datetime, n: int) -> list[str]:
    s = stamp(t)
    host = f"client{rng.randrange(5000)}.isp{rng.randrange(50)}.example"
    out = [f"{s} : A connection was accepted from {host}.",
           f"{s} : <<< HELO {host}", f"{s} : >>> 250 OK",
           f"{s} : <<< MAIL From:<user{rng.randrange(10000)}@{rng.choice(DOMAINS)}>",
           f"{s} : >>> 250 OK - mail from <x>"]
    for _ in range(rng.randrange(1, 6)):
        kind = rng.random()
        if kind < 0.7:
            rcpt = f"user{rng.randrange(3000)}@acme-widgets.com"
            reply = f"250 OK - Recipient <{rcpt}>"
        elif kind < 0.85:
            rcpt = f"victim{rng.randrange(100000)}@{rng.choice(DOMAINS)}"
            reply = "550 Relaying is prohibited"
        else:
            rcpt = f'"IMCEA victim{rng.randrange(100000)}@{rng.choice(DOMAINS)}" @acme-widgets.com'
            reply = f"250 OK - Recipient <{rcpt}>"
        if n % 3 == 0:
            out.append(f"{s} : <<< IO: |RCPT To:<{rcpt}>")
        out += [f"{s} : <<< RCPT To:<{rcpt}>", f"{s} : >>> {reply}"]
    out += [f"{s} : <<< DATA", f"{s} : >>> 354 Send data.  End with CRLF.CRLF",
            f"{s} : <<< QUIT", f"{s} : >>> 221 closing connection"]
    return out


def generate(path: Path, megabytes: float, seed: int = 1) -> Path:
    rng = random.Random(seed)
    t = datetime(2000, 6, 1)
    target = int(megabytes * 1_000_000)
    written = 0
    n = 0
    with open(path, "w", newline="\r\n") as fh:
        while written < target:
            text = "\n".join(session(rng, t, n)) + "\n"
            fh.write(text)
            written += len(text) + text.count("\n")
            t += timedelta(seconds=rng.randrange(1, 30))
            n += 1
    return path


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("output", type=Path)
    ap.add_argument("--mb", type=float, default=100)
    args = ap.parse_args()
    generate(args.output, args.mb)
