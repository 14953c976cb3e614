"""vigil's CPU engine against ONNX Runtime (the reference runtime).

1. ~20 small random graphs (seeded; Conv, Relu, Sigmoid, Add, Mul, Sub, Div,
   MaxPool, Concat, Split, Slice, Resize, Transpose, Reshape, Softmax, MatMul,
   opsets 13 to 17) built with python3-onnx, run by ONNX Runtime through
   tools/ort_run.mjs and by `vigil infer`.
2. The shared YOLO models on the reference bus input against ONNX Runtime
   1.20.1's stored output.
3. Batch 4 (four different inputs stacked): the `_dynbatch` models in vigil
   against ONNX Runtime, and the fixed-batch models run at batch 4 by vigil
   against ONNX Runtime on the `_dynbatch` files.

Tolerance (DESIGN.md): |vigil - ort| <= 1e-4 * |ort| where |ort| >= 0.1, and
<= 1e-3 absolute where |ort| < 0.1.

The CLI contract used: `vigil infer --model M.onnx [--threads N] IN.npy...
--out DIR` writes DIR/<output name>.npy (names sanitized to [A-Za-z0-9_.-]).
A vigil failure fails the test (never skips), and so does a missing ONNX
Runtime install (tools/node: a broken checkout); only tests that need the
shared data skip when it is absent.
"""
import pathlib
import re
import subprocess

import numpy as np
import pytest
import onnx
from onnx import TensorProto, helper, numpy_helper

from conftest import ROOT, run_vigil, shared_path

ORT_RUN = ROOT / "tools" / "ort_run.mjs"


# ---------------------------------------------------------------------------
# running and comparing

def sanitize(name):
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "output"


def save_inputs(directory, arrays):
    paths = []
    for i, arr in enumerate(arrays):
        path = directory / f"in{i}.npy"
        np.save(path, arr)
        paths.append(path)
    return paths


def run_ort(model, inputs, out_dir, threads=1):
    res = subprocess.run(["node", str(ORT_RUN), "--model", str(model), "--threads", str(threads), "--out",
                          str(out_dir), *map(str, inputs)], capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        pytest.fail(f"ONNX Runtime failed on {model}: {res.stderr.strip()}")


def run_engine(model, inputs, out_dir, threads=1, portable=False):
    """vigil infer; portable=True adds --portable-kernels (XNNPACK and
    reference kernels only, the path of CPUs without AVX-512)."""
    flags = ["--portable-kernels"] if portable else []
    res = run_vigil("infer", "--model", model, "--threads", threads, *flags, *inputs, "--out", out_dir,
                    timeout=600)
    if res.returncode != 0:
        pytest.fail(f"vigil infer failed (exit {res.returncode}) on {model}: {res.stderr.strip()}")


def load_outputs(out_dir, names):
    arrays = {}
    for name in names:
        path = pathlib.Path(out_dir) / f"{sanitize(name)}.npy"
        assert path.exists(), f"no output file {path}"
        arrays[name] = np.load(path)
    return arrays


def assert_close(got, want, what):
    assert got.shape == want.shape, f"{what}: shape {got.shape} vs {want.shape}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} vs {want.dtype}"
    if not np.issubdtype(want.dtype, np.floating):
        np.testing.assert_array_equal(got, want, err_msg=what)
        return
    g, w = got.astype(np.float64), want.astype(np.float64)
    assert np.isfinite(g).all() == np.isfinite(w).all(), f"{what}: non-finite values differ"
    tol = np.where(np.abs(w) < 0.1, 1e-3, 1e-4 * np.abs(w))
    err = np.abs(g - w)
    bad = err > tol
    if bad.any():
        i = np.unravel_index(np.argmax(err - tol), err.shape)
        pytest.fail(f"{what}: {int(bad.sum())} of {bad.size} values out of tolerance; worst at {i}: "
                    f"vigil {g[i]!r} vs ort {w[i]!r} (max abs err {err.max():.3g})")


def compare_model(tmp_path, model_path, inputs, output_names):
    paths = save_inputs(tmp_path, inputs)
    run_ort(model_path, paths, tmp_path / "ort")
    run_engine(model_path, paths, tmp_path / "vigil")
    want = load_outputs(tmp_path / "ort", output_names)
    got = load_outputs(tmp_path / "vigil", output_names)
    for name in output_names:
        assert_close(got[name], want[name], f"{model_path.name}:{name}")


# ---------------------------------------------------------------------------
# random graphs

def f32(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def init(name, arr):
    return numpy_helper.from_array(arr, name)


def vi(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def conv_node(rng, x, c_in, c_out, prefix, inits, k=None, stride=None, group=1):
    k = k or int(rng.choice([1, 3, 5]))
    stride = stride or int(rng.choice([1, 2]))
    pad = k // 2
    inits.append(init(prefix + "_w", f32(rng, c_out, c_in // group, k, k, scale=1 / np.sqrt(k * k * c_in))))
    inits.append(init(prefix + "_b", f32(rng, c_out, scale=0.1)))
    return helper.make_node("Conv", [x, prefix + "_w", prefix + "_b"], [prefix], kernel_shape=[k, k],
                            strides=[stride, stride], pads=[pad] * 4, group=group)


def g_conv_relu(rng, opset):
    c, h = int(rng.integers(1, 8)), int(rng.integers(5, 20))
    inits = []
    nodes = [conv_node(rng, "x", c, int(rng.integers(1, 16)), "c1", inits), helper.make_node("Relu", ["c1"], ["y"])]
    return nodes, inits, [("x", f32(rng, 1, c, h, h))], ["y"]


def g_conv_silu_chain(rng, opset):
    c, h = 3, int(rng.integers(8, 24))
    inits, nodes, x = [], [], "x"
    for i in range(3):
        c_out = int(rng.integers(4, 12))
        nodes.append(conv_node(rng, x, c, c_out, f"c{i}", inits, k=3, stride=1 + (i == 1)))
        nodes.append(helper.make_node("Sigmoid", [f"c{i}"], [f"s{i}"]))
        nodes.append(helper.make_node("Mul", [f"c{i}", f"s{i}"], [f"m{i}"]))
        x, c = f"m{i}", c_out
    nodes.append(helper.make_node("Identity", [x], ["y"]))
    return nodes, inits, [("x", f32(rng, 1, 3, h, h))], ["y"]


def g_depthwise(rng, opset):
    c, h = int(rng.integers(2, 9)), int(rng.integers(6, 16))
    inits = []
    nodes = [conv_node(rng, "x", c, c, "dw", inits, k=3, group=c), helper.make_node("Relu", ["dw"], ["y"])]
    return nodes, inits, [("x", f32(rng, 1, c, h, h))], ["y"]


def g_broadcast_eltwise(rng, opset):
    n, c, h, w = 2, int(rng.integers(1, 6)), int(rng.integers(1, 7)), int(rng.integers(1, 9))
    op = str(rng.choice(["Add", "Mul", "Sub", "Div"]))
    b = f32(rng, 1, c, 1, w)
    if op == "Div":
        b = np.abs(b) + 0.5
    return ([helper.make_node(op, ["x", "b"], ["y"])], [init("b", b)], [("x", f32(rng, n, c, h, w))], ["y"])


def g_two_input_eltwise(rng, opset):
    shape = [int(rng.integers(1, 5)) for _ in range(int(rng.integers(1, 5)))]
    nodes = [helper.make_node("Add", ["a", "b"], ["s"]), helper.make_node("Mul", ["s", "a"], ["y"])]
    return nodes, [], [("a", f32(rng, *shape)), ("b", f32(rng, *shape[1:]))], ["y"]


def g_maxpool(rng, opset):
    c, h = int(rng.integers(1, 6)), int(rng.integers(6, 20))
    k = int(rng.choice([2, 3, 5]))
    stride = int(rng.choice([1, 2]))
    pads = [k // 2] * 4 if stride == 1 else [0] * 4
    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[k, k], strides=[stride, stride], pads=pads)
    return [node], [], [("x", f32(rng, 1, c, h, h))], ["y"]


def g_sppf(rng, opset):
    """YOLOv8's SPPF block: three chained 5x5 max pools concatenated."""
    c, h = int(rng.integers(2, 8)), int(rng.integers(5, 14))
    nodes = [helper.make_node("MaxPool", [a], [b], kernel_shape=[5, 5], strides=[1, 1], pads=[2, 2, 2, 2])
             for a, b in (("x", "p1"), ("p1", "p2"), ("p2", "p3"))]
    nodes.append(helper.make_node("Concat", ["x", "p1", "p2", "p3"], ["y"], axis=1))
    return nodes, [], [("x", f32(rng, 1, c, h, h))], ["y"]


def g_split_concat(rng, opset):
    """YOLOv8's C2f pattern: Split on channels, work on one half, Concat."""
    c, h = 2 * int(rng.integers(1, 5)), int(rng.integers(4, 12))
    inits = [init("split", np.array([c // 2, c // 2], dtype=np.int64))]
    nodes = [helper.make_node("Split", ["x", "split"], ["a", "b"], axis=1),
             conv_node(rng, "b", c // 2, c // 2, "cb", inits, k=3, stride=1),
             helper.make_node("Concat", ["a", "b", "cb"], ["y"], axis=1)]
    return nodes, inits, [("x", f32(rng, 1, c, h, h))], ["y"]


def g_resize_nearest(rng, opset):
    c, h = int(rng.integers(1, 6)), int(rng.integers(2, 10))
    inits = [init("scales", np.array([1, 1, 2, 2], dtype=np.float32))]
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest")
    return [node], inits, [("x", f32(rng, 1, c, h, h + 1))], ["y"]


def g_transpose(rng, opset):
    shape = [int(rng.integers(1, 6)) for _ in range(4)]
    perm = [int(p) for p in rng.permutation(4)]
    return [helper.make_node("Transpose", ["x"], ["y"], perm=perm)], [], [("x", f32(rng, *shape))], ["y"]


def g_reshape_softmax(rng, opset):
    """YOLOv8's DFL head: Reshape to (1, 4, 16, A), Transpose, Softmax."""
    a = int(rng.integers(3, 40))
    inits = [init("shape", np.array([1, 4, 16, a], dtype=np.int64))]
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["r"]),
             helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1, 3]),
             helper.make_node("Softmax", ["t"], ["y"], axis=1)]
    return nodes, inits, [("x", f32(rng, 1, 64, a, scale=3.0))], ["y"]


def g_softmax_last(rng, opset):
    shape = [int(rng.integers(1, 5)), int(rng.integers(2, 30))]
    return [helper.make_node("Softmax", ["x"], ["y"], axis=-1)], [], [("x", f32(rng, *shape, scale=4))], ["y"]


def g_matmul(rng, opset):
    b, m, k, n = int(rng.integers(1, 4)), int(rng.integers(1, 20)), int(rng.integers(1, 40)), int(rng.integers(1, 20))
    inits = [init("w", f32(rng, k, n, scale=1 / np.sqrt(k)))]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Sigmoid", ["m"], ["y"])]
    return nodes, inits, [("x", f32(rng, b, m, k))], ["y"]


def g_slice(rng, opset):
    c, h = int(rng.integers(2, 6)), int(rng.integers(6, 16))
    inits = [init("starts", np.array([1, 0], dtype=np.int64)), init("ends", np.array([h, h - 1], dtype=np.int64)),
             init("axes", np.array([2, 3], dtype=np.int64)), init("steps", np.array([2, 1], dtype=np.int64))]
    node = helper.make_node("Slice", ["x", "starts", "ends", "axes", "steps"], ["y"])
    return [node], inits, [("x", f32(rng, 1, c, h, h))], ["y"]


def g_two_outputs(rng, opset):
    """A graph with two outputs, one of them with a name that needs sanitizing."""
    c, h = int(rng.integers(1, 5)), int(rng.integers(4, 10))
    nodes = [helper.make_node("Sigmoid", ["x"], ["out/sig:0"]), helper.make_node("Relu", ["x"], ["relu"])]
    return nodes, [], [("x", f32(rng, 1, c, h, h))], ["out/sig:0", "relu"]


BUILDERS = [g_conv_relu, g_conv_silu_chain, g_depthwise, g_broadcast_eltwise, g_two_input_eltwise, g_maxpool,
            g_sppf, g_split_concat, g_resize_nearest, g_transpose, g_reshape_softmax, g_softmax_last, g_matmul,
            g_slice, g_two_outputs]
CASES = [(i, BUILDERS[i % len(BUILDERS)], 13 + i % 5) for i in range(20)]


def build_case(seed, builder, opset):
    rng = np.random.default_rng(1000 + seed)
    nodes, inits, inputs, outputs = builder(rng, opset)
    graph = helper.make_graph(nodes, f"{builder.__name__}_{seed}", [vi(n, list(a.shape)) for n, a in inputs],
                              [vi(n, None) for n in outputs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="parity")
    model.ir_version = 8
    # declare output shapes as exporters do (ONNX's own shape inference); the
    # graph above leaves them open, which also checks that the builders are valid
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    return model, [a for _, a in inputs], outputs


@pytest.mark.parametrize("seed,builder,opset", CASES, ids=[f"{b.__name__}-{s}-op{o}" for s, b, o in CASES])
def test_random_graph(tmp_path, seed, builder, opset):
    model, inputs, outputs = build_case(seed, builder, opset)
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    compare_model(tmp_path, path, inputs, outputs)


# ---------------------------------------------------------------------------
# the shared YOLO models

@pytest.mark.parametrize("name", ["yolov8n", "yolov5n"])
def test_shared_model_on_reference_input(tmp_path, name):
    model = shared_path(f"models/{name}.onnx")
    inp = shared_path(f"reference/{name}__bus__input.npy")
    want = np.load(shared_path(f"reference/{name}__bus__output0.npy"))
    run_engine(model, [inp], tmp_path / "vigil", threads=2)
    got = load_outputs(tmp_path / "vigil", ["output0"])["output0"]
    assert_close(got, want, f"{name} on bus.jpg")


def batch_of_four(name):
    """Four different inputs: the reference bus input, mirrored, flipped, and with channels swapped."""
    x = np.load(shared_path(f"reference/{name}__bus__input.npy"))
    batch = np.concatenate([x, x[:, :, :, ::-1], x[:, :, ::-1, :], x[:, ::-1, :, :]]).astype(np.float32)
    return np.ascontiguousarray(batch)


@pytest.fixture(scope="module")
def ort_batch4(tmp_path_factory):
    """ONNX Runtime's output for batch_of_four on each _dynbatch model, computed once."""
    cache = {}

    def get(name):
        if name not in cache:
            d = tmp_path_factory.mktemp(f"ort_{name}")
            paths = save_inputs(d, [batch_of_four(name)])
            run_ort(shared_path(f"models/{name}_dynbatch.onnx"), paths, d / "out", threads=2)
            cache[name] = (paths, load_outputs(d / "out", ["output0"])["output0"])
        return cache[name]
    return get


@pytest.mark.parametrize("variant", ["_dynbatch", ""])
@pytest.mark.parametrize("name", ["yolov8n", "yolov5n"])
def test_batch4_against_ort_dynbatch(tmp_path, ort_batch4, name, variant):
    model = shared_path(f"models/{name}{variant}.onnx")
    paths, want = ort_batch4(name)
    assert want.shape[0] == 4
    run_engine(model, paths, tmp_path / "vigil", threads=2)
    got = load_outputs(tmp_path / "vigil", ["output0"])["output0"]
    assert_close(got, want, f"{model.name} at batch 4")


def test_ort_reproduces_reference(tmp_path):
    """The reference tooling itself: ort_run.mjs on the bus input gives the stored output exactly."""
    model = shared_path("models/yolov8n.onnx")
    inp = shared_path("reference/yolov8n__bus__input.npy")
    want = np.load(shared_path("reference/yolov8n__bus__output0.npy"))
    run_ort(model, [inp], tmp_path)
    np.testing.assert_array_equal(np.load(tmp_path / "output0.npy"), want)
