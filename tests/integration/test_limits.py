"""Every configurable limit, crossed against the real daemon: each gets the
status that docs/SECURITY.md documents, and the daemon keeps serving the
requests that stay inside it.

| limit                        | crossing it gives                                   |
|------------------------------|-----------------------------------------------------|
| http.max_body_bytes          | 413 (REST), RESOURCE_EXHAUSTED (gRPC)               |
| http.max_upload_bytes        | 413, nothing written                                |
| http.max_connections         | the connection waits in the listen backlog          |
| http.idle_timeout_s          | the idle connection is closed, freeing its slot     |
| limits.max_image_pixels      | 413 naming the limit                                |
| limits.max_tensor_elements   | 413 (REST), RESOURCE_EXHAUSTED (gRPC)               |
| limits.request_timeout_ms    | 504                                                 |
| limits.max_queue             | 503 with Retry-After                                |
| model names                  | 400 (malformed), 404 (unknown); no traversal        |
"""
import concurrent.futures
import json
import os
import socket
import time

import numpy as np
import pytest
import requests

from conftest import add_model, metric_value, ready_daemon, shared_path
from test_serve_scheduler import make_slow_onnx

X = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}


def infer(d, body=X, model="affine", timeout=30):
    return requests.post(f"{d.url}/v2/models/{model}/infer", json=body, timeout=timeout)


def still_serving(d):
    r = infer(d)
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == [3, 5, 7, 9]


@pytest.fixture
def models(tmp_path):
    m = tmp_path / "models"
    add_model(m, "affine", config="max_batch_size: 64\n")
    return m


def test_body_and_upload_limits(models):
    d = ready_daemon("--models", models, "--http-max-body-bytes", "4096", "--http-max-upload-bytes", "2048")
    try:
        big = dict(X, id="x" * 5000)
        r = infer(d, big)
        assert r.status_code == 413 and "max_body_bytes" in r.json()["error"]
        still_serving(d)
        r = requests.put(d.url + "/api/v1/models/other/versions/1", data=b"\0" * 4096, timeout=30)
        assert r.status_code == 413 and "max_upload_bytes" in r.json()["error"]
        assert not (models / "other").exists() or not any((models / "other").rglob("*.onnx"))
        still_serving(d)
    finally:
        assert d.stop() == 0


def test_tensor_element_limit_on_rest_and_grpc(models, tmp_path):
    d = ready_daemon("--models", models, "--limits-max-tensor-elements", "16")
    try:
        over = {"inputs": [{"name": "x", "shape": [5, 4], "datatype": "FP32", "data": [1.0] * 20}]}
        r = infer(d, over)
        assert r.status_code == 413, r.text
        assert "max_tensor_elements" in r.json()["error"]
        # a shape that claims more than it sends is refused on the shape alone
        r = infer(d, {"inputs": [{"name": "x", "shape": [1 << 40, 4], "datatype": "FP32", "data": [1.0]}]})
        assert r.status_code in (400, 413), r.text
        still_serving(d)

        import grpc
        from test_grpc import connect, generate_stubs, infer_request
        pb = generate_stubs(tmp_path / "stubs")
        ch = connect(d.grpc_port)
        stub = pb["inference_pb2_grpc"].GRPCInferenceServiceStub(ch)
        with pytest.raises(grpc.RpcError) as e:
            stub.ModelInfer(infer_request(pb, "affine", np.ones((5, 4), dtype=np.float32)))
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "max_tensor_elements" in e.value.details()
        ok = stub.ModelInfer(infer_request(pb, "affine", np.ones((4, 4), dtype=np.float32)))
        assert ok.outputs[0].name == "y"
        ch.close()
        still_serving(d)
    finally:
        assert d.stop() == 0


def read_response(s):
    """One whole HTTP/1.1 response from socket s (b"" when it was closed)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            return data
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = int([h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")][0].split(b":")[1])
    while len(body) < length:
        body += s.recv(4096)
    return head + b"\r\n\r\n" + body


def request_healthz(s):
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: limits\r\n\r\n")
    return read_response(s)


def test_connection_limit_holds_extra_connections_until_a_slot_frees(models):
    d = ready_daemon("--models", models, "--http-threads", "2", "--http-max-connections", "4",
                     "--http-idle-timeout-s", "2")
    held = []
    try:
        for _ in range(4):  # keep-alive connections that hold every slot
            s = socket.create_connection(("127.0.0.1", d.http_port), timeout=5)
            assert request_healthz(s).startswith(b"HTTP/1.1 200")
            held.append(s)
        extra = socket.create_connection(("127.0.0.1", d.http_port), timeout=5)
        extra.settimeout(0.5)
        extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: limits\r\n\r\n")
        with pytest.raises(socket.timeout):
            extra.recv(1)  # over the limit: waits in the backlog, not served
        held.pop(0).close()  # one slot frees: the waiting connection is served
        extra.settimeout(5)
        assert read_response(extra).startswith(b"HTTP/1.1 200")
        extra.close()
        # idle connections are closed after http.idle_timeout_s, so slot hogs
        # cannot starve others for longer than that
        for s in held:
            s.settimeout(10)
            assert s.recv(100) == b""
        text = requests.get(d.url + "/metrics", timeout=5).text
        assert metric_value(text, "vigil_http_max_connections") == 4
        assert 1 <= metric_value(text, "vigil_http_connections") <= 4
        still_serving(d)
    finally:
        for s in held:
            s.close()
        assert d.stop() == 0


def test_connection_limit_below_io_threads_is_a_config_error(models):
    from conftest import run_vigil
    r = run_vigil("serve", "--models", models, "--http-threads", "4", "--http-max-connections", "2", timeout=30)
    assert r.returncode != 0
    assert "http.max_connections" in r.stderr


def test_image_pixel_limit(tmp_path):
    model = shared_path("models/yolov8n.onnx")
    image = shared_path("images/bus.jpg").read_bytes()
    models = tmp_path / "models"
    os.makedirs(models / "yolov8n" / "1")
    os.symlink(model, models / "yolov8n" / "1" / "model.onnx")
    add_model(models, "affine")
    d = ready_daemon("--models", models, "--limits-max-image-pixels", "100000")  # bus.jpg is 810x1080
    try:
        r = requests.post(d.url + "/api/v1/detect?model=yolov8n", data=image, timeout=60,
                          headers={"Content-Type": "image/jpeg"})
        assert r.status_code == 413, r.text
        assert "max_image_pixels" in r.json()["error"]
        still_serving(d)
    finally:
        assert d.stop() == 0


def test_deadline_and_queue_bound(tmp_path):
    models = tmp_path / "models"
    make_slow_onnx(models / "slow" / "1" / "model.onnx")
    (models / "slow" / "config.yaml").write_text("max_batch_size: 1\ninstances: 1\n")
    add_model(models, "affine")
    d = ready_daemon("--models", models, "--threads", "1", "--limits-max-queue", "1",
                     "--limits-request-timeout-ms", "60000")
    x = bytes(4 * 64 * 192 * 192)
    head = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 64, 192, 192],
                                   "parameters": {"binary_data_size": len(x)}}],
                       "outputs": [{"name": "y", "parameters": {"binary_data": True}}]}).encode()

    def slow():
        headers = {"Inference-Header-Content-Length": str(len(head)), "Content-Type": "application/octet-stream"}
        return requests.post(d.url + "/v2/models/slow/infer", data=head + x, headers=headers, timeout=300)

    def queue_length():
        return metric_value(requests.get(d.url + "/metrics", timeout=5).text, "vigil_inference_queue_length",
                            model="slow")

    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            running = pool.submit(slow)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # the first request is on the worker
                text = requests.get(d.url + "/metrics", timeout=5).text
                if (metric_value(text, "vigil_inference_queue_seconds_count", model="slow") or 0) >= 1:
                    break
                time.sleep(0.01)
            queued = pool.submit(slow)
            while queue_length() != 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            r = slow()  # the queue (bound 1) is full
            assert r.status_code == 503 and r.headers.get("Retry-After"), r.text
            still_serving(d)  # other models are not held up
            assert running.result().status_code == 200
            assert queued.result().status_code == 200
    finally:
        assert d.stop() == 0
    d = ready_daemon("--models", models, "--threads", "1", "--limits-request-timeout-ms", "100")
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            first = pool.submit(slow)
            second = pool.submit(slow)
            codes = sorted([first.result().status_code, second.result().status_code])
        assert 504 in codes, codes  # whichever waited behind the other passed its deadline
        still_serving(d)
    finally:
        assert d.stop() == 0


@pytest.mark.parametrize("path,codes", [
    ("/v2/models/..%2F..%2Fetc%2Fpasswd/infer", (404,)),  # decoded, the path has more segments than any route
    ("/v2/models/a%00b/infer", (400,)),  # %00 stays as sent: an invalid name, not "a"
    ("/v2/models/" + "m" * 300 + "/infer", (400,)),  # a malformed name is 400, only an unknown one 404
    ("/api/v1/models/..%2Fescape/versions/1", (404,)),
])
def test_model_names_are_checked(models, tmp_path, path, codes):
    d = ready_daemon("--models", models)
    try:
        method = "PUT" if path.startswith("/api/v1/models/") else "POST"
        r = requests.request(method, d.url + path, data=b"{}", timeout=10)
        assert r.status_code in codes, (path, r.status_code, r.text)
        assert isinstance(r.json().get("error"), str)
        assert not (tmp_path / "escape").exists()
        still_serving(d)
    finally:
        assert d.stop() == 0
