"""Authentication and TLS on the REST API, against the real daemon.

Tokens are minted here with the standard library (HMAC-SHA256), independent
of the daemon's libjwt, and once with `vigil token`.  Covers every refusal
reason (status, body, WWW-Authenticate, /metrics counter), scopes on admin
routes (an unauthorised upload writes nothing), closed health/metrics, key
rotation on SIGHUP, and HTTPS / mutual TLS with certificates made by the
`openssl` command.  gRPC auth is covered by test_grpc.py::test_auth_jwt_on_grpc.
"""
import base64
import hashlib
import hmac
import json
import re
import signal
import subprocess
import time

import pytest
import requests

from conftest import Daemon, run_vigil

SECRET = b"integration-secret-0123456789-abcdefghij"
ISSUER = "https://issuer.test"
AUDIENCE = "vigil"
INFER_ROUTE = "/api/v1/models"          # GET, needs "infer"
ADMIN_ROUTE = "/v2/repository/index"    # POST, needs "admin"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint(claims, key=SECRET, header=None, signed=True):
    header = header or {"alg": "HS256", "typ": "JWT"}
    signing = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    sig = hmac.new(key, signing.encode(), hashlib.sha256).digest() if signed else b""
    return signing + "." + b64(sig)


def claims(**override):
    now = int(time.time())
    c = {"sub": "tester", "iss": ISSUER, "aud": AUDIENCE, "exp": now + 600, "scope": "infer"}
    c.update(override)
    return {k: v for k, v in c.items() if v is not None}


def call(d, path, token=None, method="GET", **kw):
    headers = kw.pop("headers", {})
    if token is not None:
        headers["Authorization"] = "Bearer " + token
    return requests.request(method, d.url + path, headers=headers, timeout=10, **kw)


def metric(d, reason, token=None):
    text = call(d, "/metrics", token).text
    m = re.search(r'^vigil_auth_failures_total\{reason="%s"\} (\d+)$' % reason, text, re.M)
    return int(m.group(1)) if m else None


def start(tmp_path, *extra):
    secret = tmp_path / "secret"
    if not secret.exists():
        secret.write_bytes(SECRET + b"\n")
    models = tmp_path / "models"
    models.mkdir(exist_ok=True)
    d = Daemon("--models", models, "--auth-mode", "jwt", "--auth-secret-file", secret,
               "--auth-issuer", ISSUER, "--auth-audience", AUDIENCE, *extra)
    d.secret, d.models = secret, models
    return d


@pytest.fixture
def secured(tmp_path):
    d = start(tmp_path)
    yield d
    d.stop()


def refusal_cases():
    now = int(time.time())
    return [
        ("missing", None),
        ("malformed", "not-a-jwt"),
        ("malformed", "a.b"),
        ("signature", mint(claims(), key=b"k" * 40)),
        ("algorithm", mint(claims(), header={"alg": "none"}, signed=False) + "AAAA"),
        ("algorithm", mint(claims(), header={"alg": "none"}, signed=False)),  # the classic unsigned form
        ("algorithm", mint(claims(), header={"alg": "HS384"}, signed=False) + "AAAA"),
        ("expired", mint(claims(exp=now - 600))),
        ("not_yet_valid", mint(claims(nbf=now + 600))),
        ("issuer", mint(claims(iss="https://evil.test"))),
        ("audience", mint(claims(aud=["other", "vigil2"]))),
    ]


def test_every_refusal_is_401_with_reason_and_counted(secured):
    counted = {}
    for reason, token in refusal_cases():
        r = call(secured, INFER_ROUTE, token)
        assert r.status_code == 401, (reason, r.status_code, r.text)
        assert r.headers.get("WWW-Authenticate", "").startswith("Bearer"), reason
        body = r.json()
        assert isinstance(body.get("error"), str) and body["error"], reason
        if token and len(token) > 20:  # a real token is never echoed, nor its header segment
            assert token not in r.text and token.split(".")[0] not in body["error"]
        counted[reason] = counted.get(reason, 0) + 1
    for reason, n in counted.items():
        assert metric(secured, reason) == n, reason


def test_unsigned_alg_none_token_is_refused(secured):
    token = mint(claims(scope="admin"), header={"alg": "none", "typ": "JWT"}, signed=False)
    assert call(secured, INFER_ROUTE, token).status_code == 401
    assert call(secured, ADMIN_ROUTE, token, method="POST", json={}).status_code == 401


def test_valid_token_reaches_the_route(secured):
    r = call(secured, INFER_ROUTE, mint(claims()))
    assert r.status_code == 200, r.text
    assert "models" in r.json()
    # bearer scheme is case-insensitive
    r = requests.get(secured.url + INFER_ROUTE, headers={"Authorization": "bearer " + mint(claims())}, timeout=10)
    assert r.status_code == 200


def test_infer_scope_on_admin_routes_is_403(secured):
    infer = mint(claims(scope="infer"))
    r = call(secured, ADMIN_ROUTE, infer, method="POST", json={})
    assert r.status_code == 403, r.text
    assert "admin" in r.json()["error"]
    assert "WWW-Authenticate" not in r.headers
    r = call(secured, "/v2/repository/models/anything/load", infer, method="POST", json={})
    assert r.status_code == 403
    assert metric(secured, "scope") == 2
    admin = mint(claims(scope="admin"))
    r = call(secured, ADMIN_ROUTE, admin, method="POST", json={})
    assert r.status_code == 200, r.text
    # the same token may infer too: admin implies infer
    assert call(secured, INFER_ROUTE, mint(claims(scopes=["admin"], scope=None))).status_code == 200


def test_unauthorised_upload_writes_nothing(secured):
    body = b"\x08\x07" + b"x" * 4096  # the body is never looked at
    for token, want in ((None, 401), (mint(claims(scope="infer")), 403)):
        try:
            r = call(secured, "/api/v1/models/stolen/versions/1", token, method="PUT", data=body)
            assert r.status_code == want, r.text
        except requests.ConnectionError:
            pass  # the server may close the connection instead of reading a refused body
    assert not (secured.models / "stolen").exists()
    assert call(secured, "/healthz").status_code == 200


def test_health_and_metrics_open_by_default(secured):
    assert call(secured, "/healthz").status_code == 200
    assert call(secured, "/v2/health/ready").status_code == 200
    assert call(secured, "/metrics").status_code == 200


def test_vigil_token_output_is_accepted(secured):
    res = run_vigil("token", "--secret-file", secured.secret, "--scope", "infer admin",
                    "--issuer", ISSUER, "--audience", AUDIENCE, "--subject", "ci", "--ttl", "120")
    assert res.returncode == 0, res.stderr
    token = res.stdout.strip()
    assert token.count(".") == 2
    payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert payload["scope"] == "infer admin" and payload["sub"] == "ci"
    assert 100 <= payload["exp"] - int(time.time()) <= 121
    assert call(secured, ADMIN_ROUTE, token, method="POST", json={}).status_code == 200
    # without --issuer the server's auth.issuer check refuses it
    res = run_vigil("token", "--secret-file", secured.secret, "--audience", AUDIENCE)
    assert call(secured, INFER_ROUTE, res.stdout.strip()).status_code == 401


def test_vigil_token_refuses_a_short_secret(tmp_path):
    short = tmp_path / "short"
    short.write_text("short\n")
    res = run_vigil("token", "--secret-file", short)
    assert res.returncode == 1
    assert "32" in res.stderr and "short\n" not in res.stderr


class TokenDaemon(Daemon):
    """A daemon whose health endpoint needs a token (auth.open_health 0)."""

    token = mint(claims())

    def _wait_ready(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vigil serve exited: {self.proc.communicate()[1]}")
            try:
                r = requests.get(self.url + "/readyz", headers={"Authorization": "Bearer " + self.token}, timeout=1)
                if r.status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        raise RuntimeError("vigil serve did not answer /readyz with 200 in time")


def test_closed_health_and_metrics_need_a_token(tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET)
    models = tmp_path / "models"
    models.mkdir()
    d = TokenDaemon("--models", models, "--auth-mode", "jwt", "--auth-secret-file", secret,
                    "--auth-open-health", "0", "--auth-open-metrics", "0")
    try:
        assert call(d, "/healthz").status_code == 401
        assert call(d, "/metrics").status_code == 401
        token = mint(claims(scope=None))  # any valid token will do, no scope needed
        assert call(d, "/healthz", token).status_code == 200
        r = call(d, "/metrics", token)
        assert r.status_code == 200
        assert 'vigil_auth_failures_total{reason="missing"} 2' in r.text
    finally:
        d.stop()


def test_sighup_rotates_the_secret(tmp_path):
    d = start(tmp_path)
    try:
        old = mint(claims())
        new_secret = b"rotated-secret-0123456789-abcdefghijklmn"
        new = mint(claims(), key=new_secret)
        assert call(d, INFER_ROUTE, old).status_code == 200
        d.secret.write_bytes(new_secret)
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and call(d, INFER_ROUTE, new).status_code != 200:
            time.sleep(0.05)
        assert call(d, INFER_ROUTE, new).status_code == 200
        assert call(d, INFER_ROUTE, old).status_code == 401
        # a broken file on reload keeps the current keys
        d.secret.write_bytes(b"short")
        d.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert d.proc.poll() is None
        assert call(d, INFER_ROUTE, new).status_code == 200
    finally:
        d.stop()


def test_bad_auth_configuration_fails_at_start(tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    res = run_vigil("serve", "--models", models, "--http-port", "0", "--auth-mode", "jwt", timeout=30)
    assert res.returncode != 0
    assert "auth.secret_file" in res.stderr
    short = tmp_path / "short"
    short.write_text("tiny")
    res = run_vigil("serve", "--models", models, "--http-port", "0", "--auth-mode", "jwt",
                    "--auth-secret-file", short, timeout=30)
    assert res.returncode != 0 and "32 bytes" in res.stderr and "tiny" not in res.stderr


# ---------------------------------------------------------------- TLS

def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d, name="ca"):
    """A CA, a server certificate for 127.0.0.1 and a client certificate."""
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
            "-subj", f"/CN=vigil test {name}", "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=d)
    for leaf, ext in (("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"),
                      ("client", "extendedKeyUsage=clientAuth")):
        (d / f"{name}-{leaf}.ext").write_text(ext + "\n")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj",
                f"/CN={leaf}", "-keyout", f"{name}-{leaf}.key", "-out", f"{name}-{leaf}.csr", cwd=d)
        openssl("x509", "-req", "-in", f"{name}-{leaf}.csr", "-CA", f"{name}.pem", "-CAkey", f"{name}.key",
                "-CAcreateserial", "-days", "2", "-extfile", f"{name}-{leaf}.ext", "-out", f"{name}-{leaf}.pem",
                cwd=d)


class TlsDaemon(Daemon):
    """A daemon serving HTTPS; ready when curl gets a 200 from /readyz over TLS."""

    pki = None
    client = False

    def _wait_ready(self, timeout=30.0):
        self.url = self.url.replace("http://", "https://")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vigil serve exited: {self.proc.communicate()[1]}")
            rc, code, _ = self.curl("/readyz", client=self.client)
            if rc == 0 and code == 200:
                return
            time.sleep(0.1)
        raise RuntimeError("vigil serve did not answer /readyz with 200 over TLS in time")

    def curl(self, path, client=False, ca="ca", url=None, token=None):
        """(curl exit code, HTTP status, body)."""
        args = ["curl", "-sS", "--max-time", "5", "--cacert", str(self.pki / f"{ca}.pem"),
                "-o", "-", "-w", "\n%{http_code}"]
        if client:
            args += ["--cert", str(self.pki / f"{client}-client.pem"), "--key", str(self.pki / f"{client}-client.key")]
        if token:
            args += ["-H", "Authorization: Bearer " + token]
        res = subprocess.run(args + [(url or self.url) + path], capture_output=True, text=True)
        body, _, code = res.stdout.rpartition("\n")
        return res.returncode, int(code or 0), body


def tls_daemon(tmp_path, *extra, client=False):
    pki = tmp_path / "pki"
    if not pki.exists():
        pki.mkdir()
        make_pki(pki)
        make_pki(pki, "rogue")
    models = tmp_path / "models"
    models.mkdir(exist_ok=True)
    TlsDaemon.pki, TlsDaemon.client = pki, client
    return TlsDaemon("--models", models, "--tls-cert-file", pki / "ca-server.pem",
                     "--tls-key-file", pki / "ca-server.key", *extra)


def test_https_serves_and_plain_http_fails_cleanly(tmp_path):
    d = tls_daemon(tmp_path)
    try:
        rc, code, body = d.curl("/healthz")
        assert (rc, code) == (0, 200) and "ok" in body
        # plain HTTP on the TLS port: no HTTP answer, and the server keeps serving
        plain = d.url.replace("https://", "http://")
        try:
            r = requests.get(plain + "/healthz", timeout=5)
            assert r.status_code != 200
        except requests.RequestException:
            pass
        # a client that does not trust the server's CA refuses the connection
        rc, _, _ = d.curl("/healthz", ca="rogue")
        assert rc != 0
        assert d.curl("/healthz")[:2] == (0, 200)
    finally:
        d.stop()


def test_mutual_tls_requires_a_client_certificate(tmp_path):
    pki = tmp_path / "pki"
    d = tls_daemon(tmp_path, "--tls-client-ca-file", tmp_path / "pki" / "ca.pem", client="ca")
    try:
        rc, code, _ = d.curl("/healthz", client="ca")
        assert (rc, code) == (0, 200)
        for client in (False, "rogue"):  # no certificate, or one from another CA: no TLS session at all
            rc, code, _ = d.curl("/healthz", client=client)
            assert rc != 0 and code == 0, (client, rc, code)
        assert d.curl("/healthz", client="ca")[:2] == (0, 200)
    finally:
        d.stop()
    assert pki.exists()


def test_tls_with_jwt(tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET)
    d = tls_daemon(tmp_path, "--auth-mode", "jwt", "--auth-secret-file", secret)
    try:
        assert d.curl(INFER_ROUTE)[1] == 401
        assert d.curl(INFER_ROUTE, token=mint(claims(iss=None, aud=None)))[1] == 200
    finally:
        d.stop()


def two_pkis(tmp_path):
    """tmp_path/pki with the "ca" and "rogue" PKIs, and an empty tmp_path/models."""
    pki = tmp_path / "pki"
    pki.mkdir()
    make_pki(pki)
    make_pki(pki, "rogue")
    models = tmp_path / "models"
    models.mkdir()
    return pki, models


def test_mismatched_tls_files_fail_at_start(tmp_path):
    pki, models = two_pkis(tmp_path)
    res = run_vigil("serve", "--models", models, "--http-port", "0", "--tls-cert-file", pki / "ca-server.pem",
                    "--tls-key-file", pki / "rogue-server.key", timeout=30)
    assert res.returncode != 0 and "tls" in res.stderr
    res = run_vigil("serve", "--models", models, "--http-port", "0", "--tls-cert-file", pki / "ca-server.pem",
                    timeout=30)
    assert res.returncode != 0 and "tls.key_file" in res.stderr


def test_sighup_reloads_certificates_for_https_and_grpc(tmp_path):
    """The served certificate, key and client CA are files that SIGHUP
    reloads: after the files are replaced by a new PKI ("rogue") and the
    signal is sent, new HTTPS and gRPC handshakes present the new
    certificate and accept only clients of the new CA; a broken file on a
    later SIGHUP keeps the current certificate."""
    import shutil

    import grpc
    pki, models = two_pkis(tmp_path)
    live = tmp_path / "live"
    live.mkdir()
    for src, dst in (("ca-server.pem", "server.pem"), ("ca-server.key", "server.key"), ("ca.pem", "client-ca.pem")):
        shutil.copy(pki / src, live / dst)
    TlsDaemon.pki, TlsDaemon.client = pki, "ca"
    d = TlsDaemon("--models", models, "--tls-cert-file", live / "server.pem", "--tls-key-file", live / "server.key",
                  "--tls-client-ca-file", live / "client-ca.pem")

    def grpc_live(ca, client):
        creds = grpc.ssl_channel_credentials(root_certificates=(pki / f"{ca}.pem").read_bytes(),
                                             private_key=(pki / f"{client}-client.key").read_bytes(),
                                             certificate_chain=(pki / f"{client}-client.pem").read_bytes())
        ch = grpc.secure_channel(f"127.0.0.1:{d.grpc_port}", creds)
        try:
            grpc.channel_ready_future(ch).result(timeout=10)
            return True
        except grpc.FutureTimeoutError:
            return False
        finally:
            ch.close()

    def wait_for(check, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return True
            time.sleep(0.2)
        return False

    try:
        assert d.curl("/healthz", client="ca")[:2] == (0, 200)
        assert grpc_live("ca", "ca")
        assert d.curl("/healthz", client="rogue", ca="rogue")[0] != 0  # not trusted yet
        for src, dst in (("rogue-server.pem", "server.pem"), ("rogue-server.key", "server.key"),
                         ("rogue.pem", "client-ca.pem")):
            shutil.copy(pki / src, live / dst)
        d.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: d.curl("/healthz", client="rogue", ca="rogue")[:2] == (0, 200))
        rc, code, _ = d.curl("/healthz", client="ca", ca="rogue")  # the old CA's client is refused now
        assert rc != 0 and code == 0
        assert d.curl("/healthz", client="ca", ca="ca")[0] != 0  # the old certificate is no longer served
        assert wait_for(lambda: grpc_live("rogue", "rogue"))
        assert not grpc_live("ca", "ca")
        (live / "server.key").write_text("junk\n")  # a broken reload keeps what is served
        d.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert d.curl("/healthz", client="rogue", ca="rogue")[:2] == (0, 200)
        assert grpc_live("rogue", "rogue")
        assert d.stop() == 0
        assert "keeping the current certificate" in d.read_log()
    finally:
        d.stop()
