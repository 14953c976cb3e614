"""fp16_model.py - float16 versions of float32 ONNX models, for the tests and
benchmarks (tests/integration/test_engine_fp16.py, bench/engine_bench.py):
every float32 initializer and Constant becomes float16 (except Resize's roi
and scales, which ONNX requires in float32), Casts to float become Casts to
float16, and the graph's float inputs and outputs become float16 - what a
float16 export looks like.  Written to a path the caller chooses (a temporary
directory: never the repository).
"""
import numpy as np
import onnx
from onnx import TensorProto, numpy_helper


def round_weights(src, dst, storage):
    """Writes src with its float32 weights rounded to float16; storage
    np.float16 stores them (and the graph's I/O) as float16, np.float32 keeps
    float32 tensors holding the rounded values."""
    m = onnx.load(src)
    g = m.graph
    keep = {name for n in g.node if n.op_type == "Resize" for name in n.input[1:3]}

    def rounded(t):
        return numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16).astype(storage), t.name)

    for t in g.initializer:
        if t.data_type == TensorProto.FLOAT and t.name not in keep:
            t.CopyFrom(rounded(t))
    for n in g.node:
        for a in n.attribute:
            if n.op_type == "Constant" and n.output[0] not in keep and a.name == "value" and \
                    a.t.data_type == TensorProto.FLOAT:
                a.t.CopyFrom(rounded(a.t))
            if storage == np.float16 and n.op_type == "Cast" and a.name == "to" and a.i == TensorProto.FLOAT:
                a.i = TensorProto.FLOAT16
    if storage == np.float16:
        for v in list(g.input) + list(g.output):
            if v.type.tensor_type.elem_type == TensorProto.FLOAT:
                v.type.tensor_type.elem_type = TensorProto.FLOAT16
        del g.value_info[:]
    onnx.save(m, dst)
