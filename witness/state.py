"""A witness's state directory: its own cosigning key and an SQLite file.

    <DIR>/witness.key   PRIVATE+KEY+<name>+<id>+base64(0x04 ‖ seed), mode 0600
    <DIR>/witness.db    logs (origin, size, root), log keys, refused requests

The latest cosigned (size, root) of each origin changes only by compare and
swap (`advance`), so two requests racing, or a crash mid-request, never roll it
back: the update happens, whole, or not at all.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from jejak.audit.cosignature import CosignatureSigner
from jejak.audit.keys import write_new_file
from jejak.audit.merkle import EMPTY_ROOT
from jejak.audit.note import Verifier, is_valid_name

KEY_FILE = "witness.key"
DB_FILE = "witness.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS logs (
    origin TEXT PRIMARY KEY,
    size INTEGER NOT NULL CHECK (size >= 0),
    root BLOB NOT NULL CHECK (length(root) = 32)
);
CREATE TABLE IF NOT EXISTS log_keys (
    origin TEXT NOT NULL REFERENCES logs(origin),
    vkey TEXT NOT NULL,
    PRIMARY KEY (origin, vkey)
);
CREATE TABLE IF NOT EXISTS refused (
    received INTEGER NOT NULL,
    origin TEXT NOT NULL,
    status INTEGER NOT NULL,
    reason TEXT NOT NULL,
    request BLOB NOT NULL
);
"""


class WitnessStateError(Exception):
    """The state directory cannot be used as asked (message names the fix)."""


@dataclass(frozen=True)
class LogHead:
    size: int
    root: bytes


def holds_witness(directory: Path) -> bool:
    return (directory / KEY_FILE).exists() or (directory / DB_FILE).exists()


def init_state(directory: Path, name: str) -> CosignatureSigner:
    """Create a witness in `directory`; never overwrites one (WitnessStateError)."""
    if not is_valid_name(name):
        raise WitnessStateError(f"invalid witness name {name!r}: no spaces and no '+' (e.g. witness.example.org/w1)")
    if holds_witness(directory):
        raise WitnessStateError(f"{directory} already holds a witness; it is never overwritten")
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise WitnessStateError(f"cannot create the state directory {directory}: {exc.strerror}") from None
    signer = CosignatureSigner.generate(name)
    try:
        write_new_file(directory / KEY_FILE, (signer.key_text() + "\n").encode())
    except FileExistsError:
        raise WitnessStateError(f"{directory} already holds a witness; it is never overwritten") from None
    WitnessState(directory).close()  # creates the database
    return signer


class WitnessState:
    """An opened witness state directory (thread-safe: one connection under a lock)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        key_path = self.directory / KEY_FILE
        if not key_path.exists():
            raise WitnessStateError(
                f"{self.directory} holds no witness: create one with `jejak witness init --name NAME --state DIR`")
        self.signer = CosignatureSigner.from_key_text(key_path.read_text("utf-8"))
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.directory / DB_FILE, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.execute("PRAGMA foreign_keys = ON")
        self._db.execute("PRAGMA busy_timeout = 10000")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def add_log(self, verifier: Verifier) -> bool:
        """Trust a log key; its origin is the key's name. False if it was trusted already."""
        with self._transaction() as db:
            db.execute("INSERT INTO logs (origin, size, root) VALUES (?, 0, ?) ON CONFLICT (origin) DO NOTHING",
                       (verifier.name, EMPTY_ROOT))
            cur = db.execute("INSERT INTO log_keys (origin, vkey) VALUES (?, ?) ON CONFLICT DO NOTHING",
                             (verifier.name, verifier.key_text()))
            return cur.rowcount == 1

    def log_keys(self, origin: str) -> list[Verifier]:
        with self._lock:
            rows = self._db.execute("SELECT vkey FROM log_keys WHERE origin = ?", (origin,)).fetchall()
        return [Verifier.from_key_text(r[0]) for r in rows]

    def head(self, origin: str) -> LogHead | None:
        with self._lock:
            row = self._db.execute("SELECT size, root FROM logs WHERE origin = ?", (origin,)).fetchone()
        return None if row is None else LogHead(row[0], bytes(row[1]))

    def advance(self, origin: str, old: LogHead, new: LogHead) -> LogHead | None:
        """Compare and swap: set the origin's head to `new` if it is still `old`.
        Returns None on success, else the head found (the caller answers 409)."""
        with self._transaction() as db:
            cur = db.execute("UPDATE logs SET size = ?, root = ? WHERE origin = ? AND size = ? AND root = ?",
                             (new.size, new.root, origin, old.size, old.root))
            if cur.rowcount == 1:
                return None
            row = db.execute("SELECT size, root FROM logs WHERE origin = ?", (origin,)).fetchone()
            return LogHead(row[0], bytes(row[1]))

    def record_refusal(self, origin: str, status: int, reason: str, request: bytes) -> None:
        """Keep a log-signed request that was not cosigned: it may be evidence of a fork."""
        with self._transaction() as db:
            db.execute("INSERT INTO refused (received, origin, status, reason, request) VALUES (?, ?, ?, ?, ?)",
                       (int(time.time()), origin, status, reason, request))

    def logs(self) -> list[tuple[str, int]]:
        with self._lock:
            return [(r[0], r[1]) for r in self._db.execute("SELECT origin, size FROM logs ORDER BY origin")]

