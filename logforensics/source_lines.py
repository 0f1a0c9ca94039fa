"""Raw evidence lines for batch detection, which no longer holds the files' lines in memory.

A finding quotes the raw text of each line it cites. ``scan`` keeps every file's lines in memory.
``batch`` keeps, per input, the text of every line a finding can cite in a small Parquet file
written when the input was parsed (``lines/<key>.parquet``), so detection never decompresses an
evidence file a second time. Where there is no such file (a dataset from an older version) or a
cited line is missing from it, the evidence file is read again, checked against the SHA-256
recorded when it was parsed, and nothing is quoted from a file that changed.
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

    def __init__(self, sha256: dict[str, str], stored: dict[str, str] | None = None) -> None:
        self.sha256 = sha256
        self.stored = stored or {}
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
        kept = self._from_store(path, lines)
        if kept is not None:
            return kept
        return gather_lines(self._series(path), lines)

    def _from_store(self, path: str, lines: list[int]) -> list[str | None] | None:
        """The lines from the input's quotable-lines file, or None when it lacks any of them."""
        store = self.stored.get(path)
        if store is None:
            return None
        wanted = pl.DataFrame({"line": lines}, schema={"line": pl.Int64}).with_row_index("i")
        try:
            kept = pl.scan_parquet(store).filter(pl.col("line").is_in(wanted["line"].unique().implode())).collect()
        except (OSError, pl.exceptions.PolarsError):
            return None
        got = wanted.join(kept, on="line", how="left").sort("i")["text"]
        return None if got.null_count() else got.to_list()

    def _series(self, path: str) -> pl.Series | None:
        if path not in self._cache:
            self._cache[path] = self._load(path)
            if len(self._cache) > CACHE_FILES:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(path)
        return self._cache[path]
