"""The email adapter's settings (`adapters.email` in the hub config), checked at start-up."""

from __future__ import annotations

import enum
from typing import Self

from pydantic import Field, IPvAnyNetwork, SecretStr, field_validator, model_validator

from adapters.base import AdapterConfig, ConfigProblem


def split_host_port(value: str) -> tuple[str, int]:
    """'127.0.0.1:2525', '[::1]:2525' or ':2525' (every interface) as (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:2525")
    return host.strip("[]") or "0.0.0.0", int(port)


class ImapStart(enum.StrEnum):
    """Where a poller with no saved position for its mailbox starts."""

    ALL = "all"  # every message already in the mailbox is ingested
    NEW = "new"  # what is there is taken as read: only mail arriving from now on is ingested


class ImapConfig(AdapterConfig):
    host: str
    port: int = Field(993, ge=1, le=65535)
    ssl: bool = True
    username: str
    password: SecretStr
    mailbox: str = "INBOX"
    # Between polls when the server has no IDLE; with IDLE, the longest one IDLE lasts before it
    # is renewed (RFC 2177: servers may drop an IDLE after 30 minutes).
    poll_interval_s: float = Field(60.0, gt=0)
    idle: bool = True
    timeout_s: float = Field(30.0, gt=0)
    reconnect_max_s: float = Field(300.0, gt=0)
    start: ImapStart = ImapStart.ALL
    # A message the hub refuses, or the server will not FETCH, this many times (outages never
    # count) is copied into failed_mailbox (created if missing) and passed over, so it cannot hold
    # up the mail after it; a COPY the server refuses this many times passes it over uncopied.
    max_attempts: int = Field(5, ge=1)
    failed_mailbox: str = Field("omnihub-failed", min_length=1, max_length=200)

    @field_validator("failed_mailbox")
    @classmethod
    def _mailbox_name(cls, v: str) -> str:
        # Sent in modified UTF-7 as a quoted string (imap_wire.mailbox_arg); the wildcards would
        # make the CREATE of a missing one ambiguous, and control characters are never valid.
        if not v.isprintable() or "*" in v or "%" in v:
            raise ValueError("expected a mailbox name of printable characters without the wildcards * and %")
        return v

    @model_validator(mode="after")
    def _distinct_mailboxes(self) -> Self:
        if _mailbox_key(self.failed_mailbox) == _mailbox_key(self.mailbox):
            raise ConfigProblem("failed_mailbox", "must not be the mailbox the poller reads")
        return self


def _mailbox_key(name: str) -> str:
    return "INBOX" if name.upper() == "INBOX" else name  # only INBOX is case-insensitive (RFC 3501)


class EmailConfig(AdapterConfig):
    # Inbound over SMTP: the listener and who may use it.
    smtp_listen: str | None = None
    smtp_hostname: str | None = None  # in the banner; the machine's name by default
    smtp_auth: dict[str, SecretStr] = Field(default_factory=dict)  # username -> password
    smtp_auth_require_tls: bool = True  # AUTH only after STARTTLS (needs smtp_tls_cert/key)
    smtp_tls_cert: str | None = None
    smtp_tls_key: str | None = None
    trusted_networks: list[IPvAnyNetwork] = Field(default_factory=list)
    # Inbound over IMAP.
    imap: ImapConfig | None = None
    # Outbound.
    smtp_host: str | None = None
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    starttls: bool = True  # STARTTLS required (port 587); false only for a relay on loopback
    ssl: bool = False  # implicit TLS from the first byte (port 465)
    from_address: str | None = None
    from_name: str | None = None
    unsubscribe_address: str | None = None  # mailto target of List-Unsubscribe without a URL
    send_attempts: int = Field(3, ge=1, le=20)
    send_retry_wait_s: float = Field(1.0, ge=0)
    send_timeout_s: float = Field(30.0, gt=0)
    max_message_bytes: int = Field(25 * 1024 * 1024, gt=0)

    @field_validator("smtp_listen")
    @classmethod
    def _host_port(cls, v: str | None) -> str | None:
        if v is not None:
            split_host_port(v)
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.smtp_listen and not self.smtp_auth and not self.trusted_networks:
            raise ConfigProblem("smtp_listen", "needs smtp_auth users and/or trusted_networks: "
                                "an SMTP listener must know who may hand it mail")
        if bool(self.smtp_tls_cert) != bool(self.smtp_tls_key):
            raise ConfigProblem("smtp_tls_key" if self.smtp_tls_cert else "smtp_tls_cert",
                                "missing: smtp_tls_cert and smtp_tls_key go together")
        if self.smtp_listen and self.smtp_auth and self.smtp_auth_require_tls and not self.smtp_tls_cert:
            raise ConfigProblem("smtp_auth", "with smtp_auth_require_tls needs smtp_tls_cert and smtp_tls_key "
                                "(or set smtp_auth_require_tls: false on a loopback or private network)")
        if self.ssl and self.starttls:
            raise ConfigProblem("ssl", "ssl (implicit TLS) and starttls are exclusive; set starttls: false with ssl")
        if self.smtp_host and not self.from_address:
            raise ConfigProblem("from_address", "missing: smtp_host needs from_address")
        if bool(self.smtp_username) != bool(self.smtp_password):
            raise ConfigProblem("smtp_password" if self.smtp_username else "smtp_username",
                                "missing: smtp_username and smtp_password go together")
        return self
