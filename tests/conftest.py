from __future__ import annotations

import pytest

from tests import services


@pytest.fixture(scope="session")
def run_prefix() -> str:
    """Prefix for exchange, queue and database names of this test run."""
    return services.RUN_PREFIX


@pytest.fixture(scope="session")
def amqp_url() -> str:
    return services.rabbitmq_url()


@pytest.fixture(scope="session")
def pg_database_url():
    url = services.create_pg_database()
    yield url
    services.drop_pg_database(url)
