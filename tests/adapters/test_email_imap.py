"""The IMAP poller against a real Dovecot started for each test (tests/adapters/dovecot.py)."""

from __future__ import annotations

import asyncio
import imaplib
import smtplib
from pathlib import Path

import aioimaplib
import pytest
from sqlalchemy import text

from adapters.email.imap_wire import already_exists
from hub.channels.runtime import guard_outages
from hub.ingest.pipeline import IngestContext, Pipeline
from hub.storage.engine import create_engine
from hub.storage.migrate import upgrade

from .dovecot import start_dovecot, stop_dovecot
from .email_support import MemoryState, Recorder, make_adapter, make_deps

CORPUS = Path(__file__).resolve().parents[1] / "data" / "email"


@pytest.fixture
def dovecot(tmp_path):
    server = start_dovecot(tmp_path)
    yield server
    stop_dovecot(server)


def _append(server, raw: bytes) -> None:
    with imaplib.IMAP4(server.host, server.port, timeout=10) as client:
        client.login(server.username, server.password)
        client.append("INBOX", None, None, raw)


async def append(server, *names: str) -> None:
    for name in names:
        await asyncio.to_thread(_append, server, (CORPUS / name).read_bytes())


POISON = (b"From: Mallory <mallory@example.com>\r\nTo: help@shop.example\r\nSubject: Poison pill\r\n"
          b"Message-ID: <poison.1@example.com>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0900\r\n\r\n"
          b"The hub cannot take this one.\r\n")


def _mailbox(server, name: str = "INBOX") -> list[tuple[bytes, bytes]] | None:
    """(FLAGS, Subject header line) of each message in a mailbox, or None when there is no such mailbox."""
    with imaplib.IMAP4(server.host, server.port, timeout=10) as client:
        client.login(server.username, server.password)
        if client.select(f'"{name}"', readonly=True)[0] != "OK":
            return None
        if not client.uid("SEARCH", "ALL")[1][0]:
            return []
        data = client.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")[1]
        return [(item[0], item[1].strip()) for item in data if isinstance(item, tuple)]


async def mailbox(server, name: str = "INBOX"):
    return await asyncio.to_thread(_mailbox, server, name)


def _flags(server) -> list[bytes]:
    with imaplib.IMAP4(server.host, server.port, timeout=10) as client:
        client.login(server.username, server.password)
        client.select("INBOX", readonly=True)
        return client.uid("FETCH", "1:*", "(FLAGS)")[1]


def imap_config(server, **overrides) -> dict:
    return {"imap": {"host": server.host, "port": server.port, "ssl": False, "username": server.username,
                     "password": server.password, "poll_interval_s": 5, "timeout_s": 5,
                     "reconnect_max_s": 0.5, **overrides}}


async def eventually(predicate, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def running(config: dict, recorder: Recorder, state: MemoryState | None = None):
    adapter = make_adapter(config, make_deps(recorder.ingest, recorder.report_status, state=state))
    await adapter.start()
    return adapter


async def test_reads_the_mailbox_then_new_mail_through_idle_and_leaves_it_unseen(dovecot):
    await append(dovecot, "05_euc_kr.eml", "04_nested_mixed.eml")
    recorder, state = Recorder(), MemoryState()
    adapter = await running(imap_config(dovecot), recorder, state)
    try:
        await eventually(lambda: len(recorder.interactions) == 2)
        await asyncio.wait_for(adapter.poller.connected.wait(), 10)
        await append(dovecot, "14_shift_jis.eml")  # arrives while the poller IDLEs (poll is 5 s away)
        await eventually(lambda: len(recorder.interactions) == 3, timeout=4)
    finally:
        await adapter.stop()
    first, nested, sjis = recorder.interactions
    assert first.subject == "배송지 변경 부탁드립니다" and first.metadata["email.via"] == "imap"
    assert len(nested.attachments) == 2 and all(a.storage_ref for a in nested.attachments)
    assert sjis.subject == "商品未着のお問い合わせ"
    (saved,) = state.values.values()
    assert saved.endswith(":3")
    assert not any(b"\\Seen" in line for line in await asyncio.to_thread(_flags, dovecot))


async def test_a_restarted_poller_does_not_read_anything_twice(dovecot):
    await append(dovecot, "01_plain_ascii.eml", "02_alternative.eml")
    recorder, state = Recorder(), MemoryState()
    adapter = await running(imap_config(dovecot), recorder, state)
    await eventually(lambda: recorder.calls == 2)
    await adapter.stop()
    await append(dovecot, "03_html_only.eml")
    again = await running(imap_config(dovecot), recorder, state)  # same state store: "after a restart"
    try:
        await eventually(lambda: recorder.calls == 3)
        await asyncio.wait_for(again.poller.connected.wait(), 10)
        await asyncio.sleep(0.3)
    finally:
        await again.stop()
    assert recorder.calls == 3  # the ingest was never even asked about the first two again
    assert [i.subject for i in recorder.interactions] == [
        "Where is my order #1042?", "Refund for damaged lamp", "Newsletter question"]


async def test_without_idle_it_polls(dovecot):
    recorder = Recorder()
    adapter = await running(imap_config(dovecot, idle=False, poll_interval_s=0.2), recorder)
    try:
        await asyncio.wait_for(adapter.poller.connected.wait(), 10)
        await append(dovecot, "15_iso_8859_1.eml")
        await eventually(lambda: len(recorder.interactions) == 1)
    finally:
        await adapter.stop()
    assert recorder.interactions[0].subject == "Problème de livraison à Lyon"


async def test_a_failed_ingest_saves_nothing_and_the_message_is_taken_after_reconnecting(dovecot):
    await append(dovecot, "06_iso2022kr.eml")
    recorder, state = Recorder(fail=True), MemoryState()
    adapter = await running(imap_config(dovecot, max_attempts=1), recorder, state)
    try:
        await eventually(lambda: recorder.calls >= 2)  # tried, failed, reconnected, tried again
        assert state.values == {}  # a hub outage is not counted against the message
        recorder.fail = False
        await eventually(lambda: len(recorder.interactions) == 1)
        await eventually(lambda: bool(state.values))
    finally:
        await adapter.stop()
    assert recorder.interactions[0].subject == "환불 문의"


async def test_a_changed_uidvalidity_reads_the_mailbox_again(dovecot):
    await append(dovecot, "07_quoted_printable.eml")
    recorder, state = Recorder(), MemoryState()
    adapter = await running(imap_config(dovecot), recorder, state)
    await eventually(lambda: recorder.calls == 1)
    await adapter.stop()
    (key,) = state.values
    state.values[key] = "12345:99"  # as if the mailbox had been rebuilt
    again = await running(imap_config(dovecot), recorder, state)
    try:
        await eventually(lambda: recorder.calls == 2)
    finally:
        await again.stop()
    assert len(recorder.interactions) == 1  # the second read was a repeat


async def test_a_wrong_password_keeps_retrying_and_stops_cleanly(dovecot):
    recorder = Recorder()
    adapter = await running(imap_config(dovecot, password="wrong"), recorder)
    await asyncio.sleep(1.5)
    assert not adapter.poller.connected.is_set()
    await asyncio.wait_for(adapter.stop(), 10)
    assert recorder.calls == 0


async def test_the_same_message_by_smtp_and_by_imap_is_stored_once(dovecot, tmp_path):
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/omnihub.db")
    await upgrade(engine)
    pipeline = Pipeline(engine)
    await pipeline.start()
    statuses = Recorder()
    config = {"smtp_listen": "127.0.0.1:0", "trusted_networks": ["127.0.0.0/8"], **imap_config(dovecot)}
    adapter = make_adapter(config, make_deps(pipeline.ingest, statuses.report_status))
    await adapter.start()
    raw = (CORPUS / "16_reply_thread.eml").read_bytes()
    try:
        def smtp_send() -> None:
            with smtplib.SMTP("127.0.0.1", adapter.listener.port, timeout=10) as client:
                client.sendmail("alice@example.com", ["help@shop.example"], raw)

        await asyncio.to_thread(smtp_send)
        await asyncio.to_thread(_append, dovecot, raw)  # and a copy lands in the mailbox
        await asyncio.wait_for(adapter.poller.connected.wait(), 10)
        await eventually(lambda: bool(adapter.deps.state.values))  # the IMAP copy was taken
    finally:
        await adapter.stop()
        await pipeline.stop()
    from sqlalchemy import text

    async with engine.connect() as conn:
        stored = (await conn.execute(text("SELECT provider, provider_ref FROM interactions"))).all()
    await engine.dispose()
    assert [tuple(r) for r in stored] == [("email", "CAF1042.reply2@mail.example.com")]


@pytest.fixture
async def refusing_hub(tmp_path):
    """The real pipeline on SQLite with an ingest step that refuses one message (by subject), as
    a hub bug or a rule that cannot handle it would; ingest wrapped as the hub wraps it for adapters,
    counting the calls per subject."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/omnihub.db")
    await upgrade(engine)

    def refuse_poison(ctx: IngestContext) -> None:
        if ctx.interaction.subject == "Poison pill":
            raise ValueError("this step cannot handle the message")

    pipeline = Pipeline(engine, steps=[refuse_poison])
    await pipeline.start()
    counts: dict[str | None, int] = {}
    guarded = guard_outages(pipeline.ingest)

    async def ingest(interaction):
        counts[interaction.subject] = counts.get(interaction.subject, 0) + 1
        return await guarded(interaction)

    async def stored() -> list[str]:
        async with engine.connect() as conn:
            return [r[0] for r in await conn.execute(text("SELECT provider_ref FROM interactions"))]

    yield pipeline, ingest, counts, stored
    await pipeline.stop()
    await engine.dispose()


async def test_a_message_the_hub_keeps_refusing_is_dead_lettered_and_the_mail_after_it_flows(dovecot, refusing_hub):
    pipeline, ingest, counts, stored = refusing_hub
    await append(dovecot, "01_plain_ascii.eml")
    await asyncio.to_thread(_append, dovecot, POISON)
    await append(dovecot, "02_alternative.eml")
    state, statuses = MemoryState(), Recorder()
    config = imap_config(dovecot, max_attempts=2)
    adapter = make_adapter(config, make_deps(ingest, statuses.report_status, state=state))
    await adapter.start()
    try:
        await eventually(lambda: state.values.get(adapter.poller.state_key, "").endswith(":3"))
        assert sorted(await stored()) == ["20261123111530.alt@example.org", "CAF1042.plain@mail.example.com"]
    finally:
        await adapter.stop()
    assert counts["Poison pill"] == 2
    [(_, subject)] = await mailbox(dovecot, "omnihub-failed")
    assert subject == b"Subject: Poison pill"
    inbox = await mailbox(dovecot)
    assert len(inbox) == 3 and not any(b"\\Deleted" in f or b"\\Seen" in f for f, _ in inbox)

    await asyncio.to_thread(_append, dovecot, (CORPUS / "03_html_only.eml").read_bytes())
    again = make_adapter(config, make_deps(ingest, statuses.report_status, state=state))  # a restart
    await again.start()
    try:
        await eventually(lambda: state.values[again.poller.state_key].endswith(":4"))
    finally:
        await again.stop()
    assert counts["Poison pill"] == 2  # not tried again
    assert "html-only-77@example.net" in await stored()
    assert len(await mailbox(dovecot, "omnihub-failed")) == 1


async def test_a_hub_outage_never_dead_letters_and_the_mail_is_taken_once_the_hub_is_back(dovecot, refusing_hub):
    pipeline, ingest, counts, stored = refusing_hub
    await append(dovecot, "01_plain_ascii.eml")
    await pipeline.stop()  # ingest now raises PipelineStopped, which adapters see as HubUnavailable
    state, statuses = MemoryState(), Recorder()
    adapter = make_adapter(imap_config(dovecot, max_attempts=1),
                           make_deps(ingest, statuses.report_status, state=state))
    await adapter.start()
    key = adapter.poller.state_key
    try:
        await eventually(lambda: counts.get("Where is my order #1042?", 0) >= 3)
        assert state.values == {}  # neither done nor counted
        await pipeline.start()
        await eventually(lambda: bool(state.values))
    finally:
        await adapter.stop()
    assert await stored() == ["CAF1042.plain@mail.example.com"]
    assert list(state.values) == [key]
    assert await mailbox(dovecot, "omnihub-failed") is None


def _create(server, name: str) -> None:
    with imaplib.IMAP4(server.host, server.port, timeout=10) as client:
        client.login(server.username, server.password)
        assert client.create(f'"{name}"')[0] == "OK"


async def test_the_failure_count_survives_a_restart(dovecot):
    await asyncio.to_thread(_append, dovecot, POISON)
    await append(dovecot, "01_plain_ascii.eml")
    await asyncio.to_thread(_create, dovecot, "Omnihub Failed")  # made by the operator; a name to quote
    recorder, state = Recorder(refuse={"Poison pill"}), MemoryState()
    config = imap_config(dovecot, failed_mailbox="Omnihub Failed")
    adapter = await running({"imap": {**config["imap"], "max_attempts": 50}}, recorder, state)
    key = adapter.poller.state_key
    await eventually(lambda: recorder.calls_by_subject.get("Poison pill", 0) >= 2)
    await adapter.stop()
    before = recorder.calls_by_subject["Poison pill"]
    assert recorder.interactions == [] and key not in state.values
    # Had the count been lost, this would take `before + 1` more attempts; it takes one.
    again = await running({"imap": {**config["imap"], "max_attempts": before + 1}}, recorder, state)
    try:
        await eventually(lambda: len(recorder.interactions) == 1)
    finally:
        await again.stop()
    assert recorder.calls_by_subject["Poison pill"] == before + 1
    assert [s for _, s in await mailbox(dovecot, "Omnihub Failed")] == [b"Subject: Poison pill"]
    assert await mailbox(dovecot, "omnihub-failed") is None


@pytest.mark.parametrize("line, exists", [
    (b"[ALREADYEXISTS] Mailbox already exists (0.001 + 0.000 secs).", True),  # Dovecot, RFC 5530
    (b"Mailbox already exists", True),
    (b"[NOPERM] Permission denied", False),
])
def test_create_tolerates_only_an_existing_mailbox(line, exists):
    assert already_exists(aioimaplib.Response("NO", [line])) is exists


@pytest.mark.parametrize("already_there", [["01_plain_ascii.eml", "02_alternative.eml"], []])
async def test_start_new_skips_the_mail_already_there_and_reads_what_arrives(dovecot, already_there):
    await append(dovecot, *already_there)
    recorder, state = Recorder(), MemoryState()
    adapter = await running(imap_config(dovecot, start="new"), recorder, state)
    try:
        await asyncio.wait_for(adapter.poller.connected.wait(), 10)
        assert state.values == {adapter_key(dovecot): f"{uidvalidity(state)}:{len(already_there)}"}
        assert recorder.calls == 0
        await append(dovecot, "03_html_only.eml")
        await eventually(lambda: len(recorder.interactions) == 1)
    finally:
        await adapter.stop()
    assert recorder.calls == 1 and recorder.interactions[0].subject == "Newsletter question"
    assert state.values[adapter_key(dovecot)] == f"{uidvalidity(state)}:{len(already_there) + 1}"


async def test_start_new_on_a_changed_uidvalidity_skips_to_the_end_again_and_warns(dovecot, caplog):
    await append(dovecot, "01_plain_ascii.eml", "02_alternative.eml")
    recorder, state = Recorder(), MemoryState()
    state.values[adapter_key(dovecot)] = "12345:1"  # saved before the mailbox was rebuilt
    adapter = await running(imap_config(dovecot, start="new"), recorder, state)
    try:
        await asyncio.wait_for(adapter.poller.connected.wait(), 10)
        await append(dovecot, "03_html_only.eml")
        await eventually(lambda: len(recorder.interactions) == 1)
    finally:
        await adapter.stop()
    assert [i.subject for i in recorder.interactions] == ["Newsletter question"] and recorder.calls == 1
    assert any("UIDVALIDITY changed" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


def adapter_key(server) -> str:
    return f"email.imap:{server.username}@{server.host}:{server.port}/INBOX"


def uidvalidity(state: MemoryState) -> str:
    (saved,) = state.values.values()
    return saved.partition(":")[0]
