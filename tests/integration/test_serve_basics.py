"""`vigil serve` as started by `make run`: health endpoints, configuration
precedence (file < environment < flags), clean errors and graceful exit."""
import signal

import requests

from conftest import Daemon, free_port, run_vigil


def test_healthz_and_readyz(daemon):
    r = requests.get(daemon.url + "/healthz", timeout=5)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    assert r.json() == {"status": "ok"}
    assert requests.get(daemon.url + "/readyz", timeout=5).status_code == 200
    assert requests.get(daemon.url + "/v2/health/live", timeout=5).status_code == 200


def test_unknown_route_is_json_404(daemon):
    r = requests.get(daemon.url + "/no/such/route", timeout=5)
    assert r.status_code == 404
    assert "no route" in r.json()["error"]


def test_wrong_method_is_405(daemon):
    assert requests.post(daemon.url + "/healthz", timeout=5).status_code == 405


def test_sigterm_exits_zero(tmp_path):
    d = Daemon("--models", tmp_path)
    assert d.stop(signal.SIGTERM) == 0
    assert "shutting down" in d.stderr


def test_sigint_exits_zero(tmp_path):
    d = Daemon("--models", tmp_path)
    assert d.stop(signal.SIGINT) == 0


def test_empty_repository_says_how_to_add_a_model(tmp_path):
    d = Daemon("--models", tmp_path)
    d.stop()
    assert "model.onnx" in d.stderr


def test_config_precedence_file_env_flag(tmp_path):
    file_port, env_port, flag_port = free_port(), free_port(), free_port()
    cfg = tmp_path / "vigil.yaml"
    cfg.write_text(f"http:\n  port: {file_port}\nmodels: {tmp_path}\n")
    # The file alone sets the port.
    assert Daemon("--config", cfg, http_port=file_port, port_flag=False).stop() == 0
    # The environment beats the file.
    env = {"VIGIL_HTTP_PORT": str(env_port)}
    assert Daemon("--config", cfg, env=env, http_port=env_port, port_flag=False).stop() == 0
    # A flag beats both.
    assert Daemon("--config", cfg, env=env, http_port=flag_port).stop() == 0


def test_unknown_config_key_is_reported_with_line(tmp_path):
    cfg = tmp_path / "vigil.yaml"
    cfg.write_text("http:\n  port: 8000\n  colour: blue\n")
    res = run_vigil("serve", "--config", cfg)
    assert res.returncode == 2
    assert f"{cfg}:3" in res.stderr and "http.colour" in res.stderr


def test_unknown_environment_variable_is_reported(tmp_path):
    res = run_vigil("serve", "--models", tmp_path, env={"VIGIL_HTTP_PROT": "1"})
    assert res.returncode == 2
    assert "VIGIL_HTTP_PROT" in res.stderr


def test_bad_port_value_is_reported():
    res = run_vigil("serve", "--http-port", "99999")
    assert res.returncode == 2
    assert "outside" in res.stderr


def test_port_in_use_fails_cleanly(daemon, tmp_path):
    res = run_vigil("serve", "--host", "127.0.0.1", "--http-port", daemon.http_port, "--grpc-port", free_port(),
                    "--models", tmp_path)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        f"vigil serve: HTTP port {daemon.http_port} is already in use "
        "(setting http.port, flag --http-port, variable VIGIL_HTTP_PORT)"], res.stderr
