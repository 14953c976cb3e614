"""HTTP/1.1 framing under hostile clients (RFC 9112), and whole log lines.

Every case talks raw bytes to the real daemon on loopback: the bytes on the
wire are the point.  A request whose length is ambiguous (two different
Content-Lengths, Content-Length with Transfer-Encoding, a coding other than
chunked, a space before a header's colon, a space in the request target)
gets one JSON 400 with X-Request-Id and the connection closes, so that bytes
a proxy in front might read as a second request never run as one.  A
chunked body that crosses http.max_body_bytes is refused while the client is
still sending.  What libmicrohttpd used to refuse itself with an HTML page
(invalid Content-Length, malformed lines, oversized heads, broken chunk
framing) and what it joined silently (obs-fold) is refused by the gate in
front of it with the same one JSON answer, over plain HTTP and TLS
(docs/ARCHITECTURE.md, "HTTP library").

The log test runs many requests in parallel with SIGHUPs that fail to reload
a broken secret file, on a non-blocking stderr pipe read slowly, and checks
that every line is one JSON object.
"""
import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest
import requests

from conftest import Daemon, free_port, vigil_binary

LIMIT = 65536  # http.max_body_bytes in these tests


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    models = tmp_path_factory.mktemp("framing") / "models"
    models.mkdir()
    d = Daemon("--models", models, "--http-max-body-bytes", str(LIMIT), "--http-max-upload-bytes", str(LIMIT),
               "--log-format", "json")
    yield d
    d.stop()


def read_all(s, timeout=10.0):
    """Everything the server sends until it closes the connection (or the
    timeout passes); returns (bytes, closed)."""
    s.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            return data, False
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def exchange(port, data):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_all(s)


def responses(raw):
    """Splits a byte stream into (status, headers, body) responses, using
    Content-Length; whatever does not parse is returned as a last item with
    status None."""
    out = []
    while raw:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        if not sep or not head.startswith(b"HTTP/1."):
            out.append((None, {}, raw))
            break
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            headers.setdefault(k.strip().lower().decode(), []).append(v.strip().decode())
        n = int(headers.get("content-length", ["0"])[0])
        out.append((status, headers, rest[:n]))
        raw = rest[n:]
    return out


def assert_one_json_refusal(raw, closed, status):
    """Exactly one response, status as given, a JSON {"error": ...} body, an
    X-Request-Id, Connection: close, and the connection closed after it."""
    got = responses(raw)
    assert len(got) == 1, raw[:600]
    code, headers, body = got[0]
    assert code == status, raw[:600]
    assert headers.get("content-type") == ["application/json"], raw[:600]
    assert headers.get("x-request-id"), raw[:600]
    assert headers.get("connection") == ["close"], raw[:600]
    error = json.loads(body)
    assert isinstance(error, dict) and list(error) == ["error"] and error["error"], body
    assert closed, "the connection stayed open after a framing refusal"
    return error["error"]


SMUGGLED = b"GET /v2 HTTP/1.1\r\nHost: x\r\n\r\n"


# ------------------------------------------------------------ Content-Length

def test_two_different_content_lengths_are_refused_and_nothing_runs_after(server):
    body = b"abc" + SMUGGLED  # 3 for the first header, 3 + len(SMUGGLED) for the second
    req = (b"POST /v2/repository/index HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
           b"Content-Length: %d\r\n\r\n" % len(body)) + body
    message = assert_one_json_refusal(*exchange(server.http_port, req), 400)
    assert "Content-Length" in message


def test_content_length_given_twice_with_the_same_value_is_accepted(server):
    req = (b"POST /v2/repository/index HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
           b"Content-Length: 2\r\nConnection: close\r\n\r\n{}")
    got = responses(exchange(server.http_port, req)[0])
    assert len(got) == 1 and got[0][0] == 200, got


def test_content_length_with_transfer_encoding_is_refused_and_closed(server):
    chunked = b"0\r\n\r\n" + SMUGGLED
    req = (b"POST /v2/repository/index HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n" % len(chunked)) + chunked
    message = assert_one_json_refusal(*exchange(server.http_port, req), 400)
    assert "Transfer-Encoding" in message


@pytest.mark.parametrize("coding", [b"gzip", b"chunked, chunked", b"xchunked", b"identity"])
def test_transfer_codings_other_than_chunked_are_refused(server, coding):
    req = (b"POST /v2/repository/index HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + coding +
           b"\r\n\r\n0\r\n\r\n" + SMUGGLED)
    assert_one_json_refusal(*exchange(server.http_port, req), 400)


def test_chunked_after_another_coding_is_not_implemented(server):
    req = (b"POST /v2/repository/index HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
           b"0\r\n\r\n" + SMUGGLED)
    assert_one_json_refusal(*exchange(server.http_port, req), 501)


def test_two_transfer_encoding_fields_are_refused(server):
    req = (b"POST /v2/repository/index HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED)
    assert_one_json_refusal(*exchange(server.http_port, req), 400)


@pytest.mark.parametrize("name", [b"Transfer-Encoding ", b"Content-Length\t"])
def test_whitespace_before_the_colon_is_refused(server, name):
    """libmicrohttpd keeps 'Transfer-Encoding ' as a different field: a proxy
    that trims it would see a chunked body where vigil sees none."""
    req = (b"POST /v2/repository/index HTTP/1.1\r\nHost: x\r\n" + name + b": chunked\r\n\r\n"
           b"0\r\n\r\n" + SMUGGLED)
    message = assert_one_json_refusal(*exchange(server.http_port, req), 400)
    assert "token" in message


def test_space_in_the_request_target_is_refused(server):
    assert_one_json_refusal(*exchange(server.http_port, b"GET /healthz HTTP/1.1 x HTTP/1.1\r\nHost: x\r\n\r\n"), 400)


def test_http11_without_host_is_refused(server):
    assert_one_json_refusal(*exchange(server.http_port, b"GET /healthz HTTP/1.1\r\n\r\n"), 400)
    assert_one_json_refusal(*exchange(server.http_port, b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
                            400)


def test_a_well_formed_keep_alive_pipeline_still_gets_every_answer(server):
    req = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 2 + b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    got = responses(exchange(server.http_port, req)[0])
    assert [g[0] for g in got] == [200, 200, 200]


# ------------------------------------------------------------ chunked bodies

def send_until_answered(s, head, piece, most):
    """Sends head, then piece after piece (up to most bytes), until an
    answer arrives; returns (bytes sent, the answer, closed)."""
    s.sendall(head)
    sent, answer = 0, b""
    while sent < most:
        try:
            s.sendall(piece)
        except (BrokenPipeError, ConnectionResetError, OSError):
            break
        sent += len(piece)
        s.settimeout(0.2 if sent > LIMIT else 0.01)
        try:
            answer = s.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, OSError):
            break
        if answer:
            break
    rest, closed = read_all(s)
    return sent, answer + rest, closed


@pytest.mark.parametrize("head,limit", [
    (b"POST /v2/repository/index HTTP/1.1", "max_body_bytes"),
    (b"PUT /api/v1/models/big/versions/1 HTTP/1.1", "max_upload_bytes"),  # streams to disk
])
def test_chunked_body_over_the_limit_is_refused_while_it_is_sent(server, head, limit):
    """The 413 arrives once the body crosses the limit: the client sends
    64 KiB pieces (4 KiB chunks) and finds the answer waiting before it has
    sent twice the limit, then the connection closes."""
    piece = (b"1000\r\n" + b"a" * 4096 + b"\r\n") * 16
    with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as s:
        sent, answer, closed = send_until_answered(
            s, head + b"\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", piece, 64 * LIMIT)
    assert answer, "no answer while the body was sent"
    assert sent <= 2 * LIMIT + 2 * len(piece), f"the answer came after {sent} bytes (limit {LIMIT})"
    message = assert_one_json_refusal(answer, closed, 413)
    assert limit in message


def test_chunked_body_over_the_limit_is_refused_while_it_is_sent_over_tls(tmp_path):
    """Under HTTPS the early 413 goes through the connection's TLS session."""
    import ssl

    from test_auth import tls_daemon
    d = tls_daemon(tmp_path, "--http-max-body-bytes", str(LIMIT))
    try:
        context = ssl.create_default_context(cafile=str(d.pki / "ca.pem"))
        with socket.create_connection(("127.0.0.1", d.http_port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                piece = (b"1000\r\n" + b"a" * 4096 + b"\r\n") * 16
                sent, answer, closed = send_until_answered(
                    s, b"POST /v2/repository/index HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
                    piece, 64 * LIMIT)
        assert answer, "no answer while the body was sent"
        assert sent <= 2 * LIMIT + 2 * len(piece), f"the answer came after {sent} bytes (limit {LIMIT})"
        assert "max_body_bytes" in assert_one_json_refusal(answer, closed, 413)
    finally:
        d.stop()


def test_chunked_body_within_the_limit_is_read(server):
    body = b"{}"
    req = (b"POST /v2/repository/index HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
           b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    got = responses(exchange(server.http_port, req)[0])
    assert len(got) == 1 and got[0][0] == 200, got


def test_server_still_serves_after_the_framing_cases(server):
    assert requests.get(server.url + "/healthz", timeout=10).status_code == 200


# ------------------------------------------------------------ what the library used to answer itself
#
# libmicrohttpd 0.9.75 refused these before vigil's handler ran, with its own
# HTML page without X-Request-Id (for an invalid Content-Length with its
# status line and headers sent twice), or joined them silently (obs-fold).
# The gate in front of it (src/serve/http_gate.c) refuses them first: one
# JSON answer with X-Request-Id, then the connection closes, and nothing
# sent after them runs.

def post_head(*fields):
    return b"POST /v2/repository/index HTTP/1.1\r\nHost: x\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n"


@pytest.mark.parametrize("value,status", [(b"-1", 400), (b"abc", 400), (b"3, 54", 400), (b"+3", 400),
                                          (b"18446744073709551617", 413)])
def test_invalid_content_length_gets_one_json_answer(server, value, status):
    raw, closed = exchange(server.http_port, post_head(b"Content-Length: " + value) + b"abc" + SMUGGLED)
    message = assert_one_json_refusal(raw, closed, status)
    assert "Content-Length" in message


def test_a_200_kb_chunk_extension_gets_one_json_answer(server):
    req = post_head(b"Transfer-Encoding: chunked") + b"2;" + b"e" * 200_000 + b"\r\n{}\r\n0\r\n\r\n" + SMUGGLED
    message = assert_one_json_refusal(*exchange(server.http_port, req), 400)
    assert "chunk" in message


@pytest.mark.parametrize("size,status", [(b"1ffffffffffffffff", 413), (b"zz", 400), (b"5 x", 400), (b"", 400)])
def test_a_malformed_chunk_size_gets_one_json_answer(server, size, status):
    """Past 2^64-1 (413), not hex, junk after the size, no size: refused at
    once, mid-body, with one JSON answer."""
    req = post_head(b"Transfer-Encoding: chunked") + b"2\r\n{}\r\n" + size + b"\r\nabc\r\n0\r\n\r\n" + SMUGGLED
    assert "chunk" in assert_one_json_refusal(*exchange(server.http_port, req), status)


def test_chunk_data_longer_than_its_size_gets_one_json_answer(server):
    req = post_head(b"Transfer-Encoding: chunked") + b"2\r\n{}xx\r\n0\r\n\r\n" + SMUGGLED
    assert "CRLF" in assert_one_json_refusal(*exchange(server.http_port, req), 400)


def test_a_chunk_size_of_2_64_minus_1_counts_towards_the_body_limit(server):
    """ffffffffffffffff is a valid size: its bytes count towards
    max_body_bytes like any other and cross it."""
    req = post_head(b"Transfer-Encoding: chunked") + b"ffffffffffffffff\r\n" + b"a" * (2 * LIMIT)
    assert "max_body_bytes" in assert_one_json_refusal(*exchange(server.http_port, req), 413)


@pytest.mark.parametrize("line", [b"GET /healthz", b"GET  /healthz HTTP/1.1", b"G\x01T /healthz HTTP/1.1",
                                  b"GET /heal\x7fthz HTTP/1.1", b"GET /healthz HTTP/1.1x", b"GET /healthz http/1.1"])
def test_a_malformed_request_line_gets_one_json_answer(server, line):
    assert_one_json_refusal(*exchange(server.http_port, line + b"\r\nHost: x\r\n\r\n" + SMUGGLED), 400)


def test_an_unsupported_http_version_is_505(server):
    message = assert_one_json_refusal(*exchange(server.http_port, b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n"), 505)
    assert "HTTP/1.1" in message


@pytest.mark.parametrize("field", [b"NoColon", b": empty-name", b"X-A: a\x01b", b"X-A: a\rb"])
def test_a_malformed_header_line_gets_one_json_answer(server, field):
    assert_one_json_refusal(*exchange(server.http_port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + field +
                                      b"\r\n\r\n" + SMUGGLED), 400)


def test_a_bare_lf_gets_one_json_answer(server):
    assert "CRLF" in assert_one_json_refusal(
        *exchange(server.http_port, b"GET /healthz HTTP/1.1\nHost: x\r\n\r\n" + SMUGGLED), 400)


def test_obs_fold_is_refused(server):
    """RFC 9112 5.2: a field continued on the next line is refused; the
    library joined 'chunk' + ' ed' into 'chunked' without a word."""
    req = (b"POST /v2/repository/index HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunk\r\n ed\r\n"
           b"Content-Length: 5\r\n\r\n0\r\n\r\n" + SMUGGLED)
    assert "obs-fold" in assert_one_json_refusal(*exchange(server.http_port, req), 400)


@pytest.mark.parametrize("req,status", [
    (b"GET /" + b"a" * 1_000_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n", 431),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(101)) + b"\r\n", 431),
])
def test_oversized_heads_get_one_json_answer(server, req, status):
    assert_one_json_refusal(*exchange(server.http_port, req + SMUGGLED), status)


def test_a_refusal_comes_after_the_answers_to_the_requests_before_it(server):
    """Pipelined: two good requests, then a bad one.  The two answers come
    first, in order, then the refusal, then the close."""
    req = (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" +
           b"POST /v2/repository/index HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}" +
           b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n" + SMUGGLED)
    raw, closed = exchange(server.http_port, req)
    got = responses(raw)
    assert [g[0] for g in got] == [200, 200, 400], raw[:1000]
    assert len({g[1]["x-request-id"][0] for g in got}) == 3
    first_two = raw[:raw.rindex(b"HTTP/1.1 400")]
    assert_one_json_refusal(raw[len(first_two):], closed, 400)


GOOD = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
BAD = b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"


def many_clients_at_once(connect, n=24):
    """n clients at once, each on its own connection: the odd ones send
    three good requests, the even ones two good ones and then a bad one.
    Returns the status lists they got, and whether each was closed."""
    results = [None] * n
    start = threading.Barrier(n)

    def client(i):
        with connect() as s:
            start.wait(timeout=10)
            s.sendall(GOOD * 2 + (GOOD + b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                                  if i % 2 else BAD))
            raw, closed = read_all(s)
            results[i] = ([g[0] for g in responses(raw)], closed)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_many_clients_across_the_gates_threads_each_get_their_own_answers(tmp_path, tls):
    """With http.threads 4 the gate runs four epoll threads that share the
    listener; clients land on several of them at once, and each connection
    still gets exactly its own answers, a refusal only where it sent the bad
    request (the refusal is found by the library's end of the pair, across
    threads)."""
    import ssl
    if tls:
        from test_auth import tls_daemon
        d = tls_daemon(tmp_path, "--http-threads", "4")
        context = ssl.create_default_context(cafile=str(d.pki / "ca.pem"))

        def connect():
            raw = socket.create_connection(("127.0.0.1", d.http_port), timeout=10)
            return context.wrap_socket(raw, server_hostname="127.0.0.1")
    else:
        models = tmp_path / "models"
        models.mkdir()
        d = Daemon("--models", models, "--http-threads", "4")

        def connect():
            return socket.create_connection(("127.0.0.1", d.http_port), timeout=10)
    try:
        results = many_clients_at_once(connect)
        for i, (statuses, closed) in enumerate(results):
            assert statuses == ([200, 200, 200, 200] if i % 2 else [200, 200, 400]), (i, statuses)
            assert closed, i
    finally:
        assert d.stop() == 0


def test_client_trailers_are_not_passed_on(server):
    """A trailer named like the gate's own marker is the client's: it is
    checked and dropped, and the request is answered as usual."""
    req = (post_head(b"Transfer-Encoding: chunked", b"Connection: close") +
           b"2\r\n{}\r\n0\r\nX-Vigil-Gate-Refusal: 1\r\n\r\n")
    got = responses(exchange(server.http_port, req)[0])
    assert len(got) == 1 and got[0][0] == 200, got


@pytest.mark.parametrize("req,status", [
    (b"POST /v2/repository/index HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n" + SMUGGLED, 400),
    (b"POST /v2/repository/index HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2;" +
     b"e" * 200_000 + b"\r\n{}\r\n0\r\n\r\n" + SMUGGLED, 400),
    (b"POST /v2/repository/index HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"1ffffffffffffffff\r\nabc\r\n0\r\n\r\n" + SMUGGLED, 413),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n" + SMUGGLED, 400),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n", 431),
])
def test_refusals_over_tls_get_one_json_answer(tls_server, req, status):
    """Under HTTPS the gate terminates TLS and refuses the same way."""
    import ssl
    context = ssl.create_default_context(cafile=str(tls_server.pki / "ca.pem"))
    with socket.create_connection(("127.0.0.1", tls_server.http_port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            try:
                s.sendall(req)
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                pass
            answer, closed = read_all(s)
    assert_one_json_refusal(answer, closed, status)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    from test_auth import tls_daemon
    d = tls_daemon(tmp_path_factory.mktemp("framing-tls"), "--http-max-body-bytes", str(LIMIT))
    yield d
    d.stop()


# ------------------------------------------------------------ whole log lines

def test_every_log_line_is_one_json_object_under_load_and_sighup(tmp_path):
    """Access lines from many connections and SIGHUP error lines (a secret
    file too short to load) interleave on a non-blocking stderr pipe that is
    read slowly: each line must still be one JSON object.  stdio wrote a
    line in many writes and dropped those that hit a full pipe, cutting
    lines ('...auth secret file /tmp/prob{"ts":...')."""
    models = tmp_path / "models"
    models.mkdir()
    secret = tmp_path / "secret"
    secret.write_bytes(b"s" * 40 + b"\n")
    port = free_port()
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    proc = subprocess.Popen([vigil_binary(), "serve", "--host", "127.0.0.1", "--http-port", str(port),
                             "--grpc-port", str(free_port()), "--models", str(models), "--log-format", "json",
                             "--auth-mode", "jwt", "--auth-secret-file", str(secret), "--http-threads", "4"],
                            stdout=write_end, stderr=write_end)
    os.close(write_end)
    log = bytearray()

    def drain():  # a slow reader: small reads with pauses, so the pipe fills
        while True:
            data = os.read(read_end, 512)
            if not data:
                return
            log.extend(data)
            time.sleep(0.001)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        secret.write_bytes(b"short")  # every SIGHUP now logs an error and keeps the old key
        stop = time.monotonic() + 3

        def hammer():
            while time.monotonic() < stop:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                    s.sendall(b"GET /api/v1/models HTTP/1.1\r\nHost: x\r\n\r\n" * 20 +
                              b"GET /api/v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    read_all(s)

        workers = [threading.Thread(target=hammer) for _ in range(8)]
        for w in workers:
            w.start()
        hups = 0
        while time.monotonic() < stop:
            proc.send_signal(signal.SIGHUP)
            hups += 1
            time.sleep(0.003)
        for w in workers:
            w.join()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        reader.join(timeout=30)
        os.close(read_end)
    lines = log.decode("utf-8", errors="replace").split("\n")
    assert lines[-1] == "", "the log does not end with a whole line"
    lines = lines[:-1]
    kinds = {"access": 0, "sighup": 0}
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            pytest.fail(f"not one JSON object: {line[:300]!r}")
        assert isinstance(record, dict), line
        if record.get("type") == "access":
            kinds["access"] += 1
        elif "SIGHUP" in record.get("msg", ""):
            kinds["sighup"] += 1
    assert hups > 10 and kinds["access"] > 100 and kinds["sighup"] > 10, kinds
