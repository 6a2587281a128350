import base64

import orjson
import pytest

from jejak.feeds.cloudevents import (
    DATA_NOT_OBJECT,
    ENVELOPE_MISMATCH,
    INBOUND_TYPES,
    NOT_CLOUDEVENT,
    NOT_JSON,
    OUTBOUND_TYPES,
    TYPE_NOT_ALLOWED,
    FeedMessageError,
    decode,
    encode,
    encode_entry,
    to_event,
)

SETTLED = {
    "id": "bri:stl:0001",
    "type": "disbursement.settled",
    "at": "2024-03-05T10:00:00+07:00",
    "source": {"kind": "bank", "id": "BRI"},
    "disbursement": "ord-1",
    "status": "credited",
    "amount": 750000,
    "channel": "BRI",
}
ORDER = {
    "id": "ord-1",
    "type": "disbursement.ordered",
    "at": "2024-03-01T09:00:00+07:00",
    "source": {"kind": "kemensos", "id": "pusat"},
    "kk": "3201010101010001",
    "nik": "3201014101900001",
    "program": "PKH",
    "period": "2024-T1",
    "amount": 750000,
    "channel": "BRI",
}


def event(**over):
    ev = to_event(SETTLED, "bank/BRI")
    for k, v in over.items():
        if v is ...:
            ev.pop(k, None)
        else:
            ev[k] = v
    return orjson.dumps(ev)


def code_of(value, allowed=INBOUND_TYPES):
    with pytest.raises(FeedMessageError) as exc:
        decode(value, allowed)
    return exc.value.code


def test_encode_contract():
    ev = orjson.loads(encode(SETTLED, "bank/BRI"))
    assert ev == {
        "specversion": "1.0",
        "id": "bri:stl:0001",
        "type": "disbursement.settled",
        "source": "bank/BRI",
        "time": "2024-03-05T10:00:00+07:00",
        "datacontenttype": "application/json",
        "data": SETTLED,
    }


def test_outbound_extensions():
    class E:
        index = 7
        fact = ORDER
        chain = "ab" * 32

    ev = orjson.loads(encode_entry(E()))
    assert ev["source"] == "jejak"
    assert ev["jejakindex"] == 7 and ev["jejakchain"] == "ab" * 32
    assert ev["id"] == "ord-1" and ev["type"] == "disbursement.ordered" and ev["time"] == ORDER["at"]
    decoded = decode(encode_entry(E()), OUTBOUND_TYPES)
    assert decoded.index == 7 and decoded.chain == "ab" * 32 and decoded.data == ORDER


@pytest.mark.parametrize("bad", [{"index": -1}, {"index": True}, {"chain": "XYZ"}])
def test_encode_rejects_bad_extensions(bad):
    with pytest.raises(ValueError):
        to_event(ORDER, "jejak", **bad)


def test_round_trip_inbound():
    ev = decode(encode(SETTLED, "bank/BRI"))
    assert ev.id == SETTLED["id"] and ev.type == SETTLED["type"] and ev.source == "bank/BRI"
    assert ev.data == SETTLED and ev.time == SETTLED["at"]
    assert ev.index is None and ev.chain is None
    assert decode(encode(SETTLED, "bank/BRI").decode()).data == SETTLED  # str accepted too


@pytest.mark.parametrize("fact_type", sorted(INBOUND_TYPES))
def test_inbound_types_allowed(fact_type):
    fact = dict(SETTLED, type=fact_type)
    assert decode(encode(fact, "pos/POS")).type == fact_type


@pytest.mark.parametrize("value", [b"not json", b"", b"{", b"\xff\xfe{}", None, b'{"a": NaN}'])
def test_not_json(value):
    assert code_of(value) == NOT_JSON


@pytest.mark.parametrize(
    "value",
    [
        b"[]",
        b'"x"',
        b"42",
        orjson.dumps(SETTLED),  # a bare fact, no envelope
        event(specversion=...),
        event(specversion="0.3"),
        event(specversion=1.0),
        event(id=...),
        event(id=""),
        event(id=5),
        event(source=...),
        event(source=""),
        event(type=...),
        event(type=None),
        event(time="yesterday"),
        event(time=1709607600),
        event(datacontenttype="text/xml"),
        event(datacontenttype=3),
        event(**{"Bad-Name": 1}),
    ],
)
def test_not_cloudevent(value):
    assert code_of(value) == NOT_CLOUDEVENT


def test_optional_attributes():
    assert decode(event(time=...)).time is None
    assert decode(event(datacontenttype=...)).data == SETTLED
    assert decode(event(datacontenttype="application/json; charset=utf-8")).data == SETTLED
    assert decode(event(traceparent="00-abc")).extensions == {"traceparent": "00-abc"}
    # same instant, other offset notation
    assert decode(event(time="2024-03-05T03:00:00Z")).time == "2024-03-05T03:00:00Z"


@pytest.mark.parametrize(
    "value",
    [
        event(data=...),
        event(data=None),
        event(data=[SETTLED]),
        event(data=orjson.dumps(SETTLED).decode()),
        event(data=..., data_base64=base64.b64encode(orjson.dumps(SETTLED)).decode()),
    ],
)
def test_data_not_object(value):
    assert code_of(value) == DATA_NOT_OBJECT


@pytest.mark.parametrize(
    "value",
    [
        event(id="other"),
        event(type="funds.returned"),
        event(data={k: v for k, v in SETTLED.items() if k != "id"}),
        event(time="2024-03-05T10:00:01+07:00"),
    ],
)
def test_envelope_mismatch(value):
    assert code_of(value) == ENVELOPE_MISMATCH


def test_type_not_allowed():
    order = encode(ORDER, "bank/BRI")
    assert code_of(order) == TYPE_NOT_ALLOWED
    assert code_of(encode(dict(SETTLED, type="made.up"), "bank/BRI")) == TYPE_NOT_ALLOWED
    assert decode(order, None).type == "disbursement.ordered"


def test_error_messages_do_not_echo_personal_data():
    fact = dict(ORDER, id="x")
    for value in (
        encode(fact, "bank/BRI"),
        event(data=dict(SETTLED, id="other", nik="3201014101900001")),
        event(time="3201014101900001"),
    ):
        with pytest.raises(FeedMessageError) as exc:
            decode(value)
        assert "3201014101900001" not in str(exc.value)
        assert "3201010101010001" not in str(exc.value)
