"""The ledger application: validate, protect, record, read back.

This is the one place where the domain (fact validation, events), the vault
(tokens and sealed personal data) and the store (chained recorder) meet.
Every entry point — `jejak ingest`, the Kafka consumer, the HTTP API — records
through `Ledger.record` / `Ledger.ingest_lines`.
"""

from __future__ import annotations

import os
import re
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator, Sequence

import orjson

from jejak.domain.errors import Conflict
from jejak.domain.facts import KNOWN_FIELDS, Fact, check_fact
from jejak.domain.nik import holds_sixteen_digits, mask_nik
from jejak.preparer import DIGITS_KIND, FactPreparer, OversizedLine, Prepared, PreparedBatch, PreparerPool, parse_json_line
from jejak.secrets import load_master_secrets
from jejak.settings import Settings
from jejak.store.datastore import Store, check_store_location
from jejak.store.leaf import TOKEN_IN_TEXT, decode_leaf
from jejak.store.mapper import LeafMapper, new_fact_event
from jejak.store.recorders import ACCEPTED, CONFLICT, DUPLICATE, FactRows, LogTail, PreparedFact
from jejak.store.vault import TOKEN_PREFIX, Sealer, Tokenizer, VaultKeyGone, VaultKeys, is_token


@dataclass(frozen=True)
class InternalFact:
    """One of jejak's own facts to record (`jejak.erasure`, `jejak.access`); `also(cursor)` joins its transaction."""

    type: str
    fact_id: str
    fields: dict[str, Any]
    also: Callable[[Any], Any] | None = None


class LedgerError(RuntimeError):
    pass


class UnusableInput(LedgerError):
    """The input as a whole is not JSON lines (compressed, UTF-16); nothing was read from it."""


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str  # "accepted" | "duplicate" | "rejected"
    fact_id: str | None
    code: str | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    index: int
    fact: dict[str, Any]
    chain: str


@dataclass
class Rejection:
    line: int
    id: str | None
    code: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "id": self.id, "error": f"{self.code}: {self.message}", "code": self.code}


@dataclass
class IngestSummary:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejections: list[Rejection] = field(default_factory=list)

    def to_dict(self) -> dict[str, int]:
        return {"accepted": self.accepted, "duplicates": self.duplicates, "rejected": self.rejected}


class Ledger:
    def __init__(self, settings: Settings, store: Store, tokenizer: Tokenizer, sealer: Sealer) -> None:
        self.settings = settings
        self.store = store
        self.tokenizer = tokenizer
        self.sealer = sealer
        self.mapper = LeafMapper()
        self.preparer = FactPreparer(tokenizer)
        self._reveal_cache: dict[str, str | None] = {}
        self._json_tokens: set[str] = set()  # tokens sealed as JSON (fields SPEC does not define)

    @classmethod
    def open(cls, settings: Settings | None = None, *, create: bool = True) -> "Ledger":
        """Open the ledger; `create=False` (every command but `ingest` and `init`)
        creates neither store nor keys: a missing one raises StoreMissing / SecretsError."""
        settings = settings or Settings()
        if create:
            check_store_location(settings.store)  # a mistyped store path is told, not created with its keys
            secrets = load_master_secrets(settings)  # before the store: nothing is created without the keys
            store = Store.open(settings.store)
        else:
            store = Store.open(settings.store, must_exist=True)
            try:
                secrets = load_master_secrets(settings, create=False)
            except BaseException:
                store.close()
                raise
        tokenizer, sealer = Tokenizer(secrets.pseudonym_key), Sealer(secrets.kek)
        for key, value in (("pseudonym_key", tokenizer.fingerprint()), ("kek", sealer.fingerprint())):
            stored = store.set_meta_once(f"fingerprint.{key}", value)
            if stored != value:
                store.close()
                raise LedgerError(
                    f"the {key.replace('_', ' ')} does not belong to this store "
                    f"(fingerprint {value}, store expects {stored}); use the keys this store was created with"
                )
        try:
            sealer = open_vault(store, settings, secrets.kek)
        except (OSError, VaultKeyGone) as exc:
            store.close()
            raise LedgerError(f"cannot open the vault keys in {settings.resolved_vault_keys_dir()} "
                              f"(JEJAK_VAULT_KEYS_DIR: a directory this process can write): {exc}") from None
        return cls(settings, store, tokenizer, sealer)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- record
    def protect(self, fact: Fact) -> PreparedFact:
        """Replace personal fields by tokens (see `FactPreparer.protect`)."""
        return self.preparer.protect(fact)

    def record(self, items: Sequence[bytes | str | dict[str, Any]]) -> list[Outcome]:
        """Validate and record items in one transaction; one outcome per item."""
        return self._commit(items, self.preparer.prepare(items))

    def _commit(self, items: Sequence[bytes | str | dict[str, Any]], batch: PreparedBatch) -> list[Outcome]:
        """Record a prepared batch of `items` in one transaction; one outcome per item."""
        statuses = self.store.recorder.record_facts(batch.rows, self.sealer) if batch.slots else []
        return self._outcomes(items, batch, statuses)

    def _outcomes(
        self, items: Sequence[bytes | str | dict[str, Any]], batch: PreparedBatch, statuses: Sequence[str],
    ) -> list[Outcome]:
        """One outcome per item, in order, from the preparer's rejections and the recorder's statuses."""
        outcomes: list[Outcome | None] = [None] * len(items)
        for r in batch.rejected:
            outcomes[r.slot] = Outcome("rejected", r.fact_id, r.code, r.message)
        for slot, fact_id, status in zip(batch.slots, batch.ids, statuses):
            if status == CONFLICT and self._same_as_recorded(items[slot]):
                status = DUPLICATE
            if status == CONFLICT:
                outcomes[slot] = Outcome(
                    "rejected", fact_id, Conflict.code,
                    f"fact id {fact_id!r} was recorded before with different content; the first version stays",
                )
            else:
                outcomes[slot] = Outcome(status, fact_id)
        return [o for o in outcomes if o is not None]

    def _same_as_recorded(self, item: bytes | str | dict[str, Any]) -> bool:
        """Whether an item whose bytes differ from the recorded fact with its id
        is still the same content (SPEC: identical content is a re-delivery).

        Leaf format v1 tokenises a field the SPEC does not define from its JSON
        as delivered, so an object there with its keys in another order gets
        another token; compare the recorded fact, revealed, as canonical JSON."""
        fact = check_fact(item if isinstance(item, dict) else parse_json_line(item))
        known = KNOWN_FIELDS[fact.type]
        extras = [v for k, v in fact.body.items() if k not in known] + [
            v for k, v in fact.body["source"].items() if k not in ("kind", "id")]
        if not any(isinstance(v, (dict, list)) for v in extras):
            return False
        index = self.store.index_of(self.stored_id(fact.id))
        rows = self.store.read_log_at([index]) if index is not None else []
        if not rows or rows[0][3] is None:
            return False
        recorded = self.reveal_fact(decode_leaf(rows[0][3])[0])
        canonical = orjson.OPT_SORT_KEYS
        return orjson.dumps(recorded, option=canonical) == orjson.dumps(fact.body, option=canonical)

    #: Batches prepared ahead of the one being planned (memory stays flat: a handful of batches at most).
    PIPELINE_DEPTH = 2

    def ingest_lines(
        self,
        lines: Iterable[bytes],
        *,
        on_rejection: Callable[[Rejection], None] | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> IngestSummary:
        """Stream lines (1-based numbering, blank lines skipped) in batches.

        Three stages overlap, each batch passing through them in file order:
        a worker process prepares it (parse, validate, protect;
        `settings.ingest_workers`, up to `PIPELINE_DEPTH` batches ahead); this
        thread plans its append (chain, tree nodes, encoded rows) against the
        log tail the batch before will leave; a writer thread records it, one
        transaction per batch. A plan that no longer fits (a fact recorded
        before, another writer) is recorded the ordinary way instead, so the
        chain, the outcomes and a crash's restart point are exactly those of
        recording each batch in turn.
        """
        summary = IngestSummary()
        recorder = self.store.recorder
        preparing: deque[tuple[list[int], list[bytes], Prepared]] = deque()
        writing: deque[tuple[list[int], list[bytes], PreparedBatch, Future[tuple[list[str], bool]]]] = deque()
        tail: LogTail | None = None

        def write_done() -> bool:
            """Account for the oldest batch being written; whether its plan held."""
            numbers, raws, batch, future = writing.popleft()
            statuses, held = future.result()
            if held and not batch.rejected:  # every item a new fact: nothing to say about each
                summary.accepted += len(statuses)
                if on_progress:
                    on_progress(len(numbers))
                return held
            for number, outcome in zip(numbers, self._outcomes(raws, batch, statuses)):
                if outcome.status == ACCEPTED:
                    summary.accepted += 1
                elif outcome.status == DUPLICATE:
                    summary.duplicates += 1
                else:
                    summary.rejected += 1
                    rejection = Rejection(number, outcome.fact_id, outcome.code or "rejected", outcome.message or "")
                    if on_rejection:
                        on_rejection(rejection)
                    else:
                        summary.rejections.append(rejection)
            if on_progress:
                on_progress(len(numbers))
            return held

        def plan_and_write(writer: ThreadPoolExecutor) -> None:
            nonlocal tail
            numbers, raws, prepared = preparing.popleft()
            batch = prepared.result()
            while len(writing) > 1:
                if not write_done():
                    tail = None
            if tail is None:  # start, or a plan that did not hold: read the log as it is now
                while writing:
                    write_done()
                tail = recorder.read_tail()
            if batch.slots:
                plan = recorder.plan_append(batch.rows, tail)
                tail = plan.after
                future = writer.submit(recorder.commit_plan, plan, self.sealer)
            else:
                future = Future()
                future.set_result(([], True))
            writing.append((numbers, raws, batch, future))

        # Bulk preparation also seals new subjects and encodes events rows (see FactPreparer).
        bulk = FactPreparer(self.tokenizer, self.sealer, recorder.events_encoder())
        with PreparerPool(bulk, self.settings.ingest_workers) as preparers, \
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="jejak-writer") as writer:
            try:
                for numbers, raws in _batches(lines, self.settings.batch_size):
                    preparing.append((numbers, raws, preparers.submit(raws)))
                    while len(preparing) > self.PIPELINE_DEPTH:
                        plan_and_write(writer)
                while preparing:
                    plan_and_write(writer)
                while writing:
                    write_done()
            except BaseException:
                # Batches not yet written are dropped (the writer finishes the one
                # it holds: each transaction is whole either way); then the error goes on.
                for *_rest, future in writing:
                    future.cancel()
                raise
        return summary

    # ------------------------------------------------------------------- erase
    def erase(self, value: str, order_ref: str, kind: str = "nik") -> dict[str, Any]:
        """Crypto-shred one person's data (UU 27/2022 erasure order).

        Records a `jejak.erasure` fact naming only the token and the order
        reference and, in the same transaction, destroys the sealed data key
        and value of the person's NIK and of every other personal value of the
        facts that name it (`basis`, `text`, fields SPEC does not define, a
        public source's id, 16-digit runs; not a family's KK, nor another
        person's NIK), leaving tombstones so that a re-delivery cannot bring
        any of them back. Every hash and proof stays valid; the clear values
        can never be recovered from the store again (see docs/privacy.md).
        """
        if not re.fullmatch(r"[0-9]{16}", value):
            raise LedgerError(f"{kind} must be exactly 16 digits")
        if not order_ref.strip():
            raise LedgerError("an erasure needs the reference of the order that requires it (--order)")
        if holds_sixteen_digits(order_ref):
            raise LedgerError("the order reference must not contain a NIK or KK (16 digits): it enters the "
                              "permanent log in clear; refer to the order by its letter or file number")
        token = self.tokenizer.token(kind, value)
        as_run = self.tokenizer.token(DIGITS_KIND, value)  # the same number inside an id or a reference
        rows = {r["token"]: r for r in self.store.query(
            "SELECT token, erased_at FROM jejak_subjects WHERE token IN (?, ?)", (token, as_run))}
        if not rows:
            raise LedgerError(f"no {kind} {mask_nik(value)} in this store")
        if all(r["erased_at"] is not None for r in rows.values()):
            return {"erased": token, "already": True}
        now = utc_now().isoformat(timespec="seconds")
        destroyed: list[str] = []

        def shred(cursor: Any) -> None:
            destroyed.extend(self._personal_tokens_of(self.store.leaves_naming(cursor, (token, as_run)), token))
            destroyed.extend((token, as_run))
            self._destroy_subjects(cursor, sorted(set(destroyed)), {token: kind, as_run: DIGITS_KIND}, now)
            if self.sealer.vault_keys is not None:
                self._rotate_vault_key(cursor)

        fact_id = self.record_internal(
            "jejak.erasure", f"jejak:erasure:{token[4:16]}", {"subject": token, "order": order_ref.strip()},
            also=shred,
        )
        if self.sealer.vault_keys is not None:
            # Committed: no data key is sealed under an older generation any more; destroy those keys.
            self.sealer.vault_keys.destroy_before(self.sealer.generation)
        for t in destroyed:
            self._reveal_cache.pop(t, None)
        if not self.store.is_postgres:
            self.store.query("PRAGMA wal_checkpoint(TRUNCATE)")
        return {"erased": token, "fact": fact_id, "already": False}

    @staticmethod
    def _personal_tokens_of(leaves: Iterable[bytes], person: str) -> set[str]:
        """The tokens of the erased person's facts that are theirs to lose: all
        but the `kk` (the family's) and a `nik` that is someone else's."""
        found: set[str] = set()
        for leaf in leaves:
            fact, _derived = decode_leaf(leaf)
            if not fact.get("type", "").startswith("jejak."):
                for name, value in fact.items():
                    if name == "kk" or name == "nik" and value != person:
                        continue
                    found.update(TOKEN_IN_TEXT.findall(orjson.dumps(value).decode()))
        return found

    def _destroy_subjects(self, cursor: Any, tokens: Sequence[str], kinds: dict[str, str], now: str) -> None:
        """Destroy the sealed key and value of each token; a token the vault never held gets a tombstone."""
        known = {r["token"] for r in self.store.recorder.select_in(cursor, "SELECT token FROM jejak_subjects",
                                                                     "token", list(tokens))}
        for t in tokens:
            if t in known:
                self.store.execute(cursor, "UPDATE jejak_subjects SET sealed_dek = NULL, sealed_value = NULL, "
                                           "erased_at = ? WHERE token = ? AND erased_at IS NULL", (now, t))
            else:
                self.store.execute(cursor, "INSERT INTO jejak_subjects (token, kind, erased_at) VALUES (?, ?, ?)",
                                   (t, kinds.get(t, DIGITS_KIND), now))

    def _rotate_vault_key(self, cursor: Any) -> None:
        """Move every live data key to a new vault-key generation (write lock held, in the erasure's
        transaction); the old generation's key file is destroyed once this commits."""
        recorder, sealer = self.store.recorder, self.sealer
        new = recorder.follow_vault_generation(cursor, sealer) + 1
        sealer.vault_keys.create(new, replace=True)  # type: ignore[union-attr]
        live = self.store.execute(cursor, "SELECT token, sealed_dek FROM jejak_subjects "
                                          "WHERE sealed_dek IS NOT NULL").fetchall()
        rewrapped = [(row["token"], sealer.rewrap(row["token"], bytes(row["sealed_dek"]), new)) for row in live]
        temp = "CREATE TEMPORARY TABLE jejak_rewrap (token TEXT PRIMARY KEY, sealed_dek {}){}"
        self.store.execute(cursor, temp.format("BYTEA", " ON COMMIT DROP") if self.store.is_postgres
                           else temp.format("BLOB", ""))
        recorder.bulk_insert(cursor, "jejak_rewrap", ("token", "sealed_dek"), rewrapped)
        self.store.execute(cursor, "UPDATE jejak_subjects SET sealed_dek = r.sealed_dek FROM jejak_rewrap r "
                                   "WHERE jejak_subjects.token = r.token")
        if not self.store.is_postgres:
            self.store.execute(cursor, "DROP TABLE jejak_rewrap")
        self.store.execute(cursor, "UPDATE jejak_meta SET value = ? WHERE key = ?", (str(new), recorder.VAULT_GENERATION))
        sealer.generation = new

    def erasure_of(self, token: str) -> dict[str, Any] | None:
        """When and by which order a subject was erased (its `jejak.erasure` fact), or None."""
        row = self.store.query_one("SELECT erased_at FROM jejak_subjects WHERE token = ?", (token,))
        if row is None or row["erased_at"] is None:
            return None
        fact_id = f"jejak:erasure:{token[4:16]}"
        index = self.store.index_of(fact_id)
        entries = self.store.read_log_at([index]) if index is not None else []
        fact = decode_leaf(entries[0][3])[0] if entries and entries[0][3] else {}
        return {"fact_id": fact_id, "index": index, "order": fact.get("order"), "at": fact.get("at", row["erased_at"])}

    def record_internal(
        self, ftype: str, fact_id: str, fields: dict[str, Any], *, also: Callable[[Any], Any] | None = None
    ) -> str:
        """Record one of jejak's own facts (`jejak.*`), never personal data in clear.

        `also(cursor)` runs in the same transaction (e.g. destroying a key).
        """
        return self.record_internal_many([InternalFact(ftype, fact_id, fields, also)])[0]

    def record_internal_many(self, facts: Sequence["InternalFact"]) -> list[str]:
        """Record several of jejak's own facts in ONE transaction (group commit of API access records)."""
        now = utc_now()
        prepared = []
        for item in facts:
            assert item.type.startswith("jejak.") and item.type in KNOWN_FIELDS
            fact = {
                "id": item.fact_id, "type": item.type, "at": now.isoformat(timespec="seconds"),
                "source": {"kind": "jejak", "id": "jejak"}, **item.fields,
            }
            prepared.append(PreparedFact(item.fact_id, self.mapper.to_stored_event(new_fact_event(fact, {}, now)), ()))
        with self.store.transaction(commit=True) as cursor:
            statuses = self.store.recorder.record_facts_in(cursor, FactRows.of(prepared), self.sealer)
            added = sum(1 for status in statuses if status == ACCEPTED)
            if added:
                # Read models ignore jejak's own facts, so one that was caught up
                # stays caught up: move it past these facts instead of making the
                # next reader replay them (an inspector API request records one each).
                self.store.execute(
                    cursor,
                    "UPDATE jejak_positions SET position = position + ? "
                    "WHERE position = (SELECT size FROM jejak_head WHERE id = 1) - ? AND name LIKE ?",
                    (added, added, "projection.%"),
                )
            for item in facts:
                if item.also is not None:
                    item.also(cursor)
        return [item.fact_id for item in facts]

    def record_access(self, *, actor: str, role: str, subject_token: str, reason: str, path: str) -> str:
        """Record that an inspector saw a person's or family's data (who, whom, why)."""
        import uuid

        return self.record_internal(
            "jejak.access", f"jejak:access:{uuid.uuid4().hex}",
            {"actor": actor, "role": role, "subject": subject_token, "reason": reason, "path": path},
        )

    # ------------------------------------------------------------------ reveal
    def stored_id(self, fact_id: str) -> str:
        """A fact id as the log stores it (its 16-digit runs tokenised): what to look a clear id up by."""
        return self.preparer.stored_text(fact_id)

    def reveal(self, token: str) -> str | None:
        """The clear value behind a token, or None once erased."""
        self.reveal_many((token,))
        return self._reveal_cache.get(token)

    def forget_reveals(self) -> None:
        """Drop every clear value opened so far (long-lived processes; see the API)."""
        self._reveal_cache = {}
        self._json_tokens = set()

    def _opened(self, rows: Iterable[Any]) -> Iterator[tuple[str, str]]:
        for row in rows:
            if row["sealed_dek"] is not None:
                token = row["token"]
                if row["kind"] == "extra":
                    self._json_tokens.add(token)
                yield token, self.sealer.open(token, bytes(row["sealed_dek"]), bytes(row["sealed_value"]))

    def reveal_many(self, tokens: Iterable[str]) -> None:
        """Open the given tokens' values with one query (then `reveal` answers from memory)."""
        wanted = sorted({t for t in tokens if is_token(t) and t not in self._reveal_cache})
        if not wanted:
            return
        for attempt in (1, 2):
            try:
                with self.store.transaction(commit=False) as cursor:
                    found = dict(self._opened(self.store.recorder.select_in(
                        cursor, "SELECT token, kind, sealed_dek, sealed_value FROM jejak_subjects", "token", wanted)))
                break
            except VaultKeyGone:  # read just before an erasure by another process moved every key on
                if attempt == 2:
                    raise
        for token in wanted:
            self._reveal_cache[token] = found.get(token)

    def preload_reveals(self) -> None:
        """Open every live subject at once (for whole-store operator outputs)."""
        self._reveal_cache.update(self._opened(self.store.query(
            "SELECT token, kind, sealed_dek, sealed_value FROM jejak_subjects WHERE sealed_dek IS NOT NULL")))

    def reveal_value(self, value: Any) -> Any:
        """A value of a protected fact with its tokens opened (whole or inside a
        string, at any depth); an erased token stays as it is."""
        if type(value) is str:
            if not value.startswith(TOKEN_PREFIX) or not TOKEN_IN_TEXT.fullmatch(value):
                return self.reveal_text(value) if TOKEN_PREFIX in value else value
            clear = self.reveal(value)
            if clear is None:
                return value  # erased: the token is all that is left
            return orjson.loads(clear) if value in self._json_tokens else clear
        if isinstance(value, dict):
            return {name: self.reveal_value(v) for name, v in value.items()}
        if isinstance(value, list):
            return [self.reveal_value(v) for v in value]
        return value

    def reveal_text(self, text: str) -> str:
        """Text with every token inside it opened (a fact id, an anomaly's primary); erased ones stay tokens."""
        def opened(match: re.Match[str]) -> str:
            clear = self.reveal(match.group())
            return match.group() if clear is None else clear

        return TOKEN_IN_TEXT.sub(opened, text)

    def reveal_fact(self, protected: dict[str, Any]) -> dict[str, Any]:
        return self.reveal_value(protected)

    def tokens_for(self, value: str, kinds: Sequence[str] = ("nik", "kk")) -> list[str]:
        return [self.tokenizer.token(kind, value) for kind in kinds]

    # -------------------------------------------------------------------- read
    def read_entries(self, start: int, limit: int, *, reveal: bool = True) -> list[Entry]:
        entries = []
        for index, _fact_id, chain, leaf, _topic in self.store.read_log(start, start + limit):
            if leaf is None:
                raise LedgerError(f"log entry {index} has no stored event; run `jejak verify`")
            fact, _derived = decode_leaf(leaf)
            entries.append(Entry(index, self.reveal_fact(fact) if reveal else fact, chain.hex()))
        return entries

    def get_position(self, name: str) -> int:
        return self.store.get_position(name)

    def set_position(self, name: str, position: int) -> None:
        self.store.set_position(name, position)

    def export(self, *, public: bool = False, with_chain: bool = False) -> Iterator[dict[str, Any]]:
        """SPEC §2 export lines {index, leaf, fact}; `with_chain` adds each chain hash."""
        import base64

        if not public:
            self.preload_reveals()
        for index, _fact_id, chain, leaf, _topic in self.store.iter_log():
            if leaf is None:
                raise LedgerError(f"log entry {index} has no stored event; run `jejak verify`")
            fact, _derived = decode_leaf(leaf)
            line = {
                "index": index,
                "leaf": base64.b64encode(leaf).decode("ascii"),
                "fact": fact if public else self.reveal_fact(fact),
            }
            if with_chain:
                line["chain"] = chain.hex()
            yield line


def open_vault(store: Store, settings: Settings, kek: bytes) -> Sealer:
    """The sealer of this store: its vault-key generation (the first one made
    for a new store, or one sealed before generations) and its key files."""
    store_id = store.set_meta_once("vault.store_id", os.urandom(8).hex())
    keys = VaultKeys(settings.resolved_vault_keys_dir(), store_id, kek)
    generation = store.get_meta(store.recorder.VAULT_GENERATION)
    if generation is None:
        try:
            keys.create(1)
        except FileExistsError:  # another process made it first
            pass
        generation = store.set_meta_once(store.recorder.VAULT_GENERATION, "1")
    sealer = Sealer(kek, keys, int(generation))
    keys.key(sealer.generation)  # fails here, clearly, if the key file is missing
    keys.destroy_before(sealer.generation)  # left by an erasure stopped between its commit and their destruction
    return sealer


def bounded_lines(stream: Any, limit: int) -> Iterator[bytes]:
    """The lines of a binary stream, none held whole if longer than `limit`
    bytes (newline excluded): such a line comes as an `OversizedLine`."""
    readline = stream.readline
    while line := readline(limit + 1):
        if len(line) <= limit or line.endswith(b"\n"):
            yield line
            continue
        length = len(line)
        while line and not line.endswith(b"\n"):  # skip the rest of it, a chunk at a time
            line = readline(1 << 16)
            length += len(line)
        yield OversizedLine.of(length - line.endswith(b"\n"), limit)


def _batches(lines: Iterable[bytes], size: int) -> Iterator[tuple[list[int], list[bytes]]]:
    """(line numbers, lines) in batches of `size`; 1-based numbers, blank lines skipped."""
    numbers: list[int] = []
    batch: list[bytes] = []
    checked = False
    for number, raw in enumerate(lines, start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]  # a UTF-8 byte order mark is not part of the first fact
        if not raw or raw.isspace():  # blank (bytes.strip() would copy every line to tell)
            continue
        if not checked and raw.translate(None, b" \t\r\n\x00"):  # UTF-16 white space is not blank here
            check_not_a_container(raw)
            checked = True
        batch.append(raw)
        numbers.append(number)
        if len(batch) >= size:
            yield numbers, batch
            numbers, batch = [], []
    if batch:
        yield numbers, batch


#: First bytes of compressed files (full magic numbers, so that a garbage
#: first line stays what it is: one rejected line), and what to do instead.
_COMPRESSED = (
    (b"\x1f\x8b\x08", "gzip-compressed: decompress it first, e.g. `zcat FILE | jejak ingest -`"),
    *((b"BZh" + bytes([d]) + b"1AY&SY", "bzip2-compressed: decompress it first, e.g. `bzcat FILE | jejak ingest -`")
      for d in b"123456789"),
    (b"\xfd7zXZ\x00", "xz-compressed: decompress it first, e.g. `xzcat FILE | jejak ingest -`"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed: decompress it first, e.g. `zstdcat FILE | jejak ingest -`"),
    (b"PK\x03\x04", "a zip archive: extract the JSON lines file from it first"),
)


def check_not_a_container(first_line: bytes) -> None:
    """Refuse, before reading on, an input whose first line shows it is not JSON
    lines at all (SPEC §2: exit 2, unusable input): compressed, or UTF-16/32
    text. Anything less certain stays one rejected line (exit 3).
    `first_line`: the first line with more than white space and NUL bytes."""
    for magic, what in _COMPRESSED:
        if first_line.startswith(magic):
            raise UnusableInput(f"the input is {what}; nothing was recorded")
    # ASCII in UTF-16 is half NUL bytes (in UTF-32 three quarters), and a fact starts with an encoded brace
    if first_line.count(0) * 3 >= len(first_line) and (b"{\x00" in first_line or b"\x00{" in first_line):
        raise UnusableInput("the input is UTF-16 or UTF-32 text: convert it to UTF-8 first, "
                            "e.g. `iconv -f UTF-16 -t UTF-8`; nothing was recorded")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)
