"""Bearer tokens and roles: 401 without, 403 with the wrong role; token CLI; jejak serve."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest

from tests.e2e.conftest import Deployment, free_port

V1_GETS = [
    "/v1/families/1275010101010001/trail?reason=audit",
    "/v1/people/1275010101010001/trail?reason=audit",
    "/v1/facts/kemensos:rates:2024:PKH?reason=audit",
    "/v1/balances?reason=audit",
    "/v1/anomalies?reason=audit",
    "/v1/access-log",
    "/v1/receipts/kemensos:rates:2024:PKH",
]


def assert_error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["error"] == code and body["message"]


@pytest.mark.parametrize("path", V1_GETS)
def test_no_token_is_401(public: httpx.Client, path: str) -> None:
    r = public.get(path)
    assert_error(r, 401, "unauthorized")
    assert r.headers.get("www-authenticate") == "Bearer"


@pytest.mark.parametrize("header", [
    "Bearer jjk_not-a-real-token", "Bearer", "Basic dXNlcjpwYXNz", "jjk_x", "Bearer x' OR 1=1 --",
])
def test_bad_token_is_401(deployment: Deployment, header: str) -> None:
    with httpx.Client(base_url=deployment.base_url, headers={"Authorization": header}) as c:
        assert_error(c.get("/v1/balances?reason=audit"), 401, "unauthorized")


@pytest.mark.parametrize("path", ["/v1/families/1275010101010001/trail?reason=audit",
                                  "/v1/people/1275010101010001/trail?reason=audit", "/v1/access-log"])
def test_reconciler_may_not_read_trails_or_access_log(reconciler: httpx.Client, path: str) -> None:
    assert_error(reconciler.get(path), 403, "forbidden")


def test_roles_that_may(reconciler: httpx.Client, inspector: httpx.Client) -> None:
    assert reconciler.get("/v1/balances", params={"reason": "monthly reconciliation", "limit": 3}).status_code == 200
    assert reconciler.get("/v1/anomalies", params={"reason": "monthly reconciliation", "limit": 3}).status_code == 200
    assert inspector.get("/v1/access-log").status_code == 200


def test_public_needs_no_token(public: httpx.Client) -> None:
    for path in ("/healthz", "/public/v1/checkpoint", "/public/v1/keys", "/public/v1/summary", "/public/v1/aggregates"):
        assert public.get(path).status_code == 200, path


def test_token_cli_create_use_revoke(deployment: Deployment) -> None:
    name = f"cli-{deployment.backend}"
    created = deployment.cli("token", "create", "--role", "inspector", "--name", name)
    secret = created.stdout.strip()
    assert secret.startswith("jjk_") and len(secret) > 40
    assert "shown only once" in created.stderr
    # a second active token with the same name is refused
    assert deployment.cli("token", "create", "--role", "inspector", "--name", name, check=False).returncode == 2
    with httpx.Client(base_url=deployment.base_url, headers={"Authorization": f"Bearer {secret}"}) as c:
        assert c.get("/v1/access-log").status_code == 200
        # only the hash is stored
        listing = deployment.cli("token", "list").stdout
        assert name in listing and secret not in listing
        from jejak.store.datastore import Store

        store = Store.open(deployment.store)
        try:
            rows = store.query("SELECT * FROM api_tokens")
            assert all(secret not in str(tuple(r[k] for k in r.keys())) for r in rows)
        finally:
            store.close()
        revoked = deployment.cli("token", "revoke", name)
        assert revoked.returncode == 0
        assert_error(c.get("/v1/access-log"), 401, "unauthorized")
    assert deployment.cli("token", "revoke", name, check=False).returncode == 1
    assert deployment.cli("token", "create", "--role", "admin", "--name", "x", check=False).returncode == 2


def test_access_is_recorded_with_tokens_not_clear_values(deployment: Deployment, inspector: httpx.Client) -> None:
    kk = next(f["kk"] for f in deployment.facts if f["type"] == "disbursement.ordered")
    reason = f"complaint 2024/117 ({deployment.backend})"
    assert inspector.get(f"/v1/families/{kk}/trail", params={"reason": reason}).status_code == 200
    rows = []
    cursor = None
    while True:
        r = inspector.get("/v1/access-log", params={"limit": 1000, **({"cursor": cursor} if cursor else {})})
        rows += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if not cursor:
            break
    mine = [row for row in rows if row["reason"] == reason]
    assert len(mine) >= 2  # the family, then each member and other family the trail shows
    row = mine[0]
    assert row["token_name"] == "e2e-inspector" and row["role"] == "inspector"
    assert row["path"] == "/v1/families/{kk}/trail"
    assert row["subject_token"].startswith("tk1_")
    assert kk not in r.text
    # the access is also a jejak.access fact in the hash-chained log
    assert row["log_fact"].startswith("jejak:access:")  # (the inspector API reveals its subject token)
    logged = inspector.get(f"/v1/facts/{row['log_fact']}", params={"reason": "audit the auditors"})
    assert logged.status_code == 200, logged.text
    fact = logged.json()["fact"]
    assert fact["type"] == "jejak.access" and fact["subject"] == kk and fact["reason"] == reason
    assert fact["actor"] == "e2e-inspector" and fact["path"] == "/v1/families/{kk}/trail"
    # filtering by subject
    by_subject = inspector.get("/v1/access-log", params={"subject_token": row["subject_token"]}).json()["items"]
    assert row["seq"] in {x["seq"] for x in by_subject}


def _access_rows(inspector: httpx.Client, **params: str) -> list[dict]:
    rows, cursor = [], None
    while True:
        r = inspector.get("/v1/access-log", params={"limit": 1000, **params, **({"cursor": cursor} if cursor else {})})
        rows += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if not cursor:
            return rows


def test_who_looked_at_a_person_finds_every_read_that_named_them(deployment: Deployment,
                                                                  inspector: httpx.Client) -> None:
    order = deployment.facts_of_type("disbursement.ordered")[3]
    tag = f"({deployment.backend}, case 2024/3)"
    for path, reason in ((f"/v1/people/{order['nik']}/trail", f"person {tag}"),
                         (f"/v1/families/{order['kk']}/trail", f"family {tag}")):
        assert inspector.get(path, params={"reason": reason}).status_code == 200
    token = {row["reason"]: row["subject_token"] for row in _access_rows(inspector) if row["reason"].endswith(tag)}
    nik_token, kk_token = token[f"person {tag}"], token[f"family {tag}"]
    assert nik_token != kk_token
    assert inspector.get(f"/v1/facts/{order['id']}", params={"reason": f"fact {tag}"}).status_code == 200
    assert inspector.get("/v1/anomalies", params={"reason": f"anomalies {tag}", "nik": order["nik"],
                                                  "kk": order["kk"]}).status_code == 200
    for subject, own in ((nik_token, f"person {tag}"), (kk_token, f"family {tag}")):
        reasons = {row["reason"] for row in _access_rows(inspector, subject_token=subject)}
        assert {own, f"fact {tag}", f"anomalies {tag}"} <= reasons, (subject, reasons)


def test_missing_reason_is_422_and_not_recorded(inspector: httpx.Client, deployment: Deployment) -> None:
    kk = next(f["kk"] for f in deployment.facts if f["type"] == "disbursement.ordered")
    before = inspector.get("/v1/access-log", params={"limit": 1000}).json()
    r = inspector.get(f"/v1/families/{kk}/trail")
    assert_error(r, 422, "invalid_request")
    assert "reason" in r.json()["message"]
    assert_error(inspector.get(f"/v1/families/{kk}/trail", params={"reason": "   "}), 422, "invalid_request")
    # personal data never goes into the reason (it is published in the log)
    r = inspector.get(f"/v1/families/{kk}/trail", params={"reason": f"family {kk}"})
    assert_error(r, 422, "invalid_request")
    assert kk not in r.text
    # nor typed with separators, split, or in other digits
    arabic = kk.translate(str.maketrans("0123456789", "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669"))
    fullwidth = kk.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    for typed in (f"{kk[:4]} {kk[4:8]} {kk[8:12]} {kk[12:]}", f"{kk[:6]}-{kk[6:]}", f"Ahmad, {kk[:15]} {kk[15]}",
                  f"{kk[:4]}.{kk[4:10]}/{kk[10:]}", arabic, fullwidth, *typed_with_other_separators(kk)):
        assert_error(inspector.get(f"/v1/families/{kk}/trail", params={"reason": f"kasus {typed}"}), 422,
                     "invalid_request")
    after = inspector.get("/v1/access-log", params={"limit": 1000}).json()
    assert len(after["items"]) == len(before["items"])
    # a case number and a date are fine
    ok = inspector.get(f"/v1/families/{kk}/trail", params={"reason": "kasus 2024/031/0005 tanggal 2024-03-05"})
    assert ok.status_code == 200, ok.text


def typed_with_other_separators(number: str) -> list[str]:
    """A 16-digit number typed so that a pattern of digits and common punctuation misses it."""
    superscript = number.translate(str.maketrans("0123456789", "\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079"))
    circled = number.translate(str.maketrans("0123456789", "\u24ea\u2460\u2461\u2462\u2463\u2464\u2465\u2466\u2467\u2468"))
    split = [sep.join((number[:4], number[4:8], number[8:12], number[12:]))
             for sep in ("+", "|", "#", "*", "'", "~", "\\", "%", "=", "\u2013", "\u2014", "\u200b")]
    return [*split, f"({number[:8]})({number[8:]})", superscript, circled]


@pytest.mark.parametrize("workers", [1, 2])
def test_jejak_serve_subprocess(deployment: Deployment, workers: int) -> None:
    import os

    port = free_port()
    env = {**os.environ, "JEJAK_KEYS_DIR": str(deployment.keys_dir)}
    env.pop("JEJAK_STORE", None)  # --store must reach every worker process
    proc = subprocess.Popen(
        [sys.executable, "-m", "jejak.cli", "--store", deployment.store, "serve", "--host", "127.0.0.1",
         "--port", str(port), "--workers", str(workers)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                assert time.monotonic() < deadline, "jejak serve did not come up"
                time.sleep(0.2)
        assert r.status_code == 200
        assert r.json()["log_size"] >= len(deployment.facts)  # plus jejak.access facts
        assert httpx.get(f"http://127.0.0.1:{port}/openapi.json").json()["info"]["title"] == "jejak"
        # every worker answers from the same store (new connections spread over the workers)
        sizes = {httpx.get(f"http://127.0.0.1:{port}/public/v1/summary", timeout=10).json()["log_size"]
                 for _ in range(8)}
        assert len(sizes) == 1 and sizes.pop() >= len(deployment.facts)
        aggregates = [httpx.get(f"http://127.0.0.1:{port}/public/v1/aggregates", params={"level": "kota"},
                                timeout=10) for _ in range(4)]
        assert all(r.status_code == 200 for r in aggregates)
        assert len({r.content for r in aggregates}) == 1  # cached bytes equal a freshly rendered answer
        assert aggregates[0].headers["x-content-type-options"] == "nosniff"
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_every_family_a_page_shows_is_recorded_under_that_family(deployment: Deployment, reconciler: httpx.Client,
                                                                 inspector: httpx.Client) -> None:
    from jejak.ledger import Ledger
    from jejak.settings import Settings

    reason = f"paging every balance ({deployment.backend})"
    shown, cursor, pages = [], None, 0
    while True:
        r = reconciler.get("/v1/balances", params={"reason": reason, "limit": 25, **({"cursor": cursor} if cursor else {})})
        shown += [row["kk"] for row in r.json()["items"]]
        pages += 1
        cursor = r.json()["next_cursor"]
        if not cursor:
            break
    assert pages >= 2 and shown
    rows = [row for row in _access_rows(inspector, token_name="e2e-reconciler") if row["reason"] == reason]
    assert all(row["subject_token"] for row in rows), "a page is recorded under the families it shows, not '*'"
    with Ledger.open(Settings(store=deployment.store, keys_dir=deployment.keys_dir)) as ledger:
        tokens = {ledger.tokenizer.token("kk", kk) for kk in shown}
    assert {row["subject_token"] for row in rows} == tokens
    for token in list(tokens)[:3]:
        assert reason in {row["reason"] for row in _access_rows(inspector, subject_token=token)}
