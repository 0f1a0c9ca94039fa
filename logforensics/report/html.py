"""Page assembly: one self-contained HTML file, safe against what the logs contain.

Safety rules (everything from a log is attacker-controlled):

* Text in the static parts of the page goes through :func:`html.escape`.
* Data for the page's JavaScript is JSON inside ``<script type="application/json">``, with ``<``, ``>``,
  ``&``, U+2028 and U+2029 written as ``\\uXXXX`` escapes (:func:`json_for_script`), so no value can
  close the element or open a comment; the page reads it with ``JSON.parse`` and builds the tables with
  ``textContent``, never ``innerHTML``.
* Chart labels are HTML-escaped for plotly (see ``charts.esc``).
* The template is filled in one pass, so a value that looks like a placeholder stays text.
* A Content-Security-Policy allows inline code only and no network access at all; plotly.js is inlined.
"""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import plotly.io as pio
import polars as pl
from plotly.offline import get_plotlyjs

from logforensics.classify import FORMS
from logforensics.detect.rules import RULES, SEVERITIES, VERDICTS, severity_rank
from logforensics.report import charts
from logforensics.report.data import ReportData, basename
from logforensics.report.summary import Summary, client_label, summarise, when

#: Findings shipped to the page's table (the most severe first); the charts and summary count all.
DETAIL_CAP = 5000
#: Incidents shipped to the page's table.
INCIDENT_CAP = 5000
#: Evidence lines per finding, and characters per line, shipped to the page.
EVIDENCE_CAP = 20
TEXT_CAP = 2000
PAGE_SIZE = 100

_PLACEHOLDER = re.compile(r"\{\{([A-Z_]+)\}\}")
_SCRIPT_END = re.compile(r"</(script)", re.IGNORECASE)


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def json_for_script(obj: Any) -> str:
    """JSON that can sit inside a ``<script>`` element: no ``<``, ``>``, ``&``, U+2028/U+2029 raw."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=str)
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _asset(name: str) -> str:
    return resources.files("logforensics.report").joinpath("assets", name).read_text(encoding="utf-8")


def plotly_js() -> str:
    """The plotly.js bundle, safe to inline (it never closes the script element)."""
    return _SCRIPT_END.sub(r"<\\/\1", get_plotlyjs())


def fill(template: str, parts: dict[str, str]) -> str:
    """Replace ``{{NAME}}`` placeholders in one pass (inserted text is never scanned again)."""
    return _PLACEHOLDER.sub(lambda m: parts[m.group(1)], template)


def _ms(ts: datetime | None) -> int | None:
    return int(ts.timestamp() * 1000) if ts is not None else None


def _iso(ts: datetime | None) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if ts is not None else ""


# -- data for the page ---------------------------------------------------------------------------------

def finding_details(findings: pl.DataFrame, cap: int = DETAIL_CAP) -> list[dict]:
    """The table rows: the ``cap`` most severe findings (then earliest), in time order."""
    if findings.is_empty():
        return []
    ranks = {name: severity_rank(name) for name in SEVERITIES}
    chosen = findings
    if findings.height > cap:
        chosen = (findings.with_columns(pl.col("severity").replace_strict(ranks, default=0, return_dtype=pl.Int64)
                                        .alias("_rank"))
                  .sort(["_rank", "time"], descending=[True, False]).head(cap).drop("_rank"))
    rows = []
    for f in chosen.sort("time", "id").iter_rows(named=True):
        evidence = f["evidence"] or []
        rows.append({
            "id": f["id"], "t": _ms(f["time"]), "time": _iso(f["time"]), "sev": f["severity"],
            "verdict": f["verdict"], "rule": f["rule"], "form": f["form"],
            "client": client_label(f["client_host"], f["client_ip"]), "server": f["server"] or "",
            "sender": f["sender"] or "", "rcpt": f["recipient"] or "", "eff": f["effective_recipient"] or "",
            "auth": (f"yes ({f['auth_user']})" if f["auth_user"] else "yes") if f["authenticated"] else "no",
            "probe": f["probe"] or "", "inc": f["incident"] or "", "expl": f["explanation"] or "",
            "ev": [[basename(e["path"] or ""), e["line"], e["path"] or "", (e["text"] or "")[:TEXT_CAP]]
                   for e in evidence[:EVIDENCE_CAP]],
            "evMore": max(0, len(evidence) - EVIDENCE_CAP),
        })
    return rows


def incident_details(incidents: pl.DataFrame, cap: int = INCIDENT_CAP) -> list[dict]:
    rows = []
    for r in incidents.sort("first_seen").head(cap).iter_rows(named=True):
        victims = r["victim_domains"] or []
        rows.append({
            "id": r["id"], "first": _iso(r["first_seen"]), "last": _iso(r["last_seen"]),
            "t0": _ms(r["first_seen"]), "t1": _ms(r["last_seen"]),
            "client": client_label(r["client_host"], r["client_ip"]), "n": r["findings"] or 0,
            "verdicts": _counts_text(r["verdicts"]), "forms": _counts_text(r["forms"]),
            "sev": r["severity"] or "", "probe": r["probe"] or "",
            "victims": ", ".join(victims[:20]) + (f" and {len(victims) - 20} more" if len(victims) > 20 else ""),
            "summary": r["summary"] or "",
        })
    return rows


def _counts_text(value: str | None) -> str:
    try:
        counts = json.loads(value) if value else {}
    except ValueError:
        return value or ""
    if not isinstance(counts, dict):
        return str(counts)
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def page_data(data: ReportData) -> dict:
    """Everything the page's JavaScript needs."""
    cube, step, step_words = charts.build_cube(data.findings, data.inputs)
    incident_rows = charts.timeline_rows(data.incidents)
    figs = charts.figures(cube, step, incident_rows)
    for f in figs:  # plotly's own encoder, then plain data again (validated, no numpy left)
        f["figure"] = json.loads(pio.to_json(f["figure"], validate=False))
    findings = data.findings
    return {
        "severities": list(SEVERITIES), "verdictOrder": list(charts.VERDICT_ORDER),
        "severityOrder": list(charts.SEVERITY_ORDER),
        "verdictColors": charts.VERDICT_COLORS, "severityColors": charts.SEVERITY_COLORS,
        "otherColor": charts.OTHER_COLOR, "timelineMax": charts.TIMELINE_MAX,
        "step": step * 1000, "stepWords": step_words, "pageSize": PAGE_SIZE,
        "range": [_ms(findings["time"].min()), _ms(findings["time"].max())] if findings.height else None,  # type: ignore[arg-type]
        "cube": charts.cube_payload(cube), "incidentRows": incident_rows,
        "charts": figs, "config": charts.PLOT_CONFIG,
        "findings": finding_details(findings), "findingsTotal": findings.height,
        "incidents": incident_details(data.incidents), "incidentsTotal": data.incidents.height,
    }


# -- static HTML ------------------------------------------------------------------------------------------

def summary_html(s: Summary) -> str:
    state = "abused" if s.abused else ("warning" if s.relayed or s.accepted_external else "clear")
    period = f"{when(s.first_relay)} to {when(s.last_relay)}" if s.first_relay else "none"
    cards = [
        ("findings", f"{s.findings:,}"), ("incidents", f"{s.incidents:,}"),
        ("relayed recipients", f"{s.relayed:,}"),
        ("of them for unauthenticated clients", f"{s.relayed_unauth:,}"),
        ("messages (estimated)", f"{s.messages:,}"), ("victim addresses", f"{s.victims:,}"),
        ("victim domains", f"{len(s.victim_domains):,}"),
        ("outside recipients accepted from unauthenticated clients, no delivery seen", f"{s.accepted_external:,}"),
        ("refused", f"{s.refused:,}"), ("relay period (UTC)", period),
    ]
    card_html = "".join(f'<div class="card"><span class="num">{esc(v)}</span><span class="lbl">{esc(k)}</span></div>'
                        for k, v in cards)
    tricks = "".join(f"<li>{esc(t)}</li>" for t in s.trick_texts) or "<li>None: no finding was raised.</li>"
    recs = "".join(f"<li>{esc(r)}</li>" for r in s.recommendations)
    held = {True: "held", False: "did not hold", None: "partly held"}[s.restriction_held] if s.findings else "untested"
    return (
        f'<p class="headline {state}" id="headline">{esc(s.headline)}</p>'
        f'<div class="cards">{card_html}</div>'
        '<dl class="answers">'
        f"<dt>Was the server abused as a relay, and when?</dt><dd>{esc(s.abuse_text)}</dd>"
        f"<dt>Which trick was used?</dt><dd><ul>{tricks}</ul></dd>"
        f'<dt>Did the relay restriction hold? <span class="held {esc(held.replace(" ", "-"))}">{esc(held)}</span></dt>'
        f"<dd>{esc(s.restriction_text)}</dd>"
        f"<dt>What should be done now?</dt><dd><ol>{recs}</ol></dd>"
        "</dl>"
        f'<p class="note">The summary counts all {s.findings:,} findings in {s.incidents:,} incidents; the '
        "filters below change the charts and tables only. Messages are estimated: relayed recipients that "
        "share a log record (such as one tracking entry) count as one message.</p>"
    )


def inputs_html(data: ReportData) -> str:
    rows = []
    warnings: list[str] = []
    for i in data.inputs:
        w = i.get("warnings") or []
        warnings += [str(x) for x in w]
        rows.append("<tr>" + "".join(f"<td{cls}>{esc(v)}</td>" for cls, v in (
            (' class="path"', i.get("path")), ("", i.get("format") or "-"), ("", i.get("status") or ""),
            (' class="n"', _num(i.get("bytes"))), (' class="n"', _num(i.get("lines"))),
            (' class="n"', _num(i.get("events"))), (' class="n"', _num(i.get("skipped_lines"))),
            (' class="n"', _num(len(w))), (' class="hash"', i.get("sha256")),
        )) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("path", "format", "status", "bytes", "lines", "events",
                                              "skipped", "warnings", "SHA-256"))
    table = (f'<table class="static" id="inputs-table"><thead><tr>{head}</tr></thead>'
             f"<tbody>{''.join(rows) or '<tr><td colspan=9>no inputs listed</td></tr>'}</tbody></table>")
    if warnings:
        shown = "".join(f"<li>{esc(w)}</li>" for w in warnings[:200])
        more = f"<li>and {len(warnings) - 200:,} more</li>" if len(warnings) > 200 else ""
        table += f'<details class="warnings"><summary>{len(warnings):,} reader warnings</summary><ul>{shown}{more}</ul></details>'
    producer = (f" The batch was written by version {esc(data.producer_version)}." if data.producer_version else "")
    return (f'<p>Produced by <b>{esc(data.tool)} {esc(data.version)}</b> on {esc(_iso(data.generated))} UTC from '
            f"{esc(data.origin or 'the inputs below')}.{producer} Each input's SHA-256 is of its raw bytes, as read.</p>"
            + table)


def _num(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) else ("" if v is None else str(v))


def _shown(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else ("" if value is None else str(value))


def site_html(site: dict) -> str:
    inferred = site.get("inferred") or {}
    source = site.get("source")
    rows = []
    for key, value in site.items():
        if key in ("inferred", "source"):
            continue
        shown = _shown(value)
        if key in inferred:
            how, cls = f"inferred: {inferred[key]}", ' class="inferred"'
        else:
            how, cls = (f"profile {source} (or its default)" if source else "default (not inferred)"), ""
        rows.append(f"<tr{cls}><th>{esc(key)}</th><td>{esc(shown or '-')}</td><td>{esc(how)}</td></tr>")
    for key, reason in inferred.items():  # facts inferred for one server (its [servers.NAME] table)
        if key.startswith("servers."):
            name, _, sub = key[len("servers."):].rpartition(".")
            shown = _shown((site.get("servers") or {}).get(name, {}).get(sub))
            rows.append(f'<tr class="inferred"><th>{esc(key)}</th><td>{esc(shown or "-")}</td>'
                        f"<td>{esc(f'inferred: {reason}')}</td></tr>")
    intro = (f"Site profile file: <code>{esc(source)}</code>." if source
             else "No site profile was given; what the logs tell was inferred.")
    return (f"<p>{intro} Rows marked <span class=\"inferred-tag\">inferred</span> were not given but worked out "
            "from the logs, with the reason.</p>"
            '<table class="static" id="site-table"><thead><tr><th>key</th><th>value</th><th>how it is known</th>'
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def legend_html() -> str:
    verdicts = "".join(f"<li><b>{esc(k)}</b>: {esc(v)}</li>" for k, v in VERDICTS.items())
    rules = "".join(f"<li><b>{esc(r.id)}</b> {esc(r.title)}: {esc(r.description)} "
                    f"<i>{esc(', '.join(r.references))}</i></li>" for r in RULES.values())
    forms = "".join(f"<li><b>{esc(k)}</b>: {esc(v)}</li>" for k, v in FORMS.items())
    return (f'<details class="legend"><summary>What the verdicts, rules and address forms mean</summary>'
            f"<h3>Verdicts</h3><ul>{verdicts}</ul><h3>Rules</h3><ul>{rules}</ul>"
            f"<h3>Address forms</h3><ul>{forms}</ul></details>")


def render_report(data: ReportData) -> str:
    """The whole page as text."""
    s = summarise(data.findings, data.incidents, data.site)
    payload = page_data(data)
    chart_divs = "".join(f'<div class="chart" id="chart-{esc(c["id"])}" data-chart="{esc(c["id"])}"></div>'
                         for c in payload["charts"])
    notes = [f"Charts group findings by time steps of {payload['stepWords']}; the time filter works on "
             "those steps for the charts and on exact times for the tables. Zooming a time chart sets the time "
             "filter; double-clicking it shows the whole range again."]
    if data.findings.height > DETAIL_CAP:
        notes.append(f"The findings table holds the {DETAIL_CAP:,} most severe of {data.findings.height:,} "
                     "findings; the charts and the summary count them all. The full list is in the scan's "
                     "JSON, CSV or Parquet output.")
    if data.incidents.height > INCIDENT_CAP:
        notes.append(f"The incidents table holds the first {INCIDENT_CAP:,} of {data.incidents.height:,} incidents.")
    if data.incidents.height > charts.TIMELINE_MAX:
        notes.append(f"The incident timeline shows the {charts.TIMELINE_MAX} most severe incidents.")
    title = f"Mail relay forensic report: {data.site.get('name') or 'mail server'}"
    parts = {
        "TITLE": esc(title),
        "CSS": _asset("report.css"),
        "HEADING": esc(title),
        "META": esc(f"{data.tool} {data.version} · generated {_iso(data.generated)} UTC · {data.origin}"),
        "SUMMARY": summary_html(s),
        "NOTES": "".join(f"<p class=\"note\">{esc(n)}</p>" for n in notes),
        "SEVERITY_OPTIONS": "".join(f'<option value="{i}">{esc(name)}</option>' for i, name in enumerate(SEVERITIES)),
        "CHARTS": chart_divs,
        "LEGEND": legend_html(),
        "INPUTS": inputs_html(data),
        "SITE": site_html(data.site),
        "DATA": json_for_script(payload),
        "PLOTLY_JS": plotly_js(),
        "APP_JS": _asset("report.js"),
    }
    return fill(_asset("report.html"), parts)
