"""The generic CTI webhook, POST /v1/cti/events, through a real hub on SQLite and PostgreSQL: a
PBX's call_started / call_answered / call_ended are one call on the customer's timeline, filled in
as they arrive (in any order, any number of times); requests signed with the Standard Webhooks
reference library are taken, unsigned, forged or stale ones get 403; bad fields are named."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.registry import AdapterConfigError, available, validate_config
from hub.app import create_app
from hub.settings import load_settings
from tests.adapters.pos_support import stale
from tests.adapters.voice_support import (
    CTI_OTHER_SECRET,
    CTI_PATH,
    CTI_SECRET,
    CUSTOMER,
    cti_event,
    cti_headers,
    cti_post,
    outbox_keys,
    profile_of,
    timeline,
)
from tests.hub.conftest import count_rows


@pytest.fixture
async def hub(aiohttp_client, make_settings, tmp_path):
    settings = make_settings(blob_dir=str(tmp_path / "blobs"), adapters={"cti": {"secret": CTI_SECRET}})
    return await aiohttp_client(create_app(settings))


async def send(hub, event, status=(200, 201)) -> dict:
    resp = await cti_post(hub, event)
    assert resp.status in status, await resp.text()
    return await resp.json()


async def nothing_written(hub) -> bool:
    return all([await count_rows(hub.app, t) == 0 for t in ("interactions", "profiles", "outbox")])


# --- a call's life ---
async def test_an_answered_call_is_one_interaction_with_its_agent_and_talk_time(hub):
    started = await send(hub, cti_event("call_started"), status=(201,))
    assert started["created"] is True and started["profile_id"]
    [call] = await timeline(hub)
    assert (call["channel"], call["kind"], call["provider"], call["provider_ref"]) == ("voice", "call", "cti",
                                                                                       "pbx-0001")
    assert call["call"] == {"from": CUSTOMER, "to": "+8225550100", "status": "ringing"}
    assert call["occurred_at"] == "2026-11-23T01:00:00Z"  # when the call started, as the PBX said (10:00 in Seoul)

    answered = await send(hub, cti_event("call_answered", time="2026-11-23T10:00:12+09:00", agent_extension="201"))
    ended = await send(hub, cti_event("call_ended", time="2026-11-23T10:03:47+09:00", disposition="answered",
                                      answered_at="2026-11-23T10:00:12+09:00"))
    assert answered == ended == {**started, "created": False}

    [call] = await timeline(hub)
    assert call["call"]["status"] == "completed" and call["call"]["duration_s"] == 215
    assert call["metadata"] == {"agent_extension": "201", "answered_at": "2026-11-23T10:00:12+09:00",
                                "ended_at": "2026-11-23T10:03:47+09:00", "disposition": "answered"}
    keys = await outbox_keys(hub)
    assert keys.count("interaction.received.voice") == 1 and keys.count("interaction.updated.voice") == 2


async def test_a_caller_who_hangs_up_before_an_agent_answers_is_abandoned(hub):
    await send(hub, cti_event("call_started"))
    await send(hub, cti_event("call_ended", time="2026-11-23T10:00:40+09:00", disposition="abandoned"))
    [call] = await timeline(hub)
    assert call["call"]["status"] == "abandoned" and call["call"]["duration_s"] == 0


async def test_repeats_and_late_events_change_nothing(hub):
    ended = cti_event("call_ended", time="2026-11-23T10:05:00+09:00", disposition="no_answer")
    await send(hub, cti_event("call_started"))
    await send(hub, ended)
    updates = (await outbox_keys(hub)).count("interaction.updated.voice")
    await send(hub, ended)  # the PBX resends what it got no answer to
    await send(hub, cti_event("call_answered", agent_extension="202"))  # arrives late
    [call] = await timeline(hub)
    assert call["call"]["status"] == "no-answer"  # an ended call is not reopened
    assert call["metadata"]["agent_extension"] == "202"  # but what the late event adds is kept
    assert (await outbox_keys(hub)).count("interaction.updated.voice") == updates + 1
    assert await count_rows(hub.app, "interactions") == 1


async def test_a_call_whose_first_event_was_lost_is_recorded_from_the_next(hub):
    created = await send(hub, cti_event("call_ended", disposition="busy", duration_s=0), status=(201,))
    assert created["created"] is True
    [call] = await timeline(hub)
    assert call["call"]["status"] == "busy"


async def test_an_outbound_call_belongs_to_the_number_called(hub):
    await send(hub, cti_event("call_started", direction="outbound", caller="201", called="010-1234-5678"))
    [call] = await timeline(hub)
    assert call["direction"] == "outbound" and call["call"]["from"] == "201"
    assert (await profile_of(hub, f"phone:{CUSTOMER}"))["id"] == call["profile_id"]


async def test_a_withheld_caller_is_a_call_without_a_profile(hub):
    answer = await send(hub, cti_event("call_started", caller=None), status=(201,))
    assert answer["profile_id"] is None
    assert await count_rows(hub.app, "profiles") == 0


# --- refusals ---
@pytest.mark.parametrize("event, field", [
    (cti_event("call_started", caller="not a number"), "caller"),
    (cti_event("call_started", time="2026-11-23T10:00:00"), "time"),
    (cti_event("call_hung"), "type"),
    (cti_event("call_ended", disposition="lost"), "disposition"),
    ({k: v for k, v in cti_event("call_started").items() if k != "call_id"}, "call_id"),
    (cti_event("call_started", agent="201"), "agent"),  # unknown keys are refused, not dropped
])
async def test_a_bad_field_is_named_and_nothing_is_written(hub, event, field):
    resp = await cti_post(hub, event)
    assert resp.status == 422, await resp.text()
    assert field in [f["field"] for f in (await resp.json())["fields"]]
    assert await nothing_written(hub)


async def test_a_body_that_is_not_json_is_400(hub):
    resp = await cti_post(hub, b"call_started pbx-1")
    assert resp.status == 400 and (await resp.json())["error"] == "invalid_json"


@pytest.mark.clock
@pytest.mark.parametrize("case", ["unsigned", "other secret", "stale", "future", "tampered"])
async def test_unsigned_forged_and_stale_events_are_refused_and_write_nothing(hub, case):
    body = json.dumps(cti_event("call_started")).encode()
    match case:
        case "unsigned":
            headers = {"Content-Type": "application/json"}
        case "other secret":
            headers = cti_headers(body, secret=CTI_OTHER_SECRET)
        case "stale":
            headers = cti_headers(body, at=stale(6))
        case "future":
            headers = cti_headers(body, at=stale(-6))
        case "tampered":
            headers = cti_headers(body)
            body = body.replace(b"pbx-0001", b"pbx-0002")
    resp = await cti_post(hub, body, headers=headers)
    assert resp.status == 403, await resp.text()
    assert (await resp.json())["error"] == "forbidden"
    assert await nothing_written(hub)


@pytest.mark.clock
async def test_a_request_signed_within_the_window_is_taken(hub):
    assert (await cti_post(hub, cti_event("call_started"), at=stale(4))).status == 201


# --- config ---
def test_config_needs_a_standard_webhooks_secret_and_masks_it():
    cls = available()["cti"]
    with pytest.raises(AdapterConfigError, match="whsec_"):
        validate_config(cls, {"secret": "hunter2!"})
    with pytest.raises(AdapterConfigError, match="whsec_"):
        validate_config(cls, {"secret": "whsec_!!!"})
    with pytest.raises(AdapterConfigError, match="did you mean 'secret'"):
        validate_config(cls, {"secret": CTI_SECRET, "secrt": "x"})
    masked = load_settings(None, adapters={"cti": {"secret": CTI_SECRET}}).masked()
    assert masked["adapters"]["cti"]["secret"] == "***"


async def test_logs_never_carry_the_callers_number_or_the_secret(hub, caplog):
    caplog.set_level("DEBUG")
    await send(hub, cti_event("call_started"))
    await cti_post(hub, cti_event("call_started", caller="not a number"))
    await cti_post(hub, cti_event("call_started"), secret=CTI_OTHER_SECRET)
    logged = " ".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records if r.name.startswith("omnihub"))
    assert "cti event" in logged and "webhook refused" in logged
    for secret in ("1234-5678", "+821012345678", "5550100", CTI_SECRET.removeprefix("whsec_")):
        assert secret not in logged


# --- the parser under fuzz ---
values = st.none() | st.booleans() | st.integers() | st.text(max_size=30) | st.sampled_from(
    ["call_started", "call_ended", "2026-11-23T10:00:00+09:00", "010-1234-5678", "answered", "outbound"])
events = st.dictionaries(
    st.sampled_from(["type", "call_id", "time", "direction", "caller", "called", "agent_extension",
                     "answered_at", "duration_s", "disposition", "recording_url", "extra"]), values, max_size=12)
junk = st.binary(max_size=200) | events.map(lambda e: json.dumps(e).encode())


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(body=junk | st.builds(lambda e: json.dumps({**cti_event("call_started"), **e}).encode(), events))
async def test_signed_junk_never_gets_a_server_error(hub, body):
    resp = await cti_post(hub, body)
    assert resp.status < 500, await resp.text()
    if resp.status == 403:  # the standard signs text: bytes that are not UTF-8 cannot carry a signature
        with pytest.raises(UnicodeDecodeError):
            body.decode()
    elif resp.status >= 400:
        assert (await resp.json())["fields"]
