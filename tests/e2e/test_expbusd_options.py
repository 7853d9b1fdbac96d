"""expbusd's wakeup and recovery options: --help documents them, a bad
value is refused with exit status 2 and a message naming the option, and a
good one (0 included, where it means "off") starts a broker that serves."""
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from expbus_harness import Broker, build_dir  # noqa: E402

OPTIONS = ("--coalesce-min-delay-us", "--spin-us", "--resume-hold-ms")


def expbusd(*args):
    return subprocess.run([str(build_dir() / "src" / "broker" / "expbusd"),
                           *args], capture_output=True, text=True,
                          timeout=30)


def test_help_documents_each_option_and_its_default():
    r = expbusd("--help")
    assert r.returncode == 0
    for opt in OPTIONS:
        assert opt in r.stdout, opt
        # The option's paragraph: up to the next line that starts one.
        para = r.stdout[r.stdout.index(opt):].split("\n  -", 1)[0]
        assert "default" in para, para


@pytest.mark.parametrize("opt", OPTIONS)
@pytest.mark.parametrize("value", ["-1", "x", "10x", "99999999999"])
def test_a_bad_value_is_refused_naming_the_option(opt, value, tmp_path):
    r = expbusd("--socket", str(tmp_path / "s"), opt, value)
    assert r.returncode == 2, r.stderr
    assert f"invalid value '{value}' for {opt}" in r.stderr


@pytest.mark.parametrize("opt", OPTIONS)
@pytest.mark.parametrize("value", ["0", "50"])
def test_a_good_value_starts_a_broker_that_serves(opt, value, tmp_path):
    b = Broker(tmp_path, extra=(opt, value))
    try:
        r = subprocess.run(b.expbus("pub", "--stream", "s", "--count", "10"),
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
    finally:
        rc = b.stop()
    assert rc == 0, b.log()
