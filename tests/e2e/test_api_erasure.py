"""An erasure recorded by another process reaches a running API at once.

The API keeps opened clear values in memory between requests; an erasure
(`jejak erase`, another process) appends to the log, and the next request must
no longer show the erased NIK, only its token.
"""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import orjson

from jejak.api.app import create_app
from jejak.api.tokens import create_token
from jejak.generate import write_files
from jejak.ledger import Ledger
from jejak.reports import Reports
from tests.e2e.conftest import ServerThread, free_port


def test_erasure_by_another_process_hides_the_nik_from_a_running_api(store_url, make_settings, tmp_path):
    facts_path = tmp_path / "facts.jsonl"
    write_files(families=6, seed=11, out_path=str(facts_path))
    facts = [orjson.loads(line) for line in facts_path.read_bytes().splitlines() if line.strip()]
    order = next(f for f in facts if f["type"] == "disbursement.ordered")
    settings = make_settings(store_url)
    with Ledger.open(settings) as ledger:
        with facts_path.open("rb") as lines:
            assert ledger.ingest_lines(lines).rejected == 0
        Reports(ledger).catch_up()
        token = create_token(ledger, "erasure-test", "inspector")

    port = free_port()
    with ServerThread(create_app(settings), port), httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"}, timeout=30) as api:
        url, params = f"/v1/people/{order['nik']}/trail", {"reason": "case 17/2026"}
        before = api.get(url, params=params)
        assert before.status_code == 200 and order["nik"] in before.text

        env = {**os.environ, "JEJAK_STORE": store_url, "JEJAK_KEYS_DIR": str(settings.keys_dir)}
        erased = subprocess.run([sys.executable, "-m", "jejak.cli", "erase", order["nik"], "--order", "UU27/1"],
                                capture_output=True, text=True, env=env, timeout=120)
        assert erased.returncode == 0, erased.stderr

        family = api.get(f"/v1/families/{order['kk']}/trail", params=params)
        assert family.status_code == 200
        assert order["nik"] not in family.text
        mine = [i["fact"] for i in family.json()["items"] if i["fact_id"] == order["id"]]
        assert mine and mine[0]["nik"].startswith("tk1_")  # only the token is left
