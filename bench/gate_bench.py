#!/usr/bin/python3
"""gate_bench.py - what the HTTP gate (src/serve/http_gate.c) costs: two vigil
binaries, one without the gate and one with it, under wrk on loopback, turn
by turn (not part of `make check` or `make bench`).

Each binary serves a repository holding `add` (y = x + 1, FP32 [1, 4]); for
each, in alternating rounds so that a busy machine weighs on both alike:
  * GET /v2/health/ready at concurrency 1 and 16 (no model: the HTTP path alone);
  * POST /v2/models/add/infer (JSON body) at concurrency 1 and 16;
  * POST /v2/repository/index with a 4.9 MB body (the size of a yolov8n
    [1, 3, 640, 640] FP32 input) at concurrency 1: the relay's copies;
  * GET /v2/health/ready over HTTPS at concurrency 16 (wrk keeps its
    connections, so this is record encryption, not handshakes).
Prints a Markdown table of the median round of each (req/s, p50, p99: each
the median of its own, over the rounds): the machine is shared, so a single
round says little.

usage: bench/gate_bench.py --before PATH --after PATH [--seconds 4] [--rounds 3]
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(ROOT / "bench"))
from conftest import Daemon  # noqa: E402
from serve_bench import make_add_onnx  # noqa: E402

LUA = """
{request}
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {{"requests": %d, "duration_us": %d, "errors": %d, "p50_us": %d, "p99_us": %d}}\\n',
    summary.requests, summary.duration, e.status + e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""
ADD_BODY = json.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]})


def wrk(url, script, conc, seconds):
    cmd = ["wrk", "-t", str(min(conc, 2)), "-c", str(conc), "-d", f"{seconds:g}s", "--timeout", "10s", "-s",
           str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if out.returncode != 0 or line is None:
        sys.exit(f"gate_bench: wrk failed ({out.returncode}): {out.stdout}{out.stderr}")
    r = json.loads(line[len("WRKJSON "):])
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    return r


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", required=True)
    p.add_argument("--after", required=True)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        models = tmp / "models"
        make_add_onnx(models / "add" / "1" / "model.onnx")
        get = tmp / "get.lua"
        get.write_text(LUA.format(request=""))
        post = tmp / "post.lua"
        post.write_text(LUA.format(request='wrk.method = "POST"\nwrk.body = \'' + ADD_BODY + '\'\n'
                                   'wrk.headers["Content-Type"] = "application/json"'))
        big = tmp / "big.lua"
        (tmp / "big.bin").write_bytes(b"{}" + b" " * (3 * 640 * 640 * 4 - 2))
        big.write_text(LUA.format(request='wrk.method = "POST"\nlocal f = assert(io.open("' + str(tmp / "big.bin") +
                                  '", "rb"))\nwrk.body = f:read("*all")\nf:close()'))
        from test_auth import TlsDaemon, make_pki
        pki = tmp / "pki"
        pki.mkdir()
        make_pki(pki)
        TlsDaemon.pki = pki
        cases = [("ready, c=1", "http", "/v2/health/ready", get, 1), ("ready, c=16", "http", "/v2/health/ready", get, 16),
                 ("add infer, c=1", "http", "/v2/models/add/infer", post, 1),
                 ("add infer, c=16", "http", "/v2/models/add/infer", post, 16),
                 ("4.9 MB body, c=1", "http", "/v2/repository/index", big, 1),
                 ("ready over TLS, c=16", "https", "/v2/health/ready", get, 16)]
        runs = {}
        for _ in range(args.rounds):
            for which in ("before", "after"):
                os.environ["VIGIL_BINARY"] = str(pathlib.Path(getattr(args, which)).resolve())
                for tls in (False, True):
                    if tls:
                        d = TlsDaemon("--models", models, "--http-threads", "2", "--tls-cert-file",
                                      pki / "ca-server.pem", "--tls-key-file", pki / "ca-server.key")
                    else:
                        d = Daemon("--models", models, "--http-threads", "2")
                    try:
                        for name, scheme, path, script, conc in cases:
                            if (scheme == "https") != tls:
                                continue
                            url = f"{scheme}://127.0.0.1:{d.http_port}{path}"
                            r = wrk(url, script, conc, args.seconds)
                            runs.setdefault((name, which), []).append(r)
                            print(f"{which} {name}: {r['rps']:.0f} req/s", flush=True)
                    finally:
                        d.stop()
        best = {key: {field: statistics.median(r[field] for r in rs) for field in ("rps", "p50_us", "p99_us")} |
                {"errors": sum(r["errors"] for r in rs)} for key, rs in runs.items()}
        print(f"\nmedians of {args.rounds} rounds of {args.seconds:g} s")
        print("\n| case | req/s before | req/s with the gate | p50 ms before / with | p99 ms before / with | errors |")
        print("|---|---|---|---|---|---|")
        for name, *_ in cases:
            b, a = best[(name, "before")], best[(name, "after")]
            print(f"| {name} | {b['rps']:.0f} | {a['rps']:.0f} ({(a['rps'] / b['rps'] - 1) * 100:+.0f} %) | "
                  f"{b['p50_us'] / 1000:.2f} / {a['p50_us'] / 1000:.2f} | {b['p99_us'] / 1000:.2f} / "
                  f"{a['p99_us'] / 1000:.2f} | {b['errors'] + a['errors']} |")


if __name__ == "__main__":
    main()
