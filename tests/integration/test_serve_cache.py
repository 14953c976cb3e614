"""The response cache: a model with `response_cache: true` answers a repeated
request from the cache (same bytes back, no second run); other inputs and
models without the setting always run."""
import requests

from conftest import add_model, metric_value, ready_daemon


def body(values):
    return {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": values}]}


def test_repeated_request_is_served_from_cache(tmp_path):
    models = tmp_path / "models"
    add_model(models, "cached", config="response_cache: true\n")
    add_model(models, "plain")
    d = ready_daemon("--models", models)
    try:
        url = d.url + "/v2/models/{}/infer"
        first = requests.post(url.format("cached"), json=body([1, 2, 3, 4]), timeout=10)
        again = requests.post(url.format("cached"), json={"id": "x", **body([1, 2, 3, 4])}, timeout=10)
        other = requests.post(url.format("cached"), json=body([1, 2, 3, 5]), timeout=10)
        assert first.json()["outputs"] == again.json()["outputs"]
        assert again.json()["id"] == "x"
        assert other.json()["outputs"][0]["data"] == [3, 5, 7, 11]
        binary = requests.post(url.format("cached"), timeout=10,
                               json={"parameters": {"binary_data_output": True}, **body([1, 2, 3, 4])})
        assert binary.headers["Inference-Header-Content-Length"]  # a hit still honours the output format
        for _ in range(2):
            requests.post(url.format("plain"), json=body([1, 2, 3, 4]), timeout=10)
        text = requests.get(d.url + "/metrics", timeout=5).text
        assert metric_value(text, "vigil_cache_requests_total", model="cached", result="hit") == 2
        assert metric_value(text, "vigil_cache_requests_total", model="cached", result="miss") == 2
        assert metric_value(text, "vigil_batch_size_count", model="cached") == 2  # only the misses ran
        assert metric_value(text, "vigil_batch_size_count", model="plain") == 2
        assert metric_value(text, "vigil_cache_requests_total", model="plain", result="miss") in (None, 0)
    finally:
        assert d.stop() == 0


def test_cache_disabled_by_size_zero(tmp_path):
    models = tmp_path / "models"
    add_model(models, "cached", config="response_cache: true\n")
    d = ready_daemon("--models", models, "--cache-max-bytes", "0")
    try:
        for _ in range(2):
            r = requests.post(d.url + "/v2/models/cached/infer", json=body([1, 1, 1, 1]), timeout=10)
            assert r.json()["outputs"][0]["data"] == [3, 3, 3, 3]
        text = requests.get(d.url + "/metrics", timeout=5).text
        assert metric_value(text, "vigil_batch_size_count", model="cached") == 2
    finally:
        d.stop()


def test_bad_cache_setting_fails_the_model(tmp_path):
    models = tmp_path / "models"
    add_model(models, "m", config="response_cache: sometimes\n")
    d = ready_daemon("--models", models)
    try:
        (m,) = requests.post(d.url + "/v2/repository/index", timeout=5).json()
        assert m["state"] == "FAILED" and "response_cache" in m["reason"] and ":1:" in m["reason"]
    finally:
        d.stop()
