"""Bounded regular expressions for `matches`: a length cap and no nested unbounded repetition.

Python's `re` backtracks, so `(\\w+\\s?)+` against a long email body can take exponential time and
stall ingest for every channel. The cap and the nesting check catch the common shapes at load.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import SpecError

MAX_REGEX_LENGTH = 200

try:  # the parser is private; without it only the length cap applies
    from re import _constants as _c  # type: ignore[attr-defined]
    from re import _parser as _sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover
    _sre_parse = None


def check_regex(value: Any) -> re.Pattern[str]:
    if not isinstance(value, str):
        raise SpecError(f"value must be a regular expression string, not {type(value).__name__}")
    if len(value) > MAX_REGEX_LENGTH:
        raise SpecError(f"regex is {len(value)} characters long; the limit is {MAX_REGEX_LENGTH}")
    try:
        pattern = re.compile(value)
    except (re.error, OverflowError, RecursionError) as exc:
        raise SpecError(f"bad regex {value!r}: {exc}") from None
    if _sre_parse is not None and _nested_repeat(_sre_parse.parse(value), inside=False):
        raise SpecError(
            f"regex {value!r} repeats a repetition (like (a+)+), which can take exponential time; "
            "remove the inner or outer quantifier"
        )
    return pattern


def _nested_repeat(items: Any, inside: bool) -> bool:
    repeats = (_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", _c.MAX_REPEAT))
    for op, arg in items:
        if op in repeats:
            _low, high, sub = arg
            unbounded = high == _c.MAXREPEAT
            if inside and unbounded and op is not getattr(_c, "POSSESSIVE_REPEAT", None):
                return True
            if _nested_repeat(sub, inside or unbounded):
                return True
        elif op is _c.SUBPATTERN:
            if _nested_repeat(arg[-1], inside):
                return True
        elif op is _c.BRANCH:
            if any(_nested_repeat(branch, inside) for branch in arg[1]):
                return True
        elif (
            op in (_c.ASSERT, _c.ASSERT_NOT)
            and _nested_repeat(arg[1], inside)
            or op is getattr(_c, "ATOMIC_GROUP", None)
            and _nested_repeat(arg, inside)
        ):
            return True
    return False
