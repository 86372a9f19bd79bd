"""The adapter contract for Twilio SMS, against the real twilio client and a hub on both backends."""

from __future__ import annotations

import pytest

from hub.app import create_app
from tests.adapters.conftest import PUBLIC_BASE_URL
from tests.adapters.contract import AdapterContract, Auth, Delivery, outbound_message
from tests.adapters.fake_twilio import inbound_params

INBOUND = "/channels/sms_twilio/inbound"


class TestTwilioSmsContract(AdapterContract):
    adapter_name = "sms_twilio"

    @pytest.fixture
    async def hub(self, twilio, twilio_config, aiohttp_client, make_settings, tmp_path):
        settings = make_settings(public_base_url=PUBLIC_BASE_URL, blob_dir=str(tmp_path / "blobs"),
                                 adapters={"sms_twilio": twilio_config})
        client = await aiohttp_client(create_app(settings))
        client.twilio = twilio
        return client

    def samples(self):
        return [
            inbound_params(frm="+821012345678", body="배송지 변경 부탁드립니다", message_sid="SM" + "a" * 32),
            inbound_params(frm="010-9876-5432", body="Where is my order?", message_sid="SM" + "b" * 32),
            inbound_params(frm="+14155550123", body="", message_sid="MM" + "c" * 32,
                           media=[("https://api.twilio.com/2010-04-01/Accounts/AC/Messages/MM/Media/ME1", "image/jpeg")]),
            inbound_params(frm="+821055551234", body="STOP", message_sid="SM" + "d" * 32),
        ]

    def bad_payloads(self):
        return [
            ({**inbound_params(frm="not a number", body="hi")}, "From"),
            ({k: v for k, v in inbound_params(frm="+821012345678", body="hi").items()
              if k not in ("MessageSid", "SmsSid")}, "MessageSid"),
            ({**inbound_params(frm="+821012345678", body="hi"), "NumMedia": "x"}, "NumMedia"),
        ]

    async def deliver(self, hub, raw, auth: Auth) -> Delivery:
        signature = {Auth.SIGNED: "sign", Auth.UNSIGNED: None, Auth.WRONG: "bm90IGEgc2lnbmF0dXJl"}[auth]
        resp = await hub.twilio.post_signed(hub, PUBLIC_BASE_URL + INBOUND, INBOUND, raw, signature=signature)
        detail = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return Delivery(accepted=resp.status == 200, status=resp.status, detail=detail)

    async def outbound(self, hub):
        return outbound_message("sms", {"type": "phone", "value": "+821012345678"}, text="주문하신 상품이 발송되었습니다")
