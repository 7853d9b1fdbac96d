#!/usr/bin/python3
"""run.py — the expbus demo: several Gather game processes write their
transitions through the producer binding, a DQN trainer reads them through
expbus.torch.ExperienceDataset and learns; the games refresh their
epsilon-greedy policy from the weights it saves. Prints the average episode
reward of the last episodes against the random policy's as it goes.

    /usr/bin/python3 examples/gridgame/run.py [--build-dir build] [--games 3]
        [--seconds 60] [--socket PATH]

Without --socket it starts its own expbusd (from the build dir: --build-dir,
else $EXPBUS_BUILD_DIR, else <repo>/build) on a private socket. Exit status
0 when the trainer ends clearly above the random policy, 1 otherwise."""
import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "python"))
sys.path.insert(0, str(HERE))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", help="meson build dir (default: "
                    "$EXPBUS_BUILD_DIR, else <repo>/build)")
    ap.add_argument("--socket", help="use this broker instead of starting one")
    ap.add_argument("--games", type=int, default=3, help="game processes")
    ap.add_argument("--seconds", type=float, default=60, help="training time")
    ap.add_argument("--stop-at", type=float, default=None,
                    help="stop once the last 100 episodes average this")
    ap.add_argument("--rate", type=float, default=1500,
                    help="turns per second per game at most")
    ap.add_argument("--margin", type=float, default=2.0,
                    help="success: final average > margin x random's")
    a = ap.parse_args()
    build = Path(a.build_dir or os.environ.get("EXPBUS_BUILD_DIR")
                 or REPO / "build").resolve()
    os.environ["EXPBUS_BUILD_DIR"] = str(build)

    from expbus.producer import library_env
    import trainer

    procs = []
    with tempfile.TemporaryDirectory(prefix="expbus-demo-") as tmp:
        sock = a.socket
        try:
            if not sock:
                sock = os.path.join(tmp, "expbus.sock")
                exe = build / "src" / "broker" / "expbusd"
                if not exe.exists():
                    sys.exit(f"run.py: no {exe}: build expbus first "
                             "(scripts/setup)")
                broker = subprocess.Popen([str(exe), "--socket", sock,
                                           "--log-level", "warn"])
                procs.append(broker)
                while not os.path.exists(sock):
                    if broker.poll() is not None:
                        sys.exit("run.py: expbusd did not start")
                    time.sleep(0.01)
            weights = os.path.join(tmp, "weights.npz")
            env = library_env()  # LD_PRELOAD for an ASan libexpbus
            env["PYTHONPATH"] = str(REPO / "python")
            for g in range(a.games):
                procs.append(subprocess.Popen(
                    [sys.executable, str(HERE / "game.py"), "--socket", sock,
                     "--game-id", str(g), "--weights", weights,
                     "--rate", str(a.rate)], env=env))
            avg, rnd, eps = trainer.train(sock, weights, seconds=a.seconds,
                                          stop_at=a.stop_at)
        except KeyboardInterrupt:
            print("interrupted")
            return 1
        finally:
            for p in reversed(procs):  # games first, then the broker
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM if p is procs[0] and not
                                  a.socket else signal.SIGINT)
            for p in reversed(procs):
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
    ok = avg > a.margin * rnd
    print(f"result: average episode reward {avg:.2f} after {eps} episodes, "
          f"random policy {rnd:.2f}: "
          + ("learned" if ok else "NOT clearly better than random"),
          flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
