"""SPEC v2 personal data (§1), end to end through the CLI on both stores.

* 16-digit runs inside ids, references, `source.id`, `companion`, `agency`
  and a `public` source's id never reach the leaf, `export --public` or the
  public API; operators see them exactly as sent; erasure destroys them.
* Erasure destroys every personal value of the erased person's facts.
* An erasure order reference holding a NIK is refused before it enters the log.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import httpx
import orjson
import pytest

from jejak.generate import write_files
from tests.integration.test_privacy import jejak, jsonl

NIK = "1275016708770229"
ORDER = {"id": "o-1", "type": "disbursement.ordered", "at": "2024-03-05T10:00:00+07:00",
         "source": {"kind": "kemensos", "id": "sp2d"}, "kk": "1275011104052510", "nik": NIK,
         "program": "PKH", "period": "2024-T1", "amount": 750000, "channel": "BRI"}


def test_erase_refuses_an_order_reference_holding_a_nik(store_url: str, tmp_path: Path) -> None:
    keys, s = tmp_path / "keys", ["--store", store_url]
    assert jejak(tmp_path, keys, *s, "ingest", "-", stdin=json.dumps(ORDER).encode()).returncode == 0
    for typed in (NIK, "+".join((NIK[:8], NIK[8:])), "\u200b".join(NIK), f"PN ({NIK[:8]})({NIK[8:]})"):
        res = jejak(tmp_path, keys, *s, "erase", NIK, "--order", f"PN-Medan {typed}")
        assert res.returncode == 1, res.stdout.decode()
        assert "16 digits" in res.stderr.decode() and NIK not in res.stderr.decode()
    export = jsonl(jejak(tmp_path, keys, *s, "export").stdout)
    assert [e["fact"]["type"] for e in export] == ["disbursement.ordered"]  # nothing entered the log
    ok = jejak(tmp_path, keys, *s, "erase", NIK, "--order", "PN-Medan/2024/123")
    assert ok.returncode == 0, ok.stderr.decode()


# ------------------------------------------------ 16-digit runs in other fields

DIGITS16 = re.compile(r"[0-9]{16}")


def with_numbers_in_ids(facts: list[dict]) -> tuple[list[dict], dict[str, str]]:
    """The same facts with a NIK or KK inside every id, reference, source id,
    companion id and agency (as some source systems build them); and the map
    from each new string back to the original."""
    back: dict[str, str] = {}

    def renamed(old: str, number: str, sep: str = ":") -> str:
        new = f"{number}{sep}{old}"
        back[new] = old
        return new

    order_ids = {f["id"]: renamed(f["id"], f["kk"]) for f in facts if f["type"] == "disbursement.ordered"}
    complaint_ids = {f["id"]: renamed(f["id"], f.get("nik") or "3171010101800002")
                     for f in facts if f["type"] == "complaint.filed"}
    companions: dict[str, str] = {}
    out = []
    for f in facts:
        g = dict(f)
        if f["id"] in order_ids:
            g["id"] = order_ids[f["id"]]
        elif f["id"] in complaint_ids:
            g["id"] = complaint_ids[f["id"]]
        else:
            g["id"] = renamed(f["id"], f.get("nik") or f.get("kk") or "3171010101800001")
        if "disbursement" in f:
            g["disbursement"] = order_ids.get(f["disbursement"]) or renamed(f["disbursement"], "9171010101800001")
        if "complaint" in f:  # a resolution names its complaint as it was sent
            g["complaint"] = complaint_ids.get(f["complaint"]) or renamed(f["complaint"], "9171010101800002")
        if "companion" in f:
            number = companions.setdefault(f["companion"], f"32{len(companions):014d}")
            g["companion"] = renamed(f["companion"], number, "-")
        source_id = f["source"]["id"]
        g["source"] = {**f["source"], "id": renamed(source_id, "6171010101800001", "/")}
        if "agency" in f:
            g["agency"] = renamed(f["agency"], f["nik"], " NIP ")
        out.append(g)
    return out, back


def restored(value, back: dict[str, str]):
    """`value` with every renamed string put back (inside longer strings too)."""
    if isinstance(value, dict):
        return {k: restored(v, back) for k, v in value.items()}
    if isinstance(value, list):
        return [restored(v, back) for v in value]
    if isinstance(value, str):
        return _BACK(back).sub(lambda m: back[m.group()], value)
    return value


def _BACK(back: dict[str, str], _cache={}) -> re.Pattern:
    key = id(back)
    if key not in _cache:
        _cache[key] = re.compile("|".join(re.escape(k) for k in sorted(back, key=len, reverse=True)))
    return _cache[key]


def sixteen_digit_runs(data: bytes | str) -> list[str]:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return DIGITS16.findall(text)


@pytest.fixture(scope="module")
def numbered(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("numbered")
    plain = d / "plain.jsonl"
    write_files(120, 11, plain, plant=True, expected_path=d / "expected.jsonl")
    facts = [orjson.loads(ln) for ln in plain.read_bytes().splitlines() if ln.strip()]
    changed, back = with_numbers_in_ids(facts)
    path = d / "numbered.jsonl"
    path.write_bytes(b"".join(orjson.dumps(f) + b"\n" for f in changed))
    return plain, path, changed, back


def test_sixteen_digit_runs_are_tokens_outside_and_clear_for_operators(
        store_url: str, tmp_path: Path, numbered, make_settings) -> None:
    plain, path, facts, back = numbered
    keys, s = tmp_path / "keys", ["--store", store_url]
    ing = jejak(tmp_path, keys, *s, "ingest", str(path))
    assert ing.returncode == 0, ing.stderr.decode()[-2000:]
    assert json.loads(ing.stdout) == {"accepted": len(facts), "duplicates": 0, "rejected": 0}

    # Outside: the public export and every leaf hold no 16-digit run; references stay equal as tokens.
    public = jsonl(jejak(tmp_path, keys, *s, "export", "--public").stdout)
    assert len(public) == len(facts)
    for entry in public:
        assert not sixteen_digit_runs(json.dumps(entry["fact"])), entry["fact"]
        assert not sixteen_digit_runs(base64.b64decode(entry["leaf"])), entry["index"]
    ids = {e["fact"]["id"] for e in public if e["fact"]["type"] == "disbursement.ordered"}
    refs = {e["fact"]["disbursement"] for e in public if "disbursement" in e["fact"]}
    assert ids & refs and all(i.startswith("tk1_") and i.count("tk1_") == 1 for i in ids)

    # Operators: the export, balances and anomalies show every id exactly as sent, and find
    # what the same facts without numbers in their ids give (references still match).
    export = jsonl(jejak(tmp_path, keys, *s, "export").stdout)
    assert [e["fact"] for e in export] == facts
    ver = jejak(tmp_path, keys, *s, "verify")
    assert ver.returncode == 0, ver.stdout.decode() + ver.stderr.decode()
    reference = tmp_path / "reference"
    reference.mkdir()
    ref_keys, ref_store = reference / "keys", str(reference / "ref.db")
    assert jejak(reference, ref_keys, "--store", ref_store, "ingest", str(plain)).returncode == 0
    for command in (["balances"], ["anomalies"], ["anomalies", "--as-of", "2024-06-30"]):
        got = jsonl(jejak(tmp_path, keys, *s, *command).stdout)
        want = jsonl(jejak(reference, ref_keys, "--store", ref_store, *command).stdout)
        assert want, command
        assert "tk1_" not in json.dumps(got)
        key = lambda row: json.dumps(row, sort_keys=True)  # noqa: E731
        assert sorted(map(key, restored(got, back))) == sorted(map(key, want)), command

    # Re-delivery is a duplicate (the id is found by its tokens); a changed amount a conflict.
    again = jejak(tmp_path, keys, *s, "ingest", "-", stdin=orjson.dumps(facts[-1]) + b"\n")
    assert json.loads(again.stdout) == {"accepted": 0, "duplicates": 1, "rejected": 0}
    order = next(f for f in facts if f["type"] == "disbursement.ordered")
    clash = jejak(tmp_path, keys, *s, "ingest", "-", stdin=orjson.dumps({**order, "amount": 1}) + b"\n")
    assert clash.returncode == 3
    rejection = json.loads(clash.stderr.decode().splitlines()[0])
    assert rejection["code"] == "conflict" and rejection["id"] == order["id"]


def test_public_api_shows_no_sixteen_digit_run(store_url: str, tmp_path: Path, numbered, make_settings) -> None:
    from jejak.api.app import create_app
    from jejak.api.tokens import create_token
    from jejak.ledger import Ledger
    from jejak.reports import Reports
    from jejak.transparency import Transparency
    from tests.e2e.conftest import ServerThread, free_port

    _plain, path, facts, _back = numbered
    settings = make_settings(store_url)
    with Ledger.open(settings) as ledger:
        with path.open("rb") as lines:
            assert ledger.ingest_lines(lines).rejected == 0
        Reports(ledger).catch_up()
        size = Transparency(ledger.store, settings).issue_checkpoint().size
        inspector_token = create_token(ledger, "inspector-v2", "inspector")
    order = next(f for f in facts if f["type"] == "disbursement.ordered")
    port = free_port()
    with ServerThread(create_app(settings), port), httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
        auth = {"Authorization": f"Bearer {inspector_token}"}
        code = http.get(f"/v1/receipts/{order['id']}", headers=auth).json()["code"]
        answers = [http.get(f"/public/v1/receipts/{order['id']}", params={"code": code})]
        answers += [http.get("/public/v1/proofs/inclusion", params={"index": i}) for i in range(size)]
        answers += [http.get(p) for p in ("/public/v1/checkpoint", "/public/v1/summary", "/public/v1/keys")]
        answers += [http.get("/public/v1/aggregates", params={"level": level}) for level in ("kota", "kecamatan", "desa")]
        for r in answers:
            assert r.status_code == 200, (r.url, r.text)
            body = r.json()
            leaf = base64.b64decode(body["leaf"]) if "leaf" in body else b""
            hex_free = re.sub(r"[0-9a-f]{64}", "", r.text)  # hashes may hold digit runs by chance
            assert not sixteen_digit_runs(hex_free) and not sixteen_digit_runs(leaf), (r.url, r.text[:300])
        # the inspector sees the clear ids
        fact = http.get(f"/v1/facts/{order['id']}", params={"reason": "audit"}, headers=auth).json()
        assert fact["fact"] == order and fact["fact_id"] == order["id"]
        trail = http.get(f"/v1/families/{order['kk']}/trail", params={"reason": "audit"}, headers=auth).json()
        assert order["id"] in {item["fact_id"] for item in trail["items"]}
        assert all(item["fact"] == next(f for f in facts if f["id"] == item["fact_id"]) for item in trail["items"])


# ---------------------------------------------------------------------- erasure

KK = "1275011104052510"
OTHER = "1275014406800002"  # another member of the family, not erased
AT = "2024-02-01T10:00:00+07:00"


def person_facts() -> list[dict]:
    src = {"kind": "dinsos", "id": "dinsos-1275"}
    return [
        {"id": f"ELG-BPNT-{NIK}", "type": "eligibility.decided", "at": AT, "source": src, "kk": KK, "nik": NIK,
         "program": "BPNT", "decision": "eligible", "from": "2024-01", "region": "1275011001",
         "basis": "Ibu Siti Aminah, janda, tiga anak", "text": "rumah bocor, suami meninggal 2023",
         "nama": "Siti Aminah", "keterangan": {"catatan": "sakit menahun", "telp": "081234567890"}},
        {"id": f"ORD-BPNT-{KK}-2024-02", "type": "disbursement.ordered", "at": AT, "source": {"kind": "kemensos", "id": "sp2d"},
         "kk": KK, "nik": NIK, "program": "BPNT", "period": "2024-02", "amount": 200000, "channel": "POS"},
        {"id": f"PU-{NIK}-1", "type": "pickup.recorded", "at": "2024-02-03T10:00:00+07:00",
         "source": {"kind": "pos", "id": "kantor-pos-medan"}, "disbursement": f"ORD-BPNT-{KK}-2024-02", "nik": NIK,
         "amount": 200000, "by": "companion", "companion": "PDP-3171010101800001"},
        {"id": "lapor:death:1", "type": "death.recorded", "at": "2024-03-01T10:00:00+07:00",
         "source": {"kind": "public", "id": "warga Budi Santoso"}, "nik": NIK, "date": "2024-02-27"},
        # the rest of the family stays readable
        {"id": "ELG-PKH-other", "type": "eligibility.decided", "at": AT, "source": src, "kk": KK, "nik": OTHER,
         "program": "PKH", "decision": "eligible", "from": "2024-01", "region": "1275011001",
         "components": {"anak_sd": 1}, "basis": "DTKS 2024"},
    ]


def personal_values_of_the_erased() -> set[str]:
    return {NIK, "Siti Aminah", "janda, tiga anak", "rumah bocor", "sakit menahun", "081234567890",
            "3171010101800001", "Budi Santoso", KK + "-2024-02"}


def test_erasure_leaves_nothing_readable(store_url: str, tmp_path: Path, make_settings) -> None:
    from jejak.api.app import create_app
    from jejak.api.tokens import create_token
    from jejak.ledger import Ledger
    from tests.e2e.conftest import ServerThread, free_port

    facts = person_facts()
    data = b"".join(orjson.dumps(f) + b"\n" for f in facts)
    keys, s = tmp_path / "keys", ["--store", store_url]
    assert jejak(tmp_path, keys, *s, "ingest", "-", stdin=data).returncode == 0
    before = jejak(tmp_path, keys, *s, "export").stdout.decode()
    assert all(v in before for v in personal_values_of_the_erased())  # the operator saw them all
    er = jejak(tmp_path, keys, *s, "erase", NIK, "--order", "PN-Medan/2024/123")
    assert er.returncode == 0, er.stderr.decode()
    erased_token = json.loads(er.stdout)["erased"]

    def assert_gone(text: str, where: str) -> None:
        for value in personal_values_of_the_erased():
            assert value not in text, f"{value!r} still readable in {where}"

    for command in (["export"], ["export", "--public"], ["balances"], ["anomalies"]):
        res = jejak(tmp_path, keys, *s, *command)
        assert res.returncode == 0
        assert_gone(res.stdout.decode(), " ".join(command))
    export = jsonl(jejak(tmp_path, keys, *s, "export").stdout)
    other = next(e["fact"] for e in export if e["fact"]["id"] == "ELG-PKH-other")
    assert other == facts[-1]  # the family's KK and another member stay readable
    assert jejak(tmp_path, keys, *s, "verify").returncode == 0

    settings = make_settings(store_url)  # the same keys directory as the CLI
    with Ledger.open(settings) as ledger:
        token = create_token(ledger, "inspector-erasure", "inspector")
    port = free_port()
    with ServerThread(create_app(settings), port), httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
        auth, reason = {"Authorization": f"Bearer {token}"}, {"reason": "audit"}
        family = http.get(f"/v1/families/{KK}/trail", params=reason, headers=auth)
        person = http.get(f"/v1/people/{NIK}/trail", params=reason, headers=auth)
        assert family.status_code == person.status_code == 200
        assert_gone(family.text, "the family trail")
        assert_gone(person.text, "the person trail")
        body = person.json()
        assert len(body["items"]) == 4 and all(item["fact"]["nik"] == erased_token for item in body["items"])
        assert body["erased"]["order"] == "PN-Medan/2024/123" and body["erased"]["at"].startswith("20")
        assert OTHER in family.text

    # a re-delivery brings nothing back
    again = jejak(tmp_path, keys, *s, "ingest", "-", stdin=data)
    assert json.loads(again.stdout) == {"accepted": 0, "duplicates": len(facts), "rejected": 0}
    new = {**facts[2], "id": f"PU-{NIK}-2", "companion": "PDP-1"}
    assert jejak(tmp_path, keys, *s, "ingest", "-", stdin=orjson.dumps(new) + b"\n").returncode == 0
    assert_gone(jejak(tmp_path, keys, *s, "export").stdout.decode(), "export after re-delivery")


# --------------------------------------------- no recoverable copy in the files

def database_files(store_url: str) -> list[Path]:
    """What an attacker holding the machine's disks reads: the vault table's
    PostgreSQL data files and the whole WAL (after a CHECKPOINT), or the SQLite
    file and its WAL."""
    if not store_url.startswith("postgresql://"):
        return [p for p in (Path(store_url), Path(store_url + "-wal"), Path(store_url + "-journal")) if p.exists()]
    import psycopg

    with psycopg.connect(store_url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
        data_dir = Path(conn.execute("SHOW data_directory").fetchone()[0])
        relations = [conn.execute("SELECT pg_relation_filepath(%s)", (name,)).fetchone()[0]
                     for name in ("jejak_subjects", "jejak_subjects_pkey")]
        toast = conn.execute("SELECT reltoastrelid::regclass::text FROM pg_class WHERE relname = 'jejak_subjects' "
                             "AND reltoastrelid <> 0").fetchone()
        if toast:
            relations.append(conn.execute("SELECT pg_relation_filepath(%s)", toast).fetchone()[0])
    files = [p for rel in relations for p in data_dir.glob(rel + "*")]
    return files + sorted((data_dir / "pg_wal").glob("0*"))


def attacker_keys(keys_dir: Path) -> list[tuple[str, bytes]]:
    """Every key an attacker can take from the keys directory: the master KEK
    and each vault-key file left there, opened with it (written again from
    docs/privacy.md, not with jejak's code)."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    kek = (keys_dir / "kek.key").read_bytes()
    keys = [("master", kek)]
    for path in keys_dir.glob("vault-*.key"):
        _, store_id, generation = path.stem.split("-")
        data = path.read_bytes()
        aad = f"jejak vault key {store_id} {generation}".encode()
        keys.append((generation, AESGCM(kek).decrypt(data[:12], data[12:], aad)))
    return keys


def opens(sealed_dek: bytes, token: str, key: bytes) -> bool:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    body = sealed_dek if len(sealed_dek) == 60 else sealed_dek[5:]
    try:
        AESGCM(key).decrypt(body[:12], body[12:], token.encode())
        return True
    except InvalidTag:
        return False


def copies_opened(files: list[Path], sealed: dict[str, bytes], keys: list[tuple[str, bytes]]) -> tuple[int, set[str]]:
    """(copies of the given sealed data keys found in the files, tokens whose data key a key opened)."""
    found, opened = 0, set()
    for path in files:
        data = path.read_bytes()
        for token, dek in sealed.items():
            # each copy as found in the file (a sealed key is stored whole, inline)
            at = data.find(dek)
            while at >= 0:
                found += 1
                copy = data[at:at + len(dek)]
                if any(opens(copy, token, key) for _name, key in keys):
                    opened.add(token)
                at = data.find(dek, at + 1)
    return found, opened


def test_no_copy_of_an_erased_key_opens_with_the_key_material_left(store_url: str, tmp_path: Path) -> None:
    from jejak.store.datastore import Store

    keys, s = tmp_path / "keys", ["--store", store_url]
    data = b"".join(orjson.dumps(f) + b"\n" for f in person_facts())
    assert jejak(tmp_path, keys, *s, "ingest", "-", stdin=data).returncode == 0
    store = Store.open(store_url, create=False)
    try:
        sealed = {r["token"]: bytes(r["sealed_dek"]) for r in store.query(
            "SELECT token, sealed_dek FROM jejak_subjects WHERE sealed_dek IS NOT NULL")}
    finally:
        store.close()
    # Before the erasure the attack works: the files hold the sealed keys and the keys directory opens them.
    found, opened = copies_opened(database_files(store_url), sealed, attacker_keys(keys))
    assert found >= len(sealed) and opened == set(sealed)

    er = jejak(tmp_path, keys, *s, "erase", NIK, "--order", "PN-Medan/2024/123")
    assert er.returncode == 0, er.stderr.decode()
    store = Store.open(store_url, create=False)
    try:
        erased = {r["token"] for r in store.query("SELECT token FROM jejak_subjects WHERE erased_at IS NOT NULL")}
        live = {r["token"] for r in store.query("SELECT token FROM jejak_subjects WHERE sealed_dek IS NOT NULL")}
    finally:
        store.close()
    assert erased & set(sealed) and live  # the person's subjects are gone, the rest of the family stays
    found, opened = copies_opened(database_files(store_url), {t: sealed[t] for t in erased & set(sealed)},
                                  attacker_keys(keys))
    if store_url.startswith("postgresql://"):
        assert found > 0, "PostgreSQL keeps old row versions: the copies are there to attack"
    assert not opened, f"an erased data key opens with the key material left: {opened}"
    # ... and everything not erased still reads (moved to the new generation)
    export = jejak(tmp_path, keys, *s, "export").stdout.decode()
    assert OTHER in export and "DTKS 2024" in export and NIK not in export


# ------------------------------------------------------------- leaf_too_large

def test_leaf_too_large_is_rejected_at_the_exact_boundary(store_url: str, tmp_path: Path) -> None:
    import os

    from jejak.domain.facts import check_fact
    from jejak.preparer import FactPreparer
    from jejak.store.leaf import MAX_LEAF_BYTES
    from jejak.store.vault import Tokenizer

    base = {"id": "bkn:asn:big", "type": "asn.registered", "at": "2024-01-07T10:00:00+07:00",
            "source": {"kind": "bkn", "id": "bkn"}, "nik": NIK, "agency": "A", "from": "2020-01-01"}
    # a token's length does not depend on the key, so neither does the leaf's
    overhead = len(FactPreparer(Tokenizer(os.urandom(32))).protect(check_fact(base)).stored_event.state) - 1
    fits = {**base, "agency": "A" * (MAX_LEAF_BYTES - overhead)}
    too_big = {**base, "id": "bkn:asn:bog", "agency": "A" * (MAX_LEAF_BYTES - overhead + 1)}
    keys, s = tmp_path / "keys", ["--store", store_url]
    res = jejak(tmp_path, keys, *s, "ingest", "-", stdin=orjson.dumps(fits) + b"\n" + orjson.dumps(too_big) + b"\n")
    assert res.returncode == 3
    assert json.loads(res.stdout) == {"accepted": 1, "duplicates": 0, "rejected": 1}
    [rejection] = [json.loads(line) for line in res.stderr.decode().splitlines()]
    assert rejection["line"] == 2 and rejection["id"] == "bkn:asn:bog" and rejection["code"] == "leaf_too_large"
    assert "65,536 bytes" in rejection["error"] and "65,535" in rejection["error"]
    export = jsonl(jejak(tmp_path, keys, *s, "export").stdout)
    assert [e["fact"]["id"] for e in export] == ["bkn:asn:big"]
    assert len(base64.b64decode(export[0]["leaf"])) == MAX_LEAF_BYTES
