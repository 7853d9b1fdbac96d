"""The wording of refusals and failures a person meets at the edges: each
message says what is wrong and what to do, never a misleading guess."""
import os
import socket
import subprocess
import sys
import time

import pytest

from hostile_harness import HostileBroker
from expbus_harness import build_dir, expbus_exe

sys.path.insert(0, os.path.dirname(__file__))
import peer  # noqa: E402


def expbusd(*args, timeout=30):
    return subprocess.run([str(build_dir() / "src" / "broker" / "expbusd"),
                           *args], capture_output=True, text=True,
                          timeout=timeout)


def stat(path, **kw):
    return subprocess.run([expbus_exe(), "stat", "--socket", path],
                          capture_output=True, text=True, timeout=30, **kw)


def test_a_regular_file_at_the_socket_path_is_named_as_such(tmp_path):
    f = tmp_path / "important.txt"
    f.write_text("keep me")
    r = stat(str(f))
    assert r.returncode != 0
    assert "is not a socket but a regular file" in r.stderr, r.stderr
    assert "Connection refused" not in r.stderr


def test_a_stale_socket_says_nobody_listens(tmp_path):
    path = str(tmp_path / "stale.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.bind(path)
    s.close()
    r = stat(path)
    assert "no broker listens on" in r.stderr, r.stderr


def test_a_missing_socket_asks_whether_expbusd_runs(tmp_path):
    r = stat(str(tmp_path / "none.sock"))
    assert "no broker socket at" in r.stderr, r.stderr
    assert "is expbusd running" in r.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to be another uid")
def test_permission_denied_does_not_ask_whether_expbusd_runs(tmp_path):
    os.chmod(tmp_path, 0o755)
    b = HostileBroker(tmp_path, ())
    try:
        r = stat(b.socket, user=65534, group=65534)
        assert "permission denied on the broker's socket" in r.stderr, \
            r.stderr
        assert "is expbusd running" not in r.stderr
        assert "--group" in r.stderr
    finally:
        assert b.stop() == 0


def test_python_reader_words_it_the_same(tmp_path):
    sys.path.insert(0, str(peer.Path(peer.__file__).parents[2] / "python"))
    import expbus
    f = tmp_path / "important.txt"
    f.write_text("keep me")
    with pytest.raises(expbus.BrokerGone) as e:
        expbus.subscribe("demo", socket=str(f))
    assert "is not a socket but a regular file" in str(e.value)


def test_expbusd_never_replaces_a_file_that_is_not_its_socket(tmp_path):
    f = tmp_path / "important.txt"
    f.write_text("keep me")
    r = expbusd("--socket", str(f))
    assert r.returncode == 1
    assert "is not a socket" in r.stderr, r.stderr
    assert f.read_text() == "keep me"
    d = tmp_path / "dir"
    d.mkdir()
    r = expbusd("--socket", str(d))
    assert r.returncode == 1 and "is not a socket" in r.stderr, r.stderr
    assert d.is_dir()


def test_expbusd_refuses_a_socket_another_broker_listens_on(tmp_path):
    b = HostileBroker(tmp_path, ())
    try:
        r = expbusd("--socket", b.socket)
        assert r.returncode == 1
        assert "already listening" in r.stderr, r.stderr
        peer.Attached(b.socket, "s", peer.DEFAULT_SCHEMA, 64).close()
    finally:
        assert b.stop() == 0


def test_expbusd_replaces_a_stale_socket_and_removes_only_its_own(tmp_path):
    path = tmp_path / "expbus.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.bind(str(path))
    s.close()
    b = HostileBroker(tmp_path, ())
    # The stale socket made the path exist already: wait until it listens.
    deadline = time.monotonic() + 10
    while "listening on" not in b.log():
        assert time.monotonic() < deadline, b.log()
        time.sleep(0.02)
    # Someone replaces the socket while the broker runs: at exit the
    # broker must leave their file alone.
    os.unlink(b.socket)
    with open(b.socket, "w") as f:
        f.write("not yours")
    assert b.stop() == 0
    assert open(b.socket).read() == "not yours"


def test_a_record_too_large_for_any_ring_does_not_advise_fewer_slots(
        tmp_path):
    b = HostileBroker(tmp_path, ("--max-segment", "512M"))
    try:
        with pytest.raises(peer.Refused) as e:
            peer.Attached(b.socket, "big", "x u8[67108864]", ring_slots=16)
        assert "fewer ring_slots" not in e.value.text, e.value.text
        assert "--max-segment" in e.value.text, e.value.text
        assert "record" in e.value.text, e.value.text
    finally:
        assert b.stop() == 0
