"""Command line of the contracts package: `python -m services.contracts schemas docs/schemas`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from services.contracts.schemas import write_schemas
from services.contracts.topics import TOPICS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.contracts", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    schemas = commands.add_parser(
        "schemas", help="write the JSON Schemas of all records and events"
    )
    schemas.add_argument("folder", type=Path, nargs="?", default=Path("docs/schemas"))
    commands.add_parser("topics", help="list the topic registry")
    args = parser.parse_args(argv)
    if args.command == "schemas":
        written = write_schemas(args.folder)
        print(f"wrote {len(written)} schemas to {args.folder}")
    else:
        for topic in TOPICS:
            print(
                f"{topic.name:32} key={topic.key:28} partitions={topic.partitions} "
                f"cleanup={topic.cleanup_policy}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
