"""expbus_harness — what the end-to-end and CLI suites share: a real
expbusd on a private socket in a temporary directory, and the expbus CLI.
Every process started is stopped at teardown; the broker must exit 0 on
SIGTERM (the `broker` fixtures in tests/e2e and tests/cli check it)."""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build_dir():
    d = os.environ.get("EXPBUS_BUILD_DIR")
    return Path(d) if d else ROOT / "build"


def expbus_exe():
    return str(build_dir() / "tools" / "expbus")


class Broker:
    def __init__(self, tmp_path, extra=()):
        self.dir = tmp_path
        self.socket = str(tmp_path / "expbus.sock")
        self.log_path = tmp_path / "broker.log"
        exe = build_dir() / "src" / "broker" / "expbusd"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [str(exe), "--socket", self.socket, "--log-level", "debug",
             *extra], stderr=self._log)
        self.children = []
        deadline = time.monotonic() + 10
        while not os.path.exists(self.socket):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("expbusd did not start:\n" + self.log())
            time.sleep(0.01)

    def log(self):
        return self.log_path.read_text(errors="replace")

    def expbus(self, *args):
        return [expbus_exe(), args[0], "--socket", self.socket, *args[1:]]

    def spawn(self, argv, **kw):
        """Starts argv in the background, in a process group of its own
        (pub forks its producers), killed with its group at teardown."""
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        kw.setdefault("text", True)
        p = subprocess.Popen(argv, start_new_session=True, **kw)
        self.children.append(p)
        return p

    def start(self, *args, **kw):
        """Starts `expbus ARGS` in the background (see spawn)."""
        return self.spawn(self.expbus(*args), **kw)

    def run(self, *args, timeout=60):
        return subprocess.run(self.expbus(*args), capture_output=True,
                              text=True, timeout=timeout)

    def stat(self):
        r = self.run("stat", "--json", timeout=30)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def wait_for(self, pred, what, timeout=20):
        """Polls stat --json until pred(stat) is true; returns that stat."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.stat()
            if pred(st):
                return st
            assert time.monotonic() < deadline, f"never: {what}\n{st}"
            time.sleep(0.05)

    def wait_subscriptions(self, n, timeout=30):
        """Waits until the broker serves at least n subscriptions."""
        self.wait_for(lambda st: len(st["subscriptions"]) >= n,
                      f"{n} subscriptions", timeout)

    def stop(self):
        for p in self.children:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
            for f in (p.stdout, p.stderr):
                if f:
                    f.close()
        if self.proc.poll() is not None:  # a test stopped it already
            self._log.close()
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("expbusd did not stop on SIGTERM")
        self._log.close()
        return rc


def finish(proc, timeout=180):
    """Waits for a started CLI process; returns (rc, stdout, stderr)."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"timed out: {proc.args}\n{out}\n{err}")
    return proc.returncode, out, err


def broker_fixture(tmp_path, cls=Broker):
    """The body of a `broker` fixture: yields a cls (a Broker), then stops
    it and checks that it exited 0."""
    b = cls(tmp_path)
    try:
        yield b
    finally:
        rc = b.stop()
    assert rc == 0, "expbusd exited %d:\n%s" % (rc, b.log()[-4000:])
