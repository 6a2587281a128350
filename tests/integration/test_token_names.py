"""A token's name enters the chained (public-in-aggregate, permanent) log: it
must never carry a NIK or KK, however it is typed."""

from __future__ import annotations

import pytest

from jejak.api.tokens import TokenError, create_token
from jejak.ledger import Ledger


@pytest.mark.parametrize("name", ["bpk-1275010101850001", "siti.1275-0101-0185-0001", "x1275010101850001y"])
def test_a_name_holding_sixteen_digits_is_refused_and_nothing_is_recorded(sqlite_url, make_settings, name) -> None:
    with Ledger.open(make_settings(sqlite_url)) as ledger:
        before = ledger.store.log_size()
        with pytest.raises(TokenError, match="16 digits"):
            create_token(ledger, name, "inspector")
        assert ledger.store.log_size() == before


def test_an_ordinary_name_is_issued(sqlite_url, make_settings) -> None:
    with Ledger.open(make_settings(sqlite_url)) as ledger:
        assert create_token(ledger, "bpk-medan-2024", "inspector")
