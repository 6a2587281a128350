"""End-to-end fixtures for the HTTP APIs: real data, real store, real HTTP.

`deployment` (one per backend and session): generated facts with planted
irregularities, ingested with the Ledger into SQLite or PostgreSQL, a signed
checkpoint, two API tokens, and the app served by uvicorn on a free loopback
port in a background thread.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import httpx
import orjson
import pytest

from tests.conftest import PG_HOST, PG_PORT, PG_USER, _admin_connect

REPO = Path(__file__).resolve().parents[2]
FAMILIES = 120  # the generator plants every anomaly rule from 100 families up
SEED = 7
#: the payment channel the session's reconciler token is bound to
RECONCILER_CHANNEL = "BRI"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Deployment:
    backend: str
    base_url: str
    store: str
    keys_dir: Path
    tokens: dict[str, str]
    facts: list[dict[str, Any]]
    expected: list[dict[str, Any]]
    checkpoint_size: int
    niks: set[str] = field(default_factory=set)
    kks: set[str] = field(default_factory=set)
    companions: set[str] = field(default_factory=set)

    def client(self, role: str | None = None, **kw: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=60, **kw)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = {**os.environ, "JEJAK_KEYS_DIR": str(self.keys_dir), "JEJAK_STORE": self.store}
        return subprocess.run(
            [sys.executable, "-m", "jejak.cli", *args], capture_output=True, text=True, env=env, check=check, timeout=120,
        )

    def facts_of_type(self, kind: str) -> list[dict[str, Any]]:
        return [f for f in self.facts if f["type"] == kind]


class ServerThread:
    def __init__(self, app: Any, port: int) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, name=f"uvicorn-{port}", daemon=True)

    def __enter__(self) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]], list[dict[str, Any]]]:
    from jejak.generate import write_files

    out = tmp_path_factory.mktemp("data")
    facts_path, expected_path = out / "facts.jsonl", out / "expected.jsonl"
    write_files(families=FAMILIES, seed=SEED, out_path=str(facts_path), plant=True, expected_path=str(expected_path))
    facts = [orjson.loads(line) for line in facts_path.read_bytes().splitlines() if line.strip()]
    expected = [orjson.loads(line) for line in expected_path.read_bytes().splitlines() if line.strip()]
    return facts_path, facts, expected


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def deployment(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, generated) -> Iterator[Deployment]:
    facts_path, facts, expected = generated
    with serve(request, tmp_path_factory, facts_path, facts, expected) as dep:
        yield dep


@contextlib.contextmanager
def serve(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, facts_path: Path,
          facts: list[dict[str, Any]], expected: list[dict[str, Any]]) -> Iterator[Deployment]:
    """`facts_path` ingested into a fresh store of the backend `request.param`, checkpointed, served."""
    from jejak.api.app import create_app
    from jejak.api.tokens import create_token
    from jejak.ledger import Ledger
    from jejak.reports import Reports
    from jejak.settings import Settings
    from jejak.transparency import Transparency

    base = tmp_path_factory.mktemp(f"api-{request.param}")
    dbname = None
    if request.param == "sqlite":
        store = str(base / "jejak.db")
    else:
        request.getfixturevalue("pg_server")  # skips (or fails under JEJAK_REQUIRE_SERVICES=1) without PostgreSQL
        dbname = f"jejak_e2e_{uuid.uuid4().hex[:12]}"
        with _admin_connect() as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
        store = f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{dbname}"
    keys_dir = base / "keys"
    # many tests share the session's tokens: no rate limit to run into (tests/e2e/test_api_outage.py tests it)
    settings = Settings(store=store, keys_dir=keys_dir, api_rate_limit="1000000/minute")
    try:
        with Ledger.open(settings) as ledger:
            with facts_path.open("rb") as lines:
                summary = ledger.ingest_lines(lines)
            assert summary.rejected == 0, summary.rejections[:3]
            Reports(ledger).catch_up()
            cp = Transparency(ledger.store, settings).issue_checkpoint()
            tokens = {"inspector": create_token(ledger, "e2e-inspector", "inspector"),
                      "reconciler": create_token(ledger, "e2e-reconciler", "reconciler", channel=RECONCILER_CHANNEL)}
        dep = Deployment(
            backend=request.param, base_url="", store=store, keys_dir=keys_dir, tokens=tokens,
            facts=facts, expected=expected, checkpoint_size=cp.size,
        )
        for f in facts:
            for k in ("nik", "kk"):
                if isinstance(f.get(k), str):
                    (dep.niks if k == "nik" else dep.kks).add(f[k])
            if isinstance(f.get("companion"), str):
                dep.companions.add(f["companion"])
        port = free_port()
        with ServerThread(create_app(settings), port):
            dep.base_url = f"http://127.0.0.1:{port}"
            yield dep
    finally:
        if dbname:
            with _admin_connect() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


@pytest.fixture
def public(deployment: Deployment) -> Iterator[httpx.Client]:
    with deployment.client() as c:
        yield c


@pytest.fixture
def inspector(deployment: Deployment) -> Iterator[httpx.Client]:
    with deployment.client("inspector") as c:
        yield c


@pytest.fixture
def reconciler(deployment: Deployment) -> Iterator[httpx.Client]:
    with deployment.client("reconciler") as c:
        yield c
