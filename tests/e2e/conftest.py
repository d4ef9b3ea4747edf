"""End-to-end tests build artifacts, start fresh processes, servers and virtual environments:
all of them are ``slow``, left to ``make test`` (``make test-fast`` runs the unit tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in item.path.parents:
            item.add_marker(pytest.mark.slow)
