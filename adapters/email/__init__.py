"""Email: inbound over SMTP (a listener the hub runs) and IMAP (a poller on our own mailbox),
outbound over SMTP submission. Docs: RFC 5321 (SMTP), RFC 5322 (format), RFC 3464 (bounces),
RFC 3834 (Auto-Submitted), RFC 2177 (IMAP IDLE), RFC 8058 (one-click List-Unsubscribe).

Inbound, every message becomes one Interaction (adapters.email.parse): provider `email` on both
paths, provider_ref the Message-ID without angle brackets (or `sha256:<hex>` of the raw bytes when
there is none), conversation_key `email:<thread root>` (the first References entry, else
In-Reply-To, else the message's own id). Auto-replies and bounces are tagged and get kind
`event`; a bounce of a message we sent is also reported as a failed delivery of that message.

Authenticity: the SMTP listener takes mail only from a client that authenticated (SMTP AUTH
against `smtp_auth`) or connects from `trusted_networks`; with neither configured it refuses to
start, and a client that is neither gets 530/535 before DATA, so nothing is written. The IMAP
poller is authentic by construction: it logs in to our own mailbox with our credentials, and what
the mailbox holds is what our MX accepted.

Config keys (adapters.email): smtp_listen ("host:port"), smtp_hostname, smtp_auth (user:
password), smtp_auth_require_tls, smtp_tls_cert/smtp_tls_key, trusted_networks (CIDRs); imap
{host, port, ssl, username, password, mailbox, poll_interval_s, idle, timeout_s,
reconnect_max_s, start (all|new), max_attempts, failed_mailbox}; smtp_host, smtp_port, smtp_username/smtp_password, starttls or ssl,
from_address, from_name, unsubscribe_address, send_attempts, send_retry_wait_s, send_timeout_s,
max_message_bytes. See adapters/email/config.py.

Quirks: Korean mail labelled EUC-KR or ks_c_5601-1987 is read as CP949 and Shift_JIS as CP932
(their supersets, which senders actually use); an unknown charset is read as UTF-8 with
replacement characters rather than refused.
"""

from __future__ import annotations

from typing import ClassVar

from adapters.base import (
    AdapterDeps,
    Capabilities,
    ChannelAdapter,
    OutboundMessage,
    SendResult,
)
from schemas import Interaction

from .config import EmailConfig, ImapConfig
from .imap_poller import ImapPoller
from .inbound import parse_inbound
from .parse import PROVIDER
from .smtp_listener import SmtpListener
from .smtp_sender import SmtpSender

__all__ = ["EmailAdapter", "EmailConfig", "ImapConfig"]


class EmailAdapter(ChannelAdapter):
    name: ClassVar[str] = "email"
    channel: ClassVar[str] = "email"
    provider: ClassVar[str] = PROVIDER
    Config = EmailConfig
    capabilities: ClassVar[Capabilities] = Capabilities(html=True, subject=True, attachments=True)

    config: EmailConfig

    def __init__(self, config: EmailConfig, deps: AdapterDeps) -> None:
        super().__init__(config, deps)
        self.listener: SmtpListener | None = None
        self.poller: ImapPoller | None = None
        self.sender = SmtpSender(config, deps.clock)

    async def start(self) -> None:
        if self.config.smtp_listen:
            self.listener = SmtpListener(self.config, self.deps)
            await self.listener.start()
        if self.config.imap is not None:
            self.poller = ImapPoller(self.config.imap, self.deps, max_bytes=self.config.max_message_bytes)
            await self.poller.start()

    async def stop(self) -> None:
        # Each stops taking new mail, then waits for what it accepted to be committed.
        if self.poller is not None:
            await self.poller.stop()
            self.poller = None
        if self.listener is not None:
            await self.listener.stop()
            self.listener = None

    def normalize(self, raw: bytes) -> Interaction:
        return parse_inbound(raw, self.deps, max_bytes=self.config.max_message_bytes, via=None).interaction

    async def send(self, message: OutboundMessage) -> SendResult:
        return await self.sender.send(message)
