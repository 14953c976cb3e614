"""REST and gRPC go through one request layer (src/serve/request.c): for
every vigil_status a request can end in, the same input gets the same
outcome over both, the HTTP status and the gRPC code of the one table that
docs/API.md and docs/GRPC.md print (TABLE below is that table); and the
detection options mean the same over both: conf=0 is a threshold of 0 (not
"unset"), iou=1 suppresses nothing, an empty class list is every class, as
an absent one is.

Each case makes one request that ends in its status over REST and over gRPC
against the real daemon, and checks both codes against the table."""
import base64
import concurrent.futures
import hashlib
import hmac
import json
import time

import grpc
import numpy as np
import pytest
import requests

from conftest import add_model, metric_value, ready_daemon
from test_grpc import connect, generate_stubs, infer_request, make_tiny_detector, png_bytes
from test_serve_scheduler import make_slow_onnx

C = grpc.StatusCode

# vigil_status -> (HTTP status, gRPC code): docs/API.md "Errors", docs/GRPC.md "Errors".
TABLE = {
    "ok": (200, C.OK),
    "invalid argument": (400, C.INVALID_ARGUMENT),
    "parse": (400, C.INVALID_ARGUMENT),
    "not found": (404, C.NOT_FOUND),
    "out of memory": (413, C.RESOURCE_EXHAUSTED),
    "unsupported": (422, C.UNIMPLEMENTED),
    "limit": (413, C.RESOURCE_EXHAUSTED),
    "unavailable": (503, C.UNAVAILABLE),
    "timeout": (504, C.DEADLINE_EXCEEDED),
    "unauthenticated": (401, C.UNAUTHENTICATED),
    "permission": (403, C.PERMISSION_DENIED),
    "exists": (409, C.ALREADY_EXISTS),
    "state": (409, C.FAILED_PRECONDITION),
    "internal": (500, C.INTERNAL),
}

X = np.array([[1, 2, 3, 4]], dtype=np.float32)


def rest_infer(d, model, x=X, **kw):
    body = {"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32", "data": x.flatten().tolist()}]}
    return requests.post(f"{d.url}/v2/models/{model}/infer", json=body, timeout=300, **kw)


def grpc_code(fn, request, **kw):
    """The gRPC code a call ends in (OK when it succeeds)."""
    try:
        fn(request, timeout=300, **kw)
        return C.OK
    except grpc.RpcError as e:
        return e.code()


def check(status, http, code):
    want_http, want_code = TABLE[status]
    assert (http, code) == (want_http, want_code), f"{status}: REST {http}, gRPC {code}; table {TABLE[status]}"


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    return generate_stubs(tmp_path_factory.mktemp("stubs"))


@pytest.fixture(scope="module")
def served(tmp_path_factory, pb):
    models = tmp_path_factory.mktemp("models")
    add_model(models, "affine", config="max_batch_size: 64\n")
    make_tiny_detector(models / "tinydet" / "1" / "model.onnx")
    # its own default, between vigil's (0.25) and the request's
    (models / "tinydet" / "config.yaml").write_text("thresholds:\n  conf: 0.6\n")
    broken = models / "broken" / "1"
    broken.mkdir(parents=True)
    (broken / "model.onnx").write_bytes(b"this is no ONNX file")  # FAILED at start: unavailable
    add_model(models, "elsewhere", config="backend: hailo9000\n")  # a backend vigil does not have
    d = ready_daemon("--models", models, "--limits-max-tensor-elements", "16")
    ch = connect(d.grpc_port)
    yield d, pb, ch
    ch.close()
    assert d.stop() == 0, d.stderr[-3000:]


def stubs(pb, ch):
    return (pb["inference_pb2_grpc"].GRPCInferenceServiceStub(ch), pb["detection_pb2_grpc"].DetectionStub(ch))


def test_statuses_of_requests_match_the_table(served):
    d, pb, ch = served
    infer, detect = stubs(pb, ch)
    ipb, dpb = pb["inference_pb2"], pb["detection_pb2"]
    image = png_bytes(64, 64)

    # ok
    check("ok", rest_infer(d, "affine").status_code, grpc_code(infer.ModelInfer, infer_request(pb, "affine", X)))
    # invalid argument: an input the model does not have
    rest = requests.post(f"{d.url}/v2/models/affine/infer", timeout=30, json={
        "inputs": [{"name": "nope", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}).status_code
    check("invalid argument", rest, grpc_code(infer.ModelInfer, infer_request(pb, "affine", X, name="nope")))
    # parse: a body that is no JSON / a message that is no protobuf
    rest = requests.post(f"{d.url}/v2/models/affine/infer", data=b"{not json", timeout=30).status_code
    raw = ch.unary_unary("/inference.GRPCInferenceService/ModelInfer", request_serializer=lambda b: b,
                         response_deserializer=lambda b: b)
    check("parse", rest, grpc_code(raw, b"\xff\xff\xff\xff"))
    # parse: an image that is no image (over detection)
    rest = requests.post(f"{d.url}/api/v1/detect?model=tinydet", data=b"not an image", timeout=30).status_code
    check("parse", rest, grpc_code(detect.Detect, dpb.DetectRequest(image=b"not an image", model="tinydet")))
    # not found: an unknown model, over infer and detect
    check("not found", rest_infer(d, "nosuch").status_code,
          grpc_code(infer.ModelInfer, infer_request(pb, "nosuch", X)))
    check("not found", requests.post(f"{d.url}/api/v1/detect?model=nosuch", data=image, timeout=30).status_code,
          grpc_code(detect.Detect, dpb.DetectRequest(image=image, model="nosuch")))
    # unavailable: a model that failed to load
    check("unavailable", rest_infer(d, "broken").status_code,
          grpc_code(infer.ModelInfer, infer_request(pb, "broken", X)))
    # limit: more elements than limits.max_tensor_elements
    big = np.ones((5, 4), dtype=np.float32)
    check("limit", rest_infer(d, "affine", x=big).status_code,
          grpc_code(infer.ModelInfer, infer_request(pb, "affine", big)))
    # unsupported: loading a model whose config.yaml names a backend vigil lacks
    rest = requests.post(f"{d.url}/v2/repository/models/elsewhere/load", timeout=30).status_code
    check("unsupported", rest,
          grpc_code(infer.RepositoryModelLoad, ipb.RepositoryModelLoadRequest(model_name="elsewhere")))
    # invalid argument: a detection option out of range, and detection asked of a raw model
    rest = requests.post(f"{d.url}/api/v1/detect?model=tinydet&conf=2", data=image, timeout=30).status_code
    check("invalid argument", rest, grpc_code(detect.Detect, dpb.DetectRequest(
        image=image, model="tinydet", options=dpb.DetectOptions(conf_threshold=2))))
    rest = requests.post(f"{d.url}/api/v1/detect?model=affine", data=image, timeout=30).status_code
    check("invalid argument", rest, grpc_code(detect.Detect, dpb.DetectRequest(image=image, model="affine")))


def test_queue_full_and_deadline_match_the_table(tmp_path, pb):
    """A model with one slow worker and limits.max_queue 1: the third request
    finds the queue full (unavailable); then with a short request timeout the
    request behind a running one passes its deadline (timeout)."""
    models = tmp_path / "models"
    make_slow_onnx(models / "slow" / "1" / "model.onnx")
    (models / "slow" / "config.yaml").write_text("max_batch_size: 1\ninstances: 1\n")
    x = np.zeros((1, 64, 192, 192), dtype=np.float32)
    head = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": list(x.shape),
                                   "parameters": {"binary_data_size": x.nbytes}}],
                       "outputs": [{"name": "y", "parameters": {"binary_data": True}}]}).encode()

    def rest_slow(d):
        headers = {"Inference-Header-Content-Length": str(len(head)), "Content-Type": "application/octet-stream"}
        return requests.post(d.url + "/v2/models/slow/infer", data=head + x.tobytes(), headers=headers,
                             timeout=300)

    def wait_busy(d, queued, started=1):
        """Until started jobs have left the queue for the worker and queued wait."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = requests.get(d.url + "/metrics", timeout=5).text
            running = (metric_value(text, "vigil_inference_queue_seconds_count", model="slow") or 0) >= started
            if running and (metric_value(text, "vigil_inference_queue_length", model="slow") or 0) == queued:
                return
            time.sleep(0.01)
        raise AssertionError("the slow model never got busy")

    d = ready_daemon("--models", models, "--threads", "1", "--limits-max-queue", "1",
                     "--limits-request-timeout-ms", "60000")
    try:
        ch = connect(d.grpc_port)
        infer, _ = stubs(pb, ch)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            running = pool.submit(rest_slow, d)
            wait_busy(d, 0)
            queued = pool.submit(rest_slow, d)
            wait_busy(d, 1)
            rest = rest_slow(d)
            assert rest.headers.get("Retry-After"), rest.text
            code = grpc_code(infer.ModelInfer, infer_request(pb, "slow", x, name="x"))
            check("unavailable", rest.status_code, code)
            assert running.result().status_code == 200 and queued.result().status_code == 200
        ch.close()
    finally:
        assert d.stop() == 0
    d = ready_daemon("--models", models, "--threads", "1", "--limits-request-timeout-ms", "150")
    try:
        ch = connect(d.grpc_port)
        infer, _ = stubs(pb, ch)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            first = pool.submit(rest_slow, d)
            wait_busy(d, 0)
            code = grpc_code(infer.ModelInfer, infer_request(pb, "slow", x, name="x"))  # waits behind it
            first.result()
            started = metric_value(requests.get(d.url + "/metrics", timeout=5).text,
                                   "vigil_inference_queue_seconds_count", model="slow")
            second = pool.submit(rest_slow, d)
            wait_busy(d, 0, started=started + 1)
            rest = rest_slow(d).status_code
            second.result()
        check("timeout", rest, code)
        ch.close()
    finally:
        assert d.stop() == 0


def hs256(secret, **claims):
    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
    signing = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64(json.dumps(claims).encode())
    return signing + "." + b64(hmac.new(secret, signing.encode(), hashlib.sha256).digest())


def test_auth_refusals_match_the_table(tmp_path, pb):
    secret = b"p" * 40
    (tmp_path / "secret").write_bytes(secret)
    models = tmp_path / "models"
    add_model(models, "affine")
    d = ready_daemon("--models", models, "--auth-mode", "jwt", "--auth-secret-file", tmp_path / "secret")
    try:
        ch = connect(d.grpc_port)
        infer, _ = stubs(pb, ch)
        ipb = pb["inference_pb2"]
        exp = int(time.time()) + 600
        forged = hs256(b"x" * 40, sub="mallory", exp=exp, scope="admin")
        reader = hs256(secret, sub="alice", exp=exp, scope="infer")
        for token in (None, forged):
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            metadata = [("authorization", f"Bearer {token}")] if token else []
            check("unauthenticated", rest_infer(d, "affine", headers=headers).status_code,
                  grpc_code(infer.ModelInfer, infer_request(pb, "affine", X), metadata=metadata))
        rest = requests.post(f"{d.url}/v2/repository/models/affine/unload", timeout=30,
                             headers={"Authorization": f"Bearer {reader}"}).status_code
        check("permission", rest, grpc_code(infer.RepositoryModelUnload,
                                            ipb.RepositoryModelUnloadRequest(model_name="affine"),
                                            metadata=[("authorization", f"Bearer {reader}")]))
        ch.close()
    finally:
        assert d.stop() == 0


# ---------------------------------------------------------------- detection options


class Boxes(list):
    """Detections as (class id, score, box); equal when the classes match and
    the numbers do up to float32 (gRPC carries floats, REST decimal text)."""

    def __eq__(self, other):
        return len(self) == len(other) and all(
            a[0] == b[0] and abs(a[1] - b[1]) < 1e-4 and all(abs(x - y) < 1e-2 for x, y in zip(a[2], b[2]))
            for a, b in zip(self, other))

    def __ne__(self, other):
        return not self == other


def rest_boxes(d, image, **query):
    r = requests.post(f"{d.url}/api/v1/detect", params={"model": "tinydet", **query}, data=image, timeout=60)
    assert r.status_code == 200, r.text
    return Boxes((o["class_id"], o["score"], tuple(o["box"])) for o in r.json()["detections"])


def grpc_boxes(detect, dpb, image, options=None):
    r = detect.Detect(dpb.DetectRequest(image=image, model="tinydet", options=options), timeout=60)
    return Boxes((o.class_id, o.score, (o.box.x1, o.box.y1, o.box.x2, o.box.y2)) for o in r.detections)


def test_detection_options_mean_the_same_over_both(served):
    d, pb, ch = served
    _, detect = stubs(pb, ch)
    dpb = pb["detection_pb2"]
    image = png_bytes(64, 64, seed=3)
    default = rest_boxes(d, image)
    assert default == grpc_boxes(detect, dpb, image)  # absent options
    assert default == grpc_boxes(detect, dpb, image, dpb.DetectOptions())  # present but empty
    assert default and all(score > 0.6 for _, score, _ in default)  # config.yaml's conf, not vigil's
    # conf=0 is a threshold of 0, not "the default": every box that survives NMS
    zero = rest_boxes(d, image, conf="0")
    assert zero == grpc_boxes(detect, dpb, image, dpb.DetectOptions(conf_threshold=0))
    assert len(zero) > len(default), (len(zero), len(default))
    # iou=1 suppresses nothing; with conf=0 that is every anchor of every class kept by max_det
    assert rest_boxes(d, image, conf="0", iou="1") == grpc_boxes(
        detect, dpb, image, dpb.DetectOptions(conf_threshold=0, iou_threshold=1))
    assert rest_boxes(d, image, conf="0", iou="0") == grpc_boxes(
        detect, dpb, image, dpb.DetectOptions(conf_threshold=0, iou_threshold=0))
    # an empty class list is every class, as an absent one
    assert rest_boxes(d, image, conf="0", classes="") == zero
    assert grpc_boxes(detect, dpb, image, dpb.DetectOptions(conf_threshold=0, classes=[])) == zero
    one = rest_boxes(d, image, conf="0", classes="1")
    assert one == grpc_boxes(detect, dpb, image, dpb.DetectOptions(conf_threshold=0, classes=["1"]))
    assert one and all(c == 1 for c, _, _ in one)
    assert rest_boxes(d, image, conf="0", max_det="3") == grpc_boxes(
        detect, dpb, image, dpb.DetectOptions(conf_threshold=0, max_detections=3))
    # max_det 0 is out of range over both (it never meant "the default" over REST)
    r = requests.post(f"{d.url}/api/v1/detect", params={"model": "tinydet", "max_det": "0"}, data=image, timeout=30)
    code = grpc_code(detect.Detect, dpb.DetectRequest(image=image, model="tinydet",
                                                      options=dpb.DetectOptions(max_detections=0)))
    check("invalid argument", r.status_code, code)
