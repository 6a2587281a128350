"""Property tests: the storage-backed tree agrees with the RFC 9162 definition."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jejak.audit.errors import MissingNode, VerificationError
from jejak.audit.merkle import (
    MemoryNodeStore,
    append_to_frontier,
    PrefetchedReader,
    consistency_keys,
    consistency_proof,
    frontier_keys,
    inclusion_keys,
    inclusion_proof,
    leaf_hash,
    new_nodes_for_append,
    node_hash,
    root_at,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
sizes = st.integers(min_value=1, max_value=300)


def mth(hashes: list[bytes]) -> bytes:
    """Literal RFC 9162 §2.1.1 MTH recursion, as an independent reference."""
    if len(hashes) == 1:
        return hashes[0]
    k = 1 << ((len(hashes) - 1).bit_length() - 1)
    return node_hash(mth(hashes[:k]), mth(hashes[k:]))


def leaves(n: int) -> list[bytes]:
    return [leaf_hash(hashlib.sha256(i.to_bytes(8, "big")).digest()) for i in range(n)]


def build(hashes: list[bytes], cuts: list[int] = ()) -> MemoryNodeStore:
    store, size = MemoryNodeStore(), 0
    for end in sorted({c for c in cuts if 0 < c < len(hashes)}) + [len(hashes)]:
        size = store.append(size, hashes[size:end])
    return store


def flip(b: bytes, bit: int) -> bytes:
    out = bytearray(b)
    out[bit // 8 % len(out)] ^= 1 << (bit % 8)
    return bytes(out)


@SETTINGS
@given(sizes)
def test_inclusion_every_index(n: int) -> None:
    hashes = leaves(n)
    store = build(hashes)
    root = root_from_leaf_hashes(hashes)
    assert root == mth(hashes) == root_at(n, store)
    for i in range(n):
        verify_inclusion(i, n, hashes[i], inclusion_proof(i, n, store), root)


@SETTINGS
@given(sizes, st.data())
def test_consistency_between_random_sizes(n: int, data: st.DataObject) -> None:
    hashes = leaves(n)
    store = build(hashes)
    for _ in range(5):
        m = data.draw(st.integers(1, n))
        proof = consistency_proof(m, n, store)
        verify_consistency(m, n, proof, root_from_leaf_hashes(hashes[:m]), root_at(n, store))
        assert root_at(m, store) == mth(hashes[:m])


@SETTINGS
@given(sizes, st.data())
def test_bit_flips_fail(n: int, data: st.DataObject) -> None:
    hashes = leaves(n)
    store = build(hashes)
    root = root_at(n, store)
    i = data.draw(st.integers(0, n - 1))
    proof = inclusion_proof(i, n, store)
    bit = data.draw(st.integers(0, 255))
    with pytest.raises(VerificationError):
        verify_inclusion(i, n, hashes[i], proof, flip(root, bit))
    with pytest.raises(VerificationError):
        verify_inclusion(i, n, flip(hashes[i], bit), proof, root)
    for j in range(len(proof)):
        bad = proof[:j] + [flip(proof[j], bit)] + proof[j + 1:]
        with pytest.raises(VerificationError):
            verify_inclusion(i, n, hashes[i], bad, root)

    m = data.draw(st.integers(1, n))
    cproof = consistency_proof(m, n, store)
    root1 = root_at(m, store)
    with pytest.raises(VerificationError):
        verify_consistency(m, n, cproof, flip(root1, bit), root)
    with pytest.raises(VerificationError):
        verify_consistency(m, n, cproof, root1, flip(root, bit))
    for j in range(len(cproof)):
        bad = cproof[:j] + [flip(cproof[j], bit)] + cproof[j + 1:]
        with pytest.raises(VerificationError):
            verify_consistency(m, n, bad, root1, root)


@SETTINGS
@given(sizes, st.lists(st.integers(1, 299), max_size=12))
def test_batch_splits_give_same_nodes(n: int, cuts: list[int]) -> None:
    hashes = leaves(n)
    one, split = build(hashes), build(hashes, cuts)
    assert one.nodes == split.nodes
    # exactly the complete subtrees are stored
    expected = sum(n >> level for level in range(n.bit_length()))
    assert len(one.nodes) == expected
    for m in {c for c in cuts if c <= n} | {n}:
        assert root_at(m, split) == root_from_leaf_hashes(hashes[:m])


def test_reads_are_batched_and_logarithmic() -> None:
    n = 5000
    hashes = leaves(n)
    store = build(hashes, list(range(0, n, 777)))
    for call in (lambda: root_at(4999, store), lambda: inclusion_proof(1234, 4999, store),
                 lambda: consistency_proof(1000, 4999, store),
                 lambda: new_nodes_for_append(4999, hashes[:3], store)):
        store.reads = store.keys_read = 0
        call()
        assert store.reads == 1
        assert store.keys_read <= 2 * 13 + 2


def test_missing_node_raises() -> None:
    store = build(leaves(10))
    del store.nodes[(3, 0)]
    with pytest.raises(MissingNode):
        root_at(10, store)
    with pytest.raises(MissingNode):
        new_nodes_for_append(10, leaves(1), store)


def test_proof_argument_errors() -> None:
    store = build(leaves(4))
    with pytest.raises(ValueError):
        inclusion_proof(4, 4, store)
    with pytest.raises(ValueError):
        consistency_proof(0, 4, store)
    with pytest.raises(ValueError):
        consistency_proof(3, 2, store)
    assert consistency_proof(4, 4, store) == []


class RecordingReader:
    def __init__(self, inner: MemoryNodeStore) -> None:
        self.inner, self.keys, self.reads = inner, set(), 0

    def get_nodes(self, keys):
        self.reads += 1
        self.keys.update(keys)
        return self.inner.get_nodes(keys)


@SETTINGS
@given(sizes, st.data())
def test_listed_keys_are_exactly_what_proofs_read(n: int, data: st.DataObject) -> None:
    store = build(leaves(n))
    index = data.draw(st.integers(0, n - 1))
    seen = RecordingReader(store)
    inclusion_proof(index, n, seen)
    assert seen.keys == set(inclusion_keys(index, n))
    size1 = data.draw(st.integers(1, n))
    seen = RecordingReader(store)
    consistency_proof(size1, n, seen)
    assert seen.keys == set(consistency_keys(size1, n))

    # prefetched once, a proof and both roots need no further read, and agree with the plain reader
    seen = RecordingReader(store)
    reader = PrefetchedReader(seen, [*inclusion_keys(index, n), *frontier_keys(n)])
    assert inclusion_proof(index, n, reader) == inclusion_proof(index, n, store)
    assert root_at(n, reader) == root_at(n, store)
    assert seen.reads == 1


def test_prefetched_reader_falls_back_and_reports_missing() -> None:
    store = build(leaves(40))
    seen = RecordingReader(store)
    reader = PrefetchedReader(seen, [(0, 1)])
    assert root_at(40, reader) == root_at(40, store)  # keys outside the prefetch: one more read
    assert seen.reads == 2
    with pytest.raises(MissingNode):
        root_at(41, PrefetchedReader(store, frontier_keys(41)))


@SETTINGS
@given(st.lists(st.integers(min_value=0, max_value=70), min_size=1, max_size=8), st.integers(min_value=0, max_value=5))
def test_append_to_frontier_gives_the_nodes_and_frontier_of_leaf_by_leaf_appends(
    appends: list[int], min_level: int,
) -> None:
    """The planned ingest's level-by-level append (memory frontier only) makes
    exactly the nodes the storage-backed append makes, and the next frontier;
    the tree it builds has the RFC 9162 root."""
    store, frontier, size, leaves = MemoryNodeStore(), {}, 0, []
    for count in appends:
        hashes = [leaf_hash(f"{size + i}".encode()) for i in range(count)]
        expected = new_nodes_for_append(size, hashes, store)
        got, frontier = append_to_frontier(size, frontier, hashes, min_level)
        assert sorted(got) == sorted(n for n in expected if n[0] >= min_level)
        store.put(expected)
        size += count
        leaves += hashes
        assert frontier == {key: store.nodes[key] for key in frontier_keys(size)}
    if size:
        assert root_at(size, MemoryNodeStore(frontier)) == mth(leaves)


def test_append_to_frontier_names_a_missing_frontier_node() -> None:
    with pytest.raises(MissingNode, match="level 0, index 2"):
        append_to_frontier(3, {}, [leaf_hash(b"x")])


@pytest.mark.parametrize("index", [-1, 5, 6])
def test_an_index_outside_the_tree_is_refused_as_such(index: int) -> None:
    """Not a root mismatch further on: the index itself is named (0 <= index < size)."""
    from jejak.audit.errors import InvalidProof
    from jejak.audit.merkle import leaf_hash, root_from_leaf_hashes, verify_inclusion

    leaves = [leaf_hash(bytes([i])) for i in range(5)]
    with pytest.raises(InvalidProof, match=f"index out of range: expected index < size 5, got {index}"):
        verify_inclusion(index, 5, leaves[0], [], root_from_leaf_hashes(leaves))


def test_consistency_proof_errors_are_named() -> None:
    from jejak.audit.errors import InvalidProof
    from jejak.audit.merkle import MemoryNodeStore, consistency_proof, leaf_hash, root_from_leaf_hashes, verify_consistency

    leaves = [leaf_hash(bytes([i])) for i in range(7)]
    store = MemoryNodeStore()
    store.append(0, leaves)
    r3, r7 = root_from_leaf_hashes(leaves[:3]), root_from_leaf_hashes(leaves)
    proof = consistency_proof(3, 7, store)
    verify_consistency(3, 7, proof, r3, r7)
    with pytest.raises(InvalidProof, match="proof length for equal sizes: expected 0, got 1"):
        verify_consistency(7, 7, proof[:1], r7, r7)
    with pytest.raises(InvalidProof, match=r"proof\[1\]: expected 32-byte hash, got 31 bytes"):
        verify_consistency(3, 7, [proof[0], proof[1][:31], *proof[2:]], r3, r7)


def test_an_inclusion_proof_hash_of_the_wrong_length_is_named() -> None:
    from jejak.audit.errors import InvalidProof
    from jejak.audit.merkle import MemoryNodeStore, inclusion_proof, leaf_hash, root_from_leaf_hashes, verify_inclusion

    leaves = [leaf_hash(bytes([i])) for i in range(6)]
    store = MemoryNodeStore()
    store.append(0, leaves)
    proof, root = inclusion_proof(2, 6, store), root_from_leaf_hashes(leaves)
    verify_inclusion(2, 6, leaves[2], proof, root)
    with pytest.raises(InvalidProof, match=r"proof\[1\]: expected 32-byte hash, got 33 bytes"):
        verify_inclusion(2, 6, leaves[2], [proof[0], proof[1] + b"\x00", *proof[2:]], root)


def test_proof_length_errors_name_the_expected_length() -> None:
    from jejak.audit.errors import InvalidProof
    from jejak.audit.merkle import (
        MemoryNodeStore, consistency_proof, inclusion_proof, leaf_hash, root_from_leaf_hashes, verify_consistency,
        verify_inclusion,
    )

    leaves = [leaf_hash(bytes([i])) for i in range(7)]
    store = MemoryNodeStore()
    store.append(0, leaves)
    root = root_from_leaf_hashes(leaves)
    proof = inclusion_proof(4, 7, store)  # 2 inner + 1 border
    with pytest.raises(InvalidProof, match="inclusion proof length: expected 3, got 2"):
        verify_inclusion(4, 7, leaves[4], proof[:2], root)
    for size1 in (3, 5, 6):
        proof = consistency_proof(size1, 7, store)
        want = len(proof)
        with pytest.raises(InvalidProof, match=f"consistency proof length: expected {want}, got {want + 1}"):
            verify_consistency(size1, 7, [*proof, proof[0]], root_from_leaf_hashes(leaves[:size1]), root)
