"""The link monitor across a silent network cut (docs/EDGE.md, "Link monitor").

Two network namespaces made by this test and a veth pair between them, with
10.x addresses that exist only inside them (nothing on the host is touched
and nothing is routed anywhere else):

    ns "broker": mosquitto, and the cloud's link monitor (over loopback)
    ns "edge":   the edge's link monitor, connecting over the veth

Both monitors run as tests-only processes (edge-link-harness, beside vigil).
The cut is `iptables -A INPUT -i <veth> -j DROP` in the edge's namespace:
nothing reaches the edge any more, and no FIN or RST tells it so.  The edge
must go offline within 2 x keepalive + 2 s (the issue's bound; the heartbeats
make it much sooner), and come back once the rule is removed.  Times are
printed.  Needs root (namespaces, iptables), iproute2, iptables and mosquitto;
skips without them.
"""
import os
import pathlib
import queue
import random
import shutil
import subprocess
import threading
import time

import pytest

from conftest import stop_process

ROOT = pathlib.Path(__file__).resolve().parents[2]
BROKER = "/usr/sbin/mosquitto"
KEEPALIVE_S = 5  # libmosquitto's least
HEARTBEAT_S = 0.5


def harness_binary() -> pathlib.Path:
    vigil = pathlib.Path(os.environ.get("VIGIL_BINARY", str(ROOT / "build" / "vigil")))
    return vigil.with_name("edge-link-harness")


def sh(*args, check=True):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=30, check=check)


class Monitor:
    """A harness process; its JSON lines are collected with their arrival time."""

    def __init__(self, ns, *args):
        self.proc = subprocess.Popen(["ip", "netns", "exec", ns, str(harness_binary()), *map(str, args)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.events = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        import json
        for line in self.proc.stdout:
            try:
                self.events.put((time.monotonic(), json.loads(line)))
            except ValueError:
                pass

    def wait(self, timeout, **match):
        """Waits for an event whose fields include match; returns its arrival time."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                at, event = self.events.get(timeout=left)
            except queue.Empty:
                return None
            print("   ", event)
            if all(event.get(k) == v for k, v in match.items()):
                return at

    def stop(self):
        stop_process(self.proc)


@pytest.fixture
def namespaces():
    if os.geteuid() != 0:
        pytest.skip("network namespaces and iptables need root")
    for tool in ("ip", "iptables"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not installed")
    if not os.access(BROKER, os.X_OK):
        pytest.skip("no mosquitto broker")
    if not os.access(harness_binary(), os.X_OK):
        pytest.skip(f"{harness_binary()} is not built")
    tag = f"{os.getpid() % 100000}"
    ns_broker, ns_edge = f"vlkb{tag}", f"vlke{tag}"
    veth_broker, veth_edge = f"vlkb{tag}", f"vlke{tag}"
    # A /30 in 10/8 picked at random: it exists only inside these two namespaces.
    net = f"10.{random.randint(64, 250)}.{random.randint(0, 255)}"
    broker_ip, edge_ip = f"{net}.1", f"{net}.2"
    made = []
    try:
        for ns in (ns_broker, ns_edge):
            if sh("ip", "netns", "add", ns, check=False).returncode != 0:
                pytest.skip("cannot create network namespaces here")
            made.append(ns)
        steps = [
            ("ip", "link", "add", veth_broker, "netns", ns_broker, "type", "veth", "peer", "name", veth_edge,
             "netns", ns_edge),
            ("ip", "-n", ns_broker, "addr", "add", f"{broker_ip}/30", "dev", veth_broker),
            ("ip", "-n", ns_edge, "addr", "add", f"{edge_ip}/30", "dev", veth_edge),
            ("ip", "-n", ns_broker, "link", "set", veth_broker, "up"),
            ("ip", "-n", ns_edge, "link", "set", veth_edge, "up"),
            ("ip", "-n", ns_broker, "link", "set", "lo", "up"),
            ("ip", "-n", ns_edge, "link", "set", "lo", "up"),
        ]
        for step in steps:
            result = sh(*step, check=False)
            if result.returncode != 0:
                pytest.skip(f"network setup failed: {' '.join(step)}: {result.stderr.strip()}")
        probe = sh("ip", "netns", "exec", ns_edge, "iptables", "-L", "INPUT", "-n", check=False)
        if probe.returncode != 0:
            pytest.skip(f"iptables does not work in a namespace here: {probe.stderr.strip()}")
        yield {"broker_ns": ns_broker, "edge_ns": ns_edge, "broker_ip": broker_ip, "edge_veth": veth_edge}
    finally:
        for ns in made:  # deleting a namespace removes its end of the veth pair, and so the pair
            sh("ip", "netns", "del", ns, check=False)


def test_silent_cut_in_network_namespace(namespaces, tmp_path):
    ns_b, ns_e = namespaces["broker_ns"], namespaces["edge_ns"]
    conf = tmp_path / "mosquitto.conf"
    conf.write_text("listener 1883\nallow_anonymous true\npersistence false\nlog_dest stderr\n")
    broker_log = open(tmp_path / "mosquitto.log", "w")
    broker = subprocess.Popen(["ip", "netns", "exec", ns_b, BROKER, "-c", str(conf)],
                              stdout=broker_log, stderr=subprocess.STDOUT)
    common = ["--prefix", "netns", "--keepalive", KEEPALIVE_S, "--heartbeat", HEARTBEAT_S, "--missed", 3,
              "--rise", 2, "--reconnect-max", 2]
    cloud = edge = None
    cut_rule = ["ip", "netns", "exec", ns_e, "iptables", "-A", "INPUT", "-i", namespaces["edge_veth"], "-j",
                "DROP"]
    try:
        time.sleep(0.3)  # the broker listens (the monitors retry anyway)
        cloud = Monitor(ns_b, "--role", "cloud", "--host", "127.0.0.1", "--port", 1883, "--node", "c1", *common)
        edge = Monitor(ns_e, "--role", "edge", "--host", namespaces["broker_ip"], "--port", 1883, "--node", "e1",
                       *common)
        assert edge.wait(30, event="state", state="online"), "the edge never came online"

        cut = time.monotonic()
        sh(*cut_rule)
        offline = edge.wait(4 * KEEPALIVE_S, event="state", state="offline")
        assert offline is not None, "no transition at all after a silent cut"
        dropped = edge.wait(4 * KEEPALIVE_S, event="broker", connected=False)
        bound = 2 * KEEPALIVE_S + 2
        print(f"silent cut (iptables DROP in the edge's namespace): offline after {offline - cut:.2f} s, "
              f"broker connection dropped after {(dropped - cut) if dropped else float('nan'):.2f} s "
              f"(bound {bound} s)")
        assert offline - cut <= bound
        assert dropped is not None, "keepalive never noticed the silent broker"

        healed = time.monotonic()
        cut_rule[5] = "-D"
        sh(*cut_rule)
        online = edge.wait(30, event="state", state="online")
        assert online is not None, "the edge did not come back after the cut healed"
        print(f"link healed: edge online again after {online - healed:.2f} s")
    finally:
        for monitor in (edge, cloud):
            if monitor:
                monitor.stop()
        broker.terminate()
        try:
            broker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            broker.kill()
            broker.wait()
        broker_log.close()
