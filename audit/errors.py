"""One exception family for every audit/verification failure.

Verifiers return None on success and raise a subclass of VerificationError.
"""

from __future__ import annotations

__all__ = [
    "VerificationError",
    "RootMismatch",
    "InvalidProof",
    "SignatureInvalid",
    "UnknownKey",
    "MalformedKey",
    "MalformedNote",
    "MalformedCheckpoint",
    "OriginMismatch",
    "MalformedExport",
    "ChainBroken",
    "InconsistentCheckpoints",
    "MissingNode",
    "MalformedTile",
    "MalformedProof",
    "show",
]


def show(value: object) -> str:
    """Render a value for an error message (bytes as hex)."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex() or "<empty>"
    return repr(value) if isinstance(value, str) else str(value)


class VerificationError(Exception):
    """Base class. `index` is the first bad log index when one is known."""

    def __init__(self, message: str, *, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index

    @classmethod
    def expected(cls, what: str, expected: object, got: object, *, index: int | None = None) -> "VerificationError":
        """Build an error whose message reads "<what>: expected X, got Y"."""
        return cls(f"{what}: expected {show(expected)}, got {show(got)}", index=index)


class RootMismatch(VerificationError):
    """A recomputed Merkle root differs from the one claimed."""


class InvalidProof(VerificationError):
    """A proof is structurally wrong (sizes, lengths, indexes)."""


class SignatureInvalid(VerificationError):
    """A signature from a known key does not verify."""


class UnknownKey(VerificationError):
    """No signature from any trusted key was found."""


class MalformedKey(VerificationError):
    """A signer or verifier key text cannot be parsed or its key id is wrong."""


class MalformedNote(VerificationError):
    """A signed note does not follow the C2SP signed-note format."""


class MalformedCheckpoint(VerificationError):
    """A checkpoint body does not follow the C2SP tlog-checkpoint format."""


class OriginMismatch(MalformedCheckpoint):
    """The checkpoint names a different log origin than expected."""


class MalformedExport(VerificationError):
    """An export line is unparsable or out of sequence."""


class ChainBroken(VerificationError):
    """A hash-chain link does not match its recomputation."""


class InconsistentCheckpoints(VerificationError):
    """Two checkpoints cannot both describe the same append-only log."""


class MissingNode(VerificationError):
    """Node storage lacks a tree node that must exist for the given size."""


class MalformedTile(VerificationError):
    """A tile or entry bundle has the wrong size or cannot be decoded."""


class MalformedProof(VerificationError):
    """A proof file does not follow its format (e.g. C2SP tlog-proof)."""
