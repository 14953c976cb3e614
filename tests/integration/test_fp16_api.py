"""float16 tensors over the APIs, and detection on fp16 and int8 models.

KServe v2 has an FP16 datatype but JSON has no half.  vigil carries FP16
(docs/API.md, "FP16"): raw little-endian IEEE half in the binary tensor
extension and in gRPC's raw_input_contents/raw_output_contents (KServe's
InferTensorContents has no fp16 field), and, where Triton refuses, JSON
numbers too: an input number is rounded once to half (ties to even), an
output half is written as the number it is.  Model metadata says FP16.

Detection on an fp16 export (float16 image input and outputs) converts at
the boundary alone (the letterboxed image rounded to half, the outputs
widened) and on an int8 QDQ model (from `vigil models quantize`) runs as it
is; both must find what the fp32 model finds on bus.jpg and zidane.jpg
through `vigil detect`, REST /api/v1/detect and gRPC Detect.  The max box
difference and the scores side by side are printed (run with -s): they are
the table in docs/VISION.md.

The fp16 and int8 models are made once for the module in a temporary
directory (never in the repository); one daemon serves them all.
"""
import json
import struct

import grpc
import numpy as np
import pytest
import requests

from conftest import add_model, ready_daemon, run_vigil, shared_path
from fp16_model import round_weights
from test_engine_quantize import detect as cli_detect, iou
from test_grpc import connect, generate_stubs, rpc_error

IMAGES = ("bus", "zidane")


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    return generate_stubs(tmp_path_factory.mktemp("stubs"))


@pytest.fixture(scope="module")
def yolo_files(tmp_path_factory):
    """fp32 (the shared file), fp16 (scripts/fp16_model.py) and int8 QDQ
    (`vigil models quantize`, calibrated on the two images) yolov8n."""
    src = shared_path("models/yolov8n.onnx")
    tmp = tmp_path_factory.mktemp("yolo")
    fp16, int8 = tmp / "yolov8n_fp16.onnx", tmp / "yolov8n_int8.onnx"
    round_weights(src, fp16, np.float16)
    images = [shared_path(f"images/{name}.jpg") for name in IMAGES]
    res = run_vigil("models", "quantize", src, int8, "--calibrate", *images, timeout=300)
    assert res.returncode == 0, res.stderr
    return {"fp32": src, "fp16": fp16, "int8": int8}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """affine16: y = 1.5 x + 0.25 with float16 weights, input and output."""
    models = tmp_path_factory.mktemp("models")
    affine = add_model(tmp_path_factory.mktemp("src"), "affine", scale=1.5, offset=0.25) / "1" / "model.onnx"
    (models / "affine16" / "1").mkdir(parents=True)
    round_weights(affine, models / "affine16" / "1" / "model.onnx", np.float16)
    d = ready_daemon("--models", models)
    d.models = models
    yield d
    assert d.stop() == 0, d.stderr[-4000:]


@pytest.fixture(scope="module")
def kserve(pb, server):
    return pb["inference_pb2_grpc"].GRPCInferenceServiceStub(connect(server.grpc_port))


def expected(x16):
    """What the engine answers: the float16 input widened, computed in
    float32 (1.5 x is exact there), rounded once to float16."""
    return (x16.astype(np.float32) * np.float32(1.5) + np.float32(0.25)).astype(np.float16)


# Values that round: 0.1 (inexact), a tie between halves (to even, down),
# one just above it (up, where rounding through float32 would land on the
# tie), a subnormal and values past half's range (infinity, as numpy does).
JSON_IN = [0.1, 1 + 1 / 2048, 1 + 1 / 2048 + 1e-12, -3.0, 6e-8, 1000.0, -2.5, 7.0]
HALVES = np.array([0.1, 1.0, 1 + 1 / 1024, -3.0, 5.9604644775390625e-08, 1000.0, -2.5, 7.0], dtype=np.float16)


def binary_body(header, payload):
    body = json.dumps(header).encode()
    return body + payload, {"Inference-Header-Content-Length": str(len(body))}


def split_binary(r):
    n = int(r.headers["Inference-Header-Content-Length"])
    return json.loads(r.content[:n]), r.content[n:]


def test_metadata_says_fp16(server, kserve, pb):
    meta = requests.get(server.url + "/v2/models/affine16", timeout=10).json()
    assert [(t["name"], t["datatype"]) for t in meta["inputs"]] == [("x", "FP16")]
    assert [(t["name"], t["datatype"]) for t in meta["outputs"]] == [("y", "FP16")]
    g = kserve.ModelMetadata(pb["inference_pb2"].ModelMetadataRequest(name="affine16"))
    assert [(t.name, t.datatype) for t in g.inputs] == [("x", "FP16")]
    assert [(t.name, t.datatype) for t in g.outputs] == [("y", "FP16")]


def test_rest_json_fp16(server):
    body = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP16", "data": JSON_IN}]}
    r = requests.post(server.url + "/v2/models/affine16/infer", json=body, timeout=30)
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    assert out["datatype"] == "FP16" and out["shape"] == [2, 4]
    # the input was rounded as numpy rounds, once; the output numbers are halves, exactly
    assert np.array_equal(np.array(JSON_IN, dtype=np.float64).astype(np.float16), HALVES)
    want = expected(HALVES)
    got = np.array(out["data"], dtype=np.float64)
    assert np.array_equal(got, want.astype(np.float64)), (got, want)
    # nested lists and a number past half's range (infinity, written as null like any non-finite)
    body["inputs"][0]["data"] = [[1, 2, 3, 4], [5, 6, 7, 70000]]
    r = requests.post(server.url + "/v2/models/affine16/infer", json=body, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == [1.75, 3.25, 4.75, 6.25, 7.75, 9.25, 10.75, None]


def test_rest_binary_fp16(server):
    x = HALVES.reshape(2, 4)
    header = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP16",
                          "parameters": {"binary_data_size": x.nbytes}}],
              "outputs": [{"name": "y", "parameters": {"binary_data": True}}]}
    data, headers = binary_body(header, x.astype("<f2").tobytes())
    r = requests.post(server.url + "/v2/models/affine16/infer", data=data, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    meta, raw = split_binary(r)
    out = meta["outputs"][0]
    assert out["datatype"] == "FP16" and out["parameters"]["binary_data_size"] == 16
    assert raw == expected(x).astype("<f2").tobytes()
    # JSON in, binary out: the same bytes
    body = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP16", "data": JSON_IN}],
            "parameters": {"binary_data_output": True}}
    r = requests.post(server.url + "/v2/models/affine16/infer", json=body, timeout=30)
    assert r.status_code == 200 and split_binary(r)[1] == raw


def test_grpc_raw_fp16(server, kserve, pb):
    ipb = pb["inference_pb2"]
    x = HALVES.reshape(2, 4)
    req = ipb.ModelInferRequest(model_name="affine16")
    req.inputs.add(name="x", datatype="FP16", shape=[2, 4])
    req.raw_input_contents.append(x.astype("<f2").tobytes())
    res = kserve.ModelInfer(req, timeout=30)
    assert [(o.name, o.datatype, list(o.shape)) for o in res.outputs] == [("y", "FP16", [2, 4])]
    assert list(res.raw_output_contents) == [expected(x).astype("<f2").tobytes()]
    # typed contents have no fp16 field: refused, saying what to use
    typed = ipb.ModelInferRequest(model_name="affine16")
    typed.inputs.add(name="x", datatype="FP16", shape=[1, 4]).contents.fp32_contents.extend([1, 2, 3, 4])
    code, detail = rpc_error(kserve.ModelInfer, typed, timeout=30)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "raw_input_contents" in detail, detail


def test_bad_fp16_input(server, kserve, pb):
    url = server.url + "/v2/models/affine16/infer"
    # float32-sized bytes for an FP16 tensor
    header = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP16", "parameters": {"binary_data_size": 16}}]}
    data, headers = binary_body(header, struct.pack("<4f", 1, 2, 3, 4))
    r = requests.post(url, data=data, headers=headers, timeout=30)
    assert r.status_code == 400 and "binary_data_size must be 8 bytes" in r.json()["error"], r.text
    # the model's datatype is FP16: FP32 is refused, naming both
    body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
    r = requests.post(url, json=body, timeout=30)
    assert r.status_code == 400 and "FP16" in r.json()["error"], r.text
    body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP16", "data": [1, 2, True, 4]}]}
    r = requests.post(url, json=body, timeout=30)
    assert r.status_code == 400 and "element 2 is not a number" in r.json()["error"], r.text
    ipb = pb["inference_pb2"]
    req = ipb.ModelInferRequest(model_name="affine16")
    req.inputs.add(name="x", datatype="FP16", shape=[1, 4])
    req.raw_input_contents.append(struct.pack("<4f", 1, 2, 3, 4))
    code, detail = rpc_error(kserve.ModelInfer, req, timeout=30)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "has 16 bytes, the shape needs 8" in detail, detail


# ---------------------------------------------------------------- detection


def compare(ref, got, label):
    """Each fp32 detection of score >= 0.5 must have a match of its class
    (IoU >= 0.9, score within 0.1); prints the side-by-side rows and
    returns the largest box coordinate difference in pixels."""
    worst = 0.0
    for d in ref:
        same = [e for e in got if e["class_id"] == d["class_id"]]
        best = max(same, key=lambda e: iou(d["box"], e["box"]), default=None)
        overlap = iou(d["box"], best["box"]) if best else 0.0
        diff = max(abs(a - b) for a, b in zip(d["box"], best["box"])) if best else float("inf")
        print(f"  {label:14s} {d['class_name']:8s} fp32 {d['score']:.3f} other {best['score'] if best else 0:.3f} "
              f"IoU {overlap:.3f} max box diff {diff:.1f} px")
        if d["score"] >= 0.5:
            assert best and overlap >= 0.9 and abs(best["score"] - d["score"]) <= 0.1, \
                f"{label}: {d} has no match (best {best}, IoU {overlap:.3f})"
            worst = max(worst, diff)
    return worst


def test_detect_fp16_and_int8_cli(yolo_files):
    for image in IMAGES:
        path = shared_path(f"images/{image}.jpg")
        ref = cli_detect(yolo_files["fp32"], path)
        for kind in ("fp16", "int8"):
            got = cli_detect(yolo_files[kind], path)
            worst = compare(ref, got, f"{kind} {image}")
            print(f"yolov8n {kind} {image}: {len(ref)} fp32 / {len(got)} {kind} detections, max box diff {worst:.1f} px")


def test_detect_fp16_and_int8_rest_grpc(yolo_files, server, pb):
    for kind in ("fp16", "int8"):
        (server.models / f"yolov8n_{kind}" / "1").mkdir(parents=True)
        (server.models / f"yolov8n_{kind}" / "1" / "model.onnx").symlink_to(yolo_files[kind])
    ipb, dpb = pb["inference_pb2"], pb["detection_pb2"]
    channel = connect(server.grpc_port)
    kserve = pb["inference_pb2_grpc"].GRPCInferenceServiceStub(channel)
    detection = pb["detection_pb2_grpc"].DetectionStub(channel)
    for kind in ("fp16", "int8"):
        kserve.RepositoryModelLoad(ipb.RepositoryModelLoadRequest(model_name=f"yolov8n_{kind}"), timeout=300)
    meta = requests.get(server.url + "/v2/models/yolov8n_fp16", timeout=10).json()
    assert meta["inputs"][0]["datatype"] == "FP16" and meta["outputs"][0]["datatype"] == "FP16"
    for image in IMAGES:
        data = shared_path(f"images/{image}.jpg").read_bytes()
        ref = cli_detect(yolo_files["fp32"], shared_path(f"images/{image}.jpg"))
        for kind in ("fp16", "int8"):
            model = f"yolov8n_{kind}"
            r = requests.post(server.url + f"/api/v1/detect?model={model}", data=data, timeout=120)
            assert r.status_code == 200, r.text
            rest = r.json()["detections"]
            compare(ref, rest, f"{kind} {image} REST")
            g = detection.Detect(dpb.DetectRequest(image=data, model=model), timeout=120)
            assert len(g.detections) == len(rest)
            for a, b in zip(g.detections, rest):  # the same path behind both front ends
                assert (a.class_id, a.class_name) == (b["class_id"], b["class_name"])
                assert a.score == pytest.approx(b["score"], abs=1e-6)
                assert [a.box.x1, a.box.y1, a.box.x2, a.box.y2] == pytest.approx(b["box"], abs=1e-3)
    channel.close()
