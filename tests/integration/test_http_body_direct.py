"""Large request bodies read by the gate straight into the exchange's buffer
(docs/ARCHITECTURE.md, "HTTP library": a POST body with a Content-Length of
64 KiB or more never crosses the gate's socketpair).

Shown here, over plain HTTP and TLS where the wire differs: a large body
arrives whole (every number of a 100 KB JSON infer body comes back through
the affine model y = 2x + 1; a raw frame's detections equal its PNG's);
pipelined large bodies are answered in order; a client that leaves mid-body
or sends nothing for http.idle_timeout_s is closed without an answer, as
before (one that keeps sending may take longer than that in all), and the
next client is served; an answer given before the body
(401, 413) closes the connection and the body is never read; a client that
sends the gate's private length field itself is refused (400);
Expect: 100-continue still gets its 100; a server stopping while a body
comes answers it 503 and exits cleanly.  Raw sockets: the bytes on the wire
are the point; loopback only.
"""
import json
import socket
import ssl
import threading
import time

import numpy as np
import pytest
import requests

from conftest import Daemon, ready_daemon
from test_detect_raw import png_of
from test_grpc import make_tiny_detector
from sample_models import make_affine_onnx

WIDTH = 16384  # floats per row of the wide affine model: its JSON body is about 100 KB


def infer_body(seed):
    """A JSON infer request of WIDTH integers (exact in float32) and the
    output y = 2x + 1 it must give."""
    x = [(seed * 7919 + i * 31) % 100000 for i in range(WIDTH)]
    body = json.dumps({"inputs": [{"name": "x", "shape": [1, WIDTH], "datatype": "FP32", "data": x}]}).encode()
    assert len(body) > 65536
    return body, [2 * v + 1 for v in x]


def post_head(target, length, *fields):
    return (f"POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n" +
            "".join(f"{f}\r\n" for f in fields) + "\r\n").encode()


def read_answer(s, buffered=b""):
    """One HTTP answer from s (framed by Content-Length): (status, headers
    with lower-case names, body, bytes read past it)."""
    data = buffered
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        assert chunk, f"closed before an answer: {data[:300]!r}"
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = s.recv(65536)
        assert chunk, "closed mid-answer"
        rest += chunk
    return int(lines[0].split(" ")[1]), headers, rest[:length], rest[length:]


def closed_without_answer(s, timeout):
    """True when s is closed (EOF or reset) within timeout and nothing came."""
    s.settimeout(timeout)
    try:
        return s.recv(65536) == b""
    except ConnectionResetError:
        return True
    except (socket.timeout, ssl.SSLError):
        return False


def read_until_closed(s, timeout=10):
    s.settimeout(timeout)
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
    except (ConnectionResetError, socket.timeout, ssl.SSLError):
        pass
    return data


def assert_json_error(status, headers, body, want):
    assert status == want, (status, body[:300])
    assert headers.get("content-type") == "application/json" and headers.get("x-request-id"), headers
    assert json.loads(body)["error"], body


def wide_models(models):
    make_affine_onnx(models / "wide" / "1" / "model.onnx", batch=1, width=WIDTH)
    make_tiny_detector(models / "tinydet" / "1" / "model.onnx")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    models = tmp_path_factory.mktemp("direct") / "models"
    wide_models(models)
    d = ready_daemon("--models", models, "--http-idle-timeout-s", "2", "--http-max-body-bytes", str(4 << 20))
    yield d
    assert d.stop() == 0, d.stderr[-3000:]


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    from test_auth import tls_daemon
    base = tmp_path_factory.mktemp("direct-tls")
    wide_models(base / "models")
    d = tls_daemon(base, "--http-idle-timeout-s", "2")
    deadline = time.monotonic() + 60
    while requests.get(d.url + "/v2/models/wide/ready", verify=str(d.pki / "ca.pem"), timeout=5).status_code != 200:
        assert time.monotonic() < deadline, "the wide model did not load"
        time.sleep(0.2)
    yield d
    assert d.stop() == 0, d.stderr[-3000:]


def connect(d, tls):
    raw = socket.create_connection(("127.0.0.1", d.http_port), timeout=30)
    if not tls:
        return raw
    context = ssl.create_default_context(cafile=str(d.pki / "ca.pem"))
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


@pytest.fixture(params=[False, True], ids=["plain", "tls"])
def either(request, server, tls_server):
    return (tls_server if request.param else server), request.param


def test_a_large_json_body_arrives_whole_and_pipelined_ones_are_answered_in_order(either):
    d, tls = either
    first, want_first = infer_body(1)
    second, want_second = infer_body(2)
    pipeline = (post_head("/v2/models/wide/infer", len(first), "X-Request-Id: first") + first +
                b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-Id: between\r\n\r\n" +
                post_head("/v2/models/wide/infer", len(second), "X-Request-Id: second") + second)
    with connect(d, tls) as s:
        s.sendall(pipeline)
        rest = b""
        for rid, want in (("first", want_first), ("between", None), ("second", want_second)):
            status, headers, body, rest = read_answer(s, rest)
            assert status == 200 and headers["x-request-id"] == rid, (status, headers, body[:300])
            if want:
                assert json.loads(body)["outputs"][0]["data"] == want
        # the connection stays open for more (no Connection: close)
        s.sendall(post_head("/v2/models/wide/infer", len(first)) + first)
        status, _, body, _ = read_answer(s, rest)
        assert status == 200 and json.loads(body)["outputs"][0]["data"] == want_first


def test_a_raw_frame_gives_the_detections_of_its_png(server):
    y, x = np.mgrid[0:192, 0:256]
    pixels = np.stack([(x * 255 // 256), (y * 255 // 192), ((x + y) % 256)], axis=-1).astype(np.uint8)
    raw = pixels.tobytes()
    assert len(raw) > 65536
    url = server.url + "/api/v1/detect?model=tinydet"
    r = requests.post(url + "&width=256&height=192", data=raw,
                      headers={"Content-Type": "application/octet-stream"}, timeout=30)
    assert r.status_code == 200, r.text
    want = requests.post(url, data=png_of(pixels), timeout=30)
    assert want.status_code == 200, want.text
    assert r.json()["detections"] and r.json()["detections"] == want.json()["detections"]


def test_a_client_leaving_mid_body_is_forgotten_and_the_next_one_served(either):
    d, tls = either
    body, want = infer_body(3)
    for _ in range(3):
        with connect(d, tls) as s:
            s.sendall(post_head("/v2/models/wide/infer", len(body)) + body[:70000])
            time.sleep(0.1)  # the gate is reading the body when the client goes
    with connect(d, tls) as s:
        s.sendall(post_head("/v2/models/wide/infer", len(body)) + body)
        status, _, answer, _ = read_answer(s)
        assert status == 200 and json.loads(answer)["outputs"][0]["data"] == want


def test_idle_mid_body_is_closed_at_the_idle_timeout_without_an_answer(either):
    d, tls = either
    body, want = infer_body(4)
    with connect(d, tls) as s:  # a body that keeps coming may take longer than the timeout in all
        s.sendall(post_head("/v2/models/wide/infer", len(body)))
        step = len(body) // 6 + 1
        for at in range(0, len(body), step):
            s.sendall(body[at:at + step])
            time.sleep(0.5)
        status, _, answer, _ = read_answer(s)
        assert status == 200 and json.loads(answer)["outputs"][0]["data"] == want
    with connect(d, tls) as s:
        s.sendall(post_head("/v2/models/wide/infer", len(body)) + body[:80000])
        assert closed_without_answer(s, 8)  # http.idle_timeout_s is 2 here
    with connect(d, tls) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_answer(s)[0] == 200


def test_a_client_cannot_send_the_gates_length_field(either):
    """The field that tells the handler the gate holds the body is the
    gate's alone: sent by a client, on a small body or none, it is a 400."""
    d, tls = either
    for request in (post_head("/v2/models/wide/infer", 5, "X-Vigil-Gate-Body: 5") + b"hello",
                    b"GET /healthz HTTP/1.1\r\nHost: x\r\nx-vigil-gate-body: 70000\r\n\r\n"):
        with connect(d, tls) as s:
            s.sendall(request)
            status, headers, body, _ = read_answer(s)
            assert_json_error(status, headers, body, 400)
            assert b"X-Vigil-Gate-Body" in body and headers.get("connection") == "close"


def test_a_body_over_http_max_body_bytes_is_413_before_it_is_sent(server):
    with connect(server, False) as s:
        s.sendall(post_head("/v2/models/wide/infer", 5 << 20))  # the limit is 4 MiB; no body sent
        status, headers, body, _ = read_answer(s)
        assert_json_error(status, headers, body, 413)
        assert headers.get("connection") == "close"
        assert closed_without_answer(s, 5)


def test_expect_100_continue_still_gets_its_100(server):
    body, want = infer_body(5)
    with connect(server, False) as s:
        s.sendall(post_head("/v2/models/wide/infer", len(body), "Expect: 100-continue"))
        s.settimeout(10)
        interim = s.recv(65536)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), interim
        s.sendall(body)
        status, _, answer, _ = read_answer(s, interim[len(b"HTTP/1.1 100 Continue\r\n\r\n"):])
        assert status == 200 and json.loads(answer)["outputs"][0]["data"] == want


def test_401_is_answered_before_the_body_and_the_body_never_read(tmp_path):
    from test_auth import start
    d = start(tmp_path)
    try:
        with connect(d, False) as s:
            s.sendall(post_head("/v2/models/wide/infer", 10 << 20, "X-Request-Id: no-token") + b"x" * 70000)
            status, headers, body, _ = read_answer(s)
            assert_json_error(status, headers, body, 401)
            assert headers["x-request-id"] == "no-token" and headers.get("connection") == "close"
            # closed without the other 10 MB: the gate drops the body, it does not wait for it
            assert closed_without_answer(s, 5)
        assert requests.get(d.url + "/healthz", timeout=10).status_code == 200
    finally:
        assert d.stop() == 0


def test_a_server_stopping_mid_body_answers_503_and_exits(tmp_path):
    models = tmp_path / "models"
    wide_models(models)
    d = ready_daemon("--models", models)
    body, _ = infer_body(6)
    try:
        with connect(d, False) as s:
            s.sendall(post_head("/v2/models/wide/infer", len(body), "X-Request-Id: late") + body[:70000])
            time.sleep(0.3)  # the gate is reading the body
            stopper = threading.Thread(target=d.stop)  # SIGTERM
            stopper.start()
            answer = read_until_closed(s)
            status, headers, text, _ = read_answer(socket_of(answer))
            assert_json_error(status, headers, text, 503)
            assert headers["x-request-id"] == "late"
            stopper.join(30)
    finally:
        assert d.stop() == 0, d.stderr[-3000:]


class socket_of:
    """Bytes already read, served like a socket to read_answer."""

    def __init__(self, data):
        self.data = data

    def recv(self, n):
        chunk, self.data = self.data[:n], self.data[n:]
        return chunk
