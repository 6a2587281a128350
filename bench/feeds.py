"""Inbound feed throughput: Kafka → validated → in the log → offsets committed, vs `jejak ingest`.

    python bench/feeds.py --n 100000

Same run, same machine, two identical PostgreSQL stores that already hold the
N orders (TEMPLATE copies of one store, with the same keys), fresh each round;
rounds alternate which side runs first (default 2 rounds):

  ingest   Ledger.ingest_lines(file of the N settlement facts) into store B
           (what `jejak ingest FILE` does, without opening the store or the
           projection catch-up);
  consume  the same N settlements, produced to `jejak.settlements` on a Tansu
           broker beforehand as CloudEvents, then Consumer(ledger, bootstrap)
           .run(once=True) into store A with its production defaults: the group
           join, strict CloudEvent decoding, one ledger.record() transaction per
           polled batch, offset commit per batch, until caught up.

Reported per round: messages/s of both and the ratio consume/ingest (target
>= 0.7), also from the first recorded batch on (excludes the ~3 s group join,
half Tansu's session timeout); overall: best of each side and the median ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as C  # noqa: E402


import orjson  # noqa: E402

TARGET = 0.7
AT_ORDER = "2024-03-04T09:00:00+07:00"
AT_SETTLED = "2024-03-06T10:00:00+07:00"


# ---------------------------------------------------------------------- facts
def order(i: int) -> dict[str, Any]:
    return {"id": f"kemensos:ord:2024-T1:{i:07d}", "type": "disbursement.ordered", "at": AT_ORDER,
            "source": {"kind": "kemensos", "id": "kemensos-pusdatin"},
            "kk": f"1275{i:012d}", "nik": f"1275{(i * 7919) % 10**12:012d}", "program": "PKH",
            "period": "2024-T1", "amount": 750_000 + (i % 4) * 250_000, "channel": "BRI"}


def settlement(i: int) -> dict[str, Any]:
    o = order(i)
    return {"id": f"bri:stl:2024-T1:{i:07d}", "type": "disbursement.settled", "at": AT_SETTLED,
            "source": {"kind": "bank", "id": "BRI"}, "disbursement": o["id"],
            "status": "failed" if i % 50 == 0 else "credited", "amount": o["amount"], "channel": "BRI"}


def write_jsonl(path: Path, facts: Iterator[dict[str, Any]]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as f:
        for fact in facts:
            f.write(orjson.dumps(fact) + b"\n")
    tmp.replace(path)


# --------------------------------------------------------------------- stores
def clone_store(src: "C.BenchStore", name: str) -> "C.BenchStore":
    """A TEMPLATE copy of `src` (same rows, same keys)."""
    dst = C.store_for("postgresql", name, fresh=False)
    with C._admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dst.dbname}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{dst.dbname}" TEMPLATE "{src.dbname}"')
    shutil.rmtree(dst.keys_dir, ignore_errors=True)
    shutil.copytree(src.keys_dir, dst.keys_dir)
    return dst


def log_size(store: "C.BenchStore") -> int:
    from jejak.ledger import Ledger

    with Ledger.open(store.settings()) as ledger:
        return ledger.store.count_log_rows()


# ---------------------------------------------------------------------- kafka
def produce_all(bootstrap: str, topic: str, path: Path) -> tuple[int, float]:
    from kafka import KafkaProducer

    from jejak.feeds.cloudevents import KAFKA_CONTENT_TYPE, encode

    headers = [("content-type", KAFKA_CONTENT_TYPE.encode("ascii"))]
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=512 * 1024,
                      max_request_size=8 * 1024 * 1024, request_timeout_ms=30_000)
    t0 = time.perf_counter()
    n = 0
    futures = []
    try:
        for line in C.iter_lines(path):
            fact = orjson.loads(line)
            futures.append(p.send(topic, key=fact["disbursement"].encode(), value=encode(fact, "bank/BRI"),
                                  headers=headers))
            n += 1
        p.flush(timeout=300)
        for f in futures:
            f.get(timeout=60)
    finally:
        p.close(timeout=10)
    return n, time.perf_counter() - t0


# ---------------------------------------------------------------------- timed
def run_ingest(store: "C.BenchStore", path: Path) -> dict[str, Any]:
    from jejak.ledger import Ledger

    with Ledger.open(store.settings()) as ledger:
        t0 = time.perf_counter()
        summary = ledger.ingest_lines(C.iter_lines(path))
        seconds = time.perf_counter() - t0
    return {"seconds": seconds, "summary": summary.to_dict()}


def run_consume(store: "C.BenchStore", bootstrap: str, topic: str, **options: Any) -> dict[str, Any]:
    from jejak.feeds.consumer import Consumer
    from jejak.ledger import Ledger

    with Ledger.open(store.settings()) as ledger:
        real_record = ledger.record
        first: list[float] = []
        batches: list[int] = []

        def record(items):  # timestamps only
            if not first:
                first.append(time.perf_counter())
            batches.append(len(items))
            return real_record(items)

        ledger.record = record  # type: ignore[method-assign]
        consumer = Consumer(ledger, bootstrap, topic=topic, group_id=f"bench-{os.getpid()}-{time.time_ns()}",
                            rejects_topic=topic + ".rejects", once_timeout=1800, **options)
        t0 = time.perf_counter()
        summary = consumer.run(once=True)
        t1 = time.perf_counter()
    return {
        "seconds": t1 - t0,
        "seconds_from_first_batch": t1 - first[0] if first else None,
        "join_seconds": first[0] - t0 if first else None,
        "summary": summary,
        "batches": len(batches),
        "mean_batch": round(sum(batches) / len(batches), 1) if batches else 0,
        "commit_failures": consumer.commit_failures,
        "errors": consumer.errors,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="settlements (and orders)")
    ap.add_argument("--rounds", type=int, default=2,
                    help="rounds of (ingest, consume), each on fresh copies of the order store, order alternating")
    ap.add_argument("--max-records", type=int, default=None, help="Consumer max_records (default: its own)")
    a = ap.parse_args()
    n = a.n

    from jejak.ledger import Ledger
    from tests.integration.kafka_broker import TansuBroker

    C.DATA.mkdir(parents=True, exist_ok=True)
    orders_path = C.DATA / f"feeds-orders-{n}.jsonl"
    settlements_path = C.DATA / f"feeds-settlements-{n}.jsonl"
    if not orders_path.exists():
        write_jsonl(orders_path, (order(i) for i in range(n)))
    if not settlements_path.exists():
        write_jsonl(settlements_path, (settlement(i) for i in range(n)))

    C.log(f"template store: ingesting {n} orders (setup, not timed)")
    template = C.store_for("postgresql", "feeds_orders")
    with Ledger.open(template.settings()) as ledger:
        setup = ledger.ingest_lines(C.iter_lines(orders_path))
        assert setup.to_dict() == {"accepted": n, "duplicates": 0, "rejected": 0}, setup.to_dict()

    broker = TansuBroker(start_timeout=30)
    broker.start()
    topic = f"jejak.settlements.bench{os.getpid()}"
    options = {"max_records": a.max_records} if a.max_records else {}
    rounds: list[dict[str, Any]] = []
    try:
        C.log(f"producing {n} CloudEvents to {topic} on Tansu {broker.bootstrap}")
        produced, produce_s = produce_all(broker.bootstrap, topic, settlements_path)
        for r in range(a.rounds):
            b_store = clone_store(template, "feeds_ingest")  # identical stores holding the orders
            a_store = clone_store(template, "feeds_consume")
            assert log_size(b_store) == log_size(a_store) == n
            order_ = ("ingest", "consume") if r % 2 == 0 else ("consume", "ingest")
            got: dict[str, Any] = {}
            for what in order_:
                C.log(f"round {r + 1}: timed {what}")
                if what == "ingest":
                    got[what] = run_ingest(b_store, settlements_path)
                else:  # a new consumer group each round: the whole topic again
                    got[what] = run_consume(a_store, broker.bootstrap, topic, **options)
                C.log(f"  {got[what]['seconds']:.2f}s {got[what]['summary']}")
            ok = {"accepted": n, "duplicates": 0, "rejected": 0}
            assert got["ingest"]["summary"] == ok and got["consume"]["summary"] == ok, got
            assert (log_size(a_store), log_size(b_store)) == (2 * n, 2 * n)
            a_store.drop()
            b_store.drop()
            ing, con = got["ingest"], got["consume"]
            rounds.append({
                "order": list(order_),
                "ingest_s": round(ing["seconds"], 2), "ingest_per_s": round(C.rate(n, ing["seconds"])),
                "consume_s": round(con["seconds"], 2), "consume_per_s": round(C.rate(n, con["seconds"])),
                "consume_join_s": round(con["join_seconds"], 2),
                "consume_per_s_after_join": round(C.rate(n, con["seconds_from_first_batch"])),
                "consume_batches": con["batches"], "consume_mean_batch": con["mean_batch"],
                "commit_failures": con["commit_failures"], "errors": con["errors"],
                "ratio": round(ing["seconds"] / con["seconds"], 3),
                "ratio_after_join": round(ing["seconds"] / con["seconds_from_first_batch"], 3),
            })
    finally:
        broker.close()
        template.drop()

    best_ingest = min(x["ingest_s"] for x in rounds)
    best_consume = min(x["consume_s"] for x in rounds)
    ratios = sorted(x["ratio"] for x in rounds)
    result = {
        "benchmark": "feeds_inbound",
        "n": n,
        "store": "postgresql",
        "consumer": {"max_records": a.max_records or "default"},
        "produce": {"messages": produced, "seconds": round(produce_s, 2),
                    "msgs_per_s": round(C.rate(produced, produce_s))},
        "rounds": rounds,
        "best": {"ingest_per_s": round(C.rate(n, best_ingest)), "consume_per_s": round(C.rate(n, best_consume)),
                 "ratio": round(best_ingest / best_consume, 3)},
        "median_ratio": ratios[len(ratios) // 2] if len(ratios) % 2 else round(
            (ratios[len(ratios) // 2 - 1] + ratios[len(ratios) // 2]) / 2, 3),
        "target": TARGET,
        "meets_target": best_ingest / best_consume >= TARGET,
        "machine": C.machine(),
    }
    C.emit("feeds", result)


if __name__ == "__main__":
    main()
