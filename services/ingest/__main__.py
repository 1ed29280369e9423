"""Command line of the ingest service.

    python -m services.ingest                  serve (applies migrations first)
    python -m services.ingest migrate          apply the database migrations
    python -m services.ingest keys create --agency CDD --source bmn [--note TEXT]
    python -m services.ingest keys list
    python -m services.ingest keys revoke KEY_ID
    python -m services.ingest setup-local CREDENTIALS_JSON
    python -m services.ingest examples [FOLDER]

A new key is printed once and never stored; only its hash is kept.
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
from services.ingest.api import create_app
from services.ingest.api_keys import new_key
from services.ingest.examples import write_examples
from services.ingest.settings import IngestSettings
from services.ingest.sources import SOURCES
from services.ingest.store import Store, migrate

# make up's development keys: one per agency, for its own source.
DEVELOPMENT_AGENCIES = {"CDD": ["bmn"], "MOF": ["welfare"], "DOPA": ["civil"]}


def serve(settings: IngestSettings) -> None:
    configure_logging("ingest", settings.log_level)
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


async def _create_key(
    settings: IngestSettings, agency: str, sources: list[str], note: str | None
) -> str:
    store = await Store.connect(settings.database_url)
    try:
        key = new_key()
        await store.add_key(key, agency, sources, note)
        return key.token
    finally:
        await store.close()


async def _list_keys(settings: IngestSettings) -> None:
    store = await Store.connect(settings.database_url)
    try:
        for row in await store.list_keys():
            state = f"revoked {row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "active"
            print(
                f"{row.key_id}  {row.agency:8} {','.join(row.sources):20} {row.created_at:%Y-%m-%d %H:%M}  {state}"
            )
    finally:
        await store.close()


async def _revoke_key(settings: IngestSettings, key_id: str) -> bool:
    store = await Store.connect(settings.database_url)
    try:
        return await store.revoke_key(key_id)
    finally:
        await store.close()


async def _development_keys(settings: IngestSettings, known: dict[str, str]) -> dict[str, str]:
    """Keeps the development keys that still work, creates the missing ones."""
    store = await Store.connect(settings.database_url)
    try:
        keys = {}
        for agency, sources in DEVELOPMENT_AGENCIES.items():
            token = known.get(agency)
            found = await store.agency_for(token) if token else None
            if found is None or found.name != agency:
                key = new_key()
                await store.add_key(key, agency, sources, "development key written by make up")
                token = key.token
            keys[agency] = token or ""
        return keys
    finally:
        await store.close()


def setup_local(settings: IngestSettings, credentials: Path) -> None:
    """Migrations plus development keys in the credentials file's "ingest" section."""
    migrate(settings.database_url)
    document: dict[str, Any] = (
        orjson.loads(credentials.read_bytes()) if credentials.exists() else {}
    )
    section = document.get("ingest", {})
    keys = asyncio.run(_development_keys(settings, section.get("keys", {})))
    document["ingest"] = {"url": f"http://{settings.host}:{settings.port}", "keys": keys}
    credentials.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
    credentials.chmod(0o600)
    print(f"ingest: development keys for {', '.join(keys)} in {credentials}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.ingest", description="tpmap ingest service"
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the HTTP service (default)")
    commands.add_parser("migrate", help="apply database migrations")
    keys = commands.add_parser("keys", help="agency API keys").add_subparsers(
        dest="keys_command", required=True
    )
    create = keys.add_parser("create", help="create a key and print it once")
    create.add_argument("--agency", required=True, help="e.g. CDD, MOF, DOPA")
    create.add_argument(
        "--source", action="append", required=True, choices=sorted(SOURCES), dest="sources"
    )
    create.add_argument("--note")
    keys.add_parser("list", help="list keys (never the secrets)")
    revoke = keys.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    local = commands.add_parser("setup-local", help="migrate and write development keys")
    local.add_argument("credentials", type=Path)
    examples = commands.add_parser("examples", help="write example request files")
    examples.add_argument("folder", type=Path, nargs="?", default=Path("docs/examples"))
    args = parser.parse_args(argv)
    settings = IngestSettings()

    if args.command in (None, "serve"):
        serve(settings)
    elif args.command == "migrate":
        migrate(settings.database_url)
    elif args.command == "setup-local":
        setup_local(settings, args.credentials)
    elif args.command == "examples":
        print(f"wrote {len(write_examples(args.folder))} example files to {args.folder}")
    elif args.keys_command == "create":
        token = asyncio.run(_create_key(settings, args.agency, args.sources, args.note))
        print(token)
        print(
            f"(key for {args.agency}: {', '.join(args.sources)}; shown once, store it now)",
            file=sys.stderr,
        )
    elif args.keys_command == "list":
        asyncio.run(_list_keys(settings))
    elif not asyncio.run(_revoke_key(settings, args.key_id)):
        print(f"no active key {args.key_id}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
