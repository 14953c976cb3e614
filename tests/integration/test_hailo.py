"""The Hailo-8 backend against the HailoRT test double (tests/hailo_fake/).

vigil opens libhailort with dlopen; VIGIL_HAILORT points it at the double
(build/hailo_fake/libhailort_fake.so), which is also how a machine with a
real card runs this file: set VIGIL_HAILORT_REAL=/usr/lib/libhailort.so.4
... (docs/HAILO.md).  The double reads a text "HEF" of its own (real HEF
parsing is HailoRT's), computes outputs from the input bytes or from box
lines, takes HAILO_FAKE_FRAME_US per frame on one card shared by every
model, and injects faults from HAILO_FAKE_FAULT.

Shown here: two HEF models served at once through REST and gRPC (KServe v2
infer on a raw model, detection on an on-chip-NMS model via /api/v1/detect,
gRPC Detect and StreamDetect); NMS detections equal to the ones worked out
by hand from the box lines; one model unloaded while the other serves with
no failed request; a device lost or a frame timed out mid-stream gives 503s
naming the fault and the backend recovers; HailoRT absent, missing a symbol,
of the wrong version, or its card busy: vigil starts, serves its CPU model
and reports the reason in device info, /metrics and the log."""
import json
import os
import pathlib
import threading
import time

import pytest
import requests

from conftest import ROOT, add_model, metric_value, ready_daemon
from test_backend_detect import gray_png  # a grey 64x64 PNG, the size of the HEF's input

SIZE = 64
# (class, y_min, x_min, y_max, x_max, score): the NMS model's boxes, every frame
BOXES = [(0, 0.25, 0.125, 0.75, 0.5, 0.9), (2, 0.5, 0.5, 1.0, 1.0, 0.6), (2, 0.0, 0.0, 0.1, 0.1, 0.1),
         (5, 0.1, 0.2, 0.3, 0.4, 0.75)]


def fake_library(name="libhailort_fake.so"):
    build = pathlib.Path(os.environ.get("VIGIL_BINARY", str(ROOT / "build" / "vigil"))).parent
    path = build / "hailo_fake" / name
    if not path.exists():
        pytest.skip(f"{path} is not built")
    return str(path)


def write_hef_models(models, instances=2):
    """det: 64x64 input, by-class NMS over 8 classes (4 boxes room); raw: a
    4x4x3 input and a 2x2x3 float output."""
    det = models / "det"
    (det / "1").mkdir(parents=True)
    lines = ["hailo_fake_hef 1", "network det", f"input images {SIZE} {SIZE} 3", "nms det/nms 8 4"]
    lines += ["box %d %g %g %g %g %g" % b for b in BOXES]
    (det / "1" / "model.hef").write_text("\n".join(lines) + "\n")
    (det / "config.yaml").write_text(f"backend: hailo\ninstances: {instances}\nmax_batch_size: 8\n"
                                     "dynamic_batching:\n  max_queue_delay_us: 1000\n"
                                     "scheduler:\n  priority: 20\n  timeout_ms: 5\n  threshold: 2\n")
    raw = models / "raw"
    (raw / "1").mkdir(parents=True)
    (raw / "1" / "model.hef").write_text("hailo_fake_hef 1\nnetwork raw\ninput x 4 4 3\noutput y 2 2 3\n")
    (raw / "config.yaml").write_text("backend: hailo\ntask: raw\nmax_batch_size: 16\n")


def expected_detections():
    """The hand-computed answer: a 64x64 image letterboxes to itself (gain 1,
    no padding), so a box is its 0..1 corners times 64, (x, y) from (x_min,
    y_min); the chip's NMS is final; scores at or below conf 0.25 drop."""
    found = [(c, s, [x0 * SIZE, y0 * SIZE, x1 * SIZE, y1 * SIZE]) for c, y0, x0, y1, x1, s in BOXES if s > 0.25]
    return sorted(found, key=lambda d: -d[1])


def check_detections(dets, key=lambda d: (d["class_id"], d["score"], d["box"])):
    want = expected_detections()
    assert len(dets) == len(want), dets
    for d, (cid, score, box) in zip(dets, want):
        got_id, got_score, got_box = key(d)
        assert got_id == cid
        assert abs(got_score - score) < 1e-4
        assert all(abs(g - w) < 0.01 for g, w in zip(got_box, box)), (got_box, box)


def fake_env(**extra):
    env = {"VIGIL_HAILORT": fake_library(), "HAILO_FAKE_FRAME_US": "200"}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    models = tmp_path_factory.mktemp("models")
    write_hef_models(models)
    add_model(models, "affine")
    d = ready_daemon("--models", models, env=fake_env())
    yield d
    assert d.stop() == 0, d.stderr[-4000:]


def detect(server, model="det", timeout=30):
    return requests.post(f"{server.url}/api/v1/detect?model={model}", data=gray_png(128), timeout=timeout)


def infer_raw(server, values):
    body = {"inputs": [{"name": "x", "shape": [1, 4, 4, 3], "datatype": "UINT8", "data": values}]}
    return requests.post(server.url + "/v2/models/raw/infer", data=json.dumps(body), timeout=30)


RAW_IN = [(i * 53) % 256 for i in range(48)]  # the HEF's own uint8 frame
RAW_OUT = [v / 255.0 for v in RAW_IN[:12]]  # the double: out[j] = in[j] / 255


def test_device_info_metrics_and_schedule(server):
    info = requests.get(server.url + "/api/v1/device/info", timeout=10).json()
    hailo = next(b for b in info["backends"] if b["name"] == "hailo")
    assert hailo["available"] is True, hailo
    dev = hailo["device"]
    assert (dev["serial"], dev["architecture"], dev["firmware"]) == ("HLFAKE0000000001", "HAILO8", "4.23.0")
    assert dev["temperature_c"] == pytest.approx(45.5) and dev["power_w"] == pytest.approx(1.25)
    text = requests.get(server.url + "/metrics", timeout=10).text
    assert metric_value(text, "vigil_backend_available", backend="hailo") == 1
    assert metric_value(text, "vigil_backend_available", backend="cpu") == 1
    assert metric_value(text, "vigil_backend_device_temperature_celsius", backend="hailo") == pytest.approx(45.5)
    log = server.read_log()
    for line in ("det priority 20", "det timeout_ms 5", "det threshold 2"):
        assert "hailort_fake: " + line in log  # config.yaml's scheduler: section reached HailoRT
    models = requests.get(server.url + "/v2/models/det", timeout=10).json()
    assert models["inputs"][0]["shape"] == [-1, SIZE, SIZE, 3], models


def test_nms_detections_equal_hand_computed(server):
    r = detect(server)
    assert r.status_code == 200, r.text
    check_detections(r.json()["detections"])


def test_raw_infer_rest(server):
    r = infer_raw(server, RAW_IN)
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    assert out["shape"] == [1, 2, 2, 3]
    assert out["data"] == pytest.approx(RAW_OUT, abs=1e-6)
    # a batch larger than the vstream queues goes through in slices, items in order
    items = [[(v + k) % 256 for v in RAW_IN] for k in range(12)]
    body = {"inputs": [{"name": "x", "shape": [12, 4, 4, 3], "datatype": "UINT8", "data": sum(items, [])}]}
    r = requests.post(server.url + "/v2/models/raw/infer", data=json.dumps(body), timeout=30)
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    assert out["shape"] == [12, 2, 2, 3]
    assert out["data"] == pytest.approx(sum(([v / 255.0 for v in item[:12]] for item in items), []), abs=1e-6)


def test_both_models_at_once_rest_and_grpc(server, tmp_path):
    pytest.importorskip("grpc")
    np = pytest.importorskip("numpy")
    from test_grpc import connect, generate_stubs
    pb = generate_stubs(tmp_path / "stubs")
    ipb, dpb = pb["inference_pb2"], pb["detection_pb2"]
    channel = connect(server.grpc_port)
    kserve = pb["inference_pb2_grpc"].GRPCInferenceServiceStub(channel)
    detection = pb["detection_pb2_grpc"].DetectionStub(channel)
    failures = []
    as_tuple = lambda d: (d.class_id, d.score, [d.box.x1, d.box.y1, d.box.x2, d.box.y2])  # noqa: E731

    def rest_detect():
        for _ in range(15):
            r = detect(server)
            if r.status_code != 200:
                failures.append(r.text)
            else:
                check_detections(r.json()["detections"])

    def rest_raw():
        for _ in range(15):
            r = infer_raw(server, RAW_IN)
            if r.status_code != 200 or r.json()["outputs"][0]["data"] != pytest.approx(RAW_OUT, abs=1e-6):
                failures.append(r.text)

    def grpc_raw():
        for _ in range(15):
            req = ipb.ModelInferRequest(model_name="raw")
            t = req.inputs.add(name="x", datatype="UINT8", shape=[1, 4, 4, 3])
            req.raw_input_contents.append(np.array(RAW_IN, dtype="u1").tobytes())
            y = np.frombuffer(kserve.ModelInfer(req, timeout=30).raw_output_contents[0], dtype="<f4")
            if not np.allclose(y, RAW_OUT, atol=1e-6):
                failures.append(("grpc raw", y))
            assert t.name == "x"

    def grpc_stream():
        reqs = (dpb.DetectRequest(image=gray_png(128), model="det", frame_id=i) for i in range(20))
        out = list(detection.StreamDetect(reqs, timeout=60))
        if [o.frame_id for o in out] != list(range(20)):
            failures.append("stream order")
        for o in out:
            if o.error:
                failures.append(o.error)
            else:
                check_detections(o.detections, key=as_tuple)
        got = detection.Detect(dpb.DetectRequest(image=gray_png(128), model="det", frame_id=7), timeout=30)
        check_detections(got.detections, key=as_tuple)

    def guarded(f):  # an assertion inside a thread fails the test, not just the thread
        def run():
            try:
                f()
            except Exception as e:  # noqa: BLE001
                failures.append(f"{f.__name__}: {e!r}")
        return run

    threads = [threading.Thread(target=guarded(f)) for f in (rest_detect, rest_raw, grpc_raw, grpc_stream)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    channel.close()
    assert not failures, failures[:3]


def test_unload_one_while_the_other_serves(server):
    """Last in the module: raw is unloaded while det keeps answering."""
    results, stop = [], threading.Event()

    def hammer():
        while not stop.is_set():
            try:
                results.append(detect(server).status_code)
            except requests.RequestException as e:
                results.append(repr(e))

    def wait_for(count):
        deadline = time.monotonic() + 60
        while len(results) < count and time.monotonic() < deadline:
            time.sleep(0.01)

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    wait_for(10)
    r = requests.post(server.url + "/api/v1/models/unload", json={"model": "raw"}, timeout=30)
    assert r.status_code == 200, r.text
    wait_for(len(results) + 20)
    stop.set()
    for t in threads:
        t.join()
    assert set(results) == {200}, results
    assert infer_raw(server, RAW_IN).status_code in (404, 503)
    assert detect(server).status_code == 200


@pytest.mark.parametrize("fault, message", [("lost@12", "HAILO_STREAM_ABORT"), ("timeout@12", "HAILO_TIMEOUT")])
def test_fault_mid_stream_clean_errors_then_recovers(tmp_path, fault, message):
    models = tmp_path / "models"
    write_hef_models(models, instances=1)
    d = ready_daemon("--models", models, env=fake_env(HAILO_FAKE_FAULT=fault))
    try:
        answers = [detect(d) for _ in range(30)]
        codes = [a.status_code for a in answers]
        failed = [a for a in answers if a.status_code != 200]
        assert failed, codes  # the fault was hit ...
        for a in failed:  # ... as a clean 503 naming it
            assert a.status_code == 503, (a.status_code, a.text)
            assert message in a.json()["error"], a.text
        assert len(failed) <= 2, codes
        assert codes[-10:] == [200] * 10, codes  # ... and the backend recovered
        check_detections(answers[-1].json()["detections"])
        assert "vstreams created again after a fault" in d.read_log()
    finally:
        assert d.stop() == 0


@pytest.mark.parametrize("case", ["absent", "missing_symbol", "wrong_version", "busy"])
def test_hailo_unavailable_cpu_still_serves(tmp_path, case):
    models = tmp_path / "models"
    write_hef_models(models, instances=1)
    add_model(models, "affine")
    env = {"absent": {"VIGIL_HAILORT": str(tmp_path / "no-such-libhailort.so")},
           "missing_symbol": fake_env(VIGIL_HAILORT=fake_library("libhailort_fake_nosym.so")),
           "wrong_version": fake_env(HAILO_FAKE_VERSION="4.18.0"),
           "busy": fake_env(HAILO_FAKE_FAULT="busy")}[case]
    reason = {"absent": "no-such-libhailort.so", "missing_symbol": "lacks the symbol hailo_identify",
              "wrong_version": "is version 4.18.0; vigil supports 4.21 to 4.23",
              "busy": "HAILO_DEVICE_IN_USE"}[case]
    from conftest import Daemon
    d = Daemon("--models", models, env=env)
    try:
        body = {"inputs": [{"name": "x", "shape": [3, 4], "datatype": "FP32", "data": [0.0] * 12}]}
        r = requests.post(d.url + "/v2/models/affine/infer", data=json.dumps(body), timeout=30)
        assert r.status_code == 200, r.text
        info = requests.get(d.url + "/api/v1/device/info", timeout=10).json()
        hailo = next(b for b in info["backends"] if b["name"] == "hailo")
        assert hailo["available"] is False and reason in hailo["reason"], hailo
        text = requests.get(d.url + "/metrics", timeout=10).text
        assert metric_value(text, "vigil_backend_available", backend="hailo") == 0
        assert 'vigil_backend_unavailable_info{backend="hailo",reason="' in text and reason in text
        assert "backend hailo unavailable: " in d.read_log() and reason in d.read_log()
        r = detect(d)
        assert r.status_code in (404, 503) and "hailo backend is unavailable" in r.text, r.text
    finally:
        assert d.stop() == 0
    cli = [os.environ.get("VIGIL_BINARY", str(ROOT / "build" / "vigil")), "device", "info"]
    import subprocess
    out = subprocess.run(cli, capture_output=True, text=True, env={**os.environ, **env}, timeout=60)
    assert out.returncode == 0 and "hailo: unavailable: " in out.stdout and reason in out.stdout, out.stdout


def test_fault_in_a_grpc_stream_then_recovers(tmp_path):
    """The frames of the run that met the lost card carry the error in their
    answers; the stream goes on, in order, and its last frames are served."""
    pytest.importorskip("grpc")
    from test_grpc import connect, generate_stubs
    models = tmp_path / "models"
    write_hef_models(models, instances=1)
    d = ready_daemon("--models", models, env=fake_env(HAILO_FAKE_FAULT="lost@12"))
    try:
        pb = generate_stubs(tmp_path / "stubs")
        dpb = pb["detection_pb2"]
        channel = connect(d.grpc_port)
        stub = pb["detection_pb2_grpc"].DetectionStub(channel)
        reqs = (dpb.DetectRequest(image=gray_png(128), model="det", frame_id=i) for i in range(40))
        out = list(stub.StreamDetect(reqs, timeout=60))
        channel.close()
        assert [o.frame_id for o in out] == list(range(40))
        failed = [o for o in out if o.error]
        assert 1 <= len(failed) <= 8, [o.error for o in failed]  # one run's frames at most
        assert all("HAILO_STREAM_ABORT" in o.error for o in failed), failed[0].error
        assert not any(o.error for o in out[-10:])
        as_tuple = lambda o: (o.class_id, o.score, [o.box.x1, o.box.y1, o.box.x2, o.box.y2])  # noqa: E731
        check_detections(out[-1].detections, key=as_tuple)
    finally:
        assert d.stop() == 0


def test_vigil_device_info_with_the_double():
    import subprocess
    cli = [os.environ.get("VIGIL_BINARY", str(ROOT / "build" / "vigil")), "device", "info"]
    env = {**os.environ, **fake_env()}
    text = subprocess.run(cli, capture_output=True, text=True, env=env, timeout=60)
    assert text.returncode == 0, text.stderr
    assert "hailo: available: HailoRT 4.23.0" in text.stdout and "HLFAKE0000000001" in text.stdout, text.stdout
    out = subprocess.run(cli + ["--json"], capture_output=True, text=True, env=env, timeout=60)
    hailo = next(b for b in json.loads(out.stdout)["backends"] if b["name"] == "hailo")
    assert hailo["device"]["architecture"] == "HAILO8" and hailo["device"]["power_w"] == pytest.approx(1.25)


def test_vigil_models_list_reads_hefs_through_the_backend(tmp_path):
    import subprocess
    write_hef_models(tmp_path)
    cli = [os.environ.get("VIGIL_BINARY", str(ROOT / "build" / "vigil")), "models", "list", "--json"]
    out = subprocess.run(cli, capture_output=True, text=True, timeout=60,
                         env={**os.environ, **fake_env(), "VIGIL_MODELS": str(tmp_path)})
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert (rows["det"]["task"], rows["det"]["family"], rows["det"]["backend"]) == ("detect", "hailo_nms", "hailo")
    assert rows["raw"]["task"] == "raw"


def fnv1a64(data):
    h = 14695981039346656037
    for b in data:
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def letterboxed_input(frame, width, height, size):
    """The card's input for an RGB24 frame that fills the size x size input
    along one side: the frame's rows as they are, centred, grey 114 around
    (Ultralytics: top = round(dh - 0.1), left = round(dw - 0.1))."""
    out = bytearray([114]) * (size * size * 3)
    top, left = round((size - height) / 2 - 0.1), round((size - width) / 2 - 0.1)
    for y in range(height):
        at = ((top + y) * size + left) * 3
        out[at:at + width * 3] = frame[y * width * 3:(y + 1) * width * 3]
    return bytes(out)


def test_frames_letterboxed_where_they_arrive_reach_the_card_exactly(tmp_path):
    """A raw frame whose letterbox is a copy of its rows is letterboxed on the
    thread that received it, into a pooled input (request_detect_ready); the
    others by the model's worker.  Either way the card gets the same bytes,
    checked against the input worked out here (the double logs a hash of
    every frame written): packed and strided REST bodies, gRPC Detect and
    StreamDetect, BGR24 (converted by the worker), portrait frames whose
    padding differs, a small frame the worker scales, then landscape ones
    again into pooled inputs that held the other padding (the input is
    320x320, 307 kB: the pool keeps inputs from 64 kB).  A packed landscape
    REST body (230 kB: the gate reads it, with room around it) is padded
    where it was read, with no copy at all.  Boxes agree between the paths
    and map back through the padding."""
    import random
    pytest.importorskip("grpc")
    from test_grpc import connect, generate_stubs
    size, w, h = 320, 320, 240
    rng = random.Random(7)
    land = bytes(rng.randrange(256) for _ in range(w * h * 3))
    port = bytes(rng.randrange(256) for _ in range(h * w * 3))
    small = bytes(rng.randrange(256) for _ in range(40 * 30 * 3))
    bgr = b"".join(land[i:i + 3][::-1] for i in range(0, len(land), 3))
    stride = w * 3 + 5
    strided = b"".join(land[y * w * 3:(y + 1) * w * 3] + b"\0" * 5 for y in range(h))
    models = tmp_path / "models"
    (models / "frame" / "1").mkdir(parents=True)
    lines = ["hailo_fake_hef 1", "network frame", f"input images {size} {size} 3", "nms frame/nms 8 4"]
    (models / "frame" / "1" / "model.hef").write_text("\n".join(lines + ["box %d %g %g %g %g %g" % b for b in BOXES]) + "\n")
    (models / "frame" / "config.yaml").write_text("backend: hailo\ninstances: 1\n")
    d = ready_daemon("--models", models, env=fake_env(HAILO_FAKE_LOG_INPUT="1"))
    try:
        octet = {"Content-Type": "application/octet-stream"}
        geometry = f"width={w}&height={h}"

        def rest(body, query):
            r = requests.post(f"{d.url}/api/v1/detect?model=frame&{query}", data=body, headers=octet, timeout=30)
            assert r.status_code == 200, r.text
            return [(o["class_id"], o["score"], o["box"]) for o in r.json()["detections"]]

        want_land, want_port = letterboxed_input(land, w, h, size), letterboxed_input(port, h, w, size)
        sent = []  # the input the card must get, per request, in order (None: not checked)
        boxes = rest(land, geometry)
        sent.append(want_land)
        assert rest(strided, f"{geometry}&stride={stride}") == boxes
        sent.append(want_land)
        assert rest(bgr, f"{geometry}&format=bgr24") == boxes  # converted: the worker letterboxes it
        sent.append(want_land)
        # y: 40 rows of padding above the frame, taken off again (clipped at 0)
        want_y = sorted(((s, max(0.0, y0 * size - 40)) for _, y0, _, _, _, s in BOXES if s > 0.25), reverse=True)
        assert [b[2][1] for b in boxes] == pytest.approx([y for _, y in want_y], abs=0.01)

        pb = generate_stubs(tmp_path / "stubs")
        dpb = pb["detection_pb2"]
        channel = connect(d.grpc_port)
        stub = pb["detection_pb2_grpc"].DetectionStub(channel)
        raw = dpb.RawFrame(width=w, height=h)
        one = stub.Detect(dpb.DetectRequest(image=land, model="frame", raw=raw), timeout=30)
        sent.append(want_land)
        flat = lambda o: [o.class_id, o.score, o.box.x1, o.box.y1, o.box.x2, o.box.y2]  # noqa: E731
        assert sum((flat(o) for o in one.detections), []) == pytest.approx(sum(([c, s, *b] for c, s, b in boxes), []),
                                                                          abs=1e-4)
        out = list(stub.StreamDetect((dpb.DetectRequest(image=land, model="frame", raw=raw, frame_id=i)
                                      for i in range(3)), timeout=30))
        assert [o.error for o in out] == ["", "", ""]
        sent += [want_land] * 3
        channel.close()

        for _ in range(3):
            rest(port, f"width={h}&height={w}")
            sent.append(want_port)
        rest(small, "width=40&height=30")  # scaled up 8x: not a copy, so the worker's
        sent.append(None)
        for _ in range(3):
            assert rest(land, geometry) == boxes
            sent.append(want_land)

        log = d.read_log()
        got = [line.split()[-1] for line in log.splitlines() if line.startswith("hailort_fake: input frame ")]
        assert len(got) == len(sent), got
        for i, (hash_, want) in enumerate(zip(got, sent)):
            if want is not None:
                assert hash_ == fnv1a64(want), f"request {i}"
    finally:
        assert d.stop() == 0
