#!/usr/bin/python3
"""stream_bench.py - four RTSP cameras at 30 frames/s into one `vigil serve`,
each with a 5 frames/s detect target on yolov8n (issue 22, Must show 3; run
by `make bench`; not part of `make check`).

Makes an H.264 clip of bus.jpg panning (clipkit.py, 1280x720 at 30 frames/s,
long enough for the whole run), serves it on loopback with
tests/harness/rtsp_server.py (GStreamer's RTSP server; one server, one
unshared pipeline per client, so each stream is its own camera), starts
`vigil serve` with the shared yolov8n and adds the streams through
POST /api/v1/streams.  After a warm-up it measures for --seconds: per stream
the achieved detect and input rates and the drops by reason (from the
difference of the stream's counters at the start and the end of the
window), the latency from packet to published detections, p50 and p99 (the
stream's own, over its last 256 detected frames), the decode cost per
decoded frame and the inference cost per detected frame (from the counters'
differences); and the server's CPU, user + system time of the process over
the window divided by the window (1.0 = one core busy).

Prints the table and writes it to docs/BENCHMARKS.md under "## Video
streams" (that section only), unless --no-write.

usage: bench/stream_bench.py [--vigil PATH] [--streams 4] [--seconds 60]
                             [--fps 5] [--size 1280x720] [--model yolov8n]
                             [--batch N] [--transport tcp] [--note TEXT]
                             [--no-write]
"""
import argparse
import datetime
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

import benchdoc

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
import requests  # noqa: E402
from clipkit import have_ffmpeg, make_clip  # noqa: E402
from conftest import Daemon, shared_dir  # noqa: E402

SECTION = "## Video streams"
WARMUP_S = 10.0
TICKS = os.sysconf("SC_CLK_TCK")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vigil", default=str(ROOT / "build" / "vigil"))
    p.add_argument("--streams", type=int, default=4)
    p.add_argument("--seconds", type=float, default=60.0, help="the measured window (after a 10 s warm-up)")
    p.add_argument("--fps", type=float, default=5.0, help="detect target per stream")
    p.add_argument("--size", default="1280x720", help="the cameras' picture size")
    p.add_argument("--model", default="yolov8n", help="a model in the shared models folder")
    p.add_argument("--int8", action="store_true",
                   help="serve an int8 copy of the model made by `vigil models quantize` (calibrated on bus.jpg "
                        "and zidane.jpg), as an edge box would run it")
    p.add_argument("--batch", type=int, default=0,
                   help="serve the model with dynamic batching up to this size (use a dynamic-batch export, "
                        "e.g. --model yolov8n_dynbatch); 0: the model's own setting")
    p.add_argument("--transport", default="tcp", choices=("tcp", "udp"))
    p.add_argument("--note", default="", help="a sentence on the machine's state, written with the table")
    p.add_argument("--no-write", action="store_true", help="print only; leave docs/BENCHMARKS.md alone")
    return p.parse_args()


def cpu_seconds(pid):
    """user + system time of the process so far, in seconds (/proc/PID/stat)."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime: fields 14 and 15 of the line


def start_rtsp(clip):
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "harness" / "rtsp_server.py"), str(clip)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().split()
    if len(line) != 2 or line[0] != "ready":
        proc.kill()
        sys.exit("stream_bench: the RTSP server did not start (python3-gi, gir1.2-gst-rtsp-server-1.0)")
    return proc, int(line[1])


def streams_by_name(url):
    return {s["name"]: s for s in requests.get(url + "/api/v1/streams", timeout=10).json()["streams"]}


def window(s0, s1, dt):
    """One stream's row from its JSON at the window's start (s0) and end (s1)."""
    a, b = s0["stats"], s1["stats"]
    frames_in = b["frames_in"] - a["frames_in"]
    detected = b["frames_detected"] - a["frames_detected"]
    decode_total = b["decode_ms"] * b["frames_in"] - a["decode_ms"] * a["frames_in"]
    infer_total = b["inference_ms"] * b["frames_detected"] - a["inference_ms"] * a["frames_detected"]
    return {
        "name": s1["name"],
        "state": s1["state"],
        "input_fps": frames_in / dt,
        "detect_fps": detected / dt,
        "dropped": {k: b["dropped"][k] - a["dropped"][k] for k in ("rate", "busy", "corrupt")},
        "p50": b["latency_ms"]["p50"],
        "p99": b["latency_ms"]["p99"],
        "decode_ms": decode_total / frames_in if frames_in else 0.0,
        "inference_ms": infer_total / detected if detected else 0.0,
        "reconnects": b["reconnects"] - a["reconnects"],
    }


def table(rows, cpu, target):
    out = ["| stream | detect frames/s (target %.1f) | input frames/s | dropped: rate | busy | corrupt "
           "| latency p50 (ms) | p99 (ms) | decode ms/frame | inference ms/frame | reconnects |" % target,
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        d = r["dropped"]
        out.append(f"| {r['name']} | {r['detect_fps']:.2f} | {r['input_fps']:.2f} | {d['rate']} | {d['busy']} "
                   f"| {d['corrupt']} | {r['p50']:.0f} | {r['p99']:.0f} | {r['decode_ms']:.2f} "
                   f"| {r['inference_ms']:.1f} | {r['reconnects']} |")
    n = len(rows)
    out.append(f"| **all {n}** | {sum(r['detect_fps'] for r in rows):.2f} | {sum(r['input_fps'] for r in rows):.2f} "
               f"| {sum(r['dropped']['rate'] for r in rows)} | {sum(r['dropped']['busy'] for r in rows)} "
               f"| {sum(r['dropped']['corrupt'] for r in rows)} | | | "
               f"{sum(r['decode_ms'] for r in rows) / n:.2f} | {sum(r['inference_ms'] for r in rows) / n:.1f} "
               f"| {sum(r['reconnects'] for r in rows)} |")
    out.append("")
    out.append(f"Server CPU over the window: {cpu:.2f} cores (user + system time of the `vigil serve` process / "
               f"wall time; the RTSP server and this script are other processes).")
    return out


def main():
    args = parse_args()
    os.environ["VIGIL_BINARY"] = args.vigil
    width, height = (int(x) for x in args.size.lower().split("x"))
    shared = shared_dir()
    image = shared / "images" / "bus.jpg"
    model = shared / "models" / f"{args.model}.onnx"
    for path in (image, model):
        if not path.exists():
            sys.exit(f"stream_bench: {path} is missing (the shared models and images)")
    if not have_ffmpeg():
        sys.exit("stream_bench: the ffmpeg CLI is missing (Debian package ffmpeg)")
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="vigil-stream-bench-"))
    clip_seconds = int(WARMUP_S + args.seconds + 20)
    print(f"making a {clip_seconds} s {width}x{height} clip ...", file=sys.stderr)
    clip = make_clip(image, tmp / "camera.mp4", seconds=clip_seconds, width=width, height=height, fps=30)
    models = tmp / "models"
    (models / args.model / "1").mkdir(parents=True)
    served = models / args.model / "1" / "model.onnx"
    if args.int8:
        print("quantizing the model to int8 ...", file=sys.stderr)
        subprocess.run([args.vigil, "models", "quantize", str(model), str(served), "--calibrate", str(image),
                        str(shared / "images" / "zidane.jpg")], check=True, stdout=subprocess.DEVNULL)
    else:
        served.symlink_to(model.resolve())
    if args.batch:
        (models / args.model / "config.yaml").write_text(
            f"max_batch_size: {args.batch}\ndynamic_batching:\n  max_queue_delay_us: 5000\n")

    rtsp, port = start_rtsp(clip)
    d = None
    try:
        d = Daemon("--models", models, "--log-level", "warn")
        for _ in range(600):
            if requests.get(d.url + "/v2/health/ready", timeout=5).status_code == 200:
                break
            time.sleep(0.1)
        names = [f"cam{i + 1}" for i in range(args.streams)]
        for name in names:
            r = requests.post(d.url + "/api/v1/streams", json={
                "name": name, "url": f"rtsp://127.0.0.1:{port}/clip", "rtsp_transport": args.transport,
                "model": args.model, "detect_fps": args.fps}, timeout=30)
            if r.status_code != 201:
                sys.exit(f"stream_bench: POST /api/v1/streams {name}: {r.status_code} {r.text}")
        print(f"{args.streams} streams added; warming up {WARMUP_S:.0f} s ...", file=sys.stderr)
        time.sleep(WARMUP_S)
        s0, c0, t0 = streams_by_name(d.url), cpu_seconds(d.proc.pid), time.monotonic()
        print(f"measuring {args.seconds:.0f} s ...", file=sys.stderr)
        time.sleep(args.seconds)
        s1, c1, t1 = streams_by_name(d.url), cpu_seconds(d.proc.pid), time.monotonic()
    finally:
        if d:
            d.stop()
        rtsp.stdin.close()
        rtsp.wait(timeout=10)
    dt = t1 - t0
    rows = [window(s0[n], s1[n], dt) for n in names]
    cpu = (c1 - c0) / dt
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = (f"bench/stream_bench.py --streams {args.streams} --seconds {args.seconds:.0f} --fps {args.fps:g} "
               f"--size {args.size} --model {args.model} --transport {args.transport}"
               + (f" --batch {args.batch}" if args.batch else "") + (" --int8" if args.int8 else ""))
    text = "\n".join([
        SECTION, "",
        f"`{command}` on {platform.node()} ({os.cpu_count()} cores), {when}."
        + (f" {args.note}" if args.note else ""),
        "",
        f"{args.streams} RTSP cameras ({args.transport}) on loopback, each a {width}x{height} H.264 clip at 30 frames/s "
        f"(bus.jpg panning, so tracks move), each with a {args.fps:g} frames/s detect target on {args.model}"
        + (" (int8, `vigil models quantize`)" if args.int8 else "") + ", "
        f"measured over {dt:.0f} s after a {WARMUP_S:.0f} s warm-up. Rates and drops are the differences of each "
        "stream's counters over the window; drops by reason: `rate` frames decoded but not picked by the "
        "detect target (about 25 of 30 a second at 5 frames/s: the policy working), `busy` picked frames "
        "replaced by a newer one while the stream's detection was still running (newest frame wins), "
        "`corrupt` packets or frames the decoder rejected. Latency: packet read to detections published, the "
        "stream's own p50 and p99 over its last 256 detected frames. Decode: decoding (and, for picked frames, "
        "conversion to RGB) per decoded frame; inference: the model's run per detected frame (the run of the job that "
        "carried the frame: with --batch one run serves several frames, so divide by the batch).",
        "",
        *table(rows, cpu, args.fps),
        "",
    ])
    benchdoc.publish(SECTION, text, not args.no_write)


if __name__ == "__main__":
    main()
