"""The model repository behind the daemon: broken models are reported and
skipped while the rest serve, config.yaml errors name key and line, explicit
mode loads only through the API, reloads pick up new versions."""
import requests

from conftest import add_model, ready_daemon

X = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}


def index(d):
    r = requests.post(d.url + "/v2/repository/index", timeout=5)
    assert r.status_code == 200
    return {m["name"]: m for m in r.json()}


def test_broken_models_are_reported_and_others_serve(tmp_path):
    models = tmp_path / "models"
    add_model(models, "good")
    (models / "garbage" / "1").mkdir(parents=True)
    (models / "garbage" / "1" / "model.onnx").write_bytes(b"this is not an onnx file")
    add_model(models, "badcfg", config="max_batch_size: 4\ncolour: blue\n")
    add_model(models, "badvalue", config="instances: many\n")
    (models / "empty").mkdir()
    (models / "bad name!").mkdir()
    d = ready_daemon("--models", models)
    try:
        idx = index(d)
        assert idx["good"]["state"] == "READY" and idx["good"]["version"] == "1"
        assert idx["garbage"]["state"] == "FAILED" and idx["garbage"]["reason"]
        assert idx["badcfg"]["state"] == "FAILED"
        assert "config.yaml:2" in idx["badcfg"]["reason"] and "colour" in idx["badcfg"]["reason"]
        assert idx["badvalue"]["state"] == "FAILED" and "instances" in idx["badvalue"]["reason"]
        assert idx["empty"]["state"] == "FAILED" and "no version folder" in idx["empty"]["reason"]
        assert "bad name!" not in idx
        assert requests.post(d.url + "/v2/models/good/infer", json=X, timeout=5).status_code == 200
        r = requests.post(d.url + "/v2/models/garbage/infer", json=X, timeout=5)
        assert r.status_code == 503 and "FAILED" in r.json()["error"] and r.headers["Retry-After"]
        seed = {m["name"]: m for m in requests.get(d.url + "/api/v1/models", timeout=5).json()["models"]}
        assert seed["good"]["state"] == "READY" and seed["garbage"]["state"] == "FAILED"
        ready_only = requests.post(d.url + "/v2/repository/index", json={"ready": True}, timeout=5).json()
        assert [m["name"] for m in ready_only] == ["good"]
    finally:
        assert d.stop() == 0
    assert "garbage" in d.stderr  # the failure is logged


def test_explicit_mode_load_unload_and_reload(tmp_path):
    models = tmp_path / "models"
    add_model(models, "m")
    d = ready_daemon("--models", models, "--repository-mode", "explicit")
    try:
        assert index(d)["m"]["state"] == "UNAVAILABLE"
        assert requests.post(d.url + "/v2/models/m/infer", json=X, timeout=5).status_code == 503
        assert requests.post(d.url + "/v2/repository/models/m/load", timeout=30).status_code == 200
        r = requests.post(d.url + "/v2/models/m/infer", json=X, timeout=5)
        assert r.json()["outputs"][0]["data"] == [3, 5, 7, 9] and r.json()["model_version"] == "1"
        # A new version appears; a reload serves it.
        add_model(models, "m", version=2, scale=10.0, offset=0.0)
        assert requests.post(d.url + "/api/v1/models/load", json={"model": "m"}, timeout=30).status_code == 200
        r = requests.post(d.url + "/v2/models/m/infer", json=X, timeout=5)
        assert r.json()["outputs"][0]["data"] == [10, 20, 30, 40] and r.json()["model_version"] == "2"
        assert requests.post(d.url + "/v2/repository/models/m/unload", timeout=30).status_code == 200
        assert index(d)["m"]["state"] == "UNAVAILABLE"
        assert requests.post(d.url + "/v2/models/m/infer", json=X, timeout=5).status_code == 503
        assert requests.post(d.url + "/api/v1/models/unload", json={"model": "m"}, timeout=5).status_code == 200
    finally:
        assert d.stop() == 0


def test_load_errors(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    d = ready_daemon("--models", models, "--repository-mode", "explicit")
    try:
        r = requests.post(d.url + "/v2/repository/models/ghost/load", timeout=5)
        assert r.status_code == 404 and "ghost" in r.json()["error"]
        r = requests.post(d.url + "/api/v1/models/load", json={"model": "../etc"}, timeout=5)
        assert r.status_code == 400 and "invalid model name" in r.json()["error"]
        assert requests.post(d.url + "/api/v1/models/load", data=b"[1]", timeout=5).status_code == 400
        assert requests.post(d.url + "/v2/repository/models/ghost/unload", timeout=5).status_code == 404
    finally:
        d.stop()


def test_poll_mode_picks_up_new_models(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    d = ready_daemon("--models", models, "--repository-mode", "poll", "--repository-poll-interval-ms", "100")
    try:
        add_model(models, "late")
        import time
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and index(d).get("late", {}).get("state") != "READY":
            time.sleep(0.1)
        assert requests.post(d.url + "/v2/models/late/infer", json=X, timeout=5).status_code == 200
        # A directory that disappears is unloaded.
        import shutil
        shutil.rmtree(models / "late")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and index(d).get("late", {}).get("state") in ("READY", "UNLOADING"):
            time.sleep(0.1)
        assert index(d)["late"]["state"] == "UNAVAILABLE"
        assert requests.post(d.url + "/v2/models/late/infer", json=X, timeout=5).status_code == 503
    finally:
        assert d.stop() == 0
