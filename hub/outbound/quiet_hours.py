"""When a marketing message may go: not inside the customer's quiet hours (DESIGN section 8)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def zone_of(profile_timezone: str | None, fallback: str) -> ZoneInfo:
    """The customer's own timezone when their profile names a valid one, else the configured one."""
    if profile_timezone:
        try:
            return ZoneInfo(profile_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return ZoneInfo(fallback)


def held_until(now: datetime, start: time, end: time, zone: ZoneInfo) -> datetime | None:
    """The end of the quiet window `now` falls in (UTC), or None when `now` is outside it.

    The window is [start, end) in local wall-clock time; with end before start it runs over
    midnight (21:00-08:00). Equal start and end: no window.
    """
    if start == end:
        return None
    local = now.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    overnight = end < start
    inside = (clock >= start or clock < end) if overnight else (start <= clock < end)
    if not inside:
        return None
    day = local.date() if (not overnight or clock < end) else local.date() + timedelta(days=1)
    # Built from the wall clock, not by adding hours: a DST change inside the window moves its
    # end in UTC, not in local time. fold=0 picks the first of a repeated local hour.
    return datetime.combine(day, end, tzinfo=zone).astimezone(UTC)
