"""Video streams in the server (issue 22, docs/STREAMS.md): a real RTSP
camera on loopback (tests/harness/rtsp_server.py, GStreamer), clips the test
makes with the ffmpeg CLI from the shared images, the real yolov8n.

- Every processed frame's detections equal `vigil detect` on the same
  decoded frame (the test decodes the clip itself to PNG); a moving object
  keeps one track id; each track enters and leaves once; snapshots are JPEG.
- The camera killed and restarted on its port: the stream reconnects and
  frames keep coming.  A corrupt file is counted and skipped while another
  stream keeps its rate (counts, never timings).
- REST CRUD and its errors, streams from the config file, events on MQTT
  (a real mosquitto, paho-mqtt), the per-stream metrics.
"""
import json
import os
import shutil
import subprocess
import time

import pytest
import requests

from conftest import (ROOT, add_model, free_port, metric_value, ready_daemon, run_vigil, shared_path,
                      stop_process)

RTSP_HARNESS = ROOT / "tests" / "harness" / "rtsp_server.py"
FPS = 30


def need_ffmpeg():
    if not shutil.which("ffmpeg"):
        pytest.skip("the ffmpeg CLI is not installed (scripts/deps/debian.txt)")


def need_rtsp():
    probe = subprocess.run(["/usr/bin/python3", "-c", "import gi; gi.require_version('GstRtspServer', '1.0')"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip("GStreamer's RTSP server (python3-gi, gir1.2-gst-rtsp-server-1.0) is not installed")


def moving_bus_clip(path, seconds=4):
    """bus.jpg at a third of its size (270x360: a bus and people) sliding
    left to right (50 px/s: boxes overlap from one processed frame to the
    next even on a slow machine) across a grey 640x360 picture, fully inside:
    H.264, 30 frames/s, no B-frames (decode order is display order)."""
    bus = shared_path("images/bus.jpg")
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"color=c=gray:s=640x360:r={FPS}:d={seconds}", "-i", str(bus), "-filter_complex",
                    "[1:v]scale=270:360[b];[0:v][b]overlay=x='10+t*50':y=0,format=yuv420p", "-frames:v",
                    str(seconds * FPS), "-c:v", "libx264", "-g", "30", "-bf", "0", "-preset", "veryfast",
                    str(path)], check=True)
    return path


def pattern_clip(path, seconds=3, size="320x240"):
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size={size}:rate={FPS}", "-frames:v", str(seconds * FPS), "-pix_fmt", "yuv420p",
                    "-c:v", "libx264", "-g", "30", "-bf", "0", "-preset", "veryfast", str(path)], check=True)
    return path


class RtspCamera:
    """tests/harness/rtsp_server.py serving clip at rtsp://127.0.0.1:PORT/clip."""

    def __init__(self, clip, port=None):
        args = ["/usr/bin/python3", str(RTSP_HARNESS), str(clip)] + ([str(port)] if port else [])
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "ready":
            stop_process(self.proc)
            pytest.skip("the RTSP harness did not start")
        self.port = int(line[1])
        self.url = f"rtsp://127.0.0.1:{self.port}/clip"

    def stop(self):
        stop_process(self.proc)


def yolo_repo(tmp_path):
    model = shared_path("models/yolov8n.onnx")
    models = tmp_path / "models"
    (models / "yolov8n" / "1").mkdir(parents=True)
    (models / "yolov8n" / "1" / "model.onnx").symlink_to(model)
    return models


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def stream(d, name):
    r = requests.get(f"{d.url}/api/v1/streams/{name}", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def finished(d, name):
    s = stream(d, name)
    return s if s["state"] in ("ended", "failed") else None


def events(d, **query):
    r = requests.get(f"{d.url}/api/v1/events", params=query, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def test_rtsp_stream_detections_equal_vigil_detect_and_tracks_hold(tmp_path):
    need_ffmpeg()
    need_rtsp()
    models = yolo_repo(tmp_path)
    clip = moving_bus_clip(tmp_path / "bus.mp4")
    camera = RtspCamera(clip)
    d = ready_daemon("--models", models)
    try:
        spec = {"name": "cam1", "url": camera.url, "rtsp_transport": "tcp", "model": "yolov8n", "detect_fps": 3,
                "loop": False}  # the camera's hang-up at the clip's end ends the stream
        r = requests.post(f"{d.url}/api/v1/streams", json=spec, timeout=10)
        assert r.status_code == 201, r.text
        s = wait_for(lambda: finished(d, "cam1"), 60, "the clip to end")
        assert s["state"] == "ended", s
        assert s["source"] == {"width": 640, "height": 360}
        frames = requests.get(f"{d.url}/api/v1/streams/cam1/detections", timeout=10).json()["frames"]
        assert len(frames) >= 3 and s["stats"]["reconnects"] == 0, s
        assert s["stats"]["frames_detected"] == len(frames)

        # The test's own decode of the clip, frame by frame, and `vigil detect` on the processed ones.
        png_dir = tmp_path / "png"
        png_dir.mkdir()
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(clip), "-vsync", "passthrough",
                        "-start_number", "0", str(png_dir / "%04d.png")], check=True)
        indices = [f["frame"] for f in frames]
        pngs = [str(png_dir / f"{i:04d}.png") for i in indices]
        out = run_vigil("detect", "--json", "--model", str(models / "yolov8n" / "1" / "model.onnx"), *pngs)
        assert out.returncode == 0, out.stderr
        expected = [json.loads(line)["detections"] for line in out.stdout.splitlines()]
        for frame, index, want in zip(frames, indices, expected):
            got = [{k: det[k] for k in ("class_id", "class_name", "score", "box")} for det in frame["detections"]]
            assert got == want, f"frame {index} (stream frame {frame['frame']})"

        # One bus, one track id from its confirmation on.
        bus_ids = {det["track_id"] for f in frames for det in f["detections"]
                   if det["class_name"] == "bus" and det["track_id"] is not None}
        assert len(bus_ids) == 1, frames

        # Each track entered once and left once (the clip's end lets every track go).
        evs = events(d, stream="cam1", limit=1000)["events"]
        by_track = {}
        for e in evs:
            by_track.setdefault(e["track_id"], []).append(e["type"])
        assert by_track, "no events"
        for track, types in by_track.items():
            assert types.count("entered") == 1 and types.count("left") == 1, (track, types)
            assert types[0] == "entered" and types[-1] == "left", (track, types)
        bus_events = [e for e in evs if e["class_name"] == "bus"]
        assert {e["track_id"] for e in bus_events} == bus_ids
        # The track's boxes: [frame, x1, y1, x2, y2] of its matches, in order, ending at the event's
        # own match (a `left` one at its last), at most 32 points spread over the track's life.
        for e in evs:
            path = e["path"]
            assert 1 <= len(path) <= 32 and all(len(p) == 5 for p in path), e
            assert [p[0] for p in path] == sorted({p[0] for p in path}), e
            if e["type"] != "left":
                assert path[-1] == [e["frame"], *e["box"]], e
            else:
                assert path[-1][0] <= e["frame"], e
        bus_left = [e for e in bus_events if e["type"] == "left"][0]
        assert len(bus_left["path"]) >= 2 and bus_left["path"][0][1] != bus_left["path"][-1][1]  # it moved
        for e in evs:
            assert e["stream"] == "cam1" and e["time"].endswith("Z")
            snap = requests.get(d.url + e["snapshot"], timeout=10)
            assert snap.status_code == 200 and snap.headers["Content-Type"] == "image/jpeg"
            assert snap.content[:3] == b"\xff\xd8\xff"
        assert [e["seq"] for e in evs] == sorted(e["seq"] for e in evs)
        frame_jpg = requests.get(f"{d.url}/api/v1/streams/cam1/frame.jpg", timeout=10)
        assert frame_jpg.status_code == 200 and frame_jpg.content[:2] == b"\xff\xd8"
        assert d.stop() == 0, d.read_log()[-3000:]  # a clean exit (leak checks under ASan)
    finally:
        d.stop()
        camera.stop()


def test_camera_restarted_stream_reconnects_and_continues(tmp_path):
    need_ffmpeg()
    need_rtsp()
    models = yolo_repo(tmp_path)
    clip = pattern_clip(tmp_path / "pattern.mp4", seconds=20)
    camera = RtspCamera(clip)
    d = ready_daemon("--models", models)
    try:
        spec = {"name": "door", "url": camera.url, "rtsp_transport": "tcp", "model": "yolov8n", "detect_fps": 2}
        assert requests.post(f"{d.url}/api/v1/streams", json=spec, timeout=10).status_code == 201
        wait_for(lambda: stream(d, "door")["stats"]["frames_detected"] >= 2, 60, "frames before the cut")
        camera.stop()
        gone = wait_for(lambda: (lambda s: s if s["stats"]["reconnects"] >= 1 else None)(stream(d, "door")), 30,
                        "a reconnect attempt")
        assert gone["state"] in ("reconnecting", "connecting")
        before = gone["stats"]["frames_detected"]
        camera = RtspCamera(clip, port=camera.port)
        back = wait_for(lambda: (lambda s: s if s["state"] == "running" and
                                 s["stats"]["frames_detected"] >= before + 2 else None)(stream(d, "door")),
                        90, "frames after the camera came back")
        assert back["stats"]["reconnects"] >= 1
        metrics = requests.get(f"{d.url}/metrics", timeout=10).text
        assert metric_value(metrics, "vigil_stream_reconnects_total", stream="door") >= 1
        assert metric_value(metrics, "vigil_stream_up", stream="door") == 1
        assert d.stop() == 0, d.read_log()[-3000:]  # a clean exit (leak checks under ASan)
    finally:
        d.stop()
        camera.stop()


def test_corrupt_stream_is_counted_while_another_keeps_its_rate(tmp_path):
    need_ffmpeg()
    models = yolo_repo(tmp_path)
    good = pattern_clip(tmp_path / "good.mp4", seconds=3)
    data = bytearray(pattern_clip(tmp_path / "bad_src.mp4", seconds=3).read_bytes())
    # Bytes overwritten all through the coded pictures (after the headers).
    for offset in range(len(data) // 5, len(data) - 64, 997):
        data[offset:offset + 16] = b"\x5a" * 16
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(bytes(data))
    d = ready_daemon("--models", models)
    try:
        for name, clip in (("good", good), ("bad", bad)):
            spec = {"name": name, "url": str(clip), "model": "yolov8n", "detect_fps": 5, "realtime": True}
            r = requests.post(f"{d.url}/api/v1/streams", json=spec, timeout=10)
            assert r.status_code == 201, r.text
        g = wait_for(lambda: finished(d, "good"), 60, "the good clip to end")
        b = wait_for(lambda: finished(d, "bad"), 60, "the bad clip to end")
        assert b["stats"]["dropped"]["corrupt"] > 0, b
        assert g["stats"]["dropped"]["corrupt"] == 0
        assert g["stats"]["frames_in"] == 3 * FPS
        # 5 of 30 frames/s: 15 frames picked over 3 s, each detected or replaced by a newer one.
        st = g["stats"]
        assert st["frames_detected"] + st["dropped"]["busy"] == 15, st
        assert st["dropped"]["rate"] == 3 * FPS - 15
        assert st["frames_detected"] >= 1
        metrics = requests.get(f"{d.url}/metrics", timeout=10).text
        assert metric_value(metrics, "vigil_stream_dropped_frames_total", stream="bad", reason="corrupt") > 0
        assert metric_value(metrics, "vigil_stream_input_frames_total", stream="good") == 3 * FPS
        assert d.proc.poll() is None
        assert d.stop() == 0, d.read_log()[-3000:]  # a clean exit (leak checks under ASan)
    finally:
        d.stop()


def test_rest_crud_and_errors(tmp_path):
    need_ffmpeg()
    models = yolo_repo(tmp_path)
    add_model(models, "affine")  # tensors only: no stream can run on it
    clip = pattern_clip(tmp_path / "p.mp4", seconds=1)
    d = ready_daemon("--models", models)
    base = f"{d.url}/api/v1/streams"
    try:
        spec = {"name": "lot", "url": str(clip), "model": "yolov8n", "enabled": False,
                "zone": [[0, 0], [320, 0], [320, 240]], "classes": ["person", 2], "conf_threshold": 0.4}
        r = requests.post(base, json=spec, timeout=10)
        assert r.status_code == 201, r.text
        s = r.json()
        assert s["state"] == "disabled" and s["error"] is None and s["last_event"] is None
        assert s["zone"] == [[0, 0], [320, 0], [320, 240]] and s["classes"] == ["person", "2"]
        assert s["conf_threshold"] == 0.4 and s["detect_fps"] == 5 and s["rtsp_transport"] is None
        for key in ("input_fps", "detect_fps", "frames_in", "frames_detected", "dropped", "decode_ms",
                    "inference_ms", "latency_ms", "reconnects"):
            assert key in s["stats"]
        assert set(s["stats"]["dropped"]) == {"rate", "busy", "corrupt"}
        assert requests.post(base, json=spec, timeout=10).status_code == 409
        assert requests.get(f"{base}/lot/frame.jpg", timeout=10).status_code == 404
        bad = [({"url": "x", "model": "yolov8n"}, "name"),
               ({**spec, "name": "two words"}, "name"),
               ({**spec, "name": "z", "zone": [[0, 0], [1, 1]]}, "zone"),
               ({**spec, "name": "z", "detect_fps": -1}, "detect_fps"),
               ({**spec, "name": "z", "rtsp_transport": "sctp"}, "rtsp_transport"),
               ({**spec, "name": "z", "colour": "red"}, "colour")]
        for body, field in bad:
            r = requests.post(base, json=body, timeout=10)
            assert r.status_code == 400 and field in r.json()["error"], (body, r.text)
        assert requests.post(base, data="{", timeout=10).status_code == 400
        r = requests.post(base, json={**spec, "name": "z", "model": "nope"}, timeout=10)
        assert r.status_code == 404 and "nope" in r.json()["error"]
        r = requests.post(base, json={**spec, "name": "z", "model": "affine"}, timeout=10)
        assert r.status_code == 400 and "not a detection model" in r.json()["error"]
        assert [x["name"] for x in requests.get(base, timeout=10).json()["streams"]] == ["lot"]
        # PUT replaces the spec (what GET returned may be sent back) and restarts the stream.
        changed = {**s, "enabled": True, "detect_fps": 2, "zone": []}
        r = requests.put(f"{base}/lot", json=changed, timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["detect_fps"] == 2 and r.json()["state"] != "disabled"
        wait_for(lambda: finished(d, "lot"), 60, "the clip to end")
        assert requests.get(f"{base}/lot/frame.jpg", timeout=10).status_code == 200
        assert requests.put(f"{base}/ghost", json={**spec, "name": "ghost"}, timeout=10).status_code == 404
        assert requests.put(f"{base}/lot", json={**spec, "name": "other"}, timeout=10).status_code == 400
        assert requests.get(f"{base}/lot/detections", params={"after": "x"}, timeout=10).status_code == 400
        assert requests.get(f"{d.url}/api/v1/events", params={"limit": -1}, timeout=10).status_code == 400
        assert requests.get(f"{d.url}/api/v1/events/nope/snapshot.jpg", timeout=10).status_code == 404
        assert requests.delete(f"{base}/lot", timeout=10).status_code == 204
        assert requests.delete(f"{base}/lot", timeout=10).status_code == 404
        assert requests.get(f"{base}/lot", timeout=10).status_code == 404
        assert requests.get(base, timeout=10).json() == {"streams": []}
        assert d.stop() == 0, d.read_log()[-3000:]  # a clean exit (leak checks under ASan)
    finally:
        d.stop()


def test_config_file_streams_publish_events_on_mqtt(tmp_path):
    need_ffmpeg()
    if not (shutil.which("mosquitto") or os.path.exists("/usr/sbin/mosquitto")):
        pytest.skip("mosquitto is not installed")
    mqtt = pytest.importorskip("paho.mqtt.client")
    models = yolo_repo(tmp_path)
    clip = moving_bus_clip(tmp_path / "bus.mp4", seconds=3)
    from test_edge_hybrid import Broker  # the edge tests' mosquitto on loopback
    broker = Broker("127.0.0.1", tmp_path)
    received = []
    client = mqtt.Client(client_id=f"streams-{os.getpid()}")
    client.on_message = lambda c, u, m: received.append((m.topic, json.loads(m.payload)))
    wait_for(lambda: client.connect("127.0.0.1", broker.port) == 0 if _listening(broker.port) else None, 10,
             "the broker")
    client.subscribe("site7/streams/#", qos=1)
    client.loop_start()
    config = tmp_path / "vigil.yaml"
    config.write_text(f"""stream:
  mqtt:
    host: 127.0.0.1
    port: {broker.port}
    prefix: site7
streams:
  - name: gate
    url: {clip}
    model: yolov8n
    detect_fps: 3
    realtime: false
    classes: [bus, person]
""")
    d = ready_daemon("--config", config, "--models", models)
    try:
        s = wait_for(lambda: finished(d, "gate"), 60, "the clip to end")
        assert s["realtime"] is False and s["classes"] == ["bus", "person"]
        assert s["stats"]["frames_detected"] == 9 and s["stats"]["dropped"]["busy"] == 0, json.dumps(s)
        evs = events(d, stream="gate", limit=1000)["events"]
        assert evs and {e["class_name"] for e in evs} <= {"bus", "person"}
        wait_for(lambda: len(received) >= len(evs), 10, "the events on MQTT")
        assert {t for t, _ in received} == {"site7/streams/gate/events"}
        assert [e["id"] for _, e in received] == [e["id"] for e in evs]
        assert {e["type"] for _, e in received} >= {"entered", "left"}
        metrics = requests.get(f"{d.url}/metrics", timeout=10).text
        for name in ("vigil_stream_input_frames_total", "vigil_stream_detected_frames_total",
                     "vigil_stream_decode_seconds_count", "vigil_stream_latency_seconds_count",
                     "vigil_stream_reconnects_total", "vigil_stream_up"):
            assert metric_value(metrics, name, stream="gate") is not None, name
        assert metric_value(metrics, "vigil_stream_detected_frames_total", stream="gate") == \
            s["stats"]["frames_detected"]
        assert metric_value(metrics, "vigil_stream_dropped_frames_total", stream="gate", reason="rate") > 0
        assert metric_value(metrics, "vigil_stream_mqtt_messages_total", result="published") == len(evs)
        assert d.stop() == 0, d.read_log()[-3000:]  # a clean exit (leak checks under ASan)
    finally:
        d.stop()
        client.loop_stop()
        broker.stop()


def _listening(port):
    import socket
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_config_file_bad_stream_refuses_to_start(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    config = tmp_path / "vigil.yaml"
    config.write_text("streams:\n  - name: a\n    url: x.mp4\n    model: m\n    zone: [[0, 0]]\n")
    out = run_vigil("serve", "--config", config, "--models", models, "--http-port", free_port(),
                    "--grpc-port", free_port(), timeout=30)
    assert out.returncode != 0
    assert "streams[0]" in out.stderr and "zone" in out.stderr, out.stderr


def test_live_view_is_mjpeg_of_processed_frames_and_ends_with_the_stream(tmp_path):
    need_ffmpeg()
    models = yolo_repo(tmp_path)
    clip = moving_bus_clip(tmp_path / "bus.mp4", seconds=2)
    d = ready_daemon("--models", models)
    try:
        spec = {"name": "yard", "url": str(clip), "model": "yolov8n", "detect_fps": 4, "loop": True}
        assert requests.post(f"{d.url}/api/v1/streams", json=spec, timeout=10).status_code == 201
        r = requests.get(f"{d.url}/api/v1/streams/yard/live", stream=True, timeout=30)
        assert r.status_code == 200
        assert r.headers["Content-Type"] == "multipart/x-mixed-replace; boundary=frame"
        body = b""
        chunks = r.iter_content(chunk_size=4096)
        while body.count(b"--frame\r\n") < 3:
            body += next(chunks)
        parts = body.split(b"--frame\r\n")[1:3]
        for part in parts:
            head, _, rest = part.partition(b"\r\n\r\n")
            assert b"Content-Type: image/jpeg" in head
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            assert rest[:3] == b"\xff\xd8\xff" and rest[length:length + 2] == b"\r\n"
        # Removing the stream ends the view's body cleanly.
        assert requests.delete(f"{d.url}/api/v1/streams/yard", timeout=30).status_code == 204
        for _ in chunks:
            pass
        r.close()
        assert d.proc.poll() is None
        assert d.stop() == 0, d.read_log()[-3000:]  # a clean exit (leak checks under ASan)
    finally:
        d.stop()


def test_entered_objects_escalate_under_edge_role(tmp_path):
    """edge.role edge: each object that enters goes to the escalation policy
    with its snapshot (the model's config.yaml decides: buses here); the
    edge's GET /api/v1/events is its outbox history, and the stream's own
    events are read under the stream."""
    need_ffmpeg()
    models = yolo_repo(tmp_path)
    (models / "yolov8n" / "config.yaml").write_text("escalation:\n  classes: [bus]\n  rate_limit_per_source: 0\n")
    clip = moving_bus_clip(tmp_path / "bus.mp4", seconds=2)
    d = ready_daemon("--models", models, "--role", "edge", "--edge-node-id", "e1",
                     "--edge-cloud-url", f"http://127.0.0.1:{free_port()}", "--edge-mqtt-port", free_port(),
                     "--edge-data-dir", tmp_path / "data")
    try:
        # realtime false: every picked frame is detected, however slow the machine
        spec = {"name": "dock", "url": str(clip), "model": "yolov8n", "detect_fps": 5, "realtime": False}
        assert requests.post(f"{d.url}/api/v1/streams", json=spec, timeout=10).status_code == 201
        wait_for(lambda: finished(d, "dock"), 60, "the clip to end")
        own = requests.get(f"{d.url}/api/v1/streams/dock/events", timeout=10).json()["events"]
        entered_buses = [e for e in own if e["type"] == "entered" and e["class_name"] == "bus"]
        assert len(entered_buses) == 1, own
        assert own[0]["snapshot"].startswith("/api/v1/streams/dock/events/")
        assert requests.get(d.url + own[0]["snapshot"], timeout=10).content[:2] == b"\xff\xd8"
        history = wait_for(lambda: requests.get(f"{d.url}/api/v1/events", timeout=10).json()["events"], 20,
                           "the escalation in the outbox")
        assert len(history) == 1, history
        text = json.dumps(history[0])
        assert "dock" in text and "bus" in text, history
        assert d.stop() == 0, d.read_log()[-3000:]  # a clean exit (leak checks under ASan)
    finally:
        d.stop()


def test_streams_batch_together_in_the_models_scheduler(tmp_path):
    """Four streams on one model with dynamic batching: their frames go
    through the model's scheduler like any request, so they share batches
    (vigil_batch_size counts items per run)."""
    need_ffmpeg()
    model = shared_path("models/yolov8n_dynbatch.onnx")
    models = tmp_path / "models"
    (models / "yolo" / "1").mkdir(parents=True)
    (models / "yolo" / "1" / "model.onnx").symlink_to(model)
    (models / "yolo" / "config.yaml").write_text(
        "task: detect\nmax_batch_size: 4\ndynamic_batching:\n  max_queue_delay_us: 200000\n"
        "  preferred_batch_sizes: [4]\n")
    clip = moving_bus_clip(tmp_path / "bus.mp4", seconds=2)
    d = ready_daemon("--models", models)
    try:
        for i in range(4):
            spec = {"name": f"cam{i}", "url": str(clip), "model": "yolo", "detect_fps": 3, "realtime": False}
            assert requests.post(f"{d.url}/api/v1/streams", json=spec, timeout=10).status_code == 201
        for i in range(4):
            s = wait_for(lambda: finished(d, f"cam{i}"), 120, "the clips to end")
            assert s["stats"]["frames_detected"] == 6 and s["stats"]["detect_failures"] == 0, s
        metrics = requests.get(f"{d.url}/metrics", timeout=10).text
        items = metric_value(metrics, "vigil_batch_size_sum", model="yolo")
        runs = metric_value(metrics, "vigil_batch_size_count", model="yolo")
        assert items == 24 and runs < items, (items, runs)
        assert d.stop() == 0, d.read_log()[-3000:]  # a clean exit (leak checks under ASan)
    finally:
        d.stop()


def test_without_ffmpeg_the_server_serves_and_refuses_streams_with_the_reason(tmp_path):
    """FFmpeg's libraries are opened when the first stream starts, not
    linked (src/stream/ffmpeg_lib.c): a libavutil without FFmpeg's symbols
    found first on the library path stands for a box without FFmpeg; the
    daemon starts, detects, lists streams, and refuses to start one saying
    which library and symbol are missing; a disabled stream is still kept."""
    if not shutil.which("cc"):
        pytest.skip("no C compiler to build the stand-in library")
    models = yolo_repo(tmp_path)
    libdir = tmp_path / "lib"
    libdir.mkdir()
    major = 57  # Debian 12's libavutil; the loader asks for the major it was built against
    built = subprocess.run(["cc", "-shared", "-fPIC", "-o", str(libdir / f"libavutil.so.{major}"), "-x", "c",
                            "-", "-Wl,-soname,libavutil.so." + str(major)],
                           input="int vigil_not_ffmpeg;\n", text=True, capture_output=True)
    assert built.returncode == 0, built.stderr
    env = dict(os.environ, LD_LIBRARY_PATH=str(libdir))
    d = ready_daemon("--models", models, env=env)
    try:
        detect = requests.post(f"{d.url}/api/v1/detect", data=shared_path("images/bus.jpg").read_bytes(),
                               timeout=60)
        assert detect.status_code == 200 and detect.json()["detections"]
        spec = {"name": "door", "url": str(tmp_path / "any.mp4"), "model": "yolov8n"}
        r = requests.post(f"{d.url}/api/v1/streams", json=spec, timeout=10)
        assert r.status_code == 422, r.text
        message = r.json()["error"]
        assert f"libavutil.so.{major} has no av_strerror" in message, message
        assert requests.get(f"{d.url}/api/v1/streams", timeout=10).json() == {"streams": []}
        r = requests.post(f"{d.url}/api/v1/streams", json={**spec, "enabled": False}, timeout=10)
        assert r.status_code == 201 and r.json()["state"] == "disabled", r.text
        assert d.stop() == 0, d.read_log()[-3000:]
    finally:
        d.stop()
