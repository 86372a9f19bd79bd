"""`omnihub import pos FILE`: a file of POS transactions through the real ingest pipeline.

One transaction per CSV row or JSON line, each mapped exactly as the POS webhook maps its body
(adapters.pos) and committed by the same pipeline (rules, routing, profiles, RFM, outbox events),
so importing a file twice, or a receipt that already came in by webhook, adds nothing: the
dedupe key is `<store>:<receipt>` on both paths. A bad row is reported with its line number and
field and skipped; the rest of the file goes on. Events wait in the outbox for the relay of a
running hub (it polls for rows other processes wrote).

CSV columns are the webhook's fields (store, register, receipt, time, total, currency, refund,
original_receipt), the customer's flattened (loyalty_id, phone, email, customer_name), and `items`
as a JSON array; an empty cell is an absent value. JSON lines are the webhook's bodies.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import difflib
import io
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from adapters.pos import PosAdapter, PosConfig, PosMapping, PosTransaction, error_fields
from adapters.registry import AdapterConfigError, available, validate_config
from hub.automation.live import LiveRules
from hub.automation.runtime import load_rules
from hub.ingest.pipeline import Pipeline
from hub.ingest.rules_step import RulesStep
from hub.ingest.setup import ingest_pipeline
from hub.logs import configure_logging
from hub.progress import Progress
from hub.settings import Settings, load_settings
from hub.storage.engine import create_engine
from hub.storage.migrate import upgrade
from schemas import BUILTIN_CHANNELS, CHANNELS_KEY, DEFAULT_REGION_KEY, Interaction, OmnihubError

# CSV column -> the customer field it fills; every other column is a top-level payload field.
CUSTOMER_COLUMNS = {"loyalty_id": "loyalty_id", "phone": "phone", "email": "email", "customer_name": "name"}
TOP_COLUMNS = tuple((f.alias or name) for name, f in PosTransaction.model_fields.items() if name != "customer")
# Transactions in flight at once: enough to fill the pipeline's group commits.
WINDOW = 1000


class ImportFileError(OmnihubError):
    """The file as a whole cannot be read (unknown format, unknown CSV column): nothing imported."""


@dataclass
class Problem:
    line: int
    field: str
    message: str


@dataclass
class ImportReport:
    file: str
    imported: int = 0
    repeats: int = 0
    rejected: list[Problem] = field(default_factory=list)  # bad rows: fix them and import again
    failed: list[Problem] = field(default_factory=list)  # good rows the hub could not store


def mapping_for(settings: Settings) -> PosMapping:
    """The POS mapping with `adapters.pos` settings where there are any (the secret is not needed)."""
    context = {DEFAULT_REGION_KEY: settings.default_region, CHANNELS_KEY: BUILTIN_CHANNELS}
    raw = dict(settings.adapters.get("pos") or {})
    raw.pop("enabled", None)
    if not raw:
        return PosMapping(validation_context=context)
    config = validate_config(PosAdapter, raw)
    assert isinstance(config, PosConfig)
    return PosMapping(config.default_currency, config.timezone, context)


def rows(path: Path, fmt: str, encoding: str) -> Iterator[tuple[int, Any]]:
    """(line number, raw transaction or a Problem) for each row; raises ImportFileError for the file."""
    if fmt == "csv":
        yield from _csv_rows(path, encoding)
    else:
        yield from _json_lines(path, encoding)


def _json_lines(path: Path, encoding: str) -> Iterator[tuple[int, Any]]:
    with path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                text = line.decode(encoding)
            except UnicodeDecodeError as exc:
                yield number, Problem(number, "line", f"not {encoding} text ({exc.reason}); see --encoding")
                continue
            if text.strip():
                yield number, text


def _csv_rows(path: Path, encoding: str) -> Iterator[tuple[int, Any]]:
    # surrogateescape: an undecodable byte spoils its row only, reported below, not the whole file.
    with path.open(encoding=encoding, errors="surrogateescape", newline="") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        known = (*TOP_COLUMNS, *CUSTOMER_COLUMNS)
        for column in header:
            if column not in known:
                hint = difflib.get_close_matches(column, known, n=1)
                raise ImportFileError(f"{path}: unknown CSV column {column!r}"
                                      + (f" (did you mean {hint[0]!r}?)" if hint else "")
                                      + f"; columns: {', '.join(known)}")
        if not header:
            raise ImportFileError(f"{path}: no CSV header row")
        last = reader.line_num
        for cells in reader:
            number, last = last + 1, reader.line_num
            if not any(c.strip() for c in cells):
                continue
            yield number, _csv_record(number, header, cells, encoding)


def _csv_record(number: int, header: list[str], cells: list[str], encoding: str) -> dict[str, Any] | Problem:
    if len(cells) > len(header):
        return Problem(number, "line", f"{len(cells)} cells for {len(header)} columns")
    record: dict[str, Any] = {}
    customer: dict[str, str] = {}
    for column, cell in zip(header, cells, strict=False):
        try:
            cell.encode("utf-8")
        except UnicodeEncodeError:
            return Problem(number, column, f"not {encoding} text; see --encoding")
        if not cell.strip():
            continue
        if column in CUSTOMER_COLUMNS:
            customer[CUSTOMER_COLUMNS[column]] = cell
        elif column == "items":
            try:
                record["items"] = json.loads(cell)
            except ValueError as exc:
                return Problem(number, "items", f"not a JSON array: {exc}")
        else:
            record[column] = cell
    if customer:
        record["customer"] = customer
    return record


def _csv_field(name: str) -> str:
    """A payload field as the CSV column that holds it (customer.phone -> phone)."""
    if name.startswith("customer."):
        inner = name.removeprefix("customer.")
        return next((col for col, f in CUSTOMER_COLUMNS.items() if f == inner), name)
    return name


async def import_file(settings: Settings, path: Path, fmt: str, encoding: str = "utf-8-sig",
                      progress: Callable[[int, int | None], None] = lambda done, total: None) -> ImportReport:
    """Every row through the pipeline; `progress(line, lines)` after each window of rows is stored."""
    mapping = mapping_for(settings)
    report = ImportReport(file=str(path))
    lines = _count_lines(path)
    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
        pipeline = await _pipeline(settings, engine)
        try:
            window: list[tuple[int, asyncio.Task[Any]]] = []
            for number, raw in rows(path, fmt, encoding):
                interaction = _map(mapping, number, raw, fmt, report)
                if interaction is None:
                    continue
                window.append((number, asyncio.ensure_future(pipeline.ingest(interaction))))
                if len(window) >= WINDOW:
                    await _settle(window, report)
                    progress(number, lines)
            await _settle(window, report)
            progress(lines, lines)
        finally:
            await pipeline.stop()
    finally:
        await engine.dispose()
    return report


def _count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for _ in f)  # the line numbers rows() gives, a last line without its newline included


def _map(mapping: PosMapping, number: int, raw: Any, fmt: str, report: ImportReport) -> Interaction | None:
    if isinstance(raw, Problem):
        report.rejected.append(raw)
        return None
    try:
        return mapping.interaction(mapping.parse(raw))
    except ValidationError as exc:
        for name, message in error_fields(exc):
            name = "line" if name == "body" else name
            report.rejected.append(Problem(number, _csv_field(name) if fmt == "csv" else name, message))
        return None


async def _settle(window: list[tuple[int, asyncio.Task[Any]]], report: ImportReport) -> None:
    for number, task in window:
        try:
            result = await task
        except Exception as exc:  # noqa: BLE001 - reported per row; the rest of the file goes on
            report.failed.append(Problem(number, "line", f"not stored: {type(exc).__name__}: {exc}"))
            continue
        if result.created:
            report.imported += 1
        else:
            report.repeats += 1
    window.clear()


async def _pipeline(settings: Settings, engine: Any) -> Pipeline:
    """The ingest pipeline as create_app builds it (hub/app.py: rules, consent, routing steps)."""
    live = LiveRules()
    if settings.rules_dir is not None:
        installed = available()
        channels = BUILTIN_CHANNELS | {installed[n].channel for n in settings.adapters if n in installed}
        live.swap(await load_rules(settings.rules_dir, channels, engine, datetime.now(UTC)))
    pipeline = ingest_pipeline(settings, engine, RulesStep(live))
    await pipeline.start()
    return pipeline


# --- the command ---------------------------------------------------------------------------------
def _format(path: Path, given: str | None) -> str:
    if given:
        return given
    match path.suffix.lower():
        case ".csv":
            return "csv"
        case ".jsonl" | ".ndjson" | ".json":
            return "jsonl"
    raise ImportFileError(f"{path}: cannot tell the format from the name; give --format csv or --format jsonl")


def cmd_import_pos(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        if not path.is_file():
            raise ImportFileError(f"{path}: no such file")
        fmt = _format(path, args.format)
        settings = load_settings(args.config)
        # JSON on stderr with phone numbers and addresses masked: a row's failure may quote its values.
        configure_logging(settings.log_level)
        with Progress(f"importing {path.name}", "line", quiet=args.json) as progress:
            report = asyncio.run(import_file(settings, path, fmt, args.encoding, progress))
    except (ImportFileError, AdapterConfigError, LookupError) as exc:  # LookupError: an unknown --encoding
        print(f"omnihub import pos: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(asdict(report), indent=2, ensure_ascii=False))
    else:
        out = io.StringIO()
        for problem in report.rejected:
            print(f"line {problem.line}: {problem.field}: {problem.message}", file=out)
        for problem in report.failed:
            print(f"line {problem.line}: {problem.message}", file=out)
        lines = {p.line for p in report.rejected}
        print(f"{report.file}: {report.imported} imported, {report.repeats} repeats, {len(lines)} rejected"
              + (f", {len(report.failed)} failed" if report.failed else ""), file=out)
        sys.stdout.write(out.getvalue())
    return 1 if report.rejected or report.failed else 0


def add_command(sub: Any) -> None:
    imp = sub.add_parser("import", help="import records through the ingest pipeline")
    kinds = imp.add_subparsers(dest="import_kind", required=True, metavar="KIND")
    pos = kinds.add_parser("pos", help="POS transactions from a CSV or JSON-lines file (one per row or line)")
    pos.add_argument("file", metavar="FILE")
    pos.add_argument("--format", choices=["csv", "jsonl"], help="default: from the file name (.csv, .jsonl)")
    pos.add_argument("--encoding", default="utf-8-sig", help="the file's text encoding (e.g. cp949); default utf-8")
    pos.add_argument("--json", action="store_true", help="print the report as JSON")
    pos.add_argument("--config", default=argparse.SUPPRESS, help="YAML config file")
    pos.set_defaults(func=cmd_import_pos)
