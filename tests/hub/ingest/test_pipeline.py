"""The ingest pipeline against real databases: one transaction per interaction, shared commits."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text

from hub.ingest.pipeline import IngestContext, Pipeline
from schemas import DEFAULT_REGION_KEY, Interaction
from tests.hub.conftest import count_rows
from tests.hub.payloads import sms


def interaction(payload) -> Interaction:
    return Interaction.model_validate(payload, context={DEFAULT_REGION_KEY: "KR"})


@pytest.fixture
async def pipeline(engine):
    pipe = Pipeline(engine)
    await pipe.start()
    yield pipe
    await pipe.stop()


def failing_write_for(text_marker: str):
    """A step whose write fails inside the transaction, after the interaction row is written."""

    def step(ctx: IngestContext) -> None:
        if ctx.interaction.content and ctx.interaction.content.text == text_marker:
            def broken(conn) -> None:
                conn.execute(text("INSERT INTO no_such_table VALUES (1)"))

            ctx.writes.append(broken)

    return step


async def test_failure_inside_the_transaction_leaves_no_interaction_and_no_event(engine, pipeline):
    pipeline.steps.append(failing_write_for("poison"))
    good = [interaction(sms(f"010-2000-{i:04d}")) for i in range(5)]
    bad = interaction(sms("010-9999-9999", text="poison"))
    results = await asyncio.gather(*(pipeline.ingest(i) for i in [*good[:3], bad, *good[3:]]),
                                   return_exceptions=True)
    assert isinstance(results[3], Exception)
    assert all(not isinstance(r, Exception) and r.created for i, r in enumerate(results) if i != 3)
    async with engine.connect() as conn:
        refs = {r[0] for r in await conn.execute(text("SELECT provider_ref FROM interactions"))}
        bodies = [r[0] for r in await conn.execute(text("SELECT body FROM outbox"))]
    assert bad.provider_ref not in refs
    assert refs == {g.provider_ref for g in good}
    assert not any("+821099999999" in b for b in bodies)  # neither its event nor its profile's
    assert await count_rows(engine, "profiles") == 5
    assert await count_rows(engine, "identifiers") == 5


async def test_fifty_concurrent_ingests_of_one_new_number_make_one_profile(engine, pipeline):
    items = [interaction(sms("010-5555-0000" if i % 2 else "+82 10 5555 0000")) for i in range(50)]
    results = await asyncio.gather(*(pipeline.ingest(i) for i in items))
    assert len({r.profile_id for r in results}) == 1
    assert await count_rows(engine, "profiles") == 1
    assert await count_rows(engine, "interactions") == 50


async def test_two_pipelines_racing_on_one_number_make_one_profile(engine):
    """Two writers (as two hub processes would have) race on the same new identifiers."""
    a, b = Pipeline(engine), Pipeline(engine)
    await a.start()
    await b.start()
    try:
        items = [interaction(sms(f"010-7777-{i % 5:04d}")) for i in range(40)]
        results = await asyncio.gather(*((a if i % 2 else b).ingest(x) for i, x in enumerate(items)))
    finally:
        await a.stop()
        await b.stop()
    assert len({r.profile_id for r in results}) == 5
    assert await count_rows(engine, "profiles") == 5
    assert await count_rows(engine, "interactions") == 40


async def test_concurrent_repeats_of_one_webhook_store_it_once(engine, pipeline):
    item = interaction(sms(ref="SM-retry"))
    results = await asyncio.gather(*(pipeline.ingest(item) for _ in range(20)))
    assert len({r.interaction_id for r in results}) == 1
    assert sum(r.created for r in results) == 1
    assert await count_rows(engine, "interactions") == 1


async def test_concurrent_ingests_share_commits(engine, pipeline):
    items = [interaction(sms(f"010-3000-{i:04d}")) for i in range(200)]
    await asyncio.gather(*(pipeline.ingest(i) for i in items))
    assert await count_rows(engine, "interactions") == 200
    assert pipeline.batches_committed < 100


async def test_steps_see_the_profile_and_their_changes_are_stored(engine, pipeline):
    seen = []

    def tag_vip(ctx: IngestContext) -> None:
        seen.append((ctx.profile_created, ctx.profile))
        ctx.interaction.tags.append("seen-before" if not ctx.profile_created else "new-customer")
        ctx.interaction.priority = 7

    pipeline.steps.append(tag_vip)
    first = await pipeline.ingest(interaction(sms("010-4000-0001")))
    await pipeline.ingest(interaction(sms("010-4000-0001")))
    assert seen[0] == (True, None)
    assert seen[1][0] is False and seen[1][1]["id"] == first.profile_id
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT priority, document FROM interactions ORDER BY id"))).all()
    assert [r.priority for r in rows] == [7, 7]
    assert '"tags":["new-customer"]' in rows[0].document
    assert '"tags":["seen-before"]' in rows[1].document


async def test_a_transaction_held_on_the_same_loop_delays_ingest_but_never_the_loop(engine, pipeline):
    """A coroutine of this hub holds the write lock across awaits: the ingest waits for it, off the loop."""
    from hub.storage.engine import writer

    lags: list[float] = []

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.01)
            lags.append(loop.time() - before - 0.01)

    ticking = asyncio.create_task(ticker())
    try:
        async with writer(engine).begin() as conn:  # BEGIN IMMEDIATE on SQLite
            await conn.execute(text("UPDATE outbox SET failed_reason = NULL WHERE seq < 0"))
            ingest = asyncio.create_task(pipeline.ingest(interaction(sms("010-4242-0001", ref="SM-held"))))
            await asyncio.sleep(0.3)
            assert not ingest.done() or (await ingest).created  # PostgreSQL needs no lock for this
        result = await asyncio.wait_for(ingest, 10)
    finally:
        ticking.cancel()
    assert result.created
    assert await count_rows(engine, "interactions") == 1
    assert max(lags) < 0.2, f"the event loop stalled for {max(lags):.2f}s"
