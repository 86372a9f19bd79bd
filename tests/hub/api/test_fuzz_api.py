"""Random JSON at POST /v1/interactions never gets a 5xx, and every 4xx names what was wrong."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.app import create_app
from tests.hub.payloads import sms

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
FIELDS = ["channel", "direction", "kind", "provider", "provider_ref", "occurred_at", "sender", "recipients",
          "subject", "content", "attachments", "transaction", "call", "metadata", "tags", "priority", "id"]


@st.composite
def mutated_interactions(draw):
    payload = sms()
    for field in draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=3, unique=True)):
        payload[field] = draw(json_values)
    return json.dumps(payload).encode()


bodies = (
    mutated_interactions()
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=200)
)


@pytest.fixture
async def sqlite_client(aiohttp_client, sqlite_url, make_settings):
    return await aiohttp_client(create_app(make_settings(database_url=sqlite_url)))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies)
async def test_random_json_never_gets_a_server_error(client, body):
    resp = await client.post("/v1/interactions", data=body, headers={"Content-Type": "application/json"})
    assert resp.status < 500, await resp.text()
    result = await resp.json()
    if resp.status >= 400:
        assert result["error"] and result["fields"]
        assert all(f["field"] for f in result["fields"])
    else:
        assert resp.status in (200, 201) and result["id"]
