"""The log as a C2SP tlog-witness client: gather cosignatures for a new checkpoint.

For each witness of the policy with a URL (one without counts as absent), in
parallel, with a timeout each: `POST <url>/add-checkpoint` with the consistency
proof from the size that witness last cosigned (remembered per witness beside
the signing key; 0 when unknown); on 409 retry once from the size it returned.
Only cosignature lines that verify under the policy's key for that witness are
kept, appended in policy order; the quorum decides.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from jejak.audit.cosignature import parse_cosignature_line
from jejak.audit.errors import MalformedNote, VerificationError
from jejak.audit.keys import replace_file
from jejak.audit.note import Verifier
from jejak.audit.policy import MalformedPolicy, Policy, PolicyWitness, QuorumNotMet

MEMORY_FILE = "witness-sizes.json"
SIZE_CONTENT_TYPE = "text/x.tlog.size"
_SIZE = re.compile(r"(0|[1-9][0-9]{0,19})\n?")


class PolicyError(ValueError):
    """A policy that cannot be used (unreadable, malformed, or not for this log)."""


def load_policy(path: Path, log_key: Verifier | None = None) -> Policy:
    """Read and parse a tlog-policy file; with `log_key`, its log lines must name that key."""
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise PolicyError(f"cannot read the witness policy {path}: {exc.strerror}") from None
    try:
        policy = Policy.parse(text)
    except MalformedPolicy as exc:
        raise PolicyError(f"witness policy {path}: {exc}") from None
    if log_key is not None and policy.logs and log_key not in policy.log_verifiers():
        listed = ", ".join(v.key_text() for v in policy.log_verifiers())
        raise PolicyError(f"witness policy {path}: its log line(s) must name this log's key: "
                          f"expected {log_key.key_text()}, got {listed}")
    return policy


@dataclass(frozen=True)
class Outcome:
    witness: PolicyWitness
    line: str | None  # the verified cosignature line
    cosigned_size: int | None  # what the witness now holds, when known
    reason: str = ""


class WitnessMemory:
    """The size each witness last cosigned for an origin (`witness-sizes.json` in the keys dir)."""

    def __init__(self, keys_dir: Path, origin: str) -> None:
        self.path = Path(keys_dir) / MEMORY_FILE
        self.origin = origin

    def _all(self) -> dict:
        try:
            data = json.loads(self.path.read_text("utf-8"))
            return data if isinstance(data, dict) else {}
        except (FileNotFoundError, ValueError):
            return {}  # only a hint: a wrong size costs one 409 round trip

    def sizes(self) -> dict[str, int]:
        known = self._all().get(self.origin, {})
        return {k: v for k, v in known.items() if isinstance(v, int) and v >= 0} if isinstance(known, dict) else {}

    def save(self, sizes: dict[str, int]) -> None:
        data = self._all()
        data[self.origin] = {**self.sizes(), **sizes}
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        replace_file(self.path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())


class PolicyCosigner:
    """Implements `jejak.transparency.Cosigner` for a tlog-policy."""

    def __init__(self, policy: Policy, memory: WitnessMemory, timeout: float = 10.0) -> None:
        self.policy = policy
        self.memory = memory
        self.timeout = timeout
        self.outcomes: list[Outcome] = []

    def satisfied(self, note: str) -> bool:
        return self.policy.quorum_met(self.policy.cosigned_by(note)[0])

    def cosign(self, note: str, size: int, proof_from: Callable[[int], list[bytes]]) -> str:
        text = note.split("\n\n", 1)[0] + "\n"
        known = self.memory.sizes()
        reachable = [w for w in self.policy.witnesses if w.url]
        absent = [Outcome(w, None, None, "no URL in the policy") for w in self.policy.witnesses if not w.url]
        with ThreadPoolExecutor(max_workers=max(1, len(reachable))) as pool:
            outcomes = list(pool.map(
                lambda w: self._ask(w, note, text, size, known.get(w.verifier.key_text(), 0), proof_from), reachable))
        self.memory.save({o.witness.verifier.key_text(): o.cosigned_size for o in outcomes
                          if o.cosigned_size is not None})
        self.outcomes = sorted(outcomes + absent, key=lambda o: self.policy.witnesses.index(o.witness))
        cosigned = [o for o in self.outcomes if o.line]
        if not self.policy.quorum_met(o.witness.name for o in cosigned):
            reasons = "; ".join(f"{o.witness.name}: {o.reason}" for o in self.outcomes if not o.line)
            raise QuorumNotMet(
                f"witness quorum {self.policy.quorum!r}: expected cosignatures satisfying it, got "
                f"[{', '.join(o.witness.name for o in cosigned)}] ({reasons})")
        return note + "".join(o.line for o in cosigned)

    def _ask(self, witness: PolicyWitness, note: str, text: str, size: int, old: int,
             proof_from: Callable[[int], list[bytes]]) -> Outcome:
        if old > size:
            old = 0  # a size we never reached: let the witness say what it holds
        for attempt in range(2):
            try:
                status, body, content_type = self._post(witness.url or "", old, proof_from(old), note)
            except (OSError, ValueError) as exc:
                return Outcome(witness, None, None, f"unreachable: {getattr(exc, 'reason', exc)}")
            if status == 200:
                return self._cosigned(witness, text, size, body)
            if status == 409 and content_type.split(";")[0].strip() != SIZE_CONTENT_TYPE:
                return Outcome(witness, None, None, f"409: it cosigned another tree of this size (fork?): "
                                                    f"{body.strip()[:200]!r}")
            if status == 409 and attempt == 0:
                held = _SIZE.fullmatch(body)
                if held is None:
                    return Outcome(witness, None, None, f"409 without a valid size: {body[:80]!r}")
                old = int(held.group(1))
                if old > size:
                    return Outcome(witness, None, old,
                                   f"409: it has cosigned size {old}, beyond this checkpoint's {size} "
                                   "(fork or rollback?)")
                continue
            return Outcome(witness, None, None, f"HTTP {status}: {body.strip()[:200]!r}")
        return Outcome(witness, None, None, "409 twice")

    def _cosigned(self, witness: PolicyWitness, text: str, size: int, body: str) -> Outcome:
        problems = []
        for line in body.splitlines(keepends=True):
            try:
                cosignature = parse_cosignature_line(line)
            except MalformedNote:
                continue  # another key's line of another kind: ignored
            if not witness.verifier.matches(cosignature):
                continue
            try:
                witness.verifier.verify(text, cosignature)
            except VerificationError as exc:
                problems.append(str(exc))
                continue
            return Outcome(witness, cosignature.line(), size)
        why = "; ".join(problems) or f"no cosignature by {witness.verifier.key_text()}"
        return Outcome(witness, None, None, f"200 without a valid cosignature: {why}")

    def _post(self, url: str, old: int, proof: list[bytes], note: str) -> tuple[int, str, str]:
        body = f"old {old}\n" + "".join(base64.b64encode(h).decode() + "\n" for h in proof) + "\n" + note
        request = urllib.request.Request(url.rstrip("/") + "/add-checkpoint", data=body.encode("utf-8"),
                                         method="POST", headers={"Content-Type": "text/plain; charset=utf-8"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, response.read(65536).decode("utf-8", "replace"), \
                    response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.read(65536).decode("utf-8", "replace"), exc.headers.get("Content-Type", "")
