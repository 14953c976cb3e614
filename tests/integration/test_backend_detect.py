"""Detection reaches models only through the backend interface.

The daemon's test build (vigil-test, beside vigil; tests/unit/backend_test.c)
carries a tests-only backend whose model answers a YOLOv8-shaped output
computed from its input: class 0 scored by the item's mean pixel value at a
known box, class 1 by one minus it at another.  A model served with
`backend: test` in its config.yaml answers POST /api/v1/detect, gRPC Detect
and StreamDetect, batched by the dynamic batcher, with the boxes and scores
that follow from the pixels, and the backend's log shows its runs: no engine
is behind it.  Also here: the layering check that src/vision/ and src/serve/
include no engine header (make check runs it)."""
import os
import pathlib
import re
import struct
import threading
import zlib

import pytest
import requests

from conftest import ROOT, ready_daemon

SIZE = 64


def daemon_binary():
    path = pathlib.Path(os.environ.get("VIGIL_BINARY", str(ROOT / "build" / "vigil"))).with_name("vigil-test")
    if not os.access(path, os.X_OK):
        pytest.skip(f"{path} is not built")
    return str(path)


def gray_png(value, size=SIZE):
    """A size x size PNG of one grey level."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + bytes([value]) * (3 * size) for _ in range(size))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    binary = daemon_binary()
    models = tmp_path_factory.mktemp("models")
    (models / "fake" / "1").mkdir(parents=True)
    (models / "fake" / "1" / "model.test").write_text(f"size {SIZE} classes 2\n")
    (models / "fake" / "config.yaml").write_text(
        "backend: test\nmax_batch_size: 8\ndynamic_batching:\n  max_queue_delay_us: 200000\n")
    old = os.environ.get("VIGIL_BINARY")
    os.environ["VIGIL_BINARY"] = binary
    try:
        d = ready_daemon("--models", models)
    finally:
        if old is None:
            del os.environ["VIGIL_BINARY"]
        else:
            os.environ["VIGIL_BINARY"] = old
    yield d
    assert d.stop() == 0, d.stderr[-4000:]


def expected(value):
    """What the test backend's model finds in a grey image of value."""
    mean = value / 255.0
    found = []
    if mean > 0.25:
        found.append((0, "thing0", mean, [8.0, 8.0, 24.0, 24.0]))
    if 1 - mean > 0.25:
        found.append((1, "thing1", 1 - mean, [32.0, 32.0, 48.0, 48.0]))
    return sorted(found, key=lambda d: -d[2])


def check(dets, value, key=lambda d: (d["class_id"], d["class_name"], d["score"], d["box"])):
    want = expected(value)
    assert len(dets) == len(want), dets
    for d, (cid, name, score, box) in zip(dets, want):
        got_id, got_name, got_score, got_box = key(d)
        assert (got_id, got_name) == (cid, name)
        assert abs(got_score - score) < 1e-3
        assert all(abs(g - w) < 0.05 for g, w in zip(got_box, box)), (got_box, box)


def runs(server):
    return [int(b) for b in re.findall(r"test backend: run batch (\d+)", server.read_log())]


def test_rest_detect_through_the_test_backend(server):
    before = len(runs(server))
    for value in (230, 20):
        r = requests.post(server.url + "/api/v1/detect?model=fake", data=gray_png(value), timeout=30)
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["width"], body["height"], body["model"]) == (SIZE, SIZE, "fake")
        check(body["detections"], value)
    assert len(runs(server)) == before + 2  # each answer came from one run of the backend


def test_rest_batch_of_concurrent_requests(server):
    """Concurrent requests are batched by the dynamic batcher into one run of
    the backend, each answered from its own slice of the outputs."""
    values = [10, 60, 200, 250]
    answers = {}

    def post(v):
        answers[v] = requests.post(server.url + "/api/v1/detect?model=fake", data=gray_png(v), timeout=30)

    before = len(runs(server))
    threads = [threading.Thread(target=post, args=(v,)) for v in values]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for v in values:
        assert answers[v].status_code == 200, answers[v].text
        check(answers[v].json()["detections"], v)
    new = runs(server)[before:]
    assert sum(new) == len(values) and max(new) > 1, new


def test_grpc_detect_and_stream_detect(server, tmp_path):
    grpc = pytest.importorskip("grpc")
    from test_grpc import connect, generate_stubs
    pb = generate_stubs(tmp_path / "stubs")
    dpb = pb["detection_pb2"]
    channel = connect(server.grpc_port)
    detection = pb["detection_pb2_grpc"].DetectionStub(channel)
    got = detection.Detect(dpb.DetectRequest(image=gray_png(240), model="fake", frame_id=7), timeout=30)
    assert (got.frame_id, got.width, got.height) == (7, SIZE, SIZE)
    as_tuple = lambda d: (d.class_id, d.class_name, d.score, [d.box.x1, d.box.y1, d.box.x2, d.box.y2])  # noqa: E731
    check(got.detections, 240, key=as_tuple)
    values = [30, 220, 128, 5]
    out = list(detection.StreamDetect(iter(dpb.DetectRequest(image=gray_png(v), model="fake", frame_id=i)
                                           for i, v in enumerate(values)), timeout=60))
    assert [o.frame_id for o in out] == [0, 1, 2, 3]
    for o, v in zip(out, values):
        assert not o.error, o.error
        check(o.detections, v, key=as_tuple)
    channel.close()
    assert isinstance(grpc.StatusCode.OK.value[0], int)


def test_vision_and_serve_include_no_engine_header():
    """src/vision/ and src/serve/ reach models only through backends/backend.h:
    neither includes vigil/engine.h nor an engine/ header."""
    bad = []
    for folder in ("src/vision", "src/serve"):
        for path in sorted((ROOT / folder).glob("*.[ch]")):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if re.match(r'\s*#\s*include\s*[<"](vigil/engine\.h|engine/)', line):
                    bad.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not bad, "engine headers included where only the backend interface may be used:\n" + "\n".join(bad)
