"""Domain events: each recorded fact is one immutable, past-tense event.

A fact is its own aggregate of exactly one event (version 1), so the fact id is
the idempotency key: `fact_originator_id(fact_id)` is deterministic, and a second
recording of the same id collides with the first. The event carries the fact in
its *protected* form (personal fields replaced by keyed tokens, see
`PERSONAL_FIELDS`) plus `derived` attributes that rules need but that must not
reveal the person (e.g. whether an order's NIK is a possible NIK).
"""

from __future__ import annotations

import hashlib
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import DomainEvent

#: Namespace for fact aggregate ids: uuid5(FACTS_NAMESPACE, fact id).
FACTS_NAMESPACE = UUID("6a1e3c0e-5b0b-4c1e-9d1a-6a656a616b01")


def fact_originator_id(fact_id: str) -> UUID:
    return uuid5(FACTS_NAMESPACE, fact_id)


_NAMESPACE_BYTES = FACTS_NAMESPACE.bytes


def fact_originator_hex(fact_id: str) -> str:
    """`fact_originator_id(fact_id).hex` without building UUID objects (RFC 4122
    §4.3 name-based SHA-1, as `uuid.uuid5`); several times faster, for ingest."""
    h = hashlib.sha1(_NAMESPACE_BYTES + fact_id.encode("utf-8")).hexdigest()
    # version 5 in the 13th hex digit, the RFC 4122 variant (10xx) in the 17th
    return h[:12] + "5" + h[13:16] + "89ab"[int(h[16], 16) & 3] + h[17:32]


class FactRecorded(DomainEvent):
    """Base of the recorded-fact events."""

    fact: dict[str, Any]
    derived: dict[str, Any]


class RatesSet(FactRecorded):
    pass


class EligibilityDecided(FactRecorded):
    pass


class CompanionAssigned(FactRecorded):
    pass


class DisbursementOrdered(FactRecorded):
    pass


class DisbursementSettled(FactRecorded):
    pass


class PickupRecorded(FactRecorded):
    pass


class FundsReturned(FactRecorded):
    pass


class AsnRegistered(FactRecorded):
    pass


class DeathRecorded(FactRecorded):
    pass


class RegisterListed(FactRecorded):
    pass


class ComplaintFiled(FactRecorded):
    pass


class ComplaintResolved(FactRecorded):
    pass


class SubjectErased(FactRecorded):
    """A person's personal data was destroyed (crypto-shredding) by order."""


class PersonalDataAccessed(FactRecorded):
    """An inspector was shown a person's or family's personal data, and why."""


class ApiTokenChanged(FactRecorded):
    """An API token was issued or revoked (its name, role, channel and expiry; never the secret)."""


#: SPEC fact type -> event class; `jejak.*` types are jejak's own facts.
EVENT_TYPES: dict[str, type[FactRecorded]] = {
    "rates.set": RatesSet,
    "eligibility.decided": EligibilityDecided,
    "companion.assigned": CompanionAssigned,
    "disbursement.ordered": DisbursementOrdered,
    "disbursement.settled": DisbursementSettled,
    "pickup.recorded": PickupRecorded,
    "funds.returned": FundsReturned,
    "asn.registered": AsnRegistered,
    "death.recorded": DeathRecorded,
    "register.listed": RegisterListed,
    "complaint.filed": ComplaintFiled,
    "complaint.resolved": ComplaintResolved,
    "jejak.erasure": SubjectErased,
    "jejak.access": PersonalDataAccessed,
    "jejak.token": ApiTokenChanged,
}
