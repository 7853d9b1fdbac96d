"""hostile_harness — what the hostile-peer suite shares: a real broker
with short limits, honest traffic beside the offender (producers, a
checking subscriber and a latency probe), and the broker's fds and RSS
before and after. (Not conftest.py: pytest runs this suite together with
others whose conftest would shadow it.)

EXPBUS_SOAK=1 (scripts/test --soak) makes every run longer."""
import os
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parents[1] / "python"))
from expbus_harness import Broker, broker_fixture, finish  # noqa: E402

SOAK = os.environ.get("EXPBUS_SOAK") == "1"
SCALE = 12 if SOAK else 1
# The pattern checker.
CHECK = "check"
# Limits short enough for a test to see them act.
BROKER_ARGS = ("--idle-timeout-ms", "1000", "--stream-linger-ms", "200",
               "--shm-budget", "256M")


class HostileBroker(Broker):
    def __init__(self, tmp_path, extra=BROKER_ARGS):
        super().__init__(tmp_path, extra)

    def fds(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def alive(self):
        return self.proc.poll() is None

    def baseline(self):
        return self.fds(), self.rss_kib()

    def back_to(self, base, rss_slack_kib=16384, timeout=15):
        """Waits until the broker's fds and RSS are back at base. Under
        AddressSanitizer freed memory waits in its quarantine (256 MiB by
        default) before it is reused: RSS is given that much slack."""
        fds0, rss0 = base
        if "ASAN_OPTIONS" in os.environ:
            rss_slack_kib += 256 * 1024
        deadline = time.monotonic() + timeout
        while True:
            fds, rss = self.fds(), self.rss_kib()
            if fds <= fds0 and rss <= rss0 + rss_slack_kib:
                return
            assert time.monotonic() < deadline, (
                f"broker fds {fds} (baseline {fds0}), RSS {rss} KiB "
                f"(baseline {rss0} KiB) did not come back\n"
                + "\n".join(os.listdir(f"/proc/{self.proc.pid}/fd")))
            time.sleep(0.1)

    def wait_log(self, text, timeout=15):
        """Waits until the broker's log says text (a stream appearing,
        say), so that a peer started next does not race it."""
        deadline = time.monotonic() + timeout
        while text not in self.log():
            assert time.monotonic() < deadline, (
                f"the broker never logged {text!r}\n" + self.log()[-3000:])
            time.sleep(0.02)

    def disconnected(self, pid, timeout=15):
        """Waits for the log line that says pid was disconnected, and
        returns it (it names the reason)."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.log().splitlines():
                if ((f"pid {pid} " in line or f"(pid {pid})" in line)
                        and "disconnecting" in line):
                    return line
            assert time.monotonic() < deadline, (
                f"pid {pid} was never disconnected\n" + self.log()[-3000:])
            time.sleep(0.05)


class SmallBroker(HostileBroker):
    """A broker started with 1024 fds at most, to run it out of them."""

    def __init__(self, tmp_path):
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
        try:
            super().__init__(tmp_path)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class LatencyProbe(threading.Thread):
    """A subscriber with batches of one record that notes, per record, how
    long after its commit it arrived (both CLOCK_MONOTONIC)."""

    def __init__(self, socket, stream):
        super().__init__(daemon=True)
        import expbus
        self.sub = expbus.subscribe(stream, socket=socket, batch_size=1,
                                    max_delay=0.001, wait=20.0,
                                    use_numpy=False)
        self.lat = []
        self.stop = threading.Event()
        self.error = None

    def run(self):
        try:
            while not self.stop.is_set():
                b = self.sub.next_batch(timeout=0.1)
                if b is None:
                    continue
                now = time.monotonic_ns()
                for ts in b["timestamp"]:
                    self.lat.append((now - ts) / 1e6)
                b.release()
        except Exception as e:  # the broker gone: reported by the test
            self.error = e

    def finish(self):
        self.stop.set()
        self.join(10)
        self.sub.close()
        lat = sorted(self.lat)
        if not lat:
            return None, None
        return lat[len(lat) // 2], lat[min(len(lat) - 1, len(lat) * 99 // 100)]


class Honest:
    """Honest traffic on its own stream: `expbus pub` producers at a steady
    rate, a checking subscriber that wants every record exactly once and in
    order, and a latency probe."""

    def __init__(self, broker, tmp_path, stream="honest", producers=2,
                 records=1500, rate=300):
        self.broker, self.producers, self.records = broker, producers, records
        records *= SCALE
        self.records = records
        self.report = tmp_path / f"{stream}.json"
        self.check = broker.start(
            CHECK, "--stream", stream, "--expect-producers", str(producers),
            "--expect-records", str(records), "--report", str(self.report),
            "--wait-ms", "30000", "--idle-ms", "20000", "--batch-size", "16",
            "--max-delay-ms", "5")
        self.pub = broker.start(
            "pub", "--stream", stream, "-n", str(producers), "--count",
            str(records), "--rate", str(rate), "--wait-subs", "2",
            "--wait-ms", "30000")
        self.probe = LatencyProbe(broker.socket, stream)
        self.probe.start()

    def finish(self, p50_ms=50, p99_ms=400):
        import json
        rc, out, err = finish(self.pub, timeout=300)
        assert rc == 0, f"honest producers failed: {out}\n{err}"
        rc, out, err = finish(self.check, timeout=300)
        p50, p99 = self.probe.finish()
        assert rc == 0, f"the checking subscriber failed: {out}\n{err}"
        rep = json.loads(self.report.read_text())
        assert rep["records"] == self.producers * self.records, rep
        for k in ("corrupt", "order_errors", "missing", "dropped"):
            assert rep[k] == 0, rep
        assert self.probe.error is None, self.probe.error
        assert p50 is not None, "the latency probe got nothing"
        assert p50 < p50_ms and p99 < p99_ms, (
            f"honest latency p50 {p50:.2f} ms p99 {p99:.2f} ms")
        return p50, p99


def run_peer(broker, mode, stream, secs):
    """Starts tests/hostile/peer.py MODE as a process of its own."""
    return broker.spawn(["/usr/bin/python3", str(HERE / "peer.py"), mode,
                         broker.socket, stream, str(secs)])
