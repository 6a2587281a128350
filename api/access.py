"""Accountability of the API's own users: an append-only access log.

Every /v1 query that can reveal personal data is recorded *before* its answer
is sent: who (token name and role), when, which subject (as a token, never the
clear value), why (the caller's `reason`) and which route (the route template,
not the URL, so no clear KK/NIK lands here).

Each access is also recorded, in the same transaction, as a `jejak.access`
fact in the hash-chained log, so the record is covered by checkpoints and
cannot be quietly removed; `log_fact` is that fact's id.
"""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timezone
from typing import Any

from jejak.ledger import InternalFact
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


class AccessLog:
    """Records accesses; concurrent requests of one process share one transaction.

    Every access is written before its answer is sent, and each append takes
    the log's writer lock. Under concurrent requests that lock is the
    bottleneck, so requests that arrive while a write is running queue up and
    the next writer records all of them in one transaction (group commit), then
    hands the pen to the next one waiting. Each caller returns only when its own
    record is durable; if the transaction fails, every request in it fails.
    """

    def __init__(self, ledger: Any) -> None:
        self.ledger = ledger
        self._lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._writing = False

    def record(self, *, token_name: str, role: str, subject_token: str | None, reason: str, path: str) -> str:
        """Record one access; returns the id of its `jejak.access` fact in the chained log."""
        at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        fact_id = f"jejak:access:{uuid.uuid4().hex}"
        row = (at, token_name, role, subject_token, reason, path, fact_id)
        mine = _Pending(InternalFact(
            "jejak.access", fact_id,
            {"actor": token_name, "role": role, "subject": subject_token or "*", "reason": reason, "path": path},
            also=lambda cursor: self.ledger.store.execute(cursor, _INSERT, row),
        ))
        with self._lock:
            self._queue.append(mine)
            lead = not self._writing
            self._writing = True
        if not lead:
            mine.done.wait()  # written by another request, or handed the pen
            if not mine.lead:
                return mine.result()
        with self._lock:
            batch, self._queue = self._queue, []
        try:
            self.ledger.record_internal_many([p.fact for p in batch])
        except BaseException as exc:
            for p in batch:
                p.error = exc
        finally:
            with self._lock:
                if self._queue:
                    self._queue[0].lead = True
                    self._queue[0].done.set()
                else:
                    self._writing = False
            for p in batch:
                if p is not mine:
                    p.done.set()
        return mine.result()


class _Pending:
    __slots__ = ("fact", "done", "lead", "error")

    def __init__(self, fact: InternalFact) -> None:
        self.fact = fact
        self.done = threading.Event()
        self.lead = False
        self.error: BaseException | None = None

    def result(self) -> str:
        if self.error is not None:
            raise self.error
        return self.fact.fact_id


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
