"""The ingest pipeline (worker process, planned appends, writer thread) records
exactly what recording each batch in turn records, on both stores."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import orjson
import pytest

from jejak.generate import generate
from jejak.ledger import Ledger, Rejection
from jejak.preparer import FactPreparer, PreparerPool
from jejak.store.vault import Tokenizer
from jejak.transparency import Transparency
from tests.conftest import fresh_pg_database

BATCH = 300


def _lines() -> list[bytes]:
    """Generated facts with, spread over several batches: bad lines, a fact
    repeated in its own batch and in a later one, a conflicting version, and
    a field SPEC does not define."""
    lines = [orjson.dumps(f) + b"\n" for f in generate(families=60, seed=7)]
    assert len(lines) > 4 * BATCH
    conflict = orjson.loads(lines[10])
    conflict["at"] = "2030-01-01T00:00:00+07:00"
    extra = orjson.loads(lines[20])
    extra["catatan"] = {"petugas": "Budi", "nomor": 7}
    lines[20] = orjson.dumps(extra) + b"\n"
    lines.insert(3, b"{not json\n")
    lines.insert(BATCH + 5, lines[BATCH + 1])  # twice in one batch
    lines.insert(2 * BATCH + 7, lines[30])  # again, batches later
    lines.insert(3 * BATCH + 1, orjson.dumps(conflict) + b"\n")
    lines.insert(3 * BATCH + 2, b'{"id": "x-1", "type": "disbursement.ordered"}\n')
    return lines


@pytest.fixture(params=["sqlite", "postgresql"])
def two_stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if request.param == "sqlite":
        yield str(tmp_path / "a.db"), str(tmp_path / "b.db")
        return
    request.getfixturevalue("pg_server")
    with fresh_pg_database() as a, fresh_pg_database() as b:
        yield a, b


def _log(ledger: Ledger) -> list[dict[str, Any]]:
    return list(ledger.export(with_chain=True))


def _batch_by_batch(ledger: Ledger, lines: list[bytes]) -> tuple[dict[str, int], list[Rejection]]:
    """The reference: each batch validated and recorded in turn by `Ledger.record`."""
    counts = {"accepted": 0, "duplicates": 0, "rejected": 0}
    rejections = []
    numbered = [(n, raw) for n, raw in enumerate(lines, start=1) if raw.strip()]
    for start in range(0, len(numbered), BATCH):
        chunk = numbered[start:start + BATCH]
        for (number, _raw), outcome in zip(chunk, ledger.record([raw for _n, raw in chunk])):
            if outcome.status == "rejected":
                counts["rejected"] += 1
                rejections.append(Rejection(number, outcome.fact_id, outcome.code or "", outcome.message or ""))
            else:
                counts["accepted" if outcome.status == "accepted" else "duplicates"] += 1
    return counts, rejections


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_pipeline_records_what_batch_by_batch_records(two_stores, make_settings, workers: int) -> None:
    lines = _lines()
    piped_url, reference_url = two_stores
    with Ledger.open(make_settings(piped_url, batch_size=BATCH, ingest_workers=workers)) as piped, \
            Ledger.open(make_settings(reference_url, batch_size=BATCH)) as reference:
        rejections: list[Rejection] = []
        progress: list[int] = []
        summary = piped.ingest_lines(iter(lines), on_rejection=rejections.append, on_progress=progress.append)
        counts, expected_rejections = _batch_by_batch(reference, lines)

        assert summary.to_dict() == counts
        assert counts["duplicates"] == 2 and counts["rejected"] == 3
        assert [r.to_dict() for r in rejections] == [r.to_dict() for r in expected_rejections]
        assert [r.code for r in rejections] == ["invalid_json", "conflict", "missing_field"]
        assert sum(progress) == sum(1 for raw in lines if raw.strip())
        assert _log(piped) == _log(reference)  # same leaves, same order, same chain; personal data revealed

        again = piped.ingest_lines(iter(lines))
        assert again.to_dict() == {"accepted": 0, "duplicates": counts["accepted"] + 2, "rejected": 3}
        assert Transparency(piped.store, piped.settings).verify()["intact"] is True  # chain and every stored tree node


def test_another_writer_between_batches_is_not_overwritten(store_url, make_settings) -> None:
    """A plan made against the tail before another writer's fact does not hold:
    the batch is recorded the ordinary way after that fact, nothing is lost."""
    lines = [orjson.dumps(f) + b"\n" for f in generate(families=20, seed=3)]
    settings = make_settings(store_url, batch_size=BATCH, ingest_workers=0)
    outsider = {
        "id": "luar-1", "type": "death.recorded", "at": "2024-05-01T08:00:00+07:00",
        "source": {"kind": "dukcapil", "id": "siak"}, "nik": "3201014501900001", "date": "2024-04-30",
    }
    with Ledger.open(settings) as ledger, Ledger.open(settings) as other:
        written = []

        def meanwhile(n: int) -> None:
            written.append(n)
            if len(written) == 1:
                assert other.record([outsider])[0].status == "accepted"

        summary = ledger.ingest_lines(iter(lines), on_progress=meanwhile)
        assert summary.accepted == len(lines) and summary.rejected == 0
        log = _log(ledger)
        assert len(log) == len(lines) + 1
        assert sorted(entry["fact"]["id"] for entry in log) == sorted(
            [orjson.loads(raw)["id"] for raw in lines] + ["luar-1"])
        assert [entry["index"] for entry in log] == list(range(len(log)))
        assert Transparency(ledger.store, ledger.settings).verify()["intact"] is True


def test_a_dead_worker_leaves_its_batches_to_this_process() -> None:
    lines = [orjson.dumps(f) + b"\n" for f in generate(families=30, seed=5)]
    batches = [lines[i:i + 100] for i in range(0, len(lines), 100)]
    preparer = FactPreparer(Tokenizer(b"k" * 32))
    expected = [preparer.prepare(b) for b in batches]
    with PreparerPool(FactPreparer(Tokenizer(b"k" * 32)), workers=1) as pool:
        handles = [pool.submit(batches[0]), pool.submit(batches[1])]
        first, second = handles[0].result(), handles[1].result()  # the second came from the worker
        assert len(pool._live) == 1
        pool._live[0].proc.kill()
        handles += [pool.submit(b) for b in batches[2:]]
        got = [first, second] + [h.result() for h in handles[2:]]
    assert [g.rows.leaves for g in got] == [e.rows.leaves for e in expected]
    assert [g.rows.subjects for g in got] == [e.rows.subjects for e in expected]
    assert [g.slots for g in got] == [e.slots for e in expected]


def test_no_worker_can_start_so_this_process_prepares(monkeypatch, caplog) -> None:
    lines = [orjson.dumps(f) + b"\n" for f in generate(families=10, seed=2)]
    batches = [lines[i:i + 50] for i in range(0, len(lines), 50)]
    expected = [FactPreparer(Tokenizer(b"k" * 32)).prepare(b) for b in batches]
    monkeypatch.setattr("sys.executable", "/nonexistent/python")
    with PreparerPool(FactPreparer(Tokenizer(b"k" * 32)), workers=2) as pool:
        got = [h.result() for h in [pool.submit(b) for b in batches]]
        assert pool._live == []
    assert [g.rows.leaves for g in got] == [e.rows.leaves for e in expected]
    assert "cannot start an ingest worker" in caplog.text


def _death(fact_id: str, nik: str) -> bytes:
    return orjson.dumps({
        "id": fact_id, "type": "death.recorded", "at": "2024-05-01T08:00:00+07:00",
        "source": {"kind": "dukcapil", "id": "siak"}, "nik": nik, "date": "2024-04-30",
    }) + b"\n"


@pytest.mark.parametrize("workers", [0, 1])
def test_a_subject_sealed_ahead_for_a_fact_not_recorded_is_sealed_when_a_later_fact_needs_it(
    store_url, make_settings, workers: int,
) -> None:
    """Preparation seals a subject the first time it sees it. Here that fact is
    a conflict (not recorded), so the subject is not stored with it; a later
    batch's new fact names it again with nothing sealed ahead, and the writer
    seals it then: the vault never lacks a subject a recorded fact names."""
    first, later = "3201014501900001", "3201014501900002"
    with Ledger.open(make_settings(store_url, batch_size=2, ingest_workers=workers)) as ledger:
        assert ledger.ingest_lines(iter([_death("d-1", first)])).accepted == 1
        lines = [_death("f-1", "3201014501900003"), _death("f-2", "3201014501900004"),  # inline
                 _death("d-1", later), _death("f-3", "3201014501900005"),  # a conflict names `later`
                 _death("d-2", later)]  # the same preparer again: nothing sealed ahead
        rejections: list[Rejection] = []
        summary = ledger.ingest_lines(iter(lines), on_rejection=rejections.append)
        assert summary.to_dict() == {"accepted": 4, "duplicates": 0, "rejected": 1}
        assert [(r.line, r.code) for r in rejections] == [(3, "conflict")]
        assert ledger.reveal(ledger.tokenizer.token("nik", later)) == later
        assert ledger.reveal(ledger.tokenizer.token("nik", first)) == first
        recorded = {entry["fact"]["id"]: entry["fact"]["nik"] for entry in _log(ledger)}
        assert recorded["d-2"] == later and recorded["d-1"] == first
