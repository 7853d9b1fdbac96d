"""Recovery (issue 9): a broker killed (SIGKILL) or stopped (SIGTERM) at
random instants and restarted on the same socket loses nothing a game
committed. Real processes: games (tests/recovery_game.c) that never wait on
the control plane, a C subscriber (tests/recovery_reader.c) and a Python
trainer through ExperienceDataset (trainer.py), none of them restarted.

EXPBUS_RECOVERY_KILLS sets how many times the broker dies per test
(default 50, as issue 9 asks; `scripts/test --soak` sets 200),
EXPBUS_RECOVERY_SEED the random instants (default: new each run, printed
on failure), and
EXPBUS_RECOVERY_STRICT_TIMING=1 asserts the 1 ms bound on expbus_commit
(a figure otherwise: timings on a shared machine are no test material)."""
import json
import os
import queue
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests"))
import expbus_harness as harness  # noqa: E402

PY = "/usr/bin/python3"
KILLS = int(os.environ.get("EXPBUS_RECOVERY_KILLS", "50"))
STRICT_TIMING = os.environ.get("EXPBUS_RECOVERY_STRICT_TIMING") == "1"
PRODUCERS = 4
RATE = 3000  # records/s per game


def exe(name):
    return str(harness.build_dir() / "tests" / name)


class Broker:
    """expbusd on a private socket, killed and restarted at will."""

    def __init__(self, tmp_path):
        self.socket = str(tmp_path / "expbus.sock")
        self.log_path = tmp_path / "broker.log"
        self._log = open(self.log_path, "ab")
        self.proc = None
        self.starts = 0
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            [str(harness.build_dir() / "src" / "broker" / "expbusd"),
             "--socket", self.socket, "--log-level", "info"],
            stderr=self._log)
        self.starts += 1
        self._log.write(b"--- started\n")
        self._log.flush()
        deadline = time.monotonic() + 10
        while True:  # a killed broker leaves its socket file: connect
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                s.connect(self.socket)
                return
            except OSError:
                assert self.proc.poll() is None, self.log()
                assert time.monotonic() < deadline, "expbusd did not start"
                time.sleep(0.005)
            finally:
                s.close()

    def stop(self, sig):
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"expbusd did not stop on {sig!r}")

    def wait_subscriptions(self, n, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            r = subprocess.run([harness.expbus_exe(), "stat", "--socket",
                                self.socket, "--json"], capture_output=True,
                               text=True, timeout=30)
            if r.returncode == 0 and \
                    len(json.loads(r.stdout)["subscriptions"]) >= n:
                return
            assert time.monotonic() < deadline, f"never {n} subscriptions"
            time.sleep(0.1)

    def log(self):
        return self.log_path.read_text(errors="replace")[-4000:]

    def close(self):
        if self.proc.poll() is None:
            self.stop(signal.SIGTERM)
        self._log.close()


class Procs:
    """Children in process groups of their own, killed at teardown."""

    def __init__(self):
        self.all = []

    def start(self, argv, **kw):
        env = dict(os.environ)
        env["PYTHONPATH"] = (str(ROOT / "python") + os.pathsep
                             + env.get("PYTHONPATH", ""))
        # stderr to a file: a pipe nobody drains could fill and block.
        err = tempfile.TemporaryFile("w+")
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err,
                             text=True, start_new_session=True, env=env,
                             **kw)
        p.err_file = err
        self.all.append(p)
        return p

    def close(self):
        for p in self.all:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
            for f in (p.stdin, p.stdout, p.err_file):
                if f:
                    f.close()


@pytest.fixture
def env(tmp_path):
    b = Broker(tmp_path)
    procs = Procs()
    try:
        yield b, procs
    finally:
        procs.close()
        b.close()


def readline(proc, timeout):
    """The next stdout line of proc, or fail after timeout seconds. (Not
    select() on a buffered pipe: it may hold lines select cannot see.)"""
    if not hasattr(proc, "lines"):
        proc.lines = queue.Queue()

        def pump():
            for line in proc.stdout:
                proc.lines.put(line)
            proc.lines.put("")
        threading.Thread(target=pump, daemon=True).start()
    try:
        line = proc.lines.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"no output from {proc.args} within "
                             f"{timeout} s") from None
    assert line, f"{proc.args} ended"
    return line


def summary(proc, timeout=120):
    """The JSON summary a subscriber prints last (after readline: its
    pump thread has the rest of stdout)."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"{proc.args} did not finish")
    proc.err_file.seek(0)
    err = proc.err_file.read()
    out = []
    while True:
        try:
            line = readline(proc, 10)
        except AssertionError:
            break
        out.append(line)
    out = "".join(out)
    if os.environ.get("EXPBUS_RECOVERY_VERBOSE"):
        print(f"--- {proc.args[0]} stderr:\n{err[-6000:]}")
    last = [ln for ln in out.splitlines() if ln.startswith("{")]
    assert last, f"{proc.args} printed no summary:\n{out}\n{err[-3000:]}"
    return json.loads(last[-1])


def game(procs, b, index, count, rate=RATE, ring=1024, stream="rec"):
    """A game attached to stream, waiting for go()."""
    g = procs.start([exe("recovery_game"), b.socket, stream, str(index),
                     str(count), str(rate), str(ring)],
                    stdin=subprocess.PIPE)
    assert readline(g, 30).strip() == "attached"
    return g


def go(*games):
    for g in games:
        g.stdin.write("go\n")
        g.stdin.flush()


def game_done(proc, timeout=120):
    deadline = time.monotonic() + timeout
    fulls = []
    while True:
        line = readline(proc, max(0.1, deadline - time.monotonic()))
        if line.startswith("done "):
            return json.loads(line[5:]), fulls
        if line.startswith("full "):
            fulls.append([int(x) for x in line.split()[1:]])


def check_commit_times(s):
    """expbus_commit never blocks and takes under 1 ms. On a shared
    2-core machine the scheduler may preempt a game in the middle of a
    commit; those commits (an involuntary context switch, counted apart)
    are not held against it, but one that blocked (a voluntary switch: a
    waiting syscall) always is. The 1 ms bound is asserted with
    EXPBUS_RECOVERY_STRICT_TIMING=1."""
    assert s["commits_blocked"] == 0, f"an expbus_commit blocked: {s}"
    # Time itself is a figure, printed; asserted only on request (a quiet
    # machine, the soak run): the house rule keeps timings out of tests
    # that run on a shared machine.
    print(f"longest expbus_commit: {s['max_commit_ns']} ns, "
          f"{s['max_commit_unpreempted_ns']} ns when not preempted "
          f"({s['commits_preempted']} of {s['committed']} preempted)")
    if STRICT_TIMING:
        assert s["max_commit_unpreempted_ns"] < 1_000_000, \
            f"an expbus_commit took over 1 ms: {s}"


def check_exactly_once(name, s, count):
    """Asserts what a lossless subscriber saw: no duplicate, no foreign or
    corrupt record, one producer id per game across restarts, and every
    committed record (returns the message when only losses are wrong)."""
    assert s["error"] in (None, 0), f"{name}: {s['error']}"
    assert s["duplicates"] == 0, f"{name} got records twice: {s}"
    assert s["bad"] == 0, f"{name} got records out of pattern: {s}"
    assert s["sources"] == [1] * PRODUCERS, \
        f"{name}: a producer's id changed across restarts: {s}"
    if s["gaps"] or s["next"] != [count] * PRODUCERS:
        return f"{name} lost records: {s}"
    return None


def test_a_game_without_broker_commits_until_full_and_never_waits(env):
    """Broker gone 5 s: the game commits until its ring is full, then
    reserve(timeout 0) says -EAGAIN at once; all it committed arrives."""
    b, procs = env
    count = 8000
    g = game(procs, b, 0, count, rate=2000, ring=1024)
    reader = procs.start([exe("recovery_reader"), b.socket, "rec", "1",
                          str(count), "lossless"])
    assert readline(reader, 30).strip() == "subscribed"
    go(g)
    time.sleep(0.5)
    assert b.stop(signal.SIGTERM) == 0
    gone = time.monotonic()
    # 1024 slots at 2000/s: full within about half a second.
    line = readline(g, 5)
    assert line.startswith("full "), line
    committed, reserve_ns = (int(x) for x in line.split()[1:])
    assert committed >= 1024, line  # at least the ring's worth
    assert reserve_ns < 1_000_000, f"reserve(timeout 0) took {reserve_ns} ns"
    time.sleep(max(0.0, 5 - (time.monotonic() - gone)))
    b.start()
    done, _ = game_done(g, 60)
    assert done["committed"] == count
    check_commit_times(done)
    s = summary(reader)
    assert s["error"] == 0 and s["bad"] == 0 and s["sources"] == [1], s
    assert s["duplicates"] == 0, s
    assert s["next"] == [count] and s["gaps"] == 0, s


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM],
                         ids=["SIGKILL", "SIGTERM"])
def test_every_record_arrives_once_across_broker_deaths(env, sig):
    b, procs = env
    rng = random.Random(int(os.environ.get("EXPBUS_RECOVERY_SEED", "0"))
                        or None)
    # Enough records per game to outlast the kills at RATE.
    count = int(RATE * KILLS * 0.35) + 2000
    games = [game(procs, b, i, count) for i in range(PRODUCERS)]
    c_reader = procs.start([exe("recovery_reader"), b.socket, "rec",
                            str(PRODUCERS), str(count), "lossless"])
    lossy = procs.start([exe("recovery_reader"), b.socket, "rec",
                         str(PRODUCERS), str(count), "lossy"])
    trainer = procs.start([PY, str(HERE / "trainer.py"), b.socket, "rec",
                           str(PRODUCERS), str(count)])
    assert readline(c_reader, 30).strip() == "subscribed"
    assert readline(lossy, 30).strip() == "subscribed"
    assert readline(trainer, 60).strip() == "subscribing"
    # The trainer subscribes once torch has loaded: wait until the broker
    # serves three subscriptions.
    b.wait_subscriptions(3)
    go(*games)
    kills = 0
    t0 = time.monotonic()
    while kills < KILLS and all(g.poll() is None for g in games):
        time.sleep(rng.uniform(0.05, 0.4))
        b.stop(sig)
        kills += 1
        b.start()
    try:
        summaries = [game_done(g, 120)[0] for g in games]
    except AssertionError as e:
        st = subprocess.run([harness.expbus_exe(), "stat", "--socket",
                             b.socket, "--json"], capture_output=True,
                            text=True, timeout=30).stdout
        raise AssertionError(f"{e}\nstat: {st[-3000:]}\nbroker log:\n"
                             f"{b.log()}") from None
    took = time.monotonic() - t0
    for s in summaries:
        assert s["committed"] == count
        check_commit_times(s)
    c = summary(c_reader, 180)
    py = summary(trainer, 180)
    lo = summary(lossy, 180)
    print(f"{kills} x {sig!r} in {took:.1f} s; games {summaries}; "
          f"C {c}; Python {py}; lossy {lo}")
    assert kills == KILLS
    # Lossy: records it did not get are counted as dropped.
    assert lo["duplicates"] == 0 and lo["bad"] == 0, lo
    # Lossless: every committed record exactly once, in per-producer order
    # (the broker's side: heads advance at publish, a resumed stream waits
    # for its lossless subscribers, fresh producer ids never collide).
    losses = [m for m in (check_exactly_once("C subscriber", c, count),
                          check_exactly_once("Python trainer", py, count))
              if m]
    lossy_missing = lo["gaps"] + sum(count - n for n in lo["next"])
    if lossy_missing > lo["dropped"]:
        losses.append(f"lossy subscriber missed {lossy_missing} records "
                      f"and counted {lo['dropped']} dropped: {lo}")
    assert not losses, "\n".join(losses) + f"\nbroker log:\n{b.log()}"
