"""docker-compose.yml: the default stack stays hub + RabbitMQ + PostgreSQL; the `scale` profile adds
three hubs behind HAProxy, a three-node RabbitMQ cluster and a PostgreSQL of its own (DESIGN
section 10). Docker is not on the test machines: the file is read as Compose reads it (YAML with
anchors and merge keys), and `docker-compose config` checks it where that is installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
SCALE_HUBS = ("hub-1", "hub-2", "hub-3")
RABBIT_NODES = ("rabbit-1", "rabbit-2", "rabbit-3")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _profile(service: dict) -> list[str]:
    return list(service.get("profiles", []))


def test_the_default_stack_is_unchanged(compose):
    default = {name for name, s in compose["services"].items() if not _profile(s)}
    assert default == {"hub", "rabbitmq", "postgres"}


def test_the_scale_profile_has_three_hubs_behind_haproxy_on_one_database(compose):
    services = compose["services"]
    scale = {name for name, s in services.items() if "scale" in _profile(s)}
    assert scale == {"scale-lb", *SCALE_HUBS, *RABBIT_NODES, "scale-postgres"}
    databases = {services[h]["environment"]["OMNIHUB_DATABASE_URL"] for h in SCALE_HUBS}
    assert len(databases) == 1 and "@scale-postgres:" in databases.pop()
    for hub in SCALE_HUBS:
        env = services[hub]["environment"]
        assert env["OMNIHUB_AMQP_URL"].startswith("amqp://") and "@scale-lb:5672/" in env["OMNIHUB_AMQP_URL"]
        assert env["OMNIHUB_BACKOFFICE__QUEUES__TYPE"] == "quorum"
        assert services[hub]["build"] == "."

    lb = services["scale-lb"]
    assert lb["image"].startswith("haproxy:")
    mounted = {v.split(":")[0] for v in lb["volumes"]}
    assert mounted == {"./deploy/haproxy/haproxy.cfg"}
    haproxy = (ROOT / "deploy/haproxy/haproxy.cfg").read_text()
    for name in (*SCALE_HUBS, *RABBIT_NODES):
        assert re.search(rf"^\s*server {name} {name}:\d+", haproxy, re.M), f"{name} is not behind HAProxy"
    assert "option httpchk GET /readyz" in haproxy  # a hub whose database is out leaves the rotation


def test_the_rabbitmq_nodes_form_one_cluster_from_the_config_file(compose):
    services = compose["services"]
    conf = (ROOT / "deploy/rabbitmq/rabbitmq.conf").read_text()
    assert "cluster_formation.peer_discovery_backend = classic_config" in conf
    cookies = set()
    for n, name in enumerate(RABBIT_NODES, 1):
        node = services[name]
        assert node["image"].startswith("rabbitmq:3.13")
        assert node["hostname"] == name
        assert f"cluster_formation.classic_config.nodes.{n} = rabbit@{name}" in conf
        assert any(v.startswith("./deploy/rabbitmq/rabbitmq.conf:/etc/rabbitmq/conf.d/") for v in node["volumes"])
        cookies.add(node["environment"]["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"])
        assert len({v.split(":")[0] for v in node["volumes"]}) == 2  # the config and a volume of its own
    assert len(cookies) == 1


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed")
@pytest.mark.parametrize("profile", [[], ["--profile", "scale"]])
def test_compose_accepts_the_file(profile):
    done = subprocess.run(["docker-compose", "-f", str(COMPOSE), *profile, "config", "-q"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed")
def test_haproxy_accepts_its_config():
    done = subprocess.run(["haproxy", "-c", "-f", str(ROOT / "deploy/haproxy/haproxy.cfg")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
