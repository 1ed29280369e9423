"""Command line of the reporting service.

python -m services.reporting                  serve (applies migrations first)
python -m services.reporting serve
python -m services.reporting worker           status consumer only, no HTTP
python -m services.reporting migrate          apply the database migrations
python -m services.reporting setup-local CREDENTIALS_JSON
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import orjson
import uvicorn

from services.contracts.logs import configure_logging
from services.contracts.process import freeze_startup_heap
from services.reporting.api import create_app
from services.reporting.consumer import StatusConsumer
from services.reporting.publisher import AreaPublisher
from services.reporting.settings import ReportingSettings
from services.reporting.store import Store, migrate


def serve(settings: ReportingSettings) -> None:
    configure_logging("reporting", settings.log_level)
    migrate(settings.database_url)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
    )


async def _worker(settings: ReportingSettings) -> None:
    store = await Store.connect(settings.database_url, settings.database_pool_size)
    freeze_startup_heap()
    try:
        # A task group: one loop failing cancels the other and the process exits with the error
        # (gather let the other retry for ever against a closed store).
        async with asyncio.TaskGroup() as loops:
            if settings.consumer:
                loops.create_task(StatusConsumer(settings, store).run())
            if settings.publisher:
                loops.create_task(AreaPublisher(settings, store).run())
    finally:
        await store.close()


def setup_local(settings: ReportingSettings, credentials: Path) -> None:
    """Migrations, and the service's URL in the credentials file's "reporting" section (the read
    API needs no token yet); the other sections are kept."""
    migrate(settings.database_url)
    document: dict[str, Any] = (
        orjson.loads(credentials.read_bytes()) if credentials.exists() else {}
    )
    document["reporting"] = {"url": f"http://{settings.host}:{settings.port}"}
    credentials.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
    credentials.chmod(0o600)
    print(f"reporting: migrated; url in {credentials}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.reporting", description="tpmap reporting service"
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the HTTP service with the status consumer (default)")
    commands.add_parser("worker", help="run the status consumer and area publisher only")
    commands.add_parser("migrate", help="apply database migrations")
    local = commands.add_parser("setup-local", help="migrate and write the local URL")
    local.add_argument("credentials", type=Path)
    args = parser.parse_args(argv)
    settings = ReportingSettings()

    if args.command in (None, "serve"):
        serve(settings)
    elif args.command == "worker":
        configure_logging("reporting", settings.log_level)
        migrate(settings.database_url)
        asyncio.run(_worker(settings))
    elif args.command == "migrate":
        migrate(settings.database_url)
    else:
        setup_local(settings, args.credentials)
    return 0


if __name__ == "__main__":
    sys.exit(main())
