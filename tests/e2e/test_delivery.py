"""End to end with real processes: the broker, `expbus pub` producer
processes and `expbus sub` subscribers that check every record's content,
filter, order and count."""
import json
import signal
import time
from collections import Counter

from expbus_harness import finish

PRODUCERS = 8
RECORDS = 100_000
GAMES = 4         # per producer, as pub's default
EPISODE = 100     # pub's default episode length
PLAYERS = 2


def expected_per_game(games=None, players=None, min_turn=0,
                      producers=PRODUCERS, records=RECORDS):
    """What a subscription with this filter must receive, per game id,
    computed from pub's documented pattern."""
    want = Counter()
    for p in range(producers):
        for s in range(records):
            g = p * 1000 + (s // EPISODE) % GAMES
            if games is not None and g not in games:
                continue
            if players is not None and s % PLAYERS not in players:
                continue
            if s % EPISODE < min_turn:
                continue
            want[g] += 1
    return want


def report(path):
    with open(path) as f:
        return json.load(f)


def test_three_lossless_subscriptions_each_get_exactly_their_records(
        broker, tmp_path):
    expect = ["--expect-producers", str(PRODUCERS),
              "--expect-records", str(RECORDS)]
    games = [1, 2, 1003, 5002, 7000]
    subs = {
        "all": broker.start("sub", *expect, "--report", str(tmp_path / "all"),
                            "--wait-ms", "20000"),
        "filtered": broker.start(
            "sub", *expect, "--games", ",".join(map(str, games)),
            "--min-turn", "50", "--report", str(tmp_path / "filtered"),
            "--wait-ms", "20000"),
        "g1": broker.start("sub", "--group", "g", "--idle-ms", "3000",
                           "--report", str(tmp_path / "g1"),
                           "--wait-ms", "20000"),
        "g2": broker.start("sub", "--group", "g", "--idle-ms", "3000",
                           "--report", str(tmp_path / "g2"),
                           "--wait-ms", "20000"),
    }
    pub = broker.start("pub", "-n", str(PRODUCERS), "--count", str(RECORDS),
                       "--wait-subs", "4", "--json")
    rc, out, err = finish(pub)
    assert rc == 0, err
    assert json.loads(out)["records"] == PRODUCERS * RECORDS
    for name, p in subs.items():
        rc, out, err = finish(p)
        assert rc == 0, f"{name}: {out}\n{err}"
    r = {name: report(tmp_path / name) for name in subs}

    everything = expected_per_game()
    assert r["all"]["records"] == PRODUCERS * RECORDS
    assert {int(g): n for g, n in r["all"]["per_game"].items()} == everything
    for name in subs:
        assert r[name]["corrupt"] == 0
        assert r[name]["order_errors"] == 0
        assert r[name]["filter_errors"] == 0
        assert r[name]["missing"] == 0

    want = expected_per_game(games=set(games), min_turn=50)
    assert {int(g): n for g, n in r["filtered"]["per_game"].items()} == want
    assert r["filtered"]["records"] == sum(want.values())

    g1 = {int(g): n for g, n in r["g1"]["per_game"].items()}
    g2 = {int(g): n for g, n in r["g2"]["per_game"].items()}
    assert g1 and g2, "both group members got games"
    # A game sticks to one member until its DONE record; its next episode
    # (the same game id) may go to the other: each member holds whole
    # episodes (RECORDS is a multiple of EPISODE).
    for g in set(g1) & set(g2):
        assert g1[g] % EPISODE == 0 and g2[g] % EPISODE == 0, \
            f"game {g}: an episode was split between the members"
    assert Counter(g1) + Counter(g2) == everything, \
        "the group got every record once"

    # pub waited for all four: nothing went unclaimed.
    assert broker.stat()["unclaimed"] == 0


def test_a_lossy_subscriber_that_stops_reading_stalls_nobody(broker, tmp_path):
    producers, records = 4, 50_000
    stuck = broker.start("sub", "--lossy", "--hold", "--batch-slots", "2",
                         "--batch-size", "32", "--wait-ms", "20000")
    live = broker.start("sub", "--expect-producers", str(producers),
                        "--expect-records", str(records),
                        "--report", str(tmp_path / "live"), "--wait-ms", "20000")
    pub = broker.start("pub", "-n", str(producers), "--count", str(records),
                       "--wait-subs", "2")
    rc, out, err = finish(pub, timeout=120)
    assert rc == 0, "producers stalled or failed: " + err
    rc, out, err = finish(live)
    assert rc == 0, out + err
    assert report(tmp_path / "live")["records"] == producers * records

    # The stuck one still holds its two batches; all else was dropped and
    # counted: delivered + dropped = produced, exactly (once the partial
    # batch, if any, has been flushed by its delay).
    total = producers * records
    deadline = time.monotonic() + 10
    while True:
        lossy = [s for s in broker.stat()["subscriptions"]
                 if s["policy"] == "lossy"][0]
        if lossy["delivered"] + lossy["dropped_ring_full"] == total:
            break
        assert time.monotonic() < deadline, lossy
        time.sleep(0.1)
    assert lossy["dropped_ring_full"] > 0
    assert lossy["published"] == 2 and lossy["released"] == 0
    stuck.send_signal(signal.SIGKILL)
    stuck.wait()


def test_sigterm_flushes_partial_batches_before_the_broker_exits(
        broker, tmp_path):
    sub = broker.start("sub", "--batch-size", "1000", "--max-delay-ms",
                       "60000", "--idle-ms", "0", "--report",
                       str(tmp_path / "r"), "--wait-ms", "20000")
    pub = broker.start("pub", "--count", "10", "--wait-subs", "1")
    assert finish(pub)[0] == 0
    time.sleep(0.3)  # let the broker take the records into the open batch
    broker.proc.send_signal(signal.SIGTERM)
    assert broker.proc.wait(timeout=20) == 0
    rc, out, err = finish(sub, timeout=30)
    r = report(tmp_path / "r")
    assert r["records"] == 10, out + err
    assert r["flush"]["drain"] == 1
    assert r["corrupt"] == 0
