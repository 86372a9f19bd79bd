"""Erasure reaches the SQL connector's copy (issue 17 item 7): a real worker process on the real
broker, bound only to profile.updated, still hears profile.erased and deletes, or anonymizes, the
rows of the erased profile and of every profile merged into it; other customers' rows stay."""

from __future__ import annotations

import sqlite3

import pytest

from tests.hub.backoffice.connectors import harness

PHONES = {n: f"+8210555501{n:02d}" for n in range(3)}


def _legacy(path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE customers (customer_id TEXT PRIMARY KEY, name TEXT, phone TEXT, n INTEGER)")
    db.commit()
    db.close()


def _rows(path) -> list[tuple]:
    db = sqlite3.connect(path)
    try:
        return db.execute("SELECT customer_id, name, phone, n FROM customers ORDER BY customer_id").fetchall()
    finally:
        db.close()


@pytest.mark.parametrize("action", ["delete", "anonymize"])
def test_profile_erased_reaches_the_sql_target(names, tmp_path, action):
    path = tmp_path / "legacy.db"
    _legacy(path)
    config = names(f"erase{action}", {
        "url": f"sqlite:///{path}", "table": "customers", "key": ["customer_id"],
        "columns": {"customer_id": "data.profile_id", "name": "data.display_name", "phone": "data.phone",
                    "n": "data.n"},
        "erasure": {"action": action}}, bindings=["profile.updated"])
    harness.publish(config["amqp_url"], config["events_exchange"],
                    [harness.cloud_event(n, phone=PHONES[n]) for n in range(3)])
    worker = harness.WorkerProcess("sql", config, tmp_path)
    worker.start()
    try:
        harness.wait_for(lambda: len(_rows(path)) == 3, 60, "three customers", worker)
        # p-000001 is erased; p-000002 had been merged into it, so its rows go too.
        erased = harness.cloud_event(1, event_type="profile.erased", merged_ids=["p-000002"])
        harness.publish(config["amqp_url"], config["events_exchange"], [erased])
        if action == "delete":
            harness.wait_for(lambda: len(_rows(path)) == 1, 60, "the erased rows deleted", worker)
        else:
            harness.wait_for(lambda: all(r[1] is None for r in _rows(path) if r[0] != "p-000000"), 60,
                             "the erased rows anonymized", worker)
    finally:
        worker.stop()
    rows = _rows(path)
    assert ("p-000000", "Customer 0", PHONES[0], 0) in rows  # another customer is untouched
    held = repr(rows)
    for n in (1, 2):
        assert PHONES[n] not in held and f"Customer {n}" not in held
    if action == "anonymize":
        assert [r[0] for r in rows] == ["p-000000", "p-000001", "p-000002"]  # the keys stay, the PII goes
