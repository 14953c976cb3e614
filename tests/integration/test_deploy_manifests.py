"""deploy/: the Kubernetes manifests render (kubectl kustomize) and validate
against the official schemas (kubernetes-models, tests/integration/
validate_k8s.mjs); the compose files pass `docker-compose config`; and the
prometheus-adapter rule's metricsQuery, expanded as the adapter expands it,
gives one value per pod from a real Prometheus scraping two real vigil
processes, a value that rises with their load (issue 20, Must show 2)."""
import concurrent.futures
import json
import os
import pathlib
import shutil
import subprocess
import threading
import time

import pytest
import requests
import yaml

from conftest import ROOT, add_model, ready_daemon
from promkit import Prometheus

K8S = ROOT / "deploy" / "k8s"
COMPOSE = ROOT / "deploy" / "compose"
NODE_MODULES = ROOT / "tools" / "node" / "node_modules"
VALIDATOR = ROOT / "tests" / "integration" / "validate_k8s.mjs"
RENDERED = ["base", "overlays/edge", "overlays/cloud", "overlays/cloud-keda", "prometheus-adapter"]


def render(folder) -> list:
    """The objects `kubectl kustomize folder` renders."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed: the Kustomize overlays cannot be rendered")
    r = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return [d for d in yaml.safe_load_all(r.stdout) if d]


def validate(objects):
    """(exit status, output lines) of the schema validator on objects."""
    node = shutil.which("node")
    assert node, "node not installed (scripts/deps: nodejs)"
    assert (NODE_MODULES / "kubernetes-models").is_dir(), "npm tooling missing: make deps"
    r = subprocess.run([node, str(VALIDATOR), str(NODE_MODULES)], input=json.dumps(objects), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode in (0, 1), r.stderr
    return r.returncode, r.stdout.splitlines()


def by_kind(objects, kind):
    return [o for o in objects if o["kind"] == kind]


@pytest.mark.parametrize("folder", RENDERED)
def test_every_manifest_renders_and_validates(folder):
    objects = render(K8S / folder)
    rc, lines = validate(objects)
    assert rc == 0, "\n".join(lines)
    assert len(lines) == len(objects) and all(line.startswith("ok ") for line in lines)


@pytest.mark.parametrize("folder", [f for f in RENDERED if f != "prometheus-adapter"])
def test_vigil_pods_are_locked_down_and_probed(folder):
    objects = render(K8S / folder)
    deployment, = by_kind(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 65532
    assert pod["automountServiceAccountToken"] is False
    for c in pod["containers"] + pod.get("initContainers", []):
        sc = c["securityContext"]
        assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"] and sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"] and sc["seccompProfile"]["type"] == "RuntimeDefault"
        assert c["resources"]["limits"]["memory"] and c["resources"]["requests"]["cpu"]
    vigil, = pod["containers"]
    assert vigil["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert vigil["readinessProbe"]["httpGet"]["path"] == "/readyz"
    service, = by_kind(objects, "Service")
    assert {p["name"] for p in service["spec"]["ports"]} == {"http", "grpc", "metrics"}
    assert by_kind(objects, "PodDisruptionBudget") and by_kind(objects, "NetworkPolicy")
    assert by_kind(objects, "ServiceAccount") and by_kind(objects, "ConfigMap")
    env = {e["name"]: e.get("value") for e in vigil.get("env", [])}
    if folder != "overlays/edge":  # the edge reads models from a volume, the rest pull them first
        init, = pod["initContainers"]
        assert init["args"][:2] == ["models", "pull"] and init["args"][2] == "$(MODEL_URL)"
    if folder.startswith("overlays/cloud"):
        assert env["VIGIL_EDGE_ROLE"] == "cloud"
    if folder == "overlays/edge":
        assert env["VIGIL_EDGE_ROLE"] == "edge" and "initContainers" not in pod
        assert vigil["resources"]["limits"]["hailo.ai/npu"] == "1" and pod["nodeSelector"]
        assert pod["tolerations"]


def test_one_autoscaler_per_overlay_on_the_adapters_metric():
    adapter_rule = adapter_rules()[0]
    cloud = render(K8S / "overlays" / "cloud")
    keda = render(K8S / "overlays" / "cloud-keda")
    hpa, = by_kind(cloud, "HorizontalPodAutoscaler")
    assert not by_kind(cloud, "ScaledObject") and not by_kind(keda, "HorizontalPodAutoscaler")
    metric, = hpa["spec"]["metrics"]
    assert metric["type"] == "Pods" and metric["pods"]["metric"]["name"] == adapter_rule["name"]["as"]
    assert metric["pods"]["target"]["type"] == "AverageValue"
    assert hpa["spec"]["scaleTargetRef"]["name"] == by_kind(cloud, "Deployment")[0]["metadata"]["name"]
    scaled, = by_kind(keda, "ScaledObject")
    trigger, = scaled["spec"]["triggers"]
    assert trigger["type"] == "prometheus" and "vigil_inference_queue_length" in trigger["metadata"]["query"]
    services = by_kind(render(K8S / "prometheus-adapter"), "APIService")
    assert [s["metadata"]["name"] for s in services] == ["v1beta1.custom.metrics.k8s.io"]


def test_a_manifest_with_an_error_fails_validation():
    deployment, = by_kind(render(K8S / "base"), "Deployment")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["replicas"] = "two"
    no_image = json.loads(json.dumps(deployment))
    del no_image["spec"]["template"]["spec"]["containers"][0]["name"]
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    rc, lines = validate([deployment, broken, no_image, unknown])
    assert rc == 1
    assert lines[0] == "ok Deployment vigil"
    assert lines[1].startswith("FAIL Deployment vigil:") and "replicas" in lines[1]
    assert lines[2].startswith("FAIL Deployment vigil:") and "name" in lines[2]
    assert lines[3].startswith("FAIL Widget w: no model")


def test_the_config_file_of_the_configmap_is_one_vigil_accepts(tmp_path):
    config, = by_kind(render(K8S / "base"), "ConfigMap")
    path = tmp_path / "vigil.yaml"
    path.write_text(config["data"]["vigil.yaml"])
    models = tmp_path / "models"
    add_model(models, "affine")
    # the file's paths are the pod's: this machine's folders replace them
    d = ready_daemon("--config", path, "--models", models, "--edge-data-dir", tmp_path / "data")
    try:
        assert requests.get(d.url + "/readyz", timeout=5).status_code == 200
    finally:
        d.stop()


# ---------------------------------------------------------------- compose

COMPOSE_SETS = {  # docker-compose's arguments before the command
    "edge box": ["-f", "docker-compose.yml"],
    "hailo": ["-f", "docker-compose.yml", "-f", "docker-compose.hailo.yml"],
    "dev": ["-f", "docker-compose.yml", "-f", "docker-compose.dev.yml"],
    "tls profile": ["--profile", "tls", "-f", "docker-compose.yml"],
}


@pytest.mark.parametrize("case", COMPOSE_SETS)
def test_compose_files_validate(case):
    tool = shutil.which("docker-compose")
    assert tool, "docker-compose not installed (scripts/deps/debian.txt)"
    args = COMPOSE_SETS[case]
    r = subprocess.run([tool, *args, "config"], cwd=COMPOSE, capture_output=True, text=True, timeout=60,
                       env={**os.environ, "DOCKER_HOST": "unix:///nonexistent"})  # config needs no daemon
    assert r.returncode == 0, r.stderr
    services = yaml.safe_load(r.stdout)["services"]
    vigil = services["vigil"]
    assert vigil["network_mode"] == "host" and vigil["read_only"] is True and vigil["user"] == "65532:65532"
    assert any(v.endswith(":/models:ro") for v in vigil["volumes"])
    rules = [v for v in services["prometheus"]["volumes"] if v.endswith(":/etc/prometheus/rules.yml:ro")]
    assert rules == [f"{ROOT}/deploy/prometheus/rules.yml:/etc/prometheus/rules.yml:ro"]
    assert services["nginx"]["profiles"] == ["tls"]  # listed always, started only with --profile tls
    assert services["mqtt"]["network_mode"] == "host" and services["prometheus"]["network_mode"] == "host"
    assert (vigil.get("devices") == ["/dev/hailo0:/dev/hailo0"]) == (case == "hailo")


def test_compose_prometheus_config_is_valid(tmp_path):
    from promkit import tool
    config = yaml.safe_load((COMPOSE / "prometheus.yml").read_text())
    rules = ROOT / "deploy" / "prometheus" / "rules.yml"  # the rules' own tests check them; here: the path is used
    config["rule_files"] = [str(rules)] if rules.exists() else []
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    r = subprocess.run([tool("promtool"), "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


# ---------------------------------------------------------------- prometheus-adapter

def adapter_rules():
    configmap = yaml.safe_load((K8S / "prometheus-adapter" / "adapter-config.yaml").read_text())
    return yaml.safe_load(configmap["data"]["config.yaml"])["rules"]


def expand(metrics_query, series, namespace, pods, group_by="pod"):
    """The metricsQuery as prometheus-adapter renders it for a Pods metric
    request on several pods of one namespace (its Go template's three
    fields; the label names come from the rule's resources.overrides)."""
    matchers = f'namespace="{namespace}",pod=~"{"|".join(pods)}"'
    query = (metrics_query.replace("<<.Series>>", series).replace("<<.LabelMatchers>>", matchers)
             .replace("<<.GroupBy>>", group_by))
    assert "<<" not in query, f"a template field the test does not expand: {query}"
    return query


BATCHING = "max_batch_size: 8\ndynamic_batching:\n  max_queue_delay_us: 1500000\n"


def one(url):
    body = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [1.0] * 4}]}
    return requests.post(f"{url}/v2/models/slow/infer", json=body, timeout=30)


def test_adapter_query_gives_one_rising_value_per_pod(tmp_path):
    """Two vigil pods (processes) whose model waits 1.5 s to fill a batch of 8,
    so the requests of a few clients sit in its queue; Prometheus scrapes
    them with the namespace and pod labels Kubernetes' discovery gives."""
    rule, = adapter_rules()
    overrides = rule["resources"]["overrides"]
    assert overrides == {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}
    models = tmp_path / "models"
    add_model(models, "slow", config=BATCHING)
    pods = {"vigil-7d9f-a": None, "vigil-7d9f-b": None}
    daemons = []
    try:
        for name in pods:
            daemons.append(ready_daemon("--models", models))
            pods[name] = daemons[-1]
        targets = [(f"127.0.0.1:{d.http_port}", {"namespace": "vigil", "pod": name}) for name, d in pods.items()]
        (tmp_path / "prom").mkdir()
        with Prometheus(tmp_path / "prom", targets) as prom:
            # discovery: the rule's seriesQuery finds the series of both pods
            found = prom.wait_for(rule["seriesQuery"], pred=lambda r: {s["metric"]["pod"] for s in r} == set(pods))
            series, = {s["metric"]["__name__"] for s in found}
            query = expand(rule["metricsQuery"], series, "vigil", list(pods))

            def per_pod(result):
                return {s["metric"]["pod"]: float(s["value"][1]) for s in result}

            idle = per_pod(prom.wait_for(query, pred=lambda r: len(r) == 2))
            assert set(idle) == set(pods) and all(v == 0 for v in idle.values()), idle
            for s in prom.query(query):
                assert set(s["metric"]) == {"pod"}  # one value per pod, labelled by pod only

            stop = threading.Event()

            def client(url):
                while not stop.is_set():
                    one(url)

            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                clients = [pool.submit(client, d.url) for d in daemons for _ in range(4)]
                try:
                    loaded = per_pod(prom.wait_for(query, timeout=30,
                                                   pred=lambda r: len(r) == 2 and all(v >= 2 for v in per_pod(r).values())))
                finally:
                    stop.set()
                for c in clients:
                    c.result()
            assert all(loaded[p] > idle[p] for p in pods), (idle, loaded)
    finally:
        for d in daemons:
            d.stop()
