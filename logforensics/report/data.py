"""What a report is built from: findings, incidents, the site profile and the inputs, from either source.

Both ``logforensics report PATH...`` (a fresh scan) and ``logforensics report --from-batch DIR`` (a batch
output folder) produce one :class:`ReportData`; everything after that is shared.

Batch folder layout::

    DIR/findings.parquet   the findings frame (incl. ``incident``; ``evidence`` a list of structs)
    DIR/incidents.parquet  the incidents frame
    DIR/manifest.json      {"tool", "version", "site": {...}, "inputs": [{path, size, sha256, format, ...}]}
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

import polars as pl

from logforensics import TOOL_NAME, __version__
from logforensics.detect.findings import finding_schema
from logforensics.detect.incidents import INCIDENT_SCHEMA
from logforensics.errors import LogForensicsError

if TYPE_CHECKING:
    from logforensics.scan import ScanResult

#: Finding columns the report reads (the findings schema + the incident id), with their types.
_FINDING_TYPES: dict[str, pl.DataType] = {**finding_schema(), "incident": pl.String}


@dataclass
class ReportData:
    """Frames and metadata for one report."""

    findings: pl.DataFrame
    incidents: pl.DataFrame
    site: dict[str, Any]
    inputs: list[dict[str, Any]]
    tool: str = TOOL_NAME
    version: str = __version__
    generated: datetime = field(default_factory=lambda: datetime.now(UTC))
    #: what was analysed, in words ("scan of samples/", "batch folder out/")
    origin: str = ""
    #: the tool version that wrote the batch, when it differs from this one
    producer_version: str | None = None

    def __post_init__(self) -> None:
        self.findings = normalise_findings(self.findings)
        self.incidents = normalise_incidents(self.incidents)


def normalise_findings(frame: pl.DataFrame) -> pl.DataFrame:
    """The findings with every column the report reads, in the documented types (missing ones null)."""
    cols = []
    for name, dtype in _FINDING_TYPES.items():
        if name in frame.columns:
            col = pl.col(name)
            if name == "time" and isinstance(frame.schema[name], pl.Datetime):
                tz = frame.schema[name].time_zone  # type: ignore[union-attr]
                col = col.dt.replace_time_zone("UTC") if tz is None else col.dt.convert_time_zone("UTC")
            cols.append(col.cast(dtype).alias(name))
        else:
            cols.append(pl.lit(None, dtype).alias(name))
    return frame.select(cols) if frame.width else pl.DataFrame(schema=_FINDING_TYPES)


def normalise_incidents(frame: pl.DataFrame) -> pl.DataFrame:
    """The incidents with the documented columns; ``verdicts``/``forms`` as JSON text."""
    cols = []
    for name, dtype in INCIDENT_SCHEMA.items():
        if name not in frame.columns:
            cols.append(pl.lit(None, dtype).alias(name))
        elif name in ("verdicts", "forms") and frame.schema[name] != pl.String:
            cols.append(pl.col(name).map_elements(_json_text, return_dtype=pl.String).alias(name))
        else:
            cols.append(pl.col(name).cast(dtype).alias(name))
    return frame.select(cols) if frame.width else pl.DataFrame(schema=INCIDENT_SCHEMA)


def _json_text(value: Any) -> str:
    if isinstance(value, dict):
        return json.dumps({k: v for k, v in value.items() if v is not None}, sort_keys=True)
    return json.dumps(value)


def from_scan(result: ScanResult, paths: list[str | Path] | None = None) -> ReportData:
    """A report on a fresh scan."""
    where = ", ".join(str(p) for p in paths) if paths else "the given inputs"
    return ReportData(
        findings=result.findings, incidents=result.incidents, site=result.site.to_dict(),
        inputs=[r.to_dict() for r in result.inputs], origin=f"scan of {where}",
    )


def from_batch(folder: str | Path) -> ReportData:
    """A report on a batch output folder (``findings.parquet``, ``incidents.parquet``, ``manifest.json``).

    Raises:
        LogForensicsError: a file is missing or unreadable (the file is named).
    """
    d = Path(folder)
    if not d.is_dir():
        raise LogForensicsError(f"{d}: not a batch output folder")
    manifest_path = d / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LogForensicsError(f"{manifest_path}: missing (not a batch output folder?)") from None
    except (OSError, ValueError) as exc:
        raise LogForensicsError(f"{manifest_path}: cannot read: {exc}") from None
    if not isinstance(manifest, dict):
        raise LogForensicsError(f"{manifest_path}: not a JSON object")
    frames = {}
    for name in ("findings", "incidents"):
        path = d / f"{name}.parquet"
        try:
            frames[name] = pl.read_parquet(path)
        except FileNotFoundError:
            raise LogForensicsError(f"{path}: missing") from None
        except Exception as exc:  # polars raises several exception types for damaged files
            raise LogForensicsError(f"{path}: cannot read: {type(exc).__name__}") from None
    inputs = []
    for entry in manifest.get("inputs") or []:
        if isinstance(entry, dict):
            inputs.append({**entry, "bytes": entry.get("bytes", entry.get("size"))})
    version = str(manifest.get("version") or "")
    return ReportData(
        findings=frames["findings"], incidents=frames["incidents"],
        site=manifest.get("site") if isinstance(manifest.get("site"), dict) else {},
        inputs=inputs, origin=f"batch folder {d}",
        producer_version=version if version and version != __version__ else None,
    )


def input_formats(inputs: list[dict[str, Any]]) -> dict[str, str]:
    """Input path -> log format, for the inputs that were read."""
    return {str(i.get("path")): str(i["format"]) for i in inputs if i.get("path") and i.get("format")}


def format_of(path: str | None, formats: dict[str, str]) -> str:
    """The format of the input an evidence path belongs to (archive members: ``archive!member``)."""
    if not path:
        return "unknown"
    if path in formats:
        return formats[path]
    if "!" in path:
        head = path.split("!", 1)[0]
        if head in formats:
            return formats[head]
    return "unknown"


def basename(path: str) -> str:
    """The file name of an evidence path (the member name inside an archive)."""
    tail = path.rsplit("!", 1)[-1]
    return PurePath(tail.replace("\\", "/")).name or tail
