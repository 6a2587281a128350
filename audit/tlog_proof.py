"""C2SP tlog-proof (`c2sp.org/tlog-proof@v1`): an entry's inclusion proof and the
signed checkpoint it leads to, cosignatures included, in one offline-verifiable text.

    c2sp.org/tlog-proof@v1
    [extra <base64>]
    index <n>
    <base64 hash>            (zero or more: the RFC 9162 audit path, leaf side first)
    <empty line>
    <checkpoint note, verbatim>
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .checkpoint import Checkpoint, canonical_b64decode, verify_checkpoint
from .errors import MalformedProof
from .merkle import HASH_SIZE, leaf_hash, verify_inclusion
from .note import Verifier

__all__ = ["HEADER", "TlogProof", "format_tlog_proof", "parse_tlog_proof", "verify_tlog_proof", "is_tlog_proof"]

HEADER = "c2sp.org/tlog-proof@v1"
_INDEX = re.compile(r"index (0|[1-9][0-9]{0,19})")


@dataclass(frozen=True)
class TlogProof:
    index: int
    proof: tuple[bytes, ...]
    checkpoint_note: str
    extra: bytes | None = None


def is_tlog_proof(text: str | bytes) -> bool:
    head = HEADER.encode() + b"\n" if isinstance(text, bytes) else HEADER + "\n"
    return text.startswith(head)  # type: ignore[arg-type]


def _b64(what: str, text: str) -> bytes:
    try:
        return canonical_b64decode(text)
    except ValueError as exc:
        raise MalformedProof(f"{what} {exc}: {text[:60]!r}") from None


def format_tlog_proof(index: int, proof: Sequence[bytes], checkpoint_note: str) -> str:
    """The proof text (no `extra` line)."""
    lines = [HEADER, f"index {index}", *(base64.b64encode(h).decode() for h in proof)]
    return "\n".join(lines) + "\n\n" + checkpoint_note


def parse_tlog_proof(text: str | bytes) -> TlogProof:
    """Strictly parse a tlog-proof; raise MalformedProof."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedProof("tlog-proof is not valid UTF-8") from None
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise MalformedProof("tlog-proof: expected an empty line before the checkpoint, found none")
    lines = head.split("\n")
    if lines[0] != HEADER:
        raise MalformedProof(f"tlog-proof first line: expected {HEADER!r}, got {lines[0][:60]!r}")
    pos = 1
    extra = None
    if pos < len(lines) and lines[pos].startswith("extra "):
        extra = _b64("tlog-proof extra data", lines[pos][len("extra "):])
        pos += 1
    if pos >= len(lines) or not _INDEX.fullmatch(lines[pos]):
        got = lines[pos][:60] if pos < len(lines) else "end of header"
        raise MalformedProof(f"tlog-proof index line: expected 'index <n>' without leading zeros, got {got!r}")
    index = int(lines[pos][len("index "):])
    hashes = []
    for i, line in enumerate(lines[pos + 1:]):
        h = _b64(f"tlog-proof hash {i}", line)
        if len(h) != HASH_SIZE:
            raise MalformedProof.expected(f"tlog-proof hash {i} length", HASH_SIZE, len(h))
        hashes.append(h)
    return TlogProof(index, tuple(hashes), note, extra)


def verify_tlog_proof(text: str | bytes, leaf: bytes, log_keys: Iterable[Verifier | str] | Verifier | str,
                      *, expected_origin: str | None = None) -> tuple[TlogProof, Checkpoint]:
    """Check the checkpoint's signature by the log and the leaf's inclusion in it.

    Returns the parsed proof and checkpoint (cosignatures are the caller's
    business: see `policy` checks). Raises a VerificationError."""
    parsed = parse_tlog_proof(text)
    cp = verify_checkpoint(parsed.checkpoint_note, log_keys, expected_origin)
    verify_inclusion(parsed.index, cp.size, leaf_hash(leaf), parsed.proof, cp.root)
    return parsed, cp
