"""Durations as rule authors write them: `90s`, `10m`, `2h`, `30d`, `1w`, or joined (`1h30m`)."""

from __future__ import annotations

import re
from datetime import timedelta

from .errors import SpecError

_UNIT_SECONDS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
_PART = re.compile(r"(\d{1,9})([wdhms])")
# Ten years: long enough for "dormant 400d", short enough that datetime arithmetic never overflows.
MAX_DURATION = timedelta(days=3650)


def parse_duration(text: object) -> timedelta:
    """`"1h30m"` -> timedelta(minutes=90). Units must run largest to smallest, each at most once."""
    if not isinstance(text, str):
        raise SpecError(f"a duration is a string like 30d, 10m, 2h or 90s, not {text!r}")
    s = text.strip()
    pos, seconds, last_rank = 0, 0, -1
    ranks = list(_UNIT_SECONDS)
    while pos < len(s):
        m = _PART.match(s, pos)
        if m is None:
            break
        rank = ranks.index(m.group(2))
        if rank <= last_rank:
            raise SpecError(f"bad duration {text!r}: units must go from largest to smallest, once each")
        last_rank = rank
        seconds += int(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if not s or pos != len(s):
        raise SpecError(f"bad duration {text!r}: expected a number and a unit (w d h m s), e.g. 30d or 1h30m")
    if seconds > MAX_DURATION.total_seconds():
        raise SpecError(f"duration {text!r} is longer than {MAX_DURATION.days} days")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """The shortest spelling `parse_duration` reads back to the same whole-second value."""
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in _UNIT_SECONDS.items():
        n, seconds = divmod(seconds, size)
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts)
