"""Lists: balances and anomalies with filters, cursor pagination and CSV."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Deployment

REASON = {"reason": "rekonsiliasi bulanan"}


def collect(client: httpx.Client, path: str, **params: Any) -> list[dict]:
    items, cursor = [], None
    while True:
        q = {**params, **({"cursor": cursor} if cursor else {})}
        r = client.get(path, params=q)
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["items"]) <= int(params.get("limit", 100))
        items += body["items"]
        cursor = body["next_cursor"]
        if not cursor:
            return items


def test_balances_paginate_to_the_cli_output(deployment: Deployment, inspector) -> None:
    paged = collect(inspector, "/v1/balances", **REASON, limit=7)
    done = deployment.cli("balances", check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    cli = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(paged) == len(cli)
    assert paged == cli
    assert len(paged) > 7


def test_balances_filters(deployment: Deployment, inspector) -> None:
    kk = next(f["kk"] for f in deployment.facts if f["type"] == "disbursement.ordered")
    rows = inspector.get("/v1/balances", params={**REASON, "kk": kk}).json()["items"]
    assert rows and all(r["kk"] == kk for r in rows)
    pkh = collect(inspector, "/v1/balances", **REASON, program="PKH", limit=1000)
    assert pkh and all(r["program"] == "PKH" for r in pkh)


def test_anomalies_match_the_planted_ones(deployment: Deployment, inspector) -> None:
    got = collect(inspector, "/v1/anomalies", **REASON, limit=1000)
    assert {(a["rule"], a["primary"]) for a in got} == {(e["rule"], e["primary"]) for e in deployment.expected}
    paged = collect(inspector, "/v1/anomalies", **REASON, limit=5)
    assert paged == got


def test_anomaly_filters(deployment: Deployment, inspector) -> None:
    everything = collect(inspector, "/v1/anomalies", **REASON, limit=1000)
    by_rule = collect(inspector, "/v1/anomalies", **REASON, rule="deceased_recipient", limit=1000)
    assert by_rule == [a for a in everything if a["rule"] == "deceased_recipient"] and by_rule
    bpnt = collect(inspector, "/v1/anomalies", **REASON, program="BPNT", limit=1000)
    assert bpnt == [a for a in everything if a["program"] == "BPNT"] and bpnt
    period = next(a["period"] for a in everything if a["period"])
    by_period = collect(inspector, "/v1/anomalies", **REASON, period=period, limit=1000)
    assert by_period == [a for a in everything if a["period"] == period] and by_period
    region = next(a["region"] for a in everything if a["region"])
    for prefix in (region[:4], region[:6], region):
        got = collect(inspector, "/v1/anomalies", **REASON, region=prefix, limit=1000)
        assert got == [a for a in everything if (a["region"] or "").startswith(prefix)] and got
    # by family and by person: the anomaly touches them (its facts name them or their orders)
    order = next(f for f in deployment.facts if f["type"] == "disbursement.ordered"
                 and any(a["primary"] == f["id"] for a in everything))
    by_kk = collect(inspector, "/v1/anomalies", **REASON, kk=order["kk"], limit=1000)
    assert any(a["primary"] == order["id"] for a in by_kk)
    by_nik = collect(inspector, "/v1/anomalies", **REASON, nik=order["nik"], limit=1000)
    assert any(a["primary"] == order["id"] for a in by_nik)
    none = collect(inspector, "/v1/anomalies", **REASON, kk="9999999999999999", limit=1000)
    assert none == []


def test_anomalies_as_of(inspector) -> None:
    early = collect(inspector, "/v1/anomalies", **REASON, as_of="2024-01-31", limit=1000)
    late = collect(inspector, "/v1/anomalies", **REASON, limit=1000)
    assert len(early) < len(late)


@pytest.mark.parametrize("path,columns", [
    ("/v1/balances", ["kk", "program", "ordered", "credited", "picked_up", "returned", "outstanding"]),
    ("/v1/anomalies", ["rule", "primary", "subject", "facts", "detail", "program", "period", "region"]),
    ("/v1/access-log", ["seq", "at", "token_name", "role", "subject_token", "reason", "path", "log_fact"]),
])
def test_csv_export_of_lists(inspector, path: str, columns: list[str]) -> None:
    params = {**REASON, "limit": 10} if path != "/v1/access-log" else {"limit": 10}
    as_json = inspector.get(path, params=params).json()
    for how in ("format", "accept"):
        if how == "format":
            r = inspector.get(path, params={**params, "format": "csv"})
        else:
            r = inspector.get(path, params=params, headers={"Accept": "text/csv"})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/csv")
        reader = csv.DictReader(io.StringIO(r.text))
        assert reader.fieldnames == columns
        rows = list(reader)
        assert len(rows) == len(as_json["items"])
        if as_json["next_cursor"]:
            assert r.headers["x-next-cursor"] == as_json["next_cursor"]
        first = as_json["items"][0]
        assert rows[0][columns[0]] == str(first[columns[0]])


def test_public_aggregates_csv(public) -> None:
    r = public.get("/public/v1/aggregates", params={"level": "kecamatan", "format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert rows and {"region", "program", "period", "families", "suppressed"} <= set(rows[0])


def test_access_log_paginates(inspector) -> None:
    for _ in range(3):
        inspector.get("/v1/balances", params={**REASON, "limit": 1})
    rows = collect(inspector, "/v1/access-log", limit=2)
    seqs = [r["seq"] for r in rows]
    assert seqs == sorted(seqs) and len(seqs) >= 3


def test_cursor_of_another_list_is_rejected(inspector) -> None:
    trail_cursor = None
    log = inspector.get("/v1/access-log", params={"limit": 1}).json()
    trail_cursor = log["next_cursor"]
    assert trail_cursor
    r = inspector.get("/v1/balances", params={**REASON, "cursor": trail_cursor})
    assert r.status_code == 400 and r.json()["error"] == "invalid_cursor"


def test_anomaly_details_in_indonesian_by_accept_language(inspector) -> None:
    params = {**REASON, "limit": 1000}
    english = inspector.get("/v1/anomalies", params=params)
    indonesian = inspector.get("/v1/anomalies", params=params, headers={"Accept-Language": "id-ID,id;q=0.9,en;q=0.5"})
    assert english.headers["content-language"] == "en" and indonesian.headers["content-language"] == "id"
    en_items, id_items = english.json()["items"], indonesian.json()["items"]
    assert [a["primary"] for a in en_items] == [a["primary"] for a in id_items]
    assert all(a["detail"] != b["detail"] for a, b in zip(en_items, id_items))
    assert any("keluarga" in a["detail"] or "penerima" in a["detail"] for a in id_items)
