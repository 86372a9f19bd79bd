"""Configuration: `OMNIHUB_*` environment variables over an optional YAML file (DESIGN section 11).

Nested keys join with `__` (OMNIHUB_ADAPTERS__SMS_TWILIO__AUTH_TOKEN). Unknown keys are refused at
start-up with a "did you mean" hint, because a typo silently ignored is a misconfigured hub.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from datetime import time as dt_time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from adapters import registry
from routing import Capacity, Queue, RouterConfig
from rules.segments import compile_segments
from schemas import IdentifierType, Kind, OmnihubError

ENV_PREFIX = "OMNIHUB_"


class ConfigError(OmnihubError):
    pass


# --- routing (issue 6) ---
class AgentConfig(BaseModel):
    """An agent (or a salesperson who owns customer relationships) known from start-up."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(min_length=1, max_length=100)
    display_name: str | None = None
    skills: dict[str, int] = Field(default_factory=dict)
    capacity: Capacity = Field(default_factory=Capacity)


class RoutingSettings(BaseModel):
    """Queues and agents for the live router; with no queue configured the hub routes nothing."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    queues: list[Queue] = Field(default_factory=list)
    agents: list[AgentConfig] = Field(default_factory=list)
    default_queue: str | None = None  # for inbound interactions no rule routed; None: no task
    # The kinds of interaction that may become tasks at all. A POS sale (transaction), an imported
    # record or a mail bounce or auto-reply (event) is history, not work for an agent, even when a
    # broad rule or the default queue would route it.
    kinds: frozenset[Kind] = frozenset({Kind.MESSAGE, Kind.CALL})
    router: RouterConfig = Field(default_factory=RouterConfig)
    tier_priority: dict[str, int] = Field(default_factory=lambda: {"vip": 10})  # added by profile tier
    sticky_owner: bool = False  # prefer the profile's owner even when the route does not ask
    poll_interval_s: float = Field(0.25, gt=0)  # how often committed tasks are picked up
    lock_key: int = 0x6F6D6E69  # PostgreSQL advisory lock: one active router per database

    @model_validator(mode="after")
    def _known_default_queue(self) -> RoutingSettings:
        names = [q.name for q in self.queues]
        if self.default_queue is not None and self.default_queue not in names:
            raise ValueError(f"default_queue {self.default_queue!r} is not among the queues {names}")
        return self


# --- profiles (issue 3) ---
class MergePolicySettings(BaseModel):
    """Which shared identifiers merge two profiles on their own, and which conflicts forbid it.

    A merge the policy refuses becomes a merge suggestion (`GET /v1/profiles/merge-suggestions`)
    and the interaction attaches to the older profile.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    # Identifier types that may trigger an automatic merge (on both profiles' side).
    auto_merge_types: frozenset[IdentifierType] = frozenset(IdentifierType)
    # Two profiles holding different values of one of these types are two customers (two loyalty
    # cards, two CRM records), whatever else they share.
    exclusive_types: frozenset[IdentifierType] = frozenset({IdentifierType.LOYALTY_ID, IdentifierType.EXTERNAL})


class ValueScoreSettings(BaseModel):
    """The value score (0-100) from RFM, and the tiers it grants."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    recency_horizon_days: float = Field(365.0, gt=0)  # a purchase this old adds nothing
    frequency_cap: float = Field(20.0, gt=0)  # this many purchases score full marks
    monetary_cap: float = Field(1_000_000.0, gt=0)  # this much spent scores full marks
    weights: tuple[float, float, float] = (0.2, 0.3, 0.5)  # recency, frequency, monetary
    # Tier name -> lowest value score that earns it, e.g. {vip: 80}; the highest reached wins.
    # A tier set by hand to a name not listed here is left alone.
    tiers: dict[str, float] = Field(default_factory=dict)


# --- back-office (issue 7) ---
class QueueSettings(BaseModel):
    """Arguments of the queues the hub and its workers declare (DESIGN section 5).

    Quorum queues (RabbitMQ 3.8+) count deliveries and dead-letter a message redelivered more
    than `delivery_limit` times (a consumer that crashes on it every time); with 3.10+ the
    dead-lettering is at-least-once. Classic queues have neither: the consumers' own attempt
    count is then the only limit. Changing the type of an existing queue needs it deleted first
    (the broker refuses a redeclaration with other arguments).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["classic", "quorum"] = "quorum"
    delivery_limit: int | None = Field(20, ge=1)  # quorum only
    at_least_once_dead_lettering: bool = True  # quorum only, RabbitMQ 3.10+


class BackofficeSettings(BaseModel):
    """The RabbitMQ topology beyond the events exchange: commands in, dead letters."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    commands_enabled: bool = True  # consume omnihub.commands when amqp_url is set
    commands_exchange: str = "omnihub.commands"
    commands_queue: str = "omnihub.commands"
    dead_exchange: str = "omnihub.dead"
    dead_queue: str = "omnihub.dead"
    queues: QueueSettings = Field(default_factory=QueueSettings)
    command_prefetch: int = Field(50, ge=1, le=10_000)
    command_attempts: int = Field(5, ge=1, le=100)  # tries of a failing apply before dead-lettering
    declare_topology: bool = True  # false: an operator pre-declared it (see README)


class QuietHours(BaseModel):
    """A daily window, in the customer's timezone (else `timezone`), in which marketing messages are
    not sent: they wait until it ends (DESIGN section 8). Transactional messages are not held."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    start: dt_time = dt_time(21, 0)
    end: dt_time = dt_time(8, 0)  # before `start`: the window runs over midnight
    timezone: str = "Asia/Seoul"  # for customers whose profile has none

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {v!r} (an IANA name, e.g. Asia/Seoul)") from None
        return v


class AuthSettings(BaseModel):
    """Logins and API keys (hub.access.auth). Off by default: the embedded default, the demo and the benches run open."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = False
    token_ttl_s: float = Field(28_800.0, gt=0)  # a login lasts a shift
    # A verified token or key is remembered this long: a revoked key works up to this long after.
    key_cache_s: float = Field(30.0, ge=0)
    # Login throttling (hub.access.throttle): this many wrong passwords in a row are free, then each
    # further one blocks the next attempt for base, doubling up to max; this many lock the account
    # until an admin unlocks it. Per client address: a higher allowance and no lockout.
    login_free_failures: int = Field(5, ge=1)
    login_base_delay_s: float = Field(30.0, gt=0)
    login_max_delay_s: float = Field(900.0, gt=0)
    login_lockout_failures: int | None = Field(20, ge=2)
    login_address_free_failures: int = Field(20, ge=1)
    login_forget_after_s: float = Field(3600.0, gt=0)
    password_min_length: int = Field(12, ge=8)
    # An API key's use goes to the security log at most once per key per this long per hub process.
    key_use_interval_s: float = Field(300.0, ge=0)
    # Websockets (hub.access.sockets): a one-time ticket opens one within this long; open ones are
    # re-checked this often and closed once their credentials end; pages on these origins (besides
    # the hub's own) may open the agent socket, e.g. "https://crm.example.com".
    ws_ticket_ttl_s: float = Field(30.0, gt=0)
    socket_recheck_s: float = Field(2.0, gt=0)
    socket_origins: tuple[str, ...] = ()

    @field_validator("socket_origins")
    @classmethod
    def _origins(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(o.rstrip("/").lower() for o in v)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    database_url: str = "sqlite+aiosqlite:///omnihub.db"
    # An unreachable or silent database is answered 503 within these, never waited on for as long as
    # it lasts: connecting (and waiting for a free pooled connection), and each statement (PostgreSQL
    # cancels it on the server; the client gives up a second later if the server is silent).
    # SQLite keeps its own lock wait (busy_timeout, 10 s).
    database_connect_timeout_s: float = Field(3.0, gt=0, le=600)
    database_statement_timeout_s: float = Field(5.0, gt=0, le=3600)
    amqp_url: SecretStr | None = None
    events_exchange: str = "omnihub.events"
    public_base_url: str = "http://127.0.0.1:8080"
    default_region: str = "KR"
    rules_dir: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    max_body_bytes: int = Field(1_048_576, ge=1024)
    log_level: str = "INFO"
    access_log: bool = False
    # Group commit: the most ingests one transaction carries.
    ingest_batch_max: int = Field(256, ge=1, le=10_000)
    relay_batch_size: int = Field(500, ge=1, le=10_000)
    relay_poll_interval_s: float = Field(1.0, gt=0)
    # The longest wait between reconnects of the relay and the command consumer: after a broker
    # outage, events flow again within this long of its return.
    relay_backoff_max_s: float = Field(5.0, gt=0)
    # The AMQP heartbeat the hub asks for; a broker silent for 1.5 of them counts as down
    # (hub.broker.amqp_liveness).
    amqp_heartbeat_s: int = Field(2, ge=1, le=600)
    # Every background loop (hub.tasks): the longest wait between retries while it fails, and how
    # long it may be busy without progress before /readyz calls it stuck.
    loop_backoff_max_s: float = Field(5.0, gt=0)
    loop_stuck_after_s: float = Field(120.0, gt=0)
    # Adapter name (its entry point in `omnihub.adapters`) -> its settings; checked by the adapter's
    # own Config model at start-up. `{enabled: false}` keeps settings without running it.
    adapters: dict[str, dict[str, Any]] = Field(default_factory=dict)
    blob_dir: str = "omnihub-blobs"  # attachment bytes, content-addressed
    outbound_max_attempts: int = Field(5, ge=1, le=100)
    outbound_concurrency: int = Field(16, ge=1, le=1000)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    merge_policy: MergePolicySettings = Field(default_factory=MergePolicySettings)  # profiles (issue 3)
    value_score: ValueScoreSettings = Field(default_factory=ValueScoreSettings)  # profiles (issue 3)
    # Segment name -> a rules `when:` condition on `profile.*`, e.g.
    # {big-spender: {field: profile.monetary, op: gte, value: 1000000}}; recomputed on every change.
    segments: dict[str, dict[str, Any]] = Field(default_factory=dict)  # profiles (issue 3)
    backoffice: BackofficeSettings = Field(default_factory=BackofficeSettings)  # back-office (issue 7)
    # Message templates (hub.outbound.templates): name -> {channel or default: text or {subject, text, html}},
    # and a directory of YAML files holding more of them.
    templates: dict[str, Any] = Field(default_factory=dict)
    templates_dir: str | None = None
    quiet_hours: QuietHours | None = Field(default_factory=QuietHours)  # null: marketing at any hour
    auth: AuthSettings = Field(default_factory=AuthSettings)

    @field_validator("default_region")
    @classmethod
    def _region(cls, v: str) -> str:
        import phonenumbers

        if v.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown region {v!r} (ISO 3166 alpha-2, e.g. KR, US)")
        return v.upper()

    @field_validator("segments")
    @classmethod
    def _segments(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        compile_segments(v)  # refused at start-up with the loader's message, per segment
        return v

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the file (init_settings carries the YAML file's values).
        return (env_settings, init_settings)

    def masked(self) -> dict[str, Any]:
        """The effective config as JSON-able data with secrets masked (`omnihub config`)."""
        data = self.model_dump(mode="json")
        data["amqp_url"] = _mask_url(self.amqp_url.get_secret_value()) if self.amqp_url else None
        data["database_url"] = _mask_url(self.database_url)
        data["adapters"] = {name: _mask_secrets(conf) for name, conf in self.adapters.items()}
        return data


_SECRET_WORDS = ("token", "secret", "password", "key")
_SECRET_PARTS = {*_SECRET_WORDS, "auth", "passwd", "pw"}  # whole words of a snake_case key


def _mask_secrets(conf: Any, secret: bool = False) -> Any:
    """Mask by name, at any depth: a value under a secret-sounding key, and everything below one
    (`smtp_auth: {user: password}`, `imap: {password: ...}`)."""
    if isinstance(conf, dict):
        return {k: _mask_secrets(v, secret or bool(_SECRET_PARTS & set(str(k).lower().split("_"))))
                for k, v in conf.items()}
    if isinstance(conf, list):
        return [_mask_secrets(v, secret) for v in conf]
    return "***" if secret and conf and not isinstance(conf, bool) else conf


def _mask_url(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def load_settings(config_file: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Settings from the YAML file (if any), the environment over it, then explicit overrides."""
    values: dict[str, Any] = {}
    if config_file is not None:
        path = Path(config_file)
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
        values.update(loaded)
    try:
        settings = Settings(**values)
    except ValidationError as exc:
        raise ConfigError(_explain(exc)) from None
    if overrides:
        try:
            settings = Settings.model_validate({**settings.model_dump(), **overrides})
        except ValidationError as exc:
            raise ConfigError(_explain(exc)) from None
    return settings


def check_adapters(settings: Settings) -> None:
    """Check `adapters`: every name installed, every adapter's keys its own Config takes (what the
    hub would refuse when mounting them). Raises ConfigError naming each bad key."""
    try:
        registry.check(settings.adapters)
    except registry.AdapterConfigError as exc:
        raise ConfigError(_one_line(exc.issues)) from None


def unknown_environment(environ: Mapping[str, str] | None = None) -> list[str]:
    """A warning for each `OMNIHUB_*` variable that names no setting: pydantic-settings reads only
    the names it knows, so `OMNIHUB_DATABSE_URL` would be ignored without a word."""
    environ = os.environ if environ is None else environ
    known = list(Settings.model_fields)
    warnings = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper.startswith(_NOT_SETTINGS):
            continue
        key = upper[len(ENV_PREFIX):].split("__", 1)[0].lower()
        if key in known:
            continue  # a nested key under a known one is checked as the config is (extra keys refused)
        hint = difflib.get_close_matches(key, known, n=1)
        suggestion = f" (did you mean {ENV_PREFIX}{hint[0].upper()}?)" if hint else ""
        warnings.append(f"environment variable {name} names no setting{suggestion}; it is ignored")
    return warnings


# Read by the test suite and CI, never by the hub: not misspelt settings.
_NOT_SETTINGS = ("OMNIHUB_TEST_", "OMNIHUB_REQUIRE_SERVICES", "OMNIHUB_ASYNCAPI_SPECS")


def _explain(exc: ValidationError) -> str:
    return _one_line(registry.explain(exc, Settings))


def _one_line(issues: list[registry.ConfigIssue]) -> str:
    """The issues on one line; a key set from the environment says which variable set it."""
    said = []
    for issue in issues:
        variable = ENV_PREFIX + issue.path.replace(".", "__").upper()
        source = f" (from {variable})" if any(n.upper() == variable for n in os.environ) else ""
        said.append(f"{issue.path}{source}: {issue.message}")
    return "invalid configuration: " + "; ".join(said)
