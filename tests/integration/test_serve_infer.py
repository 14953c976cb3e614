"""KServe v2 REST against the real daemon: metadata, readiness, JSON and
binary-tensor inference on a generated model with known outputs (y = 2x + 1),
and the errors clients get for bad requests."""
import json
import struct

import pytest
import requests

from conftest import add_model, ready_daemon


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    models = tmp_path_factory.mktemp("models")
    add_model(models, "affine")                                   # symbolic batch -> max_batch_size 8
    add_model(models, "fixed", batch=1, width=3, scale=3.0, offset=-1.0)
    add_model(models, "small", config="max_batch_size: 2\n")
    d = ready_daemon("--models", models, "--http-max-body-bytes", "65536")
    yield d
    d.stop()


def infer(server, model, body, **kw):
    return requests.post(f"{server.url}/v2/models/{model}/infer", data=json.dumps(body), timeout=10, **kw)


def test_server_metadata(server):
    meta = requests.get(server.url + "/v2", timeout=5).json()
    assert meta["name"] == "vigil"
    assert "binary_tensor_data" in meta["extensions"]
    assert requests.get(server.url + "/v2/health/ready", timeout=5).status_code == 200


def test_model_metadata_and_ready(server):
    meta = requests.get(server.url + "/v2/models/affine", timeout=5).json()
    assert meta["name"] == "affine" and meta["versions"] == ["1"] and meta["platform"] == "onnx"
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert meta["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [-1, 4]}]
    assert requests.get(server.url + "/v2/models/affine/versions/1", timeout=5).json()["name"] == "affine"
    assert requests.get(server.url + "/v2/models/affine/ready", timeout=5).status_code == 200
    assert requests.get(server.url + "/v2/models/affine/versions/1/ready", timeout=5).status_code == 200
    assert requests.get(server.url + "/v2/models/affine/versions/7", timeout=5).status_code == 404


def test_infer_json_nested_and_flat(server):
    x = [[1, 2, 3, 4], [5, 6, 7, 8.5]]
    r = infer(server, "affine", {"id": "req-1", "inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": x}]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_name"] == "affine" and body["model_version"] == "1" and body["id"] == "req-1"
    (out,) = body["outputs"]
    assert out["name"] == "y" and out["datatype"] == "FP32" and out["shape"] == [2, 4]
    assert out["data"] == [2 * v + 1 for row in x for v in row]
    flat = infer(server, "affine", {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [0, -1, 0.5, 10]}]})
    assert flat.json()["outputs"][0]["data"] == [1, -1, 2, 21]


def test_infer_fixed_batch_model_and_version_route(server):
    r = requests.post(server.url + "/v2/models/fixed/versions/1/infer", timeout=10,
                      json={"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]})
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == [2, 5, 8]


def test_infer_binary_input_and_output(server):
    values = [0.25, -2.0, 3.5, 100.0, 1.0, 2.0, 3.0, 4.0]
    header = json.dumps({"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32",
                                     "parameters": {"binary_data_size": 32}}],
                         "outputs": [{"name": "y", "parameters": {"binary_data": True}}]}).encode()
    body = header + struct.pack("<8f", *values)
    r = requests.post(server.url + "/v2/models/affine/infer", data=body, timeout=10,
                      headers={"Inference-Header-Content-Length": str(len(header)),
                               "Content-Type": "application/octet-stream"})
    assert r.status_code == 200, r.text
    json_len = int(r.headers["Inference-Header-Content-Length"])
    meta = json.loads(r.content[:json_len])
    out = meta["outputs"][0]
    assert out["parameters"]["binary_data_size"] == 32 and "data" not in out
    assert list(struct.unpack("<8f", r.content[json_len:])) == [2 * v + 1 for v in values]


def test_binary_data_output_request_parameter(server):
    r = infer(server, "affine", {"parameters": {"binary_data_output": True},
                                 "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 1, 1, 1]}]})
    n = int(r.headers["Inference-Header-Content-Length"])
    assert struct.unpack("<4f", r.content[n:]) == (3.0, 3.0, 3.0, 3.0)


def test_seed_inference_route(server):
    r = requests.post(server.url + "/api/v1/inference", timeout=10,
                      json={"model": "affine", "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                                                           "data": [1, 2, 3, 4]}]})
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == [3, 5, 7, 9]
    assert requests.post(server.url + "/api/v1/inference", json={"inputs": []}, timeout=5).status_code == 400


@pytest.mark.parametrize("body, fragment", [
    ({"inputs": [{"name": "z", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}, "no input 'z'"),
    ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "INT64", "data": [1, 2, 3, 4]}]}, "datatype"),
    ({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}, "shape[1]"),
    ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3]}]}, "3 elements"),
    ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, "a"]}]}, "not a number"),
    ({"inputs": []}, "missing input 'x'"),
    ({"parameters": {"priority": "high"}, "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                                                      "data": [1, 2, 3, 4]}]}, "priority"),
    ({"inputs": [{"name": "x", "shape": [9, 4], "datatype": "FP32", "data": [0] * 36}]}, "max_batch_size"),
])
def test_bad_requests_are_400_with_a_message(server, body, fragment):
    r = infer(server, "affine", body)
    assert r.status_code == 400
    assert fragment in r.json()["error"]


def test_malformed_json_is_400(server):
    r = requests.post(server.url + "/v2/models/affine/infer", data=b"{\"inputs\": [", timeout=5)
    assert r.status_code == 400
    assert "malformed JSON" in r.json()["error"]


def test_configured_max_batch_size(server):
    r = infer(server, "small", {"inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP32", "data": [0] * 12}]})
    assert r.status_code == 400 and "1..2" in r.json()["error"]


def test_unknown_model_is_404(server):
    assert requests.get(server.url + "/v2/models/nope", timeout=5).status_code == 404
    r = infer(server, "nope", {"inputs": []})
    assert r.status_code == 404 and "unknown model" in r.json()["error"]
    assert requests.get(server.url + "/v2/models/..%2Fetc", timeout=5).status_code == 404


def test_wrong_method_is_405(server):
    assert requests.get(server.url + "/v2/models/affine/infer", timeout=5).status_code == 405
    assert requests.post(server.url + "/v2/models/affine", timeout=5).status_code == 405


def test_body_over_limit_is_413(server):
    r = requests.post(server.url + "/v2/models/affine/infer", data=b"x" * 200000, timeout=10)
    assert r.status_code == 413
    assert "max_body_bytes" in r.json()["error"]
    # The connection pool keeps working afterwards.
    assert requests.get(server.url + "/v2/models/affine/ready", timeout=5).status_code == 200


def test_request_id_is_echoed_or_generated(server):
    r = requests.get(server.url + "/v2/models/affine", headers={"X-Request-Id": "abc-123"}, timeout=5)
    assert r.headers["X-Request-Id"] == "abc-123"
    a = requests.get(server.url + "/v2", timeout=5).headers["X-Request-Id"]
    b = requests.get(server.url + "/v2", timeout=5).headers["X-Request-Id"]
    assert a and b and a != b
