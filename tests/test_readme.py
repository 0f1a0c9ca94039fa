"""The README tells the truth about the schema and the commands."""

from __future__ import annotations

from logforensics.readers import READERS
from logforensics.schema import schema_markdown
from tests.conftest import ROOT


def test_readme_schema_table_matches_code():
    assert schema_markdown() in (ROOT / "README.md").read_text()


def test_readme_lists_every_format():
    readme = (ROOT / "README.md").read_text()
    for name in READERS:
        assert f"`{name}`" in readme
