"""Checkpoints, proofs and whole-store verification on top of the store.

The Merkle and signed-note mathematics live in `jejak.audit` (pure, offline);
this module feeds them from the store and records issued checkpoints.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, Protocol, Sequence

from jejak.audit.checkpoint import Checkpoint, sign_checkpoint, verify_checkpoint
from jejak.audit.errors import (
    ChainBroken,
    InconsistentCheckpoints,
    InvalidProof,
    RootMismatch,
    SignatureInvalid,
    VerificationError,
)
from jejak.audit.keys import KeyRing
from jejak.audit.tlog_proof import format_tlog_proof
from jejak.audit.merkle import (
    MemoryNodeStore,
    PrefetchedReader,
    append_to_frontier,
    consistency_keys,
    consistency_proof,
    frontier_keys,
    inclusion_keys,
    inclusion_proof,
    leaf_hash,
    node_hash,
    read_required,
    root_at,
    verify_consistency,
)
from jejak.settings import Settings
from jejak.signer_state import SignedHead, SignerState, check_extends
from jejak.store.datastore import Store
from jejak.store.recorders import STORED_FROM_LEVEL, ZERO_CHAIN, blob, chain_next

KEYRING_FILE = "checkpoint-keys.json"


class ProofRequestError(ValueError):
    pass


class NotCovered(ProofRequestError):
    """The entry is not (yet) in any recorded checkpoint."""


class Cosigner(Protocol):
    """Gathers witness cosignatures for a newly signed checkpoint note."""

    def satisfied(self, note: str) -> bool:
        """Whether a recorded note already carries the cosignatures required."""

    def cosign(self, note: str, size: int, proof_from: Callable[[int], list[bytes]]) -> str:
        """The note with the cosignatures required appended (raises when they cannot be had)."""


@dataclass(frozen=True)
class StoredCheckpoint:
    seq: int
    size: int
    root: bytes
    note: str
    key_id: str
    created: str

    @classmethod
    def from_row(cls, r: Any) -> "StoredCheckpoint":
        return cls(r["seq"], r["size"], blob(r["root"]), r["note"], r["key_id"], r["created"])


CHECKPOINT_COLUMNS = "SELECT seq, size, root, note, key_id, created FROM jejak_checkpoints"


def keyring_path(settings: Settings):
    return settings.resolved_keys_dir() / KEYRING_FILE


def load_keyring(settings: Settings, *, create: bool = True) -> KeyRing:
    path = keyring_path(settings)
    if path.exists():
        return KeyRing.load(path)
    if not create or settings.profile != "dev":
        raise FileNotFoundError(
            f"no checkpoint signing key at {path}: create one with `jejak key --rotate` "
            f"(the prod profile never creates keys implicitly)"
        )
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return KeyRing.load_or_create(path, settings.key_name)


class KeyRingElsewhere(FileNotFoundError):
    """A store's checkpoints were signed by a key ring that is not at the configured place."""


def load_store_keyring(settings: Settings, signed_by: Callable[[], str | None]) -> KeyRing:
    """The checkpoint key ring. The dev profile creates one only when
    `signed_by()` (asked only then) names no key that signed this store's
    checkpoints: a fresh key could verify none of them."""
    try:
        return load_keyring(settings, create=False)
    except FileNotFoundError:
        key_id = signed_by()
        if key_id is None:
            return load_keyring(settings)
        raise KeyRingElsewhere(
            f"no checkpoint key ring at {keyring_path(settings)}, but this store's checkpoints are "
            f"signed by key {key_id}: set JEJAK_KEYS_DIR to the keys this store was created with") from None


class Transparency:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    # -------------------------------------------------------------- checkpoints
    def checkpoints(self) -> list[StoredCheckpoint]:
        return [StoredCheckpoint.from_row(r) for r in self.store.query(f"{CHECKPOINT_COLUMNS} ORDER BY seq")]

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        r = self.store.query_one(f"{CHECKPOINT_COLUMNS} ORDER BY seq DESC LIMIT 1")
        return None if r is None else StoredCheckpoint.from_row(r)

    def latest_witnessed_checkpoint(self, policy: Any) -> StoredCheckpoint | None:
        """The latest checkpoint whose note carries the cosignatures `policy` (a
        jejak.audit.policy.Policy) requires, or None."""
        before = None
        while True:
            where = "" if before is None else f" WHERE seq < {int(before)}"
            rows = self.store.query(f"{CHECKPOINT_COLUMNS}{where} ORDER BY seq DESC LIMIT 64")
            for row in rows:
                stored = StoredCheckpoint.from_row(row)
                if policy.quorum_met(policy.cosigned_by(stored.note)[0]):
                    return stored
            if len(rows) < 64:
                return None
            before = rows[-1]["seq"]

    def checkpoint_size_covering(self, index: int) -> int | None:
        """The latest checkpoint's size when it covers `index`, else None: the
        default tree size of a proof, so that it matches the published checkpoint
        (access records and new facts grow the log after it)."""
        last = self.latest_checkpoint()
        return last.size if last is not None and 0 <= index < last.size else None

    def keyring(self) -> KeyRing:
        """The checkpoint key ring (see `load_store_keyring`)."""
        return load_store_keyring(self.settings, lambda: getattr(self.latest_checkpoint(), "key_id", None))

    def root(self, size: int) -> bytes:
        return root_at(size, self.store.node_reader())

    def signer_state(self) -> SignerState:
        return SignerState(self.settings.resolved_signer_state_dir(), self.settings.origin)

    def issue_checkpoint(self, cosigner: "Cosigner | None" = None) -> StoredCheckpoint:
        """Sign a tree head the log has been checked against, and record it
        (same head + key → same note).

        C2SP: a log must never sign a checkpoint inconsistent with one it
        signed before. So the latest checkpoint's signature is checked, the
        stored tree must still give its root, and every entry after it is
        recomputed from its stored event (chain link, leaf hash) and hashed
        into the new root; the stored nodes must agree. The new head must
        also extend the one the signer last signed (its state beside the key,
        which a rolled-back database cannot roll back; saved before the
        signature leaves). Raises a VerificationError (first bad index when
        known) instead of signing.

        With a `cosigner`, the signed note goes to the witnesses first and is
        recorded only with the cosignatures its policy requires (the cosigner
        raises otherwise, and nothing is recorded)."""
        keyring = self.keyring()
        signer = keyring.current_signer()
        key_id = signer.verifier_key_text().split("+")[1]
        state = self.signer_state()
        for _attempt in range(5):
            last = self.latest_checkpoint()
            size, root = self._checked_head(last, keyring)
            with state.locked():
                signed = state.load()
                if signed is None and last is not None:  # a store from before the state: its last checked checkpoint
                    signed = SignedHead(last.size, last.root)
                    state.save(signed)
                if signed is not None:
                    check_extends(signed, size, root, self._proof, f"signer state {state.path}")
                note = sign_checkpoint(Checkpoint(self.settings.origin, size, root), signer)
                unchanged = last is not None and last.note.startswith(note)
                if unchanged and (cosigner is None or cosigner.satisfied(last.note)):
                    if cosigner is not None:
                        state.mark_witnessed(last.seq)
                    return last
                state.save(SignedHead(size, root))
            if cosigner is not None:
                note = cosigner.cosign(note, size, lambda old: self._proof(old, size))
            with self.store.transaction(commit=True) as cursor:
                self.store.recorder.take_write_lock(cursor)
                self.store.execute(cursor, f"{CHECKPOINT_COLUMNS} ORDER BY seq DESC LIMIT 1")
                row = cursor.fetchone()
                if (None if row is None else row["seq"]) != (None if last is None else last.seq):
                    continue  # another checkpoint was issued meanwhile: check against it
                if self.store.recorder.read_head(cursor)[0] < size:
                    raise ChainBroken(f"the log shrank below {size} entries while it was checked", index=None)
                # An ingest may have appended after the check: the checked head (a prefix of the log) is signed.
                if last is not None and last.note == note:
                    return last
                seq = 0 if last is None else last.seq + 1
                created = datetime.now(timezone.utc).isoformat(timespec="seconds")
                self.store.execute(
                    cursor,
                    "INSERT INTO jejak_checkpoints (seq, size, root, note, key_id, created) VALUES (?, ?, ?, ?, ?, ?)",
                    (seq, size, root, note, key_id, created),
                )
                recorded = StoredCheckpoint(seq, size, root, note, key_id, created)
            if cosigner is not None:
                with state.locked():
                    state.mark_witnessed(recorded.seq)
            return recorded
        raise InconsistentCheckpoints("other checkpoints kept being issued meanwhile; try again")

    def _proof(self, size1: int, size2: int) -> list[bytes]:
        """Consistency proof between two sizes from the stored tree ([] from 0 or to the same size)."""
        if size1 == 0 or size1 == size2:
            return []
        with self.store.reading() as cursor:
            reader = PrefetchedReader(_CursorReader(self.store, cursor), consistency_keys(size1, size2))
            return consistency_proof(size1, size2, reader)

    def _checked_head(self, last: StoredCheckpoint | None, keyring: KeyRing) -> tuple[int, bytes]:
        """(size, root) of the log as it stands, checked against `last` (see `issue_checkpoint`)."""
        size, head_chain = self.store.head()
        start, frontier, chain = 0, {}, ZERO_CHAIN
        if last is not None:
            cp = self._signed(last, keyring, size)
            if cp.size:
                frontier = read_required(self.store.node_reader(), frontier_keys(cp.size))
                root = root_at(cp.size, MemoryNodeStore(frontier))
                if root != cp.root:
                    raise InconsistentCheckpoints.expected(
                        f"root over the first {cp.size} entries (signed by checkpoint #{last.seq})", cp.root, root,
                        index=cp.size - 1)
                stored = self.store.chain_at(cp.size - 1)
                if stored is None:
                    raise ChainBroken(f"log entry {cp.size - 1} is missing", index=cp.size - 1)
                chain = stored
            start = cp.size
        pending: list[bytes] = []
        tree_size = start
        for hashed, chain in self._checked_entries(start, size, chain):
            pending.append(hashed)
            if len(pending) >= 65536:
                _, frontier = append_to_frontier(tree_size, frontier, pending, min_level=64)
                tree_size += len(pending)
                pending = []
        _, frontier = append_to_frontier(tree_size, frontier, pending, min_level=64)
        if chain != head_chain:
            raise ChainBroken.expected(f"head chain after {size} entries", chain, head_chain, index=max(size - 1, 0))
        root = root_at(size, MemoryNodeStore(frontier))
        stored_root = self.root(size)
        if stored_root != root:
            raise RootMismatch.expected(f"root over {size} entries from the stored tree nodes", root, stored_root,
                                        index=max(size - 1, 0))
        return size, root

    # ------------------------------------------------------------------- proofs
    @staticmethod
    def _check_size(size: int | None, log_size: int) -> int:
        if size is None:
            return log_size
        if not 1 <= size <= log_size:
            raise ProofRequestError(f"size must be between 1 and the log size {log_size}, got {size}")
        return size

    def prove(self, index: int, size: int | None = None) -> dict[str, Any]:
        """Inclusion proof, usually in one read.

        With `size` given (the API passes its checkpoint's), the leaf, audit
        path and root nodes are read in one query and the head is not read:
        every node of a tree of `size` leaves exists only once the log has
        that many entries (the last root node ends at leaf size - 1), so a
        complete answer proves the size is within the log. Anything missing
        or out of range reads the head to name the problem exactly as before.
        """
        with self.store.reading() as cursor:
            if size is None or not 0 <= index < size:
                size = self._check_size(size, self.store.recorder.read_head(cursor)[0])
                if size == 0:
                    raise ProofRequestError("the log is empty: there is no entry to prove")
                if not 0 <= index < size:
                    raise ProofRequestError(
                        f"index must be between 0 and {size - 1} for a tree of size {size}, got {index}")
            keys = list(dict.fromkeys([(0, index), *inclusion_keys(index, size), *frontier_keys(size)]))
            cursor_reader = _CursorReader(self.store, cursor)
            nodes = cursor_reader.get_nodes(keys)
            if len(nodes) < len(keys):
                self._check_size(size, self.store.recorder.read_head(cursor)[0])
                if (0, index) not in nodes:
                    raise ProofRequestError(f"leaf hash {index} is missing from the store; run `jejak verify`")
            reader = _FixedReader(nodes, cursor_reader)
            proof = inclusion_proof(index, size, reader)
            root = root_at(size, reader)
        return {
            "index": index,
            "size": size,
            "leaf_hash": nodes[(0, index)].hex(),
            "proof": [h.hex() for h in proof],
            "root": root.hex(),
        }

    def tlog_proof(self, index: int, checkpoint: StoredCheckpoint | None = None) -> str:
        """A C2SP tlog-proof of entry `index` against the latest recorded
        checkpoint (or `checkpoint`), its note verbatim (cosignatures included)."""
        cp = checkpoint or self.latest_checkpoint()
        if cp is None:
            raise NotCovered("no checkpoint has been recorded yet: run `jejak checkpoint` first")
        if not 0 <= index < cp.size:
            raise NotCovered(f"index {index} is not covered by the latest checkpoint (size {cp.size}): "
                             f"expected 0 <= index < {cp.size}; run `jejak checkpoint` once it is logged")
        proved = self.prove(index, cp.size)
        if bytes.fromhex(proved["root"]) != cp.root:
            raise RootMismatch.expected(f"root over the first {cp.size} entries (checkpoint #{cp.seq})",
                                        cp.root, bytes.fromhex(proved["root"]), index=cp.size - 1)
        return format_tlog_proof(index, [bytes.fromhex(h) for h in proved["proof"]], cp.note)

    def consistency(self, size1: int, size2: int | None = None) -> dict[str, Any]:
        with self.store.reading() as cursor:
            size2 = self._check_size(size2, self.store.recorder.read_head(cursor)[0])
            if not 1 <= size1 <= size2:
                raise ProofRequestError(f"old size must be between 1 and {size2}, got {size1}")
            reader = PrefetchedReader(_CursorReader(self.store, cursor), [
                *consistency_keys(size1, size2), *frontier_keys(size1), *frontier_keys(size2)])
            proof = consistency_proof(size1, size2, reader)
            root1, root2 = root_at(size1, reader), root_at(size2, reader)
        return {
            "size1": size1,
            "size2": size2,
            "proof": [h.hex() for h in proof],
            "root1": root1.hex(),
            "root2": root2.hex(),
        }

    # ------------------------------------------------------------------- verify
    def verify(self, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Check everything; return a summary or raise VerificationError (index set when known)."""
        size, head_chain = self.store.head()
        levels = self._verify_chain(size, head_chain, progress)
        self._verify_tree(levels)
        checked = self._verify_checkpoints(levels, size)
        self._verify_signer_state(levels, size)
        return {"intact": True, "size": size, "checkpoints": checked}

    def _verify_signer_state(self, levels: list[bytearray], size: int) -> None:
        """The log must extend the tree head its signer last signed (a rollback of the whole
        database, checkpoints included, shows here)."""
        state = self.signer_state()
        signed = state.load()
        if signed is None:
            return
        reader = _LevelsReader(levels)
        check_extends(signed, size, root_at(size, reader), lambda a, b: consistency_proof(a, b, reader),
                      f"signer state {state.path}")

    def _checked_entries(self, start: int, size: int, chain: bytes,
                         progress: Callable[[int], None] | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Log entries [start, size) recomputed from their stored events, `chain`
        being the chain hash before `start`: (leaf hash, chain hash) of each, once
        its chain link and stored leaf hash check out. Raises at the first entry
        that is missing or does not match."""
        expected = start
        for index, fact_id, stored_chain, stored_leaf_hash, leaf in self.store.scan_log_from(start, size):
            if index != expected:
                raise ChainBroken(f"log entry {expected} is missing (next stored entry is {index})", index=expected)
            if leaf is None:
                raise ChainBroken(f"log entry {index} ({fact_id}): its stored event is missing", index=index)
            chain = chain_next(chain, leaf)
            if chain != stored_chain:
                raise ChainBroken.expected(f"log entry {index} ({fact_id}) chain hash", chain, stored_chain, index=index)
            hashed = leaf_hash(leaf)
            if hashed != stored_leaf_hash:  # the tree's level 0, kept in the log row
                raise RootMismatch.expected(f"Merkle node (level 0, index {index})", hashed, stored_leaf_hash, index=index)
            yield hashed, chain
            expected += 1
            if progress and expected % 10000 == 0:
                progress(10000)
        if expected != size:
            raise ChainBroken(f"log entry {expected} is missing (head says size {size})", index=expected)

    def _verify_chain(self, size: int, head_chain: bytes, progress: Callable[[int], None] | None) -> list[bytearray]:
        chain = ZERO_CHAIN
        leaf_hashes = bytearray()
        for hashed, chain in self._checked_entries(0, size, ZERO_CHAIN, progress):
            leaf_hashes += hashed
        if size and chain != head_chain:
            raise ChainBroken.expected("log head chain hash", chain, head_chain, index=size - 1)
        extra = self.store.count_events() - size
        if extra > 0:
            raise ChainBroken(f"{extra} stored event(s) are not in the log (inserted outside the ledger)", index=size)
        rows = self.store.count_log_rows()
        if rows != size:
            raise ChainBroken(f"log has {rows} rows but head says size {size}", index=min(rows, size))
        if progress:
            progress(size % 10000)
        return _levels_from_leaf_hashes(bytes(leaf_hashes))

    def _verify_tree(self, levels: list[bytearray]) -> None:
        for level, hashes in enumerate(levels):
            if level < STORED_FROM_LEVEL:
                # level 0 (the leaf hashes in the log rows) was checked with the
                # chain; levels in between are not stored: recomputed when read
                continue
            sql = "SELECT idx, hash FROM jejak_nodes WHERE level = ? AND idx >= ? AND idx < ? ORDER BY idx"
            prefix = (level,)
            count = len(hashes) // 32
            batch = 20000
            for start in range(0, count, batch):
                stop = min(count, start + batch)
                rows = self.store.query(sql, (*prefix, start, stop))
                stored = {r["idx"]: blob(r["hash"]) for r in rows}
                for idx in range(start, stop):
                    want = bytes(hashes[idx * 32 : idx * 32 + 32])
                    got = stored.get(idx)
                    if got != want:
                        raise RootMismatch.expected(
                            f"Merkle node (level {level}, index {idx})", want, got or b"", index=idx << level
                        )
            extra = self.store.query_one(
                "SELECT MIN(idx) AS idx FROM jejak_nodes WHERE level = ? AND idx >= ?", (level, count)
            )
            if extra is not None and extra["idx"] is not None:
                raise RootMismatch(f"Merkle node (level {level}, index {extra['idx']}) beyond the log", index=extra["idx"] << level)

    def _signed(self, stored: StoredCheckpoint, keyring: KeyRing, log_size: int) -> Checkpoint:
        """The checkpoint as its note signs it: signature and origin checked, the
        stored size and root those it signs, its size within the log's."""
        try:
            cp = verify_checkpoint(stored.note, keyring.verifiers(), expected_origin=self.settings.origin)
        except VerificationError as exc:
            raise type(exc)(f"checkpoint #{stored.seq}: {exc}", index=None) from None
        if (cp.size, cp.root) != (stored.size, stored.root):
            raise RootMismatch(f"checkpoint #{stored.seq}: stored size/root differ from its signed note")
        if cp.size > log_size:
            raise RootMismatch.expected(f"checkpoint #{stored.seq} size (at most the log size)", log_size, cp.size,
                                        index=log_size)
        return cp

    def _verify_checkpoints(self, levels: list[bytearray], size: int) -> int:
        cps = self.checkpoints()
        if not cps:
            return 0
        keyring = load_keyring(self.settings, create=False)
        reader = _LevelsReader(levels)
        previous: Checkpoint | None = None
        for number, stored in enumerate(cps):
            if stored.seq != number:  # numbered from 0 without gaps: a deleted one shows
                raise InconsistentCheckpoints.expected("checkpoint number (0, 1, 2, … without gaps)", number, stored.seq)
            cp = self._signed(stored, keyring, size)
            root = root_at(cp.size, reader) if cp.size else hashlib.sha256(b"").digest()
            if root != cp.root:
                raise RootMismatch.expected(
                    f"checkpoint #{stored.seq} root over the first {cp.size} entries", cp.root, root,
                    index=max(cp.size - 1, 0),
                )
            if previous is not None and previous.size:
                if previous.size > cp.size:
                    raise InconsistentCheckpoints.expected(f"checkpoint #{stored.seq} size (non-decreasing)", f">= {previous.size}", cp.size)
                proof = consistency_proof(previous.size, cp.size, reader)
                try:
                    verify_consistency(previous.size, cp.size, proof, previous.root, cp.root)
                except InvalidProof as exc:
                    raise InconsistentCheckpoints(f"checkpoint #{stored.seq} does not extend the previous one: {exc}") from None
            previous = cp
        self._verify_witnessed(cps, keyring)
        return len(cps)

    def _verify_witnessed(self, cps: list[StoredCheckpoint], keyring: KeyRing) -> None:
        """With a witness policy configured: every cosignature line claiming a policy
        witness's key must verify, and every checkpoint from the first one recorded
        with its witnesses (per the signer state, else the first that meets the
        quorum) must meet the quorum; earlier ones may predate the policy."""
        if self.settings.witness_policy is None:
            return
        from jejak.audit.policy import QuorumNotMet
        from jejak.witnessing import load_policy

        policy = load_policy(self.settings.witness_policy)
        met = []
        for stored in cps:
            verified, problems = policy.cosigned_by(stored.note)
            if problems:
                raise SignatureInvalid(f"checkpoint #{stored.seq}: {problems[0]}")
            met.append(policy.quorum_met(verified))
        since = self.signer_state().witnessed_since()
        if since is None:
            since = met.index(True) if True in met else cps[-1].seq
        if since > cps[-1].seq:
            raise QuorumNotMet.expected("witnessed checkpoints (the signer recorded one numbered)",
                                        f"#{since} or later", f"none after #{cps[-1].seq}")
        for stored in cps[since:]:
            try:
                policy.verify_quorum(stored.note, log_keys=keyring.verifiers())
            except QuorumNotMet as exc:
                raise QuorumNotMet(f"checkpoint #{stored.seq}: {exc}") from None


def _levels_from_leaf_hashes(leaf_hashes: bytes) -> list[bytearray]:
    levels = [bytearray(leaf_hashes)]
    while len(levels[-1]) >= 64:
        below = levels[-1]
        above = bytearray()
        for i in range(0, len(below) // 64 * 64, 64):
            above += node_hash(bytes(below[i : i + 32]), bytes(below[i + 32 : i + 64]))
        levels.append(above)
    return levels


class _LevelsReader:
    def __init__(self, levels: list[bytearray]) -> None:
        self.levels = levels

    def get_nodes(self, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        out = {}
        for level, idx in keys:
            if level < len(self.levels) and (idx + 1) * 32 <= len(self.levels[level]):
                out[(level, idx)] = bytes(self.levels[level][idx * 32 : idx * 32 + 32])
        return out


class _FixedReader:
    """Nodes read already; anything else from `reader` (which raises the usual MissingNode)."""

    def __init__(self, nodes: dict[tuple[int, int], bytes], reader: Any) -> None:
        self._nodes, self._reader = nodes, reader

    def get_nodes(self, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        missing = [k for k in keys if k not in self._nodes]
        if missing:
            self._nodes.update(self._reader.get_nodes(missing))
        return {k: self._nodes[k] for k in keys if k in self._nodes}


class _CursorReader:
    def __init__(self, store: Store, cursor: Any) -> None:
        self.store, self.cursor = store, cursor

    def get_nodes(self, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        return self.store.recorder.read_nodes(self.cursor, keys)
