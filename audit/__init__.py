"""jejak.audit: RFC 9162 Merkle tree, C2SP signed notes and checkpoints, signing keys, offline verification."""

from .errors import VerificationError

__all__ = ["VerificationError"]
