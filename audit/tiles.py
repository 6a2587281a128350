"""C2SP tlog-tiles: tile paths, the tiles of a tree size, entry bundles, and a
NodeReader over tiles (so proofs and roots come from the same code as the store's).

A tile at level L holds the Merkle nodes of tree level 8·L: tile N covers the
node indexes [N·256, N·256 + W) of that level, W = 256 when full.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from .errors import MalformedTile, MissingNode
from .merkle import HASH_SIZE, NodeKey, node_hash

__all__ = [
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "MAX_ENTRY_BYTES",
    "Tile",
    "tile_index_path",
    "tiles_for_size",
    "parse_tile_path",
    "level_tiles",
    "encode_bundle",
    "decode_bundle",
    "split_hashes",
    "TileHashReader",
]

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
MAX_ENTRY_BYTES = 0xFFFF  # a bundle entry's length is a big-endian uint16
MAX_LEVEL = 63


def tile_index_path(n: int) -> str:
    """N as zero-padded 3-digit path elements, all but the last prefixed "x": 1234067 -> x001/x234/067."""
    if n < 0:
        raise ValueError(f"tile index must be >= 0, got {n}")
    parts = [f"{n % 1000:03d}"]
    n //= 1000
    while n:
        parts.append(f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(reversed(parts))


@dataclass(frozen=True)
class Tile:
    """Tile `n` of `level` with `width` hashes (entries when `level` is None: the entry bundle)."""

    level: int | None
    n: int
    width: int

    @property
    def full(self) -> bool:
        return self.width == TILE_WIDTH

    @property
    def path(self) -> str:
        head = "tile/entries" if self.level is None else f"tile/{self.level}"
        tail = "" if self.full else f".p/{self.width}"
        return f"{head}/{tile_index_path(self.n)}{tail}"

    @property
    def merkle_level(self) -> int:
        """The tree level whose nodes the tile holds (entries hash to level 0)."""
        return 0 if self.level is None else self.level * TILE_HEIGHT

    @property
    def start(self) -> int:
        """The first node index (at `merkle_level`) in the tile."""
        return self.n * TILE_WIDTH

    def bundle(self) -> "Tile":
        """The entry bundle beside a level-0 tile."""
        if self.level != 0:
            raise ValueError("only level-0 tiles have entry bundles")
        return Tile(None, self.n, self.width)


_TILE_PATH = re.compile(r"tile/(entries|0|[1-9][0-9]?)/((?:x[0-9]{3}/)*[0-9]{3})(?:\.p/([1-9][0-9]{0,2}))?")


def parse_tile_path(rel: str) -> Tile | None:
    """The tile a path names (`tile/<L>/<N>[.p/<W>]` or `tile/entries/...`), or None if it names none."""
    m = _TILE_PATH.fullmatch(rel)
    if m is None:
        return None
    level = None if m[1] == "entries" else int(m[1])
    parts = m[2].split("/")
    width = TILE_WIDTH if m[3] is None else int(m[3])
    if (len(parts) > 1 and parts[0] == "x000") or width > TILE_WIDTH or (m[3] and width == TILE_WIDTH) \
            or (level is not None and level > MAX_LEVEL):
        return None  # one path per tile: no leading zero group, a width of 256 is the full tile
    return Tile(level, int("".join(p.lstrip("x") for p in parts)), width)


def level_tiles(size: int, level: int, first_node: int = 0) -> Iterator[Tile]:
    """The tiles of `level` in a tree of `size` leaves, from the one holding node `first_node` on."""
    count = size >> (TILE_HEIGHT * level)
    for n in range(first_node // TILE_WIDTH, -(-count // TILE_WIDTH)):
        yield Tile(level, n, min(TILE_WIDTH, count - n * TILE_WIDTH))


def tiles_for_size(size: int) -> list[Tile]:
    """Every tile (full and the rightmost partial ones) of a tree of `size` leaves, level by level."""
    out: list[Tile] = []
    level = 0
    while size >> (TILE_HEIGHT * level):
        out.extend(level_tiles(size, level))
        level += 1
    return out


def encode_bundle(leaves: Iterable[bytes]) -> bytes:
    """Entries as big-endian uint16 length-prefixed byte strings."""
    out = bytearray()
    for i, leaf in enumerate(leaves):
        if len(leaf) > MAX_ENTRY_BYTES:
            raise ValueError(f"entry {i} of the bundle: expected at most {MAX_ENTRY_BYTES} bytes, got {len(leaf)}")
        out += len(leaf).to_bytes(2, "big")
        out += leaf
    return bytes(out)


def decode_bundle(data: bytes, expected: int | None = None) -> list[bytes]:
    """The entries of a bundle; raise MalformedTile on a truncated one or the wrong count."""
    entries: list[bytes] = []
    pos = 0
    while pos < len(data):
        if pos + 2 > len(data):
            raise MalformedTile(f"entry bundle: truncated length at byte {pos}")
        length = int.from_bytes(data[pos:pos + 2], "big")
        pos += 2
        if pos + length > len(data):
            raise MalformedTile.expected(f"entry bundle: bytes of entry {len(entries)}", length, len(data) - pos)
        entries.append(data[pos:pos + length])
        pos += length
    if expected is not None and len(entries) != expected:
        raise MalformedTile.expected("entry bundle: number of entries", expected, len(entries))
    return entries


def split_hashes(data: bytes, tile: Tile) -> list[bytes]:
    """The hashes of a tile's bytes; raise MalformedTile unless there are exactly `tile.width`."""
    if len(data) != tile.width * HASH_SIZE:
        raise MalformedTile.expected(f"{tile.path}: size in bytes", tile.width * HASH_SIZE, len(data))
    return [data[i:i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


class TileHashReader:
    """A NodeReader over the tiles of a tree of `size` leaves.

    `fetch(tile)` returns the tile's bytes (as served for that size: the full
    tile, or the partial one of that width). A node at tree level 8·L + r is
    folded from the 2**r tile hashes of level L beneath it, like Go's
    golang.org/x/mod/sumdb/tlog TileHashReader. Fetched tiles are kept.
    """

    def __init__(self, size: int, fetch: Callable[[Tile], bytes]) -> None:
        self.size = size
        self._fetch = fetch
        self.tiles: dict[Tile, list[bytes]] = {}

    def tile_for(self, level: int, index: int) -> Tile | None:
        """The tile (at this size) holding node `index` of tile level `level`, or None beyond the tree."""
        count = self.size >> (TILE_HEIGHT * level)
        if index >= count:
            return None
        n = index // TILE_WIDTH
        return Tile(level, n, min(TILE_WIDTH, count - n * TILE_WIDTH))

    def hashes(self, tile: Tile) -> list[bytes]:
        got = self.tiles.get(tile)
        if got is None:
            got = self.tiles[tile] = split_hashes(self._fetch(tile), tile)
        return got

    def get_nodes(self, keys: Sequence[NodeKey]) -> dict[NodeKey, bytes]:
        out: dict[NodeKey, bytes] = {}
        for level, index in keys:
            tile_level, rest = divmod(level, TILE_HEIGHT)
            first, last = index << rest, ((index + 1) << rest) - 1
            tile = self.tile_for(tile_level, last) if tile_level <= MAX_LEVEL else None
            if tile is None:
                continue  # not a complete node of this tree: absent, as NodeReader says
            hashes = self.hashes(tile)[first - tile.start:last + 1 - tile.start]
            while len(hashes) > 1:
                hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
            out[(level, index)] = hashes[0]
        return out

    def require(self, key: NodeKey) -> bytes:
        got = self.get_nodes([key])
        if key not in got:
            raise MissingNode(f"tree node (level {key[0]}, index {key[1]}) is beyond a tree of {self.size}")
        return got[key]
