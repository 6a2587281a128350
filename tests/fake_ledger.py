"""An in-memory ledger implementing `jejak.feeds.ports.LedgerPort`, for unit tests only.

It checks just the envelope and the amount, but what it answers for the inputs
it handles is pinned to the real ledger's answers by
tests/integration/test_ledger_port_contract.py (same statuses, ids and error
codes), so it cannot drift from what the real ledger produces.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson


@dataclass(frozen=True)
class FakeOutcome:
    status: str
    fact_id: str | None
    code: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class FakeEntry:
    index: int
    fact: dict[str, Any]
    chain: str


KNOWN_TYPES = {
    "rates.set", "eligibility.decided", "companion.assigned", "disbursement.ordered",
    "disbursement.settled", "pickup.recorded", "funds.returned", "asn.registered", "death.recorded",
}


class FakeLedger:
    """Dict-based ledger implementing the port; idempotent by id; optionally persisted to a file."""

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path else None
        self.entries: list[FakeEntry] = []
        self.by_id: dict[str, dict[str, Any]] = {}
        self.positions: dict[str, int] = {}
        self.record_calls = 0
        self.lock = threading.Lock()
        if self.path and self.path.exists():
            state = json.loads(self.path.read_text())
            self.positions = state["positions"]
            for e in state["entries"]:
                self._append(e["fact"])

    def _append(self, fact: dict[str, Any]) -> None:
        prev = self.entries[-1].chain if self.entries else "00" * 32
        chain = hashlib.sha256(bytes.fromhex(prev) + orjson.dumps(fact, option=orjson.OPT_SORT_KEYS)).hexdigest()
        self.entries.append(FakeEntry(len(self.entries), fact, chain))
        self.by_id[fact["id"]] = fact

    def _persist(self) -> None:
        if self.path:
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"positions": self.positions,
                                       "entries": [{"fact": e.fact} for e in self.entries]}))
            os.replace(tmp, self.path)

    @staticmethod
    def _check(item: Any) -> tuple[dict | None, FakeOutcome | None]:
        try:
            obj = item if isinstance(item, dict) else json.loads(item)
        except ValueError:
            return None, FakeOutcome("rejected", None, "invalid_json", "not JSON")
        if not isinstance(obj, dict):
            return None, FakeOutcome("rejected", None, "not_an_object", "a fact is a JSON object")
        fid = obj.get("id")
        if not isinstance(fid, str) or "type" not in obj:
            return None, FakeOutcome("rejected", None, "missing_field", "needs an id and a type")
        if obj["type"] not in KNOWN_TYPES:
            return None, FakeOutcome("rejected", fid, "unknown_type", "unknown type")
        amount = obj.get("amount", 1)
        if isinstance(amount, bool) or not isinstance(amount, int):
            return None, FakeOutcome("rejected", fid, "wrong_type", "amount must be an integer")
        if amount <= 0:
            return None, FakeOutcome("rejected", fid, "non_positive_amount", "amount must be positive")
        return obj, None

    def record(self, items):
        with self.lock:
            self.record_calls += 1
            out = []
            for item in items:
                fact, bad = self._check(item)
                if bad:
                    out.append(bad)
                elif fact["id"] in self.by_id:
                    same = self.by_id[fact["id"]] == fact
                    out.append(FakeOutcome("duplicate", fact["id"]) if same else
                               FakeOutcome("rejected", fact["id"], "conflict", "different content"))
                else:
                    self._append(fact)
                    out.append(FakeOutcome("accepted", fact["id"]))
            self._persist()
            return out

    def read_entries(self, start, limit):
        with self.lock:
            return list(self.entries[start:start + limit])

    def get_position(self, name):
        return self.positions.get(name, 0)

    def set_position(self, name, position):
        with self.lock:
            self.positions[name] = position
            self._persist()

    def ids_of(self, fact_type: str) -> list[str]:
        return [e.fact["id"] for e in self.entries if e.fact["type"] == fact_type]
