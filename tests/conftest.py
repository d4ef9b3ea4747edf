"""Test-session settings shared by every test and by the processes the tests start."""

from __future__ import annotations

import os
import tempfile

# Python files that are not modules of the suite: generated stage modules (golden files),
# artifacts' code, and a file of uses of the API for the type checker only.
collect_ignore_glob = ["golden/stages/*", "fixtures/*", "typing/api_usage.py"]


def pytest_configure() -> None:
    # Artifacts the tests save and build are recorded in a trust store of the test session, not
    # in the user's own (child processes inherit it through the environment); keys trusted by the
    # user's configuration play no part.
    os.environ["PADL_TRUST_STORE"] = tempfile.mkdtemp(prefix="padl-test-trust-")
    os.environ["PADL_TRUSTED_KEYS"] = ""
