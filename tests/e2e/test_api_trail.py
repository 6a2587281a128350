"""Audit trails over HTTP: log order, completeness, and proofs that verify against the signed checkpoint."""

from __future__ import annotations

import base64
from collections import Counter

import httpx
import pytest

from jejak.audit.checkpoint import verify_checkpoint
from jejak.audit.merkle import verify_inclusion
from tests.e2e.conftest import Deployment

REASON = {"reason": "pemeriksaan kasus 2024/42"}


def signed_root(public: httpx.Client) -> tuple[int, bytes]:
    cp = public.get("/public/v1/checkpoint").json()
    keys = public.get("/public/v1/keys").json()["keys"]
    verified = verify_checkpoint(cp["note"], keys)
    assert verified.root.hex() == cp["root_hex"] and verified.size == cp["size"]
    return verified.size, verified.root


def busiest(deployment: Deployment, field: str) -> str:
    counts = Counter(f[field] for f in deployment.facts if f["type"] == "disbursement.ordered")
    return counts.most_common(1)[0][0]


def expected_family_ids(deployment: Deployment, kk: str) -> list[str]:
    orders = {f["id"] for f in deployment.facts if f["type"] == "disbursement.ordered" and f["kk"] == kk}
    return [f["id"] for f in deployment.facts if f.get("kk") == kk or f.get("disbursement") in orders]


def expected_person_ids(deployment: Deployment, nik: str) -> list[str]:
    orders = {f["id"] for f in deployment.facts if f["type"] == "disbursement.ordered" and f["nik"] == nik}
    return [f["id"] for f in deployment.facts if f.get("nik") == nik or f.get("disbursement") in orders]


def check_proofs(items: list[dict], size: int, root: bytes) -> None:
    for item in items:
        proof = item["proof"]
        assert proof is not None and proof["size"] == size and proof["index"] == item["index"]
        assert proof["root"] == root.hex()
        verify_inclusion(item["index"], size, bytes.fromhex(proof["leaf_hash"]), [bytes.fromhex(h) for h in proof["proof"]], root)


def test_family_trail_is_complete_in_log_order_with_valid_proofs(deployment: Deployment, inspector, public) -> None:
    size, root = signed_root(public)
    kk = busiest(deployment, "kk")
    r = inspector.get(f"/v1/families/{kk}/trail", params={**REASON, "proof": "true"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["subject"] == "family" and body["checkpoint_size"] == size
    items = body["items"]
    indices = [i["index"] for i in items]
    assert indices == sorted(indices) and len(set(indices)) == len(indices)
    # the input file was ingested in order, so log order = file order
    assert [i["fact_id"] for i in items] == expected_family_ids(deployment, kk)
    assert all(len(i["chain"]) == 64 for i in items)
    # personal fields are revealed on /v1
    by_id = {f["id"]: f for f in deployment.facts}
    for item in items:
        assert item["fact"] == by_id[item["fact_id"]]
    check_proofs(items, size, root)


def test_person_trail(deployment: Deployment, inspector, public) -> None:
    size, root = signed_root(public)
    nik = busiest(deployment, "nik")
    r = inspector.get(f"/v1/people/{nik}/trail", params={**REASON, "proof": "true"})
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [i["fact_id"] for i in items] == expected_person_ids(deployment, nik)
    assert any(i["fact"].get("nik") == nik for i in items)
    check_proofs(items, size, root)


def test_trail_without_proof_and_pagination(deployment: Deployment, inspector) -> None:
    kk = busiest(deployment, "kk")
    full = inspector.get(f"/v1/families/{kk}/trail", params=REASON).json()["items"]
    assert all(i["proof"] is None for i in full)
    pages, cursor = [], None
    while True:
        params = {**REASON, "limit": 4, **({"cursor": cursor} if cursor else {})}
        body = inspector.get(f"/v1/families/{kk}/trail", params=params).json()
        assert len(body["items"]) <= 4
        pages += body["items"]
        cursor = body["next_cursor"]
        if not cursor:
            break
    assert [i["index"] for i in pages] == [i["index"] for i in full]


def test_unknown_family_has_an_empty_trail(inspector) -> None:
    body = inspector.get("/v1/families/9999999999999999/trail", params=REASON).json()
    assert body["items"] == [] and body["next_cursor"] is None


def test_fact_by_id_with_proof_and_leaf_matches_export(deployment: Deployment, inspector, public) -> None:
    size, root = signed_root(public)
    order = deployment.facts_of_type("disbursement.ordered")[3]
    r = inspector.get(f"/v1/facts/{order['id']}", params=REASON)
    assert r.status_code == 200, r.text
    entry = r.json()
    assert entry["fact_id"] == order["id"] and entry["type"] == "disbursement.ordered"
    assert entry["fact"] == order
    check_proofs([entry], size, root)
    # the same leaf a recipient gets on the public receipt
    code = inspector.get(f"/v1/receipts/{order['id']}").json()["code"]
    receipt = public.get(f"/public/v1/receipts/{order['id']}", params={"code": code}).json()
    import hashlib

    assert receipt["index"] == entry["index"]
    assert hashlib.sha256(b"\x00" + base64.b64decode(receipt["leaf"])).hexdigest() == entry["proof"]["leaf_hash"]


def test_unknown_fact_is_404(inspector) -> None:
    r = inspector.get("/v1/facts/no:such:fact", params=REASON)
    assert r.status_code == 404 and r.json()["error"] == "not_found"


@pytest.mark.parametrize("accept", ["text/csv", None])
def test_trail_csv(deployment: Deployment, inspector, accept) -> None:
    import csv
    import io

    kk = busiest(deployment, "kk")
    params = dict(REASON)
    headers = {}
    if accept:
        headers["Accept"] = accept
    else:
        params["format"] = "csv"
    r = inspector.get(f"/v1/families/{kk}/trail", params=params, headers=headers)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["fact_id"] for row in rows] == expected_family_ids(deployment, kk)


def test_answers_built_without_pydantic_match_their_response_models(deployment: Deployment, inspector, public) -> None:
    """Trails, facts and proofs are serialised straight from dicts: the same JSON their models would give."""
    from jejak.api.schemas import ConsistencyProof, FactEntry, InclusionProof, TrailOut

    kk = busiest(deployment, "kk")
    for params in (REASON, {**REASON, "proof": "true"}, {**REASON, "limit": 3}):
        r = inspector.get(f"/v1/families/{kk}/trail", params=params)
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        assert TrailOut.model_validate(r.json()).model_dump(mode="json") == r.json()
    order = deployment.facts_of_type("disbursement.ordered")[0]
    r = inspector.get(f"/v1/facts/{order['id']}", params=REASON)
    assert FactEntry.model_validate(r.json()).model_dump(mode="json") == r.json()
    size = deployment.checkpoint_size
    r = public.get("/public/v1/proofs/inclusion", params={"index": 3, "size": size})
    assert InclusionProof.model_validate(r.json()).model_dump(mode="json") == r.json()
    r = public.get("/public/v1/proofs/consistency", params={"size1": 5, "size2": size})
    assert ConsistencyProof.model_validate(r.json()).model_dump(mode="json") == r.json()


def test_a_new_checkpoint_shows_in_the_next_trail(deployment: Deployment, inspector, public) -> None:
    """The trail's checkpoint is the latest one as of the request (cached only while no newer one exists)."""
    kk = busiest(deployment, "kk")
    before = inspector.get(f"/v1/families/{kk}/trail", params=REASON).json()["checkpoint_size"]
    assert before == public.get("/public/v1/checkpoint").json()["size"]
    deployment.cli("checkpoint")  # another process; the access records above grew the log
    latest = public.get("/public/v1/checkpoint").json()["size"]
    assert latest > before
    body = inspector.get(f"/v1/families/{kk}/trail", params={**REASON, "proof": "true"}).json()
    assert body["checkpoint_size"] == latest
    assert all(item["proof"]["size"] == latest for item in body["items"])
