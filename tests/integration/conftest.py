"""Shared fixtures for vigil's integration tests.

The tests drive the real `vigil` binary (VIGIL_BINARY, set by scripts/check.sh)
and real clients.  Shared models and images are read in place from
VIGIL_SHARED_DIR (default ../shared); tests that need them skip with a message
when that directory is absent, and for no other reason.
"""
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest
import requests

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
from sample_models import make_affine_onnx  # noqa: E402  (the raw model of make run's samples)


def vigil_binary() -> str:
    path = os.environ.get("VIGIL_BINARY", str(ROOT / "build" / "vigil"))
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"vigil binary not found at {path}: build first (make build)")
    return path


def shared_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("VIGIL_SHARED_DIR", str(ROOT.parent / "shared")))


def shared_path(rel: str) -> pathlib.Path:
    """Path of a file in the shared data; skips the test when it is absent."""
    path = shared_dir() / rel
    if not path.exists():
        pytest.skip(f"shared data {path} is missing")
    return path


_ports_given: set = set()


def free_port() -> int:
    """A loopback port free now and not handed out before in this test run:
    the kernel may offer a just-released port again, and two settings given
    the same port (http and grpc) make the daemon refuse to start."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _ports_given:
            _ports_given.add(port)
            return port
    raise RuntimeError("no fresh loopback port after 100 tries")


def stop_process(proc, timeout=10):
    """Ends a helper process the test started (a broker, Prometheus, a
    server in a namespace): SIGTERM, then SIGKILL after timeout seconds."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_vigil(*args, env=None, timeout=120, **kwargs):
    """Runs vigil with args; returns the CompletedProcess (text mode)."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run([vigil_binary(), *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=timeout, **kwargs)


class Daemon:
    """A `vigil serve` process on loopback, stopped with SIGTERM on exit."""

    def __init__(self, *args, env=None, http_port=None, port_flag=True):
        """port_flag=False leaves --http-port out (the port then comes from the
        configuration file or environment and must equal http_port)."""
        self.http_port = http_port or free_port()
        self.grpc_port = free_port()
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        port_args = ["--http-port", str(self.http_port)] if port_flag else []
        self.args = [vigil_binary(), "serve", "--host", "127.0.0.1", *port_args,
                     "--grpc-port", str(self.grpc_port), *map(str, args)]
        # The daemon's output goes to a file, not a pipe: a pipe nobody reads
        # fills after ~64 KB of access log and then blocks the server.
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT, text=True,
                                     env=full_env)
        self.url = f"http://127.0.0.1:{self.http_port}"
        self._wait_ready()

    def _wait_ready(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc.wait()
                err = self.read_log()
                raise RuntimeError(f"vigil serve exited with {self.proc.returncode}: {err}")
            try:
                # ready, not only live: every front end (gRPC, the config
                # file's streams) runs once /readyz says 200
                if requests.get(self.url + "/readyz", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        raise RuntimeError("vigil serve did not answer /readyz with 200 in time")

    def read_log(self) -> str:
        """Everything the daemon wrote so far (stdout and stderr)."""
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.stderr = self.read_log()
        return self.proc.returncode


@pytest.fixture
def daemon(tmp_path):
    """A running daemon with an empty model repository in tmp_path."""
    models = tmp_path / "models"
    models.mkdir()
    d = Daemon("--models", models)
    yield d
    d.stop()


# ---- model repositories for the server tests (test_serve_*.py) ----

def add_model(models, name, version=1, config=None, **affine):
    """models/<name>/<version>/model.onnx (an affine model) plus config.yaml text."""
    make_affine_onnx(pathlib.Path(models) / name / str(version) / "model.onnx", **affine)
    if config is not None:
        (pathlib.Path(models) / name / "config.yaml").write_text(config)
    return pathlib.Path(models) / name


def metric_value(text, name, **labels):
    """The value of one Prometheus sample in exposition text, or None."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        series = head[len(name):]
        if series and not series.startswith("{"):
            continue
        got = dict(kv.split("=", 1) for kv in series.strip("{}").split(",") if kv) if series else {}
        got = {k: v.strip('"') for k, v in got.items()}
        if all(got.get(k) == str(v) for k, v in labels.items()):
            return float(value)
    return None


def browser_tools():
    """(node, chromium) for the browser tests (tests/browser/, playwright-core
    in tools/node): a missing one is a failure with its reason, never a skip."""
    node = shutil.which("node")
    assert node, "node is not installed (Debian package nodejs)"
    chromium = os.environ.get("UI_TEST_CHROMIUM", "/usr/bin/chromium")
    assert os.access(chromium, os.X_OK), f"{chromium} is missing (Debian package chromium)"
    assert (ROOT / "tools/node/node_modules/playwright-core").is_dir(), \
        "playwright-core is missing: run 'npm install --ignore-scripts' in tools/node"
    return node, chromium


def ready_daemon(*args, timeout=60.0, **kwargs):
    """A Daemon that has also answered /v2/health/ready (its models are loaded)."""
    d = Daemon(*args, **kwargs)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if requests.get(d.url + "/v2/health/ready", timeout=5).status_code == 200:
            return d
        time.sleep(0.05)
    d.stop()
    raise RuntimeError("vigil serve did not become ready in time")


# The Docker daemon and the vigil image, session fixtures shared by
# test_image.py and test_supply_chain.py: defined once here, so one session
# starts one daemon and builds one image (dockerkit imports this module).
from dockerkit import docker, vigil_image  # noqa: E402,F401
