"""Queues, agents and tasks: the router's vocabulary (DESIGN section 7).

Configuration (Queue, EscalationStep, Capacity, RouterConfig) is pydantic, frozen and strict, so a
typo in a queue file is refused when it is loaded. Runtime state (Agent, Task) is slotted dataclasses:
the router mutates them on every decision, and pydantic's validated attribute assignment would cost
more than the decision itself. `to_dict()` / `from_dict()` give the plain data the hub persists.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SkillLevel = Annotated[int, Field(ge=0, le=100)]


class Strategy(enum.StrEnum):
    """How a queue picks among eligible agents who have room for the task's channel."""

    LONGEST_IDLE = "longest_idle"  # least recent routing activity (offer or completion) first
    LEAST_BUSY = "least_busy"  # smallest share of the capacity budget in use first
    ROUND_ROBIN = "round_robin"  # the agent offered a task longest ago first


class Presence(enum.StrEnum):
    OFFLINE = "offline"
    AVAILABLE = "available"
    AWAY = "away"
    WRAP_UP = "wrap_up"  # logged in and working on after-contact work: receives no offers


class TaskState(enum.StrEnum):
    WAITING = "waiting"
    OFFERED = "offered"
    ASSIGNED = "assigned"
    WRAP_UP = "wrap_up"
    COMPLETED = "completed"
    ABANDONED = "abandoned"
    CANCELLED = "cancelled"


# States in which a task holds part of an agent's capacity budget.
_AVAILABLE = Presence.AVAILABLE  # enum attribute lookups cost ~0.1 us: hot paths use module names
HOLDING_STATES = frozenset({TaskState.OFFERED, TaskState.ASSIGNED, TaskState.WRAP_UP})
TERMINAL_STATES = frozenset({TaskState.COMPLETED, TaskState.ABANDONED, TaskState.CANCELLED})


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# With the admission rule in Capacity.fits these give DESIGN's per-channel defaults from one budget:
# a call is exclusive (it needs an idle agent and then fills the budget), three chats (102) fill it
# and block a call, five emails/sms/faxes (100) fill it; mixed work shares it.
DEFAULT_COSTS: dict[str, int] = {"voice": 100, "chat": 34, "email": 20, "sms": 20, "fax": 20}


class Capacity(_Config):
    """An agent's capacity as one budget that each task spends according to its channel.

    A task fits while the agent has budget left (`used < budget`), so the last task may overshoot
    a little: that is what lets three chats of 34 fit in 100, where a strict `used + cost <= budget`
    would allow two. A task costing the whole budget (a call) is exclusive: it needs `used == 0`.
    """

    budget: int = Field(100, ge=1)
    costs: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_COSTS))
    default_cost: int = Field(20, ge=1, description="cost of a channel missing from costs (plugin channels)")
    max_per_channel: dict[str, int] = Field(default_factory=dict, description="optional limits, e.g. chat: 2")

    @field_validator("costs")
    @classmethod
    def _merge_defaults(cls, v: dict[str, int]) -> dict[str, int]:
        # Merged over the defaults so tuning chat alone keeps a call exclusive.
        if any(c < 1 for c in v.values()):
            raise ValueError("channel costs must be at least 1")
        return {**DEFAULT_COSTS, **v}

    def cost(self, channel: str) -> int:
        return self.costs.get(channel, self.default_cost)

    def fits(self, used: int, cost: int) -> bool:
        return used < self.budget and (used == 0 or cost < self.budget)


DEFAULT_CAPACITY = Capacity()


class EscalationStep(_Config):
    """After `after_s` seconds in the queue: change required skill levels (0 drops a skill) and/or
    move the task to another queue, where it keeps its original enqueue time and so its place."""

    after_s: float = Field(gt=0)
    skills: dict[str, SkillLevel] = Field(default_factory=dict)
    move_to: str | None = None

    @model_validator(mode="after")
    def _does_something(self) -> EscalationStep:
        if not self.skills and self.move_to is None:
            raise ValueError("an escalation step needs skills to widen or a queue to move to")
        return self


class Queue(_Config):
    name: str = Field(min_length=1, max_length=100)
    required_skills: dict[str, SkillLevel] = Field(default_factory=dict)
    strategy: Strategy = Strategy.LONGEST_IDLE
    sla_s: float = Field(20.0, gt=0, description="answer within this many seconds (service level threshold)")
    escalation: tuple[EscalationStep, ...] = ()
    wrapup_s: float | None = Field(None, gt=0, description="auto-complete wrap-up after; None: router's")

    @field_validator("escalation")
    @classmethod
    def _increasing(cls, v: tuple[EscalationStep, ...]) -> tuple[EscalationStep, ...]:
        if any(b.after_s <= a.after_s for a, b in zip(v, v[1:], strict=False)):
            raise ValueError("escalation steps must have strictly increasing after_s")
        return v


class RouterConfig(_Config):
    offer_timeout_s: float = Field(20.0, gt=0)
    max_missed_offers: int = Field(3, ge=1, description="missed offers in a row that set an agent away")
    preference_timeout_s: float = Field(30.0, ge=0, description="how long a task waits for a preferred agent")
    wrapup_timeout_s: float | None = Field(120.0, gt=0, description="auto-complete wrap-up; None: never")
    stats_window_s: float = Field(3600.0, gt=0)
    # Read by the hub, not the router: presence follows the agent's console connection.
    offline_grace_s: float | None = Field(15.0, ge=0, description="set an agent offline this long after its "
                                          "last console websocket closed (a reload reconnects first); None: never")


@dataclass(slots=True, eq=False)
class Agent:
    """An agent as the router sees it. `used`/`tasks`/`counts` are derived from the tasks it holds."""

    id: str
    skills: dict[str, int] = field(default_factory=dict)
    capacity: Capacity = DEFAULT_CAPACITY
    presence: Presence = Presence.OFFLINE
    idle_since: float | None = None
    missed_in_row: int = 0
    # --- runtime, rebuilt from the tasks on restore ---
    used: int = 0
    tasks: dict[str, str] = field(default_factory=dict)  # task id -> channel, for held tasks
    counts: dict[str, int] = field(default_factory=dict)  # channel -> held tasks
    last_offer_seq: int = 0
    version: int = 0  # bumped on every change that matters to matching; stale heap entries differ
    pools: list[Any] = field(default_factory=list, repr=False)
    # Heap of tasks waiting for this agent by name; an empty tuple until the first one, so that
    # 10,000 agents are not 10,000 more empty lists for the garbage collector to traverse.
    parked: list[Any] | tuple[()] = field(default=(), repr=False)

    def can_take(self, channel: str) -> bool:
        if self.presence is not _AVAILABLE:
            return False
        # Capacity.fits, inlined: this is the hottest check in the router.
        cap = self.capacity
        used = self.used
        if used >= cap.budget or (used and cap.costs.get(channel, cap.default_cost) >= cap.budget):
            return False
        limit = cap.max_per_channel.get(channel)
        return limit is None or self.counts.get(channel, 0) < limit

    def qualifies(self, requirements: dict[str, int]) -> bool:
        skills = self.skills
        return all(skills.get(s, 0) >= level for s, level in requirements.items())

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "skills": dict(self.skills), "capacity": self.capacity.model_dump(mode="json"),
            "presence": self.presence.value, "idle_since": self.idle_since,
            "missed_in_row": self.missed_in_row,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Agent:
        return cls(
            id=str(data["id"]), skills=dict(data.get("skills") or {}),
            capacity=Capacity.model_validate(data.get("capacity") or {}),
            presence=Presence(data.get("presence", Presence.OFFLINE)),
            idle_since=data.get("idle_since"), missed_in_row=int(data.get("missed_in_row", 0)),
        )


NO_ONE: frozenset[str] = frozenset()

_TASK_FIELDS = (
    "id", "queue", "channel", "interaction_id", "profile_id", "priority", "required_skills",
    "preferred_agent", "preference_timeout_s", "preferred_until", "created_at", "enqueued_at",
    "queue_entered_at", "state", "agent_id", "offered_at", "answered_at", "wrapup_at", "ended_at",
    "disposition", "note", "sla_breached", "escalation_level", "skill_overrides", "declined_by", "seq",
)


@dataclass(slots=True, eq=False)
class Task:
    """One piece of work to route: a call, a chat, an email...; ids are the hub's (strings)."""

    id: str
    queue: str
    channel: str
    interaction_id: str | None = None
    profile_id: str | None = None
    priority: int = 0
    required_skills: dict[str, int] = field(default_factory=dict)  # on top of the queue's
    preferred_agent: str | None = None  # relationship owner or last agent
    preference_timeout_s: float | None = None  # None: RouterConfig.preference_timeout_s
    preferred_until: float | None = None
    created_at: float | None = None
    enqueued_at: float | None = None  # the task's place in line; kept across offers and escalations
    queue_entered_at: float | None = None  # escalation steps count from here
    state: TaskState = TaskState.WAITING
    agent_id: str | None = None
    offered_at: float | None = None
    answered_at: float | None = None  # first accept: what the service level measures
    wrapup_at: float | None = None
    ended_at: float | None = None
    disposition: str | None = None
    note: str | None = None
    sla_breached: bool = False
    escalation_level: int = 0  # steps of the current queue already applied
    skill_overrides: dict[str, int] = field(default_factory=dict)  # from escalation; 0 drops a skill
    # Never offered again to these agents. Immutable, and one shared empty set by default: a set per
    # task was one more object for the garbage collector to traverse, 46,000 of them at 10,000 agents.
    declined_by: frozenset[str] = NO_ONE
    seq: int = 0  # tie-break among equal enqueue times, assigned by the router
    # --- runtime only ---
    pool: Any = field(default=None, repr=False)
    token: int = 0  # bumped when the task leaves or re-enters a heap, so older entries are stale
    parked_for: str | None = None
    offer_seq: int = 0
    epoch: int = 0  # bumped when the task changes queue, so old escalation/SLA timers are stale
    ident: int = 0  # unique per submit or restore: timers name the task by (id, ident), not by object

    def order(self) -> tuple[int, float, int]:
        """Priority desc, then enqueue time, then arrival sequence: the waiting-line order."""
        return (-self.priority, self.enqueued_at or 0.0, self.seq)

    def requirements(self, queue: Queue) -> dict[str, int]:
        req = dict(queue.required_skills)
        for skill, level in self.required_skills.items():
            req[skill] = max(req.get(skill, 0), level)
        req.update(self.skill_overrides)
        return {s: lv for s, lv in req.items() if lv > 0}

    def to_dict(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in _TASK_FIELDS}
        out["state"] = self.state.value
        out["required_skills"] = dict(self.required_skills)
        out["skill_overrides"] = dict(self.skill_overrides)
        out["declined_by"] = sorted(self.declined_by)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Task:
        unknown = set(data) - set(_TASK_FIELDS)
        if unknown:
            raise ValueError(f"unknown task fields: {', '.join(sorted(unknown))}")
        kwargs = dict(data)
        kwargs["state"] = TaskState(kwargs.get("state", TaskState.WAITING))
        kwargs["required_skills"] = dict(kwargs.get("required_skills") or {})
        kwargs["skill_overrides"] = dict(kwargs.get("skill_overrides") or {})
        kwargs["declined_by"] = frozenset(kwargs.get("declined_by") or ()) or NO_ONE
        return cls(**kwargs)
