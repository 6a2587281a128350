"""C2SP tlog-policy: which logs and witnesses are trusted, and the quorum of
witness cosignatures a checkpoint needs.

    log <vkey> [<url>]                 # a type 0x01 (Ed25519 signed note) key
    witness <name> <vkey> [<url>]      # a type 0x04 (cosignature/v1) key
    group <name> all|any|<k> <name>... # k of the n members, each a witness or an earlier group
    quorum <name>|none                 # exactly one

`Policy.parse(text)` refuses malformed input with MalformedPolicy;
`policy.verify_quorum(note)` checks a signed checkpoint note and returns the
names of the witnesses whose cosignatures verified, or raises QuorumNotMet.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from .cosignature import CosignatureVerifier, cosignature_from
from .errors import MalformedKey, MalformedNote, SignatureInvalid, UnknownKey, VerificationError
from .note import Signature, Verifier, as_verifiers, open_note, split_note

__all__ = [
    "NONE",
    "MalformedPolicy",
    "QuorumNotMet",
    "PolicyLog",
    "PolicyWitness",
    "PolicyGroup",
    "Policy",
]

NONE = "none"
_BAD_OCTET = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_FIELDS = re.compile(r"[ \t]+")
_DECIMAL = re.compile(r"[1-9][0-9]{0,8}")


class MalformedPolicy(VerificationError):
    """A tlog-policy file that does not follow the format (named line and problem)."""


class QuorumNotMet(VerificationError):
    """A checkpoint lacks the log signature or the witness cosignatures the policy requires."""


@dataclass(frozen=True)
class PolicyLog:
    verifier: Verifier
    url: str | None = None

    @property
    def origin(self) -> str:
        return self.verifier.name


@dataclass(frozen=True)
class PolicyWitness:
    name: str  # the policy's own name for it (not the key name)
    verifier: CosignatureVerifier
    url: str | None = None


@dataclass(frozen=True)
class PolicyGroup:
    name: str
    threshold: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class Policy:
    logs: tuple[PolicyLog, ...]
    witnesses: tuple[PolicyWitness, ...]
    groups: tuple[PolicyGroup, ...]
    quorum: str
    _groups: dict[str, PolicyGroup] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._groups.update({g.name: g for g in self.groups})

    # ------------------------------------------------------------------ parsing
    @classmethod
    def parse(cls, text: str | bytes) -> "Policy":
        """Parse a policy file; raise MalformedPolicy naming the line and the fix."""
        if isinstance(text, bytes):
            text = text.decode("utf-8", "surrogateescape")  # non-ASCII octets are opaque
        logs: list[PolicyLog] = []
        witnesses: list[PolicyWitness] = []
        groups: list[PolicyGroup] = []
        names: set[str] = set()
        keys: dict[str, dict[bytes, str]] = {"log": {}, "witness": {}}  # duplicates are checked per kind
        quorum: str | None = None
        for number, line in enumerate(text.split("\n"), start=1):
            bad = _BAD_OCTET.search(line)
            if bad:
                hint = " (use LF line endings)" if bad.group() == "\r" else ""
                raise MalformedPolicy(
                    f"policy line {number}: control character 0x{ord(bad.group()):02x} not allowed{hint}")
            fields = _FIELDS.split(line.strip(" \t"))
            if fields == [""] or fields[0].startswith("#"):
                continue
            keyword, args = fields[0], fields[1:]

            def fail(problem: str) -> MalformedPolicy:
                return MalformedPolicy(f"policy line {number} ({keyword}): {problem}")

            def new_name(name: str) -> str:
                if name == NONE:
                    raise fail("the name 'none' is reserved")
                if name in names:
                    raise fail(f"name {name!r} is defined twice")
                names.add(name)
                return name

            def unique_key(public_key: bytes, what: str) -> None:
                if public_key in keys[what]:
                    raise fail(f"duplicate {what} key: the same public key as {keys[what][public_key]}")
                keys[what][public_key] = f"line {number}"

            if keyword == "log":
                if len(args) not in (1, 2):
                    raise fail(f"expected 'log <vkey> [<url>]', got {len(args)} fields after 'log'")
                verifier = _key(Verifier.from_key_text, args[0], fail)
                unique_key(verifier.public_key, "log")
                logs.append(PolicyLog(verifier, args[1] if len(args) == 2 else None))
            elif keyword == "witness":
                if len(args) not in (2, 3):
                    raise fail(f"expected 'witness <name> <vkey> [<url>]', got {len(args)} fields after 'witness'")
                verifier = _key(CosignatureVerifier.from_key_text, args[1], fail)
                unique_key(verifier.public_key, "witness")
                witnesses.append(PolicyWitness(new_name(args[0]), verifier, args[2] if len(args) == 3 else None))
            elif keyword == "group":
                if len(args) < 3:
                    raise fail("expected 'group <name> all|any|<k> <member>...' with at least one member")
                name, k, members = args[0], args[1], tuple(args[2:])
                for member in members:
                    if member == NONE:
                        raise fail("'none' cannot be a group member")
                    if member not in names:
                        raise fail(f"member {member!r} is not a witness or group defined on an earlier line")
                if len(set(members)) != len(members):
                    raise fail("a member is listed twice")
                if k == "all":
                    threshold = len(members)
                elif k == "any":
                    threshold = 1
                elif _DECIMAL.fullmatch(k) and 1 <= int(k) <= len(members):
                    threshold = int(k)
                else:
                    raise fail(f"threshold: expected all, any or a decimal 1..{len(members)}, got {k!r}")
                groups.append(PolicyGroup(new_name(name), threshold, members))
            elif keyword == "quorum":
                if len(args) != 1:
                    raise fail(f"expected 'quorum <name>', got {len(args)} fields after 'quorum'")
                if quorum is not None:
                    raise fail("a policy has exactly one quorum line; this is the second")
                if args[0] != NONE and args[0] not in names:
                    raise fail(f"{args[0]!r} is not a witness or group defined on an earlier line")
                quorum = args[0]
            else:
                raise MalformedPolicy(
                    f"policy line {number}: unknown keyword {keyword!r} (expected log, witness, group or quorum)")
        if quorum is None:
            raise MalformedPolicy("policy has no quorum line (add 'quorum <name>' or 'quorum none')")
        return cls(tuple(logs), tuple(witnesses), tuple(groups), quorum)

    # --------------------------------------------------------------- evaluation
    def witness(self, name: str) -> PolicyWitness:
        for w in self.witnesses:
            if w.name == name:
                return w
        raise KeyError(name)

    def quorum_met(self, cosigned: Iterable[str]) -> bool:
        """Whether witnesses named `cosigned` (policy names) satisfy the quorum."""
        return self._satisfied(self.quorum, frozenset(cosigned))

    def _satisfied(self, name: str, cosigned: frozenset[str]) -> bool:
        if name == NONE:
            return True
        group = self._groups.get(name)
        if group is None:
            return name in cosigned
        return sum(self._satisfied(m, cosigned) for m in group.members) >= group.threshold

    def log_verifiers(self) -> list[Verifier]:
        return [log.verifier for log in self.logs]

    def cosigned_by(self, note: str | bytes) -> tuple[list[str], list[str]]:
        """(policy names of witnesses with a valid cosignature on the note, in policy
        order; problems with cosignature lines that claim a policy witness's key)."""
        return self._cosigners(*split_note(note))

    def _cosigners(self, text: str, lines: list[tuple[Signature, bytes]]) -> tuple[list[str], list[str]]:
        verified: list[str] = []
        problems: list[str] = []
        for witness in self.witnesses:
            for sig, raw in lines:
                if not witness.verifier.matches(sig):
                    continue
                try:
                    witness.verifier.verify(text, cosignature_from(sig, raw))
                except (SignatureInvalid, MalformedNote) as exc:
                    problems.append(f"witness {witness.name}: {exc}")
                    continue
                verified.append(witness.name)
                break
        return verified, problems

    def verify_quorum(self, note: str | bytes, *, log_keys: Iterable[Verifier | str] | None = None) -> list[str]:
        """Check a signed checkpoint note against the policy; return the policy
        names of the witnesses whose cosignatures verified (policy order).

        The log signature is checked against `log_keys` when given, else against
        the policy's log lines (a policy without log lines and no `log_keys`
        checks cosignatures only). Raises QuorumNotMet, MalformedNote."""
        text, lines = split_note(note)
        logs = self.log_verifiers() if log_keys is None else list(as_verifiers(log_keys).values())
        if logs:
            try:
                open_note(note, logs)
            except (UnknownKey, SignatureInvalid) as exc:
                raise QuorumNotMet(f"log signature: {exc}") from None
        verified, problems = self._cosigners(text, lines)
        if not self.quorum_met(verified):
            detail = f" ({'; '.join(problems)})" if problems else ""
            raise QuorumNotMet(
                f"witness quorum {self.quorum!r}: expected cosignatures satisfying it from "
                f"[{', '.join(w.name for w in self.witnesses)}], got [{', '.join(verified)}]{detail}")
        return verified


def _key(parse, text: str, fail) -> object:
    try:
        return parse(text)
    except MalformedKey as exc:
        raise fail(str(exc)) from None
