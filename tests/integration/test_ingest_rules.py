"""SPEC §1 ingest rules on both stores (real SQLite file, real PostgreSQL database)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jejak.ledger import Ledger

NIK = "1275016708770229"
KK = "1275011104052510"


def order(fid: str, amount: int = 750000, **extra: Any) -> dict[str, Any]:
    return {
        "id": fid, "type": "disbursement.ordered", "at": "2024-03-05T10:00:00+07:00",
        "source": {"kind": "kemensos", "id": "sp2d"}, "kk": KK, "nik": NIK, "program": "PKH",
        "period": "2024-T1", "amount": amount, "channel": "BRI", **extra,
    }


def settled(fid: str, ref: str, amount: int = 750000) -> dict[str, Any]:
    return {
        "id": fid, "type": "disbursement.settled", "at": "2024-03-06T10:00:00+07:00",
        "source": {"kind": "bank", "id": "bri"}, "disbursement": ref, "status": "credited",
        "amount": amount, "channel": "BRI",
    }


def line(obj: Any) -> bytes:
    return json.dumps(obj).encode() + b"\n"


@pytest.fixture
def ledger(store_url: str, make_settings):
    led = Ledger.open(make_settings(store_url))
    yield led
    led.close()


def ingest(ledger: Ledger, lines: list[bytes]):
    rejections: list = []
    summary = ledger.ingest_lines(iter(lines), on_rejection=rejections.append)
    return summary, rejections


def exported(ledger: Ledger) -> list[dict[str, Any]]:
    return list(ledger.export())


def test_good_and_bad_lines(ledger: Ledger) -> None:
    lines = [
        line(order("o-1")),                               # 1 ok
        b"\n",                                            # 2 blank
        b"{not json\n",                                   # 3 invalid json
        line(order("o-2", amount=0)),                     # 4 non-positive
        b"   \t\n",                                       # 5 blank (white space)
        line(order("o-3", nik="123")),                    # 6 bad nik
        line(settled("s-1", "o-1")),                      # 7 ok
        line({**order("o-4"), "type": "disbursement.cancelled"}),  # 8 unknown type
        line([1, 2]),                                     # 9 not an object
        line({k: v for k, v in order("o-5").items() if k != "period"}),  # 10 missing field
        line(order("o-6", at="2024-03-05T10:00:00")),     # 11 no offset
        line(order("o-7", amount="750000")),              # 12 wrong type
        line(order("o-8")),                               # 13 ok
        line({**order("o-9"), "id": "bad id"}),           # 14 bad id -> no readable id
        line(order("o-10")).rstrip(b"\n"),                # 15 ok, no final newline
    ]
    summary, rejections = ingest(ledger, lines)
    assert (summary.accepted, summary.duplicates, summary.rejected) == (4, 0, 9)
    got = [(r.line, r.id, r.code) for r in rejections]
    assert got == [
        (3, None, "invalid_json"),
        (4, "o-2", "non_positive_amount"),
        (6, "o-3", "bad_identifier"),
        (8, "o-4", "unknown_type"),
        (9, None, "not_an_object"),
        (10, "o-5", "missing_field"),
        (11, "o-6", "bad_format"),
        (12, "o-7", "wrong_type"),
        (14, None, "bad_format"),
    ]
    for r in rejections:
        assert r.message and NIK not in r.message
        d = r.to_dict()
        assert d["line"] == r.line and d["id"] == r.id and d["error"]
    ids = [e["fact"]["id"] for e in exported(ledger)]
    assert ids == ["o-1", "s-1", "o-8", "o-10"]
    assert [e["index"] for e in exported(ledger)] == [0, 1, 2, 3]


def test_reingest_is_all_duplicates(ledger: Ledger) -> None:
    lines = [line(order(f"o-{i}")) for i in range(30)] + [line(settled(f"s-{i}", f"o-{i}")) for i in range(30)]
    first, _ = ingest(ledger, lines)
    assert (first.accepted, first.duplicates, first.rejected) == (60, 0, 0)
    before = exported(ledger)
    second, rejections = ingest(ledger, lines)
    assert (second.accepted, second.duplicates, second.rejected) == (0, 60, 0)
    assert rejections == []
    assert exported(ledger) == before
    assert ledger.store.log_size() == 60 == ledger.store.count_events()


def test_reingest_with_different_key_order_and_spacing_is_duplicate(ledger: Ledger) -> None:
    obj = order("o-1")
    ingest(ledger, [line(obj)])
    reordered = json.dumps(dict(reversed(list(obj.items()))), indent=None, separators=(" , ", " : ")).encode()
    summary, _ = ingest(ledger, [reordered])
    assert (summary.accepted, summary.duplicates, summary.rejected) == (0, 1, 0)


def test_reingest_with_reordered_keys_inside_an_unknown_field_is_duplicate(ledger: Ledger) -> None:
    """Identical content is JSON equality, also inside objects the SPEC does not define."""
    ingest(ledger, [line(order("o-1", meta={"a": 1, "b": {"x": [1, 2], "y": None}}))])
    summary, rejections = ingest(ledger, [line(order("o-1", meta={"b": {"y": None, "x": [1, 2]}, "a": 1}))])
    assert (summary.accepted, summary.duplicates, summary.rejected) == (0, 1, 0), [r.to_dict() for r in rejections]
    # a list's order is content: that is a conflict
    summary, rejections = ingest(ledger, [line(order("o-1", meta={"a": 1, "b": {"x": [2, 1], "y": None}}))])
    assert [r.code for r in rejections] == ["conflict"]
    assert exported(ledger)[0]["fact"]["meta"] == {"a": 1, "b": {"x": [1, 2], "y": None}}
    # the same within one file (one batch)
    summary, rejections = ingest(ledger, [line(order("o-2", meta={"p": 1, "q": 2})),
                                          line(order("o-2", meta={"q": 2, "p": 1}))])
    assert (summary.accepted, summary.duplicates, summary.rejected) == (1, 1, 0), [r.to_dict() for r in rejections]


def test_amounts_beyond_the_bound_are_rejected_and_reads_keep_working(ledger: Ledger) -> None:
    from jejak.domain.facts import MAX_AMOUNT
    from jejak.reports import Reports

    assert MAX_AMOUNT == 2**63 - 1
    lines = [
        line(order("o-max", amount=MAX_AMOUNT)),
        line(order("o-over", amount=MAX_AMOUNT + 1)),
        line(order("o-2p64", amount=2**64)),  # past what the JSON parser reads as an integer
        line(order("o-1e20", amount=1)).replace(b'"amount": 1,', b'"amount": 100000000000000000000,'),
        line(settled("s-max", "o-max", amount=MAX_AMOUNT)),
    ]
    summary, rejections = ingest(ledger, lines)
    assert (summary.accepted, summary.rejected) == (2, 3)
    assert [(r.line, r.id, r.code) for r in rejections] == [
        (2, "o-over", "amount_too_large"), (3, "o-2p64", "amount_too_large"), (4, "o-1e20", "amount_too_large")]
    assert all(str(MAX_AMOUNT) in r.message for r in rejections)
    reports = Reports(ledger)
    reports.catch_up()
    [balance] = reports.balances()
    assert (balance["ordered"], balance["credited"]) == (MAX_AMOUNT, MAX_AMOUNT)


def test_sums_past_64_bits_are_exact(ledger: Ledger) -> None:
    """Balances and unclaimed funds add any number of amounts: a total may pass
    2**64 and still comes out to the rupiah (ingested in two files, so the
    per-order totals are also added across catch-ups)."""
    from jejak.domain.facts import MAX_AMOUNT
    from jejak.reports import Reports

    big = MAX_AMOUNT
    first = [line(order("o-a", amount=big)), line(order("o-b", amount=big))] + [
        line(settled(f"s-a{i}", "o-a", amount=big)) for i in range(3)]
    second = [line(settled(f"s-b{i}", "o-b", amount=big - i)) for i in range(2)] + [
        line(settled("s-a3", "o-a", amount=big)),
        line({"id": "p-a", "type": "pickup.recorded", "at": "2024-03-07T10:00:00+07:00",
              "source": {"kind": "pos", "id": "pos"}, "disbursement": "o-a", "nik": NIK, "amount": 5,
              "by": "recipient"}),
        # a late fact, so that more than 90 days pass after the settlements
        line(order("o-late", amount=1, at="2024-09-01T10:00:00+07:00")),
    ]
    reports = Reports(ledger)
    for lines in (first, second):
        summary, rejections = ingest(ledger, lines)
        assert summary.rejected == 0, [r.to_dict() for r in rejections]
        reports.catch_up()
    [balance] = reports.balances()
    credited = 4 * big + (big + big - 1)
    assert credited > 2**65
    assert balance == {"kk": KK, "program": "PKH", "ordered": 2 * big + 1, "credited": credited,
                       "picked_up": 5, "returned": 0, "outstanding": credited - 5}
    unclaimed = {a["primary"]: a["detail"] for a in reports.anomalies() if a["rule"] == "unclaimed_funds"}
    assert set(unclaimed) == {"o-a", "o-b"}
    assert unclaimed["o-a"].startswith(f"{4 * big - 5} of {4 * big} credited unclaimed")
    assert unclaimed["o-b"].startswith(f"{2 * big - 1} of {2 * big - 1} credited unclaimed")


def test_same_id_different_content_is_conflict_first_stays(ledger: Ledger) -> None:
    ingest(ledger, [line(order("o-1", amount=750000))])
    summary, rejections = ingest(ledger, [b"\n", line(order("o-1", amount=999999)), line(order("o-2"))])
    assert (summary.accepted, summary.duplicates, summary.rejected) == (1, 0, 1)
    assert [(r.line, r.id, r.code) for r in rejections] == [(2, "o-1", "conflict")]
    facts = {e["fact"]["id"]: e["fact"] for e in exported(ledger)}
    assert facts["o-1"]["amount"] == 750000
    assert facts["o-1"]["nik"] == NIK  # export reveals the stored, first version
    assert ledger.store.log_size() == 2


def test_conflict_on_personal_field_only(ledger: Ledger) -> None:
    ingest(ledger, [line(order("o-1"))])
    summary, rejections = ingest(ledger, [line(order("o-1", nik="1275016708770230"))])
    assert summary.rejected == 1 and rejections[0].code == "conflict"
    assert [e["fact"]["nik"] for e in exported(ledger)] == [NIK]


def test_intra_file_duplicates(ledger: Ledger) -> None:
    lines = [
        line(order("o-1")),
        line(order("o-1")),                 # identical: duplicate
        line(order("o-1", amount=1)),       # different: conflict
        line(order("o-2")),
    ]
    summary, rejections = ingest(ledger, lines)
    assert (summary.accepted, summary.duplicates, summary.rejected) == (2, 1, 1)
    assert [(r.line, r.id, r.code) for r in rejections] == [(3, "o-1", "conflict")]
    facts = [e["fact"] for e in exported(ledger)]
    assert [(f["id"], f["amount"]) for f in facts] == [("o-1", 750000), ("o-2", 750000)]


def test_intra_file_duplicates_across_batches(store_url: str, make_settings) -> None:
    led = Ledger.open(make_settings(store_url, batch_size=3))
    try:
        lines = [line(order(f"o-{i}")) for i in range(5)] + [line(order("o-0")), line(order("o-4", amount=5))]
        summary, rejections = ingest(led, lines)
        assert (summary.accepted, summary.duplicates, summary.rejected) == (5, 1, 1)
        assert [(r.line, r.code) for r in rejections] == [(7, "conflict")]
        assert led.store.log_size() == 5
    finally:
        led.close()


def test_unknown_references_are_accepted(ledger: Ledger) -> None:
    lines = [
        line(settled("s-ghost", "no-such-order")),
        line({"id": "p-ghost", "type": "pickup.recorded", "at": "2024-04-01T10:00:00+07:00",
              "source": {"kind": "pos", "id": "pos"}, "disbursement": "no-such-order", "nik": "3175010101010001",
              "amount": 100, "by": "recipient"}),
        line({"id": "r-ghost", "type": "funds.returned", "at": "2024-04-01T10:00:00+07:00",
              "source": {"kind": "bank", "id": "bri"}, "disbursement": "no-such-order", "amount": 100}),
        line({"id": "d-1", "type": "death.recorded", "at": "2024-04-01T10:00:00+07:00",
              "source": {"kind": "dukcapil", "id": "dk"}, "nik": "3175010101010002", "date": "2024-03-01"}),
        line(order("o-late")),  # the order arrives after its settlement
        line(settled("s-1", "o-late")),
    ]
    summary, rejections = ingest(ledger, lines)
    assert rejections == []
    assert (summary.accepted, summary.rejected) == (6, 0)
    assert [e["fact"]["id"] for e in exported(ledger)] == ["s-ghost", "p-ghost", "r-ghost", "d-1", "o-late", "s-1"]


def test_log_and_events_agree_after_mixed_ingest(ledger: Ledger) -> None:
    from jejak.transparency import Transparency

    lines = [line(order(f"o-{i}")) for i in range(10)] + [b"oops\n", line(order("o-3", amount=1))]
    ingest(ledger, lines)
    ingest(ledger, lines)
    assert ledger.store.log_size() == ledger.store.count_events() == ledger.store.count_log_rows() == 10
    assert Transparency(ledger.store, ledger.settings).verify()["intact"] is True
