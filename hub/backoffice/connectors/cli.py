"""`omnihub worker sql|file|http --config FILE`."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from hub.backoffice.connectors.config import WorkerConfig, load_worker_config
from hub.backoffice.connectors.worker import Target, run_worker
from hub.logs import configure_logging


def _factory(kind: str) -> Callable[[WorkerConfig], Target]:
    # Imported per kind: the sql worker does not need aiohttp, the http one no SQL driver.
    match kind:
        case "sql":
            from hub.backoffice.connectors.sql import make_sql_target

            return make_sql_target
        case "file":
            from hub.backoffice.connectors.file import make_file_target

            return make_file_target
        case "http":
            from hub.backoffice.connectors.http import make_http_target

            return make_http_target
    raise AssertionError(kind)


def cmd_worker(args: argparse.Namespace) -> int:
    if not args.config:
        raise SystemExit("omnihub worker: --config FILE is required")
    config = load_worker_config(args.config)
    configure_logging(args.log_level)
    return run_worker(config, _factory(args.kind))


def add_command(sub: argparse._SubParsersAction) -> None:
    worker = sub.add_parser("worker", help="run a connector worker: events from RabbitMQ to a legacy target")
    worker.add_argument("kind", choices=["sql", "file", "http"])
    worker.add_argument("--config", default=argparse.SUPPRESS, help="the worker's YAML file (see README)")
    worker.add_argument("--log-level", default="INFO")
    worker.set_defaults(func=cmd_worker)
