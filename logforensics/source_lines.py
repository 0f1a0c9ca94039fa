"""Raw evidence lines, read back from the evidence files on demand (batch runs keep no copy).

A finding quotes the raw text of each line it cites. ``scan`` keeps every file's lines in memory;
``batch`` cannot, so it re-reads only the files that findings cite, checks that each still has the
SHA-256 recorded when it was parsed, and quotes nothing from a file that changed.
"""

from __future__ import annotations

from collections import OrderedDict

import polars as pl

from logforensics.errors import LogForensicsError
from logforensics.sources import decode_text, gather_lines, read_source, split_lines

#: How many files' lines to keep at once.
CACHE_FILES = 12


class SourceLines:
    """``lookup(path, line)`` -> the raw text of that 1-based line, re-read from the evidence."""

    def __init__(self, sha256: dict[str, str]) -> None:
        self.sha256 = sha256
        self.warnings: list[str] = []
        self._cache: OrderedDict[str, pl.Series | None] = OrderedDict()

    def _file_of(self, path: str) -> str:
        """The evidence file that holds ``path`` (an ``archive.zip!member`` lives in the archive)."""
        if path in self.sha256 and "!" not in path:
            return path
        return path.split("!", 1)[0]

    def _load(self, path: str) -> pl.Series | None:
        try:
            sources = read_source(self._file_of(path))
        except LogForensicsError as exc:
            self.warnings.append(f"{path}: cannot quote evidence lines: {exc}")
            return None
        for source in sources:
            if source.path != path:
                continue
            expected = self.sha256.get(path)
            if expected and source.sha256 != expected:
                self.warnings.append(f"{path}: changed since it was parsed (SHA-256 {source.sha256} is not "
                                     f"the recorded {expected}); its lines are not quoted")
                return None
            return split_lines(decode_text(source.data)[0])
        self.warnings.append(f"{path}: not found when quoting evidence lines")
        return None

    def texts(self, path: str, lines: list[int]) -> list[str | None]:
        """The raw text of these 1-based lines of ``path`` (None where unknown), read once per file."""
        return gather_lines(self._series(path), lines)

    def _series(self, path: str) -> pl.Series | None:
        if path not in self._cache:
            self._cache[path] = self._load(path)
            if len(self._cache) > CACHE_FILES:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(path)
        return self._cache[path]
