from __future__ import annotations

import base64
from typing import Annotated, Any
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Depends, Path, Query

from jejak.api.common import FACT_ID_PATTERN, PUBLIC_ERRORS, V1_ERRORS, entries_at, proof_for
from jejak.api.deps import ANY_ROLE, Fresh, fresh, require
from jejak.api.errors import ApiError
from jejak.api.schemas import PublicReceipt, ReceiptAmounts, ReceiptCheckpoint, ReceiptIssued
from jejak.api.tokens import Principal

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
    _who: Annotated[Principal, Depends(require(*ANY_ROLE))],
) -> ReceiptIssued:
    """The receipt code to print on the recipient's payment slip."""
    if _order_row(f, f.state.ledger.stored_id(order_id)) is None:
        raise ApiError(404, "no order with this id")
    code = f.state.receipts.code(order_id)
    return ReceiptIssued(order_id=order_id, code=code,
                         check_path=f"/public/v1/receipts/{quote(order_id, safe=':')}?code={code}")


@public.get("/{order_id:path}", response_model=PublicReceipt, responses=PUBLIC_ERRORS)
def check(
    order_id: OrderId,
    code: Annotated[str, Query(min_length=1, max_length=40, description="receipt code from the payment slip")],
    f: Annotated[Fresh, Depends(fresh)],
) -> PublicReceipt:
    """A recipient checks their payment: status, amounts, and proof that the order is in the signed log."""
    # The code is checked before the store is touched: a wrong code and an
    # unknown order give the same answer, in the same time.
    if not f.state.receipts.check(order_id, code):
        raise ApiError(404, NO_RECEIPT)
    # The public answer names the order as the log stores it: an id holding a
    # NIK or KK (16 digits) shows its token there, never the number.
    order_id = f.state.ledger.stored_id(order_id)
    row = _order_row(f, order_id)
    if row is None:
        raise ApiError(404, NO_RECEIPT)
    order = _load(row["body"])
    idx = row["idx"]
    amounts = {"credited": 0, "failed": 0, "collected": 0, "returned": 0}
    for r in f.state.store.query("SELECT type, body FROM p_facts WHERE ref = ? ORDER BY idx", (order_id,)):
        body = _load(r["body"])
        if r["type"] == "disbursement.settled":
            amounts["credited" if body.get("status") == "credited" else "failed"] += int(body.get("amount", 0))
        elif r["type"] == "pickup.recorded":
            amounts["collected"] += int(body.get("amount", 0))
        elif r["type"] == "funds.returned":
            amounts["returned"] += int(body.get("amount", 0))
    credited = amounts["credited"]
    if credited == 0:
        status = "failed" if amounts["failed"] else "ordered"
    elif amounts["collected"] + amounts["returned"] >= credited:
        status = "collected"
    elif amounts["collected"] > 0:
        status = "partly_collected"
    else:
        status = "credited"
    leaf = entries_at(f.state.store, [idx]).get(idx, (None, b"", None))[2]
    if leaf is None:
        raise ApiError(404, NO_RECEIPT)
    cp = f.state.latest_checkpoint()
    return PublicReceipt(
        order_id=order_id, program=str(order.get("program", "")), period=str(order.get("period", "")),
        channel=str(order.get("channel", "")), status=status,
        amounts=ReceiptAmounts(ordered=int(order.get("amount", 0)), **amounts),
        index=idx, leaf=base64.b64encode(leaf).decode("ascii"),
        proof=proof_for(f.state.transparency, idx, cp),
        checkpoint=None if cp is None else ReceiptCheckpoint(size=cp.size, root_hex=cp.root.hex(), note=cp.note),
    )
