"""The producer binding (ctypes over libexpbus.so): records written from
Python arrive byte for byte in the Python reader and in the C `expbus check`;
reserved slots are filled in place; refusals carry the broker's message."""
import time

import numpy as np
import pytest

import expbus
from reader_helpers import finish, pattern_data, pattern_header

pytestmark = pytest.mark.binding

SCHEMA = "obs f32[4,4]; action i32; reward f32; mask u8[5]; value f64; h f16[3]"


def wait_subscriptions(broker, n, timeout=10):
    deadline = time.monotonic() + timeout
    while len(broker.stat()["subscriptions"]) < n:
        assert time.monotonic() < deadline, f"{n} subscriptions never came"
        time.sleep(0.02)


def pattern_columns(schema, seqs, p=0):
    """Field arrays whose bytes are the pattern of tools/pattern.h."""
    data = pattern_data(p, seqs, schema.data_size)
    return {f.name: data[:, f.offset:f.offset + f.size].copy()
            .view(np.dtype(f.dtype.numpy)).reshape((len(seqs),) + f.shape)
            for f in schema.fields}


def test_python_records_arrive_identical_in_python_and_c(broker):
    from expbus.producer import Producer
    n = 3000
    p = Producer("pyrec", SCHEMA, broker.socket)
    c_sub = broker.sub("--stream", "pyrec", "--expect-producers", "1",
                       "--expect-records", str(n), "--checksum")
    py_sub = expbus.subscribe("pyrec", broker.socket, batch_size=128,
                              max_delay=0.01)
    wait_subscriptions(broker, 2)
    cols = pattern_columns(p.schema, np.arange(n))
    game, player, turn, flags = pattern_header(0, np.arange(n))
    # Three ways in: one record at a time from a dict, whole columns,
    # and slots reserved and filled in place.
    for s in range(1000):
        p.write({k: v[s] for k, v in cols.items()}, game=game[s],
                player=player[s], turn=turn[s], flags=flags[s])
    sl = slice(1000, 2000)
    p.write_many({k: v[sl] for k, v in cols.items()}, game=game[sl],
                 player=player[sl], turn=turn[sl], flags=flags[sl])
    s = 2000
    while s < n:
        with p.reserve(min(100, n - s)) as span:
            k = span.count
            r = span.records
            r["game"], r["player"] = game[s:s + k], player[s:s + k]
            r["turn"], r["flags"] = turn[s:s + k], flags[s:s + k]
            for name, v in cols.items():
                span[name] = v[s:s + k]
        s += k
    got = 0
    while got < n:
        b = py_sub.next_batch(timeout=10)
        assert b is not None, f"{got} of {n}"
        with b:
            seq = np.array(b["seq"])
            assert np.array_equal(seq, np.arange(got, got + b.count))
            for name, v in cols.items():
                assert b[name].tobytes() == v[seq].tobytes(), name
            assert np.array_equal(b["game"], game[seq])
            assert np.array_equal(b["flags"], flags[seq])
            got += b.count
    py_sub.close()
    p.close()
    # (read after the Python reader: both are lossless, so the slower
    # one paces the other)
    rc, out, err = finish(c_sub)
    assert rc == 0, out + err
    assert "0 corrupt" in out and "0 missing" in out



def test_reserved_slots_are_writable_views_of_the_ring(broker):
    from expbus.producer import Producer
    with Producer("resv", "obs f32[2,3]; a i32", broker.socket,
                  ring_slots=64) as p:
        assert p.capacity == 64
        sub = expbus.subscribe("resv", broker.socket, batch_size=10,
                               max_delay=0.01)
        span = p.reserve(10)
        assert span.count == 10 and span["obs"].shape == (10, 2, 3)
        assert span["obs"].flags.writeable
        with open("/proc/self/maps") as f:
            addr = span.records.__array_interface__["data"][0]
            line = next(l for l in f
                        if int(l.split()[0].split("-")[0], 16) <= addr
                        < int(l.split()[0].split("-")[1], 16))
        assert "memfd:" in line  # the ring itself, no staging copy
        span["obs"] = np.arange(60, dtype=np.float32).reshape(10, 2, 3)
        span["a"] = np.arange(10) * 7
        span.records["game"] = 42
        span.commit()
        b = sub.next_batch(timeout=10)
        assert np.array_equal(b["obs"].ravel(), np.arange(60, dtype=np.float32))
        assert list(b["a"]) == [7 * i for i in range(10)]
        assert set(b["game"]) == {42} and list(b["seq"]) == list(range(10))
        b.release()
        sub.close()


def test_schema_differences_are_refused_naming_the_field(broker):
    from expbus.producer import Producer
    with Producer("sch", {"obs": (np.float32, (9, 20)), "act": "i32"},
                  broker.socket) as p:
        assert p.schema.text == "obs f32[9,20]; act i32"
        with pytest.raises(expbus.BrokerRefused, match="obs") as e:
            Producer("sch", "obs f32[9,21]; act i32", broker.socket)
        assert e.value.errno == 22
    with pytest.raises(expbus.UnsupportedDtype):
        Producer("sch2", {"z": (np.complex64, ())}, broker.socket)
    with pytest.raises(expbus.BrokerGone, match="no broker socket at"):
        Producer("x", "a i32", str(broker.dir / "nobody.sock"))


def test_write_checks_fields_and_times_out_on_a_full_ring(broker):
    from expbus.producer import Producer
    with Producer("full", "a i32; b f32[2]", broker.socket,
                  ring_slots=16) as p:
        with pytest.raises(KeyError, match="do not match"):
            p.write({"a": 1})
        with pytest.raises(ValueError):
            p.write({"a": 1, "b": [1.0, 2.0, 3.0]})
        p.write(bytes(12))  # raw record data, padding optional
        # A lossless subscriber that never releases: the ring fills up.
        sub = expbus.subscribe("full", broker.socket, batch_size=1,
                               batch_slots=2)
        with pytest.raises(expbus.Timeout):
            for i in range(100):
                p.write(a=i, b=(i, -i), timeout=0.05)
        assert i >= 16
        sub.next_batch(timeout=5)
        sub.next_batch(timeout=5).release()  # room again
        p.write(a=1, b=(0, 0), timeout=5)
        sub.close()
