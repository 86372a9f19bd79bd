"""Twilio Voice through a real hub on SQLite and PostgreSQL: an incoming call is committed before
Twilio hears the TwiML, a retry is the same call, the status callback and the <Dial>/<Enqueue>
action put the outcome (duration, no-answer, abandoned) on the customer's timeline. Every webhook is
signed with twilio's own RequestValidator; anything unsigned or mis-signed gets 403."""

from __future__ import annotations

from datetime import UTC, datetime
from xml.etree import ElementTree

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.base import AdapterDeps, PayloadError, PermanentSendError
from adapters.registry import AdapterConfigError
from adapters.voice_twilio import TwilioVoiceAdapter, TwilioVoiceConfig
from hub import keys
from hub.app import create_app
from hub.settings import load_settings
from schemas import BUILTIN_CHANNELS, CHANNELS_KEY, DEFAULT_REGION_KEY
from tests.adapters.conftest import PUBLIC_BASE_URL
from tests.adapters.voice_support import (
    CUSTOMER,
    INBOUND,
    OUR_NUMBER,
    STATUS,
    VOICE,
    call_params,
    call_sid,
    outbox_keys,
    profile_of,
    timeline,
    twilio_post,
)
from tests.hub.conftest import count_rows, eventually


def make_hub(aiohttp_client, make_settings, tmp_path, **voice):
    settings = make_settings(public_base_url=PUBLIC_BASE_URL, blob_dir=str(tmp_path / "blobs"),
                             adapters={"voice_twilio": {**VOICE, **voice}})
    return aiohttp_client(create_app(settings))


@pytest.fixture
async def hub(aiohttp_client, make_settings, tmp_path):
    return await make_hub(aiohttp_client, make_settings, tmp_path)


async def call_in(hub, sid: str, **kw) -> ElementTree.Element:
    resp = await twilio_post(hub, INBOUND, call_params(sid, **kw))
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/xml"
    return ElementTree.fromstring(await resp.text())


async def report(hub, sid: str, **fields: str):
    resp = await twilio_post(hub, STATUS, call_params(sid, **fields))
    assert resp.status == 200, await resp.text()
    return resp


# --- an incoming call ---
async def test_an_incoming_call_is_recorded_and_the_caller_hears_the_greeting_then_waits_in_the_queue(hub):
    sid = call_sid()
    twiml = await call_in(hub, sid)
    assert [child.tag for child in twiml] == ["Say", "Enqueue"]
    assert twiml[0].text == VOICE["greeting"] and twiml[0].get("language") == "ko-KR"
    assert twiml[1].text == "support"
    assert twiml[1].get("action") == PUBLIC_BASE_URL + STATUS  # so an abandoned wait is reported

    profile = await profile_of(hub, f"phone:{CUSTOMER}")  # committed before Twilio heard the answer
    [call] = await timeline(hub)
    assert call["profile_id"] == profile["id"]
    assert (call["channel"], call["kind"], call["direction"], call["provider"], call["provider_ref"]) == (
        "voice", "call", "inbound", "twilio", sid)
    assert call["call"] == {"from": CUSTOMER, "to": OUR_NUMBER, "status": "ringing"}
    assert "interaction.received.voice" in await outbox_keys(hub)


async def test_twilios_retry_of_the_webhook_is_the_same_call(hub):
    sid = call_sid()
    first = await call_in(hub, sid)
    again = await call_in(hub, sid)
    assert ElementTree.tostring(first) == ElementTree.tostring(again)  # the caller hears the same
    assert await count_rows(hub.app, "interactions") == 1


async def test_a_number_in_local_format_joins_the_customers_profile_from_other_channels(hub):
    sms = {"channel": "sms", "direction": "inbound", "kind": "message", "provider": "gw", "provider_ref": "M1",
           "occurred_at": "2026-11-21T10:00:00+09:00", "content": {"text": "hi"},
           "sender": {"identifiers": [{"type": "phone", "value": "010-1234-5678"}]}}
    assert (await hub.post("/v1/interactions", json=sms)).status == 201
    await call_in(hub, call_sid())
    assert {i["channel"] for i in await timeline(hub)} == {"sms", "voice"}


async def test_a_withheld_number_is_still_recorded_without_a_profile(hub):
    sid = call_sid()
    await call_in(hub, sid, frm="anonymous")
    assert await count_rows(hub.app, "interactions") == 1
    assert await count_rows(hub.app, "profiles") == 0


# --- the outcome ---
async def test_a_completed_calls_duration_reaches_the_timeline(hub):
    sid = call_sid()
    await call_in(hub, sid)
    await report(hub, sid, QueueResult="bridged", QueueTime="12", CallStatus="in-progress")
    await report(hub, sid, status="completed", CallDuration="95")
    [call] = await timeline(hub)
    assert call["call"]["status"] == "completed" and call["call"]["duration_s"] == 95
    assert call["metadata"]["queue_time_s"] == 12
    assert (await outbox_keys(hub)).count("interaction.updated.voice") == 2

    await report(hub, sid, status="completed", CallDuration="95")  # Twilio's retry of the callback
    assert (await outbox_keys(hub)).count("interaction.updated.voice") == 2  # nothing new to say


async def test_a_caller_who_hangs_up_in_the_queue_is_abandoned(hub):
    sid = call_sid()
    await call_in(hub, sid)
    await report(hub, sid, QueueResult="hangup", QueueTime="40", CallStatus="in-progress")
    await report(hub, sid, status="completed", CallDuration="48")
    [call] = await timeline(hub)
    assert call["call"]["status"] == "abandoned" and call["call"]["duration_s"] == 48
    assert call["metadata"]["queue_result"] == "hangup"


async def test_a_dialled_agent_who_does_not_answer_makes_the_call_no_answer(aiohttp_client, make_settings, tmp_path):
    hub = await make_hub(aiohttp_client, make_settings, tmp_path, enqueue=None, dial="+15005550010",
                         dial_timeout_s=15, record=True, greeting=None)
    sid = call_sid()
    twiml = await call_in(hub, sid)
    [dial] = list(twiml)
    assert (dial.tag, dial.text, dial.get("timeout"), dial.get("record")) == (
        "Dial", "+15005550010", "15", "record-from-answer")
    assert dial.get("action") == PUBLIC_BASE_URL + STATUS

    action = await report(hub, sid, DialCallStatus="no-answer", DialCallDuration="0", CallStatus="in-progress")
    assert ElementTree.fromstring(await action.text()).tag == "Response"  # empty: the call ends
    await report(hub, sid, status="completed", CallDuration="21")
    [call] = await timeline(hub)
    assert call["call"]["status"] == "no-answer" and call["call"]["duration_s"] == 21
    assert call["metadata"]["dial_status"] == "no-answer"


async def test_an_answered_dial_keeps_its_recording(aiohttp_client, make_settings, tmp_path):
    hub = await make_hub(aiohttp_client, make_settings, tmp_path, enqueue=None, dial="sip:agents@pbx.example.com")
    sid = call_sid()
    twiml = await call_in(hub, sid)
    assert twiml.find("Dial/Sip").text == "sip:agents@pbx.example.com"
    recording = "https://api.twilio.com/2010-04-01/Accounts/AC/Recordings/RE0123"
    await report(hub, sid, DialCallStatus="completed", DialCallDuration="60", RecordingUrl=recording)
    await report(hub, sid, status="completed", CallDuration="66")
    [call] = await timeline(hub)
    assert call["call"]["status"] == "completed" and call["call"]["recording_ref"] == recording


async def test_a_late_ringing_report_never_reopens_an_ended_call(hub):
    sid = call_sid()
    await call_in(hub, sid)
    await report(hub, sid, status="completed", CallDuration="30")
    await report(hub, sid, status="ringing")
    [call] = await timeline(hub)
    assert call["call"]["status"] == "completed"


async def test_a_report_for_a_call_never_seen_records_the_call(hub):
    sid = call_sid()  # its inbound webhook failed (a hub outage): Twilio still reports the end
    await report(hub, sid, status="busy", CallDuration="0")
    [call] = await timeline(hub)
    assert call["provider_ref"] == sid and call["call"]["status"] == "busy"


async def test_a_message_only_answer_says_it_and_hangs_up(aiohttp_client, make_settings, tmp_path):
    hub = await make_hub(aiohttp_client, make_settings, tmp_path, enqueue=None, greeting=None,
                         message="영업시간이 아닙니다.")
    twiml = await call_in(hub, call_sid())
    assert [(c.tag, c.text) for c in twiml] == [("Say", "영업시간이 아닙니다."), ("Hangup", None)]


# --- authenticity ---
@pytest.mark.parametrize("path", [INBOUND, STATUS])
async def test_unsigned_and_forged_requests_are_refused_and_write_nothing(hub, path):
    params = call_params(call_sid(), status="completed", CallDuration="5")
    for resp in [
        await twilio_post(hub, path, params, signature=None),
        await twilio_post(hub, path, params, token="someone-elses-token"),
        await twilio_post(hub, path, params, signature="bm90IGEgc2lnbmF0dXJl"),
        # a genuine signature for the other webhook, replayed here
        await twilio_post(hub, path, params, signed_url=PUBLIC_BASE_URL + (STATUS if path == INBOUND else INBOUND)),
    ]:
        assert resp.status == 403, await resp.text()
        assert (await resp.json())["error"] == "forbidden"
    assert await count_rows(hub.app, "interactions") == 0 and await count_rows(hub.app, "outbox") == 0


async def test_a_signed_form_altered_in_transit_is_refused(hub):
    from urllib.parse import urlencode

    from twilio.request_validator import RequestValidator

    from tests.adapters.fake_twilio import AUTH_TOKEN

    params = call_params(call_sid())
    signature = RequestValidator(AUTH_TOKEN).compute_signature(PUBLIC_BASE_URL + INBOUND, params)
    altered = {**params, "From": "+821099998888"}
    resp = await hub.post(INBOUND, data=urlencode(altered),
                          headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature})
    assert resp.status == 403
    assert await count_rows(hub.app, "interactions") == 0


async def test_a_bad_field_is_named_and_nothing_is_written(hub):
    params = call_params(call_sid())
    del params["CallSid"]
    resp = await twilio_post(hub, INBOUND, params)
    assert resp.status == 422
    assert [f["field"] for f in (await resp.json())["fields"]] == ["CallSid"]
    resp = await twilio_post(hub, STATUS, call_params(call_sid(), status="completed", CallDuration="ninety"))
    assert resp.status == 422
    assert [f["field"] for f in (await resp.json())["fields"]] == ["CallDuration"]
    assert await count_rows(hub.app, "interactions") == 0


# --- config ---
def test_config_refuses_two_destinations_and_typos(database_url):
    from adapters.registry import available, validate_config

    cls = available()["voice_twilio"]
    with pytest.raises(AdapterConfigError, match="enqueue or dial, not both"):
        validate_config(cls, {**VOICE, "dial": "+15005550010"})
    with pytest.raises(AdapterConfigError, match="did you mean 'greeting'"):
        validate_config(cls, {**VOICE, "greetng": "hi"})


def test_omnihub_config_masks_the_auth_token():
    masked = load_settings(None, adapters={"voice_twilio": VOICE}).masked()
    assert masked["adapters"]["voice_twilio"]["auth_token"] == "***"
    assert masked["adapters"]["voice_twilio"]["enqueue"] == "support"


# --- the parsers under fuzz ---
@pytest.fixture
def voice_adapter():
    deps = AdapterDeps(ingest=None, report_status=None, blobs=None, state=None,  # type: ignore[arg-type]
                       clock=lambda: datetime.now(UTC), public_base_url=PUBLIC_BASE_URL,
                       validation_context={DEFAULT_REGION_KEY: "KR", CHANNELS_KEY: BUILTIN_CHANNELS})
    return TwilioVoiceAdapter(TwilioVoiceConfig.model_validate(VOICE), deps)


FIELDS = ["CallSid", "From", "To", "CallStatus", "Direction", "CallDuration", "DialCallStatus", "DialCallDuration",
          "QueueResult", "QueueTime", "RecordingUrl", "CallerName", "AccountSid"]
forms = st.dictionaries(st.sampled_from(FIELDS), st.text(max_size=40), max_size=len(FIELDS))


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(forms)
def test_the_parsers_raise_nothing_but_payload_errors(voice_adapter, form):
    try:
        interaction = voice_adapter.normalize(form)
        assert interaction.provider_ref and interaction.kind == "call"
    except PayloadError:
        pass
    try:
        voice_adapter.parse_update(form)
    except PayloadError:
        pass


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(form=forms, path=st.sampled_from([INBOUND, STATUS]))
async def test_signed_junk_never_gets_a_5xx(hub, form, path):
    resp = await twilio_post(hub, path, form)
    assert resp.status < 500, await resp.text()


async def test_outbound_calls_are_refused_for_good(hub, voice_adapter):
    from tests.adapters.contract import outbound_message

    with pytest.raises(PermanentSendError, match="does not place outbound calls"):
        await voice_adapter.send(outbound_message("voice", {"type": "phone", "value": CUSTOMER}, text="hi"))


async def test_logs_never_carry_the_callers_number_or_the_auth_token(hub, caplog):
    from tests.adapters.fake_twilio import AUTH_TOKEN

    caplog.set_level("DEBUG")
    sid = call_sid()
    await call_in(hub, sid)
    await report(hub, sid, status="completed", CallDuration="5")
    await twilio_post(hub, INBOUND, call_params(call_sid()), token="someone-elses-token")
    logged = " ".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records if r.name.startswith("omnihub"))
    assert "call in" in logged and "webhook refused" in logged
    for secret in (CUSTOMER, "1012345678", OUR_NUMBER, AUTH_TOKEN):
        assert secret not in logged


# --- a call and its routing task ---
VOICE_RULES = """\
rules:
  - name: calls-to-support
    on: interaction.received
    when: {all: [{field: interaction.channel, op: eq, value: voice}]}
    then:
      - route: {queue: support}
"""


async def routed_hub(aiohttp_client, make_settings, tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "calls.yaml").write_text(VOICE_RULES, encoding="utf-8")
    routing = {"queues": [{"name": "support", "sla_s": 30}], "agents": [{"id": "alice"}], "poll_interval_s": 0.05}
    hub = await aiohttp_client(create_app(make_settings(
        public_base_url=PUBLIC_BASE_URL, blob_dir=str(tmp_path / "blobs"), adapters={"voice_twilio": VOICE},
        rules_dir=str(rules), routing=routing)))
    await hub.app[keys.ROUTER].active.wait()
    return hub


async def call_task(hub) -> dict:
    async def one() -> bool:
        return len((await (await hub.get("/v1/tasks")).json())["items"]) == 1
    await eventually(one)
    [task] = (await (await hub.get("/v1/tasks")).json())["items"]
    return task


async def test_a_caller_who_hangs_up_before_an_agent_takes_the_call_abandons_its_task(aiohttp_client, make_settings,
                                                                                         tmp_path):
    hub = await routed_hub(aiohttp_client, make_settings, tmp_path)
    sid = call_sid()
    await call_in(hub, sid)
    task = await call_task(hub)
    assert task["state"] == "waiting"  # alice is offline: the caller waits
    await report(hub, sid, QueueResult="hangup", QueueTime="40", CallStatus="in-progress")
    await report(hub, sid, status="completed", CallDuration="48")
    shown = await (await hub.get(f"/v1/tasks/{task['id']}")).json()
    assert shown["state"] == "abandoned"
    assert any(k.startswith("task.abandoned.") for k in await outbox_keys(hub))


async def test_a_call_an_agent_accepted_stays_with_the_agent_when_it_ends(aiohttp_client, make_settings, tmp_path):
    hub = await routed_hub(aiohttp_client, make_settings, tmp_path)
    sid = call_sid()
    await call_in(hub, sid)
    task = await call_task(hub)
    assert (await hub.post("/v1/agents/alice/presence", json={"presence": "available"})).status == 200
    accepted = await hub.post(f"/v1/tasks/{task['id']}/accept", json={"agent_id": "alice"})
    assert accepted.status == 200, await accepted.text()
    await report(hub, sid, status="completed", CallDuration="95")
    shown = await (await hub.get(f"/v1/tasks/{task['id']}")).json()
    assert (shown["state"], shown["agent_id"]) == ("assigned", "alice")
