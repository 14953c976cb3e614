#!/usr/bin/env python3
"""sample_models.py MODELS_DIR [SHARED_MODELS_DIR] - the sample repository that `make run` serves.

Every example in README.md and docs/ runs against it:
- `affine`: y = 2x + 1, input `x` and output `y` FP32 [batch, 4] (a raw model for the KServe v2
  examples), written here with the `onnx` package (Debian's python3-onnx);
- the YOLO models of ../shared/models (yolov8n, yolov5n and their dynamic-batch twins), linked
  by reference into version folders, never copied.

It only adds what is missing, and leaves a marker file `.samples` (hidden: the repository skips
it) so that a later `make run` completes the set while the folder holds nothing but samples.
The tests build their own raw models with make_affine_onnx.
"""
import os
import pathlib
import sys


def make_affine_onnx(path, batch="batch", width=4, scale=2.0, offset=1.0):
    """Writes an ONNX model y = scale * x + offset, x and y float32 [batch, width]
    (batch symbolic when a string)."""
    import onnx
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, width])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, width])
    inits = [helper.make_tensor("scale", TensorProto.FLOAT, [1], [scale]),
             helper.make_tensor("offset", TensorProto.FLOAT, [1], [offset])]
    nodes = [helper.make_node("Mul", ["x", "scale"], ["t"]), helper.make_node("Add", ["t", "offset"], ["y"])]
    model = helper.make_model(helper.make_graph(nodes, "affine", [x], [y], inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def add_samples(models: pathlib.Path, shared: pathlib.Path) -> list:
    """Adds the missing samples to models; returns the names added."""
    added = []
    if not (models / "affine").exists():
        try:
            make_affine_onnx(models / "affine" / "1" / "model.onnx")
            added.append("affine")
        except ImportError:
            print("run: python3-onnx is missing (make deps): no 'affine' sample model", file=sys.stderr)
    for onnx_file in sorted(shared.glob("*.onnx")) if shared.is_dir() else []:
        name = onnx_file.stem
        if (models / name).exists():
            continue
        (models / name / "1").mkdir(parents=True)
        os.symlink(onnx_file.resolve(), models / name / "1" / "model.onnx")
        added.append(name)
    (models / ".samples").write_text("this repository was filled by scripts/sample_models.py\n")
    return added


def main() -> int:
    if len(sys.argv) not in (2, 3):
        print(__doc__.splitlines()[0], file=sys.stderr)
        return 2
    models = pathlib.Path(sys.argv[1])
    shared = pathlib.Path(sys.argv[2]) if len(sys.argv) == 3 else pathlib.Path(__file__).resolve().parents[2] / "shared" / "models"
    models.mkdir(parents=True, exist_ok=True)
    added = add_samples(models, shared)
    if added:
        print(f"run: sample models added to {models}: {', '.join(added)}"
              + (" (YOLO files linked from ../shared/models, not copied)" if shared.is_dir() else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
