"""The demo learns: examples/gridgame/run.py, short, must end with the last
100 episodes' average reward well above the random policy's."""
import re
import subprocess

import pytest

from reader_helpers import PY, ROOT, build_dir, child_env

pytest.importorskip("torch")


def test_gridgame_dqn_learns_beyond_random():
    r = subprocess.run(
        [PY, str(ROOT / "examples" / "gridgame" / "run.py"), "--build-dir",
         str(build_dir()), "--games", "3", "--seconds", "75", "--stop-at",
         "5"], capture_output=True, text=True, timeout=150, env=child_env())
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    m = re.search(r"result: average episode reward ([\d.]+) after (\d+) "
                  r"episodes, random policy ([\d.]+)", out)
    assert m, out[-4000:]
    avg, episodes, rnd = float(m[1]), int(m[2]), float(m[3])
    assert avg >= 5 > 4 * rnd and episodes >= 100, out[-4000:]
    assert "avg reward (last" in out  # progress printed as it goes
