"""Instances and models share the CPU: the compute threads are one pool per
device (`threads`), so loading more models or instances adds only the
scheduler's one worker thread per instance, never another pool."""
import concurrent.futures
import pathlib

import requests

from conftest import add_model, ready_daemon


def thread_count(pid):
    """vigil's own threads outside its front ends: unnamed ("vigil") and the
    models' workers ("w-<model>"); gRPC's and libmicrohttpd's name theirs,
    gRPC's event engine grows and shrinks on its own, and the front ends'
    are named for what they do (grpc-poll, http-gate, ...)."""
    tasks = pathlib.Path(f"/proc/{pid}/task")
    names = [(t / "comm").read_text().strip() for t in tasks.iterdir()]
    return sum(n == "vigil" or n.startswith("w-") for n in names)


def busy(d, models, rounds=20):
    body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda k: requests.post(f"{d.url}/v2/models/{models[k % len(models)]}/infer",
                                                      json=body, timeout=30).status_code, range(rounds)))
    assert codes == [200] * rounds


def test_more_models_and_instances_add_no_compute_threads(tmp_path):
    counts = {}
    for n_models in (1, 4):
        models = tmp_path / f"models{n_models}"
        names = [f"m{i}" for i in range(n_models)]
        for name in names:
            add_model(models, name, config="instances: 2\nmax_batch_size: 4\n")
        d = ready_daemon("--models", models, "--threads", "4")
        try:
            busy(d, names)  # every instance has run, so any lazily started threads exist
            counts[n_models] = thread_count(d.proc.pid)
        finally:
            assert d.stop() == 0
    # 3 more models x 2 instances: 6 scheduler workers, and no pool threads
    assert counts[4] - counts[1] == 6, counts


def test_device_info_reports_the_shared_pool(tmp_path):
    models = tmp_path / "models"
    add_model(models, "m0")
    d = ready_daemon("--models", models, "--threads", "3")
    try:
        info = requests.get(d.url + "/api/v1/device/info", timeout=10).json()
        text = str(info)
        assert "3 compute threads shared by all models" in text, text
    finally:
        assert d.stop() == 0
