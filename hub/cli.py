"""The `omnihub` command: a table of the commands each capability registers, and the hub's own."""

from __future__ import annotations

import argparse
import errno
import json
import logging
import socket
import sys
from collections.abc import Sequence
from urllib.parse import urlsplit

import routing.cli
import rules
from adapters.registry import AdapterConfigError
from hub.access import cli as access_cli
from hub.automation import cli as automation_cli
from hub.backoffice.connectors import cli as connectors_cli
from hub.broker import cli as broker_cli
from hub.demo import command as demo_command
from hub.ingest import pos_import
from hub.settings import ConfigError, Settings, check_adapters, load_settings, unknown_environment
from hub.storage import cli as storage_cli
from schemas.export import SCHEMA_MODELS, json_schema

log = logging.getLogger("omnihub.config")


def _settings(args: argparse.Namespace) -> Settings:
    """The settings, adapters checked too, so a mistake anywhere is one line before anything starts."""
    overrides = {k: v for k in ("host", "port") if (v := getattr(args, k, None)) is not None}
    settings = load_settings(args.config, **overrides)
    check_adapters(settings)
    return settings


def _warn_about_environment() -> None:
    for warning in unknown_environment():
        log.warning(warning)


def cmd_serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from hub import keys
    from hub.app import create_app
    from hub.logs import AccessLog, configure_logging

    settings = _settings(args)
    configure_logging(settings.log_level)
    _warn_about_environment()
    try:
        sock = _bound_socket(settings.host, settings.port)
    except OSError as exc:
        print(f"omnihub serve: cannot listen on port {settings.port} of {settings.host}: "
              f"{exc.strerror or exc}; is another hub running? choose one with --port", file=sys.stderr)
        return 2
    port = sock.getsockname()[1]
    if warning := public_port_mismatch(settings.public_base_url, port):
        log.warning(warning, extra={"public_base_url": settings.public_base_url, "listening_port": port})
    app = create_app(settings)
    app[keys.RELOAD_ON_SIGHUP] = True
    app.on_startup.append(_settle_gc)  # after every cleanup context has started
    try:
        web.run_app(
            app,
            sock=sock,
            access_log=web.access_logger if settings.access_log else None,
            access_log_class=AccessLog,
            print=lambda msg: print(msg, file=sys.stderr),
        )
    except OSError as exc:
        if exc.errno not in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            raise
        print(f"omnihub serve: {exc}", file=sys.stderr)  # an adapter's listener (the SMTP port) was taken
        return 2
    return 0


def _bound_socket(host: str, port: int) -> socket.socket:
    """Bound, not yet listening: a busy port is found before anything starts (and refused as a line,
    not a traceback), while connections are still refused until the hub is ready to answer them."""
    family, kind, proto, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart need not wait out TIME_WAIT
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def public_port_mismatch(public_base_url: str, port: int) -> str | None:
    """Twilio signs the URL it was given (public_base_url), and the hub checks signatures against
    that: a public_base_url naming one port while the hub listens on another (`serve --port 9000`
    with the default http://127.0.0.1:8080) refuses every webhook with 403. A URL without a port
    (https://hub.example.com) is a proxy's or a tunnel's, which may forward to any port."""
    try:
        public_port = urlsplit(public_base_url).port
    except ValueError:
        return None
    if public_port is None or public_port == port:
        return None
    return (f"public_base_url names port {public_port} but the hub listens on {port}: provider signatures "
            f"(Twilio) are checked against public_base_url, so their webhooks will be refused with 403 unless "
            f"something forwards port {public_port} here; set OMNIHUB_PUBLIC_BASE_URL to the URL providers call")


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
    settings = _settings(args)
    _warn_about_environment()
    if args.check:
        adapters = ", ".join(sorted(settings.adapters)) or "none"
        print(f"configuration ok (adapters: {adapters})")
    else:
        print(json.dumps(settings.masked(), indent=2))
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

    config = sub.add_parser("config", help="check, then print the effective configuration, secrets masked")
    config.add_argument("--config", default=argparse.SUPPRESS, help="YAML config file")
    config.add_argument("--check", action="store_true",
                        help="only check it (adapters included): one line per mistake, exit status 2")
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
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in COMMANDS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # bare `omnihub`: what it can do, rather than argparse's complaint
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except (ConfigError, rules.RulesError) as exc:  # a bad rules_dir refuses to start, listing every issue
        print(f"omnihub: {exc}", file=sys.stderr)
        return 2
    except AdapterConfigError as exc:  # an adapter refusing its config when the app mounts it
        print(f"omnihub: invalid configuration: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
