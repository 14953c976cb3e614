"""test_nanodet.py - `vigil detect --family nanodet` on NanoDet's two ONNX layouts.

The models are built here with the onnx package (Debian python3-onnx) so that
their outputs are known tensors encoding chosen boxes:

* the original export (NanoDet before Plus): six outputs, for strides 8, 16 and
  32 the sigmoid class scores cls_pred_stride_S [1, cells, nc] and the
  distributions dis_pred_stride_S [1, cells, 4 (reg_max + 1)], written in the
  interleaved order (cls 8, dis 8, cls 16, ...) or grouped (the three scores,
  then the three distributions, as the original tools/export.py gave them);
  grid points at cell centres ((x + 0.5) * stride);
* NanoDet-Plus: one output [1, cells over strides 8/16/32/64, nc + 4 (reg_max
  + 1)]; grid points at cell corners (x * stride).

Each output is a constant plus 0 * mean(input), so it depends on the input and
is computed at run time.  Three "probe" scores are the input's per-channel
means (0.5 + mean / 4): on a one-colour image they show that vigil feeds the
network NanoDet's own pre-processing (BGR, mean [103.53, 116.28, 123.675],
std [57.375, 57.12, 58.395]).  The image is 300x100 for a 96x64 input, so
NanoDet's stretch (no letterbox) maps x and y back by different factors.
Expected boxes are decoded here as NanoDet's code does: softmax over the
reg_max + 1 bins, expectation x stride, distances from the grid point,
clipped to the input, then scaled back to the image.
"""
import concurrent.futures
import json
import math
import os
import struct
import subprocess
import zlib

import numpy as np
import pytest
import requests

from conftest import metric_value, ready_daemon, vigil_binary

onnx = pytest.importorskip("onnx", reason="the onnx Python package (Debian python3-onnx) is not installed")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

IN_W, IN_H = 96, 64
IMG_W, IMG_H = 300, 100
NC, BINS = 4, 8  # reg_max 7, the default
COLOUR = (150, 130, 200)  # R, G, B of the test image
MEAN_BGR = (103.53, 116.28, 123.675)
STD_BGR = (57.375, 57.12, 58.395)
PEAK = 30.0  # logit of a chosen bin (the others 0): the expectation is the bin

# (stride, gx, gy, class, score, bins left/top/right/bottom); a score of
# ("probe", c) is 0.5 + (channel c of the network input) / 4; a bin given as a
# pair is split evenly between two bins (expectation: their mean).
BOXES = [
    (8, 2, 2, 0, 0.9, (1, 1, 2, 1)),
    (16, 4, 1, 1, 0.8, (1, 0, 1, (1, 3))),
    (32, 2, 1, 2, 0.7, (1, 1, 1, 1)),  # past the right and bottom edges: clipped
    (8, 10, 0, 3, ("probe", 0), (1, 1, 1, 1)),  # blue
    (8, 10, 4, 3, ("probe", 1), (1, 1, 1, 1)),  # green
    (8, 0, 7, 3, ("probe", 2), (1, 1, 1, 1)),  # red
]
PLUS_ONLY = [(64, 1, 0, 1, 0.6, (1, 0, 0, 1))]


def grid(stride):
    return math.ceil(IN_W / stride), math.ceil(IN_H / stride)


def probe_score(channel, colour=COLOUR):
    bgr = (colour[2], colour[1], colour[0])
    return 0.5 + (bgr[channel] - MEAN_BGR[channel]) / STD_BGR[channel] / 4


def level_tensors(strides, boxes):
    """Per stride: scores [cells, NC], distributions [cells, 4 BINS] and the
    probe placements [3, cells * NC] (1 where channel c's score goes)."""
    levels = {}
    for s in strides:
        gw, gh = grid(s)
        levels[s] = (np.zeros((gw * gh, NC), np.float32), np.zeros((gw * gh, 4 * BINS), np.float32),
                     np.zeros((3, gw * gh * NC), np.float32))
    for s, gx, gy, cls, score, bins in boxes:
        scores, dists, probes = levels[s]
        row = gy * grid(s)[0] + gx
        if isinstance(score, tuple):
            probes[score[1], row * NC + cls] = 1
        else:
            scores[row, cls] = score
        for side, b in enumerate(bins):
            for k in b if isinstance(b, tuple) else (b,):
                dists[row, side * BINS + k] = PEAK
    return levels


def expected(boxes, offset, colour=COLOUR):
    """NanoDet's decode of the boxes, in original-image pixels."""
    out = []
    levels = level_tensors(sorted({b[0] for b in boxes}), boxes)
    for s, gx, gy, cls, score, _ in boxes:
        dists = levels[s][1][gy * grid(s)[0] + gx].reshape(4, BINS).astype(np.float64)
        soft = np.exp(dists - dists.max(axis=1, keepdims=True))
        d = (soft / soft.sum(axis=1, keepdims=True) * np.arange(BINS)).sum(axis=1) * s
        cx, cy = (gx + offset) * s, (gy + offset) * s
        x1, y1 = max(cx - d[0], 0), max(cy - d[1], 0)
        x2, y2 = min(cx + d[2], IN_W), min(cy + d[3], IN_H)
        sx, sy = IMG_W / IN_W, IMG_H / IN_H
        value = probe_score(score[1], colour) if isinstance(score, tuple) else score
        out.append({"class_id": cls, "score": value, "box": [x1 * sx, y1 * sy, x2 * sx, y2 * sy]})
    return out


class Graph:
    """A graph whose outputs are constants plus input-dependent terms."""

    def __init__(self):
        self.nodes, self.inits, self.outputs, self.n = [], [], [], 0
        self.const("zero_c", np.zeros(1, np.float32))
        self.const("quarter", np.full(1, 0.25, np.float32))
        self.const("half", np.full(1, 0.5, np.float32))
        self.node("ReduceMean", ["images"], "mean_all", axes=[1, 2, 3], keepdims=1)  # [N, 1, 1, 1]
        self.node("Reshape", ["mean_all", self.const("to3", np.array([-1, 1, 1], np.int64))], "mean3")
        self.node("Mul", ["mean3", "zero_c"], "zero")  # [N, 1, 1]
        self.node("ReduceMean", ["images"], "chan", axes=[2, 3], keepdims=0)  # [N, 3]
        self.node("Mul", ["chan", "quarter"], "chan_q")
        self.node("Add", ["chan_q", "half"], "probe")

    def const(self, name, array):
        self.inits.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op, inputs, output, **attrs):
        self.n += 1
        self.nodes.append(helper.make_node(op, inputs, [output], name=f"{op}_{self.n}", **attrs))
        return output

    def output(self, name, base, probes=None):
        """Output `name` [N, rows, cols] = base [1, rows, cols] (+ probe @ probes, reshaped)."""
        term = self.const(f"{name}_base", base)
        if probes is not None and probes.any():
            flat = self.node("MatMul", ["probe", self.const(f"{name}_probes", probes)], f"{name}_flat")
            shape = self.const(f"{name}_shape", np.array([-1, *base.shape[1:]], np.int64))
            placed = self.node("Reshape", [flat, shape], f"{name}_placed")
            term = self.node("Add", [term, placed], f"{name}_sum")
        self.node("Add", [term, "zero"], name)
        self.outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", *base.shape[1:]]))

    def save(self, path):
        image = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, IN_H, IN_W])
        graph = helper.make_graph(self.nodes, "nanodet_test", [image], self.outputs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="vigil-test")
        model.ir_version = 8
        onnx.checker.check_model(model)
        onnx.save(model, str(path))


def original_model(path, order):
    levels = level_tensors((8, 16, 32), BOXES)
    g = Graph()
    names = {("cls", s): f"cls_pred_stride_{s}" for s in (8, 16, 32)}
    names.update({("dis", s): f"dis_pred_stride_{s}" for s in (8, 16, 32)})
    seq = ([(k, s) for s in (8, 16, 32) for k in ("cls", "dis")] if order == "interleaved"
           else [(k, s) for k in ("cls", "dis") for s in (8, 16, 32)])
    for kind, s in seq:
        scores, dists, probes = levels[s]
        if kind == "cls":
            g.output(names[kind, s], scores[None], probes)
        else:
            g.output(names[kind, s], dists[None])
    g.save(path)


def plus_model(path):
    strides = (8, 16, 32, 64)
    levels = level_tensors(strides, BOXES + PLUS_ONLY)
    rows = np.concatenate([np.concatenate([levels[s][0], levels[s][1]], axis=1) for s in strides])
    cols = NC + 4 * BINS
    probes = np.zeros((3, rows.shape[0], cols), np.float32)
    first = 0
    for s in strides:  # scores are the first NC columns of each row
        cells = levels[s][0].shape[0]
        probes[:, first:first + cells, :NC] = levels[s][2].reshape(3, cells, NC)
        first += cells
    g = Graph()
    g.output("output", rows[None], probes.reshape(3, -1))
    g.save(path)


def write_png(path, width, height, rgb):
    """A one-colour 8-bit RGB PNG, written by hand (no Pillow here)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def detect(model, image, *flags):
    env = dict(os.environ)
    env.pop("VIGIL_MODEL", None)
    proc = subprocess.run([vigil_binary(), "detect", "--json", "--model", str(model), *flags, str(image)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return json.loads(proc.stdout)


def check(result, want):
    assert (result["width"], result["height"]) == (IMG_W, IMG_H)
    got = sorted(result["detections"], key=lambda d: (d["class_id"], d["box"]))
    want = sorted(want, key=lambda d: (d["class_id"], d["box"]))
    assert len(got) == len(want), f"got {got}, want {want}"
    for g, w in zip(got, want):
        assert g["class_id"] == w["class_id"], (g, w)
        # probe scores go through a mean over 6144 pixels in float32
        assert abs(g["score"] - w["score"]) < 1e-3, (g, w)
        for a, b in zip(g["box"], w["box"]):
            assert abs(a - b) < 0.02, (g, w)


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    path = tmp_path_factory.mktemp("nanodet") / "colour.png"
    write_png(path, IMG_W, IMG_H, COLOUR)
    return path


@pytest.mark.parametrize("order", ["interleaved", "grouped"])
@pytest.mark.parametrize("family", [["--family", "nanodet"], []], ids=["nanodet", "auto"])
def test_original_six_output_export(tmp_path, image, order, family):
    model = tmp_path / f"nanodet_{order}.onnx"
    original_model(model, order)
    check(detect(model, image, "--conf", "0.3", *family), expected(BOXES, offset=0.5))


@pytest.mark.parametrize("family", [["--family", "nanodet"], []], ids=["nanodet", "auto"])
def test_plus_single_output(tmp_path, image, family):
    model = tmp_path / "nanodet_plus.onnx"
    plus_model(model)
    check(detect(model, image, "--conf", "0.3", *family), expected(BOXES + PLUS_ONLY, offset=0.0))


def test_server_batches_six_output_models(tmp_path):
    """In the server, concurrent requests share model runs (the dynamic
    batcher): each image of a batch gets its own slice of all six outputs,
    which the probe scores of images of different colours show."""
    models = tmp_path / "models"
    (models / "nano" / "1").mkdir(parents=True)
    original_model(models / "nano" / "1" / "model.onnx", "interleaved")
    (models / "nano" / "config.yaml").write_text(
        "max_batch_size: 4\ndynamic_batching:\n  max_queue_delay_us: 300000\n")
    colours = [(150, 130, 200), (180, 140, 120), (200, 160, 230), (130, 125, 160)]
    bodies = []
    for k, colour in enumerate(colours):
        write_png(tmp_path / f"{k}.png", IMG_W, IMG_H, colour)
        bodies.append((tmp_path / f"{k}.png").read_bytes())
    d = ready_daemon("--models", models)

    def post(k):
        r = requests.post(f"{d.url}/api/v1/detect?model=nano&conf=0.3", data=bodies[k], timeout=60,
                          headers={"Content-Type": "image/png"})
        assert r.status_code == 200, r.text
        return r.json()
    try:
        with concurrent.futures.ThreadPoolExecutor(len(colours)) as pool:
            results = list(pool.map(post, range(len(colours))))
        for result, colour in zip(results, colours):
            check(result, expected(BOXES, offset=0.5, colour=colour))
        text = requests.get(d.url + "/metrics", timeout=5).text
        assert metric_value(text, "vigil_batch_size_sum", model="nano") == len(colours)
        assert metric_value(text, "vigil_batch_size_count", model="nano") < len(colours), "no batch formed"
    finally:
        assert d.stop() == 0


def test_probes_tell_the_preprocessing_apart():
    """The probe scores check the pre-processing only if another one gives
    other scores (by more than check()'s 1e-3): RGB order, or Ultralytics'
    plain / 255."""
    bgr = [probe_score(c) for c in range(3)]
    rgb = [0.5 + (COLOUR[c] - MEAN_BGR[c]) / STD_BGR[c] / 4 for c in range(3)]
    plain = [0.5 + COLOUR[2 - c] / 255 / 4 for c in range(3)]
    assert all(0.3 < s < 1 for s in bgr)  # above the tests' --conf
    assert abs(bgr[0] - rgb[0]) > 0.02 and abs(bgr[2] - rgb[2]) > 0.02
    assert all(abs(a - b) > 0.02 for a, b in zip(bgr, plain))
