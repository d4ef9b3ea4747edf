"""Test-session settings shared by every test and by the processes the tests start."""

from __future__ import annotations

import os
import tempfile


def pytest_configure() -> None:
    # Artifacts the tests save and build are recorded in a trust store of the test session, not
    # in the user's own (child processes inherit it through the environment); keys trusted by the
    # user's configuration play no part.
    os.environ["PADL_TRUST_STORE"] = tempfile.mkdtemp(prefix="padl-test-trust-")
    os.environ["PADL_TRUSTED_KEYS"] = ""
