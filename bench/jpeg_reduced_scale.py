#!/usr/bin/env python3
"""What reduced-scale JPEG decoding costs and gains (issue 16).

By default vigil decodes every JPEG at full size and then resizes, as
Ultralytics does.  `vigil detect --jpeg-reduced-scale` (or
`jpeg_reduced_scale: true` in a model's config.yaml) decodes a JPEG at least
three times the network input at 1/2, 1/4 or 1/8 scale by libjpeg's DCT
scaling instead.  This measures, for yolov8n on the shared images upscaled
with Lanczos to a long side of 1920, 2560 and 3840 px (aspect kept; JPEG
quality 95, 4:2:0, made in a temporary directory, never kept):

  accuracy  detections of the reduced path matched to the exact path's (same
            class, IoU >= 0.5, greedy by IoU): mean and max |score delta|,
            mean and max box-corner delta in px of the photo, detections lost
            (exact ones without a match) and gained;
  speed     medians over --runs warm runs in one process (the first run
            dropped) of decode + letterbox and of the whole detection, in ms.

Prints a markdown table (with the date, machine and command) and writes it
to bench/results/jpeg_reduced_scale.md.  Needs Pillow (Debian python3-pil)."""
import argparse
import datetime
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import tempfile

from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[1]
LONG_SIDES = (1920, 2560, 3840)
IMAGES = ("bus", "zidane")


def make_jpeg(src, long_side, path):
    img = Image.open(src).convert("RGB")
    w, h = img.size
    scale = long_side / max(w, h)
    img.resize((round(w * scale), round(h * scale)), Image.LANCZOS).save(path, quality=95, subsampling=2)
    return Image.open(path).size


def detect(vigil, model, image, runs, threads, reduced):
    """Detections of the first run and the timings of runs 2..runs+1."""
    flags = ["--jpeg-reduced-scale"] if reduced else []
    out = subprocess.run([vigil, "detect", "--json", "--threads", str(threads), "--model", str(model), *flags,
                          *[str(image)] * (runs + 1)], capture_output=True, text=True, check=True).stdout
    results = [json.loads(line) for line in out.splitlines() if line.strip()]
    return results[0]["detections"], [r["timing_ms"] for r in results[1:]]


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match(exact, reduced):
    """[(exact det, reduced det)], lost, gained."""
    pairs = sorted(((iou(e["box"], r["box"]), i, j) for i, e in enumerate(exact) for j, r in enumerate(reduced)
                    if e["class_id"] == r["class_id"]), reverse=True)
    used_e, used_r, matched = set(), set(), []
    for overlap, i, j in pairs:
        if overlap < 0.5 or i in used_e or j in used_r:
            continue
        used_e.add(i), used_r.add(j)
        matched.append((exact[i], reduced[j]))
    return matched, len(exact) - len(used_e), len(reduced) - len(used_r)


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vigil", default=str(ROOT / "build" / "vigil"))
    ap.add_argument("--shared", default=os.environ.get("VIGIL_SHARED_DIR", str(ROOT.parent / "shared")))
    ap.add_argument("--runs", type=int, default=10, help="warm runs per image and path")
    ap.add_argument("--threads", type=int, default=1, help="vigil detect --threads")
    args = ap.parse_args()
    shared = pathlib.Path(args.shared)
    model = shared / "models" / "yolov8n.onnx"
    rows = ["| long side | images (px) | DCT scale | matched | score delta mean / max | "
            "box corner delta px mean / max | lost / gained | decode+letterbox ms exact -> reduced | "
            "total ms exact -> reduced |",
            "|---|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="vigil-jpeg-scale-") as tmp:
        for long_side in LONG_SIDES:
            sizes, score_d, corner_d, lost, gained = [], [], [], 0, 0
            pre = {False: [], True: []}
            total = {False: [], True: []}
            for name in IMAGES:
                path = pathlib.Path(tmp) / f"{name}_{long_side}.jpg"
                w, h = make_jpeg(shared / "images" / f"{name}.jpg", long_side, path)
                sizes.append(f"{w}x{h}")
                dets = {}
                for reduced in (False, True):
                    dets[reduced], timings = detect(args.vigil, model, path, args.runs, args.threads, reduced)
                    pre[reduced].append(statistics.median(t["decode"] + t["letterbox"] for t in timings))
                    total[reduced].append(statistics.median(t["total"] for t in timings))
                matched, n_lost, n_gained = match(dets[False], dets[True])
                lost, gained = lost + n_lost, gained + n_gained
                for e, r in matched:
                    score_d.append(abs(e["score"] - r["score"]))
                    corner_d.extend(abs(a - b) for a, b in zip(e["box"], r["box"]))
            denom = 1
            while denom < 8 and long_side * 2 >= 640 * 3 * denom * 2:  # image_jpeg_scale_denom for 640 input
                denom *= 2

            def ms(d):
                return " + ".join(f"{v:.1f}" for v in d)
            rows.append(
                f"| {long_side} | {', '.join(sizes)} | 1/{denom} | {len(score_d)} | "
                f"{statistics.mean(score_d):.4f} / {max(score_d):.4f} | "
                f"{statistics.mean(corner_d):.2f} / {max(corner_d):.2f} | {lost} / {gained} | "
                f"{ms(pre[False])} -> {ms(pre[True])} ({sum(pre[False]) / sum(pre[True]):.1f}x) | "
                f"{ms(total[False])} -> {ms(total[True])} ({sum(total[False]) / sum(total[True]):.2f}x) |")
    command = "/usr/bin/python3 bench/jpeg_reduced_scale.py " + " ".join(sys.argv[1:])
    text = "\n".join(rows) + (
        f"\n\nyolov8n (640x640), `vigil detect --threads {args.threads}`, medians of {args.runs} warm runs; "
        f"times are per image, {' + '.join(IMAGES)}.\n"
        f"{datetime.date.today().isoformat()}, {machine()}, load average at the end "
        f"{os.getloadavg()[0]:.2f}.\nCommand: `{command.strip()}`\n")
    print(text)
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "jpeg_reduced_scale.md").write_text(text)


if __name__ == "__main__":
    main()
