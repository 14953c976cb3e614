"""`vigil health`, the container image's health check: exit 0 when the server
answers /readyz with 200, 1 with one line when it is not ready (loading,
draining: 503) or cannot be reached, and the port found as serve finds it
(VIGIL_HTTP_PORT, --config) so the image's HEALTHCHECK needs no arguments."""
import http.server
import socket
import threading

import pytest

from conftest import free_port, run_vigil


@pytest.fixture
def stub_server():
    """A loopback HTTP server whose /readyz answers what the test sets."""
    answer = {"code": 503, "body": b'{"status":"not ready"}'}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(answer["code"] if self.path == "/readyz" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer["body"])))
            self.end_headers()
            self.wfile.write(answer["body"])

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], answer
    server.shutdown()
    server.server_close()


def test_ready_server_exits_zero(daemon):
    r = run_vigil("health", "--port", daemon.http_port)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"vigil health: ready: http://127.0.0.1:{daemon.http_port}/readyz"
    r = run_vigil("health", "--url", daemon.url + "/", "--timeout", "2")
    assert r.returncode == 0, r.stderr


def test_port_from_environment_and_config_file(daemon, tmp_path):
    """No flag: the port comes from VIGIL_HTTP_PORT, or from the YAML file
    serve was given, exactly as serve reads them."""
    assert run_vigil("health", env={"VIGIL_HTTP_PORT": str(daemon.http_port)}).returncode == 0
    config = tmp_path / "vigil.yaml"
    config.write_text(f"http:\n  port: {daemon.http_port}\n")
    r = run_vigil("health", "--config", config)
    assert r.returncode == 0, r.stderr


def test_not_ready_is_one_line_and_exit_one(stub_server):
    port, answer = stub_server
    r = run_vigil("health", "--port", port)
    assert r.returncode == 1
    assert r.stderr.strip() == \
        f'vigil health: not ready: http://127.0.0.1:{port}/readyz answered 503 {{"status":"not ready"}}'
    answer["code"], answer["body"] = 200, b'{"status":"ready"}'
    assert run_vigil("health", "--port", port).returncode == 0


def test_nothing_listening_is_unreachable():
    port = free_port()
    r = run_vigil("health", "--port", port)
    assert r.returncode == 1
    assert r.stderr.startswith(f"vigil health: unreachable: http://127.0.0.1:{port}/readyz: ")
    assert len(r.stderr.strip().splitlines()) == 1


def test_silent_server_times_out():
    """A listener that never answers (a wedged server) fails the probe
    after --timeout instead of hanging the health check."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        r = run_vigil("health", "--port", s.getsockname()[1], "--timeout", "0.5", timeout=20)
    assert r.returncode == 1
    assert "unreachable" in r.stderr and "imeout" in r.stderr


def test_usage_errors_exit_two():
    assert run_vigil("health", "--url", "http://127.0.0.1:1", "--port", "2").returncode == 2
    assert run_vigil("health", "--port", "70000").returncode == 2
    assert run_vigil("health", "--timeout", "0").returncode == 2
    r = run_vigil("health", "--bogus", "x")
    assert r.returncode == 2 and "--bogus" in r.stderr


def test_https_from_the_configuration(tmp_path):
    """tls.cert_file set: the probe speaks HTTPS to its own listener on
    loopback; an explicit --url is verified as any client would verify it."""
    from test_auth import tls_daemon
    d = tls_daemon(tmp_path)
    try:
        pki = tmp_path / "pki"
        env = {"VIGIL_HTTP_PORT": str(d.http_port), "VIGIL_TLS_CERT_FILE": str(pki / "ca-server.pem"),
               "VIGIL_TLS_KEY_FILE": str(pki / "ca-server.key")}
        r = run_vigil("health", env=env)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == f"vigil health: ready: https://127.0.0.1:{d.http_port}/readyz"
        assert run_vigil("health", "--url", d.url, "--ca-file", pki / "ca.pem").returncode == 0
        r = run_vigil("health", "--url", d.url, "--ca-file", pki / "rogue.pem")
        assert r.returncode == 1 and "unreachable" in r.stderr
    finally:
        d.stop()
