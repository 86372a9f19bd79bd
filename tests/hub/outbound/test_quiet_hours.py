"""Quiet hours: a marketing message due inside the window waits exactly until it ends."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from hub.outbound.quiet_hours import held_until, zone_of

ZONES = ["Asia/Seoul", "America/New_York", "Europe/London", "Australia/Lord_Howe", "UTC", "America/Sao_Paulo"]
instants = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC))
clock = st.times().map(lambda t: t.replace(microsecond=0))


def _inside(at: datetime, start: time, end: time, zone: ZoneInfo) -> bool:
    local = at.astimezone(zone).time().replace(tzinfo=None)
    return (local >= start or local < end) if end < start else start <= local < end


@settings(max_examples=400)
@given(now=instants, start=clock, end=clock, zone=st.sampled_from(ZONES).map(ZoneInfo))
def test_held_only_inside_the_window_and_until_its_end(now, start, end, zone):
    until = held_until(now, start, end, zone)
    if start == end or not _inside(now, start, end, zone):
        assert until is None
        return
    assert until is not None and until > now
    assert until - now <= timedelta(hours=25)  # never past the next day's end (a DST day has 25 h)
    local_end = until.astimezone(zone).time().replace(tzinfo=None)
    # It ends at the window's end on the wall clock (unless a DST gap skipped that minute).
    assert local_end == end or zone.utcoffset(until.replace(tzinfo=None)) != zone.utcoffset(now.replace(tzinfo=None))
    assert not _inside(until, start, end, zone) or local_end != end
    # Not released later than it must be: a moment before the end is still quiet.
    if local_end == end and until - timedelta(seconds=1) > now:
        assert _inside(until - timedelta(seconds=1), start, end, zone)


def test_seoul_evening_waits_for_eight_and_new_york_follows_its_own_clock():
    start, end = time(21), time(8)
    evening = datetime(2026, 11, 24, 13, 30, tzinfo=UTC)  # 22:30 in Seoul, 08:30 in New York
    assert held_until(evening, start, end, ZoneInfo("Asia/Seoul")) == datetime(2026, 11, 24, 23, 0, tzinfo=UTC)
    assert held_until(evening, start, end, ZoneInfo("America/New_York")) is None
    noon = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)  # 12:00 in Seoul
    assert held_until(noon, start, end, ZoneInfo("Asia/Seoul")) is None


def test_the_profiles_own_zone_wins_and_a_bad_one_falls_back():
    assert zone_of("America/New_York", "Asia/Seoul") == ZoneInfo("America/New_York")
    assert zone_of("Mars/Olympus", "Asia/Seoul") == ZoneInfo("Asia/Seoul")
    assert zone_of(None, "Asia/Seoul") == ZoneInfo("Asia/Seoul")
