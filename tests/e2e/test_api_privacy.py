"""The public API never shows a NIK, KK, name or companion id, and suppresses small cells."""

from __future__ import annotations

import base64
import re
from collections import defaultdict
from typing import Any, Iterator

import httpx
import orjson
import pytest

from tests.e2e.conftest import Deployment

DIGITS16 = re.compile(r"[0-9]{16}")
HASH_HEX = re.compile(r"[0-9a-f]{64}")


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)
    elif value is not None:
        yield str(value)


def assert_no_personal_data(deployment: Deployment, path: str, r: httpx.Response) -> int:
    text = r.text
    assert "pdp-" not in text, f"{path}: companion id in public response"
    # A source id is not personal, but no public answer carries one: finding it
    # means a fact body leaked in clear (the canary of the checks below).
    for source in {f["source"]["id"] for f in deployment.facts if "-" in f["source"]["id"]}:
        assert source not in text, f"{path}: source id {source}: a fact body in clear in a public response"
    for c in deployment.companions:
        assert c not in text, f"{path}: companion {c}"
    for n in deployment.niks | deployment.kks:
        assert n not in text, f"{path}: a NIK/KK from the input appears"
    checked = 0
    body = r.json() if r.headers["content-type"].startswith("application/json") else text
    for s in strings(body):
        if HASH_HEX.fullmatch(s):
            continue  # hex hashes may contain digit runs by chance; they are hashes
        assert not DIGITS16.search(s), f"{path}: 16-digit number in {s[:80]!r}"
        checked += 1
    # a published leaf holds tokens, never clear identifiers
    if isinstance(body, dict) and "leaf" in body:
        leaf = base64.b64decode(body["leaf"])
        assert not DIGITS16.search(leaf.decode()), f"{path}: 16 digits inside the leaf"
        assert b"tk1_" in leaf
        fact = orjson.loads(leaf)["fact"]
        assert fact["kk"].startswith("tk1_") and fact["nik"].startswith("tk1_")
    return checked


def public_requests(deployment: Deployment, spec: dict, receipt: tuple[str, str]) -> list[tuple[str, dict]]:
    """Every public GET operation with realistic parameters (several variants each)."""
    order_id, code = receipt
    period = next(f["period"] for f in deployment.facts if f["type"] == "disbursement.ordered")
    region = next(f["region"] for f in deployment.facts if f["type"] == "eligibility.decided")
    complaint_month = next(f["at"][:7] for f in deployment.facts if f["type"] == "complaint.filed")
    variants: dict[str, list[dict]] = {
        "/public/v1/aggregates": [
            {"level": lvl, **extra} for lvl in ("kota", "kecamatan", "desa")
            for extra in ({}, {"program": "PKH"}, {"period": period}, {"region": region[:6]})
        ],
        "/public/v1/complaints/aggregates": [
            {"level": lvl, **extra} for lvl in ("kota", "kecamatan", "desa")
            for extra in ({}, {"category": "pungli"}, {"month": complaint_month}, {"region": region[:6]})
        ],
        "/public/v1/register-matches": [
            {"level": lvl, **extra} for lvl in ("kota", "kecamatan", "desa")
            for extra in ({}, {"program": "PKH"}, {"region": region[:6]})
        ],
        "/public/v1/proofs/inclusion": [{"index": 0}, {"index": 5, "size": 10}, {"index": deployment.checkpoint_size - 1}],
        "/public/v1/proofs/consistency": [{"size1": 1}, {"size1": 10, "size2": 100}],
    }
    out = []
    for path, ops in spec["paths"].items():
        if not path.startswith("/public"):
            continue
        assert set(ops) <= {"get", "head"}, f"{path} accepts {set(ops)}"
        if "{order_id}" in path:
            out.append((path.replace("{order_id}", order_id), {"code": code}))
            out.append((path.replace("{order_id}", order_id), {"code": code, "format": "tlog-proof"}))
            continue
        if "{path}" in path:  # tlog-tiles: a hash tile (entry bundles: tests/e2e/test_tlog_http.py)
            out.append((path.replace("{path}", "0/000"), {}))
            continue
        for params in variants.get(path, [{}]):
            out.append((path, params))
    return out


def test_crawl_every_public_get(deployment: Deployment, public: httpx.Client, inspector: httpx.Client) -> None:
    spec = public.get("/openapi.json").json()
    order = next(f for f in deployment.facts if f["type"] == "disbursement.ordered")
    code = inspector.get(f"/v1/receipts/{order['id']}").json()["code"]
    requests = public_requests(deployment, spec, (order["id"], code))
    seen_paths = {p for p in spec["paths"] if p.startswith("/public")}
    crawled = set()
    for path, params in requests:
        r = public.get(path, params=params)
        assert r.status_code == 200, (path, params, r.text)
        assert assert_no_personal_data(deployment, path, r) > 0
        crawled.add("/public/v1/receipts/{order_id}" if "receipts" in path
                    else "/public/v1/tlog/tile/{path}" if "/tlog/tile/" in path else path)
    assert crawled == seen_paths
    # the page and its assets too
    for path in ("/", "/static/app.js", "/static/style.css"):
        r = public.get(path)
        assert r.status_code == 200
        assert not DIGITS16.search(r.text) and "pdp-" not in r.text


def test_receipt_reveals_nothing_about_anyone(deployment: Deployment, public, inspector) -> None:
    order = deployment.facts_of_type("disbursement.ordered")[10]
    code = inspector.get(f"/v1/receipts/{order['id']}").json()["code"]
    body = public.get(f"/public/v1/receipts/{order['id']}", params={"code": code}).json()
    assert set(body) == {"order_id", "program", "period", "channel", "status", "amounts", "index", "leaf", "proof", "checkpoint"}
    assert order["kk"] not in str(body) and order["nik"] not in str(body)
    wrong = public.get(f"/public/v1/receipts/{order['id']}", params={"code": "AAAAAAAAAA"})
    unknown = public.get("/public/v1/receipts/kemensos:ord:nope", params={"code": code})
    assert wrong.status_code == unknown.status_code == 404
    assert wrong.json() == unknown.json()


def _families_per_cell(deployment: Deployment, digits: int) -> dict[tuple, set]:
    region_of: dict[str, str] = {}
    for f in deployment.facts:
        if f["type"] == "eligibility.decided":
            region_of[f["kk"]] = f["region"]
    families: dict[tuple, set] = defaultdict(set)
    for f in deployment.facts:
        if f["type"] == "disbursement.ordered":
            families[(region_of.get(f["kk"], "")[:digits] or None, f["program"], f["period"])].add(f["kk"])
    return families


def test_small_cells_are_suppressed(deployment: Deployment, public) -> None:
    families = _families_per_cell(deployment, 10)
    cells = public.get("/public/v1/aggregates", params={"level": "desa", "limit": 1000}).json()
    assert cells["min_families"] == 5
    suppressed = [c for c in cells["items"] if c["suppressed"]]
    shown = [c for c in cells["items"] if not c["suppressed"]]
    assert suppressed, "a desa of this data set must have a small cell"
    for c in suppressed:
        assert c["families"] is None and c["orders"] is None and c["amounts"] is None and c["anomalies"] is None
    for c in shown:
        assert c["families"] == len(families[(c["region"], c["program"], c["period"])]) >= 5
    assert {(c["region"], c["program"], c["period"]) for c in suppressed} >= {
        k for k, fams in families.items() if len(fams) < 5}
    # at kecamatan level most cells are large enough to show
    kec = public.get("/public/v1/aggregates", params={"level": "kecamatan", "limit": 1000}).json()["items"]
    assert any(not c["suppressed"] and c["families"] >= 5 for c in kec)


def test_suppressed_cells_cannot_be_worked_out_by_subtraction(deployment: Deployment, public) -> None:
    """A published total minus its published parts is the sum of its hidden
    parts: those must hold 5 families or more together, under every published
    parent (kota over kecamatan, kecamatan over desa); under a hidden parent at
    least one part is hidden too (else the parts would give it back); the
    summary's program totals are the sums of the published kota cells."""
    levels = {"kota": 4, "kecamatan": 6, "desa": 10}
    published = {level: {(c["region"], c["program"], c["period"]): c for c in public.get(
        "/public/v1/aggregates", params={"level": level, "limit": 1000}).json()["items"]} for level in levels}
    summary = {p["program"]: p for p in public.get("/public/v1/summary").json()["programs"]}
    checked = 0
    for level, parent_level in (("kota", None), ("kecamatan", "kota"), ("desa", "kecamatan")):
        families = _families_per_cell(deployment, levels[level])
        groups: dict[tuple, list] = defaultdict(list)
        for key, cell in published[level].items():
            region, program, period = key
            parent = (program,) if parent_level is None else (
                region[:levels[parent_level]] if region else None, program, period)
            groups[parent].append((key, cell))
        for parent, children in groups.items():
            parent_shown = (not summary[parent[0]]["suppressed"]) if parent_level is None else (
                not published[parent_level][parent]["suppressed"])
            hidden = [key for key, cell in children if cell["suppressed"]]
            if parent_level is None:  # the summary adds up what is published, nothing else
                assert summary[parent[0]]["orders"] == sum(c["orders"] for _, c in children if not c["suppressed"])
                assert summary[parent[0]]["hidden_cells"] == len(hidden)
                assert all(families[key] and len(families[key]) < 5 for key in hidden), "only small kota cells hide"
                continue
            if not parent_shown:
                assert hidden, (level, parent)
                continue
            if hidden:
                checked += 1
                together = set().union(*(families[key] for key in hidden))
                assert len(together) >= 5, (level, parent, hidden)
                # and the published parts add up with the hidden ones to the parent
                shown_orders = sum(cell["orders"] for _, cell in children if not cell["suppressed"])
                total = summary[parent[0]]["orders"] if parent_level is None else published[parent_level][parent]["orders"]
                assert total - shown_orders > 0
    assert checked, "this data set must have a published total with hidden parts"


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_no_write_method_under_public(public, method: str) -> None:
    for path in ("/public/v1/summary", "/public/v1/checkpoint", "/public/v1/receipts/x"):
        r = public.request(method, path, content=b"{}")
        assert r.status_code == 405, (method, path, r.status_code)
        assert r.json()["error"] == "method_not_allowed"
