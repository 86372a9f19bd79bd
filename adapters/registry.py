"""Finding adapters: the entry-point group `omnihub.adapters`, for built-in and third-party alike.

Names are resolved once, at start-up: an unknown adapter name in the config, a config key the
adapter does not take, or a webhook adapter without an authenticity check stops the hub with a
message saying what to fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from schemas import OmnihubError

from .base import AdapterConfig, AdapterDeps, ChannelAdapter

GROUP = "omnihub.adapters"


class AdapterConfigError(OmnihubError):
    pass


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
        problems = []
        for err in exc.errors(include_url=False, include_input=False):
            where = ".".join(str(p) for p in err["loc"])
            if err["type"] == "extra_forbidden":
                known = list(_model_at(cls.Config, err["loc"][:-1]).model_fields)
                hint = difflib.get_close_matches(str(err["loc"][-1]), known, n=1)
                problems.append(f"{where}: unknown key" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
            else:
                problems.append(f"{where}: {err['msg']}")
        raise AdapterConfigError(f"adapters.{cls.name}: " + "; ".join(problems)) from None


def _model_at(model: type[BaseModel], path: tuple[Any, ...]) -> type[BaseModel]:
    """The settings model a nested key belongs to (`imap.passwrd` -> the IMAP settings model)."""
    for name in path:
        field = model.model_fields.get(str(name))
        if field is None:
            return model
        nested = [t for t in (field.annotation, *get_args(field.annotation))
                  if isinstance(t, type) and issubclass(t, BaseModel)]
        if not nested:
            return model
        model = nested[0]
    return model


def build(configured: Mapping[str, Mapping[str, Any]], deps_for: Any,
          installed: Mapping[str, type[ChannelAdapter]] | None = None) -> list[ChannelAdapter]:
    """Instantiate the adapters named in config. `deps_for(cls)` gives each its AdapterDeps.

    A name mapped to `{enabled: false}` is skipped, so a config can keep settings for an adapter
    it does not run.
    """
    installed = available() if installed is None else installed
    adapters = []
    for name, raw in configured.items():
        cls = installed.get(name)
        if cls is None:
            hint = difflib.get_close_matches(name, list(installed), n=1)
            raise AdapterConfigError(
                f"adapters.{name}: no such adapter" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                + f"; installed: {', '.join(sorted(installed)) or 'none'}")
        raw = dict(raw or {})
        if raw.pop("enabled", True) is False:
            continue
        config = validate_config(cls, raw)
        if cls.webhooks is not ChannelAdapter.webhooks and not cls.overrides_authenticate():
            raise AdapterConfigError(f"adapter {name} takes webhooks but has no authenticity check")
        deps: AdapterDeps = deps_for(cls)
        adapters.append(cls(config, deps))
    return adapters
