"""A Twilio webhook refused for its signature says which URL the signature was checked against: a
public_base_url that is not the URL Twilio calls (`serve --port 9000` with the default
http://127.0.0.1:8080) refuses every webhook, and the log is where an operator finds out why."""

from __future__ import annotations

import logging

import pytest

from hub.app import create_app
from tests.adapters.fake_twilio import inbound_params
from tests.hub.conftest import count_rows

INBOUND = "/channels/sms_twilio/inbound"
CUSTOMER = "+821012345678"


@pytest.fixture
async def hub(twilio, twilio_config, aiohttp_client, make_settings, tmp_path):
    # The default public_base_url, while the hub (as with `serve --port 9000`) answers on another port.
    settings = make_settings(public_base_url="http://127.0.0.1:8080", blob_dir=str(tmp_path / "blobs"),
                             adapters={"sms_twilio": {**twilio_config, "auth_token": "tw-secret-token"}})
    client = await aiohttp_client(create_app(settings))
    twilio.auth_token = "tw-secret-token"
    client.twilio = twilio
    return client


@pytest.mark.parametrize("path", [INBOUND, "/channels/sms_twilio/status?message_id=0190d8a0-0000-7000-8000-000000000001"])
async def test_a_refused_signature_logs_the_url_it_was_checked_against(hub, path, caplog):
    params = inbound_params(frm=CUSTOMER, body="hello")
    # Signed as Twilio signs it: for the URL it was given, the port the hub really listens on.
    resp = await hub.twilio.post_signed(hub, f"http://127.0.0.1:9000{path}", path, params)
    assert resp.status == 403
    checked = "http://127.0.0.1:8080" + path.split("?")[0]
    assert checked in (await resp.json())["message"]
    (refusal,) = [r for r in caplog.records if r.getMessage() == "webhook refused"]
    assert refusal.levelno == logging.WARNING and refusal.checked_url == checked
    logged = " ".join(str(v) for v in vars(refusal).values())
    for secret in ("tw-secret-token", CUSTOMER, CUSTOMER.lstrip("+"), "message_id"):
        assert secret not in logged
    assert await count_rows(hub.app, "interactions") == 0


async def test_a_missing_signature_names_no_url(hub, caplog):
    resp = await hub.twilio.post_signed(hub, "", INBOUND, inbound_params(frm=CUSTOMER, body="x"), signature=None)
    assert resp.status == 403
    (refusal,) = [r for r in caplog.records if r.getMessage() == "webhook refused"]
    assert not hasattr(refusal, "checked_url") and refusal.reason == "no X-Twilio-Signature header"


def test_credentials_in_public_base_url_are_never_shown():
    from adapters.twilio_webhooks import shown_url

    assert shown_url("https://user:pa55@hub.example.com:8443/channels/sms_twilio/inbound?a=1") == \
        "https://hub.example.com:8443/channels/sms_twilio/inbound"
    assert shown_url("http://[::1]:8080/x") == "http://[::1]:8080/x"
