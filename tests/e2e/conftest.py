"""Fixtures for the end-to-end tests: the shared harness in
tests/expbus_harness.py (a real broker on a private socket)."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from expbus_harness import broker_fixture, finish as _finish  # noqa: E402


@pytest.fixture
def broker(tmp_path):
    yield from broker_fixture(tmp_path)


@pytest.fixture
def finish():
    return _finish
