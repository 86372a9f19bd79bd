from __future__ import annotations

import os
from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest
import time_machine

from tests import services

# CI runs at every hour of the day, so a test whose outcome could depend on the time, the date or a
# time zone is marked `clock` and runs at one fixed instant: OMNIHUB_TEST_INSTANT, else this one.
# `.ci/run` runs the marked tests again at three other instants (see there), one on a DST change.
CLOCK_ENV = "OMNIHUB_TEST_INSTANT"
DEFAULT_INSTANT = "2026-12-01T12:00:00+09:00"  # noon in Seoul; 22:00 the evening before in New York
# `@pytest.mark.clock(local="12:00")` keeps the instant's date but sets the time of day in this zone,
# for a test that needs, say, to be outside the default quiet hours (21:00-08:00 Asia/Seoul).
LOCAL_ZONE = ZoneInfo("Asia/Seoul")


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        f"clock(local=None): runs at a fixed instant ({CLOCK_ENV}, default {DEFAULT_INSTANT}), the clock "
        "ticking on from there; local='HH:MM' sets that time of day in Asia/Seoul on the instant's date. "
        "`-m clock` selects the tests whose outcome could depend on the time.",
    )


def configured_instant() -> datetime:
    """The instant the clock-marked tests start at, from the environment (an ISO 8601 time with an offset)."""
    text = os.environ.get(CLOCK_ENV) or DEFAULT_INSTANT
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise pytest.UsageError(f"{CLOCK_ENV}={text!r} is not an ISO 8601 time, e.g. {DEFAULT_INSTANT}") from None
    if instant.utcoffset() is None:
        raise pytest.UsageError(f"{CLOCK_ENV}={text!r} needs a UTC offset, e.g. {DEFAULT_INSTANT}")
    return instant


def instant_for(marker: pytest.Mark) -> datetime:
    """Where a `clock` marker sends the test: the configured instant, or its date at `local` o'clock."""
    instant = configured_instant()
    local = marker.kwargs.get("local", marker.args[0] if marker.args else None)
    if local is None:
        return instant
    day = instant.astimezone(LOCAL_ZONE).date()
    return datetime.combine(day, time.fromisoformat(local), tzinfo=LOCAL_ZONE)


@pytest.fixture(autouse=True)
def _fixed_clock(request):
    """Travels a `clock`-marked test to its instant. tick=True lets the wall clock run on from there,
    and time-machine leaves the monotonic clock (asyncio's timeouts and the suite's waits) alone."""
    marker = request.node.get_closest_marker("clock")
    if marker is None:
        yield None
        return
    with time_machine.travel(instant_for(marker), tick=True) as traveller:
        yield traveller


@pytest.fixture
def fixed_instant(request, _fixed_clock) -> datetime:
    """The instant a `clock`-marked test started at (aware)."""
    marker = request.node.get_closest_marker("clock")
    if marker is None:
        raise pytest.UsageError("fixed_instant is for tests marked @pytest.mark.clock")
    return instant_for(marker)


@pytest.fixture
def traveller(request, _fixed_clock):
    """The time-machine traveller of a `clock`-marked test: `traveller.shift(timedelta(hours=9))`
    moves its wall clock on (the hub's timers and dispatchers see it at their next look)."""
    if _fixed_clock is None:
        raise pytest.UsageError("traveller is for tests marked @pytest.mark.clock")
    return _fixed_clock


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
