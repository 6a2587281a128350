"""`jejak monitor`: follow a log through its C2SP tlog-tiles (a URL or a directory).

Each round fetches the checkpoint, checks the log's signature (and the witness
policy's quorum when one is given), proves it consistent with the checkpoint
kept from the round before (a consistency proof computed from the tiles'
hashes), and checks every new entry: its hash against its level-0 tile, the
tiles above against the entries' subtree hashes, and the root the entries give
against the checkpoint. The state directory keeps the last good checkpoint note.
"""

from __future__ import annotations

import gzip
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jejak.audit.checkpoint import Checkpoint, verify_checkpoint
from jejak.audit.errors import InvalidProof, RootMismatch, VerificationError
from jejak.audit.merkle import (
    EMPTY_ROOT,
    MemoryNodeStore,
    append_to_frontier,
    consistency_proof,
    frontier_keys,
    leaf_hash,
    read_required,
    root_at,
    verify_consistency,
)
from jejak.audit.note import Verifier
from jejak.audit.tiles import TILE_HEIGHT, TILE_WIDTH, Tile, TileHashReader, decode_bundle, level_tiles
from jejak.tiles import write_atomic

STATE_FILE = "checkpoint"
HTTP_TIMEOUT_S = 30
#: Entry bundles checked before the tiles above them are compared (bounds memory at any log size).
BUNDLES_PER_STEP = 64

CONSISTENT, PROBLEM, UNREACHABLE = 0, 1, 2


class FetchError(Exception):
    """A resource could not be fetched (exit 2): nothing can be said about the log."""


class DirFetcher:
    def __init__(self, base: Path) -> None:
        self.base = base

    def __call__(self, rel: str) -> bytes:
        try:
            return (self.base / rel).read_bytes()
        except OSError as exc:
            raise FetchError(f"cannot read {self.base / rel}: {exc.strerror}") from None


class HttpFetcher:
    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/") + "/"

    def __call__(self, rel: str) -> bytes:
        url = self.base + rel
        request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip, identity",
                                                       "User-Agent": "jejak-monitor"})
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
                data = response.read()
                if response.headers.get("Content-Encoding", "").lower() == "gzip":
                    data = gzip.decompress(data)
                return data
        except urllib.error.HTTPError as exc:
            raise FetchError(f"GET {url}: HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError, EOFError) as exc:
            reason = getattr(exc, "reason", exc)
            raise FetchError(f"GET {url}: {reason}") from None


def fetcher_for(source: str) -> Callable[[str], bytes]:
    if source.startswith(("http://", "https://")):
        return HttpFetcher(source)
    return DirFetcher(Path(source))


class LogProblem(Exception):
    """The log rewrote or forked its history, or served data that does not check out (exit 1)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


QuorumCheck = Callable[[str], None]


@dataclass
class Round:
    """One monitoring round: what was kept, what was fetched, and what was found."""

    kept_note: str | None = None
    fetched_note: str | None = None
    kept: Checkpoint | None = None
    fetched: Checkpoint | None = None
    new_entries: int = 0
    problem: LogProblem | None = None
    unreachable: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        if self.problem is not None:
            return PROBLEM
        return UNREACHABLE if self.unreachable is not None else CONSISTENT

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"consistent": self.exit_code == CONSISTENT}
        if self.problem is not None:
            out.update(problem=self.problem.kind, error=str(self.problem))
        if self.unreachable is not None:
            out.update(problem="unreachable", error=self.unreachable)
        for name, cp in (("kept", self.kept), ("fetched", self.fetched)):
            if cp is not None:
                out[name] = {"size": cp.size, "root": cp.root.hex()}
        out["new_entries"] = self.new_entries
        if self.problem is not None:
            out["kept_checkpoint"] = self.kept_note
            out["fetched_checkpoint"] = self.fetched_note
        return out


class Monitor:
    def __init__(self, fetch: Callable[[str], bytes], log_keys: Iterable[Verifier | str], state_dir: Path,
                 quorum: QuorumCheck | None = None) -> None:
        self.fetch = fetch
        self.log_keys = list(log_keys)
        self.state_dir = state_dir
        self.quorum = quorum

    def check(self) -> Round:
        """One round; the state moves on only when everything checked out."""
        result = Round()
        try:
            self._check(result)
        except FetchError as exc:
            result.unreachable = str(exc)
        except LogProblem as exc:
            result.problem = exc
        except VerificationError as exc:
            result.problem = LogProblem("invalid", str(exc))
        if result.exit_code == CONSISTENT and result.fetched_note != result.kept_note:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            write_atomic(self.state_dir / STATE_FILE, result.fetched_note.encode("utf-8"))  # type: ignore[union-attr]
        return result

    def _verified(self, note: str, what: str) -> Checkpoint:
        try:
            return verify_checkpoint(note, self.log_keys)
        except VerificationError as exc:
            raise LogProblem("invalid", f"{what}: {exc}") from None

    def _check(self, result: Round) -> None:
        kept_path = self.state_dir / STATE_FILE
        if kept_path.is_file():
            result.kept_note = kept_path.read_text(encoding="utf-8")
            result.kept = self._verified(result.kept_note, f"the checkpoint kept in {kept_path}")
        try:
            result.fetched_note = self.fetch("checkpoint").decode("utf-8")
        except UnicodeDecodeError:
            raise LogProblem("invalid", "the fetched checkpoint is not UTF-8 text") from None
        new = result.fetched = self._verified(result.fetched_note, "the fetched checkpoint")
        if self.quorum is not None:
            self.quorum(result.fetched_note)
        old = result.kept or Checkpoint(new.origin, 0, EMPTY_ROOT)
        if new.origin != old.origin:
            raise LogProblem("invalid", f"checkpoint origin: expected {old.origin!r}, got {new.origin!r}")
        if new.size < old.size:
            raise LogProblem("rollback", f"the log shrank: tree size expected >= {old.size}, got {new.size}")
        if new.size == old.size:
            if new.root != old.root:
                raise LogProblem("fork", f"two different trees of size {new.size}: "
                                         f"root {old.root.hex()} kept, {new.root.hex()} fetched")
            return
        reader = TileHashReader(new.size, lambda tile: self.fetch(tile.path))
        frontier = self._old_frontier(old, new, reader)
        # Whole bundles are checked: from the first one holding a new entry, whose
        # start is a multiple of 256 so its frontier is the kept one's from level 8 up.
        start = old.size - old.size % TILE_WIDTH
        frontier = {key: h for key, h in frontier.items() if key[0] >= TILE_HEIGHT}
        self._check_entries(start, new, reader, frontier)
        result.new_entries = new.size - old.size

    def _old_frontier(self, old: Checkpoint, new: Checkpoint, reader: TileHashReader) -> dict:
        """The kept tree's right edge from the new tiles, once the consistency proof
        from the kept tree to the fetched one checks out."""
        if old.size == 0:
            return {}
        proof = consistency_proof(old.size, new.size, reader)
        try:
            verify_consistency(old.size, new.size, proof, old.root, new.root)
        except (RootMismatch, InvalidProof) as exc:
            raise LogProblem("fork", f"the fetched checkpoint does not extend the kept one "
                                     f"(a fork, or tiles that do not match it): {exc}") from None
        frontier = read_required(reader, frontier_keys(old.size))
        if root_at(old.size, MemoryNodeStore(frontier)) != old.root:
            raise LogProblem("fork", f"the tiles do not give the kept root over {old.size} entries")
        return frontier

    def _check_entries(self, start: int, new: Checkpoint, reader: TileHashReader, frontier: dict) -> None:
        """Every entry in [start, new.size): against its level-0 tile hash, the tiles
        above against the subtrees the entries make, the root against the checkpoint."""
        size = start
        tiles = list(level_tiles(new.size, 0, first_node=start))
        for step in range(0, len(tiles), BUNDLES_PER_STEP):
            hashes: list[bytes] = []
            for tile in tiles[step:step + BUNDLES_PER_STEP]:
                hashes += self._bundle_hashes(tile, reader)
                reader.tiles.pop(tile, None)  # level-0 tiles are needed once
            nodes, frontier = append_to_frontier(size, frontier, hashes, min_level=TILE_HEIGHT)
            size += len(hashes)
            self._check_upper_tiles(nodes, reader)
        if root_at(new.size, MemoryNodeStore(frontier)) != new.root:
            raise LogProblem("invalid", f"the entries do not give the checkpoint's root: expected "
                                        f"{new.root.hex()}, got {root_at(new.size, MemoryNodeStore(frontier)).hex()}")

    def _bundle_hashes(self, tile: Tile, reader: TileHashReader) -> list[bytes]:
        entries = decode_bundle(self.fetch(tile.bundle().path), expected=tile.width)
        tile_hashes = reader.hashes(tile)
        out = []
        for offset in range(tile.width):
            hashed = leaf_hash(entries[offset])
            if hashed != tile_hashes[offset]:
                index = tile.start + offset
                raise LogProblem("invalid", f"entry {index} ({tile.bundle().path}) does not hash to its tile hash "
                                            f"({tile.path}): expected {tile_hashes[offset].hex()}, got {hashed.hex()}")
            out.append(hashed)
        return out

    @staticmethod
    def _check_upper_tiles(nodes: list[tuple[int, int, bytes]], reader: TileHashReader) -> None:
        for level, index, hashed in nodes:
            if level % TILE_HEIGHT:
                continue
            served = reader.require((level, index))
            if served != hashed:
                tile = reader.tile_for(level // TILE_HEIGHT, index)
                raise LogProblem("invalid", f"{tile.path if tile else 'a tile'} hash {index % 256}: expected "
                                            f"{hashed.hex()} (from the entries), got {served.hex()}")

