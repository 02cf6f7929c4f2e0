"""Shared fixtures. Registries are never mutated for good: tests use ``Registry.override``
or monkeypatch, so one test's kinds do not leak into another's."""

from __future__ import annotations

import pytest

import population_toys


@pytest.fixture
def toy_key_kind():
    """The toy population key kind, registered for one test."""
    with population_toys.key_kind():
        yield
