"""All configuration in one place (environment variables `JEJAK_*`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_STORE = "./jejak.db"


class Settings(BaseSettings):
    # An empty variable (`JEJAK_KEYS_DIR=`) means unset, not "the current directory".
    model_config = SettingsConfigDict(env_prefix="JEJAK_", extra="ignore", env_ignore_empty=True)

    #: `./jejak.db`, `sqlite:///path`, or `postgresql://user@host:port/db`.
    store: str = DEFAULT_STORE
    #: `dev` creates missing secrets on first use; `prod` refuses to start without them.
    profile: Literal["dev", "prod"] = "dev"
    #: Directory holding the master secrets and the checkpoint signing keys.
    #: Default: beside an SQLite store (`<file>.keys`), else `./jejak-keys`.
    keys_dir: Path | None = None
    #: Alternatively the two master secrets themselves (hex, 32 bytes each).
    pseudonym_key: str | None = Field(default=None, repr=False)
    kek: str | None = Field(default=None, repr=False)
    #: Directory of the vault-key generations (written and destroyed by jejak, shared by
    #: every process of a store; see docs/privacy.md). Default: the keys directory.
    vault_keys_dir: Path | None = None
    #: Checkpoint origin line (C2SP tlog-checkpoint): identifies this log.
    origin: str = "jejak.local/bansos"
    #: Name of the checkpoint signing key.
    key_name: str = "jejak.local/bansos"

    # Anomaly thresholds (SPEC §4 defaults).
    companion_families: int = 5
    unclaimed_days: int = 90

    #: A line longer than this (bytes, newline excluded) is rejected as
    #: `line_too_long` without being held in memory whole.
    max_line_bytes: int = Field(default=1 << 20, ge=1024)

    # Ingest batching: facts per transaction.
    batch_size: int = 5000
    #: Processes that parse, validate and protect ingest batches while this one
    #: plans and writes them (0: all in this process). On two cores one was as
    #: fast as two, on either store.
    ingest_workers: int = Field(default=1, ge=0, le=16)

    def resolved_keys_dir(self) -> Path:
        if self.keys_dir is not None:
            return self.keys_dir
        from jejak.store.url import parse_store_url

        url = parse_store_url(self.store)
        if url.kind == "sqlite" and url.path != ":memory:":
            return Path(url.path + ".keys")
        return Path("./jejak-keys")

    def resolved_vault_keys_dir(self) -> Path:
        return self.vault_keys_dir if self.vault_keys_dir is not None else self.resolved_keys_dir()
