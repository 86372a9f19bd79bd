"""Finding adapters: the entry-point group `omnihub.adapters`, for built-in and third-party alike.

Names are resolved once, at start-up: an unknown adapter name in the config, a config key the
adapter does not take, or a webhook adapter without an authenticity check stops the hub with a
message saying what to fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from schemas import OmnihubError

from .base import AdapterConfig, AdapterDeps, ChannelAdapter, ConfigProblem

GROUP = "omnihub.adapters"


@dataclass(frozen=True)
class ConfigIssue:
    """One thing wrong in the config: where (the full dotted key) and what."""

    path: str  # e.g. adapters.sms_twilio.from_numbr
    message: str  # e.g. unknown key (did you mean 'from_number'?)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class AdapterConfigError(OmnihubError):
    """Every issue found in the adapters' config, on one line."""

    def __init__(self, issues: str | Sequence[ConfigIssue]) -> None:
        self.issues = [ConfigIssue("adapters", issues)] if isinstance(issues, str) else list(issues)
        super().__init__("; ".join(str(issue) for issue in self.issues))


def available() -> dict[str, type[ChannelAdapter]]:
    """Every installed adapter class by entry-point name."""
    found: dict[str, type[ChannelAdapter]] = {}
    for ep in entry_points(group=GROUP):
        cls = ep.load()
        if not (isinstance(cls, type) and issubclass(cls, ChannelAdapter)):
            raise AdapterConfigError(f"entry point {ep.name} = {ep.value} is not a ChannelAdapter subclass")
        if cls.name != ep.name:
            raise AdapterConfigError(f"entry point {ep.name} loads {cls.__name__}, whose name is {cls.name!r}")
        found[ep.name] = cls
    return found


def validate_config(cls: type[ChannelAdapter], raw: Mapping[str, Any]) -> AdapterConfig:
    try:
        return cls.Config.model_validate(dict(raw))
    except ValidationError as exc:
        raise AdapterConfigError(explain(exc, cls.Config, f"adapters.{cls.name}")) from None


def explain(exc: ValidationError, model: type[BaseModel], prefix: str = "") -> list[ConfigIssue]:
    """Each of pydantic's errors as an issue naming its full dotted key, an unknown key with the
    nearest known one (difflib), a validator's complaint without pydantic's "Value error, "."""
    issues = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = tuple(str(p) for p in err["loc"])
        cause = (err.get("ctx") or {}).get("error")
        if err["type"] == "extra_forbidden":
            known = list(_model_at(model, loc[:-1]).model_fields)
            hint = difflib.get_close_matches(loc[-1], known, n=1)
            message = "unknown key" + (f" (did you mean {hint[0]!r}?)" if hint else "")
        elif isinstance(cause, ValueError):
            loc += (cause.key,) if isinstance(cause, ConfigProblem) else ()
            message = str(cause)
        else:
            message = err["msg"]
        path = ".".join(p for p in (prefix, *loc) if p) or "config"
        issues.append(ConfigIssue(path, " ".join(message.split())))  # one line, whatever the validator wrote
    return issues


def _model_at(model: type[BaseModel], path: tuple[str, ...]) -> type[BaseModel]:
    """The settings model a nested key belongs to (`imap.passwrd` -> the IMAP settings model;
    `queues.0.nme` -> a queue's)."""
    for name in path:
        if name.isdigit():  # an item of a list
            continue
        field = model.model_fields.get(name)
        if field is None:
            return model
        nested = [t for t in _types_in(field.annotation) if isinstance(t, type) and issubclass(t, BaseModel)]
        if not nested:
            return model
        model = nested[0]
    return model


def _types_in(annotation: Any) -> list[Any]:
    """The annotation and the types inside it (`list[Queue] | None` -> Queue among them)."""
    found = [annotation]
    for arg in get_args(annotation):
        found += _types_in(arg)
    return found


def check(configured: Mapping[str, Mapping[str, Any] | None],
          installed: Mapping[str, type[ChannelAdapter]] | None = None,
          ) -> list[tuple[type[ChannelAdapter], AdapterConfig]]:
    """Each enabled adapter's class and checked config; raises AdapterConfigError listing every
    issue of every adapter (an unknown name, a key it does not take, a missing value...).

    A name mapped to `{enabled: false}` is skipped, so a config can keep settings for an adapter
    it does not run.
    """
    installed = available() if installed is None else installed
    checked, issues = [], []
    for name, raw in configured.items():
        cls = installed.get(name)
        if cls is None:
            hint = difflib.get_close_matches(name, list(installed), n=1)
            issues.append(ConfigIssue(f"adapters.{name}", "no such adapter"
                                      + (f" (did you mean {hint[0]!r}?)" if hint else "")
                                      + f"; installed: {', '.join(sorted(installed)) or 'none'}"))
            continue
        raw = dict(raw or {})
        if raw.pop("enabled", True) is False:
            continue
        if cls.webhooks is not ChannelAdapter.webhooks and not cls.overrides_authenticate():
            issues.append(ConfigIssue(f"adapters.{name}", "takes webhooks but has no authenticity check"))
            continue
        try:
            checked.append((cls, validate_config(cls, raw)))
        except AdapterConfigError as exc:
            issues += exc.issues
    if issues:
        raise AdapterConfigError(issues)
    return checked


def build(configured: Mapping[str, Mapping[str, Any] | None], deps_for: Any,
          installed: Mapping[str, type[ChannelAdapter]] | None = None) -> list[ChannelAdapter]:
    """Instantiate the adapters named in config (see `check`). `deps_for(cls)` gives each its AdapterDeps."""
    adapters = []
    for cls, config in check(configured, installed):
        deps: AdapterDeps = deps_for(cls)
        try:
            adapters.append(cls(config, deps))
        except ValueError as exc:  # a check its Config model should have made: still the config's fault
            raise AdapterConfigError([ConfigIssue(f"adapters.{cls.name}", " ".join(str(exc).split()))]) from None
    return adapters
