"""The adapter contract for Twilio Voice, against a hub on both backends."""

from __future__ import annotations

import pytest

from adapters.base import PermanentSendError
from hub.app import create_app
from tests.adapters.conftest import PUBLIC_BASE_URL
from tests.adapters.contract import AdapterContract, Auth, Delivery, outbound_message
from tests.adapters.voice_support import INBOUND, VOICE, call_params, twilio_post


class TestTwilioVoiceContract(AdapterContract):
    adapter_name = "voice_twilio"

    @pytest.fixture
    async def hub(self, aiohttp_client, make_settings, tmp_path):
        settings = make_settings(public_base_url=PUBLIC_BASE_URL, blob_dir=str(tmp_path / "blobs"),
                                 adapters={"voice_twilio": VOICE})
        return await aiohttp_client(create_app(settings))

    def samples(self):
        return [
            call_params("CA" + "a" * 32),
            call_params("CA" + "b" * 32, frm="010-9876-5432", CallerName="KIM MINJI"),
            call_params("CA" + "c" * 32, frm="+14155550123", status="in-progress"),
            call_params("CA" + "d" * 32, frm="anonymous"),  # caller id withheld: recorded, no profile
        ]

    def bad_payloads(self):
        return [
            ({k: v for k, v in call_params("CA" + "e" * 32).items() if k != "CallSid"}, "CallSid"),
            ({k: v for k, v in call_params("CA" + "f" * 32).items() if k != "From"}, "From"),
            (call_params("CA" + "0" * 32, CallDuration="-1"), "CallDuration"),
        ]

    async def deliver(self, hub, raw, auth: Auth) -> Delivery:
        signature = {Auth.SIGNED: "sign", Auth.UNSIGNED: None, Auth.WRONG: "bm90IGEgc2lnbmF0dXJl"}[auth]
        resp = await twilio_post(hub, INBOUND, raw, signature=signature)
        detail = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return Delivery(accepted=resp.status == 200, status=resp.status, detail=detail)

    async def outbound(self, hub):
        return outbound_message("voice", {"type": "phone", "value": "+821012345678"}, text="call back")

    async def test_send_returns_the_provider_reference(self, hub):
        # Outbound calls are not placed: send() fails for good, so the outbound module never retries it.
        with pytest.raises(PermanentSendError):
            await self.adapter(hub).send(await self.outbound(hub))
