"""Hot reload under load (issue 6, item 2): in poll mode a new version copied
into the repository replaces the old one while clients keep sending requests,
and not one request fails across the switch."""
import os
import threading
import time

import requests

from conftest import make_affine_onnx, ready_daemon

THREADS = 4
BODY = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1.0, 2.0, 3.0, 4.0]}]}
V1 = [2.0 * v + 1.0 for v in (1, 2, 3, 4)]   # scale 2, offset 1
V2 = [3.0 * v + 1.0 for v in (1, 2, 3, 4)]   # scale 3, offset 1


def load_loop(url, stop, results, lock):
    """Sends infer requests until stop is set; records (t, status, version, data) or the exception."""
    session = requests.Session()
    while not stop.is_set():
        t = time.monotonic()
        try:
            r = session.post(f"{url}/v2/models/affine/infer", json=BODY, timeout=10)
            if r.status_code == 200:
                j = r.json()
                entry = (t, 200, j.get("model_version"), j["outputs"][0]["data"])
            else:
                entry = (t, r.status_code, None, r.text[:200])
        except requests.RequestException as e:
            entry = (t, "error", None, repr(e))
        with lock:
            results.append(entry)


def install_version(models, version, scale):
    """Writes models/affine/<version>/ under a temporary name, then renames it
    into place so the poller never sees a half-written version."""
    tmp = models / "affine" / f".tmp-{version}"
    make_affine_onnx(tmp / "model.onnx", scale=scale, offset=1.0)
    os.rename(tmp, models / "affine" / str(version))


def remove_version(models, name, version):
    """Takes models/<name>/<version> away (its model.onnx, then the folder)."""
    (models / name / str(version) / "model.onnx").unlink()
    (models / name / str(version)).rmdir()


def under_load(d, threads, stop, swap, join_timeout):
    """Runs swap() while the load threads run, then stops them and the
    daemon; returns the daemon's exit code."""
    try:
        for th in threads:
            th.start()
        swap()
    finally:
        stop.set()
        for th in threads:
            th.join(timeout=join_timeout)
    return d.stop()


def test_new_version_replaces_old_without_failed_requests(tmp_path):
    models = tmp_path / "models"
    (models / "affine").mkdir(parents=True)
    install_version(models, 1, 2.0)
    d = ready_daemon("--models", models, "--repository-mode", "poll",
                     "--repository-poll-interval-ms", "200")
    stop, lock, results = threading.Event(), threading.Lock(), []
    threads = [threading.Thread(target=load_loop, args=(d.url, stop, results, lock)) for _ in range(THREADS)]

    def swap():
        time.sleep(1.5)
        install_version(models, 2, 3.0)
        # Wait until version 2 answers, then take version 1 away.
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            with lock:
                if any(e[2] == "2" for e in results):
                    break
            time.sleep(0.05)
        remove_version(models, "affine", 1)
        time.sleep(2.0)

    code = under_load(d, threads, stop, swap, 15)
    assert code == 0, d.stderr[-2000:]

    results.sort(key=lambda e: e[0])
    failed = [e for e in results if e[1] != 200]
    assert not failed, f"{len(failed)} of {len(results)} requests failed, first: {failed[:3]}"
    assert len(results) > 50, f"only {len(results)} requests in the load window"
    for _, _, version, data in results:
        assert (version, data) in (("1", V1), ("2", V2)), f"version {version} answered {data}"
    versions = [e[2] for e in results]
    assert versions[0] == "1", "the load started before version 1 answered"
    assert versions[-1] == "2", "version 2 never took over"
    first_v2 = versions.index("2")
    # After the switch settles (requests in flight at that moment may still
    # finish on version 1), only version 2 answers.
    settled = [e for e in results if e[0] > results[first_v2][0] + 1.0]
    assert settled and all(e[2] == "2" for e in settled), "version 1 still answered after the switch"
    assert versions[:first_v2].count("1") > 10, "too few version 1 answers before the switch"


def test_grpc_detect_streams_across_version_swaps(tmp_path):
    """gRPC StreamDetect answers are sent by the model's worker, which also
    lets go of the request's model reference unless it is the last (freeing
    a retired version joins its workers: a completion thread does that).
    Four streams of raw frames while versions 1 to 4 replace each other in
    poll mode: every frame answered, none refused, the server stops
    cleanly."""
    import grpc
    import numpy as np
    from test_grpc import connect, generate_stubs, make_tiny_detector
    pb = generate_stubs(tmp_path / "stubs")
    models = tmp_path / "models"

    def install(version):
        tmp = models / "det" / f".tmp-{version}"
        tmp.mkdir(parents=True)
        make_tiny_detector(tmp / "model.onnx")
        os.rename(tmp, models / "det" / str(version))

    install(1)
    (models / "det" / "config.yaml").write_text("instances: 2\nmax_batch_size: 4\n")
    d = ready_daemon("--models", models, "--repository-mode", "poll", "--repository-poll-interval-ms", "100")
    dpb = pb["detection_pb2"]
    frame = np.random.default_rng(5).integers(0, 256, size=(48, 64, 3), dtype=np.uint8).tobytes()
    stop, lock, answers, errors = threading.Event(), threading.Lock(), [], []

    def stream():
        ch = connect(d.grpc_port)
        stub = pb["detection_pb2_grpc"].DetectionStub(ch)

        def requests_():
            i = 0
            while not stop.is_set():
                yield dpb.DetectRequest(image=frame, raw=dpb.RawFrame(width=64, height=48), model="det", frame_id=i)
                i += 1
        try:
            for r in stub.StreamDetect(requests_(), timeout=60):
                with lock:
                    (errors if r.error else answers).append(r.error or r.frame_id)
        except grpc.RpcError as e:
            with lock:
                errors.append(repr(e))
        finally:
            ch.close()

    threads = [threading.Thread(target=stream) for _ in range(4)]

    def swaps():
        for version in (2, 3, 4):
            time.sleep(0.8)
            install(version)
            time.sleep(0.5)
            remove_version(models, "det", version - 1)
        time.sleep(0.8)

    code = under_load(d, threads, stop, swaps, 30)
    assert code == 0, d.stderr[-3000:]
    assert not errors, errors[:3]
    assert len(answers) > 100, len(answers)
