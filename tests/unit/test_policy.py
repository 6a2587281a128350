"""C2SP tlog-policy: parsing (and refusing) policy files, quorum evaluation and
checking a cosigned checkpoint note against a policy."""

from __future__ import annotations

import base64
import hashlib

import pytest

from jejak.audit.checkpoint import Checkpoint, sign_checkpoint
from jejak.audit.cosignature import CosignatureSigner
from jejak.audit.note import Signer
from jejak.audit.policy import MalformedPolicy, Policy, QuorumNotMet

LOG = Signer("example.org/log", hashlib.sha256(b"policy log").digest())
W = [CosignatureSigner(f"w{i}.example", hashlib.sha256(f"policy witness {i}".encode()).digest()) for i in range(6)]
CP = Checkpoint("example.org/log", 7, hashlib.sha256(b"seven").digest())


def vk(i: int) -> str:
    return W[i].verifier_key_text()


def cosigned(*which: int, log: Signer = LOG, cp: Checkpoint = CP) -> str:
    return sign_checkpoint(cp, log) + "".join(W[i].cosign(cp.to_text(), 1700000000 + i) for i in which)


NESTED = f"""
# two organisations
log {LOG.verifier_key_text()} https://log.example/
witness X1 {vk(0)}
witness X2 {vk(1)}  https://x2.example/witness
witness X3 {vk(2)}
group X-witnesses 2 X1 X2 X3
\twitness Y1 {vk(3)}
witness Y2 {vk(4)}
witness Y3 {vk(5)}
group Y-witnesses any Y1 Y2 Y3
group X-and-Y all X-witnesses Y-witnesses
quorum X-and-Y
"""


def test_parse_nested_policy() -> None:
    policy = Policy.parse(NESTED)
    assert [w.name for w in policy.witnesses] == ["X1", "X2", "X3", "Y1", "Y2", "Y3"]
    assert policy.witness("X2").url == "https://x2.example/witness"
    assert policy.witness("X1").url is None
    assert policy.logs[0].origin == "example.org/log" and policy.logs[0].url == "https://log.example/"
    assert [(g.name, g.threshold) for g in policy.groups] == [("X-witnesses", 2), ("Y-witnesses", 1), ("X-and-Y", 2)]
    assert policy.quorum == "X-and-Y"


@pytest.mark.parametrize("names, met", [
    ({"X1", "X2", "Y3"}, True),
    ({"X1", "X3", "Y1", "Y2"}, True),
    ({"X1", "Y1", "Y2", "Y3"}, False),   # one X only
    ({"X1", "X2", "X3"}, False),         # no Y
    (set(), False),
])
def test_quorum_met(names: set[str], met: bool) -> None:
    assert Policy.parse(NESTED).quorum_met(names) is met


def test_verify_quorum_returns_verified_witnesses_in_policy_order() -> None:
    policy = Policy.parse(NESTED)
    assert policy.verify_quorum(cosigned(4, 1, 0)) == ["X1", "X2", "Y2"]


def test_verify_quorum_not_met_names_expected_and_got() -> None:
    policy = Policy.parse(NESTED)
    with pytest.raises(QuorumNotMet, match=r"expected .*got \[X1, Y1\]"):
        policy.verify_quorum(cosigned(0, 3))


def test_bad_cosignature_does_not_count() -> None:
    policy = Policy.parse(NESTED)
    note = cosigned(0, 3)
    forged = W[1].cosign(Checkpoint(CP.origin, 8, CP.root).to_text(), 5)  # on another checkpoint
    with pytest.raises(QuorumNotMet, match="witness X2: cosignature .* does not verify"):
        policy.verify_quorum(note + forged)


def test_log_signature_required() -> None:
    policy = Policy.parse(NESTED)
    other_log = Signer("example.org/log", hashlib.sha256(b"another key").digest())
    with pytest.raises(QuorumNotMet, match="log signature"):
        policy.verify_quorum(cosigned(0, 1, 3, log=other_log))
    # an explicitly given log key takes the place of the policy's log lines
    assert policy.verify_quorum(cosigned(0, 1, 3, log=other_log), log_keys=[other_log.verifier_key_text()])


def test_quorum_none() -> None:
    policy = Policy.parse(f"log {LOG.verifier_key_text()}\nquorum none\n")
    assert policy.verify_quorum(cosigned()) == []


def test_single_witness_quorum() -> None:
    policy = Policy.parse(f"witness A {vk(0)}\nquorum A\n")
    assert policy.verify_quorum(cosigned(0)) == ["A"]
    with pytest.raises(QuorumNotMet):
        policy.verify_quorum(cosigned(1))


@pytest.mark.parametrize("text, problem", [
    ("", "no quorum line"),
    (f"witness A {vk(0)}\n", "no quorum line"),
    (f"witness A {vk(0)}\nquorum A\nquorum A\n", "exactly one quorum"),
    ("quorum A\n", "not a witness or group defined"),
    (f"quorum A\nwitness A {vk(0)}\n", "not a witness or group defined"),
    (f"witness A {vk(0)}\ngroup G 2 A\nquorum G\n", "threshold"),
    (f"witness A {vk(0)}\ngroup G 0 A\nquorum G\n", "threshold"),
    (f"witness A {vk(0)}\ngroup G 01 A\nquorum G\n", "threshold"),
    (f"witness A {vk(0)}\ngroup G some A\nquorum G\n", "threshold"),
    (f"witness A {vk(0)}\ngroup G any\nquorum G\n", "at least one member"),
    (f"witness A {vk(0)}\ngroup G any A A\nquorum G\n", "listed twice"),
    (f"witness A {vk(0)}\ngroup G any A none\nquorum G\n", "'none' cannot be a group member"),
    (f"witness A {vk(0)}\ngroup G any B\nquorum G\n", "not a witness or group defined on an earlier line"),
    (f"witness A {vk(0)}\nwitness A {vk(1)}\nquorum A\n", "defined twice"),
    (f"witness none {vk(0)}\nquorum none\n", "reserved"),
    (f"witness A {vk(0)}\nwitness B {vk(0)}\nquorum A\n", "duplicate witness key"),
    (f"log {LOG.verifier_key_text()}\nlog {LOG.verifier_key_text()}\nquorum none\n", "duplicate log key"),
    (f"witness A {LOG.verifier_key_text()}\nquorum A\n", "expected 0x04.*got 0x01"),
    (f"log {vk(0)}\nquorum none\n", "expected 0x01.*got 0x04"),
    (f"witness A {vk(0)} https://a extra\nquorum A\n", "expected 'witness <name> <vkey> \\[<url>\\]'"),
    (f"witness A\nquorum none\n", "expected 'witness"),
    ("witness A nonsense\nquorum none\n", "verifier key"),
    (f"witness A {vk(0)}\r\nquorum A\r\n", "LF line endings"),
    ("quorum none\nmonitor x\n", "unknown keyword 'monitor'"),
])
def test_malformed_policies_are_refused(text: str, problem: str) -> None:
    with pytest.raises(MalformedPolicy, match=problem):
        Policy.parse(text)


def test_comments_blank_lines_tabs_and_opaque_octets() -> None:
    text = f"  # comment\n\n \t \nwitness caf\xc3\xa9 {vk(0)}\t\n  quorum\tcaf\xc3\xa9  \n".encode("latin-1")
    policy = Policy.parse(text)
    assert policy.verify_quorum(cosigned(0)) == [policy.witnesses[0].name]


def test_key_id_mismatch_in_policy() -> None:
    name, kid, key = vk(0).split("+", 2)
    bad = f"{name}+{int(kid, 16) ^ 1:08x}+{key}"
    with pytest.raises(MalformedPolicy, match="line 1 \\(witness\\): verifier key id"):
        Policy.parse(f"witness A {bad}\nquorum A\n")


def test_unparsable_root_of_trust_is_not_confused_with_cosignature() -> None:
    # a log signature line is never counted as a witness cosignature
    policy = Policy.parse(f"witness A {vk(0)}\nquorum A\n")
    assert base64.b64decode(sign_checkpoint(CP, LOG).rsplit(" ", 1)[1])  # sanity: a real log signature
    with pytest.raises(QuorumNotMet):
        policy.verify_quorum(sign_checkpoint(CP, LOG))
