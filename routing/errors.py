"""Errors the router raises on purpose; the hub maps them to HTTP 404 / 409 answers."""

from __future__ import annotations

from schemas import OmnihubError


class RoutingError(OmnihubError):
    """Base of every routing error."""


class UnknownQueue(RoutingError):
    """No queue with that name is configured."""


class UnknownAgent(RoutingError):
    """No agent with that id has been registered."""


class UnknownTask(RoutingError):
    """No live task with that id (never submitted, or already completed, abandoned or cancelled)."""


class DuplicateTask(RoutingError):
    """A live task already has that id."""


class InvalidTransition(RoutingError):
    """The task's state does not allow the operation (e.g. accepting an offer that already expired)."""


class QueueInUse(RoutingError):
    """The queue still holds live tasks, so it cannot be removed."""
