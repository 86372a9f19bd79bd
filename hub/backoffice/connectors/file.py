"""File target: fixed-width or CSV records in a drop folder, for mainframe-style batch pickup.

```yaml
target:
  dir: /data/drop/erp            # where finished files appear, each complete (temp file + rename)
  work_dir: null                 # the open file and the ledger; default <dir>/.omnihub-work, which
                                 # must be on the same file system as `dir` (rename is atomic there)
  format: fixed                  # or csv
  encoding: utf-8                # e.g. cp949 or cp037 (EBCDIC) for the mainframe
  fields:
    - {name: customer_id, source: data.profile_id, width: 36}
    - {name: amount, source: data.total, width: 12, align: right, pad: "0"}
  header: false                  # fixed: an H record with the file's sequence number; csv: column names
  trailer: true                  # T + record count (fixed), TRAILER,<count> (csv): the control record
  prefix: omnihub
  extension: dat
  rotate_records: 10000          # close the file after this many records,
  rotate_bytes: 10000000         # or this many bytes,
  rotate_seconds: 60             # or when it has been open this long and the queue is idle
```

Exactly once across crashes: a SQLite ledger in `work_dir` holds the ids of the events in every
file and how many bytes of the open file are committed. A batch is appended to the open file and
fsynced, then its ids and the new length are committed to the ledger, then the batch is acked.
At start the open file is cut back to the committed length (records written after the last ledger
commit were never acked and come again), and a redelivered event whose id is in the ledger is
skipped. Rotation appends the trailer, renames the file into `dir`, fsyncs the folder, then marks
it sealed in the ledger; a crash in between is recognised by the final name already existing.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from hub.backoffice.connectors import records
from hub.backoffice.connectors.config import WorkerConfig, parse
from hub.backoffice.connectors.records import FieldSpec, RecordError
from hub.backoffice.connectors.worker import Event, PermanentError, lookup

log = logging.getLogger("omnihub.worker.file")


class FileTargetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    dir: Path
    work_dir: Path | None = None
    format: Literal["fixed", "csv"] = "fixed"
    encoding: str = "utf-8"
    delimiter: str = Field(",", min_length=1, max_length=1)
    fields: list[FieldSpec] = Field(min_length=1)
    header: bool = False
    trailer: bool = True
    prefix: str = Field("omnihub", pattern=r"^[A-Za-z0-9_.-]+$")
    extension: str = Field("dat", pattern=r"^[A-Za-z0-9]+$")
    newline: Literal["\n", "\r\n"] = "\n"
    rotate_records: int = Field(10_000, ge=1)
    rotate_bytes: int = Field(10_000_000, ge=1)
    rotate_seconds: float = Field(60.0, gt=0)
    ledger_retention_days: float = Field(7.0, gt=0)  # ids of sealed files are forgotten after this


_SCHEMA = """
CREATE TABLE IF NOT EXISTS state (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL,
  final_name TEXT, committed_bytes INTEGER, records INTEGER, opened_at REAL);
INSERT OR IGNORE INTO state (id, seq) VALUES (1, 0);
CREATE TABLE IF NOT EXISTS handled (event_id TEXT PRIMARY KEY, file TEXT NOT NULL, at REAL NOT NULL);
"""


class FileTarget:
    def __init__(self, config: FileTargetConfig) -> None:
        self.config = config
        self.dir = config.dir
        self.work = config.work_dir or config.dir / ".omnihub-work"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)
        self.record_width = sum(f.width for f in config.fields)
        self.ledger = sqlite3.connect(self.work / "ledger.db", isolation_level=None)
        self.ledger.execute("PRAGMA journal_mode=WAL")
        self.ledger.execute("PRAGMA synchronous=FULL")
        self.ledger.executescript(_SCHEMA)
        self._file = None
        self._recover()

    # --- state ---------------------------------------------------------------------------------

    def _state(self) -> tuple[int, str | None, int, int, float]:
        row = self.ledger.execute("SELECT seq, final_name, committed_bytes, records, opened_at FROM state").fetchone()
        return row[0], row[1], row[2] or 0, row[3] or 0, row[4] or 0.0

    def _part(self, final_name: str) -> Path:
        return self.work / f"{final_name}.part"

    def _recover(self) -> None:
        _, name, committed, _, _ = self._state()
        # A part the ledger does not name was opened by a worker killed before its ledger update:
        # it holds a header and nothing committed, so it goes (the next open takes its number).
        for orphan in self.work.glob("*.part"):
            if name is None or orphan.name != self._part(name).name:
                log.warning("unfinished file with no committed records removed", extra={"file": orphan.name})
                orphan.unlink()
        if name is None:
            return
        if (self.dir / name).exists():  # renamed before the crash; only the ledger lagged
            self._sealed()
            return
        part = self._part(name)
        if not part.exists():
            log.error("open file is missing; its records are lost to the drop folder", extra={"file": name})
            self._sealed()
            return
        with open(part, "r+b") as f:  # drop what was written after the last ledger commit
            f.truncate(committed)
            os.fsync(f.fileno())
        self._file = open(part, "ab")  # noqa: SIM115 - kept open between batches

    def _sealed(self) -> None:
        self.ledger.execute("UPDATE state SET final_name = NULL, committed_bytes = NULL, records = NULL")

    # --- writing -------------------------------------------------------------------------------

    def _format(self, event: Event) -> bytes:
        values = [records.text(event.routing_key if f.source == "$routing_key" else lookup(event.document, f.source))
                  for f in self.config.fields]
        try:
            if self.config.format == "csv":
                line = records.csv_record(values, self.config.delimiter, self.config.encoding)
                return line[:-1] + self.config.newline.encode()
            return records.fixed_width(self.config.fields, values, self.config.encoding) + self.config.newline.encode()
        except RecordError as exc:
            raise PermanentError(str(exc)) from None

    def write(self, events: Sequence[Event]) -> None:
        ids = [e.id for e in events]
        marks = ",".join("?" * len(ids))
        seen = {r[0] for r in self.ledger.execute(f"SELECT event_id FROM handled WHERE event_id IN ({marks})", ids)}
        fresh = [e for e in events if e.id not in seen]
        if not fresh:
            return
        data = b"".join(self._format(e) for e in fresh)  # a bad record fails the batch before any write
        if self._file is None:
            self._open()
        _, name, committed, count, _ = self._state()
        assert self._file is not None and name is not None
        try:
            self._file.write(data)
            self._file.flush()
            os.fsync(self._file.fileno())
            now = time.time()
            with self.ledger:
                self.ledger.execute("BEGIN IMMEDIATE")
                self.ledger.executemany("INSERT INTO handled (event_id, file, at) VALUES (?, ?, ?)",
                                        [(e.id, name, now) for e in fresh])
                self.ledger.execute("UPDATE state SET committed_bytes = ?, records = ?",
                                    (committed + len(data), count + len(fresh)))
        except BaseException:
            self._cut_back(committed)  # a retry must append after the committed records, not after these
            raise
        if count + len(fresh) >= self.config.rotate_records or committed + len(data) >= self.config.rotate_bytes:
            self.rotate()

    def _open(self) -> None:
        seq = self._state()[0] + 1
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
        name = f"{self.config.prefix}_{stamp}_{seq:06d}.{self.config.extension}"
        head = self._header(seq)
        part = self._part(name)
        with open(part, "wb") as f:
            f.write(head)
            f.flush()
            os.fsync(f.fileno())
        self.ledger.execute("UPDATE state SET seq = ?, final_name = ?, committed_bytes = ?, records = 0, opened_at = ?",
                            (seq, name, len(head), time.time()))
        self._file = open(part, "ab")  # noqa: SIM115 - kept open between batches

    def _header(self, seq: int) -> bytes:
        if not self.config.header:
            return b""
        nl = self.config.newline.encode()
        if self.config.format == "csv":
            return records.csv_record([f.name for f in self.config.fields], self.config.delimiter, "ascii")[:-1] + nl
        return records.control_record("H", seq, self.record_width) + nl

    def _trailer(self, count: int) -> bytes:
        if not self.config.trailer:
            return b""
        nl = self.config.newline.encode()
        if self.config.format == "csv":
            return f"TRAILER{self.config.delimiter}{count}".encode("ascii") + nl
        return records.control_record("T", count, self.record_width) + nl

    def rotate(self) -> None:
        """Seal the open file: trailer, fsync, rename into the drop folder, fsync the folder."""
        _, name, committed, count, _ = self._state()
        if name is None or self._file is None:
            return
        try:
            self._file.write(self._trailer(count))
            self._file.flush()
            os.fsync(self._file.fileno())
            os.replace(self._part(name), self.dir / name)
        except BaseException:
            self._cut_back(committed)
            raise
        self._file.close()
        self._file = None
        _fsync_dir(self.dir)
        self._sealed()
        cutoff = time.time() - self.config.ledger_retention_days * 86400
        self.ledger.execute("DELETE FROM handled WHERE at < ?", (cutoff,))
        log.info("file sealed", extra={"file": name, "records": count})

    def _cut_back(self, committed: int) -> None:
        try:
            if self._file is not None:
                self._file.truncate(committed)
        except OSError:  # the next start cuts it back from the ledger anyway
            log.exception("cannot cut the open file back to its committed length")

    def idle(self) -> None:
        _, name, _, count, opened_at = self._state()
        if name is not None and count > 0 and time.time() - opened_at >= self.config.rotate_seconds:
            self.rotate()

    def is_transient(self, exc: BaseException) -> bool:
        return isinstance(exc, OSError | sqlite3.OperationalError)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self.ledger.close()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_file_target(config: WorkerConfig) -> FileTarget:
    return FileTarget(parse(FileTargetConfig, config.target, "file target"))
