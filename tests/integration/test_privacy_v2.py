"""SPEC v2 personal data (§1), end to end through the CLI on both stores.

* 16-digit runs inside ids, references, `source.id`, `companion`, `agency`
  and a `public` source's id never reach the leaf, `export --public` or the
  public API; operators see them exactly as sent; erasure destroys them.
* Erasure destroys every personal value of the erased person's facts.
* An erasure order reference holding a NIK is refused before it enters the log.
"""

from __future__ import annotations

import json
from pathlib import Path

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
