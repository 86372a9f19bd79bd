"""Agent ordering per queue strategy: a heap entry whose leading fields are the strategy's key.

An entry is `(*key, agent id, agent version)`: the id makes entries unique before the version is
reached, the version tells the pool whether the entry's key is still the agent's (routing.pools
re-keys an entry that surfaces stale), and the pool finds the Agent by id. Holding no object, an
entry is untracked by the garbage collector after its first look, which matters with tens of
thousands of them (every agent sits in several pools and channels).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .model import Agent, Strategy

AgentEntry = tuple[Any, ...]


def _longest_idle(a: Agent) -> AgentEntry:
    return (a.idle_since, a.id, a.version)


def _least_busy(a: Agent) -> AgentEntry:
    # Budget in use first (a chat agent with one chat is busier than an idle one), then idleness.
    return (a.used, a.idle_since, a.id, a.version)


def _round_robin(a: Agent) -> AgentEntry:
    # last_offer_seq is a router-wide counter stamped on each offer: lowest = served longest ago.
    return (a.last_offer_seq, a.id, a.version)


ENTRY: dict[Strategy, Callable[[Agent], AgentEntry]] = {
    Strategy.LONGEST_IDLE: _longest_idle,
    Strategy.LEAST_BUSY: _least_busy,
    Strategy.ROUND_ROBIN: _round_robin,
}
