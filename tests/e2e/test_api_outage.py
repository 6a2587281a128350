"""A database that goes away answers 503 with Retry-After, never 500, and the API recovers by itself;
a token over its rate gets 429 with Retry-After. Real PostgreSQL, real HTTP."""

from __future__ import annotations

import time

import httpx
import orjson
import pytest

from jejak.api.app import create_app
from jejak.api.tokens import create_token
from jejak.generate import write_files
from jejak.ledger import Ledger
from jejak.reports import Reports
from tests.conftest import _admin_connect
from tests.e2e.conftest import ServerThread, free_port

REASON = {"reason": "case 12/2024"}


def _deploy(store: str, make_settings, tmp_path, **overrides):
    facts = tmp_path / "facts.jsonl"
    write_files(families=12, seed=3, out_path=str(facts))
    settings = make_settings(store, **overrides)
    with Ledger.open(settings) as ledger, facts.open("rb") as lines:
        assert ledger.ingest_lines(lines).rejected == 0
        Reports(ledger).catch_up()
        token = create_token(ledger, "outage", "inspector")
    order = next(f for f in map(orjson.loads, facts.read_bytes().splitlines()) if f["type"] == "disbursement.ordered")
    return settings, token, order


READS = ["/v1/balances", "/v1/anomalies", "/v1/access-log", "/healthz", "/public/v1/summary",
         "/public/v1/aggregates?level=desa"]


def test_postgresql_going_away_is_503_with_retry_after_and_recovers(pg_url, make_settings, tmp_path) -> None:
    settings, token, order = _deploy(pg_url, make_settings, tmp_path, api_retry_after=2)
    dbname = pg_url.rsplit("/", 1)[1]
    port = free_port()
    headers = {"Authorization": f"Bearer {token}"}
    with ServerThread(create_app(settings), port), \
            httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60) as c:
        paths = READS + [f"/v1/facts/{order['id']}", f"/v1/families/{order['kk']}/trail"]
        for path in paths:
            assert c.get(path, params=REASON).status_code == 200, path
        with _admin_connect() as admin:  # the database restarts: no connection is accepted, open ones are cut
            admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false')
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (dbname,))
        try:
            time.sleep(0.2)  # past the public answers' lag, so they too must ask the store
            for path in paths:
                r = c.get(path, params=REASON)
                assert r.status_code == 503, (path, r.status_code, r.text)
                assert 1 <= int(r.headers["retry-after"]) <= 2, path
                assert r.json()["error"] == "unavailable"
        finally:
            with _admin_connect() as admin:
                admin.execute(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true')
        # back: every read answers again once the client waited as told, without a restart of the API
        for path in paths:
            r = c.get(path, params=REASON)
            for _attempt in range(10):
                if r.status_code != 503:
                    break
                time.sleep(int(r.headers["retry-after"]))
                r = c.get(path, params=REASON)
            assert r.status_code == 200, (path, r.text)


def test_a_token_over_its_rate_gets_429_with_retry_after(store_url, make_settings, tmp_path) -> None:
    settings, token, _order = _deploy(store_url, make_settings, tmp_path, api_rate_limit="5/minute")
    with Ledger.open(settings) as ledger:
        other = create_token(ledger, "other", "inspector")
    port = free_port()
    with ServerThread(create_app(settings), port), httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
        first = {"Authorization": f"Bearer {token}"}
        statuses = [c.get("/v1/access-log", headers=first).status_code for _ in range(6)]
        assert statuses == [200] * 5 + [429]
        r = c.get("/v1/balances", params=REASON, headers=first)
        assert r.status_code == 429 and r.json()["error"] == "too_many_requests"
        assert 1 <= int(r.headers["retry-after"]) <= 60
        # per token: another token is not held back; the public API has no token and no limit
        assert c.get("/v1/access-log", headers={"Authorization": f"Bearer {other}"}).status_code == 200
        assert all(c.get("/healthz").status_code == 200 for _ in range(8))


def test_bad_rate_setting_is_named(monkeypatch) -> None:
    from pydantic import ValidationError

    from jejak.settings import Settings

    monkeypatch.setenv("JEJAK_API_RATE_LIMIT", "fast")
    with pytest.raises(ValidationError, match="600/minute"):
        Settings()
