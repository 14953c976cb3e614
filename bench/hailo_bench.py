#!/usr/bin/env python3
"""Hailo-8 throughput through vigil, with the HailoRT test double by default.

Starts `vigil serve` with one yolov8n-shaped HEF model (640x640x3 in,
on-chip NMS over 80 classes out) on the double at --frame-us per frame
(0.98 ms: a Hailo-8's yolov8n), then measures:
  - frames/s through gRPC StreamDetect (--streams concurrent streams),
  - frames/s through REST POST /api/v1/detect (--clients threads),
  - server CPU per frame: the process's user+system time / frames,
and with --perf records `perf record -g` on the server during each run
and prints the top of `perf report` (the numbers of a --perf run include
perf's own cost).  Against a real card: --library
/usr/lib/libhailort.so.4 --hef yolov8n.hef (not run yet: docs/HAILO.md).
No assertions: it reports.  docs/BENCHMARKS.md "Hailo-8 (test double)"."""
import argparse
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
os.environ.setdefault("VIGIL_BINARY", str(ROOT / "build" / "vigil"))
from conftest import ready_daemon  # noqa: E402
import requests  # noqa: E402


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def page_faults(pid):
    """The process's minor page faults so far (memory faulted in)."""
    return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[7])


def thread_cpu(pid):
    """CPU seconds so far by thread name (threads that ended are not counted)."""
    by_name = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            head, rest = open(f"/proc/{pid}/task/{task}/stat").read().rsplit(")", 1)
        except OSError:
            continue
        name, fields = head.split("(", 1)[1], rest.split()
        by_name[name] = by_name.get(name, 0) + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return by_name


def context_switches(pid):
    """Voluntary and involuntary context switches of all the process's
    threads so far (threads that ended are not counted)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            for line in open(f"/proc/{pid}/task/{task}/status"):
                if "ctxt_switches:" in line:  # voluntary_ and nonvoluntary_
                    total += int(line.split()[-1])
        except OSError:
            pass
    return total


def image_bytes(frame):
    """bus.jpg as it is ("bus"), or resized to WxH and saved as a quality-85
    JPEG (a camera frame), or ("rawWxH") resized to WxH and sent decoded, as
    RGB24 bytes; a grey PNG (grey pixels) when the shared images are absent.
    Returns (bytes, (width, height) of a raw frame or None)."""
    shared = pathlib.Path(os.environ.get("VIGIL_SHARED_DIR", ROOT.parent / "shared"))
    bus = shared / "images" / "bus.jpg"
    raw = frame.startswith("raw")
    size = None if frame == "bus" else tuple(int(v) for v in frame[3 if raw else 0:].split("x"))
    if raw:
        if not bus.exists():
            return bytes([128]) * (size[0] * size[1] * 3), size
        from PIL import Image
        return Image.open(bus).convert("RGB").resize(size).tobytes(), size
    if not bus.exists():
        from test_backend_detect import gray_png
        return gray_png(128, 640 if frame == "bus" else size[0]), None
    if frame == "bus":
        return bus.read_bytes(), None
    import io
    from PIL import Image
    out = io.BytesIO()
    Image.open(bus).convert("RGB").resize(size).save(out, "JPEG", quality=85)
    return out.getvalue(), None


def varint(n):
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def run_grpc(d, image, raw, frames, streams):
    """Each stream sends DetectRequests serialized by hand: the request
    without its frame_id serialized once, then per frame that prefix and the
    frame_id field (protobuf merges concatenated messages), so the client
    spends one copy of the frame per message, as a camera pipeline in C
    would, not the two or three of building a message object."""
    from test_grpc import connect, generate_stubs
    pb = generate_stubs(pathlib.Path(tempfile.mkdtemp()) / "stubs")
    dpb = pb["detection_pb2"]
    errors = []
    extra = {"raw": dpb.RawFrame(width=raw[0], height=raw[1])} if raw else {}
    prefix = dpb.DetectRequest(image=image, model="yolov8n", **extra).SerializeToString()

    def one(n):
        channel = connect(d.grpc_port)
        call = channel.stream_stream("/vigil.v1.Detection/StreamDetect", request_serializer=None,
                                     response_deserializer=dpb.DetectResponse.FromString)
        reqs = (prefix + b"\x20" + varint(i) for i in range(n))  # field 4 (frame_id), varint
        got = 0
        for o in call(reqs, timeout=600):
            if o.error:
                errors.append(o.error)
            elif o.frame_id != got:
                errors.append(f"frame {o.frame_id} answered as the {got}th")
            got += 1
        if got != n:
            errors.append(f"{got} answers to {n} frames")
        channel.close()

    threads = [threading.Thread(target=one, args=(frames // streams,)) for _ in range(streams)]
    return timed(d, threads, frames // streams * streams, errors)


def http_post(sock, head, body):
    """One POST on a kept-alive socket: (status, body).  The response is
    framed by Content-Length, as vigil's answers to /api/v1/detect are."""
    sock.sendall(head)
    sock.sendall(body)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        data += chunk
    header, rest = data.split(b"\r\n\r\n", 1)
    lines = header.decode("latin-1").split("\r\n")
    length = next(int(v) for k, _, v in (line.partition(":") for line in lines[1:]) if k.lower() == "content-length")
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        rest += chunk
    return int(lines[0].split()[1]), rest


def run_rest(d, image, raw, frames, clients, client="socket"):
    """client "socket": each thread keeps one connection and writes the same
    request head and body every time (what a camera pipeline in C would
    send, without the client library's own work on the two shared cores);
    "requests": a requests.Session per thread."""
    errors = []
    path = "/api/v1/detect?model=yolov8n"
    headers = {}
    if raw:
        path += f"&width={raw[0]}&height={raw[1]}"
        headers["Content-Type"] = "application/octet-stream"

    def one(n):
        if client == "requests":
            s = requests.Session()
            for _ in range(n):
                r = s.post(d.url + path, data=image, headers=headers, timeout=60)
                if r.status_code != 200:
                    errors.append(r.text)
            return
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(image)}\r\n"
                + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode()
        with socket.create_connection(("127.0.0.1", d.http_port), timeout=60) as sock:
            for _ in range(n):
                status, body = http_post(sock, head, image)
                if status != 200:
                    errors.append(body.decode("utf-8", "replace"))

    threads = [threading.Thread(target=one, args=(frames // clients,)) for _ in range(clients)]
    return timed(d, threads, frames // clients * clients, errors)


def timed(d, threads, frames, errors):
    cpu0, cs0, t0 = cpu_seconds(d.proc.pid), context_switches(d.proc.pid), time.monotonic()
    threads0, faults0 = thread_cpu(d.proc.pid), page_faults(d.proc.pid)
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, cpu = time.monotonic() - t0, cpu_seconds(d.proc.pid) - cpu0
    switches = context_switches(d.proc.pid) - cs0
    threads = {k: (v - threads0.get(k, 0)) / frames * 1000 for k, v in thread_cpu(d.proc.pid).items()}
    return {"frames": frames, "fps": frames / wall, "cpu_ms_per_frame": cpu / frames * 1000, "errors": len(errors),
            "switches_per_frame": switches / frames, "faults_per_frame": (page_faults(d.proc.pid) - faults0) / frames,
            "threads": {k: v for k, v in sorted(threads.items(), key=lambda kv: -kv[1]) if v >= 0.005}}


def report(name, run):
    print(f"{name}: {run['fps']:.0f} frames/s, {run['cpu_ms_per_frame']:.2f} ms server CPU/frame,"
          f" {run['switches_per_frame']:.1f} context switches/frame, {run['faults_per_frame']:.1f} page faults/frame,"
          f" {run['errors']:.0f} errors")
    if run.get("threads"):
        print("    by thread, ms/frame: " + ", ".join(f"{k} {v:.2f}" for k, v in run["threads"].items()))


def perf_around(part, call_graph, d, run):
    """run(), with `perf record --call-graph call_graph` on the server
    around it when call_graph is set (fp, or dwarf: callers through libc too)."""
    if not call_graph:
        return run()
    perf = subprocess.Popen(["perf", "record", "--call-graph", call_graph, "-o", f"/tmp/hailo_bench_{part}.perf", "-p", str(d.proc.pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)  # perf attaches
    try:
        return run()
    finally:
        perf.send_signal(2)
        perf.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--frame-us", default="980")
    ap.add_argument("--instances", type=int, default=3)
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--library", default=str(ROOT / "build" / "hailo_fake" / "libhailort_fake.so"))
    ap.add_argument("--frame", default="bus", help="bus (bus.jpg, 810x1080), WxH: bus.jpg resized, as JPEG, or "
                    "rawWxH: resized and sent decoded (RGB24: REST application/octet-stream, gRPC RawFrame)")
    ap.add_argument("--input", type=int, default=640, help="the double's network input size (square)")
    ap.add_argument("--hef", help="a real HEF (default: the double's yolov8n-shaped text HEF)")
    ap.add_argument("--perf", nargs="?", const="fp", choices=["fp", "dwarf"],
                    help="perf record the server during each run (call graphs: fp, the default, or dwarf)")
    ap.add_argument("--rest-client", choices=["socket", "requests"], default="socket",
                    help="REST client: a kept-alive socket per thread writing a prepared request (default), or "
                         "requests.Session")
    ap.add_argument("--rounds", type=int, default=1,
                    help="runs of each on the same server, alternating; the medians are printed last (this "
                         "machine's CPU per frame swings by 0.1 ms from run to run)")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                    help="a setting for the server, e.g. --env VIGIL_GRPC_THREADS=1 (repeatable)")
    a = ap.parse_args()
    models = pathlib.Path(tempfile.mkdtemp()) / "models"
    (models / "yolov8n" / "1").mkdir(parents=True)
    hef = models / "yolov8n" / "1" / "model.hef"
    if a.hef:
        hef.write_bytes(pathlib.Path(a.hef).read_bytes())
    else:
        hef.write_text(f"hailo_fake_hef 1\nnetwork yolov8n\ninput images {a.input} {a.input} 3\nnms yolov8n/nms 80 100\n"
                       "box 0 0.2 0.1 0.9 0.4 0.88\nbox 5 0.3 0.05 0.7 0.95 0.86\nbox 0 0.4 0.7 0.9 0.9 0.8\n")
    (models / "yolov8n" / "config.yaml").write_text(
        f"backend: hailo\ninstances: {a.instances}\nmax_batch_size: 8\n"
        "dynamic_batching:\n  max_queue_delay_us: 200\n")
    env = {"VIGIL_HAILORT": a.library, "HAILO_FAKE_FRAME_US": a.frame_us, **dict(x.split("=", 1) for x in a.env)}
    d = ready_daemon("--models", models, "--log-level", "warn", env=env)
    image, raw = image_bytes(a.frame)
    rounds = []
    try:
        run_rest(d, image, raw, 64, 4)  # warm-up
        for _ in range(a.rounds):
            g = perf_around("grpc", a.perf, d, lambda: run_grpc(d, image, raw, a.frames, a.streams))
            r = perf_around("rest", a.perf, d, lambda: run_rest(d, image, raw, a.frames, a.clients, a.rest_client))
            rounds.append((g, r))
    finally:
        d.stop()
    print(f"frame {a.frame} ({len(image)} bytes), network input {a.input}, device {a.frame_us} us/frame ({1e6 / float(a.frame_us):.0f} frames/s), "
          f"instances {a.instances}, load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    for g, r in rounds:
        report(f"gRPC StreamDetect x{a.streams}", g)
        report(f"REST detect x{a.clients}", r)
    if a.rounds > 1:
        for i, name in enumerate((f"gRPC StreamDetect x{a.streams}", f"REST detect x{a.clients}")):
            runs = [x[i] for x in rounds]
            median = {k: statistics.median(run[k] for run in runs) for k in runs[0] if k != "threads"}
            report(f"median of {a.rounds}: {name}", median)
    for part in ("grpc", "rest") if a.perf else ():
        out = subprocess.run(["perf", "report", "-i", f"/tmp/hailo_bench_{part}.perf", "--stdio", "--no-children",
                              "--percent-limit", "1", "-g", "none", "--sort", "dso,symbol"],
                             capture_output=True, text=True)
        print(f"--- perf, {part} run (/tmp/hailo_bench_{part}.perf) ---")
        print(out.stdout[:6000] or out.stderr[:2000])


if __name__ == "__main__":
    main()
