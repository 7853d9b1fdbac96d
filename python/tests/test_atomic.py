"""Memory order in the Python reader (python/expbus/_atomic.py): libexpbus's
acquire/release when it loads, plain accesses on x86-64 only, a clear
refusal elsewhere; both ways read real batches."""
import mmap
import os

import pytest

import expbus
from expbus import _atomic
from reader_helpers import check_batch_pattern, finish


def no_library():
    return None, "libexpbus.so was not found (test)"


def test_plain_accesses_are_refused_off_x86_64():
    with pytest.raises(_atomic.MemoryOrderUnavailable,
                       match="cannot guarantee acquire/release on aarch64"):
        _atomic.choose("plain", machine="aarch64")


def test_no_library_off_x86_64_is_refused_with_what_to_do():
    with pytest.raises(_atomic.MemoryOrderUnavailable,
                       match="(?s)aarch64.*not found.*EXPBUS_LIB"):
        _atomic.choose(None, machine="aarch64", loader=no_library)


def test_no_library_on_x86_64_falls_back_to_plain_accesses():
    assert _atomic.choose(None, machine="x86_64", loader=no_library).mode == "plain"


def test_forcing_the_library_without_one_is_an_error():
    with pytest.raises(_atomic.MemoryOrderUnavailable, match="=lib but"):
        _atomic.choose("lib", machine="x86_64", loader=no_library)


def test_the_environment_forces_a_way(monkeypatch):
    monkeypatch.setenv("EXPBUS_PY_ATOMICS", "plain")
    assert _atomic.choose(machine="x86_64", loader=no_library).mode == "plain"
    with pytest.raises(_atomic.MemoryOrderUnavailable):
        _atomic.choose(machine="ppc64le", loader=no_library)
    monkeypatch.setenv("EXPBUS_PY_ATOMICS", "sometimes")
    with pytest.raises(ValueError, match="lib or plain"):
        _atomic.choose(machine="x86_64")


@pytest.mark.binding
def test_the_library_is_chosen_on_any_architecture_and_works_read_only():
    at = _atomic.choose(None, machine="aarch64")  # faked: lib still loads
    assert at.mode == "lib"
    fd = os.memfd_create("t")
    os.ftruncate(fd, 4096)
    rw = mmap.mmap(fd, 4096)
    ro = mmap.mmap(fd, 4096, prot=mmap.PROT_READ)
    w, r = at.counter(rw, 64), at.counter(ro, 64)
    w.store(0x0123456789ABCDEF)
    assert r.load() == 0x0123456789ABCDEF
    assert int.from_bytes(ro[64:72], "little") == 0x0123456789ABCDEF
    at.fence()
    w.release()
    r.release()
    rw.close()
    ro.close()
    os.close(fd)


@pytest.mark.binding
@pytest.mark.parametrize("mode", ["lib", "plain"])
def test_both_ways_read_every_record(broker, mode):
    at = _atomic.choose(mode, machine="x86_64")
    pub = broker.pub("--stream", "mo", "--count", "2000", "--wait-subs", "1")
    seen = []
    with expbus.subscribe("mo", broker.socket, batch_size=64, wait=5,
                          atomics=at) as sub:
        assert sub._atomics.mode == mode
        while len(seen) < 2000:
            b = sub.next_batch(timeout=20)
            assert b is not None
            seen += check_batch_pattern(b, sub.schema).tolist()
            b.release()
    assert seen == list(range(2000))
    assert finish(pub)[0] == 0

