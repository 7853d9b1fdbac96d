"""The pure-Python reader against a real broker fed by `expbus pub`:
zero-copy read-only views, exact bytes, release semantics, filters,
policies, groups, timeouts, refusals, Ctrl-C, and dead readers."""
import errno
import os
import re
import signal
import time

import numpy as np
import pytest

import expbus
from reader_helpers import check_batch_pattern, finish

SCHEMA = "obs f32[8,8]; action i32; reward f32"


def read_all(sub, n, timeout=20):
    """Reads batches until n records came; returns them as copied dicts."""
    got, out = 0, []
    deadline = time.monotonic() + timeout
    while got < n:
        assert time.monotonic() < deadline, f"only {got} of {n} records came"
        b = sub.next_batch(timeout=1)
        if b is None:
            continue
        with b:
            out.append({k: np.array(v) for k, v in b.items()})
            got += b.count
    return out


def mapping_of(addr):
    with open("/proc/self/maps") as f:
        for line in f:
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            if lo <= addr < hi:
                return line
    return None


def test_columns_are_read_only_views_of_the_batch_ring(broker):
    pub = broker.pub("--stream", "zc", "--count", "64", "--wait-subs", "1")
    with expbus.subscribe("zc", broker.socket, batch_size=64, wait=5) as sub:
        b = sub.next_batch(timeout=10)
        obs = b["obs"]
        assert obs.shape == (b.count, 8, 8) and obs.dtype == np.float32
        # No copy: the array's memory is the mapped memfd, at the column's
        # offset within the batch's slot.
        ring = np.frombuffer(sub._mm, np.uint8)
        addr = obs.__array_interface__["data"][0]
        slot = sub._data_offset + b._index * sub._slot_size
        assert addr == ring.__array_interface__["data"][0] + slot + \
            sub.columns["obs"].offset
        assert "expbus-batch-ring" in mapping_of(addr)
        assert np.shares_memory(obs, ring)
        # Writing raises, and the flag cannot be turned back on.
        assert not obs.flags.writeable
        with pytest.raises(ValueError):
            obs[0, 0, 0] = 1.0
        with pytest.raises(ValueError):
            obs.flags.writeable = True
        with pytest.raises(ValueError):
            b["seq"][0] = 7
        del obs, ring
        b.release()
    assert finish(pub)[0] == 0


def test_every_byte_matches_what_pub_wrote(broker):
    pub = broker.pub("--stream", "bytes", "--count", "3000", "-n", "2",
                     "--wait-subs", "1")
    with expbus.subscribe("bytes", broker.socket, batch_size=100,
                          max_delay=0.01, wait=5) as sub:
        schema = sub.schema
        n = 0
        seen = {0: [], 1: []}
        while n < 6000:
            b = sub.next_batch(timeout=10)
            assert b is not None
            with b:
                seq = check_batch_pattern(b, schema)
                for p in (0, 1):
                    seen[p] += list(seq[np.array(b["game"]) // 1000 == p])
                n += b.count
        for p in (0, 1):
            assert seen[p] == list(range(3000)), "lost or reordered records"
    assert finish(pub)[0] == 0


def test_every_dtype_maps_to_numpy_and_keeps_its_bytes(broker):
    names = [d.name for d in expbus.DTYPES.values()]
    schema = "; ".join(f"c_{n} {n}[3]" for n in names)
    pub = broker.pub("--stream", "dt", "--schema", schema, "--count", "50",
                     "--wait-subs", "1")
    with expbus.subscribe("dt", broker.socket, batch_size=50, wait=5) as sub:
        b = sub.next_batch(timeout=10)
        for n in names:
            assert b[f"c_{n}"].dtype == expbus.numpy_dtype(n)
            assert b[f"c_{n}"].shape == (50, 3)
        check_batch_pattern(b, sub.schema)
        assert b["seq"].dtype == np.uint64 and b["timestamp"].dtype == np.uint64
        assert b["game"].dtype == np.uint32
        b.release()
    assert finish(pub)[0] == 0


def test_dtype_map_round_trips_and_refuses_the_rest():
    for d in expbus.DTYPES.values():
        assert expbus.dtype(d.name) is d and expbus.dtype(d.code) is d
        assert expbus.schema_dtype(expbus.numpy_dtype(d.name)) == d.name
        assert np.dtype(d.numpy).itemsize == d.size
    for bad in (np.complex64, np.float128, object, "U4", ">f4"):
        with pytest.raises(expbus.UnsupportedDtype, match="no expbus"):
            expbus.schema_dtype(bad)
    with pytest.raises(expbus.UnsupportedDtype, match="f32"):
        expbus.dtype("f128")
    with pytest.raises(expbus.UnsupportedDtype, match="field 'x'"):
        expbus.parse_schema("x c64")
    s = expbus.parse_schema("a u8; b f64[2,3]; c:i16")
    assert [f.offset for f in s] == [0, 8, 56] and s.data_size == 64
    assert s.text == "a u8; b f64[2,3]; c i16"


def test_release_gives_back_earlier_batches_and_refuses_their_arrays(broker):
    pub = broker.pub("--stream", "rel", "--count", "64", "--wait-subs", "1")
    with expbus.subscribe("rel", broker.socket, batch_size=8, wait=5) as sub:
        bs = [sub.next_batch(timeout=10) for _ in range(5)]
        assert [b.seq for b in bs] == [0, 1, 2, 3, 4] and sub.held == 5
        head = sub._ring.head.load()
        bs[2].release()
        assert [b.released for b in bs] == [True, True, True, False, False]
        assert sub._ring.head.load() == head + 3 and sub.held == 2
        with pytest.raises(expbus.BatchReleased, match="released"):
            bs[0]["obs"]
        assert bs[3]["obs"].shape == (8, 8, 8)
        with bs[4]:
            pass
        assert bs[3].released and bs[4].released and sub.held == 0
        bs[4].release()  # a second release does nothing
        assert sub._ring.head.load() == head + 5
        with pytest.raises(expbus.ExpbusError, match="not held"):
            sub._release(bs[0])
    assert finish(pub)[0] == 0


def test_holding_every_slot_raises_instead_of_waiting(broker):
    pub = broker.pub("--stream", "full", "--count", "1000", "--wait-subs", "1")
    with expbus.subscribe("full", broker.socket, batch_size=4, batch_slots=2,
                          wait=5) as sub:
        a, b = sub.next_batch(timeout=10), sub.next_batch(timeout=10)
        with pytest.raises(expbus.ExpbusError, match="slots are held"):
            sub.next_batch(timeout=1)
        a.release()
        b.release()
        read_all(sub, 1000 - 8)
    assert finish(pub)[0] == 0


def test_iteration_auto_releases_and_ends_on_timeout(broker):
    pub = broker.pub("--stream", "it", "--count", "500", "--wait-subs", "1")
    sub = expbus.subscribe("it", broker.socket, batch_size=50, timeout=0.5,
                           wait=5)
    prev, n = None, 0
    t0 = None
    with pytest.raises(expbus.Timeout):
        for b in sub:
            if prev is not None:
                assert prev.released
            prev = b
            n += b.count
            t0 = time.monotonic()
    assert n == 500 and 0.4 < time.monotonic() - t0 < 3
    sub.close()
    assert prev.released
    assert finish(pub)[0] == 0


def test_filters_select_games_players_and_turns(broker):
    pub = broker.pub("--stream", "flt", "--count", "2000", "--games", "4",
                     "--players", "2", "--wait-subs", "1")
    with expbus.subscribe("flt", broker.socket, batch_size=64, max_delay=0.02,
                          games=[1, 3], players=[1], min_turn=50,
                          wait=5) as sub:
        # Records s with game (s/100)%4 in {1,3}, s%2 == 1, s%100 >= 50.
        s = np.arange(2000)
        want = s[np.isin((s // 100) % 4, [1, 3]) & (s % 2 == 1) & (s % 100 >= 50)]
        got = read_all(sub, len(want))
        seq = np.concatenate([g["seq"] for g in got])
        assert np.array_equal(seq, want)
        assert sub.next_batch(timeout=0.3) is None
    assert finish(pub)[0] == 0


def test_timeout_flushes_a_partial_batch(broker):
    pub = broker.pub("--stream", "part", "--count", "10", "--wait-subs", "1")
    with expbus.subscribe("part", broker.socket, batch_size=1000,
                          max_delay=0.05, wait=5) as sub:
        t0 = time.monotonic()
        b = sub.next_batch(timeout=5)
        assert b.count == 10 and b.flush_reason == expbus.FLUSH_TIMEOUT
        assert time.monotonic() - t0 < 2
        b.release()
        t0 = time.monotonic()
        assert sub.next_batch(timeout=0.2) is None
        assert 0.15 < time.monotonic() - t0 < 1.5
        assert sub.next_batch(timeout=0) is None
    assert finish(pub)[0] == 0


def test_lossless_holds_producers_back_and_loses_nothing(broker):
    pub = broker.pub("--stream", "ll", "--count", "20000", "--ring-slots",
                     "256", "--wait-subs", "1")
    with expbus.subscribe("ll", broker.socket, batch_size=64, batch_slots=2,
                          wait=5) as sub:
        first = sub.next_batch(timeout=10)
        time.sleep(0.5)  # a stuck trainer: the producer must wait
        assert pub.poll() is None
        first.release()
        got = read_all(sub, 20000 - 64)
        seq = np.concatenate([g["seq"] for g in got])
        assert np.array_equal(seq, np.arange(64, 20000))
        assert sub.dropped == 0
    assert finish(pub)[0] == 0


def test_lossy_drops_for_this_subscriber_only_and_counts(broker):
    pub = broker.pub("--stream", "ly", "--count", "20000", "--wait-subs", "2")
    lossless = broker.sub("--stream", "ly", "--expect-producers", "1",
                          "--expect-records", "20000")
    with expbus.subscribe("ly", broker.socket, batch_size=64, batch_slots=2,
                          policy="lossy", wait=5) as sub:
        held = [sub.next_batch(timeout=10)]
        assert finish(pub)[0] == 0  # never held back by the lossy reader
        rc, out, err = finish(lossless)
        assert rc == 0, out + err
        held.append(sub.next_batch(timeout=5))
        held[-1].release()
        n = 128
        while True:
            b = sub.next_batch(timeout=0.5)
            if b is None:
                break
            n += b.count
            b.release()
        subs = broker.stat()["subscriptions"]
        assert len(subs) == 1
        dropped = subs[0]["dropped_ring_full"]
        assert dropped > 0 and n + dropped == 20000
        assert subs[0]["delivered"] == n
        assert sub.dropped == dropped, "the header's counter is current"


def test_group_members_share_records_game_by_game(broker):
    pub = broker.pub("--stream", "grp", "--count", "4000", "--games", "8",
                     "--episode-len", "50", "--wait-subs", "2")
    subs = []
    deadline = time.monotonic() + 5
    while len(subs) < 2:
        try:
            subs.append(expbus.subscribe("grp", broker.socket, batch_size=32,
                                         max_delay=0.02, group="g1"))
        except expbus.BrokerRefused as e:
            assert e.errno == errno.ENOENT and time.monotonic() < deadline
            time.sleep(0.01)
    seqs = [[], []]
    games = [set(), set()]
    total = 0
    deadline = time.monotonic() + 20
    while total < 4000:
        assert time.monotonic() < deadline
        for i, sub in enumerate(subs):
            b = sub.next_batch(timeout=0.05)
            if b is None:
                continue
            with b:
                seqs[i] += list(b["seq"])
                games[i] |= set(int(g) for g in b["game"])
                total += b.count
    assert total == 4000 and sorted(seqs[0] + seqs[1]) == list(range(4000))
    assert not games[0] & games[1], "a game was split between members"
    assert games[0] and games[1]
    for s in subs:
        assert s.next_batch(timeout=0.1) is None
        s.close()
    assert finish(pub)[0] == 0


def test_refusals_carry_the_brokers_message(broker):
    with pytest.raises(expbus.BrokerRefused, match="no stream 'nope'") as e:
        expbus.subscribe("nope", broker.socket)
    assert e.value.errno == errno.ENOENT
    pub = broker.pub("--stream", "x", "--count", "1")
    assert finish(pub)[0] == 0
    with pytest.raises(expbus.BrokerRefused, match="broker refused") as e:
        expbus.subscribe("x", broker.socket, batch_slots=3)
    assert e.value.errno == errno.EINVAL
    with pytest.raises(expbus.BrokerGone, match="no broker socket at"):
        expbus.subscribe("x", str(broker.dir / "none.sock"))
    with pytest.raises(ValueError, match="letters, digits"):
        expbus.subscribe("bad name", broker.socket)
    with pytest.raises(ValueError, match="lossless"):
        expbus.subscribe("x", broker.socket, policy="sometimes")


def test_iteration_ends_when_no_broker_comes_back_after_draining(broker):
    pub = broker.pub("--stream", "stop", "--count", "300", "--wait-subs", "1")
    sub = expbus.subscribe("stop", broker.socket, batch_size=1000,
                           max_delay=5, wait=5, reconnect=0.5)
    assert finish(pub)[0] == 0
    broker.proc.send_signal(signal.SIGTERM)
    t0 = time.monotonic()
    n = sum(b.count for b in sub)  # the partial batch is flushed, then end
    assert n == 300
    assert 0.4 < time.monotonic() - t0 < 10  # the reconnect window, tried
    assert broker.proc.wait(timeout=20) == 0
    with pytest.raises(expbus.BrokerGone, match=re.escape(broker.socket)):
        sub.next_batch(timeout=1)
    sub.close()


READER_CHILD = r"""
import os, signal, sys, expbus
sub = expbus.subscribe(sys.argv[2], sys.argv[1], batch_size=16, wait=5)
b = sub.next_batch(timeout=10)
print("got", b.count, flush=True)
if sys.argv[3] == "kill":
    obs = b["obs"]
    os.kill(os.getpid(), signal.SIGKILL)   # dies holding the batch
try:
    sub.next_batch()                        # waits for ever
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


def test_a_reader_killed_mid_batch_disturbs_nobody(broker):
    pub = broker.pub("--stream", "kill", "--count", "30000", "--rate",
                     "20000", "--wait-subs", "2")
    victim = broker.python(READER_CHILD, "kill", "kill")
    other = broker.sub("--stream", "kill", "--expect-producers", "1",
                       "--expect-records", "30000")
    rc, out, _ = finish(victim)
    assert rc == -signal.SIGKILL and "got 16" in out
    rc, out, err = finish(other)
    assert rc == 0, out + err
    assert finish(pub)[0] == 0
    assert broker.proc.poll() is None
    assert len(broker.stat()["subscriptions"]) == 0
    # A new reader is served as usual.
    p2 = broker.pub("--stream", "kill", "--count", "100", "--wait-subs", "1")
    with expbus.subscribe("kill", broker.socket, batch_size=100, wait=5) as s:
        assert s.next_batch(timeout=10).count == 100
    assert finish(p2)[0] == 0


def test_ctrl_c_interrupts_a_wait_at_once(broker):
    pub = broker.pub("--stream", "int", "--count", "16", "--wait-subs", "1")
    child = broker.python(READER_CHILD, "int", "wait")
    assert child.stdout.readline().startswith("got 16")
    time.sleep(0.3)
    t0 = time.monotonic()
    child.send_signal(signal.SIGINT)
    rc, out, err = finish(child, timeout=10)
    assert rc == 0 and "interrupted" in out, err
    assert time.monotonic() - t0 < 1.0
    assert finish(pub)[0] == 0


NO_NUMPY_CHILD = r"""
import struct, sys
sys.modules["numpy"] = None          # import numpy now raises ImportError
import expbus
assert expbus._reader._np is None
sub = expbus.subscribe("nonp", sys.argv[1], batch_size=32, wait=5)
b = sub.next_batch(timeout=10)
obs, seq, act = b["obs"], b["seq"], b["action"]
assert isinstance(obs, memoryview) and obs.readonly
assert obs.format == "f" and obs.shape == (32, 8, 8), (obs.format, obs.shape)
assert seq.format == "Q" and seq.shape == (32,) and seq.tolist() == list(range(32))
assert act.format == "i" and act.shape == (32,)
try:
    seq[0] = 1
    raise SystemExit("write did not raise")
except TypeError:
    pass
# Data words follow tools/pattern.h: the record's first word is
# splitmix64((p << 40) ^ seq), the obs field starts the data area.
M = (1 << 64) - 1
def splitmix(x):
    z = (x + 0x9E3779B97F4A7C15) & M
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    return z ^ (z >> 31)
raw = obs.tobytes()            # multi-dim memoryviews cannot be indexed
assert obs.tolist()[0][0][0] == struct.unpack_from("<f", raw)[0]
for i in range(32):
    w0 = struct.unpack_from("<Q", raw, i * 256)[0]
    assert w0 == splitmix(i), i
b.release()
try:
    b["obs"]
    raise SystemExit("released batch handed out")
except expbus.BatchReleased:
    pass
sub.close()
print("ok")
"""


def test_reader_works_without_numpy(broker):
    pub = broker.pub("--stream", "nonp", "--count", "32", "--wait-subs", "1")
    rc, out, err = finish(broker.python(NO_NUMPY_CHILD))
    assert rc == 0 and "ok" in out, out + err
    assert finish(pub)[0] == 0


def test_memoryview_path_on_request_matches_numpy(broker):
    pub = broker.pub("--stream", "mv", "--count", "40", "--wait-subs", "2")
    a = expbus.subscribe("mv", broker.socket, batch_size=40, wait=5)
    b = expbus.subscribe("mv", broker.socket, batch_size=40, use_numpy=False)
    x, y = a.next_batch(timeout=10), b.next_batch(timeout=10)
    for name in x.keys():
        assert x[name].tobytes() == y[name].tobytes(), name  # NaNs: bytes
        assert x[name].shape == np.asarray(y[name]).shape
        assert y[name].readonly
    x.release(), y.release(), a.close(), b.close()
    assert finish(pub)[0] == 0
