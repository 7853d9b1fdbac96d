"""The process-wide tuning of the remote client (python/expbus/remote.py:
the grpc experiment it turns off for grpc's first initialisation only, the
switches that leave the process alone, the arena warmed once) and of the
bridge (src/bridge/heap.c: its heap advised for huge pages)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

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


def _heap_flags(pid):
    """(size in bytes, VmFlags) of each [heap] mapping of process pid."""
    out, size = [], 0
    with open(f"/proc/{pid}/smaps") as f:
        in_heap = False
        for line in f:
            if "-" in line.split()[0] and len(line.split()) >= 5:
                in_heap = line.rstrip().endswith("[heap]")
            elif in_heap and line.startswith("Size:"):
                size = int(line.split()[1]) * 1024
            elif in_heap and line.startswith("VmFlags:"):
                out.append((size, line.split()[1:]))
    return out


@pytest.mark.skipif(not os.path.exists("/sys/kernel/mm/transparent_hugepage"),
                    reason="no transparent huge pages in this kernel")
def test_bridge_heap_has_room_for_retention_in_huge_pages(bridge_factory):
    """heap.c: the brk heap grew by the retention (here 8 MiB) plus 16 MiB
    at start-up, and that range asks for transparent huge pages."""
    b = bridge_factory("--retention-bytes", str(8 << 20))
    with open(f"/proc/{b.proc.pid}/maps") as f:
        if any(x in f.read() for x in ("libasan", "libtsan")):
            pytest.skip("a sanitizer's allocator: no brk heap to advise")
    heaps = _heap_flags(b.proc.pid)
    advised = sum(size for size, flags in heaps if "hg" in flags)
    assert advised >= 20 << 20, heaps
