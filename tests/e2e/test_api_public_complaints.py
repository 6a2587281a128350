"""Public complaint and register-match figures (issue 20) over real HTTP, against an
independent computation from the facts: every published figure, the small-cell
suppression (nothing hidden comes back by subtraction) and no personal data.

The dataset is the e2e one plus complaints in three desa of one kecamatan, so
that cells are published at every level and one is hidden to protect another.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from typing import Any, Iterator

import httpx
import orjson
import pytest

from tests.e2e.conftest import Deployment, serve
from tests.e2e.test_api_complaints import expected_complaints
from tests.e2e.test_api_privacy import assert_no_personal_data
from tests.e2e.test_web_page import browser  # noqa: F401  (the headless Chromium fixture)

MIN = 5
DIGITS = {"kota": 4, "kecamatan": 6, "desa": 10}
PARENT = {"kecamatan": "kota", "desa": "kecamatan"}
REGISTER_RULES = ("asn_recipient", "barred_recipient", "flagged_recipient")
SECRET = "teks-rahasia"
#: (desa index, category, month, complaints, of which resolved after d days)
EXTRA = [(0, "pungli", "2024-05", 7, [1, 3, 10]), (1, "pungli", "2024-05", 6, [2, 2]), (2, "pungli", "2024-05", 2, []),
         (0, "other", "2024-06", 5, [4, 5, 6, 7, 30]), (1, "other", "2024-06", 1, [0]),
         (0, "other", "2025-01", 5, [2])]  # open, not yet overdue at the as-of date (12 January)
#: a second resolution: the latest one counts (days to resolve 20, not 1)
REVISED = ("lapor:extra:0:pungli:2024-05:0", 20)


def with_complaints(facts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    desa = sorted({f["region"] for f in facts if f["type"] == "eligibility.decided"})
    kec = next(k for k in sorted({d[:6] for d in desa}) if sum(d.startswith(k) for d in desa) >= 3)
    desa = [d for d in desa if d.startswith(kec)][:3]
    extra = []
    for d, category, month, n, resolved_after in EXTRA:
        for i in range(n):
            cid = f"lapor:extra:{d}:{category}:{month}:{i}"
            at = dt.datetime.fromisoformat(f"{month}-{1 + i:02d}T09:00:00+07:00")
            extra.append({"id": cid, "type": "complaint.filed", "at": at.isoformat(),
                          "source": {"kind": "public", "id": "lapor-extra"}, "channel": "lapor",
                          "category": category, "region": desa[d], "text": f"{SECRET} {i}"})
            if i < len(resolved_after):
                extra.append({"id": f"dinsos:extra:{d}:{category}:{month}:{i}", "type": "complaint.resolved",
                              "at": (at + dt.timedelta(days=resolved_after[i])).isoformat(),
                              "source": {"kind": "dinsos", "id": "dinsos-extra"}, "complaint": cid,
                              "outcome": "upheld", "text": f"{SECRET} jawaban"})
    cid, days = REVISED
    filed = next(f for f in extra if f["id"] == cid)
    extra.append({"id": "dinsos:extra:revised", "type": "complaint.resolved", "complaint": cid, "outcome": "rejected",
                  "at": (dt.datetime.fromisoformat(filed["at"]) + dt.timedelta(days=days)).isoformat(),
                  "source": {"kind": "dinsos", "id": "dinsos-extra"}})
    return [*facts[:-1], *extra, facts[-1]]  # the last fact fixes the default as-of date


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, generated) -> Iterator[Deployment]:
    _path, facts, expected = generated
    facts = with_complaints(facts)
    path = tmp_path_factory.mktemp("public-complaints") / "facts.jsonl"
    path.write_bytes(b"".join(orjson.dumps(f) + b"\n" for f in facts))
    with serve(request, tmp_path_factory, path, facts, expected) as dep:
        yield dep


@pytest.fixture
def client(served: Deployment) -> Iterator[httpx.Client]:
    with served.client() as c:
        yield c


def expected_cells(facts: list[dict[str, Any]], digits: int) -> dict[tuple, dict]:
    at = {f["id"]: f["at"] for f in facts}
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for c in expected_complaints(facts):
        groups[(c["region"][:digits], c["category"], c["at"][:7])].append(c)
    out = {}
    for key, cs in groups.items():
        days = [(dt.date.fromisoformat(at[c["resolutions"][-1]][:10]) - dt.date.fromisoformat(c["at"][:10])).days
                for c in cs if c["resolutions"]]
        out[key] = {"filed": len(cs), "resolved": len(days), "open": len(cs) - len(days),
                    "overdue": sum(c["overdue"] for c in cs), "median_days_to_resolve": statistics.median(days) if days else None,
                    "ids": {c["complaint_id"] for c in cs}}
    return out


def published(client: httpx.Client, path: str, level: str, key: tuple[str, ...]) -> dict[tuple, dict]:
    body = client.get(path, params={"level": level, "limit": 1000}).json()
    assert body["next_cursor"] is None
    return {tuple(c[k] for k in key): c for c in body["items"]}


def test_every_complaint_figure_and_its_suppression(served: Deployment, client: httpx.Client) -> None:
    cells = {level: published(client, "/public/v1/complaints/aggregates", level, ("region", "category", "month"))
             for level in DIGITS}
    shown_somewhere = {level: 0 for level in DIGITS}
    for level, digits in DIGITS.items():
        want = expected_cells(served.facts, digits)
        assert set(cells[level]) == set(want), level
        for key, cell in cells[level].items():
            if cell["suppressed"]:
                assert all(cell[k] is None for k in ("filed", "resolved", "open", "overdue", "median_days_to_resolve"))
                assert cell["suppressed_because"] == ("small" if want[key]["filed"] < MIN else "protects_another")
                continue
            shown_somewhere[level] += 1
            assert want[key]["filed"] >= MIN, (level, key)
            assert {k: cell[k] for k in ("filed", "resolved", "open", "overdue", "median_days_to_resolve")} == {
                k: v for k, v in want[key].items() if k != "ids"}, (level, key)
        if level == "kota":
            assert all(cell["suppressed"] == (want[key]["filed"] < MIN) for key, cell in cells[level].items())
            continue
        # a published parent minus its published children = its hidden children: 5 complaints or more together;
        # under a hidden parent one child at least is hidden
        children: dict[tuple, list[tuple]] = defaultdict(list)
        for key in cells[level]:
            children[(key[0][:DIGITS[PARENT[level]]], key[1], key[2])].append(key)
        for parent, keys in children.items():
            hidden = [k for k in keys if cells[level][k]["suppressed"]]
            if cells[PARENT[level]][parent]["suppressed"]:
                assert hidden, (level, parent)
            elif hidden:
                assert len(set().union(*(want[k]["ids"] for k in hidden))) >= MIN, (level, parent)
    assert all(shown_somewhere.values()), shown_somewhere
    assert any(c["suppressed_because"] == "protects_another" for c in cells["desa"].values())
    body = client.get("/public/v1/complaints/aggregates", params={"level": "desa", "category": "pungli",
                                                                  "month": "2024-05"}).json()
    assert body["as_of"] == max(f["at"] for f in served.facts)[:10] and body["complaint_days"] == 14
    assert [(c["region"], c["category"], c["month"]) for c in body["items"]] == sorted(
        k for k in cells["desa"] if k[1:] == ("pungli", "2024-05"))


def test_register_matches_are_sums_of_published_aid_cells(served: Deployment, client: httpx.Client) -> None:
    region_of: dict[str, str] = {}
    for f in served.facts:
        if f["type"] == "eligibility.decided":
            region_of[f["kk"]] = f["region"]
    orders = {f["id"]: f for f in served.facts if f["type"] == "disbursement.ordered"}
    fired = [(a["rule"], orders[a["primary"]]) for a in served.expected if a["rule"] in REGISTER_RULES]
    assert {rule for rule, _ in fired} == set(REGISTER_RULES)
    for level, digits in DIGITS.items():
        aid = published(client, "/public/v1/aggregates", level, ("region", "program", "period"))
        rows = published(client, "/public/v1/register-matches", level, ("region", "program"))
        assert set(rows) == {(r, p) for r, p, _ in aid}
        for (region, program), row in rows.items():
            periods = {per: c["suppressed"] for (r, p, per), c in aid.items() if (r, p) == (region, program)}
            assert row["hidden_cells"] == sum(periods.values())
            assert row["published_cells"] == len(periods) - row["hidden_cells"]
            assert row["suppressed"] == (row["published_cells"] == 0)
            if row["suppressed"]:
                assert row["matches"] is None
                continue
            want = {rule: sum(1 for r, o in fired if r == rule and o["program"] == program
                              and (region_of.get(o["kk"], "")[:digits] or None) == region
                              and periods.get(o["period"]) is False) for rule in REGISTER_RULES}
            assert row["matches"] == want, (level, region, program)
        assert any(row["matches"] and any(row["matches"].values()) for row in rows.values()), level


def test_no_personal_data_or_complaint_text(served: Deployment, client: httpx.Client) -> None:
    for path in ("/public/v1/complaints/aggregates", "/public/v1/register-matches"):
        for level in DIGITS:
            r = client.get(path, params={"level": level})
            assert r.status_code == 200
            assert assert_no_personal_data(served, path, r) > 0
            assert SECRET not in r.text and "lapor:extra" not in r.text and "dinsos:extra" not in r.text
        assert client.post(path, content=b"{}").status_code == 405


def test_the_public_page_shows_them(browser, served: Deployment, client: httpx.Client) -> None:  # noqa: F811
    complaints = client.get("/public/v1/complaints/aggregates", params={"level": "kota", "limit": 1000}).json()["items"]
    matches = client.get("/public/v1/register-matches", params={"level": "kota", "limit": 1000}).json()["items"]
    context = browser.new_context(viewport={"width": 1200, "height": 1600})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(served.base_url + "/", wait_until="networkidle")
        page.wait_for_selector("body[data-ready='1']", timeout=15000)
        rows = page.eval_on_selector_all("#complaints tbody tr", "trs => trs.map(tr => [...tr.cells].map(c => c.innerText))")
        assert len(rows) == len(complaints) and any(not c["suppressed"] for c in complaints)
        for row, c in zip(rows, complaints):
            assert row[1] == c["month"]
            assert row[2:] == (["disembunyikan (< 5 pengaduan)"] if c["suppressed"] else [
                str(c[k]) for k in ("filed", "resolved", "open", "overdue")] + [
                "—" if c["median_days_to_resolve"] is None else f"{c['median_days_to_resolve']:n}".replace(".", ",")])
        assert "Pungutan liar" in page.locator("#complaints").inner_text()
        shown = page.eval_on_selector_all("#register-matches tbody tr", "trs => trs.map(tr => [...tr.cells].map(c => c.innerText))")
        assert [r[2:] for r in shown] == [["disembunyikan (< 5 keluarga)"] if m["suppressed"] else [
            str(m["matches"][k]) for k in REGISTER_RULES] for m in matches]
        page.click("#lang")
        assert "Illegal levy" in page.locator("#complaints").inner_text()
        assert "Complaints by category" in page.locator("#complaints-section h2").inner_text()
        assert SECRET not in page.content()
        assert not errors, errors
    finally:
        context.close()
