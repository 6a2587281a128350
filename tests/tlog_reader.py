"""An independent few-line reader of C2SP tlog-tiles, for tests only.

Written from the specification (c2sp.org/tlog-tiles, RFC 9162 §2.1) with
hashlib and nothing of jejak, so a test comparing it with jejak's output checks
jejak against the standard rather than against itself.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Callable


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def mth(hashes: list[bytes]) -> bytes:
    """RFC 9162 MTH over leaf hashes (split at the largest power of two below n)."""
    if len(hashes) == 1:
        return hashes[0]
    k = 1 << ((len(hashes) - 1).bit_length() - 1)
    return node_hash(mth(hashes[:k]), mth(hashes[k:]))


def index_path(n: int) -> str:
    parts = f"{n:,}".replace(",", " ").split()  # groups of three digits
    parts = [p.zfill(3) for p in parts]
    return "/".join(["x" + p for p in parts[:-1]] + [parts[-1]])


def tile_path(level: str | int, n: int, width: int) -> str:
    return f"tile/{level}/{index_path(n)}" + ("" if width == 256 else f".p/{width}")


def read_checkpoint(text: str) -> tuple[str, int, bytes]:
    origin, size, root = text.split("\n")[:3]
    return origin, int(size), base64.b64decode(root)


def read_bundle(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        n = int.from_bytes(data[pos:pos + 2], "big")
        out.append(data[pos + 2:pos + 2 + n])
        pos += 2 + n
    return out


def read_log(get: Callable[[str], bytes]) -> tuple[str, int, bytes, list[bytes], dict[tuple[int, int], list[bytes]]]:
    """Everything a tree of the served checkpoint's size has: (origin, size, root,
    entries, {(level, n): hashes}); checks each full tile hashes to its parent
    hash and the level-0 hashes are the entries' leaf hashes."""
    origin, size, root = read_checkpoint(get("checkpoint").decode())
    tiles: dict[tuple[int, int], list[bytes]] = {}
    level = 0
    while size >> (8 * level):
        count = size >> (8 * level)
        for n in range((count + 255) // 256):
            width = min(256, count - 256 * n)
            data = get(tile_path(level, n, width))
            assert len(data) == 32 * width, (level, n, width, len(data))
            tiles[(level, n)] = [data[i:i + 32] for i in range(0, len(data), 32)]
        level += 1
    entries: list[bytes] = []
    for n in range((size + 255) // 256):
        entries += read_bundle(get(tile_path("entries", n, min(256, size - 256 * n))))
    assert len(entries) == size
    level0 = [h for n in range((size + 255) // 256) for h in tiles[(0, n)]]
    assert level0 == [leaf_hash(e) for e in entries], "level-0 tiles are not the entries' leaf hashes"
    for (level, n), hashes in tiles.items():
        if len(hashes) == 256 and (level + 1, n // 256) in tiles:
            assert tiles[(level + 1, n // 256)][n % 256] == mth(hashes), f"tile {level}/{n} vs its parent"
    assert mth(level0) == root, "root of the entries is not the checkpoint's"
    return origin, size, root, entries, tiles


def dir_getter(base: Path) -> Callable[[str], bytes]:
    return lambda rel: (base / rel).read_bytes()
