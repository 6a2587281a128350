"""Accountability of the API's own users: an append-only access log.

Every /v1 query that can reveal personal data is recorded *before* its answer
is sent: who (token name and role), when, which subject (as a token, never the
clear value), why (the caller's `reason`) and which route (the route template,
not the URL, so no clear KK/NIK lands here).

Pending: recording these into the hash-chained ledger log itself (it needs an
internal fact type the domain validation does not accept yet).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from jejak.store.datastore import Store


def ensure_access_table(store: Store) -> None:
    seq = "BIGSERIAL PRIMARY KEY" if store.is_postgres else "INTEGER PRIMARY KEY AUTOINCREMENT"
    with store.transaction(commit=True) as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS api_access_log (seq {seq}, at TEXT NOT NULL, token_name TEXT NOT NULL, "
            "role TEXT NOT NULL, subject_token TEXT, reason TEXT NOT NULL, path TEXT NOT NULL)"
        )


def record_access(store: Store, *, token_name: str, role: str, subject_token: str | None, reason: str, path: str) -> None:
    at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    with store.transaction(commit=True) as cursor:
        store.execute(
            cursor,
            "INSERT INTO api_access_log (at, token_name, role, subject_token, reason, path) VALUES (?, ?, ?, ?, ?, ?)",
            (at, token_name, role, subject_token, reason, path),
        )


def read_access(store: Store, after: int, limit: int, token_name: str | None = None,
                subject_token: str | None = None) -> list[dict[str, Any]]:
    where, params = ["seq > ?"], [after]
    if token_name:
        where.append("token_name = ?")
        params.append(token_name)
    if subject_token:
        where.append("subject_token = ?")
        params.append(subject_token)
    rows = store.query(
        f"SELECT seq, at, token_name, role, subject_token, reason, path FROM api_access_log "
        f"WHERE {' AND '.join(where)} ORDER BY seq LIMIT {int(limit)}",
        params,
    )
    return [dict(r) if not isinstance(r, dict) else r for r in rows]
