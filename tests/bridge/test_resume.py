"""Remote subscriptions outlive their connection: a client killed and
restarted with resume_from gets every record exactly once; beyond the
retention the lost count is reported; lossless sessions hold the games
back while lingering, lossy ones do not; a stalled client never stalls
another."""
import signal
import subprocess
import time

import pytest

import expbus.remote as remote
from bridge_harness import child_env, make_stream
from expbus_harness import finish

PY = "/usr/bin/python3"

CHILD = r"""
import sys, expbus.remote as r
target, stream, sid, out = sys.argv[1:5]
sub = r.subscribe(target, stream, subscription_id=sid, batch_size=20)
with open(out, "a") as f:
    for b in sub:
        keys = ",".join(f"{s}:{q}" for s, q in zip(b["source"], b["seq"]))
        f.write(f"{b.position} {b.count} {keys}\n")
        f.flush()
"""


def read_log(path):
    """Complete lines only (the child may die mid-line)."""
    seen, end = [], None
    for line in path.read_text().split("\n")[:-1]:
        pos, count, keys = line.split(" ")
        seen += keys.split(",")
        end = int(pos) + int(count)
    return seen, end


def test_killed_client_resumes_exactly_once(broker, bridge_factory,
                                            tmp_path):
    make_stream(broker, "res")
    # Retain everything: what the bridge sent into the dead client's socket
    # must still be there to send again.
    bridge = bridge_factory("--retention", "100000")
    out = tmp_path / "child.log"
    child = broker.spawn([PY, "-c", CHILD, bridge.target, "res", "sub-A",
                          str(out)], env=child_env())
    broker.wait_subscriptions(1)
    total = 2 * 4000
    pub = broker.start("pub", "--stream", "res", "-n", "2", "--count", "4000",
                       "--rate", "8000")
    deadline = time.monotonic() + 30
    while not out.exists() or len(out.read_text().splitlines()) < 20:
        assert time.monotonic() < deadline, "child received nothing"
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    seen, end = read_log(out)
    assert 0 < len(seen) < total
    sub = remote.subscribe(bridge.target, "res", subscription_id="sub-A",
                           resume_from=end)
    first = None
    while len(seen) < total:
        b = sub.next_batch(30)
        if first is None:
            first = b
            assert b.position == end and b.lost_total == 0
        seen += [f"{s}:{q}" for s, q in zip(b["source"], b["seq"])]
    rc, _, err = finish(pub)
    assert rc == 0, err
    assert len(seen) == total
    assert len(set(seen)) == total  # exactly once
    assert sub.reconnects == 0
    sub.close()


def test_retention_overflow_reports_lost(broker, bridge_factory):
    make_stream(broker, "ret")
    b = bridge_factory("--retention", "3")
    sub = remote.subscribe(b.target, "ret", subscription_id="L",
                           batch_size=10, policy="lossy")
    pub = broker.start("pub", "--stream", "ret", "--count", "50")
    got = sub.next_batch(30)
    resume = got.position + got.count
    sub.close(unsubscribe=False)  # the bridge keeps it for a resume
    assert finish(pub)[0] == 0
    # 40 more records came while the client was away; 3 batches retained.
    pub = broker.start("pub", "--stream", "ret", "--count", "400")
    assert finish(pub)[0] == 0
    time.sleep(0.5)
    sub = remote.subscribe(b.target, "ret", subscription_id="L",
                           resume_from=resume)
    first = sub.next_batch(30)
    assert first.lost_total > 0
    assert first.position == resume + first.lost_total
    assert sub.lost == first.lost_total
    # Retention is counted in batches (3), and under load a batch may be
    # flushed by its delay before it has 10 records: 2 more batches.
    for _ in range(2):
        assert sub.next_batch(30) is not None, "a retained batch is missing"
    st = remote.stream_stats(b.target, "ret").remote_subscriptions
    assert st[0].lost_total == first.lost_total
    sub.close()


def test_unknown_subscription_to_resume(broker, bridge):
    make_stream(broker, "unk")
    try:
        remote.subscribe(bridge.target, "unk", subscription_id="nobody",
                         resume_from=5)
    except remote.RemoteError as e:
        assert e.code.name == "NOT_FOUND"
        assert "nobody" in e.details
    else:
        raise AssertionError("resuming an unknown subscription worked")


def test_stalled_lossy_client_does_not_stall_another(broker, bridge):
    make_stream(broker, "slow", "--record-size", "4096")
    stalled = remote.subscribe(bridge.target, "slow", policy="lossy",
                               queue_size=1, batch_size=8)
    reader = remote.subscribe(bridge.target, "slow", batch_size=64)
    broker.wait_subscriptions(2)
    total = 2 * 20000
    pub = broker.start("pub", "--stream", "slow", "-n", "2", "--count",
                       "20000", "--record-size", "4096")
    n = 0
    while n < total:
        n += reader.next_batch(30).count
    rc, _, err = finish(pub, timeout=60)
    assert rc == 0, err
    # The stalled one lost records rather than holding anyone back.
    st = remote.stream_stats(bridge.target, "slow")
    local_dropped = sum(s.dropped for s in st.streams[0].subscriptions)
    bridge_dropped = sum(r.dropped_total for r in st.remote_subscriptions)
    assert local_dropped + bridge_dropped > 0
    stalled.close()
    reader.close()


def test_stalled_lossless_client_backpressures_games(broker, bridge_factory):
    make_stream(broker, "bp", "--record-size", "4096")
    b = bridge_factory("--linger", "1", "--retention", "4",
                       "--batch-slots", "2")
    stalled = remote.subscribe(b.target, "bp", queue_size=1, batch_size=16)
    broker.wait_subscriptions(1)
    pub = broker.start("pub", "--stream", "bp", "--count", "100000",
                       "--record-size", "4096", "--ring-slots", "64")
    time.sleep(3)
    assert pub.poll() is None, "the games were not held back"
    st = broker.stat()
    assert sum(p.get("stalls", 0) for p in st["producers"]) > 0, st
    # The client goes without unsubscribing; after --linger its
    # subscription ends and the games run free.
    stalled.close(unsubscribe=False)
    rc, _, err = finish(pub, timeout=60)
    assert rc == 0, err


def test_close_unsubscribes_at_once(broker, bridge_factory):
    make_stream(broker, "un", "--record-size", "4096")
    b = bridge_factory("--retention", "4", "--batch-slots", "2")  # linger 30
    stalled = remote.subscribe(b.target, "un", queue_size=1, batch_size=16)
    broker.wait_subscriptions(1)
    pub = broker.start("pub", "--stream", "un", "--count", "20000",
                       "--record-size", "4096", "--ring-slots", "64")
    time.sleep(1)
    assert pub.poll() is None, "the games were not held back"
    t0 = time.monotonic()
    stalled.close()  # Unsubscribe: no linger
    rc, _, err = finish(pub, timeout=60)
    assert rc == 0, err
    assert time.monotonic() - t0 < 20
    deadline = time.monotonic() + 10
    while len(remote.stream_stats(b.target).remote_subscriptions):
        assert time.monotonic() < deadline, "the subscription stayed"
        time.sleep(0.05)
    with pytest.raises(remote.RemoteError) as e:
        remote.unsubscribe(b.target, "nobody")
    assert e.value.code.name == "NOT_FOUND"


class Proxy:
    """A TCP forwarder on loopback whose connections the test can cut
    (while it keeps listening), to break calls under a client."""

    def __init__(self, target_port):
        import socket
        import threading
        self.target_port = target_port
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.conns = []
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import socket
        import threading
        while not self.closed:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            u = socket.create_connection(("127.0.0.1", self.target_port))
            with self.lock:
                self.conns += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self._pipe, args=(a, b),
                                 daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while True:
                d = a.recv(1 << 16)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.close()
            except OSError:
                pass

    def cut(self):
        import socket
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self):
        self.closed = True
        self.lsock.close()
        self.cut()


def test_client_reconnects_and_resumes_by_itself(broker, bridge_factory):
    make_stream(broker, "auto")
    b = bridge_factory("--retention", "100000")
    proxy = Proxy(b.port)
    try:
        sub = remote.subscribe(f"127.0.0.1:{proxy.port}", "auto",
                               batch_size=25, reconnect_timeout=30)
        total = 2 * 3000
        pub = broker.start("pub", "--stream", "auto", "-n", "2", "--count",
                           "3000", "--rate", "3000")
        seen, cuts = [], 0
        while len(seen) < total:
            bt = sub.next_batch(30)
            assert bt is not None, f"stalled after {len(seen)} records"
            seen += [f"{s}:{q}" for s, q in zip(bt["source"], bt["seq"])]
            if cuts < 3 and len(seen) >= (cuts + 1) * total // 4:
                proxy.cut()
                cuts += 1
        assert finish(pub)[0] == 0
        assert len(seen) == total and len(set(seen)) == total
        assert sub.reconnects >= 3
        assert sub.lost == 0
        sub.close()
    finally:
        proxy.close()
