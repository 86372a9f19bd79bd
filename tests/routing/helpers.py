"""Small builders shared by the routing tests."""

from __future__ import annotations

import itertools

from routing import Router, Task, TaskEventKind

_ids = itertools.count(1)


def task(queue: str = "support", channel: str = "voice", **kw: object) -> Task:
    task_id = str(kw.pop("id", f"t{next(_ids)}"))
    return Task(id=task_id, queue=queue, channel=channel, **kw)  # type: ignore[arg-type]


def kinds(router: Router) -> list[tuple[str, str]]:
    """(event kind, task or agent id) of the drained events, task events only."""
    return [(e.kind.value, e.task_id) for e in router.drain_events() if hasattr(e, "task_id")]


def offered(router: Router) -> dict[str, str]:
    """task id -> agent id for the offers among the drained events."""
    return {e.task_id: e.agent_id for e in router.drain_events()
            if getattr(e, "kind", None) is TaskEventKind.OFFERED}
