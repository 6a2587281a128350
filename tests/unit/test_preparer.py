"""FactPreparer's work ahead of the log: sealing first-seen subjects, encoding
events rows, and travelling to a worker process by pickle."""

from __future__ import annotations

import os
import pickle
import struct
import uuid

import orjson

from jejak.generate import generate
from jejak.preparer import FactPreparer
from jejak.store.recorders import ChainedPostgresRecorder, encode_binary_events
from jejak.store.vault import Sealer, Tokenizer


def _batches(size: int) -> list[list[bytes]]:
    lines = [orjson.dumps(f) for f in generate(families=8, seed=11)]
    return [lines[i:i + size] for i in range(0, len(lines), size)]


def test_each_subject_is_sealed_ahead_once_and_opens_to_its_value() -> None:
    sealer = Sealer(os.urandom(32))
    preparer = FactPreparer(Tokenizer(b"k" * 32), sealer)
    seen: set[str] = set()
    for items in _batches(40):
        rows = preparer.prepare(items).rows
        assert rows.sealed.keys() == rows.subjects.keys() - seen  # only those this preparer had not sealed
        for token, (sealed_dek, sealed_value) in rows.sealed.items():
            assert sealer.open(token, sealed_dek, sealed_value) == rows.subjects[token][1]
        seen |= rows.subjects.keys()
    assert seen


def test_without_a_sealer_nothing_is_sealed_ahead() -> None:
    rows = FactPreparer(Tokenizer(b"k" * 32)).prepare(_batches(40)[0]).rows
    assert rows.subjects and rows.sealed == {} and rows.encoded_events is None


def test_a_pickled_preparer_prepares_the_same_rows_and_forgets_what_it_sealed() -> None:
    sealer = Sealer(os.urandom(32))
    original = FactPreparer(Tokenizer(b"k" * 32), sealer, encode_binary_events)
    batch = _batches(40)[0]
    before = original.prepare(batch).rows
    copy = pickle.loads(pickle.dumps(original))
    again = copy.prepare(batch).rows
    assert (again.fact_ids, again.oids, again.leaves, again.tokens) == (
        before.fact_ids, before.oids, before.leaves, before.tokens)
    assert again.encoded_events == before.encoded_events
    assert again.sealed.keys() == before.subjects.keys()  # the copy starts with nothing sealed
    for token, (sealed_dek, sealed_value) in again.sealed.items():  # and seals under the same key
        assert sealer.open(token, sealed_dek, sealed_value) == again.subjects[token][1]
    assert original.prepare(batch).rows.sealed == {}


def decode_pg_binary_copy(data: bytes) -> list[tuple[bytes, ...]]:
    """PostgreSQL's binary COPY format, read independently of the encoder
    (https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4):
    signature, flags, extension length, then per tuple a field count and
    length-prefixed fields, then -1."""
    assert data[:11] == b"PGCOPY\n\xff\r\n\x00"
    flags, ext = struct.unpack_from(">ii", data, 11)
    assert flags == 0 and ext == 0
    pos, tuples = 19, []
    while True:
        (count,) = struct.unpack_from(">h", data, pos)
        pos += 2
        if count == -1:
            assert pos == len(data), "nothing after the trailer"
            return tuples
        fields = []
        for _ in range(count):
            (length,) = struct.unpack_from(">i", data, pos)
            fields.append(data[pos + 4:pos + 4 + length])
            pos += 4 + length
        tuples.append(tuple(fields))


def test_events_encoded_ahead_decode_to_the_events_rows() -> None:
    """The events table's rows (uuid originator id, version 1, topic, state = the
    leaf) as PostgreSQL reads binary COPY: checked by decoding, not by calling
    the encoder's own helper again."""
    rows = FactPreparer(Tokenizer(b"k" * 32), events_encoder=encode_binary_events).prepare(_batches(40)[0]).rows
    assert len(rows) > ChainedPostgresRecorder.SMALL_INSERT_ROWS
    decoded = decode_pg_binary_copy(rows.encoded_events)
    assert decoded == [(uuid.UUID(oid).bytes, struct.pack(">q", 1), topic.encode(), leaf)
                       for oid, topic, leaf in zip(rows.oids, rows.topics, rows.leaves)]
    assert len(decoded) == len(rows) and all(leaf.startswith(b'{"derived"') for *_, leaf in decoded)
    small = FactPreparer(Tokenizer(b"k" * 32), events_encoder=encode_binary_events).prepare(_batches(5)[0]).rows
    assert small.encoded_events is None  # a few rows go in one INSERT instead


def test_a_line_orjson_refuses_still_names_its_fact_id_when_python_can_read_it() -> None:
    """SPEC §1: a rejection carries the fact's `id` if readable. A number beyond
    a double (valid JSON grammar) or a NaN is refused, but its id is readable."""
    preparer = FactPreparer(Tokenizer(b"k" * 32))
    items = [b'{"id": "o-1", "type": "disbursement.ordered", "amount": 1e400}',
             b'{"id": "o-2", "amount": NaN}',
             b'{"id": "o-3", "amount": ',
             b'{"id": "bad id", "amount": 1e400}']
    rejected = preparer.prepare(items).rejected
    assert [(r.slot, r.fact_id, r.code) for r in rejected] == [
        (0, "o-1", "invalid_json"), (1, "o-2", "invalid_json"), (2, None, "invalid_json"), (3, None, "invalid_json")]
