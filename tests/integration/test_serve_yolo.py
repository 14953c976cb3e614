"""Raw tensors through the real YOLOv8n (symbolic batch): two concurrent
binary requests form one batch of 2, and each gets ONNX Runtime's output
for its image back (reference .npy files in the shared data)."""
import concurrent.futures
import json
import os

import numpy as np
import requests

from conftest import metric_value, ready_daemon, shared_path

CONFIG = """task: raw
max_batch_size: 2
dynamic_batching:
  max_queue_delay_us: 2000000
  preferred_batch_sizes: [2]
"""


def binary_infer(url, x):
    header = json.dumps({"inputs": [{"name": "images", "shape": list(x.shape), "datatype": "FP32",
                                     "parameters": {"binary_data_size": x.nbytes}}],
                         "parameters": {"binary_data_output": True}}).encode()
    r = requests.post(url + "/v2/models/yolo/infer", data=header + x.astype("<f4").tobytes(), timeout=120,
                      headers={"Inference-Header-Content-Length": str(len(header))})
    assert r.status_code == 200, r.text
    n = int(r.headers["Inference-Header-Content-Length"])
    (out,) = json.loads(r.content[:n])["outputs"]
    return np.frombuffer(r.content[n:], dtype="<f4").reshape(out["shape"])


def test_batched_yolo_matches_onnxruntime(tmp_path):
    model = shared_path("models/yolov8n_dynbatch.onnx")
    x = np.load(shared_path("reference/yolov8n__bus__input.npy"))
    ref = np.load(shared_path("reference/yolov8n__bus__output0.npy"))
    models = tmp_path / "models"
    (models / "yolo" / "1").mkdir(parents=True)
    os.symlink(model, models / "yolo" / "1" / "model.onnx")
    (models / "yolo" / "config.yaml").write_text(CONFIG)
    d = ready_daemon("--models", models)
    try:
        meta = requests.get(d.url + "/v2/models/yolo", timeout=5).json()
        assert meta["inputs"][0]["shape"] == [-1, 3, 640, 640] and meta["outputs"][0]["shape"] == [-1, 84, 8400]
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            outs = list(pool.map(lambda _: binary_infer(d.url, x), range(2)))
        for out in outs:
            assert out.shape == ref.shape == (1, 84, 8400)
            big = np.abs(ref) > 1e-2
            rel = np.abs(out - ref)[big] / np.abs(ref)[big]
            assert rel.max() < 1e-3, f"max relative difference {rel.max()}"
        text = requests.get(d.url + "/metrics", timeout=5).text
        assert metric_value(text, "vigil_batch_size_count", model="yolo") == 1
        assert metric_value(text, "vigil_batch_size_sum", model="yolo") == 2
    finally:
        assert d.stop() == 0
