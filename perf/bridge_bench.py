"""perf/bridge_bench.py — perf/run's "bridge" section: 8 producers ->
expbusd -> expbus-grpc on loopback -> the Python remote client, with and
without lz4, beside the shared-memory path (the same Python client code
reading locally) in the same run, and the plan's way (perf/grpc_baseline:
a Python grpcio server sending one protobuf message per experience).
Also the lz4 ratio of the gridgame example's columns and of random bytes.
Target: the bridge >= 10x the plan's way at 16 KiB records."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY = "/usr/bin/python3"
PRODUCERS = 8
SIZES = [64, 16384]
BATCH = {64: 1024, 16384: 32}
RECORDS = {64: 1_000_000, 16384: 100_000}
QUICK_RECORDS = {64: 50_000, 16384: 5_000}
BASELINE_RECORDS = {64: 20_000, 16384: 10_000}
QUICK_BASELINE_RECORDS = {64: 2_000, 16384: 1_000}


def cell(r, Failure, size, total, mode):
    """mode: "local", "remote" or "remote-lz4". Returns the client's JSON."""
    broker, sock = r.broker()
    bridge = None
    try:
        stream = f"br{size}"
        cmd = [PY, str(HERE / "bridge_client.py"), "--stream", stream,
               "--records", str(total), "--record-size", str(size),
               "--batch-size", str(BATCH[size])]
        if mode == "local":
            cmd += ["--socket", sock]
        else:
            exe = r.tool("src", "bridge", "expbus-grpc")
            bridge = r.spawn([exe, "--socket", sock, "--listen",
                              "127.0.0.1:0"])
            line = bridge.stderr.readline()
            if " port " not in line:
                raise Failure(f"expbus-grpc did not start: {line}")
            port = line.split(" port ")[1].split()[0]
            cmd += ["--target", f"127.0.0.1:{port}"]
            if mode == "remote-lz4":
                cmd += ["--compression", "lz4"]
        client = r.spawn(cmd)
        pub = r.spawn([r.tool("tools", "expbus"), "--socket", sock, "pub",
                       "--stream", stream, "-n", str(PRODUCERS), "--count",
                       str(total // PRODUCERS), "--record-size", str(size),
                       "--wait-subs", "1", "--wait-ms", "30000"])
        r.finish(pub, f"expbus pub ({size} B, bridge {mode})", timeout=240)
        return json.loads(r.finish(client, f"bridge client ({size} B, "
                                   f"{mode})", timeout=240))
    finally:
        if bridge is not None:
            r.end_broker(bridge)
        r.end_broker(broker)


def lz4_ratios():
    """Uncompressed / lz4 bytes, column by column as the bridge compresses
    them: 256-record batches of the gridgame example (random policy), and
    random bytes."""
    import lz4.block
    import numpy as np
    sys.path.insert(0, str(HERE.parent / "examples" / "gridgame"))
    import game as gg

    rng = np.random.default_rng(7)
    g = gg.Gather(rng)
    n = 256
    cols = {k: [] for k in ("obs", "action", "reward", "next_obs", "ret",
                            "game", "player", "turn", "flags")}
    obs, ret = g.reset(), 0.0
    for i in range(n):
        a = int(rng.integers(gg.ACTIONS))
        nxt, rew, done = g.step(a)
        ret += rew
        for k, v in (("obs", obs), ("action", np.int32(a)),
                     ("reward", np.float32(rew)), ("next_obs", nxt),
                     ("ret", np.float32(ret)), ("game", np.uint32(3)),
                     ("player", np.uint32(0)),
                     ("turn", np.uint32(g.turn - 1)),
                     ("flags", np.uint32(1 if done else 0))):
            cols[k].append(v)
        obs = nxt
        if done:
            obs, ret = g.reset(), 0.0
    arrays = {k: np.ascontiguousarray(np.stack(v)) for k, v in cols.items()}
    t = time.monotonic_ns()
    arrays["seq"] = np.arange(1000, 1000 + n, dtype=np.uint64)
    arrays["timestamp"] = t + np.cumsum(
        rng.integers(600, 900, n)).astype(np.uint64)
    arrays["source"] = np.full(n, 5, np.uint32)
    raw = sum(a.nbytes for a in arrays.values())
    comp = sum(len(lz4.block.compress(a.tobytes(), store_size=False))
               for a in arrays.values())
    rnd = os.urandom(1 << 20)
    rcomp = len(lz4.block.compress(rnd, store_size=False))
    return {"gridgame": {"bytes": raw, "lz4_bytes": comp,
                         "ratio": raw / comp},
            "random": {"bytes": len(rnd), "lz4_bytes": rcomp,
                       "ratio": len(rnd) / rcomp}}


def run_bridge(r, Failure, spread, section, quick, reps, failures):
    records = QUICK_RECORDS if quick else RECORDS
    base_records = QUICK_BASELINE_RECORDS if quick else BASELINE_RECORDS
    modes = ["local", "remote", "remote-lz4", "plan"]
    runs = {(s, m): [] for s in SIZES for m in modes}
    if not Path(r.tool("src", "bridge", "expbus-grpc")).exists():
        section("gRPC bridge: not built (needs grpc, protobuf-c, lz4)")
        return {"status": "not built"}
    for _ in range(reps):
        for s in SIZES:
            for m in modes:
                try:
                    if m == "plan":
                        out = r.finish(r.spawn([
                            PY, str(HERE / "grpc_baseline"), "--record-size",
                            str(s), "--producers", str(PRODUCERS), "--count",
                            str(base_records[s])]), f"grpc_baseline {s} B",
                            timeout=240)
                        runs[(s, m)].append(json.loads(out))
                    else:
                        runs[(s, m)].append(cell(r, Failure, s, records[s],
                                                 m))
                except Failure as e:
                    failures.append(f"bridge {s} B {m}: {e}")
                    print(f"  FAILED bridge {s} B {m}: {e}", file=sys.stderr)
    results = []
    names = {"local": "shared memory, Python reader",
             "remote": "expbus-grpc -> Python remote client",
             "remote-lz4": "expbus-grpc lz4 -> Python remote",
             "plan": "plan's way: grpcio, 1 msg/record"}
    for s in SIZES:
        plan = runs[(s, "plan")]
        plan_rps = spread([x["records_per_s"] for x in plan])["median"] \
            if plan else None
        for m in modes:
            rr = runs[(s, m)]
            if not rr:
                results.append({"mode": m, "record_size": s, "error": True})
                continue
            rps = spread([x["records_per_s"] for x in rr])
            gbs = spread([x["gb_per_s"] for x in rr])
            x = {"mode": m, "record_size": s, "producers": PRODUCERS,
                 "records": rr[0]["records"], "records_per_s": rps,
                 "gb_per_s": gbs, "repetitions": len(rr),
                 "over_plan": rps["median"] / plan_rps if plan_rps else None}
            if rr[0].get("lz4_ratio"):
                x["wire_ratio"] = rr[0]["lz4_ratio"]
            results.append(x)
    ratios = lz4_ratios()
    section(f"gRPC bridge on loopback: {PRODUCERS} producers -> expbusd -> "
            f"expbus-grpc -> Python remote client (touches every payload "
            f"byte); median of {reps}")
    print(f"  {'path':<38} {'size':>6} {'records/s':>12} {'GB/s':>8} "
          f"{'x plan':>8}")
    for x in results:
        if x.get("error"):
            print(f"  {names[x['mode']]:<38} {x['record_size']:>6}  FAILED")
            continue
        ratio = x["over_plan"]
        print(f"  {names[x['mode']]:<38} {x['record_size']:>6} "
              f"{x['records_per_s']['median']:12,.0f} "
              f"{x['gb_per_s']['median']:8.3f} "
              f"{(f'{ratio:.1f}x' if ratio else 'n/a'):>8}")
    big = [x for x in results if x.get("mode") == "remote"
           and x["record_size"] == 16384 and not x.get("error")]
    if big and big[0]["over_plan"]:
        ok = big[0]["over_plan"] >= 10
        print(f"  target: bridge >= 10x the plan's way at 16 KiB: "
              f"{big[0]['over_plan']:.1f}x {'(met)' if ok else '(NOT met)'}")
    print(f"  lz4 ratio (uncompressed / compressed, per column as sent): "
          f"gridgame records {ratios['gridgame']['ratio']:.2f}, random bytes "
          f"{ratios['random']['ratio']:.3f}; expbus pub's pattern records "
          + ", ".join(f"{x['record_size']} B {x['wire_ratio']:.2f}"
                      for x in results if x.get("wire_ratio")
                      and x["mode"] == "remote-lz4"))
    return {"cells": results, "lz4_ratio": ratios}
