"""Accountability of the API's own users: an append-only access log in the chained log.

Every /v1 query that can reveal personal data is recorded *before* its answer
is sent, as one `jejak.access` fact per family and person the answer reveals:
who (token name and role), when, which subject (as a token, never the clear
value), why (the caller's `reason`) and which route (the route template, not
the URL, so no clear KK/NIK lands here).

`/v1/access-log` is read from those facts themselves (:class:`AccessIndex`
follows the log), not from a table anyone with database access could edit:
removing a record means rewriting the log, which `jejak verify` catches.
"""

from __future__ import annotations

import threading
import uuid
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import Any, Sequence

from jejak.ledger import InternalFact
from jejak.store.datastore import Store
from jejak.store.leaf import decode_leaf

ACCESS = "jejak.access"
_ACCESS_BYTES = b'"jejak.access"'


@dataclass(frozen=True)
class Access:
    """One family or person a read revealed (subject None: the read named nobody)."""

    token_name: str
    role: str
    subject_token: str | None
    reason: str
    path: str


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
        return self.record_many([Access(token_name, role, subject_token, reason, path)])[0]

    def record_many(self, accesses: Sequence[Access]) -> list[str]:
        """Record a request's accesses (one per subject) together; returns their fact ids."""
        mine = _Pending([
            InternalFact(ACCESS, f"jejak:access:{uuid.uuid4().hex}",
                         {"actor": a.token_name, "role": a.role, "subject": a.subject_token or "*",
                          "reason": a.reason, "path": a.path})
            for a in accesses
        ])
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
            self.ledger.record_internal_many([fact for p in batch for fact in p.facts])
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
    __slots__ = ("facts", "done", "lead", "error")

    def __init__(self, facts: list[InternalFact]) -> None:
        self.facts = facts
        self.done = threading.Event()
        self.lead = False
        self.error: BaseException | None = None

    def result(self) -> list[str]:
        if self.error is not None:
            raise self.error
        return [fact.fact_id for fact in self.facts]


class AccessIndex:
    """The `jejak.access` facts of the log, followed incrementally, with look-ups
    by actor and by subject. Rows are those of `/v1/access-log`; `seq` is the
    fact's log index."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._next = 0
        self._rows: list[dict[str, Any]] = []
        self._seqs: list[int] = []
        self._by: dict[tuple[str, str], list[int]] = {}

    def update(self, size: int) -> None:
        """Read log entries up to `size` not read yet."""
        with self._lock:
            if size <= self._next:
                return
            for index, _fact_id, _chain, leaf, _topic in self.store.iter_log(self._next, size):
                if leaf is None or _ACCESS_BYTES not in leaf:
                    continue
                fact, _derived = decode_leaf(leaf)
                if fact.get("type") != ACCESS:
                    continue
                subject = fact.get("subject")
                row = {"seq": index, "at": str(fact.get("at", "")), "token_name": str(fact.get("actor", "")),
                       "role": str(fact.get("role", "")), "subject_token": None if subject == "*" else subject,
                       "reason": str(fact.get("reason", "")), "path": str(fact.get("path", "")),
                       "log_fact": str(fact.get("id", ""))}
                position = len(self._rows)
                self._rows.append(row)
                self._seqs.append(index)
                self._by.setdefault(("actor", row["token_name"]), []).append(position)
                if row["subject_token"]:
                    self._by.setdefault(("subject", row["subject_token"]), []).append(position)
            self._next = size

    def page(self, after: int, limit: int, token_name: str | None = None,
             subject_token: str | None = None) -> list[dict[str, Any]]:
        """Rows with seq > `after`, oldest first, at most `limit`."""
        with self._lock:
            first = bisect_right(self._seqs, after)  # positions and seqs grow together
            lists = [self._by.get(key, []) for key in (("actor", token_name), ("subject", subject_token)) if key[1]]
            if not lists:
                return [dict(r) for r in self._rows[first:first + limit]]
            shortest = min(lists, key=len)
            out = []
            for position in shortest[bisect_left(shortest, first):]:
                row = self._rows[position]
                if (token_name and row["token_name"] != token_name
                        or subject_token and row["subject_token"] != subject_token):
                    continue
                out.append(dict(row))
                if len(out) == limit:
                    break
            return out
