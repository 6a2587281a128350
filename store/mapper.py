"""Maps fact events to stored events whose state is exactly the leaf bytes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from eventsourcing.persistence import Mapper, StoredEvent
from eventsourcing.utils import get_topic, resolve_topic

from jejak.domain.events import EVENT_TYPES, FactRecorded, fact_originator_hex, fact_originator_id
from jejak.store.leaf import decode_leaf, encode_leaf

TOPICS = {ftype: get_topic(cls) for ftype, cls in EVENT_TYPES.items()}


class LeafMapper(Mapper):
    """No transcoder, no cipher: the stored state *is* the canonical leaf."""

    def __init__(self) -> None:  # the base needs a transcoder; ours is the leaf codec
        pass

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        assert isinstance(domain_event, FactRecorded)
        return StoredEvent(
            originator_id=domain_event.originator_id,
            originator_version=domain_event.originator_version,
            topic=TOPICS[domain_event.fact["type"]],
            state=encode_leaf(domain_event.fact, domain_event.derived),
        )

    def stored_fact(self, protected_fact: dict[str, Any], derived: dict[str, Any]) -> StoredEvent:
        """The stored event `to_stored_event(new_fact_event(protected_fact, derived, at))`
        gives, built without the event object (its timestamp is not stored; the
        leaf carries `at`) and with the originator id as its hex string, which
        both recorders store as they store a UUID's: the ingest hot path."""
        return StoredEvent(
            originator_id=fact_originator_hex(protected_fact["id"]),
            originator_version=1,
            topic=TOPICS[protected_fact["type"]],
            state=encode_leaf(protected_fact, derived),
        )

    def to_domain_event(self, stored_event: StoredEvent) -> FactRecorded:
        fact, derived = decode_leaf(stored_event.state)
        cls = resolve_topic(stored_event.topic)
        return cls(
            originator_id=stored_event.originator_id,
            originator_version=stored_event.originator_version,
            timestamp=datetime.fromisoformat(fact["at"].upper()),
            fact=fact,
            derived=derived,
        )


def new_fact_event(protected_fact: dict[str, Any], derived: dict[str, Any], at: datetime) -> FactRecorded:
    cls = EVENT_TYPES[protected_fact["type"]]
    return cls(
        originator_id=fact_originator_id(protected_fact["id"]),
        originator_version=1,
        timestamp=at,
        fact=protected_fact,
        derived=derived,
    )
