"""The adapter contract for POS, against a hub on both backends, signed with the Standard Webhooks
reference implementation."""

from __future__ import annotations

import pytest

from adapters.base import PermanentSendError
from hub.app import create_app
from tests.adapters.contract import AdapterContract, Auth, Delivery, outbound_message
from tests.adapters.pos_support import OTHER_SECRET, SECRET, post, sale


class TestPosContract(AdapterContract):
    adapter_name = "pos"

    @pytest.fixture
    async def hub(self, aiohttp_client, make_settings, tmp_path):
        settings = make_settings(blob_dir=str(tmp_path / "blobs"),
                                 adapters={"pos": {"secret": SECRET, "default_currency": "KRW"}})
        return await aiohttp_client(create_app(settings))

    def samples(self):
        return [
            sale(),
            sale("R-0002", customer={"phone": "+82 10 9876 5432"}, currency="usd", total="12.50",
                 items=[{"sku": "X", "unit_price": "12.5"}]),
            sale("R-0003", refund=True, original_receipt="R-0001", total="6000",
                 items=[{"sku": "CUP-07", "qty": 1, "unit_price": "6000"}]),
            {"store": "S02", "receipt": "000123", "time": "2026-11-20T09:15:00Z", "total": 0,
             "customer": {"loyalty_id": "LOY-1"}},
        ]

    def bad_payloads(self):
        return [
            ({**sale(), "total": "-30000"}, "total"),
            ({**sale(), "customer": {"phone": "not a number"}}, "customer.phone"),
            ({k: v for k, v in sale().items() if k != "receipt"}, "receipt"),
        ]

    async def deliver(self, hub, raw, auth: Auth) -> Delivery:
        match auth:
            case Auth.SIGNED:
                resp = await post(hub, raw)
            case Auth.WRONG:
                resp = await post(hub, raw, secret=OTHER_SECRET)
            case Auth.UNSIGNED:
                resp = await post(hub, raw, headers={"Content-Type": "application/json"})
        return Delivery(accepted=resp.status in (200, 201), status=resp.status, detail=await resp.json())

    async def outbound(self, hub):
        return outbound_message("pos", {"type": "loyalty_id", "value": "LOY-77"}, text="thanks")

    async def test_send_returns_the_provider_reference(self, hub):
        # A till takes no messages: send() fails for good, so the outbound module never retries it.
        with pytest.raises(PermanentSendError):
            await self.adapter(hub).send(await self.outbound(hub))
