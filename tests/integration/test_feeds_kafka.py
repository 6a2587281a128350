"""Kafka feeds against a real broker (Tansu, memory storage) and the real ledger (SQLite).

Crash, prefetch and SIGTERM handling run on the real ledger, in this process or
in subprocesses that open the same store.
"""

from __future__ import annotations

import base64
import itertools
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from jejak.feeds.cloudevents import OUTBOUND_TYPES, decode, encode
from jejak.feeds.consumer import Consumer, default_consumer_factory
from jejak.feeds.publisher import Publisher, default_producer_factory

REPO = Path(__file__).resolve().parents[2]
WAIT = 30.0  # upper bound for any single broker wait in these tests


# ---------------------------------------------------------------------- facts
_seq = itertools.count(1)


def order(channel: str = "BRI", n: int | None = None) -> dict[str, Any]:
    n = n if n is not None else next(_seq)
    return {
        "id": f"ord-{uuid.uuid4().hex[:8]}-{n}", "type": "disbursement.ordered",
        "at": "2024-03-01T09:00:00+07:00", "source": {"kind": "kemensos", "id": "pusat"},
        "kk": "3201010101010001", "nik": "3201014101900001", "program": "PKH",
        "period": "2024-T1", "amount": 750000, "channel": channel,
    }


def settlement(order_id: str, amount: int = 750000, channel: str = "BRI") -> dict[str, Any]:
    return {
        "id": f"stl-{order_id}", "type": "disbursement.settled", "at": "2024-03-05T10:00:00+07:00",
        "source": {"kind": "bank", "id": channel}, "disbursement": order_id,
        "status": "credited", "amount": amount, "channel": channel,
    }


# ------------------------------------------------------------- the real ledger
@dataclass(frozen=True)
class RealStore:
    """A real SQLite store a test and its subprocesses open by URL."""

    url: str
    keys: str

    def open(self) -> Any:
        from jejak.ledger import Ledger
        from jejak.settings import Settings

        return Ledger.open(Settings(store=self.url, keys_dir=Path(self.keys)))

    def ids(self, fact_type: str = "disbursement.settled") -> list[str]:
        with self.open() as ledger:
            return recorded_ids(ledger, fact_type)


@pytest.fixture
def real_store(tmp_path) -> RealStore:
    return RealStore(str(tmp_path / "feed.db"), str(tmp_path / "keys"))


@pytest.fixture
def real_ledger(real_store):
    with real_store.open() as ledger:
        yield ledger


def recorded_ids(ledger, fact_type: str = "disbursement.settled") -> list[str]:
    """Ids of `fact_type` in the log, in log order."""
    return [e.fact["id"] for e in ledger.read_entries(0, 1 << 30) if e.fact["type"] == fact_type]


OPEN_REAL_LEDGER = """
from jejak.ledger import Ledger
from jejak.settings import Settings
ledger = Ledger.open(Settings(store={store!r}, keys_dir={keys!r}))
"""


# -------------------------------------------------------------------- helpers
def uniq(prefix: str) -> str:
    return f"t{uuid.uuid4().hex[:8]}.{prefix}"


def produce(bootstrap: str, topic: str, values: list[bytes], keys: list[bytes | None] | None = None) -> None:
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", request_timeout_ms=10000)
    try:
        futs = [p.send(topic, key=(keys[i] if keys else None), value=v) for i, v in enumerate(values)]
        p.flush(timeout=WAIT)
        for f in futs:
            f.get(timeout=WAIT)
    finally:
        p.close(timeout=5)


def read_topic(bootstrap: str, topic: str, at_least: int, timeout: float = WAIT, settle: float = 0.3) -> list:
    """All records of ``topic`` (no consumer group); waits until at least ``at_least`` arrived."""
    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, request_timeout_ms=10000)
    try:
        deadline = time.monotonic() + timeout
        parts = None
        while time.monotonic() < deadline:
            parts = c.partitions_for_topic(topic)
            if parts:
                break
            time.sleep(0.1)
        assert parts, f"topic {topic} never appeared"
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        got: list = []
        quiet_since = None
        while time.monotonic() < deadline:
            batch = c.poll(timeout_ms=200)
            for recs in batch.values():
                got.extend(recs)
            if len(got) >= at_least:
                if not batch:
                    quiet_since = quiet_since or time.monotonic()
                    if time.monotonic() - quiet_since >= settle:
                        break
                else:
                    quiet_since = None
        return got
    finally:
        c.close(autocommit=False)


def consumer_for(ledger, bootstrap, topic, **kw) -> Consumer:
    return Consumer(ledger, bootstrap, topic=topic, group_id=kw.pop("group_id", uniq("group")),
                    rejects_topic=kw.pop("rejects_topic", topic + ".rejects"), once_timeout=WAIT, **kw)


class SimulatedCrash(BaseException):
    """Escapes every ``except Exception`` like a kill would."""


# ---------------------------------------------------------------------- tests
def test_round_trip(kafka_bootstrap, real_ledger):
    ledger = real_ledger
    prefix = uniq("disbursements")
    inbound = uniq("settlements")
    bri = [order("BRI") for _ in range(3)]
    pos = order("POS")
    ledger.record([bri[0], pos, bri[1], bri[2]])

    t0 = time.monotonic()
    summary = Publisher(ledger, kafka_bootstrap, topic_prefix=prefix).run(once=True)
    assert summary == {"published": 4, "position": 4}
    assert ledger.get_position("feed.publish") == 4

    # the bank reads its topic ...
    recs = read_topic(kafka_bootstrap, f"{prefix}.BRI", at_least=3)
    assert sorted(r.key.decode() for r in recs) == sorted(o["id"] for o in bri)
    by_id = {e.fact["id"]: e for e in ledger.read_entries(0, 100)}
    for r in recs:
        ev = decode(r.value, OUTBOUND_TYPES)
        entry = by_id[ev.id]
        assert ev.source == "jejak" and ev.data == entry.fact
        assert ev.index == entry.index and ev.chain == entry.chain
        assert dict(r.headers)["content-type"].startswith(b"application/cloudevents+json")
    assert [decode(r.value, OUTBOUND_TYPES).id for r in read_topic(kafka_bootstrap, f"{prefix}.POS", 1)] == [pos["id"]]

    # ... and answers with settlements
    settlements = [settlement(o["id"]) for o in bri]
    produce(kafka_bootstrap, inbound, [encode(s, "bank/BRI") for s in settlements],
            [s["id"].encode() for s in settlements])
    group = uniq("group")
    t1 = time.monotonic()
    got = consumer_for(ledger, kafka_bootstrap, inbound, group_id=group).run(once=True)
    t2 = time.monotonic()
    assert got == {"accepted": 3, "duplicates": 0, "rejected": 0}
    assert sorted(recorded_ids(ledger)) == sorted(s["id"] for s in settlements)

    # offsets were committed: a second run of the same group sees nothing new
    assert consumer_for(ledger, kafka_bootstrap, inbound, group_id=group).run(once=True) == {
        "accepted": 0, "duplicates": 0, "rejected": 0}
    # publisher is caught up
    assert Publisher(ledger, kafka_bootstrap, topic_prefix=prefix).run(once=True)["published"] == 0
    print(f"\npublish {t1 - t0:.2f}s, consume once {t2 - t1:.2f}s")


def test_consumer_crash_between_record_and_commit(kafka_bootstrap, real_ledger):
    ledger = real_ledger
    topic, group = uniq("settlements"), uniq("group")
    first = [settlement(f"o{i}") for i in range(5)]
    produce(kafka_bootstrap, topic, [encode(s, "bank/BRI") for s in first])

    def crashing_factory():
        c = default_consumer_factory(kafka_bootstrap, topic, group)

        def commit(*a, **k):
            raise SimulatedCrash("killed after record, before commit")

        c.commit = commit
        return c

    crashing = consumer_for(ledger, kafka_bootstrap, topic, group_id=group, consumer_factory=crashing_factory)
    with pytest.raises(SimulatedCrash):
        crashing.run(once=True)
    assert sorted(recorded_ids(ledger)) == sorted(s["id"] for s in first)

    # restart: everything is re-delivered (nothing was committed) and dropped as duplicates
    assert consumer_for(ledger, kafka_bootstrap, topic, group_id=group).run(once=True) == {
        "accepted": 0, "duplicates": 5, "rejected": 0}
    more = [settlement(f"p{i}") for i in range(2)]
    produce(kafka_bootstrap, topic, [encode(s, "bank/BRI") for s in more])
    assert consumer_for(ledger, kafka_bootstrap, topic, group_id=group).run(once=True) == {
        "accepted": 2, "duplicates": 0, "rejected": 0}
    ids = recorded_ids(ledger)
    assert len(ids) == len(set(ids)) == 7


_KILL_SCRIPT = r"""
import os, signal, sys, logging
sys.path.insert(0, {repo!r})
from jejak.feeds.consumer import Consumer
logging.basicConfig(level=logging.WARNING)
""" + OPEN_REAL_LEDGER + r"""
real_record = ledger.record
def record(items):
    out = real_record(items)              # durable (committed to the store) ...
    if {kill!r}:
        os.kill(os.getpid(), signal.SIGKILL)  # ... then die before the offset commit
    return out
ledger.record = record
print(Consumer(ledger, {bootstrap!r}, topic={topic!r}, group_id={group!r},
               rejects_topic={topic!r} + ".rejects", once_timeout=30).run(once=True), flush=True)
"""


def test_consumer_process_killed_before_commit(kafka_bootstrap, real_store):
    state = real_store
    topic, group = uniq("settlements"), uniq("group")
    facts = [settlement(f"k{i}") for i in range(4)]
    produce(kafka_bootstrap, topic, [encode(s, "bank/BRI") for s in facts])

    def run(kill: bool) -> subprocess.CompletedProcess:
        script = _KILL_SCRIPT.format(repo=str(REPO), store=state.url, keys=state.keys, kill=kill, bootstrap=kafka_bootstrap,
                                     topic=topic, group=group)
        return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=90)

    killed = run(kill=True)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert sorted(state.ids()) == sorted(f["id"] for f in facts)

    # The dead member never left the group: the restart waits for its session to expire.
    again = run(kill=False)
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.strip().splitlines()[-1] == str({"accepted": 0, "duplicates": 4, "rejected": 0})
    ids = state.ids()
    assert len(ids) == len(set(ids)) == 4


_SIGTERM_SCRIPT = r"""
import sys, threading, logging
sys.path.insert(0, {repo!r})
from jejak.feeds.consumer import Consumer, stop_on_signals
logging.basicConfig(level=logging.WARNING)
""" + OPEN_REAL_LEDGER + r"""
real_record = ledger.record
def record(items):
    out = real_record(items)
    print("recorded", flush=True)
    return out
ledger.record = record
stop = threading.Event()
stop_on_signals(stop)
print(Consumer(ledger, {bootstrap!r}, topic={topic!r}, group_id={group!r},
               rejects_topic={topic!r} + ".rejects").run(stop_event=stop), flush=True)
"""


def test_consumer_sigterm_clean_shutdown(kafka_bootstrap, real_store):
    state = real_store
    topic, group = uniq("settlements"), uniq("group")
    produce(kafka_bootstrap, topic, [encode(settlement("sig1"), "bank/BRI")])
    script = _SIGTERM_SCRIPT.format(repo=str(REPO), store=state.url, keys=state.keys, bootstrap=kafka_bootstrap,
                                    topic=topic, group=group)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    watchdog = threading.Timer(WAIT + 30, proc.kill)  # bounds the blocking readline below
    watchdog.start()
    try:
        assert proc.stdout.readline().strip() == "recorded"
        t = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err[-2000:]
    assert time.monotonic() - t < 5
    assert out.strip().splitlines()[-1] == str({"accepted": 1, "duplicates": 0, "rejected": 0})
    assert state.ids() == ["stl-sig1"]


def test_publisher_crash_mid_batch(kafka_bootstrap, real_ledger):
    ledger = real_ledger
    prefix = uniq("disbursements")
    orders = [order("BRI") for _ in range(10)]
    ledger.record(orders)

    def crashing_producer(after: int):
        def factory():
            p = default_producer_factory(kafka_bootstrap)
            real_send, sent = p.send, [0]

            def send(*a, **k):
                if sent[0] == after:
                    raise SimulatedCrash("killed mid-batch")
                sent[0] += 1
                return real_send(*a, **k)

            p.send = send
            return p
        return factory

    # batch 1 (4 orders) goes through, the process dies in the middle of batch 2
    pub = Publisher(ledger, producer_factory=crashing_producer(after=6), topic_prefix=prefix, batch_size=4)
    with pytest.raises(SimulatedCrash):
        pub.run(once=True)
    assert ledger.get_position("feed.publish") == 4

    # a crash after the flush but before the position is stored
    real_set = ledger.set_position

    def set_position_crash(name, position):
        raise SimulatedCrash("killed after flush, before set_position")

    ledger.set_position = set_position_crash
    with pytest.raises(SimulatedCrash):
        Publisher(ledger, kafka_bootstrap, topic_prefix=prefix, batch_size=4).run(once=True)
    assert ledger.get_position("feed.publish") == 4
    ledger.set_position = real_set

    # restart: resumes from the stored position and publishes everything at least once
    assert Publisher(ledger, kafka_bootstrap, topic_prefix=prefix, batch_size=4).run(once=True) == {
        "published": 6, "position": 10}
    recs = read_topic(kafka_bootstrap, f"{prefix}.BRI", at_least=10)
    published = [decode(r.value, OUTBOUND_TYPES).id for r in recs]
    assert set(published) == {o["id"] for o in orders}
    assert len(published) >= 10  # duplicates on the wire are allowed


def test_poison_messages_go_to_rejects(kafka_bootstrap, real_ledger):
    ledger = real_ledger
    topic = uniq("settlements")
    rejects = topic + ".rejects"
    good = [settlement(f"g{i}") for i in range(3)]
    bad_amount = settlement("g9", amount=-5)
    order_fact = order("BRI")
    mismatched = orjson.loads(encode(settlement("g8"), "bank/BRI"))
    mismatched["id"] = "something-else"
    values = [
        encode(good[0], "bank/BRI"),
        b"this is not json",                                               # feed.not_json
        b"\xff\xfe\x00binary",                                             # feed.not_json (base64 payload)
        orjson.dumps({"hello": "world"}),                                 # feed.not_cloudevent
        orjson.dumps(settlement("g7")),                                   # bare fact: feed.not_cloudevent
        encode(good[1], "bank/BRI"),
        orjson.dumps(dict(orjson.loads(encode(good[2], "bank/BRI")), data="x")),  # feed.data_not_object
        orjson.dumps(mismatched),                                          # feed.envelope_mismatch
        encode(order_fact, "bank/BRI"),                                    # feed.type_not_allowed
        encode(bad_amount, "bank/BRI"),                                    # the ledger refuses it: non_positive_amount
        encode(good[2], "bank/BRI"),
    ]
    # one partition so that offsets are predictable
    p = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for v in values:
        p.send(topic, value=v, partition=0)
    p.flush(timeout=WAIT)
    p.close(timeout=5)

    group = uniq("group")
    assert consumer_for(ledger, kafka_bootstrap, topic, rejects_topic=rejects, group_id=group).run(once=True) == {
        "accepted": 3, "duplicates": 0, "rejected": 8}
    assert sorted(recorded_ids(ledger)) == sorted(g["id"] for g in good)

    dead = [orjson.loads(r.value) for r in read_topic(kafka_bootstrap, rejects, at_least=8)]
    dead.sort(key=lambda d: d["offset"])
    assert [(d["offset"], d["error"]) for d in dead] == [
        (1, "feed.not_json"), (2, "feed.not_json"), (3, "feed.not_cloudevent"), (4, "feed.not_cloudevent"),
        (6, "feed.data_not_object"), (7, "feed.envelope_mismatch"), (8, "feed.type_not_allowed"),
        (9, "non_positive_amount"),
    ]
    assert all(d["topic"] == topic and d["partition"] == 0 and d["message"] for d in dead)
    assert dead[0]["payload"] == "this is not json"
    assert dead[1]["payload_encoding"] == "base64"
    assert base64.b64decode(dead[1]["payload"]) == b"\xff\xfe\x00binary"
    assert dead[7]["id"] == bad_amount["id"] and orjson.loads(dead[7]["payload"])["data"] == bad_amount

    # the stream continues past the poison
    later = settlement("g10")
    produce(kafka_bootstrap, topic, [encode(later, "bank/BRI")])
    assert consumer_for(ledger, kafka_bootstrap, topic, rejects_topic=rejects, group_id=group).run(once=True) == {
        "accepted": 1, "duplicates": 0, "rejected": 0}
    assert later["id"] in recorded_ids(ledger)


def wait_until(pred, timeout: float = WAIT, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


def test_broker_restart_while_consuming(restartable_tansu, real_ledger):
    broker = restartable_tansu
    ledger = real_ledger
    topic = uniq("settlements")
    consumer = Consumer(ledger, broker.bootstrap, topic=topic, group_id=uniq("group"),
                        rejects_topic=topic + ".rejects", max_backoff=2.0)
    stop = threading.Event()
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(consumer.run(stop_event=stop)), daemon=True)

    before = [settlement(f"b{i}") for i in range(3)]
    produce(broker.bootstrap, topic, [encode(s, "bank/BRI") for s in before])
    thread.start()
    assert wait_until(lambda: len(recorded_ids(ledger)) == 3)

    t0 = time.monotonic()
    broker.restart()  # memory broker: topics, records and committed offsets are gone
    after = [settlement(f"a{i}") for i in range(3)]
    # a bank re-sends one old settlement too; the ledger must not record it twice
    produce(broker.bootstrap, topic, [encode(s, "bank/BRI") for s in after + before[:1]])
    assert wait_until(lambda: len(recorded_ids(ledger)) == 6, timeout=60), consumer.totals
    recovered = time.monotonic() - t0
    assert wait_until(lambda: consumer.totals["duplicates"] >= 1, timeout=10), consumer.totals

    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive(), "consumer did not stop on stop_event"
    ids = recorded_ids(ledger)
    assert sorted(ids) == sorted(s["id"] for s in before + after) and len(ids) == len(set(ids))
    assert result["accepted"] == 6
    print(f"\nrecovered {recovered:.2f}s after broker restart")


def test_stop_event_ends_idle_consumer_promptly(kafka_bootstrap, real_ledger):
    topic = uniq("settlements")
    produce(kafka_bootstrap, topic, [encode(settlement("s1"), "bank/BRI")])
    ledger = real_ledger
    consumer = consumer_for(ledger, kafka_bootstrap, topic)
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, kwargs={"stop_event": stop}, daemon=True)
    thread.start()
    assert wait_until(lambda: recorded_ids(ledger))
    t = time.monotonic()
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert time.monotonic() - t < 5


# ------------------------------------------------------- batch drain (reader process)
_PREFETCH_KILL_SCRIPT = r"""
import os, signal, sys, logging
sys.path.insert(0, {repo!r})
from jejak.feeds.consumer import Consumer
logging.basicConfig(level=logging.WARNING)
""" + OPEN_REAL_LEDGER + r"""
real_record, calls = ledger.record, [0]
def record(items):
    out = real_record(items)
    calls[0] += 1
    if {kill_after!r} and calls[0] == {kill_after!r}:
        os.kill(os.getpid(), signal.SIGKILL)  # durable, acknowledgement never sent
    return out
ledger.record = record
c = Consumer(ledger, {bootstrap!r}, topic={topic!r}, group_id={group!r}, rejects_topic={topic!r} + ".rejects",
             once_timeout=60, max_records=5)
print(c.run(once=True), flush=True)
"""


def _processes_with(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


def test_batch_drain_reader_process_killed_recorder(kafka_bootstrap, real_store):
    """`run(once=True)` decodes in a reader process; killing the recorder mid-drain loses nothing,
    records nothing twice, and takes the reader process down with it."""
    state = real_store
    topic, group = uniq("settlements"), uniq("group")
    facts = [settlement(f"d{i}") for i in range(23)]
    p = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    for s in facts:
        p.send(topic, value=encode(s, "bank/BRI"), partition=0)
    p.flush(timeout=WAIT)
    p.close(timeout=5)

    def run(kill_after: int) -> subprocess.CompletedProcess:
        script = _PREFETCH_KILL_SCRIPT.format(repo=str(REPO), store=state.url, keys=state.keys, kill_after=kill_after,
                                              bootstrap=kafka_bootstrap, topic=topic, group=group)
        return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)

    killed = run(kill_after=3)  # three batches of 5 recorded; at most two of them committed
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    recorded = state.ids()
    assert sorted(recorded) == sorted(f["id"] for f in facts[:15])
    assert wait_until(lambda: not _processes_with(group), timeout=15), "the reader process outlived its recorder"

    again = run(kill_after=0)
    assert again.returncode == 0, again.stderr[-2000:]
    summary = eval(again.stdout.strip().splitlines()[-1])  # noqa: S307 - our own script's dict
    # the uncommitted tail of what was recorded comes back as duplicates (at least the last batch)
    assert summary["accepted"] == 8 and 5 <= summary["duplicates"] <= 15 and summary["rejected"] == 0, summary
    ids = state.ids()
    assert sorted(ids) == sorted(f["id"] for f in facts) and len(ids) == len(set(ids))
    assert not _processes_with(group)

    # offsets were committed at the end: a third drain finds nothing
    third = run(kill_after=0)
    assert third.returncode == 0 and third.stdout.strip().splitlines()[-1] == str(
        {"accepted": 0, "duplicates": 0, "rejected": 0})


def test_batch_drain_same_outcome_with_and_without_reader_process(kafka_bootstrap, tmp_path):
    topic = uniq("settlements")
    values = [encode(settlement(f"e{i}"), "bank/BRI") for i in range(12)] + [b"not json", encode(
        settlement("e99", amount=-1), "bank/BRI")]
    produce(kafka_bootstrap, topic, values)
    results = {}
    for prefetch in (True, False):
        ledger = RealStore(str(tmp_path / f"drain-{prefetch}.db"), str(tmp_path / "keys")).open()
        got = consumer_for(ledger, kafka_bootstrap, topic, group_id=uniq("group"), prefetch=prefetch,
                           max_records=4).run(once=True)
        results[prefetch] = (got, sorted(recorded_ids(ledger)))
        ledger.close()
    assert results[True] == results[False]
    assert results[True][0] == {"accepted": 12, "duplicates": 0, "rejected": 2}


def test_batch_drain_of_missing_topic_ends_at_once(kafka_bootstrap, real_ledger):
    t = time.monotonic()
    got = consumer_for(real_ledger, kafka_bootstrap, uniq("never-created")).run(once=True)
    assert got == {"accepted": 0, "duplicates": 0, "rejected": 0}
    assert time.monotonic() - t < 15


def test_consumer_rewinds_when_the_log_restarts_shorter_than_its_position(restartable_tansu, real_ledger, caplog):
    """Partitions assigned directly (no group to rejoin, so kafka-python never
    resets the position by itself): after a memory broker restarts, the log
    ends below the consumer's position and Tansu answers fetches there with
    nothing. Only the consumer's own check (`_check_log_reset`) rewinds it, so
    what is produced after the restart is recorded."""
    broker = restartable_tansu
    topic = uniq("settlements")
    consumer = Consumer(real_ledger, broker.bootstrap, topic=topic, group_id=uniq("group"),
                        rejects_topic=topic + ".rejects", max_backoff=1.0, assign=True, prefetch=False)
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, kwargs={"stop_event": stop}, daemon=True)
    before = [settlement(f"r{i}") for i in range(5)]
    produce(broker.bootstrap, topic, [encode(s, "bank/BRI") for s in before], [b"k"] * 5)
    thread.start()
    try:
        assert wait_until(lambda: len(recorded_ids(real_ledger)) == 5), consumer.totals
        broker.restart()  # topics, records and offsets are gone
        after = [settlement(f"n{i}") for i in range(2)]  # fewer records than the consumer's position
        produce(broker.bootstrap, topic, [encode(s, "bank/BRI") for s in after], [b"k"] * 2)
        assert wait_until(lambda: len(recorded_ids(real_ledger)) == 7, timeout=60), consumer.totals
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert sorted(recorded_ids(real_ledger)) == sorted(s["id"] for s in before + after)
    assert any("log reset?" in r.getMessage() for r in caplog.records), "the rewind ran"
