#!/usr/bin/python3
"""mpqueue.py — the common Python RL setup as a baseline for expbus: N
producer processes put numpy records, one per put, on one
multiprocessing.Queue; the trainer process gets them and checks every
byte. The records are the ones `expbus pub` writes (tools/pattern.h: the
32-byte header, then splitmix64 words), generated and checked with numpy
a record at a time. perf/run runs it; prints one JSON line like
`expbus check --report`.

Rates count whole records (32-byte header + data) from the first record
the trainer gets to the last, as `expbus check` counts.

    /usr/bin/python3 perf/mpqueue.py --producers 8 --count 20000 --record-size 64
"""
import argparse
import json
import multiprocessing as mp
import sys
import time

import numpy as np

GOLDEN = 0x9E3779B97F4A7C15
MASK = (1 << 64) - 1
GAMES, EPISODE_LEN, PLAYERS = 4, 100, 2  # pattern defaults of expbus pub


def splitmix64(x):
    x = (x + GOLDEN) & MASK
    z = x
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def record_dtype(size):
    return np.dtype([("seq", "<u8"), ("timestamp", "<u8"), ("game", "<u4"),
                     ("player", "<u4"), ("turn", "<u4"), ("flags", "<u4"),
                     ("payload", "<u8", ((size - 32) // 8,))])


def header(p, s):
    turn = s % EPISODE_LEN
    return (p * 1000 + (s // EPISODE_LEN) % GAMES, s % PLAYERS, turn,
            1 if turn == EPISODE_LEN - 1 else 0)


def producer(q, p, count, size):
    dt = record_dtype(size)
    steps = np.arange((size - 32) // 8, dtype=np.uint64) * np.uint64(GOLDEN)
    for s in range(count):
        # The record as 64-bit words: seq, timestamp, game | player << 32,
        # turn | flags << 32, then w[k] = base + k * GOLDEN (wrapping at
        # 2^64, as in pattern.h), viewed as one numpy record.
        w = np.empty(size // 8, dtype="<u8")
        game, player, turn, flags = header(p, s)
        w[0], w[1] = s, time.monotonic_ns()
        w[2], w[3] = game | player << 32, turn | flags << 32
        np.add(steps, np.uint64(splitmix64(((p << 40) ^ s) & MASK)), out=w[4:])
        q.put(w.view(dt))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--producers", "-n", type=int, default=8)
    ap.add_argument("--count", type=int, default=20000,
                    help="records per producer")
    ap.add_argument("--record-size", type=int, default=64,
                    help="bytes, 32-byte header included, >= 40, multiple of 8")
    a = ap.parse_args()
    if a.record_size < 40 or a.record_size % 8:
        sys.exit("mpqueue: --record-size must be >= 40 and a multiple of 8")

    q = mp.Queue()
    procs = [mp.Process(target=producer, args=(q, p, a.count, a.record_size))
             for p in range(a.producers)]
    for pr in procs:
        pr.start()
    steps = np.arange((a.record_size - 32) // 8, dtype=np.uint64) * \
        np.uint64(GOLDEN)
    next_seq = [0] * a.producers
    total = a.producers * a.count
    corrupt = order = 0
    t_first = None
    for _ in range(total):
        rec = q.get(timeout=60)
        if t_first is None:
            t_first = time.monotonic()
        w = rec.view("<u8")
        s, gp, tf = int(w[0]), int(w[2]), int(w[3])
        p = (gp & 0xFFFFFFFF) // 1000
        if p >= a.producers:
            corrupt += 1
            continue
        if s != next_seq[p]:
            order += 1
        next_seq[p] = s + 1
        game, player, turn, flags = header(p, s)
        want = steps + np.uint64(splitmix64(((p << 40) ^ s) & MASK))
        if (gp != game | player << 32 or tf != turn | flags << 32 or
                not np.array_equal(w[4:], want)):
            corrupt += 1
    t_last = time.monotonic()
    for pr in procs:
        pr.join()
    secs = t_last - t_first if t_first else 0.0
    out = {"producers": a.producers, "record_size": a.record_size,
           "records": total, "bytes": total * a.record_size,
           "seconds": round(secs, 6),
           "records_per_s": round(total / secs, 1) if secs else 0,
           "gb_per_s": round(total * a.record_size / secs / 1e9, 4) if secs else 0,
           "corrupt": corrupt, "order_errors": order,
           "python": sys.version.split()[0], "numpy": np.__version__}
    print(json.dumps(out))
    return 1 if corrupt or order or any(pr.exitcode for pr in procs) else 0


if __name__ == "__main__":
    sys.exit(main())
