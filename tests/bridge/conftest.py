"""Fixtures for the bridge tests (bridge_harness.py): broker, bridge,
bridge_factory. Skipped when expbus-grpc was not built (-Dbridge)."""
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bridge_harness import Bridge, bridge_exe, harness  # noqa: E402


@pytest.fixture(autouse=True)
def _needs_bridge():
    if not os.path.exists(bridge_exe()):
        pytest.skip("expbus-grpc not built (meson -Dbridge=enabled needs "
                    "grpc, protobuf-c, lz4)")


@pytest.fixture
def broker(tmp_path):
    yield from harness.broker_fixture(tmp_path)


@pytest.fixture
def bridge_factory(broker):
    started = []

    def start(*args, **kw):
        b = Bridge(broker, *args, **kw)
        started.append(b)
        return b

    yield start
    for b in started:
        rc = b.stop()
        assert rc == 0, f"expbus-grpc exited {rc}:\n{b.log()[-3000:]}"


@pytest.fixture
def bridge(bridge_factory):
    return bridge_factory()


