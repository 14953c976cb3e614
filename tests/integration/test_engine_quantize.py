"""`vigil models quantize` on the shared YOLO models, and what runs them.

The shared fp32 YOLOv8n and YOLOv5n are quantized here, in a temporary
directory, calibrated on bus.jpg and zidane.jpg (QDQ: per-channel int8
weights, uint8 activations; the detection head's last convolutions stay
float32).  Checked in the same run:

1. the file is a valid ONNX model with QuantizeLinear/DequantizeLinear around
   the convolutions, and the model's metadata (class names) survives;
2. vigil's output equals ONNX Runtime's on the int8 file (the engines' float32
   tolerance of test_engine_parity.py; measured: 1.8e-4 on YOLOv8n, 2.3e-4 on
   YOLOv5n on a VNNI CPU, where the convolutions requantize in float32 and an
   activation is now and then one step from ONNX Runtime's; 1e-7 and 9e-5 on
   XNNPACK's path);
3. detections on bus.jpg and zidane.jpg from the int8 model agree with the
   fp32 model's: every fp32 detection scoring >= 0.5 has an int8 one of the
   same class with IoU >= 0.9 and a score within 0.1.
"""
import json

import numpy as np
import onnx
import pytest

from conftest import make_affine_onnx, run_vigil, shared_path
from test_engine_parity import assert_close, load_outputs, run_engine, run_ort


def quantize(tmp_path, model):
    src = shared_path(f"models/{model}.onnx")
    images = [shared_path(f"images/{name}.jpg") for name in ("bus", "zidane")]
    out = tmp_path / f"{model}_int8.onnx"
    res = run_vigil("models", "quantize", src, out, "--calibrate", *images, timeout=300)
    assert res.returncode == 0, res.stderr
    return src, out


def detect(model, image):
    res = run_vigil("detect", "--model", model, "--json", "--threads", 2, image, timeout=300)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.splitlines()[0])["detections"]


def iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@pytest.mark.parametrize("model", ["yolov8n", "yolov5n"])
def test_quantized_yolo(tmp_path, model):
    fp32, int8 = quantize(tmp_path, model)
    m = onnx.load(int8)
    onnx.checker.check_model(m)
    ops = [n.op_type for n in m.graph.node]
    assert ops.count("QuantizeLinear") > 40 and ops.count("DequantizeLinear") > 80, ops
    assert {p.key: p.value for p in m.metadata_props}.get("names"), "metadata lost"

    x = shared_path(f"reference/{model}__bus__input.npy")
    run_engine(int8, [x], tmp_path / "vigil")
    run_engine(int8, [x], tmp_path / "vigil_portable", portable=True)  # XNNPACK int8, as on ARM
    run_ort(int8, [x], tmp_path / "ort")
    want = load_outputs(tmp_path / "ort", ["output0"])["output0"]
    for run in ("vigil", "vigil_portable"):
        got = load_outputs(tmp_path / run, ["output0"])["output0"]
        print(f"{model} int8 ({run}): max |vigil - ort| {np.abs(got - want).max():.3g}")
        assert_close(got, want, f"{model} int8 ({run})")

    for image in ("bus", "zidane"):
        path = shared_path(f"images/{image}.jpg")
        ref, q = detect(fp32, path), detect(int8, path)
        print(f"{model} {image}: fp32 vs int8")
        for d in ref:
            same = [e for e in q if e["class_id"] == d["class_id"]]
            best = max(same, key=lambda e: iou(d["box"], e["box"]), default=None)
            overlap = iou(d["box"], best["box"]) if best else 0.0
            print(f"  {d['class_name']:8s} {d['score']:.3f} {best['score'] if best else 0:.3f} IoU {overlap:.3f}")
            if d["score"] >= 0.5:
                assert best and overlap >= 0.9 and abs(best["score"] - d["score"]) <= 0.1, \
                    f"{model} {image}: {d} has no int8 match (best {best}, IoU {overlap:.3f})"


def test_quantize_refuses_clearly(tmp_path):
    bus = shared_path("images/bus.jpg")
    affine = tmp_path / "affine.onnx"
    make_affine_onnx(affine)
    out = tmp_path / "out.onnx"
    res = run_vigil("models", "quantize", affine, out, "--calibrate", bus)
    assert res.returncode == 1 and "image input" in res.stderr, res.stderr  # [batch, 4]: not an image model
    res = run_vigil("models", "quantize", shared_path("models/yolov8n.onnx"), out, "--calibrate",
                    tmp_path / "missing.jpg")
    assert res.returncode == 1 and "missing.jpg" in res.stderr, res.stderr
    res = run_vigil("models", "quantize", affine, out)
    assert res.returncode == 2 and "usage" in res.stderr, res.stderr
    assert not out.exists()
