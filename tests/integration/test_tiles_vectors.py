"""Golden C2SP tlog-tiles: a fixed key and a small fixed log (515 entries)
give byte-exact tiles, entry bundles, checkpoint and tlog-proofs of four
entries (tests/vectors/tlog-tiles-515.json; proofs under "tlog-proof/<index>").

Each file is re-derived here by an independent few-line reader (hashlib and
cryptography's Ed25519, tests/tlog_reader.py), and written by the production
path (a real store, `Transparency.issue_checkpoint`, `TilesWriter`).
Regenerate (only when the format is meant to change):
    .venv/bin/python -m tests.integration.test_tiles_vectors
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.tlog_reader import index_path, leaf_hash, mth

VECTOR = Path(__file__).resolve().parents[1] / "vectors" / "tlog-tiles-515.json"
NAME = "jejak.test/tiles-vector"
SEED = hashlib.sha256(b"jejak tlog-tiles golden vector key").digest()
SIZE = 515
PROVED = (0, 255, 300, 514)  # tlog-proofs of these entries are in the vector too


def vector_leaves() -> list[bytes]:
    return [(f"jejak tiles vector entry {i}\n" * (i % 3 + 1)).encode() for i in range(SIZE)]


def independent_files(leaves: list[bytes]) -> dict[str, bytes]:
    """Every file of the tree, from the specifications alone."""
    files: dict[str, bytes] = {}
    level_hashes = [leaf_hash(x) for x in leaves]
    level = 0
    while level_hashes:
        for n in range(0, len(level_hashes), 256):
            chunk = level_hashes[n:n + 256]
            suffix = "" if len(chunk) == 256 else f".p/{len(chunk)}"
            files[f"tile/{level}/{index_path(n // 256)}{suffix}"] = b"".join(chunk)
        level_hashes = [mth(level_hashes[n:n + 256]) for n in range(0, len(level_hashes) - 255, 256)]
        level += 1
    for n in range(0, len(leaves), 256):
        chunk = leaves[n:n + 256]
        suffix = "" if len(chunk) == 256 else f".p/{len(chunk)}"
        files[f"tile/entries/{index_path(n // 256)}{suffix}"] = b"".join(len(x).to_bytes(2, "big") + x for x in chunk)
    body = f"{NAME}\n{len(leaves)}\n{base64.b64encode(mth([leaf_hash(x) for x in leaves])).decode()}\n"
    key = Ed25519PrivateKey.from_private_bytes(SEED)
    public = key.public_key().public_bytes_raw()
    key_id = hashlib.sha256(NAME.encode() + b"\n\x01" + public).digest()[:4]
    signature = base64.b64encode(key_id + key.sign(body.encode())).decode()
    files["checkpoint"] = (body + f"\n\u2014 {NAME} {signature}\n").encode()
    return files


def audit_path(m: int, hashes: list[bytes]) -> list[bytes]:
    """RFC 9162 PATH(m, D[n]), leaf side first."""
    if len(hashes) == 1:
        return []
    k = 1 << ((len(hashes) - 1).bit_length() - 1)
    if m < k:
        return audit_path(m, hashes[:k]) + [mth(hashes[k:])]
    return audit_path(m - k, hashes[k:]) + [mth(hashes[:k])]


def independent_proofs(leaves: list[bytes], note: bytes) -> dict[str, bytes]:
    """c2sp.org/tlog-proof@v1 of each PROVED entry, from the specification alone."""
    hashes = [leaf_hash(x) for x in leaves]
    return {str(i): ("c2sp.org/tlog-proof@v1\n" f"index {i}\n"
                     + "".join(base64.b64encode(h).decode() + "\n" for h in audit_path(i, hashes))).encode()
            + b"\n" + note for i in PROVED}


def production_files(tmp: Path) -> dict[str, bytes]:
    """The same log through jejak: a SQLite store, its checkpoint and `TilesWriter`."""
    from jejak.audit.note import Signer
    from jejak.settings import Settings
    from jejak.store.datastore import Store
    from jejak.tiles import TilesWriter
    from jejak.transparency import Transparency

    keys = tmp / "keys"
    keys.mkdir(mode=0o700)
    ring = keys / "checkpoint-keys.json"
    ring.write_text(json.dumps({"keys": [{"skey": Signer(NAME, SEED).key_text(), "created": "2026-01-01"}]}))
    ring.chmod(0o600)
    settings = Settings(store=str(tmp / "vector.db"), keys_dir=keys, origin=NAME, key_name=NAME)
    store = Store.open(settings.store)
    try:
        leaves = vector_leaves()
        oids = [uuid.uuid5(uuid.NAMESPACE_URL, f"jejak-vector/{i}").hex for i in range(SIZE)]
        with store.transaction(commit=True) as cursor:
            store.recorder.take_write_lock(cursor)
            store.recorder.insert_stored(cursor, [(oid, 1, "vector", leaf) for oid, leaf in zip(oids, leaves)])
            store.recorder.append_to_log(cursor, [(f"v-{i}", oid, 1, leaf) for i, (oid, leaf) in enumerate(zip(oids, leaves))])
        Transparency(store, settings).issue_checkpoint()
        out = tmp / "tiles"
        TilesWriter(store, settings, out).run()
        proofs = {str(i): Transparency(store, settings).tlog_proof(i).encode() for i in PROVED}
    finally:
        store.close()
    files = {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    return {**files, **{f"tlog-proof/{i}": text for i, text in proofs.items()}}


def load_vector() -> dict[str, bytes]:
    data = json.loads(VECTOR.read_text())
    assert data["size"] == SIZE and data["origin"] == NAME
    return {path: base64.b64decode(content) for path, content in data["files"].items()}


def test_the_vector_is_what_the_specifications_give() -> None:
    leaves = vector_leaves()
    files = independent_files(leaves)
    proofs = independent_proofs(leaves, files["checkpoint"])
    assert {**files, **{f"tlog-proof/{i}": text for i, text in proofs.items()}} == load_vector()


def test_jejak_writes_the_vector_byte_for_byte(tmp_path: Path) -> None:
    assert production_files(tmp_path) == load_vector()


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        files = production_files(Path(tmp))
    VECTOR.write_text(json.dumps({
        "source": "jejak (tests/integration/test_tiles_vectors.py), checked against an independent reader",
        "origin": NAME, "size": SIZE, "signer_seed_hex": SEED.hex(),
        "leaves": "entry i = ('jejak tiles vector entry {i}\\n' * (i % 3 + 1)), UTF-8",
        "files": {path: base64.b64encode(content).decode() for path, content in sorted(files.items())},
    }, indent=1) + "\n")
    print(f"wrote {VECTOR} ({len(files)} files)")
