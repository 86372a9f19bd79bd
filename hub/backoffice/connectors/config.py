"""A worker's configuration: a YAML file of its own (`omnihub worker KIND --config FILE`).

```yaml
amqp_url: amqp://guest:guest@127.0.0.1:5672/%2F
name: erp-customers               # the queue is omnihub.worker.<name> unless `queue` is given
bindings: ["profile.*", "interaction.received.#"]
prefetch: 100                     # unacked deliveries the broker hands this worker at once
batch_size: 100                   # events written to the target in one transaction
attempts: 5                       # tries before an event is dead-lettered
erasure_events: true              # also bind profile.erased (the default): erasure reaches this copy
target: {...}                     # per kind: see hub.backoffice.connectors.sql, .file, .http
```
Unknown keys are refused, as in the hub's own settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from hub.broker.topology import Topology
from hub.settings import ConfigError, QueueSettings

ERASED = "profile.erased"  # the routing key of an erasure (hub.profiles.store.erase)


class WorkerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    amqp_url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/%2F")
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    queue: str | None = None
    bindings: list[str] = Field(min_length=1)
    events_exchange: str = "omnihub.events"
    commands_exchange: str = "omnihub.commands"
    dead_exchange: str = "omnihub.dead"
    dead_queue: str = "omnihub.dead"
    queues: QueueSettings = Field(default_factory=QueueSettings)
    declare_topology: bool = True
    prefetch: int = Field(100, ge=1, le=10_000)
    batch_size: int = Field(100, ge=1, le=10_000)
    attempts: int = Field(5, ge=1, le=100)
    backoff_initial_s: float = Field(0.05, ge=0)
    backoff_max_s: float = Field(5.0, ge=0)
    reconnect_max_s: float = Field(30.0, gt=0)
    idle_interval_s: float = Field(0.2, gt=0)  # how often the target is told "nothing new" (time rotation)
    # Every copy of a customer's data must hear of their erasure (GDPR art. 17), whatever else the
    # connector is bound to: profile.erased is bound unless this is switched off.
    erasure_events: bool = True
    target: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _batch_fits_window(self) -> WorkerConfig:
        if self.batch_size > self.prefetch:
            raise ValueError("batch_size cannot exceed prefetch: a batch is acked only after it is written")
        return self

    @property
    def all_bindings(self) -> list[str]:
        extra = [ERASED] if self.erasure_events and ERASED not in self.bindings else []
        return [*self.bindings, *extra]

    @property
    def queue_name(self) -> str:
        return self.queue or f"omnihub.worker.{self.name}"

    def topology(self) -> Topology:
        return Topology(self.events_exchange, self.commands_exchange, "", self.dead_exchange, self.dead_queue,
                        self.queues)


def load_worker_config(path: str | Path) -> WorkerConfig:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read worker config {path}: {exc}") from None
    return parse(WorkerConfig, data, f"worker config {path}")


def parse(model: type[BaseModel], data: Any, what: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        issues = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid {what}: {issues}") from None
