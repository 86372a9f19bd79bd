"""Ingest throughput with 1, 2 and 3 hub processes on one PostgreSQL database (DESIGN section 7:
N stateless hubs behind a load balancer).

    python bench/ingest_nodes.py [--hubs 1,2,3] [--seconds 20] [--connections 64] [--rounds 1]

The same load as bench/ingest.py (every request a new customer, none repeated), from one wrk
thread, against N hub processes sharing one port with SO_REUSEPORT, so the kernel spreads wrk's
connections over them with no balancer process in the way. Each N starts on an empty database.
Nothing is pinned: the hubs, PostgreSQL and wrk share this machine's cores, as they would on one
host; the figure is each N's rate against one hub's and against the bare aiohttp floor (one
process) measured in the same run. On 2 cores a third hub mostly competes with PostgreSQL.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # `python bench/x.py`: the project root, not bench/, heads sys.path
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from bench import _hubs  # noqa: E402
from bench.ingest import LUA, PATH, repeats  # noqa: E402


def serve(port: int) -> None:
    """`omnihub serve`, bound with SO_REUSEPORT so several processes can share the port."""
    from aiohttp import web

    from hub.app import create_app
    from hub.cli import _settle_gc
    from hub.logs import configure_logging
    from hub.settings import load_settings

    settings = load_settings(None, port=port)
    configure_logging(settings.log_level)
    app = create_app(settings)
    app.on_startup.append(_settle_gc)
    web.run_app(app, host=settings.host, port=port, reuse_port=True, access_log=None, print=None)


def serve_command(port: int) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--serve", str(port)]


def main() -> None:
    parser = argparse.ArgumentParser(description="omnihub ingest throughput with 1, 2 and 3 hubs on PostgreSQL")
    parser.add_argument("--hubs", default="1,2,3", help="hub counts to measure, comma-separated")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    _hubs.need_wrk("bench/ingest_nodes.py")
    _hubs.PIN = False
    counts = [int(n) for n in args.hubs.split(",")]
    floors: list[float] = []
    rates: dict[int, list[float]] = {n: [] for n in counts}
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "ingest.lua"
        script.write_text(LUA)
        for _ in range(args.rounds):
            floors.append(_hubs.measure_floor(PATH, args.seconds, args.connections, script).rps)
            for n in counts:
                database = _hubs.PostgresDatabase()
                try:
                    run = _hubs.measure_hubs(PATH, args.seconds, args.connections, script, database, {}, hubs=n,
                                             command=serve_command, cpu=None, wrk_cpu=None)
                finally:
                    database.drop()
                rates[n].append(run.wrk.rps)
                runs.append(run)
    floor = statistics.median(floors)
    one = statistics.median(rates[counts[0]])
    print(f"ingest_nodes bench: wrk 1 thread, {args.connections} connections, {args.seconds}s x {args.rounds} rounds "
          f"(medians), unpinned, PostgreSQL, each N from an empty database")
    print(f"floor (bare aiohttp, 1 process): {floor:7.0f} req/s   rounds: {', '.join(f'{r:.0f}' for r in floors)}")
    for n in counts:
        rate = statistics.median(rates[n])
        print(f"{n} hub{'s' if n > 1 else ' '}: {rate:7.0f} req/s = {rate / floor:.3f} of the floor, "
              f"{rate / one:.2f}x {counts[0]} hub{'s' if counts[0] > 1 else ''}   rounds: "
              + ", ".join(f"{r:.0f}" for r in rates[n]))
    print(repeats(runs))


if __name__ == "__main__":
    main()
