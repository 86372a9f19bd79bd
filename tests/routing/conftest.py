from __future__ import annotations

import pytest

from routing import Queue, Router, RouterConfig, VirtualClock


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(1000.0)


@pytest.fixture
def router(clock: VirtualClock) -> Router:
    r = Router(clock, RouterConfig(offer_timeout_s=20, max_missed_offers=3, preference_timeout_s=30,
                                   wrapup_timeout_s=60))
    r.add_queue(Queue(name="support", sla_s=20))
    return r
