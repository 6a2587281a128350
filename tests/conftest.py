"""Shared fixtures: stores on real SQLite files and real PostgreSQL databases.

With JEJAK_REQUIRE_SERVICES=1 (as in CI) a missing PostgreSQL server fails the
run; without it, PostgreSQL-backed parameters are skipped with the reason.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Iterator

import pytest

PG_HOST = os.environ.get("JEJAK_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("JEJAK_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("JEJAK_TEST_PG_USER", "postgres")
REQUIRE_SERVICES = os.environ.get("JEJAK_REQUIRE_SERVICES") == "1"


def _admin_connect():
    import psycopg

    return psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True, connect_timeout=5)


def postgres_available() -> str | None:
    try:
        with _admin_connect():
            return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not available"
        return f"PostgreSQL at {PG_HOST}:{PG_PORT} unavailable: {exc}"


@pytest.fixture(scope="session")
def pg_server() -> str:
    problem = postgres_available()
    if problem:
        if REQUIRE_SERVICES:
            pytest.fail(problem + " (JEJAK_REQUIRE_SERVICES=1)")
        pytest.skip(problem)
    return f"{PG_HOST}:{PG_PORT}"


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards."""
    with fresh_pg_database() as url:
        yield url


@contextlib.contextmanager
def fresh_pg_database() -> Iterator[str]:
    name = f"jejak_test_{uuid.uuid4().hex[:12]}"
    with _admin_connect() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with _admin_connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return str(tmp_path / "jejak.db")


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return str(tmp_path / "jejak.db")
    return request.getfixturevalue("pg_url")


@pytest.fixture
def make_settings(tmp_path: Path):
    """Settings for a store with its own keys directory under tmp_path."""
    from jejak.settings import Settings

    def make(store: str, **overrides):
        return Settings(store=store, keys_dir=tmp_path / "keys", **overrides)

    return make
