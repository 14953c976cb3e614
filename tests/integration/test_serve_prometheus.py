"""/metrics against real Prometheus tooling (issue 6, item 4): `promtool check
metrics` accepts the exposition after inference requests have filled the
histograms, and a real Prometheus server scraping the daemon on loopback
answers a query for the model's queue length."""
import shutil
import subprocess
import time

import pytest
import requests

from conftest import add_model, free_port, ready_daemon

BODY = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1.0, 2.0, 3.0, 4.0]}]}


def tool(name):
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} not found: install the Debian package prometheus (make deps)")
    return path


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
    assert 'vigil_inference_total_seconds_count{model="affine"} 5' in text
    check = subprocess.run([tool("promtool"), "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=20)
    # promtool exits 1 for lint findings and for parse errors alike; both fail.
    assert check.returncode == 0, f"promtool: {check.stdout}{check.stderr}"


def query(port, expr):
    r = requests.get(f"http://127.0.0.1:{port}/api/v1/query", params={"query": expr}, timeout=2)
    r.raise_for_status()
    return r.json()


def test_prometheus_scrapes_queue_length(served, tmp_path):
    port = free_port()
    target = served.url.removeprefix("http://")
    config = tmp_path / "prometheus.yml"
    config.write_text(f"""global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: vigil
    static_configs:
      - targets: ["{target}"]
""")
    log = (tmp_path / "prometheus.log").open("w+")
    prom = subprocess.Popen([tool("prometheus"), f"--config.file={config}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        result, deadline = [], time.monotonic() + 25
        while time.monotonic() < deadline and not result:
            assert prom.poll() is None, f"prometheus exited: {(tmp_path / 'prometheus.log').read_text()[-2000:]}"
            try:
                answer = query(port, 'vigil_inference_queue_length{model="affine"}')
                assert answer["status"] == "success", answer
                result = answer["data"]["result"]
            except requests.RequestException:
                pass  # still starting
            if not result:
                time.sleep(0.5)
        assert result, f"no sample within 25 s; log: {(tmp_path / 'prometheus.log').read_text()[-2000:]}"
        sample = result[0]
        assert sample["metric"]["model"] == "affine"
        assert sample["metric"]["job"] == "vigil" and sample["metric"]["instance"] == target
        assert float(sample["value"][1]) == 0.0  # nothing queued between requests
        up = query(port, 'up{job="vigil"}')["data"]["result"]
        assert up and up[0]["value"][1] == "1"
    finally:
        prom.terminate()
        try:
            prom.wait(timeout=10)
        except subprocess.TimeoutExpired:
            prom.kill()
            prom.wait()
        log.close()
