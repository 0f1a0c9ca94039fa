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


def test_readme_explains_every_form_verdict_severity_and_rule():
    from logforensics.classify import FORMS
    from logforensics.detect.rules import RULES, SEVERITIES, VERDICTS

    readme = (ROOT / "README.md").read_text()
    for name in [*FORMS, *VERDICTS, *SEVERITIES, *RULES]:
        assert f"| `{name}` |" in readme, name


def test_readme_main_command_runs_scan_on_samples():
    readme = (ROOT / "README.md").read_text()
    assert "logforensics scan samples/ --site samples/site.toml" in readme
    assert "logforensics report samples/ --site samples/site.toml --output reports/report.html" in readme
