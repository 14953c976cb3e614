"""Live views (GET /api/v1/streams/{name}/live) as serve's streamed answers
(server_call_respond_stream, src/serve/stream_response.c) see them, with real
clients (requests, stream=True): more viewers than HTTP I/O threads each
receive many MJPEG parts while the server still answers other requests (a
viewer waiting for its next frame holds no thread); viewers that go away
mid-stream are noticed and their answers completed (their access lines are
written, the ASan build checks that nothing is left); and a SIGTERM with
viewers still attached ends their bodies cleanly (the chunked body's last
chunk, no reset) and the daemon exits 0 instead of waiting on them.
The MJPEG format itself is checked in test_streams.py.
"""
import json
import time

import pytest
import requests

from clipkit import have_ffmpeg, make_clip
from conftest import ready_daemon, shared_path

VIEWERS = 4
THREADS = 2


def live_answers(d):
    """The access lines of finished live views (written when a stream's answer ends)."""
    lines = [json.loads(x) for x in d.read_log().splitlines() if x.startswith("{")]
    return [x for x in lines if x.get("type") == "access" and x.get("path") == "/api/v1/streams/cam/live"]


def parts(response, chunks, want):
    """Reads from the viewer until `want` more parts have begun; returns the bytes."""
    body = b""
    while body.count(b"--frame\r\n") < want:
        body += next(chunks)
    return body


def test_live_viewers_many_leaving_and_at_shutdown(tmp_path):
    model = shared_path("models/yolov8n.onnx")
    bus = shared_path("images/bus.jpg")
    if not have_ffmpeg():
        pytest.skip("the ffmpeg CLI is not installed (Debian package ffmpeg)")
    clip = make_clip(bus, tmp_path / "bus.mp4", seconds=2, width=320, height=240)
    models = tmp_path / "models"
    (models / "yolov8n" / "1").mkdir(parents=True)
    (models / "yolov8n" / "1" / "model.onnx").symlink_to(model)
    d = ready_daemon("--models", models, "--http-threads", THREADS)
    viewers = []
    try:
        spec = {"name": "cam", "url": str(clip), "model": "yolov8n", "detect_fps": 5, "loop": True}
        assert requests.post(f"{d.url}/api/v1/streams", json=spec, timeout=30).status_code == 201
        live = f"{d.url}/api/v1/streams/cam/live"
        for _ in range(VIEWERS):
            r = requests.get(live, stream=True, timeout=60)
            assert r.status_code == 200, r.text
            viewers.append((r, r.iter_content(chunk_size=4096)))
        for r, chunks in viewers:
            parts(r, chunks, 5)
        # every viewer attached, more of them than I/O threads: other requests are answered
        assert requests.get(f"{d.url}/api/v1/streams", timeout=10).status_code == 200
        assert requests.get(f"{d.url}/healthz", timeout=10).status_code == 200

        # two viewers leave: the server notices at its next write and completes their answers
        for r, _ in viewers[:2]:
            r.close()
        deadline = time.monotonic() + 60
        while len(live_answers(d)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(live_answers(d)) == 2, d.read_log()[-3000:]
        for r, chunks in viewers[2:]:  # the others are served on
            parts(r, chunks, 3)
    finally:
        rc = d.stop()
    # SIGTERM with two viewers attached: both bodies end with the last chunk
    for r, chunks in viewers[2:]:
        for _ in chunks:  # urllib3 raises ProtocolError on a body cut short
            pass
        r.close()
    assert rc == 0, d.read_log()[-3000:]
    answers = live_answers(d)
    assert len(answers) == VIEWERS and all(a["status"] == 200 and a["bytes_out"] > 0 for a in answers)
