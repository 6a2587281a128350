"""Checkpoint signing keys, kept in a 0600 JSON file outside any database.

File format: {"keys": [{"skey": "PRIVATE+KEY+...", "created": "<iso8601>"}, ...]}, oldest
first; the last key is the current signer, every key stays a valid verifier.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

from .note import Signer, Verifier

__all__ = ["KEY_FILE_NAME", "KeyRing", "write_new_file", "replace_file"]

KEY_FILE_NAME = "checkpoint-keys.json"


def _resolve(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    return p / KEY_FILE_NAME if p.is_dir() else p


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_new_file(path: Path, data: bytes) -> None:
    """Create `path` with mode 0600 holding `data`, all at once or not at all.

    The bytes are written and fsynced into a private temporary file that is
    then hard-linked into place, so a concurrent reader never sees a partly
    written key; if `path` exists already, FileExistsError is raised.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # in case the umask was stricter than needed or odd
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def replace_file(path: Path, data: bytes) -> None:
    """Replace `path` (mode 0600) with `data` atomically: a crash leaves the old
    content or the new, never a mix (temporary file, fsync, rename, fsync of the directory)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.new")
    try:
        write_new_file(tmp, data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class KeyRing:
    """Signing keys (oldest first) or, for offline use, verifier keys only."""

    def __init__(self, signers: Iterable[Signer] = (), verifiers: Iterable[Verifier] = (),
                 path: Path | None = None, created: Iterable[str] = ()) -> None:
        self._signers = list(signers)
        self._created = list(created) or [_now() for _ in self._signers]
        self._extra = [v for v in verifiers if v not in {s.verifier for s in self._signers}]
        self.path = path

    # --- loading ---------------------------------------------------------------

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "KeyRing":
        """Load an existing key file (or the key file inside a directory)."""
        p = _resolve(path)
        mode = os.stat(p).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise PermissionError(f"key file {p} is accessible by group/others (mode {mode & 0o777:o}); chmod 600 it")
        try:
            entries = json.loads(p.read_text("utf-8"))["keys"]
            signers = [Signer.from_key_text(e["skey"]) for e in entries]
            created = [str(e.get("created", "")) for e in entries]
        except (ValueError, KeyError, TypeError) as e:  # never echo file content
            raise ValueError(f"key file {p} is malformed ({type(e).__name__})") from None
        if not signers:
            raise ValueError(f"key file {p} holds no keys")
        return cls(signers, path=p, created=created)

    @classmethod
    def load_or_create(cls, path: str | os.PathLike[str], name: str) -> "KeyRing":
        """Load the key file, or create it with one fresh key named `name`."""
        p = _resolve(path)
        if p.exists():
            return cls.load(p)
        p.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        ring = cls([Signer.generate(name)], path=p)
        try:
            write_new_file(p, ring._dump())
        except FileExistsError:  # lost a creation race: use the winner's key
            return cls.load(p)
        return ring

    @classmethod
    def from_verifier_keys(cls, lines: Iterable[str]) -> "KeyRing":
        """A verify-only ring from verifier key lines (blank lines and '#' comments skipped)."""
        keys = [ln.strip() for ln in lines]
        return cls(verifiers=[Verifier.from_key_text(k) for k in keys if k and not k.startswith("#")])

    # --- use -------------------------------------------------------------------

    def current_signer(self) -> Signer:
        """The newest signing key."""
        if not self._signers:
            raise LookupError("this key ring holds verifier keys only")
        return self._signers[-1]

    def verifiers(self) -> list[Verifier]:
        """Every verifier, including those of rotated-out keys (oldest first)."""
        return [s.verifier for s in self._signers] + list(self._extra)

    def verifier_key_texts(self) -> list[str]:
        return [v.key_text() for v in self.verifiers()]

    def rotate(self, name: str | None = None) -> Signer:
        """Add a new current key (default: same name as the current one) and persist."""
        if name is None:
            name = self.current_signer().name
        signer = Signer.generate(name)
        self._signers.append(signer)
        self._created.append(_now())
        if self.path is not None:
            self._save()
        return signer

    # --- persistence -------------------------------------------------------------

    def _dump(self) -> bytes:
        keys = [{"skey": s.key_text(), "created": c} for s, c in zip(self._signers, self._created)]
        return (json.dumps({"keys": keys}, indent=1) + "\n").encode()

    def _save(self) -> None:
        assert self.path is not None
        replace_file(self.path, self._dump())

    def __repr__(self) -> str:
        return f"KeyRing(path={self.path!s}, keys={[f'{v.name}+{v.key_id:08x}' for v in self.verifiers()]})"
