"""Golden RFC 6962 / RFC 9162 proof vectors from transparency-dev/merkle, read in place."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from jejak.audit.errors import VerificationError
from jejak.audit.merkle import EMPTY_ROOT, leaf_hash, node_hash, root_from_leaf_hashes, verify_consistency, verify_inclusion

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "rfc6962"


def _files(kind: str) -> list[Path]:
    files = sorted((VECTORS / kind).rglob("*.json"))
    return files


INCLUSION = _files("inclusion")
CONSISTENCY = _files("consistency")


def _id(p: Path) -> str:
    return str(p.relative_to(VECTORS))


def _b64(s: str | None) -> bytes | None:
    return None if s is None else base64.b64decode(s)


def _proof(items: list[str] | None) -> list[bytes]:
    return [base64.b64decode(x) for x in items or []]


def test_vectors_present() -> None:
    """Fail (not skip) when the golden vectors are missing."""
    assert VECTORS.is_dir(), f"missing golden vectors at {VECTORS}"
    assert len(INCLUSION) > 40 and len(CONSISTENCY) > 60, (len(INCLUSION), len(CONSISTENCY))
    happy = [p for p in INCLUSION + CONSISTENCY if not json.loads(p.read_text())["wantErr"]]
    assert len(happy) >= 10


@pytest.mark.parametrize("path", INCLUSION, ids=_id)
def test_inclusion_vector(path: Path) -> None:
    v = json.loads(path.read_text())
    args = (v["leafIdx"], v["treeSize"], _b64(v["leafHash"]), _proof(v["proof"]), _b64(v["root"]))
    if v["wantErr"]:
        with pytest.raises(VerificationError):
            verify_inclusion(*args)
    else:
        assert verify_inclusion(*args) is None


@pytest.mark.parametrize("path", CONSISTENCY, ids=_id)
def test_consistency_vector(path: Path) -> None:
    v = json.loads(path.read_text())
    args = (v["size1"], v["size2"], _proof(v["proof"]), _b64(v["root1"]), _b64(v["root2"]))
    if v["wantErr"]:
        with pytest.raises(VerificationError):
            verify_consistency(*args)
    else:
        assert verify_consistency(*args) is None


# The RFC 6962 reference tree: leaves are the byte strings below (transparency-dev testonly).
RFC_LEAVES = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
RFC_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


@pytest.mark.parametrize("size", range(1, 9))
def test_reference_roots(size: int) -> None:
    hashes = [leaf_hash(bytes.fromhex(x)) for x in RFC_LEAVES[:size]]
    assert root_from_leaf_hashes(hashes).hex() == RFC_ROOTS[size - 1]


def test_empty_root_and_prefixes() -> None:
    assert root_from_leaf_hashes([]) == EMPTY_ROOT
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"").hex() == RFC_ROOTS[0]
    assert node_hash(leaf_hash(b""), leaf_hash(b"\x00")).hex() == RFC_ROOTS[1]
