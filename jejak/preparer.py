"""Recording, stage one: parse, validate and protect facts (no I/O).

`FactPreparer.prepare(items)` turns a batch of raw lines (or decoded objects)
into the rejections it found and the `FactRows` the recorder writes. It needs
only the pseudonym key, so `jejak ingest` runs it in a worker process while
the main process writes the batch before (`PreparerPool`): the CPU-bound
preparation and the write (mostly waiting on the database) overlap.
"""

from __future__ import annotations

import logging
import os
import pickle
import queue
import re
import signal
import struct
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Sequence

import orjson

from jejak.domain.errors import FactRejected, InvalidJSON, LeafTooLarge, LineTooLong
from jejak.domain.events import fact_originator_hex
from jejak.domain.facts import KNOWN_FIELDS, PERSONAL_FIELDS, Fact, check_fact, readable_id
from jejak.domain.nik import nik_is_possible
from jejak.store.leaf import MAX_LEAF_BYTES, encode_leaf
from jejak.store.mapper import TOPICS, LeafMapper
from jejak.store.recorders import FactRows, PreparedFact
from jejak.store.vault import Sealer, Tokenizer

log = logging.getLogger(__name__)


class OversizedLine(bytes):
    """Stands in for a line too long to read ("<length> <limit>"), so that its
    rejection keeps its place among the batch's other outcomes."""

    @classmethod
    def of(cls, length: int, limit: int) -> "OversizedLine":
        return cls(f"{length} {limit}".encode())


def parse_json_line(raw: bytes | str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if type(raw) is OversizedLine:
            length, limit = raw.split()
            raise LineTooLong(f"line is {int(length):,} bytes, more than the {int(limit):,} a fact may have "
                              f"(JEJAK_MAX_LINE_BYTES); it was skipped unread") from None
        raise InvalidJSON(f"line is not valid JSON ({exc.msg} at column {exc.colno})") from None


def _lenient_parse(raw: Any) -> Any:
    """What Python's own JSON parser makes of a line orjson refused (a number
    beyond a double such as 1e400, NaN, a lone surrogate), or None. Only ever
    used to name the refused line's fact id."""
    import json

    try:
        return json.loads(raw)
    except (ValueError, TypeError, RecursionError):
        return None


@dataclass(frozen=True, slots=True)
class Rejected:
    """An item the preparer refused: its position in the batch and why."""

    slot: int
    fact_id: str | None
    code: str
    message: str


@dataclass(slots=True)
class PreparedBatch:
    """A batch after stage one: rejections decided, the rest ready to record."""

    rejected: list[Rejected] = field(default_factory=list)
    slots: list[int] = field(default_factory=list)  # each fact's position in the batch
    ids: list[str] = field(default_factory=list)  # each fact's id as sent (`rows.fact_ids` are as stored)
    rows: FactRows = field(default_factory=FactRows)


class FactPreparer:
    """Stage one of recording. With a `sealer` it also seals the vault subjects
    it sees for the first time, and with an `events_encoder` (the recorder's)
    it encodes the events rows: work that does not depend on the log, done
    here so that an ingest worker takes it off the writing process."""

    #: Subjects remembered as sealed before (bounded; a forgotten one is sealed again, harmlessly).
    SEALED_MEMORY = 200_000

    def __init__(self, tokenizer: Tokenizer, sealer: Sealer | None = None,
                 events_encoder: Callable[[FactRows], Any] | None = None) -> None:
        self.tokenizer = tokenizer
        self.sealer = sealer
        self.events_encoder = events_encoder
        self.mapper = LeafMapper()
        self._sealed: set[str] = set()

    def __getstate__(self) -> dict[str, Any]:
        # pickled only to start an ingest worker (over its pipe); what it has sealed stays here
        return {"tokenizer": self.tokenizer, "sealer": self.sealer, "events_encoder": self.events_encoder}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    def protect(self, fact: Fact) -> PreparedFact:
        """Replace personal data by tokens; collect what the vault must seal."""
        protected, derived, subjects = self._protected(fact)
        return PreparedFact(protected["id"], self.mapper.stored_fact(protected, derived), tuple(subjects))

    def _protected(self, fact: Fact) -> tuple[dict[str, Any], dict[str, Any], list[tuple[str, str, str]]]:
        """(protected fact, derived attributes, vault subjects) of a validated
        fact, as leaf format v2 has it (see `jejak.store.leaf`).

        A personal field (`PERSONAL_FIELDS`) holding a string is tokenised as
        itself; any field SPEC does not define for the type is tokenised from
        its JSON (it may hold anything, so it is treated as personal text);
        in every other string each run of 16 or more digits is tokenised; a
        public source's id is tokenised whole."""
        body = fact.body
        protected = dict(body)
        subjects: list[tuple[str, str, str]] = []
        token = self.tokenizer.token
        for name, kind in _PERSONAL_KINDS:
            value = body.get(name)
            if type(value) is str:
                protected[name] = tok = token(kind, value)
                subjects.append((tok, kind, value))
        known = KNOWN_FIELDS[fact.type]
        if not body.keys() <= known:
            for name in body.keys() - known:
                value = body[name]
                if name in PERSONAL_FIELDS and type(value) is str:
                    continue  # done above
                protected[name] = self._sealed_json("extra", value, subjects)
        for name in _OTHER_FIELDS[fact.type]:  # every other field SPEC defines: 16-digit runs in its strings
            value = body.get(name)
            if type(value) is str:
                if len(value) >= _RUN and _DIGIT_RUN.search(value):
                    protected[name] = self._runs_tokenised(value, subjects)
            elif isinstance(value, (dict, list)):
                protected[name] = self._runs_tokenised_in(value, subjects)
        source = body["source"]
        protected_source = self._protected_source(source, subjects)
        if protected_source is not source:
            protected["source"] = protected_source
        derived = {"nik_possible": nik_is_possible(body["nik"])} if fact.type == "disbursement.ordered" else {}
        return protected, derived, subjects

    def _sealed_json(self, kind: str, value: Any, subjects: list[tuple[str, str, str]]) -> str:
        text = orjson.dumps(value).decode()
        tok = self.tokenizer.token(kind, text)
        subjects.append((tok, kind, text))
        return tok

    def _runs_tokenised(self, text: str, subjects: list[tuple[str, str, str]]) -> str:
        """`text` with each maximal run of 16 or more digits replaced by its token."""
        token = self.tokenizer.token

        def replace(match: re.Match[str]) -> str:
            run = match.group()
            tok = token(DIGITS_KIND, run)
            subjects.append((tok, DIGITS_KIND, run))
            return tok

        return _DIGIT_RUN.sub(replace, text)

    def stored_text(self, text: str) -> str:
        """A string as a leaf stores it outside personal fields (16-digit runs tokenised): the key to look
        a fact up by its clear id, or an order by a clear reference."""
        return self._runs_tokenised(text, []) if len(text) >= _RUN else text

    def _runs_tokenised_in(self, value: Any, subjects: list[tuple[str, str, str]]) -> Any:
        if isinstance(value, str):
            return self._runs_tokenised(value, subjects) if len(value) >= _RUN else value
        if isinstance(value, dict):
            if all(type(v) is int for v in value.values()):
                return value  # amounts or counts by component: nothing to tokenise
            return {k: self._runs_tokenised_in(v, subjects) for k, v in value.items()}
        if isinstance(value, list):
            return [self._runs_tokenised_in(v, subjects) for v in value]
        return value

    def _protected_source(self, source: dict[str, Any], subjects: list[tuple[str, str, str]]) -> dict[str, Any]:
        """A public source's id tokenised whole; another's, its digit runs; keys SPEC does not define, as JSON."""
        source_id = source["id"]
        if source["kind"] != "public" and len(source) == 2 and (len(source_id) < _RUN or not _DIGIT_RUN.search(source_id)):
            return source  # the common case: nothing personal
        out = dict(source)
        if source["kind"] == "public":
            out["id"] = tok = self.tokenizer.token(PUBLIC_SOURCE_KIND, source_id)
            subjects.append((tok, PUBLIC_SOURCE_KIND, source_id))
        elif len(source_id) >= _RUN and _DIGIT_RUN.search(source_id):
            out["id"] = self._runs_tokenised(source_id, subjects)
        if len(source) > 2:
            for name in source.keys() - _SOURCE_FIELDS:
                out[name] = self._sealed_json("extra", source[name], subjects)
        return out

    def prepare(self, items: Sequence[bytes | str | dict[str, Any]]) -> PreparedBatch:
        batch = PreparedBatch()
        append, slots, ids = batch.rows.append, batch.slots, batch.ids
        for slot, item in enumerate(items):
            obj: Any = None
            try:
                obj = item if isinstance(item, dict) else parse_json_line(item)
                fact = check_fact(obj)
                protected, derived, subjects = self._protected(fact)
                leaf = encode_leaf(protected, derived)
                if len(leaf) > MAX_LEAF_BYTES:
                    raise LeafTooLarge(
                        f"the fact's leaf would be {len(leaf):,} bytes, more than the {MAX_LEAF_BYTES:,} a log "
                        f"entry may hold; shorten its free text or the fields SPEC does not define")
            except FactRejected as exc:
                if obj is None and isinstance(exc, InvalidJSON):
                    obj = _lenient_parse(item)  # the id of a line orjson refuses may still be readable
                batch.rejected.append(Rejected(slot, readable_id(obj), exc.code, exc.message))
                continue
            # what `protect` gives, without building its stored event (the ingest hot path)
            stored_id = protected["id"]
            append(stored_id, fact_originator_hex(stored_id), TOPICS[fact.type], leaf, subjects)
            slots.append(slot)
            ids.append(fact.id)
        if self.sealer is not None:
            self._seal_ahead(batch.rows)
        if self.events_encoder is not None:
            batch.rows.encoded_events = self.events_encoder(batch.rows)
        return batch

    def _seal_ahead(self, rows: FactRows) -> None:
        """Seal the batch's subjects not sealed before by this preparer. The
        writer stores the ones the vault lacks (and seals any other it needs)."""
        done = self._sealed
        fresh = rows.subjects.keys() - done
        if not fresh:
            return
        if len(done) + len(fresh) > self.SEALED_MEMORY:
            done.clear()
        seal = self.sealer.seal  # type: ignore[union-attr]
        for token in fresh:
            kind, value = rows.subjects[token]
            sealed = seal(token, kind, value)
            rows.sealed[token] = (sealed.sealed_dek, sealed.sealed_value)
        done.update(fresh)


#: Personal fields and the token kind of each (a KK or NIK keeps its own kind).
_PERSONAL_KINDS = tuple((name, name if name in ("nik", "kk") else "text") for name in sorted(PERSONAL_FIELDS))
#: Token kinds of a run of 16 or more digits inside another string, and of a public source's id.
DIGITS_KIND = "digits"
PUBLIC_SOURCE_KIND = "source"
_RUN = 16
_DIGIT_RUN = re.compile(r"[0-9]{16,}")
_SOURCE_FIELDS = frozenset({"kind", "id"})
#: Fields whose SPEC format leaves no room for 16 digits in a row (checked at validation): a choice, a
#: month, date or period, a 10-digit region, a number, amounts or counts by component. Not `at`: RFC 3339
#: allows any number of digits of a second.
_NO_ROOM_FOR_A_RUN = frozenset({"type", "program", "channel", "decision", "status", "by", "period", "from", "until",
                                "date", "region", "year", "amount", "max_members", "monthly", "annual", "components"})
#: For each fact type, the fields SPEC defines whose strings may hold a run of 16 digits (personal and
#: `source` fields aside).
_OTHER_FIELDS = {ftype: tuple(sorted(known - PERSONAL_FIELDS - _NO_ROOM_FOR_A_RUN - {"source"}))
                 for ftype, known in KNOWN_FIELDS.items()}


# ------------------------------------------------------------ worker process
# A child started as `python -m jejak.ingest_worker`, speaking length-prefixed
# pickle frames on its standard input and output: the FactPreparer first, then
# one batch of raw lines in, one PreparedBatch (or the exception) out, in order.
# Not multiprocessing: its spawn and forkserver modes re-run the parent's main
# script in the child, which for an unguarded script (or a test) means running
# the whole program twice.

_FRAME = struct.Struct(">Q")


def _write_frame(stream: BinaryIO, obj: object) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_FRAME.pack(len(data)))
    stream.write(data)
    stream.flush()


def _read_frame(stream: BinaryIO) -> Any:
    head = stream.read(_FRAME.size)
    if len(head) < _FRAME.size:
        raise EOFError("the ingest worker closed its output")
    (size,) = _FRAME.unpack(head)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the ingest worker closed its output mid-batch")
    return pickle.loads(data)


def _worker_main() -> None:
    # Ctrl-C reaches the whole process group: the parent decides, and closing
    # our input is how it tells us to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but frames on the real standard output
    preparer: FactPreparer = _read_frame(inp)
    while True:
        try:
            items = _read_frame(inp)
        except EOFError:
            return
        try:
            result: Any = ("ok", preparer.prepare(items))
        except Exception as exc:  # sent back and raised in the parent
            result = ("error", exc)
        try:
            _write_frame(out, result)
        except (BrokenPipeError, OSError):  # the parent is gone (killed): nothing to tell anyone
            # (and nothing for the interpreter's final flush to complain about either)
            os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
            return


class WorkerFailed(RuntimeError):
    pass


class _Worker:
    """One preparer child; batches go in through a sender thread so that
    writing batch k + 2 never waits on the parent reading result k + 1."""

    def __init__(self, preparer: FactPreparer) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jejak.ingest_worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )
        self._outbox: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._outbox.put(preparer)
        self._sender = threading.Thread(target=self._send_all, name="jejak-ingest-sender", daemon=True)
        self._sender.start()

    def _send_all(self) -> None:
        assert self.proc.stdin is not None
        try:
            while (item := self._outbox.get()) is not _STOP:
                _write_frame(self.proc.stdin, item)
        except (BrokenPipeError, OSError):
            pass  # the child is gone; the parent finds out reading its results
        finally:
            try:
                self.proc.stdin.close()
            except OSError:
                pass

    def send(self, items: list[bytes]) -> None:
        self._outbox.put(items)

    def receive(self) -> PreparedBatch:
        assert self.proc.stdout is not None
        try:
            status, value = _read_frame(self.proc.stdout)
        except (EOFError, pickle.UnpicklingError) as exc:
            raise WorkerFailed(f"{exc} (exit code {self.proc.poll()})") from None
        if status == "error":
            raise value
        return value

    def close(self) -> None:
        self._outbox.put(_STOP)
        self._sender.join(timeout=10)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


_STOP = object()


class Prepared:
    """A batch handed to `PreparerPool`: `result()` is its PreparedBatch, read in submission order."""

    def __init__(self, pool: "PreparerPool", items: list[bytes], batch: PreparedBatch | None,
                 worker: "_Worker | None" = None) -> None:
        self._pool = pool
        self._items = items
        self._batch = batch
        self._worker = worker

    def result(self) -> PreparedBatch:
        if self._batch is None:
            self._batch = self._pool._receive(self._worker, self._items)
        return self._batch


class PreparerPool:
    """Stage one in `workers` processes, batches dealt round-robin (0: in this one).

    Each worker answers its batches in the order it got them, and results are
    read in submission order, so the input keeps its order. The first batch is
    prepared here while nothing else could run; the workers start with the
    second, so a small input never pays for them. If a worker dies, the batches
    it held are prepared here instead: nothing is lost."""

    def __init__(self, preparer: FactPreparer, workers: int) -> None:
        self.preparer = preparer
        self.workers = workers
        self._live: list[_Worker] = []
        self._failed: set[_Worker] = set()
        self._started = False
        self._submitted = 0

    def __enter__(self) -> "PreparerPool":
        return self

    def __exit__(self, *exc: object) -> None:
        for worker in self._live:
            worker.close()
        self._live = []

    def submit(self, items: list[bytes]) -> Prepared:
        self._submitted += 1
        if self.workers <= 0 or self._submitted == 1:
            return Prepared(self, items, self.preparer.prepare(items))
        if not self._started:
            self._started = True
            try:
                for _ in range(self.workers):
                    self._live.append(_Worker(self.preparer))
            except OSError as exc:  # cannot start a process here: prepare in this one
                log.warning("cannot start an ingest worker (%s); preparing batches in this process", exc)
                self._failed.update(self._live)
        live = [w for w in self._live if w not in self._failed]
        if not live:
            return Prepared(self, items, self.preparer.prepare(items))
        worker = live[self._submitted % len(live)]
        worker.send(items)
        return Prepared(self, items, None, worker)

    def _receive(self, worker: "_Worker | None", items: list[bytes]) -> PreparedBatch:
        if worker is not None and worker not in self._failed:
            try:
                return worker.receive()
            except WorkerFailed as exc:
                self._failed.add(worker)
                log.warning("an ingest worker failed (%s); preparing its batches in this process", exc)
        return self.preparer.prepare(items)
