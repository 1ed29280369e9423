"""Command line: `python -m deploy.local up|down|status|topics`."""

from __future__ import annotations

import argparse
import os
import sys

from deploy.local import stack
from deploy.local.errors import StackError
from deploy.local.layout import StackLayout

# A half-done `up` leaves what it started running: `down` finds it by pid file and data folder.
_LEFT_RUNNING = "Whatever had started keeps running; `python -m deploy.local down` stops it."


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.local",
        description="The local tpmap stack: Kafka (KRaft), PostgreSQL, topics, services.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start what isn't running and wait until it answers")
    up.add_argument(
        "--infra-only",
        action="store_true",
        help="Kafka, PostgreSQL and the topics, without the services",
    )
    commands.add_parser("down", help="stop everything this stack started (data is kept)")
    commands.add_parser("status", help="say what is running and where")
    commands.add_parser("topics", help="create or grow the registry's topics on the broker")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    env = dict(os.environ)
    layout = StackLayout.from_env(env)
    try:
        if args.command == "up":
            stack.up(layout, env, with_services=not args.infra_only)
        elif args.command == "down":
            stack.down(layout, env)
        elif args.command == "status":
            stack.status(layout)
        else:
            stack.topics(layout)
    except (StackError, KeyboardInterrupt) as error:
        print(
            f"error: {error}" if isinstance(error, StackError) else "interrupted", file=sys.stderr
        )
        if args.command == "up":
            print(_LEFT_RUNNING, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
