"""Inspector API for SPEC v2: complaints (list, filters, CSV, one complaint with
its payment and family trail) and a person's register listings, over real
HTTP on the planted generation; reconcilers get the complaints about their own
channel's payments only, and no registers."""

from __future__ import annotations

import csv
import datetime as dt
import io

from tests.e2e.conftest import RECONCILER_CHANNEL, Deployment
from tests.e2e.test_api_lists import REASON, collect

OPTIONAL = ("kk", "nik", "disbursement", "companion", "text")


def expected_complaints(facts: list[dict]) -> list[dict]:
    """An independent reading of SPEC v2 §6 over the generated facts (all +07:00)."""
    as_of = dt.date.fromisoformat(max(f["at"] for f in facts)[:10])
    resolutions: dict[str, list[dict]] = {}
    for f in facts:
        if f["type"] == "complaint.resolved":
            resolutions.setdefault(f["complaint"], []).append(f)
    out = []
    for f in facts:
        if f["type"] != "complaint.filed":
            continue
        mine = resolutions.get(f["id"], [])
        days = None if mine else (as_of - dt.date.fromisoformat(f["at"][:10])).days
        out.append({"complaint_id": f["id"], "at": f["at"], "channel": f["channel"], "category": f["category"],
                    "region": f["region"], **{k: f.get(k) for k in OPTIONAL},
                    "status": "closed" if mine else "open", "outcome": mine[-1]["outcome"] if mine else None,
                    "resolutions": [r["id"] for r in mine], "days_open": days,
                    "overdue": days is not None and days > 14})
    return out


def test_complaints_list_filters_and_csv(deployment: Deployment, inspector) -> None:
    want = expected_complaints(deployment.facts)
    got = collect(inspector, "/v1/complaints", **REASON, limit=1000)
    assert got == want and len(got) > 10
    assert collect(inspector, "/v1/complaints", **REASON, limit=3) == want
    overdue = {a["primary"] for a in deployment.expected if a["rule"] == "complaint_overdue"}
    assert {c["complaint_id"] for c in got if c["overdue"]} == overdue
    for name, value in (("channel", "lapor"), ("category", "pungli"), ("status", "open"), ("status", "closed"),
                        ("overdue", True), ("overdue", False), ("region", "1275011001"), ("region", "1275")):
        sub = collect(inspector, "/v1/complaints", **REASON, **{name: str(value).lower()}, limit=1000)
        match = [c for c in want if (c[name].startswith(value) if name == "region" else c[name] == value)]
        assert sub == match and sub, (name, value)
    kk = next(c["kk"] for c in want if c["kk"])
    assert collect(inspector, "/v1/complaints", **REASON, kk=kk, limit=1000) == [c for c in want if c["kk"] == kk]
    r = inspector.get("/v1/complaints", params={**REASON, "format": "csv", "limit": 1000})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["complaint_id"] for row in rows] == [c["complaint_id"] for c in want]
    assert inspector.get("/v1/complaints", params={**REASON, "channel": "twitter"}).status_code == 422


def test_one_complaint_with_payment_and_family_trail(deployment: Deployment, inspector) -> None:
    disputed = sorted(a["primary"] for a in deployment.expected if a["rule"] == "disputed_pickup")
    facts = {f["id"]: f for f in deployment.facts}
    for cid in disputed:
        body = inspector.get(f"/v1/complaints/{cid}", params=REASON).json()
        c = facts[cid]
        order = facts[c["disbursement"]]
        assert body["complaint"]["complaint_id"] == cid and body["entry"]["fact"] == c
        on_order = [f["id"] for f in deployment.facts if f["id"] == order["id"]
                    or (f.get("disbursement") == order["id"] and f["type"] != "complaint.filed")]
        assert [e["fact_id"] for e in body["payment"]] == on_order
        assert any(e["type"] == "pickup.recorded" for e in body["payment"])
        assert body["family"] == order["kk"]
        assert body["family_trail"] and all(e["index"] < body["family_trail"][-1]["index"] + 1
                                            for e in body["family_trail"])
        assert [e["fact_id"] for e in body["resolutions"]] == [
            f["id"] for f in deployment.facts if f["type"] == "complaint.resolved" and f["complaint"] == cid]
    assert inspector.get("/v1/complaints/no-such-complaint", params=REASON).status_code == 404
    order_id = next(f["id"] for f in deployment.facts if f["type"] == "disbursement.ordered")
    assert inspector.get(f"/v1/complaints/{order_id}", params=REASON).status_code == 404


def test_register_listings_of_a_person(deployment: Deployment, inspector) -> None:
    as_of = max(f["at"] for f in deployment.facts)[:10]
    listed = [f for f in deployment.facts if f["type"] in ("register.listed", "asn.registered")]
    nik = listed[-1]["nik"]
    body = inspector.get(f"/v1/people/{nik}/registers", params=REASON).json()
    mine = [f for f in listed if f["nik"] == nik]
    assert [i["fact_id"] for i in body["items"]] == [f["id"] for f in mine]
    for item, f in zip(body["items"], mine):
        assert item["register"] == f.get("register", "asn") and item["from"] == f["from"]
        assert item["in_force_on"] == (f["from"] <= as_of and ("until" not in f or as_of < f["until"]))
    assert body["as_of"] == as_of
    empty = inspector.get("/v1/people/9999999999999999/registers", params=REASON).json()
    assert empty["items"] == []


def test_reconcilers_see_the_complaints_about_their_own_channel_only(deployment: Deployment, reconciler) -> None:
    orders = {f["id"]: f for f in deployment.facts_of_type("disbursement.ordered")}
    want = [c for c in expected_complaints(deployment.facts)
            if c["disbursement"] in orders and orders[c["disbursement"]]["channel"] == RECONCILER_CHANNEL]
    others = [c for c in expected_complaints(deployment.facts) if c not in want]
    assert want and others and any(c["disbursement"] in orders for c in others)
    assert collect(reconciler, "/v1/complaints", **REASON, limit=1000) == want
    assert collect(reconciler, "/v1/complaints", **REASON, limit=2) == want
    assert collect(reconciler, "/v1/complaints", **REASON, status="open", limit=1000) == [
        c for c in want if c["status"] == "open"]
    for c in want:
        body = reconciler.get(f"/v1/complaints/{c['complaint_id']}", params=REASON).json()
        assert body["complaint"] == c and body["family_trail"] == [] and body["family_trail_next_cursor"] is None
        assert {e["fact"].get("channel", RECONCILER_CHANNEL) for e in body["payment"]} == {RECONCILER_CHANNEL}
    unknown = reconciler.get("/v1/complaints/no-such-complaint", params=REASON)
    for c in others:  # another channel's payment, an unknown order, no order: as an unknown id
        r = reconciler.get(f"/v1/complaints/{c['complaint_id']}", params=REASON)
        assert (r.status_code, r.json()["message"]) == (404, unknown.json()["message"]), c["complaint_id"]
    nik = next(f["nik"] for f in deployment.facts if f["type"] == "register.listed")
    assert reconciler.get(f"/v1/people/{nik}/registers", params=REASON).status_code == 403
    # a fact that is not theirs answers as one that does not exist (docs/roles-and-integrity.md)
    assert reconciler.get(f"/v1/facts/{others[0]['complaint_id']}", params=REASON).status_code == 404


def test_a_reason_with_a_nul_character_is_refused_not_a_server_error(deployment: Deployment, inspector) -> None:
    r = inspector.get("/v1/complaints", params={"reason": "kasus\x00 7"})
    assert r.status_code == 422 and "NUL" in r.json()["message"]
