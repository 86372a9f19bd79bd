"""JSON Schema export of the public models (`omnihub schema`, `GET /v1/schema/...`)."""

from __future__ import annotations

from typing import Any

from .events import CloudEvent
from .interaction import Interaction

SCHEMA_MODELS = {"interaction": Interaction, "event": CloudEvent}


def json_schema(name: str) -> dict[str, Any]:
    schema = SCHEMA_MODELS[name].model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"urn:omnihub:schema:{name}"
    return schema
