#!/usr/bin/python3
"""serve_bench.py - the REST server under wrk on loopback (run by `make bench`;
not part of `make check`).

Starts `vigil serve` on a temporary repository holding yolov8n (linked from
the shared models), yolov8n_dynbatch (the dynamic-batch export with
`max_batch_size: 4` and a 2 ms batching delay) and `add` (a generated
y = x + 1 on FP32 [1, 4]), then measures, one phase after the other:
  * time from process start to /v2/health/ready with yolov8n alone, and the
    resident memory with it loaded (/proc/<pid>/status VmRSS and the
    vigil_process_resident_memory_bytes metric);
  * wrk on POST /api/v1/detect (bus.jpg body) and on
    POST /v2/models/<m>/infer (binary tensor body holding the reference input
    yolov8n__bus__input.npy) at concurrency 1, 4 and 16, for yolov8n and for
    yolov8n_dynbatch (batching on);
  * the trivial `add` model at concurrency 1 and 16, with the server's own
    time per request from the vigil_inference_total_seconds histogram;
  * HTTP overhead at concurrency 1: (served p50 - `vigil bench` median for
    the same model and thread count) / `vigil bench` median.
Writes the tables to docs/BENCHMARKS.md under "## Server (REST)" (that
section only; other sections are kept; it is appended when missing).
wrk runs on the same cores as the server, so on a small machine the numbers
measure the pair.

usage: bench/serve_bench.py [--vigil PATH] [--seconds 8] [--no-write]
"""
import argparse
import datetime
import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

import benchdoc

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
import requests  # noqa: E402
from conftest import Daemon, metric_value, shared_dir  # noqa: E402

SECTION = "## Server (REST)"
BATCHING = "max_batch_size: 4\ndynamic_batching:\n  max_queue_delay_us: 2000\n"
CONCURRENCY = (1, 4, 16)

# wrk script: POST the bytes of BODY_FILE with HEADERS; done() prints one JSON
# line with the totals and latency percentiles (microseconds).
LUA = """
local f = assert(io.open("{body}", "rb"))
wrk.method = "POST"
wrk.body = f:read("*all")
f:close()
{headers}
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {{"requests": %d, "duration_us": %d, "status_errors": %d, "socket_errors": %d, '
    .. '"p50_us": %d, "p99_us": %d}}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vigil", default=str(ROOT / "build" / "vigil"))
    p.add_argument("--seconds", type=float, default=8.0, help="duration of each wrk run")
    p.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    return p.parse_args()


def need(path):
    if not pathlib.Path(path).exists():
        sys.exit(f"serve_bench: {path} is missing (shared data: set VIGIL_SHARED_DIR)")
    return pathlib.Path(path)


def make_add_onnx(path):
    """y = x + 1, x and y FP32 [1, 4]: a model whose compute is negligible."""
    import onnx
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    graph = helper.make_graph([helper.make_node("Add", ["x", "one"], ["y"])], "add", [x], [y], [one])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


def make_repository(models, shared):
    for name, src in (("yolov8n", "yolov8n.onnx"), ("yolov8n_dynbatch", "yolov8n_dynbatch.onnx")):
        (models / name / "1").mkdir(parents=True)
        (models / name / "1" / "model.onnx").symlink_to(need(shared / "models" / src).resolve())
    (models / "yolov8n_dynbatch" / "config.yaml").write_text(BATCHING)
    make_add_onnx(models / "add" / "1" / "model.onnx")


def binary_infer_body(array, path):
    """A binary-tensor-extension request for input `images`; returns the header length."""
    raw = np.ascontiguousarray(array, dtype="<f4").tobytes()
    header = json.dumps({"inputs": [{"name": "images", "shape": list(array.shape), "datatype": "FP32",
                                     "parameters": {"binary_data_size": len(raw)}}],
                         "parameters": {"binary_data_output": True}}).encode()
    path.write_bytes(header + raw)
    return len(header)


def lua_script(path, body, headers):
    lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
    path.write_text(LUA.format(body=body, headers=lines))
    return path


def wrk(url, script, conc, seconds):
    """One wrk run; returns its JSON summary plus req/s."""
    cmd = ["wrk", "-t", str(min(conc, 2)), "-c", str(conc), "-d", f"{seconds:g}s", "--timeout", "30s",
           "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if out.returncode != 0 or line is None:
        sys.exit(f"serve_bench: wrk failed ({out.returncode}): {out.stdout}{out.stderr}")
    r = json.loads(line[len("WRKJSON "):])
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    r["errors"] = r["status_errors"] + r["socket_errors"]
    return r


def metrics(d):
    return requests.get(d.url + "/metrics", timeout=10).text


def server_means(before, after, model):
    """Mean vigil_inference_total_seconds and _compute_seconds per request
    between two /metrics texts, in microseconds."""
    def delta(name):
        return (metric_value(after, name, model=model) or 0) - (metric_value(before, name, model=model) or 0)
    n = delta("vigil_inference_total_seconds_count")
    if n <= 0:
        return float("nan"), float("nan")
    return (delta("vigil_inference_total_seconds_sum") / n * 1e6,
            delta("vigil_inference_compute_seconds_sum") / n * 1e6)


def settle(d, model, timeout=60):
    """Waits until the requests wrk left in flight are done (queue empty and the
    completed count unchanged for 0.3 s), so they neither count against nor
    slow down the next run; returns the /metrics text then."""
    last, deadline = None, time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = metrics(d)
        done = metric_value(text, "vigil_inference_total_seconds_count", model=model)
        if done == last and not metric_value(text, "vigil_inference_queue_length", model=model):
            return text
        last = done
        time.sleep(0.3)
    return text


def measured_wrk(d, url, script, conc, seconds, model):
    """A wrk run plus the server's own mean total and compute time per request
    (including the requests wrk left in flight at its end)."""
    before = settle(d, model)
    r = wrk(url, script, conc, seconds)
    r["server_us"], r["compute_us"] = server_means(before, settle(d, model), model)
    return r


def rss_bytes(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def check_once(d, path, body, headers, model):
    """One request with requests: the phase must work before wrk hammers it."""
    r = requests.post(d.url + path, data=body, headers=headers, timeout=60)
    if r.status_code != 200:
        sys.exit(f"serve_bench: {path} ({model}) answered {r.status_code}: {r.text[:300]}")


def startup(models_dir, shared, image):
    """Time to ready and memory with yolov8n alone."""
    solo = models_dir.parent / "solo"
    (solo / "yolov8n" / "1").mkdir(parents=True)
    (solo / "yolov8n" / "1" / "model.onnx").symlink_to(need(shared / "models" / "yolov8n.onnx").resolve())
    t0 = time.monotonic()
    d = Daemon("--models", solo, "--log-level", "warn")
    while requests.get(d.url + "/v2/health/ready", timeout=5).status_code != 200:
        if time.monotonic() - t0 > 120:
            d.stop()
            sys.exit("serve_bench: yolov8n never became ready")
        time.sleep(0.01)
    ready_s = time.monotonic() - t0
    rss = [rss_bytes(d.proc.pid), metric_value(metrics(d), "vigil_process_resident_memory_bytes")]
    check_once(d, "/api/v1/detect", image.read_bytes(), {"Content-Type": "image/jpeg"}, "yolov8n")
    rss += [rss_bytes(d.proc.pid), metric_value(metrics(d), "vigil_process_resident_memory_bytes")]
    d.stop()
    return ready_s, rss


def ms(us):
    return f"{us / 1000:.2f}"


def main():
    args = parse_args()
    os.environ["VIGIL_BINARY"] = args.vigil
    if shutil.which("wrk") is None:
        sys.exit("serve_bench: wrk is missing: install the Debian package wrk (make deps)")
    shared = shared_dir()
    image = need(shared / "images" / "bus.jpg")
    ref = np.load(need(shared / "reference" / "yolov8n__bus__input.npy"))
    threads = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        models = tmp / "models"
        make_repository(models, shared)
        print("startup with yolov8n", flush=True)
        ready_s, rss_solo = startup(models, shared, image)

        print(f"vigil bench yolov8n --threads {threads}", flush=True)
        vb = subprocess.run([args.vigil, "bench", "--model", str(models / "yolov8n" / "1" / "model.onnx"),
                             "--threads", str(threads), "--iterations", "30", "--json"],
                            capture_output=True, text=True, timeout=300)
        if vb.returncode != 0:
            sys.exit(f"serve_bench: vigil bench failed: {vb.stderr}")
        bench_median_ms = json.loads(vb.stdout)["median_ms"]

        infer_body = tmp / "infer.bin"
        header_len = binary_infer_body(ref, infer_body)
        infer_headers = {"Inference-Header-Content-Length": str(header_len),
                         "Content-Type": "application/octet-stream"}
        jpeg_headers = {"Content-Type": "image/jpeg"}
        add_body = tmp / "add.json"
        add_body.write_text(json.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                                                    "data": [1, 2, 3, 4]}]}))
        add_headers = {"Content-Type": "application/json"}

        t0 = time.monotonic()
        d = Daemon("--models", models, "--threads", str(threads), "--log-level", "warn")
        rows, add_rows, overhead = [], [], {}
        try:
            while requests.get(d.url + "/v2/health/ready", timeout=5).status_code != 200:
                time.sleep(0.05)
            print(f"daemon with 3 models ready in {time.monotonic() - t0:.2f} s", flush=True)
            for model in ("yolov8n", "yolov8n_dynbatch"):
                phases = (("detect", f"/api/v1/detect?model={model}", image, jpeg_headers),
                          ("infer", f"/v2/models/{model}/infer", infer_body, infer_headers))
                for kind, path, body, headers in phases:
                    check_once(d, path, body.read_bytes(), headers, model)
                    script = lua_script(tmp / f"{kind}.lua", body, headers)
                    measured_wrk(d, d.url + path, script, 4, 2, model)  # warm-up: compiles each batch size once
                    for conc in CONCURRENCY:
                        print(f"{kind} {model} c={conc}", flush=True)
                        r = measured_wrk(d, d.url + path, script, conc, args.seconds, model)
                        batching = "on (max 4, 2 ms)" if model.endswith("dynbatch") else "off"
                        rows.append(f"| {kind} | {model} | {batching} | {conc} | {r['requests']} | {r['rps']:.1f} "
                                    f"| {ms(r['p50_us'])} | {ms(r['p99_us'])} | {r['errors']} "
                                    f"| {ms(r['server_us'])} | {ms(r['compute_us'])} |")
                        if conc == 1 and model == "yolov8n":
                            overhead[kind] = r
            rss_loaded = rss_bytes(d.proc.pid)
            rss_metric_loaded = metric_value(metrics(d), "vigil_process_resident_memory_bytes")

            check_once(d, "/v2/models/add/infer", add_body.read_bytes(), add_headers, "add")
            script = lua_script(tmp / "add.lua", add_body, add_headers)
            for conc in (1, 16):
                print(f"add c={conc}", flush=True)
                r = measured_wrk(d, d.url + "/v2/models/add/infer", script, conc, args.seconds, "add")
                add_rows.append(f"| {conc} | {r['requests']} | {r['rps']:.0f} | {ms(r['p50_us'])} | "
                                f"{ms(r['p99_us'])} | {r['errors']} | {r['server_us']:.0f} | {r['compute_us']:.0f} |")
        finally:
            code = d.stop()

    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()[1]
    over = [f"- {kind}: served p50 {r['p50_us'] / 1000:.2f} ms vs `vigil bench` median {bench_median_ms:.2f} ms "
            f"-> overhead {(r['p50_us'] / 1000 - bench_median_ms) / bench_median_ms * 100:+.1f} % "
            f"(server-side compute mean in that run: {ms(r['compute_us'])} ms)"
            + ("; includes JPEG decode, letterbox and NMS, not only HTTP" if kind == "detect" else "")
            for kind, r in overhead.items()]
    text = "\n".join([
        SECTION,
        "",
        f"`bench/serve_bench.py --seconds {args.seconds:g}` on {platform.node()} ({os.cpu_count()} cores), {when}.",
        "Loopback, wrk (1 thread at concurrency 1, else 2) on the same cores as the server, so the",
        f"numbers measure the pair; server `--threads {threads}`.  The machine is shared and contended",
        f"(5-minute load average at the end of this run: {load:.1f}): timings are noisy.  Errors are",
        "wrk's HTTP status errors (status >= 400) plus socket errors (connect, read, write, timeout).",
        "",
        "### YOLOv8n: detect (bus.jpg body) and infer (binary tensors in and out, [1, 3, 640, 640] in)",
        "",
        "p50/p99 are wrk's (client side); server and compute are the means of",
        "vigil_inference_total_seconds (queueing to completion) and vigil_inference_compute_seconds",
        "(the backend run of the batch holding the request) over the same run.",
        "",
        "| route | model | batching | concurrency | requests | req/s | p50 ms | p99 ms | errors | server ms | compute ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"HTTP overhead at concurrency 1 (yolov8n, {threads} threads; `vigil bench` ran just before the",
        "server started, so contention differs between the two: compare with the compute column too):",
        "",
        *over,
        "",
        "### Trivial model (`add`: y = x + 1, FP32 [1, 4], JSON body)",
        "",
        "Server time is vigil_inference_total_seconds (queueing to completion) and compute is",
        "vigil_inference_compute_seconds, each sum / count over the run.",
        "",
        "| concurrency | requests | req/s | p50 ms | p99 ms | errors | server us/request | compute us/request |",
        "|---|---|---|---|---|---|---|---|",
        *add_rows,
        "",
        "### Start-up and memory",
        "",
        f"- start to ready (/v2/health/ready) with yolov8n alone: {ready_s:.2f} s",
        f"- resident memory with yolov8n alone, ready: VmRSS {rss_solo[0] / 2**20:.1f} MiB, "
        f"metric {rss_solo[1] / 2**20:.1f} MiB; after one detect request: VmRSS {rss_solo[2] / 2**20:.1f} MiB, "
        f"metric {rss_solo[3] / 2**20:.1f} MiB",
        f"- resident memory after the yolov8n runs (yolov8n, yolov8n_dynbatch, add loaded): "
        f"VmRSS {rss_loaded / 2**20:.1f} MiB, metric {rss_metric_loaded / 2**20:.1f} MiB",
        "",
        f"Server exit code after SIGTERM: {code}.",
        "",
    ])
    print(text)
    if not args.no_write:
        benchdoc.write_section(SECTION, text)


if __name__ == "__main__":
    main()
