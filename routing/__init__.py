"""Skills-based routing: queues, agents, tasks, matching, offers, escalation; Erlang C and a simulator.

Pure and in memory (imports only `schemas`). How the hub drives it:

    router = Router(SystemClock(), RouterConfig(...))
    for q in queues: router.add_queue(q)
    router.restore(tasks=rows_as_dicts, agents=agent_rows)     # on start, from the DB
    router.submit(Task(...)); router.accept(task_id, agent_id) ...  # API calls
    router.set_priority(task_id, 50); router.escalate(task_id, skills={"senior": 1})  # rules
    for event in router.drain_events(): persist + publish event.event_type
    await asyncio.sleep(max(0, router.next_due() - time.time())); router.tick()

Every operation raises a RoutingError subclass (an OmnihubError) when refused.
"""

from .clock import Clock, SystemClock, VirtualClock, as_datetime
from .errors import (
    DuplicateTask,
    InvalidTransition,
    QueueInUse,
    RoutingError,
    UnknownAgent,
    UnknownQueue,
    UnknownTask,
)
from .events import AgentEvent, AgentEventKind, RoutingEvent, TaskEvent, TaskEventKind
from .model import (
    DEFAULT_COSTS,
    Agent,
    Capacity,
    EscalationStep,
    Presence,
    Queue,
    RouterConfig,
    Strategy,
    Task,
    TaskState,
)
from .router import Router
from .stats import AgentState, QueueStats

__all__ = [
    "DEFAULT_COSTS", "Agent", "AgentEvent", "AgentEventKind", "AgentState", "Capacity", "Clock",
    "DuplicateTask", "EscalationStep", "InvalidTransition", "Presence", "Queue", "QueueInUse",
    "QueueStats", "Router", "RouterConfig", "RoutingError", "RoutingEvent", "Strategy", "SystemClock",
    "Task", "TaskEvent", "TaskEventKind", "TaskState", "UnknownAgent", "UnknownQueue", "UnknownTask",
    "VirtualClock", "as_datetime",
]
