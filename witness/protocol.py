"""C2SP tlog-witness v1.0.0 `add-checkpoint`: the request body and the answer.

Checks, in the order the specification gives them: 400 malformed request;
404 unknown origin; 403 no signature by a trusted key; 400 old size above the
checkpoint size; 409 old size not the latest cosigned (body: that size,
`text/x.tlog.size`); 409 same size, other root (a fork: plain text, so that
clients do not take it for a stale size); 422 consistency proof does not
verify (a non-empty proof from size 0 included); else the new head is stored by
compare and swap (409 if another request moved it meanwhile) and the answer is
200 with the cosignature line.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from jejak.audit.checkpoint import Checkpoint
from jejak.audit.errors import (
    InvalidProof,
    MalformedCheckpoint,
    MalformedNote,
    RootMismatch,
    SignatureInvalid,
    UnknownKey,
)
from jejak.audit.merkle import EMPTY_ROOT, HASH_SIZE, verify_consistency
from jejak.audit.note import open_note

from .state import LogHead, WitnessState

MAX_BODY_BYTES = 64 * 1024
MAX_PROOF_LINES = 63
SIZE_CONTENT_TYPE = "text/x.tlog.size"
_OLD = re.compile(r"old (0|[1-9][0-9]{0,19})")


class BadRequest(ValueError):
    pass


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    content_type: str = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class AddCheckpoint:
    old: int
    proof: list[bytes]
    note: str

    @classmethod
    def parse(cls, body: bytes) -> "AddCheckpoint":
        if len(body) > MAX_BODY_BYTES:
            raise BadRequest(f"request body over {MAX_BODY_BYTES} bytes")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("request body is not UTF-8") from None
        head, sep, note = text.partition("\n\n")
        if not sep:
            raise BadRequest("expected 'old N', proof lines, an empty line, then the checkpoint")
        lines = head.split("\n")
        match = _OLD.fullmatch(lines[0])
        if not match:
            raise BadRequest(f"first line: expected 'old <size>' (decimal, no leading zeros), got {lines[0][:40]!r}")
        if len(lines) - 1 > MAX_PROOF_LINES:
            raise BadRequest(f"at most {MAX_PROOF_LINES} consistency proof lines, got {len(lines) - 1}")
        proof = []
        for line in lines[1:]:
            try:
                digest = base64.b64decode(line.encode("ascii"), validate=True)
            except (binascii.Error, ValueError, UnicodeEncodeError):
                raise BadRequest("a consistency proof line is not base64") from None
            if len(digest) != HASH_SIZE:
                raise BadRequest(f"a consistency proof line holds {len(digest)} bytes, not {HASH_SIZE}")
            proof.append(digest)
        return cls(int(match.group(1)), proof, note)


def add_checkpoint(state: WitnessState, body: bytes, timestamp: int | None = None) -> Answer:
    """Answer one add-checkpoint request (and update the state when it is cosigned)."""
    try:
        request = AddCheckpoint.parse(body)
    except BadRequest as exc:
        return Answer(400, f"{exc}\n")
    origin = request.note.split("\n", 1)[0]
    keys = state.log_keys(origin)
    if not keys:
        return Answer(404, "unknown log origin\n")
    try:
        text = open_note(request.note, keys).text
        checkpoint = Checkpoint.parse(text)
    except (UnknownKey, SignatureInvalid) as exc:
        return Answer(403, f"no valid signature by a key trusted for this origin: {exc}\n")
    except (MalformedNote, MalformedCheckpoint) as exc:
        return Answer(400, f"malformed checkpoint: {exc}\n")
    if request.old > checkpoint.size:
        return Answer(400, f"old size {request.old} is above the checkpoint size {checkpoint.size}\n")
    known = state.head(origin)
    assert known is not None  # a log with keys has a head (add_log creates both)
    if request.old != known.size:
        return _conflict(known)
    new = LogHead(checkpoint.size, checkpoint.root)
    if new.size == known.size and new.root != known.root:
        # 409 without the size content type: a fork, not a stale old size (clients tell them apart so)
        state.record_refusal(origin, 409, "same size, different root", body)
        return Answer(409, f"a checkpoint of size {known.size} with another root was cosigned: fork\n")
    problem = _proof_problem(request, known, new)
    if problem:
        state.record_refusal(origin, 422, problem, body)
        return Answer(422, f"consistency proof does not verify: {problem}\n")
    moved = state.advance(origin, known, new)
    if moved is not None:
        return _conflict(moved)
    return Answer(200, state.signer.cosign(text, timestamp))


def _conflict(known: LogHead) -> Answer:
    return Answer(409, f"{known.size}\n", SIZE_CONTENT_TYPE)


def _proof_problem(request: AddCheckpoint, known: LogHead, new: LogHead) -> str | None:
    if request.old == 0:
        if request.proof:
            return "the proof must be empty when the old size is 0"
        if new.size == 0 and new.root != EMPTY_ROOT:
            return "a tree of size 0 has the root of the empty tree"
        return None
    try:
        verify_consistency(request.old, new.size, request.proof, known.root, new.root)
    except (InvalidProof, RootMismatch) as exc:
        return str(exc)
    return None
