"""Fixtures of the hostile-peer suite (see hostile_harness.py)."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hostile_harness import (HostileBroker, SmallBroker,  # noqa: E402
                             broker_fixture)


@pytest.fixture
def broker(tmp_path):
    yield from broker_fixture(tmp_path, HostileBroker)


@pytest.fixture
def small_broker(tmp_path):
    yield from broker_fixture(tmp_path, SmallBroker)
