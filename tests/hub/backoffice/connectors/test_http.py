"""The HTTP connector as a real process: 10,000 signed POSTs across a SIGKILL, every id accepted by
the receiver (which dedupes on webhook-id, as Standard Webhooks receivers do); Retry-After
honoured; an event the endpoint keeps refusing dead-lettered after N tries, replayed once fixed.
Signing: the headers of known vectors, byte for byte, and accepted by the reference verifier."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time

import aiohttp
import pytest
from standardwebhooks.webhooks import Webhook

from hub.backoffice.connectors.http import HttpStatusError, HttpTarget, HttpTargetConfig
from hub.backoffice.connectors.worker import Event, PermanentError
from tests.hub.backoffice.connectors import harness
from tests.hub.backoffice.connectors.receiver import Receiver

BURST = 10_000
SECRET = "whsec_" + base64.b64encode(b"omnihub-test-secret-0123456789ab").decode()


@pytest.fixture
def receiver():
    r = Receiver(SECRET)
    r.start()
    yield r
    r.stop()


def _target(receiver: Receiver, **more) -> dict:
    return {"url": receiver.url, "secret": SECRET, "concurrency": 32, "max_retry_after_s": 5, **more}


def test_burst_is_accepted_once_each_across_a_sigkill(names, receiver, tmp_path, amqp_url):
    config = names("http", _target(receiver))
    events = [harness.cloud_event(n) for n in range(BURST)]
    harness.publish(amqp_url, config["events_exchange"], events)
    worker = harness.WorkerProcess("http", config, tmp_path)
    worker.start()
    try:
        harness.wait_for(lambda: len(receiver.accepted) >= BURST // 3, 60, "a third of the burst", worker)
        worker.kill9()
        assert len(receiver.accepted) < BURST, "the worker finished before it was killed"
        worker.start()
        harness.wait_for(lambda: len(receiver.accepted) >= BURST, 90, "the whole burst", worker)
        harness.wait_for(lambda: harness.queue_depth(amqp_url, config["queue"]) == 0, 30, "an empty queue")
    finally:
        worker.stop()
    assert receiver.accepted == {e[0] for e in events}
    assert receiver.invalid == 0
    # At least once on the wire: the batch in flight at the kill may be POSTed again (same webhook-id).
    assert sum(receiver.deliveries.values()) >= BURST


def test_retry_after_is_honoured(names, receiver, tmp_path, amqp_url):
    receiver.throttle_first = 1
    config = names("http429", _target(receiver))
    events = [harness.cloud_event(n) for n in range(20)]
    harness.publish(amqp_url, config["events_exchange"], events)
    worker = harness.WorkerProcess("http", config, tmp_path)
    worker.start()
    try:
        harness.wait_for(lambda: len(receiver.accepted) == 20, 30, "every event", worker)
    finally:
        worker.stop()
    waits = [receiver.accepted_at[i] - receiver.first_seen[i] for i, _, _ in events]
    assert min(waits) >= 0.95  # Retry-After: 1 was waited out before the next try
    assert harness.queue_depth(amqp_url, config["dead_queue"]) == 0


def test_refused_event_is_dead_lettered_after_n_tries_then_replayed(names, receiver, tmp_path, amqp_url):
    config = names("httppoison", _target(receiver))
    events = [harness.cloud_event(n) for n in range(200)]
    poison = events[77][0]
    receiver.fail_ids.add(poison)
    harness.publish(amqp_url, config["events_exchange"], events)
    worker = harness.WorkerProcess("http", config, tmp_path)
    env = {"OMNIHUB_AMQP_URL": amqp_url, "OMNIHUB_BACKOFFICE__DEAD_QUEUE": config["dead_queue"]}
    worker.start()
    try:
        harness.wait_for(lambda: len(receiver.accepted) == 199, 30, "every other event", worker)
        harness.wait_for(lambda: harness.queue_depth(amqp_url, config["dead_queue"]) == 1, 30, "the dead letter")
        assert receiver.deliveries[poison] == config["attempts"]
        [letter] = json.loads(harness.dlq("list", "--json", "--reason", "failed", env=env).stdout)
        assert letter["message_id"] == poison and "HTTP 500" in letter["error"]
        receiver.fail_ids.clear()  # the endpoint is fixed
        assert harness.dlq("replay", "--id", poison, env=env).returncode == 0
        harness.wait_for(lambda: poison in receiver.accepted, 30, "the replayed event", worker)
    finally:
        worker.stop()


@pytest.fixture
def target():
    t = HttpTarget(HttpTargetConfig(url="http://127.0.0.1:9/unreachable", secret=SECRET))
    yield t
    t.close()


# (secret, webhook-id, webhook-timestamp, body, webhook-signature). The first is the Standard
# Webhooks reference vector; the second, a body with non-ASCII text, was signed by the
# connector's own HMAC code before it used the package: the headers must not change.
VECTORS = [
    ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
     b'{"test": 2432232314}', "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
    (SECRET, "01HZX", 1767225600,
     '{"specversion":"1.0","id":"01HZX","data":{"text":"확인했습니다 – ok"}}'.encode(),
     "v1,BkHCHdAZF+kH4OHBJW+U8cB2pdIrTj4kBHykzBwLMsU="),
]


@pytest.mark.parametrize(("secret", "msg_id", "timestamp", "body", "signature"), VECTORS)
def test_signed_headers_match_known_vectors(secret, msg_id, timestamp, body, signature):
    t = HttpTarget(HttpTargetConfig(url="http://127.0.0.1:9/", secret=secret))
    try:
        assert t.signed_headers(msg_id, timestamp, body) == {
            "webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}
    finally:
        t.close()


def test_reference_verifier_accepts_what_the_connector_sends(target):
    body = '{"a":1,"text":"확인"}'.encode()
    headers = target.signed_headers("msg_1", int(time.time()), body)
    assert Webhook(SECRET).verify(body, headers) == {"a": 1, "text": "확인"}


@pytest.mark.parametrize("secret", ["whsec_abc", "whsec_ab!c", "whsec_YWJj\n", "whsec_", ""])
def test_a_bad_secret_is_refused_at_start_up(secret):
    with pytest.raises(ValueError, match="a Standard Webhooks secret is 'whsec_' followed by base64"):
        HttpTarget(HttpTargetConfig(url="http://127.0.0.1:9/", secret=secret))


def test_a_body_that_is_not_utf8_cannot_be_signed_and_is_permanent(target):
    utf16 = json.dumps({"id": "e1"}).encode("utf-16")  # JSON all the same: json.loads takes it
    with pytest.raises(PermanentError, match="not UTF-8"):
        target.write([Event("e1", "profile.updated", utf16, json.loads(utf16))])


@pytest.fixture
def waits(monkeypatch):
    """asyncio.sleep on the test's thread, recorded and not waited (the receiver's thread sleeps as usual)."""
    recorded: list[float] = []
    real_sleep, me = asyncio.sleep, threading.get_ident()

    async def sleep(seconds, *args, **kwargs):
        if threading.get_ident() != me:
            return await real_sleep(seconds, *args, **kwargs)
        recorded.append(seconds)
        return await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    return recorded


async def _post_once(receiver: Receiver, max_retry_after_s: float) -> None:
    t = HttpTarget(HttpTargetConfig(url=receiver.url, secret=SECRET, max_retry_after_s=max_retry_after_s))
    body = json.dumps({"id": "e1"}).encode()
    try:
        async with aiohttp.ClientSession() as session:
            await t._post(session, Event("e1", "profile.updated", body, {"id": "e1"}))
    finally:
        t.close()


@pytest.mark.parametrize(("throttled", "budget", "requests", "slept", "refused"), [
    (2, 5.0, 3, [1.0, 1.0], None),  # Retry-After: 1, twice, within the budget
    (3, 2.0, 3, [1.0, 1.0], 429),  # a third wait would pass the budget: the 429 is the try's failure
    (1, 0.5, 1, [], 429),  # not even one wait fits
])
async def test_retry_after_is_waited_out_within_the_budget(receiver, waits, throttled, budget, requests,
                                                            slept, refused):
    receiver.throttle_first = throttled
    if refused is None:
        await _post_once(receiver, budget)
    else:
        with pytest.raises(HttpStatusError) as caught:
            await _post_once(receiver, budget)
        assert caught.value.status == refused
    assert receiver.deliveries["e1"] == requests and waits == slept
    assert receiver.invalid == 0  # every try signed afresh


async def test_a_failure_without_retry_after_is_not_retried_here(receiver, waits):
    receiver.fail_ids.add("e1")
    with pytest.raises(HttpStatusError, match="HTTP 500: the legacy endpoint cannot take this one"):
        await _post_once(receiver, 30.0)
    assert receiver.deliveries["e1"] == 1 and waits == []
