"""Leaf formats: golden bytes under fixed keys (tests/vectors/leaf-v2.json,
written since SPEC v2; tests/vectors/leaf-v1.json, frozen, still decoded).

The leaf is what is chained, Merkle-hashed and exported, so its bytes are a
contract with every outside verifier: any change here must be a new version.
The leaves are produced by the real `Ledger.protect` on a real SQLite store and
checked against an independent re-implementation of the v2 protection rules.
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

VECTORS_V1 = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "leaf-v1.json").read_text("utf-8"))
VECTORS = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "leaf-v2.json").read_text("utf-8"))
CASES = VECTORS["cases"]
CASES_V1 = VECTORS_V1["cases"]
assert VECTORS_V1["pseudonym_key_hex"] == VECTORS["pseudonym_key_hex"]
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
    assert obj["v"] == 2 and set(obj) == {"v", "fact", "derived"}
    assert decode_leaf(leaf) == (obj["fact"], obj["derived"])


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_no_clear_personal_data_in_leaf(case: dict) -> None:
    leaf = case["leaf"]
    fact = case["fact"]
    for name in ("nik", "kk", "basis"):
        if name in fact:
            assert fact[name] not in leaf, f"clear {name} in the leaf"
    assert not re.search(r"[0-9]{16}", leaf), "a 16-digit run in the leaf"
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


# ------------------------------------------------------------------- version 2

def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def independently_protected(fact: dict) -> dict:
    """The v2 protection rules, written again from the format's description."""
    known = {"id", "type", "at", "source", "program", "year", "annual", "max_members", "monthly", "decision",
             "from", "region", "components", "companion", "period", "amount", "channel", "disbursement", "status",
             "by", "agency", "until", "date"}

    def runs(text: str) -> str:
        return re.sub(r"[0-9]{16,}", lambda m: independent_token("digits", m.group()), text)

    out = {}
    for name, value in fact.items():
        if name in ("nik", "kk"):
            out[name] = independent_token(name, value)
        elif name in ("basis", "text"):
            out[name] = independent_token("text", value)
        elif name == "source":
            out[name] = {k: (independent_token("source", v) if value["kind"] == "public" else runs(v)) if k == "id"
                         else v if k == "kind" else independent_token("extra", _json(v)) for k, v in value.items()}
        elif name not in known:
            out[name] = independent_token("extra", _json(value))
        else:
            out[name] = runs(value) if isinstance(value, str) else value
    return out


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_v2_leaf_follows_the_rules_written_again(case: dict) -> None:
    obj = json.loads(case["leaf"])
    assert obj["fact"] == independently_protected(case["fact"])
    tokens = set(re.findall(r"tk1_[a-z2-7]{32}", case["leaf"]))
    assert tokens == {independent_token(kind, value) for kind, value in case["tokens"]}


def test_v2_runs_keep_references_equal() -> None:
    by_name = {c["name"]: json.loads(c["leaf"])["fact"] for c in CASES}
    order = by_name["order_id_holding_a_kk"]
    assert by_name["settlement_naming_it_from_a_teller_id_holding_a_nik"]["disbursement"] == order["id"]
    assert by_name["pickup_by_companion_whose_id_is_a_nik"]["disbursement"] == order["id"]
    assert order["id"].startswith("ORD-PKH-tk1_") and order["id"].endswith("-2024T1")


@pytest.mark.parametrize("case", CASES_V1, ids=[c["name"] for c in CASES_V1])
def test_v1_leaves_still_decode_and_match_their_facts(case: dict) -> None:
    from jejak.store.leaf import leaf_matches_fact

    leaf = case["leaf"].encode("utf-8")
    fact, derived = decode_leaf(leaf)
    assert json.loads(leaf)["v"] == 1
    assert leaf_matches_fact(leaf, case["fact"])
    # a v1 fact without 16-digit runs, public sources or text is protected the same way in v2
    v2 = next(c for c in CASES if c["name"] == case["name"])
    assert (fact, derived) == decode_leaf(v2["leaf"].encode("utf-8"))


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_v2_leaf_matches_its_clear_fact_and_not_another(case: dict) -> None:
    from jejak.store.leaf import leaf_matches_fact

    leaf = case["leaf"].encode("utf-8")
    assert leaf_matches_fact(leaf, case["fact"])
    assert leaf_matches_fact(leaf, json.loads(case["leaf"])["fact"])  # a public export
    changed = {**case["fact"], "id": case["fact"]["id"] + "x"}
    assert not leaf_matches_fact(leaf, changed)


def test_leaf_too_large_is_refused_at_the_exact_boundary(ledger: Ledger) -> None:
    from jejak.store.leaf import MAX_LEAF_BYTES

    base = {"id": "bkn:asn:big", "type": "asn.registered", "at": "2024-01-07T10:00:00+07:00",
            "source": {"kind": "bkn", "id": "bkn"}, "nik": "1275016708770229", "agency": "A", "from": "2020-01-01"}
    overhead = len(ledger.protect(check_fact(base)).stored_event.state) - 1
    fits = {**base, "agency": "A" * (MAX_LEAF_BYTES - overhead)}
    too_big = {**base, "agency": "A" * (MAX_LEAF_BYTES - overhead + 1)}
    batch = ledger.preparer.prepare([json.dumps(fits), json.dumps(too_big)])
    assert [len(leaf) for leaf in batch.rows.leaves] == [MAX_LEAF_BYTES]
    assert [(r.slot, r.code, r.fact_id) for r in batch.rejected] == [(1, "leaf_too_large", "bkn:asn:big")]
    assert "65,536 bytes" in batch.rejected[0].message
