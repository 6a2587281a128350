"""Settings from the environment (pydantic-settings, `JEJAK_*`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jejak.settings import Settings


def test_an_empty_variable_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    # `JEJAK_KEYS_DIR= jejak ...` must not put the master secrets in the current directory
    monkeypatch.setenv("JEJAK_KEYS_DIR", "")
    monkeypatch.setenv("JEJAK_STORE", "/srv/jejak/ledger.db")
    settings = Settings()
    assert settings.keys_dir is None
    assert settings.resolved_keys_dir() == Path("/srv/jejak/ledger.db.keys")


def test_variables_override_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JEJAK_KEYS_DIR", "/run/secrets/jejak")
    monkeypatch.setenv("JEJAK_UNCLAIMED_DAYS", "120")
    settings = Settings()
    assert settings.resolved_keys_dir() == Path("/run/secrets/jejak")
    assert settings.unclaimed_days == 120


def test_v2_thresholds_default_to_spec_and_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings()
    assert (s.complaint_days, s.indicator_registers, s.companion_complaints) == (14, 2, 3)
    monkeypatch.setenv("JEJAK_COMPLAINT_DAYS", "30")
    monkeypatch.setenv("JEJAK_INDICATOR_REGISTERS", "3")
    monkeypatch.setenv("JEJAK_COMPANION_COMPLAINTS", "5")
    s = Settings()
    assert (s.complaint_days, s.indicator_registers, s.companion_complaints) == (30, 3, 5)
