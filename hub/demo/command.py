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
from hub.demo.report import StandIn, explore, render
from hub.demo.story import tell
from hub.demo.twilio_stand_in import TwilioStandIn
from hub.logs import configure_logging
from hub.settings import Settings, check_adapters, load_settings, unknown_environment

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


def demo_settings(scratch: Path, *, host: str, port: int, database_url: str | None,
                  stand_ins: dict[str, str] | None = None) -> Settings:
    """The bundled config, the environment over it, and what only this run can know over both.

    stand_ins: adapter name -> the base URL of the local stand-in its provider's API calls go to.
    """
    bundled = load_settings(DEMO_DIR / "settings.yaml")
    adapters = {name: {**conf, "api_base": stand_ins[name]} if name in (stand_ins or {}) else conf
                for name, conf in bundled.adapters.items()}
    settings = load_settings(
        DEMO_DIR / "settings.yaml",
        database_url=database_url or f"sqlite+aiosqlite:///{scratch / 'omnihub.db'}",
        blob_dir=str(scratch / "blobs"),
        rules_dir=str(DEMO_DIR / "rules"),
        host=host,
        port=port,
        # Twilio's signature covers the URL it called: the demo calls the port it really bound.
        public_base_url=f"http://{host}:{port}",
        adapters=adapters,
    )
    check_adapters(settings)
    return settings


async def _demo(args: argparse.Namespace, scratch: Path) -> int:
    try:
        # Bound before the settings are made, so `--port 0` knows its port for public_base_url.
        sock = socket.create_server((args.host, args.port))
    except OSError as exc:
        print(f"omnihub demo: cannot listen on port {args.port} of {args.host}: {exc.strerror}; try --port 0",
              file=sys.stderr)
        return 2
    with sock, socket.create_server(("127.0.0.1", 0)) as twilio_sock:
        sms = load_settings(DEMO_DIR / "settings.yaml").adapters["sms_twilio"]
        # The fictional account of the bundled config: the stand-in takes what the adapter sends with it.
        twilio = TwilioStandIn(sms["account_sid"], sms["auth_token"])
        twilio_url = f"http://127.0.0.1:{twilio_sock.getsockname()[1]}"
        settings = demo_settings(scratch, host=args.host, port=sock.getsockname()[1],
                                 database_url=args.database_url, stand_ins={"sms_twilio": twilio_url})
        configure_logging(settings.log_level)
        for warning in unknown_environment():
            log.warning(warning)
        providers = web.AppRunner(twilio.app(), access_log=None)
        await providers.setup()
        try:
            await web.SockSite(providers, twilio_sock).start()
            stand_ins = [StandIn("Twilio", "sms_twilio", twilio_url, f"/2010-04-01/Accounts/{twilio.account_sid}"
                                 "/Messages.json", (twilio.account_sid, twilio.auth_token))]
            return await _run_hub(args, settings, sock, stand_ins)
        finally:
            await providers.cleanup()


async def _run_hub(args: argparse.Namespace, settings: Settings, sock: socket.socket,
                   stand_ins: list[StandIn]) -> int:
    base_url = settings.public_base_url
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()  # the app's cleanup contexts: migrations, relay, pipeline, router, adapters
    try:
        await web.SockSite(runner, sock).start()
        log.info("demo hub listening", extra={"port": settings.port})
        async with aiohttp.ClientSession() as http:
            story = await tell(http, base_url, settings.adapters["sms_twilio"])
            seen = await read_back(http, base_url)
        log.info("demo story told", extra={"requests": len(story.steps), "interactions": len(seen.timeline)})
        print(render(base_url, _where(settings), story, seen, stand_ins), flush=True)
        if not args.once:
            print(explore(base_url, seen.profile["id"], stand_ins), flush=True)
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
