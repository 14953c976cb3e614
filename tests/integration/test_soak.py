"""A short, bounded serve session under mixed load that must end clean.

Eight client threads send, for a fixed number of rounds, everything the
daemon parses and answers: JSON and binary-tensor REST inference (batched
and cached models), detection on PNG bodies, bad requests of each kind,
gRPC ModelInfer and a ModelStreamInfer stream, metrics scrapes, and an
explicit unload/load of a model while it is being used.  Then SIGTERM: the
daemon must exit 0.

Under `make asan` the daemon is the ASan+UBSan build with
ASAN_OPTIONS=detect_leaks=1 (scripts/check.sh), so this test is also the
LeakSanitizer run of a serve session with load: any leak, use after free or
undefined behaviour makes the exit status non-zero and the test fail.
"""
import concurrent.futures
import json

import numpy as np
import requests

from conftest import add_model, ready_daemon
from test_grpc import connect, generate_stubs, infer_request, make_tiny_detector, png_bytes

ROUNDS = 25
CLIENTS = 8


def rest_round(d, k):
    """One round of REST traffic; returns the number of unexpected answers."""
    bad = 0
    x = [float(k)] * 4
    r = requests.post(d.url + "/v2/models/batched/infer", timeout=60,
                      json={"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": x}]})
    bad += r.status_code != 200 or r.json()["outputs"][0]["data"] != [2 * k + 1] * 4
    raw = np.full((2, 4), k, dtype=np.float32).tobytes()
    head = json.dumps({"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32",
                                   "parameters": {"binary_data_size": len(raw)}}],
                       "outputs": [{"name": "y", "parameters": {"binary_data": True}}]}).encode()
    r = requests.post(d.url + "/v2/models/cached/infer", data=head + raw, timeout=60,
                      headers={"Inference-Header-Content-Length": str(len(head))})
    bad += r.status_code != 200
    r = requests.post(d.url + "/api/v1/detect?model=tiny&conf=0.3", data=png_bytes(48, 64, seed=k % 3),
                      headers={"Content-Type": "image/png"}, timeout=60)
    bad += r.status_code != 200 or "detections" not in r.json()
    for method, path, body, code in (
            ("POST", "/v2/models/batched/infer", b"{", 400),
            ("POST", "/v2/models/nope/infer", b"{}", 404),
            ("POST", "/api/v1/detect?model=tiny", b"\xff\xd8\xff\xe0trunc", 400),
            ("DELETE", "/v2/models/batched/infer", b"", 405)):
        r = requests.request(method, d.url + path, data=body, timeout=60)
        bad += r.status_code != code
    bad += requests.get(d.url + "/metrics", timeout=60).status_code != 200
    return bad


def grpc_round(d, pb, k):
    ch = connect(d.grpc_port)
    try:
        stub = pb["inference_pb2_grpc"].GRPCInferenceServiceStub(ch)
        bad = 0
        out = stub.ModelInfer(infer_request(pb, "batched", np.full((1, 4), k, dtype=np.float32)), timeout=60)
        bad += np.frombuffer(out.raw_output_contents[0], dtype="<f4").tolist() != [2 * k + 1] * 4
        answers = list(stub.ModelStreamInfer(
            iter([infer_request(pb, "batched", np.full((1, 4), v, dtype=np.float32)) for v in range(5)]), timeout=60))
        bad += len(answers) != 5 or any(a.error_message for a in answers)
        return bad
    finally:
        ch.close()


def test_mixed_load_then_sigterm_exits_clean(tmp_path):
    models = tmp_path / "models"
    add_model(models, "batched", config="max_batch_size: 8\ndynamic_batching:\n  max_queue_delay_us: 2000\n")
    add_model(models, "cached", config="max_batch_size: 8\nresponse_cache: true\n")
    add_model(models, "spare")
    make_tiny_detector(models / "tiny" / "1" / "model.onnx")
    pb = generate_stubs(tmp_path / "stubs")
    d = ready_daemon("--models", models, "--repository-mode", "explicit")
    try:
        for name in ("batched", "cached", "spare", "tiny"):
            assert requests.post(f"{d.url}/v2/repository/models/{name}/load", timeout=60).status_code == 200
        with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
            jobs = [pool.submit(rest_round, d, k) for k in range(ROUNDS * CLIENTS // 2)]
            jobs += [pool.submit(grpc_round, d, pb, k) for k in range(ROUNDS)]
            for _ in range(3):  # the repository changes under load
                assert requests.post(d.url + "/v2/repository/models/spare/unload", timeout=60).status_code == 200
                assert requests.post(d.url + "/v2/repository/models/spare/load", timeout=60).status_code == 200
            assert sum(j.result() for j in jobs) == 0
    finally:
        assert d.stop() == 0, d.read_log()[-4000:]
