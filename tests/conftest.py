"""Shared fixtures: the project root and a loaded copy of its settings and feature definitions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Tests never talk to a real tracking server or analytics endpoint.
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
os.environ.setdefault("GIT_AUTHOR_NAME", "Test")
os.environ.setdefault("GIT_AUTHOR_EMAIL", "test@example.invalid")
os.environ.setdefault("GIT_COMMITTER_NAME", "Test")
os.environ.setdefault("GIT_COMMITTER_EMAIL", "test@example.invalid")


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def settings():
    from german_credit_scoring.settings import load_settings

    return load_settings(ROOT / "params.yaml")


@pytest.fixture(scope="session")
def features(settings):
    from german_credit_scoring.contract import load_features

    return load_features(ROOT / settings.features)


@pytest.fixture(scope="session")
def sample_frame(settings):
    from german_credit_scoring.data import read_table

    return read_table(ROOT / settings.data.path)
