"""The adapter contract for the generic CTI webhook, signed with the Standard Webhooks reference
library, against a hub on both backends."""

from __future__ import annotations

import json

import pytest

from adapters.base import PermanentSendError
from hub.app import create_app
from tests.adapters.contract import AdapterContract, Auth, Delivery, outbound_message
from tests.adapters.voice_support import CTI_OTHER_SECRET, CTI_SECRET, cti_event, cti_post


class TestCtiContract(AdapterContract):
    adapter_name = "cti"

    @pytest.fixture
    async def hub(self, aiohttp_client, make_settings, tmp_path):
        settings = make_settings(blob_dir=str(tmp_path / "blobs"), adapters={"cti": {"secret": CTI_SECRET}})
        return await aiohttp_client(create_app(settings))

    def samples(self):
        return [
            json.dumps(cti_event("call_started", "pbx-1")).encode(),
            json.dumps(cti_event("call_answered", "pbx-2", agent_extension="201", caller="+82 10 9876 5432")).encode(),
            json.dumps(cti_event("call_ended", "pbx-3", disposition="abandoned", duration_s=0)).encode(),
            json.dumps(cti_event("call_started", "pbx-4", caller="anonymous")).encode(),
        ]

    def bad_payloads(self):
        return [
            (json.dumps(cti_event("call_started", caller="not a number")).encode(), "caller"),
            (json.dumps(cti_event("call_started", time="yesterday")).encode(), "time"),
            (json.dumps({k: v for k, v in cti_event("call_started").items() if k != "call_id"}).encode(), "call_id"),
        ]

    async def deliver(self, hub, raw, auth: Auth) -> Delivery:
        match auth:
            case Auth.SIGNED:
                resp = await cti_post(hub, raw)
            case Auth.WRONG:
                resp = await cti_post(hub, raw, secret=CTI_OTHER_SECRET)
            case Auth.UNSIGNED:
                resp = await cti_post(hub, raw, headers={"Content-Type": "application/json"})
        return Delivery(accepted=resp.status in (200, 201), status=resp.status, detail=await resp.json())

    async def outbound(self, hub):
        return outbound_message("voice", {"type": "phone", "value": "+821012345678"}, text="call back")

    async def test_send_returns_the_provider_reference(self, hub):
        # A PBX's CTI link reports calls and places none: send() fails for good, never retried.
        with pytest.raises(PermanentSendError):
            await self.adapter(hub).send(await self.outbound(hub))
