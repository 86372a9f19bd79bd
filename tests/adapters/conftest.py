from __future__ import annotations

import pytest

from tests.adapters.fake_twilio import FakeTwilio

# The hub fixtures (a clean database per backend, settings): adapters run in a real hub.
from tests.hub.conftest import database_url, make_settings  # noqa: F401

PUBLIC_BASE_URL = "https://hub.example.com"  # what the provider calls: the hub behind a proxy


@pytest.fixture
async def twilio(aiohttp_server):
    fake = FakeTwilio()
    server = await aiohttp_server(fake.app())
    fake.base_url = str(server.make_url("")).rstrip("/")
    return fake


@pytest.fixture
def twilio_config(twilio):
    from tests.adapters.fake_twilio import OUR_NUMBER

    return {"account_sid": twilio.account_sid, "auth_token": twilio.auth_token, "from_number": OUR_NUMBER,
            "api_base": twilio.base_url, "keywords": {"opt_out": ["수신거부"], "opt_in": ["수신동의"]}}
