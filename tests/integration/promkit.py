"""A real Prometheus server for tests, on loopback, scraping the targets a
test names (issue 6's scrape test, issue 20's rules, dashboard and
prometheus-adapter tests).  One place that starts it, waits for its targets
and queries it, so the tests that need one cannot drift apart.

    with Prometheus(tmp_path, ["127.0.0.1:8000"], rule_files=[...]) as prom:
        prom.wait_for('vigil_inference_queue_length')
        prom.query('sum(rate(vigil_http_requests_total[1m]))')

Prometheus comes from Debian's package `prometheus` (scripts/deps/debian.txt);
a missing binary is an error, not a skip, like every other suite tool."""
import shutil
import subprocess
import time

import requests

from conftest import free_port, stop_process


def tool(name):
    """The path of a Prometheus tool (prometheus, promtool)."""
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} not found: install the Debian package prometheus (make deps)")
    return path


class Prometheus:
    """A Prometheus process scraping `targets` every `interval` seconds as
    job `job`.  A target is "host:port", or ("host:port", {label: value})
    for labels of its own (a pod and namespace, as Kubernetes' service
    discovery would attach); `labels` are added to every target."""

    def __init__(self, workdir, targets, job="vigil", interval="1s", rule_files=(), labels=None,
                 evaluation_interval="1s"):
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        groups = ""
        for t in targets:
            addr, own = (t, {}) if isinstance(t, str) else t
            merged = {**(labels or {}), **own}
            groups += f'      - targets: ["{addr}"]\n'
            if merged:
                groups += "        labels:\n" + "".join(f'          {k}: "{v}"\n' for k, v in merged.items())
        rules = "".join(f"  - {r}\n" for r in rule_files)
        config = workdir / "prometheus.yml"
        config.write_text(f"""global:
  scrape_interval: {interval}
  scrape_timeout: {interval}
  evaluation_interval: {evaluation_interval}
{"rule_files:" + chr(10) + rules if rules else ""}scrape_configs:
  - job_name: {job}
    static_configs:
{groups}""")
        self.log_path = workdir / "prometheus.log"
        self._log = self.log_path.open("w+")
        self.proc = subprocess.Popen([tool("prometheus"), f"--config.file={config}",
                                      f"--storage.tsdb.path={workdir / 'tsdb'}",
                                      f"--web.listen-address=127.0.0.1:{self.port}"],
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def log(self) -> str:
        return self.log_path.read_text()[-3000:]

    def stop(self):
        stop_process(self.proc)
        self._log.close()

    def _get(self, path, **params):
        r = requests.get(f"{self.url}{path}", params=params, timeout=5)
        body = r.json()
        if body.get("status") != "success":
            raise AssertionError(f"prometheus {path} {params}: {body}")
        return body["data"]

    def query(self, expr, time_=None):
        """An instant query; returns the result list (vector) or value."""
        params = {"query": expr}
        if time_ is not None:
            params["time"] = time_
        return self._get("/api/v1/query", **params)["result"]

    def query_range(self, expr, start, end, step="1s"):
        return self._get("/api/v1/query_range", query=expr, start=start, end=end, step=step)["result"]

    def rules(self):
        return self._get("/api/v1/rules")["groups"]

    def wait_for(self, expr, timeout=30.0, pred=bool):
        """Polls the instant query `expr` until pred(result) holds; returns
        the result.  Fails with Prometheus's log when it never does."""
        deadline = time.monotonic() + timeout
        result = None
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"prometheus exited: {self.log()}"
            try:
                result = self.query(expr)
                if pred(result):
                    return result
            except requests.RequestException:
                pass  # still starting
            time.sleep(0.5)
        raise AssertionError(f"{expr}: condition not met within {timeout} s (last {result}); log: {self.log()}")
