"""Complaints over Kafka (SPEC v2 §6): CloudEvents on `jejak.complaints` (type =
fact type) recorded with the settlements' validation, rejects and idempotency,
on a real broker (Tansu) and a real ledger (SQLite and PostgreSQL)."""

from __future__ import annotations

import contextlib
import threading
import time

import orjson

from jejak.feeds.cloudevents import encode
from jejak.feeds.consumer import Consumer, consume_inbound
from jejak.ledger import Ledger
from jejak.reports import Reports
from tests.integration.test_feeds_kafka import WAIT, produce, read_topic
from tests.integration.test_feeds_ledger import CE_SOURCE, picked, registry_and_orders, settled


def complaint(fid: str, at: str, **extra) -> dict:
    return {"id": fid, "type": "complaint.filed", "at": at, "source": {"kind": "public", "id": "cekbansos-1275"},
            "channel": "cekbansos", "category": "not_received", "region": "1275011002", **extra}


def resolved(fid: str, ref: str, at: str, outcome: str = "upheld") -> dict:
    return {"id": fid, "type": "complaint.resolved", "at": at, "source": {"kind": "dinsos", "id": "dinsos-1275"},
            "complaint": ref, "outcome": outcome, "text": "sudah diverifikasi"}


def test_complaints_topic_recorded_with_rejects_and_idempotency(store_url, make_settings, restartable_tansu, tmp_path):
    bootstrap = restartable_tansu.bootstrap
    settings = make_settings(store_url)
    lines = registry_and_orders(tmp_path, families=3)
    order = next(f for f in map(orjson.loads, lines) if f["type"] == "disbursement.ordered")
    with Ledger.open(settings) as ledger:
        assert ledger.ingest_lines(lines).accepted == len(lines)
        assert ledger.ingest_lines([orjson.dumps(picked(order, order["amount"]))]).accepted == 1
        after_pickup = order["at"][:8] + "28T10:00:00+07:00"
        c1 = complaint("cekbansos:1", after_pickup, disbursement=order["id"], kk=order["kk"], nik=order["nik"],
                       text="uang tidak pernah diterima")
        good = [c1, resolved("dinsos:r:1", "cekbansos:1", after_pickup), resolved("dinsos:r:2", "lapor:404", after_pickup)]
        poison = [
            dict(complaint("cekbansos:2", after_pickup), region="12750110"),          # region of 8 digits
            dict(complaint("cekbansos:3", after_pickup), nik="1275" + "0" * 11),     # nik of 15 digits
            settled(order, "credited", order["amount"]),                              # not a complaint type
            dict(c1, text="another text"),                                           # same id, other content
        ]
        messages = [encode(f, "lapor/1275") for f in good + poison] + [encode(c1, "lapor/1275")]  # c1 re-sent
        produce(bootstrap, "jejak.complaints", messages, [f["id"].encode() for f in good + poison] + [b"c1"])
        produce(bootstrap, "jejak.settlements", [encode(settled(order, "credited", order["amount"]),
                                                        CE_SOURCE[order["channel"]])])

        got = consume_inbound(lambda: contextlib.nullcontext(ledger), bootstrap, once=True, once_timeout=WAIT)
        assert got == {"accepted": 4, "duplicates": 1, "rejected": 4}  # 3 complaint facts + 1 settlement

        dead = [orjson.loads(r.value) for r in read_topic(bootstrap, "jejak.rejects", at_least=4)]
        assert sorted((d["error"], d["id"], d["topic"]) for d in dead) == sorted([
            ("bad_format", "cekbansos:2", "jejak.complaints"),
            ("bad_identifier", "cekbansos:3", "jejak.complaints"),
            ("feed.type_not_allowed", settled(order, "credited", 1)["id"], "jejak.complaints"),
            ("conflict", "cekbansos:1", "jejak.complaints"),
        ])
        assert all("1275" + "0" * 11 not in d["message"] for d in dead)

        exported = {e["fact"]["id"]: e["fact"] for e in ledger.export()}
        assert exported["cekbansos:1"] == c1  # the first version stays, text revealed to the operator
        assert {"dinsos:r:1", "dinsos:r:2"} <= exported.keys() and "cekbansos:2" not in exported
        found = {(a["rule"], a["primary"]) for a in Reports(ledger).anomalies()}
        assert {("disputed_pickup", "cekbansos:1"), ("unknown_complaint", "dinsos:r:2")} <= found

        # re-delivery of the whole topic (another group) changes nothing: duplicates by fact id
        again = Consumer(ledger, bootstrap, "jejak.complaints", "replay", allowed_types=frozenset(
            {"complaint.filed", "complaint.resolved"}), once_timeout=WAIT).run(once=True)
        assert again["accepted"] == 0 and again["duplicates"] == 4
        assert sum(1 for _ in ledger.export()) == len(exported)


def test_long_running_consume_records_both_topics_until_stopped(store_url, make_settings, restartable_tansu, tmp_path):
    bootstrap = restartable_tansu.bootstrap
    settings = make_settings(store_url)
    lines = registry_and_orders(tmp_path, families=2)
    order = next(f for f in map(orjson.loads, lines) if f["type"] == "disbursement.ordered")
    with Ledger.open(settings) as ledger:
        ledger.ingest_lines(lines)
    produce(bootstrap, "jejak.complaints", [encode(complaint("slrt:1", order["at"]), "slrt/1275")])
    produce(bootstrap, "jejak.settlements", [encode(settled(order, "credited", order["amount"]),
                                                    CE_SOURCE[order["channel"]])])
    stop = threading.Event()
    result: dict = {}

    def run() -> None:
        result.update(consume_inbound(lambda: Ledger.open(settings), bootstrap, stop_event=stop))

    worker = threading.Thread(target=run)
    worker.start()
    try:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            with Ledger.open(settings) as ledger:
                ids = {e["fact"]["id"] for e in ledger.export(public=True)}
            if {"slrt:1", settled(order, "credited", 1)["id"]} <= ids:
                break
            time.sleep(0.5)
    finally:
        stop.set()
        worker.join(timeout=WAIT)
    assert not worker.is_alive()
    assert result == {"accepted": 2, "duplicates": 0, "rejected": 0}
