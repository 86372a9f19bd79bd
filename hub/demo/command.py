"""`omnihub demo`: the hub, in process, on a fresh SQLite file with the bundled demo configuration;
a scripted customer through its real entry points; a summary read back from its API; then it keeps
serving until Ctrl-C (`--once`: exit after the summary)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys
import tempfile
from pathlib import Path

import aiohttp
from aiohttp import web
from sqlalchemy.engine import make_url

from hub.app import create_app
from hub.demo.readback import read_back
from hub.demo.report import explore, render
from hub.demo.story import tell
from hub.logs import configure_logging
from hub.settings import Settings, load_settings

# Package data (pyproject's [tool.setuptools.package-data]): a settings file and a rules directory.
DEMO_DIR = Path(__file__).parent
log = logging.getLogger("omnihub.demo")


def add_command(sub: argparse._SubParsersAction) -> None:
    demo = sub.add_parser("demo", help="run the hub on a fresh SQLite file and show what it does, end to end")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8080, help="0 picks a free port (default 8080)")
    demo.add_argument("--database-url", help="default: a SQLite file in a new temporary directory")
    demo.add_argument("--once", action="store_true", help="exit after the summary instead of serving on")
    demo.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    if args.config:
        print("omnihub demo runs its bundled configuration; use `omnihub serve --config FILE` for yours",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="omnihub-demo-") as scratch:
        try:
            return asyncio.run(_demo(args, Path(scratch)))
        except KeyboardInterrupt:  # Ctrl-C while serving: the runner was cleaned up on the way out
            return 0


def demo_settings(scratch: Path, *, host: str, port: int, database_url: str | None) -> Settings:
    """The bundled config, the environment over it, and what only this run can know over both."""
    return load_settings(
        DEMO_DIR / "settings.yaml",
        database_url=database_url or f"sqlite+aiosqlite:///{scratch / 'omnihub.db'}",
        blob_dir=str(scratch / "blobs"),
        rules_dir=str(DEMO_DIR / "rules"),
        host=host,
        port=port,
        # Twilio's signature covers the URL it called: the demo calls the port it really bound.
        public_base_url=f"http://{host}:{port}",
    )


async def _demo(args: argparse.Namespace, scratch: Path) -> int:
    try:
        # Bound before the settings are made, so `--port 0` knows its port for public_base_url.
        sock = socket.create_server((args.host, args.port))
    except OSError as exc:
        print(f"omnihub demo: cannot listen on {args.host}:{args.port} ({exc.strerror}); try --port 0",
              file=sys.stderr)
        return 1
    port = sock.getsockname()[1]
    settings = demo_settings(scratch, host=args.host, port=port, database_url=args.database_url)
    configure_logging(settings.log_level)
    base_url = settings.public_base_url
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()  # the app's cleanup contexts: migrations, relay, pipeline, router, adapters
    try:
        await web.SockSite(runner, sock).start()
        # The port as a number: the log masker would take "127.0.0.1:8080" in a string for a phone number.
        log.info("demo hub listening", extra={"port": port})
        async with aiohttp.ClientSession() as http:
            story = await tell(http, base_url, settings.adapters["sms_twilio"])
            seen = await read_back(http, base_url)
        log.info("demo story told", extra={"requests": len(story.steps), "interactions": len(seen.timeline)})
        print(render(base_url, _where(settings), story, seen), flush=True)
        if not args.once:
            print(explore(base_url, seen.profile["id"]), flush=True)
            stop = asyncio.Event()
            # Ctrl-C: asyncio.run cancels this task. SIGTERM (a container's stop): leave as gracefully.
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
            await stop.wait()
    finally:
        await runner.cleanup()
    return 0


def _where(settings: Settings) -> str:
    url = make_url(settings.database_url)  # never the URL itself: it may carry a password
    database = f"{url.get_backend_name()} database {url.database}" + (f" on {url.host}" if url.host else "")
    return f"{database}, {'RabbitMQ at amqp_url' if settings.amqp_url else 'no broker'}"
