"""RFC 9162 §2.1 Merkle tree: hashing, proof verification, and a storage-backed log tree.

Storage model: a node (level, index) is the hash of the perfect subtree over leaves
[index * 2**level, (index + 1) * 2**level); level 0 holds the leaf hashes. Only such
complete nodes are ever stored. Every other subtree hash is folded from them on demand.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Protocol

from .errors import InvalidProof, MissingNode, RootMismatch, show

__all__ = [
    "LEAF_PREFIX",
    "NODE_PREFIX",
    "HASH_SIZE",
    "EMPTY_ROOT",
    "leaf_hash",
    "node_hash",
    "root_from_leaf_hashes",
    "verify_inclusion",
    "verify_consistency",
    "NodeKey",
    "NodeReader",
    "MemoryNodeStore",
    "new_nodes_for_append",
    "append_to_frontier",
    "read_required",
    "frontier_keys",
    "root_at",
    "compact_range_root",
    "inclusion_proof",
    "consistency_proof",
    "inclusion_keys",
    "consistency_keys",
    "PrefetchedReader",
]

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeKey = tuple[int, int]


def leaf_hash(leaf: bytes) -> bytes:
    """SHA-256(0x00 ‖ leaf)."""
    return hashlib.sha256(LEAF_PREFIX + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 ‖ left ‖ right)."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """MTH over the given leaf hashes; the empty tree hashes to SHA-256("")."""
    if not hashes:
        return EMPTY_ROOT
    # Fold the perfect subtrees left to right, keeping one pending node per level.
    stack: list[tuple[int, bytes]] = []  # (level, hash), levels strictly decreasing
    for h in hashes:
        level = 0
        while stack and stack[-1][0] == level:
            h = node_hash(stack.pop()[1], h)
            level += 1
        stack.append((level, h))
    root = stack.pop()[1]
    while stack:
        root = node_hash(stack.pop()[1], root)
    return root


# --- verification (transparency-dev/merkle semantics) -------------------------------


def _check_len(what: str, h: bytes) -> None:
    if len(h) != HASH_SIZE:
        raise InvalidProof(f"{what}: expected {HASH_SIZE}-byte hash, got {len(h)} bytes")


def _chain_inner(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for i, h in enumerate(proof):
        seed = node_hash(seed, h) if (index >> i) & 1 == 0 else node_hash(h, seed)
    return seed


def _chain_inner_right(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for i, h in enumerate(proof):
        if (index >> i) & 1:
            seed = node_hash(h, seed)
    return seed


def _chain_border_right(seed: bytes, proof: Sequence[bytes]) -> bytes:
    for h in proof:
        seed = node_hash(h, seed)
    return seed


def _decomp_incl_proof(index: int, size: int) -> tuple[int, int]:
    inner = (index ^ (size - 1)).bit_length()
    border = bin(index >> inner).count("1")
    return inner, border


def verify_inclusion(index: int, size: int, leaf_hash: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Check an RFC 9162 §2.1.3 inclusion proof; raise InvalidProof or RootMismatch."""
    if index < 0 or index >= size:
        raise InvalidProof(f"index out of range: expected index < size {size}, got {index}")
    proof = list(proof or ())
    _check_len("leaf hash", leaf_hash)
    _check_len("root", root)
    inner, border = _decomp_incl_proof(index, size)
    if len(proof) != inner + border:
        raise InvalidProof.expected("inclusion proof length", inner + border, len(proof))
    for i, h in enumerate(proof):
        _check_len(f"proof[{i}]", h)
    calc = _chain_border_right(_chain_inner(leaf_hash, proof[:inner], index), proof[inner:])
    if calc != root:
        raise RootMismatch(f"inclusion of leaf {index} in tree of size {size}: "
                           f"expected root {show(root)}, got {show(calc)}", index=index)


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """Check an RFC 9162 §2.1.4 consistency proof; raise InvalidProof or RootMismatch."""
    proof = list(proof or ())
    if size1 <= 0:
        raise InvalidProof(f"consistency from an empty tree is meaningless: expected size1 >= 1, got {size1}")
    if size2 < size1:
        raise InvalidProof(f"size2 < size1: expected size2 >= {size1}, got {size2}")
    if size1 == size2:
        if proof:
            raise InvalidProof.expected("proof length for equal sizes", 0, len(proof))
        if root1 != root2:
            raise RootMismatch.expected(f"root of equal-size ({size1}) trees", root1, root2)
        return
    if not proof:
        raise InvalidProof(f"empty consistency proof for sizes {size1} -> {size2}")
    _check_len("root1", root1)
    _check_len("root2", root2)
    for i, h in enumerate(proof):
        _check_len(f"proof[{i}]", h)

    inner, border = _decomp_incl_proof(size1 - 1, size2)
    shift = (size1 & -size1).bit_length() - 1  # trailing zeros of size1
    inner -= shift
    if size1 == 1 << shift:
        seed, start = root1, 0
    else:
        seed, start = proof[0], 1
    if len(proof) != start + inner + border:
        raise InvalidProof.expected("consistency proof length", start + inner + border, len(proof))
    rest = proof[start:]
    mask = (size1 - 1) >> shift
    hash1 = _chain_border_right(_chain_inner_right(seed, rest[:inner], mask), rest[inner:])
    if hash1 != root1:
        raise RootMismatch.expected(f"root1 (size {size1}) from consistency proof", root1, hash1)
    hash2 = _chain_border_right(_chain_inner(seed, rest[:inner], mask), rest[inner:])
    if hash2 != root2:
        raise RootMismatch.expected(f"root2 (size {size2}) from consistency proof", root2, hash2)


# --- storage-backed tree ----------------------------------------------------------


class NodeReader(Protocol):
    """Batch reader of stored complete-subtree nodes; missing keys are simply absent."""

    def get_nodes(self, keys: Sequence[NodeKey]) -> dict[NodeKey, bytes]: ...


class MemoryNodeStore:
    """In-memory NodeReader (tests, offline verification, a log tail's frontier)."""

    def __init__(self, nodes: dict[NodeKey, bytes] | None = None) -> None:
        self.nodes: dict[NodeKey, bytes] = dict(nodes or {})
        self.reads = 0  # number of get_nodes calls, for tests
        self.keys_read = 0

    def get_nodes(self, keys: Sequence[NodeKey]) -> dict[NodeKey, bytes]:
        self.reads += 1
        self.keys_read += len(keys)
        return {k: self.nodes[k] for k in keys if k in self.nodes}

    def put(self, nodes: Iterable[tuple[int, int, bytes]]) -> None:
        for level, index, h in nodes:
            self.nodes[(level, index)] = h

    def append(self, size: int, new_leaf_hashes: Sequence[bytes]) -> int:
        """Append leaf hashes to a tree of `size` leaves; return the new size."""
        self.put(new_nodes_for_append(size, new_leaf_hashes, self))
        return size + len(new_leaf_hashes)


def read_required(reader: NodeReader, keys: Sequence[NodeKey]) -> dict[NodeKey, bytes]:
    """One batched read; raise MissingNode if any key is absent."""
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return {}
    got = reader.get_nodes(wanted)
    for k in wanted:
        if k not in got:
            raise MissingNode(f"tree node (level {k[0]}, index {k[1]}) is missing from storage",
                              index=k[1] << k[0])
    return got


def _range_keys(begin: int, end: int) -> list[NodeKey]:
    """Perfect nodes covering [begin, end), left to right, largest first.

    Valid for ranges that are RFC 9162 subtrees: begin is a multiple of the
    largest power of two not exceeding end - begin (or end - begin is a power of two).
    """
    keys: list[NodeKey] = []
    n = end - begin
    for level in range(n.bit_length() - 1, -1, -1):
        if n >> level & 1:
            keys.append((level, begin >> level))
            begin += 1 << level
    return keys


def _fold(keys: Sequence[NodeKey], nodes: dict[NodeKey, bytes]) -> bytes:
    """Hash a subtree from its perfect nodes (left to right), folding from the right."""
    h = nodes[keys[-1]]
    for k in reversed(keys[:-1]):
        h = node_hash(nodes[k], h)
    return h


def _ranges_hashes(ranges: Sequence[tuple[int, int]], reader: NodeReader) -> list[bytes]:
    """Hashes of RFC 9162 subtree ranges with a single batched read."""
    per_range = [_range_keys(b, e) for b, e in ranges]
    nodes = read_required(reader, [k for ks in per_range for k in ks])
    return [_fold(ks, nodes) for ks in per_range]


def frontier_keys(size: int) -> list[NodeKey]:
    """The perfect nodes whose fold is the root of a tree of `size` leaves."""
    return _range_keys(0, size)


def new_nodes_for_append(size: int, new_leaf_hashes: Sequence[bytes], reader: NodeReader) -> list[tuple[int, int, bytes]]:
    """All (level, index, hash) nodes completed by appending leaves to a tree of `size`.

    Reads only the right frontier of the existing tree, in one batch.
    """
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    if not new_leaf_hashes:
        return []
    keys = frontier_keys(size)
    stored = read_required(reader, keys)
    pending: dict[int, bytes] = {level: stored[(level, idx)] for level, idx in keys}
    out: list[tuple[int, int, bytes]] = []
    for offset, h in enumerate(new_leaf_hashes):
        if len(h) != HASH_SIZE:
            raise ValueError(f"leaf hash {size + offset}: expected {HASH_SIZE} bytes, got {len(h)}")
        level, idx = 0, size + offset
        out.append((0, idx, h))
        while idx & 1:
            h = node_hash(pending.pop(level), h)
            level, idx = level + 1, idx >> 1
            out.append((level, idx, h))
        pending[level] = h
    return out


def append_to_frontier(
    size: int, frontier: dict[NodeKey, bytes], new_leaf_hashes: Sequence[bytes], min_level: int = 0,
) -> tuple[list[tuple[int, int, bytes]], dict[NodeKey, bytes]]:
    """`new_nodes_for_append` for a caller holding the tree's right frontier
    (`frontier_keys(size)` -> hash) in memory, level by level instead of leaf
    by leaf: (the new nodes of level >= `min_level`, the frontier after).

    At each level the new nodes are a contiguous run; a run starting at an odd
    index pairs first with the frontier node on its left."""
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    for offset, h in enumerate(new_leaf_hashes):
        if len(h) != HASH_SIZE:
            raise ValueError(f"leaf hash {size + offset}: expected {HASH_SIZE} bytes, got {len(h)}")
    new_size = size + len(new_leaf_hashes)
    sha256, prefix = hashlib.sha256, NODE_PREFIX
    out: list[tuple[int, int, bytes]] = []
    after: dict[NodeKey, bytes] = {}
    level, start, run = 0, size, list(new_leaf_hashes)
    while run:
        if level >= min_level:
            out.extend((level, start + i, h) for i, h in enumerate(run))
        end = start + len(run)  # the run covers [start, end) at this level
        if (new_size >> level) & 1:
            after[(level, end - 1)] = run[-1]  # an unpaired last node is on the new frontier
        if start & 1:
            left = (level, start - 1)
            if left not in frontier:
                raise MissingNode(f"tree node (level {level}, index {start - 1}) is missing from the frontier",
                                  index=(start - 1) << level)
            run = [frontier[left]] + run
            start -= 1
        pairs = len(run) // 2
        run = [sha256(prefix + run[2 * i] + run[2 * i + 1]).digest() for i in range(pairs)]
        level, start = level + 1, start >> 1
    for key, h in frontier.items():  # old frontier nodes no new node covers
        level, idx = key
        if (new_size >> level) & 1 and idx == (new_size >> level) - 1 and key not in after:
            after[key] = h
    return out, after


def root_at(size: int, reader: NodeReader) -> bytes:
    """Root of the first `size` leaves from stored nodes (O(log n) keys, one read)."""
    if size < 0:
        raise ValueError(f"size must be >= 0, got {size}")
    if size == 0:
        return EMPTY_ROOT
    return _ranges_hashes([(0, size)], reader)[0]


compact_range_root = root_at


def _inclusion_ranges(index: int, begin: int, end: int) -> list[tuple[int, int]]:
    """RFC 9162 PATH(index, D[begin:end]) as subtree ranges, leaf side first."""
    out: list[tuple[int, int]] = []
    while end - begin > 1:
        k = _split(end - begin)
        if index < begin + k:
            out.append((begin + k, end))
            end = begin + k
        else:
            out.append((begin, begin + k))
            begin += k
    out.reverse()
    return out


def inclusion_proof(index: int, size: int, reader: NodeReader) -> list[bytes]:
    """RFC 9162 §2.1.3 inclusion proof for leaf `index` in the tree of `size` leaves."""
    if not 0 <= index < size:
        raise ValueError(f"index must be in [0, {size}), got {index}")
    return _ranges_hashes(_inclusion_ranges(index, 0, size), reader)


def _consistency_ranges(size1: int, size2: int) -> list[tuple[int, int]]:
    """RFC 9162 SUBPROOF(size1, D[0:size2], true) as subtree ranges, leaf side first."""
    out: list[tuple[int, int]] = []
    begin, end, complete = 0, size2, True
    while size1 != end:
        k = _split(end - begin)
        if size1 <= begin + k:
            out.append((begin + k, end))
            end = begin + k
        else:
            out.append((begin, begin + k))
            begin, complete = begin + k, False
    if not complete:
        out.append((begin, end))
    out.reverse()
    return out


def inclusion_keys(index: int, size: int) -> list[NodeKey]:
    """Every node `inclusion_proof(index, size)` reads (so a store can fetch them at once)."""
    return [k for b, e in _inclusion_ranges(index, 0, size) for k in _range_keys(b, e)]


def consistency_keys(size1: int, size2: int) -> list[NodeKey]:
    """Every node `consistency_proof(size1, size2)` reads."""
    return [k for b, e in _consistency_ranges(size1, size2) for k in _range_keys(b, e)]


class PrefetchedReader:
    """A NodeReader that fetched a known set of keys in one read and falls back to `reader` for others."""

    def __init__(self, reader: NodeReader, keys: Sequence[NodeKey]) -> None:
        self._reader = reader
        self._nodes = reader.get_nodes(list(dict.fromkeys(keys)))

    def get_nodes(self, keys: Sequence[NodeKey]) -> dict[NodeKey, bytes]:
        missing = [k for k in keys if k not in self._nodes]
        if missing:
            self._nodes.update(self._reader.get_nodes(missing))
        return {k: self._nodes[k] for k in keys if k in self._nodes}


def consistency_proof(size1: int, size2: int, reader: NodeReader) -> list[bytes]:
    """RFC 9162 §2.1.4 consistency proof between tree sizes size1 <= size2."""
    if not 0 < size1 <= size2:
        raise ValueError(f"need 0 < size1 <= size2, got size1={size1}, size2={size2}")
    return _ranges_hashes(_consistency_ranges(size1, size2), reader)
