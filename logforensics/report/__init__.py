"""The management report: one self-contained, offline HTML file with an executive summary, plotly
dashboards and the finding/incident tables (``logforensics report``).

* :mod:`.data`: what a report is built from (a scan, or a batch output folder)
* :mod:`.summary`: the executive summary, counted from the findings
* :mod:`.charts`: the aggregated cube and the plotly figures
* :mod:`.html`: page assembly and the safety rules; the template, CSS and JS are in ``assets/``
"""

from __future__ import annotations

from pathlib import Path

from logforensics.report.data import ReportData, from_batch, from_scan
from logforensics.report.html import render_report

#: Where ``logforensics report`` writes when no ``--output`` is given.
DEFAULT_DIR = Path("reports")
DEFAULT_NAME = "report.html"


def output_path(output: Path | None) -> Path:
    """The file to write: ``--output`` (a folder gets ``report.html``), else ``reports/report.html``."""
    if output is None:
        return DEFAULT_DIR / DEFAULT_NAME
    if output.is_dir() or str(output).endswith(("/", "\\")):
        return output / DEFAULT_NAME
    return output


def write_report(data: ReportData, output: Path | None = None) -> Path:
    """Render the report and write it (UTF-8); returns the path written."""
    path = output_path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(data), encoding="utf-8")
    return path


__all__ = ["DEFAULT_DIR", "ReportData", "from_batch", "from_scan", "output_path", "render_report", "write_report"]
