"""The dashboards: findings aggregated into a small cube, and plotly figures rolled up from it.

The cube has one row per distinct (time step, severity, verdict, form, rule, client, victim domain,
server/format, incident) with a count, so thousands of findings become a few hundred cells. The page
ships the cube (as integer codes into label lists) and rolls it up again in JavaScript when the filters
change, with the same rules as :func:`rollup` here; Python builds the initial figures.

Every label taken from the logs is HTML-escaped before it reaches plotly, because plotly renders a
small subset of HTML in axis labels and hover text; escaped, ``<script>`` shows as text.
"""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass
from typing import Any

import plotly.graph_objects as go
import polars as pl

from logforensics.detect.rules import SEVERITIES, VERDICTS, severity_rank
from logforensics.report.data import format_of, input_formats
from logforensics.report.summary import client_label, victim_domain

#: Display order and colour of verdicts and severities (names from the registries).
VERDICT_ORDER: tuple[str, ...] = tuple(v for v in ("relayed", "accepted", "attempted", "refused") if v in VERDICTS)
VERDICT_COLORS = {"relayed": "#b2182b", "accepted": "#ef8a62", "attempted": "#c9a227", "refused": "#4d9221"}
SEVERITY_ORDER: tuple[str, ...] = tuple(reversed(SEVERITIES))
SEVERITY_COLORS = {"critical": "#67001f", "high": "#d6604d", "medium": "#f4a582", "low": "#92c5de",
                   "info": "#bababa"}
OTHER_COLOR = "#777777"

#: Dimensions of the cube, in the order the page's rows carry them.
DIMS: tuple[str, ...] = ("bucket", "severity", "verdict", "form", "rule", "client", "victim", "srvfmt", "incident")

#: (seconds, words) time steps; the smallest giving at most MAX_BUCKETS steps is used.
STEPS: tuple[tuple[int, str], ...] = (
    (60, "1 minute"), (300, "5 minutes"), (900, "15 minutes"), (3600, "1 hour"), (3 * 3600, "3 hours"),
    (6 * 3600, "6 hours"), (12 * 3600, "12 hours"), (86400, "1 day"), (7 * 86400, "7 days"),
    (30 * 86400, "30 days"), (365 * 86400, "365 days"),
)
MAX_BUCKETS = 240
TOP_N = 15
TIMELINE_MAX = 300

PLOT_CONFIG = {"displaylogo": False, "responsive": True, "showLink": False, "showSendToCloud": False,
               "showEditInChartStudio": False, "toImageButtonOptions": {"format": "png"}}


@dataclass(frozen=True)
class ChartSpec:
    """One dashboard: a roll-up of the cube along ``x`` (and ``series``)."""

    id: str
    title: str
    kind: str  # bar | hbar | heatmap | timeline
    x: str
    series: str | None = None
    top: int | None = None
    x_title: str = ""
    y_title: str = ""


CHARTS: tuple[ChartSpec, ...] = (
    ChartSpec("over-time", "Findings over time, by verdict", "bar", "bucket", "verdict",
              x_title="time (UTC)", y_title="findings"),
    ChartSpec("timeline", "Incidents on a timeline, by client", "timeline", "incident", "severity",
              x_title="time (UTC)"),
    ChartSpec("clients", f"Top relaying clients (top {TOP_N})", "hbar", "client", "verdict", top=TOP_N,
              x_title="findings"),
    ChartSpec("victims", f"Top victim domains (top {TOP_N})", "hbar", "victim", "verdict", top=TOP_N,
              x_title="findings"),
    ChartSpec("form-verdict", "Relay form against verdict", "heatmap", "verdict", "form",
              x_title="verdict", y_title="relay form"),
    ChartSpec("server-format", "Findings per server and log format, by severity", "bar", "srvfmt", "severity",
              x_title="server · format", y_title="findings"),
    ChartSpec("severity", "Findings by severity", "bar", "severity", "severity", y_title="findings"),
)


def esc(text: Any) -> str:
    """A label for plotly: HTML-escaped, so plotly's pseudo-HTML shows it as text. Quotes become
    numeric references: plotly decodes ``&#34;`` but shows ``&quot;`` as it is."""
    return html.escape(str(text), quote=False).replace('"', "&#34;").replace("'", "&#39;")


def choose_step(findings: pl.DataFrame) -> tuple[int, str]:
    if findings.is_empty():
        return STEPS[3]
    lo, hi = findings["time"].min(), findings["time"].max()
    span = (hi - lo).total_seconds() if lo is not None and hi is not None else 0  # type: ignore[operator]
    for seconds, words in STEPS:
        if span / seconds <= MAX_BUCKETS:
            return seconds, words
    return STEPS[-1]


def build_cube(findings: pl.DataFrame, inputs: list[dict]) -> tuple[pl.DataFrame, int, str]:
    """The findings aggregated by every dimension the dashboards use; returns (cube, step seconds, words)."""
    step, words = choose_step(findings)
    empty = pl.DataFrame(schema={**{d: pl.String for d in DIMS}, "bucket": pl.Int64, "n": pl.Int64})
    if findings.is_empty():
        return empty.select(*DIMS, "n"), step, words
    formats = input_formats(inputs)
    first_paths = [ev[0]["path"] if ev else None for ev in findings["evidence"].to_list()]
    frame = pl.DataFrame({
        "bucket": (findings["time"].dt.epoch("s") // step * step * 1000).cast(pl.Int64),
        "severity": findings["severity"].fill_null("info"),
        "verdict": findings["verdict"].fill_null("unknown"),
        "form": findings["form"].fill_null("unknown"),
        "rule": findings["rule"].fill_null("unknown"),
        "client": [client_label(h, i) for h, i in zip(findings["client_host"].to_list(),
                                                      findings["client_ip"].to_list(), strict=True)],
        "victim": [victim_domain(r) if ext else None for r, ext in
                   zip(findings["effective_recipient"].to_list(), findings["external"].to_list(), strict=True)],
        "srvfmt": [f"{s or '(unknown server)'} · {format_of(p, formats)}"
                   for s, p in zip(findings["server"].to_list(), first_paths, strict=True)],
        "incident": findings["incident"],
    }, schema_overrides={"victim": pl.String, "incident": pl.String})
    cube = frame.group_by(list(DIMS)).agg(pl.len().cast(pl.Int64).alias("n")).sort(list(DIMS), nulls_last=True)
    return cube, step, words


def _order(dim: str, totals: dict[str, int]) -> list[str]:
    keys = list(totals)
    if dim == "bucket":
        return sorted(keys, key=int)
    if dim == "verdict":
        known = [v for v in VERDICT_ORDER if v in totals]
        return known + sorted(k for k in keys if k not in VERDICT_ORDER)
    if dim == "severity":
        return [s for s in SEVERITY_ORDER if s in totals] + sorted(k for k in keys if k not in SEVERITY_ORDER)
    return sorted(keys, key=lambda k: (-totals[k], k))


def rollup(cube: pl.DataFrame, x: str, series: str | None, top: int | None = None
           ) -> tuple[list[str], list[str], dict[tuple[str, str], int]]:
    """Counts by (x, series): (x categories in order, series in order, cell counts). Null x is dropped.

    ``top`` keeps the x categories with the largest totals. The page's JavaScript mirrors this.
    """
    cells: dict[tuple[str, str], int] = {}
    xt: dict[str, int] = {}
    st: dict[str, int] = {}
    sdim = series or x
    for xv, sv, n in zip(cube[x].to_list(), cube[sdim].to_list(), cube["n"].to_list(), strict=True):
        if xv is None:
            continue
        xk, sk = str(xv), str(sv) if sv is not None else "(none)"
        cells[(xk, sk)] = cells.get((xk, sk), 0) + n
        xt[xk] = xt.get(xk, 0) + n
        st[sk] = st.get(sk, 0) + n
    xs = _order(x, xt)
    if top is not None and len(xs) > top:
        keep = set(sorted(xt, key=lambda k: (-xt[k], k))[:top])
        xs = [k for k in xs if k in keep]
    return xs, _order(sdim, st), cells


def _color(dim: str, name: str) -> str:
    if dim == "verdict":
        return VERDICT_COLORS.get(name, OTHER_COLOR)
    if dim == "severity":
        return SEVERITY_COLORS.get(name, OTHER_COLOR)
    return OTHER_COLOR


def time_label(ms: int) -> str:
    """Epoch milliseconds as plotly's date string (UTC)."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _layout(spec: ChartSpec, **extra: Any) -> dict:
    layout: dict[str, Any] = {
        "template": "plotly_white", "title": {"text": esc(spec.title)}, "height": 380,
        "margin": {"l": 60, "r": 20, "t": 50, "b": 60}, "legend": {"orientation": "h", "y": -0.2},
        "xaxis": {"title": {"text": esc(spec.x_title)}}, "yaxis": {"title": {"text": esc(spec.y_title)}},
        "hovermode": "closest", "font": {"family": "system-ui, sans-serif", "size": 12},
    }
    layout.update(extra)
    return layout


def bar_figure(spec: ChartSpec, cube: pl.DataFrame, step: int) -> go.Figure:
    xs, series, cells = rollup(cube, spec.x, spec.series, spec.top)
    horizontal = spec.kind == "hbar"
    traces = []
    for s in series:
        ys = [cells.get((x, s), 0) for x in xs]
        if not any(ys):
            continue
        cats = [time_label(int(x)) if spec.x == "bucket" else esc(x) for x in xs]
        trace: dict[str, Any] = {"type": "bar", "name": esc(s), "marker": {"color": _color(spec.series or "", s)}}
        if horizontal:
            trace.update(x=ys, y=cats, orientation="h",
                         hovertemplate="%{y}<br>" + esc(s) + ": %{x}<extra></extra>")
        else:
            trace.update(x=cats, y=ys, hovertemplate="%{x}<br>" + esc(s) + ": %{y}<extra></extra>")
            if spec.x == "bucket":
                trace["width"] = step * 1000 * 0.9
        traces.append(trace)
    extra: dict[str, Any] = {"barmode": "stack"}
    if horizontal:
        extra["yaxis"] = {"autorange": "reversed", "automargin": True, "type": "category"}
        extra["xaxis"] = {"title": {"text": esc(spec.x_title)}}
        extra["height"] = max(380, 30 + 24 * len(xs))
    elif spec.x == "bucket":
        extra["xaxis"] = {"type": "date", "title": {"text": esc(spec.x_title)}}
    else:
        extra["xaxis"] = {"type": "category", "title": {"text": esc(spec.x_title)}, "automargin": True}
    if spec.x == spec.series:
        extra["showlegend"] = False
    return go.Figure(data=traces, layout=_layout(spec, **extra))


def heatmap_figure(spec: ChartSpec, cube: pl.DataFrame) -> go.Figure:
    xs, ys, cells = rollup(cube, spec.x, spec.series)
    z = [[cells.get((x, y), 0) for x in xs] for y in ys]
    trace = {"type": "heatmap", "x": [esc(x) for x in xs], "y": [esc(y) for y in ys], "z": z,
             "colorscale": "Reds", "texttemplate": "%{z}", "showscale": False,
             "hovertemplate": "form %{y}<br>verdict %{x}<br>%{z} findings<extra></extra>"}
    extra = {"xaxis": {"type": "category", "title": {"text": "verdict"}},
             "yaxis": {"type": "category", "automargin": True, "autorange": "reversed"}}
    return go.Figure(data=[trace] if xs else [], layout=_layout(spec, **extra))


def timeline_rows(incidents: pl.DataFrame) -> list[list]:
    """Incidents for the timeline and its filter: [id, first ms, last ms, client label, severity, findings,
    summary], most severe first, then largest, then earliest."""
    rows = []
    for r in incidents.iter_rows(named=True):
        first, last = r["first_seen"], r["last_seen"] or r["first_seen"]
        rows.append([r["id"], int(first.timestamp() * 1000) if first else None,
                     int(last.timestamp() * 1000) if last else None,
                     client_label(r["client_host"], r["client_ip"]), r["severity"] or "info",
                     r["findings"] or 0, r["summary"] or ""])
    rows.sort(key=lambda r: (-severity_rank(r[4]) if r[4] in SEVERITIES else 0, -r[5], r[1] or 0))
    return rows


def timeline_traces(rows: list[list], limit: int = TIMELINE_MAX) -> list[dict]:
    """One trace per severity; each incident a segment from first to last seen (a dot when both agree)."""
    traces = []
    shown = [r for r in rows if r[1] is not None][:limit]
    for sev in SEVERITY_ORDER:
        xs: list[Any] = []
        ys: list[Any] = []
        texts: list[Any] = []
        for r in shown:
            if r[4] != sev:
                continue
            label = f"{esc(r[0])}<br>{esc(r[3])}<br>{r[5]} findings, {esc(sev)}<br>{esc(r[6][:300])}"
            xs += [time_label(r[1]), time_label(r[2]), None]
            ys += [esc(r[3]), esc(r[3]), None]
            texts += [label, label, None]
        if xs:
            traces.append({"type": "scatter", "mode": "lines+markers", "name": esc(sev), "x": xs, "y": ys,
                           "text": texts, "hovertemplate": "%{text}<extra></extra>", "connectgaps": False,
                           "line": {"width": 8, "color": SEVERITY_COLORS.get(sev, OTHER_COLOR)},
                           "marker": {"size": 9, "color": SEVERITY_COLORS.get(sev, OTHER_COLOR)}})
    return traces


def timeline_figure(spec: ChartSpec, rows: list[list]) -> go.Figure:
    traces = timeline_traces(rows)
    clients = {y for t in traces for y in t["y"] if y is not None}
    extra = {"xaxis": {"type": "date", "title": {"text": esc(spec.x_title)}},
             "yaxis": {"type": "category", "automargin": True},
             "height": max(380, 80 + 26 * len(clients))}
    return go.Figure(data=traces, layout=_layout(spec, **extra))


def figures(cube: pl.DataFrame, step: int, incident_rows: list[list]) -> list[dict]:
    """Every dashboard as plotly JSON (``{"id", "spec", "figure"}``), built and validated by plotly."""
    out = []
    for spec in CHARTS:
        if spec.kind == "timeline":
            fig = timeline_figure(spec, incident_rows)
        elif spec.kind == "heatmap":
            fig = heatmap_figure(spec, cube)
        else:
            fig = bar_figure(spec, cube, step)
        if not fig.data:
            fig.add_annotation(text="no data", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5,
                               font={"size": 16, "color": "#777"})
        out.append({"id": spec.id, "spec": asdict(spec), "figure": fig.to_plotly_json()})
    return out


def cube_payload(cube: pl.DataFrame) -> dict:
    """The cube for the page: label lists per dimension (escaped for plotly where shown) and integer rows."""
    labels: dict[str, list[str]] = {}
    codes: dict[str, dict[Any, int]] = {}
    for d in DIMS:
        values = [v for v in cube[d].unique(maintain_order=True).to_list() if v is not None]
        labels[d] = [str(v) for v in values]
        codes[d] = {v: i for i, v in enumerate(values)}
    rows = []
    for rec in cube.iter_rows():
        rows.append([codes[d][v] if v is not None else -1 for d, v in zip(DIMS, rec[:-1], strict=True)] + [rec[-1]])
    return {"dims": list(DIMS), "labels": labels, "rows": rows}
