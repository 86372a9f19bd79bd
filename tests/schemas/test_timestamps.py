"""Timestamps in the contact schema are RFC 3339 text with an offset: any such text is read as the
instant it names and written back in UTC ending in `Z`; a number (pydantic alone would read `5` as
1970-01-01T00:00:05Z), a string of digits, a date alone or a time without an offset is refused, naming
the field."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas import CloudEvent, Interaction
from schemas.profile import ProfilePatch
from schemas.timestamps import rfc3339

BASE = {"channel": "sms", "direction": "inbound", "kind": "message", "provider": "acme-gateway",
        "provider_ref": "MSG-1"}
SHAPE = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)")
UTC_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z")

offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
instants = st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(9998, 12, 30), timezones=offsets)


def _refusal(value: object, field: str = "occurred_at") -> dict:
    with pytest.raises(ValidationError) as caught:
        Interaction.model_validate_json(json.dumps({**BASE, field: value}))
    [error] = [e for e in caught.value.errors() if e["loc"] == (field,)]
    return error


@given(instants, st.sampled_from(["T", "t", " "]), st.sampled_from([None, "seconds", "milliseconds", "microseconds"]))
def test_any_rfc3339_text_is_the_instant_it_names_written_back_in_utc_with_z(when: datetime, sep: str,
                                                                            spec: str | None) -> None:
    text = when.isoformat(sep, spec or "auto")
    if when.utcoffset() == timedelta(0) and spec is None:
        text = text.replace("+00:00", "Z")
    item = Interaction.model_validate_json(json.dumps({**BASE, "occurred_at": text}))
    assert item.occurred_at == datetime.fromisoformat(text.replace("Z", "+00:00"))
    written = json.loads(item.model_dump_json())["occurred_at"]
    assert UTC_Z.fullmatch(written), written
    assert datetime.fromisoformat(written.replace("Z", "+00:00")) == item.occurred_at
    assert written == rfc3339(item.occurred_at)
    again = Interaction.model_validate_json(item.model_dump_json())  # what the hub stores reads back the same
    assert again.occurred_at == item.occurred_at


@given(st.one_of(st.integers(), st.floats(allow_nan=False, allow_infinity=False)))
def test_a_number_is_refused_naming_the_field(value: float) -> None:
    error = _refusal(value)
    assert "RFC 3339" in error["msg"] and "a number" in error["msg"]


@given(st.text(max_size=40))
def test_text_is_accepted_only_in_the_rfc3339_shape_with_an_offset(text: str) -> None:
    try:
        item = Interaction.model_validate_json(json.dumps({**BASE, "occurred_at": text}))
    except ValidationError as exc:
        assert any(e["loc"] == ("occurred_at",) for e in exc.errors())
        return
    assert SHAPE.fullmatch(text) and item.occurred_at.utcoffset() is not None


@pytest.mark.parametrize("text", ["5", "1700000000", "1700000000.5", "2026-11-23", "2026-11-23T10:00:00",
                                  "2026-11-23T10:00+09:00", "23/11/2026 10:00:00Z", "2026-11-23T10:00:00+0900",
                                  "", "now"])
def test_digits_a_date_alone_and_a_time_without_an_offset_are_refused(text: str) -> None:
    assert _refusal(text)["loc"] == ("occurred_at",)


@pytest.mark.parametrize("value", [5, 1.5, True, [2026, 11, 23], {"at": 1}])
def test_other_json_types_are_refused(value: object) -> None:
    assert _refusal(value)["loc"] == ("occurred_at",)


def test_every_timestamp_of_the_contact_schema_refuses_a_number() -> None:
    with pytest.raises(ValidationError) as caught:
        Interaction.model_validate_json(json.dumps({**BASE, "occurred_at": "2026-11-23T10:00:00Z", "received_at": 5}))
    assert caught.value.errors()[0]["loc"] == ("received_at",)
    with pytest.raises(ValidationError) as caught:
        ProfilePatch.model_validate_json('{"consents": {"sms:marketing": {"granted": true, "at": 1700000000}}}')
    assert caught.value.errors()[0]["loc"] == ("consents", "sms:marketing", "at")
    event = {"id": "0190a000-0000-7000-8000-000000000000", "type": "profile.updated", "time": 0}
    with pytest.raises(ValidationError) as caught:
        CloudEvent.model_validate_json(json.dumps(event))
    assert caught.value.errors()[0]["loc"] == ("time",)


def test_python_callers_may_still_pass_an_aware_datetime() -> None:
    """Adapters build interactions in Python: a datetime is taken as it is."""
    when = datetime(2026, 11, 23, 10, tzinfo=timezone(timedelta(hours=9)))
    item = Interaction.model_validate({**BASE, "occurred_at": when})
    assert item.occurred_at == when and json.loads(item.model_dump_json())["occurred_at"] == "2026-11-23T01:00:00Z"
    assert rfc3339(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00Z"
