#!/usr/bin/python3
"""trace_bench.py - what tracing costs a request (run by `make bench`; not
part of `make check`).

Starts two `vigil serve` processes on the same temporary repository (the
trivial `affine` model, y = 2x + 1 on FP32 [1, 4], and yolov8n linked from
the shared models): one with tracing off, one with tracing on at sampling
ratio 1.0 exporting every span over OTLP/HTTP to a local collector (a
separate process that accepts and discards each batch).  Then, at
concurrency 1 on keep-alive connections, it interleaves the two request by
request (one to each server, the order flipping every pair), so that drift
in the machine's load (other processes, frequency) falls on both alike.
Requests: KServe v2 infer (JSON) on `affine`, and /api/v1/detect on yolov8n
with bus.jpg.  Reports the client-side latency mean, p50 and p99 per model
and setting and the difference of the means; the target is at most 2 %.

Writes the table to docs/BENCHMARKS.md under "## Tracing overhead".

usage: bench/trace_bench.py [--vigil PATH] [--rounds 20] [--affine 200] [--detect 10] [--no-write]
"""
import argparse
import datetime
import http.client
import http.server
import json
import multiprocessing
import os
import pathlib
import platform
import statistics
import sys
import tempfile
import time

import benchdoc

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT / "scripts"))
import requests  # noqa: E402
from conftest import Daemon, metric_value, shared_dir  # noqa: E402
from sample_models import make_affine_onnx  # noqa: E402

SECTION = "## Tracing overhead"
AFFINE = json.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}).encode()


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vigil", default=str(ROOT / "build" / "vigil"))
    p.add_argument("--rounds", type=int, default=20, help="interleaved rounds (each setting once per round)")
    p.add_argument("--affine", type=int, default=200, help="affine requests per setting and round")
    p.add_argument("--detect", type=int, default=10, help="yolov8n requests per setting and round")
    p.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    return p.parse_args()


def collector_main(port_pipe):
    """The OTLP/HTTP endpoint: reads each POST and answers 200 (no decoding:
    its CPU would be charged to the traced server)."""
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_pipe.send(server.server_address[1])
    server.serve_forever()


class Client:
    """One keep-alive connection; times each request on the client."""

    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def post(self, path, body, content_type):
        t0 = time.perf_counter()
        self.conn.request("POST", path, body=body, headers={"Content-Type": content_type})
        r = self.conn.getresponse()
        r.read()
        dt = time.perf_counter() - t0
        if r.status != 200:
            sys.exit(f"trace_bench: {path} answered {r.status}")
        return dt


def wait_ready(d):
    deadline = time.monotonic() + 120
    while requests.get(d.url + "/v2/health/ready", timeout=5).status_code != 200:
        if time.monotonic() > deadline:
            sys.exit("trace_bench: the server never became ready")
        time.sleep(0.05)


def summary(samples):
    s = sorted(samples)
    return {"n": len(s), "mean": statistics.fmean(s), "p50": s[len(s) // 2], "p99": s[min(len(s) - 1, int(len(s) * 0.99))]}


def main():
    args = parse_args()
    os.environ["VIGIL_BINARY"] = args.vigil
    shared = shared_dir()
    image = shared / "images" / "bus.jpg"
    model = shared / "models" / "yolov8n.onnx"
    for path in (image, model):
        if not path.exists():
            sys.exit(f"trace_bench: {path} is missing (the shared models and images)")
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="vigil-trace-bench-"))
    models = tmp / "models"
    make_affine_onnx(models / "affine" / "1" / "model.onnx")
    (models / "yolov8n" / "1").mkdir(parents=True)
    (models / "yolov8n" / "1" / "model.onnx").symlink_to(model.resolve())
    jpeg = image.read_bytes()

    parent_end, child_end = multiprocessing.Pipe()
    collector = multiprocessing.Process(target=collector_main, args=(child_end,), daemon=True)
    collector.start()
    collector_port = parent_end.recv()

    common = ["--models", models, "--log-level", "warn"]
    servers = {
        "off": Daemon(*common),
        "on": Daemon(*common, "--tracing-enabled", "1", "--tracing-sampling-ratio", "1",
                     "--tracing-endpoint", f"http://127.0.0.1:{collector_port}"),
    }
    try:
        for d in servers.values():
            wait_ready(d)
        clients = {name: Client(d.http_port) for name, d in servers.items()}
        workloads = {
            "affine (KServe v2 infer)": ("/v2/models/affine/infer", AFFINE, "application/json", args.affine),
            "yolov8n (/api/v1/detect)": ("/api/v1/detect?model=yolov8n", jpeg, "image/jpeg", args.detect),
        }
        for path, body, ctype, _ in workloads.values():  # warm-up: plans compiled, connections open
            for c in clients.values():
                for _ in range(5):
                    c.post(path, body, ctype)
        samples = {(w, s): [] for w in workloads for s in servers}
        pair = 0
        for r in range(args.rounds):
            for w, (path, body, ctype, n) in workloads.items():
                for _ in range(n):
                    pair += 1
                    for s in (("off", "on") if pair % 2 else ("on", "off")):
                        samples[(w, s)].append(clients[s].post(path, body, ctype))
            print(f"round {r + 1}/{args.rounds}", file=sys.stderr)
        time.sleep(1.5)  # the last batch goes out (flush interval 1 s)
        text = requests.get(servers["on"].url + "/metrics", timeout=10).text
        exported = metric_value(text, "vigil_trace_spans_exported_total") or 0
        dropped = sum(metric_value(text, "vigil_trace_spans_dropped_total", reason=r) or 0
                      for r in ("queue_full", "export_failed", "shutdown"))
    finally:
        for d in servers.values():
            d.stop()
        collector.terminate()

    rows = []
    for w in workloads:
        off, on = summary(samples[(w, "off")]), summary(samples[(w, "on")])
        diff = (on["mean"] / off["mean"] - 1) * 100
        diff50 = (on["p50"] / off["p50"] - 1) * 100
        rows.append(f"| {w} | {off['n']} | {off['mean'] * 1e3:.3f} | {off['p50'] * 1e3:.3f} | {off['p99'] * 1e3:.3f} "
                    f"| {on['mean'] * 1e3:.3f} | {on['p50'] * 1e3:.3f} | {on['p99'] * 1e3:.3f} | {diff:+.2f} % "
                    f"| {diff50:+.2f} % |")
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = "\n".join([
        SECTION, "",
        f"`bench/trace_bench.py --rounds {args.rounds} --affine {args.affine} --detect {args.detect}` on "
        f"{platform.node()} ({os.cpu_count()} cores), {when}.",
        "",
        "Client-side latency at concurrency 1 (one keep-alive connection per server), tracing off against "
        "tracing on with `tracing.sampling_ratio: 1` exporting every span over OTLP/HTTP to a local collector, "
        "the two interleaved request by request in one run. Milliseconds; the last columns are the "
        "differences of the means and of the medians (target: at most 2 %).",
        "",
        "| request | requests per setting | off mean | off p50 | off p99 | on mean | on p50 | on p99 "
        "| mean on vs off | p50 on vs off |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"Spans exported by the traced server: {exported:.0f}; dropped: {dropped:.0f}.",
        "",
        "On a busy machine the mean follows the slow tail (compare p99 with p50) more than tracing, so the "
        "medians are the steadier comparison.",
        "",
    ])
    print(text)
    if not args.no_write:
        benchdoc.write_section(SECTION, text)


if __name__ == "__main__":
    main()
