"""Per-app state (one Ledger for the app's lifetime) and request dependencies."""

from __future__ import annotations

import math
import re
import threading
import time
from collections import OrderedDict
from typing import Annotated, Any, Callable, Sequence

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from jejak.api.access import Access, AccessIndex, AccessLog
from jejak.api.errors import ApiError
from jejak.api.receipts import ReceiptCodes, receipt_key
from jejak.api.roles import INSPECTOR as INSPECTOR_ROLE, RECONCILER
from jejak.api.tokens import Principal, TokenRefused, authenticate, ensure_token_table
from jejak.domain.nik import holds_sixteen_digits
from jejak.ledger import Ledger
from jejak.projections.runner import GENERATION
from jejak.api.watch import ReadModelWatch
from jejak.reports import ENGINE_VERSION, Reports
from jejak.settings import Settings
from jejak.transparency import StoredCheckpoint, Transparency
from jejak.witnessing import load_policy


#: (rebuild generation, last fact index): what cached answers are keyed by.
Version = tuple[int, int]

#: How stale a public answer (aggregates, summary, default proof size) may be, in seconds.
PUBLIC_LAG_S = 0.1
#: Public answers kept per data version (aggregates: levels x programs x periods x pages).
RESPONSE_CACHE_SIZE = 2048


class TokenRate:
    """Per-token request limit of the inspector API (a moving window, in this process's memory)."""

    def __init__(self, rate: str) -> None:
        from limits import parse
        from limits.storage import MemoryStorage
        from limits.strategies import MovingWindowRateLimiter

        self.item = parse(rate)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def check(self, token_name: str) -> None:
        """Count one request; 429 with Retry-After when the token is over its rate."""
        if self.limiter.hit(self.item, "token", token_name):
            return
        reset_at, _remaining = self.limiter.get_window_stats(self.item, "token", token_name)
        wait = max(1, math.ceil(reset_at - time.time()))
        raise ApiError(429, f"too many requests for this token (limit {self.item}); retry in {wait} s",
                       headers={"Retry-After": str(wait)})


class ApiState:
    """Everything the routers share; opened on startup, closed on shutdown."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        from jejak.api.regions import RegionNames

        self.region_names = RegionNames.load(settings)
        self.ledger = Ledger.open(settings)
        try:
            self.store = self.ledger.store
            self.reports = Reports(self.ledger)
            self.transparency = Transparency(self.store, settings)
            self.policy = None if settings.witness_policy is None else load_policy(settings.witness_policy)
            self.receipts = ReceiptCodes(receipt_key(self.ledger.tokenizer))
            ensure_token_table(self.store)
            self.access_log = AccessLog(self.ledger)
            self.access_index = AccessIndex(self.store)
            self.reports.projector.ensure_tables()
        except Exception:
            self.ledger.close()
            raise
        self.watch = ReadModelWatch(self.store, settings.read_model_check_interval, ENGINE_VERSION)
        self._generation: int | None = None
        self.rate = TokenRate(settings.api_rate_limit)
        #: monotonic time until which the store is taken as unreachable (see errors.install_error_handlers)
        self.store_down_until = 0.0
        self._catch_up_lock = threading.Lock()
        self._seen_size = -1
        self._last_refresh: tuple[float, tuple[int, Version, int | None]] | None = None
        self._last_checkpoint: tuple[float, StoredCheckpoint | None] | None = None
        self._checkpoint_by_seq: tuple[int, StoredCheckpoint | None] | None = None
        self._cache_lock = threading.Lock()
        self._cache: dict[Any, tuple[int, Any]] = {}
        self._responses: OrderedDict[Any, tuple[int, bytes]] = OrderedDict()

    def start(self) -> None:
        self.watch.start()

    def close(self) -> None:
        self.watch.stop()
        self.ledger.close()

    def recent_refresh(self, max_age: float) -> tuple[int, Version, int | None] | None:
        """The last `_refresh` answer if younger than `max_age` seconds, else None (never blocks)."""
        last = self._last_refresh
        if last is not None and time.monotonic() - last[0] < max_age:
            return last[1]
        return None

    def refresh(self, max_age: float = 0.0) -> tuple[int, Version, int | None]:
        """`_refresh`, or its last answer if younger than `max_age` seconds (public answers only)."""
        if max_age > 0:
            recent = self.recent_refresh(max_age)
            if recent is not None:
                return recent
        answer = self._refresh()
        self._last_refresh = (time.monotonic(), answer)
        return answer

    def _refresh(self) -> tuple[int, Version, int | None]:
        """Bring the read models up to date; returns (log size, fact-index version, latest checkpoint seq).

        The version is (rebuild generation, last log index in the fact index):
        jejak's own facts (access records) grow the log but leave it, and every
        cached computation over facts, unchanged; a `jejak rebuild` changes it,
        so nothing computed from the read models before the rebuild is served after it. When every read model is at the
        head (the usual case: access records move caught-up models along) this
        is one query per request."""
        size, lowest, version, checkpoint_seq = self._probe()
        if lowest < size:
            with self._catch_up_lock:
                self.reports.catch_up()
                size, lowest, version, checkpoint_seq = self._probe()
        if version[0] != self._generation:
            if self._generation is not None:
                self.watch.rebuilt()
            self._generation = version[0]
        if size != self._seen_size:
            # Anything appended may be an erasure (recorded by another process):
            # forget every clear value opened so far rather than show one too long.
            self.ledger.forget_reveals()
            self._seen_size = size
        return size, version, checkpoint_seq

    def _probe(self) -> tuple[int, int, Version, int | None]:
        """(log size, lowest read-model position, version, latest checkpoint seq) in one round trip."""
        self.reports.projector.ensure_tables()
        size, lowest, row = self.reports.projector.probe(
            "(SELECT MAX(idx) FROM p_facts) AS last", "(SELECT MAX(seq) FROM jejak_checkpoints) AS cp_seq",
            f"(SELECT position FROM jejak_positions WHERE name = '{GENERATION}') AS gen")
        last, cp_seq, gen = row["last"], row["cp_seq"], row["gen"]
        version = (int(gen or 0), -1 if last is None else int(last))
        return int(size or 0), int(lowest), version, None if cp_seq is None else int(cp_seq)

    def cached(self, key: Any, size: int, compute: Callable[[], Any]) -> Any:
        """`compute()` once per (key, log size)."""
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] == size:
                return hit[1]
        value = compute()
        with self._cache_lock:
            if len(self._cache) > 64:
                self._cache.clear()
            self._cache[key] = (size, value)
        return value

    def cached_response_hit(self, key: Any, version: int) -> bytes | None:
        """The cached bytes of a public answer for this version, or None (never computes)."""
        with self._cache_lock:
            hit = self._responses.get(key)
            if hit is not None and hit[0] == version:
                self._responses.move_to_end(key)
                return hit[1]
        return None

    def cached_response(self, key: Any, version: int, compute: Callable[[], bytes]) -> bytes:
        """A public answer's bytes, once per (key, fact-index version); least recently used go first."""
        with self._cache_lock:
            hit = self._responses.get(key)
            if hit is not None and hit[0] == version:
                self._responses.move_to_end(key)
                return hit[1]
        body = compute()
        with self._cache_lock:
            self._responses[key] = (version, body)
            self._responses.move_to_end(key)
            while len(self._responses) > RESPONSE_CACHE_SIZE:
                self._responses.popitem(last=False)
        return body

    def checkpoint_with_seq(self, seq: int | None) -> StoredCheckpoint | None:
        """The latest published checkpoint as a probe saw the latest seq: stored
        checkpoints never change, so it is read only when a newer one was issued."""
        if seq is None:
            return None
        known = self._checkpoint_by_seq
        if known is not None and known[0] == seq:
            return known[1]
        checkpoint = self._published()
        if checkpoint is None or checkpoint.seq <= seq:
            self._checkpoint_by_seq = (seq, checkpoint)
        return checkpoint

    def latest_checkpoint(self, max_age: float = 0.0) -> StoredCheckpoint | None:
        if max_age > 0:
            last = self._last_checkpoint
            if last is not None and time.monotonic() - last[0] < max_age:
                return last[1]
        checkpoint = self._published()
        self._last_checkpoint = (time.monotonic(), checkpoint)
        return checkpoint

    def _published(self) -> StoredCheckpoint | None:
        """The latest checkpoint; with a witness policy, the latest one with its quorum of cosignatures."""
        if self.policy is None:
            return self.transparency.latest_checkpoint()
        return self.transparency.latest_witnessed_checkpoint(self.policy)


class Fresh:
    """A request's view: the state, with read models caught up (once per request)."""

    def __init__(self, state: ApiState, size: int, version: Version, checkpoint_seq: int | None = None) -> None:
        self.state = state
        self.size = size
        self.version = version
        self.checkpoint_seq = checkpoint_seq

    def checkpoint(self) -> StoredCheckpoint | None:
        """The latest checkpoint as of this request's probe (no query unless a new one was issued)."""
        return self.state.checkpoint_with_seq(self.checkpoint_seq)


async def get_state(request: Request) -> ApiState:
    # async (as are the other dependencies that never block): FastAPI runs a
    # sync dependency in its thread pool, a thread hop per dependency per request.
    state = getattr(request.app.state, "api", None)
    if state is None:
        raise ApiError(503, "the ledger is not open yet", "unavailable")
    wait = state.store_down_until - time.monotonic()
    if wait > 0:
        raise ApiError(503, "the store is unreachable for the moment; retry later", "unavailable",
                       headers={"Retry-After": str(math.ceil(wait))})
    return state


def fresh_log(state: Annotated[ApiState, Depends(get_state)]) -> Fresh:
    """For reads answered from the log itself (facts, the access log): read models caught up, not trusted."""
    # FastAPI caches a dependency per request, so this runs at most once per request.
    return Fresh(state, *state.refresh())


def _models_intact(state: ApiState) -> None:
    table = state.watch.mismatch
    if table is not None:
        raise ApiError(503, f"read model table {table} differs from the log; the operator has to look into "
                            "`jejak verify --read-models` and run `jejak rebuild`", "read_models_mismatch")


def fresh(state: Annotated[ApiState, Depends(get_state)]) -> Fresh:
    """For reads answered from read models: 503 while a check found one that differs from the log."""
    _models_intact(state)
    return Fresh(state, *state.refresh())


async def public_fresh(state: Annotated[ApiState, Depends(get_state)]) -> Fresh:
    """Like `fresh`, but may be up to PUBLIC_LAG_S old: no inspector reads its own
    writes through the public API, and under load it saves a query per request.
    Async: a recent answer is returned on the event loop; only a probe goes to a thread."""
    _models_intact(state)
    answer = state.recent_refresh(PUBLIC_LAG_S)
    if answer is None:
        answer = await run_in_threadpool(state.refresh, PUBLIC_LAG_S)
    return Fresh(state, *answer)


bearer = HTTPBearer(auto_error=False, description="API token from `jejak token create --role R --name N`")


def current_principal(
    state: Annotated[ApiState, Depends(get_state)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise ApiError(401, "a bearer token is required (Authorization: Bearer <token>)", headers=challenge)
    try:
        principal = authenticate(state.store, credentials.credentials)
    except TokenRefused as exc:
        raise ApiError(401, str(exc), headers=challenge) from None
    if principal is None:
        raise ApiError(401, "the bearer token is unknown or revoked", headers=challenge)
    state.rate.check(principal.name)
    return principal


def require(*roles: str) -> Callable[..., Principal]:
    async def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if principal.role not in roles:
            raise ApiError(403, f"role {principal.role!r} may not use this; it needs one of: {', '.join(roles)}")
        return principal

    return dependency


INSPECTOR = (INSPECTOR_ROLE,)
ANY_ROLE = (INSPECTOR_ROLE, RECONCILER)

#: Fields of a protected fact that hold a family or person token (`subject`: whom a `jejak.*` fact is about).
SUBJECT_FIELDS = ("kk", "nik", "subject")


def subjects_of(protected: dict[str, Any]) -> list[str]:
    """The family and person tokens a protected fact names."""
    return [v for name in SUBJECT_FIELDS if isinstance(v := protected.get(name), str) and v.startswith("tk1_")]


def audit_access(request: Request, state: ApiState, principal: Principal,
                 subject_tokens: str | None | Sequence[str | None], reason: str) -> None:
    """Record who looked at whom and why (the route template, never the URL):
    one access per person or family the answer reveals (every one on a page,
    and the ones a filter names), all in one transaction, so that asking "who
    looked at this NIK" finds every read that showed it."""
    route = request.scope.get("route")
    path = re.sub(r":\w+\}", "}", getattr(route, "path", None) or "?")
    reason = reason.strip()
    if "\x00" in reason:  # PostgreSQL text cannot hold it (the reason goes to the access log)
        raise ApiError(422, "query parameter 'reason': must not contain NUL characters", "invalid_request")
    if holds_sixteen_digits(reason):
        raise ApiError(422, "query parameter 'reason': must not contain a NIK or KK (16 digits); "
                            "refer to the case by its file number", "invalid_request")
    if subject_tokens is None or isinstance(subject_tokens, str):
        subject_tokens = [subject_tokens]
    subjects = list(dict.fromkeys(t for t in subject_tokens if t)) or [None]
    state.access_log.record_many([Access(principal.name, principal.role, subject, reason, path)
                                  for subject in subjects])
