"""`expbus pub --together`: every producer attaches first and all start
writing at once, and those done stay attached until the last is done and
the broker has taken what they wrote; a producer that cannot attach is
counted in, so the others do not wait for it forever."""
import json
import os
import signal
import time

from expbus_harness import Broker


def test_together_delivers_every_record_of_every_producer(broker, finish):
    n, count = 16, 2000
    report = broker.dir / "check.json"
    sub = broker.start("check", "--expect-producers", str(n),
                       "--expect-records", str(count), "--wait-ms", "30000",
                       "--report", str(report))
    pub = broker.start("pub", "-n", str(n), "--together", "--count",
                       str(count), "--wait-subs", "1", "--json")
    rc, out, err = finish(pub)
    assert rc == 0, err
    res = json.loads(out)
    assert res["records"] == n * count
    # The producers' CPU while writing: some, and no more than all of
    # them could have used in that time on this machine.
    assert 0 < res["cpu_s"] <= res["seconds"] * os.cpu_count() + 0.1, res
    rc, out, err = finish(sub)
    assert rc == 0, out + err
    rep = json.loads(report.read_text())
    assert rep["records"] == n * count and rep["missing"] == 0
    # The window the rate is taken over, and the reader's CPU in it.
    assert 0 < rep["first_ns"] <= rep["last_ns"]
    assert abs((rep["last_ns"] - rep["first_ns"]) / 1e9 -
               rep["seconds"]) < 1e-5, rep
    assert 0 < rep["cpu_s"] < 60, rep


def test_together_does_not_wait_for_a_producer_that_cannot_attach(
        tmp_path, finish):
    # Three control connections for our uid: three producers attach, the
    # other three are refused. The three must not wait for them.
    b = Broker(tmp_path, extra=("--max-conns-per-uid", "3"))
    try:
        # --wait-ms 60000: were they waiting for the refused ones, they
        # would still be waiting when finish gives up (20 s).
        pub = b.start("pub", "-n", "6", "--together", "--count", "1000",
                      "--wait-ms", "60000", "--json")
        rc, out, err = finish(pub, timeout=20)
        assert rc != 0
        assert err.count("expbus pub: producer") == 3, err
        assert json.loads(out)["records"] == 3 * 1000, out
    finally:
        assert b.stop() == 0, b.log()[-4000:]


def test_together_producers_that_are_done_wait_for_the_last_before_leaving(
        broker, finish):
    # Three producers at 100 records/s; one is stopped mid-run. The two
    # others finish their 300 records and must stay attached (not exit,
    # not detach) until the stopped one, once continued, is done too.
    n, count = 3, 300
    pub = broker.start("pub", "-n", str(n), "--together", "--count",
                       str(count), "--rate", "100", "--wait-ms", "60000",
                       "--json")
    st = broker.wait_for(
        lambda st: len(st["producers"]) == n and
        all(p["records_in"] > 0 for p in st["producers"]),
        "three producers writing")
    slow = st["producers"][0]["pid"]
    os.kill(slow, signal.SIGSTOP)
    try:
        broker.wait_for(
            lambda st: len(st["producers"]) < n or
            sum(p["records_in"] == count for p in st["producers"]) == n - 1,
            "the two others done (or gone)")
        time.sleep(0.5)  # time enough to detach and exit, were they to
        st = broker.stat()
        assert sorted(p["state"] for p in st["producers"]) == \
            ["attached"] * n, st["producers"]
    finally:
        os.kill(slow, signal.SIGCONT)
    rc, out, err = finish(pub)
    assert rc == 0, err
    assert json.loads(out)["records"] == n * count


def test_together_producers_stay_until_the_broker_took_their_records(
        broker, finish):
    # A lossless reader that pauses after 32 records, with room for two
    # batches of 16: the broker cannot take the producers' 3 x 1000
    # records (all in their rings within milliseconds) until it reads on.
    # Meanwhile the producers, done, stay attached.
    n, count = 3, 1000
    report = broker.dir / "check.json"
    sub = broker.start("check", "--expect-producers", str(n),
                       "--expect-records", str(count), "--batch-size", "16",
                       "--batch-slots", "2", "--pause-after", "32",
                       "--pause-ms", "4000", "--wait-ms", "30000",
                       "--report", str(report))
    pub = broker.start("pub", "-n", str(n), "--together", "--count",
                       str(count), "--wait-subs", "1", "--wait-ms", "60000",
                       "--json")
    broker.wait_for(lambda st: len(st["producers"]) == n, "three producers")
    time.sleep(1.0)  # they are done in ms; 3 s of the pause are left
    st = broker.stat()
    assert sum(p["records_in"] for p in st["producers"]) < n * count, st
    assert sorted(p["state"] for p in st["producers"]) == \
        ["attached"] * n, st["producers"]
    assert pub.poll() is None
    rc, out, err = finish(pub)
    assert rc == 0, err
    assert json.loads(out)["records"] == n * count
    rc, out, err = finish(sub)
    assert rc == 0, out + err
    assert json.loads(report.read_text())["records"] == n * count
