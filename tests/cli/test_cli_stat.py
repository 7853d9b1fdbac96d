"""`expbus stat`, `ls` and the CLI's edges: counters agree exactly with
what `pub` and `sub` counted themselves; --help, bad usage and a missing
broker give the documented exit codes and messages."""
import json
import subprocess

import pytest


from expbus_harness import expbus_exe  # noqa: E402 (path set by conftest)


SUBCOMMANDS = ["pub", "sub", "check", "ls", "top", "stat", "metrics", "bench"]


def test_stat_json_counters_match_what_pub_and_sub_counted(
        broker, finish, tmp_path):
    producers, records = 3, 20_000
    sub = broker.start("check", "--batch-size", "100", "--max-delay-ms", "50",
                       "--idle-ms", "4000", "--report", str(tmp_path / "r"),
                       "--wait-ms", "20000")
    pub = broker.start("pub", "-n", str(producers), "--count", str(records),
                       "--wait-subs", "1", "--json")
    rc, out, err = finish(pub)
    assert rc == 0, err
    produced = json.loads(out)
    total = producers * records
    assert produced["records"] == total

    # Everything delivered, the last partial batch flushed, and released:
    # the counters are final while the subscriber still idles.
    st = broker.wait_for(
        lambda s: s["subscriptions"] and
        s["subscriptions"][0]["delivered"] == total and
        s["subscriptions"][0]["lag_records"] == 0,
        "all records delivered and released")
    rc, out, err = finish(sub)
    assert rc == 0, out + err
    with open(tmp_path / "r") as f:
        got = json.load(f)

    assert st["unclaimed"] == 0 and st["violations"] == 0
    (stream,) = st["streams"]
    assert stream["name"] == "demo"
    assert stream["records_in"] == produced["records"]
    assert stream["unclaimed"] == 0
    (s,) = st["subscriptions"]
    assert s["delivered"] == got["records"] == total
    assert s["published"] == got["batches"] == s["released"]
    assert s["released_records"] == total and s["open_records"] == 0
    assert s["batches_full"] == got["flush"]["full"]
    assert s["batches_timeout"] == got["flush"]["timeout"]
    assert s["batches_drain"] == got["flush"]["drain"]
    assert (s["batches_full"] + s["batches_timeout"] + s["batches_drain"]
            == s["published"])
    assert s["dropped_ring_full"] == s["dropped_subscriber_gone"] == 0
    assert got["dropped"] == 0
    assert s["filtered"] == 0
    # pub and sub count whole records (32-byte header + data); the broker
    # counts column bytes, whose header columns take 36 bytes a record.
    assert produced["bytes"] == got["bytes"]
    assert s["delivered_bytes"] == got["bytes"] + 4 * total
    assert s["batch_size"] == 100 and s["policy"] == "lossless"
    assert s["group"] is None and s["stream"] == "demo"


def test_stat_json_keeps_the_keys_other_suites_read(broker, finish):
    sub = broker.start("check", "--hold", "--wait-ms", "20000")
    pub = broker.start("pub", "--count", "100", "--wait-subs", "1")
    assert finish(pub)[0] == 0
    st = broker.wait_for(lambda s: s["subscriptions"], "a subscription")
    assert {"broker_pid", "unclaimed", "violations", "streams", "producers",
            "subscriptions"} <= set(st)
    assert {"name", "schema", "records_in", "unclaimed"} <= set(
        st["streams"][0])
    assert {"id", "stream", "pid", "policy", "group", "batch_size",
            "delivered", "delivered_bytes", "dropped_ring_full",
            "dropped_subscriber_gone", "batches_full", "batches_timeout",
            "batches_drain", "published", "released", "filtered"} <= set(
        st["subscriptions"][0])
    sub.kill()
    sub.wait()
    pub2 = broker.start("pub", "--count", "0", "--duration", "5",
                        "--rate", "100")
    st = broker.wait_for(lambda s: s["producers"], "a producer")
    assert {"id", "stream", "pid", "uid", "state", "capacity", "records_in",
            "head", "tail", "stalls"} <= set(st["producers"][0])
    pub2.kill()


def test_ls_lists_streams_producers_and_subscriptions(broker, finish):
    sub = broker.start("check", "--group", "trainers", "--lossy",
                       "--batch-size", "32", "--games", "0-3",
                       "--min-turn", "5", "--hold", "--wait-ms", "20000")
    broker.start("pub", "--count", "0", "--duration", "20",
                 "--rate", "1000", "--ring-slots", "256")
    st = broker.wait_for(lambda s: s["subscriptions"] and s["producers"],
                         "a producer and a subscription")
    r = broker.run("ls")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "stream demo" in out
    assert "obs f32[8,8]; action i32; reward f32" in out
    prod = [l for l in out.splitlines() if f" {st['producers'][0]['pid']} " in l]
    assert prod and "256" in prod[0] and "attached" in prod[0]
    subl = [l for l in out.splitlines() if f" {sub.pid} " in l]
    assert subl and "lossy" in subl[0] and "trainers" in subl[0]
    assert "games:4 ids" in subl[0] and "turn>=5" in subl[0]
    assert " 32 " in subl[0]
    r = broker.run("ls", "nosuch")
    assert r.returncode == 1 and "no stream 'nosuch'" in r.stderr


@pytest.mark.parametrize("cmd", SUBCOMMANDS)
def test_every_subcommand_has_help_and_socket(cmd):
    r = subprocess.run([expbus_exe(), cmd, "--help"], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 0
    assert "--socket" in r.stdout and "Exit status" in r.stdout
    r = subprocess.run([expbus_exe(), "help", cmd], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 0 and "Usage: expbus " + cmd in r.stdout


@pytest.mark.parametrize("cmd", ["ls", "top", "stat"])
def test_no_broker_names_the_socket_and_exits_3(tmp_path, cmd):
    sock = str(tmp_path / "nobody.sock")
    r = subprocess.run([expbus_exe(), cmd, "--socket", sock],
                       capture_output=True, text=True, timeout=10,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 3
    assert sock in r.stderr and "expbus " + cmd in r.stderr
    assert r.stdout == ""


@pytest.mark.parametrize("args", [["stat", "--bogus"],
                                  ["stat", "--json", "--prometheus"],
                                  ["top", "-d", "x"], ["top", "-n", "0"],
                                  ["top", "--sort", "nope"], ["ls", "--x"]])
def test_bad_usage_exits_2(args, tmp_path):
    r = subprocess.run([expbus_exe(), *args, "--socket",
                        str(tmp_path / "s")], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 2, r.stderr
    assert "expbus" in r.stderr
