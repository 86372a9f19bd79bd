"""Marketing through the hub at whatever instant the suite runs at (OMNIHUB_TEST_INSTANT, see
tests/conftest.py): held until the end of the customer's own quiet hours (the default 21:00-08:00),
sent at once outside them, and sent when the clock reaches that end. The expected end is found by
walking the customer's wall clock a minute at a time, not by the hub's arithmetic. CI runs this at
00:30, 12:00 and 22:30 in Seoul, the noon one on the night New York springs forward (.ci/run), so a
New York customer's night is an hour shorter in real time than on the wall clock."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest

from hub.app import create_app
from tests.adapters.conftest import PUBLIC_BASE_URL
from tests.adapters.fake_twilio import inbound_params
from tests.hub.conftest import eventually

pytestmark = pytest.mark.clock

INBOUND = "/channels/sms_twilio/inbound"
# (phone, the timezone on the profile or None for the configured Asia/Seoul, the zone that applies)
CUSTOMERS = [("+821055507001", None, ZoneInfo("Asia/Seoul")),
             ("+821055507002", "America/New_York", ZoneInfo("America/New_York"))]


def released_at(due: datetime, zone: ZoneInfo) -> datetime | None:
    """When a marketing send due at `due` may go: None outside 21:00-08:00 on the customer's wall
    clock, else the first whole minute at which that clock is past 08:00."""

    def quiet(at: datetime) -> bool:
        local = at.astimezone(zone).time()
        return local >= time(21) or local < time(8)

    if not quiet(due):
        return None
    at = due.replace(second=0, microsecond=0)
    while quiet(at):
        at += timedelta(minutes=1)
    return at


@pytest.fixture
async def hub(twilio, twilio_config, aiohttp_client, make_settings, tmp_path):
    # The default quiet hours (21:00-08:00, Asia/Seoul for profiles without a timezone).
    settings = make_settings(public_base_url=PUBLIC_BASE_URL, blob_dir=str(tmp_path / "blobs"),
                             adapters={"sms_twilio": twilio_config})
    client = await aiohttp_client(create_app(settings))
    client.twilio = twilio
    return client


async def consenting_customer(hub, phone: str, timezone: str | None) -> str:
    params = inbound_params(frm=phone, body="안녕하세요")
    assert (await hub.twilio.post_signed(hub, PUBLIC_BASE_URL + INBOUND, INBOUND, params)).status == 200
    profile = await (await hub.get(f"/v1/profiles?identifier={quote('phone:' + phone)}")).json()
    change = {"consents": {"sms:marketing": {"granted": True}}, **({"timezone": timezone} if timezone else {})}
    resp = await hub.patch(f"/v1/profiles/{profile['id']}", json=change)
    assert resp.status == 200, await resp.text()
    return profile["id"]


async def send(hub, **body) -> dict:
    resp = await hub.post("/v1/messages", json=body)
    assert resp.status == 202, await resp.text()
    return await resp.json()


async def test_marketing_waits_for_the_end_of_the_customers_own_quiet_hours(hub, traveller):
    promos = []
    for phone, timezone, zone in CUSTOMERS:
        pid = await consenting_customer(hub, phone, timezone)
        before = datetime.now(UTC)
        promo = await send(hub, profile_id=pid, channel="sms", purpose="marketing", text=f"promo {phone}")
        after = datetime.now(UTC)
        held = datetime.fromisoformat(promo["not_before"]) if promo["not_before"] else None
        # The hub read its clock between `before` and `after`; the wall clock there decides.
        assert held in {released_at(before, zone), released_at(after, zone)}, (phone, before, held)
        promos.append((phone, promo["id"], held))
        await send(hub, profile_id=pid, channel="sms", text=f"notice {phone}")  # transactional: never held

    def bodies() -> set[str]:
        return {m["Body"] for m in hub.twilio.sent}

    free = {f"promo {phone}" for phone, _, held in promos if held is None}
    notices = {f"notice {phone}" for phone, _, _ in CUSTOMERS}
    await eventually(lambda: _true(bodies() >= free | notices))
    for phone, message_id, held in promos:
        if held is not None:  # passed over while the notices went out
            assert f"promo {phone}" not in bodies()
            assert (await (await hub.get(f"/v1/messages/{message_id}")).json())["state"] == "queued"

    last = max((held for _, _, held in promos if held is not None), default=None)
    if last is not None:  # at the end of the longest night, everything held goes
        traveller.shift(last - datetime.now(UTC) + timedelta(seconds=1))
        await eventually(lambda: _true(bodies() >= {f"promo {phone}" for phone, _, _ in promos}))


async def _true(value: bool) -> bool:
    return value
