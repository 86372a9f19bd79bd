"""The `omnihub` command: a table of the commands each capability registers, and the hub's own."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import routing.cli
import rules
from hub.access import cli as access_cli
from hub.automation import cli as automation_cli
from hub.backoffice.connectors import cli as connectors_cli
from hub.broker import cli as broker_cli
from hub.demo import command as demo_command
from hub.ingest import pos_import
from hub.settings import ConfigError, Settings, load_settings
from hub.storage import cli as storage_cli
from schemas.export import SCHEMA_MODELS, json_schema


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {k: v for k in ("host", "port") if (v := getattr(args, k, None)) is not None}
    return load_settings(args.config, **overrides)


def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from hub import keys
    from hub.app import create_app
    from hub.logs import AccessLog, configure_logging

    settings = _settings(args)
    configure_logging(settings.log_level)
    app = create_app(settings)
    app[keys.RELOAD_ON_SIGHUP] = True
    app.on_startup.append(_settle_gc)  # after every cleanup context has started
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        access_log=web.access_logger if settings.access_log else None,
        access_log_class=AccessLog,
        print=lambda msg: print(msg, file=sys.stderr),
    )
    return 0


async def _settle_gc(_app: object) -> None:
    """Tune the cyclic GC for a long-running hub, once everything it loads at start is loaded.

    Measured under bench/ingest.py: at the default gen-0 threshold (700) a collection ran every
    ~30 requests and traversed whatever the in-flight requests held, and each full collection walked
    the ~130,000 objects of the imported libraries: 3-7% of the hub's time. Freezing those and
    collecting the young generation every 10,000 net allocations leaves almost nothing to collect.
    Reference counting still frees nearly everything; only cycles wait a little longer.
    """
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000)


def cmd_config(args: argparse.Namespace) -> int:
    print(json.dumps(_settings(args).masked(), indent=2))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    names = [args.name] if args.name else list(SCHEMA_MODELS)
    schemas = {name: json_schema(name) for name in names}
    print(json.dumps(schemas[args.name] if args.name else schemas, indent=2))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """The hub's own: serve, config, schema."""
    serve = sub.add_parser("serve", help="run the hub (HTTP API, adapters, outbox relay)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--config", default=argparse.SUPPRESS, help="YAML config file")
    serve.set_defaults(func=cmd_serve)

    config = sub.add_parser("config", help="print the effective configuration, secrets masked")
    config.add_argument("--config", default=argparse.SUPPRESS, help="YAML config file")
    config.set_defaults(func=cmd_config)

    schema = sub.add_parser("schema", help="print the JSON Schemas of the interaction and the event envelope")
    schema.add_argument("name", nargs="?", choices=sorted(SCHEMA_MODELS))
    schema.set_defaults(func=cmd_schema)


# Each capability registers its own commands; the order is the order `omnihub --help` lists them.
COMMANDS = (
    add_commands,                  # serve, config, schema
    demo_command.add_command,      # demo
    storage_cli.add_command,       # migrate
    automation_cli.add_commands,   # rules check|test|replay
    routing.cli.add_commands,      # simulate, staffing
    pos_import.add_command,        # import pos
    connectors_cli.add_command,    # worker sql|file|http
    broker_cli.add_commands,       # dlq, asyncapi
    access_cli.add_commands,       # users, keys
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omnihub", description="Omnichannel contact-center integration hub")
    parser.add_argument("--config", help="YAML config file (OMNIHUB_* environment variables override it)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for register in COMMANDS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, rules.RulesError) as exc:  # a bad rules_dir refuses to start, listing every issue
        print(f"omnihub: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
