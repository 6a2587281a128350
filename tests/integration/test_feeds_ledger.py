"""Kafka feeds with the REAL ledger (SQLite and PostgreSQL stores) and a real broker (Tansu).

Round trip: generated registry + orders → Publisher → a fake bank/Pos reads its
disbursement topics and answers with CloudEvents settlements and pickups →
Consumer → balances, anomalies and reconciliation show exactly what the bank did.

Each test gets a broker of its own (``restartable_tansu``), so the real topic
names (``jejak.disbursements.BRI``, ``jejak.settlements``, ``jejak.rejects``)
and the default consumer group are used as in production.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest

from jejak.feeds.cloudevents import OUTBOUND_TYPES, decode, encode
from jejak.feeds.consumer import Consumer
from jejak.feeds.publisher import Publisher
from jejak.feeds.reconcile import reconcile
from jejak.generate import write_files
from jejak.ledger import Ledger
from jejak.projections.readmodels import load_fact_rows
from jejak.reports import Reports
from tests.integration.test_feeds_kafka import WAIT, produce, read_topic

REPO = Path(__file__).resolve().parents[2]


def backend(url: str) -> str:
    return "postgresql" if url.startswith("postgresql") else "sqlite"
KEEP = {"rates.set", "eligibility.decided", "companion.assigned", "disbursement.ordered"}
CHANNELS = ("BRI", "BNI", "MANDIRI", "BTN", "BSI", "POS")
SRC = {ch: {"kind": "pos", "id": "posind"} if ch == "POS" else {"kind": "bank", "id": ch} for ch in CHANNELS}
CE_SOURCE = {ch: ("pos/" if ch == "POS" else "bank/") + ch for ch in CHANNELS}
GHOST_ORDER = "kemensos:ord:2024-T3:999999"


def registry_and_orders(tmp_path: Path, families: int = 10, seed: int = 1) -> list[bytes]:
    """The generated file without settlements, pickups, returns, ASN and death records,
    and without re-issued orders (`…:r1`): each re-issues an order whose settlement
    failed, and without that settlement the two would be a duplicate payout."""
    path = tmp_path / "facts.jsonl"
    write_files(families=families, seed=seed, out_path=path)
    return [line for line in path.read_bytes().splitlines()
            if line.strip() and (fact := orjson.loads(line))["type"] in KEEP and not fact["id"].endswith(":r1")]


def plus_days(at: str, days: int) -> str:
    from datetime import datetime, timedelta

    return (datetime.fromisoformat(at) + timedelta(days=days)).isoformat()


def settled(order: dict[str, Any], status: str, amount: int, sid: str | None = None) -> dict[str, Any]:
    ch = order["channel"]
    return {"id": sid or f"{ch.lower()}:stl:{order['id']}", "type": "disbursement.settled",
            "at": plus_days(order["at"], 2), "source": SRC[ch], "disbursement": order["id"],
            "status": status, "amount": amount, "channel": ch}


def picked(order: dict[str, Any], amount: int) -> dict[str, Any]:
    ch = order["channel"]
    return {"id": f"{ch.lower()}:wd:{order['id']}", "type": "pickup.recorded", "at": plus_days(order["at"], 5),
            "source": SRC[ch], "disbursement": order["id"], "nik": order["nik"], "amount": amount,
            "by": "recipient"}


class FakeBank:
    """Reads ``jejak.disbursements.<channel>`` and answers as BRI and PT Pos would, with a few irregularities."""

    def __init__(self, orders: list[dict[str, Any]]):
        self.orders = {o["id"]: o for o in orders}
        bri = [o for o in orders if o["channel"] == "BRI" and not o["id"].endswith(":r1")
               and o["id"] + ":r1" not in self.orders]
        assert len(bri) >= 4, "the generated data needs a few BRI orders"
        self.failed, self.mismatch, self.unsettled = bri[0]["id"], bri[1]["id"], bri[-1]["id"]
        self.settlements: list[dict[str, Any]] = []
        self.pickups: list[dict[str, Any]] = []
        self.credited: dict[str, int] = {}

    def answer(self, order: dict[str, Any]) -> None:
        oid, amount = order["id"], order["amount"]
        if oid == self.unsettled:
            return
        if oid == self.failed or oid + ":r1" in self.orders:  # failed; a re-order (":r1") follows
            self.settlements.append(settled(order, "failed", amount))
            return
        credited = amount - 50_000 if oid == self.mismatch else amount
        self.settlements.append(settled(order, "credited", credited))
        self.pickups.append(picked(order, credited))
        self.credited[oid] = credited

    def ghost(self) -> dict[str, Any]:
        return {"id": "bri:stl:ghost-1", "type": "disbursement.settled", "at": "2024-09-20T10:00:00+07:00",
                "source": SRC["BRI"], "disbursement": GHOST_ORDER, "status": "credited", "amount": 400_000,
                "channel": "BRI"}

    @property
    def mismatch_settlement(self) -> str:
        return f"bri:stl:{self.mismatch}"


def test_round_trip_with_real_ledger(store_url, make_settings, restartable_tansu, tmp_path):
    bootstrap = restartable_tansu.bootstrap
    lines = registry_and_orders(tmp_path)
    t0 = time.monotonic()
    with Ledger.open(make_settings(store_url)) as ledger:
        summary = ledger.ingest_lines(lines)
        assert summary.to_dict() == {"accepted": len(lines), "duplicates": 0, "rejected": 0}, summary.rejections
        facts = [orjson.loads(x) for x in lines]
        orders = [f for f in facts if f["type"] == "disbursement.ordered"]
        by_channel: dict[str, list[dict]] = defaultdict(list)
        for o in orders:
            by_channel[o["channel"]].append(o)
        assert by_channel["BRI"] and by_channel["POS"]

        # --- outbox: every order to jejak.disbursements.<channel>
        pub = Publisher(ledger, bootstrap).run(once=True)
        assert pub == {"published": len(orders), "position": len(lines)}
        t_pub = time.monotonic()

        # --- the bank and PT Pos read their topics (and only their orders are there)
        bank = FakeBank(orders)
        for ch in ("BRI", "POS"):
            recs = read_topic(bootstrap, f"jejak.disbursements.{ch}", at_least=len(by_channel[ch]))
            events = [decode(r.value, OUTBOUND_TYPES) for r in recs]
            assert sorted(e.id for e in events) == sorted(o["id"] for o in by_channel[ch])
            for r, e in zip(recs, events):
                assert r.key.decode() == e.id and e.source == "jejak"
                assert e.data == bank.orders[e.id]  # clear NIK/KK for the paying bank
                assert isinstance(e.index, int) and len(e.chain or "") == 64
                bank.answer(e.data)

        # --- ... and answer on jejak.settlements (with a ghost, a re-sent settlement and a poison pickup)
        poison = dict(bank.pickups[0], id="bri:wd:poison-1", nik="12750167087702")  # 14 digits
        outgoing = bank.settlements + [bank.ghost()] + bank.pickups + [bank.settlements[3], poison]
        produce(bootstrap, "jejak.settlements",
                [encode(f, CE_SOURCE[f["channel"] if "channel" in f else bank.orders[f["disbursement"]]["channel"]])
                 for f in outgoing],
                [f["disbursement"].encode() for f in outgoing])
        t_prod = time.monotonic()
        got = Consumer(ledger, bootstrap, once_timeout=WAIT).run(once=True)
        t_cons = time.monotonic()
        n_new = len(bank.settlements) + 1 + len(bank.pickups)
        assert got == {"accepted": n_new, "duplicates": 1, "rejected": 1}

        # --- the poison message is dead-lettered with the ledger's code
        dead = [orjson.loads(r.value) for r in read_topic(bootstrap, "jejak.rejects", at_least=1)]
        assert [(d["error"], d["id"], d["topic"]) for d in dead] == [
            ("bad_identifier", "bri:wd:poison-1", "jejak.settlements")]
        assert "12750167087702" not in dead[0]["message"]  # the error text never echoes the value
        assert orjson.loads(dead[0]["payload"])["data"]["id"] == "bri:wd:poison-1"

        # --- the log: everything exactly once, the poison not at all
        exported = [e["fact"]["id"] for e in ledger.export(public=True)]
        assert len(exported) == len(set(exported)) == len(lines) + n_new
        assert "bri:wd:poison-1" not in exported

        # --- balances: exactly what the bank credited and the recipients collected
        reports = Reports(ledger)
        expected: dict[tuple[str, str], dict[str, int]] = {}
        for o in orders:
            row = expected.setdefault((o["kk"], o["program"]), {"ordered": 0, "credited": 0, "picked_up": 0})
            row["ordered"] += o["amount"]
            row["credited"] += bank.credited.get(o["id"], 0)
            row["picked_up"] += bank.credited.get(o["id"], 0)
        assert reports.balances() == [
            {"kk": kk, "program": prog, **v, "returned": 0, "outstanding": v["credited"] - v["picked_up"]}
            for (kk, prog), v in sorted(expected.items())
        ]

        # --- anomalies: the ghost and the mismatch, nothing else
        anomalies = reports.anomalies(reveal=False)
        assert sorted((a["rule"], a["primary"]) for a in anomalies) == [
            ("ghost_settlement", "bri:stl:ghost-1"),
            ("settlement_mismatch", bank.mismatch_settlement),
        ]

        # --- reconciliation (the fact read model: tokens only)
        rows = load_fact_rows(ledger.store)
        bri_orders = by_channel["BRI"]
        failed = {o["id"] for o in bri_orders if o["id"] == bank.failed or o["id"] + ":r1" in bank.orders}
        bri = reconcile(rows, "BRI")
        real = [r for r in bri if r["period"] != "unknown"]
        total = lambda key: sum(r[key] for r in real)  # noqa: E731
        assert total("orders") == len(bri_orders)
        assert total("ordered_amount") == sum(o["amount"] for o in bri_orders)
        assert total("failed") == len(failed)
        assert total("matched") == len(bri_orders) - len(failed) - 2  # the mismatch and the unsettled one
        assert sum(sum(r["unsettled"].values()) for r in real) == 1
        assert [u["order"] for r in real for u in r["unsettled_orders"]] == [bank.unsettled]
        mismatch_order = bank.orders[bank.mismatch]
        assert [m for r in real for m in r["mismatches"]] == [
            {"order": bank.mismatch, "ordered": mismatch_order["amount"], "credited": mismatch_order["amount"] - 50_000}]
        assert total("credited_amount") == total("collected_amount") == sum(
            bank.credited[o["id"]] for o in bri_orders if o["id"] in bank.credited)
        assert [u for r in bri for u in r["uncollected"]] == []
        assert [r["settlements_without_order"] for r in bri if r["period"] == "unknown"] == [
            [{"settlement": "bri:stl:ghost-1", "disbursement": GHOST_ORDER, "amount": 400_000}]]
        assert {r["period"] for r in real} == {o["period"] for o in bri_orders}

        pos = reconcile(rows, "POS")
        assert sum(r["orders"] for r in pos) == sum(r["matched"] for r in pos) + sum(r["failed"] for r in pos)
        assert sum(r["orders"] for r in pos) == len(by_channel["POS"])
        assert all(not r["mismatches"] and not r["settlements_without_order"] and not r["uncollected"] for r in pos)

        # --- nothing left to do: the publisher is caught up, the group committed its offsets
        assert Publisher(ledger, bootstrap).run(once=True)["published"] == 0
        assert Consumer(ledger, bootstrap, once_timeout=WAIT).run(once=True) == {
            "accepted": 0, "duplicates": 0, "rejected": 0}
    print(f"\n[{backend(store_url)}] publish {t_pub - t0:.2f}s, consume {len(outgoing)} msgs "
          f"{t_cons - t_prod:.2f}s, total {time.monotonic() - t0:.2f}s")


# ------------------------------------------------------------------ crash safety
_KILL_SCRIPT = r"""
import os, signal, sys, logging
sys.path.insert(0, {repo!r})
from jejak.feeds.consumer import Consumer
from jejak.ledger import Ledger
from jejak.settings import Settings
logging.basicConfig(level=logging.WARNING)
ledger = Ledger.open(Settings(store={store!r}, keys_dir={keys!r}))
real_record = ledger.record
def record(items):
    out = real_record(items)                  # committed in the store ...
    if {kill!r}:
        print("recorded", len(items), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # ... then die before the offset commit
    return out
ledger.record = record
print(Consumer(ledger, {bootstrap!r}, once_timeout=30, max_records={max_records!r}).run(once=True), flush=True)
"""


def test_consumer_killed_before_commit_real_ledger(store_url, make_settings, restartable_tansu, tmp_path):
    bootstrap = restartable_tansu.bootstrap
    settings = make_settings(store_url)
    lines = registry_and_orders(tmp_path, families=4)
    with Ledger.open(settings) as ledger:
        assert ledger.ingest_lines(lines).accepted == len(lines)
    orders = [orjson.loads(x) for x in lines if orjson.loads(x)["type"] == "disbursement.ordered"]
    facts = [settled(o, "credited", o["amount"]) for o in orders[:12]]
    produce(bootstrap, "jejak.settlements", [encode(f, CE_SOURCE[f["channel"]]) for f in facts],
            [f["disbursement"].encode() for f in facts])

    def run(kill: bool) -> subprocess.CompletedProcess:
        script = _KILL_SCRIPT.format(repo=str(REPO), store=store_url, keys=str(settings.keys_dir), kill=kill,
                                     bootstrap=bootstrap, max_records=5)
        return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)

    def settled_ids() -> list[str]:
        with Ledger.open(settings) as ledger:
            return [e["fact"]["id"] for e in ledger.export(public=True)
                    if e["fact"]["type"] == "disbursement.settled"]

    t0 = time.monotonic()
    killed = run(kill=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    first_batch = int(killed.stdout.split()[1])
    before = settled_ids()
    assert 1 <= len(before) == first_batch <= 5  # the first batch is durable although never committed

    again = run(kill=False)  # waits for the dead member's session to expire, then re-reads from offset 0
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.strip().splitlines()[-1] == str(
        {"accepted": len(facts) - first_batch, "duplicates": first_batch, "rejected": 0})
    after = settled_ids()
    assert len(after) == len(set(after)) == len(facts)          # no duplicates
    assert set(after) == {f["id"] for f in facts}                # nothing lost
    with Ledger.open(settings) as ledger:
        assert sum(1 for _ in ledger.export(public=True)) == len(lines) + len(facts)
    print(f"\n[{backend(store_url)}] kill + restart {time.monotonic() - t0:.2f}s")
