"""The IMAP poller against a real Dovecot: what it does with a message it cannot take (one the
server cannot FETCH, one too large, one that is not a message), when even the copy into
failed_mailbox is refused, and mailbox names that must be encoded. Outages never count."""

from __future__ import annotations

import asyncio
import imaplib
import logging
import os
import signal
from pathlib import Path

import pytest

from adapters.email.imap_wire import utf7

from .email_support import MemoryState, Recorder, make_adapter, make_deps
from .test_email_imap import CORPUS, POISON, _append, append, dovecot, eventually, imap_config, mailbox  # noqa: F401

PLAIN = "Where is my order #1042?"  # 01_plain_ascii.eml
ALT = "Refund for damaged lamp"  # 02_alternative.eml



async def read_through(adapter, state, last_uid: int, timeout: float = 20):
    """Run the adapter until its poller has passed `last_uid`, then stop it; returns the poller
    (the adapter lets go of it when it stops)."""
    await adapter.start()
    poller = adapter.poller
    try:
        await eventually(lambda: state.values.get(poller.state_key, "").endswith(f":{last_uid}"),
                         timeout=timeout)
    finally:
        await adapter.stop()
    return poller

def _append_to(server, name: str, raw: bytes) -> None:
    with imaplib.IMAP4(server.host, server.port, timeout=10) as client:
        client.login(server.username, server.password)
        client.create(f'"{utf7(name)}"')
        assert client.append(f'"{utf7(name)}"', None, None, raw)[0] == "OK"


def _count(server, name: str) -> int:
    """How many messages a mailbox holds (without reading them)."""
    with imaplib.IMAP4(server.host, server.port, timeout=10) as client:
        client.login(server.username, server.password)
        status, data = client.select(f'"{utf7(name)}"', readonly=True)
        assert status == "OK"
        return int(data[0])


def _message_file(server, subject: bytes) -> Path:
    mail = server.root / "mail" / server.username
    return next(p for p in [*mail.glob("new/*"), *mail.glob("cur/*")] if subject in p.read_bytes())


def _imap_processes(server) -> list[int]:
    """The pids of Dovecot's per-connection imap processes (the poller's session)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, rest = stat.read_text().split(" (", 1)
        except OSError:
            continue
        comm, _, fields = rest.rpartition(") ")
        if comm == "imap" and int(fields.split()[1]) == server.process.pid:
            found.append(int(pid))
    return found


def errors(caplog, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelname == "ERROR" and text in r.getMessage()]


async def test_a_message_the_server_cannot_fetch_is_counted_and_dead_lettered(dovecot, caplog):
    await append(dovecot, "01_plain_ascii.eml")
    await asyncio.to_thread(_append, dovecot, POISON)
    await append(dovecot, "02_alternative.eml")
    # Dovecot cannot read the file: it answers the FETCH with "* BYE FETCH failed" and hangs up.
    _message_file(dovecot, b"Poison pill").chmod(0)
    recorder, state = Recorder(), MemoryState()
    adapter = make_adapter(imap_config(dovecot, max_attempts=2), make_deps(recorder.ingest, recorder.report_status,
                                                                          state=state))
    poller = await read_through(adapter, state, 3)
    assert [i.subject for i in recorder.interactions] == [PLAIN, ALT]
    assert state.values[poller.attempts_key].split(":")[1:4] == ["2", "2", "MessageUnreadable"]
    refused = [r for r in caplog.records if r.getMessage() == "imap message not ingested"]
    assert [(r.uid, r.attempt, r.error) for r in refused] == [(2, 1, "MessageUnreadable"), (2, 2, "MessageUnreadable")]
    assert all("FETCH failed" in r.reason for r in refused)
    (dead,) = errors(caplog, "dead-lettered")
    assert (dead.uid, dead.attempts) == (2, 2)
    assert await asyncio.to_thread(_count, dovecot, "omnihub-failed") == 1  # Dovecot copies by hard link


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGSTOP], ids=["connection-dropped", "server-hangs"])
async def test_a_dropped_connection_or_a_timeout_mid_drain_never_counts_against_a_message(dovecot, how):
    await append(dovecot, "01_plain_ascii.eml", "02_alternative.eml")
    recorder, state = Recorder(), MemoryState()
    stopped: list[int] = []

    async def ingest(interaction):
        if interaction.subject == PLAIN and not stopped:
            # The poller's server process dies (or freezes) between this message and the next.
            stopped.extend(_imap_processes(dovecot))
            for pid in stopped:
                os.kill(pid, how)
        return await recorder.ingest(interaction)

    config = imap_config(dovecot, max_attempts=1, timeout_s=1)
    adapter = make_adapter(config, make_deps(ingest, recorder.report_status, state=state))
    await adapter.start()
    try:
        await eventually(lambda: len(recorder.interactions) == 2, timeout=20)
    finally:
        await adapter.stop()
        for pid in stopped:
            if how == signal.SIGSTOP:
                os.kill(pid, signal.SIGKILL)
    assert stopped
    assert recorder.calls_by_subject == {PLAIN: 1, ALT: 1}
    assert not any(k.startswith("email.imap.attempts") for k in state.values)
    assert await mailbox(dovecot, "omnihub-failed") is None


async def test_a_non_message_and_an_oversize_one_go_to_failed_mailbox_and_the_big_one_is_never_fetched(
        dovecot, caplog):
    caplog.set_level(logging.DEBUG, logger="aioimaplib.aioimaplib")  # what the poller sends
    await asyncio.to_thread(_append, dovecot, b"no header here, just a line of text\r\n")
    big = (CORPUS / "01_plain_ascii.eml").read_bytes().replace(b"1042", b"1043") + b"x" * 6000 + b"\r\n"
    await asyncio.to_thread(_append, dovecot, big)
    await append(dovecot, "02_alternative.eml")
    recorder, state = Recorder(), MemoryState()
    failed = "처리 실패"  # "processing failed": a space and Hangul, sent in modified UTF-7
    config = {**imap_config(dovecot, failed_mailbox=failed), "max_message_bytes": 4000}
    adapter = make_adapter(config, make_deps(recorder.ingest, recorder.report_status, state=state))
    await read_through(adapter, state, 3)
    assert [i.subject for i in recorder.interactions] == [ALT]
    copied = await mailbox(dovecot, utf7(failed))
    assert [s for _, s in copied] == [b"", b"Subject: Where is my order #1043?"]
    assert sorted((r.uid, r.error) for r in errors(caplog, "dead-lettered")) == [(1, "PayloadError"), (2, "oversize")]
    sent = [r.getMessage() for r in caplog.records if r.name == "aioimaplib.aioimaplib"]
    assert any("UID FETCH 1 (UID BODY.PEEK[])" in m for m in sent)
    assert not any("UID FETCH 2 (UID BODY.PEEK[])" in m for m in sent)
    inbox = await mailbox(dovecot)
    assert len(inbox) == 3 and not any(b"\\Seen" in f or b"\\Deleted" in f for f, _ in inbox)


async def test_when_failed_mailbox_is_refused_the_message_is_passed_over_loudly_and_the_mail_flows(
        dovecot, caplog):
    await asyncio.to_thread(_append, dovecot, POISON)
    await append(dovecot, "01_plain_ascii.eml")
    recorder, state = Recorder(refuse={"Poison pill"}), MemoryState()
    config = imap_config(dovecot, max_attempts=2, failed_mailbox="failed/imap")  # Dovecot: no '/' in names
    adapter = make_adapter(config, make_deps(recorder.ingest, recorder.report_status, state=state))
    poller = await read_through(adapter, state, 2)
    assert [i.subject for i in recorder.interactions] == [PLAIN]
    assert recorder.calls_by_subject["Poison pill"] == 2  # max_attempts ingests, then max_attempts copies
    validity = state.values[poller.state_key].partition(":")[0]
    assert state.values[poller.passed_over_key] == f"{validity}:1"
    (passed,) = errors(caplog, "WITHOUT a copy")
    assert "original stays in the mailbox, unflagged" in passed.getMessage()
    assert (passed.uid, passed.copy_attempt, passed.error) == (1, 2, "ValueError")
    assert "Invalid mailbox name" in passed.reason
    inbox = await mailbox(dovecot)
    assert len(inbox) == 2 and not any(b"\\Seen" in f or b"\\Deleted" in f for f, _ in inbox)

    caplog.clear()
    again = make_adapter(config, make_deps(recorder.ingest, recorder.report_status, state=state))  # a restart
    await again.start()
    try:
        await asyncio.wait_for(again.poller.connected.wait(), 10)
    finally:
        await again.stop()
    assert recorder.calls_by_subject["Poison pill"] == 2 and not errors(caplog, "imap")


@pytest.mark.parametrize("name", ["Support Inbox", "고객 문의 & 반품"])
async def test_a_mailbox_named_with_spaces_or_non_ascii_is_read(dovecot, name):
    await asyncio.to_thread(_append_to, dovecot, name, (CORPUS / "01_plain_ascii.eml").read_bytes())
    recorder, state = Recorder(), MemoryState()
    adapter = make_adapter(imap_config(dovecot, mailbox=name, start="all"),
                           make_deps(recorder.ingest, recorder.report_status, state=state))
    await adapter.start()
    key = adapter.poller.state_key
    try:
        await eventually(lambda: len(recorder.interactions) == 1)
    finally:
        await adapter.stop()
    assert recorder.interactions[0].subject == PLAIN
    assert state.values[key].endswith(":1")
