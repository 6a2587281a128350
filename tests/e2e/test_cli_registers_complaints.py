"""SPEC v2 §5/§6 through real `jejak` subprocesses, on SQLite and PostgreSQL:
`jejak ingest` of listings, complaints and resolutions (rejections named),
`jejak anomalies` with and without `--as-of`, a late fact changing the answer,
`export` revealing the complaint text while the leaf holds a token, and the
planted generation found exactly."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from jejak.generate import write_files
from tests.e2e.test_cli_core import KK, NIK, cli, fact, jsonl, lines

T = "T10:00:00+07:00"


def listed(fid: str, register: str, frm: str, until: str | None = None, at: str = f"2024-01-05{T}") -> dict:
    f = {"id": fid, "type": "register.listed", "at": at, "source": {"kind": "registry", "id": "pln"},
         "register": register, "nik": NIK, "from": frm}
    if until:
        f["until"] = until
    return f


def complaint(fid: str, at: str, category: str = "not_received", **extra) -> dict:
    return {"id": fid, "type": "complaint.filed", "at": at, "source": {"kind": "public", "id": "desk-7"},
            "channel": "slrt", "category": category, "region": "1275011002", **extra}


def resolved(fid: str, ref: str, at: str, outcome: str = "upheld") -> dict:
    return {"id": fid, "type": "complaint.resolved", "at": at, "source": {"kind": "dinsos", "id": "d"},
            "complaint": ref, "outcome": outcome}


def pairs(out: bytes) -> set[tuple[str, str]]:
    return {(a["rule"], a["primary"]) for a in jsonl(out)}


V2 = {"asn_recipient", "barred_recipient", "flagged_recipient", "complaint_overdue", "disputed_pickup",
      "companion_complaints", "unknown_complaint"}


def test_ingest_and_anomalies_with_as_of(store_url: str, tmp_path: Path) -> None:
    pickup = {"id": "p-1", "type": "pickup.recorded", "at": f"2024-03-10{T}", "source": {"kind": "pos", "id": "pos"},
              "disbursement": "o-1", "nik": NIK, "amount": 750000, "by": "recipient"}
    f = tmp_path / "v2.jsonl"
    f.write_bytes(lines(
        fact("o-1"), fact("o-2", at=f"2024-06-05{T}", period="2024-T2"), pickup,
        listed("l-1", "tni_polri", "2024-01-01", "2024-04-01"),
        listed("l-2", "asn", "2024-01-01"),
        listed("l-3", "pemilik_mobil", "2023-01-01"), listed("l-4", "listrik_nonsubsidi", "2024-05-01"),
        complaint("c-1", f"2024-03-12{T}", disbursement="o-1", kk=KK, text="belum terima sama sekali"),
        complaint("c-2", f"2024-03-12{T}", "pungli", companion="pd-3"),
        complaint("c-3", f"2024-03-13{T}", "pungli", companion="pd-3"),
        complaint("c-4", f"2024-03-14{T}", "pungli", companion="pd-3"),
        resolved("r-1", "c-1", f"2024-03-20{T}", "rejected"),
        resolved("r-x", "c-404", f"2024-03-21{T}"),
        {**listed("bad-1", "pemilik_motor", "2024-01-01")},
        {**complaint("bad-2", f"2024-03-12{T}"), "channel": "twitter"},
        {**resolved("bad-3", "c-1", f"2024-03-20{T}"), "outcome": "closed"},
    ))
    r = cli(tmp_path, "ingest", str(f), store=store_url)
    assert r.returncode == 3, r.stderr.decode()
    assert json.loads(r.stdout) == {"accepted": 13, "duplicates": 0, "rejected": 3}
    errors = {x["id"]: x["error"] for x in jsonl(r.stderr)}
    assert "register" in errors["bad-1"] and "pemilik_mobil" in errors["bad-1"]
    assert "channel" in errors["bad-2"] and "outcome" in errors["bad-3"]

    r = cli(tmp_path, "anomalies", store=store_url)
    assert r.returncode == 0, r.stderr.decode()
    got = {(a["rule"], a["primary"]): a for a in jsonl(r.stdout) if a["rule"] in V2}
    # default as-of: 2024-06-05 (o-2); c-2..c-4 open for more than 14 days
    assert set(got) == {
        ("barred_recipient", "o-1"), ("asn_recipient", "o-1"), ("asn_recipient", "o-2"),
        ("flagged_recipient", "o-2"), ("disputed_pickup", "c-1"), ("companion_complaints", "companion:pd-3"),
        ("unknown_complaint", "r-x"), ("complaint_overdue", "c-2"), ("complaint_overdue", "c-3"),
        ("complaint_overdue", "c-4"),
    }
    assert got[("barred_recipient", "o-1")]["detail"] == "tni_polri"
    assert got[("flagged_recipient", "o-2")]["detail"] == "listrik_nonsubsidi,pemilik_mobil"
    assert got[("disputed_pickup", "c-1")]["subject"] == KK  # revealed for the operator

    r = cli(tmp_path, "anomalies", "--as-of", "2024-03-26", store=store_url)
    early = pairs(r.stdout) & {(a, b) for a, b in got}
    assert ("complaint_overdue", "c-2") not in early and ("complaint_overdue", "c-4") not in early
    assert ("complaint_overdue", "c-2") in pairs(cli(tmp_path, "anomalies", "--as-of", "2024-03-27",
                                                     store=store_url).stdout)
    assert ("flagged_recipient", "o-2") not in early and ("unknown_complaint", "r-x") in early
    r = cli(tmp_path, "anomalies", "--as-of", "2024-03-11", store=store_url)
    assert not {x for x in pairs(r.stdout) if x[0] in V2 - {"asn_recipient", "barred_recipient"}}

    # a late resolution withdraws a pungli complaint: companion_complaints clears on the next read
    late = tmp_path / "late.jsonl"
    late.write_bytes(lines(resolved("r-2", "c-2", f"2024-03-22{T}", "withdrawn")))
    assert cli(tmp_path, "ingest", str(late), store=store_url).returncode == 0
    now = pairs(cli(tmp_path, "anomalies", store=store_url).stdout)
    assert ("companion_complaints", "companion:pd-3") not in now and ("complaint_overdue", "c-2") not in now
    assert ("complaint_overdue", "c-3") in now

    # the complaint's text: revealed in the operator export, a token in the hashed leaf
    entries = {e["fact"]["id"]: e for e in jsonl(cli(tmp_path, "export", store=store_url).stdout)}
    assert entries["c-1"]["fact"]["text"] == "belum terima sama sekali"
    leaf = base64.b64decode(entries["c-1"]["leaf"])
    assert b"belum terima" not in leaf and NIK.encode() not in base64.b64decode(entries["l-1"]["leaf"])
    public = {e["fact"]["id"]: e for e in jsonl(cli(tmp_path, "export", "--public", store=store_url).stdout)}
    assert public["c-1"]["fact"]["text"].startswith("tk1_")


def test_planted_generation_found_exactly(tmp_path: Path) -> None:
    facts, expected = tmp_path / "facts.jsonl", tmp_path / "expected.jsonl"
    write_files(100, 7, facts, plant=True, expected_path=expected)
    store = str(tmp_path / "s.db")
    r = cli(tmp_path, "ingest", str(facts), store=store)
    assert r.returncode == 0, r.stderr.decode()
    got = pairs(cli(tmp_path, "anomalies", store=store).stdout)
    want = {(e["rule"], e["primary"]) for e in jsonl(expected.read_bytes())}
    assert got == want
    assert {rule for rule, _ in want} >= V2
