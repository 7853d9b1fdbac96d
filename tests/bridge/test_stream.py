"""Producers -> broker -> expbus-grpc -> Python remote client: the records
arrive byte for byte as a local subscriber sees them, with and without
lz4; the status codes a bad request gets; ListStreams/GetStreamStats."""
import threading

import grpc
import pytest

import expbus
import expbus.remote as remote
from bridge_harness import bridge_exe, make_stream, rows
from expbus_harness import finish

N_PRODUCERS = 2
PER_PRODUCER = 3000


def collect(sub, total, out, timeout=60):
    n = 0
    while n < total:
        b = sub.next_batch(timeout)
        assert b is not None, f"stream ended after {n} of {total} records"
        got = rows(b, NAMES)
        out.update(got)
        n += b.count
        b.release()
    return n


NAMES = ["seq", "timestamp", "source", "game", "player", "turn", "flags",
         "obs", "action", "reward"]


@pytest.mark.parametrize("compression", [None, "lz4"])
def test_remote_equals_local_byte_for_byte(broker, bridge, compression):
    make_stream(broker, "eq")
    local = expbus.subscribe("eq", broker.socket, batch_size=64)
    rsub = remote.subscribe(bridge.target, "eq", batch_size=50,
                            compression=compression, verify=True)
    assert set(rsub.columns) == set(local.columns)
    for name, c in local.columns.items():
        rc = rsub.columns[name]
        assert (rc.dtype, rc.shape, rc.elem_size) == \
            (c.dtype, c.shape, c.elem_size), name
    broker.wait_subscriptions(2)
    total = N_PRODUCERS * PER_PRODUCER
    pub = broker.start("pub", "--stream", "eq", "-n", str(N_PRODUCERS),
                       "--count", str(PER_PRODUCER))
    got_remote = {}
    t = threading.Thread(target=collect, args=(rsub, total, got_remote))
    t.start()
    got_local = {}
    try:
        collect(local, total, got_local)
    finally:
        t.join(90)
    assert not t.is_alive()
    rc, _, err = finish(pub)
    assert rc == 0, err
    assert len(got_local) == total
    assert got_remote.keys() == got_local.keys()
    for k, v in got_local.items():
        assert got_remote[k] == v, k
    if compression == "lz4":
        st = remote.stream_stats(bridge.target, "eq")
        (r,) = st.remote_subscriptions
        assert r.compression == remote.pb.COMPRESSION_LZ4
        assert r.sent_records == total
    rsub.close()
    local.close()


def test_unknown_stream_is_not_found(broker, bridge):
    make_stream(broker, "there")
    with pytest.raises(remote.RemoteError) as e:
        remote.subscribe(bridge.target, "missing")
    assert e.value.code == grpc.StatusCode.NOT_FOUND
    assert "missing" in e.value.details
    with pytest.raises(remote.RemoteError) as e:
        remote.stream_stats(bridge.target, "missing")
    assert e.value.code == grpc.StatusCode.NOT_FOUND


def test_invalid_argument_names_the_field(broker, bridge):
    make_stream(broker, "inv")
    ch = remote.channel(bridge.target)
    rpc = ch.unary_stream(
        "/expbus.v1.ExperienceService/StreamExperienceBatches",
        request_serializer=remote.pb.StreamRequest.SerializeToString,
        response_deserializer=remote.pb.ExperienceBatch.FromString)
    cases = [
        (remote.pb.StreamRequest(), "StreamRequest.stream"),
        (remote.pb.StreamRequest(stream="inv", batch_size=10 ** 6),
         "StreamRequest.batch_size"),
        (remote.pb.StreamRequest(stream="inv", policy=7),
         "StreamRequest.policy"),
        (remote.pb.StreamRequest(stream="inv", compression=9),
         "StreamRequest.compression"),
        (remote.pb.StreamRequest(stream="inv", resume=True),
         "StreamRequest.subscription_id"),
    ]
    for req, field in cases:
        with pytest.raises(grpc.RpcError) as e:
            list(rpc(req, timeout=10))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, req
        assert field in e.value.details(), (field, e.value.details())
    ch.close()


def test_resource_exhausted_beyond_max_subscriptions(broker, bridge_factory):
    make_stream(broker, "lim")
    b = bridge_factory("--max-subscriptions", "2")
    subs = [remote.subscribe(b.target, "lim") for _ in range(2)]
    with pytest.raises(remote.RemoteError) as e:
        remote.subscribe(b.target, "lim")
    assert e.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "--max-subscriptions" in e.value.details
    for s in subs:
        s.close()


def test_list_streams_and_stats(broker, bridge):
    make_stream(broker, "ls1")
    make_stream(broker, "ls2", "--schema", "x u8[3]; y f64")
    assert remote.list_streams(bridge.target) == {
        "ls1": "obs f32[8,8]; action i32; reward f32",
        "ls2": "x u8[3]; y f64"}
    with remote.subscribe(bridge.target, "ls2", policy="lossy") as s:
        st = remote.stream_stats(bridge.target)
        assert {x.name for x in st.streams} == {"ls1", "ls2"}
        (ls2,) = [x for x in st.streams if x.name == "ls2"]
        # The bridge's local subscription shows like any other.
        assert len(ls2.subscriptions) == 1
        assert ls2.subscriptions[0].policy == remote.pb.POLICY_LOSSY
        (r,) = st.remote_subscriptions
        assert r.subscription_id == s.subscription_id and r.connected
        # expbus stat sees the bridge's subscription like any other.
        assert len(broker.stat()["subscriptions"]) == 1


def test_plaintext_refused_off_loopback_and_help(broker):
    import subprocess
    r = subprocess.run([bridge_exe(), "--socket", broker.socket, "--listen",
                        "0.0.0.0:0"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 1
    assert "--insecure" in r.stderr
    r = subprocess.run([bridge_exe(), "--help"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0
    for opt in ("--socket", "--listen", "--tls-cert", "--tls-key",
                "--tls-client-ca", "--require-client-cert", "--token-file",
                "--insecure", "--max-subscriptions", "--linger",
                "--retention", "--retention-bytes", "--batch-slots",
                "Exit status"):
        assert opt in r.stdout, opt
    r = subprocess.run([bridge_exe(), "--listen", "127.0.0.1:0", "--linger",
                        "x"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "--linger" in r.stderr


def test_torch_dataset_remote(broker, bridge):
    torch = pytest.importorskip("torch")
    from expbus.torch import ExperienceDataset
    make_stream(broker, "tds")
    ds = ExperienceDataset("tds", remote=bridge.target, batch_size=16,
                           max_batches=4, idle_timeout=30,
                           compression="lz4", pin_memory=False)
    it = iter(ds)
    pub = broker.start("pub", "--stream", "tds", "--count", "64",
                       "--wait-subs", "1", "--wait-ms", "30000")
    # Copies: the dataset reuses its tensors after `buffers` batches.
    got = [{k: v.clone() for k, v in b.items()} for b in it]
    assert finish(pub)[0] == 0
    assert len(got) == 4
    for b in got:
        assert b["obs"].shape == (16, 8, 8) and b["obs"].dtype == torch.float32
        assert b["action"].dtype == torch.int32
    seqs = torch.cat([b["seq"] for b in got])
    assert sorted(seqs.tolist()) == list(range(64))


def test_follow_false_ends_when_idle(broker, bridge):
    make_stream(broker, "fin")
    # Producers already writing when the call starts, for about 2 s.
    pub = broker.start("pub", "--stream", "fin", "--count", "2000",
                       "--rate", "1000")
    broker.wait_for(lambda st: sum(p["records_in"] for p in st["producers"])
                    > 10, "pub writing")
    # Idle means no batch for max_delay + 250 ms: 1.25 s, ample for a
    # producer writing 1,000 records/s even on a loaded machine.
    sub = remote.subscribe(bridge.target, "fin", follow=False,
                           max_delay=1.0, timeout=30)
    n = sum(b.count for b in sub)  # ends by itself (StreamEnded)
    assert pub.poll() is not None, "ended while the stream was busy"
    assert finish(pub)[0] == 0
    assert 0 < n <= 2000
    with pytest.raises(remote.StreamEnded):
        sub.next_batch(1)
    sub.close()
