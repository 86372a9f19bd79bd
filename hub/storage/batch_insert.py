"""Inserting a group's rows in as few statements as each backend allows (hub.storage.batch's writes)."""

from __future__ import annotations

import functools
import itertools
import operator
import re
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Column, Connection, Dialect, Table, TextClause, Uuid, insert, text


def execute_qmark(conn: Connection, sql: str, params: tuple[Any, ...]) -> Any:
    """Run prepared qmark SQL; on the stdlib driver (the ingest writer) straight on its connection.

    exec_driver_sql's execution context cost more than the driver's own work for a 30-row INSERT
    (22 us against 8.5 us), and these statements need none of it (no result types, no events). The
    same statements also run through aiosqlite (run_sync), whose driver connection is not sqlite3's.
    """
    driver = conn.connection.driver_connection
    if isinstance(driver, sqlite3.Connection):
        return driver.execute(sql, params)
    return conn.exec_driver_sql(sql, params)


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows that all have the same keys.

    On a qmark driver (the stdlib sqlite3 of the embedded default) the statement is compiled and
    the columns' bind processors resolved once per table and key set, and the driver gets plain
    tuples: SQLAlchemy's generic per-row parameter processing was a quarter of the writer's time.
    """
    if not rows:
        return
    dialect = conn.dialect
    if dialect.paramstyle != "qmark":
        statement, arrays = _unnest_insert(table, tuple(rows[0]), dialect)
        conn.execute(statement, arrays(rows)) if statement is not None else conn.execute(insert(table), list(rows))
        return
    keys = tuple(rows[0])
    _, convert = _compiled_insert(table, keys, dialect)
    values = convert(rows)
    # One multi-row INSERT per chunk, not executemany: the stdlib driver releases and retakes the
    # GIL around every row's step, and on a core shared with the event loop each retake waits for
    # the loop to let go of it. A few statements per group commit instead of a few hundred.
    per_chunk = max(1, _MAX_VARIABLES // len(keys))
    for start in range(0, len(values), per_chunk):
        chunk = values[start:start + per_chunk]
        execute_qmark(conn, _multi_row_sql(table, keys, dialect, len(chunk)), tuple(itertools.chain.from_iterable(chunk)))


@functools.lru_cache(maxsize=64)
def _unnest_insert(table: Table, keys: tuple[str, ...],
                   dialect: Dialect) -> tuple[TextClause | None, Callable[[Sequence[dict[str, Any]]], dict[str, list]]]:
    """PostgreSQL: INSERT ... SELECT FROM unnest(one array per column), one execution for all the rows.

    An executemany runs the INSERT once per row, each execution planned anew (plan_cache_mode =
    force_custom_plan, hub.storage.engine) and started on its own: ~37 us of the server's CPU per
    row, against ~17 us this way for 64 rows (and ~25 us per row before, with cached plans). A
    column with a Python-side default keeps the executemany, which fills it in (None here).
    """
    columns = [table.c[key] for key in keys]
    if any(c.default is not None for c in table.c if c.name not in keys):
        return None, lambda rows: {}
    name = dialect.identifier_preparer.format_column
    # The type without its length: an explicit CAST to VARCHAR(32) would cut a longer value short,
    # where the INSERT's own assignment refuses it.
    arrays = ", ".join(f"CAST(:c{i} AS {re.sub(r'[(].*?[)]', '', c.type.compile(dialect=dialect))}[])"
                       for i, c in enumerate(columns))
    statement = text(f"INSERT INTO {dialect.identifier_preparer.format_table(table)} "
                     f"({', '.join(name(c) for c in columns)}) SELECT * FROM unnest({arrays})")
    processors = [c.type.dialect_impl(dialect).bind_processor(dialect) for c in columns]

    def to_arrays(rows: Sequence[dict[str, Any]]) -> dict[str, list]:
        values: dict[str, list] = {}
        for i, (key, process) in enumerate(zip(keys, processors, strict=True)):
            column = [row[key] for row in rows]
            values[f"c{i}"] = column if process is None else [None if v is None else process(v) for v in column]
        return values

    return statement, to_arrays


# SQLite before 3.32 allows 999 bound variables per statement; stay under that everywhere.
_MAX_VARIABLES = 999


@functools.lru_cache(maxsize=512)
def _multi_row_sql(table: Table, keys: tuple[str, ...], dialect: Dialect, rows: int) -> str:
    single = _compiled_insert(table, keys, dialect)[0]
    head, _, one = single.partition(" VALUES ")
    return f"{head} VALUES {', '.join([one] * rows)}"


@functools.lru_cache(maxsize=64)
def _compiled_insert(table: Table, keys: tuple[str, ...], dialect: Dialect) -> tuple[str, Callable[..., list]]:
    columns = [table.c[key] for key in keys]
    sql = "INSERT INTO {} ({}) VALUES ({})".format(
        dialect.identifier_preparer.format_table(table),
        ", ".join(dialect.identifier_preparer.format_column(c) for c in columns),
        ", ".join("?" for _ in columns),
    )
    getter = operator.itemgetter(*keys)
    # The dialect's implementation of each type: a TypeDecorator's own bind_processor skips the
    # dialect's formatting, and the stdlib adapter then wrote '10:00:00' where every other statement
    # binds '10:00:00.000000', so range comparisons on SQLite went wrong at whole seconds.
    processed = [
        (i, _hex if _is_text_uuid(c, dialect) else process, c.nullable)
        for i, c in enumerate(columns) if (process := c.type.dialect_impl(dialect).bind_processor(dialect))
    ]

    def convert(rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
        # Column by column: one map per converted column, zip for the rest; NULLs are passed
        # through unconverted in the columns that may hold them.
        values = [getter(row) for row in rows] if len(keys) > 1 else [(getter(row),) for row in rows]
        if not processed:
            return values
        columns = list(zip(*values))
        for i, process, may_be_null in processed:
            column = columns[i]
            columns[i] = ([None if value is None else process(value) for value in column] if may_be_null
                          else list(map(process, column)))
        return list(zip(*columns))

    return sql, convert


# What SQLAlchemy's Uuid binds on a backend without a native UUID type (value.hex), at C speed.
_hex = operator.attrgetter("hex")


def _is_text_uuid(column: Column, dialect: Dialect) -> bool:
    kind = column.type
    return isinstance(kind, Uuid) and kind.as_uuid and not (dialect.supports_native_uuid and kind.native_uuid)
