"""The scheduler seen from outside: concurrent requests are batched (and
each gets its own rows back), a full queue answers 503 with Retry-After,
metrics count what happened, and SIGTERM drains in-flight requests."""
import concurrent.futures
import signal
import time

import pytest
import requests

from conftest import add_model, metric_value, ready_daemon

BATCHING = """max_batch_size: 8
dynamic_batching:
  max_queue_delay_us: {delay}
"""


def one(url, model, value, timeout=30):
    body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [value] * 4}]}
    return requests.post(f"{url}/v2/models/{model}/infer", json=body, timeout=timeout)


def metrics(d):
    r = requests.get(d.url + "/metrics", timeout=5)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return r.text


def wait_queue(d, model, n, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metric_value(metrics(d), "vigil_inference_queue_length", model=model) == n:
            return
        time.sleep(0.02)
    raise AssertionError(f"queue of {model} never reached {n}")


@pytest.fixture
def models(tmp_path):
    m = tmp_path / "models"
    add_model(m, "batched", config=BATCHING.format(delay=300000))
    add_model(m, "slow", config=BATCHING.format(delay=1500000))
    return m


def test_concurrent_requests_are_batched_and_split(models):
    d = ready_daemon("--models", models)
    try:
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            futures = {v: pool.submit(one, d.url, "batched", v) for v in range(6)}
            results = {v: f.result() for v, f in futures.items()}
        for v, r in results.items():
            assert r.status_code == 200, r.text
            assert r.json()["outputs"][0]["data"] == [2 * v + 1] * 4  # each request gets its own rows
        text = metrics(d)
        runs = metric_value(text, "vigil_batch_size_count", model="batched")
        items = metric_value(text, "vigil_batch_size_sum", model="batched")
        assert items == 6
        assert runs < 6, "no two requests shared a batch"
        assert metric_value(text, "vigil_batch_size_bucket", model="batched", le="1") < runs
        assert metric_value(text, "vigil_inference_requests_total", model="batched", outcome="success") == 6
        assert metric_value(text, "vigil_inference_total_seconds_count", model="batched") == 6
        assert metric_value(text, "vigil_inference_queue_seconds_count", model="batched") == 6
        assert metric_value(text, "vigil_inference_compute_seconds_count", model="batched") == 6
        assert metric_value(text, "vigil_http_requests_total", route="/v2/models/{m}/infer", code="200") == 6
        assert metric_value(text, "vigil_model_state", model="batched", version="1", state="READY") == 1
        assert metric_value(text, "vigil_model_state", model="batched", version="1", state="FAILED") == 0
        assert metric_value(text, "vigil_process_resident_memory_bytes") > 1e6
    finally:
        assert d.stop() == 0


def test_queue_full_is_503_with_retry_after(models):
    d = ready_daemon("--models", models, "--limits-max-queue", "2")
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            waiting = [pool.submit(one, d.url, "slow", v) for v in (1, 2)]
            wait_queue(d, "slow", 2)
            r = one(d.url, "slow", 3)
            assert r.status_code == 503
            assert r.headers["Retry-After"] == "1"
            assert "queue full" in r.json()["error"]
            assert [f.result().status_code for f in waiting] == [200, 200]
        text = metrics(d)
        assert metric_value(text, "vigil_inference_requests_total", model="slow", outcome="rejected") == 1
        assert metric_value(text, "vigil_inference_queue_length", model="slow") == 0
    finally:
        d.stop()


def test_deadline_passes_while_queued_is_504(models):
    d = ready_daemon("--models", models, "--limits-request-timeout-ms", "200")
    try:
        r = one(d.url, "slow", 1)  # waits 1.5 s for a batch, past its 200 ms deadline
        assert r.status_code == 504 and "deadline" in r.json()["error"]
        assert metric_value(metrics(d), "vigil_inference_requests_total", model="slow", outcome="timeout") == 1
    finally:
        d.stop()


def test_sigterm_drains_in_flight_requests(models):
    d = ready_daemon("--models", models)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(one, d.url, "slow", v) for v in range(4)]
        wait_queue(d, "slow", 4)
        d.proc.send_signal(signal.SIGTERM)
        results = [f.result() for f in futures]
    assert [r.status_code for r in results] == [200] * 4
    assert [r.json()["outputs"][0]["data"][0] for r in results] == [1, 3, 5, 7]
    assert d.stop() == 0
    with pytest.raises(requests.ConnectionError):
        requests.get(d.url + "/healthz", timeout=2)


def test_drain_timeout_answers_503(models):
    d = ready_daemon("--models", models, "--limits-shutdown-timeout-ms", "100")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(one, d.url, "slow", 1)
        wait_queue(d, "slow", 1)
        d.proc.send_signal(signal.SIGTERM)
        r = future.result()
    # The batcher stops waiting when the drain starts, so the request may run;
    # what it must not do is hang or fail with anything but 503.
    assert r.status_code in (200, 503)
    assert d.stop() == 0


def test_instances_share_a_queue(tmp_path):
    m = tmp_path / "models"
    add_model(m, "pair", config="instances: 2\nmax_batch_size: 4\n")
    d = ready_daemon("--models", m)
    try:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda v: one(d.url, "pair", v), range(16)))
        assert [r.json()["outputs"][0]["data"][0] for r in results] == [2 * v + 1 for v in range(16)]
    finally:
        assert d.stop() == 0
