"""`--format html`: one self-contained page (styles, data and script inline; no network).

Four charts, drawn as SVG by the page's own script from the JSON data embedded in it: cost over
time per task type (per hour or per day), the distribution of cost per run per task type
(min, p25, median, p75, p95, max), the top customers and the model mix; then the report table.
Every drawn mark carries `data-label` and `data-value` (exact USD), so a test can read what was
drawn from the rendered DOM.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from costspan.analysis.formats import JSON_KEYS, usd
from costspan.analysis.report import GroupCost, time_filter

__all__ = ["chart_data", "to_html"]

TOP_CUSTOMERS = 10
_DAY_NS = 86_400_000_000_000
_HOUR_NS = 3_600_000_000_000


def _s(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize() if value else Decimal(0), "f")


def _when(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M")


def chart_data(
    con: Any, calls_table: str = "calls", since: datetime | None = None, until: datetime | None = None
) -> dict[str, Any]:
    """The four charts' data (money as exact decimal strings)."""
    when = time_filter(since, until, "coalesce(r.start_ns, c.start_ns)")
    base = f"""
        SELECT c.*, coalesce(r.start_ns, c.start_ns) AS run_start
        FROM {calls_table} c LEFT JOIN runs r ON r.task = c.task AND r.task_id = c.task_id WHERE {when}
    """
    span_ns = con.execute(f"SELECT max(run_start) - min(run_start) FROM ({base})").fetchone()[0] or 0
    bucket = _DAY_NS if span_ns > 2 * _DAY_NS else _HOUR_NS
    over_time = con.execute(f"""
        SELECT coalesce(task, '(none)'), run_start // {bucket} * {bucket} AS t, sum(coalesce(cost, 0))
        FROM ({base}) GROUP BY ALL ORDER BY 2, 1
    """).fetchall()
    distribution = con.execute(f"""
        WITH per_run AS (
            SELECT task, task_id, sum(coalesce(cost, 0)) AS cost FROM ({base})
            WHERE task_id IS NOT NULL GROUP BY ALL
            UNION ALL
            SELECT r.task, r.task_id, 0 FROM runs r
            WHERE {time_filter(since, until, "r.start_ns")}
              AND NOT EXISTS (SELECT 1 FROM {calls_table} c WHERE c.task = r.task AND c.task_id = r.task_id)
        )
        SELECT task, count(*), min(cost), quantile_disc(cost, 0.25), quantile_disc(cost, 0.5),
               quantile_disc(cost, 0.75), quantile_disc(cost, 0.95), max(cost)
        FROM per_run GROUP BY task ORDER BY sum(cost) DESC, task
    """).fetchall()
    customers = con.execute(f"""
        SELECT coalesce(customer, '(none)'), sum(coalesce(cost, 0)) AS cost FROM ({base})
        GROUP BY 1 ORDER BY cost DESC, 1 LIMIT {TOP_CUSTOMERS}
    """).fetchall()
    models = con.execute(f"""
        SELECT coalesce(model, '(none)'), sum(coalesce(cost, 0)) AS cost, count(*) FILTER (WHERE NOT is_tool)
        FROM ({base}) GROUP BY 1 ORDER BY cost DESC, 1
    """).fetchall()
    return {
        "bucket": "day" if bucket == _DAY_NS else "hour",
        "over_time": [{"task": task, "t": _when(t), "usd": _s(cost)} for task, t, cost in over_time],
        "distribution": [
            {
                "task": task,
                "runs": runs,
                "min": _s(low),
                "p25": _s(p25),
                "p50": _s(p50),
                "p75": _s(p75),
                "p95": _s(p95),
                "max": _s(high),
            }
            for task, runs, low, p25, p50, p75, p95, high in distribution
        ],
        "customers": [{"label": label, "usd": _s(cost)} for label, cost in customers],
        "models": [{"label": label, "usd": _s(cost), "calls": calls} for label, cost, calls in models],
    }


_STYLE = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#1f2328;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}
.sub{color:#59636e;margin-bottom:16px}.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(440px,1fr));gap:16px}
.card{border:1px solid #d1d9e0;border-radius:8px;padding:12px 16px}svg{display:block;width:100%;height:auto}
svg text{font-size:11px;fill:#1f2328}.axis{stroke:#d1d9e0}.legend span{display:inline-block;margin-right:12px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:4px 8px;white-space:nowrap;border-bottom:1px solid #eef0f2;text-align:right}
th:first-child,td:first-child{text-align:left}
"""

# Hand-written: bars, stacked bars and box plots as SVG from the embedded data.
_SCRIPT = r"""
(function () {
  const data = JSON.parse(document.getElementById('costspan-data').textContent);
  const NS = 'http://www.w3.org/2000/svg';
  const COLORS = ['#0969da', '#bf3989', '#1a7f37', '#9a6700', '#8250df',
                  '#cf222e', '#1b7c83', '#6e7781', '#fb8500', '#219ebc'];
  const usd = (v) => '$' + Number(v).toLocaleString('en-US',
                                                    {minimumFractionDigits: 4, maximumFractionDigits: 6});
  function el(name, attrs, parent, text) {
    const node = document.createElementNS(NS, name);
    for (const k in attrs) node.setAttribute(k, attrs[k]);
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }
  function svg(id, width, height) {
    const root = el('svg', {viewBox: '0 0 ' + width + ' ' + height, 'data-chart': id, role: 'img'});
    document.getElementById(id).appendChild(root);
    return root;
  }
  function bars(id, items) {  // horizontal bars: {label, usd}
    const rowH = 22, left = 170, width = 600, height = items.length * rowH + 10;
    const root = svg(id, width, height);
    const max = Math.max(...items.map((d) => Number(d.usd)), 1e-12);
    items.forEach((d, i) => {
      const y = 5 + i * rowH, w = (width - left - 110) * Number(d.usd) / max;
      const label = d.label.length > 26 ? d.label.slice(0, 25) + '…' : d.label;
      el('text', {x: left - 6, y: y + 14, 'text-anchor': 'end'}, root, label);
      el('rect', {x: left, y: y + 3, width: Math.max(w, 1), height: rowH - 6, fill: COLORS[i % COLORS.length],
                  'data-label': d.label, 'data-value': d.usd, class: 'mark'}, root);
      el('text', {x: left + Math.max(w, 1) + 6, y: y + 14}, root, usd(d.usd));
    });
  }
  function overTime(id, rows) {
    const tasks = [...new Set(rows.map((r) => r.task))];
    const times = [...new Set(rows.map((r) => r.t))].sort();
    const width = 600, height = 260, left = 78, bottom = 40, top = 10;
    const root = svg(id, width, height);
    const totals = times.map((t) => rows.filter((r) => r.t === t).reduce((a, r) => a + Number(r.usd), 0));
    const max = Math.max(...totals, 1e-12);
    const slot = (width - left - 10) / Math.max(times.length, 1);
    el('line', {x1: left, y1: height - bottom, x2: width - 10, y2: height - bottom, class: 'axis'}, root);
    el('text', {x: left - 4, y: top + 8, 'text-anchor': 'end'}, root, usd(max));
    times.forEach((t, i) => {
      let y = height - bottom;
      tasks.forEach((task, k) => {
        const row = rows.find((r) => r.t === t && r.task === task);
        if (!row) return;
        const h = (height - bottom - top) * Number(row.usd) / max;
        y -= h;
        el('rect', {x: left + i * slot + 2, y: y, width: Math.max(slot - 4, 1), height: Math.max(h, 0.5),
                    fill: COLORS[k % COLORS.length], class: 'mark', 'data-label': task + ' @ ' + t,
                    'data-value': row.usd}, root);
      });
      if (times.length <= 12 || i % Math.ceil(times.length / 12) === 0)
        el('text', {x: left + i * slot + slot / 2, y: height - bottom + 14, 'text-anchor': 'middle'},
           root, t.slice(5));
    });
    const legend = document.createElement('div');
    legend.className = 'legend';
    tasks.forEach((task, k) => {
      const s = document.createElement('span');
      s.innerHTML = '<i style="background:' + COLORS[k % COLORS.length] + '"></i>';
      s.appendChild(document.createTextNode(task));
      legend.appendChild(s);
    });
    document.getElementById(id).appendChild(legend);
  }
  function distribution(id, rows) {  // box plots: whiskers min..max, box p25..p75, median line, p95 dot
    const rowH = 30, left = 170, width = 600, height = rows.length * rowH + 30;
    const root = svg(id, width, height);
    const max = Math.max(...rows.map((r) => Number(r.max)), 1e-12);
    const x = (v) => left + (width - left - 20) * Number(v) / max;
    rows.forEach((r, i) => {
      const y = 10 + i * rowH, mid = y + rowH / 2;
      el('text', {x: left - 6, y: mid + 4, 'text-anchor': 'end'}, root, r.task + ' (' + r.runs + ')');
      el('line', {x1: x(r.min), x2: x(r.max), y1: mid, y2: mid, stroke: '#6e7781'}, root);
      el('rect', {x: x(r.p25), y: y + 6, width: Math.max(x(r.p75) - x(r.p25), 1), height: rowH - 12,
                  fill: '#ddf4ff', stroke: '#0969da', class: 'mark', 'data-label': r.task + ' p25-p75',
                  'data-value': r.p25 + '-' + r.p75}, root);
      el('line', {x1: x(r.p50), x2: x(r.p50), y1: y + 4, y2: y + rowH - 4, stroke: '#0969da',
                  'stroke-width': 2, class: 'mark', 'data-label': r.task + ' p50',
                  'data-value': r.p50}, root);
      el('circle', {cx: x(r.p95), cy: mid, r: 3, fill: '#cf222e', class: 'mark',
                    'data-label': r.task + ' p95', 'data-value': r.p95}, root);
    });
    el('text', {x: width - 20, y: height - 6, 'text-anchor': 'end'}, root, usd(max) + ' per run');
  }
  overTime('chart-over-time', data.over_time);
  distribution('chart-distribution', data.distribution);
  bars('chart-customers', data.customers);
  bars('chart-models', data.models);
  document.body.setAttribute('data-rendered', 'true');
})();
"""


def _cell(value: object) -> str:
    if isinstance(value, Decimal):
        return usd(value)
    if value is None:
        return "-"
    return f"{value:,}" if isinstance(value, int) else str(value)


def to_html(
    rows: Sequence[GroupCost], by: str, charts: dict[str, Any], title: str = "LLM cost report"
) -> str:
    total = sum((row.cost_usd for row in rows), Decimal(0))
    calls = sum(row.llm_calls for row in rows)
    header = "".join(f"<th>{html.escape(key)}</th>" for key in (by, *JSON_KEYS[1:]))
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(getattr(row, key)))}</td>" for key in JSON_KEYS) + "</tr>"
        for row in rows
    )
    # "</" inside a script element would end it early
    payload = json.dumps(charts).replace("</", "<\\/")
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<div class="sub">total <b id="total">{usd(total)}</b> in {calls:,} LLM calls
 · generated {generated} by costspan report</div>
<div class="grid">
<div class="card"><h2>Cost over time per task type (per {charts["bucket"]})</h2>
<div id="chart-over-time"></div></div>
<div class="card"><h2>Cost per run per task type</h2><div id="chart-distribution"></div>
<div class="sub">box: p25 to p75, line: median, dot: p95, whiskers: min to max</div></div>
<div class="card"><h2>Top customers</h2><div id="chart-customers"></div></div>
<div class="card"><h2>Model mix</h2><div id="chart-models"></div></div>
</div>
<h2>By {html.escape(by)}</h2>
<table id="report"><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>
<script type="application/json" id="costspan-data">{payload}</script>
<script>{_SCRIPT}</script>
</body></html>
"""
