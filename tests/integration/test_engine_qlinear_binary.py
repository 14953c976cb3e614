"""QLinearAdd and QLinearMul (com.microsoft contrib operators) in vigil.

Some exporters and ONNX Runtime's own quantizer write these instead of
DequantizeLinear -> Add/Mul -> QuantizeLinear.  Built here with the onnx
package: both operators on uint8 and int8 tensors (the extreme codes among them), numpy
broadcasting ([2, 3, 4, 5] with [3, 1, 5]), saturating output ranges, and
the zero points once left out.  Checked in the same run:

1. vigil gives the same codes as the QDQ form of the same graph (its
   definition: each input dequantized, the float32 sum or product,
   quantized half to even and saturated);
2. ONNX Runtime's kernels (which fold the scales differently) are within
   one step everywhere (measured: equal); ONNX Runtime 1.20's type inference
   refuses these operators with an omitted zero point, so that case is
   checked against the QDQ form only;
3. a zero scale or a zero point of the wrong type is refused at load, the
   node named.
"""
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import run_vigil
from test_engine_parity import load_outputs, run_engine, run_ort

A_SHAPE, B_SHAPE = (2, 3, 4, 5), (3, 1, 5)


def params(dtype, with_zero_points, c_scale=0.043):
    """(A_scale, A_zp, B_scale, B_zp, C_scale, C_zp) initializers: the output
    scales are small enough that sums and products saturate."""
    signed = dtype == np.int8
    values = [("a_s", np.float32(0.021)), ("a_z", dtype(-7 if signed else 121)),
              ("b_s", np.float32(0.034)), ("b_z", dtype(11 if signed else 140)),
              ("c_s", np.float32(c_scale)), ("c_z", dtype(-3 if signed else 128))]
    return [numpy_helper.from_array(np.array(v), name) for name, v in values
            if with_zero_points or not name.endswith("_z") or name == "c_z"]


def write_model(path, dtype, form, with_zero_points=True, c_scale=0.043, b_zero_point=None):
    """form 'contrib': QLinearAdd and QLinearMul; 'qdq': the same as
    DequantizeLinear -> Add/Mul -> QuantizeLinear."""
    elem = TensorProto.UINT8 if dtype == np.uint8 else TensorProto.INT8
    inits = params(dtype, with_zero_points, c_scale)
    if b_zero_point is not None:
        inits = [t for t in inits if t.name != "b_z"] + [numpy_helper.from_array(b_zero_point, "b_z")]
    az, bz = ("a_z", "b_z") if with_zero_points else ("", "")
    nodes = []
    for op, onnx_op in (("QLinearAdd", "Add"), ("QLinearMul", "Mul")):
        out = op[7:].lower()
        if form == "contrib":
            nodes.append(helper.make_node(op, ["a", "a_s", az, "b", "b_s", bz, "c_s", "c_z"], [out], name=out,
                                          domain="com.microsoft"))
        else:
            nodes += [helper.make_node("DequantizeLinear", ["a", "a_s"] + ([az] if az else []), [out + "_a"]),
                      helper.make_node("DequantizeLinear", ["b", "b_s"] + ([bz] if bz else []), [out + "_b"]),
                      helper.make_node(onnx_op, [out + "_a", out + "_b"], [out + "_f"]),
                      helper.make_node("QuantizeLinear", [out + "_f", "c_s", "c_z"], [out])]
    graph = helper.make_graph(nodes, "qlinear_binary",
                              [helper.make_tensor_value_info("a", elem, A_SHAPE),
                               helper.make_tensor_value_info("b", elem, B_SHAPE)],
                              [helper.make_tensor_value_info("add", elem, A_SHAPE),
                               helper.make_tensor_value_info("mul", elem, A_SHAPE)], inits)
    opsets = [helper.make_opsetid("", 13)] + ([helper.make_opsetid("com.microsoft", 1)] if form == "contrib" else [])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return path


def inputs(tmp_path, dtype):
    """A holds 120 different codes of the type, B random ones; rows of the
    extreme codes meet so that sums and products saturate both ways."""
    info = np.iinfo(dtype)
    a = (np.arange(np.prod(A_SHAPE)) * 37 % 256 + info.min).astype(dtype).reshape(A_SHAPE)
    b = np.random.default_rng(1).integers(info.min, info.max + 1, B_SHAPE).astype(dtype)
    a[0, 0, 0], a[0, 1, 0], a[1, 2, 3] = info.max, info.max, info.min
    b[0, 0], b[1, 0], b[2, 0] = info.max, info.min, info.min
    paths = [tmp_path / "a.npy", tmp_path / "b.npy"]
    np.save(paths[0], a)
    np.save(paths[1], b)
    return paths


@pytest.mark.parametrize("with_zero_points", [True, False])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8], ids=["uint8", "int8"])
def test_qlinear_add_mul(tmp_path, dtype, with_zero_points):
    xs = inputs(tmp_path, dtype)
    contrib = write_model(tmp_path / "contrib.onnx", dtype, "contrib", with_zero_points)
    qdq = write_model(tmp_path / "qdq.onnx", dtype, "qdq", with_zero_points)
    run_engine(contrib, xs, tmp_path / "vigil")
    run_engine(qdq, xs, tmp_path / "vigil_qdq")
    got, qdq_got = (load_outputs(tmp_path / d, ["add", "mul"]) for d in ("vigil", "vigil_qdq"))
    for name in ("add", "mul"):
        g = got[name].astype(np.int32)
        assert got[name].dtype == dtype and g.shape == (2, 3, 4, 5)
        np.testing.assert_array_equal(got[name], qdq_got[name], err_msg=f"{name}: contrib vs QDQ form")
        info = np.iinfo(dtype)
        low = (g == info.min).any() or (dtype == np.uint8 and not with_zero_points)  # then nothing is negative
        assert low and (g == info.max).any(), f"{name}: the test should saturate both ways"
    if not with_zero_points:
        return
    run_ort(contrib, xs, tmp_path / "ort")
    want = load_outputs(tmp_path / "ort", ["add", "mul"])
    for name in ("add", "mul"):
        g, w = got[name].astype(np.int32), want[name].astype(np.int32)
        diff = np.abs(g - w)
        print(f"{name} {np.dtype(dtype).name}: {np.count_nonzero(diff)} of {diff.size} one step from ONNX Runtime")
        assert diff.max() <= 1, f"{name}: {np.count_nonzero(diff > 1)} values more than one step from ONNX Runtime"


def test_qlinear_malformed_refused(tmp_path):
    xs = inputs(tmp_path, np.uint8)
    zero_scale = write_model(tmp_path / "zero.onnx", np.uint8, "contrib", c_scale=0.0)
    res = run_vigil("infer", "--model", zero_scale, *xs, "--out", tmp_path / "out")
    assert res.returncode != 0 and "'add'" in res.stderr and "scale" in res.stderr, res.stderr
    wrong_zp = write_model(tmp_path / "zp.onnx", np.uint8, "contrib", b_zero_point=np.array(3, np.int8))
    res = run_vigil("infer", "--model", wrong_zp, *xs, "--out", tmp_path / "out")
    assert res.returncode != 0 and "'add'" in res.stderr and "zero point" in res.stderr, res.stderr
