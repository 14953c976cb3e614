"""test_detect.py - `vigil detect` end to end on the real YOLO models.

Runs the built binary (env VIGIL_BINARY) on ../shared/images with
../shared/models (env VIGIL_SHARED_DIR) and compares its JSON with what ONNX
Runtime + Ultralytics-style post-processing produced
(../shared/reference/<model>__<image>.json): same number of detections and
classes, scores within 0.01, box corners within 2 pixels.  Also checks the
command's error handling, JSON Lines over several images, --out rendering
and the --timing split.  Skips only when ../shared is absent.
"""
import json
import os
import pathlib
import subprocess

import pytest

from conftest import shared_dir, vigil_binary

SHARED = shared_dir()
MODELS = ["yolov8n", "yolov5n"]
IMAGES = ["bus", "zidane"]

pytestmark = pytest.mark.skipif(
    not (SHARED / "models" / "yolov8n.onnx").exists(),
    reason=f"shared test data not found at {SHARED} (set VIGIL_SHARED_DIR)",
)


def run_detect(*args, env=None, timeout=600):
    full_env = dict(os.environ)
    full_env.pop("VIGIL_MODEL", None)
    if env:
        full_env.update(env)
    return subprocess.run([vigil_binary(), "detect", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=full_env)


def json_lines(stdout):
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def match(reference, got):
    """Pairs each reference detection with the closest unused one of its class."""
    unused = list(got)
    pairs = []
    for ref in reference:
        same = [d for d in unused if d["class_id"] == ref["class_id"]]
        assert same, f"no detection of class {ref['class_name']} left to match {ref}"
        best = min(same, key=lambda d: max(abs(a - b) for a, b in zip(d["box"], ref["box_xyxy"])))
        unused.remove(best)
        pairs.append((ref, best))
    return pairs


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("image", IMAGES)
def test_matches_reference(model, image):
    ref = json.loads((SHARED / "reference" / f"{model}__{image}.json").read_text())
    proc = run_detect("--json", "--model", SHARED / "models" / f"{model}.onnx", "--conf", "0.25", "--iou", "0.45",
                      SHARED / "images" / f"{image}.jpg")
    assert proc.returncode == 0, proc.stderr
    out = json_lines(proc.stdout)
    assert len(out) == 1
    result = out[0]
    assert result["image"].endswith(f"{image}.jpg")
    assert [result["height"], result["width"]] == ref["image_hw"]
    dets = result["detections"]
    assert len(dets) == len(ref["detections"]), (dets, ref["detections"])
    assert sorted(d["class_id"] for d in dets) == sorted(d["class_id"] for d in ref["detections"])
    for want, got in match(ref["detections"], dets):
        assert got["class_name"] == want["class_name"]
        assert abs(got["score"] - want["score"]) <= 0.01, (want, got)
        for a, b in zip(got["box"], want["box_xyxy"]):
            assert abs(a - b) <= 2.0, (want, got)
    for key in ("decode", "letterbox", "inference", "postprocess", "total"):
        assert result["timing_ms"][key] >= 0


def test_several_images_are_json_lines_and_render(tmp_path):
    out_dir = tmp_path / "annotated"
    proc = run_detect("--json", "--model", SHARED / "models" / "yolov8n.onnx", "--out", out_dir,
                      "--classes", "person, traffic light", SHARED / "images")
    assert proc.returncode == 0, proc.stderr
    results = json_lines(proc.stdout)
    assert [pathlib.Path(r["image"]).name for r in results] == ["bus.jpg", "zidane.jpg"]
    for r in results:
        assert r["detections"], r
        assert all(d["class_name"] == "person" for d in r["detections"])
    for name in ("bus.jpg", "zidane.jpg"):
        data = (out_dir / name).read_bytes()
        assert data[:3] == b"\xff\xd8\xff" and len(data) > 10000


def test_table_output_and_png_render(tmp_path):
    out = tmp_path / "bus_boxes.png"
    proc = run_detect("--model", SHARED / "models" / "yolov8n.onnx", "--timing", "--out", out,
                      SHARED / "images" / "bus.jpg")
    assert proc.returncode == 0, proc.stderr
    assert "bus.jpg (810x1080): 5 detections" in proc.stdout
    assert "person" in proc.stdout and "bus" in proc.stdout
    assert "inference" in proc.stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_timing_split_is_reported_per_stage():
    """--timing / timing_ms gives every stage of the pipeline.  The 10% budget
    of issue 5 is measured by bench/detect_timing.py (make bench), not asserted
    here: tests make no timing assertions."""
    bus = SHARED / "images" / "bus.jpg"
    proc = run_detect("--json", "--model", SHARED / "models" / "yolov8n.onnx", bus, bus)
    assert proc.returncode == 0, proc.stderr
    for run in json_lines(proc.stdout):
        for stage in ("decode", "letterbox", "inference", "postprocess"):
            assert run["timing_ms"][stage] > 0, (stage, run["timing_ms"])


def test_errors_are_clear(tmp_path):
    model = SHARED / "models" / "yolov8n.onnx"
    proc = run_detect(SHARED / "images" / "bus.jpg")
    assert proc.returncode == 2 and "no model: pass --model" in proc.stderr
    proc = run_detect("--model", model)
    assert proc.returncode == 2 and "no images" in proc.stderr
    proc = run_detect("--model", model, "--conf", "abc", SHARED / "images" / "bus.jpg")
    assert proc.returncode == 2 and "--conf" in proc.stderr
    proc = run_detect("--model", model, "--classes", "unicorn", SHARED / "images" / "bus.jpg")
    assert proc.returncode == 2 and "unknown class 'unicorn'" in proc.stderr
    proc = run_detect("--help")
    assert proc.returncode == 0 and "usage: vigil detect" in proc.stdout

    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes((SHARED / "images" / "bus.jpg").read_bytes()[:5000])
    text = tmp_path / "notes.png"
    text.write_bytes(b"just some text, not a picture")
    proc = run_detect("--json", "--model", model, empty, cut, text, SHARED / "images" / "bus.jpg")
    assert proc.returncode == 1
    results = json_lines(proc.stdout)
    assert len(results) == 4
    assert "empty" in results[0]["error"]
    assert "truncated" in results[1]["error"] or "corrupt" in results[1]["error"]
    assert "not a JPEG or PNG" in results[2]["error"]
    assert len(results[3]["detections"]) == 5  # a bad file does not stop the others
    assert "cut.jpg" in proc.stderr

    proc = run_detect("--model", tmp_path / "missing.onnx", SHARED / "images" / "bus.jpg")
    assert proc.returncode == 1 and "missing.onnx" in proc.stderr


def test_model_from_environment():
    proc = run_detect("--json", SHARED / "images" / "zidane.jpg",
                      env={"VIGIL_MODEL": str(SHARED / "models" / "yolov8n.onnx")})
    assert proc.returncode == 0, proc.stderr
    assert json_lines(proc.stdout)[0]["detections"]
