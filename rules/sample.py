"""A dry-run sample: the JSON that `rules test` reads and `POST /v1/rules/test` takes, checked.

{"trigger": "interaction.received" | {"schedule": "daily 09:00"}, "interaction": {...contact
schema...}, "profile": {...}, "task": {...}, "now": "2026-11-23T10:00:00+09:00"}
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from schemas import CHANNELS_KEY, DEFAULT_REGION_KEY, Interaction, OmnihubError

from .errors import SpecError
from .schedule import parse_schedule

SAMPLE_KEYS = ("trigger", "interaction", "profile", "task", "now")


class SampleError(OmnihubError):
    """The sample is malformed; the message names the key."""


@dataclass(frozen=True, slots=True)
class Sample:
    trigger: str
    interaction: Interaction | None
    profile: dict[str, Any] | None
    task: dict[str, Any] | None
    now: datetime

    def inputs(self) -> dict[str, Any]:
        """Keyword arguments for evaluate()."""
        return {"interaction": self.interaction, "profile": self.profile, "task": self.task, "now": self.now}


def parse_sample(
    data: object, *, default_now: datetime, region: str | None = None, channels: Collection[str] | None = None
) -> Sample:
    """Check a decoded sample. `default_now` is used when it gives no `now` (the caller owns the clock)."""
    if not isinstance(data, dict):
        raise SampleError("the sample must be a JSON object")
    unknown = set(data) - set(SAMPLE_KEYS)
    if unknown:
        raise SampleError(f"unknown keys {sorted(unknown)}; use {', '.join(SAMPLE_KEYS)}")
    trigger = data.get("trigger", "interaction.received")
    if isinstance(trigger, dict) and set(trigger) == {"schedule"}:
        try:
            trigger = parse_schedule(trigger["schedule"]).trigger
        except SpecError as exc:
            raise SampleError(f"trigger: {exc}") from None
    if not isinstance(trigger, str):
        raise SampleError('trigger must be an event type or {"schedule": "..."}')
    interaction = None
    if data.get("interaction") is not None:
        context: dict[str, Any] = {DEFAULT_REGION_KEY: region}
        if channels is not None:
            context[CHANNELS_KEY] = frozenset(channels)
        try:
            interaction = Interaction.model_validate(data["interaction"], context=context)
        except ValidationError as exc:
            raise SampleError(f"interaction: {exc}") from None
    now_text = data.get("now")
    try:
        now = datetime.fromisoformat(now_text) if now_text is not None else default_now
    except (TypeError, ValueError):
        raise SampleError(f"now must be an ISO datetime with an offset, not {now_text!r}") from None
    if now.tzinfo is None:
        raise SampleError("now needs a UTC offset, e.g. 2026-11-23T09:00:00+09:00")
    for key in ("profile", "task"):
        if not isinstance(data.get(key), (dict, type(None))):
            raise SampleError(f"{key} must be a JSON object")
    return Sample(trigger, interaction, data.get("profile"), data.get("task"), now)
