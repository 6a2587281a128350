"""C2SP tlog-checkpoint: `origin\\nsize\\nbase64(root)\\n[extension lines]`, as a signed note."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import MalformedCheckpoint, OriginMismatch
from .merkle import HASH_SIZE
from .note import Signer, Verifier, open_note, sign_note

__all__ = ["Checkpoint", "sign_checkpoint", "verify_checkpoint", "canonical_b64decode"]

_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _check_line(what: str, line: str) -> None:
    if not line:
        raise MalformedCheckpoint(f"{what} must not be empty")
    if _CONTROL.search(line):
        raise MalformedCheckpoint(f"{what} contains a control character")


def canonical_b64decode(text: str) -> bytes:
    """Standard base64 in its one canonical spelling; raise ValueError ("is not …")."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise ValueError("is not valid base64") from None
    if base64.b64encode(raw).decode() != text:
        raise ValueError("is not canonical base64")
    return raw


@dataclass(frozen=True)
class Checkpoint:
    """A log checkpoint: origin, tree size, root hash and optional extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line("origin", self.origin)
        if self.origin != self.origin.strip():
            raise MalformedCheckpoint("origin must not have surrounding whitespace")
        if not 0 <= self.size < 1 << 64:
            raise MalformedCheckpoint(f"size: expected 0 <= size < 2^64, got {self.size}")
        if len(self.root) != HASH_SIZE:
            raise MalformedCheckpoint.expected("root length", HASH_SIZE, len(self.root))
        for ext in self.extensions:
            _check_line("extension line", ext)

    def to_text(self) -> str:
        """The checkpoint body (the note text), ending with a newline."""
        root64 = base64.b64encode(self.root).decode()
        return "".join(f"{line}\n" for line in (self.origin, str(self.size), root64, *self.extensions))

    @classmethod
    def parse(cls, text: str) -> "Checkpoint":
        """Strictly parse a checkpoint body; raise MalformedCheckpoint."""
        if not text.endswith("\n"):
            raise MalformedCheckpoint("checkpoint must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise MalformedCheckpoint.expected("checkpoint lines", "at least 3", len(lines))
        origin, size_s, root64, *exts = lines
        if not _SIZE.fullmatch(size_s):
            raise MalformedCheckpoint(f"size: expected a decimal without leading zeros, got {size_s!r}")
        try:
            root = canonical_b64decode(root64)
        except ValueError as exc:
            raise MalformedCheckpoint(f"root {exc}: {root64!r}") from None
        return cls(origin, int(size_s), root, tuple(exts))


def sign_checkpoint(cp: Checkpoint, signer: Signer | Iterable[Signer]) -> str:
    """The checkpoint as a full signed note."""
    return sign_note(cp.to_text(), signer)


def verify_checkpoint(note_text: str | bytes, verifiers: Iterable[Verifier | str] | Verifier | str,
                      expected_origin: str | None = None) -> Checkpoint:
    """Verify the note signatures, then parse the checkpoint (and check its origin)."""
    cp = Checkpoint.parse(open_note(note_text, verifiers).text)
    if expected_origin is not None and cp.origin != expected_origin:
        raise OriginMismatch.expected("checkpoint origin", expected_origin, cp.origin)
    return cp
