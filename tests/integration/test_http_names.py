"""Names, versions, uploads and messages under hostile clients (issue 17,
observations 6 to 9).

One test per observation, each failing on the code before the issue:
  6. versions are strict decimals in [1, 2^63-1] everywhere a version comes
     from (REST paths, the upload route, gRPC, the repository's folders);
  7. names holding NUL, control characters or invalid UTF-8 are 400 on REST
     and gRPC alike (%00 in a URL and NUL in a protobuf string no longer cut
     the name short), error bodies are valid UTF-8 and show repository paths
     relative to the repository;
  8. an upload is checked where it will live and leaves nothing behind when
     it fails (ONNX with external data);
  9. messages say what went wrong and what is valid.
REST requests that carry %00 or raw bytes go through http.client, which
sends the path as given (requests would re-encode it).
"""
import http.client
import json
import pathlib
import socket
import threading
import time

import grpc
import pytest
import requests

from conftest import add_model, ready_daemon, shared_path
from test_auth import claims, metric, mint, start
from test_grpc import connect, generate_stubs, make_tiny_detector

VERSION_RULE = "a version is a decimal integer from 1 to 9223372036854775807"


def raw(d, method, path, body=None):
    """(status, body bytes) for path sent exactly as given."""
    c = http.client.HTTPConnection("127.0.0.1", d.http_port, timeout=30)
    try:
        c.putrequest(method, path, skip_accept_encoding=True)
        if body is not None:
            c.putheader("Content-Length", str(len(body)))
        c.endheaders()
        if body:
            c.send(body)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def error_of(body):
    """The "error" of a JSON error body, which must be valid UTF-8 JSON."""
    return json.loads(body.decode("utf-8"))["error"]


def leftovers(models):
    """Staging or temporary entries an upload may have left in the repository."""
    return sorted(p.name for p in pathlib.Path(models).iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    return generate_stubs(tmp_path_factory.mktemp("stubs"))


def stop(d):
    """Stops d without decoding its log as text (what the access log makes of
    raw URL bytes is not what these tests check)."""
    if d.proc.poll() is None:
        d.proc.terminate()
    assert d.proc.wait(timeout=30) == 0  # a clean drain (and, under ASan, no leak or error)


@pytest.fixture
def repo(tmp_path):
    models = tmp_path / "models"
    add_model(models, "affine")
    d = ready_daemon("--models", models)
    d.models = models
    yield d
    stop(d)


# ---------------------------------------------------------------- 6. versions

def test_versions_are_strict_decimals_everywhere(repo, pb, tmp_path):
    for version in ["01", "+1", "1%00x", "0", "-1", "99999999999999999999999", "9223372036854775808", "1e3"]:
        status, body = raw(repo, "GET", f"/v2/models/affine/versions/{version}")
        assert status == 400 and VERSION_RULE in error_of(body), (version, status, body)
    assert raw(repo, "GET", "/v2/models/affine/versions/1")[0] == 200
    # the largest version is a version (not loaded: 404), one more is not one
    assert raw(repo, "GET", "/v2/models/affine/versions/9223372036854775807")[0] == 404

    model = (repo.models / "affine" / "1" / "model.onnx").read_bytes()
    for version in ["99999999999999999999999", "01", "+2", "2%00x"]:
        status, body = raw(repo, "PUT", f"/api/v1/models/affine/versions/{version}", model)
        assert status == 400 and VERSION_RULE in error_of(body), (version, status, body)
    assert sorted(p.name for p in (repo.models / "affine").iterdir()) == ["1"]
    assert leftovers(repo.models) == []
    status, body = raw(repo, "PUT", "/api/v1/models/affine/versions/2", model)  # a higher version still uploads
    assert status == 201, body

    r = requests.post(repo.url + "/api/v1/inference", timeout=10,
                      json={"model": "affine", "version": "02", "inputs": []})
    assert r.status_code == 400 and VERSION_RULE in r.json()["error"]

    inf = pb["inference_pb2"]
    stub = pb["inference_pb2_grpc"].GRPCInferenceServiceStub(connect(repo.grpc_port))
    for version in ["01", "+2", "99999999999999999999999"]:
        with pytest.raises(grpc.RpcError) as e:
            stub.ModelMetadata(inf.ModelMetadataRequest(name="affine", version=version), timeout=10)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and VERSION_RULE in e.value.details()


def test_a_version_folder_is_named_by_a_strict_version(tmp_path):
    models = tmp_path / "models"
    add_model(models, "padded", version="01")  # "01" is not a version: nothing to serve
    add_model(models, "affine")
    d = ready_daemon("--models", models)
    try:
        listed = {m["name"]: m for m in requests.get(d.url + "/api/v1/models", timeout=10).json()["models"]}
        assert listed["affine"]["state"] == "READY"
        assert listed["padded"]["state"] != "READY" and listed["padded"]["version"] == 0, listed["padded"]
        assert "no version folder" in listed["padded"]["reason"]
    finally:
        assert d.stop() == 0


# ---------------------------------------------------------------- 7. names

def test_names_with_nul_control_or_invalid_utf8_are_400(repo, pb):
    for path in ["/v2/models/affine%00.evil", "/v2/models/affine%00", "/v2/models/aff%01ine",
                 "/v2/models/aff%ffine", "/v2/models/aff%c3%a9ine", "/v2/models/.hidden",
                 "/v2/models/affine%00.evil/ready", "/v2/repository/models/affine%00x/unload"]:
        method = "POST" if path.endswith("unload") else "GET"
        status, body = raw(repo, method, path, b"" if method == "POST" else None)
        assert status == 400, (path, status, body)
        message = error_of(body)  # valid UTF-8 JSON whatever the name held
        assert message.startswith("invalid model name"), message
        assert "\\x" in message or "NUL" in message or "'.'" in message, message
    status, body = raw(repo, "GET", "/v2/models/nosuch")  # well-formed and unknown: still 404
    assert status == 404, body
    assert raw(repo, "GET", "/v2/models/affine/ready")[0] == 200  # the unload above was refused
    status, body = raw(repo, "POST", "/api/v1/detect?model=affine%00x", b"")
    assert status == 400, body

    inf = pb["inference_pb2"]
    stub = pb["inference_pb2_grpc"].GRPCInferenceServiceStub(connect(repo.grpc_port))
    assert stub.ModelMetadata(inf.ModelMetadataRequest(name="affine"), timeout=10).name == "affine"
    for call in [lambda: stub.ModelMetadata(inf.ModelMetadataRequest(name="affine\0x"), timeout=10),
                 lambda: stub.ModelReady(inf.ModelReadyRequest(name="affine\0"), timeout=10),
                 lambda: stub.ModelMetadata(inf.ModelMetadataRequest(name="aff\x01ine"), timeout=10),
                 lambda: stub.ModelInfer(inf.ModelInferRequest(
                     model_name="affine\0x", inputs=[inf.ModelInferRequest.InferInputTensor(
                         name="x", datatype="FP32", shape=[1, 4],
                         contents=inf.InferTensorContents(fp32_contents=[1, 2, 3, 4]))]), timeout=10)]:
        with pytest.raises(grpc.RpcError) as e:
            call()
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()


def test_error_bodies_name_repository_paths_relative_to_it(tmp_path):
    models = tmp_path / "models"
    add_model(models, "broken", config="colour: red\n")
    add_model(models, "affine")
    d = ready_daemon("--models", models)
    try:
        listed = {m["name"]: m for m in requests.get(d.url + "/api/v1/models", timeout=10).json()["models"]}
        reason = listed["broken"]["reason"]
        assert "broken/config.yaml" in reason and str(models) not in reason, reason
        r = requests.post(d.url + "/v2/repository/models/broken/load", timeout=10)
        assert r.status_code >= 400 and str(models) not in r.text and "broken/config.yaml" in r.text, r.text
        r = requests.get(d.url + "/v2/models/broken", timeout=10)
        assert str(models) not in r.text, r.text
    finally:
        assert d.stop() == 0


# ---------------------------------------------------------------- 8. uploads

def external_data_model(path, location):
    """An affine model whose "scale" initializer lives in external data at
    location (as written into the model); returns (model bytes, data bytes)."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    out = pathlib.Path(path)
    out.mkdir(parents=True, exist_ok=True)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    scale = numpy_helper.from_array(np.full([4], 2.0, dtype=np.float32), "scale")  # raw_data: can go external
    graph = helper.make_graph([helper.make_node("Mul", ["x", "scale"], ["y"])], "ext", [x], [y], [scale])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(out / "model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="weights.bin", size_threshold=0)
    model = onnx.load(str(out / "model.onnx"), load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    return model.SerializeToString(), (out / "weights.bin").read_bytes()


def test_upload_is_checked_where_it_lives_and_leaves_nothing_behind(repo, tmp_path):
    # "up/1/weights.bin" resolves from the repository root (where the upload's
    # temporary file used to be checked) but not from ext5/1/, where it lives
    model, data = external_data_model(tmp_path / "ext", "up/1/weights.bin")
    (repo.models / "up" / "1").mkdir(parents=True)
    (repo.models / "up" / "1" / "weights.bin").write_bytes(data)
    for name, location in [("ext5", "up/1/weights.bin"), ("ext6", "weights.bin"), ("ext7", "../../x"),
                           ("ext8", "/etc/passwd")]:
        body, _ = external_data_model(tmp_path / name, location)
        status, answer = raw(repo, "PUT", f"/api/v1/models/{name}/versions/1", body)
        assert status == 400, (name, status, answer)
        message = error_of(answer)
        assert message.startswith("the uploaded model does not load"), message
        assert str(repo.models) not in message and ".staging" not in message, message
        assert not (repo.models / name).exists(), name
        assert leftovers(repo.models) == [], name
        r = requests.get(repo.url + "/api/v1/models", timeout=10)
        assert name not in [m["name"] for m in r.json()["models"]]
    # a plain upload of a new model still works and lives where it was put
    plain = (repo.models / "affine" / "1" / "model.onnx").read_bytes()
    status, answer = raw(repo, "PUT", "/api/v1/models/fresh/versions/3", plain)
    assert status == 201, answer
    assert (repo.models / "fresh" / "3" / "model.onnx").read_bytes() == plain
    assert leftovers(repo.models) == []


# ---------------------------------------------------------------- 9. messages

@pytest.fixture
def messages(tmp_path):
    models = tmp_path / "models"
    make_tiny_detector(models / "tinydet" / "1" / "model.onnx")
    add_model(models, "slow", config="max_batch_size: 8\ndynamic_batching:\n  max_queue_delay_us: 10000000\n")
    d = ready_daemon("--models", models, "--limits-shutdown-timeout-ms", "0")
    yield d
    stop(d)


def test_an_upload_name_too_long_is_named_as_such(messages):
    # as GET and load say it, not "no upload"
    status, body = raw(messages, "PUT", "/api/v1/models/" + "a" * 150 + "/versions/1", b"x")
    assert status == 400 and error_of(body).startswith("invalid model name"), body
    assert "1 to 127 characters" in error_of(body)


def test_class_ids_are_checked_against_the_class_count(messages, pb):
    d = messages
    # class ids within the model's class count (2: thing0, thing1), REST and gRPC
    image = shared_path("images/bus.jpg").read_bytes()
    for classes in ["999999", "2", "-1"]:
        r = requests.post(d.url + "/api/v1/detect", params={"model": "tinydet", "classes": classes},
                          data=image, headers={"Content-Type": "image/jpeg"}, timeout=30)
        assert r.status_code == 400, (classes, r.text)
        assert f"class id {classes} is out of range: the model has 2 classes (0-1)" in r.json()["error"]
    r = requests.post(d.url + "/api/v1/detect", params={"model": "tinydet", "classes": "1,thing0"},
                      data=image, headers={"Content-Type": "image/jpeg"}, timeout=30)
    assert r.status_code == 200, r.text
    dpb = pb["detection_pb2"]
    stub = pb["detection_pb2_grpc"].DetectionStub(connect(d.grpc_port))
    with pytest.raises(grpc.RpcError) as e:
        stub.Detect(dpb.DetectRequest(image=image, model="tinydet",
                                      options=dpb.DetectOptions(classes=["999999"])), timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "the model has 2 classes (0-1)" in e.value.details()


def test_a_request_queued_on_an_unloaded_model_is_told_so(messages):
    d = messages
    # a request queued on a model that is unloaded is told so, not that the server stops
    answer = {}

    def infer():
        body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
        answer["r"] = requests.post(d.url + "/v2/models/slow/infer", json=body, timeout=60)

    t = threading.Thread(target=infer)
    t.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # waits for the request to sit in the batcher's queue
        listed = {m["name"]: m for m in requests.get(d.url + "/api/v1/models", timeout=10).json()["models"]}
        if listed["slow"]["queue_length"] == 1:
            break
        time.sleep(0.02)
    assert listed["slow"]["queue_length"] == 1
    assert requests.post(d.url + "/v2/repository/models/slow/unload", timeout=30).status_code == 200
    t.join(60)
    r = answer["r"]
    assert r.status_code == 503, r.text
    assert "model slow is being unloaded" in r.json()["error"], r.text
    assert "server is shutting down" not in r.json()["error"]


def test_unsupported_token_algorithms_are_named(tmp_path):
    d = start(tmp_path)
    try:
        for header in [{"alg": "none", "typ": "JWT"}, {"alg": "HS384", "typ": "JWT"}]:
            for token in [mint(claims(), header=header, signed=False),
                          mint(claims(), header=header, signed=False) + "AAAA"]:
                r = requests.get(d.url + "/api/v1/models", headers={"Authorization": "Bearer " + token}, timeout=10)
                assert r.status_code == 401, r.text
                assert "HS256, RS256 and ES256" in r.json()["error"], r.text
                assert "malformed" not in r.json()["error"]
        assert metric(d, "algorithm", mint(claims())) == 4
        assert metric(d, "malformed", mint(claims())) == 0
    finally:
        assert d.stop() == 0


def test_raw_bytes_in_a_url_keep_the_access_log_valid_json(tmp_path):
    """The access line quotes the URL as the client sent it: a byte that is
    no UTF-8 (%ff decoded, or sent raw) becomes U+FFFD, so every line of the
    log still parses as one JSON object."""
    models = tmp_path / "models"
    add_model(models, "affine")
    d = ready_daemon("--models", models)
    try:
        for target in (b"/v2/models/aff%ffine", b"/v2/models/aff\xffine", b"/v2/models/%c3%28"):
            with socket.create_connection(("127.0.0.1", d.http_port), timeout=10) as sock:
                sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                answer = b""
                while chunk := sock.recv(65536):
                    answer += chunk
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.split(b" ")[1] in (b"400", b"404"), head
            json.loads(body)  # the error body is valid JSON too
    finally:
        assert d.stop() == 0
    d.log.seek(0)
    raw = d.log.buffer.read() if hasattr(d.log, "buffer") else d.log.read().encode()
    lines = raw.decode("utf-8").splitlines()  # strict: invalid UTF-8 raises
    access = [json.loads(line) for line in lines if '"type":"access"' in line]
    assert len(access) >= 3
    assert any("\ufffd" in a["path"] for a in access)
