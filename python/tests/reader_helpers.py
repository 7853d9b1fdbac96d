"""Helpers and fixtures for the Python tests (conftest.py hands the fixture
and hooks to pytest; tests import the rest from here, a name no other
suite's conftest shadows): the package imported from python/, a real
expbusd on a private socket in tmp_path (stopped with SIGTERM and checked to
exit 0), the C CLI, every started process killed at teardown, and the record
pattern of tools/pattern.h computed with numpy.

Against an AddressSanitizer build (EXPBUS_BUILD_DIR=build-asan), loading
libexpbus.so into this interpreter would abort it (ASan must come first), so
tests marked `binding` run in a child pytest with libasan preloaded."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(ROOT / "tests"))
import expbus_harness as harness  # noqa: E402

PY = "/usr/bin/python3"
GOLDEN = 0x9E3779B97F4A7C15


build_dir = harness.build_dir


def child_env(binding=False):
    """Environment for a Python child: the package on PYTHONPATH and, for
    a child that loads an ASan libexpbus, libasan preloaded."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "python") + os.pathsep + env.get("PYTHONPATH", "")
    env["EXPBUS_BUILD_DIR"] = str(build_dir())
    if binding:
        sys.path.insert(0, str(ROOT / "python"))
        from expbus import producer
        env = producer.library_env(env)
    return env


class Broker(harness.Broker):
    """The shared harness (tests/expbus_harness.py), plus Python children."""

    def pub(self, *args, **kw):
        """`expbus pub` in the background."""
        return self.start("pub", *args, **kw)

    def sub(self, *args, **kw):
        return self.start("check", *args, **kw)

    def python(self, code, *args, binding=False, **kw):
        """A Python child running code (a string) with the package."""
        return self.spawn([PY, "-c", code, self.socket, *args],
                          env=child_env(binding), **kw)


@pytest.fixture
def broker(tmp_path):
    yield from harness.broker_fixture(tmp_path, Broker)


finish = harness.finish


# ---------------------------------------------------------------------------
# tools/pattern.h in numpy
# ---------------------------------------------------------------------------

def splitmix64(x):
    import numpy as np
    with np.errstate(over="ignore"):
        z = np.asarray(x, dtype=np.uint64) + np.uint64(GOLDEN)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def pattern_data(p, seqs, data_size):
    """The data area of records seqs of producer p: uint8 [n, data_size]."""
    import numpy as np
    seqs = np.asarray(seqs, dtype=np.uint64)
    base = splitmix64((np.uint64(p) << np.uint64(40)) ^ seqs)
    k = np.arange((data_size + 7) // 8, dtype=np.uint64)
    with np.errstate(over="ignore"):
        words = base[:, None] + k[None, :] * np.uint64(GOLDEN)
    return words.astype("<u8").view(np.uint8)[:, :data_size]


def pattern_header(p, seqs, games=4, episode_len=100, players=2):
    """(game, player, turn, flags) arrays for records seqs of producer p."""
    import numpy as np
    s = np.asarray(seqs, dtype=np.uint64)
    game = p * 1000 + (s // episode_len) % games
    turn = s % episode_len
    flags = (turn == episode_len - 1).astype(np.uint32)
    return (game.astype(np.uint32), (s % players).astype(np.uint32),
            turn.astype(np.uint32), flags)


def check_batch_pattern(batch, schema, **gen):
    """Asserts every field's bytes and the header columns of batch follow
    the pattern. Returns the seq column (a copy)."""
    import numpy as np
    n = batch.count
    seq = np.array(batch["seq"])
    game = np.array(batch["game"])
    p = game // 1000
    for prod in np.unique(p):
        sel = p == prod
        data = pattern_data(int(prod), seq[sel], schema.data_size)
        for f in schema.fields:
            col = np.asarray(batch[f.name]).reshape(n, -1).view(np.uint8)
            assert np.array_equal(col[sel], data[:, f.offset:f.offset + f.size]), \
                f"field {f.name} differs from the pattern"
        g, pl, t, fl = pattern_header(int(prod), seq[sel], **gen)
        assert np.array_equal(game[sel], g)
        assert np.array_equal(np.asarray(batch["player"])[sel], pl)
        assert np.array_equal(np.asarray(batch["turn"])[sel], t)
        assert np.array_equal(np.asarray(batch["flags"])[sel], fl)
    return seq


# ---------------------------------------------------------------------------
# ASan builds: binding tests in a child with libasan preloaded
# ---------------------------------------------------------------------------

def pytest_configure(config):
    config.addinivalue_line(
        "markers", "binding: loads libexpbus.so into the test process")


def _needs_asan_child():
    if os.environ.get("EXPBUS_TEST_CHILD"):
        return False
    from expbus import producer
    try:
        return producer.library_needs_preload()
    except producer.LibraryNotFound:
        return False


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    if pyfuncitem.get_closest_marker("binding") is None or not _needs_asan_child():
        return None
    env = child_env(binding=True)
    env["EXPBUS_TEST_CHILD"] = "1"
    r = subprocess.run(
        [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
         pyfuncitem.nodeid], cwd=str(pyfuncitem.config.rootpath), env=env,
        capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        pytest.fail("in a child with libasan preloaded:\n" + r.stdout[-6000:]
                    + r.stderr[-3000:], pytrace=False)
    return True
