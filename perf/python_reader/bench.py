#!/usr/bin/python3
"""bench.py — the Python reader against the C consumer on the same stream,
in the same run: one broker, the same `expbus pub` load for every reader,
one reader at a time, each a lossless subscriber with the same batch size.

Readers:
  C expbus check          libexpbus consumer; checks every byte (pattern.h)
  Python views          expbus.subscribe: every column as a numpy view,
                        no byte touched (what a zero-copy trainer pays)
  Python reads bytes    the same, plus an XOR over every column's bytes
                        (touches every byte, like the C consumer does)
  torch dataset         expbus.torch.ExperienceDataset: each batch copied
                        into reused tensors

Rates count whole records (32-byte header + data) from the first batch to
the last, as `expbus check` does. Prints a table; --json for one object.

    /usr/bin/python3 perf/python_reader/bench.py [--build-dir build]
        [--records 200000] [--record-size 128 --record-size 4096] ..."""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python"))

import numpy as np  # noqa: E402

import expbus  # noqa: E402


def start_broker(build, tmp):
    sock = os.path.join(tmp, "bench.sock")
    p = subprocess.Popen([str(build / "src" / "broker" / "expbusd"),
                          "--socket", sock, "--log-level", "warn"])
    while not os.path.exists(sock):
        if p.poll() is not None:
            sys.exit("bench: expbusd did not start")
        time.sleep(0.01)
    return p, sock


def pub(build, sock, stream, a, size):
    return subprocess.Popen(
        [str(build / "tools" / "expbus"), "pub", "--socket", sock, "--stream",
         stream, "--record-size", str(size), "--count", str(a.records),
         "-n", str(a.producers), "--wait-subs", "1", "--wait-ms", "20000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(p, what):
    out, err = p.communicate(timeout=600)
    if p.returncode != 0:
        sys.exit(f"bench: {what} failed ({p.returncode}):\n{out}\n{err}")
    return out


def c_reader(build, sock, stream, a, size, tmp):
    report = os.path.join(tmp, "sub.json")
    p = pub(build, sock, stream, a, size)
    s = subprocess.Popen(
        [str(build / "tools" / "expbus"), "check", "--socket", sock, "--stream",
         stream, "--batch-size", str(a.batch_size), "--expect-producers",
         str(a.producers), "--expect-records", str(a.records), "--report",
         report], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finish(s, "expbus check")
    finish(p, "expbus pub")
    r = json.load(open(report))
    return r["records"], r["seconds"]


def py_reader(build, sock, stream, a, size, touch):
    p = pub(build, sock, stream, a, size)
    want = a.records * a.producers
    n, first, last = 0, None, None
    sink = 0
    with expbus.subscribe(stream, sock, batch_size=a.batch_size,
                          wait=20) as sub:
        names = list(sub.columns)
        while n < want:
            b = sub.next_batch(timeout=20)
            if b is None:
                sys.exit(f"bench: Python reader got {n} of {want}")
            last = time.perf_counter()
            if first is None:
                first = last
            cols = [b[k] for k in names]
            if touch:
                for c in cols:
                    v = c.reshape(-1).view(np.uint8)
                    w = v[:len(v) // 8 * 8].view(np.uint64)
                    sink ^= int(np.bitwise_xor.reduce(w)) if len(w) else 0
            n += b.count
            b.release()
    finish(p, "expbus pub")
    return n, last - first


def torch_reader(build, sock, stream, a, size):
    from expbus.torch import ExperienceDataset
    p = pub(build, sock, stream, a, size)
    want = a.records * a.producers
    n, first, last = 0, None, None
    ds = ExperienceDataset(stream, sock, batch_size=a.batch_size, wait=20,
                           idle_timeout=20)
    for batch in ds:
        last = time.perf_counter()
        if first is None:
            first = last
        n += len(batch["seq"])
        if n >= want:
            break
    finish(p, "expbus pub")
    return n, last - first


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir")
    ap.add_argument("--records", type=int, default=500000,
                    help="records per producer per reader (default 500000)")
    ap.add_argument("--producers", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--record-size", type=int, action="append",
                    help="bytes per record, header included (default: 128 "
                    "and 4096)")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    build = Path(a.build_dir or os.environ.get("EXPBUS_BUILD_DIR")
                 or REPO / "build").resolve()
    sizes = a.record_size or [128, 4096]
    try:
        import torch  # noqa: F401
        have_torch = not a.no_torch
    except ImportError:
        have_torch = False
    rows = []
    with tempfile.TemporaryDirectory(prefix="expbus-bench-") as tmp:
        broker, sock = start_broker(build, tmp)
        try:
            for size in sizes:
                runs = [("C expbus check", lambda s: c_reader(build, sock, s, a, size, tmp)),
                        ("Python views", lambda s: py_reader(build, sock, s, a, size, False)),
                        ("Python reads bytes", lambda s: py_reader(build, sock, s, a, size, True))]
                if have_torch:
                    runs.append(("torch dataset", lambda s: torch_reader(build, sock, s, a, size)))
                # One stream for every reader: the same schema and load.
                stream = f"bench{size}"
                for name, fn in runs:
                    n, secs = fn(stream)
                    rows.append({"record_size": size, "reader": name,
                                 "records": n, "seconds": secs,
                                 "records_per_s": n / secs,
                                 "gb_per_s": n * size / secs / 1e9})
        finally:
            broker.send_signal(signal.SIGTERM)
            broker.wait(timeout=30)
    for size in sizes:
        c = next(r for r in rows if r["record_size"] == size
                 and r["reader"].startswith("C"))
        for r in rows:
            if r["record_size"] == size:
                r["vs_c"] = r["records_per_s"] / c["records_per_s"]
    if a.json:
        print(json.dumps({"batch_size": a.batch_size, "producers": a.producers,
                          "rows": rows}))
        return 0
    print(f"expbus Python reader vs C consumer: {a.producers} producer(s), "
          f"{a.records} records each, batch {a.batch_size}")
    print(f"{'record':>7} {'reader':<20} {'records/s':>12} {'GB/s':>7} "
          f"{'vs C':>6}")
    for r in rows:
        print(f"{r['record_size']:>6}B {r['reader']:<20} "
              f"{r['records_per_s']:>12,.0f} {r['gb_per_s']:>7.3f} "
              f"{100 * r['vs_c']:>5.0f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
