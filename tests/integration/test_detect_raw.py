"""Decoded frames in place of JPEG/PNG: REST /api/v1/detect with an
application/octet-stream body (?width=&height=&format=&stride=) and gRPC
Detect/StreamDetect with DetectRequest.raw.

Shown here: bus.jpg's pixels sent as RGB24, BGR24 and NV12 (packed and
with padded rows) give exactly the detections `vigil detect` gives on a
lossless PNG of the same pixels (for NV12: of the RGB the BT.601 limited
range conversion yields, worked out here with vigil's integer arithmetic);
every malformed geometry is a 400 / INVALID_ARGUMENT naming what is wrong
(a size that does not match says the size expected), a frame over
limits.max_image_pixels a 413 / RESOURCE_EXHAUSTED as an encoded one is;
other options (conf, classes, render) work as for an encoded image; and on
the Hailo-8 test double a raw frame's on-chip NMS detections equal the PNG
path's."""
import json
import struct
import zlib

import grpc
import numpy as np
import pytest
import requests

from conftest import ready_daemon, run_vigil, shared_path
from test_grpc import connect, generate_stubs, make_tiny_detector, rpc_error
from test_hailo import fake_env, fake_library, write_hef_models

# ---------------------------------------------------------------- pixels


def png_of(pixels):
    """A lossless RGB PNG of an h x w x 3 uint8 array."""
    h, w, _ = pixels.shape
    rows = b"".join(b"\x00" + pixels[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(rows, 1)) + chunk(b"IEND", b""))


def to_nv12(rgb):
    """RGB -> NV12 (BT.601 limited range; chroma of each 2x2 block's mean)."""
    c = rgb.astype(np.int32)
    r, g, b = c[..., 0], c[..., 1], c[..., 2]
    y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16
    blocks = c.reshape(c.shape[0] // 2, 2, c.shape[1] // 2, 2, 3).mean(axis=(1, 3))
    br, bg, bb = blocks[..., 0], blocks[..., 1], blocks[..., 2]
    u = ((-38 * br - 74 * bg + 112 * bb + 128).astype(np.int32) >> 8) + 128
    v = ((112 * br - 94 * bg - 18 * bb + 128).astype(np.int32) >> 8) + 128
    uv = np.stack([u, v], axis=-1).reshape(c.shape[0] // 2, c.shape[1])
    return np.concatenate([y, uv]).clip(0, 255).astype(np.uint8)


def nv12_to_rgb(nv12, h, w):
    """What vigil makes of an NV12 frame (src/vision/image.c: BT.601 limited
    range, 20-bit fixed point), in the same integer arithmetic."""
    y = nv12[:h].astype(np.int64)
    uv = nv12[h:].astype(np.int64).reshape(h // 2, w // 2, 2).repeat(2, axis=0).repeat(2, axis=1)
    u, v = uv[..., 0] - 128, uv[..., 1] - 128
    c = np.maximum(y - 16, 0) * 1220542
    out = [(c + 1673527 * v + (1 << 19)) >> 20, (c - 852492 * v - 409993 * u + (1 << 19)) >> 20,
           (c + 2116026 * u + (1 << 19)) >> 20]
    return np.stack(out, axis=-1).clip(0, 255).astype(np.uint8)


def pad_rows(plane, stride):
    """plane's rows (bytes) padded with 0x5a to stride bytes each."""
    flat = plane.reshape(plane.shape[0], -1)
    out = np.full((flat.shape[0], stride), 0x5A, dtype=np.uint8)
    out[:, :flat.shape[1]] = flat
    return out


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    return generate_stubs(tmp_path_factory.mktemp("stubs"))


@pytest.fixture(scope="module")
def bus():
    """bus.jpg decoded once: (RGB pixels, NV12 bytes, the RGB vigil sees in that NV12)."""
    Image = pytest.importorskip("PIL.Image")
    rgb = np.asarray(Image.open(shared_path("images/bus.jpg")).convert("RGB"))
    h, w, _ = rgb.shape
    nv12 = to_nv12(rgb)
    return rgb, nv12, nv12_to_rgb(nv12, h, w)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    models = tmp_path_factory.mktemp("models")
    make_tiny_detector(models / "tinydet" / "1" / "model.onnx")
    d = ready_daemon("--models", models, "--limits-max-image-pixels", "1000000")
    d.models = models
    yield d
    assert d.stop() == 0, d.stderr[-4000:]


@pytest.fixture(scope="module")
def yolo(server):
    """yolov8n loaded into the server (skips when the shared model is absent)."""
    model = shared_path("models/yolov8n.onnx")
    link = server.models / "yolov8n" / "1" / "model.onnx"
    if not link.exists():
        link.parent.mkdir(parents=True)
        link.symlink_to(model)
    r = requests.post(server.url + "/api/v1/models/load", json={"model": "yolov8n"}, timeout=120)
    assert r.status_code == 200, r.text
    return model


@pytest.fixture(scope="module")
def channel(server):
    ch = connect(server.grpc_port)
    yield ch
    ch.close()


def cli_detections(model, tmp_path, *images):
    """`vigil detect --json` on lossless PNGs of each image's pixels."""
    paths = []
    for i, pixels in enumerate(images):
        paths.append(tmp_path / f"frame{i}.png")
        paths[-1].write_bytes(png_of(pixels))
    proc = run_vigil("detect", "--json", "--threads", "2", "--model", model, *paths, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line)["detections"] for line in proc.stdout.splitlines()]


def post_raw(server, body, model="yolov8n", **query):
    q = "&".join(f"{k}={v}" for k, v in {"model": model, **query}.items())
    return requests.post(f"{server.url}/api/v1/detect?{q}", data=body,
                         headers={"Content-Type": "application/octet-stream"}, timeout=120)


def same_as_grpc(got, want):
    """gRPC's float32 fields against the JSON's numbers, exactly."""
    assert len(got.detections) == len(want), (got, want)
    for g, w in zip(got.detections, want):
        assert (g.class_id, g.class_name) == (w["class_id"], w["class_name"] or "")
        assert g.score == np.float32(w["score"])
        assert [g.box.x1, g.box.y1, g.box.x2, g.box.y2] == [np.float32(v) for v in w["box"]]


# ---------------------------------------------------------------- equal detections


def test_rest_and_grpc_raw_frames_equal_the_png_path(server, yolo, bus, pb, channel, tmp_path):
    rgb, nv12, nv12_rgb = bus
    h, w, _ = rgb.shape
    want_rgb, want_nv12 = cli_detections(yolo, tmp_path, rgb, nv12_rgb)
    assert [d["class_name"] for d in want_rgb].count("person") >= 3  # the photo, not an empty frame
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    stride = w * 3 + 64
    cases = [  # (body, query, what vigil detect gave on the same pixels)
        (rgb.tobytes(), {}, want_rgb),
        (rgb.tobytes(), {"format": "rgb24"}, want_rgb),
        (bgr.tobytes(), {"format": "bgr24"}, want_rgb),
        (pad_rows(rgb, stride).tobytes(), {"stride": stride}, want_rgb),  # last row padded too
        (pad_rows(bgr, stride).tobytes()[:-64], {"format": "bgr24", "stride": stride}, want_rgb),  # last row packed
        (nv12.tobytes(), {"format": "nv12"}, want_nv12),
        (pad_rows(nv12, w + 32).tobytes(), {"format": "nv12", "stride": w + 32}, want_nv12),
    ]
    for body, query, want in cases:
        r = post_raw(server, body, width=w, height=h, **query)
        assert r.status_code == 200, (query, r.text)
        got = r.json()
        assert (got["width"], got["height"]) == (w, h)
        assert set(got) == {"image", "model", "width", "height", "detections", "timing_ms"} | (set(got) & {"version"})
        assert got["detections"] == want, query
    dpb = pb["detection_pb2"]
    detection = pb["detection_pb2_grpc"].DetectionStub(channel)
    fmt = dpb.RawFrame
    grpc_cases = [
        (rgb.tobytes(), fmt(width=w, height=h), want_rgb),
        (bgr.tobytes(), fmt(width=w, height=h, format=fmt.BGR24), want_rgb),
        (pad_rows(rgb, stride).tobytes(), fmt(width=w, height=h, stride=stride), want_rgb),
        (pad_rows(nv12, w + 32).tobytes(), fmt(width=w, height=h, stride=w + 32, format=fmt.NV12), want_nv12),
    ]
    for body, raw, want in grpc_cases:
        got = detection.Detect(dpb.DetectRequest(image=body, raw=raw, model="yolov8n", frame_id=7), timeout=120)
        assert (got.frame_id, got.width, got.height) == (7, w, h)
        same_as_grpc(got, want)
    reqs = [dpb.DetectRequest(image=body, raw=raw, model="yolov8n", frame_id=i)
            for i, (body, raw, _) in enumerate(grpc_cases)]
    reqs.insert(2, dpb.DetectRequest(image=b"\0" * 10, raw=fmt(width=w, height=h), model="yolov8n", frame_id=99))
    out = list(detection.StreamDetect(iter(reqs), timeout=300))
    assert [o.frame_id for o in out] == [0, 1, 99, 2, 3]
    assert out[2].error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0] and "bytes" in out[2].error
    for o, (_, _, want) in zip(out[:2] + out[3:], grpc_cases):
        same_as_grpc(o, want)


def test_options_work_on_raw_frames(server, yolo, bus):
    rgb, _, _ = bus
    h, w, _ = rgb.shape
    few = post_raw(server, rgb.tobytes(), width=w, height=h, conf=0.5, classes="bus,0", max_det=2, priority=3)
    assert few.status_code == 200, few.text
    dets = few.json()["detections"]
    assert len(dets) == 2 and all(d["score"] >= 0.5 and d["class_name"] in ("bus", "person") for d in dets)
    drawn = post_raw(server, rgb.tobytes(), width=w, height=h, render=1)
    assert drawn.status_code == 200 and drawn.headers["Content-Type"] == "image/jpeg"
    assert drawn.content[:2] == b"\xff\xd8"


def test_grpc_raw_frame_in_many_slices_rendered_like_rest(server, yolo, bus, pb, channel):
    """gRPC hands a 2.6 MB frame over in ~160 slices: detection reads it where
    it lies, rows crossing slices included; render needs it whole (gathered):
    the same JPEG bytes as REST's, and the same boxes both ways."""
    rgb, _, _ = bus
    h, w, _ = rgb.shape
    stride = w * 3 + 5  # rows cross the slices' 16 KiB boundaries at every offset
    body = pad_rows(rgb, stride).tobytes()
    dpb = pb["detection_pb2"]
    detection = pb["detection_pb2_grpc"].DetectionStub(channel)
    raw = dpb.RawFrame(width=w, height=h, stride=stride)
    drawn = post_raw(server, body, width=w, height=h, stride=stride, render=1)
    assert drawn.status_code == 200, drawn.text
    got = detection.Detect(dpb.DetectRequest(image=body, raw=raw, model="yolov8n", render=True), timeout=120)
    assert got.rendered == drawn.content
    plain = post_raw(server, body, width=w, height=h, stride=stride)
    assert plain.status_code == 200, plain.text
    same_as_grpc(detection.Detect(dpb.DetectRequest(image=body, raw=raw, model="yolov8n"), timeout=120),
                 plain.json()["detections"])


# ---------------------------------------------------------------- refusals


def test_rest_refusals(server):
    pixels = np.zeros((48, 64, 3), dtype=np.uint8).tobytes()  # 64x48 RGB24: 9216 bytes
    cases = [  # (body, query, status, words the message holds)
        (pixels, {"height": 48}, 400, ["width must be"]),
        (pixels, {"width": 64}, 400, ["height must be"]),
        (pixels, {"width": "abc", "height": 48}, 400, ["width must be", "abc"]),
        (pixels, {"width": 0, "height": 48}, 400, ["width must be", "got 0"]),
        (pixels, {"width": 64, "height": -2}, 400, ["height must be"]),
        (pixels, {"width": 64.5, "height": 48}, 400, ["width must be"]),
        (pixels, {"width": 64, "height": 48, "format": "yuv420"}, 400, ["format must be rgb24, bgr24 or nv12"]),
        (pixels, {"width": 64, "height": 48, "stride": 0}, 400, ["stride must be"]),
        (pixels, {"width": 64, "height": 48, "stride": 100}, 400, ["stride 100 is less than a row (192 bytes)"]),
        (pixels[:-1], {"width": 64, "height": 48}, 400, ["9216 bytes", "got 9215"]),
        (pixels + b"\0", {"width": 64, "height": 48}, 400, ["9216 bytes", "got 9217"]),
        (pixels, {"width": 64, "height": 48, "stride": 200}, 400, ["9592 bytes", "9600 with its last row", "got 9216"]),
        (pixels[:64 * 48 * 3 // 2], {"width": 64, "height": 48, "format": "nv12", "stride": 63}, 400, ["stride 63"]),
        (pixels, {"width": 63, "height": 48, "format": "nv12"}, 400, ["NV12 needs an even size"]),
        (b"", {"width": 64, "height": 48}, 400, ["no frame"]),
        (pixels, {"width": 2000, "height": 1000}, 413, ["limits.max_image_pixels"]),  # over the server's 1000000
        (pixels, {"width": 2 ** 31, "height": 48}, 400, ["width must be"]),
    ]
    for body, query, status, words in cases:
        r = post_raw(server, body, model="tinydet", **query)
        assert r.status_code == status, (query, r.status_code, r.text)
        for word in words:
            assert word in r.json()["error"], (query, r.text)
    ok = post_raw(server, pixels, model="tinydet", width=64, height=48)
    assert ok.status_code == 200, ok.text
    # geometry without a raw body is refused, not ignored; a JPEG over the limit is 413 as a raw frame is
    r = requests.post(f"{server.url}/api/v1/detect?model=tinydet&width=64&height=48", data=png_of(np.zeros((48, 64, 3),
                      dtype=np.uint8)), timeout=30)
    assert r.status_code == 400 and "application/octet-stream" in r.json()["error"], r.text
    big = png_of(np.zeros((1000, 1001, 3), dtype=np.uint8))
    r = requests.post(f"{server.url}/api/v1/detect?model=tinydet", data=big, timeout=30)
    assert r.status_code == 413, r.text


def test_grpc_refusals(server, pb, channel):
    dpb = pb["detection_pb2"]
    detection = pb["detection_pb2_grpc"].DetectionStub(channel)
    fmt = dpb.RawFrame
    pixels = bytes(64 * 48 * 3)
    ok = detection.Detect(dpb.DetectRequest(image=pixels, raw=fmt(width=64, height=48), model="tinydet"), timeout=30)
    assert (ok.width, ok.height) == (64, 48)
    bad = grpc.StatusCode.INVALID_ARGUMENT
    cases = [
        (pixels, fmt(height=48), bad, "raw.width must be"),
        (pixels, fmt(width=64), bad, "raw.height must be"),
        (pixels, fmt(width=64, height=48, stride=100), bad, "stride 100 is less than a row"),
        (pixels[:-3], fmt(width=64, height=48), bad, "9216 bytes, got 9213"),
        (pixels, fmt(width=64, height=48, format=fmt.NV12), bad, "4608 bytes, got 9216"),
        (pixels, fmt(width=3000000000, height=48), bad, "raw.width must be"),
        (b"", fmt(width=64, height=48), bad, "no frame"),
        (pixels, fmt(width=2000, height=1000), grpc.StatusCode.RESOURCE_EXHAUSTED, "limits.max_image_pixels"),
    ]
    for body, raw, code, words in cases:
        got, details = rpc_error(detection.Detect, dpb.DetectRequest(image=body, raw=raw, model="tinydet"), timeout=30)
        assert got == code and words in details, (raw, got, details)
    # an unknown format number (a newer client's) is refused, not read as RGB
    req = dpb.DetectRequest(image=pixels, model="tinydet").SerializeToString()
    req += bytes([0x42, 6, 0x08, 64, 0x10, 48, 0x20, 9])  # raw (field 8): width 64, height 48, format 9
    got, details = rpc_error(_raw_unary(channel), req, timeout=30)
    assert got == bad and "raw.format must be" in details, details


def _raw_unary(channel):
    """Detect taking already-encoded request bytes."""
    return channel.unary_unary("/vigil.v1.Detection/Detect", request_serializer=None, response_deserializer=None)


# ---------------------------------------------------------------- Hailo-8 double


def test_hailo_raw_frame_equals_png_path(tmp_path_factory, pb):
    """The double's on-chip NMS boxes, scaled back through the letterbox of a
    96x64 frame: a raw frame and a PNG of the same pixels give the same."""
    models = tmp_path_factory.mktemp("hailo_models")
    write_hef_models(models)
    d = ready_daemon("--models", models, env=fake_env())
    try:
        rgb = np.random.default_rng(3).integers(0, 256, size=(64, 96, 3), dtype=np.uint8)
        png = requests.post(d.url + "/api/v1/detect?model=det", data=png_of(rgb), timeout=30)
        raw = post_raw(d, rgb.tobytes(), model="det", width=96, height=64)
        assert png.status_code == 200 and raw.status_code == 200, (png.text, raw.text)
        want = png.json()["detections"]
        assert len(want) == 3 and raw.json()["detections"] == want
        assert any(b[3] > 60 for b in (d_["box"] for d_ in want))  # scaled to the 96x64 frame, not the 64x64 input
        ch = connect(d.grpc_port)
        dpb = pb["detection_pb2"]
        got = pb["detection_pb2_grpc"].DetectionStub(ch).Detect(
            dpb.DetectRequest(image=rgb.tobytes(), raw=dpb.RawFrame(width=96, height=64), model="det"), timeout=30)
        ch.close()
        same_as_grpc(got, want)
    finally:
        assert d.stop() == 0, d.stderr[-4000:]
