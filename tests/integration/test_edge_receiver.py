"""The cloud receiver's contract (issue 19, must-show 4; docs/EDGE.md "Cloud
receiver"): POST /api/v1/events on `vigil serve --role cloud`, against the
real yolov8n as the cloud model, on both idempotency stores - SQLite (a file)
and PostgreSQL (Debian's server, started here on loopback).

For each store: an event sent 1 to 10 times, one after another and from
concurrent threads, and across a receiver killed with SIGKILL (mid-work
included) and restarted, leaves exactly one record and one frame file per
event id, and every 2xx a client got for an id carries the same answer;
409 for a concurrent duplicate, 422 for the same key with other content,
400 for a missing or malformed key; replays say Idempotent-Replayed: true.
"""
import collections
import hashlib
import json
import os
import pathlib
import pwd
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
import uuid

import pytest
import requests

from conftest import free_port, metric_value, ready_daemon, run_vigil, shared_path

PG_BIN = pathlib.Path("/usr/lib/postgresql/15/bin")


def uuid7() -> str:
    """An event id as the edge makes it (RFC 9562 UUIDv7, lower case)."""
    ms = int(time.time() * 1000)
    rand = secrets.randbits(74)
    value = (ms << 80) | (0x7 << 76) | ((rand >> 62) << 64) | (0b10 << 62) | (rand & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))


def event_doc(key, **extra):
    doc = {"id": key, "source": "cam1", "model": "yolov8n", "version": 1, "priority": 1,
           "reason": "band", "created_ms": 1765000000000, "width": 810, "height": 1080,
           "detections": []}
    doc.update(extra)
    return json.dumps(doc)


def parts_hash(event: str, frame: bytes) -> str:
    """The receiver's body hash (docs/EDGE.md): SHA-256 over each part's name,
    NUL, length (8 bytes little-endian) and bytes."""
    h = hashlib.sha256()
    for name, data in ((b"event", event.encode()), (b"frame", frame)):
        h.update(name + b"\0" + len(data).to_bytes(8, "little") + data)
    return h.hexdigest()


def post_event(url, key, frame, event=None, timeout=60, token=None):
    headers = {} if key is None else {"Idempotency-Key": key}
    if token:
        headers["Authorization"] = "Bearer " + token
    files = {"event": ("event.json", event if event is not None else event_doc(key), "application/json"),
             "frame": ("frame.jpg", frame, "image/jpeg")}
    return requests.post(url + "/api/v1/events", headers=headers, files=files, timeout=timeout)


# ---------------------------------------------------------------- stores

class SqliteStore:
    name = "sqlite"

    def __init__(self, directory):
        self.path = pathlib.Path(directory) / "receiver.db"
        self.url = f"sqlite:{self.path}"

    def rows(self):
        """{key: (state, status)} of every record."""
        with sqlite3.connect(self.path, timeout=10) as db:
            return {k: (s, st) for k, s, st in db.execute("SELECT key, state, status FROM vigil_idem")}

    def insert_claim(self, key, body_hash, claimed_ms):
        """A claim left by a receiver that died mid-work."""
        with sqlite3.connect(self.path, timeout=10) as db:
            db.execute("INSERT INTO vigil_idem (key, body_sha256, state, claimed_ms) VALUES (?, ?, 0, ?)",
                       (key, body_hash, claimed_ms))


class PostgresServer:
    """Debian's PostgreSQL 15 on a loopback port, in a temporary directory,
    trust authentication on 127.0.0.1 only; initdb refuses root, so as root
    it runs as the postgres user."""

    def __init__(self):
        if not (PG_BIN / "initdb").exists() or not (PG_BIN / "pg_ctl").exists():
            pytest.skip(f"PostgreSQL server binaries absent from {PG_BIN} (Debian package postgresql)")
        self.as_user = []
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="vigil-pg-"))
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                shutil.rmtree(self.dir)
                pytest.skip("running as root and there is no postgres user for initdb")
            if not shutil.which("runuser"):
                shutil.rmtree(self.dir)
                pytest.skip("running as root and runuser is absent")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.port = free_port()
        self.data = self.dir / "data"
        self._run(PG_BIN / "initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()

    def _run(self, *args, check=True):
        return subprocess.run([*self.as_user, *map(str, args)], capture_output=True, text=True, timeout=120,
                              check=check)

    def start(self):
        options = f"-h 127.0.0.1 -p {self.port} -k {self.dir} -c fsync=off -c max_connections=60"
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-o", options, "-l", self.dir / "log", "-w", "-t", "60",
                  "start")

    def stop(self):
        self._run(PG_BIN / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop", check=False)

    def psql(self, sql, db="postgres"):
        r = subprocess.run([str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                            "-d", db, "-v", "ON_ERROR_STOP=1", "-tAc", sql],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class PostgresStore:
    name = "postgresql"

    def __init__(self, server):
        self.server = server
        self.db = "t_" + secrets.token_hex(6)
        server.psql(f"CREATE DATABASE {self.db}")
        self.url = f"postgresql://postgres@127.0.0.1:{server.port}/{self.db}?connect_timeout=5"

    def rows(self):
        out = self.server.psql("SELECT key, state, coalesce(status, 0) FROM vigil_idem", self.db)
        rows = {}
        for line in out.splitlines():
            key, state, status = line.split("|")
            assert key not in rows
            rows[key] = (int(state), int(status))
        return rows

    def insert_claim(self, key, body_hash, claimed_ms):
        self.server.psql("INSERT INTO vigil_idem (key, body_sha256, state, claimed_ms) "
                         f"VALUES ('{key}', '{body_hash}', 0, {claimed_ms})", self.db)


@pytest.fixture(scope="module")
def postgres():
    server = PostgresServer()
    yield server
    server.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        return SqliteStore(tmp_path)
    return PostgresStore(request.getfixturevalue("postgres"))


@pytest.fixture(scope="module")
def frames():
    return {"bus": shared_path("images/bus.jpg").read_bytes(),
            "zidane": shared_path("images/zidane.jpg").read_bytes()}


@pytest.fixture
def models(tmp_path):
    models = tmp_path / "models"
    (models / "yolov8n" / "1").mkdir(parents=True)
    os.symlink(shared_path("models/yolov8n.onnx"), models / "yolov8n" / "1" / "model.onnx")  # read in place
    return models


class Cloud:
    """A cloud vigil (role cloud) on a store; restartable on the same files."""

    def __init__(self, models, data, store, *extra):
        self.args = ["--models", models, "--role", "cloud", "--edge-data-dir", data,
                     "--edge-receiver-store", store.url, "--edge-receiver-claim-timeout-s", "2",
                     "--log-format", "text", *extra]
        self.frames_dir = pathlib.Path(data) / "frames"
        self.start()

    def start(self):
        self.daemon = ready_daemon(*self.args)  # the cloud model loaded
        self.url = self.daemon.url

    def kill(self):
        self.daemon.stop(sig=signal.SIGKILL)

    def stop(self):
        return self.daemon.stop()

    def frame_files(self):
        return sorted(p.name for p in self.frames_dir.iterdir())


@pytest.fixture
def cloud(models, tmp_path, store):
    c = Cloud(models, tmp_path / "data", store)
    yield c
    c.stop()


def assert_one_record_each(cloud, store, keys, status=201):
    rows = store.rows()
    for key in keys:
        assert rows.get(key) == (1, status), (key, rows.get(key))
    files = cloud.frame_files()
    assert not [f for f in files if ".tmp" in f], files  # no half-written frame left behind
    expected = sorted(f"{k}.jpg" for k in keys if status == 201)
    assert sorted(f for f in files if f[:-4] in keys) == expected


# ---------------------------------------------------------------- the contract

def test_replays_one_to_ten_times(cloud, store, frames):
    keys = []
    for n in range(1, 11):
        key = uuid7()
        keys.append(key)
        first = post_event(cloud.url, key, frames["bus"])
        assert first.status_code == 201, first.text
        assert "Idempotent-Replayed" not in first.headers
        answer = first.json()
        assert answer["id"] == key and answer["verdict"]["model"] == "yolov8n"
        assert answer["verdict"]["version"] == 1 and isinstance(answer["received_ms"], int)
        classes = sorted(d["class_name"] for d in answer["verdict"]["detections"])
        assert classes.count("person") >= 4 and "bus" in classes  # the cloud model ran on the frame
        for _ in range(n - 1):
            again = post_event(cloud.url, key, frames["bus"])
            assert again.status_code == 201
            assert again.headers.get("Idempotent-Replayed") == "true"
            assert again.text == first.text
    print(f"{store.name}: 10 events sent 55 times: {len(store.rows())} records, "
          f"{len(cloud.frame_files())} frames")
    assert len(store.rows()) == 10
    assert_one_record_each(cloud, store, keys)
    with open(cloud.frames_dir / f"{keys[0]}.jpg", "rb") as f:
        assert f.read() == frames["bus"]  # the frame as the edge sent it


def test_concurrent_duplicates(cloud, store, frames):
    keys = [uuid7() for _ in range(3)]
    for key in keys:
        results = []
        lock = threading.Lock()
        start = threading.Barrier(10)

        def send():
            start.wait()
            r = post_event(cloud.url, key, frames["zidane"])
            with lock:
                results.append((r.status_code, r.headers.get("Idempotent-Replayed"), r.text))

        threads = [threading.Thread(target=send) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = collections.Counter((code, replayed) for code, replayed, _ in results)
        assert codes[(201, None)] == 1, codes  # processed once
        assert set(codes) <= {(201, None), (201, "true"), (409, None)}, codes
        first = next(text for code, replayed, text in results if code == 201 and not replayed)
        for code, _, text in results:
            if code == 409:
                assert "being processed" in json.loads(text)["error"]
            else:
                assert text == first
        later = post_event(cloud.url, key, frames["zidane"])
        assert later.status_code == 201 and later.headers.get("Idempotent-Replayed") == "true"
        assert later.text == first
    assert_one_record_each(cloud, store, keys)


def test_refusals(cloud, store, frames):
    key = uuid7()
    assert post_event(cloud.url, key, frames["bus"]).status_code == 201
    # the same key with another frame, or another event document: 422, nothing stored
    other = post_event(cloud.url, key, frames["zidane"])
    assert other.status_code == 422 and "different" in other.json()["error"]
    other = post_event(cloud.url, key, frames["bus"], event=event_doc(key, source="cam2"))
    assert other.status_code == 422
    # no key, a malformed key, an upper-case key, an event whose id is not the key: 400
    for bad in (None, "not-a-uuid", key.upper(), key + "0"):
        r = post_event(cloud.url, bad, frames["bus"], event=event_doc(key))
        assert r.status_code == 400, (bad, r.text)
        assert "Idempotency-Key" in r.json()["error"]
    r = post_event(cloud.url, uuid7(), frames["bus"], event=event_doc(uuid7()))
    assert r.status_code == 400 and "id" in r.json()["error"]
    r = requests.post(cloud.url + "/api/v1/events", headers={"Idempotency-Key": uuid7()}, data=b"{}", timeout=30)
    assert r.status_code == 400 and "multipart" in r.json()["error"]
    assert requests.put(cloud.url + "/api/v1/events", timeout=30).status_code == 405
    # GET on the same prefix is the video streams' events (docs/STREAMS.md): none here
    assert requests.get(cloud.url + "/api/v1/events", timeout=30).json() == {"events": [], "next": 0}
    # a frame the model cannot read: a final answer, stored, replayed alike
    broken = uuid7()
    r = post_event(cloud.url, broken, b"\xff\xd8 not really a jpeg")
    assert r.status_code == 400 and "frame" in r.json()["error"]
    again = post_event(cloud.url, broken, b"\xff\xd8 not really a jpeg")
    assert again.status_code == 400 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.text == r.text
    rows = store.rows()
    assert rows[key] == (1, 201) and rows[broken] == (1, 400)
    assert len(rows) == 2  # the refusals stored nothing
    assert cloud.frame_files() == [f"{key}.jpg"]
    metrics = requests.get(cloud.url + "/metrics", timeout=30).text
    counts = {o: metric_value(metrics, "vigil_edge_receiver_requests_total", outcome=o)
              for o in ("created", "replayed", "busy", "mismatch", "bad_frame", "refused", "unavailable")}
    assert counts == {"created": 1, "replayed": 1, "busy": 0, "mismatch": 2, "bad_frame": 1, "refused": 6,
                      "unavailable": 0}, counts
    assert metric_value(metrics, "vigil_edge_receiver_queue_length") == 0
    assert metric_value(metrics, "vigil_http_requests_total", route="/api/v1/events", code="201") is not None


def test_partial_frames_of_a_killed_receiver_removed_at_start(models, tmp_path):
    """A receiver SIGKILLed between writing a frame's temp file and renaming
    it leaves <id>.jpg.tmp.<host>.<pid>.<thread>; the next start on that
    directory removes the ones whose writer is gone (this host, a pid that
    has ended) and leaves a live process's and another host's (a replica
    on a shared volume), and every other file."""
    frames_dir = tmp_path / "data" / "frames"
    frames_dir.mkdir(parents=True)
    ended = subprocess.Popen(["true"])
    ended.wait()
    host = socket.gethostname()[:63]
    orphan = f"{uuid7()}.jpg.tmp.{host}.{ended.pid}.7f00aa"
    live = f"{uuid7()}.jpg.tmp.{host}.{os.getpid()}.7f00bb"
    replica = f"{uuid7()}.jpg.tmp.not-{host}.example.{ended.pid}.7f00cc"
    kept = [live, replica, f"{uuid7()}.jpg", "notes.txt"]
    for name in [orphan, *kept]:
        (frames_dir / name).write_bytes(b"\xff\xd8 half a frame")
    cloud = Cloud(models, tmp_path / "data", SqliteStore(tmp_path))
    try:
        assert sorted(cloud.frame_files()) == sorted(kept)
        assert "removed 1 partly written frame(s)" in cloud.daemon.read_log()
    finally:
        cloud.stop()


def test_restart_and_kill_mid_work(cloud, store, frames):
    """Replays across a SIGKILLed receiver: answers kept; claims the dead
    receiver left are taken over after the claim timeout (2 s here)."""
    done = uuid7()
    first = post_event(cloud.url, done, frames["bus"])
    assert first.status_code == 201
    cloud.kill()
    cloud.start()
    replay = post_event(cloud.url, done, frames["bus"])
    assert replay.status_code == 201 and replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.text == first.text
    # a claim as a receiver (this one before its restart, or a replica) leaves it when it dies mid-work
    orphan = uuid7()
    store.insert_claim(orphan, parts_hash(event_doc(orphan), frames["zidane"]), int(time.time() * 1000))
    busy = post_event(cloud.url, orphan, frames["zidane"])
    assert busy.status_code == 409 and busy.headers.get("Retry-After") == "1"  # the claim is young
    time.sleep(2.5)  # past edge.receiver.claim_timeout_s: its worker is presumed dead
    taken = post_event(cloud.url, orphan, frames["zidane"])
    assert taken.status_code == 201 and "Idempotent-Replayed" not in taken.headers

    # events in flight from several senders while the receiver is killed twice
    keys = [uuid7() for _ in range(8)]
    answers = collections.defaultdict(list)
    interrupted = collections.Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + 90

    def sender(mine):
        for i, key in enumerate(mine):
            for _ in range(1 + (3 * i + len(mine)) % 10):  # 1 to 10 answered sends each, like an edge's retries
                while time.monotonic() < deadline:
                    try:
                        r = post_event(cloud.url, key, frames["bus"], timeout=10)
                    except requests.RequestException:
                        with lock:
                            interrupted["no answer"] += 1
                        time.sleep(0.1)
                        continue
                    if r.status_code in (409, 503):
                        with lock:
                            interrupted[r.status_code] += 1
                        time.sleep(0.25)
                        continue
                    with lock:
                        answers[key].append((r.status_code, r.text))
                    break

    threads = [threading.Thread(target=sender, args=(keys[i::3],)) for i in range(3)]
    for t in threads:
        t.start()
    for pause in (0.4, 0.8):
        time.sleep(pause)
        cloud.kill()
        cloud.start()
    for t in threads:
        t.join()
    assert sorted(answers) == sorted(keys), "every event was answered"
    for key, got in answers.items():
        assert {code for code, _ in got} == {201}, got
        assert len({text for _, text in got}) == 1, f"{key}: different answers {got}"
    assert_one_record_each(cloud, store, [done, orphan, *keys])
    print(f"{store.name}: {len(keys)} events across two SIGKILLs: {len(answers)} answered, "
          f"{sum(len(v) for v in answers.values())} 2xx, one record each; retried: {dict(interrupted)}")


def test_postgres_outage_and_reconnect(models, tmp_path, postgres, frames):
    """A lost connection is re-made once, silently; a server that is down is
    503 with Retry-After (the edge retries), and the receiver recovers when
    it is back."""
    store = PostgresStore(postgres)
    cloud = Cloud(models, tmp_path / "data", store)
    try:
        key = uuid7()
        assert post_event(cloud.url, key, frames["bus"]).status_code == 201
        postgres.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      f"WHERE datname = '{store.db}' AND pid <> pg_backend_pid()")
        again = post_event(cloud.url, key, frames["bus"])
        assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
        postgres.stop()
        try:
            down = post_event(cloud.url, uuid7(), frames["bus"])
            assert down.status_code == 503, down.text
            assert down.headers.get("Retry-After") == "1"
            assert "unreachable" in down.json()["error"]
        finally:
            postgres.start()
        back = uuid7()
        assert post_event(cloud.url, back, frames["bus"]).status_code == 201
        assert_one_record_each(cloud, store, [key, back])
    finally:
        cloud.stop()


def test_events_scope(models, tmp_path, frames):
    """With auth on, the intake needs the 'events' scope: an inference token
    is refused, an upload token is accepted (and can do nothing else)."""
    secret = tmp_path / "secret"
    secret.write_text(secrets.token_hex(32))

    def token(scope):
        r = run_vigil("token", "--secret-file", secret, "--scope", scope)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    store = SqliteStore(tmp_path)
    cloud = Cloud(models, tmp_path / "data", store, "--auth-mode", "jwt", "--auth-secret-file", secret)
    try:
        key = uuid7()
        assert post_event(cloud.url, key, frames["bus"]).status_code == 401
        assert post_event(cloud.url, key, frames["bus"], token=token("infer")).status_code == 403
        upload = token("events")
        assert post_event(cloud.url, key, frames["bus"], token=upload).status_code == 201
        detect = requests.post(cloud.url + "/api/v1/detect", data=frames["bus"], timeout=60,
                               headers={"Authorization": "Bearer " + upload})
        assert detect.status_code == 403
        assert list(store.rows()) == [key]
    finally:
        cloud.stop()


def test_transient_failures_leave_no_record(models, tmp_path, frames):
    """What may heal by itself is 503 + Retry-After and records nothing, so
    that the edge's retry is processed as new: the frame not writable, the
    store locked by someone else, the cloud model missing."""
    store = SqliteStore(tmp_path)
    cloud = Cloud(models, tmp_path / "data", store)
    try:
        key = uuid7()
        shutil.rmtree(cloud.frames_dir)
        cloud.frames_dir.write_text("not a directory")  # even root cannot write below a file
        r = post_event(cloud.url, key, frames["bus"])
        assert r.status_code == 503 and r.headers.get("Retry-After") == "1", r.text
        assert key not in store.rows()  # the claim was abandoned
        cloud.frames_dir.unlink()
        cloud.frames_dir.mkdir()
        r = post_event(cloud.url, key, frames["bus"])
        assert r.status_code == 201 and "Idempotent-Replayed" not in r.headers

        locked = uuid7()
        holder = sqlite3.connect(store.path, timeout=10, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            r = post_event(cloud.url, locked, frames["bus"])  # waits out the store's busy timeout (5 s)
            assert r.status_code == 503 and "sqlite" in r.json()["error"], r.text
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert locked not in store.rows()
        assert post_event(cloud.url, locked, frames["bus"]).status_code == 201
        assert_one_record_each(cloud, store, [key, locked])
    finally:
        cloud.stop()
    missing = Cloud(models, tmp_path / "data2", SqliteStore(tmp_path / "data2"), "--edge-receiver-model", "nosuch")
    try:
        key = uuid7()
        r = post_event(missing.url, key, frames["bus"])
        assert r.status_code == 503 and "nosuch" in r.json()["error"]
        assert missing.frame_files() == []
    finally:
        missing.stop()


def test_sigterm_with_events_in_flight(models, tmp_path, frames):
    """A graceful stop answers the events it holds (201, or 503 for those it
    had not started) before the listener goes, and exits 0."""
    store = SqliteStore(tmp_path)
    cloud = Cloud(models, tmp_path / "data", store, "--edge-receiver-workers", "1")
    keys = [uuid7() for _ in range(4)]
    got = {}

    def send(key):
        try:
            got[key] = post_event(cloud.url, key, frames["bus"], timeout=30).status_code
        except requests.RequestException as e:
            got[key] = type(e).__name__

    threads = [threading.Thread(target=send, args=(k,)) for k in keys]
    for t in threads:
        t.start()
    time.sleep(0.2)
    assert cloud.stop() == 0
    for t in threads:
        t.join()
    log = cloud.daemon.stderr
    assert "unanswered at shutdown" not in log
    print("answers at SIGTERM:", sorted(map(str, got.values())))
    assert set(got.values()) <= {201, 503, "ConnectionError"}, got
    cloud.start()
    for key in keys:
        assert post_event(cloud.url, key, frames["bus"]).status_code == 201
    assert_one_record_each(cloud, store, keys)
    cloud.stop()
