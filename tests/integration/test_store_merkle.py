"""The store-backed Merkle tree (leaf hashes in log rows, small subtrees
recomputed, larger ones stored) gives the same roots and valid proofs as a
tree built in memory from the exported leaves, at every size."""

from __future__ import annotations

import base64

from jejak.audit.merkle import leaf_hash, root_from_leaf_hashes, verify_consistency, verify_inclusion
from jejak.ledger import Ledger
from jejak.transparency import Transparency


def _facts(n: int) -> list[dict]:
    return [
        {
            "id": f"bkn:asn:{i:05d}", "type": "asn.registered", "at": "2024-01-02T08:00:00+07:00",
            "source": {"kind": "bkn", "id": "bkn"}, "nik": f"12750141019{i:05d}", "agency": "Pemkot", "from": "2020-01-01",
        }
        for i in range(n)
    ]


def test_roots_and_proofs_match_an_in_memory_tree_at_every_size(store_url: str, make_settings) -> None:
    facts = _facts(75)
    with Ledger.open(make_settings(store_url)) as ledger:
        # uneven batches, so appends start at every frontier shape
        for start, stop in ((0, 1), (1, 4), (4, 21), (21, 22), (22, 50), (50, 75)):
            assert all(o.status == "accepted" for o in ledger.record(facts[start:stop]))
        leaves = [base64.b64decode(e["leaf"]) for e in ledger.export(public=True)]
        hashes = [leaf_hash(leaf) for leaf in leaves]
        t = Transparency(ledger.store, ledger.settings)
        for size in range(1, len(hashes) + 1):
            root = root_from_leaf_hashes(hashes[:size])
            assert t.root(size) == root, size
            for index in {0, size // 2, size - 1}:
                p = t.prove(index, size)
                assert bytes.fromhex(p["root"]) == root
                verify_inclusion(index, size, hashes[index], [bytes.fromhex(h) for h in p["proof"]], root)
            if size > 1:
                c = t.consistency(size - 1 if size % 2 else 1, size)
                verify_consistency(
                    c["size1"], size, [bytes.fromhex(h) for h in c["proof"]],
                    root_from_leaf_hashes(hashes[: c["size1"]]), root,
                )
        assert t.verify()["intact"] is True
