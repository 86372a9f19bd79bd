"""Inbound email over IMAP: a poller on our own mailbox (aioimaplib), IDLE where offered.

Authentic by construction: we log in to our own mailbox with our own credentials, and what it
holds is what our mail provider accepted for us; there is no third party to authenticate.

Nothing is read twice after a restart, and nothing is lost: messages are taken in UID order
(`UID SEARCH UID <last+1>:*`), each is ingested, and only after the ingest returned (committed) is
its UID saved in `deps.state` (with the mailbox's UIDVALIDITY, so a rebuilt mailbox is read from
the start again; its messages are then repeats, deduped on the Message-ID). Bodies are fetched
with BODY.PEEK[], which leaves the \\Seen flag to the humans who also read the mailbox; the poller
never changes the mailbox it reads.

Where it starts without a saved position (first start, or UIDVALIDITY changed) is `start`: `all`
(the default) reads every message already there; `new` saves UIDNEXT - 1 from the SELECT answer
as done, so only mail arriving from then on is ingested (a changed UIDVALIDITY is then logged as a
warning and skipped to the end again, not re-read).

Config (`adapters.email.imap`): host, port, ssl, username, password, mailbox, poll_interval_s,
idle, timeout_s, reconnect_max_s, start, max_attempts, failed_mailbox. Mailbox names go out in
modified UTF-7, quoted (imap_wire.mailbox_arg), so spaces and non-ASCII names work. Server docs:
RFC 3501 (IMAP4rev1; mailbox names in 5.1.3, UID COPY and [TRYCREATE] in 6.4.7), RFC 2177 (IDLE),
RFC 5530 ([ALREADYEXISTS]).

Nothing the poller cannot take holds up the mail after it, and nothing is passed over silently. A
message that is not one (PayloadError) or is larger than `max_message_bytes` is dead-lettered (UID
COPY into `failed_mailbox`, its UID saved as done) at once; one the hub refuses or the server will
not FETCH (a NO or BAD answer; an OK without the message; a BYE naming the FETCH, which is how
Dovecot answers a message it cannot read) after `max_attempts` failures, each of which ends the
session. The counts, the dead letters and the messages passed over when even the COPY is refused
are adapters.email.imap_failures, whose docstring tells the rest.

Outages are never counted against a message: a hub outage (HubUnavailable: pipeline stopped,
database unreachable) is retried however long it lasts, and so is the IMAP connection's trouble (a
timeout, a connection dropped or closed without a BYE naming the FETCH, a server that is down or
refuses the login).
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from dataclasses import dataclass, replace

import aioimaplib

from adapters.base import AdapterDeps, HubUnavailable, PayloadError

from .config import ImapConfig, ImapStart
from .imap_failures import Failing, Failures, TryLater
from .imap_wire import Client, ConnectionClosed, ImapError, mailbox_arg, ok, until_closed
from .inbound import accept, parse_inbound
from .retry import reconnect_retrying

log = logging.getLogger("omnihub.adapters.email.imap")

_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_UIDNEXT = re.compile(rb"\[UIDNEXT (\d+)\]")
_STATUS_UIDNEXT = re.compile(rb"\(.*\bUIDNEXT (\d+)")
_UID = re.compile(rb"\bUID (\d+)\b")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)\b")
_STOP_GRACE_S = 30.0


class MessageUnreadable(ImapError):
    """The server refused a FETCH of one message, or answered it without the message: counted
    against that message like a failed ingest."""


@dataclass(frozen=True)
class _Selected:
    validity: str
    uid_next: int | None  # from the SELECT answer; None when the server left it out


class ImapPoller:
    def __init__(self, config: ImapConfig, deps: AdapterDeps, *, max_bytes: int) -> None:
        self.config = config
        self.deps = deps
        self.max_bytes = max_bytes
        where = f"{config.username}@{config.host}:{config.port}/{config.mailbox}"
        self.state_key = f"email.imap:{where}"  # "<uidvalidity>:<last uid done>"
        self.failures = Failures(config, deps.state, where)
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._busy = False  # between taking a message and saving its UID
        self.connected = asyncio.Event()  # set once logged in and past the first read (for tests/health)

    @property
    def attempts_key(self) -> str:
        return self.failures.attempts_key

    @property
    def passed_over_key(self) -> str:
        return self.failures.passed_over_key

    async def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="omnihub-email-imap")

    async def stop(self) -> None:
        """Finish the message being ingested, then stop and log out."""
        if self._task is None:
            return
        self._stopping.set()
        # Cancelling is safe anywhere but between ingest and saving the UID (a repeat would follow,
        # deduped, but still): let that finish, then cancel whatever it waits for next (a backoff
        # sleep, an IDLE, a connection attempt).
        deadline = asyncio.get_running_loop().time() + _STOP_GRACE_S
        while self._busy and not self._task.done() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    async def _run(self) -> None:
        while not self._stopping.is_set():
            # A fresh policy after each healthy session: backoff grows only while it keeps failing.
            async for attempt in reconnect_retrying(self.config.reconnect_max_s, log):
                with attempt:
                    await self._session()

    async def _session(self) -> None:
        """One connection. Raises if it fails before it was healthy; returns when stopping, or
        when a healthy connection drops (logged), so that the reconnect starts fresh."""
        client = await self._connect()
        healthy = False
        try:
            selected = await self._select(client)
            while not self._stopping.is_set():
                await self._drain(client, selected)
                if not healthy:
                    healthy = True
                    self.connected.set()
                await self._wait(client)
        except (HubUnavailable, TryLater) as exc:
            if not healthy:
                raise
            log.warning("imap message not taken; retrying", extra={"reason": str(exc)})
        except Exception:
            if not healthy:
                raise
            log.warning("imap connection lost; reconnecting", exc_info=True)
        finally:
            self.connected.clear()
            await self._logout(client)

    async def _connect(self) -> Client:
        c = self.config
        client = Client(host=c.host, port=c.port, timeout=c.timeout_s,
                        ssl_context=ssl.create_default_context() if c.ssl else None)
        try:
            await client.wait_hello_from_server()
            ok(await client.login(c.username, c.password.get_secret_value()), "LOGIN")
        except BaseException:
            await self._logout(client)
            raise
        return client

    async def _select(self, client: Client) -> _Selected:
        response = ok(await client.select(mailbox_arg(self.config.mailbox)), "SELECT")
        # Servers must send both (RFC 3501 6.3.1); without UIDVALIDITY, UIDs are taken as stable.
        validity, uid_next = "0", None
        for line in response.lines:
            if found := _UIDVALIDITY.search(bytes(line)):
                validity = found.group(1).decode()
            elif found := _UIDNEXT.search(bytes(line)):
                uid_next = int(found.group(1))
        return _Selected(validity, uid_next)

    async def _last_uid(self, client: Client, selected: _Selected) -> int:
        saved = await self.deps.state.get(self.state_key)
        changed = False
        if saved:
            saved_validity, _, uid = saved.partition(":")
            if saved_validity == selected.validity and uid.isdigit():
                return int(uid)
            changed = True
        match self.config.start:
            case ImapStart.ALL:
                if changed:
                    log.warning("imap UIDVALIDITY changed; reading the mailbox again (repeats are deduped)")
                return 0
            case ImapStart.NEW:
                # What is in the mailbox now counts as read: saved as done without being ingested.
                end = await self._highest_uid(client, selected)
                await self.deps.state.set(self.state_key, f"{selected.validity}:{end}")
                if changed:
                    log.warning("imap UIDVALIDITY changed; with start: new, mail already in the mailbox "
                                "is skipped and only new mail is read", extra={"uid": end})
                else:
                    log.info("imap first start with start: new; mail already in the mailbox is skipped",
                             extra={"uid": end})
                return end

    async def _highest_uid(self, client: Client, selected: _Selected) -> int:
        """UIDNEXT - 1 as of the SELECT (mail arriving since has a higher UID and is read), or of a
        STATUS just after it from a server that left UIDNEXT out of its SELECT answer."""
        uid_next = selected.uid_next
        if uid_next is None:
            status = ok(await client.status(mailbox_arg(self.config.mailbox), "(UIDNEXT)"), "STATUS")
            found = next((m for line in status.lines for m in [_STATUS_UIDNEXT.search(bytes(line))] if m), None)
            if found is None:
                raise ImapError("neither SELECT nor STATUS gave the mailbox's UIDNEXT")
            uid_next = int(found.group(1))
        return max(uid_next - 1, 0)

    async def _drain(self, client: Client, selected: _Selected) -> None:
        validity = selected.validity
        last = await self._last_uid(client, selected)
        response = ok(await client.uid_search(f"UID {last + 1}:*", charset=None), "UID SEARCH")
        # "n:*" always matches the highest UID, even when it is below n.
        uids = sorted({int(t) for line in response.lines[:-1] for t in bytes(line).split() if t.isdigit()})
        uids = [u for u in uids if u > last]
        failing = await self.failures.failing(validity) if uids else None
        for uid in uids:
            if self._stopping.is_set():
                return
            self._busy = True
            try:
                await self._take(client, validity, failing if failing and failing.uid == uid else Failing(uid))
                await self.deps.state.set(self.state_key, f"{validity}:{uid}")
            finally:
                self._busy = False

    async def _take(self, client: Client, validity: str, record: Failing) -> None:
        """Ingest one message, or dead-letter it (it failed max_attempts times, is too large, or is
        not a message). Returns when its UID may be saved as done; raises to have it tried again
        after a reconnect."""
        uid = record.uid
        if record.attempts >= self.config.max_attempts:
            # Failed often enough before a restart (or a lowered max_attempts): no further try.
            await self.failures.dead_letter(client, validity, record)
            return
        try:
            size = await self._size(client, uid)
            if size > self.max_bytes:
                log.warning("imap message over max_message_bytes", extra={"uid": uid, "size": size})
                await self.failures.dead_letter(client, validity, replace(record, error="oversize"))
                return
            raw = await self._body(client, uid)
        except MessageUnreadable as exc:
            await self.failures.count(client, validity, record, exc, reason=str(exc))
            return
        if raw is None:
            return
        try:
            parsed = parse_inbound(raw, self.deps, max_bytes=self.max_bytes, via="imap")
        except PayloadError as exc:
            log.warning("imap message refused", extra={"uid": uid, "field": exc.field, "reason": exc.message})
            await self.failures.dead_letter(client, validity, replace(record, error=type(exc).__name__))
            return
        try:
            await accept(parsed, self.deps)
        except HubUnavailable:
            raise
        except Exception as exc:
            log.debug("imap ingest failure", exc_info=True, extra={"uid": uid})
            await self.failures.count(client, validity, record, exc)

    async def _size(self, client: Client, uid: int) -> int:
        lines = (await self._uid_fetch(client, uid, "(UID RFC822.SIZE)")).lines
        return next((int(m.group(1)) for line in lines if isinstance(line, bytes)
                     for m in [_SIZE.search(line)] if m), 0)

    async def _body(self, client: Client, uid: int) -> bytes | None:
        response = await self._uid_fetch(client, uid, "(UID BODY.PEEK[])")
        raw = self._literal(response, uid)
        if raw is None and self._answered(response, uid):
            raise MessageUnreadable("UID FETCH: the answer holds no BODY[] literal")
        if raw is None:
            log.warning("imap message vanished before it was fetched", extra={"uid": uid})
        return raw

    async def _uid_fetch(self, client: Client, uid: int, items: str) -> aioimaplib.Response:
        """UID FETCH. Raises MessageUnreadable when the server refuses it for this message: a NO
        or BAD answer, or a BYE naming the FETCH (Dovecot hangs up when it cannot read a message).
        Anything else (a timeout, a connection closed without that BYE, a server shutting down) is
        the connection's trouble and propagates, never counted."""
        try:
            response = await until_closed(client, client.uid("fetch", str(uid), items), self.config.timeout_s)
        except ConnectionClosed as exc:
            if exc.bye is not None and b"FETCH" in exc.bye.upper():
                raise MessageUnreadable(f"UID FETCH: BYE {exc.bye[:200]!r}") from None
            raise
        if response.result != "OK":
            raise MessageUnreadable(f"UID FETCH: {response.result} {response.lines[-1:]!r}")
        return response

    @staticmethod
    def _answered(response: aioimaplib.Response, uid: int) -> bool:
        """Whether the FETCH answer has a FETCH line for `uid` (none: it was expunged meanwhile)."""
        return any(isinstance(line, bytes) and b"FETCH" in line and (m := _UID.search(line)) is not None
                   and int(m.group(1)) == uid for line in response.lines[:-1])

    @staticmethod
    def _literal(response: aioimaplib.Response, uid: int) -> bytes | None:
        """The BODY[] literal of `uid` among the FETCH lines (others may be unsolicited)."""
        lines = response.lines
        for i, line in enumerate(lines[:-1]):
            if isinstance(line, bytes) and b"BODY[]" in line:
                found = _UID.search(line)
                if (found is None or int(found.group(1)) == uid) and isinstance(lines[i + 1], bytearray):
                    return bytes(lines[i + 1])
        return None

    async def _wait(self, client: Client) -> None:
        """Until the mailbox may have changed, or stop() was called."""
        interval = self.config.poll_interval_s
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            if self.config.idle and client.has_capability("IDLE"):
                idle = await client.idle_start(timeout=interval)
                push = asyncio.ensure_future(client.wait_server_push(timeout=interval + self.config.timeout_s))
                await asyncio.wait({push, stopping}, return_when=asyncio.FIRST_COMPLETED)
                push.cancel()
                client.idle_done()
                ok(await asyncio.wait_for(idle, self.config.timeout_s), "IDLE")
            else:
                await asyncio.wait({stopping}, timeout=interval)
        finally:
            stopping.cancel()

    @staticmethod
    async def _logout(client: Client) -> None:
        try:
            if client.protocol is None or client.protocol.closed.is_set():
                return  # nothing to say to a closed connection; LOGOUT would wait behind its commands
            if client.has_pending_idle():
                client.idle_done()  # cancelled mid-IDLE: LOGOUT would wait behind it
            if client.get_state() in ("AUTH", "SELECTED"):
                await asyncio.wait_for(client.logout(), 2.0)
        except Exception:  # the connection is already gone; nothing to tidy
            log.debug("imap logout failed", exc_info=True)
        try:
            if client.protocol is not None and client.protocol.transport is not None:
                client.protocol.transport.close()
        except Exception:  # as above
            log.debug("imap close failed", exc_info=True)
