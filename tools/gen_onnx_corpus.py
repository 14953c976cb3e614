#!/usr/bin/env python3
"""gen_onnx_corpus.py - writes the seed corpus of the ONNX loader's fuzz target
(tests/fuzz/corpus/onnx/): a few tiny valid models made with python3-onnx that
exercise every field the loader reads, two standalone TensorProto files, and
seeded truncated and bit-flipped variants.  Deterministic; keeps the whole
corpus well under 200 KB.

usage: tools/gen_onnx_corpus.py [OUT_DIR]   (default tests/fuzz/corpus/onnx)
"""
import os
import random
import sys

import numpy as np
from onnx import TensorProto, helper, numpy_helper


def conv_relu():
    w = numpy_helper.from_array(np.arange(2 * 3 * 3 * 3, dtype=np.float32).reshape(2, 3, 3, 3) / 50, "w")
    b = numpy_helper.from_array(np.array([0.1, -0.2], dtype=np.float32), "b")
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                         strides=[1, 1]),
        helper.make_node("Relu", ["c"], ["y"], name="relu"),
    ]
    g = helper.make_graph(nodes, "conv_relu", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 4, 4])], [w, b])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="gen_onnx_corpus")
    helper.set_model_props(m, {"stride": "32", "task": "detect", "names": "{0: 'person'}"})
    return m


def typed_fields():
    """Initializers in every typed field (float_data, int32_data, int64_data,
    double_data, uint64_data) and a Constant with a tensor attribute."""
    inits = [
        helper.make_tensor("f", TensorProto.FLOAT, [2], [1.5, -2.0]),
        helper.make_tensor("i8", TensorProto.INT8, [3], [-1, 0, 127]),
        helper.make_tensor("i64", TensorProto.INT64, [2], [-5, 1 << 40]),
        helper.make_tensor("d", TensorProto.DOUBLE, [1], [0.25]),
        helper.make_tensor("u64", TensorProto.UINT64, [1], [7]),
        helper.make_tensor("h", TensorProto.FLOAT16, [1], [np.float16(1.0).view(np.uint16)]),
        helper.make_tensor("s", TensorProto.STRING, [1], [b"abc"]),
    ]
    nodes = [
        helper.make_node("Constant", [], ["k"], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [3.0])),
        helper.make_node("Add", ["x", "k"], ["a"]),
        helper.make_node("Reshape", ["a", "i64"], ["r"], allowzero=0),
        helper.make_node("Split", ["r"], ["y", "z"], axis=0, name="split"),
        helper.make_node("Custom", ["y"], ["q"], domain="com.example", names=["a", "b"], scales=[0.5, 2.0],
                         label="x"),
    ]
    g = helper.make_graph(nodes, "typed", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                          [helper.make_tensor_value_info("q", TensorProto.FLOAT, None),
                           helper.make_tensor_value_info("z", TensorProto.FLOAT, [1])], inits,
                          value_info=[helper.make_tensor_value_info("a", TensorProto.FLOAT, [2])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])


def subgraph():
    """An If node whose branches are GRAPH attributes (kept as type only)."""
    then_g = helper.make_graph([helper.make_node("Identity", ["x"], ["t"])], "then", [],
                               [helper.make_tensor_value_info("t", TensorProto.FLOAT, [1])])
    else_g = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [],
                               [helper.make_tensor_value_info("e", TensorProto.FLOAT, [1])])
    node = helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)
    g = helper.make_graph([node], "if", [helper.make_tensor_value_info("c", TensorProto.BOOL, []),
                                         helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 16)])


def quantized():
    """The quantization operators: a QDQ convolution with per-channel int8
    weights, the dynamic path (DynamicQuantizeLinear -> ConvInteger and
    MatMulInteger) and the QLinear operators, so that the fuzz target's
    compile step (which folds the constant ones) reaches their checks and
    kernels."""
    w = numpy_helper.from_array(np.array([[[[-3, 7]], [[5, -128]]], [[[127, 0]], [[1, -1]]]], dtype=np.int8), "w")
    inits = [
        w,
        numpy_helper.from_array(np.array([0.02, 0.05], dtype=np.float32), "w_scale"),
        numpy_helper.from_array(np.array([0, 0], dtype=np.int8), "w_zp"),
        numpy_helper.from_array(np.array(0.1, dtype=np.float32), "s"),
        numpy_helper.from_array(np.array(128, dtype=np.uint8), "z"),
        numpy_helper.from_array(np.array([[1, 2], [3, 4], [250, 0]], dtype=np.uint8), "b"),
        numpy_helper.from_array(np.array([7, -9], dtype=np.int32), "bias"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q"),
        helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="dq"),
        helper.make_node("DequantizeLinear", ["w", "w_scale", "w_zp"], ["wd"], name="dqw", axis=0),
        helper.make_node("Conv", ["xd", "wd"], ["c"], name="conv"),
        helper.make_node("DynamicQuantizeLinear", ["c"], ["cq", "cs", "cz"], name="dyn"),
        helper.make_node("ConvInteger", ["cq", "w", "cz", "w_zp"], ["ci"], name="convint"),
        helper.make_node("QLinearConv", ["xq", "s", "z", "w", "w_scale", "w_zp", "s", "z", "bias"], ["qc"],
                         name="qconv", pads=[0, 0, 0, 1]),
        helper.make_node("MatMulInteger", ["b", "xq2", "z", "z"], ["mi"], name="mmint"),
        helper.make_node("QLinearMatMul", ["b", "s", "z", "xq2", "s", "z", "s", "z"], ["qm"], name="qmm"),
        helper.make_node("Reshape", ["xq", "shape"], ["xq2"], name="r"),
    ]
    inits.append(numpy_helper.from_array(np.array([2, -1], dtype=np.int64), "shape"))
    nodes = nodes[:7] + [nodes[9]] + nodes[7:9]
    g = helper.make_graph(nodes, "quantized", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 4])],
                          [helper.make_tensor_value_info("ci", TensorProto.INT32, [1, 2, 3, 2]),
                           helper.make_tensor_value_info("qc", TensorProto.UINT8, [1, 2, 3, 4]),
                           helper.make_tensor_value_info("mi", TensorProto.INT32, [3, 12]),
                           helper.make_tensor_value_info("qm", TensorProto.UINT8, [3, 12])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def quantized_const():
    """Quantization operators on constants only: compile-time folding runs
    every kernel."""
    inits = [
        numpy_helper.from_array(np.array([[0.5, -1.5, 2.5], [300.0, -0.25, 1.0]], dtype=np.float32), "c"),
        numpy_helper.from_array(np.array([0.5, 0.25, 2.0], dtype=np.float32), "s3"),
        numpy_helper.from_array(np.array([1, -2, 3], dtype=np.int8), "z3"),
        numpy_helper.from_array(np.array([[1, -2], [3, 4], [-128, 127]], dtype=np.int8), "b"),
        numpy_helper.from_array(np.array(0.5, dtype=np.float32), "s"),
        numpy_helper.from_array(np.array(0, dtype=np.int8), "z"),
        numpy_helper.from_array(np.array([1, 1, 2, 3], dtype=np.int64), "shape4"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["c", "s3", "z3"], ["q"], axis=1, name="q"),
        helper.make_node("DequantizeLinear", ["q", "s3", "z3"], ["d"], axis=1, name="dq"),
        helper.make_node("DynamicQuantizeLinear", ["d"], ["dq8", "ds", "dz"], name="dyn"),
        helper.make_node("Cast", ["dq8"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["x", "f"], ["y"]),
        helper.make_node("MatMulInteger", ["q", "b", "z", "z"], ["mi"]),
        helper.make_node("QLinearMatMul", ["q", "s", "z", "b", "s", "z", "s", "z"], ["qm"]),
        helper.make_node("Reshape", ["q", "shape4"], ["q4"]),
        helper.make_node("Reshape", ["b", "shape4"], ["b4"]),
        helper.make_node("ConvInteger", ["q4", "b4"], ["ci"], pads=[0, 1, 0, 1]),
        helper.make_node("QLinearConv", ["q4", "s", "z", "b4", "s", "z", "s", "z"], ["qc"], pads=[0, 1, 0, 1]),
    ]
    g = helper.make_graph(nodes, "quantized_const", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3]),
                           helper.make_tensor_value_info("mi", TensorProto.INT32, [2, 2]),
                           helper.make_tensor_value_info("qm", TensorProto.INT8, [2, 2]),
                           helper.make_tensor_value_info("ci", TensorProto.INT32, [1, 1, 2, 3]),
                           helper.make_tensor_value_info("qc", TensorProto.INT8, [1, 1, 2, 3])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def mutate(data, rng, flips):
    b = bytearray(data)
    for _ in range(flips):
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "fuzz",
                                                              "corpus", "onnx")
    os.makedirs(out, exist_ok=True)
    rng = random.Random(1234)
    seeds = {"conv_relu.onnx": conv_relu().SerializeToString(),
             "typed_fields.onnx": typed_fields().SerializeToString(),
             "subgraph.onnx": subgraph().SerializeToString(),
             "tensor_raw.pb": numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), "t")
             .SerializeToString(),
             "tensor_int64.pb": helper.make_tensor("t", TensorProto.INT64, [3], [1, -2, 3]).SerializeToString(),
             # after the older seeds, so that their mutations stay the same
             "quantized.onnx": quantized().SerializeToString(),
             "quantized_const.onnx": quantized_const().SerializeToString()}
    files = dict(seeds)
    for name, data in seeds.items():
        stem = name.split(".")[0]
        for k in range(3):
            files[f"{stem}_trunc{k}.bin"] = data[:rng.randrange(1, len(data))]
            files[f"{stem}_flip{k}.bin"] = mutate(data, rng, 1 + k * 2)
    for name, data in files.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(files)} files, {sum(map(len, files.values()))} bytes to {out}")


if __name__ == "__main__":
    main()
