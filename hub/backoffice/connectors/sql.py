"""SQL target: upserts events into a table of a legacy database (any SQLAlchemy URL).

```yaml
target:
  url: postgresql+asyncpg://erp@db/erp      # or sqlite:///legacy.db, mssql+pyodbc://..., ...
  table: customers
  mode: upsert                               # or insert (an append-only table)
  key: [customer_id]                         # upsert: the columns that identify a row
  columns:                                   # target column: path into the CloudEvent
    customer_id: data.profile_id
    display_name: data.display_name
    event_type: type
    changed_at: time
    source_key: $routing_key
  handled_table: omnihub_handled_events      # created if missing
  erasure:                                   # what profile.erased does to this table
    action: delete                           # or anonymize: set `columns` to NULL
    profile_column: customer_id              # default: the column mapped from data.profile_id
    columns: [display_name]                  # anonymize: default every mapped column but keys
```

Erasure: a `profile.erased` event (bound for every connector, see config.py) deletes or anonymizes
the rows whose `profile_column` holds the erased profile or any profile merged into it, in the
same transaction as its handled id. A table with no column for the profile id can't be erased by
id: the worker says so at start and logs each erasure it could not apply.

Exactly once: the ids of the events written are inserted into `handled_table` in the same
transaction as the rows, and a batch first drops the events already there. A batch redelivered
after a crash between commit and ack therefore changes nothing, even in `insert` mode. Async
drivers (asyncpg, aiosqlite) run on a private event loop; sync drivers directly.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import (
    Column,
    Connection,
    MetaData,
    String,
    Table,
    create_engine,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import create_async_engine

from hub.backoffice.connectors.config import ERASED, WorkerConfig, parse
from hub.backoffice.connectors.worker import Event, PermanentError, lookup
from hub.storage.models import UTCDateTime

log = logging.getLogger("omnihub.worker.sql")


class ErasureConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    action: Literal["delete", "anonymize"] = "delete"
    profile_column: str | None = None
    columns: list[str] | None = None


class SqlTargetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    url: str
    table: str
    schema_: str | None = Field(None, alias="schema")
    mode: Literal["upsert", "insert"] = "upsert"
    key: list[str] = Field(default_factory=list)
    columns: dict[str, str] = Field(min_length=1)
    handled_table: str = "omnihub_handled_events"
    erasure: ErasureConfig = Field(default_factory=ErasureConfig)

    @property
    def profile_column(self) -> str | None:
        """The column erasure matches on: configured, else the one mapped from data.profile_id."""
        if self.erasure.profile_column is not None:
            return self.erasure.profile_column
        return next((c for c, path in self.columns.items() if path == "data.profile_id"), None)

    @model_validator(mode="after")
    def _key(self) -> SqlTargetConfig:
        if self.mode == "upsert" and not self.key:
            raise ValueError("mode upsert needs `key`: the columns that identify a row")
        missing = [k for k in self.key if k not in self.columns]
        if missing:
            raise ValueError(f"key columns {missing} are not in `columns`")
        return self


class SqlTarget:
    def __init__(self, config: SqlTargetConfig, connector: str) -> None:
        self.config = config
        self.connector = connector
        url = make_url(config.url)
        self._loop: asyncio.AbstractEventLoop | None = None
        if url.get_dialect().is_async:
            self._loop = asyncio.new_event_loop()
            self._async_engine = create_async_engine(url, pool_size=1, max_overflow=0, pool_pre_ping=True)
        else:
            self._engine = create_engine(url, pool_size=1, max_overflow=0, pool_pre_ping=True)
        meta = MetaData()
        self.handled = Table(config.handled_table, meta, Column("event_id", String(255), primary_key=True),
                             Column("connector", String(100), nullable=False),
                             Column("handled_at", UTCDateTime, nullable=False), schema=config.schema_)
        self.table: Table | None = None

        def prepare(conn: Connection) -> None:
            meta.create_all(conn, tables=[self.handled])
            self.table = Table(config.table, meta, autoload_with=conn, schema=config.schema_)
            unknown = [c for c in [*config.columns, *(config.erasure.columns or [])] if c not in self.table.c]
            if config.erasure.profile_column is not None and config.erasure.profile_column not in self.table.c:
                unknown.append(config.erasure.profile_column)
            if unknown:
                raise PermanentError(f"table {config.table} has no columns {unknown}")

        self._transaction(prepare)
        if config.profile_column is None:
            log.warning("this table has no column for the profile id: profile.erased cannot reach it "
                        "(set target.erasure.profile_column)", extra={"table": config.table})

    def _transaction(self, fn: Callable[[Connection], Any]) -> Any:
        if self._loop is None:
            with self._engine.begin() as conn:
                return fn(conn)

        async def run() -> Any:
            async with self._async_engine.begin() as conn:
                return await conn.run_sync(fn)

        return self._loop.run_until_complete(run())

    def write(self, events: Sequence[Event]) -> None:
        erasures = {e.id: erased_profiles(e) for e in events if e.routing_key == ERASED}
        # mapping errors surface before any SQL
        rows = {e.id: self._row(e) for e in events if e.id not in erasures}
        now = dt.datetime.now(dt.UTC)

        def work(conn: Connection) -> None:
            ids = [e.id for e in events]
            seen = set(conn.execute(select(self.handled.c.event_id).where(self.handled.c.event_id.in_(ids))).scalars())
            fresh = [i for i in ids if i not in seen]
            if not fresh:
                return
            if stored := [rows[i] for i in fresh if i in rows]:
                self._store(conn, stored)
            for i in fresh:  # after the rows: an erasure wins over an update in the same batch
                if i in erasures:
                    self._erase(conn, erasures[i])
            conn.execute(insert(self.handled), [{"event_id": i, "connector": self.connector, "handled_at": now}
                                                for i in fresh])

        self._transaction(work)

    def _erase(self, conn: Connection, profile_ids: list[str]) -> None:
        table, column = self.table, self.config.profile_column
        assert table is not None
        if column is None:
            log.warning("erasure not applied: the table has no profile id column", extra={"table": self.config.table})
            return
        match = table.c[column].in_(profile_ids)
        if self.config.erasure.action == "delete":
            gone = conn.execute(delete(table).where(match)).rowcount
        else:
            keep = {*self.config.key, column}
            cleared = self.config.erasure.columns or [c for c in self.config.columns if c not in keep]
            gone = conn.execute(update(table).where(match).values({c: None for c in cleared})).rowcount
        log.info("erasure applied", extra={"table": self.config.table, "action": self.config.erasure.action,
                                           "row_count": gone})

    def _store(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        table = self.table
        assert table is not None
        if self.config.mode == "insert":
            conn.execute(insert(table), rows)
            return
        # Later events win: collapse a batch to the last row per key before upserting.
        by_key = {tuple(r[k] for k in self.config.key): r for r in rows}
        rows = list(by_key.values())
        dialect = conn.dialect.name
        if dialect in ("postgresql", "sqlite"):
            if dialect == "postgresql":
                from sqlalchemy.dialects.postgresql import insert as upsert
            else:
                from sqlalchemy.dialects.sqlite import insert as upsert
            stmt = upsert(table)
            others = {c: stmt.excluded[c] for c in self.config.columns if c not in self.config.key}
            stmt = (stmt.on_conflict_do_update(index_elements=self.config.key, set_=others) if others
                    else stmt.on_conflict_do_nothing(index_elements=self.config.key))
            conn.execute(stmt, rows)
            return
        for row in rows:  # any other database: update, else insert
            where = [table.c[k] == row[k] for k in self.config.key]
            if conn.execute(update(table).where(*where).values(**row)).rowcount == 0:
                conn.execute(insert(table).values(**row))

    def _row(self, event: Event) -> dict[str, Any]:
        table = self.table
        assert table is not None
        row = {}
        for column, path in self.config.columns.items():
            value = event.routing_key if path == "$routing_key" else lookup(event.document, path)
            row[column] = _coerce(table.c[column], value)
        for k in self.config.key:
            if row[k] is None:
                raise PermanentError(f"key column {k!r} has no value ({self.config.columns[k]} is missing)")
        return row

    def is_transient(self, exc: BaseException) -> bool:
        return isinstance(exc, OperationalError | InterfaceError | DisconnectionError | OSError | TimeoutError) or (
            isinstance(exc, DBAPIError) and exc.connection_invalidated)

    def idle(self) -> None:
        pass

    def close(self) -> None:
        if self._loop is None:
            self._engine.dispose()
        else:
            self._loop.run_until_complete(self._async_engine.dispose())
            self._loop.close()


def _coerce(column: Column, value: Any) -> Any:
    """JSON values into what the column's type takes (drivers like asyncpg are strict)."""
    if value is None:
        return None
    try:
        kind = column.type.python_type
    except NotImplementedError:
        kind = object
    try:
        if isinstance(value, dict | list):
            return value if kind in (dict, list) else json.dumps(value, ensure_ascii=False)
        if kind is dt.datetime and isinstance(value, str):
            return dt.datetime.fromisoformat(value)
        if kind is dt.date and isinstance(value, str):
            return dt.date.fromisoformat(value[:10])
        if kind is str and not isinstance(value, str):
            return str(value)
        if kind in (int, float, Decimal) and not isinstance(value, bool):
            return kind(value)
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise PermanentError(f"column {column.name}: cannot take {type(value).__name__} value: {exc}") from None
    return value


def erased_profiles(event: Event) -> list[str]:
    """The profile ids a profile.erased event covers: the profile and those merged into it."""
    data = event.document.get("data") or {}
    ids = [data.get("profile_id"), *(data.get("merged_ids") or [])]
    found = [str(i) for i in ids if i]
    if not found:
        raise PermanentError("profile.erased without data.profile_id")
    return found


def make_sql_target(config: WorkerConfig) -> SqlTarget:
    return SqlTarget(parse(SqlTargetConfig, config.target, "sql target"), config.name)
