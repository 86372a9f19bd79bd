"""The contract every channel adapter passes, run through a real hub (real database, real pipeline).

Subclass `AdapterContract` in tests/adapters/test_<adapter>_contract.py and provide:

- fixture `hub`: an aiohttp TestClient of `create_app` with the adapter configured;
- `samples()`: provider payloads that must normalize (recorded shapes, not invented ones);
- `bad_payloads()`: payloads that must be refused, with the field the error must name;
- `deliver(hub, raw, auth)`: put a payload through the adapter's real inbound path (a webhook POST,
  an SMTP session...) signed properly, not at all, or wrongly; returns a `Delivery`;
- `outbound(hub)`: an OutboundMessage the adapter can send to its test peer.

What the contract holds every adapter to: each sample normalizes to a valid Interaction of the
adapter's channel carrying a dedupe key; a repeat delivery is one interaction; an unsigned or
wrongly signed delivery is refused (403 for webhooks) and writes nothing; a bad payload is refused
with an error naming the field; send() returns the provider's reference.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import ValidationError

from adapters.base import ChannelAdapter, OutboundMessage, PayloadError
from hub import keys
from schemas import Direction, Interaction
from tests.hub.conftest import count_rows


class Auth(enum.Enum):
    SIGNED = "signed"
    UNSIGNED = "unsigned"
    WRONG = "wrong"


@dataclass
class Delivery:
    accepted: bool
    status: int | str  # HTTP status, or the SMTP reply code
    detail: Any = None  # the response body (JSON for 4xx)


class AdapterContract:
    adapter_name: str

    # --- hooks ---
    def samples(self) -> list[Any]:
        raise NotImplementedError

    def bad_payloads(self) -> list[tuple[Any, str]]:
        raise NotImplementedError

    async def deliver(self, hub, raw: Any, auth: Auth) -> Delivery:
        raise NotImplementedError

    async def outbound(self, hub) -> OutboundMessage:
        raise NotImplementedError

    # --- helpers ---
    def adapter(self, hub) -> ChannelAdapter:
        return hub.app[keys.ADAPTERS][self.adapter_name]

    # --- the contract ---
    async def test_samples_normalize_to_valid_interactions(self, hub):
        adapter = self.adapter(hub)
        samples = self.samples()
        assert samples, "an adapter must ship sample payloads"
        refs = set()
        for raw in samples:
            interaction = adapter.normalize(raw)
            assert interaction.channel == adapter.channel
            assert interaction.direction is Direction.INBOUND
            assert interaction.provider == adapter.provider
            assert interaction.provider_ref, "every inbound interaction needs a dedupe key"
            refs.add(interaction.provider_ref)
            again = Interaction.model_validate_json(interaction.model_dump_json(by_alias=True),
                                                    context=hub.app[keys.VALIDATION_CONTEXT])
            assert again.identifiers() == interaction.identifiers()
        assert len(refs) == len(samples), "different messages must have different dedupe keys"

    async def test_normalize_is_deterministic(self, hub):
        adapter = self.adapter(hub)
        for raw in self.samples():
            a, b = adapter.normalize(raw), adapter.normalize(raw)
            assert (a.provider_ref, a.conversation_key, a.identifiers()) == (b.provider_ref, b.conversation_key,
                                                                            b.identifiers())

    async def test_bad_payloads_are_refused_naming_the_field(self, hub):
        adapter = self.adapter(hub)
        for raw, field in self.bad_payloads():
            with pytest.raises((PayloadError, ValidationError)) as caught:
                adapter.normalize(raw)
            named = caught.value.field if isinstance(caught.value, PayloadError) else str(caught.value)
            assert field in named

    async def test_bad_payload_delivered_gets_a_clear_error_and_writes_nothing(self, hub):
        raw, field = self.bad_payloads()[0]
        delivery = await self.deliver(hub, raw, Auth.SIGNED)
        assert not delivery.accepted
        if isinstance(delivery.status, int) and delivery.status < 500 and isinstance(delivery.detail, dict):
            assert delivery.status == 422
            assert any(field in f["field"] for f in delivery.detail["fields"])
        assert await count_rows(hub.app, "interactions") == 0

    async def test_delivery_is_committed_and_a_repeat_is_one_interaction(self, hub):
        raw = self.samples()[0]
        first = await self.deliver(hub, raw, Auth.SIGNED)
        assert first.accepted, first
        assert await count_rows(hub.app, "interactions") == 1  # committed before the answer
        again = await self.deliver(hub, raw, Auth.SIGNED)
        assert again.accepted, again
        assert await count_rows(hub.app, "interactions") == 1
        assert await count_rows(hub.app, "outbox") >= 1

    @pytest.mark.parametrize("auth", [Auth.UNSIGNED, Auth.WRONG])
    async def test_unauthentic_delivery_is_refused_and_writes_nothing(self, hub, auth):
        delivery = await self.deliver(hub, self.samples()[0], auth)
        assert not delivery.accepted
        if isinstance(delivery.status, int) and delivery.status < 600:
            assert delivery.status in (403, 530, 535), delivery
        assert await count_rows(hub.app, "interactions") == 0
        assert await count_rows(hub.app, "outbox") == 0
        assert await count_rows(hub.app, "profiles") == 0

    async def test_send_returns_the_provider_reference(self, hub):
        message = await self.outbound(hub)
        result = await self.adapter(hub).send(message)
        assert result.provider_ref
        assert result.provider == self.adapter(hub).provider


def outbound_message(channel: str, to: dict[str, str], **fields: Any) -> OutboundMessage:
    return OutboundMessage(id=uuid.uuid4(), channel=channel, to=to, **fields)
