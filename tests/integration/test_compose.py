"""docker-compose.yml: valid for Compose, and the production shape the README promises.

(a) ``docker-compose config -q`` (Debian's docker-compose 1.29, installed by
    .ci/run): missing binary fails with JEJAK_REQUIRE_SERVICES=1, else skips.
(b) Without the binary: the YAML against the Compose JSON schema (a copy in
    tests/vectors, source noted there: never skipped) plus structural assertions
    (services, KRaft Kafka, healthchecks, healthy dependencies, no literal secrets).
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
SCHEMA_FILE = REPO / "tests" / "vectors" / "compose_spec.json"  # docker-compose 1.29.2's, see tests/vectors/README.md
REQUIRE_SERVICES = os.environ.get("JEJAK_REQUIRE_SERVICES") == "1"

JEJAK_SERVICES = ("jejak-api", "jejak-feed-consume", "jejak-feed-publish")
ALL_SERVICES = ("postgres", "kafka", *JEJAK_SERVICES)

#: Environment names that hold a secret (the value must come from ``${...}``).
SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|PRIVATE|_KEY$|^JEJAK_KEK$)", re.I)
INTERPOLATION = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(:?[-?+][^}]*)?\}$")
URL_PASSWORD = re.compile(r"://[^:/@\s]+:([^@\s]+)@")


def docker_compose() -> str:
    exe = shutil.which("docker-compose")
    if exe is None:
        msg = "docker-compose is not installed (.ci/run installs Debian's docker-compose)"
        if REQUIRE_SERVICES:
            pytest.fail(msg + " (JEJAK_REQUIRE_SERVICES=1)", pytrace=False)
        pytest.skip(msg)
    return exe


def compose_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "POSTGRES_PASSWORD" and not k.startswith("COMPOSE_")}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def environment(service: dict[str, Any]) -> dict[str, Any]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        out = {}
        for item in env:
            name, _, value = str(item).partition("=")
            out[name] = value
        return out
    return dict(env)


# ------------------------------------------------------------- (a) the binary
def test_docker_compose_config_accepts_file():
    exe = docker_compose()
    proc = subprocess.run([exe, "-f", str(COMPOSE_FILE), "config", "-q"], cwd=REPO,
                          env=compose_env(POSTGRES_PASSWORD="x"), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_docker_compose_requires_the_password():
    exe = docker_compose()
    proc = subprocess.run([exe, "-f", str(COMPOSE_FILE), "config", "-q"], cwd=REPO,
                          env=compose_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "POSTGRES_PASSWORD" in proc.stderr


def test_docker_compose_resolved_config(compose):
    """What Compose itself makes of the file (anchors merged, variables set) has the same shape."""
    exe = docker_compose()
    proc = subprocess.run([exe, "-f", str(COMPOSE_FILE), "config"], cwd=REPO,
                          env=compose_env(POSTGRES_PASSWORD="s3cret-for-test"), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    resolved = yaml.safe_load(proc.stdout)
    assert set(resolved["services"]) == set(compose["services"])
    for name in JEJAK_SERVICES:
        svc = resolved["services"][name]
        assert all(svc["depends_on"][dep]["condition"] == "service_healthy" for dep in ("postgres", "kafka"))
        assert "s3cret-for-test@postgres:5432" in environment(svc)["JEJAK_STORE"]
        assert svc["healthcheck"]["test"]
    assert environment(resolved["services"]["postgres"])["POSTGRES_PASSWORD"] == "s3cret-for-test"


# -------------------------------------------------------- (b) schema + shape
@pytest.fixture(scope="module")
def schema_validator():
    schema = json.loads(SCHEMA_FILE.read_text())
    # The file declares draft 2019-09 (with a trailing '#' jsonschema does not recognise).
    cls = jsonschema.Draft201909Validator
    cls.check_schema(schema)
    return cls(schema)


def test_compose_file_matches_schema(compose, schema_validator):
    errors = sorted(schema_validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_schema_validation_is_not_vacuous(compose, schema_validator):
    broken = copy.deepcopy(compose)
    broken["services"]["kafka"]["helthcheck"] = {"test": ["CMD", "true"]}  # typo: not a Compose key
    assert list(schema_validator.iter_errors(broken))
    broken = copy.deepcopy(compose)
    broken["services"]["postgres"]["depends_on"] = "kafka"  # wrong type
    assert list(schema_validator.iter_errors(broken))


def test_services_present(compose):
    assert set(ALL_SERVICES) <= set(compose["services"]), sorted(compose["services"])


def test_kafka_is_kraft_without_zookeeper(compose):
    services = compose["services"]
    assert not [n for n in services if "zookeeper" in n.lower()]
    kafka = services["kafka"]
    env = environment(kafka)
    roles = [r.strip() for r in str(env.get("KAFKA_PROCESS_ROLES", "")).split(",")]
    assert "controller" in roles and "broker" in roles, roles
    assert env.get("KAFKA_CONTROLLER_QUORUM_VOTERS"), "KRaft needs controller quorum voters"
    assert env.get("KAFKA_CONTROLLER_LISTENER_NAMES")
    for name, value in env.items():
        assert "ZOOKEEPER" not in name.upper() and "zookeeper" not in str(value).lower(), name
    assert "zookeeper" not in COMPOSE_FILE.read_text().lower().replace("no zookeeper", "")


@pytest.mark.parametrize("name", ALL_SERVICES)
def test_every_service_has_a_healthcheck(compose, name):
    hc = compose["services"][name].get("healthcheck")
    assert hc, f"{name} has no healthcheck"
    assert not hc.get("disable")
    test = hc.get("test")
    assert test and test != ["NONE"], f"{name}: healthcheck without a test"
    if isinstance(test, list):
        assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1


@pytest.mark.parametrize("name", JEJAK_SERVICES)
def test_jejak_services_wait_for_healthy_dependencies(compose, name):
    deps = compose["services"][name].get("depends_on")
    assert isinstance(deps, dict), f"{name}: depends_on must use the long form with conditions"
    for dep in ("postgres", "kafka"):
        assert deps.get(dep, {}).get("condition") == "service_healthy", (name, dep, deps)


def test_jejak_services_are_configured_for_production(compose):
    for name in JEJAK_SERVICES:
        svc = compose["services"][name]
        env = environment(svc)
        assert env["JEJAK_STORE"].startswith("postgresql://") and "@postgres:5432/" in env["JEJAK_STORE"]
        assert env.get("JEJAK_PROFILE") == "prod"
        # master secrets come from a mounted directory, read-only, never from the image
        assert any(str(v).endswith(":ro") and env["JEJAK_KEYS_DIR"] in str(v) for v in svc.get("volumes", []))
    assert compose["services"]["jejak-feed-consume"]["command"][:2] == ["feed", "consume"]
    assert compose["services"]["jejak-feed-publish"]["command"][:2] == ["feed", "publish"]
    assert "kafka:9092" in compose["services"]["jejak-feed-consume"]["command"]


def _secret_problems(compose: dict[str, Any]) -> list[str]:
    problems = []
    for name, svc in compose["services"].items():
        for key, value in environment(svc).items():
            text = "" if value is None else str(value)
            if SECRET_NAME.search(key) and text and not INTERPOLATION.match(text):
                problems.append(f"{name}.environment.{key} is a literal")
            for pw in URL_PASSWORD.findall(text):
                if not INTERPOLATION.match(pw):
                    problems.append(f"{name}.environment.{key} has a literal password in a URL")
    for name, secret in (compose.get("secrets") or {}).items():
        if isinstance(secret, dict) and "environment" not in secret and "file" not in secret:
            problems.append(f"secrets.{name} has neither file nor environment")
    return problems


def test_no_literal_secrets(compose):
    assert _secret_problems(compose) == []


def test_secret_check_catches_literals(compose):
    bad = copy.deepcopy(compose)
    bad["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"] = "hunter2"
    bad["services"]["jejak-api"] = dict(bad["services"]["jejak-api"])
    bad["services"]["jejak-api"]["environment"] = dict(environment(bad["services"]["jejak-api"]),
                                                       JEJAK_STORE="postgresql://jejak:hunter2@postgres:5432/jejak",
                                                       JEJAK_KEK="00" * 32)
    assert len(_secret_problems(bad)) == 3


# ------------------------------------------- (c) from the README, first time
ENV_EXAMPLE = REPO / ".env.example"


def test_the_example_env_renders_the_stack():
    """`cp .env.example .env && docker compose up` as the README says: the
    rendered config needs nothing else from the environment."""
    exe = docker_compose()
    proc = subprocess.run([exe, "--env-file", str(ENV_EXAMPLE), "-f", str(COMPOSE_FILE), "config"], cwd=REPO,
                          env=compose_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    resolved = yaml.safe_load(proc.stdout)
    example = dict(line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
                   if line.strip() and not line.startswith("#"))
    services = resolved["services"]
    assert f":{example['POSTGRES_PASSWORD']}@postgres:5432/" in environment(services["jejak-api"])["JEJAK_STORE"]
    init = services["jejak-init"]
    assert init["command"] == ["init"] and "kafka" not in init["depends_on"]
    for name in JEJAK_SERVICES:  # the tables exist before anything reads them
        assert services[name]["depends_on"]["jejak-init"]["condition"] == "service_completed_successfully"
        assert services[name]["user"] == f"{example['JEJAK_UID']}:{example['JEJAK_GID']}"


def test_images_are_pinned_to_a_patch_release(compose):
    kafka = compose["services"]["kafka"]["image"]
    assert re.fullmatch(r"apache/kafka:\d+\.\d+\.\d+", kafka), kafka


def test_secrets_init_makes_what_the_stack_mounts_and_never_overwrites(tmp_path: Path):
    """`jejak secrets init --dir ./secrets` makes every file the prod profile needs."""
    import sys

    secrets = tmp_path / "secrets"
    cmd = [sys.executable, "-m", "jejak.cli", "secrets", "init", "--dir", str(secrets)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("JEJAK_")}
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    names = {"pseudonym.key", "kek.key", "checkpoint-keys.json"}
    assert {p.name for p in secrets.iterdir()} == names
    assert all((secrets / n).stat().st_mode & 0o077 == 0 for n in names) and secrets.stat().st_mode & 0o077 == 0
    before = {n: (secrets / n).read_bytes() for n in names}
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and set(json.loads(again.stdout)["kept"]) == names
    assert {n: (secrets / n).read_bytes() for n in names} == before
    prod = {**env, "JEJAK_PROFILE": "prod", "JEJAK_KEYS_DIR": str(secrets),  # as the containers run
            "JEJAK_SIGNER_STATE_DIR": str(tmp_path / "signer"), "JEJAK_VAULT_KEYS_DIR": str(tmp_path / "vault")}
    store = str(tmp_path / "s.db")
    for args in (["init"], ["checkpoint"], ["verify"]):
        r = subprocess.run([sys.executable, "-m", "jejak.cli", "--store", store, *args], env=prod,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (args, r.stderr)
    assert {p.name for p in secrets.iterdir()} == names
def test_two_independent_witnesses_and_a_policy_requiring_both(compose):
    witnesses = [compose["services"][name] for name in ("witness-1", "witness-2")]
    volumes = [w["volumes"][0].split(":")[0] for w in witnesses]
    assert len(set(volumes)) == 2, "each witness keeps its own state"
    for w in witnesses:
        assert "JEJAK_STORE" not in w.get("environment", {}), "a witness needs nothing of the ledger"
        assert "./secrets" not in " ".join(w.get("volumes", [])), "nor the log's keys"
        assert "witness serve" in " ".join(w["command"])
        assert w["healthcheck"]["test"]
    example = (REPO / "witnesses" / "policy.example").read_text()
    assert "group both all w1 w2" in example and "quorum both" in example
