"""The AsyncAPI 3.0 document of everything the hub says and hears on RabbitMQ (DESIGN section 5),
generated from the code's own catalogues and schemas: the EventType enum, the router's task and
agent event kinds, the commands in schemas.commands, and the pydantic models' JSON Schemas.
`omnihub asyncapi` prints it; `GET /v1/asyncapi.json` serves it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic.json_schema import models_json_schema

from hub.broker.topology import Topology
from routing.events import AgentEventKind, TaskEventKind
from schemas import BUILTIN_CHANNELS, CloudEvent, EventType, Interaction
from schemas.commands import COMMAND_MODELS, CommandName

BINDING_VERSION = "0.3.0"
SCHEMAS = "#/components/schemas/"
_OBJECT: dict[str, Any] = {"type": "object"}
_STR = {"type": "string"}
_ID = {"type": "string", "format": "uuid"}


@dataclass(frozen=True)
class EventSpec:
    type: str
    description: str
    data: dict[str, Any]
    suffix: str | None = None  # the address parameter after the type: "channel" or "command"


def _obj(required: dict[str, Any], **optional: Any) -> dict[str, Any]:
    return {"type": "object", "properties": {**required, **optional}, "required": sorted(required)}


_TASK = {"type": "object", "description": "the task (queue, channel, agent, priority, times) and `event`, the transition"}
_AGENT = _obj({"kind": _STR, "agent_id": _STR, "at": {"type": "number"}, "presence": _STR}, details=_OBJECT)
_COMMAND = _obj({"command": _STR, "message_id": _STR}, correlation_id={"type": ["string", "null"]})

_NULLABLE_ID = {"type": ["string", "null"], "format": "uuid"}
_MESSAGE = _obj({"message_id": _ID, "channel": _STR, "purpose": _STR},
                provider_ref={"type": ["string", "null"]}, interaction_id=_NULLABLE_ID, in_reply_to=_NULLABLE_ID)

_DESCRIPTIONS = {
    EventType.INTERACTION_RECEIVED: ("an inbound interaction was stored", {"$ref": SCHEMAS + "Interaction"}, "channel"),
    EventType.INTERACTION_SENT: ("an outbound interaction was stored", {"$ref": SCHEMAS + "Interaction"}, "channel"),
    EventType.INTERACTION_UPDATED: ("a stored interaction changed: a call's status, duration or outcome was reported",
                                    {"$ref": SCHEMAS + "Interaction"}, "channel"),
    EventType.PROFILE_CREATED: ("a new customer was seen", _obj({"profile_id": _ID}, display_name={"type": ["string", "null"]},
                                                                source=_STR), None),
    EventType.PROFILE_UPDATED: ("a profile changed", _obj({"profile_id": _ID, "changed": _OBJECT, "source": _STR}), None),
    EventType.PROFILE_MERGED: ("two profiles turned out to be one customer",
                               _obj({"survivor_id": _ID, "merged_id": _ID, "reason": _STR}), None),
    EventType.PROFILE_UNMERGED: ("a merge was undone", _obj({"survivor_id": _ID, "merged_id": _ID}), None),
    EventType.PROFILE_ERASED: ("a customer's personal data was erased: erase your copy too",
                               _obj({"profile_id": _ID}), None),
    EventType.MESSAGE_DELIVERED: ("a provider confirmed delivery of an outbound message", _MESSAGE, "channel"),
    EventType.MESSAGE_FAILED: ("an outbound message failed for good (the provider's report, or sending gave up)",
                               _obj({**_MESSAGE["properties"]}, error_code=_STR, error_message=_STR), "channel"),
    EventType.CAMPAIGN_COMPLETED: ("a campaign finished sending", _OBJECT, None),
    EventType.COMMAND_COMPLETED: ("a command from omnihub.commands was applied (or was a duplicate)", _COMMAND, "command"),
    EventType.COMMAND_REJECTED: ("reserved: a refused command is reported today by its dead letter (omnihub.dead)",
                                 _COMMAND, "command"),
}
# The router reports these with its own kinds (routing.events); EventType names only some of them.
_ROUTER_TYPES = {f"task.{k.value}" for k in TaskEventKind} | {f"agent.{k.value}" for k in AgentEventKind}


def event_catalogue() -> list[EventSpec]:
    specs = [EventSpec(t.value, d, data, suffix) for t, (d, data, suffix) in _DESCRIPTIONS.items()]
    missing = {t.value for t in EventType} - {s.type for s in specs} - _ROUTER_TYPES
    if missing:  # a new EventType must be described here before the document can be built
        raise AssertionError(f"event types without an AsyncAPI description: {sorted(missing)}")
    specs += [EventSpec(f"task.{k.value}", f"routing: a task {k.value.replace('_', ' ')}", _TASK, "channel")
              for k in TaskEventKind]
    specs += [EventSpec(f"agent.{k.value}", f"routing: an agent {k.value.replace('_', ' ')}", _AGENT)
              for k in AgentEventKind]
    return specs


def _exchange(name: str) -> dict[str, Any]:
    return {"amqp": {"is": "routingKey", "bindingVersion": BINDING_VERSION,
                     "exchange": {"name": name, "type": "topic", "durable": True, "autoDelete": False, "vhost": "/"}}}


def _queue(name: str) -> dict[str, Any]:
    return {"amqp": {"is": "queue", "bindingVersion": BINDING_VERSION,
                     "queue": {"name": name, "durable": True, "exclusive": False, "autoDelete": False, "vhost": "/"}}}


def _component_schemas() -> dict[str, Any]:
    models = [(CloudEvent, "validation"), (Interaction, "validation"),
              *((m, "validation") for m in COMMAND_MODELS.values())]
    _, top = models_json_schema(models, ref_template=SCHEMAS + "{model}")
    return top["$defs"]


def document(t: Topology | None = None) -> dict[str, Any]:
    t = t or Topology()
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    channel_param = {"description": "the interaction's channel (plugin adapters add their own)",
                     "enum": sorted(BUILTIN_CHANNELS)}
    command_param = {"description": "the command answered", "enum": [c.value for c in CommandName]}
    for spec in event_catalogue():
        messages[spec.type] = {
            "name": spec.type, "title": spec.type, "summary": spec.description,
            "contentType": "application/cloudevents+json",
            "payload": {"allOf": [{"$ref": SCHEMAS + "CloudEvent"},
                                  {"type": "object", "properties": {"type": {"const": spec.type}, "data": spec.data}}]},
            "bindings": {"amqp": {"messageType": spec.type, "bindingVersion": BINDING_VERSION}},
        }
        channel: dict[str, Any] = {
            "address": spec.type + (f".{{{spec.suffix}}}" if spec.suffix else ""),
            "description": spec.description, "messages": {spec.type: {"$ref": f"#/components/messages/{spec.type}"}},
            "bindings": _exchange(t.events_exchange)}
        if spec.suffix:
            channel["parameters"] = {spec.suffix: channel_param if spec.suffix == "channel" else command_param}
        channels[spec.type] = channel
        operations[f"publish.{spec.type}"] = _operation("send", spec.type, spec.type)
    channels["rule.published"] = {
        "address": "{ruleEventType}", "description": "a type a rule's `publish` action names (configured per "
        "deployment), plus `.{channel}` when the rule fired on an interaction; its data is the interaction",
        "parameters": {"ruleEventType": {"description": "the rule's event_type, e.g. vip.contacted"}},
        "messages": {"rule.published": {"$ref": "#/components/messages/rule.published"}},
        "bindings": _exchange(t.events_exchange), "x-omnihub-open-address": True}
    messages["rule.published"] = {"name": "rule.published", "contentType": "application/cloudevents+json",
                                  "payload": {"$ref": SCHEMAS + "CloudEvent"}}
    operations["publish.rule.published"] = _operation("send", "rule.published", "rule.published")
    for name in CommandName:
        cid = f"command.{name.value}"
        model = COMMAND_MODELS[name].__name__
        messages[cid] = {"name": name.value, "title": name.value, "summary": (COMMAND_MODELS[name].__doc__ or "").strip().split("\n")[0],
                         "contentType": "application/json", "payload": {"$ref": SCHEMAS + model},
                         "bindings": {"amqp": {"messageType": name.value, "bindingVersion": BINDING_VERSION}},
                         "description": "Publish to the commands exchange with this routing key, a unique "
                                        "`message_id` (the dedupe key) and delivery_mode 2."}
        channels[cid] = {"address": name.value, "messages": {cid: {"$ref": f"#/components/messages/{cid}"}},
                         "description": f"queue {t.commands_queue}, bound '#' on exchange {t.commands_exchange}",
                         "bindings": _exchange(t.commands_exchange)}
        operations[f"receive.{cid}"] = _operation("receive", cid, cid)
    channels["dead"] = {
        "address": "{queue}", "description": f"dead letters on exchange {t.dead_exchange}, all in queue "
        f"{t.dead_queue}; the routing key is the queue the message died in, headers x-omnihub-reason, "
        "-error, -attempts, -original-exchange, -original-routing-key say why and whence",
        "parameters": {"queue": {"description": "the queue the message died in"}},
        "messages": {"dead": {"$ref": "#/components/messages/dead"}}, "bindings": _exchange(t.dead_exchange)}
    messages["dead"] = {"name": "dead", "summary": "the message as it was, with dead-letter headers",
                        "headers": _obj({"x-omnihub-reason": _STR, "x-omnihub-original-exchange": _STR,
                                         "x-omnihub-original-routing-key": _STR},
                                        **{"x-omnihub-error": _STR, "x-omnihub-attempts": {"type": "integer"},
                                           "x-omnihub-queue": _STR, "x-omnihub-dead-at": {"type": "integer"}}),
                        "payload": {}}
    operations["send.dead"] = _operation("send", "dead", "dead")
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "omnihub", "version": "0.1.0",
                 "description": "Events the hub publishes (CloudEvents 1.0, structured mode, message_id = event "
                                "id: dedupe on it), commands it consumes, and dead letters. Bind a durable queue "
                                "of your own to the events exchange with the routing keys you want."},
        "servers": {"rabbitmq": {"host": "localhost:5672", "protocol": "amqp", "protocolVersion": "0.9.1"}},
        "defaultContentType": "application/cloudevents+json",
        "channels": channels,
        "operations": operations,
        "components": {"schemas": _component_schemas(), "messages": messages},
    }


def _operation(action: str, channel: str, message: str) -> dict[str, Any]:
    return {"action": action, "channel": {"$ref": f"#/channels/{channel}"},
            "messages": [{"$ref": f"#/channels/{channel}/messages/{message}"}]}
