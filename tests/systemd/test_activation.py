"""expbusd as a systemd service: socket activation (LISTEN_FDS from
systemd-socket-activate --seqpacket) and READY=1 on $NOTIFY_SOCKET; the
unit files pass `systemd-analyze verify`."""
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "python"))
import expbus_harness as harness  # noqa: E402

ACTIVATE = shutil.which("systemd-socket-activate")


def poke_until_listening(path, kind, timeout=20):
    """A connection to path once something listens there (the socket file
    appears at bind, before listen)."""
    import time
    deadline = time.monotonic() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX, kind)
        try:
            s.connect(path)
            return s
        except (FileNotFoundError, ConnectionRefusedError):
            s.close()
            assert time.monotonic() < deadline, f"nothing listens on {path}"
            time.sleep(0.02)


def expbusd():
    return str(harness.build_dir() / "src" / "broker" / "expbusd")


@pytest.mark.skipif(not ACTIVATE, reason="no systemd-socket-activate")
def test_socket_activation_and_ready(tmp_path):
    import expbus
    sock_path = str(tmp_path / "expbus.sock")
    notify_path = str(tmp_path / "notify")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    notify.settimeout(20)
    env = dict(os.environ, NOTIFY_SOCKET=notify_path)
    proc = subprocess.Popen(
        [ACTIVATE, "--seqpacket", "-l", sock_path, "-E", "NOTIFY_SOCKET",
         expbusd(), "--log-level", "debug"], env=env,
        stderr=subprocess.PIPE, text=True)
    try:
        # The socket is the activator's: it is there before expbusd runs,
        # which the first connection starts; expbusd says READY=1 once it
        # serves on it.
        poke_until_listening(sock_path, socket.SOCK_SEQPACKET).close()
        states = []
        while not any("READY=1" in s for s in states):
            states.append(notify.recv(4096).decode())
        assert os.path.exists(sock_path)
        r = subprocess.run([harness.expbus_exe(), "pub", "--socket",
                            sock_path, "--stream", "act", "--count", "10"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        r = subprocess.run([harness.expbus_exe(), "ls", "--socket",
                            sock_path], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0 and "act" in r.stdout, r.stdout + r.stderr
        with expbus.subscribe("act", sock_path) as sub:
            assert "obs" in sub.columns
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        states.append(notify.recv(4096).decode())
        assert any("STOPPING=1" in s for s in states), states
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        notify.close()


@pytest.mark.skipif(not ACTIVATE, reason="no systemd-socket-activate")
def test_activation_refuses_a_stream_socket(tmp_path):
    sock_path = str(tmp_path / "s.sock")
    proc = subprocess.Popen([ACTIVATE, "-l", sock_path, expbusd()],
                            stderr=subprocess.PIPE, text=True)
    try:
        poke = poke_until_listening(sock_path, socket.SOCK_STREAM)
        _, err = proc.communicate(timeout=20)
        poke.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1
    assert "SOCK_SEQPACKET" in err


@pytest.mark.skipif(not shutil.which("systemd-analyze"),
                    reason="no systemd-analyze")
def test_units_verify(tmp_path):
    units = ROOT / "systemd"
    # verify wants the ExecStart binaries where the units say: point them
    # at this build through copies of the units.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for exe in ("src/broker/expbusd", "src/bridge/expbus-grpc"):
        os.symlink(harness.build_dir() / exe, bindir / Path(exe).name)
    files = []
    for u in ("expbusd.service", "expbusd.socket", "expbus-grpc.service"):
        text = (units / u).read_text().replace("/usr/local/bin/",
                                               f"{bindir}/")
        (tmp_path / u).write_text(text)
        files.append(str(tmp_path / u))
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", *files],
                       capture_output=True, text=True, timeout=120)
    out = (r.stdout + r.stderr).strip()
    assert r.returncode == 0 and out == "", out


def test_bridge_notifies_ready(tmp_path):
    bridge = harness.build_dir() / "src" / "bridge" / "expbus-grpc"
    if not bridge.exists():
        pytest.skip("expbus-grpc not built")
    notify_path = str(tmp_path / "notify")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    notify.settimeout(20)
    b = harness.Broker(tmp_path)
    proc = subprocess.Popen([str(bridge), "--socket", b.socket, "--listen",
                             "127.0.0.1:0"], stderr=subprocess.PIPE,
                            text=True,
                            env=dict(os.environ, NOTIFY_SOCKET=notify_path))
    try:
        assert "READY=1" in notify.recv(4096).decode()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert "STOPPING=1" in notify.recv(4096).decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        notify.close()
        assert b.stop() == 0
