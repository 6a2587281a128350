"""How fresh answers are after new facts: inspector reads exactly, public reads within PUBLIC_LAG_S."""

from __future__ import annotations

import time

import httpx
import orjson

from jejak.api.app import create_app
from jejak.api.deps import PUBLIC_LAG_S
from jejak.api.tokens import create_token
from jejak.generate import write_files
from jejak.ledger import Ledger
from jejak.reports import Reports
from tests.e2e.conftest import ServerThread, free_port


def test_new_facts_reach_inspector_at_once_and_public_within_the_lag(store_url, make_settings, tmp_path):
    facts_path = tmp_path / "facts.jsonl"
    write_files(families=8, seed=5, out_path=str(facts_path))
    lines = [line for line in facts_path.read_bytes().splitlines() if line.strip()]
    later = [orjson.loads(line) for line in lines if b'"disbursement.ordered"' in line][-3:]
    first = [line for line in lines if orjson.loads(line)["id"] not in {f["id"] for f in later}]
    settings = make_settings(store_url)
    with Ledger.open(settings) as ledger:
        assert ledger.ingest_lines(first).rejected == 0
        Reports(ledger).catch_up()
        token = create_token(ledger, "freshness", "inspector")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with ServerThread(create_app(settings), port), httpx.Client(base_url=base, timeout=30) as public, \
            httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {token}"}) as inspector:
        size_before = public.get("/public/v1/summary").json()["log_size"]
        kk = later[0]["kk"]
        trail = inspector.get(f"/v1/families/{kk}/trail", params={"reason": "case 3"}).json()
        assert later[0]["id"] not in {i["fact_id"] for i in trail["items"]}

        with Ledger.open(settings) as ledger:  # another writer
            assert ledger.record(later)[0].status == "accepted"
        t0 = time.monotonic()
        # inspector answers are exact: the new order is in the family's trail at once
        trail = inspector.get(f"/v1/families/{kk}/trail", params={"reason": "case 3"}).json()
        assert later[0]["id"] in {i["fact_id"] for i in trail["items"]}
        # public answers may lag by PUBLIC_LAG_S, not more
        while public.get("/public/v1/summary").json()["log_size"] < size_before + len(later):
            assert time.monotonic() - t0 < PUBLIC_LAG_S + 2.0, "public summary did not catch up"
            time.sleep(0.02)
