"""Accountability of the API's own users: an append-only access log.

Every /v1 query that can reveal personal data is recorded *before* its answer
is sent: who (token name and role), when, which subject (as a token, never the
clear value), why (the caller's `reason`) and which route (the route template,
not the URL, so no clear KK/NIK lands here).

Each access is also recorded, in the same transaction, as a `jejak.access`
fact in the hash-chained log (when the ledger offers `record_internal` and the
domain knows that type), so the record is covered by checkpoints and cannot be
quietly removed; `log_fact` is that fact's id.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

from jejak.store.datastore import Store

_INSERT = (
    "INSERT INTO api_access_log (at, token_name, role, subject_token, reason, path, log_fact) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def ensure_access_table(store: Store) -> None:
    seq = "BIGSERIAL PRIMARY KEY" if store.is_postgres else "INTEGER PRIMARY KEY AUTOINCREMENT"
    with store.transaction(commit=True) as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS api_access_log (seq {seq}, at TEXT NOT NULL, token_name TEXT NOT NULL, "
            "role TEXT NOT NULL, subject_token TEXT, reason TEXT NOT NULL, path TEXT NOT NULL, log_fact TEXT)"
        )


def chained_access_supported(ledger: Any) -> bool:
    try:
        from jejak.domain.facts import KNOWN_FIELDS
    except ImportError:  # pragma: no cover
        return False
    return hasattr(ledger, "record_internal") and "jejak.access" in KNOWN_FIELDS


def record_access(ledger: Any, *, token_name: str, role: str, subject_token: str | None, reason: str, path: str) -> str | None:
    """Record one access; returns the id of the chained-log fact (None if not chained)."""
    store: Store = ledger.store
    at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    if chained_access_supported(ledger):
        fact_id = f"jejak:access:{uuid.uuid4().hex}"
        ledger.record_internal(
            "jejak.access", fact_id,
            {"actor": token_name, "role": role, "subject": subject_token or "*", "reason": reason, "path": path},
            also=lambda cursor: store.execute(cursor, _INSERT, (at, token_name, role, subject_token, reason, path, fact_id)),
        )
        return fact_id
    with store.transaction(commit=True) as cursor:
        store.execute(cursor, _INSERT, (at, token_name, role, subject_token, reason, path, None))
    return None


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
        f"SELECT seq, at, token_name, role, subject_token, reason, path, log_fact FROM api_access_log "
        f"WHERE {' AND '.join(where)} ORDER BY seq LIMIT {int(limit)}",
        params,
    )
    return [dict(r) if not isinstance(r, dict) else r for r in rows]
