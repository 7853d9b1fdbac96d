"""`expbus top` in a real terminal (tmux): it draws, refreshes, sorts,
pauses, shows help and quits on its keys, and gives the terminal back as
it found it, on q and on SIGTERM."""
import os
import re
import shlex
import shutil
import signal
import subprocess
import time

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None,
                                reason="tmux is not installed")




class Tmux:
    """One tmux server on a private socket, one window running cmd."""

    def __init__(self, tmp_path, cmd):
        self.sock = str(tmp_path / "tmux.sock")
        self.tmux("-f", "/dev/null", "new-session", "-d", "-s", "t",
                  "-x", "200", "-y", "50", cmd)
        self.tmux("set-option", "-t", "t", "remain-on-exit", "on")

    def tmux(self, *args):
        return subprocess.run(["tmux", "-S", self.sock, *args],
                              capture_output=True, text=True, timeout=10,
                              check=True).stdout

    def screen(self):
        return self.tmux("capture-pane", "-p", "-t", "t")

    def keys(self, *keys):
        self.tmux("send-keys", "-t", "t", *keys)

    def wait(self, pred, what, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            s = self.screen()
            if pred(s):
                return s
            assert time.monotonic() < deadline, f"never: {what}\n{s}"
            time.sleep(0.05)

    def pane(self, fmt):
        return self.tmux("display-message", "-p", "-t", "t", fmt).strip()

    def kill(self):
        subprocess.run(["tmux", "-S", self.sock, "kill-server"],
                       capture_output=True, timeout=10)


@pytest.fixture
def tmux_top(broker, tmp_path):
    """Runs top in tmux with stty's settings saved before and after."""
    made = []

    def start(*args):
        top = " ".join(shlex.quote(a) for a in broker.expbus("top", *args))
        d = shlex.quote(str(tmp_path))
        cmd = (f"stty -a > {d}/stty.before; {top}; echo $? > {d}/rc; "
               f"stty -a > {d}/stty.after")
        t = Tmux(tmp_path, "sh -c " + shlex.quote(cmd))
        made.append(t)
        return t
    yield start
    for t in made:
        t.kill()


def finished(tmp_path, timeout=10):
    deadline = time.monotonic() + timeout
    while not (tmp_path / "stty.after").exists() or \
            not (tmp_path / "stty.after").read_text():
        assert time.monotonic() < deadline, "top did not exit"
        time.sleep(0.05)
    time.sleep(0.1)
    return int((tmp_path / "rc").read_text())


def producer_rows(screen):
    """Producer ids in the order top shows them."""
    rows, inside = [], False
    for line in screen.splitlines():
        if line.lstrip().startswith("PROD"):
            inside = True
            continue
        if inside:
            m = re.match(r"\s*(\d+)\s+demo\s", line)
            if not m:
                break
            rows.append(int(m.group(1)))
    return rows


def unclaimed(screen):
    m = re.search(r"UNCLAIMED (\d+) records", screen)
    return int(m.group(1)) if m else None


def test_top_draws_refreshes_sorts_pauses_and_quits(
        broker, tmux_top, tmp_path):
    # Two producers with no subscriber: every record is unclaimed, and one
    # writes ten times faster. Producer ids come from the rings' inodes:
    # their order is not the order of attaching.
    slow_pub = broker.start("pub", "--count", "0", "--duration", "60",
                            "--rate", "300")
    fast_pub = broker.start("pub", "--count", "0", "--duration", "60",
                            "--rate", "3000", "--index-base", "1")
    st = broker.wait_for(lambda s: len(s["producers"]) == 2, "two producers")
    # pub forks its producers, each in the pub's own process group.
    ids = {os.getpgid(p["pid"]): p["id"] for p in st["producers"]}
    slow, fast = ids[slow_pub.pid], ids[fast_pub.pid]
    by_id = sorted([slow, fast])

    t = tmux_top("-d", "0.3")
    s = t.wait(lambda s: "expbus top" in s and len(producer_rows(s)) == 2
               and "IN/s" in s, "the first frame")
    assert broker.socket in s and "sort: rate" in s
    # It refreshes: the unclaimed count grows from frame to frame.
    first = unclaimed(s)
    t.wait(lambda s: (unclaimed(s) or 0) > first, "a refresh")
    # Sorted by rate: the fast producer first.
    t.wait(lambda s: producer_rows(s) == [fast, slow], "fast first")

    t.keys("s")  # next key: fill; both rings are empty, so by id
    t.wait(lambda s: "sort: fill" in s and producer_rows(s) == by_id,
           "sorted by fill, then id")
    t.keys("s")
    t.wait(lambda s: "sort: drops" in s, "sorted by drops")
    t.keys("s")
    t.wait(lambda s: "sort: id" in s and producer_rows(s) == by_id,
           "sorted by id")
    t.keys("S")  # back: drops
    t.wait(lambda s: "sort: drops" in s, "S goes back")
    t.keys("S", "S")
    t.wait(lambda s: "sort: rate" in s and producer_rows(s) == [fast, slow],
           "back to rate")

    t.keys("p")
    s = t.wait(lambda s: "[PAUSED]" in s, "paused")
    frozen = unclaimed(s)
    time.sleep(0.8)
    assert unclaimed(t.screen()) == frozen, "a paused top does not refresh"
    t.keys("p")
    t.wait(lambda s: "[PAUSED]" not in s and (unclaimed(s) or 0) > frozen,
           "resumed")

    t.keys("?")
    t.wait(lambda s: "Keys" in s and "pause / resume" in s, "help")
    t.keys("x")
    t.wait(lambda s: "PROD" in s and "pause / resume" not in s, "help gone")

    # A smaller window: it redraws to fit (SIGWINCH) and cuts long lines.
    t.tmux("resize-window", "-t", "t", "-x", "60", "-y", "20")
    s = t.wait(lambda s: all(len(l) <= 60 for l in s.splitlines())
               and "PROD" in s and len(s.splitlines()) <= 20, "resized")

    t.keys("q")
    assert finished(tmp_path) == 0
    # The first line has the window's size, which the test changed.
    before = (tmp_path / "stty.before").read_text().split("\n", 1)[1]
    after = (tmp_path / "stty.after").read_text().split("\n", 1)[1]
    assert before == after, "the terminal settings were not restored"
    assert re.search(r"(^|\s)icanon", after) and re.search(r"(^|\s)echo\s",
                                                           after)


def test_top_restores_the_terminal_on_sigterm(broker, tmux_top, tmp_path):
    t = tmux_top("-d", "0.2")
    t.wait(lambda s: "expbus top" in s, "the first frame")
    pid = int(t.pane("#{pane_pid}"))
    # The pane runs sh; top is its child.
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                         text=True).stdout.split()
    assert out, "top is not running"
    os.kill(int(out[0]), signal.SIGTERM)
    assert finished(tmp_path) == 0
    assert (tmp_path / "stty.before").read_text() == \
        (tmp_path / "stty.after").read_text()
    # The alternate screen is left: the shell's screen is back.
    assert "expbus top" not in t.screen()


def test_top_prints_plain_frames_when_stdout_is_not_a_terminal(broker):
    r = broker.run("top", "-n", "3", "-d", "0.1")
    assert r.returncode == 0, r.stderr
    assert "\033" not in r.stdout, "no escape codes in plain text"
    assert r.stdout.count("expbus top - ") == 3
    assert r.stdout.count("UNCLAIMED") == 3
