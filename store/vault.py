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
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


#: A data key sealed under the master KEK itself (stores sealed before vault-key generations): nonce ‖ 48 bytes.
LEGACY_SEALED_DEK_BYTES = NONCE_BYTES + 32 + 16
#: A data key sealed under a vault-key generation: 0x01 ‖ generation (uint32, big-endian) ‖ nonce ‖ 48 bytes.
_GENERATION_HEAD = struct.Struct(">BI")


class VaultKeyGone(RuntimeError):
    """A data key is sealed under a vault-key generation whose key file is gone (destroyed by an erasure)."""


class VaultKeys:
    """Generations of the vault key, the key that seals every data key.

    Each generation's key is a random 256-bit key kept *outside the store*, in
    `<keys dir>/vault-<store id>-<generation>.key`, itself sealed under the
    master key-encryption key. An erasure moves every other data key to a new
    generation and then destroys the old generation's file, so no copy of an
    erased data key left behind in the database files (dead rows, the
    PostgreSQL WAL, a backup) can ever be opened again, even with the master
    KEK (see docs/privacy.md)."""

    def __init__(self, directory: Path, store_id: str, kek: bytes) -> None:
        self.directory = Path(directory)
        self.store_id = store_id
        self._kek = AESGCM(kek)
        self._keys: dict[int, AESGCM] = {}

    def path(self, generation: int) -> Path:
        return self.directory / f"vault-{self.store_id}-{generation}.key"

    def _aad(self, generation: int) -> bytes:
        return f"jejak vault key {self.store_id} {generation}".encode()

    def key(self, generation: int) -> AESGCM:
        found = self._keys.get(generation)
        if found is None:
            try:
                data = self.path(generation).read_bytes()
            except FileNotFoundError:
                raise VaultKeyGone(f"vault key generation {generation} is gone ({self.path(generation)})") from None
            found = AESGCM(self._kek.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], self._aad(generation)))
            for older in [g for g in self._keys if g < generation]:
                del self._keys[older]  # an erasure moved every data key on: forget the older keys
            self._keys[generation] = found
        return found

    def create(self, generation: int, *, replace: bool = False) -> None:
        """Write a new generation's key file (`replace`: over one left by an erasure that never committed)."""
        from jejak.audit.keys import write_new_file

        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if replace:
            _shred_file(self.path(generation))
            self._keys.pop(generation, None)
        nonce = os.urandom(NONCE_BYTES)
        write_new_file(self.path(generation), nonce + self._kek.encrypt(nonce, os.urandom(32), self._aad(generation)))

    def destroy_before(self, generation: int) -> list[int]:
        """Destroy every key file of an older generation (overwritten, synced, unlinked); the generations destroyed."""
        destroyed = []
        prefix = f"vault-{self.store_id}-"
        for path in self.directory.glob(f"{prefix}*.key"):
            number = path.name[len(prefix):-len(".key")]
            if number.isdigit() and int(number) < generation:
                _shred_file(path)
                destroyed.append(int(number))
        for number in [g for g in self._keys if g < generation]:
            del self._keys[number]
        return sorted(destroyed)


def _shred_file(path: Path) -> None:
    """Overwrite a key file with random bytes, sync it, unlink it. (On a
    copy-on-write or journaling file system the old blocks may survive the
    overwrite: the file is small and sealed under the master KEK.)"""
    try:
        fd = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        return
    try:
        os.write(fd, os.urandom(max(os.fstat(fd).st_size, 64)))
        os.fsync(fd)
    finally:
        os.close(fd)
    path.unlink(missing_ok=True)


class Sealer:
    """Envelope encryption of subject values under per-subject data keys.

    A data key is sealed under the current vault-key generation (`VaultKeys`);
    without vault keys (and for stores sealed before generations) under the
    master key-encryption key itself."""

    def __init__(self, kek: bytes, vault_keys: VaultKeys | None = None, generation: int = 0) -> None:
        if len(kek) != 32:
            raise ValueError("key-encryption key must be 32 bytes")
        self._kek = AESGCM(kek)
        self._kek_bytes = kek
        self.vault_keys = vault_keys
        self.generation = generation if vault_keys is not None else 0

    def __getstate__(self) -> dict[str, object]:
        # pickled only to start an ingest worker process (over its pipe); it reads the vault key file itself
        keys = self.vault_keys
        return {"kek": self._kek_bytes, "generation": self.generation,
                "vault": None if keys is None else (str(keys.directory), keys.store_id)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        vault = state["vault"]
        keys = None if vault is None else VaultKeys(Path(vault[0]), vault[1], state["kek"])
        self.__init__(state["kek"], keys, state["generation"])  # type: ignore[misc]

    def _wrap(self, generation: int, dek: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        if generation == 0:
            return nonce + self._kek.encrypt(nonce, dek, aad)
        key = self.vault_keys.key(generation)  # type: ignore[union-attr]
        return _GENERATION_HEAD.pack(1, generation) + nonce + key.encrypt(nonce, dek, aad)

    def _unwrap(self, sealed_dek: bytes, aad: bytes) -> bytes:
        if len(sealed_dek) == LEGACY_SEALED_DEK_BYTES:
            return self._kek.decrypt(sealed_dek[:NONCE_BYTES], sealed_dek[NONCE_BYTES:], aad)
        generation = self.generation_of(sealed_dek)
        if self.vault_keys is None:
            raise VaultKeyGone(f"a data key sealed under vault key generation {generation}, and no vault keys")
        body = sealed_dek[_GENERATION_HEAD.size:]
        return self.vault_keys.key(generation).decrypt(body[:NONCE_BYTES], body[NONCE_BYTES:], aad)

    @staticmethod
    def generation_of(sealed_dek: bytes) -> int:
        if len(sealed_dek) == LEGACY_SEALED_DEK_BYTES:
            return 0
        return _GENERATION_HEAD.unpack_from(sealed_dek)[1]

    def seal(self, token: str, kind: str, value: str) -> SealedSubject:
        random = os.urandom(32 + NONCE_BYTES)  # a fresh data key and the value's nonce
        dek, nonce = random[:32], random[32:]
        aad = token.encode()
        sealed_value = nonce + AESGCM(dek).encrypt(nonce, value.encode("utf-8"), aad)
        return SealedSubject(token, kind, self._wrap(self.generation, dek, aad), sealed_value)

    def rewrap(self, token: str, sealed_dek: bytes, generation: int) -> bytes:
        """The same data key sealed under another vault-key generation."""
        aad = token.encode()
        return self._wrap(generation, self._unwrap(sealed_dek, aad), aad)

    def open(self, token: str, sealed_dek: bytes, sealed_value: bytes) -> str:
        aad = token.encode()
        dek = self._unwrap(sealed_dek, aad)
        return AESGCM(dek).decrypt(sealed_value[:NONCE_BYTES], sealed_value[NONCE_BYTES:], aad).decode("utf-8")

    def fingerprint(self) -> str:
        return hmac.new(self._kek_bytes, b"jejak kek fingerprint", hashlib.sha256).hexdigest()[:16]


def is_token(value: object) -> bool:
    return isinstance(value, str) and value.startswith(TOKEN_PREFIX)
