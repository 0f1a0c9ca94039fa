"""Re-hash the evidence of an earlier run and report any change (chain of custody).

``logforensics verify RESULT`` reads the inputs recorded by an earlier run and hashes them again:

* a ``scan`` JSON document (``inputs[]``: path and SHA-256 of every input, archive members as
  ``archive!member``), or
* a ``batch`` output folder or its ``manifest.json`` (``files``: the SHA-256 of every whole
  evidence file; ``inputs[]`` as in a scan).

A plain or compressed file is hashed as a whole, exactly as it was when it was read; an archive
member is hashed by reading the archive again, in memory, the way the run read it. Nothing is
written, and every file is opened read-only.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from logforensics.errors import LogForensicsError
from logforensics.sources import read_source

#: Verification states; only ``ok`` and ``not-hashed`` (the run itself could not read the input)
#: pass.
PASSING = ("ok", "not-hashed")


@dataclass
class Check:
    path: str
    status: str  # ok, changed, missing, unreadable, not-hashed
    expected: str
    actual: str = ""
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "status": self.status, "expected": self.expected, "actual": self.actual,
                "detail": self.detail}


def load_expected(result: str | Path) -> tuple[dict[str, str], dict[str, str]]:
    """(whole files, archive members): path -> recorded SHA-256 ("" when the run could not hash it).

    Raises:
        LogForensicsError: ``result`` is not a scan JSON document, batch folder or manifest.
    """
    p = Path(result)
    if p.is_dir():
        p = p / "manifest.json"
    try:
        doc = json.loads(p.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise LogForensicsError("no such scan document or batch manifest", path=str(p)) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise LogForensicsError(f"not a scan JSON document or batch manifest ({exc})", path=str(p)) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list):
        raise LogForensicsError("not a scan JSON document or batch manifest (no \"inputs\" list)", path=str(p))
    files: dict[str, str] = {}
    members: dict[str, str] = {}
    for path, facts in (doc.get("files") or {}).items():  # batch: whole evidence files
        if isinstance(facts, dict):
            files[str(path)] = str(facts.get("sha256") or "")
    for entry in doc["inputs"]:
        if not isinstance(entry, dict) or not entry.get("path"):
            continue
        path, sha = str(entry["path"]), str(entry.get("sha256") or "")
        container = str(entry.get("file") or "")
        if container and container != path:  # batch: a member of an archive already in ``files``
            if container not in files:
                members[path] = sha
            continue
        if path in files:
            continue
        if "!" in path and not Path(path).is_file():
            members[path] = sha
        else:
            files[path] = sha
    return files, members


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:  # read-only
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _container(member: str) -> Path | None:
    """The evidence file holding ``a.zip!b.zip!log``: the longest ``!``-prefix that is a file."""
    parts = member.split("!")
    for i in range(len(parts) - 1, 0, -1):
        candidate = Path("!".join(parts[:i]))
        if candidate.is_file():
            return candidate
    return None


def _resolve(path: str, root: Path | None) -> Path:
    p = Path(path)
    return p if p.is_absolute() or root is None else root / p


def verify(result: str | Path, root: str | Path | None = None) -> list[Check]:
    """Re-hash every input recorded in ``result``; relative paths are taken from ``root`` (or cwd)."""
    base = Path(root) if root is not None else None
    files, members = load_expected(result)
    checks: list[Check] = []
    for path, expected in sorted(files.items()):
        if not expected:
            checks.append(Check(path, "not-hashed", "", detail="the run could not read it"))
            continue
        target = _resolve(path, base)
        if not target.exists():
            checks.append(Check(path, "missing", expected, detail="no such file"))
            continue
        try:
            actual = _hash_file(target)
        except OSError as exc:
            checks.append(Check(path, "unreadable", expected, detail=exc.strerror or str(exc)))
            continue
        checks.append(Check(path, "ok" if actual == expected else "changed", expected, actual))
    by_container: dict[str, dict[str, str]] = {}
    for path, expected in sorted(members.items()):
        if not expected:
            checks.append(Check(path, "not-hashed", "", detail="the run could not read it"))
            continue
        container = _container(str(_resolve(path, base)))
        if container is None:
            checks.append(Check(path, "missing", expected, detail="its archive is missing"))
            continue
        by_container.setdefault(str(container), {})[path] = expected
    for container, expected_members in by_container.items():
        try:
            found = {s.path: s.sha256 for s in read_source(container)}
        except LogForensicsError as exc:
            checks += [Check(p, "unreadable", e, detail=exc.message) for p, e in expected_members.items()]
            continue
        for path, expected in expected_members.items():
            actual = found.get(str(_resolve(path, base)))
            if actual is None:
                checks.append(Check(path, "missing", expected, detail=f"no such member in {container}"))
            else:
                checks.append(Check(path, "ok" if actual == expected else "changed", expected, actual))
    return sorted(checks, key=lambda c: c.path)


def render_table(checks: list[Check]) -> str:
    """One line per input: status, path, and what differs."""
    width = max((len(c.status) for c in checks), default=2)
    lines = []
    for c in checks:
        line = f"{c.status:<{width}}  {c.path}"
        if c.status == "changed":
            line += f"  (recorded {c.expected}, now {c.actual})"
        elif c.detail:
            line += f"  ({c.detail})"
        lines.append(line)
    failed = sum(c.status not in PASSING for c in checks)
    lines.append(f"{len(checks)} input(s): {len(checks) - failed} unchanged or not hashed, {failed} changed, "
                 "missing or unreadable")
    return "\n".join(lines)
