"""Inbound email over SMTP: an aiosmtpd server on the hub's own event loop.

aiosmtpd's Controller runs the server on a thread and loop of its own; we serve aiosmtpd's SMTP
protocol from `loop.create_server` instead, because `deps.ingest` belongs to the hub's loop (the
pipeline's futures live there) and a thread hop per message would buy nothing.

Who may hand us mail: a client that authenticated with SMTP AUTH (users in `smtp_auth`) or one
connecting from `trusted_networks` (an MX relaying to us). Anyone else gets `530` at MAIL FROM
(and at DATA, should a client skip ahead) and a wrong password `535`; nothing is written.

`250` after DATA means the interaction is committed: the reply waits for `deps.ingest` to return.
A failure to store answers `451` so the sending MTA retries (the retry is deduped on the
Message-ID); a message we can never take (not a message, too large) answers `554`/`552` so it
stops retrying. The ingest runs shielded from the SMTP session: a client that hangs up while we
commit does not cancel the commit, and `stop()` waits for it.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import ssl
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from adapters.base import AdapterDeps, PayloadError

from .config import EmailConfig, split_host_port
from .inbound import accept, parse_inbound

log = logging.getLogger("omnihub.adapters.email.smtp")

AUTH_REQUIRED = "530 5.7.0 Authentication required"
_STOP_GRACE_S = 30.0


class _Authenticator:
    def __init__(self, users: dict[str, str]) -> None:
        self._users = {u.encode(): p.encode() for u, p in users.items()}

    def __call__(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                 auth_data: Any) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        expected = self._users.get(auth_data.login)
        # compare_digest on a dummy for an unknown user, so timing does not tell users apart.
        ok = hmac.compare_digest(expected or b"\0" * 32, auth_data.password) and expected is not None
        if not ok:
            log.warning("smtp auth failed", extra={"peer": _peer_host(session)})
        return AuthResult(success=ok, handled=False)


def _peer_host(session: Session) -> str | None:
    peer = session.peer
    return str(peer[0]) if isinstance(peer, tuple) and peer else None


class _Handler:
    def __init__(self, listener: SmtpListener) -> None:
        self.listener = listener

    def _allowed(self, session: Session) -> bool:
        return bool(session.authenticated) or self.listener.trusted(_peer_host(session))

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          mail_options: list[str]) -> str:
        if not self._allowed(session):
            return AUTH_REQUIRED
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if not self._allowed(session):
            return AUTH_REQUIRED
        return await self.listener.receive(envelope.original_content or envelope.content or b"")


class SmtpListener:
    def __init__(self, config: EmailConfig, deps: AdapterDeps) -> None:
        if not config.smtp_listen:
            raise ValueError("smtp_listen is not set")
        if not config.smtp_auth and not config.trusted_networks:
            # EmailConfig refuses this already; a listener must never run open.
            raise ValueError("the SMTP listener needs smtp_auth and/or trusted_networks")
        self.config = config
        self.deps = deps
        self.host, self.port = split_host_port(config.smtp_listen)
        self._networks = list(config.trusted_networks)
        self._server: asyncio.Server | None = None
        self._sessions: set[SMTP] = set()
        self._inflight: set[asyncio.Task[str]] = set()

    def trusted(self, host: str | None) -> bool:
        if host is None or not self._networks:
            return False
        try:
            addr = ipaddress.ip_address(host.split("%")[0])
        except ValueError:
            return False
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        return any(addr in net for net in self._networks)

    def _protocol(self) -> SMTP:
        config = self.config
        tls: ssl.SSLContext | None = None
        if config.smtp_tls_cert and config.smtp_tls_key:
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(config.smtp_tls_cert, config.smtp_tls_key)
        users = {u: p.get_secret_value() for u, p in config.smtp_auth.items()}
        protocol = SMTP(
            _Handler(self), hostname=config.smtp_hostname, data_size_limit=config.max_message_bytes,
            enable_SMTPUTF8=True, decode_data=False, tls_context=tls,
            authenticator=_Authenticator(users) if users else None,
            auth_require_tls=config.smtp_auth_require_tls, auth_exclude_mechanism=["CRAM-MD5"])
        self._sessions.add(protocol)
        return protocol

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, self.host, self.port)
        sock = self._server.sockets[0].getsockname()
        self.port = sock[1]  # the real port when the config said 0
        log.info("smtp listener started", extra={"host": self.host, "port": self.port})

    async def receive(self, raw: bytes) -> str:
        """One message from DATA to its SMTP reply."""
        try:
            parsed = parse_inbound(raw, self.deps, max_bytes=self.config.max_message_bytes, via="smtp")
        except PayloadError as exc:
            log.warning("smtp message refused", extra={"field": exc.field, "reason": exc.message})
            return f"554 5.6.0 Message refused ({exc.field}: {exc.message})"[:500]
        task = asyncio.create_task(accept(parsed, self.deps))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        try:
            outcome = await asyncio.shield(task)
        except asyncio.CancelledError:
            raise  # the client went away; the shielded commit goes on and stop() waits for it
        except Exception:
            log.exception("smtp message not stored")
            return "451 4.3.0 Not stored, try again later"
        return f"250 2.0.0 OK {outcome.interaction_id}"

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()  # no new connections
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=_STOP_GRACE_S)
        for session in self._sessions:
            transport = getattr(session, "transport", None)
            if transport is not None and not transport.is_closing():
                transport.close()
        self._sessions.clear()
        await self._server.wait_closed()
        self._server = None
