"""What adapters see of a hub outage: the errors that mean "the hub cannot take anything now" reach
them as HubUnavailable (chained), everything else unchanged."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from adapters.base import HubUnavailable
from hub.channels.runtime import guard_outages, outage_as_hub_unavailable
from hub.ingest.pipeline import PipelineStopped


def _dbapi(cls, *, invalidated=False):
    return cls("INSERT ...", {}, Exception("server closed the connection"), connection_invalidated=invalidated)


@pytest.mark.parametrize("error", [
    PipelineStopped("the ingest writer is not running"),
    _dbapi(OperationalError),
    _dbapi(DBAPIError, invalidated=True),
    PoolTimeout("QueuePool limit reached"),
    ConnectionRefusedError(111, "Connection refused"),
    OSError(28, "No space left on device"),
    HubUnavailable("already said"),
], ids=lambda e: type(e).__name__)
def test_an_outage_is_hub_unavailable_with_the_cause_chained(error):
    with pytest.raises(HubUnavailable) as raised, outage_as_hub_unavailable():
        raise error
    assert raised.value is error or raised.value.__cause__ is error


@pytest.mark.parametrize("error", [
    ValueError("a step refused this interaction"),
    _dbapi(IntegrityError),
    _dbapi(DBAPIError, invalidated=False),
], ids=lambda e: type(e).__name__)
def test_anything_else_passes_through(error):
    with pytest.raises(type(error)) as raised, outage_as_hub_unavailable():
        raise error
    assert raised.value is error


async def test_guard_outages_wraps_a_coroutine_function():
    async def ingest(interaction):
        raise PipelineStopped("stopped")

    with pytest.raises(HubUnavailable):
        await guard_outages(ingest)(object())
