"""`jejak feed publish|consume --once` and `jejak reconcile` as processes, on a real broker and SQLite store.

One broker (Tansu, memory storage) of this module's own, so the production topic
names and consumer group are used. The tests run in order and share one store:
ingest → publish → the bank answers → consume → reconcile (csv, json) → usage errors.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from jejak.feeds.cloudevents import OUTBOUND_TYPES, decode, encode
from jejak.feeds.reconcile import CSV_COLUMNS
from jejak.generate import write_files
from tests.integration.kafka_broker import TansuBroker
from tests.integration.test_feeds_kafka import produce, read_topic

REPO = Path(__file__).resolve().parents[2]
KEEP = {"rates.set", "eligibility.decided", "companion.assigned", "disbursement.ordered"}
TIMEOUT = 120  # any one CLI process


@pytest.fixture(scope="module")
def broker():
    b = TansuBroker()
    try:
        b.start()
    except Exception as exc:
        b.close()
        pytest.fail(f"could not start the Tansu broker: {exc}", pytrace=False)
    yield b
    b.close()


class World:
    def __init__(self, root: Path, bootstrap: str) -> None:
        self.root = root
        self.bootstrap = bootstrap
        self.store = str(root / "jejak.db")
        self.keys = root / "keys"
        self.orders: list[dict[str, Any]] = []
        self.lines = 0
        self.mismatch: str | None = None
        self.credited: dict[str, int] = {}

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("JEJAK_")}
        env.update(JEJAK_STORE=self.store, JEJAK_KEYS_DIR=str(self.keys))
        return subprocess.run([sys.executable, "-m", "jejak.cli", *args], capture_output=True, text=True,
                              env=env, cwd=self.root, timeout=TIMEOUT)

    def bri(self) -> list[dict[str, Any]]:
        return [o for o in self.orders if o["channel"] == "BRI"]


@pytest.fixture(scope="module")
def world(broker, tmp_path_factory) -> World:
    w = World(tmp_path_factory.mktemp("cli-feeds"), broker.bootstrap)
    generated = w.root / "generated.jsonl"
    write_files(families=6, seed=1, out_path=generated)
    kept = [x for x in generated.read_bytes().splitlines() if orjson.loads(x)["type"] in KEEP]
    (w.root / "facts.jsonl").write_bytes(b"\n".join(kept) + b"\n")
    w.lines = len(kept)
    w.orders = [f for f in map(orjson.loads, kept) if f["type"] == "disbursement.ordered"]
    assert len(w.bri()) >= 3
    proc = w.cli("ingest", "facts.jsonl")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout) == {"accepted": w.lines, "duplicates": 0, "rejected": 0}
    return w


def last_json(stdout: str) -> Any:
    return json.loads(stdout.strip().splitlines()[-1])


def test_feed_publish_once(world):
    proc = world.cli("feed", "publish", "--once", "--bootstrap", world.bootstrap)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert last_json(proc.stdout) == {"published": len(world.orders), "position": world.lines}
    recs = read_topic(world.bootstrap, "jejak.disbursements.BRI", at_least=len(world.bri()))
    assert sorted(decode(r.value, OUTBOUND_TYPES).id for r in recs) == sorted(o["id"] for o in world.bri())
    # a second run has nothing to publish
    again = world.cli("feed", "publish", "--once", "--bootstrap", world.bootstrap)
    assert again.returncode == 0 and last_json(again.stdout)["published"] == 0


def test_feed_consume_once(world):
    bri = world.bri()
    world.mismatch = bri[0]["id"]
    facts = []
    for o in bri:
        credited = o["amount"] - 25_000 if o["id"] == world.mismatch else o["amount"]
        at = (datetime.fromisoformat(o["at"]) + timedelta(days=2)).isoformat()
        facts.append({"id": f"bri:stl:{o['id']}", "type": "disbursement.settled", "at": at,
                      "source": {"kind": "bank", "id": "BRI"}, "disbursement": o["id"], "status": "credited",
                      "amount": credited, "channel": "BRI"})
        world.credited[o["id"]] = credited
    ghost = dict(facts[-1], id="bri:stl:ghost", disbursement="kemensos:ord:2024-T2:999999", amount=123_000)
    poison = {"id": "bri:wd:bad-nik", "type": "pickup.recorded", "at": facts[0]["at"],
              "source": {"kind": "bank", "id": "BRI"}, "disbursement": bri[0]["id"], "nik": "1234",
              "amount": 1000, "by": "recipient"}
    produce(world.bootstrap, "jejak.settlements", [encode(f, "bank/BRI") for f in facts + [ghost, poison]])

    proc = world.cli("feed", "consume", "--once", "--bootstrap", world.bootstrap)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert last_json(proc.stdout) == {"accepted": len(facts) + 1, "duplicates": 0, "rejected": 1}
    assert "1234" not in proc.stderr.replace(world.bootstrap, "")  # logs never carry payload values
    dead = [orjson.loads(r.value) for r in read_topic(world.bootstrap, "jejak.rejects", at_least=1)]
    assert [(d["error"], d["id"]) for d in dead] == [("bad_identifier", "bri:wd:bad-nik")]

    again = world.cli("feed", "consume", "--once", "--bootstrap", world.bootstrap)
    assert again.returncode == 0, again.stderr[-2000:]
    assert last_json(again.stdout) == {"accepted": 0, "duplicates": 0, "rejected": 0}


def test_reconcile_csv(world):
    assert world.mismatch, "runs after test_feed_consume_once"
    proc = world.cli("reconcile", "--channel", "BRI", "--format", "csv")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = list(csv.reader(io.StringIO(proc.stdout)))
    assert tuple(rows[0]) == CSV_COLUMNS
    body = [dict(zip(CSV_COLUMNS, r)) for r in rows[1:]]
    periods = sorted({o["period"] for o in world.bri()})
    assert [r["period"] for r in body] == sorted(periods + ["unknown"])
    assert all(r["channel"] == "BRI" for r in body)
    real = [r for r in body if r["period"] != "unknown"]
    n = lambda key: sum(int(r[key]) for r in real)  # noqa: E731
    assert n("orders") == len(world.bri())
    assert n("ordered_amount") == sum(o["amount"] for o in world.bri())
    assert n("matched") == len(world.bri()) - 1 and n("mismatches") == 1 and n("failed") == 0
    assert n("credited_amount") == sum(world.credited.values())
    assert n("collected_amount") == 0
    assert n("uncollected") == len(world.bri())  # credited, nobody has picked anything up yet
    assert sum(n(k) for k in ("unsettled_0_30", "unsettled_31_60", "unsettled_61_90", "unsettled_over_90")) == 0
    (ghost_row,) = [r for r in body if r["period"] == "unknown"]
    assert ghost_row["settlements_without_order"] == "1" and ghost_row["orders"] == "0"

    one = world.cli("reconcile", "--channel", "BRI", "--period", periods[0], "--format", "csv")
    assert one.returncode == 0, one.stderr[-2000:]
    assert [r[1] for r in csv.reader(io.StringIO(one.stdout))][1:] == [periods[0]]


def test_reconcile_json(world):
    assert world.mismatch, "runs after test_feed_consume_once"
    proc = world.cli("reconcile", "--channel", "BRI", "--format", "json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    reports = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert {r["period"] for r in reports} == {o["period"] for o in world.bri()} | {"unknown"}
    mismatches = [m for r in reports for m in r["mismatches"]]
    ordered = next(o["amount"] for o in world.bri() if o["id"] == world.mismatch)
    assert mismatches == [{"order": world.mismatch, "ordered": ordered, "credited": ordered - 25_000}]
    ghosts = [g for r in reports for g in r["settlements_without_order"]]
    assert ghosts == [{"settlement": "bri:stl:ghost", "disbursement": "kemensos:ord:2024-T2:999999",
                       "amount": 123_000}]
    assert sum(r["orders"] for r in reports) == len(world.bri())
    # default format is json
    default = world.cli("reconcile", "--channel", "BRI")
    assert default.returncode == 0 and default.stdout == proc.stdout
    # a channel with no orders in this store: nothing to report, still valid
    other = world.cli("reconcile", "--channel", "BTN", "--format", "csv")
    assert other.returncode == 0 and other.stdout.splitlines()[0].split(",") == list(CSV_COLUMNS)


@pytest.mark.parametrize("args", [
    ("--channel", "XYZ"),
    ("--channel", "bri"),
    ("--channel", "BRI", "--format", "xml"),
])
def test_reconcile_usage_errors(world, args):
    proc = world.cli("reconcile", *args)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert proc.stdout == ""
    assert "--channel" in proc.stderr or "--format" in proc.stderr
