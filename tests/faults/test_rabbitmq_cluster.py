"""A three-node RabbitMQ cluster on this machine, a quorum queue (what the hub declares with
`backoffice.queues.type: quorum`, the scale profile's setting), and the node leading the queue
SIGKILLed while a publisher with confirms is sending: no confirmed message is lost.

The nodes are extra `rabbitmq-server` processes beside the machine's own broker: their own names,
ports and data directories, one Erlang cookie, on loopback only. Where rabbitmq-server cannot
start them (not installed, or not up in time) the test is skipped and says why. The publisher
behaves as the hub's relay does: a message counts as sent only once confirmed, and one whose
confirm never came is sent again (after reconnecting to a surviving node), so duplicates are
possible and counted; losses are not.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pika
import pika.exceptions
import pytest

from tests import services
from tests.tcp_proxy import free_port

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")  # Debian's; /usr/sbin's wrappers switch to the rabbitmq user
START_TIMEOUT_S = 150
MESSAGES = 2_000
KILL_AFTER = 600  # confirmed messages before the queue's leader is killed
COOKIE = "omnihub-fault-test-cluster-cookie"

pytestmark = pytest.mark.skipif(not (RABBIT_BIN / "rabbitmq-server").exists(), reason="rabbitmq-server is not installed")


class RabbitNode:
    def __init__(self, base: Path, short: str) -> None:
        self.name = f"{services.RUN_PREFIX}{short}@localhost"
        self.port = free_port()
        home = base / "home"
        home.mkdir(exist_ok=True)
        cookie = home / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(COOKIE)
            cookie.chmod(0o400)
        (base / "enabled_plugins").write_text("[].\n")
        (base / "empty-env.conf").write_text("")
        conf = base / f"{short}.conf"
        conf.write_text(f"listeners.tcp.default = 127.0.0.1:{self.port}\nloopback_users = none\n")
        self.pid_file = base / f"{short}.pid"
        self.log_path = base / f"{short}.out"
        self.env = {
            **os.environ, "HOME": str(home), "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(self.port), "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_MNESIA_BASE": str(base / f"{short}-mnesia"), "RABBITMQ_LOG_BASE": str(base / f"{short}-log"),
            "RABBITMQ_PID_FILE": str(self.pid_file), "RABBITMQ_CONFIG_FILE": str(conf),
            "RABBITMQ_CONF_ENV_FILE": str(base / "empty-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "ERL_EPMD_ADDRESS": "127.0.0.1", "ERL_FLAGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([str(RABBIT_BIN / "rabbitmq-server")], env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(RABBIT_BIN / "rabbitmqctl"), "-n", self.name, *args], env=self.env,
                              capture_output=True, text=True, timeout=timeout, check=False)

    def wait_running(self) -> str | None:
        """None once the node runs, else why not."""
        try:
            done = self.ctl("wait", str(self.pid_file), "--timeout", str(START_TIMEOUT_S), timeout=START_TIMEOUT_S + 30)
        except subprocess.TimeoutExpired:
            return f"{self.name} did not start in {START_TIMEOUT_S}s"
        if done.returncode != 0 or self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-600:]
            return f"{self.name} did not start: {done.stderr.strip()[-300:]} {tail}"
        return None

    def must(self, *args: str) -> str:
        done = self.ctl(*args)
        assert done.returncode == 0, f"rabbitmqctl {' '.join(args)} on {self.name}: {done.stderr}"
        return done.stdout

    def kill(self) -> None:
        """SIGKILL the Erlang VM itself (the pid file's), as a crashed machine would leave it."""
        os.kill(int(self.pid_file.read_text().strip()), signal.SIGKILL)

    def remove(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)


@pytest.fixture
def cluster(tmp_path):
    nodes = [RabbitNode(tmp_path, short) for short in ("a", "b", "c")]
    try:
        with ThreadPoolExecutor(3) as pool:
            problems = [p for p in pool.map(RabbitNode.wait_running, nodes) if p]
        if problems:
            pytest.skip(f"rabbitmq-server cannot start extra nodes here: {problems[0]}")
        for node in nodes[1:]:
            node.must("stop_app")
            node.must("join_cluster", nodes[0].name)
            node.must("start_app")
        yield nodes
    finally:
        for node in nodes:
            node.remove()
        shutil.rmtree(tmp_path / "home", ignore_errors=True)


def _connect(port: int) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", port, credentials=pika.PlainCredentials("guest", "guest"),
        connection_attempts=1, socket_timeout=5, blocked_connection_timeout=30))


def _running_nodes(node: RabbitNode) -> list[str]:
    status = json.loads(node.must("cluster_status", "--formatter", "json"))
    return sorted(status["running_nodes"])


def test_a_quorum_queue_loses_no_confirmed_message_when_its_leader_is_killed(cluster):
    a, b, c = cluster
    assert _running_nodes(a) == sorted(n.name for n in cluster)
    queue = f"{services.RUN_PREFIX}.cluster.events"
    declared = _connect(a.port)  # declared on a: a leads it, and a is the node killed
    declared.channel().queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    declared.close()

    confirmed: set[str] = set()
    attempts, reconnects, killed_at, started = 0, 0, None, time.monotonic()
    ports = [b.port, c.port]
    conn = _connect(ports[0])
    channel = conn.channel()
    channel.confirm_delivery()
    for n in range(MESSAGES):
        message_id = f"m{n:05d}"
        while message_id not in confirmed:
            attempts += 1
            try:
                channel.basic_publish("", queue, json.dumps({"n": n}).encode(), mandatory=True,
                                      properties=pika.BasicProperties(message_id=message_id, delivery_mode=2))
                confirmed.add(message_id)
            except (pika.exceptions.NackError, pika.exceptions.UnroutableError):
                time.sleep(0.1)  # the queue is electing a leader: the broker refused it, send it again
            except pika.exceptions.AMQPError:
                reconnects += 1
                ports.reverse()
                time.sleep(0.2)
                conn = _connect(ports[0])
                channel = conn.channel()
                channel.confirm_delivery()
        if len(confirmed) == KILL_AFTER:
            a.kill()
            killed_at = time.monotonic()
    publish_s = time.monotonic() - started
    conn.close()
    assert _running_nodes(b) == sorted([b.name, c.name])  # a really is gone: the queue lives on b and c

    received: list[str] = []
    reader = _connect(c.port)
    ch = reader.channel()
    ch.basic_qos(prefetch_count=500)
    for method, props, _body in ch.consume(queue, auto_ack=True, inactivity_timeout=5):
        if method is None:
            break
        received.append(props.message_id)
    ch.cancel()
    ch.queue_delete(queue)
    reader.close()

    lost = confirmed - set(received)
    duplicates = len(received) - len(set(received))
    assert killed_at is not None
    assert not lost, f"{len(lost)} confirmed messages lost, e.g. {sorted(lost)[:5]}"
    print(f"\nquorum queue on 3 nodes, leader SIGKILLed after {KILL_AFTER} confirms: {len(confirmed)} confirmed, "
          f"{len(received)} received ({duplicates} duplicates), 0 lost; {attempts} publishes, {reconnects} "
          f"reconnects, {publish_s:.1f} s publishing")
