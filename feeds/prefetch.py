"""Fetch and decode in a second process while the ledger records (batch drains).

kafka-python unpacks records in pure Python and strict CloudEvent decoding is
pure Python too: together about half as much CPU per message as recording it.
Threads cannot overlap that work (the GIL), a second process can. The reader
process owns the Kafka consumer: it polls, decodes every record, ships each
batch to the recording process, and commits a batch's offsets only when the
recorder sends them back, i.e. after the facts are durable. So the guarantees
of :class:`jejak.feeds.consumer.Consumer` hold unchanged:

* killed before the recorder acknowledges → the batch is re-delivered and its
  facts become duplicates;
* the reader dies → the recorder sees the pipe close and stops; nothing
  uncommitted was acknowledged.

At most ``ahead`` batches are in flight, so memory stays bounded whatever the
backlog. Messages between the processes carry fact objects and offsets; the
reader never logs payloads.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from typing import Any, Iterator

import orjson

log = logging.getLogger(__name__)

#: Reader → recorder messages (first element of the tuple).
BATCH, DRAINED, FAILED = "batch", "drained", "failed"
#: Recorder → reader messages.
COMMIT, STOP = "commit", "stop"


class ReaderFailed(RuntimeError):
    """The reader process reported an error or went away."""


class FeedRecord:
    """The parts of a Kafka record that rejects need (see ``consumer.reject_message``)."""

    __slots__ = ("topic", "partition", "offset", "key", "value")

    def __init__(self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None) -> None:
        self.topic, self.partition, self.offset, self.key, self.value = topic, partition, offset, key, value


class Batch:
    """One polled batch, decoded: the valid facts with their records, the decode rejects, the offsets to commit."""

    def __init__(self, facts: list[dict[str, Any]], records: list[FeedRecord],
                 rejects: list[tuple[FeedRecord, str, str, str | None]], offsets: dict[tuple[str, int], int]) -> None:
        self.facts, self.records, self.rejects, self.offsets = facts, records, rejects, offsets

    def __len__(self) -> int:
        return len(self.facts) + len(self.rejects)


def _reader_main(conn: Any, bootstrap: str, topic: str, group_id: str, allowed_types: frozenset[str],
                 max_records: int, poll_timeout_ms: int, ahead: int) -> None:
    """Reader process: poll → decode → send, commit what comes back, until drained or told to stop."""
    from kafka.structs import OffsetAndMetadata, TopicPartition

    from .cloudevents import FeedMessageError, decode
    from .consumer import _readable_id, default_consumer_factory

    consumer = None
    try:
        consumer = default_consumer_factory(bootstrap, topic, group_id, assign=True, max_poll_records=max_records)
        in_flight = 0
        drained_sent = idle = False
        while True:
            # Acknowledgements first. Block while too far ahead, while the last
            # poll found nothing but batches are still being recorded, or once drained.
            while conn.poll(None if in_flight >= ahead or drained_sent or (idle and in_flight) else 0):
                kind, payload = conn.recv()
                if kind == STOP:
                    return
                in_flight -= 1
                offsets = {TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in payload.items()}
                try:
                    consumer.commit(offsets)
                except Exception as exc:  # already recorded: a re-delivery only yields duplicates
                    log.warning("offset commit failed (%s); batch may be re-delivered", type(exc).__name__)
            if not drained_sent and in_flight == 0 and _drained(consumer):
                conn.send((DRAINED, None))  # without waiting out an empty poll
                drained_sent = True
                continue
            polled = consumer.poll(timeout_ms=poll_timeout_ms, max_records=max_records)
            records = [rec for tp in sorted(polled, key=lambda t: t.partition) for rec in polled[tp]]
            idle = not records
            if not records:
                continue
            facts: list[dict[str, Any]] = []
            kept: list[tuple[str, int, int, bytes | None, bytes | None]] = []
            rejects: list[tuple[tuple[str, int, int, bytes | None, bytes | None], str, str, str | None]] = []
            offsets: dict[tuple[str, int], int] = {}
            for rec in records:
                offsets[(rec.topic, rec.partition)] = rec.offset + 1
                raw = (rec.topic, rec.partition, rec.offset, rec.key, rec.value)
                try:
                    facts.append(decode(rec.value, allowed_types).data)
                    kept.append(raw)
                except FeedMessageError as exc:
                    rejects.append((raw, exc.code, exc.message, _readable_id(rec.value)))
            conn.send_bytes(orjson.dumps(facts))
            conn.send((BATCH, (kept, rejects, offsets)))
            in_flight += 1
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        return  # the recorder is gone: stop without committing anything more
    except Exception as exc:
        try:
            conn.send((FAILED, f"{type(exc).__name__}: {exc}"[:500]))
        except Exception:
            pass
    finally:
        if consumer is not None:
            try:
                consumer.close(autocommit=False)
            except Exception:
                pass
        conn.close()


def _drained(consumer: Any) -> bool:
    assigned = consumer.assignment()
    if not assigned:
        return True  # the topic does not exist: nothing to drain
    for tp in assigned:
        hw = consumer.highwater(tp)
        if hw is None:
            return False
        try:
            if consumer.position(tp, timeout_ms=1000) < hw:
                return False
        except Exception:
            return False
    return True


class PrefetchingReader:
    """The recorder's side: start the reader process, iterate decoded batches, acknowledge each one."""

    def __init__(self, bootstrap: str, topic: str, group_id: str, allowed_types: frozenset[str],
                 max_records: int, poll_timeout_ms: int, ahead: int = 2) -> None:
        # A fresh interpreter (not fork: the recorder holds database connections
        # and threads; not multiprocessing's spawn: it re-imports the caller's
        # __main__), connected by a socket pair.
        mine, theirs = socket.socketpair()
        config = {"bootstrap": bootstrap, "topic": topic, "group_id": group_id,
                  "allowed_types": sorted(allowed_types), "max_records": max_records,
                  "poll_timeout_ms": poll_timeout_ms, "ahead": ahead}
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(theirs.fileno()), orjson.dumps(config).decode()],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, close_fds=True)
        finally:
            theirs.close()
        self._conn = Connection(mine.detach())

    def batches(self, stop_event: Any, idle_timeout: float) -> Iterator[Batch]:
        """Decoded batches until the reader reports the topic drained (or ``stop_event``)."""
        last = time.monotonic()
        while not stop_event.is_set():
            if not self._conn.poll(0.2):
                if self._process.poll() is not None:
                    raise ReaderFailed(f"feed reader exited with code {self._process.returncode}")
                if time.monotonic() - last > idle_timeout:
                    raise ReaderFailed(f"no batch from the feed reader for {idle_timeout:.0f}s")
                continue
            try:
                blob = self._conn.recv_bytes()
            except (EOFError, OSError):
                raise ReaderFailed("feed reader went away") from None
            if blob[:1] == b"[":
                facts = orjson.loads(blob)
                kind, payload = self._conn.recv()
            else:  # a pickled control message
                kind, payload = _unpickle(blob)
            last = time.monotonic()
            if kind == DRAINED:
                return
            if kind == FAILED:
                raise ReaderFailed(payload)
            kept, rejects, offsets = payload
            yield Batch(facts, [FeedRecord(*raw) for raw in kept],
                        [(FeedRecord(*raw), code, message, fid) for raw, code, message, fid in rejects], offsets)

    def acknowledge(self, batch: Batch) -> None:
        """The batch is durable: let the reader commit its offsets."""
        self._conn.send((COMMIT, batch.offsets))

    def close(self) -> None:
        try:
            self._conn.send((STOP, None))
        except (OSError, EOFError):
            pass
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._conn.close()


def _unpickle(blob: bytes) -> Any:
    import pickle

    return pickle.loads(blob)


if __name__ == "__main__":  # the reader process
    _fd, _config = int(sys.argv[1]), orjson.loads(sys.argv[2])
    _reader_main(Connection(_fd), _config["bootstrap"], _config["topic"], _config["group_id"],
                 frozenset(_config["allowed_types"]), _config["max_records"], _config["poll_timeout_ms"],
                 _config["ahead"])
