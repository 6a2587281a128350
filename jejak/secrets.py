"""Master secrets: the pseudonym key and the key-encryption key.

They never live in the store. Sources, in order: settings (`JEJAK_PSEUDONYM_KEY`,
`JEJAK_KEK`, hex), else files in the keys directory (`pseudonym.key`,
`kek.key`, raw 32 bytes, mode 0600). In the `dev` profile missing files are
created; in `prod` a missing secret is an error that says what to provide.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from jejak.audit.keys import write_new_file
from jejak.settings import Settings


class SecretsError(RuntimeError):
    pass


@dataclass(frozen=True)
class MasterSecrets:
    pseudonym_key: bytes
    kek: bytes

    def __repr__(self) -> str:  # never print secrets
        return "MasterSecrets(<hidden>)"


def write_secret_file(path: Path, data: bytes) -> None:
    """Create a 0600 secret file atomically (FileExistsError if it exists)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_new_file(path, data)


def _from_hex(name: str, value: str) -> bytes:
    try:
        data = bytes.fromhex(value)
    except ValueError:
        raise SecretsError(f"{name} must be 64 hex characters (32 bytes)") from None
    if len(data) != 32:
        raise SecretsError(f"{name} must be 32 bytes, got {len(data)}")
    return data


def missing_keys_dir(settings: Settings) -> str:
    """The message for a keys directory that does not exist where it is looked for."""
    return (f"no keys directory {settings.resolved_keys_dir()}: set JEJAK_KEYS_DIR to the keys this store "
            "was created with (only `jejak ingest` and `jejak init` create keys)")


def _load_or_create(settings: Settings, env_name: str, value: str | None, filename: str, create: bool) -> bytes:
    if value:
        return _from_hex(env_name, value)
    path = settings.resolved_keys_dir() / filename
    if not create and not path.parent.is_dir():
        raise SecretsError(missing_keys_dir(settings))
    if path.exists():
        data = path.read_bytes()
        if len(data) != 32:
            raise SecretsError(f"secret file {path} is damaged: expected 32 bytes, got {len(data)}")
        return data
    if settings.profile != "dev" or not create:
        raise SecretsError(
            f"missing secret: set {env_name} (64 hex characters) or place a 32-byte file at {path} "
            + ("(the prod profile never creates secrets)" if create else
               "(only `jejak ingest` and `jejak init` create secrets; `jejak secrets init --dir DIR` makes a set)")
        )
    data = os.urandom(32)
    try:
        write_secret_file(path, data)
    except FileExistsError:  # another process created it first
        return path.read_bytes()
    return data


def load_master_secrets(settings: Settings, *, create: bool = True) -> MasterSecrets:
    """The master secrets; `create=False` never creates a file (nor the directory)."""
    return MasterSecrets(
        pseudonym_key=_load_or_create(settings, "JEJAK_PSEUDONYM_KEY", settings.pseudonym_key, "pseudonym.key", create),
        kek=_load_or_create(settings, "JEJAK_KEK", settings.kek, "kek.key", create),
    )


SECRET_FILES = ("pseudonym.key", "kek.key")


def init_secrets_dir(directory: Path, key_name: str) -> dict[str, list[str]]:
    """Create every secret a deployment needs in `directory` (0700; files 0600):
    the two master secrets and the checkpoint key ring. A file that exists is
    kept as it is, never overwritten."""
    from jejak.audit.keys import KEY_FILE_NAME, KeyRing

    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    done: dict[str, list[str]] = {"created": [], "kept": []}
    for name in SECRET_FILES:
        try:
            write_secret_file(directory / name, os.urandom(32))
            done["created"].append(name)
        except FileExistsError:
            done["kept"].append(name)
    ring = directory / KEY_FILE_NAME
    done["kept" if ring.exists() else "created"].append(KEY_FILE_NAME)
    KeyRing.load_or_create(ring, key_name)
    return done
