"""Shared pieces of the email adapter tests: in-memory deps, a capturing SMTP server, ports."""

from __future__ import annotations

import asyncio
import hashlib
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiosmtpd.controller import Controller

from adapters.base import AdapterDeps, HubUnavailable, StatusUpdate
from adapters.email import EmailAdapter
from adapters.registry import validate_config
from schemas import DEFAULT_REGION_KEY, Interaction


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MemoryBlobs:
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    async def put(self, data: bytes) -> str:
        ref = "sha256:" + hashlib.sha256(data).hexdigest()
        self.blobs[ref] = data
        return ref


class MemoryState:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    async def get(self, key: str) -> str | None:
        return self.values.get(key)

    async def set(self, key: str, value: str) -> None:
        self.values[key] = value


@dataclass
class Outcome:
    interaction_id: Any
    profile_id: Any = None
    created: bool = True


@dataclass
class Recorder:
    """An ingest that records what it is given, deduping on provider_ref like the hub does.
    `fail` makes it answer as a hub that is down; `refuse` makes it refuse messages by subject,
    as a hub that cannot take that message (the outage is not counted against mail, this is)."""

    interactions: list[Interaction] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)
    fail: bool = False
    refuse: set[str] = field(default_factory=set)
    calls: int = 0  # every ingest call, repeats included
    calls_by_subject: dict[str | None, int] = field(default_factory=dict)

    async def ingest(self, interaction: Interaction) -> Outcome:
        self.calls += 1
        self.calls_by_subject[interaction.subject] = self.calls_by_subject.get(interaction.subject, 0) + 1
        await asyncio.sleep(0)
        if self.fail:
            raise HubUnavailable("the database is down")
        if interaction.subject in self.refuse:
            raise ValueError(f"refused: {interaction.subject}")
        for seen in self.interactions:
            if seen.provider_ref == interaction.provider_ref:
                return Outcome(seen.provider_ref, created=False)
        self.interactions.append(interaction)
        return Outcome(interaction.provider_ref)

    async def report_status(self, update: StatusUpdate) -> bool:
        self.statuses.append(update)
        return True


def make_deps(ingest, report_status, *, state=None, blobs=None) -> AdapterDeps:
    return AdapterDeps(ingest=ingest, report_status=report_status, blobs=blobs or MemoryBlobs(),
                       state=state or MemoryState(), clock=lambda: datetime.now(UTC),
                       public_base_url="http://127.0.0.1:8080",
                       validation_context={DEFAULT_REGION_KEY: "KR"})


def make_adapter(raw_config: dict[str, Any], deps: AdapterDeps) -> EmailAdapter:
    return EmailAdapter(validate_config(EmailAdapter, raw_config), deps)


class CapturingHandler:
    """An aiosmtpd handler that records each message; `replies` scripts the answers to DATA
    (None = accept), and `refuse_rcpt` answers RCPT with a reply instead of accepting."""

    def __init__(self, replies: list[str | None] | None = None, refuse_rcpt: str | None = None) -> None:
        self.replies = list(replies or [])
        self.refuse_rcpt = refuse_rcpt
        self.received: list[tuple[str, list[str], bytes]] = []
        self.attempts = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse_rcpt:
            return self.refuse_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.attempts += 1
        reply = self.replies.pop(0) if self.replies else None
        if reply is not None:
            return reply
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 2.0.0 queued"


def capturing_server(handler: CapturingHandler) -> Controller:
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    return controller
