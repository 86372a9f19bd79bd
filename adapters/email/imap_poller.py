"""Inbound email over IMAP: a poller on our own mailbox (aioimaplib), IDLE where offered.

Authentic by construction: we log in to our own mailbox with our own credentials, and what it
holds is what our mail provider accepted for us; there is no third party to authenticate.

Nothing is read twice after a restart, and nothing is lost: messages are taken in UID order
(`UID SEARCH UID <last+1>:*`), each is ingested, and only after the ingest returned (committed) is
its UID saved in `deps.state` (with the mailbox's UIDVALIDITY, so a rebuilt mailbox is read from
the start again; its messages are then repeats, deduped on the Message-ID). Bodies are fetched
with BODY.PEEK[], which leaves the \\Seen flag to the humans who also read the mailbox.

A message that is not one (PayloadError) or is larger than `max_message_bytes` is logged and
skipped; a failure to ingest drops the connection and the poller reconnects with backoff
(adapters.email.retry), starting again from the last saved UID.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl

import aioimaplib

from adapters.base import AdapterDeps, PayloadError

from .config import ImapConfig
from .inbound import accept, parse_inbound
from .retry import reconnect_retrying

log = logging.getLogger("omnihub.adapters.email.imap")

_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_UID = re.compile(rb"\bUID (\d+)\b")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)\b")
_STOP_GRACE_S = 30.0


class ImapError(Exception):
    """The server refused a command (a NO or BAD answer)."""


def _ok(response: aioimaplib.Response, what: str) -> aioimaplib.Response:
    if response.result != "OK":
        raise ImapError(f"{what}: {response.result} {response.lines[-1:]!r}")
    return response


class ImapPoller:
    def __init__(self, config: ImapConfig, deps: AdapterDeps, *, max_bytes: int) -> None:
        self.config = config
        self.deps = deps
        self.max_bytes = max_bytes
        self.state_key = f"email.imap:{config.username}@{config.host}:{config.port}/{config.mailbox}"
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
            validity = await self._select(client)
            while not self._stopping.is_set():
                await self._drain(client, validity)
                if not healthy:
                    healthy = True
                    self.connected.set()
                await self._wait(client)
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

    async def _select(self, client: aioimaplib.IMAP4) -> str:
        response = _ok(await client.select(self.config.mailbox), "SELECT")
        for line in response.lines:
            found = _UIDVALIDITY.search(bytes(line))
            if found:
                return found.group(1).decode()
        return "0"  # servers must send it (RFC 3501); without one, UIDs are taken as stable

    async def _last_uid(self, validity: str) -> int:
        saved = await self.deps.state.get(self.state_key)
        if saved:
            saved_validity, _, uid = saved.partition(":")
            if saved_validity == validity and uid.isdigit():
                return int(uid)
            log.warning("imap UIDVALIDITY changed; reading the mailbox again (repeats are deduped)")
        return 0

    async def _drain(self, client: aioimaplib.IMAP4, validity: str) -> None:
        last = await self._last_uid(validity)
        response = _ok(await client.uid_search(f"UID {last + 1}:*", charset=None), "UID SEARCH")
        # "n:*" always matches the highest UID, even when it is below n.
        uids = sorted({int(t) for line in response.lines[:-1] for t in bytes(line).split() if t.isdigit()})
        for uid in (u for u in uids if u > last):
            if self._stopping.is_set():
                return
            self._busy = True
            try:
                await self._take(client, uid)
                await self.deps.state.set(self.state_key, f"{validity}:{uid}")
            finally:
                self._busy = False

    async def _take(self, client: aioimaplib.IMAP4, uid: int) -> None:
        size_lines = _ok(await client.uid("fetch", str(uid), "(UID RFC822.SIZE)"), "UID FETCH").lines
        size = next((int(m.group(1)) for line in size_lines if isinstance(line, bytes)
                     for m in [_SIZE.search(line)] if m), 0)
        if size > self.max_bytes:
            log.warning("imap message over max_message_bytes skipped", extra={"uid": uid, "size": size})
            return
        raw = self._literal(_ok(await client.uid("fetch", str(uid), "(UID BODY.PEEK[])"), "UID FETCH"), uid)
        if raw is None:
            log.warning("imap message vanished before it was fetched", extra={"uid": uid})
            return
        try:
            parsed = parse_inbound(raw, self.deps, max_bytes=self.max_bytes, via="imap")
        except PayloadError as exc:
            log.warning("imap message refused", extra={"uid": uid, "field": exc.field, "reason": exc.message})
            return
        await accept(parsed, self.deps)

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
