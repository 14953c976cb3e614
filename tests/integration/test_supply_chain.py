"""The supply chain (issue 20, Must show 5): deploy/ci/sbom.py lists every
file of the image, checked against the image's filesystem as `docker export`
writes it (a second path, not the SBOM's own docker save walk), each with
its Debian package and version; deploy/ci/verify.sh accepts the signed image
and refuses one with a changed layer, an added layer, a changed SBOM or a
signature by another key; the benchmark gate decides at its exact threshold
on recorded numbers (no benchmark runs here)."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile

import pytest

from conftest import ROOT, free_port

CI = ROOT / "deploy" / "ci"
sys.path.insert(0, str(CI))
from imagetool import member_path  # noqa: E402
# What Docker itself adds to a container's filesystem (mount points and the
# files it bind-mounts at run time); none of it is in the image's layers.
DOCKER_RUNTIME = {"/.dockerenv", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/etc/mtab", "/dev/console"}


@pytest.fixture(scope="module")
def signed(vigil_image, docker, tmp_path_factory):
    """The image under a name of this test's own (so rebuilding under that
    name leaves vigil:<version> alone), its SBOM, a fresh P-256 key, and
    the manifest and signature sign.sh makes.  The tests take Docker from
    here, not as a fixture of their own: pytest would set that one up first,
    starting a daemon even when vigil_image skips (make asan)."""
    work = tmp_path_factory.mktemp("supply")
    name = f"vigil-supply-test:{free_port()}"
    docker.docker("tag", vigil_image["tag"], name)
    sbom = work / "sbom.spdx.json"
    run([CI / "sbom.py", name, "-o", sbom], docker)
    key, pub = work / "key.pem", work / "key.pub"
    run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key], docker)
    run(["openssl", "pkey", "-in", key, "-pubout", "-out", pub], docker)
    run([CI / "sign.sh", name, sbom, key, work / "sig"], docker)
    yield {"name": name, "sbom": sbom, "key": key, "pub": pub, "work": work, "image": vigil_image, "docker": docker}
    docker.docker("rmi", "-f", name, check=False)


def run(args, docker, check=True):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=docker.env, timeout=300)
    if check:
        assert r.returncode == 0, f"{args[0]} exited {r.returncode}: {r.stdout[-2000:]} {r.stderr[-2000:]}"
    return r


def verify(signed, docker, sbom=None, manifest=None, sig=None, pub=None):
    sigdir = signed["work"] / "sig"
    return run([CI / "verify.sh", signed["name"], sbom or signed["sbom"], manifest or sigdir / "manifest.txt",
                sig or sigdir / "manifest.sig", pub or signed["pub"]], docker, check=False)


def exported_files(docker, image, into):
    """{path: sha256} of the regular files of a container made from image,
    as `docker export` writes them, Docker's runtime files left out."""
    cid = docker.docker("create", image).stdout.strip()
    try:
        tar_path = into / "export.tar"
        docker.docker("export", "-o", tar_path, cid)
    finally:
        docker.docker("rm", "-f", cid, check=False)
    files = {}
    with tarfile.open(tar_path) as tar:
        for member in tar:
            path = member_path(member)
            if path in DOCKER_RUNTIME:
                continue
            assert not member.issym() and not member.islnk(), f"unexpected link {path} in the image"
            if member.isfile():
                files[path] = hashlib.sha256(tar.extractfile(member).read()).hexdigest()
    return files


def test_sbom_lists_every_file_with_its_package(signed):
    docker = signed["docker"]
    doc = json.loads(signed["sbom"].read_text())
    assert doc["spdxVersion"] == "SPDX-2.3" and doc["dataLicense"] == "CC0-1.0"
    listed = {f["fileName"][1:]: {c["algorithm"]: c["checksumValue"] for c in f["checksums"]} for f in doc["files"]}
    actual = exported_files(docker, signed["name"], signed["work"])
    assert set(listed) == set(actual), (f"in the image, not the SBOM: {sorted(set(actual) - set(listed))}; "
                                        f"in the SBOM, not the image: {sorted(set(listed) - set(actual))}")
    for path, sha in actual.items():
        assert listed[path]["SHA256"] == sha, path
        assert len(listed[path]["SHA1"]) == 40, path
    print(f"SBOM: {len(listed)} files in {len(doc['packages']) - 1} packages")
    # Every file belongs to exactly one package with a version; the libraries
    # to Debian packages as dpkg names them.
    owner = {}
    packages = {p["SPDXID"]: p for p in doc["packages"]}
    for p in doc["packages"]:
        for fid in p.get("hasFiles", []):
            assert fid not in owner, fid
            owner[fid] = p
    by_path = {f["fileName"][1:]: owner.get(f["SPDXID"]) for f in doc["files"]}
    assert all(by_path.values()), [p for p, o in by_path.items() if not o]
    assert by_path["/usr/bin/vigil"]["name"] == "vigil"
    assert by_path["/usr/bin/vigil"]["versionInfo"] == signed["image"]["tag"].split(":")[1]
    libc = by_path["/lib/x86_64-linux-gnu/libc.so.6"]
    want = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "libc6"], capture_output=True,
                          text=True).stdout
    assert (libc["name"], libc["versionInfo"]) == ("libc6", want)
    assert by_path["/etc/ssl/certs/ca-certificates.crt"]["name"] == "ca-certificates"
    image_pkg = packages["SPDXRef-Image"]
    assert image_pkg["versionInfo"] == signed["image"]["id"]  # the digest Docker reports, recomputed


def test_verify_accepts_the_signed_image(signed):
    docker = signed["docker"]
    r = verify(signed, docker)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"verified {signed['name']} {signed['image']['id']}")


def test_verify_refuses_a_rebuilt_image_with_one_changed_layer(signed, tmp_path):
    """The same build context with one byte more in /etc/passwd, built and
    tagged under the signed name: still one layer, another digest."""
    docker = signed["docker"]
    context = tmp_path / "context"
    shutil.copytree(signed["image"]["context"], context, symlinks=True, copy_function=link_or_copy)
    passwd = context / "rootfs" / "etc" / "passwd"
    text = passwd.read_text()
    passwd.unlink()  # a file of its own, so the original context stays as built
    passwd.write_text(text + "\n")
    rebuilt = docker.docker("build", "-q", "-t", signed["name"], context, timeout=300).stdout.strip()
    try:
        r = verify(signed, docker)
        assert r.returncode == 1
        assert r.stderr.startswith(f"verify: REFUSED {signed['name']}: image digest sha256:")
        assert "is not the signed" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    finally:
        restore(signed, docker, rebuilt)
    assert verify(signed, docker).returncode == 0


def link_or_copy(src, dst):
    """A hard link where the file system allows it (37 MB not copied)."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def restore(signed, docker, other):
    """The signed image back under its name, the other one removed."""
    docker.docker("tag", signed["image"]["id"], signed["name"])
    docker.docker("rmi", "-f", other, check=False)


def test_verify_refuses_an_added_layer(signed, tmp_path):
    docker = signed["docker"]
    (tmp_path / "extra").write_text("not in the SBOM\n")
    (tmp_path / "Dockerfile").write_text(f"FROM {signed['image']['id']}\nCOPY extra /etc/extra\n")
    derived = docker.docker("build", "-q", "-t", signed["name"], tmp_path, timeout=300).stdout.strip()
    try:
        r = verify(signed, docker)
        assert r.returncode == 1 and "is not the signed" in r.stderr
    finally:
        restore(signed, docker, derived)


def test_verify_refuses_a_changed_sbom_and_a_foreign_signature(signed, tmp_path):
    docker = signed["docker"]
    doc = json.loads(signed["sbom"].read_text())
    doc["files"] = doc["files"][1:]  # an SBOM that hides one file
    tampered = tmp_path / "sbom.json"
    tampered.write_text(json.dumps(doc))
    r = verify(signed, docker, sbom=tampered)
    assert r.returncode == 1 and "SBOM sha256:" in r.stderr and "is not the signed" in r.stderr
    # A manifest edited to match the tampered SBOM no longer matches its signature.
    manifest = tmp_path / "manifest.txt"
    text = (signed["work"] / "sig" / "manifest.txt").read_text()
    sha = hashlib.sha256(tampered.read_bytes()).hexdigest()
    manifest.write_text("\n".join(f"sbom-sha256 {sha}" if line.startswith("sbom-sha256 ") else line
                                  for line in text.splitlines()) + "\n")
    r = verify(signed, docker, sbom=tampered, manifest=manifest)
    assert r.returncode == 1 and "signature does not match" in r.stderr
    other = tmp_path / "other.pem"
    run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", other], docker)
    other_pub = tmp_path / "other.pub"
    run(["openssl", "pkey", "-in", other, "-pubout", "-out", other_pub], docker)
    r = verify(signed, docker, pub=other_pub)
    assert r.returncode == 1 and "signature does not match" in r.stderr


BASELINE = {"model": "/bench/yolov8n.onnx", "threads": 1, "batch": 1, "batch_cap": 2, "iterations": 20,
            "min_ms": 80.0, "median_ms": 90.0, "p90_ms": 95.0}


@pytest.mark.parametrize("median_ms, code, verdict", [
    ("100.0", 0, "PASS: throughput 10.000/s against baseline 11.111/s: drop 10.00%"),  # exactly 10%: passes
    ("100.001", 1, "FAIL"),                       # a hair more than 10%: fails
    ("85.0", 0, "PASS: throughput 11.765/s against baseline 11.111/s: gain 5.88%"),
    ("90", 0, "PASS"),                            # unchanged
])
def test_bench_gate_threshold(tmp_path, median_ms, code, verdict):
    """Throughput is 1000/median_ms runs/s: 90 ms -> 100 ms is exactly 10%
    fewer runs per second, which the gate (drop > 10% fails) lets through."""
    base, cur = tmp_path / "baseline.json", tmp_path / "current.json"
    base.write_text(json.dumps(BASELINE))
    cur.write_text(json.dumps(BASELINE).replace('"median_ms": 90.0', f'"median_ms": {median_ms}'))
    r = subprocess.run(["/usr/bin/python3", CI / "bench_gate.py", base, cur], capture_output=True, text=True)
    assert r.returncode == code, r.stdout + r.stderr
    assert r.stdout.startswith(f"bench gate: {verdict}")


def test_bench_gate_refuses_runs_that_do_not_compare(tmp_path):
    base, cur = tmp_path / "baseline.json", tmp_path / "current.json"
    base.write_text(json.dumps(BASELINE))
    cur.write_text(json.dumps(dict(BASELINE, threads=4)))
    r = subprocess.run(["/usr/bin/python3", CI / "bench_gate.py", base, cur], capture_output=True, text=True)
    assert r.returncode == 2 and "threads differs" in r.stderr
    recorded = json.loads((CI / "bench-baseline.json").read_text())  # the recorded baseline is a bench result
    assert recorded["batch"] == 1 and recorded["median_ms"] > 0 and recorded["model"].endswith("yolov8n.onnx")
