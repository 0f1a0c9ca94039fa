"""Generate a large, realistic Postfix ``mail.log`` for benchmarks (deterministic for a seed).

Mix: accepted inbound mail (connect, client=, cleanup, qmgr, local/lmtp delivery, removed,
disconnect), outbound mail from the LAN (smtp delivery to remote hosts), relay denials
(``NOQUEUE: reject: RCPT ... Relay access denied``), a few successful unauthenticated relays and
authenticated relays, SASL failures, postscreen lines, and amavis/dovecot noise, all interleaved
by time like a real busy server. One year, RFC 3164 stamps (with a Dec -> Jan roll-over when the
file is long enough).

    python benchmarks/gen_postfix.py /tmp/mail.log --mb 100
    grep -c 'Relay access denied' /tmp/mail.log
"""

from __future__ import annotations

import argparse
import heapq
import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

HOST = "mx1"
REMOTE = ["example.com", "example.net", "example.org", "mail.example", "partner.example", "shop.example"]
LOCAL = "acme-widgets.com"


class Gen:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.pid = 3000
        self.qn = 0x10000

    def new_pid(self) -> int:
        self.pid = 3000 + (self.pid - 2999) % 60000
        return self.pid

    def qid(self) -> str:
        self.qn += self.rng.randrange(1, 4000)
        return f"{self.qn & 0xFFFFFFFFFF:010X}"

    def outside(self) -> tuple[str, str]:
        net = self.rng.choice(("192.0.2", "198.51.100", "203.0.113"))
        ip = f"{net}.{self.rng.randrange(1, 255)}"
        name = "unknown" if self.rng.random() < 0.4 else f"mail{self.rng.randrange(900)}.{self.rng.choice(REMOTE)}"
        return name, ip

    def user(self, domain: str) -> str:
        return f"user{self.rng.randrange(5000)}@{domain}"


def stamp(t: datetime) -> str:
    return f"{t:%b} {t.day:>2} {t:%H:%M:%S}"


def inbound(g: Gen, t: datetime) -> Iterator[tuple[datetime, str]]:
    """An accepted inbound message for 1-3 local users."""
    name, ip = g.outside()
    pid, q = g.new_pid(), g.qid()
    smtpd = f"postfix/smtpd[{pid}]"
    sender = g.user(g.rng.choice(REMOTE))
    rcpts = [g.user(LOCAL) for _ in range(g.rng.randrange(1, 4))]
    yield t, f"{smtpd}: connect from {name}[{ip}]"
    yield t + timedelta(seconds=1), f"{smtpd}: {q}: client={name}[{ip}]"
    yield t + timedelta(seconds=1), f"postfix/cleanup[{pid + 1}]: {q}: message-id=<{q.lower()}@{sender.split('@')[1]}>"
    yield (t + timedelta(seconds=1),
           f"postfix/qmgr[1015]: {q}: from=<{sender}>, size={g.rng.randrange(900, 90000)}, nrcpt={len(rcpts)} "
           "(queue active)")
    yield t + timedelta(seconds=2), f"{smtpd}: disconnect from {name}[{ip}]"
    yield (t + timedelta(seconds=2),
           f"amavis[{1800 + pid % 7}]: ({pid:05d}-01) Passed CLEAN, [{ip}] <{sender}> -> <{rcpts[0]}>, "
           f"Hits: -0.{g.rng.randrange(10)}, size: 4211, 812 ms")
    for r in rcpts:
        if g.rng.random() < 0.5:
            agent = f"postfix/local[{pid + 2}]: {q}: to=<{r}>, relay=local"
            tail = "status=sent (delivered to mailbox)"
        else:
            agent = f"postfix/lmtp[{pid + 2}]: {q}: to=<{r}>, relay={HOST}.{LOCAL}[private/dovecot-lmtp]"
            tail = f"status=sent (250 2.0.0 <{r}> Saved)"
        yield t + timedelta(seconds=3), f"{agent}, delay=0.4, delays=0.1/0/0.01/0.3, dsn=2.0.0, {tail}"
        yield t + timedelta(seconds=3), f"dovecot: lmtp({pid + 3}, {r.split('@')[0]}): msgid=<x@y>: saved mail to INBOX"
    yield t + timedelta(seconds=3), f"postfix/qmgr[1015]: {q}: removed"


def outbound(g: Gen, t: datetime, *, client: tuple[str, str] | None = None, sasl: str | None = None,
             tag: str = "postfix/smtpd") -> Iterator[tuple[datetime, str]]:
    """Mail sent to remote hosts: from the LAN, or (relay abuse) from an outside or authenticated client."""
    name, ip = client or (f"ws{g.rng.randrange(200)}.lan.{LOCAL}", f"10.20.{g.rng.randrange(1, 9)}.{g.rng.randrange(2, 250)}")
    pid, q = g.new_pid(), g.qid()
    smtpd = f"{tag}[{pid}]"
    sender = g.user(LOCAL) if client is None or sasl else g.user("bulk.example")
    rcpts = [g.user(g.rng.choice(REMOTE)) for _ in range(g.rng.randrange(1, 5))]
    auth = f", sasl_method=LOGIN, sasl_username={sasl}" if sasl else ""
    yield t, f"{smtpd}: connect from {name}[{ip}]"
    yield t + timedelta(seconds=1), f"{smtpd}: {q}: client={name}[{ip}]{auth}"
    yield t + timedelta(seconds=1), f"postfix/cleanup[{pid + 1}]: {q}: message-id=<{q}@{LOCAL}>"
    yield (t + timedelta(seconds=1),
           f"postfix/qmgr[1015]: {q}: from=<{sender}>, size={g.rng.randrange(900, 50000)}, nrcpt={len(rcpts)} "
           "(queue active)")
    yield t + timedelta(seconds=2), f"{smtpd}: disconnect from {name}[{ip}]"
    for i, r in enumerate(rcpts):
        domain = r.split("@")[1]
        mx = f"mx.{domain}[198.51.100.{g.rng.randrange(1, 255)}]:25"
        deferred = g.rng.random() < 0.05
        status = ("status=deferred (host mx said: 450 4.7.1 Greylisted (in reply to RCPT TO command))" if deferred
                  else f"status=sent (250 2.0.0 Ok: queued as {g.qid()})")
        dsn = "4.7.1" if deferred else "2.0.0"
        yield (t + timedelta(seconds=3 + i),
               f"postfix/smtp[{pid + 5 + i}]: {q}: to=<{r}>, relay={mx}, delay=1.{i}, delays=0.1/0/0.6/0.3, "
               f"dsn={dsn}, {status}")
    yield t + timedelta(seconds=4 + len(rcpts)), f"postfix/qmgr[1015]: {q}: removed"


def denied(g: Gen, t: datetime) -> Iterator[tuple[datetime, str]]:
    """A relay probe or spam run: every RCPT refused with Relay access denied."""
    name, ip = g.outside()
    pid = g.new_pid()
    smtpd = f"postfix/smtpd[{pid}]"
    helo = g.rng.choice(("nmap.scanme.org", "WIN-9QL4SDRB93L", name, f"[{ip}]"))
    sender = g.user(g.rng.choice(REMOTE))
    yield t, f"{smtpd}: connect from {name}[{ip}]"
    code = "554 5.7.1" if g.rng.random() < 0.8 else "454 4.7.1"
    for i in range(g.rng.randrange(1, 6)):
        r = g.rng.choice((g.user(g.rng.choice(REMOTE)), f"victim{g.rng.randrange(999)}%example.net@{LOCAL}",
                          f"example.org!victim{g.rng.randrange(999)}@{LOCAL}"))
        yield (t + timedelta(seconds=1 + i),
               f"{smtpd}: NOQUEUE: reject: RCPT from {name}[{ip}]: {code} <{r}>: Relay access denied; "
               f"from=<{sender}> to=<{r}> proto=ESMTP helo=<{helo}>")
    yield t + timedelta(seconds=7), f"{smtpd}: disconnect from {name}[{ip}]"


def sasl_failures(g: Gen, t: datetime) -> Iterator[tuple[datetime, str]]:
    name, ip = g.outside()
    pid = g.new_pid()
    tag = f"postfix/submission/smtpd[{pid}]"
    yield t, f"{tag}: connect from {name}[{ip}]"
    for i in range(g.rng.randrange(1, 4)):
        yield t + timedelta(seconds=2 + i), f"{tag}: warning: {name}[{ip}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6"
    yield t + timedelta(seconds=6), f"{tag}: disconnect from {name}[{ip}] ehlo=1 auth=0/1 quit=1 commands=2/3"


def noise(g: Gen, t: datetime) -> Iterator[tuple[datetime, str]]:
    user = f"user{g.rng.randrange(5000)}"
    yield t, (f"dovecot: imap-login: Login: user=<{user}>, method=PLAIN, rip=10.20.{g.rng.randrange(1, 9)}."
              f"{g.rng.randrange(2, 250)}, lip=10.20.0.25, mpid={g.rng.randrange(99999)}, TLS")
    if g.rng.random() < 0.3:
        yield t + timedelta(seconds=1), f"postfix/postscreen[1100]: CONNECT from [203.0.113.{g.rng.randrange(1, 255)}]:{g.rng.randrange(1024, 65535)} to [192.0.2.25]:25"


def events(g: Gen, t: datetime) -> Iterator[tuple[datetime, str]]:
    roll = g.rng.random()
    if roll < 0.45:
        yield from inbound(g, t)
    elif roll < 0.65:
        yield from outbound(g, t)
    elif roll < 0.80:
        yield from denied(g, t)
    elif roll < 0.81:
        yield from outbound(g, t, client=g.outside())  # unauthenticated open relay
    elif roll < 0.815:
        yield from outbound(g, t, client=g.outside(), sasl=f"user{g.rng.randrange(50)}", tag="postfix/submission/smtpd")
    elif roll < 0.85:
        yield from sasl_failures(g, t)
    else:
        yield from noise(g, t)


def generate(path: Path, megabytes: float, seed: int = 1) -> Path:
    g = Gen(seed)
    t = datetime(2014, 12, 1)
    target = int(megabytes * 1_000_000)
    written = 0
    pending: list[tuple[datetime, int, str]] = []
    n = 0
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        while written < target:
            for when, text in events(g, t):
                heapq.heappush(pending, (when, n, text))
                n += 1
            t += timedelta(seconds=g.rng.randrange(1, 20))
            while pending and pending[0][0] < t:
                when, _, text = heapq.heappop(pending)
                line = f"{stamp(when)} {HOST} {text}\n"
                fh.write(line)
                written += len(line)
        while pending:
            when, _, text = heapq.heappop(pending)
            fh.write(f"{stamp(when)} {HOST} {text}\n")
    return path


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("output", type=Path)
    ap.add_argument("--mb", type=float, default=100)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    generate(args.output, args.mb, args.seed)
