"""The Python reader across broker restarts (issue 9): it subscribes again
by itself, batches held across the restart stay valid, and records an
earlier broker delivered are dropped (tests/recovery has the long run)."""
import os
import signal
import subprocess
import time

import numpy as np
import pytest

import expbus
from reader_helpers import build_dir


def restart(broker):
    """SIGKILL the broker and start a new one on the same socket."""
    broker.proc.kill()
    broker.proc.wait()
    broker.proc = subprocess.Popen(
        [str(build_dir() / "src" / "broker" / "expbusd"), "--socket",
         broker.socket], stderr=broker._log)


@pytest.mark.binding
def test_a_subscription_comes_back_with_held_batches_intact(broker):
    from expbus.producer import Producer
    schema = "obs f32[4]; action i32"
    got = []
    with Producer("r", schema, broker.socket) as p, \
            expbus.subscribe("r", broker.socket, batch_size=8,
                             max_delay=0.002, auto_release=False) as sub:
        for i in range(16):
            p.write({"obs": np.full(4, i, np.float32), "action": i})
        held = sub.next_batch(timeout=10)
        got += held["seq"].tolist()
        # Both batches published before the kill: records of a batch
        # still open die with a SIGKILLed broker until it moves heads at
        # publish (issue 9, item 1, the broker's side).
        got += sub.next_batch(timeout=10)["seq"].tolist()
        restart(broker)
        for i in range(16, 32):  # the game goes on; its ring waits
            p.write({"obs": np.full(4, i, np.float32), "action": i},
                    timeout=5)
            time.sleep(0.02)
        while len(got) < 32:
            b = sub.next_batch(timeout=10)
            assert b is not None, f"stuck after {got}"
            got += b["seq"].tolist()
            assert (b["action"] == b["seq"]).all()
        assert got == list(range(32))
        assert held["seq"].tolist() == list(range(8))  # still mapped
        held.release()
        b.release()
        assert sub.held == 0


@pytest.mark.parametrize("numpy", [True, False])
def test_records_an_earlier_broker_delivered_are_dropped_once(numpy):
    import numpy as np
    from expbus._reader import _Seen
    seen = _Seen()

    def keep(src, seq):
        if numpy:
            k = seen.keep(np.array(src, np.uint32), np.array(seq, np.uint64))
            return None if k is None else k.tolist()
        return seen.keep(src, seq)

    assert keep([1, 1, 2], [0, 1, 0]) is None
    assert keep([1, 2], [5, 9]) is None  # one broker: gaps are not ours
    seen.new_broker()
    assert keep([1, 2, 1, 3], [4, 9, 6, 0]) == [False, False, True, True]
    # A group member gets a dead member's records after later ones of the
    # same producer: from the same broker, they are new.
    assert keep([1], [8]) is None
    assert keep([1], [7]) is None
    seen.new_broker()
    assert keep([1, 1], [8, 9]) == [False, True]
