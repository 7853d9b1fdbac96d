"""A trainer for the recovery tests: reads the records of tools/pattern.h
through expbus.torch.ExperienceDataset across broker restarts and prints a
JSON summary like tests/recovery_reader.c's.

    trainer.py SOCKET STREAM PRODUCERS COUNT"""
import json
import sys

import numpy as np

from expbus.torch import ExperienceDataset

GOLDEN = 0x9E3779B97F4A7C15
M64 = (1 << 64) - 1


def splitmix64(x):
    x = (x + GOLDEN) & M64
    z = x
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def obs_word0(p, s):
    """The first 8 bytes of record s of producer p (pattern.h)."""
    return splitmix64(((p << 40) ^ s) & M64)


def main():
    sock, stream, producers, count = sys.argv[1], sys.argv[2], \
        int(sys.argv[3]), int(sys.argv[4])
    ds = ExperienceDataset(stream, sock, columns=["seq", "source", "game",
                                                  "obs"],
                           batch_size=64, max_delay=0.02, wait=30,
                           reconnect=30, idle_timeout=60, pin_memory=False)
    nxt = [0] * producers
    src = [None] * producers
    sources = [0] * producers
    records = dups = gaps = bad = done = 0
    print("subscribing", flush=True)
    err = None
    try:
        for out in ds:
            seq = out["seq"].numpy().view(np.uint64)
            source = out["source"].numpy()
            game = out["game"].numpy()
            obs = np.ascontiguousarray(out["obs"].numpy()).reshape(
                len(seq), -1).view(np.uint64)[:, 0]
            for s, i, g, w in zip(seq.tolist(), source.tolist(),
                                  game.tolist(), obs.tolist()):
                p = g // 1000
                if p >= producers:
                    bad += 1
                    continue
                if src[p] != i:
                    src[p] = i
                    sources[p] += 1
                records += 1
                if s < nxt[p]:
                    dups += 1
                    continue
                gaps += s - nxt[p]
                nxt[p] = s + 1
                if w != obs_word0(p, s):
                    bad += 1
                if s + 1 == count:
                    done += 1
            if done == producers:
                break
    except Exception as e:  # reported, not raised: the test reads it
        err = f"{type(e).__name__}: {e}"
    print(json.dumps({"records": records, "duplicates": dups, "gaps": gaps,
                      "bad": bad, "next": nxt, "sources": sources,
                      "error": err}), flush=True)


if __name__ == "__main__":
    main()
