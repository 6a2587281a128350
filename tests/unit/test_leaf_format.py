"""Leaf format v1: golden bytes under fixed keys (tests/vectors/leaf-v1.json).

The leaf is what is chained, Merkle-hashed and exported, so its bytes are a
contract with every outside verifier: any change here must be a new version.
The leaves are produced by the real `Ledger.protect` on a real SQLite store.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from pathlib import Path

import pytest

from jejak.domain.facts import check_fact
from jejak.ledger import Ledger
from jejak.settings import Settings
from jejak.store.datastore import Store
from jejak.store.leaf import decode_leaf
from jejak.store.vault import Sealer, Tokenizer

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "leaf-v1.json").read_text("utf-8"))
CASES = VECTORS["cases"]
PSEUDONYM_KEY = bytes.fromhex(VECTORS["pseudonym_key_hex"])
KEK = bytes.fromhex(VECTORS["kek_hex"])


@pytest.fixture
def ledger(tmp_path: Path):
    db = str(tmp_path / "leaf.db")
    store = Store.open(db)
    led = Ledger(Settings(store=db, keys_dir=tmp_path / "keys"), store, Tokenizer(PSEUDONYM_KEY), Sealer(KEK))
    yield led
    led.close()


def independent_token(kind: str, value: str) -> str:
    mac = hmac.new(PSEUDONYM_KEY, kind.encode() + b"\x00" + value.encode("utf-8"), hashlib.sha256).digest()
    return "tk1_" + base64.b32encode(mac[:20]).decode().rstrip("=").lower()


def canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_leaf_bytes_are_golden(ledger: Ledger, case: dict) -> None:
    prepared = ledger.protect(check_fact(json.loads(json.dumps(case["fact"]))))
    leaf = prepared.stored_event.state
    assert leaf == case["leaf"].encode("utf-8")
    assert hashlib.sha256(b"\x00" + leaf).hexdigest() == case["leaf_hash"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_leaf_is_canonical_json(case: dict) -> None:
    leaf = case["leaf"].encode("utf-8")
    obj = json.loads(leaf)
    assert canonical(obj) == leaf, "sorted keys, no insignificant white space, UTF-8 (not \\u-escaped)"
    assert b" :" not in leaf and b", " not in leaf and b"\n" not in leaf
    assert obj["v"] == 1 and set(obj) == {"v", "fact", "derived"}
    assert decode_leaf(leaf) == (obj["fact"], obj["derived"])


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_no_clear_personal_data_in_leaf(case: dict) -> None:
    leaf = case["leaf"]
    fact = case["fact"]
    for name in ("nik", "kk", "basis"):
        if name in fact:
            assert fact[name] not in leaf, f"clear {name} in the leaf"
    assert not re.search(r"(?<![0-9])[0-9]{16}(?![0-9])", leaf), "a 16-digit number in the leaf"
    protected = json.loads(leaf)["fact"]
    for name in ("nik", "kk"):
        if name in fact:
            assert protected[name] == independent_token(name, fact[name])
    if "basis" in fact:
        assert protected["basis"] == independent_token("text", fact["basis"])


def test_unknown_extra_fields_are_tokenized() -> None:
    case = next(c for c in CASES if c["name"] == "asn_non_ascii_and_extra_field")
    protected = json.loads(case["leaf"])["fact"]
    extra = json.dumps(case["fact"]["note"], separators=(",", ":"), ensure_ascii=False)
    assert protected["note"] == independent_token("extra", extra)
    assert protected["agency"] == "Dinas Sosial — Médan"  # non-personal text kept, UTF-8


def test_derived_nik_possible() -> None:
    by_name = {c["name"]: json.loads(c["leaf"]) for c in CASES}
    assert by_name["order_possible_nik"]["derived"] == {"nik_possible": True}
    assert by_name["order_impossible_nik"]["derived"] == {"nik_possible": False}
    assert by_name["rates_pkh"]["derived"] == {}


def test_same_person_same_token_across_facts() -> None:
    by_name = {c["name"]: json.loads(c["leaf"])["fact"] for c in CASES}
    assert by_name["eligibility_with_basis"]["nik"] == by_name["order_possible_nik"]["nik"] == by_name["pickup_companion"]["nik"]
    assert by_name["order_possible_nik"]["nik"] != by_name["order_impossible_nik"]["nik"]


def test_field_order_of_input_does_not_change_the_leaf(ledger: Ledger) -> None:
    case = CASES[2]
    reordered = dict(reversed(list(case["fact"].items())))
    leaf = ledger.protect(check_fact(reordered)).stored_event.state
    assert leaf == case["leaf"].encode("utf-8")


def test_other_key_gives_other_tokens(tmp_path: Path) -> None:
    db = str(tmp_path / "other.db")
    store = Store.open(db)
    try:
        led = Ledger(Settings(store=db, keys_dir=tmp_path / "k"), store, Tokenizer(bytes(32)), Sealer(KEK))
        case = CASES[2]
        leaf = led.protect(check_fact(case["fact"])).stored_event.state
        assert leaf != case["leaf"].encode("utf-8")
    finally:
        store.close()


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_changed_byte_changes_leaf_hash(case: dict) -> None:
    leaf = bytearray(case["leaf"].encode("utf-8"))
    good = hashlib.sha256(b"\x00" + bytes(leaf)).hexdigest()
    assert good == case["leaf_hash"]
    for pos in (0, len(leaf) // 2, len(leaf) - 1):
        broken = bytearray(leaf)
        broken[pos] ^= 0x01
        assert hashlib.sha256(b"\x00" + bytes(broken)).hexdigest() != case["leaf_hash"]
    # A semantically equal but non-canonical encoding is a different leaf too.
    spaced = json.dumps(json.loads(bytes(leaf)), sort_keys=True, ensure_ascii=False).encode()
    assert hashlib.sha256(b"\x00" + spaced).hexdigest() != case["leaf_hash"]
