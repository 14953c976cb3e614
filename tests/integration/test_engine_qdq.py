"""QDQ convolutions (what ONNX Runtime's static quantizer writes) in vigil.

A small QDQ network is built here: QuantizeLinear/DequantizeLinear around
four convolutions (3x3, depthwise 3x3 stride 2, 1x1, 3x3 stride 2 with 20
outputs: odd widths and channel counts for the VNNI kernel's tails) with per-channel int8
weights (or asymmetric uint8 ones, which take the reference kernels on NHWC
tensors), int32 biases at scale x_scale * w_scale, Relu between Conv and
QuantizeLinear on the first two, and uint8 or int8 activations.  vigil's
QDQ pass turns each DequantizeLinear -> Conv -> QuantizeLinear into one
QLinearConv on XNNPACK's int8 convolution, the tensors between them staying
quantized.  Checked in the same run:

1. against ONNX Runtime (which fuses the same pattern): every output within
   one quantization step of the output scale;
2. against vigil's own reference path, the same graph with an Identity
   between each Conv and its QuantizeLinear so that the pass does not apply
   (float convolution, then the reference QuantizeLinear): within one step.
"""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from test_engine_parity import load_outputs, run_engine, run_ort

Y_SCALE = 0.05


def qdq_model(path, act_type, break_fusion, uint8_weights=False, shape=(1, 8, 20, 20)):
    rng = np.random.default_rng(0)
    adt = np.uint8 if act_type == TensorProto.UINT8 else np.int8
    mid = 128 if adt == np.uint8 else 0  # zero point of the signed input and output

    def q_params(name, scale, zp):
        return [numpy_helper.from_array(np.array(scale, np.float32), name + "_s"),
                numpy_helper.from_array(np.array(zp, adt), name + "_z")]

    inits = q_params("x", 0.02, mid)
    nodes = [helper.make_node("QuantizeLinear", ["x", "x_s", "x_z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "x_s", "x_z"], ["xd"])]
    prev, c, prev_s = "xd", shape[1], 0.02
    for i, (m, k, s, g) in enumerate([(16, 3, 1, 1), (16, 3, 2, 16), (24, 1, 1, 1), (20, 3, 2, 1)]):
        w = rng.standard_normal((m, c // g, k, k)).astype(np.float32) * 0.3
        ws = (np.abs(w).reshape(m, -1).max(1) / 127).astype(np.float32)
        wq = np.clip(np.rint(w / ws[:, None, None, None]), -127, 127).astype(np.int8)
        bs = (np.float32(prev_s) * ws).astype(np.float32)
        bq = np.rint(rng.standard_normal(m).astype(np.float32) * 0.1 / bs).astype(np.int32)
        wz = np.zeros(m, np.int8)
        if uint8_weights:  # asymmetric: XNNPACK's int8 convolution cannot take them, the reference path runs NHWC
            wq, wz = (wq.astype(np.int32) + 128).astype(np.uint8), np.full(m, 128, np.uint8)
        inits += [numpy_helper.from_array(wq, f"w{i}"), numpy_helper.from_array(ws, f"w{i}_s"),
                  numpy_helper.from_array(wz, f"w{i}_z"), numpy_helper.from_array(bq, f"b{i}"),
                  numpy_helper.from_array(bs, f"b{i}_s"), numpy_helper.from_array(np.zeros(m, np.int32), f"b{i}_z")]
        nodes += [helper.make_node("DequantizeLinear", [f"w{i}", f"w{i}_s", f"w{i}_z"], [f"w{i}d"], axis=0),
                  helper.make_node("DequantizeLinear", [f"b{i}", f"b{i}_s", f"b{i}_z"], [f"b{i}d"], axis=0),
                  helper.make_node("Conv", [prev, f"w{i}d", f"b{i}d"], [f"c{i}"], kernel_shape=[k, k],
                                   strides=[s, s], pads=[k // 2] * 4, group=g)]
        out = f"c{i}"
        if i < 2:
            nodes.append(helper.make_node("Relu", [out], [f"r{i}"]))
            out = f"r{i}"
        if break_fusion:
            nodes.append(helper.make_node("Identity", [out], [f"i{i}"]))
            out = f"i{i}"
        inits += q_params(f"y{i}", Y_SCALE, 0 if i < 2 else mid)
        nodes += [helper.make_node("QuantizeLinear", [out, f"y{i}_s", f"y{i}_z"], [f"q{i}"]),
                  helper.make_node("DequantizeLinear", [f"q{i}", f"y{i}_s", f"y{i}_z"], [f"d{i}"])]
        prev, c, prev_s = f"d{i}", m, Y_SCALE
    nodes.append(helper.make_node("Identity", [prev], ["y"]))
    out_hw = [((d - 1) // 2 + 1 - 1) // 2 + 1 for d in shape[2:]]  # after the two 3x3 stride-2 convolutions
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 20, *out_hw])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, path)


@pytest.mark.parametrize("act_type,uint8_weights,shape", [(TensorProto.UINT8, False, (1, 8, 20, 20)),
                                                          (TensorProto.INT8, False, (1, 8, 20, 20)),
                                                          (TensorProto.UINT8, True, (1, 8, 20, 20)),
                                                          (TensorProto.UINT8, False, (1, 3, 72, 61))],
                         ids=["uint8", "int8", "uint8-weights", "uint8-image"])
@pytest.mark.parametrize("portable", [False, True], ids=["native", "portable"])
def test_qdq_convolutions_match_onnx_runtime_and_reference(tmp_path, act_type, uint8_weights, shape, portable):
    """portable: --portable-kernels, XNNPACK's int8 convolution where the
    default takes the AVX-512 VNNI kernel on a CPU that has it.  uint8-image:
    a 3-channel input of 72 x 61 pixels, whose quantized copy takes the
    3-row layout conversion (ops/layout.c) over two column blocks and a tail."""
    fused, plain = tmp_path / "qdq.onnx", tmp_path / "qdq_reference.onnx"
    qdq_model(fused, act_type, False, uint8_weights, shape)
    qdq_model(plain, act_type, True, uint8_weights, shape)
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(1).standard_normal(shape).astype(np.float32) * 2)
    run_engine(fused, [x], tmp_path / "vigil", portable=portable)
    run_engine(plain, [x], tmp_path / "vigil_reference")
    run_ort(fused, [x], tmp_path / "ort")
    got = load_outputs(tmp_path / "vigil", ["y"])["y"]
    for other in ("ort", "vigil_reference"):
        want = load_outputs(tmp_path / other, ["y"])["y"]
        steps = np.abs(got.astype(np.float64) - want) / Y_SCALE
        print(f"vigil vs {other}: {int((steps > 0.01).sum())} of {steps.size} outputs differ, "
              f"at most {steps.max():.2f} steps")
        assert steps.max() <= 1.0 + 1e-3, f"vigil differs from {other} by {steps.max():.2f} quantization steps"
