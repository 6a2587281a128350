"""What each API role may see: the one table of roles per anomaly rule, and payment facts.

An `inspector` sees everything. A `reconciler` (a bank's or PT Pos's team) is
bound to one payment channel and sees only payment facts, balances and
*payment* anomalies of orders paid through that channel: never what is known
about a person from eligibility decisions, civil-service registers, deaths,
companions or complaints.

A rule missing from :data:`RULE_ROLES` is shown to inspectors only (default
deny), so a rule added to the engine is never shown to a bank by accident.
"""

from __future__ import annotations

from typing import Any, Mapping

INSPECTOR = "inspector"
RECONCILER = "reconciler"
ROLES = (INSPECTOR, RECONCILER)

_BOTH = frozenset(ROLES)
_INSPECTOR_ONLY = frozenset({INSPECTOR})

#: rule -> roles that may see its anomalies.
RULE_ROLES: Mapping[str, frozenset[str]] = {
    # payment anomalies: from orders, settlements, pickups and returns alone
    "duplicate_payout": _BOTH,
    "invalid_nik": _BOTH,  # the order's own NIK, which the bank holds anyway
    "ghost_settlement": _BOTH,
    "settlement_mismatch": _BOTH,
    "pickup_without_disbursement": _BOTH,
    "over_withdrawal": _BOTH,
    "unclaimed_funds": _BOTH,
    # about people and families: eligibility, entitlement, registers, deaths
    "no_eligibility": _INSPECTOR_ONLY,
    "over_entitlement": _INSPECTOR_ONLY,  # reveals the family's components
    "asn_recipient": _INSPECTOR_ONLY,
    "deceased_recipient": _INSPECTOR_ONLY,
    "nik_in_multiple_families": _INSPECTOR_ONLY,
    # companions: their assignments and conduct across channels
    "unassigned_companion_pickup": _INSPECTOR_ONLY,
    "companion_concentration": _INSPECTOR_ONLY,
    # v2 (SPEC §5, §6): registers and complaints
    "barred_recipient": _INSPECTOR_ONLY,
    "flagged_recipient": _INSPECTOR_ONLY,
    "complaint_overdue": _INSPECTOR_ONLY,
    "disputed_pickup": _INSPECTOR_ONLY,
    "companion_complaints": _INSPECTOR_ONLY,
    "unknown_complaint": _INSPECTOR_ONLY,
}

#: Fact types a reconciler may read (of its own channel).
PAYMENT_TYPES = frozenset({"disbursement.ordered", "disbursement.settled", "pickup.recorded", "funds.returned"})


def may_see_rule(role: str, rule: str) -> bool:
    return role in RULE_ROLES.get(rule, _INSPECTOR_ONLY)


def fact_channel(fact: Mapping[str, Any], orders: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The payment channel a payment fact belongs to: its own `channel` (orders,
    settlements) or its order's (pickups, returns); None when not known."""
    if fact.get("type") in ("disbursement.ordered", "disbursement.settled"):
        channel = fact.get("channel")
        return channel if isinstance(channel, str) else None
    ref = fact.get("disbursement")
    order = orders.get(ref) if isinstance(ref, str) else None
    return None if order is None else fact_channel(order, orders)
