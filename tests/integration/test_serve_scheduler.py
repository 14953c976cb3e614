"""The scheduler seen from outside: concurrent requests are batched (and
each gets its own rows back), a full queue answers 503 with Retry-After,
metrics count what happened, and SIGTERM drains in-flight requests."""
import concurrent.futures
import json
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


def make_slow_onnx(path, layers=12, channels=64, size=192):
    """A chain of 3x3 convolutions slow enough (about 0.3-1 s on one core) that a
    request holds the only worker while others queue behind it."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(1)
    nodes, inits, prev = [], [], "x"
    for i in range(layers):
        w = (rng.standard_normal((channels, channels, 3, 3)) * 0.02).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        out = "y" if i == layers - 1 else f"h{i}"
        nodes.append(helper.make_node("Conv", [prev, f"w{i}"], [out], kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
        prev = out
    shape = [1, channels, size, size]
    graph = helper.make_graph(nodes, "slow", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def test_priority_jumps_the_queue(tmp_path):
    """One worker, one item per batch: while the first request runs, a normal and
    then an urgent request queue up (seen through the queue-length gauge, not
    guessed with sleeps); the urgent one must finish first."""
    import concurrent.futures
    models = tmp_path / "models"
    make_slow_onnx(models / "slow" / "1" / "model.onnx")
    (models / "slow" / "config.yaml").write_text("max_batch_size: 1\ninstances: 1\n")
    d = ready_daemon("--models", models, "--threads", "1")
    x = bytes(4 * 64 * 192 * 192)
    header = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 64, 192, 192],
                                     "parameters": {"binary_data_size": len(x)}}],
                         "outputs": [{"name": "y", "parameters": {"binary_data": True}}]})

    def infer(priority):
        body = json.loads(header)
        if priority:
            body["parameters"] = {"priority": priority}
        head = json.dumps(body).encode()
        r = requests.post(d.url + "/v2/models/slow/infer", data=head + x, timeout=300,
                          headers={"Inference-Header-Content-Length": str(len(head)),
                                   "Content-Type": "application/octet-stream"})
        assert r.status_code == 200, r.text
        return time.monotonic()

    def wait_queue(n):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            q = metric_value(requests.get(d.url + "/metrics", timeout=5).text, "vigil_inference_queue_length",
                             model="slow")
            if q is not None and q >= n:
                return
            time.sleep(0.01)
        raise AssertionError(f"queue never reached {n}")

    try:
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            first = pool.submit(infer, None)
            normal = pool.submit(infer, None)
            wait_queue(1)  # one of the two holds the worker, the other waits
            urgent = pool.submit(infer, 10)
            wait_queue(2)
            # The urgent request overtakes whichever normal one was waiting.
            assert urgent.result() < max(first.result(), normal.result())
    finally:
        assert d.stop() == 0
