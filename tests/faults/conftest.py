"""Fault tests: real `omnihub serve` processes, SIGKILL, TCP proxies that cut or silence PostgreSQL
and RabbitMQ, several hubs on one database. Each test here is marked `faults`, so a quick local run
can leave them out (`python -m pytest -m "not faults"`); `.ci/run` runs them all."""

from __future__ import annotations

import uuid

import pytest

from tests import services
from tests.faults.harness import HubProcesses


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/faults/" in item.nodeid.replace("\\", "/"):
            item.add_marker(pytest.mark.faults)


@pytest.fixture
def fresh_pg_url():
    """An empty PostgreSQL database of this test's own (no tables: the hubs migrate it)."""
    url = services.create_pg_database(f"_{uuid.uuid4().hex[:8]}")
    yield url
    services.drop_pg_database(url)


@pytest.fixture
def hub_processes(tmp_path):
    """Starts `omnihub serve` processes; every one still running is SIGKILLed at the end."""
    processes = HubProcesses(tmp_path)
    yield processes
    processes.kill_all()
