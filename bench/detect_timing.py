#!/usr/bin/env python3
"""Issue 5's budget: decode + letterbox + post-processing against inference
for `vigil detect` on bus.jpg with yolov8n, at 1 and 2 threads.  Each stage's
cost is its fastest of N runs after a warm-up.  Prints a markdown table and
writes bench/results/detect_timing.md."""
import argparse
import json
import os
import pathlib
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vigil", default=str(ROOT / "build" / "vigil"))
    ap.add_argument("--shared", default=os.environ.get("VIGIL_SHARED_DIR", str(ROOT.parent / "shared")))
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    shared = pathlib.Path(args.shared)
    bus, model = shared / "images" / "bus.jpg", shared / "models" / "yolov8n.onnx"
    rows = ["| threads | decode ms | letterbox ms | postprocess ms | inference ms | pre+post / inference |",
            "|---|---|---|---|---|---|"]
    for threads in (1, 2):
        out = subprocess.run([args.vigil, "detect", "--json", "--threads", str(threads), "--model", str(model),
                              *[str(bus)] * (args.runs + 1)], capture_output=True, text=True, check=True).stdout
        runs = [json.loads(line)["timing_ms"] for line in out.splitlines() if line.strip()][1:]
        best = {k: min(r[k] for r in runs) for k in ("decode", "letterbox", "postprocess", "inference")}
        share = (best["decode"] + best["letterbox"] + best["postprocess"]) / best["inference"]
        rows.append(f"| {threads} | {best['decode']:.2f} | {best['letterbox']:.2f} | {best['postprocess']:.2f} | "
                    f"{best['inference']:.1f} | {100 * share:.1f}% |")
    load = os.getloadavg()[0]
    text = "\n".join(rows) + f"\n\nload average at the end: {load:.2f}\n"
    print(text)
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "detect_timing.md").write_text(text)


if __name__ == "__main__":
    main()
