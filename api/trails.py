"""Audit trails: every fact about a family or a person, in log order, revealed."""

from __future__ import annotations

from typing import Any

from jejak.api.common import decode, entries_at, proof_for
from jejak.api.deps import ApiState
from jejak.api.errors import ApiError
from jejak.api.schemas import FactEntry
from jejak.transparency import StoredCheckpoint


def _indices(state: ApiState, column: str, token: str, orders_sql: str, orders_params: tuple) -> list[int]:
    """Log indices of facts naming the subject, plus facts on the subject's orders."""
    if state.store.is_postgres:
        # ANY(ARRAY(subquery)) runs the subquery once and keeps index scans on
        # both branches; an IN-subquery under OR can plan as a full scan.
        sql = f"SELECT idx FROM p_facts WHERE {column} = ? OR ref = ANY(ARRAY({orders_sql})) ORDER BY idx"
    else:
        sql = f"SELECT idx FROM p_facts WHERE {column} = ? UNION SELECT idx FROM p_facts WHERE ref IN ({orders_sql}) ORDER BY idx"
    return [r["idx"] for r in state.store.query(sql, (token, *orders_params))]


def family_indices(state: ApiState, kk_token: str) -> list[int]:
    return _indices(state, "kk", kk_token, "SELECT order_id FROM p_orders WHERE kk = ?", (kk_token,))


def person_indices(state: ApiState, nik_token: str) -> list[int]:
    return _indices(
        state, "nik", nik_token, "SELECT fact_id FROM p_facts WHERE nik = ? AND type = ?",
        (nik_token, "disbursement.ordered"),
    )


def reveal(state: ApiState, protected: dict[str, Any]) -> dict[str, Any]:
    return state.ledger.reveal_fact(protected)


def fact_entries(state: ApiState, indices: list[int], *, with_proof: bool,
                 checkpoint: StoredCheckpoint | None) -> list[FactEntry]:
    found = entries_at(state.store, indices)
    protected_by_index = {idx: decode(leaf) for idx, (_fid, _chain, leaf) in found.items() if leaf is not None}
    state.ledger.reveal_many(v for fact in protected_by_index.values() for v in fact.values() if isinstance(v, str))
    out = []
    for idx in indices:
        if idx not in found:
            continue
        fact_id, chain, leaf = found[idx]
        if leaf is None:
            raise ApiError(500, f"log entry {idx} has no stored event; the operator should run `jejak verify`")
        fact = reveal(state, protected_by_index[idx])
        out.append(
            FactEntry(
                index=idx, fact_id=fact_id, type=str(fact.get("type", "")), at=str(fact.get("at", "")),
                chain=chain.hex(), fact=fact,
                proof=proof_for(state.transparency, idx, checkpoint) if with_proof else None,
            )
        )
    return out
