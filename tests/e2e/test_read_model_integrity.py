"""Read models cannot be edited unseen: `jejak verify --read-models` re-derives them from the log and names
the first table and key that differ; a running API checks them periodically (503 for reads served from
them while one differs), forgets its cached answers after `jejak rebuild`, and answers receipts from the
log's own entries. Both stores, real HTTP, the real CLI."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest

from jejak.api.app import create_app
from jejak.api.tokens import create_token
from jejak.generate import write_files
from jejak.ledger import Ledger
from jejak.reports import Reports
from jejak.store.datastore import Store
from jejak.transparency import Transparency
from tests.e2e.conftest import ServerThread, free_port

REASON = {"reason": "audit 7/2024"}


class Site:
    def __init__(self, store: str, settings, facts: list[dict]) -> None:
        self.store_url = store
        self.settings = settings
        self.facts = facts

    def cli(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        env = {**os.environ, "JEJAK_KEYS_DIR": str(self.settings.keys_dir), "JEJAK_STORE": self.store_url}
        return subprocess.run([sys.executable, "-m", "jejak.cli", *args], capture_output=True, text=True, env=env,
                              check=check, timeout=300)

    def sql(self, statement: str, params: tuple = ()) -> int:
        """What someone with database access does: a statement outside jejak; rows changed."""
        if self.store_url.startswith("postgresql://"):
            import psycopg

            with psycopg.connect(self.store_url, autocommit=True) as conn:
                return conn.execute(statement.replace("?", "%s"), params).rowcount
        import sqlite3

        with contextlib.closing(sqlite3.connect(self.store_url)) as conn, conn:
            return conn.execute(statement, params).rowcount

    def verify_read_models(self) -> tuple[int, dict]:
        done = self.cli("verify", "--read-models")
        return done.returncode, orjson.loads(done.stdout.strip().split("\n")[-1])


@pytest.fixture
def site(store_url, make_settings, tmp_path: Path) -> Site:
    path = tmp_path / "facts.jsonl"
    write_files(families=100, seed=11, out_path=str(path), plant=True, expected_path=str(tmp_path / "exp.jsonl"))
    settings = make_settings(store_url)
    with Ledger.open(settings) as ledger, path.open("rb") as lines:
        assert ledger.ingest_lines(lines).rejected == 0
        Reports(ledger).catch_up()
        Transparency(ledger.store, settings).issue_checkpoint()
    return Site(store_url, settings, [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()])


def test_verify_read_models_names_the_first_table_and_key_that_differ(site: Site) -> None:
    code, report = site.verify_read_models()
    assert code == 0 and report["read_models"]["intact"] is True, report
    before = site.cli("anomalies", check=True).stdout

    # deleted anomaly rows: the answers change, the log is intact, only --read-models tells
    assert site.sql("DELETE FROM p_anom_rows WHERE rnk = (SELECT MIN(rnk) FROM p_anom_rows)") > 0
    assert site.cli("anomalies", check=True).stdout != before
    assert site.cli("verify").returncode == 0
    code, report = site.verify_read_models()
    assert code == 1 and report["read_model"] == "p_anom_rows" and report["key"], report
    assert "got none" in report["error"]
    assert site.cli("rebuild").returncode == 0
    assert site.cli("anomalies", check=True).stdout == before
    assert site.verify_read_models()[0] == 0

    # a raised pickup total
    order = next(f for f in site.facts if f["type"] == "pickup.recorded")["disbursement"]
    assert site.sql("UPDATE p_order_totals SET picked_up = 999999999 WHERE order_id = ?", (order,)) == 1
    code, report = site.verify_read_models()
    assert (code, report["read_model"], report["key"]) == (1, "p_order_totals", [order]), report
    assert "picked_up expected" in report["error"] and "got 999999999" in report["error"]
    site.cli("rebuild", check=True)

    # an edited fact row, and a row the log never held
    assert site.sql("UPDATE p_facts SET region = ? WHERE idx = 5", ("3171010001",)) == 1
    code, report = site.verify_read_models()
    assert (code, report["read_model"], report["key"]) == (1, "p_facts", [5]), report
    site.cli("rebuild", check=True)
    site.sql("INSERT INTO p_orders (order_id, kk, program, amount) VALUES (?, ?, ?, ?)", ("ghost", "tk1_x", "PKH", 1))
    code, report = site.verify_read_models()
    assert (code, report["read_model"], report["key"]) == (1, "p_orders", ["ghost"]), report
    assert "expected no such row" in report["error"]
    site.cli("rebuild", check=True)

    # a cached answer of `anomalies --as-of`
    site.cli("anomalies", "--as-of", "2024-06-30", check=True)
    assert site.sql("UPDATE p_anomaly_cache SET body = ?", (b"[]",)) >= 1
    code, report = site.verify_read_models()
    assert (code, report["read_model"]) == (1, "p_anomaly_cache"), report
    site.cli("rebuild", check=True)
    assert site.verify_read_models()[0] == 0


def _wait_for(client: httpx.Client, path: str, status: int) -> httpx.Response:
    """Poll until the answer has `status` (the check runs in the background)."""
    for _attempt in range(600):
        r = client.get(path)
        if r.status_code == status:
            return r
        time.sleep(0.1)
    raise AssertionError(f"{path} never answered {status}: {r.status_code} {r.text}")


def test_a_running_api_finds_tampered_read_models_and_recovers_after_rebuild(site: Site) -> None:
    settings = site.settings.model_copy(update={"read_model_check_interval": 0.3})
    with Ledger.open(settings) as ledger:
        token = create_token(ledger, "watch", "inspector")
    order = next(f for f in site.facts if f["type"] == "disbursement.ordered")
    port = free_port()
    with ServerThread(create_app(settings), port), httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
        assert _wait_for(c, "/healthz", 200).json()["read_models"] in ("ok", "unchecked")
        for _attempt in range(600):
            if c.get("/healthz").json()["read_models"] == "ok":
                break
            time.sleep(0.1)
        good = c.get("/v1/anomalies", params={**REASON, "limit": 1000}).json()["items"]
        site.sql("DELETE FROM p_anom_rows WHERE rnk = (SELECT MIN(rnk) FROM p_anom_rows)")
        health = _wait_for(c, "/healthz", 503)
        assert health.json()["error"] == "read_models_mismatch" and "p_anom_rows" in health.json()["message"]
        for path in ("/v1/anomalies", "/v1/balances", f"/v1/families/{order['kk']}/trail", "/public/v1/summary",
                     "/public/v1/aggregates"):
            r = c.get(path, params=REASON)
            assert r.status_code == 503 and r.json()["error"] == "read_models_mismatch", path
        # answers read from the log itself go on
        assert c.get(f"/v1/facts/{order['id']}", params=REASON).status_code == 200
        assert c.get("/v1/access-log").status_code == 200
        assert c.get("/public/v1/proofs/inclusion", params={"index": 3}).status_code == 200
        assert site.cli("rebuild").returncode == 0
        assert _wait_for(c, "/healthz", 200).status_code == 200
        assert c.get("/v1/anomalies", params={**REASON, "limit": 1000}).json()["items"] == good


def test_after_rebuild_no_answer_cached_before_it_is_served(site: Site) -> None:
    settings = site.settings.model_copy(update={"read_model_check_interval": 0})
    with Ledger.open(settings) as ledger:
        token = create_token(ledger, "cache", "inspector")
    port = free_port()
    with ServerThread(create_app(settings), port), httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
        good_summary = c.get("/public/v1/summary").json()["anomalies"]
        good = c.get("/v1/anomalies", params={**REASON, "limit": 1000}).json()["items"]
        # tampered while the API is down, say: it starts, caches the tampered answers ...
    site.sql("DELETE FROM p_anom_rows")
    port = free_port()
    with ServerThread(create_app(settings), port), httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
        assert c.get("/public/v1/summary").json()["anomalies"] != good_summary
        assert c.get("/v1/anomalies", params={**REASON, "limit": 1000}).json()["items"] != good
        # ... the operator repairs the read models; the API must not keep the answers from before
        assert site.cli("rebuild").returncode == 0
        time.sleep(0.2)  # past the public answers' allowed lag
        assert c.get("/v1/anomalies", params={**REASON, "limit": 1000}).json()["items"] == good
        assert c.get("/public/v1/summary").json()["anomalies"] == good_summary


def test_a_receipt_status_comes_from_the_log_not_from_a_read_model_row(site: Site) -> None:
    settings = site.settings.model_copy(update={"read_model_check_interval": 0})
    with Ledger.open(settings) as ledger:
        token = create_token(ledger, "receipts", "inspector")
    settled = {f["disbursement"] for f in site.facts if f["type"] == "disbursement.settled" and f["status"] == "credited"}
    picked = {f["disbursement"] for f in site.facts if f["type"] in ("pickup.recorded", "funds.returned")}
    orders = {f["id"] for f in site.facts if f["type"] == "disbursement.ordered"}
    order_id = sorted(settled & orders - picked)[0]
    settlement = next(f for f in site.facts if f["type"] == "disbursement.settled" and f["disbursement"] == order_id)
    port = free_port()
    with ServerThread(create_app(settings), port), httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as c:
        code = c.get(f"/v1/receipts/{order_id}", headers={"Authorization": f"Bearer {token}"}).json()["code"]
        before = c.get(f"/public/v1/receipts/{order_id}", params={"code": code}).json()
        assert before["status"] == "credited"
        # an edited read-model row: the settlement "failed"; a fake pickup row pointing at another entry
        body = orjson.loads(bytes(_stored_body(site, settlement["id"])))
        site.sql("UPDATE p_facts SET body = ? WHERE fact_id = ?", (orjson.dumps({**body, "status": "failed"}),
                                                                  settlement["id"]))
        site.sql("INSERT INTO p_facts (idx, fact_id, type, day, ref, body) VALUES (?, ?, ?, ?, ?, ?)",
                 (10**9, "fake", "pickup.recorded", "2024-01-01", order_id, b"{}"))
        site.sql("UPDATE p_facts SET ref = ? WHERE idx = 7", (order_id,))
        after = c.get(f"/public/v1/receipts/{order_id}", params={"code": code})
        assert after.status_code == 200, after.text
        assert after.json() == before


def _stored_body(site: Site, fact_id: str) -> bytes:
    store = Store.open(site.store_url)
    try:
        return store.query_one("SELECT body FROM p_facts WHERE fact_id = ?", (fact_id,))["body"]
    finally:
        store.close()
