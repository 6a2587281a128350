"""What the checkpoint signer last signed, kept beside its key (never in the database).

The database can be rolled back by whoever runs it; this file, next to the
signing key (or in JEJAK_SIGNER_STATE_DIR), says which tree head the key last put its name to, so the key is
never used to sign a smaller tree or one inconsistent with it, whatever the
database says. File `checkpoint-state.json` in the keys directory:
`{"<origin>": {"size": n, "root": "<base64>", "signed": "<iso8601>", "witnessed_since": seq}}`
(the last only once a checkpoint was recorded with witness cosignatures),
replaced atomically (temporary file, fsync, rename) under an exclusive lock.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from jejak.audit.errors import InconsistentCheckpoints, InvalidProof, MissingNode, RootMismatch, show
from jejak.audit.keys import replace_file
from jejak.audit.merkle import EMPTY_ROOT, verify_consistency

STATE_FILE = "checkpoint-state.json"


class RolledBack(InconsistentCheckpoints):
    """The log no longer extends the tree head its signer last signed."""


@dataclass(frozen=True)
class SignedHead:
    size: int
    root: bytes

    def describe(self) -> str:
        return f"size {self.size} root {show(self.root)}"


def check_extends(last: SignedHead, size: int, root: bytes, proof: Callable[[int, int], list[bytes]],
                  where: str) -> None:
    """Raise RolledBack unless the tree (size, root) extends `last`.

    `proof(size1, size2)` gives the consistency proof from the store; it need
    not be trusted: it is checked against both roots."""
    now = SignedHead(size, root)
    problem = None
    if size < last.size:
        problem = "the log is smaller than the tree head last signed"
    elif size == last.size and root != last.root:
        problem = "the log's root differs from the one last signed at that size"
    elif last.size and size > last.size:
        try:
            verify_consistency(last.size, size, proof(last.size, size), last.root, root)
        except (InvalidProof, RootMismatch, MissingNode) as exc:
            problem = f"the log does not extend the tree head last signed ({exc})"
    if problem:
        raise RolledBack(
            f"log rolled back: {problem} ({where}): expected a tree extending {last.describe()}, "
            f"got {now.describe()}", index=size if size < last.size else None)


class SignerState:
    """The last tree head signed for one origin, in the keys directory."""

    def __init__(self, keys_dir: Path, origin: str) -> None:
        self.path = Path(keys_dir) / STATE_FILE
        self.origin = origin

    def _read_all(self) -> dict:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError:
            raise InconsistentCheckpoints(
                f"signer state {self.path} is unreadable: restore it from backup (never delete it)") from None
        if not isinstance(data, dict):
            raise InconsistentCheckpoints(f"signer state {self.path} is malformed: restore it from backup")
        return data

    def load(self) -> SignedHead | None:
        entry = self._read_all().get(self.origin)
        if entry is None:
            return None
        try:
            head = SignedHead(int(entry["size"]), base64.b64decode(entry["root"], validate=True))
        except (KeyError, TypeError, ValueError):
            raise InconsistentCheckpoints(f"signer state {self.path} is malformed: restore it from backup") from None
        if head.size < 0 or len(head.root) != len(EMPTY_ROOT):
            raise InconsistentCheckpoints(f"signer state {self.path} is malformed: restore it from backup")
        return head

    def save(self, head: SignedHead) -> None:
        data = self._read_all()
        entry = data.get(self.origin)
        data[self.origin] = {**(entry if isinstance(entry, dict) else {}),
                             "size": head.size, "root": base64.b64encode(head.root).decode(),
                             "signed": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        self._write(data)

    def witnessed_since(self) -> int | None:
        """The number of the first checkpoint recorded with witness cosignatures, if any."""
        entry = self._read_all().get(self.origin)
        seq = entry.get("witnessed_since") if isinstance(entry, dict) else None
        return seq if isinstance(seq, int) and seq >= 0 else None

    def mark_witnessed(self, seq: int) -> None:
        """Remember (once) the first checkpoint recorded with its witnesses' quorum:
        from it on, every checkpoint must carry one (`jejak verify`)."""
        data = self._read_all()
        entry = data.get(self.origin)
        if isinstance(entry, dict) and "witnessed_since" not in entry:
            entry["witnessed_since"] = seq
            self._write(data)

    def _write(self, data: dict) -> None:
        try:
            replace_file(self.path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())
        except OSError as exc:
            raise self._unwritable(exc) from None

    def _unwritable(self, exc: OSError) -> OSError:
        return OSError(exc.errno, f"cannot write the signer state {self.path} ({exc.strerror}): nothing was signed; "
                                  f"make that directory writable or set JEJAK_SIGNER_STATE_DIR")

    @contextlib.contextmanager
    def locked(self) -> Iterator["SignerState"]:
        """Hold the state's lock (one signer at a time reads, checks and saves it)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path.with_name(f".{STATE_FILE}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise self._unwritable(exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield self
        finally:
            os.close(fd)
