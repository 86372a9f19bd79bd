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
idle, timeout_s, reconnect_max_s, start, max_attempts, failed_mailbox. Server docs: RFC 3501
(IMAP4rev1; UID COPY and [TRYCREATE] in 6.4.7), RFC 2177 (IDLE), RFC 5530 ([ALREADYEXISTS]).

A message that is not one (PayloadError) or is larger than `max_message_bytes` is logged and
skipped. A failure to ingest drops the connection and the poller reconnects with backoff
(adapters.email.retry), starting again from the last saved UID.

One message the hub keeps refusing must not hold up the mail after it: failed ingests are counted
per UID in `deps.state` (so a restart keeps the count), and after `max_attempts` the message is
UID COPYed into `failed_mailbox` (CREATEd if missing), logged with its UID and the last error's
type, and its UID saved as done. The original stays where it is, unflagged. An outage of the hub
itself (HubUnavailable: pipeline stopped, database unreachable) is not the message's fault and is
never counted: the poller just retries, however long the outage lasts. Failures of the IMAP
connection are not counted either.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from dataclasses import dataclass

import aioimaplib

from adapters.base import AdapterDeps, HubUnavailable, PayloadError

from .config import ImapConfig, ImapStart
from .inbound import accept, parse_inbound
from .retry import reconnect_retrying

log = logging.getLogger("omnihub.adapters.email.imap")

_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_UIDNEXT = re.compile(rb"\[UIDNEXT (\d+)\]")
_STATUS_UIDNEXT = re.compile(rb"\(.*\bUIDNEXT (\d+)")
_UID = re.compile(rb"\bUID (\d+)\b")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)\b")
_STOP_GRACE_S = 30.0


class ImapError(Exception):
    """The server refused a command (a NO or BAD answer)."""


class _NotIngested(Exception):
    """The hub refused a message (counted); the session ends and the poller retries it later.
    Says only the UID, the count and the error's type: the error itself may quote the message."""


def _ok(response: aioimaplib.Response, what: str) -> aioimaplib.Response:
    if response.result != "OK":
        raise ImapError(f"{what}: {response.result} {response.lines[-1:]!r}")
    return response


@dataclass(frozen=True)
class _Selected:
    validity: str
    uid_next: int | None  # from the SELECT answer; None when the server left it out


@dataclass(frozen=True)
class _Failing:
    """The UID whose ingest has been failing, as saved in the state store."""

    uid: int
    attempts: int
    error: str  # the last error's type name


def _quoted(mailbox: str) -> str:
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _already_exists(response: aioimaplib.Response) -> bool:
    text = b" ".join(bytes(line) for line in response.lines if isinstance(line, bytes | bytearray)).upper()
    return b"[ALREADYEXISTS]" in text or b"ALREADY EXISTS" in text  # RFC 5530, else the usual wording


class ImapPoller:
    def __init__(self, config: ImapConfig, deps: AdapterDeps, *, max_bytes: int) -> None:
        self.config = config
        self.deps = deps
        self.max_bytes = max_bytes
        where = f"{config.username}@{config.host}:{config.port}/{config.mailbox}"
        self.state_key = f"email.imap:{where}"  # "<uidvalidity>:<last uid done>"
        # "<uidvalidity>:<uid>:<failed attempts>:<last error type>", for the one UID that is failing
        self.attempts_key = f"email.imap.attempts:{where}"
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._busy = False  # between taking a message and saving its UID
        self.connected = asyncio.Event()  # set once logged in and past the first read (for tests/health)

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
        except (HubUnavailable, _NotIngested) as exc:
            if not healthy:
                raise
            log.warning("imap message not ingested; retrying", extra={"reason": str(exc)})
        except Exception:
            if not healthy:
                raise
            log.warning("imap connection lost; reconnecting", exc_info=True)
        finally:
            self.connected.clear()
            await self._logout(client)

    async def _connect(self) -> aioimaplib.IMAP4:
        c = self.config
        if c.ssl:
            client = aioimaplib.IMAP4_SSL(host=c.host, port=c.port, timeout=c.timeout_s,
                                          ssl_context=ssl.create_default_context())
        else:
            client = aioimaplib.IMAP4(host=c.host, port=c.port, timeout=c.timeout_s)
        try:
            await client.wait_hello_from_server()
            _ok(await client.login(c.username, c.password.get_secret_value()), "LOGIN")
        except BaseException:
            await self._logout(client)
            raise
        return client

    async def _select(self, client: aioimaplib.IMAP4) -> _Selected:
        response = _ok(await client.select(self.config.mailbox), "SELECT")
        # Servers must send both (RFC 3501 6.3.1); without UIDVALIDITY, UIDs are taken as stable.
        validity, uid_next = "0", None
        for line in response.lines:
            if found := _UIDVALIDITY.search(bytes(line)):
                validity = found.group(1).decode()
            elif found := _UIDNEXT.search(bytes(line)):
                uid_next = int(found.group(1))
        return _Selected(validity, uid_next)

    async def _last_uid(self, client: aioimaplib.IMAP4, selected: _Selected) -> int:
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

    async def _highest_uid(self, client: aioimaplib.IMAP4, selected: _Selected) -> int:
        """UIDNEXT - 1 as of the SELECT (mail arriving since has a higher UID and is read), or of a
        STATUS just after it from a server that left UIDNEXT out of its SELECT answer."""
        uid_next = selected.uid_next
        if uid_next is None:
            status = _ok(await client.status(_quoted(self.config.mailbox), "(UIDNEXT)"), "STATUS")
            found = next((m for line in status.lines for m in [_STATUS_UIDNEXT.search(bytes(line))] if m), None)
            if found is None:
                raise ImapError("neither SELECT nor STATUS gave the mailbox's UIDNEXT")
            uid_next = int(found.group(1))
        return max(uid_next - 1, 0)

    async def _drain(self, client: aioimaplib.IMAP4, selected: _Selected) -> None:
        validity = selected.validity
        last = await self._last_uid(client, selected)
        response = _ok(await client.uid_search(f"UID {last + 1}:*", charset=None), "UID SEARCH")
        # "n:*" always matches the highest UID, even when it is below n.
        uids = sorted({int(t) for line in response.lines[:-1] for t in bytes(line).split() if t.isdigit()})
        uids = [u for u in uids if u > last]
        failing = await self._failing(validity) if uids else None
        for uid in uids:
            if self._stopping.is_set():
                return
            self._busy = True
            try:
                await self._take(client, validity, uid, failing if failing and failing.uid == uid else None)
                await self.deps.state.set(self.state_key, f"{validity}:{uid}")
            finally:
                self._busy = False

    async def _take(self, client: aioimaplib.IMAP4, validity: str, uid: int, failing: _Failing | None) -> None:
        """Ingest one message, or dead-letter it once it has failed max_attempts times. Returns when
        its UID may be saved as done; raises to have it tried again after a reconnect."""
        if failing is not None and failing.attempts >= self.config.max_attempts:
            # Failed often enough before a restart (or a lowered max_attempts): no further try.
            await self._dead_letter(client, uid, failing.attempts, failing.error)
            return
        raw = await self._fetch(client, uid)  # IMAP trouble is the connection's, never counted
        if raw is None:
            return
        try:
            await self._ingest(raw, uid)
        except HubUnavailable:
            raise
        except Exception as exc:
            attempts = (failing.attempts if failing else 0) + 1
            error = type(exc).__name__
            await self.deps.state.set(self.attempts_key, f"{validity}:{uid}:{attempts}:{error}")
            log.debug("imap ingest failure", exc_info=True, extra={"uid": uid})
            if attempts < self.config.max_attempts:
                log.warning("imap message not ingested", extra={
                    "uid": uid, "attempt": attempts, "max_attempts": self.config.max_attempts, "error": error})
                raise _NotIngested(f"uid {uid}: attempt {attempts} of {self.config.max_attempts} "
                                   f"failed ({error})") from None
            await self._dead_letter(client, uid, attempts, error)

    async def _fetch(self, client: aioimaplib.IMAP4, uid: int) -> bytes | None:
        size_lines = _ok(await client.uid("fetch", str(uid), "(UID RFC822.SIZE)"), "UID FETCH").lines
        size = next((int(m.group(1)) for line in size_lines if isinstance(line, bytes)
                     for m in [_SIZE.search(line)] if m), 0)
        if size > self.max_bytes:
            log.warning("imap message over max_message_bytes skipped", extra={"uid": uid, "size": size})
            return None
        raw = self._literal(_ok(await client.uid("fetch", str(uid), "(UID BODY.PEEK[])"), "UID FETCH"), uid)
        if raw is None:
            log.warning("imap message vanished before it was fetched", extra={"uid": uid})
        return raw

    async def _ingest(self, raw: bytes, uid: int) -> None:
        try:
            parsed = parse_inbound(raw, self.deps, max_bytes=self.max_bytes, via="imap")
        except PayloadError as exc:
            log.warning("imap message refused", extra={"uid": uid, "field": exc.field, "reason": exc.message})
            return
        await accept(parsed, self.deps)

    async def _failing(self, validity: str) -> _Failing | None:
        saved = await self.deps.state.get(self.attempts_key)
        parts = (saved or "").split(":", 3)
        if len(parts) == 4 and parts[0] == validity and parts[1].isdigit() and parts[2].isdigit():
            return _Failing(int(parts[1]), int(parts[2]), parts[3])
        return None

    async def _dead_letter(self, client: aioimaplib.IMAP4, uid: int, attempts: int, error: str) -> None:
        """UID COPY into failed_mailbox, creating it on the first refusal. The original is left as
        it is: the poller never changes the mailbox it reads (a copy made twice, after a crash
        between the COPY and saving the UID, is the price)."""
        mailbox = _quoted(self.config.failed_mailbox)
        copied = await client.uid("copy", str(uid), mailbox)
        if copied.result != "OK":  # [TRYCREATE] when it is missing (RFC 3501 6.4.7), or another NO
            created = await client.create(mailbox)
            if created.result != "OK" and not _already_exists(created):
                raise ImapError(f"CREATE: {created.result} {created.lines[-1:]!r}")
            _ok(await client.uid("copy", str(uid), mailbox), "UID COPY")
        log.error("imap message dead-lettered: copied to failed_mailbox and passed over", extra={
            "uid": uid, "attempts": attempts, "error": error, "failed_mailbox": self.config.failed_mailbox})

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

    async def _wait(self, client: aioimaplib.IMAP4) -> None:
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
                _ok(await asyncio.wait_for(idle, self.config.timeout_s), "IDLE")
            else:
                await asyncio.wait({stopping}, timeout=interval)
        finally:
            stopping.cancel()

    @staticmethod
    async def _logout(client: aioimaplib.IMAP4) -> None:
        try:
            if client.protocol is not None and client.has_pending_idle():
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
