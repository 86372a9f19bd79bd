"""GET /v1/openapi.json: a valid OpenAPI 3.1 document of every route the running hub serves."""

from __future__ import annotations

import inspect

import pytest
from openapi_spec_validator import validate

from hub.api.errors import is_not_routed
from hub.api.openapi import document
from hub.app import create_app

TWILIO = {"account_sid": "AC" + "0" * 32, "auth_token": "t", "from_number": "+15005550006"}


@pytest.fixture
def app(make_settings, tmp_path):
    return create_app(make_settings(adapters={"sms_twilio": TWILIO}, blob_dir=str(tmp_path / "blobs")))


def test_the_document_is_valid_openapi_and_lists_every_route(app):
    doc = document(app)
    validate(doc)
    for route in app.router.routes():
        info = route.resource.get_info()
        path = info.get("path") or info.get("formatter")
        if route.method != "HEAD" and not is_not_routed(route):
            assert route.method.lower() in doc["paths"][path], (route.method, path)
    # Adapters' webhooks are listed as mounted, with path parameters declared.
    assert "post" in doc["paths"]["/channels/sms_twilio/inbound"]
    assert doc["paths"]["/v1/messages/{id}"]["get"]["parameters"][0]["name"] == "id"


def test_every_handler_that_reads_a_json_model_declares_it(app):
    doc = document(app)
    for route in app.router.routes():
        if route.method in ("HEAD", "GET"):  # a websocket's frames are not a request body
            continue
        source = inspect.getsource(route.handler) if inspect.isfunction(route.handler) else ""
        if "model_validate_json" in source or "_body(request," in source:
            info = route.resource.get_info()
            path = info.get("path") or info.get("formatter")
            operation = doc["paths"][path][route.method.lower()]
            assert "requestBody" in operation, f"{route.method} {path} reads a model but does not declare it"
    body = doc["paths"]["/v1/interactions"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/Interaction"}
    assert "channel" in doc["components"]["schemas"]["Interaction"]["properties"]
    assert "MessageRequest" in doc["components"]["schemas"] and "ProfilePatch" in doc["components"]["schemas"]


async def test_the_hub_serves_it(aiohttp_client, app):
    client = await aiohttp_client(app)
    resp = await client.get("/v1/openapi.json")
    assert resp.status == 200
    assert (await resp.json())["paths"].keys() == document(app)["paths"].keys()
