"""test_jpeg_exact.py - a JPEG gives the detections of the PNG of its pixels.

Ultralytics decodes a photo at full size and then resizes it; vigil must do
the same, whatever the photo's size, so that a JPEG and a PNG holding the
same decoded pixels give the same detections (every detection: same count
and classes, scores within 0.005, box corners within 1 px).  Before issue 16
a JPEG at least three times the network input was decoded at 1/2..1/8 scale
by libjpeg's DCT scaling, which moved scores by up to 0.03; that is now an
opt-in (`vigil detect --jpeg-reduced-scale`, `jpeg_reduced_scale: true` in a
model's config.yaml), checked here to really change the decode.

The JPEGs are made here with Pillow from the shared images (upscaled with
Lanczos to 640x480 .. 3840x2160; 4:2:0, 4:4:4 and grey; baseline and
progressive; one EXIF-rotated) and their PNGs from Pillow's decode of them.
Pillow decodes with the same libjpeg-turbo as vigil, and the first test
checks that vigil's decoded pixels equal Pillow's, so the PNG really holds
the JPEG's pixels.  Every case runs through `vigil detect` (one process for
all images); a subset, every size and kind among them, through one server's
POST /api/v1/detect, its batched path included.
"""
import concurrent.futures
import json
import os

import numpy as np
import pytest
import requests

from conftest import ready_daemon, run_vigil, shared_path

PIL = pytest.importorskip("PIL", reason="Pillow (Debian python3-pil) is needed to make the test images")
from PIL import Image  # noqa: E402  (after the skip)

SCORE_TOL = 0.005
BOX_TOL = 1.0

# name: (shared image, width, height, save options); sizes are as displayed
# (the EXIF-rotated one stores 1440x2560 pixels).
CASES = {
    "bus_640x480_420": ("bus", 640, 480, dict(subsampling=2)),
    "bus_1920x1080_444": ("bus", 1920, 1080, dict(subsampling=0)),
    "zidane_1920x1080_420_progressive": ("zidane", 1920, 1080, dict(subsampling=2, progressive=True)),
    "zidane_2560x1440_420": ("zidane", 2560, 1440, dict(subsampling=2)),
    "zidane_2560x1440_grey": ("zidane", 2560, 1440, dict(grey=True)),
    "zidane_2560x1440_exif6": ("zidane", 2560, 1440, dict(subsampling=2, orientation=6)),
    "zidane_3840x2160_420": ("zidane", 3840, 2160, dict(subsampling=2)),
    "bus_3840x2160_444_progressive": ("bus", 3840, 2160, dict(subsampling=0, progressive=True)),
    "zidane_3840x2160_grey_progressive": ("zidane", 3840, 2160, dict(grey=True, progressive=True)),
}
# Through the server: every size and every kind at least once.
SERVER_CASES = ["bus_640x480_420", "bus_1920x1080_444", "zidane_2560x1440_grey", "zidane_2560x1440_exif6",
                "bus_3840x2160_444_progressive"]
# Batched together through a dynamic-batching model.
BATCH_CASES = ["zidane_1920x1080_420_progressive", "zidane_2560x1440_420", "zidane_3840x2160_420"]
BIG = "zidane_3840x2160_420"  # the reduced-scale opt-in is checked on it (decoded at 1/4)


def make_jpeg(src, width, height, path, grey=False, orientation=1, **save):
    """Upscales the shared image with Lanczos and writes a quality-95 JPEG.
    With orientation 6 the pixels are stored turned a quarter anticlockwise,
    so that the viewer's clockwise turn shows the photo upright."""
    img = Image.open(src).convert("RGB").resize((width, height), Image.LANCZOS)
    if grey:
        img = img.convert("L")
    if orientation != 1:
        img = img.transpose(Image.Transpose.ROTATE_90)
        exif = Image.Exif()
        exif[0x0112] = orientation
        save["exif"] = exif.tobytes()
    img.save(path, quality=95, **save)


def pillow_pixels(path):
    """The JPEG's decoded pixels as Pillow gives them, EXIF orientation applied."""
    from PIL import ImageOps
    img = ImageOps.exif_transpose(Image.open(path))
    return np.asarray(img.convert("RGB") if img.mode not in ("RGB", "L") else img)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """{case: (jpeg path, png path)}, made once for the module."""
    d = tmp_path_factory.mktemp("jpeg_exact")
    out = {}
    for name, (src, w, h, opts) in CASES.items():
        jpg, png = d / f"{name}.jpg", d / f"{name}_pixels.png"
        make_jpeg(shared_path(f"images/{src}.jpg"), w, h, jpg, **opts)
        Image.fromarray(pillow_pixels(jpg)).save(png, compress_level=1)
        out[name] = (jpg, png)
    return out


def model():
    return shared_path("models/yolov8n.onnx")


def cli_detect(paths, *flags):
    """One `vigil detect --json` over paths: {path name: result object}."""
    proc = run_vigil("detect", "--json", "--threads", "2", "--model", model(), *flags, *paths, timeout=600)
    assert proc.returncode == 0, proc.stderr
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert len(results) == len(paths), proc.stdout
    return {os.path.basename(str(p)): r for p, r in zip(paths, results)}


def corner_delta(a, b):
    return max(abs(x - y) for x, y in zip(a["box"], b["box"]))


def compare(case, got, want, score_tol=SCORE_TOL, box_tol=BOX_TOL):
    """Every detection of want has one in got: same class, close score and box."""
    assert (got["width"], got["height"]) == (want["width"], want["height"]), case
    g, w = got["detections"], want["detections"]
    assert len(g) == len(w), f"{case}: {len(g)} detections against {len(w)}: {g} vs {w}"
    unmatched = list(g)
    for d in w:
        same = [x for x in unmatched if x["class_id"] == d["class_id"]]
        assert same, f"{case}: no {d['class_name']} in {g}"
        best = min(same, key=lambda x: corner_delta(x, d))
        unmatched.remove(best)
        assert abs(best["score"] - d["score"]) <= score_tol, f"{case}: {d['class_name']} {best['score']} vs {d['score']}"
        assert corner_delta(best, d) <= box_tol, f"{case}: {d['class_name']} {best['box']} vs {d['box']}"


def test_cli_jpeg_equals_png_of_its_pixels(images, tmp_path):
    # vigil's own decode equals Pillow's (--conf 1 draws nothing: --out is the
    # decoded image), so the PNGs hold the JPEGs' pixels.
    for name in ["bus_640x480_420", "zidane_2560x1440_exif6", "zidane_2560x1440_grey"]:
        out = tmp_path / f"{name}_vigil.png"
        proc = run_vigil("detect", "--conf", "1", "--threads", "2", "--model", model(), "--out", out,
                         images[name][0])
        assert proc.returncode == 0, proc.stderr
        mine = np.asarray(Image.open(out).convert("RGB"))
        theirs = np.asarray(Image.open(images[name][1]).convert("RGB"))
        assert mine.shape == theirs.shape and np.array_equal(mine, theirs), f"{name}: vigil decodes other pixels"
    paths = [p for pair in images.values() for p in pair]
    got = cli_detect(paths)
    for name, (jpg, png) in images.items():
        assert got[png.name]["detections"], f"{name}: nothing detected, a vacuous comparison"
        compare(name, got[jpg.name], got[png.name])


def test_cli_jpeg_reduced_scale_is_opt_in(images):
    """--jpeg-reduced-scale decodes the 4K JPEG at reduced scale: another
    answer than the exact one, yet close to it."""
    jpg = images[BIG][0]
    exact = cli_detect([jpg])[jpg.name]
    reduced = cli_detect([jpg], "--jpeg-reduced-scale")[jpg.name]
    assert reduced["detections"] != exact["detections"], "the flag changed nothing"
    compare(BIG, reduced, exact, score_tol=0.05, box_tol=0.01 * 3840)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server: yolov8n as shipped, the same file with the reduced-scale
    opt-in in its config.yaml, and the batch-dimension export with dynamic
    batching (the server's batched path decodes on its own)."""
    models = tmp_path_factory.mktemp("models")
    plain = model()
    batched = shared_path("models/yolov8n_dynbatch.onnx")
    for name, onnx, config in [
        ("yolov8n", plain, None),
        ("yolov8n_reduced", plain, "task: detect\njpeg_reduced_scale: true\n"),
        ("yolov8n_batch", batched, "task: detect\nmax_batch_size: 4\ndynamic_batching:\n"
                                   "  max_queue_delay_us: 2000000\n  preferred_batch_sizes: [3]\n"),
    ]:
        (models / name / "1").mkdir(parents=True)
        os.symlink(onnx, models / name / "1" / "model.onnx")  # read in place, never copied
        if config:
            (models / name / "config.yaml").write_text(config)
    d = ready_daemon("--models", models, "--threads", "2", timeout=120)
    yield d
    d.stop()


def served(server, path, model_name="yolov8n"):
    r = requests.post(f"{server.url}/api/v1/detect", params={"model": model_name}, data=path.read_bytes(),
                      timeout=300)
    assert r.status_code == 200, r.text
    return r.json()


def test_server_jpeg_equals_png_of_its_pixels(images, server):
    for name in SERVER_CASES:
        jpg, png = images[name]
        want = served(server, png)
        assert want["detections"], f"{name}: nothing detected, a vacuous comparison"
        compare(name, served(server, jpg), want)


def test_server_batched_jpeg_equals_png_of_its_pixels(images, server):
    """Three JPEGs sent at once to the dynamic-batching model share one run
    (the batcher waits up to 2 s for a batch of 3); each answer equals its
    PNG's, sent alone to the plain model."""
    from conftest import metric_value
    with concurrent.futures.ThreadPoolExecutor(len(BATCH_CASES)) as pool:
        got = list(pool.map(lambda n: served(server, images[n][0], "yolov8n_batch"), BATCH_CASES))
    text = requests.get(server.url + "/metrics", timeout=10).text
    assert metric_value(text, "vigil_batch_size_sum", model="yolov8n_batch") == len(BATCH_CASES)
    assert metric_value(text, "vigil_batch_size_count", model="yolov8n_batch") < len(BATCH_CASES), \
        "no two JPEGs shared a model run: the batched path went untested"
    for name, g in zip(BATCH_CASES, got):
        want = served(server, images[name][1])
        assert want["detections"], f"{name}: nothing detected, a vacuous comparison"
        compare(name, g, want)


def test_server_model_config_opts_in_to_reduced_scale(images, server):
    """jpeg_reduced_scale: true in a model's config.yaml: the same answer as
    `vigil detect --jpeg-reduced-scale`, another than the exact one."""
    jpg = images[BIG][0]
    exact = served(server, jpg)
    reduced = served(server, jpg, "yolov8n_reduced")
    assert reduced["detections"] != exact["detections"], "the config key changed nothing"
    compare(BIG, reduced, exact, score_tol=0.05, box_tol=0.01 * 3840)
    cli = cli_detect([jpg], "--jpeg-reduced-scale")[jpg.name]
    compare(BIG, reduced, cli)
