"""The SQL connector as a real process on the real broker: a burst of 10,000 events written exactly
once across a SIGKILL, a poison event dead-lettered without stopping the rest, then replayed."""

from __future__ import annotations

import sqlite3
import uuid

from tests.hub.backoffice.connectors import harness

BURST = 10_000


def test_burst_is_written_exactly_once_across_a_sigkill(names, pg, pg_database_url, tmp_path):
    suffix = uuid.uuid4().hex[:6]
    table, handled = f"legacy_{suffix}", f"handled_{suffix}"
    # An append-only legacy table with a surrogate key: only the handled-events ledger stops a
    # redelivered event from becoming a second row.
    pg.run(f"CREATE TABLE {table} (row_id serial PRIMARY KEY, event_id text NOT NULL, customer text, "
           f"name text, n integer, changed_at timestamptz)")
    config = names("sql", {"url": pg_database_url, "table": table, "mode": "insert", "handled_table": handled,
                           "columns": {"event_id": "id", "customer": "data.profile_id", "name": "data.display_name",
                                       "n": "data.n", "changed_at": "time"}})
    worker = harness.WorkerProcess("sql", config, tmp_path)
    events = [harness.cloud_event(n) for n in range(BURST)]
    harness.publish(config["amqp_url"], config["events_exchange"], events)
    worker.start()
    try:
        def rows() -> int:
            return pg.scalar(f"SELECT count(*) FROM {table}") if pg.run(
                "SELECT 1 FROM information_schema.tables WHERE table_name = :t", t=handled) else 0

        harness.wait_for(lambda: rows() >= BURST // 3, 60, "a third of the burst", worker)
        worker.kill9()
        assert rows() < BURST, "the worker finished before it was killed: nothing was tested"
        worker.start()
        harness.wait_for(lambda: rows() >= BURST, 90, "the whole burst", worker)
        harness.wait_for(lambda: harness.queue_depth(config["amqp_url"], config["queue"]) == 0, 30, "an empty queue")
    finally:
        worker.stop()
    total, distinct = pg.run(f"SELECT count(*), count(DISTINCT event_id) FROM {table}")[0]
    assert (total, distinct) == (BURST, BURST)
    assert pg.scalar(f"SELECT count(*) FROM {handled}") == BURST
    assert {r[0] for r in pg.run(f"SELECT event_id FROM {table}")} == {e[0] for e in events}


def test_poison_event_is_dead_lettered_and_replayed_after_the_fix(names, tmp_path, amqp_url):
    path = tmp_path / "legacy.db"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE customers (customer_id TEXT PRIMARY KEY, name TEXT, n INTEGER);
        CREATE TRIGGER refuse BEFORE INSERT ON customers WHEN NEW.name = 'POISON'
        BEGIN SELECT RAISE(ABORT, 'the legacy system refuses this record'); END;
    """)
    db.close()
    config = names("sqlpoison", {"url": f"sqlite:///{path}", "table": "customers", "key": ["customer_id"],
                                 "columns": {"customer_id": "data.profile_id", "name": "data.display_name",
                                             "n": "data.n"}})
    events = [harness.cloud_event(n) for n in range(300)]
    poison = harness.cloud_event(300, display_name="POISON")
    events.insert(150, poison)
    harness.publish(amqp_url, config["events_exchange"], events)
    worker = harness.WorkerProcess("sql", config, tmp_path)
    worker.start()

    def count() -> int:
        with sqlite3.connect(path) as conn:
            return conn.execute("SELECT count(*) FROM customers").fetchone()[0]

    env = {"OMNIHUB_AMQP_URL": amqp_url, "OMNIHUB_BACKOFFICE__DEAD_QUEUE": config["dead_queue"]}
    try:
        harness.wait_for(lambda: count() == 300, 60, "every good event", worker)
        harness.wait_for(lambda: harness.queue_depth(amqp_url, config["dead_queue"]) == 1, 30, "the dead letter")
        listed = harness.dlq("list", "--json", env=env)
        assert listed.returncode == 0, listed.stderr
        import json

        [letter] = json.loads(listed.stdout)
        assert letter["message_id"] == poison[0] and letter["queue"] == config["queue"]
        assert letter["reason"] == "failed" and letter["attempts"] == 3
        assert "refuses this record" in letter["error"]
        assert (letter["exchange"], letter["routing_key"]) == (config["events_exchange"], "profile.updated")

        with sqlite3.connect(path) as conn:  # the legacy team fixes their side
            conn.execute("DROP TRIGGER refuse")
        replayed = harness.dlq("replay", "--source", config["queue"], env=env)
        assert replayed.returncode == 0, replayed.stderr
        assert "replayed 1" in replayed.stdout
        harness.wait_for(lambda: count() == 301, 30, "the replayed event", worker)
        assert harness.queue_depth(amqp_url, config["dead_queue"]) == 0
    finally:
        worker.stop()
