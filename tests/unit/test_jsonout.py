import json

import orjson
import pytest

from jejak.jsonout import json_bytes


@pytest.mark.parametrize("value", [
    {"kk": "1275011104052510", "n": 2**63 - 1, "neg": -(2**63), "text": "Désa \u00e9 \u2603", "xs": [1, None, True]},
    [],
    "plain",
])
def test_same_bytes_as_orjson_where_orjson_can(value) -> None:
    assert json_bytes(value) == orjson.dumps(value)


def test_integers_past_64_bits_are_written_exactly_in_the_same_form() -> None:
    value = {"credited": 5 * (2**63 - 1), "outstanding": -(2**70), "kk": "Désa"}
    out = json_bytes(value)
    assert json.loads(out) == value
    assert out == b'{"credited":46116860184273879035,"outstanding":-1180591620717411303424,"kk":"D\xc3\xa9sa"}'


def test_other_unserialisable_values_still_fail() -> None:
    with pytest.raises(TypeError):
        json_bytes({"x": object()})
