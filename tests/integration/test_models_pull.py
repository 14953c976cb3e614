"""`vigil models pull`: a model fetched over plain HTTP and from an S3-style
store (whose SigV4 signatures this test recomputes and checks, as S3 does),
installed all or nothing, then served.  Every failure (wrong secret, 404,
truncated body, a body that is not ONNX, checksum mismatch, timeout) is one
line on stderr, exit status 1, and leaves the destination as it was."""
import datetime
import hashlib
import hmac
import http.server
import os
import re
import signal
import subprocess
import threading
import time
import urllib.parse

import pytest
import requests

from conftest import ready_daemon, run_vigil, shared_path, vigil_binary

ACCESS_KEY = "AKIDVIGILTEST"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SESSION_TOKEN = "session-token-for-the-test"
REGION = "eu-central-1"
BUCKET = "vigil-models"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _hmac(key, text):
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sigv4_problem(handler, secrets):
    """Why a request's AWS Signature Version 4 is not valid, or None: the
    signature is recomputed from the request as S3 does (canonical request,
    string to sign, derived key)."""
    auth = handler.headers.get("Authorization", "")
    m = re.fullmatch(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/s3/aws4_request, "
                     r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})", auth)
    if not m:
        return "AccessDenied", "no SigV4 Authorization header"
    key_id, date, region, signed, signature = m.groups()
    if key_id not in secrets:
        return "InvalidAccessKeyId", key_id
    names = signed.split(";")
    for required in ("host", "x-amz-date", "x-amz-content-sha256"):
        if required not in names:
            return "AccessDenied", f"{required} not signed"
    if handler.headers["x-amz-content-sha256"] != EMPTY_SHA256:
        return "XAmzContentSHA256Mismatch", handler.headers["x-amz-content-sha256"]
    amz_date = handler.headers["x-amz-date"]
    if not amz_date.startswith(date):
        return "AccessDenied", "date mismatch"
    path, _, query = handler.path.partition("?")
    canonical_query = "&".join(sorted(query.split("&"))) if query else ""
    canonical_headers = "".join(f"{n}:{' '.join(handler.headers[n].split())}\n" for n in names)
    canonical = "\n".join([handler.command, path, canonical_query, canonical_headers, signed,
                           handler.headers["x-amz-content-sha256"]])
    scope = f"{date}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(("AWS4" + secrets[key_id]).encode(), date)
    for part in (region, "s3", "aws4_request"):
        key = _hmac(key, part)
    if not hmac.compare_digest(hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest(), signature):
        return "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided"
    return None


class Store(http.server.ThreadingHTTPServer):
    """Loopback HTTP server: /files/NAME are plain downloads, /BUCKET/KEY an
    S3 bucket (path-style) that requires valid SigV4 signatures."""
    daemon_threads = True

    def __init__(self, files):
        super().__init__(("127.0.0.1", 0), StoreHandler)
        self.files = files  # name -> bytes
        self.secrets = {ACCESS_KEY: SECRET_KEY}
        self.connects = []  # CONNECT targets asked of it as a proxy
        self.slow_started = threading.Event()  # a client is waiting on slow.onnx
        self.signed_requests = []  # (path, signed header names) of requests accepted by the bucket
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()


class StoreHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body, length=None, content_type="application/octet-stream"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def s3_error(self, status, code, message):
        xml = f"<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
        self.answer(status, xml.encode(), content_type="application/xml")

    def do_CONNECT(self):
        self.server.connects.append(self.path)
        self.answer(403, b"no tunnels here", content_type="text/plain")

    def do_GET(self):
        path = urllib.parse.unquote(self.path.partition("?")[0])
        if path.startswith(f"/{BUCKET}/"):
            problem = sigv4_problem(self, self.server.secrets)
            if problem:
                return self.s3_error(403, *problem)
            if self.headers.get("x-amz-security-token") != SESSION_TOKEN:
                return self.s3_error(403, "InvalidToken", "The provided token is malformed or otherwise invalid")
            self.server.signed_requests.append((path, self.headers["Authorization"]))
            name = path[len(BUCKET) + 2:]
            if name not in self.server.files:
                return self.s3_error(404, "NoSuchKey", "The specified key does not exist.")
            return self.answer(200, self.server.files[name])
        name = path.removeprefix("/files/")
        if name == "truncated.onnx":  # announces the whole model, sends half, closes
            body = self.server.files["yolov8n.onnx"]
            return self.answer(200, body[:len(body) // 2], length=len(body))
        if name == "slow.onnx":  # headers, then nothing for longer than the pull's --timeout
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.server.slow_started.set()
            time.sleep(4)
            return
        if name not in self.server.files:
            return self.answer(404, b"not found", content_type="text/plain")
        return self.answer(200, self.server.files[name])


@pytest.fixture(scope="module")
def model_bytes():
    return shared_path("models/yolov8n.onnx").read_bytes()


@pytest.fixture
def store(model_bytes):
    s = Store({"yolov8n.onnx": model_bytes, "page.onnx": b"<html><body>Sign in</body></html>\n" * 20})
    yield s
    s.shutdown()
    s.server_close()


def s3_env(store, secret=SECRET_KEY):
    return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": secret, "AWS_SESSION_TOKEN": SESSION_TOKEN,
            "AWS_REGION": REGION, "AWS_ENDPOINT_URL": store.url}


def test_pull_over_http_into_a_version_folder_is_served(tmp_path, store, model_bytes):
    models = tmp_path / "models"
    digest = hashlib.sha256(model_bytes).hexdigest()
    r = run_vigil("models", "pull", f"{store.url}/files/yolov8n.onnx", f"{models}/yolov8n/1/", "--sha256", digest)
    assert r.returncode == 0, r.stderr
    installed = models / "yolov8n" / "1" / "model.onnx"
    assert r.stdout.startswith(str(installed))
    assert installed.read_bytes() == model_bytes
    assert sorted(p.name for p in installed.parent.iterdir()) == ["model.onnx"]  # no temporary file left
    d = ready_daemon("--models", models)
    try:
        assert requests.get(d.url + "/v2/models/yolov8n/ready", timeout=5).status_code == 200
    finally:
        d.stop()


def test_pull_from_s3_with_keys_into_a_repository(tmp_path, store, model_bytes):
    models = tmp_path / "models"
    models.mkdir()
    r = run_vigil("models", "pull", f"s3://{BUCKET}/yolov8n.onnx", models, env=s3_env(store))
    assert r.returncode == 0, r.stderr
    assert (models / "yolov8n" / "1" / "model.onnx").read_bytes() == model_bytes
    (path, auth), = store.signed_requests
    assert path == f"/{BUCKET}/yolov8n.onnx"
    assert f"Credential={ACCESS_KEY}/" in auth and f"/{REGION}/s3/aws4_request" in auth
    assert "x-amz-security-token" in auth  # the session token is signed too


def test_s3_url_without_an_endpoint_is_aws_virtual_hosted(tmp_path, store):
    """Without AWS_ENDPOINT_URL the bucket is reached at AWS, virtual-hosted.
    No traffic may leave loopback, so HTTPS_PROXY points curl at the test's
    server, which sees the CONNECT to AWS's host and refuses it."""
    env = {"AWS_ENDPOINT_URL": "", "AWS_ACCESS_KEY_ID": "", "AWS_REGION": "eu-west-3", "HTTPS_PROXY": store.url,
           "https_proxy": store.url, "NO_PROXY": "", "no_proxy": ""}
    r = run_vigil("models", "pull", "s3://my-bucket/dir/yolo v8.onnx", tmp_path / "m.onnx", env=env)
    assert r.returncode == 1
    assert "https://my-bucket.s3.eu-west-3.amazonaws.com/dir/yolo%20v8.onnx" in r.stderr
    assert store.connects == ["my-bucket.s3.eu-west-3.amazonaws.com:443"]
    r = run_vigil("models", "pull", "http://127.0.0.1:1/m.onnx", tmp_path / "repo" / "m" / "1")
    assert r.returncode == 1 and "127.0.0.1" in r.stderr
    assert not os.listdir(tmp_path)  # not even the folders it made for the model


FAILURES = {
    "wrong secret": (lambda s: (f"s3://{BUCKET}/yolov8n.onnx", s3_env(s, secret="not-the-secret"), []),
                     r"HTTP 403 \(access denied.*SignatureDoesNotMatch"),
    "s3 missing key": (lambda s: (f"s3://{BUCKET}/nope.onnx", s3_env(s), []), r"HTTP 404 \(not found\): NoSuchKey"),
    "http 404": (lambda s: (f"{s.url}/files/nope.onnx", {}, []), r"HTTP 404 \(not found\)"),
    "truncated": (lambda s: (f"{s.url}/files/truncated.onnx", {}, []), r"truncated: the connection closed after"),
    "not onnx": (lambda s: (f"{s.url}/files/page.onnx", {}, []), r"is not a model vigil can load"),
    "sha256 mismatch": (lambda s: (f"{s.url}/files/yolov8n.onnx", {}, ["--sha256", "ab" * 32]),
                        r"SHA-256 mismatch: got [0-9a-f]{64}, expected (ab){32}"),
    "too large": (lambda s: (f"{s.url}/files/yolov8n.onnx", {}, ["--max-bytes", "1000"]),
                  r"larger than the limit of 1000 bytes"),
    "timeout": (lambda s: (f"{s.url}/files/slow.onnx", {}, ["--timeout", "1"]), r"timed out after 1 s"),
}


@pytest.mark.parametrize("case", FAILURES)
def test_a_failed_pull_is_one_line_and_leaves_the_destination_alone(tmp_path, store, case):
    make, pattern = FAILURES[case]
    source, env, extra = make(store)
    version = tmp_path / "models" / "yolov8n" / "1"
    version.mkdir(parents=True)
    (version / "model.onnx").write_bytes(b"the model served before")
    r = run_vigil("models", "pull", source, version, *extra, env=env)
    assert r.returncode == 1, r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vigil models pull: "), r.stderr
    assert re.search(pattern, lines[0]), lines[0]
    assert sorted(p.name for p in version.iterdir()) == ["model.onnx"]  # no partial file
    assert (version / "model.onnx").read_bytes() == b"the model served before"


def test_sigterm_mid_download_cleans_up(tmp_path, store):
    """A pod deleted while its init container downloads: the pull stops at
    once and leaves neither a temporary file nor the folders it made."""
    dest = tmp_path / "repo" / "m" / "1"
    proc = subprocess.Popen([vigil_binary(), "models", "pull", f"{store.url}/files/slow.onnx", str(dest)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert store.slow_started.wait(30), "the pull never reached the server"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1 and "interrupted" in err, err
    assert not os.listdir(tmp_path)


def test_usage_errors_exit_2(tmp_path):
    assert run_vigil("models", "pull", "http://127.0.0.1:1/m.onnx").returncode == 2
    r = run_vigil("models", "pull", "ftp://example/m.onnx", tmp_path / "m.onnx")
    assert r.returncode == 1 and "http://, https:// or s3://" in r.stderr
    r = run_vigil("models", "pull", "s3://Bad_Bucket/m.onnx", tmp_path / "m.onnx")
    assert r.returncode == 1 and "not an S3 bucket name" in r.stderr
    r = run_vigil("models", "pull", "http://127.0.0.1:1/m.onnx", tmp_path / "repo" / "m" / "1")
    assert r.returncode == 1 and "127.0.0.1" in r.stderr
    assert not os.listdir(tmp_path)  # not even the folders it made for the model
