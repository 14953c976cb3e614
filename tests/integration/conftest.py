"""Shared fixtures for vigil's integration tests.

The tests drive the real `vigil` binary (VIGIL_BINARY, set by scripts/check.sh)
and real clients.  Shared models and images are read in place from
VIGIL_SHARED_DIR (default ../shared); tests that need them skip with a message
when that directory is absent, and for no other reason.
"""
import os
import pathlib
import signal
import socket
import subprocess
import time

import pytest
import requests

ROOT = pathlib.Path(__file__).resolve().parents[2]


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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=full_env)
        self.url = f"http://127.0.0.1:{self.http_port}"
        self._wait_ready()

    def _wait_ready(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out, err = self.proc.communicate()
                raise RuntimeError(f"vigil serve exited with {self.proc.returncode}: {err}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        raise RuntimeError("vigil serve did not answer /healthz in time")

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        self.stderr = err
        return self.proc.returncode


@pytest.fixture
def daemon(tmp_path):
    """A running daemon with an empty model repository in tmp_path."""
    models = tmp_path / "models"
    models.mkdir()
    d = Daemon("--models", models)
    yield d
    d.stop()
