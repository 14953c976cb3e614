"""`vigil models quantize` on the shared YOLO models, and what runs them.

The shared fp32 YOLOv8n and YOLOv5n are quantized here, in a temporary
directory, calibrated on bus.jpg and zidane.jpg (QDQ: per-channel int8
weights, uint8 activations over the ranges of least squared error, biases
corrected for the weights' rounding; the detection head's last convolutions
stay float32).  Checked in the same run:

1. the file is a valid ONNX model with QuantizeLinear/DequantizeLinear around
   the convolutions, and the model's metadata (class names) survives;
2. vigil computes the int8 file as ONNX Runtime does, compared code for code
   on every quantized tensor (each QuantizeLinear's output made a graph
   output), on the VNNI kernels and on XNNPACK's path: every tensor equals
   ONNX Runtime's up to the first one where some value sat on a rounding tie
   that the two engines' float32 arithmetic (their Sigmoid, the order of a
   requantization's products) broke differently; there at most a few values
   of the ~10^5-10^6 differ, by one step.  After such a flip the engines
   rightly differ by more: one changed code moves its neighbours in the next
   convolution, and so on through the network (measured on bus.jpg: a flip in
   YOLOv8n's model.4 Concat, one value of 819200, grows to differences of up
   to 2 px in confident boxes, against the int8 file's 6 px from float32), so
   the float outputs are compared only where no flip happened (then to the
   float32 tolerance of test_engine_parity.py);
3. detections on bus.jpg and zidane.jpg from the int8 model agree with the
   fp32 model's (docs/VISION.md has the table): every fp32 detection scoring
   >= 0.3 has an int8 one of the same class whose box corners are within
   BOX_PX pixels of the photo (measured: 3.5 on YOLOv8n, 8.2 on YOLOv5n;
   with the whole-range calibration of `--minmax` 14.6 and 12.1) and whose
   score is within 0.05 (0.1 below a score of 0.5; measured 0.042 and 0.098);
   the two weaker ones (0.27) are printed, not asserted: their scores sit at
   the 0.25 threshold.
4. `--minmax` still writes the earlier file (whole ranges, biases as
   rounded), and it detects worse: the default's largest box error is the
   smaller one.
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


BOX_PX = {"yolov8n": 4.0, "yolov5n": 9.0}


def with_code_outputs(model, out):
    """Writes model with every QuantizeLinear's output as a graph output too
    (the engine's fusions keep them); returns their names in graph order."""
    m = onnx.shape_inference.infer_shapes(onnx.load(model))
    info = {v.name: v for v in m.graph.value_info}
    names = [n.output[0] for n in m.graph.node if n.op_type == "QuantizeLinear" and n.output[0] in info]
    m.graph.output.extend(info[n] for n in names)
    onnx.save(m, out)
    return names


def first_flip(got, want, names, what):
    """Asserts that the codes equal up to the first tensor where they do not,
    and that there only a tie's worth differ, by one step; returns its name
    (None: all equal)."""
    for name in names:
        diff = np.abs(got[name].astype(np.int32) - want[name].astype(np.int32))
        if diff.any():
            assert diff.max() == 1 and np.count_nonzero(diff) <= max(2, diff.size // 100000), \
                f"{what}: {name}: {np.count_nonzero(diff)} of {diff.size} codes differ, by up to {diff.max()}"
            return f"{name} ({np.count_nonzero(diff)} of {diff.size})"
    return None


def box_error(a, b):
    return max(abs(x - y) for x, y in zip(a, b))


def compare_detections(model, fp32, int8, image):
    """Matches each fp32 detection to the int8 one of its class that overlaps
    it most; returns [(fp32 detection, match or None, corner error)]."""
    path = shared_path(f"images/{image}.jpg")
    ref, q = detect(fp32, path), detect(int8, path)
    pairs = []
    print(f"{model} {image}: fp32 vs int8")
    for d in ref:
        same = [e for e in q if e["class_id"] == d["class_id"]]
        best = max(same, key=lambda e: iou(d["box"], e["box"]), default=None)
        err = box_error(d["box"], best["box"]) if best else float("inf")
        print(f"  {d['class_name']:8s} {d['score']:.3f} {best['score'] if best else 0:.3f} "
              f"IoU {iou(d['box'], best['box']) if best else 0:.3f} box {err:.1f} px")
        pairs.append((d, best, err))
    return pairs


@pytest.mark.parametrize("model", ["yolov8n", "yolov5n"])
def test_quantized_yolo(tmp_path, model):
    fp32, int8 = quantize(tmp_path, model)
    m = onnx.load(int8)
    onnx.checker.check_model(m)
    ops = [n.op_type for n in m.graph.node]
    assert ops.count("QuantizeLinear") > 40 and ops.count("DequantizeLinear") > 80, ops
    assert {p.key: p.value for p in m.metadata_props}.get("names"), "metadata lost"

    x = shared_path(f"reference/{model}__bus__input.npy")
    probe = tmp_path / f"{model}_int8_codes.onnx"
    names = with_code_outputs(int8, probe)
    run_engine(probe, [x], tmp_path / "vigil")
    run_engine(probe, [x], tmp_path / "vigil_portable", portable=True)  # XNNPACK int8, as on ARM
    run_ort(probe, [x], tmp_path / "ort")
    want = load_outputs(tmp_path / "ort", names + ["output0"])
    for run in ("vigil", "vigil_portable"):
        got = load_outputs(tmp_path / run, names + ["output0"])
        flipped = first_flip(got, want, names, f"{model} int8 ({run})")
        print(f"{model} int8 ({run}): max |vigil - ort| {np.abs(got['output0'] - want['output0']).max():.3g}, "
              f"first flip {flipped}")
        if flipped is None:
            assert_close(got["output0"], want["output0"], f"{model} int8 ({run})")

    for image in ("bus", "zidane"):
        for d, best, err in compare_detections(model, fp32, int8, image):
            if d["score"] < 0.3:
                continue
            assert best, f"{model} {image}: {d} has no int8 detection of its class"
            assert err <= BOX_PX[model], f"{model} {image}: {d} vs {best}: box corners {err:.2f} px apart"
            assert abs(best["score"] - d["score"]) <= (0.05 if d["score"] >= 0.5 else 0.1), \
                f"{model} {image}: {d} vs {best}: scores"


def test_minmax_calibration(tmp_path):
    """--minmax: whole ranges and rounded biases, the less accurate file."""
    src = shared_path("models/yolov8n.onnx")
    images = [shared_path(f"images/{name}.jpg") for name in ("bus", "zidane")]
    worst = {}
    for flags in ([], ["--minmax"]):
        out = tmp_path / f"yolov8n{''.join(flags)}.onnx"
        res = run_vigil("models", "quantize", src, out, *flags, "--calibrate", *images, timeout=300)
        assert res.returncode == 0, res.stderr
        worst[bool(flags)] = max(err for d, best, err in compare_detections("yolov8n", src, out, "zidane")
                                 if d["score"] >= 0.3)
    assert worst[False] <= BOX_PX["yolov8n"] < worst[True], worst


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
