"""API bearer tokens: random secrets shown once; the store keeps only SHA-256 hashes.

Issuing and revoking a token are recorded as `jejak.token` facts in the
chained log, in the same transaction as the token table (name, role, channel,
expiry; never the secret). A name, once used, stays that holder's: a revoked
name cannot be issued again, so the access log's `actor` always means one
holder.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING, Any

from jejak.api.roles import RECONCILER, ROLES
from jejak.domain.facts import CHANNELS
from jejak.domain.nik import holds_sixteen_digits
from jejak.store.datastore import Store

if TYPE_CHECKING:
    from jejak.ledger import Ledger

TOKEN_PREFIX = "jjk_"
NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_DURATION = re.compile(r"([1-9][0-9]{0,5})([dh])")


class TokenError(ValueError):
    pass


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    #: the payment channel a reconciler is bound to (None for inspectors)
    channel: str | None = None


def ensure_token_table(store: Store) -> None:
    with store.transaction(commit=True) as cursor:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS api_tokens (name TEXT PRIMARY KEY, role TEXT NOT NULL, "
            "token_sha256 TEXT NOT NULL UNIQUE, created TEXT NOT NULL, revoked TEXT, channel TEXT, expires TEXT)"
        )
        # tables made before channels and expiry
        if store.is_postgres:
            for column in ("channel", "expires"):
                cursor.execute(f"ALTER TABLE api_tokens ADD COLUMN IF NOT EXISTS {column} TEXT")
        else:
            cursor.execute("PRAGMA table_info(api_tokens)")
            have = {row["name"] for row in cursor.fetchall()}
            for column in ("channel", "expires"):
                if column not in have:
                    cursor.execute(f"ALTER TABLE api_tokens ADD COLUMN {column} TEXT")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


def parse_expiry(text: str, now: datetime | None = None) -> datetime:
    """`--expires`: a duration (`90d`, `12h`), a date (valid through that day, UTC)
    or an ISO 8601 date-time with an offset."""
    now = now or _now()
    text = text.strip()
    duration = _DURATION.fullmatch(text)
    if duration:
        amount, unit = int(duration.group(1)), duration.group(2)
        moment = now + (timedelta(days=amount) if unit == "d" else timedelta(hours=amount))
    else:
        try:
            if len(text) == 10:
                moment = datetime.combine(date.fromisoformat(text) + timedelta(days=1), time(), timezone.utc)
            else:
                moment = datetime.fromisoformat(text)
        except ValueError:
            raise TokenError(f"--expires must be a duration (90d, 12h), a date (2025-12-31) or an ISO date-time "
                             f"with offset (2025-12-31T17:00:00+07:00), got {text!r}") from None
        if moment.tzinfo is None:
            raise TokenError(f"--expires date-time needs an offset (e.g. {text}+07:00 or {text}Z)")
    if moment <= now:
        raise TokenError(f"--expires must be in the future, got {_iso(moment)}")
    return moment


def create_token(ledger: "Ledger", name: str, role: str, *, channel: str | None = None,
                 expires: datetime | None = None) -> str:
    """Create a token and record its issue in the log; returns the secret (the only time it is ever seen)."""
    if not hasattr(ledger, "record_internal"):
        raise TypeError("create_token needs the Ledger: issuing a token is recorded in the log")
    if role not in ROLES:
        raise TokenError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if not NAME_RE.fullmatch(name):
        raise TokenError(f"name must be 1-64 characters of [A-Za-z0-9._-], got {name!r}")
    if holds_sixteen_digits(name):  # the name enters the public log: never a NIK or KK
        raise TokenError("a token name must not contain a NIK or KK (16 digits); name the person's office or role")
    if role == RECONCILER and channel not in CHANNELS:
        raise TokenError(f"a reconciler token is bound to one payment channel: --channel one of "
                         f"{', '.join(sorted(CHANNELS))}, got {channel!r}")
    if role != RECONCILER and channel is not None:
        raise TokenError(f"--channel is for reconciler tokens only (an {role} sees every channel)")
    store = ledger.store
    ensure_token_table(store)
    row = store.query_one("SELECT revoked FROM api_tokens WHERE name = ?", (name,))
    if row is not None:
        state = "exists" if row["revoked"] is None else f"was revoked on {row['revoked']}"
        raise TokenError(f"a token named {name!r} {state}; names are never reused, choose another name")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    created, until = _iso(_now()), None if expires is None else _iso(expires)
    fields: dict[str, Any] = {"action": "issued", "name": name, "role": role}
    fields.update({k: v for k, v in (("channel", channel), ("expires", until)) if v is not None})
    ledger.record_internal(
        "jejak.token", f"jejak:token:{uuid.uuid4().hex}", fields,
        also=lambda cursor: store.execute(
            cursor,
            "INSERT INTO api_tokens (name, role, token_sha256, created, revoked, channel, expires) "
            "VALUES (?, ?, ?, ?, NULL, ?, ?)",
            (name, role, hash_token(token), created, channel, until),
        ),
    )
    return token


def revoke_token(ledger: "Ledger", name: str) -> bool:
    """Revoke by name and record it in the log; False when no active token has that name."""
    store = ledger.store
    ensure_token_table(store)
    if store.query_one("SELECT name FROM api_tokens WHERE name = ? AND revoked IS NULL", (name,)) is None:
        return False
    ledger.record_internal(
        "jejak.token", f"jejak:token:{uuid.uuid4().hex}", {"action": "revoked", "name": name},
        also=lambda cursor: store.execute(
            cursor, "UPDATE api_tokens SET revoked = ? WHERE name = ? AND revoked IS NULL", (_iso(_now()), name)),
    )
    return True


def list_tokens(store: Store) -> list[dict[str, str | None]]:
    ensure_token_table(store)
    rows = store.query("SELECT name, role, channel, created, expires, revoked FROM api_tokens ORDER BY name")
    return [{k: r[k] for k in ("name", "role", "channel", "created", "expires", "revoked")} for r in rows]


class TokenRefused(Exception):
    """A token that is known but may not be used (expired, or a reconciler without a channel)."""


def authenticate(store: Store, token: str) -> Principal | None:
    """The token's holder; None when unknown or revoked; TokenRefused when expired or unusable."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = store.query_one(
        "SELECT name, role, channel, expires FROM api_tokens WHERE token_sha256 = ? AND revoked IS NULL",
        (hash_token(token),),
    )
    if row is None:
        return None
    if row["expires"] is not None and datetime.fromisoformat(row["expires"]) <= _now():
        raise TokenRefused(f"the bearer token expired at {row['expires']}; ask for a new one")
    if row["role"] == RECONCILER and row["channel"] not in CHANNELS:
        raise TokenRefused("this reconciler token is bound to no payment channel (issued before channels); "
                           "revoke it and issue one with --channel")
    return Principal(row["name"], row["role"], row["channel"])
