"""CloudEvents 1.0, structured JSON mode, for jejak's Kafka feeds.

Message contract (both directions)::

    {"specversion": "1.0",
     "id": <fact id>, "type": <fact type>, "source": <sender: "bank/BRI", "pos/POS", "jejak">,
     "time": <the fact's "at">, "datacontenttype": "application/json",
     "data": <the SPEC fact object>,
     # inbound: jejak.settlements carries settlements, pickups and returns;
     # jejak.complaints carries complaint.filed and complaint.resolved
     "jejakindex": <log index>, "jejakchain": <hex chain hash>}   # outbound only

Decoding is strict and raises :class:`FeedMessageError` with a stable ``code``.
Error messages name attributes and types only, never values (payloads carry
NIK/KK numbers and error messages may end up in logs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Collection, Mapping

import orjson

SPECVERSION = "1.0"
DATACONTENTTYPE = "application/json"
#: Kafka header for structured mode (CloudEvents Kafka protocol binding §3.2).
KAFKA_CONTENT_TYPE = "application/cloudevents+json; charset=UTF-8"

#: Fact types the inbound topic (``jejak.settlements``) accepts.
INBOUND_TYPES = frozenset({"disbursement.settled", "pickup.recorded", "funds.returned"})
#: Fact types the complaints topic (``jejak.complaints``, SPEC v2 §6) accepts.
COMPLAINT_TYPES = frozenset({"complaint.filed", "complaint.resolved"})
#: Fact types jejak publishes (``jejak.disbursements.<channel>``).
OUTBOUND_TYPES = frozenset({"disbursement.ordered"})

EXT_INDEX = "jejakindex"
EXT_CHAIN = "jejakchain"

NOT_JSON = "feed.not_json"
NOT_CLOUDEVENT = "feed.not_cloudevent"
DATA_NOT_OBJECT = "feed.data_not_object"
ENVELOPE_MISMATCH = "feed.envelope_mismatch"
TYPE_NOT_ALLOWED = "feed.type_not_allowed"

_REQUIRED = ("specversion", "id", "source", "type")
_ATTR_NAME = re.compile(r"^[a-z0-9]{1,20}$")
#: Attribute names known to match _ATTR_NAME (skips the regex on the hot path).
_VALID_NAMES = frozenset({"specversion", "id", "source", "type", "time", "datacontenttype", "dataschema",
                          "subject", "jejakindex", "jejakchain"})
_HEX = re.compile(r"^[0-9a-f]+$")
_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)


class FeedMessageError(ValueError):
    """A feed message that cannot be accepted. ``code`` is stable, ``message`` is for humans."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class CloudEvent:
    id: str
    type: str
    source: str
    data: dict[str, Any]
    time: str | None = None
    datacontenttype: str | None = None
    extensions: dict[str, Any] = field(default_factory=dict)

    @property
    def index(self) -> int | None:
        v = self.extensions.get(EXT_INDEX)
        return v if isinstance(v, int) and not isinstance(v, bool) else None

    @property
    def chain(self) -> str | None:
        v = self.extensions.get(EXT_CHAIN)
        return v if isinstance(v, str) else None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "specversion": SPECVERSION,
            "id": self.id,
            "type": self.type,
            "source": self.source,
        }
        if self.time is not None:
            out["time"] = self.time
        out["datacontenttype"] = self.datacontenttype or DATACONTENTTYPE
        out.update(self.extensions)
        out["data"] = self.data
        return out


# --------------------------------------------------------------------- encode
def to_event(
    fact: Mapping[str, Any],
    source: str,
    *,
    index: int | None = None,
    chain: str | None = None,
) -> dict[str, Any]:
    """The CloudEvent (as a dict) carrying ``fact``; ``index``/``chain`` add the jejak extensions."""
    fid, ftype = fact.get("id"), fact.get("type")
    if not isinstance(fid, str) or not fid or not isinstance(ftype, str) or not ftype:
        raise ValueError("fact needs a non-empty string id and type")
    if not isinstance(source, str) or not source:
        raise ValueError("source must be a non-empty string")
    event: dict[str, Any] = {
        "specversion": SPECVERSION,
        "id": fid,
        "type": ftype,
        "source": source,
    }
    if isinstance(fact.get("at"), str):
        event["time"] = fact["at"]
    event["datacontenttype"] = DATACONTENTTYPE
    if index is not None:
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ValueError("index must be a non-negative int")
        event[EXT_INDEX] = index
    if chain is not None:
        if not isinstance(chain, str) or not _HEX.match(chain):
            raise ValueError("chain must be lowercase hex")
        event[EXT_CHAIN] = chain
    event["data"] = dict(fact)
    return event


def encode(
    fact: Mapping[str, Any],
    source: str,
    *,
    index: int | None = None,
    chain: str | None = None,
) -> bytes:
    """Structured-mode JSON bytes (UTF-8) of the CloudEvent carrying ``fact``."""
    return orjson.dumps(to_event(fact, source, index=index, chain=chain))


def encode_entry(entry: Any, source: str = "jejak") -> bytes:
    """Outbound message for a ledger log entry (adds ``jejakindex`` and ``jejakchain``)."""
    return encode(entry.fact, source, index=entry.index, chain=entry.chain)


# --------------------------------------------------------------------- decode
def _parse_time(value: str) -> datetime | None:
    if not _RFC3339.match(value):
        return None
    try:
        return datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00").replace(" ", "T"))
    except ValueError:
        return None


def decode(
    value: bytes | bytearray | memoryview | str | None,
    allowed_types: Collection[str] | None = INBOUND_TYPES,
) -> CloudEvent:
    """Strictly decode one structured-mode CloudEvent.

    ``allowed_types`` restricts the fact type (default: what the inbound topic
    accepts); ``None`` allows every type.
    """
    # -- JSON
    if value is None:
        raise FeedMessageError(NOT_JSON, "empty message (no value)")
    try:
        obj = orjson.loads(value)
    except (orjson.JSONDecodeError, TypeError):
        raise FeedMessageError(NOT_JSON, "message value is not valid UTF-8 JSON") from None

    # -- CloudEvent attributes
    if not isinstance(obj, dict):
        raise FeedMessageError(NOT_CLOUDEVENT, f"expected a JSON object, got {type(obj).__name__}")
    missing = [a for a in _REQUIRED if a not in obj]
    if missing:
        raise FeedMessageError(NOT_CLOUDEVENT, f"missing required attribute(s): {', '.join(missing)}")
    if obj["specversion"] != SPECVERSION:
        raise FeedMessageError(NOT_CLOUDEVENT, 'specversion must be "1.0"')
    for attr in ("id", "source", "type"):
        if not isinstance(obj[attr], str) or not obj[attr]:
            raise FeedMessageError(NOT_CLOUDEVENT, f"attribute {attr} must be a non-empty string")
    for name in obj:
        if name not in _VALID_NAMES and name not in ("data", "data_base64") and not _ATTR_NAME.match(name):
            raise FeedMessageError(
                NOT_CLOUDEVENT, "attribute names must be 1-20 lowercase ASCII letters or digits"
            )
    time = obj.get("time")
    parsed_time = _parse_time(time) if isinstance(time, str) else None
    if time is not None and parsed_time is None:
        raise FeedMessageError(NOT_CLOUDEVENT, "attribute time must be an RFC 3339 timestamp")
    dct = obj.get("datacontenttype")
    if dct is not None and dct != DATACONTENTTYPE:
        if not isinstance(dct, str):
            raise FeedMessageError(NOT_CLOUDEVENT, "attribute datacontenttype must be a string")
        media = dct.split(";", 1)[0].strip().lower()
        if media != DATACONTENTTYPE and not (media.startswith("application/") and media.endswith("+json")):
            raise FeedMessageError(NOT_CLOUDEVENT, "datacontenttype must be application/json")
    # -- data
    if "data_base64" in obj:
        raise FeedMessageError(DATA_NOT_OBJECT, "data_base64 is not accepted; send data as a JSON object")
    data = obj.get("data")
    if not isinstance(data, dict):
        got = "missing" if "data" not in obj else type(data).__name__
        raise FeedMessageError(DATA_NOT_OBJECT, f"data must be a JSON object (got {got})")

    # -- envelope vs data
    if data.get("id") != obj["id"]:
        raise FeedMessageError(ENVELOPE_MISMATCH, "envelope id differs from data.id")
    if data.get("type") != obj["type"]:
        raise FeedMessageError(ENVELOPE_MISMATCH, "envelope type differs from data.type")
    at_text = data.get("at")
    if time is not None and isinstance(at_text, str) and at_text != time:
        at = _parse_time(at_text)
        if at is not None and at.tzinfo is not None and at != parsed_time:
            raise FeedMessageError(ENVELOPE_MISMATCH, "envelope time differs from data.at")

    # -- topic policy
    if allowed_types is not None and obj["type"] not in allowed_types:
        raise FeedMessageError(TYPE_NOT_ALLOWED, f"fact type {obj['type'][:64]!r} is not accepted on this topic")

    extensions = {
        k: v
        for k, v in obj.items()
        if k not in ("specversion", "id", "source", "type", "time", "datacontenttype", "data")
    }
    return CloudEvent(
        id=obj["id"],
        type=obj["type"],
        source=obj["source"],
        data=data,
        time=time,
        datacontenttype=dct,
        extensions=extensions,
    )
