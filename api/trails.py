"""Audit trails: every fact about a family or a person, in log order, revealed.

A trail page is read in one query (the subject's log indices, the page's log
rows and their stored events together) and answered as JSON bytes built from
plain dicts: the response model (`TrailOut`) still documents the answer in the
OpenAPI schema, but validating and serialising ~30 nested fact dicts through
pydantic cost more CPU than the rest of the read.
"""

from __future__ import annotations

from typing import Any, Sequence

from jejak.api.common import decode, proof_dict
from jejak.api.deps import ApiState
from jejak.api.errors import ApiError
from jejak.store.leaf import leaf_tokens
from jejak.transparency import StoredCheckpoint

ORDERED = "disbursement.ordered"


def _subject_indices_sql(state: ApiState, column: str, orders_sql: str) -> str:
    """SELECT of the log indices of facts naming the subject, plus facts on the subject's orders."""
    if state.store.is_postgres:
        # ANY(ARRAY(subquery)) runs the subquery once and keeps index scans on
        # both branches; an IN-subquery under OR can plan as a full scan.
        return f"SELECT idx FROM p_facts WHERE {column} = ? OR ref = ANY(ARRAY({orders_sql}))"
    return f"SELECT idx FROM p_facts WHERE {column} = ? UNION SELECT idx FROM p_facts WHERE ref IN ({orders_sql})"


FAMILY = ("kk", "SELECT order_id FROM p_orders WHERE kk = ?")
PERSON = ("nik", "SELECT fact_id FROM p_facts WHERE nik = ? AND type = ?")


def _params(kind: tuple[str, str], token: str) -> tuple[Any, ...]:
    return (token, token) if kind is FAMILY else (token, token, ORDERED)


def trail_page(state: ApiState, kind: tuple[str, str], token: str, after: int,
               limit: int) -> tuple[list[tuple[int, str, bytes, bytes | None]], bool]:
    """Log rows (index, fact_id, chain, leaf) of the subject after index `after`, at most `limit`,
    and whether more follow; one query."""
    column, orders_sql = kind
    rows = state.store.query(
        f"SELECT l.idx AS idx, l.fact_id AS fact_id, l.chain AS chain, e.state AS state "
        f"{state.store.log_with_events_sql()} "
        f"WHERE l.idx IN ({_subject_indices_sql(state, column, orders_sql)}) AND l.idx > ? "
        f"ORDER BY l.idx LIMIT ?",
        (*_params(kind, token), after, limit + 1),
    )
    page = [(r["idx"], r["fact_id"], bytes(r["chain"]), None if r["state"] is None else bytes(r["state"]))
            for r in rows[:limit]]
    return page, len(rows) > limit


def reveal(state: ApiState, protected: dict[str, Any]) -> dict[str, Any]:
    return state.ledger.reveal_fact(protected)


def entry_dicts(state: ApiState, rows: Sequence[tuple[int, str, bytes, bytes | None]], *, with_proof: bool,
                checkpoint: StoredCheckpoint | None) -> list[dict[str, Any]]:
    """`FactEntry`-shaped dicts (same keys, same order) for log rows, personal fields revealed."""
    protected = []
    for idx, _fact_id, _chain, leaf in rows:
        if leaf is None:
            raise ApiError(500, f"log entry {idx} has no stored event; the operator should run `jejak verify`")
        protected.append(decode(leaf))
    state.ledger.reveal_many(t for _idx, _id, _chain, leaf in rows for t in leaf_tokens(leaf))
    out = []
    for (idx, _fact_id, chain, _leaf), fact in zip(rows, protected):
        fact = reveal(state, fact)
        out.append({
            "index": idx, "fact_id": str(fact.get("id", "")), "type": str(fact.get("type", "")),
            "at": str(fact.get("at", "")),
            "chain": chain.hex(), "fact": fact,
            "proof": proof_dict(state.transparency, idx, checkpoint) if with_proof else None,
        })
    return out
