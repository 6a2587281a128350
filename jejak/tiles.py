"""The log as C2SP tlog-tiles, read straight from the store: for `jejak tiles DIR`
(static files) and for `jejak serve` (/public/v1/tlog/).

Level-0 tiles are the leaf hashes kept in the log rows, entry bundles the stored
events' bytes (the exact leaves `jejak export` gives), tiles of level L >= 1 the
stored Merkle nodes of tree level 8·L. Everything is read a range at a time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from jejak.audit.checkpoint import Checkpoint
from jejak.audit.errors import MalformedCheckpoint, MalformedNote, RootMismatch, VerificationError
from jejak.audit.merkle import leaf_hash, root_at
from jejak.audit.tiles import TILE_HEIGHT, Tile, TileHashReader, encode_bundle, level_tiles, parse_tile_path
from jejak.settings import Settings
from jejak.store.datastore import Store
from jejak.store.recorders import blob
from jejak.transparency import StoredCheckpoint, Transparency

#: Tiles of a level >= 1 read from the store in one query (level 0 is streamed with its entries).
TILES_PER_READ = 64


class TilesError(Exception):
    """`jejak tiles` cannot (or must not) write: no checkpoint, another tree in DIR, a bad store."""


class StoreTiles:
    """Tile and entry-bundle bytes of the log, read from the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _level0_rows(self, start: int, stop: int) -> list[tuple[int, bytes]]:
        rows = self.store.query(
            "SELECT idx, leaf_hash AS hash FROM jejak_log WHERE idx >= ? AND idx < ? ORDER BY idx", (start, stop))
        return [(r["idx"], blob(r["hash"])) for r in rows]

    def _node_rows(self, merkle_level: int, start: int, stop: int) -> list[tuple[int, bytes]]:
        rows = self.store.query(
            "SELECT idx, hash FROM jejak_nodes WHERE level = ? AND idx >= ? AND idx < ? ORDER BY idx",
            (merkle_level, start, stop))
        return [(r["idx"], blob(r["hash"])) for r in rows]

    def _hashes(self, merkle_level: int, start: int, stop: int) -> list[bytes]:
        if merkle_level == 0:
            rows = self._level0_rows(start, stop)
        else:
            rows = self._node_rows(merkle_level, start, stop)
        return _contiguous(rows, start, stop, f"Merkle node (level {merkle_level}")

    def tile_bytes(self, tile: Tile) -> bytes:
        """One tile or entry bundle (the serving path)."""
        if tile.level is None:
            return next(self.level0([tile]))[2]
        return b"".join(self._hashes(tile.merkle_level, tile.start, tile.start + tile.width))

    def tiles(self, tiles: list[Tile]) -> Iterator[tuple[Tile, bytes]]:
        """Hash tiles of one level, contiguous and in order, read TILES_PER_READ at a time."""
        for chunk in _chunks(tiles):
            start, stop = chunk[0].start, chunk[-1].start + chunk[-1].width
            hashes = self._hashes(chunk[0].merkle_level, start, stop)
            for tile in chunk:
                yield tile, b"".join(hashes[tile.start - start:tile.start - start + tile.width])

    def level0(self, tiles: list[Tile]) -> Iterator[tuple[Tile, bytes, bytes]]:
        """Level-0 tiles (contiguous, in order) with their entry bundles, from one
        streamed scan of the log; each leaf is checked against its stored leaf hash."""
        if not tiles:
            return
        tiles = [Tile(0, t.n, t.width) for t in tiles]
        start, stop = tiles[0].start, tiles[-1].start + tiles[-1].width
        rows = iter(self.store.scan_log_from(start, stop))
        for tile in tiles:
            hashes, leaves = [], []
            for expected in range(tile.start, tile.start + tile.width):
                idx, _fact_id, _chain, hashed, leaf = next(rows, (None, None, None, None, None))
                if idx != expected:
                    raise RootMismatch(f"log entry {expected} is missing from the store; run `jejak verify`",
                                       index=expected)
                if leaf is None:
                    raise RootMismatch(f"log entry {idx}: its stored event is missing; run `jejak verify`", index=idx)
                if leaf_hash(leaf) != hashed:
                    raise RootMismatch.expected(f"leaf hash of log entry {idx} (run `jejak verify`)",
                                                hashed, leaf_hash(leaf), index=idx)
                hashes.append(hashed)
                leaves.append(leaf)
            yield tile, b"".join(hashes), encode_bundle(leaves)


def _chunks(tiles: list[Tile]) -> Iterator[list[Tile]]:
    for i in range(0, len(tiles), TILES_PER_READ):
        yield tiles[i:i + TILES_PER_READ]


def _contiguous(rows: list[tuple[int, bytes]], start: int, stop: int, what: str) -> list[bytes]:
    if len(rows) != stop - start:
        have = {i for i, _ in rows}
        missing = next(i for i in range(start, stop) if i not in have)
        raise RootMismatch(f"{what}, index {missing}) is missing from the store; run `jejak verify`")
    return [h for _, h in rows]


# --------------------------------------------------------------------------- DIR

def write_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write by temp file and rename: a reader sees the old file or the new one, never a part.

    `durable=False` leaves the flush to the caller (one `os.sync()` for many tiles
    instead of a journal commit per file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


@dataclass
class TilesResult:
    size: int
    written: int
    kept: int
    removed: int

    def as_dict(self) -> dict[str, int]:
        return {"size": self.size, "written": self.written, "kept": self.kept, "removed": self.removed}


class TilesWriter:
    """`jejak tiles DIR`: the log up to its latest recorded checkpoint as static tiles."""

    def __init__(self, store: Store, settings: Settings, out: Path) -> None:
        self.store, self.settings, self.out = store, settings, out
        self.source = StoreTiles(store)

    def run(self) -> TilesResult:
        cp = Transparency(self.store, self.settings).latest_checkpoint()
        if cp is None:
            raise TilesError("no checkpoint has been recorded yet: run `jejak checkpoint` first")
        if root_at(cp.size, self.store.node_reader()) != cp.root:
            raise TilesError(f"the stored tree does not give the root of checkpoint #{cp.seq}; run `jejak verify`")
        old_size = self._published_size(cp)
        self._check_foreign_tiles(old_size)
        result = TilesResult(cp.size, 0, 0, 0)
        self._write_tiles(cp.size, old_size, result)
        self._check_published_root(cp)
        if result.written:
            os.sync()  # every tile is on disk before the checkpoint that names it
        published = self.out / "checkpoint"
        note = cp.note.encode("utf-8")
        if not (published.is_file() and published.read_bytes() == note):
            write_atomic(published, note)
        return result

    def _published_size(self, cp: StoredCheckpoint) -> int:
        """The size of the checkpoint DIR holds (0 if none), once it is known to be a prefix of this log."""
        path = self.out / "checkpoint"
        if not path.exists():
            return 0
        try:
            text = path.read_text(encoding="utf-8")
            old = Checkpoint.parse(text.split("\n\n", 1)[0] + "\n")
        except (OSError, UnicodeDecodeError, MalformedCheckpoint, MalformedNote) as exc:
            raise TilesError(f"{path} is not a checkpoint of this log ({exc}); use an empty directory") from None
        if old.origin != self.settings.origin:
            raise TilesError(f"{self.out} holds tiles of another log: checkpoint origin expected "
                             f"{self.settings.origin!r}, got {old.origin!r}; use an empty directory")
        if old.size > cp.size:
            raise TilesError(f"{self.out} holds a tree of {old.size} entries, larger than this log's latest "
                             f"checkpoint ({cp.size}): another tree; use an empty directory")
        if old.size and root_at(old.size, self.store.node_reader()) != old.root:
            raise TilesError(f"{self.out} holds a different tree: its checkpoint of size {old.size} has root "
                             f"{old.root.hex()}, this log's first {old.size} entries do not; use an empty directory")
        return old.size

    def _check_foreign_tiles(self, published: int) -> None:
        """Tile files DIR holds beyond its checkpoint (an interrupted run, another tree) must be this log's."""
        base = self.out / "tile"
        if not base.is_dir():
            return
        head = self.store.log_size()
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                if name.startswith("."):
                    continue
                full = Path(dirpath) / name
                rel = full.relative_to(self.out).as_posix()
                tile = parse_tile_path(rel)
                if tile is None:
                    continue
                end = tile.start + tile.width  # nodes of its level it covers
                if end <= published >> tile.merkle_level:
                    continue  # within the checkpoint DIR holds, checked by its root
                if end > head >> tile.merkle_level or full.read_bytes() != self.source.tile_bytes(tile):
                    raise TilesError(f"{self.out} holds tiles of another tree ({rel} differs from this log); "
                                     f"use an empty directory")

    def _write_tiles(self, size: int, old_size: int, result: TilesResult) -> None:
        level = 0
        while size >> (TILE_HEIGHT * level):
            tiles = list(level_tiles(size, level, first_node=old_size >> (TILE_HEIGHT * level)))
            if level == 0:
                self._write_level0(tiles, result)
            else:
                self._write(self.source.tiles([t for t in tiles if not self._present(t, result)]), result)
            level += 1

    def _write_level0(self, tiles: list[Tile], result: TilesResult) -> None:
        """Level-0 tiles and their bundles, read from the first tile either is missing."""
        missing = [t for t in tiles if not ((self.out / t.path).is_file() and (self.out / t.bundle().path).is_file())]
        result.kept += 2 * (len(tiles) - len(missing))
        if not missing:
            return
        for tile, hashes, bundle in self.source.level0(tiles[tiles.index(missing[0]):]):
            pair = ((tile, hashes), (tile.bundle(), bundle))
            self._write(((t, data) for t, data in pair if not self._present(t, result)), result)

    def _present(self, tile: Tile, result: TilesResult) -> bool:
        if (self.out / tile.path).is_file():
            result.kept += 1
            return True
        return False

    def _write(self, tiles: Iterator[tuple[Tile, bytes]], result: TilesResult) -> None:
        for tile, data in tiles:
            write_atomic(self.out / tile.path, data, durable=False)
            result.written += 1
            if tile.full:  # its partial versions are superseded (C2SP: they MAY go)
                partials = self.out / f"{tile.path}.p"
                if partials.is_dir():
                    for old in partials.iterdir():
                        old.unlink()
                        result.removed += 1
                    partials.rmdir()

    def _check_published_root(self, cp: StoredCheckpoint) -> None:
        reader = TileHashReader(cp.size, lambda t: (self.out / t.path).read_bytes())
        try:
            root = root_at(cp.size, reader)
        except (OSError, VerificationError) as exc:
            raise TilesError(f"the tiles written under {self.out} are incomplete: {exc}") from None
        if root != cp.root:
            raise TilesError(f"the tiles written under {self.out} give root {root.hex()}, the checkpoint says "
                             f"{cp.root.hex()}; run `jejak verify`")

