"""Inbound feed throughput: Kafka → validated → in the log → offsets committed, vs `jejak ingest`.

    python bench/feeds.py --n 100000

Same run, same machine, two identical PostgreSQL stores that already hold the
N orders (store B is a TEMPLATE copy of store A, with the same keys):

  ingest   Ledger.ingest_lines(file of the N settlement facts) into store B
           (what `jejak ingest FILE` does, without opening the store or the
           projection catch-up);
  consume  the same N settlements, produced to `jejak.settlements` on a Tansu
           broker beforehand as CloudEvents, then Consumer(ledger, bootstrap)
           .run(once=True) into store A with its production defaults: the group
           join, strict CloudEvent decoding, one ledger.record() transaction per
           polled batch, offset commit per batch, until caught up.

Reported: messages/s of both, ratio consume/ingest (target >= 0.7); also the
consume rate from the first recorded batch (excludes the ~3 s group join).
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

getattr(C, "apply_pool_workaround", lambda: None)()

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


def run_consume(store: "C.BenchStore", bootstrap: str, topic: str) -> dict[str, Any]:
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
                            rejects_topic=topic + ".rejects", once_timeout=1800)
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
    ap.add_argument("--keep", action="store_true", help="keep the bench databases afterwards")
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

    C.log(f"store A: ingesting {n} orders (setup, not timed)")
    a_store = C.store_for("postgresql", "feeds_consume")
    with Ledger.open(a_store.settings()) as ledger:
        setup = ledger.ingest_lines(C.iter_lines(orders_path))
        assert setup.to_dict() == {"accepted": n, "duplicates": 0, "rejected": 0}, setup.to_dict()
    C.log("store B: TEMPLATE copy of A")
    b_store = clone_store(a_store, "feeds_ingest")
    assert log_size(b_store) == log_size(a_store) == n

    broker = TansuBroker(start_timeout=30)
    broker.start()
    topic = f"jejak.settlements.bench{os.getpid()}"
    try:
        C.log(f"producing {n} CloudEvents to {topic} on Tansu {broker.bootstrap}")
        produced, produce_s = produce_all(broker.bootstrap, topic, settlements_path)

        C.log("timed: Ledger.ingest_lines (store B)")
        ingest = run_ingest(b_store, settlements_path)
        C.log(f"  {ingest['seconds']:.2f}s {ingest['summary']}")
        C.log("timed: Consumer.run(once=True) (store A)")
        consume = run_consume(a_store, broker.bootstrap, topic)
        C.log(f"  {consume['seconds']:.2f}s {consume['summary']}")
    finally:
        broker.close()

    assert ingest["summary"] == {"accepted": n, "duplicates": 0, "rejected": 0}, ingest
    assert consume["summary"] == {"accepted": n, "duplicates": 0, "rejected": 0}, consume
    sizes = (log_size(a_store), log_size(b_store))
    assert sizes == (2 * n, 2 * n), sizes

    ingest_rate = C.rate(n, ingest["seconds"])
    consume_rate = C.rate(n, consume["seconds"])
    steady = C.rate(n, consume["seconds_from_first_batch"]) if consume["seconds_from_first_batch"] else None
    result = {
        "benchmark": "feeds_inbound",
        "n": n,
        "store": "postgresql",
        "produce": {"messages": produced, "seconds": round(produce_s, 2),
                    "msgs_per_s": round(C.rate(produced, produce_s))},
        "ingest": {"seconds": round(ingest["seconds"], 2), "facts_per_s": round(ingest_rate),
                   "summary": ingest["summary"]},
        "consume": {**{k: (round(v, 2) if isinstance(v, float) else v) for k, v in consume.items()},
                    "msgs_per_s": round(consume_rate),
                    "msgs_per_s_after_join": round(steady) if steady else None},
        "ratio": round(consume_rate / ingest_rate, 3),
        "ratio_after_join": round(steady / ingest_rate, 3) if steady else None,
        "target": TARGET,
        "meets_target": consume_rate / ingest_rate >= TARGET,
        "machine": C.machine(),
    }
    if not a.keep:
        a_store.drop()
        b_store.drop()
    C.emit("feeds", result)


if __name__ == "__main__":
    main()
