"""Store URL parsing: an SQLite file path or a PostgreSQL URL."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlparse


@dataclass(frozen=True)
class StoreURL:
    kind: str  # "sqlite" | "postgresql"
    path: str = ""
    dbname: str = ""
    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "postgres"
    password: str = ""

    def describe(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite:{self.path}"
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"


class StoreURLError(ValueError):
    pass


def parse_store_url(text: str) -> StoreURL:
    if text.startswith(("postgresql://", "postgres://")):
        u = urlparse(text)
        dbname = unquote(u.path.lstrip("/"))
        if not dbname:
            raise StoreURLError(f"PostgreSQL store URL needs a database name: {text!r}")
        return StoreURL(
            kind="postgresql",
            dbname=dbname,
            host=u.hostname or "127.0.0.1",
            port=u.port or 5432,
            user=unquote(u.username) if u.username else "postgres",
            password=unquote(u.password) if u.password else "",
        )
    if text.startswith("sqlite:///"):
        return StoreURL(kind="sqlite", path=text[len("sqlite:///"):] or ":memory:")
    if "://" in text:
        raise StoreURLError(f"unsupported store URL {text!r}: use a file path, sqlite:///PATH or postgresql://…")
    return StoreURL(kind="sqlite", path=text)
