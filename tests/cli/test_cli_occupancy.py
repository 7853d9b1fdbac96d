"""Ring occupancy and subscription lag as stat and top show them, for a
ring that a stopped (never releasing) lossless subscriber lets fill: the
numbers must be the ring's real fill level, not the broker's stale view."""
import re
import time

CAPACITY = 1024
BATCH, SLOTS = 64, 2
WRITTEN = 700  # fewer than the ring holds: a partial fill to measure


def test_occupancy_of_a_ring_held_by_a_stopped_subscriber_is_real(
        broker, finish):
    sub = broker.start("check", "--hold", "--batch-size", str(BATCH),
                       "--batch-slots", str(SLOTS), "--max-delay-ms", "60000",
                       "--wait-ms", "20000")
    # One producer writes WRITTEN records in commits of 64 and exits; its
    # ring stays (draining) as long as records remain in it.
    pub = broker.start("pub", "--count", str(WRITTEN), "--ring-slots",
                       str(CAPACITY), "--wait-subs", "1")
    assert finish(pub)[0] == 0
    held = BATCH * SLOTS  # what the batch ring took before it was full
    want = WRITTEN - held
    st = broker.wait_for(
        lambda s: s["producers"] and s["producers"][0]["occupancy"] == want,
        f"occupancy {want}", timeout=10)
    (p,) = st["producers"]
    assert p["capacity"] == CAPACITY
    assert p["head"] == held and p["tail"] == WRITTEN
    assert p["records_in"] == held
    assert abs(p["fill_ratio"] - want / CAPACITY) < 1e-6
    assert p["stalls"] > 0

    (s,) = st["subscriptions"]
    assert s["delivered"] == held and s["published"] == SLOTS
    assert s["released"] == 0 and s["released_records"] == 0
    assert s["lag_records"] == held
    lag1 = s["lag_ms"]
    assert lag1 > 0
    time.sleep(0.3)
    (s,) = broker.stat()["subscriptions"]
    assert s["lag_records"] == held
    assert s["lag_ms"] >= lag1 + 250, "the oldest record keeps ageing"

    # top, in plain text (stdout is a pipe), shows the same fill.
    r = broker.run("top", "-n", "1", "-d", "0.1")
    assert r.returncode == 0, r.stderr
    row = [l for l in r.stdout.splitlines()
           if re.match(r"\s*%d\s+demo\s" % p["id"], l)]
    assert row, r.stdout
    assert f"{want}/{CAPACITY}" in row[0]
    assert f"{100 * want / CAPACITY:.1f}%" in row[0]
    filled = round(want / CAPACITY * 20)
    assert "[" + "#" * filled + "." * (20 - filled) + "]" in row[0]
    subrow = [l for l in r.stdout.splitlines()
              if re.match(r"\s*%d\s+demo\s.*lossless" % s["id"], l)]
    assert subrow and f" {held} " in subrow[0], r.stdout
    sub.kill()


def test_a_full_ring_shows_full(broker, finish):
    sub = broker.start("check", "--hold", "--batch-size", str(BATCH),
                       "--batch-slots", str(SLOTS), "--wait-ms", "20000")
    pub = broker.start("pub", "--count", "0", "--duration", "30",
                       "--nonblock", "--ring-slots", str(CAPACITY),
                       "--wait-subs", "1")
    st = broker.wait_for(
        lambda s: s["producers"] and
        s["producers"][0]["occupancy"] == CAPACITY, "a full ring")
    p = st["producers"][0]
    assert p["fill_ratio"] == 1.0
    assert p["tail"] - p["head"] == CAPACITY
    pub.kill()
    sub.kill()
