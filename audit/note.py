"""C2SP signed-note with Ed25519 keys (compatible with golang.org/x/mod/sumdb/note)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import MalformedKey, MalformedNote, SignatureInvalid, UnknownKey

__all__ = [
    "ALG_ED25519",
    "SIG_PREFIX",
    "MAX_SIGNATURES",
    "key_id",
    "is_valid_name",
    "Signer",
    "Verifier",
    "Signature",
    "NoteText",
    "sign_note",
    "split_note",
    "parse_signature_line",
    "split_key_text",
    "decode_key_fields",
    "typed_key",
    "open_note",
    "as_verifiers",
]

ALG_ED25519 = 0x01
SIG_PREFIX = "\u2014 "  # em dash, space
MAX_SIGNATURES = 100
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")
_BAD_TEXT = re.compile(r"[\x00-\x09\x0b-\x1f]")  # ASCII controls other than newline


def key_id(name: str, key: bytes) -> int:
    """SHA-256(name ‖ "\\n" ‖ key)[:4] as a big-endian integer; key includes the algorithm byte."""
    return int.from_bytes(hashlib.sha256(name.encode() + b"\n" + key).digest()[:4], "big")


def is_valid_name(name: str) -> bool:
    """Key names are non-empty, without whitespace and without '+'."""
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def decode_key_fields(name: str, hex_id: str, key64: str) -> tuple[int, bytes]:
    """(key id, key material with its leading type byte) of a key's three text fields."""
    if not is_valid_name(name):
        raise MalformedKey(f"invalid key name {name!r}")
    if not _HEX8.fullmatch(hex_id):
        raise MalformedKey(f"key id: expected 8 hex digits, got {hex_id!r}")
    try:
        key = _b64decode(key64)
    except (binascii.Error, ValueError, UnicodeEncodeError) as e:
        raise MalformedKey(f"key material is not valid base64: {e}") from None
    if not key:
        raise MalformedKey("key material is empty")
    return int(hex_id, 16), key


def typed_key(key: bytes, alg: int, what: str) -> bytes:
    """The 32-byte Ed25519 key of `alg ‖ key`, or MalformedKey naming the type found."""
    if key[0] != alg:
        raise MalformedKey(f"key type: expected 0x{alg:02x} ({what}), got 0x{key[0]:02x}")
    if len(key) != 33:
        raise MalformedKey(f"key material: expected 0x{alg:02x} ‖ 32 bytes (Ed25519), got {len(key)} bytes")
    return key[1:]


def split_key_text(text: str) -> tuple[str, int, bytes]:
    """(name, key id, key material with its type byte) of a vkey `<name>+<hex id>+<base64>`."""
    parts = text.strip().split("+", 2)
    if len(parts) != 3:
        raise MalformedKey(f"verifier key: expected <name>+<id>+<key>, got {len(parts)} fields")
    return (parts[0], *decode_key_fields(*parts))


def _parse_key_fields(name: str, hex_id: str, key64: str) -> tuple[int, bytes]:
    kid, key = decode_key_fields(name, hex_id, key64)
    return kid, typed_key(key, ALG_ED25519, "Ed25519 signed note")


class TypedEd25519Key:
    """An Ed25519 verifier key of one signature type (`ALG`, the vkey's first byte):
    `<name>+<hex key id>+<base64(ALG ‖ public key)>`, key id = SHA-256(name ‖ "\n" ‖ ALG ‖ key)[:4]."""

    ALG: int
    KIND: str

    def __init__(self, name: str, public_key: bytes) -> None:
        if not is_valid_name(name):
            raise MalformedKey(f"invalid key name {name!r}")
        if len(public_key) != 32:
            raise MalformedKey(f"public key: expected 32 bytes, got {len(public_key)}")
        self.name = name
        self.public_key = public_key
        self.key_id = key_id(name, bytes([self.ALG]) + public_key)
        self._key = Ed25519PublicKey.from_public_bytes(public_key)

    @classmethod
    def from_key_text(cls, text: str):
        """Parse a vkey of this type; a key of any other type is refused."""
        name, kid, key = split_key_text(text)
        v = cls(name, typed_key(key, cls.ALG, cls.KIND))
        if v.key_id != kid:
            raise MalformedKey(f"verifier key id: expected {v.key_id:08x}, got {kid:08x}")
        return v


class Verifier(TypedEd25519Key):
    """An Ed25519 note verifier: `<name>+<hex key id>+<base64(0x01 ‖ public key)>`."""

    ALG = ALG_ED25519
    KIND = "Ed25519 signed note"

    def key_text(self) -> str:
        key64 = base64.b64encode(bytes([ALG_ED25519]) + self.public_key).decode()
        return f"{self.name}+{self.key_id:08x}+{key64}"

    def verify(self, msg: bytes, sig: bytes) -> None:
        """Raise SignatureInvalid unless `sig` is a valid Ed25519 signature of msg."""
        try:
            self._key.verify(sig, msg)
        except InvalidSignature:
            raise SignatureInvalid(f"signature by {self.name}+{self.key_id:08x} does not verify") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Verifier) and (self.name, self.public_key) == (other.name, other.public_key)

    def __hash__(self) -> int:
        return hash((self.name, self.public_key))

    def __repr__(self) -> str:
        return f"Verifier({self.key_text()!r})"


class Signer:
    """An Ed25519 note signer. Its repr never shows the private key."""

    def __init__(self, name: str, seed: bytes) -> None:
        if not is_valid_name(name):
            raise MalformedKey(f"invalid key name {name!r}")
        if len(seed) != 32:
            raise MalformedKey(f"private key: expected 32-byte seed, got {len(seed)} bytes")
        self._private = Ed25519PrivateKey.from_private_bytes(seed)
        pub = self._private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.verifier = Verifier(name, pub)
        self.name = name
        self.key_id = self.verifier.key_id

    @classmethod
    def generate(cls, name: str) -> "Signer":
        raw = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
        return cls(name, raw)

    @classmethod
    def from_key_text(cls, text: str) -> "Signer":
        parts = text.strip().split("+", 4)
        if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
            raise MalformedKey("signer key: expected PRIVATE+KEY+<name>+<id>+<key>")
        kid, seed = _parse_key_fields(*parts[2:])
        s = cls(parts[2], seed)
        if s.key_id != kid:
            raise MalformedKey(f"signer key id: expected {s.key_id:08x}, got {kid:08x}")
        return s

    def key_text(self) -> str:
        """The private key text. Secret: store with mode 0600, never log it."""
        seed = self._private.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
        key64 = base64.b64encode(bytes([ALG_ED25519]) + seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{key64}"

    def verifier_key_text(self) -> str:
        return self.verifier.key_text()

    def sign(self, text: str) -> str:
        """The signature line (with trailing newline) for note text `text`."""
        sig = self._private.sign(text.encode("utf-8"))
        b64 = base64.b64encode(self.key_id.to_bytes(4, "big") + sig).decode()
        return f"{SIG_PREFIX}{self.name} {b64}\n"

    def __repr__(self) -> str:
        return f"Signer(name={self.name!r}, key_id={self.key_id:08x})"


@dataclass(frozen=True)
class Signature:
    name: str
    key_id: int
    base64: str


@dataclass(frozen=True)
class NoteText:
    """An opened note: its text (ending in newline) and its signatures."""

    text: str
    sigs: tuple[Signature, ...]
    unverified_sigs: tuple[Signature, ...] = ()


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise MalformedNote("note text must end with a newline")
    if _BAD_TEXT.search(text):
        raise MalformedNote("note text contains an ASCII control character other than newline")


def sign_note(text: str, signers: Iterable[Signer] | Signer) -> str:
    """Return `text`, a blank line, and one signature line per signer."""
    if isinstance(signers, Signer):
        signers = [signers]
    signers = list(signers)
    if not signers:
        raise ValueError("sign_note needs at least one signer")
    _check_text(text)
    if "\n\n" in text:
        raise MalformedNote("note text must not contain an empty line")
    return text + "\n" + "".join(s.sign(text) for s in signers)


def as_verifiers(keys: Iterable[Verifier | str] | Verifier | str) -> dict[tuple[str, int], Verifier]:
    """Index verifiers (objects or verifier key texts) by (name, key id)."""
    if isinstance(keys, (Verifier, str)):
        keys = [keys]
    out: dict[tuple[str, int], Verifier] = {}
    for k in keys:
        v = Verifier.from_key_text(k) if isinstance(k, str) else k
        prev = out.setdefault((v.name, v.key_id), v)
        if prev != v:
            raise MalformedKey(f"two different keys share name {v.name!r} and key id {v.key_id:08x}")
    return out


def split_note(note: str | bytes) -> tuple[str, list[tuple[Signature, bytes]]]:
    """The text of a signed note (ending in newline) and its signature lines, each
    as (Signature, raw signature bytes without the key id), nothing verified."""
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedNote("note is not valid UTF-8") from None
    if _BAD_TEXT.search(note):
        raise MalformedNote("note contains an ASCII control character other than newline")
    split = note.rfind("\n\n")
    if split < 0:
        raise MalformedNote("no blank line before the signature block")
    text, block = note[: split + 1], note[split + 2:]
    if not block or not block.endswith("\n"):
        raise MalformedNote("signature block must be non-empty and end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNote(f"too many signatures: expected at most {MAX_SIGNATURES}, got {len(lines)}")
    return text, [parse_signature_line(line) for line in lines]


def parse_signature_line(line: str) -> tuple[Signature, bytes]:
    """One `— <name> base64(key id ‖ signature)` line (without its newline)."""
    if not line.startswith(SIG_PREFIX):
        raise MalformedNote(f"signature line must start with an em dash and space, got {line[:20]!r}")
    name, _, b64 = line[len(SIG_PREFIX):].partition(" ")
    try:
        raw = _b64decode(b64)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raw = b""
    if not is_valid_name(name) or not b64 or len(raw) < 5:
        raise MalformedNote(f"malformed signature line for {name!r}")
    return Signature(name, int.from_bytes(raw[:4], "big"), b64), raw[4:]


def open_note(note: str | bytes, verifiers: Iterable[Verifier | str] | Verifier | str) -> NoteText:
    """Parse a signed note and verify it; at least one trusted signature is required.

    Signatures by unknown keys are ignored; a bad signature by a known key raises.
    """
    known = as_verifiers(verifiers)
    text, lines = split_note(note)
    msg = text.encode("utf-8")
    sigs: list[Signature] = []
    unverified: list[Signature] = []
    seen: set[tuple[str, int]] = set()
    for entry, sig in lines:
        v = known.get((entry.name, entry.key_id))
        if v is None:
            if entry not in unverified:
                unverified.append(entry)
            continue
        if (entry.name, entry.key_id) in seen:
            continue
        seen.add((entry.name, entry.key_id))
        v.verify(msg, sig)
        sigs.append(entry)
    if not sigs:
        trusted = ", ".join(f"{n}+{k:08x}" for n, k in known) or "<none>"
        got = ", ".join(f"{s.name}+{s.key_id:08x}" for s in unverified) or "<none>"
        raise UnknownKey(f"no trusted signature: expected one of [{trusted}], got [{got}]")
    return NoteText(text, tuple(sigs), tuple(unverified))
