"""Command line of the logbook service.

    python -m services.logbook                    serve (applies migrations first)
    python -m services.logbook serve
    python -m services.logbook worker             consumer and outbox relay only, no HTTP
    python -m services.logbook migrate            apply the database migrations
    python -m services.logbook users create --user-id ID --name NAME --role ROLE --area CODE [--area CODE]
    python -m services.logbook users list
    python -m services.logbook tokens create USER_ID [--note TEXT]
    python -m services.logbook tokens revoke TOKEN_ID
    python -m services.logbook setup-local CREDENTIALS_JSON

A new token is printed once and never stored; only its hash is kept.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from pathlib import Path
from typing import Any

import orjson
import uvicorn

from services.contracts.logs import configure_logging
from services.contracts.process import freeze_startup_heap
from services.logbook.api import create_app
from services.logbook.consumer import StatusConsumer
from services.logbook.relay import OutboxRelay
from services.logbook.scope import ROLES, Role, user_areas_problem
from services.logbook.settings import LogbookSettings
from services.logbook.store import Store, migrate
from services.logbook.tokens import new_token

# make up's development users: one per role, in Mukdahan (49), where the synthetic data lives.
DEVELOPMENT_USERS: dict[Role, tuple[str, str, list[str]]] = {
    "national": ("dev-national", "ผู้ใช้ส่วนกลาง (dev)", ["TH"]),
    "province": ("dev-province-49", "ศจพ.จ. มุกดาหาร (dev)", ["49"]),
    "district": ("dev-district-4901", "ศจพ.อ. เมืองมุกดาหาร (dev)", ["4901"]),
    "team": ("dev-team-490101", "ทีมปฏิบัติการตำบลมุกดาหาร ศรีบุญเรือง (dev)", ["490101", "490102"]),
}


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def serve(settings: LogbookSettings) -> None:
    configure_logging("logbook", settings.log_level)
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


async def _worker(settings: LogbookSettings) -> None:
    store = await Store.connect(settings.database_url, settings.database_pool_size)
    relay = OutboxRelay(settings)
    freeze_startup_heap()
    try:
        # A task group: one loop failing cancels the other and the process exits with the error
        # (gather let the other retry for ever against a closed store).
        async with asyncio.TaskGroup() as loops:
            loops.create_task(StatusConsumer(settings, store).run())
            loops.create_task(relay.run())
    finally:
        await relay.close()
        await store.close()


async def _create_user(
    settings: LogbookSettings, user_id: str, name: str, role: Role, areas: list[str]
) -> None:
    store = await Store.connect(settings.database_url, 1)
    try:
        await store.add_user(user_id, name, role, areas, _actor())
    finally:
        await store.close()


async def _list_users(settings: LogbookSettings) -> None:
    store = await Store.connect(settings.database_url, 1)
    try:
        for row in await store.list_users():
            user = row.user
            state = f"disabled {row.disabled_at:%Y-%m-%d}" if row.disabled_at else "active"
            print(
                f"{user.user_id:24} {user.role:9} {','.join(user.areas):20} "
                f"{row.created_at:%Y-%m-%d %H:%M}  {state}  {user.display_name}"
            )
    finally:
        await store.close()


async def _create_token(settings: LogbookSettings, user_id: str, note: str | None) -> str | None:
    store = await Store.connect(settings.database_url, 1)
    try:
        if await store.user(user_id) is None:
            return None
        token = new_token()
        await store.add_token(user_id, token, note, _actor())
        return token.token
    finally:
        await store.close()


async def _revoke_token(settings: LogbookSettings, token_id: str) -> bool:
    store = await Store.connect(settings.database_url, 1)
    try:
        return await store.revoke_token(token_id, _actor())
    finally:
        await store.close()


async def _development_tokens(settings: LogbookSettings, known: dict[str, str]) -> dict[str, str]:
    """Keeps the development tokens that still work, creates the missing users and tokens."""
    store = await Store.connect(settings.database_url, 1)
    try:
        tokens: dict[str, str] = {}
        for role, (user_id, name, areas) in DEVELOPMENT_USERS.items():
            token = known.get(role)
            found = await store.user_for(token) if token else None
            if found is None or found.user_id != user_id:
                if await store.user(user_id) is None:
                    await store.add_user(user_id, name, role, areas, "setup-local")
                created = new_token()
                await store.add_token(
                    user_id, created, "development token written by make up", "setup-local"
                )
                token = created.token
            tokens[role] = token or ""
        return tokens
    finally:
        await store.close()


def setup_local(settings: LogbookSettings, credentials: Path) -> None:
    """Migrations plus one development token per role in the credentials file's "logbook"
    section; the other sections are kept."""
    migrate(settings.database_url)
    document: dict[str, Any] = (
        orjson.loads(credentials.read_bytes()) if credentials.exists() else {}
    )
    section = document.get("logbook", {})
    tokens = asyncio.run(_development_tokens(settings, section.get("tokens", {})))
    document["logbook"] = {
        "url": f"http://{settings.host}:{settings.port}",
        "tokens": tokens,
        "users": {role: user_id for role, (user_id, _, _) in DEVELOPMENT_USERS.items()},
    }
    credentials.write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
    credentials.chmod(0o600)
    print(f"logbook: development tokens for {', '.join(tokens)} in {credentials}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m services.logbook", description="tpmap logbook service"
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="run the HTTP service with consumer and relay (default)")
    commands.add_parser("worker", help="run the status consumer and outbox relay only")
    commands.add_parser("migrate", help="apply database migrations")
    users = commands.add_parser("users", help="users and their areas").add_subparsers(
        dest="users_command", required=True
    )
    create_user = users.add_parser("create", help="create a user")
    create_user.add_argument("--user-id", required=True)
    create_user.add_argument("--name", required=True, help="display name")
    create_user.add_argument("--role", required=True, choices=ROLES)
    create_user.add_argument(
        "--area",
        action="append",
        required=True,
        dest="areas",
        help="TH (national), PP (province), PPDD (district) or PPDDSS (team; repeat for several)",
    )
    users.add_parser("list", help="list users")
    tokens = commands.add_parser("tokens", help="users' API tokens").add_subparsers(
        dest="tokens_command", required=True
    )
    create_token = tokens.add_parser("create", help="create a token and print it once")
    create_token.add_argument("user_id")
    create_token.add_argument("--note")
    revoke = tokens.add_parser("revoke", help="revoke a token by its id")
    revoke.add_argument("token_id")
    local = commands.add_parser("setup-local", help="migrate and write development tokens")
    local.add_argument("credentials", type=Path)
    args = parser.parse_args(argv)
    settings = LogbookSettings()

    if args.command in (None, "serve"):
        serve(settings)
    elif args.command == "worker":
        configure_logging("logbook", settings.log_level)
        migrate(settings.database_url)
        asyncio.run(_worker(settings))
    elif args.command == "migrate":
        migrate(settings.database_url)
    elif args.command == "setup-local":
        setup_local(settings, args.credentials)
    elif args.command == "users":
        if args.users_command == "list":
            asyncio.run(_list_users(settings))
            return 0
        problem = user_areas_problem(args.role, args.areas)
        if problem is not None:
            print(f"cannot create the user: {problem}", file=sys.stderr)
            return 2
        asyncio.run(_create_user(settings, args.user_id, args.name, args.role, args.areas))
        print(f"created {args.role} user {args.user_id} for {', '.join(args.areas)}")
    elif args.tokens_command == "create":
        token = asyncio.run(_create_token(settings, args.user_id, args.note))
        if token is None:
            print(f"no user {args.user_id}", file=sys.stderr)
            return 1
        print(token)
        print(f"(token for {args.user_id}; shown once, store it now)", file=sys.stderr)
    elif not asyncio.run(_revoke_token(settings, args.token_id)):
        print(f"no active token {args.token_id}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
