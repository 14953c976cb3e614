"""Starting `vigil serve`, and the first errors a user meets: one vigil per
port (HTTP and gRPC alike, a refusal in one line that names the port, the
setting, the flag and the variable, nothing left half-started), a missing
model repository, one log format for every line, query and request errors
that name the one field that was wrong, and `scripts/run.sh` announcing the
port it really serves on.  Everything listens on 127.0.0.1 only."""
import json
import os
import pathlib
import signal
import socket
import subprocess
import time

import grpc
import pytest
import requests

from conftest import ROOT, Daemon, free_port, ready_daemon, vigil_binary
from test_grpc import connect, generate_stubs, make_tiny_detector, png_bytes

# ---------------------------------------------------------------- helpers


def serve_refused(*args, env=None, timeout=30):
    """Runs `vigil serve` on loopback expecting it to refuse to start: returns
    (exit status, stdout, stderr).  A server that starts instead is killed
    and the test fails."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    cmd = [vigil_binary(), "serve", "--host", "127.0.0.1", *map(str, args)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"vigil serve {' '.join(map(str, args))} started instead of refusing:\n{err[-3000:]}")
    return proc.returncode, out, err


def listening_socket(reuseport=False):
    """A socket listening on a free loopback port (SO_REUSEPORT only when
    asked): the other program that holds the port."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if reuseport:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    return s


def assert_port_refusal(code, out, err, what, port):
    """One line on stderr naming the port and the three ways to change it;
    a failure exit; no listener was started on the way."""
    setting = {"HTTP": "http.port", "gRPC": "grpc.port"}[what]
    flag = "--" + setting.replace(".", "-")
    variable = "VIGIL_" + setting.replace(".", "_").upper()
    assert code != 0, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert f"{what} port {port} is already in use" in lines[0], lines[0]
    for name in (setting, flag, variable):
        assert name in lines[0], lines[0]
    assert "Failed to bind" not in err and "listening on" not in err + out, err


def grpc_health_serving(port):
    """grpc.health.v1.Health/Check on port, with the messages hand-encoded:
    True when the answer is SERVING (field 1 = 1)."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        check = ch.unary_unary("/grpc.health.v1.Health/Check", request_serializer=None,
                               response_deserializer=None)
        return check(b"", timeout=10) == b"\x08\x01"


def empty_models(tmp_path):
    models = tmp_path / "models"
    models.mkdir(exist_ok=True)
    return models


# ---------------------------------------------------------------- ports


def test_busy_http_port_is_one_line_and_starts_nothing(tmp_path):
    holder = listening_socket()
    port = holder.getsockname()[1]
    try:
        code, out, err = serve_refused("--http-port", port, "--grpc-port", free_port(),
                                       "--models", empty_models(tmp_path))
    finally:
        holder.close()
    assert_port_refusal(code, out, err, "HTTP", port)


def test_busy_grpc_port_is_one_line_and_http_never_listens(tmp_path):
    holder = listening_socket()
    port = holder.getsockname()[1]
    try:
        code, out, err = serve_refused("--http-port", free_port(), "--grpc-port", port,
                                       "--models", empty_models(tmp_path), "--log-format", "text")
    finally:
        holder.close()
    assert_port_refusal(code, out, err, "gRPC", port)


def test_port_held_with_so_reuseport_is_refused_too(tmp_path):
    """A listener that allows sharing (as gRPC core's default did) must not
    let vigil join it."""
    holder = listening_socket(reuseport=True)
    port = holder.getsockname()[1]
    try:
        code, out, err = serve_refused("--http-port", free_port(), "--grpc-port", port,
                                       "--models", empty_models(tmp_path))
    finally:
        holder.close()
    assert_port_refusal(code, out, err, "gRPC", port)


def test_second_vigil_on_the_same_ports_is_refused_and_the_first_keeps_serving(tmp_path):
    first = Daemon("--models", empty_models(tmp_path))
    try:
        connect(first.grpc_port).close()  # its gRPC listener is up
        # Same gRPC port, its own HTTP port: gRPC core used to share the port.
        code, out, err = serve_refused("--http-port", free_port(), "--grpc-port", first.grpc_port,
                                       "--models", empty_models(tmp_path))
        assert_port_refusal(code, out, err, "gRPC", first.grpc_port)
        # Same HTTP port, its own gRPC port.
        code, out, err = serve_refused("--http-port", first.http_port, "--grpc-port", free_port(),
                                       "--models", empty_models(tmp_path))
        assert_port_refusal(code, out, err, "HTTP", first.http_port)
        # The first one answered none of that and serves on, on both ports.
        for _ in range(20):  # a shared port would send some of these elsewhere
            assert grpc_health_serving(first.grpc_port)
            assert requests.get(first.url + "/healthz", timeout=5).status_code == 200
    finally:
        assert first.stop() == 0, first.stderr[-3000:]


def test_busy_port_from_the_environment_names_the_variable(tmp_path):
    holder = listening_socket()
    port = holder.getsockname()[1]
    try:
        code, out, err = serve_refused("--grpc-port", free_port(), "--models", empty_models(tmp_path),
                                       env={"VIGIL_HTTP_PORT": str(port)})
    finally:
        holder.close()
    assert_port_refusal(code, out, err, "HTTP", port)


# ---------------------------------------------------------------- repository


def test_missing_model_repository_is_one_clear_line(tmp_path):
    missing = tmp_path / "nonexistent"
    code, out, err = serve_refused("--http-port", free_port(), "--grpc-port", free_port(), "--models", missing)
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert f"model repository {missing} does not exist" in lines[0], lines[0]
    assert "--models" in lines[0] and f"mkdir -p {missing}" in lines[0], lines[0]
    assert "empty" not in err and "listening on" not in err + out, err
    assert not missing.exists()


# ---------------------------------------------------------------- log format


def test_text_log_format_governs_every_line_access_lines_included(tmp_path):
    d = Daemon("--models", empty_models(tmp_path), "--log-format", "text")
    try:
        assert requests.get(d.url + "/healthz", timeout=5).status_code == 200
        assert requests.get(d.url + "/no/such%0Aroute", timeout=5).status_code == 404
        time.sleep(0.2)  # the access line is written just after the answer
    finally:
        assert d.stop() == 0
    lines = [line for line in d.stderr.splitlines() if line.strip()]
    access = [line for line in lines if line.startswith("vigil: access: ")]
    assert any("GET /healthz 200" in line for line in access), d.stderr
    assert any(" 404 " in line and "/no/such?route" in line for line in access), d.stderr
    for line in lines:
        assert line.startswith("vigil: ") and not line.lstrip().startswith("{"), line


def test_json_log_format_governs_every_line(tmp_path):
    d = Daemon("--models", empty_models(tmp_path), "--log-format", "json")
    try:
        assert requests.get(d.url + "/healthz", timeout=5).status_code == 200
        time.sleep(0.2)
    finally:
        assert d.stop() == 0
    records = [json.loads(line) for line in d.stderr.splitlines() if line.strip()]
    assert any(r.get("type") == "access" and r.get("path") == "/healthz" for r in records), d.stderr


# ---------------------------------------------------------------- request errors


@pytest.fixture(scope="module")
def detectors(tmp_path_factory):
    """A daemon with two detection models (so a request must name one)."""
    models = tmp_path_factory.mktemp("models")
    make_tiny_detector(models / "tinyA" / "1" / "model.onnx")
    make_tiny_detector(models / "tinyB" / "1" / "model.onnx")
    d = ready_daemon("--models", models)
    yield d
    assert d.stop() == 0, d.stderr[-3000:]


@pytest.mark.parametrize("query,message", [
    ("conf=2", "conf must be in [0, 1], got 2"),
    ("conf=abc", "conf must be in [0, 1], got abc"),
    ("iou=-0.5", "iou must be in [0, 1], got -0.5"),
    ("max_det=0", "max_det must be an integer in [1, 100000], got 0"),
    ("max_det=1.5", "max_det must be an integer in [1, 100000], got 1.5"),
    ("priority=5000", "priority must be an integer in [-1000, 1000], got 5000"),
    ("classes=0,,1", "classes must be class ids or names separated by commas, like 0,bus, got 0,,1"),
    ("render=yes", "render must be 1, true, 0 or false, got yes"),
    ("conf=", "conf must be in [0, 1], got nothing"),
])
def test_bad_query_parameter_names_itself_and_its_range(detectors, query, message):
    res = requests.post(f"{detectors.url}/api/v1/detect?model=tinyA&{query}", data=png_bytes(64, 64), timeout=30)
    assert res.status_code == 400, res.text
    assert res.json() == {"error": message}


def test_a_misspelt_query_parameter_is_refused_not_ignored(detectors):
    res = requests.post(f"{detectors.url}/api/v1/detect?model=tinyA&confidence=0.9", data=png_bytes(64, 64),
                        timeout=30)
    assert res.status_code == 400, res.text
    assert res.json() == {"error": "unknown query parameter 'confidence': /api/v1/detect takes model, conf, iou, "
                                   "max_det, classes, render, priority and source (and width, height, format and "
                                   "stride for a decoded frame)"}


def test_good_query_parameters_still_work(detectors):
    q = "model=tinyA&conf=0.5&iou=0.3&max_det=10&priority=-3&classes=0,thing1&render=false"
    res = requests.post(f"{detectors.url}/api/v1/detect?{q}", data=png_bytes(64, 64), timeout=30)
    assert res.status_code == 200, res.text
    assert res.json()["width"] == 64


@pytest.fixture(scope="module")
def detection_stub(detectors, tmp_path_factory):
    pb = generate_stubs(tmp_path_factory.mktemp("stubs"))
    ch = connect(detectors.grpc_port)
    yield pb["detection_pb2"], pb["detection_pb2_grpc"].DetectionStub(ch)
    ch.close()


def grpc_error(call, request):
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=30)
    return info.value.code(), info.value.details()


def test_grpc_errors_name_the_request_fields_not_a_rest_query(detection_stub):
    dpb, stub = detection_stub
    image = png_bytes(64, 64)
    code, details = grpc_error(stub.Detect, dpb.DetectRequest(image=image))  # two models: which one?
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "?model=" not in details and "model" in details, details  # no REST query in a gRPC answer
    code, details = grpc_error(stub.Detect, dpb.DetectRequest(image=image, model="tinyA",
                                                              options=dpb.DetectOptions(conf_threshold=2)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert details.startswith("options.conf_threshold must be in [0, 1]") and "got 2" in details, details
    assert "iou" not in details and "max_detections" not in details, details
    code, details = grpc_error(stub.Detect, dpb.DetectRequest(image=image, model="tinyA",
                                                              options=dpb.DetectOptions(max_detections=-1)))
    assert details == "options.max_detections must be an integer in [1, 100000], got -1", details
    code, details = grpc_error(stub.Detect, dpb.DetectRequest(image=image, model="tinyA", priority=1001))
    assert details == "priority must be an integer in [-1000, 1000], got 1001", details  # REST's rule and words


# ---------------------------------------------------------------- scripts/run.sh


def run_script_until_ready(tmp_path, *args, env):
    """Starts scripts/run.sh with the binary under test; returns (the line it
    announced, the process) once that line is out."""
    full_env = dict(os.environ)
    full_env.update(env)
    full_env["VIGIL_MODELS"] = str(empty_models(tmp_path))
    out = (tmp_path / "run.out").open("w+")
    proc = subprocess.Popen(["bash", str(ROOT / "scripts" / "run.sh"), vigil_binary(), "--host", "127.0.0.1",
                             *map(str, args)], stdout=out, stderr=subprocess.STDOUT, text=True, env=full_env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        out.seek(0)
        announced = [line for line in out.read().splitlines() if line.startswith("run: starting vigil on")]
        if announced:
            return announced[0], proc, out
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    out.seek(0)
    pytest.fail("scripts/run.sh announced nothing:\n" + out.read()[-3000:])


def wait_healthy(port, proc, out):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    out.seek(0)
    pytest.fail(f"nothing answered on the announced port {port}:\n" + out.read()[-3000:])


@pytest.mark.parametrize("how", ["variable", "flag"])
def test_run_script_announces_the_port_it_serves_on(tmp_path, how):
    port = free_port()
    if how == "variable":
        line, proc, out = run_script_until_ready(tmp_path, "--grpc-port", free_port(),
                                                 env={"VIGIL_HTTP_PORT": str(port)})
    else:
        line, proc, out = run_script_until_ready(tmp_path, "--grpc-port", free_port(), "--http-port", port,
                                                 env={"VIGIL_HTTP_PORT": str(free_port())})
    try:
        assert f"http://localhost:{port} " in line and f"curl localhost:{port}/healthz" in line, line
        wait_healthy(port, proc, out)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()


def test_readme_says_how_to_change_the_port():
    readme = (ROOT / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "VIGIL_HTTP_PORT=" in quick_start and "make run" in quick_start
