"""The gRPC front end against the real daemon with Debian's grpcio: every
KServe v2 RPC (success and failure), wire compatibility from hand-encoded
protobuf bytes, ModelInfer bit-for-bit equal to REST, Detect/StreamDetect
(and the HailoInference alias) on the real YOLOv8n, a 300-frame stream with
a slow reader (ordered, complete, memory bounded, one corrupt frame), health
checking and a graceful shutdown that drains a stream.

Python stubs are generated from proto/*.proto in a tmp dir at test time with
Debian's protoc and grpc_python_plugin."""
import json
import os
import pathlib
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib

import grpc
import numpy as np
import pytest
import requests

from conftest import ROOT, add_model, free_port, metric_value, ready_daemon, shared_path, vigil_binary

# ---------------------------------------------------------------- helpers


def generate_stubs(out_dir):
    """protoc --python_out --grpc_out for the project's protos into out_dir;
    returns the imported modules (inference, health, detection) with stubs."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    protos = sorted(str(p) for p in (ROOT / "proto").glob("*.proto"))
    protoc = "/usr/bin/protoc" if os.path.exists("/usr/bin/protoc") else "protoc"  # Debian's protobuf-compiler
    subprocess.run([protoc, f"--python_out={out_dir}", f"--grpc_out={out_dir}",
                    "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin", "-I", str(ROOT / "proto"), *protos],
                   check=True)
    sys.path.insert(0, str(out_dir))
    import importlib
    mods = {name: importlib.import_module(name) for name in
            ("inference_pb2", "inference_pb2_grpc", "health_pb2", "health_pb2_grpc", "detection_pb2",
             "detection_pb2_grpc")}
    return mods


def png_bytes(h, w, seed=0):
    """A random RGB PNG (stored with zlib level 1) of h x w pixels."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b""))


def make_tiny_detector(path, size=64, classes=2):
    """A YOLOv8-shaped detection model (input [1,3,size,size], output
    [1,4+classes,A] channels first) small enough for hundreds of frames:
    Conv stride 8 -> Sigmoid -> scaled to pixels and scores."""
    import onnx
    from onnx import TensorProto, helper
    rng = np.random.default_rng(7)
    ch = 4 + classes
    cells = (size // 8) ** 2
    weight = rng.normal(0, 0.05, size=(ch, 3, 8, 8)).astype(np.float32)
    scale = np.array([size] * 4 + [1.0] * classes, dtype=np.float32).reshape(1, ch, 1)
    inits = [helper.make_tensor("w", TensorProto.FLOAT, weight.shape, weight.flatten().tolist()),
             helper.make_tensor("shape", TensorProto.INT64, [3], [1, ch, cells]),
             helper.make_tensor("scale", TensorProto.FLOAT, scale.shape, scale.flatten().tolist())]
    nodes = [helper.make_node("Conv", ["images", "w"], ["c"], kernel_shape=[8, 8], strides=[8, 8]),
             helper.make_node("Reshape", ["c", "shape"], ["r"]),
             helper.make_node("Sigmoid", ["r"], ["s"]),
             helper.make_node("Mul", ["s", "scale"], ["output0"])]
    graph = helper.make_graph(nodes, "tinydet",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
                              [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, ch, cells])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    names = "{" + ", ".join(f"{i}: 'thing{i}'" for i in range(classes)) + "}"
    for k, v in {"task": "detect", "names": names, "imgsz": f"[{size}, {size}]", "stride": "8"}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def connect(port):
    """A channel to vigil's gRPC port, once it accepts connections (the HTTP
    side reports ready a moment before the gRPC listener is up)."""
    ch = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_receive_message_length", 64 << 20)])
    grpc.channel_ready_future(ch).result(timeout=15)
    return ch


def sanitized():
    """1 when the binary under test is built with AddressSanitizer, whose
    quarantine keeps freed memory resident (RSS bounds do not apply)."""
    return b"__asan_init" in pathlib.Path(vigil_binary()).read_bytes()


def rss_kb(pid):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    return generate_stubs(tmp_path_factory.mktemp("stubs"))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    models = tmp_path_factory.mktemp("models")
    add_model(models, "affine", scale=1.5, offset=0.25)      # symbolic batch -> max_batch_size 8
    add_model(models, "fixed", batch=1, width=3, scale=3.0, offset=-1.0)
    add_model(models, "cached", config="response_cache: true\n", scale=1.5, offset=0.25)
    make_tiny_detector(models / "tinydet" / "1" / "model.onnx")
    make_tiny_detector(models / "tinycached" / "1" / "model.onnx")
    (models / "tinycached" / "config.yaml").write_text("response_cache: true\n")
    d = ready_daemon("--models", models)
    d.models = models
    yield d
    assert d.stop() == 0, d.stderr[-4000:]  # a clean exit (and no sanitizer report)


@pytest.fixture(scope="module")
def channel(server):
    ch = connect(server.grpc_port)
    yield ch
    ch.close()


@pytest.fixture(scope="module")
def kserve(pb, channel):
    return pb["inference_pb2_grpc"].GRPCInferenceServiceStub(channel)


def infer_request(pb, model, x, raw=True, name="x", version=""):
    ipb = pb["inference_pb2"]
    req = ipb.ModelInferRequest(model_name=model, model_version=version, id="req-7")
    t = req.inputs.add(name=name, datatype="FP32", shape=list(x.shape))
    if raw:
        req.raw_input_contents.append(x.astype("<f4").tobytes())
    else:
        t.contents.fp32_contents.extend(x.flatten().tolist())
    return req


def rpc_error(fn, *args, **kw):
    with pytest.raises(grpc.RpcError) as info:
        fn(*args, **kw)
    return info.value.code(), info.value.details()


# ---------------------------------------------------------------- server-level RPCs


def test_live_ready_metadata_health(pb, kserve, channel):
    ipb = pb["inference_pb2"]
    assert kserve.ServerLive(ipb.ServerLiveRequest()).live is True
    assert kserve.ServerReady(ipb.ServerReadyRequest()).ready is True
    meta = kserve.ServerMetadata(ipb.ServerMetadataRequest())
    assert meta.name == "vigil" and "model_repository" in meta.extensions and meta.version
    health = pb["health_pb2_grpc"].HealthStub(channel)
    hpb = pb["health_pb2"]
    assert health.Check(hpb.HealthCheckRequest()).status == hpb.HealthCheckResponse.SERVING
    assert health.Check(hpb.HealthCheckRequest(service="inference.GRPCInferenceService")).status == \
        hpb.HealthCheckResponse.SERVING
    code, _ = rpc_error(health.Check, hpb.HealthCheckRequest(service="no.such.Service"))
    assert code == grpc.StatusCode.NOT_FOUND
    # A method vigil does not serve, and a request that is not protobuf.
    unknown = channel.unary_unary("/inference.GRPCInferenceService/NoSuchCall")
    assert rpc_error(unknown, b"")[0] == grpc.StatusCode.UNIMPLEMENTED
    garbage = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
    assert rpc_error(garbage, b"\xff\xff\xff\xff")[0] == grpc.StatusCode.INVALID_ARGUMENT


def test_model_ready_and_metadata(pb, kserve):
    ipb = pb["inference_pb2"]
    assert kserve.ModelReady(ipb.ModelReadyRequest(name="affine")).ready is True
    assert kserve.ModelReady(ipb.ModelReadyRequest(name="affine", version="1")).ready is True
    assert rpc_error(kserve.ModelReady, ipb.ModelReadyRequest(name="nope"))[0] == grpc.StatusCode.NOT_FOUND
    assert rpc_error(kserve.ModelReady, ipb.ModelReadyRequest(name="affine", version="7"))[0] == \
        grpc.StatusCode.NOT_FOUND
    assert rpc_error(kserve.ModelReady, ipb.ModelReadyRequest(name="affine", version="x"))[0] == \
        grpc.StatusCode.INVALID_ARGUMENT
    meta = kserve.ModelMetadata(ipb.ModelMetadataRequest(name="affine"))
    assert meta.name == "affine" and list(meta.versions) == ["1"] and meta.platform == "onnx"
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [("x", "FP32", [-1, 4])]
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.outputs] == [("y", "FP32", [-1, 4])]
    fixed = kserve.ModelMetadata(ipb.ModelMetadataRequest(name="fixed"))
    assert list(fixed.inputs[0].shape) == [1, 3]
    assert rpc_error(kserve.ModelMetadata, ipb.ModelMetadataRequest(name="nope"))[0] == grpc.StatusCode.NOT_FOUND
    assert rpc_error(kserve.ModelMetadata, ipb.ModelMetadataRequest(name=""))[0] == \
        grpc.StatusCode.INVALID_ARGUMENT


# ---------------------------------------------------------------- ModelInfer


def test_model_infer_raw_and_typed(pb, kserve):
    x = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
    r = kserve.ModelInfer(infer_request(pb, "affine", x, raw=True))
    assert r.model_name == "affine" and r.model_version == "1" and r.id == "req-7"
    assert [(o.name, o.datatype, list(o.shape)) for o in r.outputs] == [("y", "FP32", [3, 4])]
    assert len(r.raw_output_contents) == 1 and not r.outputs[0].HasField("contents")
    y = np.frombuffer(r.raw_output_contents[0], dtype="<f4").reshape(3, 4)
    np.testing.assert_allclose(y, x * np.float32(1.5) + np.float32(0.25), rtol=1e-6)
    typed = kserve.ModelInfer(infer_request(pb, "affine", x, raw=False))
    assert len(typed.raw_output_contents) == 0
    assert np.array_equal(np.array(typed.outputs[0].contents.fp32_contents, dtype=np.float32).reshape(3, 4), y)
    # Requested outputs, explicit version.
    req = infer_request(pb, "affine", x, version="1")
    req.outputs.add(name="y")
    assert kserve.ModelInfer(req).raw_output_contents[0] == r.raw_output_contents[0]


def test_model_infer_errors(pb, kserve):
    ipb = pb["inference_pb2"]
    x = np.ones((1, 4), dtype=np.float32)
    cases = [
        (infer_request(pb, "nope", x), grpc.StatusCode.NOT_FOUND, "nope"),
        (infer_request(pb, "affine", x, version="9"), grpc.StatusCode.NOT_FOUND, ""),
        (infer_request(pb, "affine", np.ones((1, 5), dtype=np.float32)), grpc.StatusCode.INVALID_ARGUMENT, "shape"),
        (infer_request(pb, "affine", np.ones((9, 4), dtype=np.float32)), grpc.StatusCode.INVALID_ARGUMENT, "batch"),
        (infer_request(pb, "affine", x, name="z"), grpc.StatusCode.INVALID_ARGUMENT, "no input 'z'"),
        (ipb.ModelInferRequest(model_name="affine"), grpc.StatusCode.INVALID_ARGUMENT, "missing input 'x'"),
    ]
    wrong_type = infer_request(pb, "affine", x)
    wrong_type.inputs[0].datatype = "INT32"
    cases.append((wrong_type, grpc.StatusCode.INVALID_ARGUMENT, "datatype"))
    short = infer_request(pb, "affine", x)
    short.raw_input_contents[0] = b"\0" * 12
    cases.append((short, grpc.StatusCode.INVALID_ARGUMENT, "bytes"))
    bad_output = infer_request(pb, "affine", x)
    bad_output.outputs.add(name="nope")
    cases.append((bad_output, grpc.StatusCode.INVALID_ARGUMENT, "no output"))
    too_few = infer_request(pb, "affine", x, raw=False)
    too_few.inputs[0].contents.fp32_contents.pop()
    cases.append((too_few, grpc.StatusCode.INVALID_ARGUMENT, "elements"))
    bad_priority = infer_request(pb, "affine", x)
    bad_priority.parameters["priority"].int64_param = 5000
    cases.append((bad_priority, grpc.StatusCode.INVALID_ARGUMENT, "priority"))
    for req, code, words in cases:
        got, details = rpc_error(kserve.ModelInfer, req)
        assert got == code, (req, details)
        assert words in details
    # The server keeps serving after all of that; a valid priority is accepted.
    urgent = infer_request(pb, "affine", x)
    urgent.parameters["priority"].int64_param = 10
    assert kserve.ModelInfer(urgent).outputs[0].name == "y"


def test_model_infer_equals_rest_bit_for_bit(pb, kserve, server):
    x = np.random.default_rng(2).normal(size=(2, 4)).astype(np.float32) * 1000
    g = kserve.ModelInfer(infer_request(pb, "affine", x))
    grpc_bytes = g.raw_output_contents[0]
    body = {"id": "req-7", "inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": x.tolist()}]}
    # REST JSON: %.9g decimal round-trips float32 exactly.
    rest = requests.post(f"{server.url}/v2/models/affine/infer", json=body, timeout=10).json()
    assert rest["outputs"][0]["shape"] == list(g.outputs[0].shape)
    assert np.array(rest["outputs"][0]["data"], dtype=np.float32).reshape(2, 4).tobytes() == grpc_bytes
    # REST binary tensors: the same bytes.
    header = json.dumps({"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32",
                                     "parameters": {"binary_data_size": 32}}],
                         "parameters": {"binary_data_output": True}}).encode()
    r = requests.post(f"{server.url}/v2/models/affine/infer", data=header + x.astype("<f4").tobytes(),
                      headers={"Inference-Header-Content-Length": str(len(header))}, timeout=10)
    n = int(r.headers["Inference-Header-Content-Length"])
    assert r.content[n:] == grpc_bytes


def test_yolov8n_model_infer_equals_rest(pb, kserve, server):
    """The real network through both front ends: identical output bytes."""
    model = shared_path("models/yolov8n.onnx")
    x = np.load(shared_path("reference/yolov8n__bus__input.npy")).astype("<f4")
    link = server.models / "yolov8n" / "1" / "model.onnx"
    if not link.exists():
        link.parent.mkdir(parents=True)
        os.symlink(model, link)  # read in place, never copied
    ipb = pb["inference_pb2"]
    kserve.RepositoryModelLoad(ipb.RepositoryModelLoadRequest(model_name="yolov8n"), timeout=120)
    req = infer_request(pb, "yolov8n", x, name="images")
    g = kserve.ModelInfer(req, timeout=120)
    assert list(g.outputs[0].shape) == [1, 84, 8400]
    header = json.dumps({"inputs": [{"name": "images", "shape": list(x.shape), "datatype": "FP32",
                                     "parameters": {"binary_data_size": x.nbytes}}],
                         "parameters": {"binary_data_output": True}}).encode()
    r = requests.post(f"{server.url}/v2/models/yolov8n/infer", data=header + x.tobytes(),
                      headers={"Inference-Header-Content-Length": str(len(header))}, timeout=120)
    assert r.status_code == 200, r.text[:300]
    n = int(r.headers["Inference-Header-Content-Length"])
    assert r.content[n:] == g.raw_output_contents[0]
    ref = np.load(shared_path("reference/yolov8n__bus__output0.npy"))
    got = np.frombuffer(g.raw_output_contents[0], dtype="<f4").reshape(ref.shape)
    assert np.max(np.abs(got - ref)) < 0.05 * max(1.0, float(np.max(np.abs(ref))))


# ---------------------------------------------------------------- wire compatibility


def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number, wire_type, payload):
    key = varint(number << 3 | wire_type)
    if wire_type == 2:
        return key + varint(len(payload)) + payload
    return key + payload


def parse_fields(data):
    """Minimal protobuf decoder: list of (field number, wire type, value)."""
    out, i = [], 0

    def read_varint():
        nonlocal i
        shift = value = 0
        while True:
            b = data[i]
            i += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return value
    while i < len(data):
        key = read_varint()
        number, wt = key >> 3, key & 7
        if wt == 0:
            out.append((number, wt, read_varint()))
        elif wt == 2:
            n = read_varint()
            out.append((number, wt, data[i:i + n]))
            i += n
        elif wt == 5:
            out.append((number, wt, data[i:i + 4]))
            i += 4
        elif wt == 1:
            out.append((number, wt, data[i:i + 8]))
            i += 8
        else:
            raise ValueError(f"wire type {wt}")
    return out


def test_hand_encoded_model_infer(channel):
    """ModelInfer built byte by byte from the published field numbers (no
    generated code on the client side): proves wire compatibility."""
    x = struct.pack("<4f", 1.0, -2.0, 3.5, 0.0)
    shape = varint(1) + varint(4)
    tensor = field(1, 2, b"x") + field(2, 2, b"FP32") + field(3, 2, shape)      # InferInputTensor
    request = (field(1, 2, b"affine") + field(3, 2, b"hand-1") + field(5, 2, tensor) +
               field(7, 2, x))                                                 # raw_input_contents = 7
    call = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
    response = parse_fields(call(request, timeout=10))
    by_number = {}
    for number, _, value in response:
        by_number.setdefault(number, []).append(value)
    assert by_number[1] == [b"affine"] and by_number[2] == [b"1"] and by_number[3] == [b"hand-1"]
    output = {n: v for n, _, v in parse_fields(by_number[5][0])}                # InferOutputTensor
    assert output[1] == b"y" and output[2] == b"FP32"
    shape_field = [v for n, _, v in parse_fields(by_number[5][0]) if n == 3][0]
    assert shape_field == varint(1) + varint(4)                                  # packed int64
    y = struct.unpack("<4f", by_number[6][0])                                     # raw_output_contents = 6
    assert y == tuple(np.float32(v) * np.float32(1.5) + np.float32(0.25) for v in (1.0, -2.0, 3.5, 0.0))


# ---------------------------------------------------------------- streams, repository, statistics


def test_model_stream_infer_in_order_with_an_error(pb, kserve):
    requests_ = []
    for i in range(12):
        x = np.full((1, 4), i, dtype=np.float32)
        req = infer_request(pb, "affine" if i != 5 else "nope", x)
        req.id = f"s{i}"
        requests_.append(req)
    answers = list(kserve.ModelStreamInfer(iter(requests_), timeout=60))
    assert len(answers) == 12
    for i, a in enumerate(answers):
        if i == 5:
            assert "nope" in a.error_message and not a.HasField("infer_response")
            continue
        assert a.error_message == "" and a.infer_response.id == f"s{i}"
        y = np.frombuffer(a.infer_response.raw_output_contents[0], dtype="<f4")
        assert np.allclose(y, i * 1.5 + 0.25)


def test_repository_index_load_unload(pb, kserve, server):
    ipb = pb["inference_pb2"]
    index = kserve.RepositoryIndex(ipb.RepositoryIndexRequest())
    states = {m.name: (m.version, m.state) for m in index.models}
    assert states["affine"] == ("1", "READY") and states["fixed"] == ("1", "READY")
    kserve.RepositoryModelUnload(ipb.RepositoryModelUnloadRequest(model_name="fixed"), timeout=30)
    assert kserve.ModelReady(ipb.ModelReadyRequest(name="fixed")).ready is False
    ready_only = {m.name for m in kserve.RepositoryIndex(ipb.RepositoryIndexRequest(ready=True)).models}
    assert "fixed" not in ready_only and "affine" in ready_only
    code, _ = rpc_error(kserve.ModelInfer, infer_request(pb, "fixed", np.ones((1, 3), dtype=np.float32)))
    assert code == grpc.StatusCode.UNAVAILABLE
    kserve.RepositoryModelLoad(ipb.RepositoryModelLoadRequest(model_name="fixed"), timeout=30)
    assert kserve.ModelReady(ipb.ModelReadyRequest(name="fixed")).ready is True
    assert rpc_error(kserve.RepositoryModelLoad, ipb.RepositoryModelLoadRequest(model_name="ghost"))[0] == \
        grpc.StatusCode.NOT_FOUND
    assert rpc_error(kserve.RepositoryModelLoad, ipb.RepositoryModelLoadRequest(model_name=""))[0] == \
        grpc.StatusCode.INVALID_ARGUMENT
    # REST sees the same repository.
    assert requests.get(f"{server.url}/v2/models/fixed/ready", timeout=5).status_code == 200


def test_model_statistics_count_both_front_ends(pb, kserve, server):
    ipb = pb["inference_pb2"]

    def stats():
        s = kserve.ModelStatistics(ipb.ModelStatisticsRequest(name="affine"))
        assert len(s.model_stats) == 1 and s.model_stats[0].name == "affine"
        return s.model_stats[0]
    before = stats()
    kserve.ModelInfer(infer_request(pb, "affine", np.ones((2, 4), dtype=np.float32)))
    body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
    assert requests.post(f"{server.url}/v2/models/affine/infer", json=body, timeout=10).status_code == 200
    after = stats()
    assert after.inference_stats.success.count == before.inference_stats.success.count + 2
    assert after.inference_count == before.inference_count + 3
    assert after.inference_stats.queue.count >= before.inference_stats.queue.count + 2
    assert after.inference_stats.success.ns > before.inference_stats.success.ns
    everything = kserve.ModelStatistics(ipb.ModelStatisticsRequest())
    assert {"affine", "tinydet"} <= {m.name for m in everything.model_stats}
    assert rpc_error(kserve.ModelStatistics, ipb.ModelStatisticsRequest(name="nope"))[0] == grpc.StatusCode.NOT_FOUND
    metrics = requests.get(server.url + "/metrics", timeout=5).text
    assert 'route="/inference.GRPCInferenceService/ModelInfer",code="200"' in metrics


def access_lines(server, request_id):
    """The JSON access lines the server wrote for request_id, once there is
    one (the line follows the answer by a moment)."""
    deadline = time.monotonic() + 10
    while True:
        found = [json.loads(line) for line in server.read_log().splitlines()
                 if '"type":"access"' in line and request_id in line]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_grpc_calls_write_access_lines_like_rest(pb, kserve, server):
    """gRPC requests go through the request layer's finish step as REST ones
    do: one access line each, with REST's fields (the status the REST side
    would have answered) plus "proto":"grpc" and the gRPC code."""
    ipb = pb["inference_pb2"]
    x = np.ones((2, 4), dtype=np.float32)
    kserve.ModelInfer(infer_request(pb, "affine", x), metadata=[("x-request-id", "grpc-access-ok")])
    code, _ = rpc_error(kserve.ModelInfer, infer_request(pb, "nope", x),
                        metadata=[("x-request-id", "grpc-access-404")])
    assert code == grpc.StatusCode.NOT_FOUND
    body = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [1] * 8}]}
    assert requests.post(f"{server.url}/v2/models/affine/infer", json=body, timeout=10,
                         headers={"X-Request-Id": "rest-access-ok"}).status_code == 200
    [ok] = access_lines(server, "grpc-access-ok")
    [missing] = access_lines(server, "grpc-access-404")
    [rest] = access_lines(server, "rest-access-ok")
    path = "/inference.GRPCInferenceService/ModelInfer"
    assert ok["method"] == "POST" and ok["path"] == path and ok["route"] == path
    assert ok["status"] == 200 and ok["grpc_status"] == 0 and ok["proto"] == "grpc" and ok["model"] == "affine"
    assert ok["bytes_in"] > 32 and ok["bytes_out"] > 32 and ok["ms"] >= 0
    assert missing["status"] == 404 and missing["grpc_status"] == 5 and missing["model"] == "nope"
    assert set(rest) | {"proto", "grpc_status"} == set(ok)  # REST's fields, unchanged
    assert "proto" not in rest and rest["status"] == 200 and rest["model"] == "affine"
    # a call without an id gets one of its own
    kserve.ServerLive(ipb.ServerLiveRequest())
    live = access_lines(server, "ServerLive")
    assert live and all(a["request_id"] and a["proto"] == "grpc" and a["status"] == 200 for a in live)


def test_response_cache_shared_with_rest(pb, kserve, server):
    """A model with response_cache: true answers a repeat from the cache,
    whichever front end stored it; only the first request runs."""
    x = np.array([[1.0, 2.0, 3.0, 4.0]], dtype=np.float32)
    first = kserve.ModelInfer(infer_request(pb, "cached", x))
    body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": x.tolist()}]}
    rest = requests.post(f"{server.url}/v2/models/cached/infer", json=body, timeout=10).json()
    again = kserve.ModelInfer(infer_request(pb, "cached", x, raw=False))
    assert np.array(rest["outputs"][0]["data"], dtype=np.float32).tobytes() == first.raw_output_contents[0]
    assert list(again.outputs[0].contents.fp32_contents) == rest["outputs"][0]["data"]
    text = requests.get(server.url + "/metrics", timeout=5).text
    assert metric_value(text, "vigil_cache_requests_total", model="cached", result="hit") == 2
    assert metric_value(text, "vigil_cache_requests_total", model="cached", result="miss") == 1
    assert metric_value(text, "vigil_batch_size_count", model="cached") == 1
    # Detection: the same, keyed on image bytes and options.
    dpb = pb["detection_pb2"]
    detection = pb["detection_pb2_grpc"].DetectionStub(connect(server.grpc_port))
    image = png_bytes(64, 64, seed=9)
    first = detection.Detect(dpb.DetectRequest(image=image, model="tinycached"), timeout=30)
    rest = requests.post(server.url + "/api/v1/detect?model=tinycached", data=image, timeout=30).json()
    again = detection.Detect(dpb.DetectRequest(image=image, model="tinycached"), timeout=30)
    assert [(d.class_id, d.score) for d in again.detections] == [(d.class_id, d.score) for d in first.detections]
    assert [d["score"] for d in rest["detections"]] == pytest.approx([d.score for d in first.detections], abs=1e-6)
    text = requests.get(server.url + "/metrics", timeout=5).text
    assert metric_value(text, "vigil_cache_requests_total", model="tinycached", result="hit") == 2
    assert metric_value(text, "vigil_batch_size_count", model="tinycached") == 1


# ---------------------------------------------------------------- detection


def test_detect_equals_rest_and_alias(pb, channel, server):
    shared_path("models/yolov8n.onnx")
    ipb = pb["inference_pb2"]
    kserve = pb["inference_pb2_grpc"].GRPCInferenceServiceStub(channel)
    link = server.models / "yolov8n" / "1" / "model.onnx"
    if not link.exists():
        link.parent.mkdir(parents=True)
        os.symlink(shared_path("models/yolov8n.onnx"), link)
    kserve.RepositoryModelLoad(ipb.RepositoryModelLoadRequest(model_name="yolov8n"), timeout=120)
    dpb = pb["detection_pb2"]
    detection = pb["detection_pb2_grpc"].DetectionStub(channel)
    image = shared_path("images/bus.jpg").read_bytes()
    got = detection.Detect(dpb.DetectRequest(image=image, model="yolov8n", frame_id=42), timeout=120)
    rest = requests.post(server.url + "/api/v1/detect?model=yolov8n", data=image, timeout=120).json()
    assert got.frame_id == 42 and got.model == "yolov8n" and (got.width, got.height) == (810, 1080)
    assert len(got.detections) == len(rest["detections"]) == 5
    for g, r in zip(got.detections, rest["detections"]):
        assert (g.class_id, g.class_name) == (r["class_id"], r["class_name"])
        assert g.score == pytest.approx(r["score"], abs=1e-6)
        assert [g.box.x1, g.box.y1, g.box.x2, g.box.y2] == pytest.approx(r["box"], abs=1e-3)
    assert [d.class_name for d in got.detections].count("person") == 4
    alias = pb["detection_pb2_grpc"].HailoInferenceStub(channel)
    same = alias.Inference(dpb.DetectRequest(image=image, model="yolov8n"), timeout=120)
    assert [(d.class_id, d.score) for d in same.detections] == [(d.class_id, d.score) for d in got.detections]
    opts = dpb.DetectOptions(conf_threshold=0.5, max_detections=2, classes=["bus", "0"])
    few = detection.Detect(dpb.DetectRequest(image=image, model="yolov8n", options=opts), timeout=120)
    assert len(few.detections) == 2 and all(d.score >= 0.5 for d in few.detections)
    rendered = detection.Detect(dpb.DetectRequest(image=image, model="yolov8n", render=True), timeout=120)
    assert rendered.rendered[:2] == b"\xff\xd8"


def test_detect_errors(pb, channel):
    dpb = pb["detection_pb2"]
    detection = pb["detection_pb2_grpc"].DetectionStub(channel)
    image = png_bytes(64, 64)
    assert detection.Detect(dpb.DetectRequest(image=image, model="tinydet"), timeout=30).width == 64
    cases = [
        (dpb.DetectRequest(image=b"not an image", model="tinydet"), grpc.StatusCode.INVALID_ARGUMENT),
        (dpb.DetectRequest(image=b"", model="tinydet"), grpc.StatusCode.INVALID_ARGUMENT),
        (dpb.DetectRequest(image=image, model="nope"), grpc.StatusCode.NOT_FOUND),
        (dpb.DetectRequest(image=image, model="affine"), grpc.StatusCode.INVALID_ARGUMENT),
        (dpb.DetectRequest(image=image, model="tinydet", options=dpb.DetectOptions(conf_threshold=2)),
         grpc.StatusCode.INVALID_ARGUMENT),
        (dpb.DetectRequest(image=image, model="tinydet", options=dpb.DetectOptions(classes=["nonexistent"])),
         grpc.StatusCode.INVALID_ARGUMENT),
        (dpb.DetectRequest(image=image, model="tinydet", priority=1001), grpc.StatusCode.INVALID_ARGUMENT),
    ]
    assert detection.Detect(dpb.DetectRequest(image=image, model="tinydet", priority=-5), timeout=30).width == 64
    for req, code in cases:
        assert rpc_error(detection.Detect, req, timeout=30)[0] == code, req.model


def test_stream_detect_real_frames(pb, channel, server):
    shared_path("models/yolov8n.onnx")
    dpb = pb["detection_pb2"]
    detection = pb["detection_pb2_grpc"].DetectionStub(channel)
    bus = shared_path("images/bus.jpg").read_bytes()
    zidane = shared_path("images/zidane.jpg").read_bytes()
    frames = [(10, bus), (11, zidane), (12, b"\xff\xd8corrupt"), (13, bus)]
    if not (server.models / "yolov8n").exists():
        pytest.skip("needs the yolov8n model loaded by test_detect_equals_rest_and_alias")
    out = list(detection.StreamDetect(iter(dpb.DetectRequest(image=img, model="yolov8n", frame_id=f)
                                           for f, img in frames), timeout=300))
    assert [o.frame_id for o in out] == [10, 11, 12, 13]
    assert out[2].error and out[2].error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert (out[0].width, out[1].width) == (810, 1280)
    assert [d.class_name for d in out[0].detections].count("person") == 4
    assert [(d.class_id, d.score) for d in out[3].detections] == [(d.class_id, d.score) for d in out[0].detections]
    assert any(d.class_name == "person" for d in out[1].detections)


def test_stream_detect_300_frames_slow_reader(pb, server):
    """300 frames of ~300 KB each (90 MB in all) sent as fast as gRPC lets the
    client, read slowly: every frame answered in order, the corrupt one with
    an error, the sender held back (flow control) and the server's memory
    bounded.  Each answer carries the rendered frame (a JPEG of ~100 KB) so
    that a slow reader's receive window fills and backpressure reaches the
    sender.  Uses the tiny generated detector so that it stays fast on two
    contended cores; real frames are checked above."""
    dpb = pb["detection_pb2"]
    channel = connect(server.grpc_port)  # its own connection: fresh flow-control windows
    detection = pb["detection_pb2_grpc"].DetectionStub(channel)
    frame = png_bytes(320, 320, seed=3)
    assert len(frame) > 250_000
    n, corrupt = 300, 150
    sent = [0]
    lead = []

    def frames():
        for i in range(n):
            sent[0] = i + 1
            yield dpb.DetectRequest(image=b"garbage" * 10 if i == corrupt else frame, model="tinydet",
                                    frame_id=1000 + i, render=True)
    detection.Detect(dpb.DetectRequest(image=frame, model="tinydet", render=True), timeout=30)  # warm up
    base = rss_kb(server.proc.pid)
    peak = base
    out = []
    for resp in detection.StreamDetect(frames(), timeout=300):
        out.append(resp)
        lead.append(sent[0] - len(out))
        if len(out) % 10 == 0:
            peak = max(peak, rss_kb(server.proc.pid))
        time.sleep(0.01)  # the slow reader
    assert [o.frame_id for o in out] == [1000 + i for i in range(n)]
    errors = [i for i, o in enumerate(out) if o.error]
    assert errors == [corrupt]
    assert out[corrupt].error_code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert all(o.rendered[:2] == b"\xff\xd8" for i, o in enumerate(out) if i != corrupt)
    growth_mb = (peak - base) / 1024
    print(f"\nstream of {n} x {len(frame) // 1024} KB frames: server RSS {base / 1024:.1f} MB -> peak "
          f"{peak / 1024:.1f} MB (+{growth_mb:.1f} MB); sender at most {max(lead)} frames ahead of the reader")
    channel.close()
    # The sender runs ahead by what the windows hold (vigil's 8 frames, the
    # transport's lookahead, the client's receive window full of answers).
    assert max(lead) < 200, "the sender was not held back"
    if not sanitized():
        assert growth_mb < 48, f"server memory grew by {growth_mb:.1f} MB"


# ---------------------------------------------------------------- shutdown


def test_sigterm_drains_a_stream(pb, tmp_path):
    models = tmp_path / "models"
    make_tiny_detector(models / "tinydet" / "1" / "model.onnx")
    d = ready_daemon("--models", models)
    try:
        ch = connect(d.grpc_port)
        dpb = pb["detection_pb2"]
        detection = pb["detection_pb2_grpc"].DetectionStub(ch)
        release = threading.Event()
        frame = png_bytes(64, 64)

        def frames():
            for i in range(5):
                yield dpb.DetectRequest(image=frame, model="tinydet", frame_id=i)
            release.wait(20)  # keep the stream open without sending more
        got = []
        call = detection.StreamDetect(frames(), timeout=60)
        with pytest.raises(grpc.RpcError) as info:
            for resp in call:
                got.append(resp.frame_id)
                if len(got) == 5:
                    d.proc.send_signal(signal.SIGTERM)
        release.set()
        assert got == [0, 1, 2, 3, 4]
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        ch.close()
        assert d.stop(timeout=30) == 0, d.stderr[-4000:]
        assert "grpc stopped" in d.stderr
    finally:
        d.stop()


# ---------------------------------------------------------------- auth


def hs256_token(secret, **claims):
    import base64
    import hashlib
    import hmac

    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=")
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = b64(hmac.new(secret, head + b"." + body, hashlib.sha256).digest())
    return (head + b"." + body + b"." + sig).decode()


def test_auth_jwt_on_grpc(pb, tmp_path):
    """auth.mode jwt guards gRPC as it guards REST: no or bad token ->
    UNAUTHENTICATED, a token without the scope -> PERMISSION_DENIED, health
    stays open (auth.open_health defaults to 1)."""
    secret = b"s" * 40
    (tmp_path / "secret").write_bytes(secret)
    models = tmp_path / "models"
    add_model(models, "affine", scale=1.5, offset=0.25)
    d = ready_daemon("--models", models, "--auth-mode", "jwt", "--auth-secret-file", tmp_path / "secret")
    try:
        ch = connect(d.grpc_port)
        ipb = pb["inference_pb2"]
        stub = pb["inference_pb2_grpc"].GRPCInferenceServiceStub(ch)
        req = infer_request(pb, "affine", np.ones((1, 4), dtype=np.float32))
        exp = int(time.time()) + 600
        infer_token = hs256_token(secret, sub="alice", exp=exp, scope="infer")
        forged = hs256_token(b"x" * 40, sub="mallory", exp=exp, scope="admin")
        expired = hs256_token(secret, sub="alice", exp=int(time.time()) - 600, scope="infer")
        assert rpc_error(stub.ModelInfer, req)[0] == grpc.StatusCode.UNAUTHENTICATED
        for bad in (forged, expired, "not-a-jwt"):
            code, details = rpc_error(stub.ModelInfer, req, metadata=[("authorization", f"Bearer {bad}")])
            assert code == grpc.StatusCode.UNAUTHENTICATED and bad not in details
        ok = stub.ModelInfer(req, metadata=[("authorization", f"Bearer {infer_token}")])
        assert ok.outputs[0].name == "y"
        code, _ = rpc_error(stub.RepositoryIndex, ipb.RepositoryIndexRequest(),
                            metadata=[("authorization", f"Bearer {infer_token}")])
        assert code == grpc.StatusCode.PERMISSION_DENIED
        admin = hs256_token(secret, sub="root", exp=exp, scope="admin")
        assert stub.RepositoryIndex(ipb.RepositoryIndexRequest(),
                                    metadata=[("authorization", f"Bearer {admin}")]).models[0].name == "affine"
        assert stub.ServerLive(ipb.ServerLiveRequest()).live is True
        hpb = pb["health_pb2"]
        assert pb["health_pb2_grpc"].HealthStub(ch).Check(hpb.HealthCheckRequest()).status == \
            hpb.HealthCheckResponse.SERVING
        ch.close()
        assert d.stop() == 0, d.stderr[-4000:]
    finally:
        d.stop()


def test_every_grpc_auth_refusal_is_counted(pb, tmp_path):
    """The refusals of test_auth.py (no token, malformed, wrong signature,
    expired, not yet valid, wrong issuer, wrong audience), sent as gRPC
    metadata: each is UNAUTHENTICATED without echoing the token, and
    vigil_auth_failures_total counts it under its reason; an infer-scoped
    token on an admin method is PERMISSION_DENIED and counted as scope."""
    from test_auth import AUDIENCE, ISSUER, SECRET, claims, mint, refusal_cases
    (tmp_path / "secret").write_bytes(SECRET)
    models = tmp_path / "models"
    add_model(models, "affine")
    d = ready_daemon("--models", models, "--auth-mode", "jwt", "--auth-secret-file", tmp_path / "secret",
                     "--auth-issuer", ISSUER, "--auth-audience", AUDIENCE)
    try:
        ch = connect(d.grpc_port)
        ipb = pb["inference_pb2"]
        stub = pb["inference_pb2_grpc"].GRPCInferenceServiceStub(ch)
        req = infer_request(pb, "affine", np.ones((1, 4), dtype=np.float32))
        counted = {}
        for reason, token in refusal_cases():
            metadata = [("authorization", f"Bearer {token}")] if token else []
            code, details = rpc_error(stub.ModelInfer, req, metadata=metadata)
            assert code == grpc.StatusCode.UNAUTHENTICATED, (reason, code, details)
            assert details and (not token or token not in details), reason
            counted[reason] = counted.get(reason, 0) + 1
        code, details = rpc_error(stub.RepositoryIndex, ipb.RepositoryIndexRequest(),
                                  metadata=[("authorization", "Bearer " + mint(claims(scope="infer")))])
        assert code == grpc.StatusCode.PERMISSION_DENIED and "admin" in details
        counted["scope"] = 1
        ok = stub.ModelInfer(req, metadata=[("authorization", "Bearer " + mint(claims(scope="infer")))])
        assert ok.outputs[0].name == "y"
        text = requests.get(d.url + "/metrics", timeout=5).text
        for reason, n in counted.items():
            assert metric_value(text, "vigil_auth_failures_total", reason=reason) == n, reason
        ch.close()
        assert d.stop() == 0, d.stderr[-4000:]
    finally:
        d.stop()


def test_message_over_the_body_limit_is_resource_exhausted(pb, tmp_path):
    models = tmp_path / "models"
    add_model(models, "affine")
    d = ready_daemon("--models", models, "--http-max-body-bytes", "65536")
    try:
        ch = connect(d.grpc_port)
        stub = pb["inference_pb2_grpc"].GRPCInferenceServiceStub(ch)
        big = infer_request(pb, "affine", np.ones((8, 4), dtype=np.float32))
        big.id = "x" * 70000
        assert rpc_error(stub.ModelInfer, big)[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert stub.ModelInfer(infer_request(pb, "affine", np.ones((8, 4), dtype=np.float32))).outputs[0].name == "y"
        ch.close()
        assert d.stop() == 0, d.stderr[-4000:]
    finally:
        d.stop()


# ---------------------------------------------------------------- TLS


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def test_tls_and_client_certificates(pb, tmp_path):
    """tls.cert_file/key_file serve gRPC over TLS; tls.client_ca_file
    requires a client certificate signed by that CA (mTLS)."""
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth"),
                      ("client", "extendedKeyUsage=clientAuth")):
        if name == "server":
            openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                    "-subj", "/CN=grpc test ca", "-keyout", "ca.key", "-out", "ca.pem", cwd=tmp_path)
        (tmp_path / f"{name}.ext").write_text(ext + "\n")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=tmp_path)
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=tmp_path)
    models = tmp_path / "models"
    models.mkdir()
    port = free_port()
    proc = subprocess.Popen([vigil_binary(), "serve", "--host", "127.0.0.1", "--http-port", str(free_port()),
                             "--grpc-port", str(port), "--models", str(models),
                             "--tls-cert-file", str(tmp_path / "server.pem"), "--tls-key-file", str(tmp_path / "server.key"),
                             "--tls-client-ca-file", str(tmp_path / "ca.pem")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ca = (tmp_path / "ca.pem").read_bytes()
        good = grpc.ssl_channel_credentials(root_certificates=ca, private_key=(tmp_path / "client.key").read_bytes(),
                                            certificate_chain=(tmp_path / "client.pem").read_bytes())
        ch = grpc.secure_channel(f"127.0.0.1:{port}", good)
        grpc.channel_ready_future(ch).result(timeout=30)
        ipb = pb["inference_pb2"]
        assert pb["inference_pb2_grpc"].GRPCInferenceServiceStub(ch).ServerLive(ipb.ServerLiveRequest()).live
        ch.close()
        for creds in (grpc.ssl_channel_credentials(root_certificates=ca), None):  # no client cert; plaintext
            ch = grpc.secure_channel(f"127.0.0.1:{port}", creds) if creds else grpc.insecure_channel(f"127.0.0.1:{port}")
            stub = pb["inference_pb2_grpc"].GRPCInferenceServiceStub(ch)
            assert rpc_error(stub.ServerLive, ipb.ServerLiveRequest(), timeout=5)[0] == grpc.StatusCode.UNAVAILABLE
            ch.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err[-3000:]
    assert "listening on grpcs://" in err and "client certificates required" in err
