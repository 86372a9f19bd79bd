"""Actions as data: what a matched rule asks the hub to do. The evaluator never performs them.

Each action is a frozen dataclass whose `kind` is its YAML key. `ACTIONS` describes every
argument (converter, required or default) so the loader can check them and point at the line;
`start_timer` and `set_profile` take structured arguments and are read by the loader itself.
"""

from __future__ import annotations

import difflib
import re
import zoneinfo
from collections.abc import Callable, Collection
from dataclasses import dataclass, fields
from datetime import date, timedelta
from typing import Any, ClassVar

from .conditions import Condition
from .durations import parse_duration
from .errors import SpecError

_NAME = re.compile(r"^[\w.-]{1,64}$")
_TAG = re.compile(r"^[\w.:-]{1,64}$")  # schemas.interaction.Tag
_EVENT = re.compile(r"^[a-z_]+(\.[a-z_]+)+$")  # schemas.events.CloudEvent.type
PURPOSES = ("transactional", "marketing")
PROFILE_FIELDS = ("display_name", "locale", "timezone", "birthday", "owner", "tier")


@dataclass(frozen=True, slots=True)
class Route:
    kind: ClassVar[str] = "route"
    queue: str
    priority: int | None = None  # None: the queue's default
    skills: tuple[str, ...] = ()
    owner_first: bool = False  # offer the profile's owner first, for the queue's preference timeout


@dataclass(frozen=True, slots=True)
class SetPriority:
    kind: ClassVar[str] = "set_priority"
    priority: int


@dataclass(frozen=True, slots=True)
class AddTag:
    kind: ClassVar[str] = "add_tag"
    tag: str


@dataclass(frozen=True, slots=True)
class SetProfile:
    kind: ClassVar[str] = "set_profile"
    field: str  # one of PROFILE_FIELDS, or attributes.<key>
    value: Any


@dataclass(frozen=True, slots=True)
class AddSegment:
    kind: ClassVar[str] = "add_segment"
    segment: str


@dataclass(frozen=True, slots=True)
class SendMessage:
    kind: ClassVar[str] = "send_message"
    template: str
    purpose: str  # transactional | marketing; required, because marketing must pass consent checks
    channel: str | tuple[str, ...] = "auto"  # "auto" (profile preferences) or channels in order
    delay: timedelta = timedelta(0)


@dataclass(frozen=True, slots=True)
class AutoReply:
    kind: ClassVar[str] = "auto_reply"
    template: str  # answered on the interaction's own channel and conversation


@dataclass(frozen=True, slots=True)
class Publish:
    kind: ClassVar[str] = "publish"
    event_type: str


@dataclass(frozen=True, slots=True)
class Escalate:
    kind: ClassVar[str] = "escalate"
    queue: str | None = None
    skills: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Stop:
    """Ends evaluation after this rule; consumed by the evaluator, never returned as an action."""

    kind: ClassVar[str] = "stop"


@dataclass(frozen=True, slots=True)
class NoRoute:
    """The interaction becomes no task, whatever a route action or the default queue says (a
    newsletter reply, a delivery notice): the routing step honours it over every route."""

    kind: ClassVar[str] = "no_route"


@dataclass(frozen=True, slots=True)
class StartTimer:
    """Ask the hub to persist a timer; when it fires, `timers.fire_timer` decides what happens."""

    kind: ClassVar[str] = "start_timer"
    rule: str
    name: str
    after: timedelta
    then: tuple[Action, ...]
    unless: Condition | None = None
    cancel_on: tuple[str, ...] = ()  # event types that cancel the timer for the same interaction

    @property
    def key(self) -> str:
        return f"{self.rule}/{self.name}"


Action = (
    Route
    | SetPriority
    | AddTag
    | SetProfile
    | AddSegment
    | SendMessage
    | AutoReply
    | Publish
    | Escalate
    | Stop
    | NoRoute
    | StartTimer
)


def action_to_dict(action: Action) -> dict[str, Any]:
    """JSON-friendly form, e.g. {"action": "route", "queue": "vip", ...}; durations in seconds."""
    out: dict[str, Any] = {"action": action.kind}
    for f in fields(action):
        value = getattr(action, f.name)
        if isinstance(value, timedelta):
            value = value.total_seconds()
        elif f.name == "then":
            value = [action_to_dict(a) for a in value]
        elif f.name == "unless":
            value = None if value is None else value.to_dict()
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, date):
            value = value.isoformat()
        out[f.name] = value
    return out


# --- argument converters: value -> checked value, or SpecError -------------------------------

Converter = Callable[[Any, Collection[str]], Any]  # (value, known channels) -> value


def _name(value: Any, channels: Collection[str]) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise SpecError(f"expected a name of letters, digits, '.', '_' or '-' (1-64), not {value!r}")
    return value


def _priority(value: Any, channels: Collection[str]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise SpecError(f"priority must be a whole number from 0 to 100, not {value!r}")
    return value


def _skills(value: Any, channels: Collection[str]) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise SpecError(f"skills must be a skill name or a non-empty list of them, not {value!r}")
    return tuple(_name(s, channels) for s in items)


def _flag(value: Any, channels: Collection[str]) -> bool:
    if not isinstance(value, bool):
        raise SpecError(f"expected true or false, not {value!r}")
    return value


def _tag(value: Any, channels: Collection[str]) -> str:
    if not isinstance(value, str) or not _TAG.match(value):
        raise SpecError(f"a tag is 1-64 letters, digits or '_.:-', not {value!r}")
    return value


def _event_type(value: Any, channels: Collection[str]) -> str:
    if not isinstance(value, str) or not _EVENT.match(value):
        raise SpecError(f"an event type looks like order.flagged (lower case, dotted), not {value!r}")
    return value


def _purpose(value: Any, channels: Collection[str]) -> str:
    if value not in PURPOSES:
        hint = suggest(value, PURPOSES)
        raise SpecError(f"purpose must be transactional or marketing, not {value!r}{hint}")
    return value


def _duration(value: Any, channels: Collection[str]) -> timedelta:
    return parse_duration(value)


def _channel(value: Any, channels: Collection[str]) -> str | tuple[str, ...]:
    if value == "auto":
        return "auto"
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise SpecError(f"channel must be auto, a channel name or a list of them, not {value!r}")
    for item in items:
        check_channel(item, channels)
    return tuple(items)


def check_channel(value: Any, channels: Collection[str]) -> str:
    if not isinstance(value, str) or value not in channels:
        raise SpecError(
            f"unknown channel {value!r}{suggest(value, sorted(channels))} "
            f"(known: {', '.join(sorted(channels))})"
        )
    return value


def suggest(word: Any, choices: Collection[str]) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def check_profile_value(field_name: str, value: Any) -> Any:
    """Check one `set_profile` entry; returns the value with lists frozen to tuples."""
    if field_name.startswith("attributes.") and _NAME.match(field_name.removeprefix("attributes.")):
        if isinstance(value, list):
            return tuple(_attribute(v) for v in value)
        return _attribute(value)
    if field_name not in PROFILE_FIELDS:
        raise SpecError(
            f"set_profile cannot set {field_name!r}{suggest(field_name, PROFILE_FIELDS)}; "
            f"settable: {', '.join(PROFILE_FIELDS)}, attributes.<key>"
        )
    if value is None:
        return None  # clears the field
    if field_name == "birthday":
        if not isinstance(value, date):
            raise SpecError(f"birthday must be a date like 1990-11-23, not {value!r}")
        return value
    if not isinstance(value, str):
        raise SpecError(f"{field_name} must be a string, not {value!r}")
    if field_name == "timezone":
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            raise SpecError(f"unknown timezone {value!r}; use an IANA name like Asia/Seoul") from None
    return value


def _attribute(value: Any) -> Any:
    if value is not None and not isinstance(value, (str, int, float, bool, date)):
        raise SpecError(f"an attribute value must be a string, number, boolean or date, not {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Arg:
    convert: Converter
    required: bool = False


@dataclass(frozen=True, slots=True)
class ActionSpec:
    cls: type
    args: dict[str, Arg]
    shorthand: str | None = None  # `add_tag: vip` means `add_tag: {tag: vip}`
    check: Callable[[dict[str, Any]], None] | None = None  # cross-argument rule


def _escalate_target(args: dict[str, Any]) -> None:
    if "queue" not in args and "skills" not in args:
        raise SpecError("escalate needs a queue or skills")


ACTIONS: dict[str, ActionSpec] = {
    "route": ActionSpec(
        Route,
        {
            "queue": Arg(_name, True),
            "priority": Arg(_priority),
            "skills": Arg(_skills),
            "owner_first": Arg(_flag),
        },
        shorthand="queue",
    ),
    "set_priority": ActionSpec(SetPriority, {"priority": Arg(_priority, True)}, shorthand="priority"),
    "add_tag": ActionSpec(AddTag, {"tag": Arg(_tag, True)}, shorthand="tag"),
    "add_segment": ActionSpec(AddSegment, {"segment": Arg(_name, True)}, shorthand="segment"),
    "send_message": ActionSpec(
        SendMessage,
        {
            "template": Arg(_name, True),
            "purpose": Arg(_purpose, True),
            "channel": Arg(_channel),
            "delay": Arg(_duration),
        },
    ),
    "auto_reply": ActionSpec(AutoReply, {"template": Arg(_name, True)}, shorthand="template"),
    "publish": ActionSpec(Publish, {"event_type": Arg(_event_type, True)}, shorthand="event_type"),
    "escalate": ActionSpec(
        Escalate, {"queue": Arg(_name), "skills": Arg(_skills)}, shorthand="queue", check=_escalate_target
    ),
}
# Read by the loader itself: set_profile takes arbitrary field names, start_timer nests rules, stop
# and no_route are bare.
STRUCTURED = ("set_profile", "start_timer", "stop", "no_route")
ACTION_NAMES = (*ACTIONS, *STRUCTURED)
