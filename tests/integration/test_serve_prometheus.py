"""/metrics against real Prometheus tooling (issue 6, item 4): `promtool check
metrics` accepts the exposition after inference requests have filled the
histograms, and a real Prometheus server scraping the daemon on loopback
answers a query for the model's queue length.  Prometheus asks for
OpenMetrics first, so its scrape is also the check that our OpenMetrics
output parses; the format negotiation itself is tested here too."""
import subprocess

import pytest
import requests

from conftest import add_model, ready_daemon, run_vigil
from promkit import Prometheus, tool

BODY = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1.0, 2.0, 3.0, 4.0]}]}


@pytest.fixture
def served(tmp_path):
    """A ready daemon serving `affine`, with a few inference requests done."""
    models = tmp_path / "models"
    add_model(models, "affine")
    d = ready_daemon("--models", models)
    try:
        for _ in range(5):
            r = requests.post(f"{d.url}/v2/models/affine/infer", json=BODY, timeout=10)
            assert r.status_code == 200, r.text
        yield d
    finally:
        assert d.stop() == 0


def test_promtool_accepts_metrics(served):
    text = requests.get(served.url + "/metrics", timeout=5).text
    assert 'vigil_inference_total_seconds_count{model="affine",node_type="edge"} 5' in text
    assert 'vigil_inference_queue_capacity{model="affine",node_type="edge"} 256' in text
    check = subprocess.run([tool("promtool"), "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=20)
    # promtool exits 1 for lint findings and for parse errors alike; both fail.
    assert check.returncode == 0, f"promtool: {check.stdout}{check.stderr}"


def test_prometheus_scrapes_queue_length(served, tmp_path):
    target = served.url.removeprefix("http://")
    with Prometheus(tmp_path, [target]) as prom:
        result = prom.wait_for('vigil_inference_queue_length{model="affine"}', timeout=25)
        sample = result[0]
        assert sample["metric"]["model"] == "affine"
        assert sample["metric"]["job"] == "vigil" and sample["metric"]["instance"] == target
        assert float(sample["value"][1]) == 0.0  # nothing queued between requests
        up = prom.query('up{job="vigil"}')
        assert up and up[0]["value"][1] == "1"


def test_openmetrics_on_accept(served):
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    r = requests.get(served.url + "/metrics", headers={"Accept": accept}, timeout=5)
    assert r.headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert r.text.endswith("# EOF\n")
    # a counter family is named without _total; its samples keep it
    assert "# TYPE vigil_inference_requests counter\n" in r.text
    assert 'vigil_inference_requests_total{model="affine",node_type="edge",outcome="success"} 5\n' in r.text
    plain = requests.get(served.url + "/metrics", timeout=5)
    assert plain.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "# EOF" not in plain.text


def test_node_type_follows_role_and_setting(tmp_path):
    models = tmp_path / "models"
    add_model(models, "affine")
    d = ready_daemon("--models", models, "--metrics-node-type", "cloud")
    try:
        requests.post(f"{d.url}/v2/models/affine/infer", json=BODY, timeout=10)
        text = requests.get(d.url + "/metrics", timeout=5).text
        assert 'vigil_inference_queue_length{model="affine",node_type="cloud"} 0' in text
        assert 'vigil_model_state{model="affine",node_type="cloud",version="1",state="READY"} 1' in text
    finally:
        assert d.stop() == 0
    bad = run_vigil("serve", "--models", models, "--metrics-node-type", "fog", timeout=20)
    assert bad.returncode != 0 and "fog" in bad.stderr + bad.stdout
