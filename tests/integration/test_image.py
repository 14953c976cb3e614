"""The container image (issue 20, Must show 1): `make image` builds from the
checkout; the image runs as built (non-root, read-only root filesystem,
host network, talked to on 127.0.0.1), loads yolov8n from ../shared through a
read-only volume, answers /readyz, detects the same boxes as the host binary,
answers a KServe v2 gRPC call, turns healthy through its own HEALTHCHECK, is
at most 60 MB, and stops cleanly (exit 0) on SIGTERM within the shutdown
timeout.  The daemon and the image come from dockerkit (session fixtures)."""
import json
import pathlib
import time

import numpy as np
import pytest
import requests

from conftest import free_port, run_vigil, shared_path
from test_engine_parity import assert_close
from test_grpc import connect, generate_stubs

SIZE_LIMIT = 60 * 1000 * 1000  # the 60 MB, decimal (57.2 MiB)
SHUTDOWN_TIMEOUT_S = 10        # limits.shutdown_timeout_ms's default


def start_container(docker, image, tmp_path, name):
    """Runs the image as built (its own user, entrypoint and command) with
    yolov8n mounted: the repository folder is tmp_path's, the model file is
    the shared one itself, bind-mounted read-only (never copied)."""
    model = shared_path("models/yolov8n.onnx")
    repo = tmp_path / "models"
    (repo / "yolov8n" / "1").mkdir(parents=True)
    (repo / "yolov8n" / "1" / "model.onnx").touch()  # the mount point inside a read-only volume
    http_port, grpc_port = free_port(), free_port()
    docker.docker("run", "-d", "--name", name, "--network", "host", "--read-only", "--tmpfs", "/tmp",
                  "--tmpfs", "/data:uid=65532,gid=65532", "--health-interval", "1s",
                  "-e", f"VIGIL_HTTP_PORT={http_port}", "-e", f"VIGIL_GRPC_PORT={grpc_port}",
                  "-v", f"{repo}:/models:ro", "-v", f"{model}:/models/yolov8n/1/model.onnx:ro", image)
    url = f"http://127.0.0.1:{http_port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "/readyz", timeout=2).status_code == 200:
                return url, grpc_port
        except requests.ConnectionError:
            pass
        if docker.docker("inspect", "--format", "{{.State.Running}}", name).stdout.strip() != "true":
            break
        time.sleep(0.2)
    logs = docker.docker("logs", name, check=False).stderr
    docker.docker("rm", "-f", name, check=False)
    pytest.fail(f"the container did not become ready: {logs[-3000:]}")


@pytest.fixture(scope="module")
def container(vigil_image, docker, tmp_path_factory):
    name = f"vigil-image-test-{free_port()}"
    url, grpc_port = start_container(docker, vigil_image["tag"], tmp_path_factory.mktemp("image"), name)
    # Tests take Docker from here: asked for beside container, pytest would
    # set it up first and start a daemon even when vigil_image skips.
    yield {"name": name, "url": url, "grpc_port": grpc_port, "docker": docker}
    docker.docker("rm", "-f", name, check=False)


def inspect(docker, name, template):
    return docker.docker("inspect", "--format", template, name).stdout.strip()


def test_size_and_configuration(vigil_image, docker):
    size = vigil_image["size"]
    print(f"image {vigil_image['tag']}: {size} bytes ({size / 1e6:.1f} MB), make image took "
          f"{vigil_image['build_s']:.1f} s")
    assert size <= SIZE_LIMIT, f"image is {size / 1e6:.1f} MB, above the 60 MB target"
    config = json.loads(docker.docker("image", "inspect", "--format", "{{json .Config}}", vigil_image["tag"]).stdout)
    assert config["User"] == "65532:65532"
    assert config["Entrypoint"] == ["/usr/bin/vigil"]
    assert config["Healthcheck"]["Test"] == ["CMD", "/usr/bin/vigil", "health"]
    assert set(config["Volumes"]) == {"/models", "/data"}
    assert set(config["ExposedPorts"]) == {"8000/tcp", "50051/tcp"}


def test_runs_as_non_root_on_a_read_only_root(container):
    docker = container["docker"]
    assert inspect(docker, container["name"], "{{.HostConfig.ReadonlyRootfs}}") == "true"
    pid = inspect(docker, container["name"], "{{.State.Pid}}")
    status = pathlib.Path(f"/proc/{pid}/status").read_text()
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    assert uids == ["65532"] * 4, status
    r = docker.docker("exec", container["name"], "/usr/bin/vigil", "version")  # the only program in the image
    assert r.stdout.startswith("vigil ")
    assert docker.docker("exec", container["name"], "/bin/sh", "-c", "true", check=False).returncode != 0


def test_ready_and_detect_same_boxes_as_host(container):
    assert requests.get(container["url"] + "/readyz", timeout=5).json() == {"status": "ready"}
    for image in ("bus.jpg", "zidane.jpg"):
        path = shared_path(f"images/{image}")
        host = run_vigil("detect", "--model", shared_path("models/yolov8n.onnx"), "--json", path)
        assert host.returncode == 0, host.stderr
        want = json.loads(host.stdout)["detections"]
        with open(path, "rb") as f:
            r = requests.post(container["url"] + "/api/v1/detect", files={"image": f}, timeout=60)
        assert r.status_code == 200, r.text
        got = r.json()["detections"]
        assert [d["class_id"] for d in got] == [d["class_id"] for d in want], image
        for g, w in zip(got, want):
            assert g["score"] == pytest.approx(w["score"], abs=1e-3)
            assert g["box"] == pytest.approx(w["box"], abs=0.05)


def test_kserve_grpc_infer(container, tmp_path):
    pb = generate_stubs(tmp_path / "stubs")
    ipb = pb["inference_pb2"]
    channel = connect(container["grpc_port"])
    try:
        kserve = pb["inference_pb2_grpc"].GRPCInferenceServiceStub(channel)
        assert kserve.ServerReady(ipb.ServerReadyRequest()).ready is True
        assert kserve.ModelReady(ipb.ModelReadyRequest(name="yolov8n")).ready is True
        x = np.load(shared_path("reference/yolov8n__bus__input.npy"))
        req = ipb.ModelInferRequest(model_name="yolov8n")
        req.inputs.add(name="images", datatype="FP32", shape=list(x.shape))
        req.raw_input_contents.append(x.astype("<f4").tobytes())
        reply = kserve.ModelInfer(req, timeout=60)
    finally:
        channel.close()
    out = reply.outputs[0]
    assert out.name == "output0" and list(out.shape) == [1, 84, 8400]
    got = np.frombuffer(reply.raw_output_contents[0], dtype="<f4").reshape(out.shape)
    assert_close(got, np.load(shared_path("reference/yolov8n__bus__output0.npy")), "yolov8n in the image")


def test_healthcheck_turns_healthy(container):
    docker = container["docker"]
    deadline = time.monotonic() + 30
    while inspect(docker, container["name"], "{{.State.Health.Status}}") != "healthy":
        assert time.monotonic() < deadline, inspect(docker, container["name"], "{{json .State.Health}}")
        time.sleep(0.5)
    last = json.loads(inspect(docker, container["name"], "{{json .State.Health}}"))["Log"][-1]
    assert last["ExitCode"] == 0 and "vigil health: ready" in last["Output"]


def test_sigterm_stops_cleanly(vigil_image, docker, tmp_path):
    name = f"vigil-image-stop-{free_port()}"
    start_container(docker, vigil_image["tag"], tmp_path, name)
    try:
        # docker stop sends SIGTERM and SIGKILLs after -t seconds: a kill
        # would show as exit code 137, so 0 means it drained in time.
        docker.docker("stop", "-t", SHUTDOWN_TIMEOUT_S + 5, name, timeout=60)
        assert inspect(docker, name, "{{.State.ExitCode}}") == "0"
        logs = docker.docker("logs", name).stderr
        assert "received SIGTERM, shutting down" in logs
    finally:
        docker.docker("rm", "-f", name, check=False)
