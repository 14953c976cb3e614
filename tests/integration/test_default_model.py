"""Which model a detection request gets, and what the repository says a
model is: the task comes from the graph (a YOLOv5 export carries no task
metadata), `/api/v1/models` shows the head family and the default detection
model, and a request that names no model goes to `detect.default_model`, or
to the only detection model, or fails naming the candidates.
"""
import grpc
import pytest
import requests

from conftest import add_model, ready_daemon, shared_path
from test_grpc import connect, generate_stubs, make_tiny_detector, png_bytes


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    return generate_stubs(tmp_path_factory.mktemp("stubs"))


def models_listing(d):
    r = requests.get(d.url + "/api/v1/models", timeout=10)
    assert r.status_code == 200
    body = r.json()
    return {m["name"]: m for m in body["models"]}, body["default_detection_model"]


def grpc_detect(pb, d, image, model=""):
    with connect(d.grpc_port) as ch:
        stub = pb["detection_pb2_grpc"].DetectionStub(ch)
        return stub.Detect(pb["detection_pb2"].DetectRequest(image=image, model=model), timeout=60)


def test_a_yolov5_export_is_served_as_a_detector(tmp_path):
    model = shared_path("models/yolov5n.onnx")
    bus = shared_path("images/bus.jpg").read_bytes()
    models = tmp_path / "models"
    (models / "yolov5n" / "1").mkdir(parents=True)
    (models / "yolov5n" / "1" / "model.onnx").symlink_to(model)
    d = ready_daemon("--models", models)
    try:
        listing, default = models_listing(d)
        assert listing["yolov5n"]["task"] == "detect"
        assert listing["yolov5n"]["family"] == "yolov5"
        assert default == "yolov5n"  # the only detection model
        r = requests.post(d.url + "/api/v1/detect", data=bus, headers={"Content-Type": "image/jpeg"}, timeout=60)
        assert r.status_code == 200, r.text
        names = [det["class_name"] for det in r.json()["detections"]]
        assert r.json()["model"] == "yolov5n" and "bus" in names and names.count("person") >= 3
    finally:
        assert d.stop() == 0


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    models = tmp_path_factory.mktemp("models")
    make_tiny_detector(models / "tinya" / "1" / "model.onnx")
    make_tiny_detector(models / "tinyb" / "1" / "model.onnx")
    add_model(models, "affine")
    return models


def test_several_detectors_and_no_default_name_the_candidates(repository, pb):
    d = ready_daemon("--models", repository)
    try:
        listing, default = models_listing(d)
        assert default is None
        assert listing["affine"]["task"] == "raw" and "family" not in listing["affine"]
        assert listing["tinya"]["task"] == "detect" and listing["tinya"]["family"] == "yolov8"
        r = requests.post(d.url + "/api/v1/detect", data=png_bytes(64, 64), timeout=30)
        assert r.status_code == 400
        message = r.json()["error"]
        assert "(tinya, tinyb)" in message and "detect.default_model" in message
        assert "?model=" not in message  # the same words serve gRPC, which has no query
        with pytest.raises(grpc.RpcError) as info:
            grpc_detect(pb, d, png_bytes(64, 64))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "(tinya, tinyb)" in info.value.details()
    finally:
        assert d.stop() == 0


def test_the_default_model_serves_requests_that_name_none(repository, pb):
    d = ready_daemon("--models", repository, "--detect-default-model", "tinyb")
    try:
        _, default = models_listing(d)
        assert default == "tinyb"
        r = requests.post(d.url + "/api/v1/detect", data=png_bytes(64, 64), timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["model"] == "tinyb"
        named = requests.post(d.url + "/api/v1/detect?model=tinya", data=png_bytes(64, 64), timeout=30)
        assert named.status_code == 200 and named.json()["model"] == "tinya"
        assert grpc_detect(pb, d, png_bytes(64, 64)).model == "tinyb"
    finally:
        assert d.stop() == 0


def test_a_default_that_cannot_detect_says_why(repository):
    for default, status, words in (("affine", 400, "not a detection model"), ("nosuch", 404, "nosuch")):
        d = ready_daemon("--models", repository, env={"VIGIL_DETECT_DEFAULT_MODEL": default})
        try:
            r = requests.post(d.url + "/api/v1/detect", data=png_bytes(64, 64), timeout=30)
            assert r.status_code == status, r.text
            assert words in r.json()["error"]
        finally:
            assert d.stop() == 0
