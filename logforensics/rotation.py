"""Rotated log files: which files belong to one log, and their order from newest to oldest.

Unix log rotation renames ``mail.log`` to ``mail.log.1``, then ``mail.log.2.gz`` and so on (a
larger number is older), or appends a date (``maillog-20040101.gz``, Exim's ``mainlog-20040101``).
The order matters for year-less syslog stamps: each older file ends before the next newer one
starts, which anchors its year (see ``readers/syslog.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Compression suffixes a rotated name may carry (compression itself is sniffed by magic bytes).
_COMPRESSED = re.compile(r"\.(?:gz|bz2|xz|z|Z|zip)$")
_NUMBERED = re.compile(r"^(?P<base>.+?)\.(?P<n>[0-9]{1,4})$")
_DATED = re.compile(r"^(?P<base>.+?)[-.](?P<date>(?:19|20)[0-9]{6})$")


@dataclass(frozen=True, order=True)
class RotationKey:
    """A file's log (folder + base name) and its age within that log (0 = the live file)."""

    group: str
    age: tuple[int, str]


def rotation_key(path: str) -> RotationKey:
    """The rotation group and age of a path (``archive.zip!member`` paths use the member's name).

    Numbered rotations: ``mail.log`` is age 0, ``mail.log.1`` age 1, ``mail.log.2.gz`` age 2.
    Dated rotations sort newest first: a later date is a smaller age.
    """
    parent, _, name = path.replace("\\", "/").rpartition("/")
    stem = _COMPRESSED.sub("", name)
    if m := _NUMBERED.match(stem):
        return RotationKey(f"{parent}/{m['base']}", (int(m["n"]), ""))
    if m := _DATED.match(stem):
        # Newer dates first: invert the digits so that ascending order is newest first.
        inverted = "".join(str(9 - int(c)) for c in m["date"])
        return RotationKey(f"{parent}/{m['base']}", (1, inverted))
    return RotationKey(f"{parent}/{stem}", (0, ""))


def rotation_date(path: str) -> tuple[int, int, int] | None:
    """(year, month, day) from a date-suffixed rotation name (``maillog-20050103``), else None.

    logrotate's ``dateext`` names a file after the day it was rotated, so its last line was written
    on or before that day: an anchor for year-less stamps that survives copying (mtimes do not).
    """
    name = path.replace("\\", "/").rpartition("/")[2]
    m = _DATED.match(_COMPRESSED.sub("", name))
    if not m:
        return None
    y, mo, d = int(m["date"][:4]), int(m["date"][4:6]), int(m["date"][6:])
    return (y, mo, d) if 1 <= mo <= 12 and 1 <= d <= 31 else None


def oldest_first(paths: list[str]) -> list[str]:
    """:func:`newest_first` with each rotation group the other way round (oldest file first)."""
    groups: dict[str, list[str]] = {}
    for p in newest_first(paths):  # each group's members are contiguous there
        groups.setdefault(rotation_key(p).group, []).append(p)
    return [p for members in groups.values() for p in reversed(members)]


def newest_first(paths: list[str]) -> list[str]:
    """The paths ordered so that, within each rotation group, newer files come before older ones.

    Groups keep the order in which their first member appears.
    """
    first_seen: dict[str, int] = {}
    keyed = []
    for i, p in enumerate(paths):
        key = rotation_key(p)
        first_seen.setdefault(key.group, i)
        keyed.append((first_seen[key.group], key.age, i, p))
    return [p for *_, p in sorted(keyed)]
