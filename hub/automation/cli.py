"""`omnihub rules check|test|replay`: the rules package's own commands, and replay against the hub's
stored interactions (hub.automation.replay)."""

from __future__ import annotations

import argparse

import rules.cli
from hub.automation import replay


def add_commands(sub: argparse._SubParsersAction) -> None:
    rules_cmd = sub.add_parser("rules", help="check and dry-run rule files")
    rules_sub = rules_cmd.add_subparsers(dest="rules_command", required=True, metavar="COMMAND")
    rules.cli.add_commands(rules_sub)
    replay.add_command(rules_sub)
