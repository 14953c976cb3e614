#!/usr/bin/env python3
"""Issue 5's budget: decode + letterbox + post-processing against inference
for `vigil detect` on bus.jpg with yolov8n, at 1 and 2 threads.

Two views per thread count:
  warm   one process detecting the image N + 1 times, the first run dropped:
         the median of each stage and of the per-run share;
  first  the only image of a fresh process (page faults, cold caches, the
         plan's first run), as a one-off `vigil detect --timing` sees it:
         medians over --first processes.
Prints a markdown table and writes bench/results/detect_timing.md."""
import argparse
import json
import os
import pathlib
import statistics
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[1]
STAGES = ("decode", "letterbox", "postprocess", "inference")


def detect(vigil, model, images, threads):
    out = subprocess.run([vigil, "detect", "--json", "--threads", str(threads), "--model", str(model),
                          *map(str, images)], capture_output=True, text=True, check=True).stdout
    return [json.loads(line)["timing_ms"] for line in out.splitlines() if line.strip()]


def share(run):
    return (run["decode"] + run["letterbox"] + run["postprocess"]) / run["inference"]


def row(threads, label, runs):
    med = {k: statistics.median(r[k] for r in runs) for k in STAGES}
    shares = sorted(share(r) for r in runs)
    return (f"| {threads} | {label} | {med['decode']:.2f} | {med['letterbox']:.2f} | {med['postprocess']:.2f} | "
            f"{med['inference']:.1f} | {100 * statistics.median(shares):.1f}% "
            f"({100 * shares[0]:.1f}-{100 * shares[-1]:.1f}%) |")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vigil", default=str(ROOT / "build" / "vigil"))
    ap.add_argument("--shared", default=os.environ.get("VIGIL_SHARED_DIR", str(ROOT.parent / "shared")))
    ap.add_argument("--runs", type=int, default=20, help="warm runs per thread count")
    ap.add_argument("--first", type=int, default=5, help="fresh processes per thread count")
    args = ap.parse_args()
    shared = pathlib.Path(args.shared)
    bus, model = shared / "images" / "bus.jpg", shared / "models" / "yolov8n.onnx"
    rows = ["| threads | run | decode ms | letterbox ms | postprocess ms | inference ms | "
            "pre+post / inference: median (range) |",
            "|---|---|---|---|---|---|---|"]
    for threads in (1, 2):
        warm = detect(args.vigil, model, [bus] * (args.runs + 1), threads)[1:]
        rows.append(row(threads, f"warm, {args.runs} runs", warm))
        first = [detect(args.vigil, model, [bus], threads)[0] for _ in range(args.first)]
        rows.append(row(threads, f"first image, {args.first} processes", first))
    load = os.getloadavg()[0]
    text = "\n".join(rows) + f"\n\nload average at the end: {load:.2f}\n"
    print(text)
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "detect_timing.md").write_text(text)


if __name__ == "__main__":
    main()
