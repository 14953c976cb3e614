"""Every PromQL expression of the Grafana dashboard (deploy/grafana/vigil.json)
and of the Prometheus rules (deploy/prometheus/rules.yml) run against a real
Prometheus scraping real vigil processes under load (issue 20, Must show 3).

Two processes: a plain server labelled node_type="cloud" and an edge-role
server (node_type="edge" by default) whose cloud and broker are absent, so
the edge series (link, outbox, uploads, escalations, round trip) exist at
their idle values.  Prometheus loads rules.yml, scrapes every second and
evaluates every second; a thread sends inference requests (and a few bad
ones, for the error series) to both the whole time.

Each dashboard target (template variables as Grafana puts them with "All"
selected, $__rate_interval = 1m), each templating variable's label_values,
each recording rule and each alert expression with its comparison taken off
(an alert that is not firing returns nothing by design; its left side must
still return data) must answer status success with a non-empty result.
None is allowed to be empty here: the edge process makes the edge series
exist, and the load makes every rate and quantile defined (the round trip
quantiles are NaN, no upload being answered, but their series exist).
Prometheus's /api/v1/rules must report every rule healthy.

With RENDER_DASHBOARD_SVG=path.svg set, the test keeps the load running
RENDER_DASHBOARD_SECONDS (default 120) and draws the dashboard with
deploy/grafana/render.py into that file (docs/images/dashboard.svg)."""
import math
import os
import pathlib
import re
import sys
import threading
import time

import requests
import yaml

from conftest import add_model, free_port, ready_daemon
from promkit import Prometheus

SOURCE = pathlib.Path(os.environ.get("VIGIL_SOURCE_DIR", pathlib.Path(__file__).parents[2]))
RULES = SOURCE / "deploy" / "prometheus" / "rules.yml"
sys.path.insert(0, str(SOURCE / "deploy" / "grafana"))
import render  # noqa: E402  (deploy/grafana/render.py: reads the dashboard as the renderer does)

GOOD = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1.0, 2.0, 3.0, 4.0]}]}
BAD = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1.0]}]}


def rule_queries():
    """(name, expr) of every rule; an alert's expr without its comparison."""
    out = []
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            expr = rule["expr"].strip()
            if "alert" in rule:
                bare = re.sub(r"\s*(==|!=|>=|<=|>|<)\s*[0-9.]+$", "", expr)
                assert bare != expr, f"{rule['alert']}: no trailing comparison to take off"
                out.append((rule["alert"], bare))
            else:
                out.append((rule["record"], expr))
    return out


def load(urls, stop):
    """Requests to every server until stop is set; one in ten is invalid.
    The rate swings slowly so a longer run draws something other than a
    flat line."""
    n = 0
    start = time.monotonic()
    with requests.Session() as s:
        while not stop.is_set():
            for url in urls:
                body = BAD if n % 10 == 9 else GOOD
                s.post(f"{url}/v2/models/affine/infer", json=body, timeout=10)
            n += 1
            swing = 1.5 + math.sin((time.monotonic() - start) / 20)
            time.sleep(0.01 * swing)


def test_dashboard_and_rule_queries_return_data(tmp_path):
    models = tmp_path / "models"
    add_model(models, "affine")
    cloud = ready_daemon("--models", models, "--metrics-node-type", "cloud")
    edge = ready_daemon("--models", models, "--role", "edge", "--edge-node-id", "edge1",
                        "--edge-cloud-url", f"http://127.0.0.1:{free_port()}",
                        "--edge-mqtt-port", free_port(), "--edge-data-dir", tmp_path / "edge")
    stop = threading.Event()
    loader = threading.Thread(target=load, args=([cloud.url, edge.url], stop), daemon=True)
    loader.start()
    try:
        targets = [cloud.url.removeprefix("http://"), edge.url.removeprefix("http://")]
        prom_dir = tmp_path / "prom"
        prom_dir.mkdir()
        with Prometheus(prom_dir, targets, rule_files=[RULES]) as prom:
            prom.wait_for("vigil:inference_latency_seconds:p90", timeout=30,
                          pred=lambda r: {s["metric"].get("node_type") for s in r} == {"cloud", "edge"})
            prom.wait_for("vigil:inference_error:ratio1m > 0", timeout=20)
            dashboard = render.load()
            queries = [(f"{title} [{ref}]", expr) for title, ref, expr, _ in render.panel_queries(dashboard)]
            queries += render.variable_queries(dashboard) + rule_queries()
            assert len(queries) > 30
            empty = [(name, expr) for name, expr in queries if not prom.query(expr)]
            assert not empty, f"queries without data: {empty}"
            # the template variables offer both node types
            node_types = {s["metric"]["node_type"] for s in prom.query(dict(render.variable_queries(dashboard))["node_type"])}
            assert node_types == {"cloud", "edge"}
            for group in prom.rules():
                for rule in group["rules"]:
                    assert rule["health"] == "ok", rule
            out = os.environ.get("RENDER_DASHBOARD_SVG")
            if out:
                time.sleep(float(os.environ.get("RENDER_DASHBOARD_SECONDS", "120")))
                end = time.time()
                pathlib.Path(out).write_text(render.render_svg(prom.url, end - 180, end, step="2s"))
    finally:
        stop.set()
        loader.join(timeout=15)
        assert cloud.stop() == 0
        assert edge.stop() == 0
