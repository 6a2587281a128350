"""Personal data vault: keyed tokens for lookups, per-subject keys for erasure.

* A *token* replaces a personal value everywhere outside the vault:
  `tk1_` + base32(HMAC-SHA-256(pseudonym key, kind ‖ 0x00 ‖ value))[:32].
  Equal values give equal tokens, so projections and rules work on tokens.
* Each subject (one NIK, one KK, one free text) has its own random 256-bit
  data key (DEK). The clear value is sealed with AES-GCM under the DEK (the
  token is the associated data); the DEK is sealed under the key-encryption key
  (KEK). Both master secrets live outside the store (`jejak.secrets`).
* Erasure deletes the sealed DEK and value and leaves a tombstone, so the value
  can never be decrypted again and a re-delivery cannot bring it back. The log
  keeps only the token, so every hash and proof stays valid.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

TOKEN_PREFIX = "tk1_"
NONCE_BYTES = 12


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode("ascii").rstrip("=").lower()


_B32_PAIRS = tuple(a + b for a in "abcdefghijklmnopqrstuvwxyz234567" for b in "abcdefghijklmnopqrstuvwxyz234567")
_B32_SHIFTS_160 = tuple(range(150, -1, -10))


def _b32_160(data: bytes) -> str:
    """`_b32(data)` for exactly 20 bytes (a token's MAC), ten bits at a time; the
    standard library's base32 encoder is pure Python and several times slower."""
    number = int.from_bytes(data, "big")
    return "".join([_B32_PAIRS[(number >> shift) & 1023] for shift in _B32_SHIFTS_160])


@dataclass(frozen=True)
class SealedSubject:
    token: str
    kind: str
    sealed_dek: bytes
    sealed_value: bytes


class Tokenizer:
    def __init__(self, pseudonym_key: bytes) -> None:
        if len(pseudonym_key) < 32:
            raise ValueError("pseudonym key must be at least 32 bytes")
        self._key = pseudonym_key
        self._cache: dict[tuple[str, str], str] = {}

    def token(self, kind: str, value: str) -> str:
        cached = self._cache.get((kind, value))
        if cached is not None:
            return cached
        mac = hmac.digest(self._key, kind.encode() + b"\x00" + value.encode("utf-8"), "sha256")
        token = TOKEN_PREFIX + _b32_160(mac[:20])
        if len(self._cache) >= 200_000:
            self._cache.clear()  # bounded memory on very large ingests
        self._cache[(kind, value)] = token
        return token

    def __getstate__(self) -> dict[str, object]:
        # pickled only to start an ingest worker process (over its pipe); the cache stays here
        return {"_key": self._key, "_cache": {}}

    def derive(self, label: bytes) -> bytes:
        """A separate 32-byte key for another purpose (e.g. receipt codes)."""
        return hmac.new(self._key, label, hashlib.sha256).digest()

    def fingerprint(self) -> str:
        """Identifies the key without revealing it (stored to detect a wrong key)."""
        return hmac.new(self._key, b"jejak pseudonym key fingerprint", hashlib.sha256).hexdigest()[:16]


class Sealer:
    """Envelope encryption of subject values under per-subject data keys."""

    def __init__(self, kek: bytes) -> None:
        if len(kek) != 32:
            raise ValueError("key-encryption key must be 32 bytes")
        self._kek = AESGCM(kek)
        self._kek_bytes = kek

    def __getstate__(self) -> dict[str, object]:
        # pickled only to start an ingest worker process (over its pipe)
        return {"kek": self._kek_bytes}

    def __setstate__(self, state: dict[str, bytes]) -> None:
        self.__init__(state["kek"])  # type: ignore[misc]

    def seal(self, token: str, kind: str, value: str) -> SealedSubject:
        random = os.urandom(32 + 2 * NONCE_BYTES)  # a fresh data key and two nonces
        dek, n1, n2 = random[:32], random[32 : 32 + NONCE_BYTES], random[32 + NONCE_BYTES :]
        aad = token.encode()
        sealed_dek = n1 + self._kek.encrypt(n1, dek, aad)
        sealed_value = n2 + AESGCM(dek).encrypt(n2, value.encode("utf-8"), aad)
        return SealedSubject(token, kind, sealed_dek, sealed_value)

    def open(self, token: str, sealed_dek: bytes, sealed_value: bytes) -> str:
        aad = token.encode()
        dek = self._kek.decrypt(sealed_dek[:NONCE_BYTES], sealed_dek[NONCE_BYTES:], aad)
        return AESGCM(dek).decrypt(sealed_value[:NONCE_BYTES], sealed_value[NONCE_BYTES:], aad).decode("utf-8")

    def fingerprint(self) -> str:
        return hmac.new(self._kek_bytes, b"jejak kek fingerprint", hashlib.sha256).hexdigest()[:16]


def is_token(value: object) -> bool:
    return isinstance(value, str) and value.startswith(TOKEN_PREFIX)
