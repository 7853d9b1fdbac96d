"""`expbus sub`, the subscriber for people: JSON lines when piped whose
values are exactly what `expbus pub` wrote (the pattern of tools/pattern.h,
recomputed here), an aligned table with shortened arrays on a terminal
(run inside tmux), --columns, --count, filters and --stats."""
import json
import math
import os
import shutil
import struct
import subprocess
import time

import pytest

M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
SCHEMA = "a i64; b i32; c u16[2]; d f64; big u8[3,40]"
# pub creates the stream, then waits for the subscriber.
WAIT = ("--wait-subs", "1", "--wait-ms", "20000")


def splitmix64(x):
    x = (x + GOLDEN) & M64
    z = x
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def pattern_record(p, s, games=4, episode=100, players=2):
    """Header and fields of record s of producer p, as pub writes them."""
    base = splitmix64(((p << 40) ^ s) & M64)
    data = b"".join(struct.pack("<Q", (base + k * GOLDEN) & M64)
                    for k in range(19))  # 152 bytes: 8+4+4+8+120, padded
    a, = struct.unpack_from("<q", data, 0)
    b, = struct.unpack_from("<i", data, 8)
    c = list(struct.unpack_from("<2H", data, 12))
    d, = struct.unpack_from("<d", data, 16)
    big = [list(data[24 + 40 * r:24 + 40 * (r + 1)]) for r in range(3)]
    turn = s % episode
    return {"game": p * 1000 + (s // episode) % games, "player": s % players,
            "turn": turn, "flags": 1 if turn == episode - 1 else 0,
            "a": a, "b": b, "c": c, "d": None if not math.isfinite(d) else d,
            "big": big}


def test_piped_sub_prints_json_lines_with_the_published_values(broker,
                                                               finish):
    pub = broker.start("pub", "--stream", "pat", "--schema", SCHEMA,
                       "--count", "300", *WAIT)
    sub = broker.start("sub", "pat", "--count", "250", "--policy",
                       "lossless", "--wait-ms", "20000")
    assert finish(pub)[0] == 0
    rc, out, err = finish(sub)
    assert rc == 0, err
    lines = out.splitlines()
    assert len(lines) == 250
    for i, line in enumerate(lines):
        rec = json.loads(line)
        assert rec["seq"] == i
        want = pattern_record(0, rec["seq"])
        for k, v in want.items():
            assert rec[k] == v, (i, k, rec[k], v)
        assert list(rec)[:6] == ["seq", "source", "game", "player", "turn",
                                 "flags"]


def test_columns_and_filters_select_what_is_printed(broker, finish):
    pub = broker.start("pub", "--stream", "pat", "--schema", SCHEMA,
                       "--count", "400", *WAIT)
    sub = broker.start("sub", "--stream", "pat", "--json", "--columns",
                       "seq,game,b", "--games", "1", "--min-turn", "50",
                       "-n", "20", "--policy", "lossless", "--wait-ms",
                       "20000")
    assert finish(pub)[0] == 0
    rc, out, err = finish(sub)
    assert rc == 0, err
    recs = [json.loads(x) for x in out.splitlines()]
    assert len(recs) == 20
    for r in recs:
        assert list(r) == ["seq", "game", "b"]
        want = pattern_record(0, r["seq"])
        assert r["game"] == 1 == want["game"] and r["seq"] % 100 >= 50
        assert r["b"] == want["b"]
    assert [r["seq"] for r in recs] == list(range(150, 170))


def test_unknown_column_is_refused_with_the_names_there_are(broker, finish):
    pub = broker.start("pub", "--stream", "pat", "--schema", SCHEMA,
                       "--count", "0", "--duration", "30")
    broker.wait_for(lambda st: st["streams"], "the stream")
    r = broker.run("sub", "pat", "--columns", "seq,nope")
    assert r.returncode == 2
    assert "no column 'nope'" in r.stderr and "big" in r.stderr


def test_stats_prints_rate_lines(broker, finish):
    pub = broker.start("pub", "--stream", "pat", "--schema", SCHEMA,
                       "--count", "0", "--duration", "2", "--rate", "5000",
                       *WAIT)
    sub = broker.start("sub", "pat", "--stats", "--duration", "2.5",
                       "--wait-ms", "20000")
    rc, out, err = finish(sub)
    assert rc == 0, err
    finish(pub)
    lines = out.splitlines()
    assert len(lines) >= 2
    assert all("rec/s" in x and "MB/s" in x for x in lines)
    total = int(lines[-1].split("records")[0].split()[-1])
    assert total > 1000


@pytest.mark.skipif(not shutil.which("tmux"), reason="tmux not installed")
def test_on_a_terminal_sub_prints_an_aligned_table(broker, tmp_path,
                                                   finish):
    from expbus_harness import expbus_exe
    tsock = str(tmp_path / "tmux.sock")
    pub = broker.start("pub", "--stream", "pat", "--schema", SCHEMA,
                       "--count", "10", *WAIT)
    cmd = (f"{expbus_exe()} sub pat --socket {broker.socket} -n 5 "
           "--policy lossless --wait-ms 20000; sleep 60")
    subprocess.run(["tmux", "-S", tsock, "new-session", "-d", "-x", "250",
                    "-y", "20", cmd], check=True, timeout=10)
    try:
        assert finish(pub)[0] == 0
        deadline = time.monotonic() + 20
        while True:
            screen = subprocess.run(
                ["tmux", "-S", tsock, "capture-pane", "-p"],
                capture_output=True, text=True, timeout=10).stdout
            rows = [x for x in screen.splitlines() if x.strip()]
            if len(rows) >= 6 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    finally:
        subprocess.run(["tmux", "-S", tsock, "kill-server"], timeout=10)
    head = rows[0].split()
    assert head == ["SEQ", "SOURCE", "GAME", "PLAYER", "TURN", "FLAGS", "A",
                    "B", "C", "D", "BIG"], screen
    body = rows[1:6]
    # Aligned: every column starts where its header does.
    start = rows[0].index("BIG")
    for i, row in enumerate(body):
        want = pattern_record(0, i)
        cells = row.split()
        assert cells[0] == str(i) and cells[2] == str(want["game"])
        assert row[start] == "[", row
        # numpy-style shortening: outer dimension 3 -> first ... last,
        # rows of 40 -> three items at each end.
        big = row[start:]
        assert big.startswith("[[%d %d %d ..." % tuple(want["big"][0][:3]))
        assert "%d %d %d]]" % tuple(want["big"][2][-3:]) in big
        assert row.rstrip().endswith("]]")
