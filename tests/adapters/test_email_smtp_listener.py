"""The SMTP listener with a real client (smtplib) and, where it can, the real ingest pipeline on
SQLite: a 250 means the interaction is in the database, anyone unauthenticated is refused."""

from __future__ import annotations

import asyncio
import json
import smtplib
from pathlib import Path

import pytest
from sqlalchemy import text

from adapters.base import DeliveryStatus
from adapters.email import EmailConfig
from adapters.email.smtp_listener import SmtpListener
from hub.ingest.pipeline import Pipeline
from hub.storage.engine import create_engine
from hub.storage.migrate import upgrade

from .email_support import MemoryBlobs, Recorder, make_adapter, make_deps

CORPUS = Path(__file__).resolve().parents[1] / "data" / "email"
AUTH = {"smtp_auth": {"mx-relay": "s3cret"}, "smtp_auth_require_tls": False}


@pytest.fixture
async def pipeline_deps(tmp_path):
    """AdapterDeps whose ingest is the hub's real pipeline on a fresh SQLite database."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/omnihub.db")
    await upgrade(engine)
    pipeline = Pipeline(engine)
    await pipeline.start()
    statuses = Recorder()
    deps = make_deps(pipeline.ingest, statuses.report_status, blobs=MemoryBlobs())
    yield deps, engine, statuses
    await pipeline.stop()
    await engine.dispose()


async def rows(engine, sql="SELECT provider, provider_ref, conversation_key FROM interactions"):
    async with engine.connect() as conn:
        return [tuple(r) for r in await conn.execute(text(sql))]


@pytest.fixture
async def listen():
    started = []

    async def start(deps, **config):
        adapter = make_adapter({"smtp_listen": "127.0.0.1:0", **config}, deps)
        await adapter.start()
        started.append(adapter)
        return adapter.listener.port

    yield start
    for adapter in started:
        await adapter.stop()


def smtp_send(port: int, raw: bytes, *, login: tuple[str, str] | None = None,
              rcpt: str = "help@shop.example") -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("mx.example.net")
        if login:
            client.login(*login)
        client.sendmail("sender@example.com", [rcpt], raw)


async def send(port, raw, **kw):
    await asyncio.to_thread(smtp_send, port, raw, **kw)


async def test_authenticated_mail_is_committed_before_250_and_a_resend_is_a_repeat(pipeline_deps, listen):
    deps, engine, _ = pipeline_deps
    port = await listen(deps, **AUTH)
    raw = (CORPUS / "05_euc_kr.eml").read_bytes()
    await send(port, raw, login=("mx-relay", "s3cret"))
    # No waiting: the 250 came after the commit.
    assert await rows(engine) == [("email", "euckr.20261123140211@mail.example.co.kr",
                                   "email:euckr.20261123140211@mail.example.co.kr")]
    await send(port, raw, login=("mx-relay", "s3cret"))
    assert len(await rows(engine)) == 1
    (document,) = (await rows(engine, "SELECT document FROM interactions"))[0]
    stored = json.loads(document)
    assert stored["subject"] == "배송지 변경 부탁드립니다" and stored["metadata"]["email.via"] == "smtp"
    assert stored["sender"]["identifiers"] == [{"type": "email", "value": "minji.kim@example.co.kr"}]


async def test_attachments_go_to_the_blob_store(pipeline_deps, listen):
    deps, engine, _ = pipeline_deps
    port = await listen(deps, **AUTH)
    await send(port, (CORPUS / "04_nested_mixed.eml").read_bytes(), login=("mx-relay", "s3cret"))
    assert len(deps.blobs.blobs) == 2
    (body,) = (await rows(engine, "SELECT document FROM interactions"))[0]
    for ref in deps.blobs.blobs:
        assert ref in body


async def test_a_client_that_does_not_authenticate_gets_530_and_nothing_is_written(pipeline_deps, listen):
    deps, engine, _ = pipeline_deps
    port = await listen(deps, **AUTH)
    with pytest.raises(smtplib.SMTPSenderRefused) as err:
        await send(port, (CORPUS / "01_plain_ascii.eml").read_bytes())
    assert err.value.smtp_code == 530
    assert await rows(engine) == []


async def test_a_wrong_password_gets_535_and_nothing_is_written(pipeline_deps, listen):
    deps, engine, _ = pipeline_deps
    port = await listen(deps, **AUTH)
    for login in (("mx-relay", "wrong"), ("nobody", "s3cret")):
        with pytest.raises(smtplib.SMTPAuthenticationError) as err:
            await send(port, (CORPUS / "01_plain_ascii.eml").read_bytes(), login=login)
        assert err.value.smtp_code == 535
    assert await rows(engine) == []


async def test_trusted_networks_need_no_auth_and_others_still_do(pipeline_deps, listen):
    deps, engine, _ = pipeline_deps
    trusted = await listen(deps, trusted_networks=["127.0.0.0/8"])
    await send(trusted, (CORPUS / "01_plain_ascii.eml").read_bytes())
    assert len(await rows(engine)) == 1
    elsewhere = await listen(deps, trusted_networks=["10.0.0.0/8", "::1/128"], **AUTH)
    with pytest.raises(smtplib.SMTPSenderRefused) as err:
        await send(elsewhere, (CORPUS / "02_alternative.eml").read_bytes())
    assert err.value.smtp_code == 530
    assert len(await rows(engine)) == 1


async def test_a_failed_ingest_answers_451_so_the_sender_retries(listen):
    recorder = Recorder(fail=True)
    port = await listen(make_deps(recorder.ingest, recorder.report_status), **AUTH)
    raw = (CORPUS / "02_alternative.eml").read_bytes()
    with pytest.raises(smtplib.SMTPDataError) as err:
        await send(port, raw, login=("mx-relay", "s3cret"))
    assert err.value.smtp_code == 451
    recorder.fail = False
    await send(port, raw, login=("mx-relay", "s3cret"))  # the sending MTA's retry
    assert [i.provider_ref for i in recorder.interactions] == ["20261123111530.alt@example.org"]


async def test_a_bounce_is_stored_tagged_and_reported_against_the_message_it_bounced(pipeline_deps, listen):
    deps, engine, statuses = pipeline_deps
    port = await listen(deps, **AUTH)
    await send(port, (CORPUS / "10_bounce_dsn.eml").read_bytes(), login=("mx-relay", "s3cret"))
    (update,) = statuses.statuses
    assert update.provider_ref == "0192aaaa-bbbb-7ccc-8ddd-eeeeffff0000@shop.example"
    assert (update.status, update.error_code) == (DeliveryStatus.FAILED, "5.1.1")
    (body,) = (await rows(engine, "SELECT document FROM interactions"))[0]
    assert '"bounce"' in body


async def test_not_a_message_is_refused_for_good(listen):
    recorder = Recorder()
    port = await listen(make_deps(recorder.ingest, recorder.report_status), **AUTH)
    with pytest.raises(smtplib.SMTPDataError) as err:
        await send(port, b"\r\n\r\n", login=("mx-relay", "s3cret"))
    assert err.value.smtp_code == 554
    assert recorder.interactions == []


async def test_too_large_is_refused(listen):
    recorder = Recorder()
    port = await listen(make_deps(recorder.ingest, recorder.report_status), max_message_bytes=1000, **AUTH)
    with pytest.raises((smtplib.SMTPDataError, smtplib.SMTPSenderRefused)) as err:
        await send(port, (CORPUS / "04_nested_mixed.eml").read_bytes(), login=("mx-relay", "s3cret"))
    assert err.value.smtp_code == 552
    assert recorder.interactions == []


async def test_stop_waits_for_a_commit_in_flight(listen):
    recorder = Recorder()
    committed = asyncio.Event()

    async def slow_ingest(interaction):
        await asyncio.sleep(0.5)
        outcome = await recorder.ingest(interaction)
        committed.set()
        return outcome

    adapter = make_adapter({"smtp_listen": "127.0.0.1:0", **AUTH}, make_deps(slow_ingest, recorder.report_status))
    await adapter.start()
    sending = asyncio.create_task(send(adapter.listener.port, (CORPUS / "01_plain_ascii.eml").read_bytes(),
                                       login=("mx-relay", "s3cret")))
    while not adapter.listener._inflight:
        await asyncio.sleep(0.01)
    await adapter.stop()
    assert committed.is_set() and len(recorder.interactions) == 1
    await asyncio.gather(sending, return_exceptions=True)


def test_the_listener_never_runs_open():
    recorder = Recorder()
    open_config = EmailConfig.model_construct(**{**EmailConfig().model_dump(), "smtp_listen": "127.0.0.1:0"})
    with pytest.raises(ValueError, match="smtp_auth and/or trusted_networks"):
        SmtpListener(open_config, make_deps(recorder.ingest, recorder.report_status))
