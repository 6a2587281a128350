"""Roles over real HTTP: a reconciler token is bound to one payment channel and sees payment facts,
balances and payment anomalies of that channel only; tokens expire and their issue and revocation
are in the chained log."""

from __future__ import annotations

from collections import defaultdict

import httpx
import orjson
import pytest

from jejak.api.roles import PAYMENT_TYPES, RULE_ROLES, may_see_rule
from jejak.domain.facts import CHANNELS
from jejak.projections.engine import RULES, compute_balances
from tests.e2e.conftest import RECONCILER_CHANNEL, Deployment

REASON = {"reason": "monthly reconciliation"}
V2_RULES = ("barred_recipient", "flagged_recipient", "complaint_overdue", "disputed_pickup",
            "companion_complaints", "unknown_complaint")
PAYMENT_RULES = {"duplicate_payout", "invalid_nik", "ghost_settlement", "settlement_mismatch",
                 "pickup_without_disbursement", "over_withdrawal", "unclaimed_funds"}


def _all(client: httpx.Client, path: str, **params: str) -> list[dict]:
    items, cursor = [], None
    while True:
        r = client.get(path, params={**REASON, "limit": 1000, **params, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        items += r.json()["items"]
        cursor = r.json()["next_cursor"]
        if not cursor:
            return items


def _channel_of(deployment: Deployment) -> dict[str, str]:
    """fact id -> payment channel, from the generated facts themselves."""
    orders = {f["id"]: f for f in deployment.facts_of_type("disbursement.ordered")}
    out = {}
    for f in deployment.facts:
        if f["type"] in ("disbursement.ordered", "disbursement.settled"):
            out[f["id"]] = f["channel"]
        elif f["type"] in PAYMENT_TYPES and f.get("disbursement") in orders:
            out[f["id"]] = orders[f["disbursement"]]["channel"]
    return out


@pytest.mark.parametrize("rule", sorted(set(RULES) | set(V2_RULES)))
@pytest.mark.parametrize("role", ["inspector", "reconciler"])
def test_role_table_covers_every_rule_and_role(rule: str, role: str) -> None:
    assert rule in RULE_ROLES, f"{rule} is missing from the role table"
    expected = role == "inspector" or rule in PAYMENT_RULES
    assert may_see_rule(role, rule) is expected
    assert not may_see_rule("reconciler", "a_rule_nobody_listed")  # default deny


def test_reconciler_sees_payment_anomalies_of_its_channel_only(deployment: Deployment, inspector: httpx.Client,
                                                               reconciler: httpx.Client) -> None:
    everything = _all(inspector, "/v1/anomalies")
    by_id = {f["id"]: f for f in deployment.facts}
    orders = {f["id"]: f for f in deployment.facts_of_type("disbursement.ordered")}

    def channel(a: dict) -> str | None:
        """The channel of the order the anomaly is about, else of its primary (a ghost settlement)."""
        for fid in (a["primary"], *a["facts"]):
            f = by_id.get(fid, {})
            if f.get("type") == "disbursement.ordered":
                return f["channel"]
            if f.get("disbursement") in orders:
                return orders[f["disbursement"]]["channel"]
        return by_id.get(a["primary"], {}).get("channel")

    expected = sorted((a["rule"], a["primary"]) for a in everything
                      if a["rule"] in PAYMENT_RULES and channel(a) == RECONCILER_CHANNEL)
    seen = _all(reconciler, "/v1/anomalies")
    assert sorted((a["rule"], a["primary"]) for a in seen) == expected
    assert expected, "the planted data has payment anomalies on the reconciler's channel"
    assert {a["rule"] for a in everything} - PAYMENT_RULES, "the data has anomalies a bank must not see"
    # nothing about deaths, civil servants, eligibility or other families' memberships
    for rule in ("deceased_recipient", "asn_recipient", "no_eligibility", "nik_in_multiple_families"):
        r = reconciler.get("/v1/anomalies", params={**REASON, "rule": rule})
        assert r.status_code == 403, r.text
        assert inspector.get("/v1/anomalies", params={**REASON, "rule": rule}).status_code == 200


def test_reconciler_balances_count_its_channel_only(deployment: Deployment, reconciler: httpx.Client) -> None:
    channel_of = _channel_of(deployment)
    mine = [dict(f, seq=i) for i, f in enumerate(deployment.facts)
            if channel_of.get(f["id"]) == RECONCILER_CHANNEL]
    expected = sorted((b.kk, b.program, b.ordered, b.credited, b.picked_up, b.returned)
                      for b in compute_balances(mine))
    got = sorted((b["kk"], b["program"], b["ordered"], b["credited"], b["picked_up"], b["returned"])
                 for b in _all(reconciler, "/v1/balances"))
    assert got == expected and got


def test_reconciler_reads_payment_facts_of_its_channel_and_nothing_else_tells_them_apart(
        deployment: Deployment, reconciler: httpx.Client, inspector: httpx.Client) -> None:
    channel_of = _channel_of(deployment)
    by_type = defaultdict(list)
    for f in deployment.facts:
        by_type[(f["type"], channel_of.get(f["id"]) == RECONCILER_CHANNEL)].append(f)
    for ftype in sorted(PAYMENT_TYPES):
        own = by_type[(ftype, True)][0]
        assert reconciler.get(f"/v1/facts/{own['id']}", params=REASON).status_code == 200, ftype
        other = by_type[(ftype, False)][0]
        assert inspector.get(f"/v1/facts/{other['id']}", params=REASON).status_code == 200
        r = reconciler.get(f"/v1/facts/{other['id']}", params=REASON)
        assert r.status_code == 404, (ftype, r.text)
    unknown = reconciler.get("/v1/facts/no-such-fact-anywhere", params=REASON)
    assert unknown.status_code == 404
    for ftype in ("eligibility.decided", "death.recorded", "asn.registered", "rates.set", "companion.assigned"):
        fact = by_type[(ftype, False)][0]
        r = reconciler.get(f"/v1/facts/{fact['id']}", params=REASON)
        assert (r.status_code, r.json()) == (unknown.status_code, unknown.json()), ftype  # exists, not yours
    other_order = by_type[("disbursement.ordered", False)][0]
    assert reconciler.get(f"/v1/receipts/{other_order['id']}").status_code == 404
    own_order = by_type[("disbursement.ordered", True)][0]
    assert reconciler.get(f"/v1/receipts/{own_order['id']}").status_code == 200


def _log_facts(deployment: Deployment, ftype: str) -> list[dict]:
    out = [line for line in deployment.cli("export", "--public").stdout.split("\n") if line]
    return [e["fact"] for e in map(orjson.loads, out) if e["fact"]["type"] == ftype]


def test_token_issue_and_revoke_are_in_the_log_and_names_are_never_reused(deployment: Deployment) -> None:
    name = f"bank-bni-{deployment.backend}"
    created = deployment.cli("token", "create", "--role", "reconciler", "--channel", "BNI", "--name", name,
                             "--expires", "30d")
    secret = created.stdout.strip()
    listing = [orjson.loads(line) for line in deployment.cli("token", "list").stdout.splitlines()]
    row = next(r for r in listing if r["name"] == name)
    assert row["role"] == "reconciler" and row["channel"] == "BNI" and row["expires"] and row["revoked"] is None
    assert deployment.cli("token", "revoke", name).returncode == 0
    issued = [f for f in _log_facts(deployment, "jejak.token") if f["name"] == name]
    assert [f["action"] for f in issued] == ["issued", "revoked"]
    assert issued[0]["role"] == "reconciler" and issued[0]["channel"] == "BNI" and issued[0]["expires"]
    export = deployment.cli("export").stdout
    assert secret not in export and secret[4:] not in export
    again = deployment.cli("token", "create", "--role", "reconciler", "--channel", "BNI", "--name", name, check=False)
    assert again.returncode == 2 and "revoked" in again.stderr and "never reused" in again.stderr
    # a reconciler needs a channel, an inspector has none
    for args in (("--role", "reconciler"), ("--role", "reconciler", "--channel", "XYZ"),
                 ("--role", "inspector", "--channel", "BRI"), ("--role", "inspector", "--expires", "2001-01-01")):
        r = deployment.cli("token", "create", *args, "--name", f"x-{deployment.backend}", check=False)
        assert r.returncode == 2, args
    assert set(CHANNELS) >= {RECONCILER_CHANNEL}


def test_an_expired_token_is_refused(deployment: Deployment) -> None:
    from datetime import datetime, timedelta, timezone

    from jejak.api.tokens import create_token
    from jejak.ledger import Ledger
    from jejak.settings import Settings

    name = f"short-{deployment.backend}"
    with Ledger.open(Settings(store=deployment.store, keys_dir=deployment.keys_dir)) as ledger:
        secret = create_token(ledger, name, "inspector", expires=datetime.now(timezone.utc) + timedelta(hours=1))
        with httpx.Client(base_url=deployment.base_url, headers={"Authorization": f"Bearer {secret}"}) as c:
            assert c.get("/v1/access-log", params={"limit": 1}).status_code == 200
            with ledger.store.transaction(commit=True) as cursor:  # an hour passes
                ledger.store.execute(cursor, "UPDATE api_tokens SET expires = ? WHERE name = ?",
                                     ((datetime.now(timezone.utc) - timedelta(seconds=1)).isoformat(), name))
            r = c.get("/v1/access-log", params={"limit": 1})
            assert r.status_code == 401 and "expired" in r.json()["message"]
