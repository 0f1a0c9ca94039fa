"""Shared fixtures: write a log to a temporary file and read it through the real ingest path."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from logforensics.ingest import IngestResult, ingest
from logforensics.site import SiteProfile

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
SHARED = ROOT.parent / "shared"
CORPUS = SHARED / "corpus" / "real"



def read_log(tmp_path: Path, text: str | bytes, *, name: str = "L0000000.LOG",
             site: SiteProfile | None = None) -> IngestResult:
    """Write ``text`` (CRLF/LF kept exactly) to ``tmp_path/name`` and ingest it."""
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return ingest([path], site or SiteProfile(timezone="UTC"))


def rows(result: IngestResult, *cols: str) -> list[tuple]:
    """The events as tuples of the named columns, in line order."""
    return result.events.sort("source", "line").select(cols).rows()


@pytest.fixture
def chicago() -> SiteProfile:
    return SiteProfile(timezone="America/Chicago", local_domains=("acme-widgets.com",))


def utc(text: str):
    """An aware UTC datetime from ``YYYY-MM-DD HH:MM:SS``."""
    return pl.Series([text]).str.to_datetime("%Y-%m-%d %H:%M:%S", time_zone="UTC")[0]
