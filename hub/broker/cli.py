"""The broker's commands: `omnihub dlq list|show|replay|purge`, the dead-letter queue from the hub's
config (amqp_url and backoffice.dead_queue) with filters, and `omnihub asyncapi`, the AsyncAPI 3.0
document (names from the config's topology)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from hub.broker import dlq
from hub.broker.asyncapi import document
from hub.broker.topology import Topology
from hub.progress import Progress
from hub.settings import load_settings


def _target(args: argparse.Namespace) -> tuple[str, str]:
    settings = load_settings(args.config)
    url = args.amqp_url or (settings.amqp_url.get_secret_value() if settings.amqp_url else None)
    if not url:
        raise SystemExit("omnihub dlq: no broker: set amqp_url (or --amqp-url)")
    return url, args.queue or settings.backoffice.dead_queue


def _filters(args: argparse.Namespace) -> dlq.Filters:
    return dlq.Filters(queue=args.source, reason=args.reason, routing_key=args.routing_key,
                       message_id=getattr(args, "message_id", None) or args.id, limit=args.limit)


def cmd_list(args: argparse.Namespace) -> int:
    url, queue = _target(args)
    letters = [d.letter.as_dict() for d in dlq.list_dead(url, queue, _filters(args))]
    if args.json:
        print(json.dumps(letters, indent=2))
        return 0
    for item in letters:
        when = datetime.fromtimestamp(item["dead_at"], UTC).isoformat() if item["dead_at"] else "?"
        print(f"{item['message_id'] or '-'}  {when}  {item['queue']}  {item['exchange']}/{item['routing_key']}  "
              f"{item['reason']} after {item['attempts']}: {item['error'][:120]}")
    print(f"{len(letters)} dead letters", file=sys.stderr)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    url, queue = _target(args)
    found = dlq.list_dead(url, queue, _filters(args))
    if not found:
        print(f"omnihub dlq: no dead letter with message_id {args.message_id!r}", file=sys.stderr)
        return 1
    for dead in found:
        body = dead.body.decode("utf-8", "replace")
        try:
            body = json.loads(body)
        except ValueError:
            pass
        print(json.dumps({**dead.letter.as_dict(), "headers": _plain(dead.props.headers or {}), "body": body},
                         indent=2, ensure_ascii=False))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    url, queue = _target(args)
    with Progress("replaying dead letters", "message", quiet=args.json) as progress:
        replayed, errors = dlq.replay(url, queue, _filters(args), to_queue=args.to_queue, progress=progress)
    for error in errors:
        print(f"omnihub dlq: {error}", file=sys.stderr)
    print(json.dumps({"replayed": replayed, "errors": len(errors)}) if args.json else f"replayed {replayed}")
    return 1 if errors else 0


def cmd_purge(args: argparse.Namespace) -> int:
    filters = _filters(args)
    if not args.all and filters == dlq.Filters(limit=filters.limit):
        print("omnihub dlq purge: give a filter, or --all to drop every dead letter", file=sys.stderr)
        return 2
    url, queue = _target(args)
    print(f"purged {dlq.purge(url, queue, filters)}")
    return 0


def _plain(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)


def cmd_asyncapi(args: argparse.Namespace) -> int:
    print(json.dumps(document(Topology.from_settings(load_settings(args.config))), indent=2))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """`omnihub dlq ...` and `omnihub asyncapi`."""
    add_dlq(sub)
    p = sub.add_parser("asyncapi", help="print the AsyncAPI 3.0 document of events, commands and dead letters")
    p.add_argument("--config", default=argparse.SUPPRESS, help="YAML config file")
    p.set_defaults(func=cmd_asyncapi)


def add_dlq(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("dlq", help="list, show, replay or purge dead letters")
    dsub = parser.add_subparsers(dest="dlq_command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", default=argparse.SUPPRESS, help="the hub's YAML config file")
        p.add_argument("--amqp-url", help="the broker (default: amqp_url from the config)")
        p.add_argument("--queue", help="the dead-letter queue (default: backoffice.dead_queue)")
        p.add_argument("--source", help="only messages that died in this queue (glob)")
        p.add_argument("--reason", help="only this reason (glob), e.g. invalid, failed, broker:*")
        p.add_argument("--routing-key", help="only this original routing key (glob), e.g. 'profile.*'")
        p.add_argument("--id", help="only the message with this message_id")
        p.add_argument("--limit", type=int)
        p.add_argument("--json", action="store_true")

    p = dsub.add_parser("list", help="dead letters with their reason, origin and attempts")
    common(p)
    p.set_defaults(func=cmd_list)
    p = dsub.add_parser("show", help="one dead letter's headers and body")
    p.add_argument("message_id")
    common(p)
    p.set_defaults(func=cmd_show)
    p = dsub.add_parser("replay", help="republish to the original exchange and routing key")
    common(p)
    p.add_argument("--to-queue", action="store_true",
                   help="only to the queue the message died in (other consumers do not see it again)")
    p.set_defaults(func=cmd_replay)
    p = dsub.add_parser("purge", help="drop dead letters (with a filter, or --all)")
    common(p)
    p.add_argument("--all", action="store_true")
    p.set_defaults(func=cmd_purge)
