"""Every command and request in README.md and docs/ runs as pasted against `make run`.

A fenced block whose info string is `sh example` or `python example` is an
example.  This test starts the server the way `make run` does
(scripts/run.sh, which fills a repository with the samples of
scripts/sample_models.py, here in a temporary folder) and runs every example,
file by file in document order, from a scratch folder laid out like a
checkout (build/vigil, proto/, ../shared/...), with the server's ports in
place of 8000 and 50051.  An example fails on a non-zero exit status, and
every curl in one must carry -f, so that an error response is a failure too.

Every other `sh` block must be listed in NOT_RUN with the reason it cannot
run here; a new unmarked block fails test_every_shell_block_is_an_example.
"""
import os
import pathlib
import re
import signal
import subprocess
import time

import pytest
import requests

from conftest import ROOT, free_port, shared_dir, vigil_binary

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\S*)[ \t]*(.*)$")

# Shell blocks that are not run (a pattern their first line matches), and why.
NOT_RUN = {
    r"make run\b": "starts the server this test starts itself (scripts/run.sh)",
    r"make check\b": "is the command that runs this test",
    r"(\w+=\S+ )*node --test tests/browser/": "is the browser suite, run by test_browser.py",
    r"mosquitto -p \d+ &": "is docs/EDGE.md's walk-through: a broker, a cloud and an edge of its own on fixed ports "
                           "(test_edge_hybrid.py runs the same path)",
    r"docker run .*--device /dev/hailo0.*": "needs a Hailo-8 card, its driver and HailoRT (docs/HAILO.md; test_hailo.py "
                                          "runs the backend against the HailoRT test double)",
    r"vigil serve .*--role cloud\b.*": "starts a cloud receiver (its own server, data directory and store): "
                                        "test_edge_receiver.py runs one",
    r"docker-compose .*": "needs the image and a Docker daemon: test_deploy_manifests.py validates the compose "
                          "files with docker-compose config",
    r"curl -N http://127\.0\.0\.1:8000/api/v1/streams/\S+/live .*": "reads a live view until stopped: "
                                                                     "test_live_viewers.py reads it",
    r"mosquitto_sub .*": "waits for messages until stopped: test_streams.py subscribes to the streams' events with "
                         "paho-mqtt",
    r"kubectl .*": "needs a Kubernetes cluster (none here): test_deploy_manifests.py renders and validates the "
                   "manifests and runs the adapter's query against a real Prometheus",
}


def not_run(first_line):
    command = first_line.split("#")[0].strip()
    return any(re.fullmatch(pattern, command) for pattern in NOT_RUN)


def blocks():
    """(file, line, language, marker, text) of every fenced block."""
    found = []
    for doc in DOCS:
        lines = doc.read_text().splitlines()
        i = 0
        while i < len(lines):
            m = FENCE.match(lines[i])
            if not m:
                i += 1
                continue
            start, body = i + 1, []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            found.append((doc, start, m.group(1), m.group(2).strip(), "\n".join(body) + "\n"))
            i += 1
    return found


EXAMPLES = [b for b in blocks() if b[3] == "example"]


def example_id(block):
    return f"{block[0].relative_to(ROOT)}:{block[1]}"


def test_every_shell_block_is_an_example():
    unmarked = [f"{example_id(b)}: {b[4].splitlines()[0] if b[4].strip() else ''}"
                for b in blocks() if b[2] in ("sh", "bash", "shell", "console") and b[3] != "example"
                and not not_run(b[4].splitlines()[0])]
    assert not unmarked, "shell blocks that are neither examples nor in NOT_RUN:\n" + "\n".join(unmarked)
    assert len(EXAMPLES) >= 10, "the docs lost their examples"


def test_every_curl_in_an_example_fails_on_an_error_status():
    lax = []
    for b in EXAMPLES:
        for command in re.findall(r"\bcurl\b[^|;&\n]*(?:\\\n[^|;&\n]*)*", b[4]):
            flags = re.findall(r"(?<!\S)-([A-Za-z]+)\b", command)
            if not any("f" in f for f in flags) and "--fail" not in command:
                lax.append(f"{example_id(b)}: {command.splitlines()[0]}")
    assert not lax, "curl without -f (an error response would pass):\n" + "\n".join(lax)


@pytest.fixture(scope="module")
def make_run(tmp_path_factory):
    """The server of `make run` on free ports, and a scratch checkout to run the examples in."""
    shared = shared_dir()
    if not (shared / "models" / "yolov8n.onnx").exists():
        pytest.skip(f"shared data {shared} is missing: the examples use its models and images")
    top = tmp_path_factory.mktemp("docs")
    work = top / "vigil"
    (work / "build").mkdir(parents=True)
    (work / "build" / "vigil").symlink_to(vigil_binary())
    for name in ("proto", "scripts", "tests", "tools", "web", "docs"):
        (work / name).symlink_to(ROOT / name)
    (top / "shared").symlink_to(shared.resolve())
    models = top / "models"
    http_port, grpc_port = free_port(), free_port()
    env = dict(os.environ, VIGIL_MODELS=str(models), VIGIL_HTTP_PORT=str(http_port),
               VIGIL_GRPC_PORT=str(grpc_port), VIGIL_HOST="127.0.0.1", VIGIL_SHARED_DIR=str(shared))
    env.pop("VIGIL_DETECT_DEFAULT_MODEL", None)
    log = open(top / "server.log", "w+")
    proc = subprocess.Popen(["bash", str(ROOT / "scripts" / "run.sh"), vigil_binary()], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{http_port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert proc.poll() is None, "make run's server exited:\n" + (top / "server.log").read_text()[-3000:]
        try:
            if requests.get(url + "/v2/health/ready", timeout=2).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    else:
        pytest.fail("make run's server did not become ready:\n" + (top / "server.log").read_text()[-3000:])
    yield work, http_port, grpc_port
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=60) == 0, (top / "server.log").read_text()[-3000:]


def with_ports(text, http_port, grpc_port):
    text = re.sub(r"\b(localhost|127\.0\.0\.1):8000\b", rf"\g<1>:{http_port}", text)
    return re.sub(r"\b(localhost|127\.0\.0\.1):50051\b", rf"\g<1>:{grpc_port}", text)


@pytest.mark.parametrize("block", EXAMPLES, ids=example_id)
def test_example_runs_as_pasted(make_run, block):
    work, http_port, grpc_port = make_run
    _, _, language, _, text = block
    code = with_ports(text, http_port, grpc_port)
    if language in ("sh", "bash", "shell"):
        command = ["bash", "-euo", "pipefail", "-c", code]
    elif language == "python":
        command = ["/usr/bin/python3", "-c", code]
    else:
        pytest.fail(f"no way to run a '{language}' example")
    run = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, (f"exit {run.returncode}\n--- example\n{code}\n--- stdout\n{run.stdout[-3000:]}"
                                 f"\n--- stderr\n{run.stderr[-3000:]}")
