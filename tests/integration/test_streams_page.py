"""The Streams page of the web UI in a real browser: starts `vigil serve` with
the shared yolov8n as model `yolov8n` and one stream, `cam`, on a looping
clip of bus.jpg that the test makes with ffmpeg (a still picture, so that the
live view can be compared with a frame decoded here), then runs
tests/browser/streams.test.mjs (playwright-core, Debian's Chromium): the
tile's live view is the annotated frame, the stream reports detections and
events, and a stream added from the page's form appears and is removed by
its button.  Skips when the shared data or ffmpeg is absent; a missing node,
Chromium or playwright-core is a failure with its reason, as in
test_browser.py.

UI_TEST_DOCS_STREAMS_SCREENSHOT=docs/images/streams.png also saves the page
for docs/STREAMS.md.
"""
import os
import subprocess
import sys
import time

import pytest
import requests

from clipkit import first_frame_png, have_ffmpeg, make_clip
from conftest import ROOT, browser_tools, ready_daemon, shared_path

NODE_TIMEOUT_S = 240


def test_streams_page_in_chromium(tmp_path):
    model = shared_path("models/yolov8n.onnx")
    bus = shared_path("images/bus.jpg")
    if not have_ffmpeg():
        pytest.skip("the ffmpeg CLI is not installed (Debian package ffmpeg)")
    node, chromium = browser_tools()

    clip = make_clip(bus, tmp_path / "bus.mp4", seconds=2, width=480, height=640, pan=False)
    raw = first_frame_png(clip, tmp_path / "bus-frame.png")
    models = tmp_path / "models"
    (models / "yolov8n" / "1").mkdir(parents=True)
    (models / "yolov8n" / "1" / "model.onnx").symlink_to(model)
    artifacts = os.environ.get("UI_TEST_ARTIFACTS", str(ROOT / "build" / "browser-artifacts"))
    started = time.time()
    d = ready_daemon("--models", models)
    try:
        r = requests.post(d.url + "/api/v1/streams", json={"name": "cam", "url": str(clip), "model": "yolov8n",
                                                           "detect_fps": 5, "loop": True}, timeout=30)
        assert r.status_code == 201, r.text
        env = dict(os.environ, UI_TEST_URL=d.url, UI_TEST_STREAM="cam", UI_TEST_STREAM_RAW=str(raw),
                   UI_TEST_STREAM_CLIP=str(clip), UI_TEST_STREAM_MODEL="yolov8n", UI_TEST_ARTIFACTS=artifacts,
                   UI_TEST_CHROMIUM=chromium)
        proc = subprocess.run([node, "--test", "--test-reporter=spec", "tests/browser/streams.test.mjs"], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=NODE_TIMEOUT_S)
        after = requests.get(d.url + "/api/v1/streams", timeout=10).json()
    finally:
        rc = d.stop()
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    assert proc.returncode == 0, \
        f"node --test tests/browser/streams.test.mjs failed ({proc.returncode}):\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    assert "# pass 3" in proc.stdout or "ℹ pass 3" in proc.stdout, f"not every browser test ran:\n{proc.stdout[-3000:]}"
    assert [s["name"] for s in after["streams"]] == ["cam"], "the page's test left a stream behind"
    assert rc == 0, f"vigil serve exited with {rc}:\n{d.read_log()[-3000:]}"
    for name in ("streams-desktop.png", "streams-phone.png"):
        path = os.path.join(artifacts, name)
        assert os.path.getsize(path) > 10000 and os.path.getmtime(path) >= started - 1, \
            f"screenshot {path} was not written by this run"
