"""float16 models in vigil's engine, against ONNX Runtime in the same run.

The shared fp32 YOLOv8n and YOLOv5n are converted to float16 here, in a
temporary directory (never in the repository): every float32 initializer
and Constant becomes float16 (except Resize's roi and scales, which ONNX
requires in float32), Casts to float become Casts to float16, and the graph
input and output become float16 - what a float16 export looks like.

vigil computes float16 models in float32 with the weights widened once and
exact rounding at the model's float16 boundaries (src/engine/graph.c).  So:

1. exactness: vigil's float16 output equals, bit for bit, the float16
   rounding of vigil's output for the float32 model holding the same
   (float16-rounded) weights on the same (float16-rounded) input;
2. ONNX Runtime: vigil's float16 output is within ONNX Runtime's own float16
   rounding of it.  ONNX Runtime rounds every intermediate tensor to float16,
   so it strays from the exact result by |ort16 - ort32|, where ort32 is ONNX
   Runtime on the float32 model with the rounded weights; vigil must be within
   that, plus one float16 step of the output, plus the engines' float32
   tolerance (1e-4 relative, 1e-3 absolute: test_engine_parity.py).
"""
import numpy as np
import pytest

from conftest import shared_path
from fp16_model import round_weights
from test_engine_parity import load_outputs, run_engine, run_ort


@pytest.mark.parametrize("model", ["yolov8n", "yolov5n"])
def test_fp16_yolo_matches_onnx_runtime(tmp_path, model):
    src = shared_path(f"models/{model}.onnx")
    x16 = np.load(shared_path(f"reference/{model}__bus__input.npy")).astype(np.float16)
    fp16, w16 = tmp_path / "fp16.onnx", tmp_path / "w16.onnx"
    round_weights(src, fp16, np.float16)
    round_weights(src, w16, np.float32)
    np.save(tmp_path / "x16.npy", x16)
    np.save(tmp_path / "x32.npy", x16.astype(np.float32))
    runs = {"vigil16": (run_engine, fp16, "x16.npy"), "ort16": (run_ort, fp16, "x16.npy"),
            "vigil32": (run_engine, w16, "x32.npy"), "ort32": (run_ort, w16, "x32.npy")}
    out = {}
    for name, (run, path, x) in runs.items():
        run(path, [tmp_path / x], tmp_path / name)
        out[name] = load_outputs(tmp_path / name, ["output0"])["output0"]
    v16, o16 = out["vigil16"], out["ort16"]
    assert v16.dtype == np.float16 and o16.dtype == np.float16 and v16.shape == o16.shape

    # 1. the float16 boundary rounds exactly once
    exact = out["vigil32"].astype(np.float16)
    assert np.array_equal(v16, exact), f"{int((v16 != exact).sum())} values differ from the rounded fp32 run"

    # 2. within ONNX Runtime's own float16 rounding
    o16w, o32 = o16.astype(np.float64), out["ort32"].astype(np.float64)
    step = np.spacing(np.abs(o16)).astype(np.float64)
    bound = np.abs(o16w - o32) + step + 1e-4 * np.abs(o32) + 1e-3
    err = np.abs(v16.astype(np.float64) - o16w)
    worst = np.unravel_index(np.argmax(err / bound), err.shape)
    print(f"{model} fp16: max |vigil - ort16| {err.max():.3g}, worst at {worst} {err[worst] / bound[worst]:.2f} "
          f"of the bound; max |ort16 - ort32| {np.abs(o16w - o32).max():.3g}")
    assert (err <= bound).all(), (f"{int((err > bound).sum())} values out of bound; worst at {worst}: vigil "
                                  f"{v16[worst]!r} ort16 {o16[worst]!r} ort32 {o32[worst]!r}")
