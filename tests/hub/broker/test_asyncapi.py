"""The AsyncAPI document: valid against the official AsyncAPI 3.0.0 JSON Schema, and it lists every
routing key the code publishes, found by reading the code (every `event_row(...)` call under hub/),
not from a list kept beside it."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from hub.broker.asyncapi import document
from hub.broker.events import event_row
from routing.events import AgentEventKind, TaskEventKind
from schemas import EventType
from tests import services

ROOT = Path(__file__).resolve().parents[3]
SPECS_PACKAGE = "@asyncapi/specs@6"
SCHEMA_FILE = "node_modules/@asyncapi/specs/schemas/3.0.0-without-$id.json"


@pytest.fixture(scope="module")
def official_schema(request):
    """The AsyncAPI 3.0.0 JSON Schema as the AsyncAPI project publishes it (npm @asyncapi/specs),
    fetched once into pytest's cache; OMNIHUB_ASYNCAPI_SPECS may name a directory holding it."""
    where = os.environ.get("OMNIHUB_ASYNCAPI_SPECS") or str(request.config.cache.mkdir("asyncapi-specs"))
    path = Path(where) / SCHEMA_FILE
    if not path.exists() and shutil.which("npm"):
        subprocess.run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", where, SPECS_PACKAGE],
                       capture_output=True, timeout=180)
    if not path.exists():
        services.unavailable(f"the official AsyncAPI schema is not available (npm install {SPECS_PACKAGE})")
    return json.loads(path.read_text())


def test_document_is_valid_asyncapi_3(official_schema):
    validator = jsonschema.Draft7Validator(official_schema)
    errors = [f"{list(e.path)}: {e.message[:200]}" for e in validator.iter_errors(document())]
    assert errors == []
    broken = document()
    broken["operations"]["publish.profile.created"]["action"] = "publish"  # AsyncAPI 2 wording
    assert not validator.is_valid(broken)  # the check has teeth


def _validator(doc: dict, pointer: str) -> jsonschema.Draft202012Validator:
    registry = Registry().with_resource("urn:asyncapi", Resource.from_contents(doc, default_specification=DRAFT202012))
    return jsonschema.Draft202012Validator({"$ref": f"urn:asyncapi#{pointer}"}, registry=registry)


def test_payload_schemas_accept_what_the_code_sends():
    doc = document()
    row = event_row(EventType.PROFILE_UPDATED, now=datetime.now(UTC),
                    subject="01", data={"profile_id": "0192d5a8-0000-7000-8000-000000000001", "changed": {"tier": "vip"},
                                        "source": "command"})
    _validator(doc, "/components/messages/profile.updated/payload").validate(json.loads(row["body"]))
    command = {"external_id": "erp:C-1", "fields": {"display_name": "Kim", "tier": "vip"}}
    _validator(doc, "/components/messages/command.profile.upsert/payload").validate(command)
    with pytest.raises(jsonschema.ValidationError):
        _validator(doc, "/components/messages/command.profile.upsert/payload").validate({"fields": {}})


# --- routing keys, read from the code ------------------------------------------------------------

RULE = "{rule}"  # a type named in a rule file: only known at run time


def _call_name(func: ast.expr) -> str | None:
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _enclosing_function(node: ast.AST, parents) -> ast.FunctionDef | None:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.FunctionDef):
            return node
    return None


def _types(expr: ast.expr, node: ast.AST, tree: ast.Module, parents, where: str, has_channel: bool) -> set[str]:
    """The event types an expression passed as event_row's first argument can hold."""
    match expr:
        case ast.Attribute(value=ast.Name(id="EventType"), attr=attr):
            return {EventType[attr].value}
        case ast.IfExp(body=body, orelse=orelse):
            return (_types(body, node, tree, parents, where, has_channel)
                    | _types(orelse, node, tree, parents, where, has_channel))
        case ast.Attribute(attr="event_type"):
            # The router's TaskEvent/AgentEvent.event_type: tasks are published with their channel,
            # agents without (hub/assignment/router_service.py).
            kinds = [f"task.{k.value}" for k in TaskEventKind] if has_channel else [f"agent.{k.value}" for k in AgentEventKind]
            return set(kinds)
        case ast.Name(id=name):
            function = _enclosing_function(node, parents)
            assert function is not None, f"{where}: event type {name} outside a function"
            for sub in ast.walk(function):  # bound by `case Publish(event_type=name)`: a rule's publish
                if (isinstance(sub, ast.MatchClass) and _call_name(sub.cls) == "Publish"
                        and any(isinstance(p, ast.MatchAs) and p.name == name for p in sub.kwd_patterns)):
                    return {RULE}
            params = [a.arg for a in function.args.args]
            assert name in params, f"{where}: cannot tell which types {name} holds"
            index = params.index(name)
            found: set[str] = set()
            for call in ast.walk(tree):  # the callers of this function in its module
                if isinstance(call, ast.Call) and _call_name(call.func) == function.name and len(call.args) > index:
                    found |= _types(call.args[index], call, tree, parents, where, has_channel)
            assert found, f"{where}: no caller of {function.name} found"
            return found
    raise AssertionError(f"{where}: cannot tell which event types {ast.unparse(expr)} holds")


def published_routing_keys() -> set[str]:
    """Every routing-key shape hub/ can publish: the type, plus `.*` where a channel (or command) is added."""
    keys: set[str] = set()
    for path in sorted((ROOT / "hub").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        parents = _parents(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _call_name(node.func) == "event_row" and node.args:
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                has_channel = any(k.arg == "channel" and not (isinstance(k.value, ast.Constant) and k.value.value is None)
                                  for k in node.keywords)
                for event_type in _types(node.args[0], node, tree, parents, where, has_channel):
                    keys.add(event_type if event_type == RULE else event_type + (".*" if has_channel else ""))
    return keys


def test_the_code_publishes_what_the_scan_expects_to_find():
    keys = published_routing_keys()
    # A few anchors, so a scan that silently found nothing cannot pass the test below.
    assert {"interaction.received.*", "profile.created", "profile.erased", "task.assigned.*",
            "agent.presence_changed", "command.completed.*", RULE} <= keys


def test_every_published_routing_key_is_in_the_document():
    doc = document()
    addresses = {re.sub(r"\{[^}]+\}", "*", c["address"]) for c in doc["channels"].values()
                 if not c.get("x-omnihub-open-address") and c["bindings"]["amqp"]["exchange"]["name"] == "omnihub.events"}
    missing = sorted(k for k in published_routing_keys() - {RULE} if k not in addresses)
    assert missing == []
    assert any(c.get("x-omnihub-open-address") for c in doc["channels"].values())  # for rules' publish types


async def test_the_hub_serves_the_document(client):
    resp = await client.get("/v1/asyncapi.json")
    assert resp.status == 200
    assert await resp.json() == json.loads(json.dumps(document()))
