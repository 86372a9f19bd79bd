"""The `omnihub` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

import routing.cli
import rules.cli
from schemas.export import SCHEMA_MODELS, json_schema

from . import auth_cli, pos_import, rules_replay
from . import asyncapi_cli, dlq_cli  # back-office (issue 7)
from .connectors import cli as connectors_cli  # back-office (issue 7)
from .demo import command as demo_command
from .settings import ConfigError, Settings, load_settings


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {k: v for k in ("host", "port") if (v := getattr(args, k, None)) is not None}
    return load_settings(args.config, **overrides)


def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from . import keys
    from .app import create_app
    from .logs import configure_logging

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


def cmd_migrate(args: argparse.Namespace) -> int:
    from .storage.engine import create_engine
    from .storage.migrate import current_revisions, upgrade

    settings = _settings(args)

    async def run() -> tuple[str, ...]:
        engine = create_engine(settings.database_url)
        try:
            await upgrade(engine)
            return await current_revisions(engine)
        finally:
            await engine.dispose()

    print(f"database at revision {', '.join(asyncio.run(run()))}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    print(json.dumps(_settings(args).masked(), indent=2))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    names = [args.name] if args.name else list(SCHEMA_MODELS)
    schemas = {name: json_schema(name) for name in names}
    print(json.dumps(schemas[args.name] if args.name else schemas, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omnihub", description="Omnichannel contact-center integration hub")
    parser.add_argument("--config", help="YAML config file (OMNIHUB_* environment variables override it)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the hub (HTTP API, adapters, outbox relay)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--config", default=argparse.SUPPRESS, help="YAML config file")
    serve.set_defaults(func=cmd_serve)

    demo_command.add_command(sub)

    migrate = sub.add_parser("migrate", help="apply database migrations (serve also does at start)")
    migrate.add_argument("--config", default=argparse.SUPPRESS, help="YAML config file")
    migrate.set_defaults(func=cmd_migrate)

    config = sub.add_parser("config", help="print the effective configuration, secrets masked")
    config.add_argument("--config", default=argparse.SUPPRESS, help="YAML config file")
    config.set_defaults(func=cmd_config)

    schema = sub.add_parser("schema", help="print the JSON Schemas of the interaction and the event envelope")
    schema.add_argument("name", nargs="?", choices=sorted(SCHEMA_MODELS))
    schema.set_defaults(func=cmd_schema)

    rules_cmd = sub.add_parser("rules", help="check and dry-run rule files")
    rules_sub = rules_cmd.add_subparsers(dest="rules_command", required=True, metavar="COMMAND")
    rules.cli.add_commands(rules_sub)
    rules_replay.add_command(rules_sub)
    routing.cli.add_commands(sub)
    pos_import.add_command(sub)  # POS adapter: `omnihub import pos FILE`
    # --- back-office (issue 7) ---
    connectors_cli.add_command(sub)
    dlq_cli.add_command(sub)
    asyncapi_cli.add_command(sub)
    auth_cli.add_commands(sub)  # `users` and `keys`
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
