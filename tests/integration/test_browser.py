"""The web UI in a real browser: starts `vigil serve` on a repository holding
the shared yolov8n as model `yolov8n`, then runs the playwright-core tests in
tests/browser/ (`node --test`) against it with Debian's Chromium.

The Node tests get the server's URL (UI_TEST_URL), its model repository
(UI_TEST_REPOSITORY: the upload test removes the model it added), the shared
data (VIGIL_SHARED_DIR) and the screenshot folder (UI_TEST_ARTIFACTS, default
build/browser-artifacts).  The repository must hold after the run exactly what
it held before.  Skips only when the shared data is absent; a missing node,
Chromium or playwright-core is a failure with its reason.
"""
import os
import subprocess
import sys
import time

from conftest import ROOT, browser_tools, ready_daemon, shared_path

SCREENSHOTS = [f"{page}-{width}.png" for width in ("phone", "desktop") for page in ("detect", "models", "server")] + [
    "detect-edges-phone.png", "detect-edges-desktop.png", "server-load.png", "models-upload.png", "keyboard-detect.png"]


def tree(folder):
    """Every entry under folder: {relative path: what it is (link target, file size or folder)}."""
    entries = {}
    for base, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(base, name)
            rel = os.path.relpath(path, folder)
            if os.path.islink(path):
                entries[rel] = f"link to {os.readlink(path)}"
            elif os.path.isdir(path):
                entries[rel] = "folder"
            else:
                entries[rel] = f"{os.path.getsize(path)} bytes"
    return entries

NODE_TIMEOUT_S = 240  # the suite takes about 30 s on an idle 2-core machine


def test_web_ui_in_chromium(tmp_path):
    model = shared_path("models/yolov8n.onnx")
    shared_path("images/bus.jpg")
    node, chromium = browser_tools()

    models = tmp_path / "models"
    (models / "yolov8n" / "1").mkdir(parents=True)
    (models / "yolov8n" / "1" / "model.onnx").symlink_to(model)
    artifacts = os.environ.get("UI_TEST_ARTIFACTS", str(ROOT / "build" / "browser-artifacts"))
    before = tree(models)
    started = time.time()
    d = ready_daemon("--models", models)
    try:
        env = dict(os.environ, UI_TEST_URL=d.url, UI_TEST_REPOSITORY=str(models), VIGIL_SHARED_DIR=str(model.parents[1]),
                   UI_TEST_ARTIFACTS=artifacts, UI_TEST_CHROMIUM=chromium)
        proc = subprocess.run([node, "--test", "--test-reporter=spec", "tests/browser/"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=NODE_TIMEOUT_S)
    finally:
        rc = d.stop()
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    after = tree(models)
    changed = sorted(f"{k}: {before.get(k, 'absent')} -> {after.get(k, 'absent')}"
                     for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert proc.returncode == 0, f"node --test tests/browser/ failed ({proc.returncode}):\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    assert rc == 0, f"vigil serve exited with {rc}:\n{d.read_log()[-3000:]}"
    assert not changed, f"the browser tests left the model repository {models} changed: {changed}"
    for name in SCREENSHOTS:
        path = os.path.join(artifacts, name)
        assert os.path.getsize(path) > 10000 and os.path.getmtime(path) >= started - 1, \
            f"screenshot {path} was not written by this run"
