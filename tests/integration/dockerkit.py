"""Docker for the integration tests: one daemon and one vigil image per pytest
session (test_image.py, test_supply_chain.py).

Docker is a suite dependency (docker.io in scripts/deps/debian.txt): when its
binaries are missing the tests fail and say so.  When no daemon answers, the
kit starts its own, `dockerd --bridge=none --iptables=false` with every path
(data root, exec root, socket, pidfile) in a temporary directory, and stops
it when the session ends; the host's network is left as it was, and
containers run with --network host, talked to on 127.0.0.1 only.  Where
dockerd cannot run at all (no privileges, no overlay support), the tests skip
with dockerd's own reason.

Always /usr/bin/docker: another client may come first on PATH.
"""
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from conftest import ROOT, vigil_binary

DOCKER = "/usr/bin/docker"
DOCKERD_PATHS = ("/usr/sbin/dockerd", "/usr/bin/dockerd")


class Docker:
    """A daemon the tests talk to; docker() runs the client against it."""

    def __init__(self, host):
        self.host = host
        self.env = dict(os.environ, DOCKER_HOST=host, DOCKER_BUILDKIT="0")

    def docker(self, *args, check=True, timeout=120, text=True, **kwargs):
        """Runs `docker ARGS`; returns the CompletedProcess (output captured)."""
        r = subprocess.run([DOCKER, *map(str, args)], capture_output=True, text=text, env=self.env,
                           timeout=timeout, **kwargs)
        if check and r.returncode != 0:
            err = r.stderr if text else r.stderr.decode(errors="replace")
            raise AssertionError(f"docker {' '.join(map(str, args))} exited {r.returncode}: {err[-2000:]}")
        return r

    def answers(self):
        try:
            return self.docker("version", "--format", "{{.Server.Version}}", check=False, timeout=10).returncode == 0
        except subprocess.TimeoutExpired:
            return False


def _start_dockerd(workdir):
    """Starts a private dockerd; returns (Docker, Popen) or skips the test
    with dockerd's reason when it cannot run here."""
    dockerd = next((p for p in DOCKERD_PATHS if os.access(p, os.X_OK)), None)
    if dockerd is None:
        pytest.fail("dockerd is missing: Docker (docker.io) is a test-suite dependency; run make deps")
    host = f"unix://{workdir}/docker.sock"
    log = open(workdir / "dockerd.log", "w")
    proc = subprocess.Popen([dockerd, "--bridge=none", "--iptables=false", "--ip6tables=false",
                             "--data-root", str(workdir / "root"), "--exec-root", str(workdir / "exec"),
                             "-H", host, "--pidfile", str(workdir / "docker.pid")],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    client = Docker(host)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            reason = (workdir / "dockerd.log").read_text(errors="replace").strip().splitlines()[-3:]
            pytest.skip(f"dockerd cannot run here (exit {proc.returncode}): {' | '.join(reason)}")
        if client.answers():
            return client, proc
        time.sleep(0.2)
    _stop_dockerd(proc)
    pytest.skip("dockerd did not answer within 60 s")


def _stop_dockerd(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # dockerd stops its containers and unmounts its layers
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def docker():
    """The Docker the tests use: DOCKER_HOST's or the system's daemon when
    one answers, else a private one for this session."""
    if not os.access(DOCKER, os.X_OK):
        pytest.fail(f"{DOCKER} is missing: Docker (docker.io) is a test-suite dependency; run make deps")
    for host in (os.environ.get("DOCKER_HOST"), "unix:///var/run/docker.sock"):
        if host and Docker(host).answers():
            yield Docker(host)
            return
    if os.geteuid() != 0:
        pytest.skip("no Docker daemon answers and starting one needs root")
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="vigil-dockerd-"))
    client, proc = _start_dockerd(workdir)
    try:
        yield client
    finally:
        _stop_dockerd(proc)
        _unmount_under(workdir)
        shutil.rmtree(workdir, ignore_errors=True)


def _unmount_under(workdir):
    """dockerd leaves its default network namespace mounted under the exec
    root; what stays mounted cannot be removed."""
    mounts = [line.split()[1] for line in pathlib.Path("/proc/mounts").read_text().splitlines()]
    for point in sorted((m for m in mounts if m.startswith(f"{workdir}/")), reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


def sanitized_binary():
    """The binary under test is the ASan+UBSan build (make asan)."""
    return b"__asan_init" in pathlib.Path(vigil_binary()).read_bytes()


@pytest.fixture(scope="session")
def vigil_image(request):
    """`make image` from this checkout, on the build the suite tests; returns
    {"tag", "id", "size", "build_s", "context"} (context: the Docker build
    context make image left in BUILD/image).  Skips under make asan: the image
    holds a release binary, not the sanitized one."""
    if sanitized_binary():
        pytest.skip("the image is built from the release build; this run tests the ASan build")
    docker = request.getfixturevalue("docker")  # only now: under ASan no daemon is started for nothing
    build_dir = pathlib.Path(vigil_binary()).resolve().parent
    env = {k: v for k, v in docker.env.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    started = time.monotonic()
    r = subprocess.run(["make", "image", f"BUILD={build_dir}", "JOBS=2"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=900)
    build_s = time.monotonic() - started
    assert r.returncode == 0, f"make image failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    print(r.stdout.strip().splitlines()[-1])
    version = subprocess.run([vigil_binary(), "version"], capture_output=True, text=True,
                             check=True).stdout.split()[1]
    tag = f"vigil:{version}"
    inspect = docker.docker("image", "inspect", "--format", "{{.Id}} {{.Size}}", tag).stdout.split()
    return {"tag": tag, "id": inspect[0], "size": int(inspect[1]), "build_s": build_s,
            "context": build_dir / "image"}
