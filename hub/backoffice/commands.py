"""The hub's consumer of back-office commands (DESIGN section 5): `profile.upsert`,
`message.send`, `interaction.import` from the omnihub.commands queue.

Each command is validated against its schema (schemas.commands). A bad one is published to
omnihub.dead with the reason in its headers and acked, so it never blocks the queue. A good one is
applied in one transaction together with its command_log row (keyed by the AMQP message_id) and
its `command.completed` event, and acked only after that commit: a redelivery or a re-sent
duplicate finds the log row and changes nothing. An apply that keeps failing is retried with
backoff and dead-lettered after `command_attempts` tries; a database outage is not counted against
the command: the supervised loop (hub.tasks) backs off and handles the same delivery again.

`interaction.import` goes through the ingest pipeline, whose (channel, provider, provider_ref)
dedupe makes it idempotent; a command without a provider_ref gets one derived from its message_id.
`message.send` is handed to the outbound sender the app registers (`keys.OUTBOUND`); without one
it is stored as a pending `scheduled_actions` row for the outbound module to pick up.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from tenacity import AsyncRetrying, RetryError, retry_if_exception, stop_after_attempt, wait_exponential

from hub.backoffice import command_store
from hub.broker import dead_letters as deadletter
from hub.broker.amqp import BrokerUnavailable, ConfirmPublisher, OutgoingMessage
from hub.broker.consumer import ConsumerSession, Delivery
from hub.broker.topology import Topology, declare_hub_blocking
from hub.ingest.pipeline import Pipeline
from hub.profiles.segments import SegmentSet
from hub.settings import BackofficeSettings
from hub.storage.engine import writer
from hub.tasks import Supervised
from schemas.commands import COMMAND_MODELS, CommandName, InteractionImport, MessageSend, ProfileUpsert

log = logging.getLogger("omnihub.commands")

# What a registered outbound sender gets: the validated command and its message_id (its
# idempotency key). It returns the result the command.completed event carries.
OutboundSender = Callable[[MessageSend, str], Awaitable[dict[str, Any] | None]]
_TOKEN = re.compile(r"^[A-Za-z0-9_.:@+-]{1,120}$")


class Rejected(Exception):
    def __init__(self, reason: str, error: str) -> None:
        super().__init__(error)
        self.reason = reason


class CommandConsumer:
    def __init__(self, engine: AsyncEngine, *, url: str, topology: Topology, settings: BackofficeSettings,
                 pipeline: Pipeline, segments: SegmentSet | None, validation_context: dict[str, Any],
                 on_commit: Sequence[Callable[[], None]] = (), outbound: Callable[[], OutboundSender | None] = lambda: None,
                 heartbeat_s: int | None = None) -> None:
        self._engine = writer(engine)
        self._url, self._topology, self._settings = url, topology, settings
        self._pipeline, self._segments, self._context = pipeline, segments, validation_context
        self._on_commit = list(on_commit)
        self._outbound = outbound
        self._heartbeat_s = heartbeat_s
        self._session: ConsumerSession | None = None
        self._dead: ConfirmPublisher | None = None
        self._delivery: Delivery | None = None  # taken, not yet acked: handled again after a failure
        self.supervised = Supervised("commands", self._consume)
        self.state = "starting"
        self.last_error: str | None = None
        self.applied = self.duplicates = self.dead_lettered = 0

    def status(self) -> dict[str, Any]:
        return {"state": self.state, "applied": self.applied, "duplicates": self.duplicates,
                "dead_lettered": self.dead_lettered, "last_error": self.last_error}

    async def start(self) -> None:
        await self.supervised.start()

    async def stop(self) -> None:
        await self.supervised.stop()
        await self._disconnect()

    async def _consume(self) -> None:
        """The supervised body: consume until something fails. A broker failure drops the session
        (what was not acked is redelivered); a database outage keeps it, and the delivery in hand is
        handled again after the backoff rather than counted against the command."""
        try:
            session, dead = await self._connected()
            while True:
                if self._delivery is None:
                    self.supervised.progressed()  # every command taken so far is settled
                    with self.supervised.waiting():
                        self._delivery = await session.get()
                await self._handle(self._delivery, dead)
                session.ack(self._delivery)
                self._delivery = None
        except Exception as exc:
            if not _database_outage(exc):  # the broker went, or e.g. pika refused a declaration
                self.state = "down"
                self.last_error = str(exc) if isinstance(exc, (BrokerUnavailable, OSError)) else repr(exc)
                await self._disconnect()
            raise

    async def _connected(self) -> tuple[ConsumerSession, ConfirmPublisher]:
        session, dead = self._session, self._dead
        if session is not None and session.is_open and dead is not None and dead.is_open:
            return session, dead
        await self._disconnect()
        self.state = "connecting"
        dead = self._dead = ConfirmPublisher(self._url, self._topology.dead_exchange,
                                             heartbeat_s=self._heartbeat_s)
        session = self._session = ConsumerSession(
            self._url, self._topology.commands_queue, prefetch=self._settings.command_prefetch,
            name="omnihub commands", heartbeat_s=self._heartbeat_s)
        if self._settings.declare_topology:
            await asyncio.to_thread(declare_hub_blocking, self._url, self._topology)
        await dead.connect()
        await session.open()
        self.state, self.last_error = "consuming", None
        return session, dead

    async def _disconnect(self) -> None:
        session, dead, self._session, self._dead = self._session, self._dead, None, None
        self._delivery = None  # the broker redelivers it to the next session
        if session is not None:
            await session.close()
        if dead is not None:
            await dead.close()

    # --- one command ---------------------------------------------------------------------------

    async def _handle(self, d: Delivery, dead: ConfirmPublisher) -> None:
        try:
            name, command, message_id = self._validate(d)
        except Rejected as exc:
            await self._dead_letter(d, dead, exc.reason, str(exc), attempts=1)
            return
        # A database outage is not the command's fault: it ends the round (the loop backs off and
        # handles this delivery again) instead of using up the command's attempts.
        retrying = AsyncRetrying(stop=stop_after_attempt(self._settings.command_attempts),
                                 retry=retry_if_exception(lambda exc: not _database_outage(exc)),
                                 wait=wait_exponential(multiplier=0.05, max=2.0), reraise=False)
        try:
            async for attempt in retrying:
                with attempt:
                    await self._apply(name, command, message_id, d.properties.correlation_id)
        except RetryError as exc:
            error = exc.last_attempt.exception()
            log.error("command kept failing; dead-lettered",
                      extra={"command": name.value, "message_id": message_id, "error": repr(error)})
            await self._dead_letter(d, dead, "failed", repr(error), attempts=self._settings.command_attempts)

    def _validate(self, d: Delivery) -> tuple[CommandName, BaseModel, str]:
        try:
            name = CommandName(d.routing_key)
        except ValueError:
            known = ", ".join(c.value for c in CommandName)
            raise Rejected("unknown_command", f"unknown command {d.routing_key!r}; known: {known}") from None
        message_id = d.properties.message_id
        if not message_id:
            raise Rejected("missing_message_id", "a command needs an AMQP message_id: it is the dedupe key")
        try:
            command = COMMAND_MODELS[name].model_validate_json(d.body, context=self._context)
        except ValidationError as exc:
            raise Rejected("invalid", _describe(exc)) from None
        return name, command, message_id

    async def _apply(self, name: CommandName, command: BaseModel, message_id: str, correlation_id: str | None) -> None:
        now = datetime.now(UTC)
        match command:
            case ProfileUpsert():
                work = functools.partial(self._upsert, command, message_id, correlation_id, now)
            case InteractionImport():
                result = await self._import(command, message_id)
                work = functools.partial(self._record, name, message_id, correlation_id, now, result)
            case MessageSend():
                sender = self._outbound()
                # The sender may decline (None): a templated message waits for the template module.
                result = await sender(command, message_id) if sender is not None else None
                if result is not None:
                    work = functools.partial(self._record, name, message_id, correlation_id, now, result)
                else:
                    work = functools.partial(self._queue_send, command, message_id, correlation_id, now)
            case _:  # pragma: no cover - COMMAND_MODELS and this match are kept together
                raise AssertionError(name)
        async with self._engine.begin() as conn:
            applied = await conn.run_sync(work)
        if applied:
            self.applied += 1
            for listener in self._on_commit:
                listener()
        else:
            self.duplicates += 1
            log.info("duplicate command; applied once already", extra={"command": name.value, "message_id": message_id})

    def _upsert(self, cmd: ProfileUpsert, message_id: str, correlation_id: str | None, now: datetime, conn) -> bool:
        if command_store.logged_result(conn, message_id) is not None:
            return False
        result = command_store.upsert_profile(conn, cmd, now=now, segments=self._segments)
        command_store.record(conn, message_id=message_id, command=CommandName.PROFILE_UPSERT, outcome="completed",
                             result=result, now=now, correlation_id=correlation_id)
        return True

    def _queue_send(self, cmd: MessageSend, message_id: str, correlation_id: str | None, now: datetime, conn) -> bool:
        if command_store.logged_result(conn, message_id) is not None:
            return False
        result = command_store.queue_message(conn, cmd, message_id=message_id, now=now)
        command_store.record(conn, message_id=message_id, command=CommandName.MESSAGE_SEND, outcome="completed",
                             result=result, now=now, correlation_id=correlation_id)
        return True

    def _record(self, name: CommandName, message_id: str, correlation_id: str | None, now: datetime,
                result: dict[str, Any], conn) -> bool:
        if command_store.logged_result(conn, message_id) is not None:
            return False
        command_store.record(conn, message_id=message_id, command=name, outcome="completed", result=result,
                             now=now, correlation_id=correlation_id)
        return True

    async def _import(self, cmd: InteractionImport, message_id: str) -> dict[str, Any]:
        interaction = cmd.interaction.model_copy()
        if interaction.provider_ref is None:
            interaction.provider_ref = _ref_from(message_id)
        result = await self._pipeline.ingest(interaction)
        return {"interaction_id": str(result.interaction_id),
                "profile_id": None if result.profile_id is None else str(result.profile_id),
                "created": result.created}

    async def _dead_letter(self, d: Delivery, dead: ConfirmPublisher, reason: str, error: str, attempts: int) -> None:
        headers = deadletter.dead_headers(
            d.properties.headers, exchange=d.exchange, routing_key=d.routing_key,
            queue=self._topology.commands_queue, reason=reason, error=error, attempts=attempts)
        await dead.publish_batch([OutgoingMessage(
            routing_key=self._topology.commands_queue, body=d.body, message_id=d.properties.message_id or "",
            content_type=d.properties.content_type or "application/json", headers=headers,
            timestamp=d.properties.timestamp)])
        self.dead_lettered += 1
        log.warning("command dead-lettered", extra={"command": d.routing_key, "reason": reason,
                                                    "message_id": d.properties.message_id, "error": error})


def _database_outage(exc: BaseException) -> bool:
    """The database is unreachable or dropped the connection (not: this command broke a constraint)."""
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or isinstance(exc, (OperationalError, InterfaceError))
    return isinstance(exc, (OSError, TimeoutError)) and not isinstance(exc, BrokerUnavailable)


def _ref_from(message_id: str) -> str:
    """A provider_ref for an imported interaction that has none: the command's message_id."""
    ref = f"cmd:{message_id}"
    return ref if _TOKEN.match(ref) else "cmd:" + hashlib.sha256(message_id.encode()).hexdigest()[:40]


def _describe(exc: ValidationError) -> str:
    """Each failing field and why, without the input values (they may be personal data)."""
    parts = []
    for err in exc.errors(include_input=False, include_url=False)[:20]:
        where = ".".join(str(p) for p in err["loc"]) or "(body)"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)

