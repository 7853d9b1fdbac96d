"""The remote client's process-wide tuning (python/expbus/remote.py): the
grpc experiment it turns off for grpc's first initialisation only, and the
switches that leave the process alone."""
import os
import subprocess
import sys
from pathlib import Path

import expbus.remote as remote

ROOT = Path(__file__).resolve().parents[2]


def test_read_chunks_off_only_where_known(monkeypatch):
    monkeypatch.delenv("GRPC_EXPERIMENTS", raising=False)
    monkeypatch.delenv("EXPBUS_REMOTE_MALLOPT", raising=False)
    for version, want in (("1.51.1", "-tcp_read_chunks"),
                          ("1.49.0", None), ("1.60.0", None),
                          ("dev", None)):
        monkeypatch.setattr(remote.grpc, "__version__", version)
        assert remote._without_read_chunks() == want, version
    monkeypatch.setattr(remote.grpc, "__version__", "1.51.1")
    monkeypatch.setenv("GRPC_EXPERIMENTS", "")  # the user's, even empty
    assert remote._without_read_chunks() is None
    monkeypatch.delenv("GRPC_EXPERIMENTS")
    monkeypatch.setenv("EXPBUS_REMOTE_MALLOPT", "0")
    assert remote._without_read_chunks() is None


def test_channel_leaves_the_environment_as_it_was():
    # A fresh process: grpc initialises with the first channel.
    code = (
        "import os, grpc, expbus.remote as r\n"
        "assert 'GRPC_EXPERIMENTS' not in os.environ\n"
        "seen = []\n"
        "real = r._channel\n"
        "def spy(*a):\n"
        "    seen.append(os.environ.get('GRPC_EXPERIMENTS'))\n"
        "    return real(*a)\n"
        "r._channel = spy\n"
        "r.channel('127.0.0.1:1').close()\n"
        "assert 'GRPC_EXPERIMENTS' not in os.environ\n"
        "want = r._without_read_chunks()\n"
        "assert seen == [want], (seen, want)\n"
        "print(seen[0])\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("GRPC_EXPERIMENTS", "EXPBUS_REMOTE_MALLOPT")}
    env["PYTHONPATH"] = str(ROOT / "python")
    out = subprocess.run([sys.executable, "-c", code], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    if remote.grpc.__version__.startswith("1.51."):
        assert out.stdout.strip() == "-tcp_read_chunks"


def test_heap_warmed_once(monkeypatch):
    monkeypatch.setattr(remote, "_heap_warmed", False)
    monkeypatch.setattr(remote, "_malloc_tuned", True)
    monkeypatch.setattr(remote, "_WARM_BYTES", 1 << 20)
    remote._warm_heap()
    assert remote._heap_warmed
    import ctypes

    def boom(*a, **kw):
        raise RuntimeError("warmed twice")
    monkeypatch.setattr(ctypes, "CDLL", boom)
    remote._warm_heap()  # not again: libc is not even looked up
