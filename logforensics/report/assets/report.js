/* The report's dashboards and tables. Data comes only from the JSON element #report-data; every value
   from the logs is put into the page with textContent (never parsed as markup) and HTML-escaped for
   plotly, which renders a subset of HTML in labels. The roll-up mirrors logforensics/report/charts.py. */
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("report-data").textContent);
  var CUBE = DATA.cube;
  var DIM = {};
  CUBE.dims.forEach(function (d, i) { DIM[d] = i; });
  var SEV_RANK = {};
  DATA.severities.forEach(function (s, i) { SEV_RANK[s] = i; });
  var state = { from: null, to: null, minSev: 0 };

  function esc(s) {
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
      .replace(/"/g, "&#34;").replace(/'/g, "&#39;");  /* plotly decodes numeric references only */
  }
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function timeLabel(ms) {
    var d = new Date(ms);
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " +
      pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds());
  }
  function inputValue(ms) { return timeLabel(ms).replace(" ", "T"); }
  function parseInput(text) {
    var m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?/.exec(text || "");
    if (!m) { return null; }
    return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0));
  }
  function sevRank(s) { return s in SEV_RANK ? SEV_RANK[s] : 0; }
  function cmp(a, b) { return a < b ? -1 : (a > b ? 1 : 0); }

  /* -- filtering ------------------------------------------------------------------------------------ */
  function cubeRows() {
    var out = [], bi = DIM.bucket, si = DIM.severity, step = DATA.step;
    CUBE.rows.forEach(function (r) {
      var t = +CUBE.labels.bucket[r[bi]];
      if (state.from !== null && t + step <= state.from) { return; }
      if (state.to !== null && t > state.to) { return; }
      if (sevRank(CUBE.labels.severity[r[si]]) < state.minSev) { return; }
      out.push(r);
    });
    return out;
  }
  function inRange(t) {
    return (state.from === null || t >= state.from) && (state.to === null || t <= state.to);
  }

  /* -- roll-up (mirrors charts.rollup) --------------------------------------------------------------- */
  function order(dim, totals) {
    var keys = Object.keys(totals);
    var fixed = dim === "verdict" ? DATA.verdictOrder : (dim === "severity" ? DATA.severityOrder : null);
    if (dim === "bucket") { return keys.sort(function (a, b) { return +a - +b; }); }
    if (fixed) {
      return fixed.filter(function (k) { return k in totals; })
        .concat(keys.filter(function (k) { return fixed.indexOf(k) < 0; }).sort(cmp));
    }
    return keys.sort(function (a, b) { return (totals[b] - totals[a]) || cmp(a, b); });
  }
  function rollup(rows, x, series, top) {
    var sdim = series || x, xi = DIM[x], si = DIM[sdim], ni = CUBE.dims.length;
    var cells = {}, xt = {}, st = {};
    rows.forEach(function (r) {
      if (r[xi] < 0) { return; }
      var xk = CUBE.labels[x][r[xi]], sk = r[si] < 0 ? "(none)" : CUBE.labels[sdim][r[si]];
      var key = JSON.stringify([xk, sk]);
      cells[key] = (cells[key] || 0) + r[ni];
      xt[xk] = (xt[xk] || 0) + r[ni];
      st[sk] = (st[sk] || 0) + r[ni];
    });
    var xs = order(x, xt);
    if (top && xs.length > top) {
      var keep = {};
      Object.keys(xt).sort(function (a, b) { return (xt[b] - xt[a]) || cmp(a, b); }).slice(0, top)
        .forEach(function (k) { keep[k] = true; });
      xs = xs.filter(function (k) { return keep[k]; });
    }
    return { xs: xs, series: order(sdim, st), cell: function (a, b) { return cells[JSON.stringify([a, b])] || 0; } };
  }
  function color(dim, name) {
    if (dim === "verdict") { return DATA.verdictColors[name] || DATA.otherColor; }
    if (dim === "severity") { return DATA.severityColors[name] || DATA.otherColor; }
    return DATA.otherColor;
  }

  /* -- traces (mirror charts.bar_figure / heatmap_figure / timeline_traces) --------------------------- */
  function barTraces(spec, rows) {
    var r = rollup(rows, spec.x, spec.series, spec.top), traces = [];
    r.series.forEach(function (s) {
      var ys = r.xs.map(function (x) { return r.cell(x, s); });
      if (!ys.some(function (y) { return y; })) { return; }
      var cats = r.xs.map(function (x) { return spec.x === "bucket" ? timeLabel(+x) : esc(x); });
      var t = { type: "bar", name: esc(s), marker: { color: color(spec.series || "", s) } };
      if (spec.kind === "hbar") {
        t.x = ys; t.y = cats; t.orientation = "h"; t.hovertemplate = "%{y}<br>" + esc(s) + ": %{x}<extra></extra>";
      } else {
        t.x = cats; t.y = ys; t.hovertemplate = "%{x}<br>" + esc(s) + ": %{y}<extra></extra>";
        if (spec.x === "bucket") { t.width = DATA.step * 0.9; }
      }
      traces.push(t);
    });
    return { traces: traces, n: r.xs.length };
  }
  function heatmapTraces(spec, rows) {
    var r = rollup(rows, spec.x, spec.series, null);
    if (!r.xs.length) { return { traces: [], n: 0 }; }
    var z = r.series.map(function (y) { return r.xs.map(function (x) { return r.cell(x, y); }); });
    return { traces: [{ type: "heatmap", x: r.xs.map(esc), y: r.series.map(esc), z: z, colorscale: "Reds",
      texttemplate: "%{z}", showscale: false,
      hovertemplate: "form %{y}<br>verdict %{x}<br>%{z} findings<extra></extra>" }], n: r.series.length };
  }
  function timelineTraces(incidentRows) {
    var shown = incidentRows.filter(function (r) { return r[1] !== null; }).slice(0, DATA.timelineMax);
    var traces = [], clients = {};
    DATA.severityOrder.forEach(function (sev) {
      var xs = [], ys = [], texts = [];
      shown.forEach(function (r) {
        if (r[4] !== sev) { return; }
        var label = esc(r[0]) + "<br>" + esc(r[3]) + "<br>" + r[5] + " findings, " + esc(sev) + "<br>" + esc(r[6].slice(0, 300));
        xs.push(timeLabel(r[1]), timeLabel(r[2]), null);
        ys.push(esc(r[3]), esc(r[3]), null);
        texts.push(label, label, null);
        clients[r[3]] = true;
      });
      if (xs.length) {
        var c = DATA.severityColors[sev] || DATA.otherColor;
        traces.push({ type: "scatter", mode: "lines+markers", name: esc(sev), x: xs, y: ys, text: texts,
          hovertemplate: "%{text}<extra></extra>", connectgaps: false, line: { width: 8, color: c },
          marker: { size: 9, color: c } });
      }
    });
    return { traces: traces, n: Object.keys(clients).length };
  }
  function tracesFor(spec, rows, incidentRows) {
    if (spec.kind === "timeline") { return timelineTraces(incidentRows); }
    if (spec.kind === "heatmap") { return heatmapTraces(spec, rows); }
    return barTraces(spec, rows);
  }

  /* -- charts ---------------------------------------------------------------------------------------- */
  var NO_DATA = { text: "no data", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5,
    font: { size: 16, color: "#777" } };
  function layoutFor(chart, result) {
    var layout = JSON.parse(JSON.stringify(chart.figure.layout || {}));
    layout.annotations = result.traces.length ? [] : [NO_DATA];
    if (chart.spec.kind === "hbar") { layout.height = Math.max(380, 30 + 24 * result.n); }
    if (chart.spec.kind === "timeline") { layout.height = Math.max(380, 80 + 26 * result.n); }
    return layout;
  }
  function plain(traces) {
    return JSON.stringify(traces.map(function (t) { return [t.name, t.x, t.y, t.z]; }));
  }
  function selfCheck() {
    /* The page's roll-up must agree with the one that built the figures (Python). */
    var rows = CUBE.rows;
    DATA.charts.forEach(function (chart) {
      var mine = tracesFor(chart.spec, rows, DATA.incidentRows).traces;
      if (plain(mine) !== plain(chart.figure.data || [])) {
        window.reportError("chart " + chart.id + ": the page's roll-up differs from the report's");
      }
    });
  }
  function drawInitial() {
    DATA.charts.forEach(function (chart) {
      var div = document.getElementById("chart-" + chart.id);
      Plotly.newPlot(div, chart.figure.data || [], chart.figure.layout || {}, DATA.config);
    });
  }
  var redrawing = false;
  function redraw(rows, incidentRows) {
    redrawing = true;
    try {
      DATA.charts.forEach(function (chart) {
        var div = document.getElementById("chart-" + chart.id);
        var result = tracesFor(chart.spec, rows, incidentRows);
        Plotly.react(div, result.traces, layoutFor(chart, result), DATA.config);
      });
    } finally { redrawing = false; }
  }
  /* Zooming a chart with a time axis sets the time filter (so every chart and table follows);
     double-clicking it (autoscale) widens the filter to the whole range again. */
  function plotlyTime(v) {
    var m = /^(\d{4}-\d{2}-\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?)?/.exec(String(v));
    return m ? m[1] + "T" + (m[2] || "00") + ":" + (m[3] || "00") + ":" + (m[4] || "00") : null;
  }
  function onTimeZoom(ev, setRange) {
    if (redrawing || !ev) { return; }
    var a = ev["xaxis.range[0]"], b = ev["xaxis.range[1]"];
    if (a === undefined && ev["xaxis.range"]) { a = ev["xaxis.range"][0]; b = ev["xaxis.range"][1]; }
    if (a !== undefined && b !== undefined && plotlyTime(a) && plotlyTime(b)) {
      setRange(plotlyTime(a), plotlyTime(b));
    } else if (ev["xaxis.autorange"]) {
      setRange(null, null);
    }
  }
  function watchZoom(setRange) {
    DATA.charts.forEach(function (chart) {
      var axis = (chart.figure.layout || {}).xaxis || {};
      if (axis.type !== "date") { return; }
      var div = document.getElementById("chart-" + chart.id);
      div.on("plotly_relayout", function (ev) { onTimeZoom(ev, setRange); });
    });
  }

  /* -- tables ---------------------------------------------------------------------------------------- */
  function cell(tr, text, cls, title) {
    var td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "" : String(text);
    if (cls) { td.className = cls; }
    if (title) { td.title = title; }
    tr.appendChild(td);
    return td;
  }
  function Pager(tableId, renderRow) {
    var table = document.getElementById(tableId);
    var box = document.querySelector('.pager[data-for="' + tableId + '"]');
    this.body = table.tBodies[0];
    this.cols = table.tHead.rows[0].cells.length;
    this.status = box.querySelector(".status");
    this.prevBtn = box.querySelector(".prev");
    this.nextBtn = box.querySelector(".next");
    this.renderRow = renderRow;
    this.rows = [];
    this.page = 0;
    this.size = DATA.pageSize;
    var self = this;
    this.prevBtn.addEventListener("click", function () { self.go(self.page - 1); });
    this.nextBtn.addEventListener("click", function () { self.go(self.page + 1); });
  }
  Pager.prototype.pages = function () { return Math.max(1, Math.ceil(this.rows.length / this.size)); };
  Pager.prototype.set = function (rows) { this.rows = rows; this.go(0); };
  Pager.prototype.go = function (page) {
    this.page = Math.min(Math.max(0, page), this.pages() - 1);
    var start = this.page * this.size, end = Math.min(this.rows.length, start + this.size);
    var frag = document.createDocumentFragment(), self = this;
    this.rows.slice(start, end).forEach(function (r) { self.renderRow(frag, r, self.cols); });
    while (this.body.firstChild) { this.body.removeChild(this.body.firstChild); }
    if (!this.rows.length) {
      var tr = document.createElement("tr"), td = cell(tr, "Nothing matches the filters.");
      td.colSpan = this.cols;
      frag.appendChild(tr);
    }
    this.body.appendChild(frag);
    this.status.textContent = this.rows.length
      ? "rows " + (start + 1) + "–" + end + " of " + this.rows.length + " · page " + (this.page + 1) + " of " + this.pages()
      : "no rows";
    this.prevBtn.disabled = this.page === 0;
    this.nextBtn.disabled = this.page >= this.pages() - 1;
  };

  function findingRow(frag, f, cols) {
    var tr = document.createElement("tr");
    cell(tr, f.time);
    cell(tr, f.sev, "sev-" + f.sev);
    cell(tr, f.verdict);
    cell(tr, f.rule);
    cell(tr, f.form);
    cell(tr, f.client);
    cell(tr, f.auth);
    cell(tr, f.rcpt);
    cell(tr, f.eff);
    cell(tr, f.server);
    cell(tr, f.inc);
    var evTd = cell(tr, "");
    f.ev.forEach(function (e) {
      var span = document.createElement("span");
      span.className = "ev";
      span.textContent = e[0] + ":" + e[1];
      span.title = e[2] + ":" + e[1];
      evTd.appendChild(span);
    });
    var raw = document.createElement("tr");
    raw.className = "raw";
    raw.hidden = true;
    var rawTd = document.createElement("td");
    rawTd.colSpan = cols;
    var p = document.createElement("p");
    p.textContent = f.expl;
    rawTd.appendChild(p);
    var pre = document.createElement("pre");
    pre.textContent = f.ev.map(function (e) { return e[0] + ":" + e[1] + "  " + e[3]; }).join("\n") +
      (f.evMore ? "\n(" + f.evMore + " more evidence lines in the scan output)" : "");
    rawTd.appendChild(pre);
    raw.appendChild(rawTd);
    var btn = document.createElement("button");
    btn.type = "button";
    btn.className = "raw-toggle";
    btn.textContent = "show raw lines";
    btn.setAttribute("aria-expanded", "false");
    btn.addEventListener("click", function () {
      raw.hidden = !raw.hidden;
      btn.textContent = raw.hidden ? "show raw lines" : "hide raw lines";
      btn.setAttribute("aria-expanded", String(!raw.hidden));
    });
    evTd.appendChild(btn);
    frag.appendChild(tr);
    frag.appendChild(raw);
  }
  function incidentRow(frag, r) {
    var tr = document.createElement("tr");
    [r.id, r.first, r.last, r.client, r.n].forEach(function (v) { cell(tr, v); });
    cell(tr, r.sev, "sev-" + r.sev);
    [r.verdicts, r.forms, r.probe, r.victims, r.summary].forEach(function (v) { cell(tr, v); });
    frag.appendChild(tr);
  }

  /* -- wiring ---------------------------------------------------------------------------------------- */
  var findingPager = new Pager("finding-table", findingRow);
  var incidentPager = new Pager("incident-table", incidentRow);
  var fFrom = document.getElementById("f-from"), fTo = document.getElementById("f-to");
  var fSev = document.getElementById("f-sev"), status = document.getElementById("filter-status");

  function apply(initial) {
    state.from = parseInput(fFrom.value);
    state.to = parseInput(fTo.value);
    if (state.to !== null) { state.to += /T\d{2}:\d{2}:\d{2}/.test(fTo.value) ? 999 : 59999; }
    state.minSev = +fSev.value || 0;
    var rows = cubeRows();
    var live = {};
    rows.forEach(function (r) { if (r[DIM.incident] >= 0) { live[CUBE.labels.incident[r[DIM.incident]]] = true; } });
    var incidentRows = DATA.incidentRows.filter(function (r) { return live[r[0]]; });
    if (!initial) { redraw(rows, incidentRows); }
    var findings = DATA.findings.filter(function (f) { return inRange(f.t) && sevRank(f.sev) >= state.minSev; });
    findingPager.set(findings);
    incidentPager.set(DATA.incidents.filter(function (r) { return live[r.id]; }));
    var total = 0;
    rows.forEach(function (r) { total += r[CUBE.dims.length]; });
    status.textContent = "Charts: " + total + " of " + DATA.findingsTotal + " findings; table: " +
      findings.length + " of " + DATA.findings.length + " rows.";
  }
  function resetTime() {
    fFrom.value = DATA.range ? inputValue(DATA.range[0] - (DATA.range[0] % 1000)) : "";
    fTo.value = DATA.range ? inputValue(DATA.range[1] - (DATA.range[1] % 1000)) : "";
  }
  function reset() {
    resetTime();
    fSev.value = "0";
  }

  /* Filters may be preset in the address: report.html#sev=3&from=2000-06-15T04:00:00&to=... */
  function presetFromHash() {
    var found = false;
    (location.hash || "").replace(/^#/, "").split("&").forEach(function (kv) {
      var m = /^(sev|from|to)=(.+)$/.exec(kv);
      if (!m) { return; }
      var v = decodeURIComponent(m[2]);
      if (m[1] === "sev" && /^\d$/.test(v)) { fSev.value = v; found = true; }
      if (m[1] === "from" && parseInput(v) !== null) { fFrom.value = v; found = true; }
      if (m[1] === "to" && parseInput(v) !== null) { fTo.value = v; found = true; }
    });
    return found;
  }

  reset();
  selfCheck();
  drawInitial();
  apply(true);
  if (presetFromHash()) { apply(false); }
  [fFrom, fTo, fSev].forEach(function (el) { el.addEventListener("change", function () { apply(false); }); });
  watchZoom(function (from, to) {
    if (from === null) {
      resetTime();
    } else {
      fFrom.value = from;
      fTo.value = to;
    }
    apply(false);
  });
  document.getElementById("f-reset").addEventListener("click", function () { reset(); apply(false); });

  /* Print everything that matches the filters, not just one page. */
  var saved = null;
  window.addEventListener("beforeprint", function () {
    saved = [findingPager.size, incidentPager.size];
    findingPager.size = incidentPager.size = 1e9;
    findingPager.go(0); incidentPager.go(0);
  });
  window.addEventListener("afterprint", function () {
    if (!saved) { return; }
    findingPager.size = saved[0]; incidentPager.size = saved[1];
    findingPager.go(0); incidentPager.go(0);
  });
  document.body.setAttribute("data-report-ready", "1");
})();
