"""Hostile inputs that vigil already withstood when they were tried as an
attacker would (docs/SECURITY.md, "Hostile inputs"), pinned so that they
keep holding: oversized heads, slow and idle connections, decompression
bombs, deeply nested JSON, JWT key confusion and a token in the query.

Each test checks the answer the input gets and that the server goes on
serving afterwards.  Raw sockets where the bytes on the wire matter;
loopback only; every loop is bounded in count and time.
"""
import base64
import hashlib
import hmac
import json
import socket
import struct
import subprocess
import time
import zlib

import pytest
import requests

from conftest import ROOT, add_model, ready_daemon
from test_grpc import make_tiny_detector


def exchange(port, data, timeout=10):
    """Sends data on a fresh connection and reads until the server closes it
    (or timeout); returns the bytes received."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may refuse before the client is done sending
        received = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            except socket.timeout:
                break
            if not chunk:
                break
            received += chunk
        return received


def status_of(response: bytes) -> int:
    assert response.startswith(b"HTTP/1.1 "), response[:200]
    return int(response.split(b" ", 2)[1])


def assert_one_json_answer(response: bytes):
    """One answer, vigil's: JSON with X-Request-Id (libmicrohttpd's own
    pages were HTML without it; the gate refuses before it can answer)."""
    assert response.count(b"HTTP/1.1 ") == 1, response[:300]
    assert b"\r\nX-Request-Id: " in response and b"\r\nContent-Type: application/json" in response, response[:300]
    assert b'\r\n\r\n{"error":' in response, response[:300]


def still_serving(d):
    assert requests.get(d.url + "/healthz", timeout=10).status_code == 200


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    models = tmp_path_factory.mktemp("models")
    add_model(models, "affine")
    make_tiny_detector(models / "tinydet" / "1" / "model.onnx")
    d = ready_daemon("--models", models, "--http-idle-timeout-s", "2")
    yield d
    assert d.stop() == 0, d.stderr[-3000:]


def test_a_100_kb_header_is_431_and_closed(server):
    answer = exchange(server.http_port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n")
    assert status_of(answer) == 431
    assert_one_json_answer(answer)
    still_serving(server)


def test_ten_thousand_headers_are_431(server):
    head = b"".join(b"X-%d: 1\r\n" % i for i in range(10_000))
    answer = exchange(server.http_port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n")
    assert status_of(answer) == 431
    assert_one_json_answer(answer)
    still_serving(server)


def test_a_1_mb_request_line_is_414(server):
    answer = exchange(server.http_port, b"GET /" + b"a" * 1_000_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(answer) == 414
    assert_one_json_answer(answer)
    still_serving(server)


def test_slowloris_clients_do_not_starve_the_others(server):
    """50 clients trickle a request head a few bytes at a time; a normal
    client is served meanwhile, and each slow head is bounded (431 once it
    passes 16 KiB, or closed when it has not arrived whole within the idle
    timeout)."""
    slow = [socket.create_connection(("127.0.0.1", server.http_port), timeout=5) for _ in range(50)]
    try:
        for s in slow:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        for round_ in range(6):
            for i, s in enumerate(slow):
                s.sendall(b"X-Slow-%d-%d: a\r\n" % (i, round_))
            still_serving(server)  # served while every slow head is open
            time.sleep(0.2)
    finally:
        for s in slow:
            s.close()
    still_serving(server)


def test_500_idle_connections_are_closed_at_the_idle_timeout(server):
    idle = [socket.create_connection(("127.0.0.1", server.http_port), timeout=10) for _ in range(500)]
    try:
        still_serving(server)  # the 501st connection is answered at once
        time.sleep(3)          # http.idle_timeout_s is 2 here
        closed = 0
        for s in idle:
            try:
                closed += s.recv(1) == b""
            except (ConnectionResetError, socket.timeout):
                closed += 1
        assert closed == len(idle)
    finally:
        for s in idle:
            s.close()
    still_serving(server)


def png_declaring(width, height):
    """A tiny PNG whose header declares width x height (a decompression bomb:
    the compressed rows would inflate to gigabytes)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = zlib.compress(b"\x00" * 65536, 9)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", rows) + chunk(b"IEND", b""))


def test_an_image_bomb_is_413_before_decoding(server):
    r = requests.post(server.url + "/api/v1/detect?model=tinydet", data=png_declaring(100_000, 100_000),
                      headers={"Content-Type": "image/png"}, timeout=30)
    assert r.status_code == 413, r.text
    assert "limits.max_image_pixels" in r.json()["error"] or "pixel" in r.json()["error"]
    still_serving(server)


def test_a_gzip_body_is_not_inflated(server):
    """vigil never decompresses request bodies: a gzip bomb sent with
    Content-Encoding: gzip is read as the bytes it is, and refused."""
    bomb = zlib.compress(b"[" * 10_000_000, 9)
    r = requests.post(server.url + "/v2/models/affine/infer", data=bomb,
                      headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 400, r.text
    assert "error" in r.json()
    still_serving(server)


def test_json_nested_100_000_deep_is_400(server):
    body = b"[" * 100_000 + b"]" * 100_000
    r = requests.post(server.url + "/v2/models/affine/infer", data=body, timeout=30)
    assert r.status_code == 400, r.text
    assert "error" in r.json()
    still_serving(server)


# ---------------------------------------------------------------- tokens


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def rs256_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keys")
    key, public = folder / "key.pem", folder / "public.pem"
    subprocess.run(["openssl", "genrsa", "-out", key, "2048"], check=True, capture_output=True)
    subprocess.run(["openssl", "rsa", "-in", key, "-pubout", "-out", public], check=True, capture_output=True)
    models = folder / "models"
    models.mkdir()
    d = ready_daemon("--models", models, "--auth-mode", "jwt", "--auth-public-key-file", public)
    d.public_pem = public.read_bytes()
    yield d
    assert d.stop() == 0, d.stderr[-3000:]


def test_key_confusion_hs256_signed_with_the_public_key_is_refused(rs256_server):
    """The classic algorithm confusion: a server that verifies RS256 with a
    public key must not accept an HS256 token whose HMAC key is that public
    key's PEM text."""
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(json.dumps({"sub": "x", "exp": int(time.time()) + 600, "scope": "infer admin"}).encode())
    signing = f"{header}.{payload}"
    sig = b64(hmac.new(rs256_server.public_pem, signing.encode(), hashlib.sha256).digest())
    r = requests.get(rs256_server.url + "/api/v1/models", headers={"Authorization": f"Bearer {signing}.{sig}"},
                     timeout=10)
    assert r.status_code == 401, r.text
    assert "WWW-Authenticate" in r.headers


def test_a_token_in_the_query_is_not_accepted(rs256_server):
    for name in ("access_token", "token", "jwt"):
        r = requests.get(rs256_server.url + f"/api/v1/models?{name}=eyJhbGciOiJSUzI1NiJ9.e30.c2ln", timeout=10)
        assert r.status_code == 401, (name, r.text)
    assert requests.get(rs256_server.url + "/healthz", timeout=10).status_code == 200
