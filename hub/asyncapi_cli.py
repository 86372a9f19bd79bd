"""`omnihub asyncapi`: print the AsyncAPI 3.0 document (names from the config's topology)."""

from __future__ import annotations

import argparse
import json

from .asyncapi import document
from .settings import load_settings
from .topology import Topology


def cmd_asyncapi(args: argparse.Namespace) -> int:
    print(json.dumps(document(Topology.from_settings(load_settings(args.config))), indent=2))
    return 0


def add_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("asyncapi", help="print the AsyncAPI 3.0 document of events, commands and dead letters")
    p.add_argument("--config", default=argparse.SUPPRESS, help="YAML config file")
    p.set_defaults(func=cmd_asyncapi)
