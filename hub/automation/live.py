"""The hub's running ruleset: one holder that load and reload (hub.automation.runtime) swap and that
every reader (the ingest step, the router's task rules, the scheduler, `POST /v1/rules/test`) reads.

A swap replaces one immutable object, so a reader that takes `loaded` once sees one version for
the whole of its work, even when a reload lands in the middle of a batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rules import Ruleset, StartTimer

TimerName = tuple[str, str]  # (rule, timer name)


@dataclass(frozen=True)
class LoadedRules:
    """A ruleset with what the hub derives from it, swapped as one object so a reload is atomic."""

    ruleset: Ruleset | None
    cancels: dict[str, tuple[TimerName, ...]] = field(default_factory=dict)  # event type -> timers


def cancel_index(ruleset: Ruleset | None) -> dict[str, tuple[TimerName, ...]]:
    """Which timers each event type cancels (a timer's `cancel_on`), nested timers included."""
    index: dict[str, list[TimerName]] = {}
    for rule in ruleset.rules if ruleset is not None else ():
        stack = list(rule.then)
        while stack:
            action = stack.pop()
            if isinstance(action, StartTimer):
                for event in action.cancel_on:
                    index.setdefault(event, []).append((action.rule, action.name))
                stack.extend(action.then)
    return {event: tuple(names) for event, names in index.items()}


class LiveRules:
    """The current ruleset; `swap` installs another (reload, SIGHUP) and returns the one it replaced."""

    def __init__(self, ruleset: Ruleset | None = None) -> None:
        self.loaded = LoadedRules(ruleset, cancel_index(ruleset))

    @property
    def ruleset(self) -> Ruleset | None:
        return self.loaded.ruleset

    def swap(self, ruleset: Ruleset | None) -> Ruleset | None:
        previous = self.loaded.ruleset
        self.loaded = LoadedRules(ruleset, cancel_index(ruleset))
        return previous
