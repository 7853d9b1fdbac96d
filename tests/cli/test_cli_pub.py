"""`expbus pub --together`: every producer attaches first and all start
writing at once; a producer that cannot attach is counted in, so the
others do not wait for it forever."""
import json

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
    assert json.loads(out)["records"] == n * count
    rc, out, err = finish(sub)
    assert rc == 0, out + err
    rep = json.loads(report.read_text())
    assert rep["records"] == n * count and rep["missing"] == 0


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
