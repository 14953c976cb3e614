"""PUT /api/v1/models/{m}/versions/{v}: uploads are checked by loading before
they appear in the repository, then served."""
import requests

from conftest import add_model, make_affine_onnx, ready_daemon

X = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}


def leftovers(models):
    return [p.name for p in models.iterdir() if p.name.startswith(".upload")]


def test_upload_new_model_and_version(tmp_path):
    models = tmp_path / "models"
    add_model(models, "base")
    onnx_bytes = make_affine_onnx(tmp_path / "a.onnx", scale=5.0, offset=0.0).read_bytes()
    d = ready_daemon("--models", models, "--http-max-upload-bytes", "100000")
    try:
        r = requests.put(d.url + "/api/v1/models/fresh/versions/3", data=onnx_bytes, timeout=30)
        assert r.status_code == 201, r.text
        assert r.json() == {"model": "fresh", "version": 3, "state": "READY", "bytes": len(onnx_bytes)}
        assert (models / "fresh" / "3" / "model.onnx").read_bytes() == onnx_bytes
        out = requests.post(d.url + "/v2/models/fresh/infer", json=X, timeout=10).json()
        assert out["model_version"] == "3" and out["outputs"][0]["data"] == [5, 10, 15, 20]
        # A newer version of a serving model replaces it.
        v2 = make_affine_onnx(tmp_path / "b.onnx", scale=0.0, offset=7.0).read_bytes()
        assert requests.put(d.url + "/api/v1/models/base/versions/2", data=v2, timeout=30).status_code == 201
        out = requests.post(d.url + "/v2/models/base/infer", json=X, timeout=10).json()
        assert out["model_version"] == "2" and out["outputs"][0]["data"] == [7, 7, 7, 7]
        # An existing version is a conflict.
        r = requests.put(d.url + "/api/v1/models/base/versions/2", data=v2, timeout=30)
        assert r.status_code == 409 and "exists" in r.json()["error"]
    finally:
        assert d.stop() == 0
    assert leftovers(models) == []


def test_bad_uploads_leave_nothing_behind(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    d = ready_daemon("--models", models, "--http-max-upload-bytes", "2048")
    try:
        r = requests.put(d.url + "/api/v1/models/junk/versions/1", data=b"not onnx" * 10, timeout=30)
        assert r.status_code in (400, 422) and "does not load" in r.json()["error"]
        assert not (models / "junk" / "1").exists()
        r = requests.put(d.url + "/api/v1/models/big/versions/1", data=b"0" * 5000, timeout=30)
        assert r.status_code == 413 and "max_upload_bytes" in r.json()["error"]
        r = requests.put(d.url + "/api/v1/models/bad%20name/versions/1", data=b"x", timeout=30)
        assert r.status_code == 400
        r = requests.put(d.url + "/api/v1/models/ok/versions/zero", data=b"x", timeout=30)
        assert r.status_code == 400
        assert requests.post(d.url + "/api/v1/models/ok/versions/1", data=b"x", timeout=30).status_code == 405
        assert leftovers(models) == []
    finally:
        d.stop()


def test_upload_in_explicit_mode_is_not_loaded(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    onnx_bytes = make_affine_onnx(tmp_path / "a.onnx").read_bytes()
    d = ready_daemon("--models", models, "--repository-mode", "explicit")
    try:
        r = requests.put(d.url + "/api/v1/models/later/versions/1", data=onnx_bytes, timeout=30)
        assert r.status_code == 201 and r.json()["state"] == "UNAVAILABLE"
        assert requests.post(d.url + "/v2/repository/models/later/load", timeout=30).status_code == 200
        assert requests.post(d.url + "/v2/models/later/infer", json=X, timeout=10).status_code == 200
    finally:
        d.stop()
