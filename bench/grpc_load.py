#!/usr/bin/python3
"""grpc_load.py - bounded load on loopback: gRPC and REST side by side (not
part of `make check`).

Starts `vigil serve` on a temporary repository holding a small generated
model (affine: y = 1.5x + 0.25, FP32 [batch, 4], dynamic batching), then, one
phase after the other, for --seconds each:
  * gRPC ModelInfer: --callers concurrent unary callers (raw tensors);
  * gRPC ModelStreamInfer: --streams bidirectional streams, each keeping
    --depth requests in flight;
  * REST POST /v2/models/affine/infer (JSON): --callers concurrent callers;
  * REST binary tensors: the same with the binary extension.
Every answer is checked (values and order); any error is counted.  Prints a
markdown table (requests/s, p50, p99, errors) and writes it to
docs/BENCHMARKS.md under "## gRPC and REST" (that section only: other
sections are left alone; it is appended when missing).

The client is Python (grpcio, requests) on the same 2 cores as the server,
so the numbers measure the pair, and the client is usually the bottleneck.

usage: bench/grpc_load.py [--vigil PATH] [--seconds 20] [--callers 16] [--streams 4] [--depth 4]
                          [--no-write]
"""
import argparse
import concurrent.futures
import datetime
import json
import os
import pathlib
import platform
import queue
import sys
import tempfile
import threading
import time

import numpy as np

import benchdoc

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

import requests  # noqa: E402
from conftest import add_model, ready_daemon  # noqa: E402
from test_grpc import connect, generate_stubs  # noqa: E402

CONFIG = "max_batch_size: 8\ndynamic_batching:\n  max_queue_delay_us: 200\n"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vigil", default=os.environ.get("VIGIL_BINARY", str(ROOT / "build" / "vigil")))
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--callers", type=int, default=16)
    p.add_argument("--streams", type=int, default=4)
    p.add_argument("--depth", type=int, default=4, help="requests in flight per stream")
    p.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    return p.parse_args()


class Recorder:
    """Latencies and errors of one phase (thread-safe)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.latencies = []
        self.errors = 0
        self.first_error = None

    def ok(self, seconds):
        with self.lock:
            self.latencies.append(seconds)

    def fail(self, what):
        with self.lock:
            self.errors += 1
            self.first_error = self.first_error or str(what)[:200]


def expected(x):
    return x * np.float32(1.5) + np.float32(0.25)


def run_callers(n, seconds, one_call):
    rec = Recorder()
    stop = time.monotonic() + seconds

    def loop(k):
        rng = np.random.default_rng(k)
        while time.monotonic() < stop:
            x = rng.normal(size=(1, 4)).astype(np.float32)
            t0 = time.perf_counter()
            try:
                y = one_call(x)
                if not np.array_equal(y, expected(x)):
                    raise AssertionError("wrong values")
                rec.ok(time.perf_counter() - t0)
            except Exception as e:  # counted, reported
                rec.fail(e)
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        list(pool.map(loop, range(n)))
    return rec, time.monotonic() - t0


def grpc_unary(pb, stub):
    def call(x):
        req = pb["inference_pb2"].ModelInferRequest(model_name="affine")
        req.inputs.add(name="x", datatype="FP32", shape=[1, 4])
        req.raw_input_contents.append(x.tobytes())
        r = stub.ModelInfer(req, timeout=30)
        return np.frombuffer(r.raw_output_contents[0], dtype="<f4").reshape(1, 4)
    return call


def rest_json(url, sessions):
    def call(x):
        s = sessions.setdefault(threading.get_ident(), requests.Session())
        body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": x.tolist()}]}
        r = s.post(url, json=body, timeout=30)
        r.raise_for_status()
        return np.array(r.json()["outputs"][0]["data"], dtype=np.float32).reshape(1, 4)
    return call


def rest_binary(url, sessions):
    header = json.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                                     "parameters": {"binary_data_size": 16}}],
                         "parameters": {"binary_data_output": True}}).encode()

    def call(x):
        s = sessions.setdefault(threading.get_ident(), requests.Session())
        r = s.post(url, data=header + x.tobytes(), timeout=30,
                   headers={"Inference-Header-Content-Length": str(len(header))})
        r.raise_for_status()
        n = int(r.headers["Inference-Header-Content-Length"])
        return np.frombuffer(r.content[n:], dtype="<f4").reshape(1, 4)
    return call


def run_streams(pb, stub, n, depth, seconds):
    """n ModelStreamInfer streams, each with up to depth requests in flight;
    latency = send to answer; answers must come back in order."""
    rec = Recorder()
    stop = time.monotonic() + seconds
    ipb = pb["inference_pb2"]

    def one_stream(k):
        rng = np.random.default_rng(100 + k)
        credits = threading.Semaphore(depth)
        pending = queue.Queue()

        def requests_():
            i = 0
            while time.monotonic() < stop:
                credits.acquire()
                x = rng.normal(size=(1, 4)).astype(np.float32)
                req = ipb.ModelInferRequest(model_name="affine", id=str(i))
                req.inputs.add(name="x", datatype="FP32", shape=[1, 4])
                req.raw_input_contents.append(x.tobytes())
                pending.put((i, x, time.perf_counter()))
                i += 1
                yield req
        try:
            for resp in stub.ModelStreamInfer(requests_(), timeout=seconds + 60):
                i, x, t0 = pending.get_nowait()
                credits.release()
                r = resp.infer_response
                y = np.frombuffer(r.raw_output_contents[0], dtype="<f4").reshape(1, 4) if not resp.error_message else None
                if resp.error_message or r.id != str(i) or not np.array_equal(y, expected(x)):
                    rec.fail(resp.error_message or f"stream {k}: answer {r.id} for request {i}")
                else:
                    rec.ok(time.perf_counter() - t0)
        except Exception as e:
            rec.fail(e)
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        list(pool.map(one_stream, range(n)))
    return rec, time.monotonic() - t0


def row(name, rec, elapsed):
    lat = np.array(rec.latencies) * 1000 if rec.latencies else np.array([np.nan])
    return (f"| {name} | {len(rec.latencies)} | {len(rec.latencies) / elapsed:.0f} | {np.percentile(lat, 50):.2f} | "
            f"{np.percentile(lat, 99):.2f} | {rec.errors} |")


def main():
    args = parse_args()
    os.environ["VIGIL_BINARY"] = args.vigil
    with tempfile.TemporaryDirectory() as tmp:
        pb = generate_stubs(pathlib.Path(tmp) / "stubs")
        models = pathlib.Path(tmp) / "models"
        add_model(models, "affine", config=CONFIG, scale=1.5, offset=0.25)
        d = ready_daemon("--models", models, "--log-level", "warn")
        try:
            ch = connect(d.grpc_port)
            stub = pb["inference_pb2_grpc"].GRPCInferenceServiceStub(ch)
            url = f"{d.url}/v2/models/affine/infer"
            results = []
            print(f"gRPC unary: {args.callers} callers, {args.seconds:.0f} s", flush=True)
            results.append(row(f"gRPC ModelInfer, {args.callers} callers", *run_callers(args.callers, args.seconds,
                                                                                     grpc_unary(pb, stub))))
            print(f"gRPC streams: {args.streams} x depth {args.depth}, {args.seconds:.0f} s", flush=True)
            results.append(row(f"gRPC ModelStreamInfer, {args.streams} streams x {args.depth} in flight",
                               *run_streams(pb, stub, args.streams, args.depth, args.seconds)))
            sessions = {}
            print(f"REST JSON: {args.callers} callers, {args.seconds:.0f} s", flush=True)
            results.append(row(f"REST infer JSON, {args.callers} callers",
                               *run_callers(args.callers, args.seconds, rest_json(url, sessions))))
            print(f"REST binary: {args.callers} callers, {args.seconds:.0f} s", flush=True)
            results.append(row(f"REST infer binary tensors, {args.callers} callers",
                               *run_callers(args.callers, args.seconds, rest_binary(url, sessions))))
            ch.close()
        finally:
            code = d.stop()
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()[1]
    text = "\n".join([
        "## gRPC and REST",
        "",
        f"`bench/grpc_load.py --seconds {args.seconds:g} --callers {args.callers} --streams {args.streams} "
        f"--depth {args.depth}` on {platform.node()} ({os.cpu_count()} cores), {when}.",
        "Loopback; model `affine` (y = 1.5x + 0.25, FP32 [1, 4] per request, dynamic batching up to 8,",
        "200 us queue delay), so this measures the front ends, not inference.  The Python clients",
        "(grpcio, requests) share the cores with the server and are the bottleneck: read the",
        "numbers as a comparison of the two paths on one box, not as vigil's ceiling.  Timings on a",
        "shared, contended machine are noisy (5-minute load average at the end of this run:",
        f"{load:.1f}).  Every answer is checked (values, ids, stream order).",
        "",
        "| phase | requests | req/s | p50 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|",
        *results,
        "",
        f"Server exit code after SIGTERM: {code}.",
        "",
    ])
    print(text)
    if not args.no_write:
        benchdoc.write_section("## gRPC and REST", text)


if __name__ == "__main__":
    main()
