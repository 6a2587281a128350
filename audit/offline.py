"""Offline verification of `jejak export` output, inclusion and consistency proof files."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .checkpoint import Checkpoint, verify_checkpoint
from .errors import ChainBroken, InconsistentCheckpoints, InvalidProof, MalformedExport, RootMismatch
from .merkle import leaf_hash, root_from_leaf_hashes, verify_consistency, verify_inclusion
from .note import Verifier

__all__ = ["CHAIN_SEED", "chain_next", "verify_export", "verify_inclusion_file", "verify_consistency_file"]

CHAIN_SEED = bytes(32)
Keys = Iterable[Verifier | str]
LeafCheck = Callable[[bytes, Mapping[str, Any]], bool]


def chain_next(prev: bytes, leaf: bytes) -> bytes:
    """chain[i] = SHA-256(chain[i-1] ‖ leaf_i), with chain[-1] = 32 zero bytes."""
    return hashlib.sha256(prev + leaf).digest()


def _parse_line(raw: str | bytes, expected_index: int) -> tuple[bytes, dict[str, Any]]:
    def bad(why: str) -> MalformedExport:
        return MalformedExport(f"export line for index {expected_index}: {why}", index=expected_index)

    try:
        obj = json.loads(raw)
    except ValueError:
        raise bad("not valid JSON") from None
    if not isinstance(obj, dict):
        raise bad("expected a JSON object")
    idx = obj.get("index")
    if type(idx) is not int or idx != expected_index:
        raise MalformedExport.expected("export index (entries must be 0, 1, 2, ... without gaps)",
                                       expected_index, idx, index=expected_index)
    try:
        leaf = base64.b64decode(str(obj["leaf"]).encode("ascii"), validate=True)
    except (KeyError, binascii.Error, ValueError, UnicodeEncodeError):
        raise bad('"leaf" is missing or not valid base64') from None
    if "fact" in obj and not isinstance(obj["fact"], dict):
        raise bad('"fact" must be a JSON object')
    return leaf, obj


def verify_export(export_lines: Iterable[str | bytes], checkpoint_note: str | bytes, verifier_keys: Keys,
                  *, expected_origin: str | None = None, leaf_check: LeafCheck | None = None,
                  on_uncovered: Callable[[int], None] | None = None) -> Checkpoint:
    """Recompute the root over the first `checkpoint.size` export entries and compare.

    Lines carrying "chain" (hex) are checked against the recomputed hash chain. The
    optional `leaf_check(leaf, entry)` ties an entry's "fact" to its leaf bytes. Errors
    carry `.index`, the first bad log index, when it can be known. Entries after the
    checkpoint's size are not checked; `on_uncovered(n)` is told how many there were.
    """
    cp = verify_checkpoint(checkpoint_note, verifier_keys, expected_origin)
    hashes: list[bytes] = []
    chain = CHAIN_SEED
    lines = (ln for ln in export_lines if ln.strip())
    for i, raw in zip(range(cp.size), lines):
        leaf, entry = _parse_line(raw, i)
        chain = chain_next(chain, leaf)
        if "chain" in entry:
            try:
                claimed = bytes.fromhex(entry["chain"])
            except (TypeError, ValueError):
                raise MalformedExport(f'export line for index {i}: "chain" is not hex', index=i) from None
            if claimed != chain:
                raise ChainBroken.expected(f"hash chain at index {i}", chain, claimed, index=i)
        if leaf_check is not None and not leaf_check(leaf, entry):
            raise MalformedExport(f"export line for index {i}: fact does not match its leaf bytes", index=i)
        hashes.append(leaf_hash(leaf))
    if len(hashes) < cp.size:
        raise MalformedExport.expected("export entries covered by the checkpoint", cp.size, len(hashes),
                                       index=len(hashes))
    root = root_from_leaf_hashes(hashes)
    if root != cp.root:
        raise RootMismatch.expected(f"Merkle root over {cp.size} exported entries", cp.root, root)
    if on_uncovered is not None:
        on_uncovered(sum(1 for _ in lines))
    return cp


def _hex(obj: Mapping[str, Any], field: str) -> bytes:
    try:
        return bytes.fromhex(obj[field])
    except (KeyError, TypeError, ValueError):
        raise InvalidProof(f'proof field "{field}" is missing or not hex') from None


def _int(obj: Mapping[str, Any], field: str) -> int:
    value = obj.get(field)
    if type(value) is not int or value < 0:
        raise InvalidProof(f'proof field "{field}": expected a non-negative integer, got {value!r}')
    return value


def _hex_list(obj: Mapping[str, Any], field: str) -> list[bytes]:
    items = obj.get(field)
    if not isinstance(items, list):
        raise InvalidProof(f'proof field "{field}" must be a list of hex strings')
    try:
        return [bytes.fromhex(h) for h in items]
    except (TypeError, ValueError):
        raise InvalidProof(f'proof field "{field}" holds a non-hex entry') from None


def verify_inclusion_file(proof_json: Mapping[str, Any], checkpoint_note: str | bytes, keys: Keys,
                          *, leaf: bytes | None = None, expected_origin: str | None = None) -> Checkpoint:
    """Verify a `jejak prove` JSON against a signed checkpoint of the same size."""
    cp = verify_checkpoint(checkpoint_note, keys, expected_origin)
    index, size = _int(proof_json, "index"), _int(proof_json, "size")
    lh, root = _hex(proof_json, "leaf_hash"), _hex(proof_json, "root")
    if size != cp.size:
        raise InvalidProof.expected("proof tree size (must match the checkpoint)", cp.size, size)
    if root != cp.root:
        raise RootMismatch.expected("proof root (must match the checkpoint)", cp.root, root)
    if leaf is not None and leaf_hash(leaf) != lh:
        raise RootMismatch.expected("leaf hash of the given leaf", lh, leaf_hash(leaf), index=index)
    verify_inclusion(index, size, lh, _hex_list(proof_json, "proof"), cp.root)
    return cp


def verify_consistency_file(proof_json: Mapping[str, Any], old_checkpoint_note: str | bytes,
                            new_checkpoint_note: str | bytes, keys: Keys) -> tuple[Checkpoint, Checkpoint]:
    """Verify that the new checkpoint's log extends the old one's."""
    keys = list(keys)
    old = verify_checkpoint(old_checkpoint_note, keys)
    new = verify_checkpoint(new_checkpoint_note, keys, expected_origin=old.origin)
    size1, size2 = _int(proof_json, "size1"), _int(proof_json, "size2")
    root1, root2 = _hex(proof_json, "root1"), _hex(proof_json, "root2")
    if (size1, root1) != (old.size, old.root):
        raise InconsistentCheckpoints.expected("proof size1/root1 vs old checkpoint",
                                               f"{old.size}/{old.root.hex()}", f"{size1}/{root1.hex()}")
    if (size2, root2) != (new.size, new.root):
        raise InconsistentCheckpoints.expected("proof size2/root2 vs new checkpoint",
                                               f"{new.size}/{new.root.hex()}", f"{size2}/{root2.hex()}")
    verify_consistency(size1, size2, _hex_list(proof_json, "proof"), root1, root2)
    return old, new
