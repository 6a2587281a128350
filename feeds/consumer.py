"""Inbound feed consumer: settlements, pickups and returns from banks and PT Pos
(``jejak.settlements``), complaints and their resolutions (``jejak.complaints``).

For each polled batch:

1. decode every record as a CloudEvent (strict, see :mod:`jejak.feeds.cloudevents`);
2. record all valid facts with ONE ``ledger.record(...)`` call (one transaction);
3. produce every rejected record (decode error or ledger rejection) to the rejects
   topic and flush (acks=all);
4. only then commit the offsets.

A crash anywhere before 4 re-delivers the batch; the ledger's idempotency by fact
id turns the re-delivered facts into duplicates, so nothing is lost or doubled.
Logs carry fact ids, topics, partitions, offsets and error codes only, never
payloads or rejection messages (they can contain NIK/KK numbers).
"""

from __future__ import annotations

import base64
import logging
import signal
import threading
import time
from typing import Any, Callable

import orjson

from contextlib import AbstractContextManager

from .cloudevents import COMPLAINT_TYPES, INBOUND_TYPES, FeedMessageError, decode
from .ports import LedgerPort

log = logging.getLogger(__name__)


def default_consumer_factory(
    bootstrap: str, topic: str, group_id: str, *, assign: bool = False, **overrides: Any
) -> Any:
    """A kafka-python consumer of ``topic`` for ``group_id``.

    ``assign=False``: a group member (subscribe): partitions are balanced between
    the running consumers, at the price of the group join (~3 s on Tansu, about
    `group.initial.rebalance.delay.ms` on Apache Kafka).
    ``assign=True``: every partition of the topic is assigned directly, with no
    group membership and so no join; offsets are still read from and committed
    to ``group_id`` (generation -1, as Kafka allows for a group with no active
    members). For batch drains (`jejak feed consume --once`): if a group member
    is active at the same time its broker refuses our commits, which only means
    re-delivery, i.e. duplicates the ledger drops by fact id.
    """
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition

    config: dict[str, Any] = dict(
        bootstrap_servers=bootstrap,
        group_id=group_id,
        client_id="jejak-ledger-consumer",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # Tansu holds JoinGroup for a while; with these the join takes ~3 s
        # (with kafka-python's default 45 s session timeout it takes ~23 s).
        max_poll_interval_ms=5000,
        session_timeout_ms=6000,
        heartbeat_interval_ms=2000,
        # One ledger transaction and one offset commit per poll: 2,000 records, like
        # `jejak ingest` (Settings.batch_size); with 500 the commits and per-poll
        # overhead cost ~30% of the throughput (bench/feeds.py).
        max_poll_records=2000,
        request_timeout_ms=15000,
        reconnect_backoff_ms=100,
        reconnect_backoff_max_ms=2000,
    )
    config.update(overrides)
    if not assign:
        return KafkaConsumer(topic, **config)
    consumer = KafkaConsumer(**config)
    try:
        partitions = _topic_partitions(consumer, topic, timeout_s=2.0)
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
    except BaseException:
        consumer.close(autocommit=False)
        raise
    return consumer


def _topic_partitions(consumer: Any, topic: str, timeout_s: float) -> set[int]:
    """The topic's partitions from broker metadata; empty if the topic does not exist."""
    deadline = time.monotonic() + timeout_s
    while True:
        partitions = consumer.partitions_for_topic(topic)
        if partitions or time.monotonic() > deadline:
            return set(partitions or ())
        time.sleep(0.2)


def default_rejects_producer_factory(bootstrap: str, **overrides: Any) -> Any:
    from kafka import KafkaProducer

    config: dict[str, Any] = dict(
        bootstrap_servers=bootstrap,
        client_id="jejak-rejects",
        acks="all",
        linger_ms=0,
        delivery_timeout_ms=30_000,
        request_timeout_ms=10_000,
        reconnect_backoff_max_ms=2_000,
    )
    config.update(overrides)
    return KafkaProducer(**config)


def stop_on_signals(
    stop_event: threading.Event, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)
) -> None:
    """Make SIGTERM/SIGINT set ``stop_event`` (main thread only); ``run`` then returns after the current batch."""

    def handler(signum: int, _frame: Any) -> None:
        log.info("signal %d received; stopping after the current batch", signum)
        stop_event.set()

    for sig in signals:
        signal.signal(sig, handler)


def _payload_text(value: bytes | None) -> tuple[str | None, str]:
    if value is None:
        return None, "none"
    try:
        return bytes(value).decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(bytes(value)).decode("ascii"), "base64"


def _readable_id(value: bytes | None) -> str | None:
    """The fact id if it can be read without trusting the message (for rejects and logs)."""
    try:
        obj = orjson.loads(value) if value is not None else None
    except orjson.JSONDecodeError:
        return None
    if isinstance(obj, dict):
        for cand in (obj.get("id"), (obj.get("data") or {}).get("id") if isinstance(obj.get("data"), dict) else None):
            if isinstance(cand, str) and 0 < len(cand) <= 128:
                return cand
    return None


def reject_message(record: Any, code: str, message: str, fact_id: str | None = None) -> bytes:
    payload, encoding = _payload_text(record.value)
    return orjson.dumps({
        "payload": payload,
        "payload_encoding": encoding,
        "error": code,
        "message": message,
        "id": fact_id,
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
    })


class Consumer:
    def __init__(
        self,
        ledger: LedgerPort,
        bootstrap: str | None = None,
        topic: str = "jejak.settlements",
        group_id: str = "jejak-ledger",
        rejects_topic: str = "jejak.rejects",
        *,
        consumer_factory: Callable[[], Any] | None = None,
        producer_factory: Callable[[], Any] | None = None,
        allowed_types: frozenset[str] = INBOUND_TYPES,
        poll_timeout_ms: int = 1000,
        max_records: int = 2000,
        flush_timeout: float = 30.0,
        once_timeout: float = 60.0,
        max_backoff: float = 30.0,
        assign: bool | None = None,
        prefetch: bool | None = None,
    ) -> None:
        if consumer_factory is None or producer_factory is None:
            if not bootstrap:
                raise ValueError("give bootstrap or both consumer_factory and producer_factory")
        self.ledger = ledger
        self.topic = topic
        self.group_id = group_id
        self.rejects_topic = rejects_topic
        #: None: assign partitions directly for `run(once=True)` (no group join),
        #: join the group for a long-running `run()`.
        self.assign = assign
        self._once = False
        #: None: decode in a reader process (:mod:`jejak.feeds.prefetch`) when
        #: partitions are assigned directly, i.e. for `run(once=True)`.
        self.prefetch = prefetch
        self.bootstrap = bootstrap
        self._custom_consumer = consumer_factory is not None
        self.consumer_factory = consumer_factory or (
            lambda: default_consumer_factory(
                bootstrap, topic, group_id, assign=self._assigned_directly))  # type: ignore[arg-type]
        self.producer_factory = producer_factory or (
            lambda: default_rejects_producer_factory(bootstrap))  # type: ignore[arg-type]
        self.allowed_types = allowed_types
        self.poll_timeout_ms = poll_timeout_ms
        self.max_records = max_records
        self.flush_timeout = flush_timeout
        self.once_timeout = once_timeout
        self.max_backoff = max_backoff
        self._consumer: Any = None
        self._producer: Any = None
        self._next: dict[Any, int] = {}  # partition -> next offset we expect
        self.totals = {"accepted": 0, "duplicates": 0, "rejected": 0}
        self.commit_failures = 0
        self.errors = 0

    @property
    def _assigned_directly(self) -> bool:
        if self._custom_consumer:
            return False
        return self._once if self.assign is None else self.assign

    # --------------------------------------------------------------- clients
    @property
    def consumer(self) -> Any:
        if self._consumer is None:
            self._consumer = self.consumer_factory()
        return self._consumer

    @property
    def producer(self) -> Any:
        if self._producer is None:
            self._producer = self.producer_factory()
        return self._producer

    # ----------------------------------------------------------------- batch
    def handle(self, records: list[Any]) -> dict[str, int]:
        """Decode, record and dead-letter ``records``; does NOT commit. Raises if anything failed."""
        kept: list[Any] = []
        facts: list[dict[str, Any]] = []
        rejects: list[tuple[Any, str, str, str | None]] = []
        for rec in records:
            try:
                event = decode(rec.value, self.allowed_types)
            except FeedMessageError as exc:
                rejects.append((rec, exc.code, exc.message, _readable_id(rec.value)))
            else:
                kept.append(rec)
                facts.append(event.data)
        return self._record(kept, facts, rejects)

    def _record(self, records: list[Any], facts: list[dict[str, Any]],
                rejects: list[tuple[Any, str, str, str | None]]) -> dict[str, int]:
        """Record decoded ``facts`` (from ``records``) in one transaction, then dead-letter every reject."""
        summary = {"accepted": 0, "duplicates": 0, "rejected": 0}
        if facts:
            outcomes = self.ledger.record(facts)
            if len(outcomes) != len(facts):
                raise RuntimeError("ledger returned a different number of outcomes than items")
            for rec, fact, outcome in zip(records, facts, outcomes):
                if outcome.status == "accepted":
                    summary["accepted"] += 1
                elif outcome.status == "duplicate":
                    summary["duplicates"] += 1
                else:
                    fid = outcome.fact_id or (fact.get("id") if isinstance(fact.get("id"), str) else None)
                    rejects.append((rec, outcome.code or "rejected", outcome.message or "", fid))
        if rejects:
            futures = []
            for rec, code, message, fid in rejects:
                log.warning("rejected %s[%d]@%d id=%s: %s", rec.topic, rec.partition, rec.offset, fid, code)
                futures.append(self.producer.send(
                    self.rejects_topic, key=rec.key, value=reject_message(rec, code, message, fid)))
            self.producer.flush(timeout=self.flush_timeout)
            for fut in futures:
                fut.get(timeout=self.flush_timeout)  # flush() does not raise on failed sends
            summary["rejected"] += len(rejects)
        return summary

    def _rewind(self, batch: dict[Any, list[Any]]) -> None:
        for tp, recs in batch.items():
            if recs:
                try:
                    self.consumer.seek(tp, recs[0].offset)
                except Exception as exc:  # partition revoked meanwhile: the new owner re-reads
                    log.info("could not rewind %s[%d]: %s", tp.topic, tp.partition, type(exc).__name__)
                self._next.pop(tp, None)

    def _commit(self, batch: dict[Any, list[Any]]) -> None:
        from kafka.structs import OffsetAndMetadata

        offsets = {tp: OffsetAndMetadata(recs[-1].offset + 1, "", -1) for tp, recs in batch.items() if recs}
        try:
            self.consumer.commit(offsets)
        except Exception as exc:
            # Already recorded; a re-delivery only yields duplicates.
            self.commit_failures += 1
            log.warning("offset commit failed (%s); batch may be re-delivered", type(exc).__name__)

    def _check_log_reset(self) -> None:
        """Rewind partitions whose log is now shorter than our position (e.g. a memory broker restarted).

        Tansu answers fetches beyond the end with an empty result instead of
        OFFSET_OUT_OF_RANGE, so kafka-python's auto_offset_reset never triggers.
        """
        for tp, expected in list(self._next.items()):
            try:
                hw = self.consumer.highwater(tp)
            except Exception:
                hw = None
            if hw is not None and hw < expected:
                log.warning("%s[%d] end offset %d is below our position %d (log reset?); rewinding to start",
                            tp.topic, tp.partition, hw, expected)
                self._next.pop(tp, None)
                try:
                    self.consumer.seek_to_beginning(tp)
                except Exception as exc:
                    log.info("could not rewind %s[%d]: %s", tp.topic, tp.partition, type(exc).__name__)

    def poll_once(self) -> tuple[dict[str, int], int]:
        """One poll → handle → commit cycle. Returns (summary, number of records)."""
        batch = self.consumer.poll(timeout_ms=self.poll_timeout_ms, max_records=self.max_records)
        batch = {tp: recs for tp, recs in batch.items() if recs}
        if not batch:
            self._check_log_reset()
            return {"accepted": 0, "duplicates": 0, "rejected": 0}, 0
        records = [rec for tp in sorted(batch, key=lambda t: (t.topic, t.partition)) for rec in batch[tp]]
        try:
            summary = self.handle(records)
        except BaseException:
            self._rewind(batch)
            raise
        for tp, recs in batch.items():
            self._next[tp] = recs[-1].offset + 1
        self._commit(batch)
        for k, v in summary.items():
            self.totals[k] += v
        log.info("batch of %d record(s): %d accepted, %d duplicate, %d rejected",
                 len(records), summary["accepted"], summary["duplicates"], summary["rejected"])
        return summary, len(records)

    def _drained(self) -> bool:
        assigned = self.consumer.assignment()
        if not assigned:
            return False
        for tp in assigned:
            hw = self.consumer.highwater(tp)
            if hw is None:
                return False
            try:
                if self.consumer.position(tp, timeout_ms=1000) < hw:
                    return False
            except Exception:
                return False
        return True

    # ------------------------------------------------------------------- run
    def run(self, once: bool = False, stop_event: threading.Event | None = None) -> dict[str, int]:
        """Consume until ``stop_event`` is set (or, with ``once``, until caught up).

        Returns the counts of this run: ``{"accepted", "duplicates", "rejected"}``.
        """
        stop_event = stop_event or threading.Event()
        self._once = once
        before = dict(self.totals)
        deadline = time.monotonic() + self.once_timeout
        backoff = 0.5
        idle_assigned = 0
        if self._prefetching:
            return self._run_prefetching(stop_event, deadline, before)
        try:
            while not stop_event.is_set():
                try:
                    _, n = self.poll_once()
                    backoff = 0.5
                except Exception as exc:
                    self.errors += 1
                    from kafka.errors import KafkaError

                    detail = str(exc) if isinstance(exc, KafkaError) else ""
                    log.warning("consumer error %s %s; retrying in %.1fs", type(exc).__name__, detail, backoff)
                    if once and time.monotonic() > deadline:
                        raise
                    stop_event.wait(backoff)
                    backoff = min(backoff * 2, self.max_backoff)
                    continue
                if once:
                    if n == 0 and self._assigned_directly and not self.consumer.assignment():
                        break  # the topic does not exist: nothing to drain
                    if n == 0:
                        idle_assigned = idle_assigned + 1 if self.consumer.assignment() else 0
                        if self._drained() or idle_assigned >= 3:
                            break
                    else:
                        idle_assigned = 0
                    if time.monotonic() > deadline:
                        log.warning("once: gave up waiting after %.0fs", self.once_timeout)
                        break
        finally:
            self.close()
        return {k: self.totals[k] - before[k] for k in self.totals}

    @property
    def _prefetching(self) -> bool:
        if self._custom_consumer or not self._assigned_directly:
            return False
        return self.prefetch is not False

    def _run_prefetching(self, stop_event: threading.Event, deadline: float,
                         before: dict[str, int]) -> dict[str, int]:
        """`run` with fetching and decoding in a reader process; same commit-after-record rule."""
        from .prefetch import PrefetchingReader

        backoff = 0.5
        while not stop_event.is_set():
            reader = PrefetchingReader(self.bootstrap, self.topic, self.group_id,  # type: ignore[arg-type]
                                       self.allowed_types, self.max_records, self.poll_timeout_ms)
            try:
                for batch in reader.batches(stop_event, idle_timeout=self.once_timeout):
                    summary = self._record(batch.records, batch.facts, batch.rejects)
                    reader.acknowledge(batch)
                    for k, v in summary.items():
                        self.totals[k] += v
                    log.info("batch of %d record(s): %d accepted, %d duplicate, %d rejected",
                             len(batch), summary["accepted"], summary["duplicates"], summary["rejected"])
                    if time.monotonic() > deadline:
                        log.warning("once: gave up waiting after %.0fs", self.once_timeout)
                        break
                break
            except Exception as exc:
                self.errors += 1
                log.warning("consumer error %s; retrying in %.1fs", type(exc).__name__, backoff)
                if time.monotonic() > deadline:
                    raise
                stop_event.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)
            finally:
                reader.close()
        self.close()
        return {k: self.totals[k] - before[k] for k in self.totals}

    def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        producer, self._producer = self._producer, None
        self._next.clear()
        if consumer is not None:
            try:
                consumer.close(autocommit=False)
            except Exception as exc:  # pragma: no cover - best effort
                log.warning("closing consumer failed: %s", type(exc).__name__)
        if producer is not None:
            try:
                producer.close(timeout=5)
            except Exception as exc:  # pragma: no cover - best effort
                log.warning("closing rejects producer failed: %s", type(exc).__name__)


#: The inbound topics: (topic, fact types it accepts, consumer group that records it).
INBOUND_TOPICS: tuple[tuple[str, frozenset[str], str], ...] = (
    ("jejak.settlements", INBOUND_TYPES, "jejak-ledger"),
    ("jejak.complaints", COMPLAINT_TYPES, "jejak-ledger-complaints"),
)


def consume_inbound(
    open_ledger: Callable[[], AbstractContextManager[LedgerPort]],
    bootstrap: str,
    *,
    once: bool = False,
    stop_event: threading.Event | None = None,
    topics: tuple[tuple[str, frozenset[str], str], ...] = INBOUND_TOPICS,
    **options: Any,
) -> dict[str, int]:
    """Record every inbound topic, each with its own types, through one :class:`Consumer`
    each (same validation, rejects topic and idempotency by fact id).

    ``once``: drain the topics one after the other with one ledger. Otherwise run
    them side by side, one thread and one ledger (``open_ledger()``) per topic,
    until ``stop_event`` is set. Returns the summed counts."""
    stop_event = stop_event or threading.Event()
    totals = {"accepted": 0, "duplicates": 0, "rejected": 0}

    def consumer(ledger: LedgerPort, topic: str, types: frozenset[str], group: str) -> Consumer:
        return Consumer(ledger, bootstrap, topic, group, allowed_types=types, **options)

    if once:
        with open_ledger() as ledger:
            for topic, types, group in topics:
                for k, v in consumer(ledger, topic, types, group).run(once=True, stop_event=stop_event).items():
                    totals[k] += v
        return totals
    results: list[dict[str, int]] = []
    failures: list[BaseException] = []

    def run(topic: str, types: frozenset[str], group: str) -> None:
        try:
            with open_ledger() as ledger:
                results.append(consumer(ledger, topic, types, group).run(stop_event=stop_event))
        except BaseException as exc:  # raised in the caller's thread below
            failures.append(exc)
            stop_event.set()

    threads = [threading.Thread(target=run, args=spec, name=f"jejak-consume-{spec[0]}") for spec in topics]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]
    for result in results:
        for k, v in result.items():
            totals[k] += v
    return totals
