"""C2SP tlog-cosignature v1 (Ed25519 `cosignature/v1`).

A cosignature is a note signature line on a checkpoint:
`— <name> base64(key id ‖ u64 big-endian timestamp ‖ Ed25519 signature)`, the
signature over "cosignature/v1\\ntime <timestamp>\\n" followed by the whole
checkpoint body. Witness keys are vkeys of type 0x04 whose key id is
SHA-256(name ‖ "\\n" ‖ 0x04 ‖ public key)[:4].
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .errors import MalformedKey, MalformedNote, SignatureInvalid
from .note import (
    TypedEd25519Key,
    SIG_PREFIX,
    Signature,
    decode_key_fields,
    parse_signature_line,
    typed_key,
)

__all__ = [
    "ALG_COSIGNATURE_V1",
    "COSIGNATURE_HEADER",
    "MAX_TIMESTAMP",
    "CosignatureVerifier",
    "CosignatureSigner",
    "Cosignature",
    "cosigned_message",
    "parse_cosignature_line",
    "cosignature_from",
]

ALG_COSIGNATURE_V1 = 0x04
COSIGNATURE_HEADER = "cosignature/v1"
MAX_TIMESTAMP = (1 << 63) - 1
_SIG_LEN = 4 + 8 + 64  # key id ‖ timestamp ‖ Ed25519 signature
_KIND = "Ed25519 cosignature/v1 witness key"


def cosigned_message(checkpoint_text: str, timestamp: int) -> bytes:
    """The bytes a cosigner signs: header line, time line, then the checkpoint body."""
    if not 0 <= timestamp <= MAX_TIMESTAMP:
        raise ValueError(f"timestamp: expected 0 <= t <= 2^63-1, got {timestamp}")
    if not checkpoint_text.endswith("\n"):
        raise MalformedNote("checkpoint body must end with a newline")
    return f"{COSIGNATURE_HEADER}\ntime {timestamp}\n{checkpoint_text}".encode("utf-8")


@dataclass(frozen=True)
class Cosignature:
    """A parsed cosignature line (not yet verified)."""

    name: str
    key_id: int
    timestamp: int
    signature: bytes  # the 64-byte Ed25519 signature

    def line(self) -> str:
        raw = self.key_id.to_bytes(4, "big") + self.timestamp.to_bytes(8, "big") + self.signature
        return f"{SIG_PREFIX}{self.name} {base64.b64encode(raw).decode()}\n"


def parse_cosignature_line(line: str) -> Cosignature:
    """A `— <name> <base64>` line (trailing newline optional) holding a 72-byte timestamped signature."""
    sig, raw = parse_signature_line(line[:-1] if line.endswith("\n") else line)
    return cosignature_from(sig, raw)


def cosignature_from(sig: Signature, raw: bytes) -> Cosignature:
    """The cosignature of a parsed note signature line (see `note.split_note`)."""
    if len(raw) + 4 != _SIG_LEN:
        raise MalformedNote(f"cosignature by {sig.name}: expected {_SIG_LEN} bytes, got {len(raw) + 4}")
    timestamp = int.from_bytes(raw[:8], "big")
    if timestamp > MAX_TIMESTAMP:
        raise MalformedNote(f"cosignature by {sig.name}: timestamp beyond 2^63-1")
    return Cosignature(sig.name, sig.key_id, timestamp, raw[8:])


class CosignatureVerifier(TypedEd25519Key):
    """A witness's cosignature/v1 verifier key: `<name>+<hex key id>+<base64(0x04 ‖ public key)>`
    (a key of another type, e.g. a log's 0x01 key, is refused)."""

    ALG = ALG_COSIGNATURE_V1
    KIND = _KIND

    def key_text(self) -> str:
        key64 = base64.b64encode(bytes([ALG_COSIGNATURE_V1]) + self.public_key).decode()
        return f"{self.name}+{self.key_id:08x}+{key64}"

    def matches(self, cosignature: Cosignature | Signature) -> bool:
        """Whether a signature line claims to be by this key (same name and key id)."""
        return (cosignature.name, cosignature.key_id) == (self.name, self.key_id)

    def verify(self, checkpoint_text: str, cosignature: Cosignature | str) -> int:
        """Return the cosignature's timestamp, or raise SignatureInvalid / MalformedNote."""
        if isinstance(cosignature, str):
            cosignature = parse_cosignature_line(cosignature)
        if not self.matches(cosignature):
            raise SignatureInvalid(
                f"cosignature key: expected {self.name}+{self.key_id:08x}, "
                f"got {cosignature.name}+{cosignature.key_id:08x}")
        try:
            self._key.verify(cosignature.signature, cosigned_message(checkpoint_text, cosignature.timestamp))
        except InvalidSignature:
            raise SignatureInvalid(
                f"cosignature by {self.name}+{self.key_id:08x} does not verify") from None
        return cosignature.timestamp

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CosignatureVerifier) and (self.name, self.public_key) == (other.name, other.public_key)

    def __hash__(self) -> int:
        return hash((self.name, self.public_key))

    def __repr__(self) -> str:
        return f"CosignatureVerifier({self.key_text()!r})"


class CosignatureSigner:
    """A witness's cosigning key. Its repr never shows the private key.

    Key text: `PRIVATE+KEY+<name>+<hex key id>+<base64(0x04 ‖ 32-byte seed)>`."""

    def __init__(self, name: str, seed: bytes) -> None:
        if len(seed) != 32:
            raise MalformedKey(f"private key: expected 32-byte seed, got {len(seed)} bytes")
        self._private = Ed25519PrivateKey.from_private_bytes(seed)
        public = self._private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.verifier = CosignatureVerifier(name, public)
        self.name = name
        self.key_id = self.verifier.key_id

    @classmethod
    def generate(cls, name: str) -> "CosignatureSigner":
        return cls(name, Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()))

    @classmethod
    def from_key_text(cls, text: str) -> "CosignatureSigner":
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise MalformedKey("cosigner key: expected PRIVATE+KEY+<name>+<id>+<key>")
        kid, key = decode_key_fields(*parts[2:])
        signer = cls(parts[2], typed_key(key, ALG_COSIGNATURE_V1, _KIND))
        if signer.key_id != kid:
            raise MalformedKey(f"cosigner key id: expected {signer.key_id:08x}, got {kid:08x}")
        return signer

    def key_text(self) -> str:
        """The private key text. Secret: store with mode 0600, never log it."""
        seed = self._private.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
        key64 = base64.b64encode(bytes([ALG_COSIGNATURE_V1]) + seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{key64}"

    def verifier_key_text(self) -> str:
        return self.verifier.key_text()

    def cosign(self, checkpoint_text: str, timestamp: int | None = None) -> str:
        """The cosignature line (ending in a newline) on checkpoint body `checkpoint_text`."""
        if timestamp is None:
            timestamp = int(time.time())
        signature = self._private.sign(cosigned_message(checkpoint_text, timestamp))
        return Cosignature(self.name, self.key_id, timestamp, signature).line()

    def __repr__(self) -> str:
        return f"CosignatureSigner(name={self.name!r}, key_id={self.key_id:08x})"
