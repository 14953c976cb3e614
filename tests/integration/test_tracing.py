"""Tracing against the real daemon: a test OTLP/HTTP collector (http.server
on loopback) decodes what vigil exports with the official opentelemetry-proto
files, compiled here by Debian's protoc.

REST and gRPC requests that carry a traceparent get a server span whose
parent is the client's span, in the client's trace, with children (receive,
queue, inference, postprocess for detection, respond) and their attributes;
no traceparent or an invalid one starts a fresh trace and never fails the
request; the sampled flag of a parent is honoured and the ratio applies to
new traces; a collector that is down, slow, refusing (400) or busy (503 with
Retry-After) never slows or fails a request: spans are retried only where the
OTLP specification allows, and what is lost is counted.  The edge's
escalation carries its own span as the parent, so the cloud's spans join the
edge's trace."""
import http.server
import importlib
import os
import pathlib
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest
import requests

from conftest import ROOT, add_model, free_port, metric_value, ready_daemon, shared_path
from test_grpc import connect, generate_stubs, infer_request, make_tiny_detector, png_bytes

PROTOS = ROOT / "tools/node/node_modules/@opentelemetry/otlp-grpc-exporter-base/build/protos"
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"


# ---------------------------------------------------------------- the collector


@pytest.fixture(scope="module")
def otlp(tmp_path_factory):
    """The ExportTraceServiceRequest class, from the official .proto files."""
    protoc = "/usr/bin/protoc"
    if not os.path.exists(protoc):
        pytest.skip("protoc (Debian's protobuf-compiler) is missing")
    if not PROTOS.is_dir():
        pytest.skip(f"the opentelemetry-proto files are missing ({PROTOS}): npm tooling in tools/node")
    out = tmp_path_factory.mktemp("otlp")
    files = [f"opentelemetry/proto/{p}" for p in ("common/v1/common.proto", "resource/v1/resource.proto",
                                                  "trace/v1/trace.proto",
                                                  "collector/trace/v1/trace_service.proto")]
    subprocess.run([protoc, f"--python_out={out}", "-I", str(PROTOS), *files], check=True)
    sys.path.insert(0, str(out))
    return importlib.import_module("opentelemetry.proto.collector.trace.v1.trace_service_pb2")


class Collector:
    """POST /v1/traces on loopback.  answer(n) gives (status, headers, delay_s)
    for the n-th request (from 0); decoded spans are kept (a 2xx only)."""

    def __init__(self, otlp, answer=lambda n: (200, {}, 0)):
        self.otlp, self.answer = otlp, answer
        self.spans, self.resources, self.posts, self.content_types = [], [], 0, []
        self.lock = threading.Lock()
        collector = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with collector.lock:
                    n = collector.posts
                    collector.posts += 1
                    collector.content_types.append((self.path, self.headers.get("Content-Type")))
                status, headers, delay = collector.answer(n)
                if delay:
                    time.sleep(delay)
                if 200 <= status < 300:
                    req = collector.otlp.ExportTraceServiceRequest.FromString(body)
                    with collector.lock:
                        for rs in req.resource_spans:
                            collector.resources.append({a.key: a.value.string_value for a in rs.resource.attributes})
                            for ss in rs.scope_spans:
                                collector.spans.extend(ss.spans)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def trace(self, trace_id_hex, want=1, timeout=15.0):
        """The spans of one trace, once at least `want` have arrived ([] after timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                got = [s for s in self.spans if s.trace_id.hex() == trace_id_hex]
            if len(got) >= want or time.monotonic() > deadline:
                return got
            time.sleep(0.02)


def attrs(span):
    out = {}
    for a in span.attributes:
        v = a.value
        out[a.key] = v.string_value if v.HasField("string_value") else v.int_value
    return out


def server_span(spans):
    (s,) = [s for s in spans if s.kind == s.SPAN_KIND_SERVER]
    return s


def children(spans):
    root = server_span(spans)
    return {s.name: s for s in spans if s.parent_span_id == root.span_id}


# ---------------------------------------------------------------- daemons


def make_models(models):
    add_model(models, "affine")
    make_tiny_detector(models / "tinydet" / "1" / "model.onnx")


def traced_daemon(tmp_path, endpoint, *extra):
    models = tmp_path / "models"
    if not models.exists():
        make_models(models)
    return ready_daemon("--models", models, "--tracing-enabled", "1", "--tracing-endpoint", endpoint,
                        "--tracing-flush-interval-ms", "50", "--log-format", "text", *extra)


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    return generate_stubs(tmp_path_factory.mktemp("stubs"))


@pytest.fixture(scope="module")
def served(otlp, tmp_path_factory):
    """One traced daemon (ratio 1) and its collector for the propagation tests."""
    collector = Collector(otlp)
    d = traced_daemon(tmp_path_factory.mktemp("served"), collector.url)
    yield d, collector
    d.stop()
    collector.close()


INFER = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}


def infer(d, headers=None):
    r = requests.post(f"{d.url}/v2/models/affine/infer", json=INFER, headers=headers or {}, timeout=10)
    assert r.status_code == 200, r.text
    return r


def answered_trace(r):
    """The trace id and span id the answer's traceparent names."""
    parts = r.headers["traceparent"].split("-")
    assert len(parts) == 4 and parts[0] == "00"
    return parts[1], parts[2], parts[3]


# ---------------------------------------------------------------- propagation


def test_rest_infer_joins_the_clients_trace(served):
    d, collector = served
    r = infer(d, {"traceparent": TRACEPARENT, "tracestate": "congo=t61rcWkgMzE", "X-Request-Id": "trace-rest-1"})
    trace_id, span_id, flags = answered_trace(r)
    assert (trace_id, flags) == (CLIENT_TRACE, "01")
    spans = collector.trace(CLIENT_TRACE, want=5)
    root = server_span(spans)
    assert root.parent_span_id.hex() == CLIENT_SPAN
    assert root.span_id.hex() == span_id
    assert root.name == "POST /v2/models/{m}/infer" or root.name.startswith("POST /v2/models/")
    assert root.trace_state == "congo=t61rcWkgMzE"
    a = attrs(root)
    assert a["http.request.method"] == "POST" and a["http.response.status_code"] == 200
    assert a["vigil.model"] == "affine" and a["vigil.model_version"] == 1 and a["vigil.batch_size"] == 1
    assert a["vigil.request_id"] == "trace-rest-1" and a["vigil.outcome"] == "ok"
    assert a["http.route"] == root.name.split(" ", 1)[1]
    kids = children(spans)
    assert {"receive", "queue", "inference", "respond"} <= set(kids)
    assert attrs(kids["inference"])["vigil.batch_size"] == 1
    for s in spans:
        assert s.end_time_unix_nano >= s.start_time_unix_nano > 0
        assert root.start_time_unix_nano <= s.start_time_unix_nano <= root.end_time_unix_nano
    res = collector.resources[-1]
    assert res["service.name"] == "vigil" and res["vigil.node_type"] == "cloud" and res["host.name"]
    assert ("/v1/traces", "application/x-protobuf") in collector.content_types
    # the access line names the trace
    assert f"request_id=trace-rest-1 model=affine trace_id={CLIENT_TRACE}" in d.read_log()


def test_the_latency_histogram_carries_the_trace_as_exemplar(served):
    """OpenMetrics exposition: the bucket a traced request fell in names its
    trace id as exemplar (metrics_observe_traced from the scheduler)."""
    d, _ = served
    trace = "0af7651916cd43dd8448eb211c80319d"
    r = infer(d, {"traceparent": f"00-{trace}-b7ad6b7169203331-01"})
    assert r.status_code == 200, r.text
    text = requests.get(d.url + "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"},
                        timeout=5).text
    lines = [ln for ln in text.splitlines()
             if ln.startswith("vigil_inference_total_seconds_bucket{") and f'trace_id="{trace}"' in ln]
    assert lines, "no exemplar with the request's trace id on vigil_inference_total_seconds"
    assert 'model="affine"' in lines[0]
    plain = requests.get(d.url + "/metrics", timeout=5).text
    assert trace not in plain  # the Prometheus text format has no exemplars


def test_rest_detect_has_a_postprocess_span(served):
    d, collector = served
    trace = "0af7651916cd43dd8448eb211c80319c"
    r = requests.post(f"{d.url}/api/v1/detect?model=tinydet", data=png_bytes(64, 64), timeout=30,
                      headers={"traceparent": f"00-{trace}-b7ad6b7169203331-01"})
    assert r.status_code == 200, r.text
    spans = collector.trace(trace, want=6)
    assert server_span(spans).parent_span_id.hex() == "b7ad6b7169203331"
    kids = children(spans)
    assert {"receive", "queue", "inference", "postprocess", "respond"} <= set(kids)
    post, inference = kids["postprocess"], kids["inference"]
    assert inference.start_time_unix_nano <= post.start_time_unix_nano <= inference.end_time_unix_nano


def test_grpc_model_infer_and_detect_join_the_clients_trace(served, pb):
    d, collector = served
    with connect(d.grpc_port) as ch:
        infer_stub = pb["inference_pb2_grpc"].GRPCInferenceServiceStub(ch)
        trace = "11111111111111111111111111111111"
        x = np.array([[1, 2, 3, 4]], dtype=np.float32)
        _, call = infer_stub.ModelInfer.with_call(infer_request(pb, "affine", x), timeout=10,
                                                  metadata=[("traceparent", f"00-{trace}-2222222222222222-01")])
        sent = dict(call.initial_metadata())
        assert sent["traceparent"].split("-")[1] == trace
        spans = collector.trace(trace, want=5)
        root = server_span(spans)
        assert root.parent_span_id.hex() == "2222222222222222"
        assert root.name == "inference.GRPCInferenceService/ModelInfer"
        a = attrs(root)
        assert a["rpc.system"] == "grpc" and a["rpc.method"] == "ModelInfer" and a["rpc.grpc.status_code"] == 0
        assert a["vigil.model"] == "affine"
        assert {"queue", "inference", "respond"} <= set(children(spans))

        detect_stub = pb["detection_pb2_grpc"].DetectionStub(ch)
        trace = "33333333333333333333333333333333"
        detect_stub.Detect(pb["detection_pb2"].DetectRequest(image=png_bytes(64, 64), model="tinydet"), timeout=30,
                           metadata=[("traceparent", f"00-{trace}-4444444444444444-01")])
        spans = collector.trace(trace, want=6)
        root = server_span(spans)
        assert root.parent_span_id.hex() == "4444444444444444"
        assert attrs(root)["rpc.method"] == "Detect"
        assert {"queue", "inference", "postprocess", "respond"} <= set(children(spans))


def test_no_traceparent_starts_a_fresh_trace(served):
    d, collector = served
    r = infer(d)
    trace_id, span_id, flags = answered_trace(r)
    assert flags == "01" and trace_id != CLIENT_TRACE
    root = server_span(collector.trace(trace_id, want=5))
    assert root.parent_span_id == b"" and root.span_id.hex() == span_id


@pytest.mark.parametrize("bad", [
    f"ff-{CLIENT_TRACE}-{CLIENT_SPAN}-01",                   # version ff
    f"00-{'0' * 32}-{CLIENT_SPAN}-01",                        # all-zero trace id
    f"00-{CLIENT_TRACE}-{'0' * 16}-01",                       # all-zero parent id
    f"00-{CLIENT_TRACE.upper()}-{CLIENT_SPAN}-01",            # upper-case hex
    f"00-{CLIENT_TRACE[:-1]}-{CLIENT_SPAN}-01",               # trace id too short
    f"00-{CLIENT_TRACE}-{CLIENT_SPAN}0-01",                   # parent id too long
    f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01-extra",              # version 00 with trailing data
])
def test_an_invalid_traceparent_starts_a_fresh_trace(served, bad):
    d, collector = served
    r = infer(d, {"traceparent": bad, "tracestate": "congo=x"})
    trace_id, _, flags = answered_trace(r)
    assert trace_id not in bad.lower() and trace_id != "0" * 32 and flags == "01"
    root = server_span(collector.trace(trace_id, want=5))
    assert root.parent_span_id == b"" and root.trace_state == ""  # no parent, so no state either


def test_a_future_version_is_read_by_its_first_fields(served):
    d, collector = served
    trace = "55555555555555555555555555555555"
    r = infer(d, {"traceparent": f"cc-{trace}-6666666666666666-01-future"})
    assert answered_trace(r)[0] == trace
    assert server_span(collector.trace(trace, want=5)).parent_span_id.hex() == "6666666666666666"


def test_an_unsampled_parent_is_not_exported(served):
    d, collector = served
    unsampled = "77777777777777777777777777777777"
    r = infer(d, {"traceparent": f"00-{unsampled}-8888888888888888-00"})
    trace_id, _, flags = answered_trace(r)
    assert (trace_id, flags) == (unsampled, "00")  # propagated, not recorded
    marker = "99999999999999999999999999999999"  # sent after: once it is in, the first would be too
    infer(d, {"traceparent": f"00-{marker}-8888888888888888-01"})
    assert collector.trace(marker, want=5)
    assert collector.trace(unsampled, timeout=0) == []


def test_ratio_zero_records_only_sampled_parents(otlp, tmp_path):
    collector = Collector(otlp)
    d = traced_daemon(tmp_path, collector.url, "--tracing-sampling-ratio", "0")
    try:
        fresh = answered_trace(infer(d))
        assert fresh[2] == "00"
        marker = "abababababababababababababababab"
        infer(d, {"traceparent": f"00-{marker}-8888888888888888-01"})  # parent-based: the caller's word
        assert collector.trace(marker, want=5)
        with collector.lock:
            assert {s.trace_id.hex() for s in collector.spans} == {marker}
    finally:
        d.stop()
        collector.close()


# ---------------------------------------------------------------- the exporter


def trace_metrics(d):
    text = requests.get(d.url + "/metrics", timeout=10).text
    return {name: metric_value(text, "vigil_trace_spans_dropped_total", reason=name) or 0
            for name in ("queue_full", "export_failed", "shutdown")} | {
        "exported": metric_value(text, "vigil_trace_spans_exported_total") or 0,
        "retry": metric_value(text, "vigil_trace_export_requests_total", result="retry") or 0}


def wait_metric(d, key, above=0, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = trace_metrics(d)
        if m[key] > above:
            return m
        time.sleep(0.05)
    return trace_metrics(d)


def test_a_collector_that_is_down_costs_requests_nothing(tmp_path):
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    d = traced_daemon(tmp_path, closed, "--tracing-timeout-ms", "500")
    try:
        for _ in range(20):
            infer(d)  # each within the client's timeout, all 200
        assert wait_metric(d, "export_failed")["export_failed"] > 0
    finally:
        d.stop()


def test_a_slow_collector_costs_requests_nothing(otlp, tmp_path):
    collector = Collector(otlp, lambda n: (200, {}, 30))  # answers long after any timeout
    d = traced_daemon(tmp_path, collector.url, "--tracing-timeout-ms", "300", "--tracing-queue-size", "20",
                      "--limits-shutdown-timeout-ms", "500")
    try:
        for _ in range(40):
            infer(d)  # the client's timeout (10 s) is far below the collector's 30 s
        m = wait_metric(d, "export_failed")
        assert m["export_failed"] > 0 and m["queue_full"] > 0 and m["exported"] == 0
    finally:
        d.stop()
        collector.close()


@pytest.mark.parametrize("status,headers", [(503, {"Retry-After": "1"}), (429, {}), (502, {}), (504, {})])
def test_busy_collectors_are_retried_then_delivered(otlp, tmp_path, status, headers):
    """The OTLP retryable answers: after the collector's Retry-After, else after a backoff."""
    collector = Collector(otlp, lambda n: (status, headers, 0) if n == 0 else (200, {}, 0))
    d = traced_daemon(tmp_path, collector.url)
    try:
        trace_id = answered_trace(infer(d))[0]
        assert len(collector.trace(trace_id, want=5)) == 5
        assert collector.posts == 2
        m = wait_metric(d, "exported", above=4)  # counted once the collector's answer is back, after it saw the post
        assert m["retry"] == 1 and m["exported"] == 5 and m["export_failed"] == 0
    finally:
        d.stop()
        collector.close()


def test_400_is_not_retried(otlp, tmp_path):
    collector = Collector(otlp, lambda n: (400, {}, 0))
    d = traced_daemon(tmp_path, collector.url)
    try:
        infer(d)
        m = wait_metric(d, "export_failed")
        assert m["export_failed"] == 5 and m["retry"] == 0
        infer(d)  # the next batch is its own first attempt
        wait_metric(d, "export_failed", above=5)
        assert collector.posts == 2
    finally:
        d.stop()
        collector.close()


def test_tracing_off_sends_no_traceparent(tmp_path):
    models = tmp_path / "models"
    make_models(models)
    d = ready_daemon("--models", models)
    try:
        r = infer(d, {"traceparent": TRACEPARENT})
        assert "traceparent" not in r.headers
        assert "vigil_trace_spans" not in requests.get(d.url + "/metrics", timeout=10).text
    finally:
        d.stop()


# ---------------------------------------------------------------- edge to cloud


def test_the_clouds_spans_join_the_edges_trace(otlp, tmp_path):
    """An edge and a cloud on loopback with the real broker: a detection on the
    edge that escalates is uploaded with the edge's span as parent, and the
    cloud's receiver span (and its detection's children) land in the client's
    trace."""
    import shutil
    from test_edge_hybrid import HEARTBEAT_MS, KEEPALIVE_S, Broker, Vigil, model_repo, wait_for
    if not (shutil.which("mosquitto") or os.path.exists("/usr/sbin/mosquitto")):
        pytest.skip("mosquitto is missing")
    collector = Collector(otlp)
    tracing = ["--tracing-enabled", "1", "--tracing-endpoint", collector.url, "--tracing-flush-interval-ms", "50"]
    broker = Broker("127.0.0.1", tmp_path)
    cloud = edge = None
    try:
        cloud_models = model_repo(tmp_path / "cloud-models", "big", "")
        cloud = Vigil(["--models", cloud_models, "--role", "cloud", "--edge-node-id", "cloud",
                       "--edge-data-dir", tmp_path / "cloud", "--edge-receiver-model", "big",
                       "--edge-mqtt-host", "127.0.0.1", "--edge-mqtt-port", broker.port,
                       "--edge-heartbeat-ms", HEARTBEAT_MS, *tracing], host="127.0.0.1", tmp=tmp_path)
        edge_models = model_repo(tmp_path / "edge-models", "top", "escalation:\n  classes: [bus]\n"
                                 "  rate_limit_per_source: 0\n")
        edge = Vigil(["--models", edge_models, "--role", "edge", "--edge-node-id", "edge1",
                      "--edge-cloud-url", cloud.url, "--edge-data-dir", tmp_path / "edge",
                      "--edge-mqtt-host", "127.0.0.1", "--edge-mqtt-port", broker.port,
                      "--edge-mqtt-keepalive-s", KEEPALIVE_S, "--edge-heartbeat-ms", HEARTBEAT_MS,
                      "--edge-uplink-backoff-base-ms", 200, "--edge-uplink-backoff-max-ms", 1000, *tracing],
                     host="127.0.0.1", tmp=tmp_path)
        image = shared_path("images/bus.jpg")
        trace = "0123456789abcdef0123456789abcdef"
        r = requests.post(f"{edge.url}/api/v1/detect?model=top", data=image.read_bytes(), timeout=120,
                          headers={"Content-Type": "image/jpeg", "traceparent": f"00-{trace}-0123456789abcdef-01"})
        assert r.status_code == 200, r.text
        edge_span = answered_trace(r)[1]

        def cloud_span():
            spans = collector.trace(trace, timeout=0)
            return [s for s in spans if s.kind == s.SPAN_KIND_SERVER and s.parent_span_id.hex() == edge_span]
        (received,) = wait_for(cloud_span, 90, what="the cloud's span in the edge's trace")
        assert attrs(received)["http.route"].startswith("/api/v1/events")
        kids = {s.name for s in collector.trace(trace, timeout=0) if s.parent_span_id == received.span_id}
        assert {"queue", "inference", "postprocess"} <= kids  # the cloud model's run, in the same trace
        edge_root = [s for s in collector.trace(trace, timeout=0) if s.span_id.hex() == edge_span]
        assert edge_root and edge_root[0].parent_span_id.hex() == "0123456789abcdef"
        with collector.lock:
            assert {r.get("vigil.node_type") for r in collector.resources} == {"edge", "cloud"}
    finally:
        for v in (edge, cloud):
            if v:
                v.stop()
        broker.stop()
        collector.close()
