"""Time triggers: `daily HH:MM` or a 5-field cron line, parsed and checked at load, and `next_fire`.

The hub owns the clock and the scan; this module only answers "when is the next run after t?" in
the ruleset's timezone, so a `daily 09:00` greeting goes out at nine local time all year round.
"""

from __future__ import annotations

import re
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from .errors import SpecError

_DAILY = re.compile(r"^daily\s+(\d{1,2}):(\d{2})$")
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
# (name, low, high, names starting at `low`)
_FIELDS = [
    ("minute", 0, 59, None),
    ("hour", 0, 23, None),
    ("day of month", 1, 31, None),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
]
# 29 February can be eight years away (2096 -> 2104); search a little longer, then give up.
_SEARCH_DAYS = 366 * 9


@dataclass(frozen=True, slots=True)
class Schedule:
    """A parsed schedule. `cron` is the normalized 5-field form; `source` is what the author wrote."""

    source: str
    cron: str
    minutes: tuple[int, ...] = field(repr=False)
    hours: tuple[int, ...] = field(repr=False)
    days: frozenset[int] = field(repr=False)
    months: frozenset[int] = field(repr=False)
    weekdays: frozenset[int] = field(repr=False)  # 0 = Sunday, as in cron
    day_restricted: bool = field(repr=False)
    weekday_restricted: bool = field(repr=False)

    @property
    def trigger(self) -> str:
        """The trigger key rules on this schedule are indexed under, e.g. `schedule:0 9 * * *`."""
        return f"schedule:{self.cron}"

    def matches_day(self, d: date) -> bool:
        if d.month not in self.months:
            return False
        dom = d.day in self.days
        dow = (d.isoweekday() % 7) in self.weekdays
        # Vixie cron: when both day fields are restricted, either one matching is enough.
        if self.day_restricted and self.weekday_restricted:
            return dom or dow
        return dom and dow


def parse_schedule(text: object) -> Schedule:
    """Parse `daily 09:00` or a cron line such as `30 8 * * mon-fri`; raise SpecError naming the field."""
    if not isinstance(text, str):
        raise SpecError(f'a schedule is a string like "daily 09:00" or "0 9 * * *", not {text!r}')
    src = " ".join(text.split())
    m = _DAILY.match(src)
    if m:
        hour, minute = int(m.group(1)), int(m.group(2))
        if hour > 23 or minute > 59:
            raise SpecError(f"bad time in schedule {text!r}: hours run 0-23, minutes 0-59")
        return _build(src, [str(minute), str(hour), "*", "*", "*"])
    parts = src.split(" ")
    if len(parts) != 5:
        raise SpecError(
            f'bad schedule {text!r}: expected "daily HH:MM" or 5 cron fields (minute hour day month weekday)'
        )
    return _build(src, parts)


def _build(source: str, parts: list[str]) -> Schedule:
    sets = [_parse_field(p.lower(), *spec) for p, spec in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(d % 7 for d in sets[4])  # 7 is Sunday too
    if parts[4].startswith("*") and not _possible(sets[2], sets[3]):
        raise SpecError(f"schedule {source!r} never fires: no month has those days")
    return Schedule(
        source=source,
        cron=" ".join(
            "*" if p == "*" else _canon(v) for p, v in zip(parts, [*sets[:4], weekdays], strict=True)
        ),
        minutes=tuple(sorted(sets[0])),
        hours=tuple(sorted(sets[1])),
        days=frozenset(sets[2]),
        months=frozenset(sets[3]),
        weekdays=weekdays,
        day_restricted=not parts[2].startswith("*"),  # as Vixie cron: "*/2" is unrestricted
        weekday_restricted=not parts[4].startswith("*"),
    )


def _canon(values: AbstractSet[int]) -> str:
    """Sorted values with runs as ranges, so `mon-fri` and `1-5` name the same trigger."""
    out: list[list[int]] = []
    run: list[int] = []
    for v in sorted(values):
        if run and v != run[-1] + 1:
            out.append(run)
            run = []
        run.append(v)
    out.append(run)
    return ",".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in out)


def _possible(days: set[int], months: set[int]) -> bool:
    longest = {2: 29, 4: 30, 6: 30, 9: 30, 11: 30}
    return any(d <= longest.get(m, 31) for d in days for m in months)


def _parse_field(text: str, name: str, low: int, high: int, names: list[str] | None) -> set[int]:
    values: set[int] = set()
    for item in text.split(","):
        rng, _, step_text = item.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or not 0 < int(step_text) <= high:
                raise SpecError(f"bad step {step_text!r} in the {name} field")
            step = int(step_text)
        if rng == "*":
            lo, hi = low, high
        elif "-" in rng:
            a, _, b = rng.partition("-")
            lo, hi = _value(a, name, low, high, names), _value(b, name, low, high, names)
            if lo > hi:
                raise SpecError(f"bad range {rng!r} in the {name} field: {lo} is after {hi}")
        else:
            lo = hi = _value(rng, name, low, high, names)
            if step_text:  # "5/15" means from 5 to the end, every 15
                hi = high
        values.update(range(lo, hi + 1, step))
    return values


def _value(text: str, name: str, low: int, high: int, names: list[str] | None) -> int:
    if names and text in names:
        return names.index(text) + low
    if not text.isdigit() or len(text) > 2 or not low <= int(text) <= high:
        allowed = f"{low}-{high}" + (f" or {names[0]}..{names[-1]}" if names else "")
        raise SpecError(f"bad value {text!r} in the {name} field: expected {allowed}")
    return int(text)


def next_fire(schedule: Schedule, after: datetime, tz: tzinfo) -> datetime:
    """The first instant strictly after `after` at which `schedule` fires, as wall time in `tz`.

    A wall time skipped by a DST jump fires at the first instant after the gap; a repeated wall
    time fires once (its first occurrence), so a daily job runs once a day whatever the clocks do.
    """
    if after.tzinfo is None:
        raise ValueError("next_fire needs an aware datetime")
    local = after.astimezone(tz)
    day = local.date()
    for _ in range(_SEARCH_DAYS):
        if schedule.matches_day(day):
            for hour in schedule.hours:
                for minute in schedule.minutes:
                    wall = datetime.combine(day, time(hour, minute), tzinfo=tz)
                    instant = wall.astimezone(UTC)
                    if instant > after:
                        return instant.astimezone(tz)
        day += timedelta(days=1)
    raise SpecError(f"schedule {schedule.source!r} does not fire within {_SEARCH_DAYS // 366} years")
