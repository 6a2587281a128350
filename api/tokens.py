"""API bearer tokens: random secrets shown once; the store keeps only SHA-256 hashes."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from jejak.store.datastore import Store

ROLES = ("inspector", "reconciler")
TOKEN_PREFIX = "jjk_"
NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")


class TokenError(ValueError):
    pass


@dataclass(frozen=True)
class Principal:
    name: str
    role: str


def ensure_token_table(store: Store) -> None:
    with store.transaction(commit=True) as cursor:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS api_tokens (name TEXT PRIMARY KEY, role TEXT NOT NULL, "
            "token_sha256 TEXT NOT NULL UNIQUE, created TEXT NOT NULL, revoked TEXT)"
        )


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def create_token(store: Store, name: str, role: str) -> str:
    """Create a token; returns the secret (the only time it is ever seen)."""
    if role not in ROLES:
        raise TokenError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if not NAME_RE.fullmatch(name):
        raise TokenError(f"name must be 1-64 characters of [A-Za-z0-9._-], got {name!r}")
    ensure_token_table(store)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    digest = hash_token(token)
    with store.transaction(commit=True) as cursor:
        store.execute(cursor, "SELECT revoked FROM api_tokens WHERE name = ?", (name,))
        row = cursor.fetchone()
        if row is not None and row["revoked"] is None:
            raise TokenError(f"a token named {name!r} exists; revoke it first")
        if row is not None:
            store.execute(cursor, "DELETE FROM api_tokens WHERE name = ?", (name,))
        store.execute(
            cursor,
            "INSERT INTO api_tokens (name, role, token_sha256, created, revoked) VALUES (?, ?, ?, ?, NULL)",
            (name, role, digest, _now()),
        )
    return token


def revoke_token(store: Store, name: str) -> bool:
    """Revoke by name; False when no active token has that name."""
    ensure_token_table(store)
    with store.transaction(commit=True) as cursor:
        store.execute(cursor, "SELECT name FROM api_tokens WHERE name = ? AND revoked IS NULL", (name,))
        if cursor.fetchone() is None:
            return False
        store.execute(cursor, "UPDATE api_tokens SET revoked = ? WHERE name = ? AND revoked IS NULL", (_now(), name))
        return True


def list_tokens(store: Store) -> list[dict[str, str | None]]:
    ensure_token_table(store)
    rows = store.query("SELECT name, role, created, revoked FROM api_tokens ORDER BY name")
    return [{"name": r["name"], "role": r["role"], "created": r["created"], "revoked": r["revoked"]} for r in rows]


def authenticate(store: Store, token: str) -> Principal | None:
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = store.query_one(
        "SELECT name, role FROM api_tokens WHERE token_sha256 = ? AND revoked IS NULL", (hash_token(token),)
    )
    return None if row is None else Principal(row["name"], row["role"])
