from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from hub.broker.events import event_row
from schemas import CHANNELS_KEY, CloudEvent, Interaction
from schemas.export import json_schema

MINIMAL = {"channel": "sms", "direction": "inbound", "kind": "message", "provider": "acme-gateway",
           "provider_ref": "MSG-0001", "occurred_at": "2026-11-23T10:00:00+09:00",
           "sender": {"identifiers": [{"type": "phone", "value": "+82 10-1234-5678"}], "display_name": "Kim Minji"},
           "content": {"text": "배송지 변경 부탁드립니다"}}


def test_design_example_validates_and_round_trips():
    item = Interaction.model_validate(MINIMAL)
    again = Interaction.model_validate_json(item.model_dump_json(by_alias=True))
    assert again == item
    assert [str(i) for i in item.identifiers()] == ["phone:+821012345678"]


def test_plugin_channels_are_accepted_only_when_registered():
    payload = {**MINIMAL, "channel": "kakao"}
    with pytest.raises(ValidationError, match="unknown channel"):
        Interaction.model_validate(payload)
    assert Interaction.model_validate(payload, context={CHANNELS_KEY: {"sms", "kakao"}}).channel == "kakao"


def test_outbound_identifiers_come_from_recipients():
    item = Interaction.model_validate({**MINIMAL, "direction": "outbound", "sender": None,
                                       "recipients": [{"identifiers": [{"type": "email", "value": "A@B.com"}]}]})
    assert [str(i) for i in item.identifiers()] == ["email:a@b.com"]


def test_metadata_is_bounded():
    with pytest.raises(ValidationError, match="at most 64 keys"):
        Interaction.model_validate({**MINIMAL, "metadata": {f"k{i}": i for i in range(65)}})


def test_outbox_event_body_is_a_valid_cloudevent():
    from datetime import UTC, datetime

    item = Interaction.model_validate(MINIMAL)
    row = event_row("interaction.received", now=datetime.now(UTC), data_json=item.model_dump_json(),
                    channel="sms", subject="p-1")
    event = CloudEvent.model_validate_json(row["body"])
    assert event.type == "interaction.received" and row["routing_key"] == "interaction.received.sms"
    assert event.data["provider_ref"] == "MSG-0001"
    assert str(event.id) == str(row["event_id"])


def test_json_schemas_are_published():
    schema = json_schema("interaction")
    assert schema["$schema"].endswith("2020-12/schema")
    assert "channel" in schema["properties"]
    assert json.dumps(json_schema("event"))
