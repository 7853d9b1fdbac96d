"""bridge_harness — what the bridge tests share: a real expbusd on a private
socket (tests/expbus_harness.py), an expbus-grpc in front of it on a
loopback port the kernel picks, and the Python remote client from python/.
Every process started is stopped at teardown; the bridge must exit 0 on
SIGTERM. conftest.py turns these into fixtures."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "python"))
import expbus_harness as harness  # noqa: E402


def bridge_exe():
    return str(harness.build_dir() / "src" / "bridge" / "expbus-grpc")


class Bridge:
    """expbus-grpc on 127.0.0.1 (port chosen by the kernel)."""

    def __init__(self, broker, *args, listen="127.0.0.1:0"):
        self.log_path = broker.dir / f"bridge-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [bridge_exe(), "--socket", broker.socket, "--listen", listen,
             "--verbose", *args], stderr=self._log)
        deadline = time.monotonic() + 15
        while True:
            m = re.search(r"serving \S+ port (\d+)", self.log())
            if m:
                self.port = int(m.group(1))
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("expbus-grpc did not start:\n" + self.log())
            time.sleep(0.02)
        self.target = f"127.0.0.1:{self.port}"

    def log(self):
        return self.log_path.read_text(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self._log.close()
                raise AssertionError("expbus-grpc did not stop on SIGTERM:\n"
                                     + self.log()[-3000:])
        self._log.close()
        return self.proc.returncode


def child_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "python") + os.pathsep + env.get(
        "PYTHONPATH", "")
    return env


def make_stream(broker, stream, *pub_args):
    """Creates stream with one record (the pub default schema or
    pub_args), so that subscribers can attach before the real producers."""
    r = broker.run("pub", "--stream", stream, "--count", "1", *pub_args)
    assert r.returncode == 0, r.stderr


def rows(batch, names):
    """{(source, seq): tuple of each named column's row bytes}."""
    out = {}
    src, seq = batch["source"], batch["seq"]
    cols = [batch[n] for n in names]
    for i in range(batch.count):
        out[(int(src[i]), int(seq[i]))] = tuple(c[i].tobytes() for c in cols)
    return out
