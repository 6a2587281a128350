"""Every public figure against an independent computation from the facts (issue 22, points 2 and 3).

Receipts (status and amounts of every order) and aggregates (every published
cell of every level, the program totals and the anomaly counts of the summary)
are recomputed here from the clear facts in a few lines each; anomaly counts
come from the pure rule engine (`projections/engine.py`) run on the facts
directly, never from the API's read model. The dataset is the e2e one plus an
order nobody settled, so every receipt status occurs.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any, Iterator

import httpx
import orjson
import pytest

from jejak.projections.engine import RULES, evaluate_anomalies
from tests.e2e.conftest import Deployment, serve

MIN_FAMILIES = 5
DIGITS = {"kota": 4, "kecamatan": 6, "desa": 10}
PARENT_DIGITS = {"kota": None, "kecamatan": 4, "desa": 6}
PARENT_LEVEL = {"kecamatan": "kota", "desa": "kecamatan"}
STATUSES = {"ordered", "failed", "credited", "partly_collected", "collected"}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def figures(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, generated) -> Iterator[Deployment]:
    _path, facts, expected = generated
    first = next(f for f in facts if f["type"] == "disbursement.ordered")
    facts = [*facts, {**first, "id": first["id"] + ":unsettled", "at": "2024-12-30T09:00:00+07:00"}]
    path = tmp_path_factory.mktemp("figures") / "facts.jsonl"
    path.write_bytes(b"".join(orjson.dumps(f) + b"\n" for f in facts))
    with serve(request, tmp_path_factory, path, facts, expected) as dep:
        yield dep


# ------------------------------------------------------------------ the oracle


def ledger(facts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The facts as recorded: first of each id, in file order, with the engine's `seq`."""
    first = {}
    for f in facts:
        first.setdefault(f["id"], f)
    return [{**f, "seq": i} for i, f in enumerate(first.values())]


def payments(facts: list[dict[str, Any]]) -> dict[str, Counter]:
    """Per order id: rupiah credited, failed, collected and returned."""
    out: dict[str, Counter] = defaultdict(Counter)
    for f in facts:
        ref = f.get("disbursement")
        if f["type"] == "disbursement.settled":
            out[ref][f["status"]] += f["amount"]  # "credited" or "failed"
        elif f["type"] == "pickup.recorded":
            out[ref]["collected"] += f["amount"]
        elif f["type"] == "funds.returned":
            out[ref]["returned"] += f["amount"]
    return out


def receipt_status(paid: Counter) -> str:
    if not paid["credited"]:
        return "failed" if paid["failed"] else "ordered"
    if paid["collected"] + paid["returned"] >= paid["credited"]:
        return "collected"
    return "partly_collected" if paid["collected"] else "credited"


def about_order(anomaly: Any, by_id: dict[str, dict], orders: dict[str, dict]) -> str | None:
    """The order an anomaly is about: its primary or first fact that is an order or names a known one."""
    for fid in (anomaly.primary, *anomaly.facts):
        fact = by_id.get(fid, {})
        if fact.get("type") == "disbursement.ordered":
            return fid
        if fact.get("disbursement") in orders:
            return fact["disbursement"]
    return None


def expected_cells(facts: list[dict[str, Any]], level: str) -> dict[tuple, dict[str, Any]]:
    facts = ledger(facts)
    orders = {f["id"]: f for f in facts if f["type"] == "disbursement.ordered"}
    region = {f["kk"]: f["region"] for f in facts if f["type"] == "eligibility.decided"}  # the latest wins
    paid = payments(facts)
    cell_of = {}
    cells: dict[tuple, dict[str, Any]] = defaultdict(lambda: {"families": set(), "orders": 0, "anomalies": Counter(),
                                                              "amounts": Counter()})
    for oid, o in orders.items():
        key = (region[o["kk"]][:DIGITS[level]] if o["kk"] in region else None, o["program"], o["period"])
        cell_of[oid] = key
        c = cells[key]
        c["families"].add(o["kk"])
        c["orders"] += 1
        c["amounts"].update(ordered=o["amount"], credited=paid[oid]["credited"], collected=paid[oid]["collected"],
                            returned=paid[oid]["returned"])
    by_id = {f["id"]: f for f in facts}
    for a in evaluate_anomalies(facts):
        oid = about_order(a, by_id, orders)
        if oid is not None:
            cells[cell_of[oid]]["anomalies"][a.rule] += 1
    return dict(cells)


# ------------------------------------------------------------------ receipts


def test_every_receipt_status_and_amount_matches_the_facts(figures: Deployment) -> None:
    paid = payments(ledger(figures.facts))
    seen = Counter()
    with figures.client("inspector") as inspector, figures.client() as public:
        for order in figures.facts_of_type("disbursement.ordered"):
            code = inspector.get(f"/v1/receipts/{order['id']}").json()["code"]
            r = public.get(f"/public/v1/receipts/{order['id']}", params={"code": code})
            assert r.status_code == 200, r.text
            body = r.json()
            p = paid[order["id"]]
            want = {"ordered": order["amount"], "credited": p["credited"], "failed": p["failed"],
                    "collected": p["collected"], "returned": p["returned"]}
            assert body["amounts"] == want, (order["id"], body["amounts"], want)
            assert body["status"] == receipt_status(p), (order["id"], body["status"], p)
            assert (body["program"], body["period"], body["channel"]) == (order["program"], order["period"], order["channel"])
            seen[body["status"]] += 1
    assert set(seen) == STATUSES, f"the dataset must hold every status: {seen}"


# ------------------------------------------------------------------ aggregates


def all_cells(public: httpx.Client, level: str) -> list[dict[str, Any]]:
    items, cursor = [], None
    while True:
        r = public.get("/public/v1/aggregates", params={"level": level, "limit": 500, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        body = r.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if not cursor:
            return items


@pytest.mark.parametrize("level", ["kota", "kecamatan", "desa"])
def test_every_published_aggregate_matches_the_facts(figures: Deployment, level: str) -> None:
    want = expected_cells(figures.facts, level)
    with figures.client() as public:
        got = {(c["region"], c["program"], c["period"]): c for c in all_cells(public, level)}
        if level == "kota":  # a kota cell's parent is its program's total in the summary
            parent_hidden = {p["program"] for p in public.get("/public/v1/summary").json()["programs"] if p["suppressed"]}
        else:
            parent_hidden = {(c["region"], c["program"], c["period"]) for c in all_cells(public, PARENT_LEVEL[level])
                             if c["suppressed"]}
    assert set(got) == set(want)
    published = 0
    for key, cell in got.items():
        w = want[key]
        if cell["suppressed"]:
            assert cell["families"] is cell["orders"] is cell["amounts"] is cell["anomalies"] is None, cell
            continue
        published += 1
        assert len(w["families"]) >= MIN_FAMILIES, ("a small cell is published", key, cell)
        assert cell["families"] == len(w["families"]) and cell["orders"] == w["orders"], (key, cell)
        assert cell["amounts"] == {k: w["amounts"][k] for k in ("ordered", "credited", "collected", "returned")}, (key, cell)
        assert cell["anomalies"] == dict(w["anomalies"]), (key, cell)
    assert published, "some cell is published, so the comparison above ran"
    # suppression that subtraction cannot undo: the hidden cells under one
    # published parent hold no family, or at least MIN_FAMILIES together (under
    # a hidden parent every cell is hidden)
    hidden: dict[Any, set[str]] = defaultdict(set)
    for key, cell in got.items():
        small = len(want[key]["families"]) < MIN_FAMILIES
        assert cell["suppressed"] or not small, key
        digits = PARENT_DIGITS[level]
        parent = key[1] if digits is None else (key[0][:digits] if key[0] else None, key[1], key[2])
        if cell["suppressed"]:
            hidden[parent] |= want[key]["families"]
        else:
            assert parent not in parent_hidden, ("published under a hidden parent", key)
    if level == "kota":
        return  # the summary adds only published kota cells (hidden ones are left out): nothing to subtract
    for parent, families in hidden.items():
        assert parent in parent_hidden or len(families) >= MIN_FAMILIES, (parent, len(families))


def test_summary_totals_and_anomaly_counts_match_the_facts(figures: Deployment) -> None:
    kota = expected_cells(figures.facts, "kota")
    with figures.client() as public:
        summary = public.get("/public/v1/summary").json()
    programs = {p["program"]: p for p in summary["programs"]}
    assert set(programs) == {k[1] for k in kota}
    with figures.client() as public:
        shown = {(c["region"], c["program"], c["period"]) for c in all_cells(public, "kota") if not c["suppressed"]}
    for program, got in programs.items():
        # the totals add the published kota cells only, and say how many they leave out
        assert got["hidden_cells"] == sum(1 for k in kota if k[1] == program and k not in shown), got
        cells = [c for k, c in kota.items() if k[1] == program and k in shown]
        families = set().union(*(c["families"] for c in cells))
        if len(families) < MIN_FAMILIES:
            assert got["suppressed"] and got["families"] is None, got
            continue
        amounts = sum((c["amounts"] for c in cells), Counter())
        assert got["families"] == len(families) and got["orders"] == sum(c["orders"] for c in cells), got
        assert got["amounts"] == {k: amounts[k] for k in ("ordered", "credited", "collected", "returned")}, got
    counts = Counter(a.rule for a in evaluate_anomalies(ledger(figures.facts)))
    assert summary["anomalies"] == {rule: counts[rule] for rule in RULES}
    assert sum(1 for n in counts.values() if n) >= 5, f"several rules fire, so misfiling shows: {counts}"
