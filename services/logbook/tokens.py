"""User tokens: `tpl_<token id>_<secret>`. Only the SHA-256 of the secret is stored; the secret is
random (256 bits), so a fast hash is enough and a lookup costs one indexed read. (The same scheme
as ingest's agency keys, with its own prefix; services share no code but the contracts.)"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

PREFIX = "tpl"


@dataclass(frozen=True, slots=True)
class NewToken:
    token_id: str
    token: str  # shown once, never stored
    secret_sha256: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_token() -> NewToken:
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return NewToken(token_id, f"{PREFIX}_{token_id}_{secret}", hash_secret(secret))


def split_token(token: str) -> tuple[str, str] | None:
    """(token id, secret) of a well-formed token, else None."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def secret_matches(secret: str, secret_sha256: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), secret_sha256)
