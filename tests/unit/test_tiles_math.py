"""audit.tiles: C2SP tlog-tiles paths and tile sets (the specification's own
examples), entry bundles, and proofs read through tiles equal to the tree's."""

from __future__ import annotations

import pytest

from jejak.audit.errors import MalformedTile
from jejak.audit.merkle import MemoryNodeStore, consistency_proof, inclusion_proof, leaf_hash, root_at
from jejak.audit.tiles import Tile, TileHashReader, decode_bundle, encode_bundle, tile_index_path, tiles_for_size


def test_index_paths_follow_the_specification() -> None:
    assert tile_index_path(1234067) == "x001/x234/067"  # the example of c2sp.org/tlog-tiles
    assert [tile_index_path(n) for n in (0, 7, 999, 1000)] == ["000", "007", "999", "x001/000"]
    assert Tile(0, 1, 256).path == "tile/0/001" and Tile(2, 1000, 3).path == "tile/2/x001/000.p/3"
    assert Tile(None, 5, 17).path == "tile/entries/005.p/17"


def test_tiles_of_a_size_follow_the_specification() -> None:
    tiles = tiles_for_size(70000)  # "273 full level 0 tiles, one partial of width 112, one full level 1 tile, ..."
    assert sum(t.level == 0 and t.full for t in tiles) == 273
    assert [(t.level, t.n, t.width) for t in tiles if not t.full] == [(0, 273, 112), (1, 1, 17), (2, 0, 1)]
    assert sum(t.level == 1 and t.full for t in tiles) == 1 and len(tiles) == 277
    assert [(t.level, t.n, t.width) for t in tiles_for_size(256)] == [(0, 0, 256), (1, 0, 1)]
    assert tiles_for_size(0) == []


def test_bundles_round_trip_and_refuse_bad_bytes() -> None:
    leaves = [b"", b"a", bytes(300), bytes(65535)]
    data = encode_bundle(leaves)
    assert data[:5] == b"\x00\x00\x00\x01a" and data[5:7] == (300).to_bytes(2, "big")
    assert decode_bundle(data, expected=4) == leaves
    with pytest.raises(MalformedTile):
        decode_bundle(data[:-1])
    with pytest.raises(MalformedTile):
        decode_bundle(data, expected=5)
    with pytest.raises(ValueError):
        encode_bundle([bytes(65536)])


@pytest.mark.parametrize("size", [1, 2, 255, 256, 257, 511, 65536 + 300, 70000])
def test_proofs_through_tiles_equal_the_trees(size: int) -> None:
    tree = MemoryNodeStore()
    tree.append(0, [leaf_hash(i.to_bytes(4, "big")) for i in range(size)])
    full = tree

    def fetch(tile: Tile) -> bytes:
        level = tile.merkle_level
        return b"".join(full.nodes[(level, tile.start + i)] for i in range(tile.width))

    reader = TileHashReader(size, fetch)
    assert root_at(size, reader) == root_at(size, full)
    for index in {0, size // 2, size - 1}:
        assert inclusion_proof(index, size, reader) == inclusion_proof(index, size, full)
    for old in {1, size // 3 or 1, size - 1 or 1}:
        assert consistency_proof(old, size, reader) == consistency_proof(old, size, full)
    assert all(len(reader.tiles[t]) == t.width for t in reader.tiles)  # whole tiles were fetched
