#!/usr/bin/python3
"""memory_bench.py - resident memory of one model instance as it runs every
batch size (run by `make bench`; not part of `make check`).

Starts `vigil serve` on a temporary repository holding the shared
yolov8n_dynbatch.onnx (linked, not copied) as `yolov8n` with
`max_batch_size: 8` and dynamic batching, then:
  * infer: POST /v2/models/yolov8n/infer with a binary-tensor body at batch
    1, 2, ... 8, one after another; after each, VmRSS and VmHWM from
    /proc/<pid>/status and the packed-weight bytes the CPU backend logs for
    the instance ("... holds N bytes of packed weights");
  * detect + infer: a fresh server, the same infer requests, then
    /api/v1/detect (bus.jpg) in concurrent groups of 2..8 so that the
    batcher forms detection batches of those sizes.  Detection runs through
    the backend's instance like infer (no plans of its own), so what this
    row adds over the infer row is the detection batch's input slots and
    the decoded images.
Each row has VmRSS read at once, VmRSS again once the server has been idle
for IDLE_S seconds (a worker idle for a second after a burst gives back its
run buffers and the heap's free pages; scheduler.c), and VmHWM; the packed
weights are printed in bytes, so that a batch size that adds none shows the
same number.
With --before OLD_BINARY the same runs are made with an older build and the
table shows both.  Writes the table to docs/BENCHMARKS.md under
"## Memory per model instance" (that section only).

usage: bench/memory_bench.py [--vigil PATH] [--before PATH] [--threads N] [--no-write]
"""
import argparse
import concurrent.futures
import datetime
import json
import os
import pathlib
import platform
import re
import sys
import tempfile
import time

import numpy as np

import benchdoc

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
import requests  # noqa: E402
from conftest import Daemon, shared_dir  # noqa: E402

SECTION = "## Memory per model instance"
CONFIG = "max_batch_size: 8\ndynamic_batching:\n  max_queue_delay_us: 20000\n"
MAX_BATCH = 8
IDLE_S = 1.5  # the scheduler's idle trim comes after 1 s
PACKED = re.compile(r"holds (\d+) bytes of packed weights")


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vigil", default=str(ROOT / "build" / "vigil"))
    ap.add_argument("--before", help="an older vigil binary measured the same way, for comparison")
    ap.add_argument("--threads", type=int, default=0, help="compute threads (0: the server's default)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    return ap.parse_args()


def status_kb(pid):
    out = {}
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(rest.split()[0])
    return out


def packed_bytes(d):
    found = PACKED.findall(d.read_log())
    return int(found[-1]) if found else None


def infer(d, batch, rng):
    x = rng.random((batch, 3, 640, 640), dtype=np.float32)
    raw = x.astype("<f4").tobytes()
    header = json.dumps({"inputs": [{"name": "images", "shape": list(x.shape), "datatype": "FP32",
                                     "parameters": {"binary_data_size": len(raw)}}],
                         "parameters": {"binary_data_output": True}}).encode()
    r = requests.post(d.url + "/v2/models/yolov8n/infer", data=header + raw, timeout=300,
                      headers={"Inference-Header-Content-Length": str(len(header)),
                               "Content-Type": "application/octet-stream"})
    if r.status_code != 200:
        sys.exit(f"memory_bench: infer at batch {batch} answered {r.status_code}: {r.text[:300]}")


def detect_group(d, n, image):
    def one(_):
        r = requests.post(d.url + "/api/v1/detect?model=yolov8n", data=image, timeout=300,
                          headers={"Content-Type": "image/jpeg"})
        if r.status_code != 200:
            sys.exit(f"memory_bench: detect answered {r.status_code}: {r.text[:300]}")
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        list(pool.map(one, range(n)))


def measure(d, phase):
    """(phase, VmRSS kB now, VmHWM kB, packed bytes, VmRSS kB after IDLE_S idle)."""
    s = status_kb(d.proc.pid)
    time.sleep(IDLE_S)
    return (phase, s["VmRSS"], s["VmHWM"], packed_bytes(d), status_kb(d.proc.pid)["VmRSS"])


def run(binary, models, threads, with_detect, image):
    """Rows of measure() for one server."""
    os.environ["VIGIL_BINARY"] = str(binary)
    args = ["--models", models, "--log-level", "info", "--log-format", "text"]
    if threads:
        args += ["--threads", str(threads)]
    d = Daemon(*args)
    rows = []
    try:
        while requests.get(d.url + "/v2/health/ready", timeout=5).status_code != 200:
            pass
        rows.append(measure(d, "loaded"))
        rng = np.random.default_rng(1)
        for b in range(1, MAX_BATCH + 1):
            infer(d, b, rng)
            rows.append(measure(d, f"infer batch {b}"))
        if with_detect:
            for n in range(1, MAX_BATCH + 1):
                detect_group(d, n, image)
                rows.append(measure(d, f"detect x{n}"))
    finally:
        d.stop()
    return rows


def mb(kb):
    return f"{kb / 1024:.0f}"


def table(title, runs):
    names = list(runs)
    head = "| after | " + " | ".join(f"{n}: VmRSS MB | {n}: VmRSS idle MB | {n}: VmHWM MB" for n in names)
    head += " | packed weights per instance (bytes) |\n"
    head += "|---|" + "---:|---:|---:|" * len(names) + "---:|\n"
    body = ""
    for i, row in enumerate(runs[names[-1]]):
        cells = []
        for n in names:
            r = runs[n][i]
            cells += [mb(r[1]), mb(r[4]), mb(r[2])]
        packed = runs[names[-1]][i][3]
        body += f"| {row[0]} | " + " | ".join(cells) + f" | {'' if packed is None else packed} |\n"
    return f"### {title}\n\n{head}{body}\n"


def main():
    args = parse_args()
    shared = shared_dir()
    model = shared / "models" / "yolov8n_dynbatch.onnx"
    image = (shared / "images" / "bus.jpg")
    if not model.exists() or not image.exists():
        sys.exit(f"memory_bench: {model} or {image} is missing")
    binaries = {}
    if args.before:
        binaries["before"] = pathlib.Path(args.before).resolve()
    binaries["after" if args.before else "vigil"] = pathlib.Path(args.vigil).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        models = pathlib.Path(tmp) / "models"
        (models / "yolov8n" / "1").mkdir(parents=True)
        (models / "yolov8n" / "1" / "model.onnx").symlink_to(model.resolve())
        (models / "yolov8n" / "config.yaml").write_text(CONFIG)
        infer_runs, detect_runs = {}, {}
        for name, binary in binaries.items():
            infer_runs[name] = run(binary, models, args.threads, False, None)
            detect_runs[name] = run(binary, models, args.threads, True, image.read_bytes())
    cpu = platform.processor() or platform.machine()
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cmd = "bench/memory_bench.py --vigil " + str(args.vigil) + (f" --before {args.before}" if args.before else "")
    text = (f"{SECTION}\n\n"
            f"{datetime.date.today()}, {cpu}, {os.cpu_count()} cores, "
            f"threads {args.threads or 'default'}; `{cmd}`.\n"
            "yolov8n_dynbatch.onnx served as `yolov8n` with `max_batch_size: 8` and dynamic batching; "
            "one `/v2/models/yolov8n/infer` request (binary tensors) per batch size 1..8, VmRSS and VmHWM "
            f"read from /proc/<pid>/status after each, and VmRSS again after {IDLE_S} s idle; MB = MiB; "
            "packed weights as the CPU backend logs them for the instance, in bytes "
            "(empty: the build does not log them).\n\n"
            + table("Infer alone (the headline)", infer_runs)
            + table("Infer, then detect in concurrent groups of 1..8 (detection runs on the same instance's "
                    "plans, in runs of the engine's batch cap)",
                    detect_runs))
    print(text)
    if not args.no_write:
        benchdoc.write_section(SECTION, text)


if __name__ == "__main__":
    main()
