"""The demo's printed summary: the story's requests with the hub's answers, then what the hub
stored (a `Readback`), laid out for a person at a terminal."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hub.demo.readback import Readback
from hub.demo.story import Story

_RULE = "-" * 78


@dataclass(frozen=True)
class StandIn:
    """A local server the demo runs in place of a provider's API."""

    provider: str
    adapter: str
    base_url: str
    listing: str  # the path that lists what it took
    login: tuple[str, str]  # the demo config's fictional account (basic auth, as the provider asks)


def render(base_url: str, where: str, story: Story, seen: Readback, stand_ins: Sequence[StandIn] = ()) -> str:
    lines = [f"omnihub demo: the hub is running at {base_url} ({where})"]
    lines += _stand_ins(stand_ins)
    lines += ["", "The story, sent to the hub's real entry points", _RULE]
    lines += _steps(story, seen)
    lines += ["", f"Read back from the hub's API ({base_url})", _RULE]
    lines += _profile(seen.profile)
    lines += _timeline(seen)
    lines += _tasks(seen.tasks)
    lines += _outbox(seen.outbox)
    return "\n".join(lines)


def explore(base_url: str, profile_id: str, stand_ins: Sequence[StandIn] = ()) -> str:
    lines = [
        "", "Explore the API while the hub runs (Ctrl-C stops it):",
        f"  curl -s {base_url}/v1/profiles/{profile_id}/timeline",
        f"  curl -s {base_url}/v1/tasks",
        f"  curl -s {base_url}/v1/outbox",
        f"  curl -s {base_url}/v1/openapi.json   # every route",
        f"  the agent console: {base_url}/console/ (a reply goes out through the stand-in below)",
    ]
    for stand_in in stand_ins:
        user, password = stand_in.login
        lines.append(f"  curl -s -u {user}:{password} {stand_in.base_url}{stand_in.listing}"
                     f"   # what {stand_in.provider}'s stand-in took")
    return "\n".join(lines)


def _stand_ins(stand_ins: Sequence[StandIn]) -> list[str]:
    if not stand_ins:
        return []
    lines = ["Providers are played by local stand-ins the demo runs: nothing leaves this machine."]
    lines += [f"  {s.provider:<8} ({s.adapter}) -> {s.base_url}" for s in stand_ins]
    return lines


def _steps(story: Story, seen: Readback) -> list[str]:
    lines = []
    for n, step in enumerate(story.steps, 1):
        lines.append(f"{n}. {step.what}")
        lines.append(f"     {step.request} -> {step.status} {_answer(step.answer)}")
    retried = [item for item in seen.timeline if item.get("provider_ref") == story.message_sid]
    lines.append(f"   Twilio's retry changed nothing: the profile's timeline holds {len(retried)} interaction(s)"
                 f" with MessageSid {story.message_sid}"
                 + (f" (id {retried[0]['id']})" if len(retried) == 1 else ""))
    return lines


def _answer(answer: dict[str, Any] | str) -> str:
    if isinstance(answer, str):  # TwiML: an empty <Response/> means no reply text to the customer
        return " ".join(answer.split())
    return ", ".join(f"{key}={json.dumps(value)}" for key, value in answer.items() if key in (
        "id", "created", "presence", "error", "message"))


def _profile(profile: dict[str, Any]) -> list[str]:
    lines = [f"Customer profile {profile['id']}  (GET /v1/profiles?identifier=phone:...)",
             f"  name: {profile.get('display_name') or '-'}"]
    lines += [f"  {ident['type']:<6} {ident['value']}" for ident in profile["identifiers"]]
    return lines


def _timeline(seen: Readback) -> list[str]:
    tasks = {task["interaction_id"]: task for task in seen.tasks}
    lines = ["", f"Timeline: {len(seen.timeline)} interaction(s) on "
             f"{len({i['channel'] for i in seen.timeline})} channel(s)  (GET /v1/profiles/{{id}}/timeline)"]
    for item in reversed(seen.timeline):  # the API gives newest first; a story reads oldest first
        text = item.get("subject") or (item.get("content") or {}).get("text") or ""
        lines.append(f"  {item['occurred_at'][:19]}  {item['channel']:<5} via {item['provider']:<9} id {item['id']}")
        lines.append(f"      \"{text[:60]}\"")
        lines.append(f"      rules (ruleset {item.get('ruleset_version') or '-'}): tags {item.get('tags') or []},"
                     f" priority {item.get('priority', 0)}")
        if task := tasks.get(item["id"]):
            lines.append(f"      routed: task {task['id']} in queue {task['queue']} (priority {task['priority']}), "
                         f"{task['state']}" + (f" to agent {task['agent_id']}" if task["agent_id"] else ""))
        else:
            lines.append("      routed: no live task")
    return lines


def _tasks(tasks: list[dict[str, Any]]) -> list[str]:
    waiting = [t for t in tasks if t["state"] == "waiting"]
    return ["", f"Routing: {len(tasks)} task(s) live, {len(waiting)} waiting for an agent  (GET /v1/tasks)"]


def _outbox(outbox: dict[str, Any]) -> list[str]:
    broker = outbox["broker"]["state"]
    lines = ["", f"Outbox: {outbox['pending']} event(s) waiting, broker {broker}  (GET /v1/outbox)"]
    for key, counts in outbox["routing_keys"].items():
        lines.append(f"  {key:<32} {counts['pending']:>3} waiting  {counts['published']:>3} published")
    if broker == "disabled":
        lines.append("  With OMNIHUB_AMQP_URL set (e.g. amqp://guest:guest@127.0.0.1:5672/%2F) the relay publishes")
        lines.append(f"  them to the '{outbox['exchange']}' topic exchange, these routing keys, in order.")
    return lines
