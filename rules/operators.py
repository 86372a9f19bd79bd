"""Condition operators: each name is resolved once, at load, to a test function `(actual, env) -> bool`.

Nothing dispatches on operator strings while evaluating. Every test returns False for `MISSING`
except `missing` itself, so a rule about an absent field fails quietly and the trace says why.
`env` (see evaluate.Env) supplies `now`, the timezones and the tags/segments added so far.
"""

from __future__ import annotations

import calendar
import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from .durations import parse_duration
from .errors import SpecError
from .fields import MISSING
from .regex_guard import check_regex

Test = Callable[[Any, Any], bool]


class Operator(enum.StrEnum):
    EQ = "eq"
    NE = "ne"
    IN = "in"
    NOT_IN = "not_in"
    CONTAINS = "contains"
    NOT_CONTAINS = "not_contains"
    MATCHES = "matches"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    EXISTS = "exists"
    MISSING = "missing"
    BETWEEN = "between"
    WITHIN = "within"
    OLDER_THAN = "older_than"
    IS_TODAY = "is_today"
    HAS_TAG = "has_tag"
    IN_SEGMENT = "in_segment"


@dataclass(frozen=True, slots=True)
class OpSpec:
    build: Callable[[Any], Test]  # value -> test; raises SpecError for a wrong value
    takes_value: bool = True
    implicit_field: str | None = None  # has_tag reads interaction.tags whatever `field` says


_SCALARS = (str, int, float, bool, date)


def _scalar(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        raise SpecError(f"datetime {value} needs a timezone offset, e.g. 2026-01-01T09:00:00+09:00")
    if value is None:
        raise SpecError("value is empty (null); to test that a field is absent use op: missing")
    if not isinstance(value, _SCALARS):
        raise SpecError(f"value must be a single string, number, boolean or date, not {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _scalar_list(value: Any) -> frozenset[Any]:
    if not isinstance(value, list) or not value:
        raise SpecError(f"value must be a non-empty list, e.g. [sms, chat], not {_kind(value)}")
    return frozenset(_scalar(v) for v in value)


def _eq(value: Any) -> Test:
    expected = _scalar(value)
    return lambda actual, env: actual == expected


def _ne(value: Any) -> Test:
    expected = _scalar(value)
    return lambda actual, env: actual is not MISSING and actual != expected


def _in(value: Any) -> Test:
    options = _scalar_list(value)

    def test(actual: Any, env: Any) -> bool:
        try:
            return actual in options
        except TypeError:  # an unhashable actual (a list) is in no set of scalars
            return False

    return test


def _not_in(value: Any) -> Test:
    inside = _in(value)
    return lambda actual, env: actual is not MISSING and not inside(actual, env)


def _contains(value: Any) -> Test:
    needle = _scalar(value)

    def test(actual: Any, env: Any) -> bool:
        if isinstance(actual, str):
            return isinstance(needle, str) and needle in actual
        if isinstance(actual, (list, tuple, set, frozenset, dict)):
            return needle in actual
        return False

    return test


def _not_contains(value: Any) -> Test:
    has = _contains(value)
    containers = (str, list, tuple, set, frozenset, dict)
    return lambda actual, env: isinstance(actual, containers) and not has(actual, env)


def _matches(value: Any) -> Test:
    search = check_regex(value).search
    return lambda actual, env: isinstance(actual, str) and search(actual) is not None


def _bound(value: Any) -> tuple[Any, Callable[[Any, Any], Any]]:
    """The comparison value and a normalizer turning an actual into something comparable, or MISSING."""
    if isinstance(value, bool) or not isinstance(value, (int, float, date)):
        raise SpecError(f"value must be a number or a date, not {_kind(value)}")
    if isinstance(value, datetime):
        return _scalar(value), _as_instant
    if isinstance(value, date):
        return value, _as_day
    return value, _as_number


def _as_number(actual: Any, env: Any) -> Any:
    # Strict: "12" in a metadata field is text, and comparing it to 10 would be a guess.
    if isinstance(actual, (int, float, Decimal)) and not isinstance(actual, bool):
        return actual
    return MISSING


def _as_instant(actual: Any, env: Any) -> Any:
    if isinstance(actual, str):
        actual = _parse_iso(actual)
    if isinstance(actual, datetime):
        return actual if actual.tzinfo is not None else actual.replace(tzinfo=env.tz)
    if isinstance(actual, date):
        return datetime.combine(actual, time(), tzinfo=env.customer_tz())
    return MISSING


def _as_day(actual: Any, env: Any) -> Any:
    if isinstance(actual, str):
        actual = _parse_iso(actual)
    if isinstance(actual, datetime):
        return (actual.astimezone(env.customer_tz()) if actual.tzinfo else actual).date()
    if isinstance(actual, date):
        return actual
    return MISSING


def _parse_iso(text: str) -> Any:
    """Profiles arrive as JSON, so dates and datetimes may still be ISO strings."""
    try:
        return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
    except ValueError:
        return MISSING


def _compare(pick: Callable[[Any, Any], bool]) -> Callable[[Any], Test]:
    def build(value: Any) -> Test:
        bound, norm = _bound(value)

        def test(actual: Any, env: Any) -> bool:
            x = norm(actual, env)
            return x is not MISSING and pick(x, bound)

        return test

    return build


def _between(value: Any) -> Test:
    if not isinstance(value, list) or len(value) != 2:
        raise SpecError(f"value must be a list of two bounds, e.g. [10, 20], not {_kind(value)}")
    (lo, norm), (hi, norm_hi) = _bound(value[0]), _bound(value[1])
    if norm is not norm_hi:
        raise SpecError("both bounds must be numbers, or both dates, or both datetimes")
    if lo > hi:
        raise SpecError(f"empty range: {lo} is greater than {hi}")

    def test(actual: Any, env: Any) -> bool:
        x = norm(actual, env)
        return x is not MISSING and lo <= x <= hi

    return test


def _within(value: Any) -> Test:
    span = parse_duration(value)

    # within and older_than split every present instant between them: no gap, no overlap.
    def test(actual: Any, env: Any) -> bool:
        t = _as_instant(actual, env)
        return t is not MISSING and t >= env.now - span

    return test


def _older_than(value: Any) -> Test:
    span = parse_duration(value)

    def test(actual: Any, env: Any) -> bool:
        t = _as_instant(actual, env)
        return t is not MISSING and t < env.now - span

    return test


def _is_today(value: Any) -> Test:
    def test(actual: Any, env: Any) -> bool:
        tz = env.customer_tz()
        today = env.now.astimezone(tz).date()
        if isinstance(actual, str):
            actual = _parse_iso(actual)
        if isinstance(actual, datetime):
            return (actual.astimezone(tz) if actual.tzinfo else actual).date() == today
        if isinstance(actual, date):
            return _anniversary(actual, today)
        return False

    return test


def _anniversary(day: date, today: date) -> bool:
    """A bare date (a birthday) recurs yearly; 29 February is kept on the 28th in common years."""
    if (day.month, day.day) == (today.month, today.day):
        return True
    return (
        (day.month, day.day) == (2, 29)
        and (today.month, today.day) == (2, 28)
        and not calendar.isleap(today.year)
    )


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"value must be a name (a string), not {_kind(value)}")
    return value


def _has_tag(value: Any) -> Test:
    tag = _name(value)

    def test(actual: Any, env: Any) -> bool:
        return tag in env.added_tags or (isinstance(actual, list) and tag in actual)

    return test


def _in_segment(value: Any) -> Test:
    segment = _name(value)

    def test(actual: Any, env: Any) -> bool:
        return segment in env.added_segments or (isinstance(actual, (list, tuple, set)) and segment in actual)

    return test


def _no_value(test: Test) -> Callable[[Any], Test]:
    return lambda value: test


OPERATORS: dict[Operator, OpSpec] = {
    Operator.EQ: OpSpec(_eq),
    Operator.NE: OpSpec(_ne),
    Operator.IN: OpSpec(_in),
    Operator.NOT_IN: OpSpec(_not_in),
    Operator.CONTAINS: OpSpec(_contains),
    Operator.NOT_CONTAINS: OpSpec(_not_contains),
    Operator.MATCHES: OpSpec(_matches),
    Operator.GT: OpSpec(_compare(lambda x, b: x > b)),
    Operator.GTE: OpSpec(_compare(lambda x, b: x >= b)),
    Operator.LT: OpSpec(_compare(lambda x, b: x < b)),
    Operator.LTE: OpSpec(_compare(lambda x, b: x <= b)),
    Operator.EXISTS: OpSpec(_no_value(lambda actual, env: actual is not MISSING), takes_value=False),
    Operator.MISSING: OpSpec(_no_value(lambda actual, env: actual is MISSING), takes_value=False),
    Operator.BETWEEN: OpSpec(_between),
    Operator.WITHIN: OpSpec(_within),
    Operator.OLDER_THAN: OpSpec(_older_than),
    Operator.IS_TODAY: OpSpec(_is_today, takes_value=False),
    Operator.HAS_TAG: OpSpec(_has_tag, implicit_field="interaction.tags"),
    Operator.IN_SEGMENT: OpSpec(_in_segment, implicit_field="profile.segments"),
}
