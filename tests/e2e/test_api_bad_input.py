"""Bad input gets a clear 4xx JSON answer, never a 5xx."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest

INJECTIONS = ["' OR '1'='1", "1; DROP TABLE jejak_log; --", "../../etc/passwd", "<script>alert(1)</script>",
              "%00", "\u0000", "１２３４５６７８９０１２３４５６", "x" * 5000, "${jndi:ldap://x}", "NaN", "-1"]


def assert_4xx_json(r: httpx.Response) -> dict:
    assert 400 <= r.status_code < 500, (r.request.url, r.status_code, r.text[:300])
    body = r.json()
    assert isinstance(body.get("error"), str) and isinstance(body.get("message"), str) and body["message"]
    return body


@pytest.mark.parametrize("bad", ["123", "12345678901234567", "abcdefghijklmnop", "1275 01010101000", "１２７５０１０１０１０１０００１"])
def test_kk_and_nik_must_be_16_digits(inspector, bad: str) -> None:
    for path in (f"/v1/families/{bad}/trail", f"/v1/people/{bad}/trail"):
        r = inspector.get(path, params={"reason": "audit"})
        body = assert_4xx_json(r)
        assert r.status_code == 422 and body["error"] == "invalid_request"
        assert "16" in body["message"] or "pattern" in body["message"]


@pytest.mark.parametrize("limit", ["0", "-1", "1001", "100000000000000000000", "ten", "1e3"])
def test_page_size_is_capped(inspector, public, limit: str) -> None:
    assert_4xx_json(inspector.get("/v1/balances", params={"reason": "audit", "limit": limit}))
    assert_4xx_json(public.get("/public/v1/aggregates", params={"limit": limit}))


@pytest.mark.parametrize("bad", INJECTIONS)
def test_injection_strings_everywhere(inspector, public, bad: str) -> None:
    reason = {"reason": "audit"}
    seg = quote(bad, safe="")  # as a path segment
    cases = [
        inspector.get("/v1/facts/" + seg, params=reason),
        inspector.get("/v1/balances", params={**reason, "kk": bad}),
        inspector.get("/v1/balances", params={**reason, "program": bad}),
        inspector.get("/v1/anomalies", params={**reason, "rule": bad}),
        inspector.get("/v1/anomalies", params={**reason, "region": bad}),
        inspector.get("/v1/anomalies", params={**reason, "period": bad}),
        inspector.get("/v1/anomalies", params={**reason, "as_of": bad}),
        inspector.get("/v1/anomalies", params={**reason, "cursor": bad}),
        inspector.get("/v1/access-log", params={"token_name": bad}),
        inspector.get("/v1/receipts/" + seg),
        public.get("/public/v1/receipts/" + seg, params={"code": bad}),
        public.get("/public/v1/receipts/kemensos:ord:2024-T1:000001", params={"code": bad}),
        public.get("/public/v1/aggregates", params={"level": bad}),
        public.get("/public/v1/aggregates", params={"region": bad}),
        public.get("/public/v1/proofs/inclusion", params={"index": bad}),
        public.get("/public/v1/proofs/consistency", params={"size1": bad}),
    ]
    for r in cases:
        if r.status_code == 200:  # harmless input may legitimately match nothing
            continue
        assert_4xx_json(r)


def test_proof_requests_out_of_range(public, deployment) -> None:
    size = deployment.checkpoint_size
    for params in ({"index": size + 10**6}, {"index": 3, "size": 2}, {"index": 0, "size": 10**12}):
        body = assert_4xx_json(public.get("/public/v1/proofs/inclusion", params=params))
        assert body["error"] == "no_such_proof"
    assert_4xx_json(public.get("/public/v1/proofs/consistency", params={"size1": 10, "size2": 5}))
    assert_4xx_json(public.get("/public/v1/proofs/inclusion", params={"index": -1}))
    assert_4xx_json(public.get("/public/v1/proofs/inclusion"))


def test_malformed_cursor(inspector) -> None:
    for cursor in ("!!!", "bm90LWEtY3Vyc29y", "czotMQ", "a" * 201):
        body = assert_4xx_json(inspector.get("/v1/anomalies", params={"reason": "audit", "cursor": cursor}))
        assert body["error"] in ("invalid_cursor", "invalid_request")


def test_cursors_past_64_bits_are_refused_not_crashed(inspector, deployment) -> None:
    import base64

    order = deployment.facts_of_type("disbursement.ordered")[0]
    for kind, path in (("s", "/v1/access-log"), ("i", f"/v1/families/{order['kk']}/trail"),
                       ("i", f"/v1/people/{order['nik']}/trail"), ("o", "/v1/anomalies")):
        for value in (2**63, 10**30):
            cursor = base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode().rstrip("=")
            r = inspector.get(path, params={"reason": "audit of cursors", "cursor": cursor})
            assert r.status_code == 400, (path, r.status_code, r.text)
            assert r.json()["error"] == "invalid_cursor"


def test_reason_rules(inspector) -> None:
    for reason in ("", "  ", "ab", "x" * 501):
        assert_4xx_json(inspector.get("/v1/balances", params={"reason": reason}))


def test_unknown_paths_and_methods(public, inspector) -> None:
    assert public.get("/nope").status_code == 404
    assert public.get("/nope").json()["error"] == "not_found"
    assert inspector.post("/v1/balances", params={"reason": "audit"}).status_code == 405
    assert_4xx_json(inspector.post("/v1/balances", params={"reason": "audit"}))


def test_huge_and_odd_headers(deployment) -> None:
    with httpx.Client(base_url=deployment.base_url) as c:
        r = c.get("/v1/balances", params={"reason": "audit"}, headers={"Authorization": "Bearer " + "a" * 10000})
        assert r.status_code == 401
        r = c.get("/v1/balances", params={"reason": "audit"}, headers={"Authorization": b"Bearer jjk_\xc3\xa9\xff"})
        assert r.status_code == 401



def test_an_inclusion_proof_beyond_the_checkpoint_is_against_the_log_size(public, inspector, deployment) -> None:
    """The default size is the latest checkpoint's only when it covers the index."""
    kk = deployment.facts_of_type("disbursement.ordered")[0]["kk"]
    assert inspector.get(f"/v1/families/{kk}/trail", params={"reason": "audit"}).status_code == 200  # grows the log
    checkpoint = public.get("/public/v1/checkpoint").json()["size"]
    inside = public.get("/public/v1/proofs/inclusion", params={"index": 0})
    assert inside.status_code == 200 and inside.json()["size"] == checkpoint
    beyond = public.get("/public/v1/proofs/inclusion", params={"index": checkpoint})
    assert beyond.status_code == 200, beyond.text
    assert beyond.json()["size"] > checkpoint
