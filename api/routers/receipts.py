from __future__ import annotations

import base64
import logging
import re
from typing import Annotated, Any, Literal, Optional
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response

from jejak.api.common import FACT_ID_PATTERN, PUBLIC_ERRORS, V1_ERRORS, decode, entries_at, proof_for
from jejak.api.deps import ANY_ROLE, Fresh, fresh, require
from jejak.api.errors import ApiError
from jejak.api.schemas import PublicReceipt, ReceiptAmounts, ReceiptCheckpoint, ReceiptIssued
from jejak.api.tokens import Principal
from jejak.audit.errors import VerificationError
from jejak.audit.merkle import leaf_hash, verify_inclusion
from jejak.store.recorders import ZERO_CHAIN, chain_next
from jejak.transparency import NotCovered, ProofRequestError, StoredCheckpoint

log = logging.getLogger("jejak.api")
ORDERED = "disbursement.ordered"

public = APIRouter(prefix="/public/v1/receipts", tags=["public: receipts"])
inspector = APIRouter(prefix="/v1/receipts", tags=["inspector: receipts"])

OrderId = Annotated[str, Path(pattern=FACT_ID_PATTERN, description="the order (disbursement.ordered) id")]
NO_RECEIPT = "no receipt matches this order id and code"


def _order_row(f: Fresh, stored_id: str) -> Any:
    return f.state.store.query_one(
        "SELECT idx, body FROM p_facts WHERE fact_id = ? AND type = ?", (stored_id, "disbursement.ordered")
    )


def _load(value: Any) -> dict[str, Any]:
    return orjson.loads(bytes(value))


@inspector.get("/{order_id:path}", response_model=ReceiptIssued, responses=V1_ERRORS)
def issue(
    order_id: OrderId,
    f: Annotated[Fresh, Depends(fresh)],
    who: Annotated[Principal, Depends(require(*ANY_ROLE))],
) -> ReceiptIssued:
    """The receipt code to print on the recipient's payment slip (a reconciler: for its channel's orders)."""
    row = _order_row(f, f.state.ledger.stored_id(order_id))
    if row is None or who.channel is not None and _load(row["body"]).get("channel") != who.channel:
        raise ApiError(404, "no order with this id")
    code = f.state.receipts.code(order_id)
    return ReceiptIssued(order_id=order_id, code=code,
                         check_path=f"/public/v1/receipts/{quote(order_id, safe=':')}?code={code}")


TLOG_PROOF_CONTENT = {200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "with format=tlog-proof: a C2SP tlog-proof download"}}


@public.get("/{order_id:path}", response_model=PublicReceipt, responses={**PUBLIC_ERRORS, **TLOG_PROOF_CONTENT})
def check(
    order_id: OrderId,
    code: Annotated[str, Query(min_length=1, max_length=40, description="receipt code from the payment slip")],
    f: Annotated[Fresh, Depends(fresh)],
    format: Annotated[Optional[Literal["json", "tlog-proof"]], Query(
        description="tlog-proof: the order's inclusion as a C2SP tlog-proof file (checkpoint and cosignatures "
                    "inside; the leaf is this receipt's `leaf`)")] = None,
) -> PublicReceipt:
    """A recipient checks their payment: status, amounts, and proof that the order is in the signed log.

    The status is worked out from the log entries themselves (each checked against its inclusion proof, or
    its chain link when newer than the checkpoint); the read model only says where to look."""
    # The code is checked before the store is touched: a wrong code and an
    # unknown order give the same answer, in the same time.
    if not f.state.receipts.check(order_id, code):
        raise ApiError(404, NO_RECEIPT)
    # The public answer names the order as the log stores it: an id holding a
    # NIK or KK (16 digits) shows its token there, never the number.
    order_id = f.state.ledger.stored_id(order_id)
    store = f.state.store
    idx = store.index_of(order_id)
    if idx is None:
        raise ApiError(404, NO_RECEIPT)
    related = [r["idx"] for r in store.query("SELECT idx FROM p_facts WHERE ref = ? ORDER BY idx", (order_id,))]
    entries = entries_at(store, [idx, *related])
    cp = f.state.latest_checkpoint()
    _check_backed(f, entries, cp)
    order = decode(entries[idx][2])
    if order.get("type") != ORDERED:
        raise ApiError(404, NO_RECEIPT)
    amounts = {"credited": 0, "failed": 0, "collected": 0, "returned": 0}
    for i in sorted(set(related) - {idx}):
        fact = decode(entries[i][2]) if i in entries else {}
        if fact.get("disbursement") != order_id:
            continue  # an index row that does not point at a fact on this order
        if fact.get("type") == "disbursement.settled":
            amounts["credited" if fact.get("status") == "credited" else "failed"] += int(fact.get("amount", 0))
        elif fact.get("type") == "pickup.recorded":
            amounts["collected"] += int(fact.get("amount", 0))
        elif fact.get("type") == "funds.returned":
            amounts["returned"] += int(fact.get("amount", 0))
    credited = amounts["credited"]
    if credited == 0:
        status = "failed" if amounts["failed"] else "ordered"
    elif amounts["collected"] + amounts["returned"] >= credited:
        status = "collected"
    elif amounts["collected"] > 0:
        status = "partly_collected"
    else:
        status = "credited"
    if format == "tlog-proof":
        return _tlog_proof_download(f, order_id, idx, cp)  # type: ignore[return-value]
    return PublicReceipt(
        order_id=order_id, program=str(order.get("program", "")), period=str(order.get("period", "")),
        channel=str(order.get("channel", "")), status=status,
        amounts=ReceiptAmounts(ordered=int(order.get("amount", 0)), **amounts),
        index=idx, leaf=base64.b64encode(entries[idx][2]).decode("ascii"),
        proof=proof_for(f.state.transparency, idx, cp),
        checkpoint=None if cp is None else ReceiptCheckpoint(size=cp.size, root_hex=cp.root.hex(), note=cp.note),
    )


def _tlog_proof_download(f: Fresh, order_id: str, index: int, cp: Any) -> Response:
    try:
        text = f.state.transparency.tlog_proof(index, cp)
    except NotCovered:
        raise ApiError(404, "this order is not in a signed checkpoint yet; try again later", "not_covered") from None
    name = re.sub(r"[^A-Za-z0-9._-]", "_", order_id)
    return Response(text.encode("utf-8"), media_type="text/plain; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}.tlog-proof"'})


def _check_backed(f: Fresh, entries: dict[int, tuple[str, bytes, bytes | None]], cp: StoredCheckpoint | None) -> None:
    """Every entry's stored event is the one the log committed to: its leaf hash proves inclusion in the
    latest checkpoint, or (newer entries) it links the chain. Otherwise 503: no status from doubtful data."""
    store = f.state.store
    for index, (_fact_id, chain, leaf) in sorted(entries.items()):
        try:
            if leaf is None:
                raise VerificationError("stored event missing", index=index)
            if cp is not None and index < cp.size:
                proof = f.state.transparency.prove(index, cp.size)
                verify_inclusion(index, cp.size, leaf_hash(leaf), [bytes.fromhex(h) for h in proof["proof"]], cp.root)
            else:
                previous = ZERO_CHAIN if index == 0 else store.chain_at(index - 1)
                if previous is None or chain_next(previous, leaf) != chain:
                    raise VerificationError("chain link broken", index=index)
        except (VerificationError, ProofRequestError):
            log.error("a receipt's log entry %d does not check out against the log; run `jejak verify`", index)
            raise ApiError(503, "this receipt cannot be confirmed from the log right now; the operator has been "
                                "alerted", "integrity_check_failed") from None
