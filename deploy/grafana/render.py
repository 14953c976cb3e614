#!/usr/bin/env python3
"""Draws the panels of deploy/grafana/vigil.json from a real Prometheus, as
one SVG (docs/images/dashboard.svg).  Grafana is not packaged where vigil is
built, so this is our rendering of the dashboard's own queries (each panel's
targets run with query_range, laid out by the panels' gridPos), not a
Grafana screenshot.  The dashboard test (tests/integration/
test_dashboard_queries.py) reads the dashboard through the same functions,
so the queries drawn are the queries tested.

    render.py --prometheus http://127.0.0.1:9090 --minutes 5 --out dashboard.svg

Only the standard library and `requests` are used."""
import argparse
import html
import json
import math
import pathlib
import re
import time

import requests

DASHBOARD = pathlib.Path(__file__).with_name("vigil.json")
# What Grafana would put in for the template variables with "All" selected.
DEFAULT_VARIABLES = {"node_type": ".*", "model": ".*", "__rate_interval": "1m", "DS_PROMETHEUS": "prometheus"}


def expand(expr, variables=None):
    """expr with $var and ${var} replaced as Grafana would."""
    values = {**DEFAULT_VARIABLES, **(variables or {})}
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: values[m.group(1) or m.group(2)], expr)


def load(path=DASHBOARD):
    return json.loads(pathlib.Path(path).read_text())


def panels(dashboard):
    """The panels that draw something (rows left out), in order."""
    return [p for p in dashboard["panels"] if p.get("type") != "row"]


def panel_queries(dashboard, variables=None):
    """(panel title, refId, expanded expr, legendFormat) for every target."""
    return [(p["title"], t["refId"], expand(t["expr"], variables), t.get("legendFormat", ""))
            for p in panels(dashboard) for t in p["targets"]]


def variable_queries(dashboard):
    """The templating variables' label_values(...) as plain PromQL (group by
    the label), so the test can run them as well."""
    out = []
    for v in dashboard["templating"]["list"]:
        if v["type"] != "query":
            continue
        m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", v["definition"])
        out.append((v["name"], f"group by ({m.group(2)}) ({expand(m.group(1))})"))
    return out


def legend(fmt, labels):
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt) or json.dumps(labels)


def query_range(prom, expr, start, end, step):
    r = requests.get(f"{prom}/api/v1/query_range",
                     params={"query": expr, "start": start, "end": end, "step": step}, timeout=30)
    body = r.json()
    if body.get("status") != "success":
        raise RuntimeError(f"{expr}: {body}")
    return body["data"]["result"]


COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
UNIT_W, UNIT_H = 40, 30  # pixels per grid column and per grid row


def fmt_value(v, unit):
    if unit == "s":
        return f"{v * 1000:.3g} ms" if abs(v) < 1 else f"{v:.3g} s"
    if unit == "bytes":
        return f"{v / 2**20:.4g} MiB"
    return f"{v:.3g}"


def draw_panel(panel, series, start, end, unit):
    """One panel as an SVG <g>: frame, title, axes, a line per series and
    its legend.  series: [(name, [(t, v)])]."""
    g = panel["gridPos"]
    x0, y0, w, h = g["x"] * UNIT_W, g["y"] * UNIT_H, g["w"] * UNIT_W, g["h"] * UNIT_H
    out = [f'<g transform="translate({x0},{y0})">',
           f'<rect x="2" y="2" width="{w - 4}" height="{h - 4}" rx="4" fill="#181b1f" stroke="#2c3235"/>',
           f'<text x="10" y="20" fill="#d8d9da" font-size="13" font-weight="bold">{html.escape(panel["title"])}</text>']
    px, py, pw = 56, 30, w - 70
    legend_rows = min(len(series), 4)
    ph = h - 48 - 14 * legend_rows
    values = [v for _, pts in series for _, v in pts if math.isfinite(v)]
    if not values:
        out.append(f'<text x="{w / 2}" y="{h / 2}" fill="#8e8e8e" font-size="12" text-anchor="middle">'
                   'no data</text></g>')
        return "".join(out)
    lo, hi = min(0.0, min(values)), max(values)
    hi = hi if hi > lo else lo + 1
    out.append(f'<line x1="{px}" y1="{py + ph}" x2="{px + pw}" y2="{py + ph}" stroke="#464c54"/>')
    for frac in (0, 0.5, 1):
        yy = py + ph - frac * ph
        out.append(f'<text x="{px - 4}" y="{yy + 4}" fill="#8e8e8e" font-size="10" text-anchor="end">'
                   f'{html.escape(fmt_value(lo + frac * (hi - lo), unit))}</text>')
        out.append(f'<line x1="{px}" y1="{yy}" x2="{px + pw}" y2="{yy}" stroke="#2c3235"/>')
    for i, (name, pts) in enumerate(series):
        color = COLORS[i % len(COLORS)]
        path, pen = [], "M"
        for t, v in pts:
            if not math.isfinite(v):
                pen = "M"
                continue
            path.append(f"{pen}{px + (t - start) / (end - start) * pw:.1f},{py + ph - (v - lo) / (hi - lo) * ph:.1f}")
            pen = "L"
        if path:
            out.append(f'<path d="{" ".join(path)}" fill="none" stroke="{color}" stroke-width="1.5"/>')
        if i < legend_rows:
            ly = py + ph + 16 + 14 * i
            last = next((v for _, v in reversed(pts) if math.isfinite(v)), float("nan"))
            out.append(f'<rect x="{px}" y="{ly - 8}" width="10" height="3" fill="{color}"/>'
                       f'<text x="{px + 14}" y="{ly}" fill="#ccccdc" font-size="10">{html.escape(name[:60])}'
                       f' = {html.escape(fmt_value(last, unit))}</text>')
    out.append("</g>")
    return "".join(out)


def draw_heatmap(panel, series):
    """A heatmap of cumulative buckets (series named by le) as one bar
    chart of the whole range: how many observations fell in each bucket."""
    g = panel["gridPos"]
    x0, y0, w, h = g["x"] * UNIT_W, g["y"] * UNIT_H, g["w"] * UNIT_W, g["h"] * UNIT_H
    totals = sorted((float(le.replace("+Inf", "inf")), le, sum(v for _, v in pts if math.isfinite(v)))
                    for le, pts in series)
    counts = [(le, total - (totals[i - 1][2] if i else 0)) for i, (_, le, total) in enumerate(totals)]
    out = [f'<g transform="translate({x0},{y0})">',
           f'<rect x="2" y="2" width="{w - 4}" height="{h - 4}" rx="4" fill="#181b1f" stroke="#2c3235"/>',
           f'<text x="10" y="20" fill="#d8d9da" font-size="13" font-weight="bold">{html.escape(panel["title"])}</text>']
    top = max((c for _, c in counts), default=0)
    if top <= 0:
        out.append(f'<text x="{w / 2}" y="{h / 2}" fill="#8e8e8e" font-size="12" text-anchor="middle">no data</text>')
    else:
        px, py, pw, ph = 20, 34, w - 40, h - 70
        bw = pw / len(counts)
        for i, (le, c) in enumerate(counts):
            bh = c / top * ph
            out.append(f'<rect x="{px + i * bw + 2:.1f}" y="{py + ph - bh:.1f}" width="{bw - 4:.1f}" '
                       f'height="{bh:.1f}" fill="{COLORS[0]}"/>'
                       f'<text x="{px + (i + 0.5) * bw:.1f}" y="{py + ph + 14}" fill="#8e8e8e" font-size="10" '
                       f'text-anchor="middle">{html.escape("≤" + le if le != "+Inf" else ">")}</text>')
        out.append(f'<text x="{px}" y="{h - 10}" fill="#8e8e8e" font-size="10">observations per bucket</text>')
    out.append("</g>")
    return "".join(out)


def render_svg(prom, start, end, step="5s", dashboard=None, variables=None):
    dashboard = dashboard or load()
    parts, bottom = [], 0
    for p in dashboard["panels"]:
        g = p["gridPos"]
        bottom = max(bottom, g["y"] + g["h"])
        if p.get("type") == "row":
            parts.append(f'<text x="8" y="{g["y"] * UNIT_H + 22}" fill="#d8d9da" font-size="15">'
                         f'{html.escape(p["title"])}</text>')
            continue
        series = []
        for t in p["targets"]:
            for s in query_range(prom, expand(t["expr"], variables), start, end, step):
                pts = [(float(ts), float(v)) for ts, v in s["values"]]
                series.append((legend(t.get("legendFormat", ""), s["metric"]), pts))
        if p["type"] == "heatmap":
            parts.append(draw_heatmap(p, series))
        else:
            parts.append(draw_panel(p, series, start, end, p["fieldConfig"]["defaults"].get("unit", "short")))
    width, height = 24 * UNIT_W, bottom * UNIT_H + 24
    note = (f"vigil dashboard (deploy/grafana/vigil.json): its queries drawn by deploy/grafana/render.py, "
            f"not a Grafana screenshot; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(end))}, "
            f"{(end - start) / 60:.0f} min")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'font-family="sans-serif"><rect width="100%" height="100%" fill="#111217"/>{"".join(parts)}'
            f'<text x="8" y="{height - 8}" fill="#8e8e8e" font-size="11">{html.escape(note)}</text></svg>\n')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prometheus", required=True, help="base URL of the Prometheus to query")
    ap.add_argument("--minutes", type=float, default=5, help="time range ending now")
    ap.add_argument("--step", default="5s")
    ap.add_argument("--out", required=True, help="SVG file to write")
    args = ap.parse_args()
    end = time.time()
    pathlib.Path(args.out).write_text(render_svg(args.prometheus, end - args.minutes * 60, end, args.step))


if __name__ == "__main__":
    main()
