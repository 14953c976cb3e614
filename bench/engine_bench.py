#!/usr/bin/env python3
"""engine_bench.py - vigil's CPU engine against ONNX Runtime on the shared YOLO
models (run by `make bench`; not a test).

For yolov8n and yolov5n at 640x640, threads 1 and 2, batch 1 and 4:
  * ONNX Runtime (tools/ort_run.mjs --bench K, all graph optimisations, intra-op
    threads T) on the fixed model at batch 1 and on the `_dynbatch` model at
    batch 4 (ONNX Runtime refuses batch > 1 on the fixed files);
  * vigil (`vigil bench --model M --threads T --batch B --iterations K --json`,
    which prints {min_ms, median_ms, p90_ms, gflops}) on both the fixed and the
    `_dynbatch` file.
Both run on the same machine in the same invocation, one after the other.
Prints a markdown table of medians with the ratio vigil/ORT (< 1: vigil is
faster) and writes it to bench/results/engine.md.

A second table (batch 1, threads 1 and 2) times the int8 and float16
versions of each model, made in a temporary directory: `vigil models
quantize` calibrated on bus.jpg and zidane.jpg (QDQ int8; also with
--chain, 8-bit between the convolutions), and
scripts/fp16_model.py (float16 weights and I/O); vigil and ONNX Runtime run
the same files, beside vigil's float32 time.

--fp16-xnnpack times only the float16 files (batch 1, threads as given):
vigil's float32 model, the float16 file in the default mode (float32
arithmetic on this CPU unless it has float16 arithmetic) and in the float16
mode xnnpack (`vigil bench --float16 xnnpack`: XNNPACK's f16 operators),
and ONNX Runtime on the float16 file; written to bench/results/engine_fp16.md.

usage: bench/engine_bench.py [--vigil PATH] [--iterations K] [--models yolov8n,yolov5n]
                             [--threads 1,2] [--batches 1,4] [--out FILE] [--fp16-xnnpack]
"""
import argparse
import datetime
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
ORT_RUN = ROOT / "tools" / "ort_run.mjs"
sys.path.insert(0, str(ROOT / "scripts"))
from fp16_model import round_weights  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vigil", default=os.environ.get("VIGIL_BINARY", str(ROOT / "build" / "vigil")))
    p.add_argument("--shared", default=os.environ.get("VIGIL_SHARED_DIR", str(ROOT.parent / "shared")))
    p.add_argument("--iterations", type=int, default=10)
    p.add_argument("--models", default="yolov8n,yolov5n")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--batches", default="1,4")
    p.add_argument("--out", default=None, help="default bench/results/engine.md (engine_fp16.md with --fp16-xnnpack)")
    p.add_argument("--fp16-xnnpack", action="store_true",
                   help="only the float16 table: fp32, fp16 default and fp16 with --float16 xnnpack")
    args = p.parse_args()
    if args.out is None:
        args.out = str(ROOT / "bench" / "results" / ("engine_fp16.md" if args.fp16_xnnpack else "engine.md"))
    return args


def batch_input(shared, name, batch, directory):
    """The reference bus input, and for batch > 1 distinct variants of it stacked."""
    x = np.load(shared / "reference" / f"{name}__bus__input.npy")
    variants = [x, x[:, :, :, ::-1], x[:, :, ::-1, :], x[:, ::-1, :, :]]
    arr = np.ascontiguousarray(np.concatenate([variants[i % 4] for i in range(batch)]).astype(np.float32))
    path = directory / f"{name}_b{batch}.npy"
    np.save(path, arr)
    return path


def run_json(cmd, what):
    """Runs cmd, returns its JSON stdout (last line) or {"error": message}."""
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"error": f"{what}: {e}"}
    if res.returncode != 0:
        msg = (res.stderr.strip().splitlines() or ["(no message)"])[-1]
        return {"error": f"{what}: exit {res.returncode}: {msg}"}
    try:
        return json.loads(res.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": f"{what}: output is not JSON: {res.stdout[:200]!r}"}


def ort_bench(model, inp, threads, iterations):
    return run_json(["node", str(ORT_RUN), "--model", str(model), "--threads", str(threads), "--bench",
                     str(iterations), str(inp)], f"ort {model.name}")


def vigil_bench(vigil, model, threads, batch, iterations, flags=()):
    return run_json([vigil, "bench", "--model", str(model), "--threads", str(threads), "--batch", str(batch),
                     "--iterations", str(iterations), "--json", *flags], f"vigil {model.name} {' '.join(flags)}")


def fp16_xnnpack_rows(args, shared, name, threads_list, tmp, errors):
    """Rows of the float16-mode table for one model (batch 1)."""
    fp32, fp16 = shared / "models" / f"{name}.onnx", tmp / f"{name}_fp16.onnx"
    round_weights(fp32, fp16, np.float16)
    x16 = tmp / f"{name}_x16.npy"
    np.save(x16, np.load(shared / "reference" / f"{name}__bus__input.npy").astype(np.float16))
    rows = []
    for threads in threads_list:
        r = {"fp32": vigil_bench(args.vigil, fp32, threads, 1, args.iterations),
             "fp16": vigil_bench(args.vigil, fp16, threads, 1, args.iterations),
             "xnn": vigil_bench(args.vigil, fp16, threads, 1, args.iterations, ("--float16", "xnnpack")),
             "ort16": ort_bench(fp16, x16, threads, args.iterations)}
        errors.extend(v["error"] for v in r.values() if "error" in v)
        rows.append(f"| {name} | {threads} | {fmt_ms(r['fp32'])} | {fmt_ms(r['fp16'])} | "
                    f"{fmt_ratio(r['fp16'], r['fp32'])} | {r['fp16'].get('float16_xnnpack', '-')} | "
                    f"{fmt_ms(r['xnn'])} | {fmt_ratio(r['xnn'], r['fp32'])} | {fmt_ratio(r['xnn'], r['fp16'])} | "
                    f"{fmt_ms(r['ort16'])} |")
        print(rows[-1], flush=True)
    return rows


def fp16_xnnpack_main(args, shared, models, threads_list):
    rows, errors = [], []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for name in models:
            rows += fp16_xnnpack_rows(args, shared, name, threads_list, pathlib.Path(tmp), errors)
    return "\n".join([
        "# float16 files: vigil's float16 modes",
        "",
        f"Generated by `bench/engine_bench.py --fp16-xnnpack` on "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}; {cpu_name()}, {os.cpu_count()} "
        f"logical CPUs; {args.iterations} timed iterations per cell; load average {load_before:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end.  Batch 1, medians in ms.  fp16 default: the float16 file in the "
        "default mode (auto; the column after says whether that was xnnpack here); xnnpack: `--float16 "
        "xnnpack`, XNNPACK's f16 operators (emulated with F16C conversions on CPUs without float16 "
        "arithmetic).",
        "",
        "| model | threads | vigil fp32 | vigil fp16 default | default/fp32 | default is xnnpack | vigil fp16 xnnpack "
        "| xnnpack/fp32 | xnnpack/default | ORT fp16 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ] + rows) + "\n", errors


def conv_peak_model(directory):
    """A single 3x3 convolution, 80x80x128 -> 128 (padding 1): the shape DESIGN.md
    quotes for XNNPACK's peak, and nearly all of it is XNNPACK's own kernel."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((128, 128, 3, 3)).astype(np.float32) * 0.05, "w")
    b = numpy_helper.from_array(np.zeros(128, np.float32), "b")
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    graph = helper.make_graph([node], "conv_peak",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 128, 80, 80])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 128, 80, 80])], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = directory / "conv_peak.onnx"
    onnx.save(model, str(path))
    return path


def low_precision_rows(args, shared, name, threads_list, tmp, errors):
    """Rows of the int8 / float16 table for one model: vigil fp32, vigil and
    ORT on the int8 file, vigil and ORT on the float16 file (batch 1)."""
    fp32 = shared / "models" / f"{name}.onnx"
    int8, fp16 = tmp / f"{name}_int8.onnx", tmp / f"{name}_fp16.onnx"
    images = [str(shared / "images" / f"{i}.jpg") for i in ("bus", "zidane")]
    int8c = tmp / f"{name}_int8_chain.onnx"  # --chain: 8-bit between the convolutions too
    for path, flags in ((int8, []), (int8c, ["--chain"])):
        res = subprocess.run([args.vigil, "models", "quantize", str(fp32), str(path), *flags, "--calibrate", *images],
                             capture_output=True, text=True, timeout=1800)
        if res.returncode != 0:
            errors.append(f"vigil models quantize {name} {' '.join(flags)}: {res.stderr.strip()}")
            return []
    round_weights(fp32, fp16, np.float16)
    x = np.load(shared / "reference" / f"{name}__bus__input.npy")
    x32, x16 = tmp / f"{name}_lp32.npy", tmp / f"{name}_lp16.npy"
    np.save(x32, x)
    np.save(x16, x.astype(np.float16))
    rows = []
    for threads in threads_list:
        r = {"fp32": vigil_bench(args.vigil, fp32, threads, 1, args.iterations),
             "int8": vigil_bench(args.vigil, int8, threads, 1, args.iterations),
             "ort8": ort_bench(int8, x32, threads, args.iterations),
             "fp16": vigil_bench(args.vigil, fp16, threads, 1, args.iterations),
             "ort16": ort_bench(fp16, x16, threads, args.iterations),
             "int8c": vigil_bench(args.vigil, int8c, threads, 1, args.iterations),
             "ort8c": ort_bench(int8c, x32, threads, args.iterations)}
        errors.extend(v["error"] for v in r.values() if "error" in v)
        rows.append(f"| {name} | {threads} | {fmt_ms(r['fp32'])} | {fmt_ms(r['int8'])} | "
                    f"{fmt_ratio(r['int8'], r['fp32'])} | {fmt_ms(r['ort8'])} | {fmt_ratio(r['int8'], r['ort8'])} | "
                    f"{fmt_ms(r['fp16'])} | {fmt_ratio(r['fp16'], r['fp32'])} | {fmt_ms(r['ort16'])} | "
                    f"{fmt_ms(r['int8c'])} | {fmt_ratio(r['int8c'], r['fp32'])} | {fmt_ms(r['ort8c'])} | "
                    f"{fmt_ratio(r['int8c'], r['ort8c'])} |")
        print(rows[-1], flush=True)
    return rows


def fmt_ms(result):
    return f"{result['median_ms']:.1f}" if "median_ms" in result else "failed"


def fmt_ratio(vigil, ort):
    if "median_ms" in vigil and "median_ms" in ort and ort["median_ms"] > 0:
        return f"{vigil['median_ms'] / ort['median_ms']:.2f}"
    return "-"


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    args = parse_args()
    shared = pathlib.Path(args.shared)
    if not (shared / "models").is_dir():
        sys.exit(f"engine_bench: shared data not found at {shared} (set VIGIL_SHARED_DIR)")
    models = args.models.split(",")
    threads_list = [int(t) for t in args.threads.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    if args.fp16_xnnpack:
        text, errors = fp16_xnnpack_main(args, shared, models, threads_list)
        return write_report(args, text, errors)
    rows, errors = [], []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        conv = conv_peak_model(tmp)
        peak = {}
        for threads in threads_list:
            r = vigil_bench(args.vigil, conv, threads, 1, max(args.iterations, 20))
            peak[threads] = r.get("gflops")
            print(f"XNNPACK 3x3 conv peak, {threads} thread(s): {peak[threads]} GFLOP/s", flush=True)
        for name in models:
            fixed = shared / "models" / f"{name}.onnx"
            dyn = shared / "models" / f"{name}_dynbatch.onnx"
            for batch in batches:
                inp = batch_input(shared, name, batch, tmp)
                for threads in threads_list:
                    ort = ort_bench(fixed if batch == 1 else dyn, inp, threads, args.iterations)
                    v_fixed = vigil_bench(args.vigil, fixed, threads, batch, args.iterations)
                    v_dyn = vigil_bench(args.vigil, dyn, threads, batch, args.iterations)
                    for r in (ort, v_fixed, v_dyn):
                        if "error" in r:
                            errors.append(r["error"])
                    gflops = v_fixed.get("gflops", v_dyn.get("gflops"))
                    share = f"{100 * gflops / peak[threads]:.0f}%" if gflops and peak.get(threads) else "-"
                    rows.append(f"| {name} | {batch} | {threads} | {fmt_ms(ort)} "
                                f"({'fixed' if batch == 1 else 'dynbatch'}) | {fmt_ms(v_fixed)} | {fmt_ms(v_dyn)} | "
                                f"{fmt_ratio(v_fixed, ort)} | {fmt_ratio(v_dyn, ort)} | "
                                f"{gflops if gflops is not None else '-'} | {share} |")
                    print(rows[-1], flush=True)
        low_rows = []
        for name in models:
            low_rows += low_precision_rows(args, shared, name, threads_list, tmp, errors)
    header = [
        "# Engine benchmark: vigil vs ONNX Runtime",
        "",
        f"Generated by `bench/engine_bench.py` on {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}; "
        f"{cpu_name()}, {os.cpu_count()} logical CPUs; {args.iterations} timed iterations per cell (after warm-up); "
        "ONNX Runtime 1.20.1 (onnxruntime-node) with all graph optimisations. Medians in milliseconds per batch; "
        "ratio = vigil / ORT (below 1: vigil faster). Timings on a shared machine are noisy: "
        f"load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end.",
        "",
        "| model | batch | threads | ORT median ms (file) | vigil median ms (fixed) | vigil median ms (dynbatch) "
        "| ratio fixed | ratio dynbatch | vigil GFLOP/s | of conv peak |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    header.insert(-2, "XNNPACK convolution peak on this machine (one 3x3 conv, 80x80x128 -> 128, through "
                      "`vigil bench`): " + ", ".join(f"{t} thread(s) {peak.get(t)} GFLOP/s" for t in threads_list)
                  + ".\n")
    low_header = [
        "",
        "## int8 (QDQ, `vigil models quantize`) and float16 files, batch 1",
        "",
        "Medians in ms; int8/fp32 and fp16/fp32 are vigil's own ratios, int8/ORT compares vigil and ONNX Runtime "
        "on the same int8 file; chain: the file of `vigil models quantize --chain` (8-bit between the "
        "convolutions too).",
        "",
        "| model | threads | vigil fp32 | vigil int8 | int8/fp32 | ORT int8 | int8/ORT | vigil fp16 | fp16/fp32 "
        "| ORT fp16 | vigil chain | chain/fp32 | ORT chain | chain/ORT |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    text = "\n".join(header + rows + low_header + low_rows) + "\n"
    return write_report(args, text, errors)


def write_report(args, text, errors):
    if errors:
        text += "\nFailures:\n\n" + "\n".join(f"- {e}" for e in errors) + "\n"
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print()
    print(text)
    print(f"written to {out}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
