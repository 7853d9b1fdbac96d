#!/usr/bin/python3
"""perf/bridge_client.py — the reading side of perf/run's bridge section:
subscribes through expbus-grpc (--target) with the Python remote client,
or locally (--socket) with the Python reader, touches every batch's
payload column (decompressing it when lz4 is on), and prints one JSON
object when --records arrived: records, bytes (records x --record-size),
seconds (first batch to last), records_per_s, gb_per_s, and for the remote
client wire_bytes and lz4_ratio (uncompressed / sent column bytes)."""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "python"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target")
    ap.add_argument("--socket")
    ap.add_argument("--stream", required=True)
    ap.add_argument("--records", type=int, required=True)
    ap.add_argument("--record-size", type=int, required=True)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--compression", default=None)
    a = ap.parse_args()
    deadline = time.monotonic() + 30
    wire = raw = 0
    if a.target:
        import expbus.remote as remote
        while True:
            try:
                sub = remote.subscribe(a.target, a.stream,
                                       batch_size=a.batch_size,
                                       compression=a.compression,
                                       queue_size=8)
                break
            except remote.RemoteError as e:
                if e.code.name != "NOT_FOUND" or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
    else:
        import expbus
        sub = expbus.subscribe(a.stream, a.socket, batch_size=a.batch_size,
                               batch_slots=16, wait=30)
    n = 0
    t0 = None
    while n < a.records:
        b = sub.next_batch(60)
        if t0 is None:
            t0 = time.monotonic()
        p = b["payload"]
        _ = p[-1, -1] if b.count else None  # every byte is materialised
        if a.target:
            for c in b._cols.values():
                wire += len(c.data)
                raw += c.uncompressed_size
        n += b.count
        b.release()
    dt = time.monotonic() - t0
    sub.close()
    out = {"records": n, "bytes": n * a.record_size, "seconds": dt,
           "records_per_s": n / dt, "gb_per_s": n * a.record_size / dt / 1e9}
    if a.target:
        out["wire_bytes"] = wire
        out["lz4_ratio"] = raw / wire if wire else None
    print(json.dumps(out))


if __name__ == "__main__":
    sys.exit(main())
