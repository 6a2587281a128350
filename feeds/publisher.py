"""Outbox publisher: follows the ledger's log and publishes disbursement orders to the banks.

Every ``disbursement.ordered`` entry goes to ``<topic_prefix>.<channel>``
(e.g. ``jejak.disbursements.BRI``), keyed by the order id, as a CloudEvent with
``jejakindex``/``jejakchain``. The tracked position ``feed.publish`` (next log
index to process) only advances after the batch has been acknowledged by the
broker (acks=all), so a crash re-publishes at most one batch: duplicates on the
wire are possible, losses are not. Receivers deduplicate by CloudEvent id.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any, Callable

from .cloudevents import KAFKA_CONTENT_TYPE, encode_entry
from .ports import LedgerPort

log = logging.getLogger(__name__)

POSITION = "feed.publish"
ORDER_TYPE = "disbursement.ordered"
_TOPIC_PART = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class PublishError(RuntimeError):
    pass


def default_producer_factory(bootstrap: str, **overrides: Any) -> Any:
    from kafka import KafkaProducer

    config: dict[str, Any] = dict(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        retries=2**31 - 1,
        delivery_timeout_ms=30_000,
        request_timeout_ms=10_000,
        reconnect_backoff_max_ms=2_000,
        client_id="jejak-publisher",
    )
    config.update(overrides)
    return KafkaProducer(**config)


class Publisher:
    def __init__(
        self,
        ledger: LedgerPort,
        bootstrap: str | None = None,
        *,
        producer_factory: Callable[[], Any] | None = None,
        topic_prefix: str = "jejak.disbursements",
        position_name: str = POSITION,
        batch_size: int = 500,
        source: str = "jejak",
        poll_interval: float = 1.0,
        flush_timeout: float = 30.0,
        max_backoff: float = 30.0,
    ) -> None:
        if producer_factory is None:
            if not bootstrap:
                raise ValueError("give bootstrap or producer_factory")
            producer_factory = lambda: default_producer_factory(bootstrap)  # noqa: E731
        self.ledger = ledger
        self.producer_factory = producer_factory
        self.topic_prefix = topic_prefix
        self.position_name = position_name
        self.batch_size = batch_size
        self.source = source
        self.poll_interval = poll_interval
        self.flush_timeout = flush_timeout
        self.max_backoff = max_backoff
        self._producer: Any = None
        self.published = 0

    # ------------------------------------------------------------------ core
    @property
    def producer(self) -> Any:
        if self._producer is None:
            self._producer = self.producer_factory()
        return self._producer

    def topic_for(self, fact: dict[str, Any]) -> str | None:
        channel = fact.get("channel")
        if not isinstance(channel, str) or not _TOPIC_PART.match(channel):
            return None
        return f"{self.topic_prefix}.{channel}"

    def publish_batch(self) -> int:
        """Publish one batch from the tracked position; returns how many log entries it covered.

        Raises on any delivery failure, leaving the position where it was.
        """
        start = self.ledger.get_position(self.position_name)
        entries = self.ledger.read_entries(start, self.batch_size)
        if not entries:
            return 0
        futures = []
        for entry in entries:
            fact = entry.fact
            if fact.get("type") != ORDER_TYPE:
                continue
            topic = self.topic_for(fact)
            if topic is None:
                # The ledger validated the channel; this cannot happen for SPEC facts.
                log.error("order %s at index %d has no usable channel; not published",
                          fact.get("id"), entry.index)
                continue
            futures.append((entry.index, fact.get("id"), self.producer.send(
                topic,
                key=str(fact["id"]).encode("utf-8"),
                value=encode_entry(entry, self.source),
                headers=[("content-type", KAFKA_CONTENT_TYPE.encode("ascii"))],
            )))
        if futures:
            self.producer.flush(timeout=self.flush_timeout)
            for index, fid, fut in futures:
                # flush() does not raise on failed sends: check every future.
                try:
                    fut.get(timeout=self.flush_timeout)
                except Exception as exc:
                    log.warning("publish of order %s (index %d) failed: %s", fid, index,
                                type(exc).__name__)
                    raise PublishError(f"delivery failed at index {index}") from exc
        next_position = entries[-1].index + 1
        self.ledger.set_position(self.position_name, next_position)
        self.published += len(futures)
        log.info("published %d order(s), log position %d -> %d", len(futures), start, next_position)
        return len(entries)

    def drain(self) -> int:
        """Publish until caught up with the log; returns entries covered."""
        total = 0
        while True:
            n = self.publish_batch()
            total += n
            if n == 0:
                return total

    # ------------------------------------------------------------------- run
    def run(self, once: bool = False, stop_event: threading.Event | None = None) -> dict[str, int]:
        """Follow the log. ``once=True`` publishes what is there and returns (errors propagate).

        Otherwise loops until ``stop_event`` is set, retrying failures with backoff.
        """
        stop_event = stop_event or threading.Event()
        start_published = self.published
        try:
            if once:
                self.drain()
            else:
                backoff = 0.5
                while not stop_event.is_set():
                    try:
                        n = self.publish_batch()
                        backoff = 0.5
                        if n == 0:
                            stop_event.wait(self.poll_interval)
                    except Exception as exc:
                        log.warning("publisher error (%s); retrying in %.1fs",
                                    type(exc).__name__, backoff)
                        self.close()  # start over with a fresh producer
                        stop_event.wait(backoff)
                        backoff = min(backoff * 2, self.max_backoff)
        finally:
            self.close()
        return {"published": self.published - start_published,
                "position": self.ledger.get_position(self.position_name)}

    def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=5)
            except Exception as exc:  # pragma: no cover - best effort
                log.warning("closing producer failed: %s", type(exc).__name__)
